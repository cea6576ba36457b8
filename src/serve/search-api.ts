/**
 * The strategies as OpenAI-compatible models: `model` is `<strategy>-<budget>` (`beam-16`,
 * `best-of-n-8`, `compute-optimal-16`, `majority-8`), run through `solve` with the server's policy
 * and verifier. The request's `deliberate` field overrides the strategy, the budget and any
 * parameter, asks for the search's details, and sets the search's limits.
 */
import { z } from "zod";
import { getStrategy, STRATEGIES } from "../../strategies/registry.js";
import { describeZodError } from "../errors.js";
import type { ComputeReport } from "../meter.js";
import type { SolveResult } from "../solve.js";
import { limitsSchema, type SearchNode, type Strategy } from "../strategy.js";
import { solutionSteps } from "../../verifiers/steps.js";
import { ApiError, badRequest, unknownModel } from "./protocol.js";

/**
 * The model names a request can use, by prefix: every strategy by its own name with its defaults,
 * and `majority` (best-of-N with a majority vote, which needs no verifier).
 */
const PRESETS: Record<string, { strategy: string; params: Record<string, unknown>; needsVerifier: boolean }> = {
  ...Object.fromEntries(STRATEGIES.map((strategy) => [strategy.name, { strategy: strategy.name, params: {}, needsVerifier: true }])),
  majority: { strategy: "best-of-n", params: { select: "majority" }, needsVerifier: false },
};

/** What a search request asks for, validated: the strategy, its parameters (budget included, defaults filled) and limits. */
export interface SearchJob {
  strategy: Strategy;
  budget: number;
  params: Record<string, unknown>;
  limits: Partial<z.output<typeof limitsSchema>>;
  details: boolean;
}

export interface SearchSettings {
  maxBudget: number;
  hasVerifier: boolean;
  /** Parameters the server fills in for a strategy when a request does not give them (compute-optimal's allocation table). */
  strategyDefaults: Record<string, Record<string, unknown>>;
}

/** The `deliberate` field of a chat or completion request. Unknown keys are refused, so a typo is not silently ignored. */
export const deliberateField = z.strictObject({
  strategy: z.string().optional(),
  budget: z.int().min(1).optional(),
  params: z.record(z.string(), z.unknown()).default({}),
  limits: limitsSchema.partial().strict().optional(),
  /** Return the candidates with their scores, the compute meter and the difficulty in the response's `deliberate` field. */
  details: z.boolean().default(false),
});
type DeliberateField = z.output<typeof deliberateField>;

/** OpenAI's text content part; other kinds (images, audio) mean nothing to a math policy. */
const contentPart = z.object({ type: z.literal("text"), text: z.string() });
const chatMessage = z.looseObject({
  role: z.enum(["system", "developer", "user", "assistant"]),
  content: z.union([z.string(), z.array(contentPart)]).nullish(),
});

/** At most this many tokens of the chosen solution are answered (`answerOf`). */
const maxTokens = z.int().positive().nullish();

/** Fields shared by the chat and completion forms of a search request. */
const searchRequestFields = {
  model: z.string(),
  seed: z.int().nullish(),
  temperature: z.number().min(0).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  n: z.literal(1, { error: "a strategy model answers with one choice, the search's chosen solution (every candidate is in the response with deliberate.details)" }).nullish(),
  max_tokens: maxTokens,
  stream: z.boolean().nullish(),
  stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
  deliberate: deliberateField.optional(),
};

export const chatRequest = z.looseObject({
  ...searchRequestFields,
  messages: z.array(chatMessage).min(1),
  /** OpenAI's newer name for max_tokens in chat. */
  max_completion_tokens: maxTokens,
});
export type ChatRequest = z.infer<typeof chatRequest>;

export const strategyCompletionRequest = z.looseObject({
  ...searchRequestFields,
  prompt: z.string(),
});
export type StrategyCompletionRequest = z.infer<typeof strategyCompletionRequest>;

/** `<preset>-<budget>` split, or null when the name is not of that form (it may be a hosted model's). */
export function parseStrategyModel(model: string): { preset: string; budget: number } | null {
  const match = /^(.+)-([1-9][0-9]*)$/.exec(model);
  if (match === null || !((match[1] as string) in PRESETS)) return null;
  return { preset: match[1] as string, budget: Number(match[2]) };
}

/** The strategy models to list: each preset at the powers of two up to the largest budget where its default parameters hold. */
export function strategyModelIds(settings: SearchSettings): string[] {
  const ids: string[] = [];
  for (const [name, preset] of Object.entries(PRESETS)) {
    if (preset.needsVerifier && !settings.hasVerifier) continue;
    const strategy = getStrategy(preset.strategy);
    for (let budget = 1; budget <= settings.maxBudget; budget *= 2) {
      const params = { ...settings.strategyDefaults[strategy.name], ...preset.params, budget };
      if (strategy.params.safeParse(params).success) ids.push(`${name}-${budget}`);
    }
  }
  return ids;
}

/** The search a request asks for: the model name, then the `deliberate` field over it; 404 for an unknown model, 400 for a bad parameter. */
export function resolveJob(model: string, field: DeliberateField | undefined, settings: SearchSettings): SearchJob {
  const named = parseStrategyModel(model);
  if (named === null) throw unknownModel(model);
  const preset = PRESETS[named.preset] as (typeof PRESETS)[string];
  let strategy: Strategy;
  try {
    strategy = getStrategy(field?.strategy ?? preset.strategy);
  } catch (error) {
    throw badRequest(`deliberate.strategy: ${(error as Error).message}`);
  }
  // A strategy named in the field replaces the model's preset, parameters and all.
  const presetParams = field?.strategy === undefined ? preset.params : {};
  if (field?.params.budget !== undefined) throw badRequest("deliberate.params.budget: give the budget in the model's name or as deliberate.budget");
  const budget = field?.budget ?? named.budget;
  if (budget > settings.maxBudget) {
    throw badRequest(`budget ${budget} is over this server's largest budget per request, ${settings.maxBudget} (--max-budget)`);
  }
  const parsed = strategy.params.safeParse({ ...settings.strategyDefaults[strategy.name], ...presetParams, ...field?.params, budget });
  if (!parsed.success) throw badRequest(`deliberate.params: invalid ${strategy.name} parameters: ${describeZodError(parsed.error)}`);
  // Only a majority vote runs without a verifier; anything else would fail once running (and, streamed, after the 200).
  if (!settings.hasVerifier && (parsed.data as { select?: string }).select !== "majority") {
    throw badRequest(`${strategy.name} needs a step verifier and this server has none (--verifier none): use majority-<budget>`);
  }
  return { strategy, budget, params: parsed.data as Record<string, unknown>, limits: field?.limits ?? {}, details: field?.details ?? false };
}

/** The problem of a chat: the last user message (the policy writes its own instruction, so system messages are not read). */
export function problemOf(messages: ChatRequest["messages"]): string {
  const last = messages.findLast((message) => message.role === "user");
  if (last === undefined) throw badRequest("messages: no user message (the problem to solve)");
  const content = last.content ?? "";
  return typeof content === "string" ? content : content.map((part) => part.text).join("");
}

/** Every token the search spent: prompt = what the models read (policy prefill, verifier input), completion = what the policy generated. */
export function usageOf(compute: ComputeReport): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  const read = compute.prefilledTokens + compute.verifierTokens;
  return { prompt_tokens: read, completion_tokens: compute.generatedTokens, total_tokens: read + compute.generatedTokens };
}

/**
 * What a request is answered: the chosen solution's steps and OpenAI's finish reason. The solution
 * is never cut silently: past `maxTokens` (counted by the tokens the policy generated for each
 * step) it is cut to the whole steps that fit, with `length`; `length` too when the search stopped
 * it unfinished.
 */
export function answerOf(result: SolveResult, maxTokens: number | null | undefined): { steps: string[]; finishReason: "stop" | "length" } {
  const chosen = result.chosen;
  if (chosen === null) return { steps: [], finishReason: "stop" };
  const finishReason = chosen.finished ? "stop" : "length";
  if (maxTokens === null || maxTokens === undefined) return { steps: chosen.steps, finishReason };
  // The solution's nodes, from its first step to its last (a node at depth 0 is the attempt's prompt).
  const path: SearchNode[] = [];
  for (let node = result.tree[chosen.nodeId]; node !== undefined && node.depth > 0; node = result.tree[node.parentId as number]) path.unshift(node);
  let spent = 0;
  for (const [index, node] of path.entries()) {
    spent += node.tokens;
    if (spent > maxTokens) return { steps: solutionSteps(path.slice(0, index).map((kept) => kept.step)), finishReason: "length" };
  }
  return { steps: chosen.steps, finishReason };
}

/** The response's `deliberate` field: always the strategy and answer, the search's details when asked for. */
export function searchDetails(job: SearchJob, result: SolveResult): Record<string, unknown> {
  const summary = { strategy: result.strategy, budget: job.budget, answer: result.answer };
  if (!job.details) return summary;
  return {
    ...summary,
    params: result.params,
    candidates: result.candidates.map(({ text, answer, score, stepScores, finished, tokens }) => ({ text, answer, score, stepScores, finished, tokens })),
    compute: result.compute,
    ...(result.difficulty ? { difficulty: result.difficulty } : {}),
  };
}

/** A 504 for a search past the time limit; the compute it spent is in the message. */
export function timedOut(seconds: number, compute: ComputeReport): ApiError {
  return new ApiError(
    504,
    "TimeoutError",
    `the search did not finish within the server's time limit of ${seconds} s (--request-timeout) and was stopped after ` +
      `${compute.generatedTokens} generated, ${compute.prefilledTokens} prefilled and ${compute.verifierTokens} verifier tokens`,
  );
}
