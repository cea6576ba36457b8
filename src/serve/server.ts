/**
 * `deliberate serve`'s HTTP server (fastify): the models deliberate loads, behind the subset of
 * vLLM's OpenAI-compatible API that the HTTP policy and verifier use, so that path runs end to end
 * on any machine. Routes: GET /health, GET /v1/models, POST /v1/completions, POST /tokenize,
 * POST /pooling (the hosted PRM in Qwen2.5-Math-PRM's `token_classify` shape), GET /metrics.
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { z } from "zod";
import { describeZodError } from "../errors.js";
import type { StepVerifier } from "../policy.js";
import type { OnnxPolicy } from "../runtime/onnx-policy.js";
import { OnnxStepVerifier } from "../runtime/onnx-verifier.js";
import { messagesToPrompt } from "../served/messages.js";
import { parseQwenPrmInput, QWEN_PRM_STEP_TAG } from "../served/qwen-prm.js";
import { createCompletion } from "./completions.js";
import { PrefixCache, type PrefixCacheLimits } from "./prefix-cache.js";
import { ApiError, badRequest, completionRequest, errorBody, poolingRequest, tokenizeChatRequest, tokenizeCompletionRequest, unknownModel } from "./protocol.js";

export interface ServeOptions {
  policy: OnnxPolicy;
  /** The step verifier behind /pooling; null serves none. */
  verifier: StepVerifier | null;
  /** Names the models go by in requests and in /v1/models. */
  policyName: string;
  verifierName: string;
  prefixCache: PrefixCacheLimits;
}

export interface RunningServer {
  /** Where it listens, e.g. http://127.0.0.1:8000 (the OpenAI base URL is this + /v1). */
  url: string;
  app: FastifyInstance;
  cache: PrefixCache;
  /** Stops taking requests, waits for those in flight and frees the cache (not the models). */
  close(): Promise<void>;
}

function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw badRequest(describeZodError(parsed.error));
  return parsed.data;
}

export function buildServer(options: ServeOptions): { app: FastifyInstance; cache: PrefixCache } {
  const { policy, verifier, policyName, verifierName } = options;
  const cache = new PrefixCache(options.prefixCache, (length) => policy.stateBytes(length));
  // Large pooling requests (many solutions in one call) exceed fastify's 1 MiB default.
  const app = Fastify({ bodyLimit: 64 * 2 ** 20 });
  const created = Math.floor(Date.now() / 1000);

  /** The model a request names (or the endpoint's default), checked as vLLM checks it. */
  const modelFor = (requested: string | null | undefined, needs: "policy" | "verifier"): string => {
    const served = needs === "policy" ? policyName : verifier ? verifierName : null;
    if (requested === null || requested === undefined) {
      if (served === null) throw badRequest("no reward model is served (deliberate serve was started with --verifier none)");
      return served;
    }
    if (requested === served) return served;
    if (requested === policyName) throw badRequest(`The model \`${requested}\` is a policy (generative) model; this endpoint needs a reward model`);
    if (verifier && requested === verifierName) throw badRequest(`The model \`${requested}\` is a reward model; this endpoint needs a generative model`);
    throw unknownModel(requested);
  };

  app.setErrorHandler((error: Error & { statusCode?: number }, _request, reply) => {
    if (error instanceof ApiError) return reply.code(error.status).send(errorBody(error));
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
    const card = (id: string, maxModelLen: number) => ({ id, object: "model", created, owned_by: "deliberate", root: id, parent: null, max_model_len: maxModelLen, permission: [] });
    const data = [card(policyName, policy.maxSequenceTokens)];
    // A verifier that is not a model (the synthetic task's rule checker) has no length limit of its own.
    if (verifier) data.push(card(verifierName, verifier instanceof OnnxStepVerifier ? verifier.maxSequenceTokens : policy.maxSequenceTokens));
    return { object: "list", data };
  });

  app.post("/v1/completions", async (request) => {
    const body = parseBody(completionRequest, request.body);
    const model = modelFor(body.model, "policy");
    return createCompletion(policy, cache, model, request.body as Record<string, unknown>, body);
  });

  app.post("/tokenize", async (request) => {
    const isChat = typeof request.body === "object" && request.body !== null && "messages" in request.body;
    const tokens = isChat ? await tokenizeChat(parseBody(tokenizeChatRequest, request.body)) : await tokenizeText(parseBody(tokenizeCompletionRequest, request.body));
    return { count: tokens.length, max_model_len: policy.maxSequenceTokens, tokens, token_strs: null };
  });

  const tokenizeText = (body: z.infer<typeof tokenizeCompletionRequest>): Promise<number[]> => {
    modelFor(body.model, "policy");
    if (body.return_token_strs) throw badRequest("return_token_strs is not supported by deliberate serve");
    return policy.tokenize(body.prompt, body.add_special_tokens);
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
    return policy.renderPrompt(prompt);
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
    const answers = await (verifier as StepVerifier).scoreSteps(requests);
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
    const prefix = cache.stats();
    const batches = policy.decodeBatches();
    const lines = [
      ["deliberate_prefix_cache_hits_total", "counter", "completion prompts that resumed from a cached prefix", prefix.hits],
      ["deliberate_prefix_cache_misses_total", "counter", "completion prompts prefilled from scratch", prefix.misses],
      ["deliberate_prefix_cache_reused_tokens_total", "counter", "prompt tokens not prefilled thanks to the cache", prefix.reusedTokens],
      ["deliberate_prefix_cache_entries", "gauge", "cached decoding states", prefix.entries],
      ["deliberate_prefix_cache_bytes", "gauge", "bytes of decoding state held by the cache", prefix.bytes],
      ["deliberate_decode_batches_total", "counter", "batched decode calls to the policy's worker", batches.batches],
      ["deliberate_decode_branch_steps_total", "counter", "branch steps decoded over all batches", batches.branchSteps],
      ["deliberate_decode_largest_batch", "gauge", "most branches decoded in one batch", batches.largestBatch],
    ].flatMap(([name, type, help, value]) => [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${value}`]);
    return reply.type("text/plain; version=0.0.4").send(`${lines.join("\n")}\n`);
  });

  return { app, cache };
}

export async function startServer(options: ServeOptions & { host: string; port: number }): Promise<RunningServer> {
  const { app, cache } = buildServer(options);
  await app.listen({ host: options.host, port: options.port });
  const address = app.server.address();
  if (address === null || typeof address === "string") throw new Error("the server has no TCP address");
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    app,
    cache,
    async close() {
      await app.close();
      cache.clear();
    },
  };
}
