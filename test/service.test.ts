/**
 * The strategies as OpenAI-compatible chat models on `deliberate serve`, driven with the official
 * openai client on a live loopback server: plain and streamed searches, parameters through the
 * `deliberate` field, every error status, the queue, client aborts, the time limit, the metrics and
 * a graceful SIGTERM.
 */
import { spawnServe } from "./support/serve-process.js";
import OpenAI from "openai";
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionCreateParamsNonStreaming, ChatCompletionCreateParamsStreaming } from "openai/resources/chat/completions";
import type { Completion, CompletionCreateParamsNonStreaming, CompletionCreateParamsStreaming } from "openai/resources/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultAllocationTable, loadAllocationTable } from "../src/allocation/table.js";
import { loadPolicy, loadVerifier } from "../src/runtime/load.js";
import type { OnnxPolicy } from "../src/runtime/onnx-policy.js";
import type { OnnxStepVerifier } from "../src/runtime/onnx-verifier.js";
import { createServer, type RunningServer, type ServiceOptions } from "../src/serve/server.js";
import { connectPolicy } from "../src/served/policy.js";
import { connectVerifier } from "../src/served/verifier.js";
import { solve } from "../src/solve.js";
import type { ComputeReport } from "../src/meter.js";

const KEY = "test-key-5f1c";
const PROBLEM = "Compute (17 + 5) * 3 - 8.";
/** A search that runs for many seconds: near-random text at temperature 2 runs every branch to the step limit. */
const SLOW = { temperature: 2, deliberate: { budget: 16, limits: { maxSteps: 32, maxStepTokens: 256 } } };

interface Details {
  strategy: string;
  budget: number;
  answer: string | null;
  params?: Record<string, unknown>;
  candidates?: { text: string; answer: string | null; score: number | null; stepScores: number[]; finished: boolean; tokens: number }[];
  compute?: ComputeReport;
  difficulty?: { score: number; bin: number; configuration: string | null };
}
type Searched = ChatCompletion & { deliberate: Details };
type Progress = { rounds: number; liveBranches: number; compute: ComputeReport };
type SearchChunk = ChatCompletionChunk & { deliberate?: { progress?: Progress; queued?: { position: number } } & Partial<Details> };
type SearchTextChunk = Completion & { deliberate?: { progress?: Progress } & Partial<Details> };

let policy: OnnxPolicy;
let verifier: OnnxStepVerifier;
let table: unknown;
const servers: RunningServer[] = [];
let server: RunningServer;
let client: OpenAI;

async function start(service: ServiceOptions): Promise<RunningServer> {
  const started = await createServer({
    policy,
    verifier,
    policyName: "deliberate-policy",
    verifierName: "deliberate-prm",
    host: "127.0.0.1",
    port: 0,
    // No prefix cache: the hosted policy's raw completions would keep branches in it, and these tests count branches.
    prefixCache: { maxEntries: 0, maxBytes: 0 },
    service,
    strategyDefaults: { "compute-optimal": { table } },
  });
  servers.push(started);
  return started;
}

beforeAll(async () => {
  policy = await loadPolicy("policy", { threads: 1 });
  verifier = await loadVerifier("prm", { threads: 1 });
  table = loadAllocationTable(defaultAllocationTable());
  // A short grace period: closing waits for it when a client leaves a connection half-used.
  server = await start({ apiKey: KEY, maxBudget: 16, maxBodyBytes: 64 * 2 ** 10, maxConcurrent: 1, maxQueue: 1, requestTimeoutMs: 60_000, graceMs: 1000 });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
});

afterAll(async () => {
  for (const running of servers) await running.close();
  await policy?.close();
  await verifier?.close();
});

function chat(model: string, extra: Record<string, unknown> = {}, options?: { signal?: AbortSignal }): Promise<Searched> {
  const body = { model, messages: [{ role: "user", content: PROBLEM }], seed: 3, ...extra } as unknown as ChatCompletionCreateParamsNonStreaming;
  return client.chat.completions.create(body, options) as unknown as Promise<Searched>;
}

async function chatStream(model: string, extra: Record<string, unknown> = {}) {
  const body = { model, messages: [{ role: "user", content: PROBLEM }], seed: 3, stream: true, ...extra } as unknown as ChatCompletionCreateParamsStreaming;
  return client.chat.completions.create(body);
}

/** A raw request, for what the openai client cannot send (no key, a broken body). */
function post(path: string, body: string, headers: Record<string, string> = { authorization: `Bearer ${KEY}` }): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
}

async function errorOf(promise: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(OpenAI.APIError);
  return error as InstanceType<typeof OpenAI.APIError>;
}

async function until(condition: () => Promise<boolean> | boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const held = async () => {
  const stats = await policy.stats();
  return stats.liveBranches === 0 && stats.heldStateBytes === 0;
};

describe("strategies as chat models", () => {
  it("lists the hosted models and the strategy models whose default parameters hold, up to the largest budget", async () => {
    const ids = (await client.models.list()).data.map((model) => model.id);
    expect(ids.slice(0, 2)).toEqual(["deliberate-policy", "deliberate-prm"]);
    for (const id of ["best-of-n-1", "best-of-n-16", "beam-4", "beam-16", "majority-8", "compute-optimal-16", "dvts-8", "lookahead-8", "revision-4"]) expect(ids).toContain(id);
    // beam's default width is 4, so budgets 1 and 2 cannot run; 32 is over --max-budget.
    for (const id of ["beam-1", "beam-2", "best-of-n-32"]) expect(ids).not.toContain(id);
  });

  it("answers with the solution the same search finds in process, and usage counts every token it spent", async () => {
    const response = await chat("beam-4", { deliberate: { details: true } });
    const local = await solve(PROBLEM, { strategy: "beam", budget: 4, policy, verifier, seed: 3 });
    expect(response.object).toBe("chat.completion");
    expect(response.model).toBe("beam-4");
    expect(response.choices[0]?.message.content).toBe(local.chosen?.text);
    expect(response.choices[0]?.finish_reason).toBe(local.chosen?.finished ? "stop" : "length");
    const details = response.deliberate;
    expect(details.answer).toBe(local.answer);
    expect(details.candidates?.map((candidate) => candidate.text)).toEqual(local.candidates.map((candidate) => candidate.text));
    const compute = details.compute as ComputeReport;
    expect({ ...compute, wallMs: 0 }).toEqual({ ...local.compute, wallMs: 0 });
    expect(response.usage).toEqual({
      prompt_tokens: compute.prefilledTokens + compute.verifierTokens,
      completion_tokens: compute.generatedTokens,
      total_tokens: compute.prefilledTokens + compute.verifierTokens + compute.generatedTokens,
    });
    expect(compute.verifierTokens).toBeGreaterThan(0);
    expect(response.usage?.completion_tokens).toBeGreaterThan(local.chosen?.tokens ?? 0);
  });

  it("runs best-of-n, majority voting and compute-optimal by name, with the details only when asked", async () => {
    const bestOfN = await chat("best-of-n-4", { deliberate: { details: true } });
    expect(bestOfN.deliberate.candidates).toHaveLength(4);
    expect(bestOfN.deliberate.params).toMatchObject({ budget: 4, select: "weighted", aggregate: "last" });
    const majority = await chat("majority-4", { deliberate: { details: true } });
    expect(majority.deliberate.params).toMatchObject({ select: "majority" });
    expect(majority.deliberate.compute?.verifierTokens).toBe(0);
    const optimal = await chat("compute-optimal-8", { deliberate: { details: true } });
    expect(optimal.deliberate.difficulty?.bin).toBeGreaterThanOrEqual(0);
    expect(optimal.deliberate.compute?.generations).toBeLessThanOrEqual(8);
    const plain = await chat("majority-2");
    expect(plain.deliberate).toEqual({ strategy: "best-of-n", budget: 2, answer: expect.anything() });
    for (const response of [bestOfN, majority, optimal, plain]) expect(response.choices[0]?.message.content).toContain("\\boxed");
  });

  it("takes the strategy, budget and any parameter from the deliberate field", async () => {
    const narrow = await chat("beam-4", { deliberate: { params: { beamWidth: 2, select: "naive" }, details: true } });
    expect(narrow.deliberate.params).toMatchObject({ budget: 4, beamWidth: 2, select: "naive" });
    const local = await solve(PROBLEM, { strategy: "beam", budget: 4, policy, verifier, seed: 3, params: { beamWidth: 2, select: "naive" } });
    expect(narrow.choices[0]?.message.content).toBe(local.chosen?.text);
    const other = await chat("beam-4", { deliberate: { strategy: "best-of-n", budget: 2, details: true } });
    expect(other.deliberate.strategy).toBe("best-of-n");
    expect(other.deliberate.candidates).toHaveLength(2);
  });

  it("serves a strategy model on /v1/completions beside the hosted policy's raw completions", async () => {
    const body = { model: "majority-2", prompt: PROBLEM, seed: 3 } as unknown as CompletionCreateParamsNonStreaming;
    const searched = (await client.completions.create(body)) as OpenAI.Completion & { deliberate: Details };
    expect(searched.object).toBe("text_completion");
    expect(searched.choices[0]?.text).toContain("\\boxed");
    expect(searched.usage?.completion_tokens).toBeGreaterThan(0);
    const raw = await client.completions.create({ model: "deliberate-policy", prompt: PROBLEM, max_tokens: 4, seed: 1 });
    expect(raw.usage?.completion_tokens).toBe(4);
  });

  it("streams progress while the search runs, then the same solution as the plain answer, usage and [DONE]", async () => {
    const plain = await chat("beam-4");
    const stream = await chatStream("beam-4", { stream_options: { include_usage: true } });
    const chunks: SearchChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk as SearchChunk);
    const progress = chunks.filter((chunk) => chunk.deliberate?.progress !== undefined);
    const firstContent = chunks.findIndex((chunk) => (chunk.choices[0]?.delta.content ?? "") !== "");
    expect(progress.length).toBeGreaterThan(2);
    expect(chunks.indexOf(progress.at(-1) as SearchChunk)).toBeLessThan(firstContent);
    for (const chunk of progress) expect(chunk.choices).toEqual([]);
    expect(progress.some((chunk) => (chunk.deliberate?.progress?.liveBranches ?? 0) >= 4)).toBe(true);
    const tokens = progress.map((chunk) => chunk.deliberate?.progress?.compute.generatedTokens ?? 0);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(chunks[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toBe(plain.choices[0]?.message.content);
    expect(chunks.find((chunk) => chunk.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe(plain.choices[0]?.finish_reason);
    expect(chunks.at(-1)?.usage).toEqual(plain.usage);
  });
});

describe("max_tokens, n and streamed completions", () => {
  it("streams a strategy model on /v1/completions: progress, then the plain answer's text, usage and [DONE]", async () => {
    const request = { model: "beam-4", prompt: PROBLEM, seed: 3 };
    const plain = (await client.completions.create(request as unknown as CompletionCreateParamsNonStreaming)) as Completion;
    const stream = await client.completions.create({ ...request, stream: true, stream_options: { include_usage: true } } as unknown as CompletionCreateParamsStreaming);
    const chunks: SearchTextChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk as SearchTextChunk);
    const progress = chunks.filter((chunk) => chunk.deliberate?.progress !== undefined);
    const firstText = chunks.findIndex((chunk) => (chunk.choices[0]?.text ?? "") !== "");
    expect(progress.length).toBeGreaterThan(2);
    expect(chunks.indexOf(progress.at(-1) as SearchTextChunk)).toBeLessThan(firstText);
    for (const chunk of chunks) expect(chunk.object).toBe("text_completion");
    expect(chunks.map((chunk) => chunk.choices[0]?.text ?? "").join("")).toBe(plain.choices[0]?.text);
    expect(chunks.find((chunk) => chunk.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe(plain.choices[0]?.finish_reason);
    expect(chunks.at(-1)?.usage).toEqual(plain.usage);
  });

  it("cuts an answer longer than max_tokens to the whole steps that fit, with finish_reason length, plain and streamed", async () => {
    const whole = await chat("best-of-n-4", { deliberate: { details: true } });
    const text = whole.choices[0]?.message.content as string;
    const chosen = whole.deliberate.candidates?.find((candidate) => candidate.text === text);
    expect(chosen?.finished).toBe(true);
    const tokens = chosen?.tokens as number;
    const roomy = await chat("best-of-n-4", { max_tokens: tokens });
    expect(roomy.choices[0]?.message.content).toBe(text);
    expect(roomy.choices[0]?.finish_reason).toBe("stop");

    const cut = await chat("best-of-n-4", { max_tokens: tokens - 1 });
    const cutText = cut.choices[0]?.message.content as string;
    expect(cut.choices[0]?.finish_reason).toBe("length");
    expect(text.startsWith(cutText)).toBe(true);
    expect(cutText.length).toBeLessThan(text.length);
    // Whole steps: the cut ends where a step of the full answer ends.
    expect(text.slice(cutText.length).startsWith(policy.stepDelimiter)).toBe(true);
    // The search is the same, so usage still counts all of it.
    expect(cut.usage).toEqual(whole.usage);

    const stream = await chatStream("best-of-n-4", { max_completion_tokens: tokens - 1 });
    const chunks: SearchChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk as SearchChunk);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toBe(cutText);
    expect(chunks.find((chunk) => chunk.choices[0]?.finish_reason)?.choices[0]?.finish_reason).toBe("length");

    const invalid = await errorOf(chat("best-of-n-4", { max_tokens: 0 }));
    expect(invalid.status).toBe(400);
    expect(invalid.message).toMatch(/max_tokens:/);
  });

  it("refuses n > 1 with a 400 naming n, on chat and on completions", async () => {
    const onChat = await errorOf(chat("majority-2", { n: 2 }));
    expect(onChat.status).toBe(400);
    expect(onChat.message).toMatch(/^400 n: a strategy model answers with one choice/);
    const onCompletions = await errorOf(client.completions.create({ model: "majority-2", prompt: PROBLEM, n: 3 }));
    expect(onCompletions.status).toBe(400);
    expect(onCompletions.message).toMatch(/^400 n: /);
  });
});

describe("searching with served models", () => {
  it("runs the strategies with a policy and PRM served by another server, and does not host them again", async () => {
    const servedPolicy = await connectPolicy(`${server.url}/v1`, { model: "deliberate-policy", apiKey: KEY });
    const servedVerifier = await connectVerifier(`${server.url}/v1`, { model: "deliberate-prm", apiKey: KEY });
    try {
      const front = await createServer({
        policy: servedPolicy,
        verifier: servedVerifier,
        policyName: "deliberate-policy",
        verifierName: "deliberate-prm",
        host: "127.0.0.1",
        port: 0,
        prefixCache: { maxEntries: 256, maxBytes: 64 * 2 ** 20 },
        strategyDefaults: { "compute-optimal": { table } },
      });
      servers.push(front);
      const frontClient = new OpenAI({ baseURL: `${front.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 60_000 });
      const ids = (await frontClient.models.list()).data.map((model) => model.id);
      expect(ids).toContain("beam-4");
      expect(ids).not.toContain("deliberate-policy");
      expect(ids).not.toContain("deliberate-prm");
      const reply = (await frontClient.chat.completions.create({
        model: "beam-4",
        messages: [{ role: "user", content: PROBLEM }],
        seed: 3,
        deliberate: { details: true },
      } as unknown as ChatCompletionCreateParamsNonStreaming)) as unknown as Searched;
      expect(reply.choices[0]?.message.content).toContain("\\boxed");
      expect(reply.deliberate.candidates).toHaveLength(4);
      expect(reply.usage?.completion_tokens).toBeGreaterThan(0);
      expect(reply.deliberate.compute?.verifierTokens).toBeGreaterThan(0);
      const raw = await errorOf(frontClient.completions.create({ model: "deliberate-policy", prompt: PROBLEM }));
      expect(raw.status).toBe(404);
    } finally {
      await servedPolicy.close();
      await servedVerifier.close();
    }
  });
});

describe("errors", () => {
  it("refuses a bad parameter with a 400 that names it", async () => {
    let error = await errorOf(chat("beam-4", { deliberate: { params: { beamWidth: 3 } } }));
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/beamWidth 3/);
    error = await errorOf(chat("beam-4", { deliberate: { params: { aggregate: "median" } } }));
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/deliberate\.params: invalid beam parameters: aggregate:/);
    error = await errorOf(chat("beam-4", { deliberate: { beamWidth: 2 } }));
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/beamWidth/);
    error = await errorOf(chat("beam-4", { deliberate: { params: { budget: 8 } } }));
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/deliberate\.params\.budget/);
    error = await errorOf(chat("beam-4", { deliberate: { strategy: "mtcs" } }));
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/deliberate\.strategy: unknown strategy "mtcs"/);
  });

  it("answers 404 for a model it does not serve", async () => {
    for (const model of ["gpt-4o", "beam", "beams-4", "beam-0"]) {
      const error = await errorOf(chat(model));
      expect(error.status).toBe(404);
      expect(error.message).toContain(`The model \`${model}\` does not exist.`);
    }
    const hosted = await errorOf(chat("deliberate-policy"));
    expect(hosted.status).toBe(400);
    expect(hosted.message).toMatch(/hosted for raw completions/);
  });

  it("answers 401 without the key or with a wrong one, and never says what the key is", async () => {
    const wrong = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "not-the-key", maxRetries: 0 });
    const error = await errorOf(wrong.models.list());
    expect(error.status).toBe(401);
    for (const path of ["/v1/chat/completions", "/v1/completions"]) {
      const response = await post(path, JSON.stringify({ model: "beam-4", messages: [] }), {});
      expect(response.status).toBe(401);
      expect(await response.text()).not.toContain(KEY);
    }
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
  });

  it("answers 413 for a body over the limit and 400 for malformed JSON", async () => {
    const big = JSON.stringify({ model: "beam-4", messages: [{ role: "user", content: "x".repeat(65 * 2 ** 10) }] });
    expect((await post("/v1/chat/completions", big)).status).toBe(413);
    const malformed = await post("/v1/chat/completions", '{"model": "beam-4", "messages": [');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { message: string } }).error.message).toMatch(/JSON/);
    const noMessages = await errorOf(client.chat.completions.create({ model: "beam-4", messages: [] }));
    expect(noMessages.status).toBe(400);
    expect(noMessages.message).toMatch(/messages/);
  });

  it("refuses a budget over the largest per request (400), by the model's name or the deliberate field", async () => {
    for (const [model, extra] of [["beam-32", {}], ["beam-4", { deliberate: { budget: 1024 } }]] as const) {
      const error = await errorOf(chat(model, extra));
      expect(error.status).toBe(400);
      expect(error.message).toMatch(/over this server's largest budget per request, 16 \(--max-budget\)/);
    }
  });
});

describe("as a service", () => {
  it("queues searches beyond the slots and refuses those beyond the queue with 429 and Retry-After", async () => {
    const controller = new AbortController();
    const running = chat("best-of-n-16", SLOW, { signal: controller.signal }).catch((error: unknown) => error);
    await until(() => server.runner.counts().running === 1, "the first search to run");
    const queued = chat("majority-2");
    await until(() => server.runner.counts().queued === 1, "the second search to wait");
    const refused = await post("/v1/chat/completions", JSON.stringify({ model: "majority-2", messages: [{ role: "user", content: PROBLEM }] }));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toMatch(/--max-queue/);
    controller.abort();
    expect(await running).toBeInstanceOf(OpenAI.APIUserAbortError);
    expect((await queued).choices[0]?.message.content).toContain("\\boxed");
  });

  it("tells a streamed request its place in the queue before its search starts", async () => {
    const controller = new AbortController();
    const running = chat("best-of-n-16", SLOW, { signal: controller.signal }).catch((error: unknown) => error);
    await until(() => server.runner.counts().running === 1, "the first search to run");
    const stream = await chatStream("majority-2");
    const chunks: SearchChunk[] = [];
    for await (const chunk of stream) {
      chunks.push(chunk as SearchChunk);
      if (chunks.length === 2) controller.abort(); // the role chunk, then the place in the queue
    }
    expect(chunks[1]?.deliberate?.queued).toEqual({ position: 1 });
    expect(chunks[1]?.choices).toEqual([]);
    expect(chunks.slice(2).some((chunk) => chunk.deliberate?.progress !== undefined)).toBe(true);
    expect(chunks.some((chunk, index) => index !== 1 && chunk.deliberate?.queued !== undefined)).toBe(false);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? "").join("")).toContain("\\boxed");
    expect(await running).toBeInstanceOf(OpenAI.APIUserAbortError);
  });

  it("stops the search of a client that goes away and frees all its branches, streamed or not", async () => {
    await until(held, "no branch held before");
    const stream = await chatStream("best-of-n-16", SLOW);
    let live = 0;
    for await (const chunk of stream) {
      live = (chunk as SearchChunk).deliberate?.progress?.liveBranches ?? 0;
      if (live > 0) break; // leaving the loop aborts the request
    }
    expect(live).toBe(16);
    await until(held, "the streamed search's branches to be freed");

    const controller = new AbortController();
    const plain = chat("best-of-n-16", SLOW, { signal: controller.signal }).catch((error: unknown) => error);
    await until(async () => (await policy.stats()).liveBranches === 16, "the search's branches");
    controller.abort();
    expect(await plain).toBeInstanceOf(OpenAI.APIUserAbortError);
    await until(held, "the plain search's branches to be freed");
    expect(server.runner.counts()).toEqual({ running: 0, queued: 0 });
  });

  it("stops a search at the time limit with a 504 and frees its branches", async () => {
    const quick = await start({ requestTimeoutMs: 500 });
    const impatient = new OpenAI({ baseURL: `${quick.url}/v1`, apiKey: "none", maxRetries: 0 });
    const body = { model: "best-of-n-16", messages: [{ role: "user", content: PROBLEM }], ...SLOW } as unknown as ChatCompletionCreateParamsNonStreaming;
    const error = await errorOf(impatient.chat.completions.create(body));
    expect(error.status).toBe(504);
    expect(error.message).toMatch(/time limit of 0.5 s \(--request-timeout\)/);
    await until(held, "the timed-out search's branches to be freed");
  });

  it("on close, stops the searches still running after the grace period with a 503 and frees their branches", async () => {
    const closing = await start({ graceMs: 200 });
    const closingClient = new OpenAI({ baseURL: `${closing.url}/v1`, apiKey: "none", maxRetries: 0 });
    const body = { model: "best-of-n-16", messages: [{ role: "user", content: PROBLEM }], ...SLOW } as unknown as ChatCompletionCreateParamsNonStreaming;
    const running = errorOf(closingClient.chat.completions.create(body));
    await until(() => closing.runner.counts().running === 1, "the search to run");
    await closing.close();
    const error = await running;
    expect(error.status).toBe(503);
    expect(error.message).toMatch(/shutting down/);
    await until(held, "the stopped search's branches to be freed");
  });

  it("reports requests, latency, tokens, the queue and the decoding state in Prometheus text", async () => {
    const response = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}"]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1]);
    expect(value('deliberate_http_requests_total{route="/v1/chat/completions",status="200"}')).toBeGreaterThan(5);
    expect(value('deliberate_http_requests_total{route="/v1/chat/completions",status="429"}')).toBe(1);
    expect(value('deliberate_http_requests_total{route="/v1/chat/completions",status="400"}')).toBeGreaterThan(3);
    expect(value('deliberate_http_requests_total{route="/v1/chat/completions",status="499"}')).toBe(4);
    expect(value('deliberate_http_request_duration_seconds_count{route="/v1/chat/completions"}')).toBeGreaterThan(10);
    expect(value('deliberate_search_tokens_total{kind="generated"}')).toBeGreaterThan(0);
    expect(value('deliberate_search_tokens_total{kind="verifier"}')).toBeGreaterThan(0);
    expect(value("deliberate_search_queue_depth")).toBe(0);
    expect(value("deliberate_policy_live_branches")).toBeGreaterThanOrEqual(0);
    expect(value("deliberate_policy_state_bytes")).toBeGreaterThanOrEqual(0);
    expect(value("deliberate_decode_batches_total")).toBeGreaterThan(0);
    expect(value("deliberate_process_resident_memory_bytes")).toBeGreaterThan(0);
  });
});

describe("the deliberate serve command as a service", () => {
  it("takes the API key from the environment and, on SIGTERM, finishes the search in flight before it exits", async () => {
    const serve = await spawnServe(["--port", "0", "--verifier", "none", "--threads", "1"], { env: { ...process.env, DELIBERATE_API_KEY: KEY } });
    try {
      expect((await fetch(`${serve.url}/health`)).status).toBe(401);
      const remote = new OpenAI({ baseURL: `${serve.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60_000 });
      const stream = await remote.chat.completions.create({ model: "majority-8", messages: [{ role: "user", content: PROBLEM }], stream: true });
      serve.child.kill("SIGTERM");
      let content = "";
      for await (const chunk of stream) content += chunk.choices[0]?.delta.content ?? "";
      expect(content).toContain("\\boxed");
    } catch (error) {
      serve.child.kill("SIGKILL");
      throw error;
    }
    expect(await serve.exited).toBe(0);
  });
});
