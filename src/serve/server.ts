/**
 * `deliberate serve`'s HTTP server (fastify), with two faces: the models deliberate loads, behind
 * the subset of vLLM's OpenAI-compatible API that the HTTP policy and verifier use (so that path
 * runs end to end on any machine), and the search strategies as OpenAI-compatible chat models
 * (`beam-16`, ...; src/serve/search-api.ts). Routes: GET /health, GET /v1/models,
 * POST /v1/chat/completions, POST /v1/completions, POST /tokenize, POST /pooling (the hosted PRM in
 * Qwen2.5-Math-PRM's `token_classify` shape), GET /metrics (Prometheus).
 */
import { createHash, randomUUID, timingSafeEqual } from "node:crypto";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import { z } from "zod";
import { describeZodError, InputError } from "../errors.js";
import type { Policy, StepVerifier } from "../policy.js";
import { OnnxPolicy } from "../runtime/onnx-policy.js";
import { OnnxStepVerifier } from "../runtime/onnx-verifier.js";
import { ServedStepVerifier } from "../served/verifier.js";
import { messagesToPrompt } from "../served/messages.js";
import { parseQwenPrmInput, QWEN_PRM_STEP_TAG } from "../served/qwen-prm.js";
import type { SolveResult } from "../solve.js";
import { createCompletion } from "./completions.js";
import { ServerMetrics } from "./metrics.js";
import { PrefixCache, type PrefixCacheLimits } from "./prefix-cache.js";
import { ApiError, badRequest, completionRequest, detokenizeRequest, errorBody, poolingRequest, tokenizeChatRequest, tokenizeCompletionRequest, unknownModel } from "./protocol.js";
import {
  answerOf,
  chatRequest,
  parseStrategyModel,
  problemOf,
  resolveJob,
  searchDetails,
  strategyCompletionRequest,
  strategyModelIds,
  usageOf,
  type ChatRequest,
  type SearchJob,
  type SearchSettings,
} from "./search-api.js";
import { SearchRunner, type SearchRun } from "./search-runner.js";

/** The fields of a search request that the answer's form depends on, in both APIs. */
type SearchRequest = Pick<ChatRequest, "model" | "seed" | "temperature" | "top_p" | "stream" | "stream_options">;

/** How a search's answer is written in one of OpenAI's APIs: chat (`message`, `delta`) or completions (`text`). */
interface SearchFace {
  idPrefix: string;
  object: string;
  chunkObject: string;
  choice(text: string, finishReason: string): Record<string, unknown>;
  /** A streamed choice: a piece of the text, or null in the last chunk, which carries the finish reason. */
  chunkChoice(text: string | null, finishReason: string | null): Record<string, unknown>;
  /** The choice of a stream's first chunk, before the search runs. */
  opening?: Record<string, unknown>;
}

const CHAT: SearchFace = {
  idPrefix: "chatcmpl",
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  choice: (text, finishReason) => ({ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: finishReason }),
  chunkChoice: (text, finishReason) => ({ index: 0, delta: text === null ? {} : { content: text }, logprobs: null, finish_reason: finishReason }),
  opening: { index: 0, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null },
};

const COMPLETION: SearchFace = {
  idPrefix: "cmpl",
  object: "text_completion",
  chunkObject: "text_completion",
  choice: (text, finishReason) => ({ index: 0, text, logprobs: null, finish_reason: finishReason }),
  chunkChoice: (text, finishReason) => ({ index: 0, text: text ?? "", logprobs: null, finish_reason: finishReason }),
};

/** The service's limits; every one has a `deliberate serve` flag (README, "deliberate serve"). */
export const serviceOptionsSchema = z.object({
  /** Required on every request (`Authorization: Bearer <key>`) when set. */
  apiKey: z.string().min(1).optional(),
  /** Largest body of a chat or completion request, in bytes (413 beyond). /pooling and /tokenize keep 64 MiB. */
  maxBodyBytes: z.int().positive().default(2 ** 20),
  /** Largest search budget a request may ask for (400 beyond). */
  maxBudget: z.int().positive().default(64),
  /** Searches running at once. */
  maxConcurrent: z.int().positive().default(8),
  /** Searches waiting for a slot; a request beyond gets a 429 with Retry-After. */
  maxQueue: z.int().nonnegative().default(64),
  /** A search (queue wait included) still running after this is stopped and answered with a 504. */
  requestTimeoutMs: z.int().positive().default(120_000),
  /** On close, how long searches in flight may finish before they are stopped (503). */
  graceMs: z.int().nonnegative().default(30_000),
});
export type ServiceOptions = z.input<typeof serviceOptionsSchema>;

export interface ServeOptions {
  /**
   * The policy the strategies search with. A local one (OnnxPolicy) is also hosted behind vLLM's
   * API; a served one (ServedPolicy, a model at another server's URL) is only searched with.
   */
  policy: Policy;
  /** The step verifier the strategies score with, hosted behind /pooling unless it is itself served; null: none. */
  verifier: StepVerifier | null;
  /** Names the models go by in requests and in /v1/models. */
  policyName: string;
  verifierName: string;
  prefixCache: PrefixCacheLimits;
  /** The search service's limits and API key; defaults as in `serviceOptionsSchema`. */
  service?: ServiceOptions;
  /** Parameters the server fills in for a strategy when a request does not give them (compute-optimal's `table`). */
  strategyDefaults?: Record<string, Record<string, unknown>>;
}

export interface BuiltServer {
  app: FastifyInstance;
  cache: PrefixCache;
  runner: SearchRunner;
  metrics: ServerMetrics;
}

export interface RunningServer extends BuiltServer {
  /** Where it listens, e.g. http://127.0.0.1:8000 (the OpenAI base URL is this + /v1). */
  url: string;
  /**
   * Stops taking requests, lets those in flight finish for the grace period, then stops the
   * searches still running (their clients get a 503), and frees the cache (not the models).
   */
  close(): Promise<void>;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequest(describeZodError(parsed.error));
  return parsed.data;
}

function parseServiceOptions(options: ServiceOptions | undefined): z.output<typeof serviceOptionsSchema> {
  const parsed = serviceOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) throw new InputError(`invalid service options: ${describeZodError(parsed.error)}`);
  return parsed.data;
}

/** Whether a request carries the key, as `Authorization: Bearer <key>` (the openai client's way); compared in constant time. */
function hasKey(authorization: string | undefined, key: string): boolean {
  const given = /^Bearer\s+(.+)$/i.exec(authorization ?? "")?.[1];
  if (given === undefined) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(given), digest(key));
}

/** An AbortSignal that fires when the client goes away before its answer was sent. */
function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once("close", () => {
    if (!reply.raw.writableFinished) controller.abort(new Error("the client disconnected"));
  });
  return controller.signal;
}

export function buildServer(options: ServeOptions): BuiltServer {
  const { policy, verifier, policyName, verifierName } = options;
  // The models behind the raw face: the local ones (a model served elsewhere is not served again).
  const hosted = policy instanceof OnnxPolicy ? policy : null;
  const hostedVerifier = verifier instanceof ServedStepVerifier ? null : verifier;
  const service = parseServiceOptions(options.service);
  const cache = new PrefixCache(hosted ? options.prefixCache : { maxEntries: 0, maxBytes: 0 }, (length) => hosted?.stateBytes(length) ?? 0);
  // Large pooling requests (many solutions in one call) exceed fastify's 1 MiB default; the search routes have their own limit.
  const app = Fastify({ bodyLimit: 64 * 2 ** 20 });
  const created = Math.floor(Date.now() / 1000);
  const runner: SearchRunner = new SearchRunner(
    policy,
    verifier,
    { concurrency: service.maxConcurrent, maxQueue: service.maxQueue, timeoutMs: service.requestTimeoutMs },
    (compute) => metrics.countSearchTokens(compute),
  );
  const metrics = new ServerMetrics({ policy: hosted, cache, searches: () => runner.counts() });
  const settings: SearchSettings = { maxBudget: service.maxBudget, hasVerifier: verifier !== null, strategyDefaults: options.strategyDefaults ?? {} };
  const searchRoute = { bodyLimit: service.maxBodyBytes };

  // While closing, a keep-alive connection that a request in flight leaves idle is closed at once:
  // server.close() only closes the connections idle when it is called, and would wait for the rest.
  let closing = false;
  app.addHook("preClose", async () => {
    closing = true;
  });
  // Counted when the response closes, so that streams and clients that went away (499, as nginx logs them) are counted too.
  app.addHook("onRequest", async (request, reply) => {
    const started = performance.now();
    reply.raw.once("close", () => {
      const status = reply.raw.writableFinished ? reply.raw.statusCode : 499;
      metrics.observeRequest(request.routeOptions.url ?? "unmatched", status, (performance.now() - started) / 1000);
      if (closing) setImmediate(() => app.server.closeIdleConnections());
    });
  });
  if (service.apiKey !== undefined) {
    const key = service.apiKey;
    app.addHook("onRequest", async (request) => {
      if (!hasKey(request.headers.authorization, key)) {
        throw new ApiError(401, "AuthenticationError", "missing or wrong API key: send it as 'Authorization: Bearer <key>'");
      }
    });
  }

  /** The hosted model a request names (or the endpoint's default), checked as vLLM checks it. */
  const modelFor = (requested: string | null | undefined, needs: "policy" | "verifier"): string => {
    const served = needs === "policy" ? (hosted ? policyName : null) : hostedVerifier ? verifierName : null;
    if (requested === null || requested === undefined) {
      if (served === null) {
        throw badRequest(needs === "policy" ? "no policy is hosted here (its policy is a served model)" : "no reward model is hosted here (--verifier none, or a served one)");
      }
      return served;
    }
    if (requested === served) return served;
    if (hosted && requested === policyName) throw badRequest(`The model \`${requested}\` is a policy (generative) model; this endpoint needs a reward model`);
    if (hostedVerifier && requested === verifierName) throw badRequest(`The model \`${requested}\` is a reward model; this endpoint needs a generative model`);
    throw unknownModel(requested);
  };
  /** The hosted policy, once `modelFor(..., "policy")` has accepted a request (it refuses every name when none is hosted). */
  const hostedPolicy = () => hosted as OnnxPolicy;

  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    if (error instanceof ApiError) return reply.code(error.status).headers(error.headers).send(errorBody(error));
    // fastify's own 4xx (malformed JSON, body too large, wrong content type).
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send(errorBody(new ApiError(error.statusCode, "BadRequestError", error.message)));
    }
    process.stderr.write(`deliberate serve: ${error.stack ?? error.message}\n`);
    return reply.code(500).send(errorBody(new ApiError(500, "InternalServerError", error.message)));
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send(errorBody(new ApiError(404, "NotFoundError", `${request.method} ${request.url} is not served by deliberate serve`)));
  });

  app.get("/health", async (_request, reply) => reply.code(200).send());

  app.get("/v1/models", async () => {
    const card = (id: string, maxModelLen: number | null) => ({ id, object: "model", created, owned_by: "deliberate", root: id, parent: null, max_model_len: maxModelLen, permission: [] });
    const maxModelLen = hosted?.maxSequenceTokens ?? null;
    const data = hosted ? [card(policyName, maxModelLen)] : [];
    // A verifier that is not a model (the synthetic task's rule checker) has no length limit of its own.
    if (hostedVerifier) data.push(card(verifierName, hostedVerifier instanceof OnnxStepVerifier ? hostedVerifier.maxSequenceTokens : maxModelLen));
    for (const id of strategyModelIds(settings)) data.push(card(id, maxModelLen));
    return { object: "list", data };
  });

  /** Runs a search request's job until it ends, its time is up or its client goes away. */
  const search = (job: SearchJob, problem: string, body: SearchRequest, signal: AbortSignal, listeners: Pick<SearchRun, "onProgress" | "onQueued"> = {}) =>
    runner.run({
      problem,
      job,
      seed: body.seed ?? 0,
      sampling: { ...(body.temperature != null ? { temperature: body.temperature } : {}), ...(body.top_p != null ? { topP: body.top_p } : {}) },
      signal,
      ...listeners,
    });

  app.post("/v1/chat/completions", searchRoute, async (request, reply) => {
    const body = parseBody(chatRequest, request.body);
    if ((hosted && body.model === policyName) || (hostedVerifier && body.model === verifierName)) {
      throw badRequest(`The model \`${body.model}\` is hosted for raw completions (/v1/completions, /pooling); chat is served by the strategy models (GET /v1/models)`);
    }
    const job = resolveJob(body.model, body.deliberate, settings);
    return answerSearch(CHAT, reply, body, job, problemOf(body.messages), body.max_completion_tokens ?? body.max_tokens);
  });

  app.post("/v1/completions", searchRoute, async (request, reply) => {
    const named = (request.body as { model?: unknown } | null)?.model;
    if (typeof named === "string" && !(hosted && named === policyName) && parseStrategyModel(named) !== null) {
      // A strategy model: the prompt is the problem, the text the chosen solution.
      const body = parseBody(strategyCompletionRequest, request.body);
      const job = resolveJob(body.model, body.deliberate, settings);
      return answerSearch(COMPLETION, reply, body, job, body.prompt, body.max_tokens);
    }
    const body = parseBody(completionRequest, request.body);
    const model = modelFor(body.model, "policy");
    return createCompletion(hostedPolicy(), cache, model, request.body as Record<string, unknown>, body);
  });

  /** Runs a search request, once admitted to the queue, and answers it whole or streamed. */
  const answerSearch = async (face: SearchFace, reply: FastifyReply, body: SearchRequest, job: SearchJob, problem: string, maxTokens: number | null | undefined) => {
    runner.admit();
    if (body.stream) return streamSearch(face, reply, body, job, problem, maxTokens);
    const result = await search(job, problem, body, clientGone(reply));
    const { steps, finishReason } = answerOf(result, maxTokens);
    return {
      id: `${face.idPrefix}-${randomUUID()}`,
      object: face.object,
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [face.choice(steps.join(policy.stepDelimiter), finishReason)],
      usage: usageOf(result.compute),
      deliberate: searchDetails(job, result),
    };
  };

  /**
   * A streamed search: its place in the queue while it waits, progress while it runs (chunks with
   * empty `choices`, as OpenAI's own usage chunk, so standard clients skip them; the news in the
   * extra `deliberate` field), then the chosen solution one step per chunk, then `[DONE]`. An error
   * after the 200 is sent as an `error` event, which the openai client raises.
   */
  const streamSearch = async (face: SearchFace, reply: FastifyReply, body: SearchRequest, job: SearchJob, problem: string, maxTokens: number | null | undefined) => {
    const gone = clientGone(reply);
    const id = `${face.idPrefix}-${randomUUID()}`;
    const chunkCreated = Math.floor(Date.now() / 1000);
    const send = (fields: Record<string, unknown>) => {
      if (!gone.aborted) reply.raw.write(`data: ${JSON.stringify({ id, object: face.chunkObject, created: chunkCreated, model: body.model, ...fields })}\n\n`);
    };
    const news = (deliberate: Record<string, unknown>) => send({ choices: [], deliberate });
    reply.hijack();
    reply.raw.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" });
    if (face.opening) send({ choices: [face.opening] });
    let result: SolveResult;
    try {
      result = await search(job, problem, body, gone, {
        onQueued: (position) => news({ queued: { position } }),
        onProgress: (progress) => news({ progress }),
      });
    } catch (error) {
      const apiError = error instanceof ApiError ? error : new ApiError(500, "InternalServerError", (error as Error).message);
      if (!(error instanceof ApiError)) process.stderr.write(`deliberate serve: ${(error as Error).stack ?? error}\n`);
      if (!gone.aborted) reply.raw.end(`data: ${JSON.stringify(errorBody(apiError))}\n\n`);
      return;
    }
    const { steps, finishReason } = answerOf(result, maxTokens);
    for (const [index, step] of steps.entries()) send({ choices: [face.chunkChoice(index < steps.length - 1 ? step + policy.stepDelimiter : step, null)] });
    send({ choices: [face.chunkChoice(null, finishReason)], deliberate: searchDetails(job, result) });
    if (body.stream_options?.include_usage) send({ choices: [], usage: usageOf(result.compute) });
    if (!gone.aborted) reply.raw.end("data: [DONE]\n\n");
  };

  app.post("/tokenize", async (request) => {
    const isChat = typeof request.body === "object" && request.body !== null && "messages" in request.body;
    const tokens = isChat ? await tokenizeChat(parseBody(tokenizeChatRequest, request.body)) : await tokenizeText(parseBody(tokenizeCompletionRequest, request.body));
    return { count: tokens.length, max_model_len: hostedPolicy().maxSequenceTokens, tokens, token_strs: null };
  });

  /** vLLM's /detokenize: the text of token ids, special tokens written out. */
  app.post("/detokenize", async (request) => {
    const body = parseBody(detokenizeRequest, request.body);
    modelFor(body.model, "policy");
    const largest = Math.max(-1, ...body.tokens);
    if (largest > hostedPolicy().maxTokenId) throw badRequest(`Token id ${largest} is out of vocabulary`);
    return { prompt: await hostedPolicy().detokenize(body.tokens) };
  });

  const tokenizeText = (body: z.infer<typeof tokenizeCompletionRequest>): Promise<number[]> => {
    modelFor(body.model, "policy");
    if (body.return_token_strs) throw badRequest("return_token_strs is not supported by deliberate serve");
    return hostedPolicy().tokenize(body.prompt, body.add_special_tokens);
  };

  /** Messages in the shared convention (src/served/messages.ts), rendered in the model's own prompt format. */
  const tokenizeChat = (body: z.infer<typeof tokenizeChatRequest>): Promise<number[]> => {
    modelFor(body.model, "policy");
    if (body.return_token_strs) throw badRequest("return_token_strs is not supported by deliberate serve");
    if (!body.add_generation_prompt) {
      throw badRequest("add_generation_prompt: false is not supported: the hosted model's prompt format always ends where the solution starts");
    }
    let prompt;
    try {
      prompt = messagesToPrompt(body.messages);
    } catch (error) {
      throw badRequest((error as Error).message);
    }
    return hostedPolicy().renderPrompt(prompt);
  };

  app.post("/pooling", async (request) => {
    const body = parseBody(poolingRequest, request.body);
    const model = modelFor(body.model, "verifier");
    if (body.task !== null && body.task !== undefined && body.task !== "token_classify") {
      throw badRequest(`task: deliberate serve pools only with "token_classify" (a PRM's per-step scores), got "${body.task}"`);
    }
    const inputs = typeof body.input === "string" ? [body.input] : body.input;
    const requests = inputs.map((input, i) => {
      const parsed = parseQwenPrmInput(input);
      if (parsed === null) {
        throw badRequest(
          `input${typeof body.input === "string" ? "" : `[${i}]`}: not in the Qwen2.5-Math-PRM form (a system, user and assistant turn in the ` +
            `Qwen2.5 chat format, each step of the assistant's answer followed by ${QWEN_PRM_STEP_TAG})`,
        );
      }
      return parsed;
    });
    const answers = await (hostedVerifier as StepVerifier).scoreSteps(requests);
    const tokens = answers.reduce((sum, answer) => sum + answer.tokens, 0);
    return {
      id: `pool-${Date.now().toString(16)}`,
      object: "list",
      created: Math.floor(Date.now() / 1000),
      model,
      // One [p_negative, p_positive] row per step tag, as vLLM's step pooler returns for Qwen2.5-Math-PRM.
      data: answers.map(({ scores }, index) => ({ index, object: "pooling", data: scores.map((p) => [1 - p, p]) })),
      usage: { prompt_tokens: tokens, total_tokens: tokens, completion_tokens: 0, prompt_tokens_details: null },
    };
  });

  app.get("/metrics", async (_request, reply) => {
    const { contentType, body } = await metrics.text();
    return reply.type(contentType).send(body);
  });

  return { app, cache, runner, metrics };
}

/**
 * Builds the server and listens. `startServer` is the same function under the name the first
 * version of `deliberate serve` exported.
 */
export async function createServer(options: ServeOptions & { host: string; port: number }): Promise<RunningServer> {
  const built = buildServer(options);
  const { app, cache, runner } = built;
  const { graceMs } = parseServiceOptions(options.service);
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("the server has no TCP address");
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    ...built,
    url: `http://${host}:${address.port}`,
    async close() {
      // At the end of the grace period: stop the searches still running, give their 503s a moment
      // to go out, then close every connection left (one a client keeps half-used would hold close() forever).
      let drain: NodeJS.Timeout | undefined;
      const grace = setTimeout(() => {
        runner.stopAll();
        drain = setTimeout(() => app.server.closeAllConnections(), 1000);
      }, graceMs);
      try {
        await app.close();
      } finally {
        clearTimeout(grace);
        clearTimeout(drain);
      }
      cache.clear();
    },
  };
}

export const startServer = createServer;
