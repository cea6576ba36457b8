/**
 * Turning a PolicyPrompt into token ids: the embedded models' prompt formats from config.json, and
 * chat templates (tokenizer_config.json) for Hugging Face models, rendered with @huggingface/jinja.
 */
import { Template } from "@huggingface/jinja";
import type { Tokenizer } from "@huggingface/tokenizers";
import { InputError } from "../errors.js";
import type { PolicyPrompt } from "../policy.js";
import type { EmbeddedPromptFormat } from "./model-config.js";

export type PromptRenderer = (prompt: PolicyPrompt) => number[];

/**
 * The embedded format: `<bos>` stands for the BOS token, `{problem}` for the problem, and
 * `{previous_steps_joined_with 'SEP'}` for the last previous attempt's steps joined by SEP (the
 * embedded reviser was trained on one previous attempt). With the interleaved revision layout the
 * revision prompt holds the problem only; the previous attempt comes as injected lines
 * (interleavedRevisionLines).
 */
export function embeddedRenderer(formats: EmbeddedPromptFormat, tokenizer: Tokenizer, bosTokenId: number, stepDelimiter: string): PromptRenderer {
  return (prompt) => {
    const attempts = prompt.previousAttempts ?? [];
    let text = formats.policy;
    if (attempts.length > 0) {
      const revision = formats.revision;
      if (revision === undefined) throw new Error("this model has no revision prompt format");
      text =
        typeof revision === "string"
          ? revision.replace(/\{previous_steps_joined_with '([^']*)'\}/g, (_match, separator: string) => lastAttemptSteps(attempts, stepDelimiter).join(separator))
          : revision.prompt;
    }
    return encodeWithBos(text.replace(/\{problem\}/g, prompt.problem), tokenizer, bosTokenId);
  };
}

/** An interleaved reviser's forced lines, as token ids: one per step of the previous attempt, then `pastEnd` for every later step. */
export interface InjectedLines {
  lines: number[][];
  pastEnd: number[];
}

/**
 * The lines a revising branch is fed before its steps, when the model's revision format is the
 * interleaved layout; null for a first attempt or another format.
 */
export function interleavedRevisionLines(formats: EmbeddedPromptFormat, tokenizer: Tokenizer, stepDelimiter: string): (prompt: PolicyPrompt) => InjectedLines | null {
  const revision = formats.revision;
  if (revision === undefined || typeof revision === "string") return () => null;
  const line = (step: string) => tokenizer.encode(revision.injected_line.replace(/\{previous_step\}/g, () => step), { add_special_tokens: false }).ids;
  return (prompt) => {
    const attempts = prompt.previousAttempts ?? [];
    if (attempts.length === 0) return null;
    return { lines: lastAttemptSteps(attempts, stepDelimiter).map(line), pastEnd: line("") };
  };
}

function lastAttemptSteps(attempts: readonly string[], stepDelimiter: string): string[] {
  const last = attempts[attempts.length - 1] ?? "";
  return last
    .split(stepDelimiter)
    .map((step) => step.trim())
    .filter((step) => step !== "");
}

function encodeWithBos(text: string, tokenizer: Tokenizer, bosTokenId: number): number[] {
  const withBos = text.startsWith("<bos>");
  const ids = tokenizer.encode(withBos ? text.slice("<bos>".length) : text, { add_special_tokens: false }).ids;
  return withBos ? [bosTokenId, ...ids] : ids;
}

const INSTRUCTION =
  "Solve the following math problem step by step. Separate the steps with a blank line, and put the final answer in \\boxed{}.";

/** A chat model: the problem (and earlier attempts to revise) as one user message. */
export function chatRenderer(tokenizer: Tokenizer, tokenizerConfig: Record<string, unknown>): PromptRenderer {
  const source = tokenizerConfig.chat_template;
  const template = typeof source === "string" ? new Template(source) : null;
  const special = (name: string) => {
    const value = tokenizerConfig[name];
    return typeof value === "string" ? value : typeof value === "object" && value && "content" in value ? String(value.content) : "";
  };
  return (prompt) => {
    const attempts = (prompt.previousAttempts ?? []).map((attempt, i) => `Attempt ${i + 1}:\n${attempt}`).join("\n\n");
    const content = attempts
      ? `${INSTRUCTION}\n\nProblem: ${prompt.problem}\n\nEarlier attempts, which may contain mistakes:\n\n${attempts}\n\nWrite a corrected solution.`
      : `${INSTRUCTION}\n\nProblem: ${prompt.problem}`;
    const text = template
      ? template.render({ messages: [{ role: "user", content }], add_generation_prompt: true, bos_token: special("bos_token"), eos_token: special("eos_token") })
      : `${content}\n\n`;
    return tokenizer.encode(text, { add_special_tokens: template === null }).ids;
  };
}

/** What to do with a prompt longer than the model takes: refuse it, or cut the problem's end. */
export const PROMPT_OVERFLOWS = ["error", "truncate"] as const;
export type PromptOverflow = (typeof PROMPT_OVERFLOWS)[number];

/** The share of the sequence limit a truncated prompt may take; the rest is left for the solution. */
export const TRUNCATED_PROMPT_SHARE = 0.75;

/**
 * The prompt's token ids, at most `limit` of them. A longer prompt is an InputError, or with
 * "truncate" the problem is cut from its end (the prompt format around it stays whole) until the
 * prompt takes at most TRUNCATED_PROMPT_SHARE of the limit, leaving room for the solution.
 * `where` names the limit's source for the message.
 */
export function fitPrompt(render: PromptRenderer, prompt: PolicyPrompt, limit: number, overflow: PromptOverflow, where: string): number[] {
  let tokens = render(prompt);
  if (tokens.length <= limit || overflow === "error") return checkLength(tokens, limit, overflow, where);
  const target = Math.floor(limit * TRUNCATED_PROMPT_SHARE);
  let problem = prompt.problem;
  while (tokens.length > target && problem !== "") {
    // A token covers at least one character, so this never cuts more than the excess needs.
    problem = problem.slice(0, Math.max(0, problem.length - (tokens.length - target)));
    tokens = render({ ...prompt, problem });
  }
  return checkLength(tokens, limit, overflow, where);
}

function checkLength(tokens: number[], limit: number, overflow: PromptOverflow, where: string): number[] {
  if (tokens.length > limit) {
    throw new InputError(
      `the problem's prompt is ${tokens.length} tokens, above the policy's limit of ${limit} (${where})` +
        (overflow === "error" ? "; shorten the problem, or ask for truncation (--truncate-problem, or promptOverflow: \"truncate\")" : ""),
    );
  }
  return tokens;
}
