/**
 * A Policy served over HTTP by vLLM (or `deliberate serve`, or another server with vLLM's
 * completions extensions). A branch keeps its prompt and steps as token ids: each step is one
 * `/v1/completions` request with the ids as `prompt`, stopped at the step delimiter, and the
 * server's `return_token_ids` are appended as they are, so a step is never re-tokenized. The
 * server's prefix cache does the rest of what a local branch's state does.
 *
 * Prompts are formatted from `promptToMessages` (served/messages.ts) either by the server's
 * `/tokenize` with `messages` (its own chat template), or, given a tokenizer directory, by its
 * tokenizer_config.json chat template rendered here with @huggingface/jinja and its tokenizer.json.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import { InputError } from "../errors.js";
import type { Branch, ExtendOptions, Policy, PolicyPrompt, StepResult, StopReason } from "../policy.js";
import { checkModel, describeCard, Endpoints, HttpStatusError, type HttpOptions } from "./http.js";
import { promptToMessages, type ChatMessage } from "./messages.js";

export interface ServedPolicyOptions extends HttpOptions {
  /** The served model's id; needed when the server serves several. */
  model?: string;
  /** The string between steps; the completion stops there. Default a blank line. */
  stepDelimiter?: string;
  /** Parameter count, for FLOPs; without it FLOPs are reported as unknown. */
  parameters?: number | null;
  /**
   * A directory with the model's tokenizer_config.json (its `chat_template`) and tokenizer.json:
   * prompts are rendered and tokenized here. Without it, the server's `/tokenize` does it.
   */
  chatTemplate?: string;
}

const completionSchema = z.object({
  choices: z
    .array(
      z.object({
        text: z.string(),
        finish_reason: z.string().nullable(),
        // vLLM: the stop string matched, a stop token id, or null for end of text.
        stop_reason: z.union([z.string(), z.number()]).nullish(),
        token_ids: z.array(z.int()).nullish(),
        logprobs: z.object({ token_logprobs: z.array(z.number().nullable()) }).nullish(),
      }),
    )
    .length(1),
  usage: z.object({ prompt_tokens: z.int(), completion_tokens: z.int() }).nullish(),
});

const tokenizeSchema = z.object({ tokens: z.array(z.int()), count: z.int().optional(), max_model_len: z.int().nullish() });

/** A 400 that says the prompt (plus max_tokens) is past the model's context length, in vLLM's wordings. */
const CONTEXT_LENGTH = /context length|maximum model length|too long/i;

class ServedBranch implements Branch {
  steps: string[] = [];
  finished = false;
  generatedTokens = 0;

  constructor(
    readonly policy: ServedPolicy,
    readonly promptTokens: number,
    /** The prompt and every step so far, as the server's token ids (delimiters included). */
    public ids: number[],
    readonly startRetries: number,
  ) {}

  fork(): Branch {
    const copy = new ServedBranch(this.policy, this.promptTokens, [...this.ids], this.startRetries);
    copy.steps = [...this.steps];
    copy.finished = this.finished;
    copy.generatedTokens = this.generatedTokens;
    return copy;
  }

  /** The server holds no state of its own for a branch (its prefix cache is its business). */
  release(): void {}
}

type RenderPrompt = (messages: ChatMessage[], signal?: AbortSignal) => Promise<{ ids: number[]; retries: number }>;

export class ServedPolicy implements Policy {
  constructor(
    readonly endpoints: Endpoints,
    readonly name: string,
    readonly fingerprint: string,
    readonly parameters: number | null,
    readonly stepDelimiter: string,
    private readonly maxModelLen: number | null,
    private readonly render: RenderPrompt,
  ) {}

  /** Requests sent again after a fault, over this policy's life. */
  get retries(): number {
    return this.endpoints.retries;
  }

  async start(prompt: PolicyPrompt): Promise<Branch> {
    const { ids, retries } = await this.render(promptToMessages(prompt));
    return new ServedBranch(this, ids.length, ids, retries);
  }

  async extend(branches: readonly Branch[], options: ExtendOptions): Promise<StepResult[]> {
    if (options.seeds.length !== branches.length) throw new Error(`extend: ${branches.length} branches but ${options.seeds.length} seeds`);
    options.signal?.throwIfAborted();
    // One request per branch, all at once: the endpoints' queues bound what is in flight.
    return await Promise.all(
      branches.map((branch, i) => {
        if (!(branch instanceof ServedBranch) || branch.policy !== this) throw new Error("extend: not a branch of this policy");
        if (branch.finished) throw new Error("extend: a finished branch");
        return this.step(branch, options.seeds[i] as number, options);
      }),
    );
  }

  private async step(branch: ServedBranch, seed: number, options: ExtendOptions): Promise<StepResult> {
    // Past the context length the server would refuse; max_tokens is cut to the room that is left.
    const room = this.maxModelLen === null ? Infinity : this.maxModelLen - branch.ids.length;
    if (room <= 0) return this.endBranch(branch, 0, 0);
    const maxTokens = Math.min(options.maxStepTokens, room);
    const body = {
      model: this.name,
      prompt: branch.ids,
      max_tokens: maxTokens,
      temperature: options.temperature,
      top_p: options.topP ?? 1,
      ...(options.topK === undefined ? {} : { top_k: options.topK }),
      seed,
      n: 1,
      stop: [this.stepDelimiter],
      include_stop_str_in_output: true,
      return_token_ids: true,
      logprobs: 0,
    };
    let answer: { value: z.output<typeof completionSchema>; retries: number };
    try {
      answer = await this.endpoints.request("base", "/completions", body, completionSchema, options.signal);
    } catch (error) {
      if (error instanceof HttpStatusError && error.status === 400 && CONTEXT_LENGTH.test(error.serverMessage)) return this.endBranch(branch, 1, 0);
      throw error;
    }
    const choice = answer.value.choices[0] as z.output<typeof completionSchema>["choices"][number];
    if (!choice.token_ids) throw new Error(`${this.endpoints.urls.join(", ")}: the completion has no token_ids; the server does not support return_token_ids (vLLM 0.10.2 or newer does)`);
    let stopReason: StopReason;
    let text = choice.text;
    if (choice.finish_reason === "length") stopReason = maxTokens < options.maxStepTokens ? "max-length" : "max-tokens";
    else if (choice.stop_reason === this.stepDelimiter) {
      stopReason = "delimiter";
      if (!text.endsWith(this.stepDelimiter)) throw new Error(`the server left the stop string out of the text although include_stop_str_in_output was set`);
      text = text.slice(0, -this.stepDelimiter.length);
    } else stopReason = "eos";
    branch.ids.push(...choice.token_ids);
    const tokens = answer.value.usage?.completion_tokens ?? choice.token_ids.length;
    // An empty step (a delimiter right away, or end of text) adds no step.
    if (text !== "") branch.steps.push(text);
    branch.finished = stopReason === "eos" || stopReason === "max-length";
    branch.generatedTokens += tokens;
    const logprobs = (choice.logprobs?.token_logprobs ?? []).filter((value): value is number => value !== null);
    return { text, tokens, logprobs, stopReason, calls: 1, retries: answer.retries };
  }

  /** Ends a branch that has no room left: a "max-length" step with no text. */
  private endBranch(branch: ServedBranch, calls: number, retries: number): StepResult {
    branch.finished = true;
    return { text: "", tokens: 0, logprobs: [], stopReason: "max-length", calls, retries };
  }

  async close(): Promise<void> {
    await this.endpoints.close();
  }
}

/** The server's `/tokenize` with messages: its chat template and tokenizer. */
function serverRenderer(endpoints: Endpoints, model: string): RenderPrompt {
  return async (messages, signal) => {
    const { value, retries } = await endpoints.request("root", "/tokenize", { model, messages, add_generation_prompt: true }, tokenizeSchema, signal);
    return { ids: value.tokens, retries };
  };
}

/** A tokenizer directory's chat template and tokenizer, as src/runtime/prompt.ts renders a local model's. */
async function localRenderer(dir: string): Promise<RenderPrompt> {
  const read = async (file: string): Promise<Record<string, unknown>> => {
    try {
      return z.record(z.string(), z.unknown()).parse(JSON.parse(await readFile(join(dir, file), "utf8")));
    } catch (error) {
      throw new InputError(`--chat-template ${dir}: cannot read ${file} (${(error as Error).message})`);
    }
  };
  const config = await read("tokenizer_config.json");
  if (typeof config.chat_template !== "string") throw new InputError(`--chat-template ${dir}: tokenizer_config.json has no chat_template string`);
  const template = new Template(config.chat_template);
  const tokenizer = new Tokenizer(await read("tokenizer.json"), config);
  const special = (name: string) => {
    const value = config[name];
    return typeof value === "string" ? value : typeof value === "object" && value && "content" in value ? String(value.content) : "";
  };
  return (messages) => {
    const text = template.render({ messages, add_generation_prompt: true, bos_token: special("bos_token"), eos_token: special("eos_token") });
    return Promise.resolve({ ids: tokenizer.encode(text, { add_special_tokens: false }).ids, retries: 0 });
  };
}

/**
 * Connects to a served policy: `urls` are replicas of one model (e.g. http://host:8000/v1). Checks
 * them before any work (reachable, OpenAI-compatible, the key, the model) and how prompts are
 * formatted (the server's /tokenize, unless `chatTemplate` is given); fails with an InputError that
 * says which.
 */
export async function connectPolicy(urls: string | readonly string[], options: ServedPolicyOptions = {}): Promise<ServedPolicy> {
  const endpoints = new Endpoints(typeof urls === "string" ? [urls] : urls, options);
  const card = await checkModel(endpoints, options.model, "--policy");
  let render: RenderPrompt;
  if (options.chatTemplate !== undefined) render = await localRenderer(options.chatTemplate);
  else {
    render = serverRenderer(endpoints, card.id);
    try {
      await render(promptToMessages({ problem: "1 + 1" }));
    } catch (error) {
      const why = error instanceof HttpStatusError ? `${error.status}: ${error.serverMessage}` : (error as Error).message;
      throw new InputError(`--policy ${endpoints.urls.join(",")}: the server's /tokenize with messages failed (${why}); give --chat-template DIR (the model's tokenizer_config.json and tokenizer.json)`);
    }
  }
  return new ServedPolicy(endpoints, card.id, describeCard(card), options.parameters ?? null, options.stepDelimiter ?? "\n\n", card.max_model_len ?? null, render);
}
