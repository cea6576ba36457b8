/**
 * `POST /v1/completions` on a hosted OnnxPolicy, as vLLM answers it (serving_completion.py):
 * every prompt's choices are decoded in one batch with whatever other requests are waiting, from
 * the longest cached prefix of the prompt, and each choice's final state is cached for the request
 * that continues it.
 *
 * Seeds: choice j of a request with `seed` s samples with seed s + j, as vLLM seeds the n children
 * of a request (v1/engine/parallel_sampling.py), so choice j equals an in-process
 * `policy.extend(branch, { seeds: [s + j] })` from the same tokens. Without a seed, s is drawn at
 * random. Seeds are used modulo 2^32 (the sampler's Mersenne Twister takes 32 bits).
 */
import { randomInt } from "node:crypto";
import type { Branch } from "../policy.js";
import type { ExtendResult, OnnxPolicy } from "../runtime/onnx-policy.js";
import type { PrefixCache } from "./prefix-cache.js";
import { badRequest, UNSUPPORTED_COMPLETION_FIELDS, type CompletionRequest } from "./protocol.js";

interface CompletionLogprobs {
  text_offset: number[];
  token_logprobs: number[];
  tokens: string[];
  top_logprobs: Record<string, number>[];
}

export interface CompletionChoice {
  index: number;
  text: string;
  logprobs: CompletionLogprobs | null;
  finish_reason: "stop" | "length";
  stop_reason: string | null;
  token_ids: number[] | null;
  prompt_logprobs: null;
  prompt_token_ids: number[] | null;
}

export interface CompletionResponse {
  id: string;
  object: "text_completion";
  created: number;
  model: string;
  choices: CompletionChoice[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number; prompt_tokens_details: null };
}

/** 400 for a field that would change the output and that this server does not implement. */
function rejectUnsupported(body: Record<string, unknown>): void {
  for (const [field, off] of Object.entries(UNSUPPORTED_COMPLETION_FIELDS)) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (off.some((allowed) => JSON.stringify(allowed) === JSON.stringify(value))) continue;
    throw badRequest(`${field} is not supported by deliberate serve (got ${JSON.stringify(value)})`);
  }
}

/** The prompts as token ids: text is tokenized as vLLM does for completions, with the tokenizer's special tokens unless `addSpecialTokens` is false. */
async function promptTokenIds(policy: OnnxPolicy, prompt: CompletionRequest["prompt"], addSpecialTokens: boolean): Promise<number[][]> {
  if (typeof prompt === "string") return [await policy.tokenize(prompt, addSpecialTokens)];
  if (prompt.every((item) => typeof item === "number")) return [prompt as number[]];
  return Promise.all((prompt as (string | number[])[]).map((item) => (typeof item === "string" ? policy.tokenize(item, addSpecialTokens) : item)));
}

/** vLLM's context-length checks (serving_engine `_validate_input`), with its messages. */
function checkContextLength(promptTokens: number, maxTokens: number | null, maxModelLen: number): void {
  if (promptTokens >= maxModelLen) {
    throw badRequest(
      `This model's maximum context length is ${maxModelLen} tokens. However, your request has ${promptTokens} input tokens. ` +
        "Please reduce the length of the input messages.",
    );
  }
  if (maxTokens !== null && promptTokens + maxTokens > maxModelLen) {
    throw badRequest(
      `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context length is ${maxModelLen} tokens ` +
        `and your request has ${promptTokens} input tokens (${maxTokens} > ${maxModelLen} - ${promptTokens}).`,
    );
  }
}

/** A branch at the end of `tokens`, resumed from the longest cached prefix; the caller owns it. */
async function branchAt(policy: OnnxPolicy, cache: PrefixCache, tokens: number[]): Promise<Branch> {
  const cached = cache.lookup(tokens);
  if (cached === null) return policy.startFromTokens(tokens);
  // Cached branches are never advanced: fork, then feed the tokens the prompt adds.
  const branch = cached.branch.fork();
  try {
    await policy.appendTokens(branch, tokens.slice(cached.length));
  } catch (error) {
    branch.release();
    throw error;
  }
  return branch;
}

function choiceText(result: ExtendResult, includeStop: boolean): string {
  if (result.stopString === null) return result.fullText;
  // vLLM cuts the text at the stop string (and drops anything the same token wrote after it).
  const at = result.fullText.indexOf(result.stopString);
  return result.fullText.slice(0, includeStop ? at + result.stopString.length : at);
}

function choiceLogprobs(result: ExtendResult): CompletionLogprobs | null {
  if (!result.tokenLogprobs) return null;
  const tokens = result.tokenLogprobs.map((token) => token.text);
  const text_offset: number[] = [];
  let offset = 0;
  for (const token of tokens) {
    text_offset.push(offset);
    offset += token.length;
  }
  const top_logprobs = result.tokenLogprobs.map((token, i) => {
    // The sampled token is always listed, as vLLM lists it, besides the `logprobs` most likely.
    const entries: Record<string, number> = { [token.text]: result.logprobs[i] as number };
    for (const candidate of token.top) entries[candidate.text] = candidate.logprob;
    return entries;
  });
  return { text_offset, token_logprobs: result.logprobs, tokens, top_logprobs };
}

export async function createCompletion(
  policy: OnnxPolicy,
  cache: PrefixCache,
  modelName: string,
  body: Record<string, unknown>,
  request: CompletionRequest,
): Promise<CompletionResponse> {
  rejectUnsupported(body);
  const prompts = await promptTokenIds(policy, request.prompt, request.add_special_tokens);
  for (const tokens of prompts) {
    checkContextLength(tokens.length, request.max_tokens, policy.maxSequenceTokens);
    // vLLM's check of prompt token ids (v1 processor).
    const largest = Math.max(...tokens);
    if (largest > policy.maxTokenId) throw badRequest(`Token id ${largest} is out of vocabulary`);
  }
  const stop = request.stop === null || request.stop === undefined ? [] : typeof request.stop === "string" ? [request.stop] : request.stop;
  if (stop.includes("")) throw badRequest("stop: an empty stop string would end every completion at once");
  const baseSeed = request.seed ?? randomInt(0, 2 ** 31);

  // One branch per choice, forked from the prompt's branch; the prompt's branch is then cached,
  // so that later requests with this prompt (best-of-N, n > 1) start from it.
  const choices: { tokens: number[]; branch: Branch; seed: number }[] = [];
  let results: ExtendResult[];
  try {
    for (const tokens of prompts) {
      const promptBranch = await branchAt(policy, cache, tokens);
      for (let j = 0; j < request.n; j++) choices.push({ tokens, branch: promptBranch.fork(), seed: baseSeed + j });
      cache.insert(tokens, promptBranch);
    }
    // One decode call for every choice of every prompt; concurrent requests join the same batch.
    results = await policy.decode(
      choices.map((choice) => choice.branch),
      {
        seeds: choices.map((choice) => choice.seed),
        temperature: request.temperature ?? 1,
        topP: request.top_p ?? 1,
        ...(request.top_k !== null && request.top_k !== undefined && request.top_k > 0 ? { topK: request.top_k } : {}),
        // max_tokens null: up to the context length, where the engine stops every branch ("max-length").
        maxStepTokens: request.max_tokens ?? policy.maxSequenceTokens,
        stop,
        ...(request.logprobs !== null && request.logprobs !== undefined ? { topLogprobs: request.logprobs } : {}),
      },
    );
  } catch (error) {
    for (const choice of choices) choice.branch.release();
    throw error;
  }

  // A choice that can be continued is cached at prompt + generated tokens: the next step of a
  // search sends exactly those token ids.
  choices.forEach((choice, i) => {
    const result = results[i] as ExtendResult;
    if (choice.branch.finished) choice.branch.release();
    else cache.insert([...choice.tokens, ...result.tokenIds], choice.branch);
  });

  const returnTokenIds = request.return_token_ids === true;
  const completionTokens = results.reduce((sum, result) => sum + result.tokens, 0);
  const promptTokens = prompts.reduce((sum, tokens) => sum + tokens.length, 0);
  return {
    id: `cmpl-${randomInt(2 ** 47).toString(16)}`,
    object: "text_completion",
    created: Math.floor(Date.now() / 1000),
    model: modelName,
    choices: choices.map((choice, i) => {
      const result = results[i] as ExtendResult;
      return {
        index: i,
        text: choiceText(result, request.include_stop_str_in_output),
        logprobs: choiceLogprobs(result),
        finish_reason: result.stopReason === "delimiter" || result.stopReason === "eos" ? "stop" : "length",
        stop_reason: result.stopString,
        token_ids: returnTokenIds ? result.tokenIds : null,
        prompt_logprobs: null,
        prompt_token_ids: returnTokenIds ? choice.tokens : null,
      };
    }),
    usage: { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: null },
  };
}
