/**
 * The request bodies `deliberate serve` accepts, as zod schemas, and its error responses. They
 * follow vLLM's OpenAI-compatible server (vllm/entrypoints/openai/protocol.py and the serving_*
 * handlers): field names, defaults (`max_tokens` 16, `temperature` 1, `n` 1), extra fields ignored,
 * and errors as `{"error": {"message", "type", "param", "code"}}` with vLLM's messages.
 */
import { z } from "zod";

/** An error answered as vLLM answers it: HTTP status, `type` and message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    message: string,
    /** Headers the answer carries (Retry-After on a 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badRequest = (message: string) => new ApiError(400, "BadRequestError", message);
/** vLLM's answer for a model it does not serve (serving_engine `_check_model`). */
export const unknownModel = (model: string) => new ApiError(404, "NotFoundError", `The model \`${model}\` does not exist.`);

export function errorBody(error: ApiError): { error: { message: string; type: string; param: null; code: number } } {
  return { error: { message: error.message, type: error.type, param: null, code: error.status } };
}

const tokenId = z.number().int().nonnegative();
const tokenIds = z.array(tokenId).min(1);

export const completionRequest = z.looseObject({
  model: z.string().nullish(),
  /** Text, token ids, or a list of either: one completion (n choices) per prompt. */
  prompt: z.union([z.string(), tokenIds, z.array(z.string()).min(1), z.array(tokenIds).min(1)]),
  n: z.number().int().positive().default(1),
  seed: z.number().int().nullish(),
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  include_stop_str_in_output: z.boolean().default(false),
  /** null: up to the model's context length, as vLLM does. */
  max_tokens: z.number().int().positive().nullable().default(16),
  temperature: z.number().min(0).nullable().default(1),
  top_p: z.number().gt(0).max(1).nullable().default(1),
  /** 0 or -1 (vLLM's "off") or a positive limit. */
  top_k: z.number().int().min(-1).nullish(),
  logprobs: z.number().int().min(0).max(20).nullish(),
  return_token_ids: z.boolean().nullish(),
  /** A text prompt is tokenized with the tokenizer's special tokens (BOS, ...) unless false, as in vLLM. */
  add_special_tokens: z.boolean().default(true),
});
export type CompletionRequest = z.infer<typeof completionRequest>;

/**
 * Fields of vLLM's completion request that change the output and that this server does not
 * implement, with the value that means "off": a request that sets one otherwise gets a 400 instead
 * of an output that silently ignores it.
 */
export const UNSUPPORTED_COMPLETION_FIELDS: Record<string, unknown[]> = {
  stream: [false],
  echo: [false],
  suffix: [],
  best_of: [1],
  logit_bias: [{}],
  presence_penalty: [0],
  frequency_penalty: [0],
  repetition_penalty: [1],
  min_tokens: [0],
  min_p: [0],
  ignore_eos: [false],
  stop_token_ids: [[]],
  prompt_logprobs: [],
  use_beam_search: [false],
  prompt_embeds: [],
};

const chatMessage = z.object({ role: z.enum(["system", "user", "assistant"]), content: z.string() });

/** `/tokenize` with a prompt; a body with `messages` is a `tokenizeChatRequest` instead, as in vLLM. */
export const tokenizeCompletionRequest = z.looseObject({
  model: z.string().nullish(),
  prompt: z.string(),
  add_special_tokens: z.boolean().default(true),
  return_token_strs: z.boolean().nullish(),
});

export const tokenizeChatRequest = z.looseObject({
  model: z.string().nullish(),
  messages: z.array(chatMessage).min(1),
  add_generation_prompt: z.boolean().default(true),
  return_token_strs: z.boolean().nullish(),
});

export const detokenizeRequest = z.looseObject({
  model: z.string().nullish(),
  tokens: z.array(tokenId),
});

export const poolingRequest = z.looseObject({
  model: z.string().nullish(),
  input: z.union([z.string(), z.array(z.string()).min(1)]),
  task: z.string().nullish(),
  encoding_format: z.literal("float").nullish(),
});
