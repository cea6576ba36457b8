/**
 * How the served policy formats a prompt's chat messages (served/messages.ts) for the server: as
 * token ids, for servers that take ids as `prompt` (vLLM), or as the text of the rendered chat
 * template, for servers that take text only or return no token ids.
 *
 * - A tokenizer directory (`--chat-template DIR`): its tokenizer_config.json chat template rendered
 *   here with @huggingface/jinja, and its tokenizer.json for the ids (and the prompt's token count).
 * - The server: ids from vLLM's `/tokenize` with `messages` (its own chat template); text from
 *   llama.cpp's `/apply-template` (counted with its `/tokenize` of `content`), or else from vLLM's
 *   `/tokenize` with `messages` followed by `/detokenize` of those ids.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import { InputError } from "../errors.js";
import { HttpStatusError, type Endpoints } from "./http.js";
import type { ChatMessage } from "./messages.js";

export type IdsRenderer = (messages: ChatMessage[], signal?: AbortSignal) => Promise<{ ids: number[]; retries: number }>;
/** The rendered text and its token count (the prefill the meter counts). */
export type TextRenderer = (messages: ChatMessage[], signal?: AbortSignal) => Promise<{ text: string; tokens: number; retries: number }>;

const vllmTokenizeSchema = z.object({ tokens: z.array(z.int()), count: z.int().optional(), max_model_len: z.int().nullish() });
const vllmDetokenizeSchema = z.object({ prompt: z.string() });
const applyTemplateSchema = z.object({ prompt: z.string() });
// llama.cpp's /tokenize answers ids, or {id, piece} objects with with_pieces.
const llamaTokenizeSchema = z.object({ tokens: z.array(z.union([z.int(), z.object({ id: z.int() })])) });

/** vLLM's `/tokenize` with messages: the server's chat template and tokenizer. */
export function serverIdsRenderer(endpoints: Endpoints, model: string): IdsRenderer {
  return async (messages, signal) => {
    const { value, retries } = await endpoints.request("root", "/tokenize", { model, messages, add_generation_prompt: true }, vllmTokenizeSchema, signal);
    // llama.cpp's /tokenize reads only `content`, and answers no tokens for messages.
    if (value.tokens.length === 0) throw new Error("/tokenize answered no tokens for the messages");
    return { ids: value.tokens, retries };
  };
}

/** llama.cpp's `/apply-template` (the rendered text), then its `/tokenize` of that text for the count. */
function applyTemplateRenderer(endpoints: Endpoints): TextRenderer {
  return async (messages, signal) => {
    const rendered = await endpoints.request("root", "/apply-template", { messages }, applyTemplateSchema, signal);
    const counted = await endpoints.request("root", "/tokenize", { content: rendered.value.prompt }, llamaTokenizeSchema, signal);
    return { text: rendered.value.prompt, tokens: counted.value.tokens.length, retries: rendered.retries + counted.retries };
  };
}

/** vLLM's `/tokenize` with messages, then `/detokenize` of the ids: the text of the server's own rendering. */
function detokenizeRenderer(endpoints: Endpoints, model: string): TextRenderer {
  const renderIds = serverIdsRenderer(endpoints, model);
  return async (messages, signal) => {
    const { ids, retries } = await renderIds(messages, signal);
    const detokenized = await endpoints.request("root", "/detokenize", { model, tokens: ids }, vllmDetokenizeSchema, signal);
    return { text: detokenized.value.prompt, tokens: ids.length, retries: retries + detokenized.retries };
  };
}

const why = (error: unknown) => (error instanceof HttpStatusError ? `${error.status}: ${error.serverMessage}` : (error as Error).message);

/**
 * The server's way to render a chat template to text, tried on a sample prompt: llama.cpp's
 * `/apply-template`, else vLLM's `/tokenize` + `/detokenize`. Fails with an InputError that says what
 * each answered and what to give instead.
 */
export async function serverTextRenderer(endpoints: Endpoints, model: string, sample: ChatMessage[]): Promise<TextRenderer> {
  const failures: string[] = [];
  for (const [name, renderer] of [
    ["/apply-template", applyTemplateRenderer(endpoints)],
    ["/tokenize + /detokenize", detokenizeRenderer(endpoints, model)],
  ] as const) {
    try {
      await renderer(sample);
      return renderer;
    } catch (error) {
      failures.push(`${name}: ${why(error)}`);
    }
  }
  throw new InputError(
    `--policy ${endpoints.urls.join(",")}: the server renders no chat template to text (${failures.join("; ")}); give --chat-template DIR (the model's tokenizer_config.json and tokenizer.json)`,
  );
}

/** A tokenizer directory's chat template and tokenizer, as src/runtime/prompt.ts renders a local model's. */
export async function localRenderers(dir: string): Promise<{ ids: IdsRenderer; text: TextRenderer }> {
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
  const render = (messages: ChatMessage[]) => template.render({ messages, add_generation_prompt: true, bos_token: special("bos_token"), eos_token: special("eos_token") });
  const encode = (text: string) => tokenizer.encode(text, { add_special_tokens: false }).ids;
  return {
    ids: (messages) => Promise.resolve({ ids: encode(render(messages)), retries: 0 }),
    text: (messages) => {
      const text = render(messages);
      return Promise.resolve({ text, tokens: encode(text).length, retries: 0 });
    },
  };
}
