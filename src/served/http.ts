/**
 * The HTTP layer under the served policy and verifier: one or more endpoints (replicas of one
 * model), a p-queue per endpoint that bounds the requests in flight there, the least loaded
 * endpoint for each request, and retries with backoff and jitter on connection errors, timeouts,
 * 429 (after its Retry-After) and 5xx, each retry on another endpoint when there is one.
 *
 * Built on fetch rather than the `openai` client: a retry must be able to move to another replica
 * and be counted for the bench, and `/tokenize` and `/pooling` are not OpenAI endpoints; the
 * client's retry loop is bound to one base URL and does not report its retries.
 */
import { randomInt } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import PQueue from "p-queue";
import { z } from "zod";
import { InputError, UnavailableError, describeZodError } from "../errors.js";

export interface HttpOptions {
  /** Sent as `Authorization: Bearer`; never printed. */
  apiKey?: string;
  /** Requests in flight per endpoint. Default 64. */
  concurrency?: number;
  /** Per-request timeout in ms. Default 120 000. */
  timeoutMs?: number;
  /** Retries of one request (over all endpoints) before it fails. Default 6. */
  maxRetries?: number;
  /** First backoff in ms; it doubles per retry, up to `maxBackoffMs`, with full jitter. Default 200. */
  backoffMs?: number;
  maxBackoffMs?: number;
}

/** A non-retried HTTP error answer: its status and the server's message. */
export class HttpStatusError extends Error {
  override name = "HttpStatusError";
  constructor(
    readonly url: string,
    readonly status: number,
    readonly serverMessage: string,
  ) {
    super(`${url} answered ${status}: ${serverMessage}`);
  }
}

interface Endpoint {
  /** The URL as given, e.g. http://host:8000/v1 (OpenAI routes hang under it). */
  base: string;
  /** The server root (the base without /v1): vLLM's /tokenize and /pooling hang under it. */
  root: string;
  queue: PQueue;
}

/** The message of an error body in OpenAI's shape (`{error: {message}}`) or vLLM's older one (`{message}`), else the text. */
function serverMessage(text: string): string {
  try {
    const body = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
    const message = typeof body.error === "object" ? body.error.message : (body.error ?? body.message ?? body.detail);
    if (typeof message === "string") return message;
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 300);
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), or null. */
export function retryAfterMs(header: string | null, now = Date.now()): number | null {
  if (header === null) return null;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

const RETRY_AFTER_CAP_MS = 120_000;

class RetryableError extends Error {
  constructor(
    message: string,
    readonly waitMs: number | null = null,
  ) {
    super(message);
  }
}

export class Endpoints {
  /** Requests sent (every attempt), and those sent again after a connection error, timeout, 429 or 5xx. */
  requests = 0;
  retries = 0;
  private readonly endpoints: Endpoint[];
  private readonly options: Required<Omit<HttpOptions, "apiKey">> & { apiKey?: string };

  constructor(urls: readonly string[], options: HttpOptions = {}) {
    if (urls.length === 0) throw new InputError("no endpoint URL given");
    this.options = { concurrency: 64, timeoutMs: 120_000, maxRetries: 6, backoffMs: 200, maxBackoffMs: 10_000, ...options };
    this.endpoints = urls.map((url) => {
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new InputError(`"${url}" is not a URL (expected e.g. http://host:8000/v1)`);
      }
      if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new InputError(`${url}: expected an http:// or https:// URL`);
      const base = url.replace(/\/+$/, "");
      return { base, root: base.replace(/\/v1$/, ""), queue: new PQueue({ concurrency: this.options.concurrency }) };
    });
  }

  get apiKey(): string | undefined {
    return this.options.apiKey;
  }

  get urls(): string[] {
    return this.endpoints.map((endpoint) => endpoint.base);
  }

  /**
   * Sends `body` (GET when undefined) to `path` on the least loaded endpoint and parses the answer
   * with `schema`. `under` picks the base (`/v1/...` routes) or the server root (`/tokenize`,
   * `/pooling`). Retries what is worth retrying; throws HttpStatusError for other error answers,
   * and the signal's reason once it aborts. Returns the answer and how many retries it took.
   */
  async request<T>(under: "base" | "root", path: string, body: unknown, schema: z.ZodType<T>, signal?: AbortSignal): Promise<{ value: T; retries: number }> {
    let last: Endpoint | null = null;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      const endpoint = this.leastLoaded(last);
      last = endpoint;
      try {
        const value = await endpoint.queue.add(() => this.send(endpoint, under, path, body, schema, signal));
        return { value, retries: attempt };
      } catch (error) {
        if (!(error instanceof RetryableError) || signal?.aborted) throw signal?.aborted ? signal.reason : error;
        if (attempt >= this.options.maxRetries) throw new UnavailableError(`${error.message} (gave up after ${attempt + 1} attempts)`, { cause: error });
        this.retries++;
        const backoff = Math.min(this.options.maxBackoffMs, this.options.backoffMs * 2 ** attempt);
        // Full jitter: retries of many requests spread out. The jitter only spreads timing; results never depend on it.
        const wait = error.waitMs ?? randomInt(0, Math.max(1, Math.round(backoff)));
        await sleep(Math.min(wait, RETRY_AFTER_CAP_MS), undefined, signal ? { signal } : {}).catch(() => signal?.throwIfAborted());
      }
    }
  }

  /** The endpoint with the fewest requests queued and in flight; another than `avoid` when there is one. */
  private leastLoaded(avoid: Endpoint | null): Endpoint {
    const candidates = this.endpoints.length > 1 ? this.endpoints.filter((endpoint) => endpoint !== avoid) : this.endpoints;
    return candidates.reduce((best, endpoint) => (endpoint.queue.size + endpoint.queue.pending < best.queue.size + best.queue.pending ? endpoint : best));
  }

  private async send<T>(endpoint: Endpoint, under: "base" | "root", path: string, body: unknown, schema: z.ZodType<T>, signal?: AbortSignal): Promise<T> {
    const url = `${under === "base" ? endpoint.base : endpoint.root}${path}`;
    this.requests++;
    const timeout = AbortSignal.timeout(this.options.timeoutMs);
    const headers: Record<string, string> = { accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method: body === undefined ? "GET" : "POST",
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      text = await response.text();
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      if (timeout.aborted) throw new RetryableError(`${url}: no answer within ${this.options.timeoutMs} ms`);
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new RetryableError(`${url}: ${cause?.code ?? cause?.message ?? (error as Error).message}`);
    }
    if (response.status === 429) throw new RetryableError(`${url} answered 429: ${serverMessage(text)}`, retryAfterMs(response.headers.get("retry-after")));
    if (response.status >= 500) throw new RetryableError(`${url} answered ${response.status}: ${serverMessage(text)}`);
    if (!response.ok) throw new HttpStatusError(url, response.status, serverMessage(text));
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new HttpStatusError(url, response.status, `not JSON: ${text.slice(0, 120)}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new HttpStatusError(url, response.status, `unexpected answer (${describeZodError(parsed.error)})`);
    return parsed.data;
  }

  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((endpoint) => endpoint.queue.onIdle()));
  }
}

/** One model entry of GET /v1/models; vLLM adds `root`, `parent` and `max_model_len`. */
export const modelCardSchema = z.looseObject({
  id: z.string(),
  object: z.string().optional(),
  owned_by: z.string().optional(),
  root: z.string().nullish(),
  parent: z.string().nullish(),
  max_model_len: z.int().nullish(),
});
export type ModelCard = z.output<typeof modelCardSchema>;
const modelListSchema = z.object({ data: z.array(modelCardSchema) });

/**
 * Checks every endpoint before any work: reachable, OpenAI-compatible (GET /v1/models answers a
 * model list), accepting the key, and serving `model` (or exactly one model when none is named).
 * Returns the model's card. `flag` names the flag for messages (--policy or --verifier).
 */
export async function checkModel(endpoints: Endpoints, model: string | undefined, flag: string): Promise<ModelCard> {
  const cards: ModelCard[] = [];
  for (const url of endpoints.urls) {
    const single = new Endpoints([url], { apiKey: endpoints.apiKey, maxRetries: 1, timeoutMs: 30_000 });
    let list: z.output<typeof modelListSchema>;
    try {
      list = (await single.request("base", "/models", undefined, modelListSchema)).value;
    } catch (error) {
      if (error instanceof HttpStatusError) {
        if (error.status === 401 || error.status === 403) {
          throw new InputError(`${flag} ${url}: the server refused the API key (${error.status}: ${error.serverMessage}); give ${flag}-api-key or its environment variable`);
        }
        throw new InputError(`${flag} ${url}: not an OpenAI-compatible server (GET ${url}/models answered ${error.status}: ${error.serverMessage})`);
      }
      throw new InputError(`${flag} ${url}: cannot reach the server (${(error as Error).message})`);
    }
    const ids = list.data.map((card) => card.id);
    if (model === undefined && ids.length !== 1) {
      throw new InputError(`${flag} ${url} serves ${ids.length === 0 ? "no model" : `several models (${ids.join(", ")})`}: name one with ${flag}-model`);
    }
    const name = model ?? (ids[0] as string);
    const card = list.data.find((entry) => entry.id === name);
    if (card === undefined) throw new InputError(`${flag} ${url}: unknown model "${name}" (404); it serves ${ids.join(", ") || "none"}`);
    cards.push(card);
  }
  const first = cards[0] as ModelCard;
  const other = cards.find((card) => describeCard(card) !== describeCard(first));
  if (other !== undefined) throw new InputError(`${flag}: the endpoints serve different models (${describeCard(first)} and ${describeCard(other)}); replicas must serve one model`);
  return first;
}

/** What identifies a served model, from its /v1/models entry (the volatile fields, such as `created`, left out). */
export function describeCard(card: ModelCard): string {
  const parts = [`served:${card.id}`];
  if (card.root) parts.push(`root=${card.root}`);
  if (card.parent) parts.push(`parent=${card.parent}`);
  if (card.max_model_len) parts.push(`max_model_len=${card.max_model_len}`);
  if (card.owned_by) parts.push(`owned_by=${card.owned_by}`);
  return parts.join(" ");
}
