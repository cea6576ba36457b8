/**
 * Contract tests of the HTTP policy and verifier against vLLM's documented protocol: a fixture
 * server on 127.0.0.1 replays request/response JSON from test/fixtures/vllm/ (each file cites its
 * source) and records what the client sends.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { Command } from "commander";
import { Tokenizer } from "@huggingface/tokenizers";
import { registerBench } from "../src/commands/bench.js";
import { parseBenchConfig } from "../src/bench/config.js";
import { runBench } from "../src/bench/run.js";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InputError, UnavailableError } from "../src/errors.js";
import { connectPolicy, type ServedPolicy } from "../src/served/policy.js";
import { connectVerifier } from "../src/served/verifier.js";
import { promptToMessages } from "../src/served/messages.js";
import { renderQwenPrmInput } from "../src/served/qwen-prm.js";
import { retryAfterMs } from "../src/served/http.js";
import { solve } from "../src/solve.js";
import { beam } from "../strategies/beam.js";

const fixture = <T>(name: string) => JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "vllm", `${name}.json`), "utf8")) as T;
interface Exchange<Response = Record<string, unknown>> {
  request: Record<string, unknown>;
  response: Response;
}
type Completion = Exchange<{ choices: { token_ids: number[]; logprobs: { token_logprobs: number[] } }[] }>;
type ErrorAnswer = { status: number; body: unknown };
const MODELS = fixture<Exchange<{ data: Record<string, unknown>[] }>>("models");
const TOKENIZE = fixture<Exchange<{ tokens: number[] }> & { request: { messages: unknown } }>("tokenize");
const STEP = fixture<Completion>("completion-step");
const EOS = fixture<Completion>("completion-eos");
const POOLING = fixture<Exchange>("pooling-qwen-prm");
const ERRORS = fixture<Record<"contextLength" | "unknownModel" | "unauthorized" | "overloaded" | "internal", ErrorAnswer>>("errors");
const STEP_CHOICE = STEP.response.choices[0] as Completion["response"]["choices"][number];
const PROMPT_IDS: number[] = TOKENIZE.response.tokens;

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  /** The JSON body; the fields the tests read. */
  body: { prompt: number[] | string; seed: number; max_tokens: number; input: string[] } & Record<string, unknown>;
}
type Handler = (seen: Seen, res: ServerResponse) => void;

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/** A fixture server on a free loopback port: /v1/models from the fixture, everything else from `route`. */
async function fixtureServer(route: Handler, models: unknown = MODELS.response): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString()));
    req.on("end", () => {
      const entry = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: text ? JSON.parse(text) : undefined };
      seen.push(entry);
      if (entry.path === "/v1/models") return send(res, 200, models);
      route(entry, res);
    });
  });
  server.keepAliveTimeout = 1;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({ close: () => server.close() });
  server.unref();
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, seen };
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify(body));
}

/** Answers /tokenize from its fixture and each completion with the next of `completions` (the last repeats). */
function policyRoute(completions: Handler[]): Handler {
  let next = 0;
  return (seen, res) => {
    if (seen.path === "/tokenize") return send(res, 200, TOKENIZE.response);
    const handler = completions[Math.min(next++, completions.length - 1)] as Handler;
    handler(seen, res);
  };
}
const reply =
  (body: unknown, status = 200, headers: Record<string, string> = {}): Handler =>
  (_seen, res) =>
    send(res, status, body, headers);
const completions = (seen: Seen[]) => seen.filter((entry) => entry.path === "/v1/completions");
const options = { temperature: 0.8, topP: 1, maxStepTokens: 64 };

describe("the served policy against vLLM's completions protocol", () => {
  it("formats the prompt with /tokenize, sends token ids, keeps the returned ids, and reads stop reasons", async () => {
    const { url, seen } = await fixtureServer(policyRoute([reply(STEP.response), reply(EOS.response)]));
    const policy = await connectPolicy(url, { parameters: 1.5e9 });
    expect(policy.name).toBe("Qwen/Qwen2.5-Math-1.5B-Instruct");
    expect(policy.fingerprint).toBe("served:Qwen/Qwen2.5-Math-1.5B-Instruct root=Qwen/Qwen2.5-Math-1.5B-Instruct max_model_len=4096 owned_by=vllm");
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    const tokenize = seen.filter((entry) => entry.path === "/tokenize").at(-1);
    expect(tokenize?.body).toEqual(TOKENIZE.request);
    expect(branch.promptTokens).toBe(PROMPT_IDS.length);

    const [first] = await policy.extend([branch], { ...options, seeds: [11] });
    expect(completions(seen)[0]?.body).toEqual({ ...STEP.request, seed: 11 });
    expect(first).toEqual({ text: "We add 3 and 4.", tokens: 6, logprobs: STEP_CHOICE.logprobs.token_logprobs, stopReason: "delimiter", calls: 1, retries: 0 });
    expect(branch.steps).toEqual(["We add 3 and 4."]);

    // A fork is a copy of the ids; the next step's prompt is the prompt and the step's own ids, never re-tokenized.
    const fork = branch.fork();
    const [second] = await policy.extend([fork], { ...options, seeds: [12] });
    expect(completions(seen)[1]?.body.prompt).toEqual([...PROMPT_IDS, ...STEP_CHOICE.token_ids]);
    expect(second).toMatchObject({ text: "So the answer is \\boxed{7}.", tokens: 5, stopReason: "eos" });
    expect(fork.finished).toBe(true);
    expect(branch.finished).toBe(false);
    expect(branch.steps).toEqual(["We add 3 and 4."]);
    await policy.close();
  });

  it("runs a beam search unchanged, counted on the meter from what the seam returns", async () => {
    // The first step of every branch is the fixture step; the second ends the solution.
    const byDepth: Handler = (entry, res) => send(res, 200, entry.body.prompt.length === PROMPT_IDS.length ? STEP.response : EOS.response);
    const { url, seen } = await fixtureServer(policyRoute([byDepth]));
    const policy = await connectPolicy(url);
    const prm = await fixtureServer((entry, res) => send(res, 200, poolingAnswer(entry.body.input)), { object: "list", data: [{ id: "prm", object: "model" }] });
    const verifier = await connectVerifier(prm.url);
    const result = await solve("Compute 3 + 4.", { strategy: beam, budget: 4, params: { beamWidth: 2 }, policy, verifier, seed: 1 });
    expect(result.answer).toBe("7");
    const sent = completions(seen);
    expect(sent).toHaveLength(8);
    expect(result.compute.generatedTokens).toBe(4 * 6 + 4 * 5);
    expect(result.compute.prefilledTokens).toBe(PROMPT_IDS.length);
    expect(result.compute.policyCalls).toBe(1 + 2); // one prefill, two rounds (a round's requests count once)
    expect(result.compute.verifierTokens).toBeGreaterThan(0);
    expect(result.compute.flops).toBeNull(); // no parameter counts given
    expect(new Set(sent.map((entry) => entry.body.seed)).size).toBe(sent.length);
  });

  it("ends a branch past the context length (vLLM's 400) with max-length instead of failing", async () => {
    const { url } = await fixtureServer(policyRoute([reply(ERRORS.contextLength.body, 400)]));
    const policy = await connectPolicy(url);
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    const [step] = await policy.extend([branch], { ...options, seeds: [1] });
    expect(step).toMatchObject({ text: "", tokens: 0, stopReason: "max-length" });
    expect(branch.finished).toBe(true);
  });

  it("cuts max_tokens to the room left under max_model_len", async () => {
    const small = { object: "list", data: [{ ...MODELS.response.data[0], max_model_len: PROMPT_IDS.length + 10 }] };
    const { url, seen } = await fixtureServer(policyRoute([reply(STEP.response)]), small);
    const policy = await connectPolicy(url);
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    await policy.extend([branch], { ...options, seeds: [1] });
    expect(completions(seen)[0]?.body.max_tokens).toBe(10);
  });

  it("fails before any work on an unknown model, a refused key, or a server that is not OpenAI-compatible", async () => {
    const { url, seen } = await fixtureServer(policyRoute([reply(STEP.response)]));
    await expect(connectPolicy(url, { model: "no-such-model" })).rejects.toThrow(/unknown model "no-such-model" \(404\); it serves Qwen\/Qwen2.5-Math-1.5B-Instruct/);
    expect(completions(seen)).toHaveLength(0);

    const unauthorized = await fixtureServerWith((res) => send(res, ERRORS.unauthorized.status, ERRORS.unauthorized.body));
    const error = await connectPolicy(unauthorized, { apiKey: "sk-secret-123" }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toMatch(/refused the API key \(401: Unauthorized\)/);
    expect((error as Error).message).not.toContain("sk-secret-123");

    const html = await fixtureServerWith((res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html>hello</html>");
    });
    await expect(connectPolicy(html)).rejects.toThrow(/not an OpenAI-compatible server/);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await expect(connectPolicy(`http://127.0.0.1:${port}/v1`, { maxRetries: 0 })).rejects.toThrow(/cannot reach the server/);
  });

  it("formats prompts with a tokenizer directory's chat template instead of /tokenize when given one", async () => {
    const { url, seen } = await fixtureServer(policyRoute([reply(STEP.response)]));
    const dir = join(import.meta.dirname, "fixtures", "tiny-hf");
    const policy = await connectPolicy(url, { chatTemplate: dir });
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    await policy.extend([branch], { ...options, seeds: [1] });
    expect(seen.filter((entry) => entry.path === "/tokenize")).toHaveLength(0);
    const [system, user] = promptToMessages({ problem: "Compute 3 + 4." });
    const text = `<bos>[system] ${system?.content}\n[user] ${user?.content}\n[assistant] `;
    const config = JSON.parse(readFileSync(join(dir, "tokenizer_config.json"), "utf8")) as object;
    const tokenizer = new Tokenizer(JSON.parse(readFileSync(join(dir, "tokenizer.json"), "utf8")) as object, config);
    expect(completions(seen)[0]?.body.prompt).toEqual(tokenizer.encode(text, { add_special_tokens: false }).ids);
    await expect(connectPolicy(url, { chatTemplate: join(dir, "missing") })).rejects.toThrow(/--chat-template .*missing: cannot read tokenizer_config.json/);
  });

  it("sends the API key as a bearer token", async () => {
    const { url, seen } = await fixtureServer(policyRoute([reply(STEP.response)]));
    await connectPolicy(url, { apiKey: "sk-secret-123" });
    expect(seen[0]?.headers.authorization).toBe("Bearer sk-secret-123");
  });
});

const textFixture = <T>(name: string) => JSON.parse(readFileSync(join(import.meta.dirname, "fixtures", "text-servers", `${name}.json`), "utf8")) as T;
type TextCompletion = { response: { choices: { text: string }[]; usage: { completion_tokens: number } } };
const APPLY_TEMPLATE = textFixture<Exchange<{ prompt: string }>>("llamacpp-apply-template");
const LLAMA_TOKENIZE = textFixture<Exchange<{ tokens: number[] }>>("llamacpp-tokenize");
const OPENAI_STEP = textFixture<TextCompletion>("openai-completion-step");
const OPENAI_EOS = textFixture<TextCompletion>("openai-completion-eos");
const OPENAI_END = textFixture<TextCompletion>("openai-completion-end");
const SGLANG_STEP = textFixture<TextCompletion>("sglang-completion-step");
const SGLANG_EOS = textFixture<TextCompletion>("sglang-completion-eos");
const DETOKENIZE = fixture<Exchange<{ prompt: string }>>("detokenize");
const RENDERED = APPLY_TEMPLATE.response.prompt;

/**
 * llama.cpp's routes as its server README documents them: /apply-template, /tokenize of `content`
 * (a body without `content` gets no tokens, as llama.cpp answers it), and completions in OpenAI's
 * shape from `completions`.
 */
function llamaCppRoute(completions: Handler[]): Handler {
  let next = 0;
  return (seen, res) => {
    if (seen.path === "/apply-template") return send(res, 200, APPLY_TEMPLATE.response);
    if (seen.path === "/tokenize") return send(res, 200, "content" in seen.body ? LLAMA_TOKENIZE.response : { tokens: [] });
    const handler = completions[Math.min(next++, completions.length - 1)] as Handler;
    handler(seen, res);
  };
}

describe("text prompts, for servers that take or return no token ids", () => {
  it("on llama.cpp (auto): renders with /apply-template, sends text, counts tokens from usage, and tells a stop from the end by the next step", async () => {
    const { url, seen } = await fixtureServer(llamaCppRoute([reply(OPENAI_STEP.response), reply(OPENAI_EOS.response), reply(OPENAI_END.response)]));
    const notices: string[] = [];
    const policy = await connectPolicy(url, { onNotice: (message) => notices.push(message) });
    expect(policy.promptMode).toBe("text");
    expect(notices).toEqual([expect.stringMatching(/\/tokenize with messages failed \(\/tokenize answered no tokens for the messages\); prompts go as text/)]);
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    expect(seen.filter((entry) => entry.path === "/apply-template").at(-1)?.body).toEqual(APPLY_TEMPLATE.request);
    expect(seen.filter((entry) => entry.path === "/tokenize").at(-1)?.body).toEqual(LLAMA_TOKENIZE.request);
    expect(branch.promptTokens).toBe(LLAMA_TOKENIZE.response.tokens.length);

    const [first] = await policy.extend([branch], { ...options, seeds: [11] });
    const sent = () => completions(seen);
    expect(sent()[0]?.body).toMatchObject({ prompt: RENDERED, add_special_tokens: false, n: 1, seed: 11, stop: ["\n\n"] });
    expect(sent()[0]?.body).not.toHaveProperty("return_token_ids");
    expect(first).toEqual({ text: "We add 3 and 4.", tokens: 6, logprobs: [], stopReason: "delimiter", calls: 1, retries: 0 });
    // llama.cpp leaves the stop string out of the text: the branch's text puts it back.
    const [second] = await policy.extend([branch], { ...options, seeds: [12] });
    expect(sent()[1]?.body.prompt).toBe(`${RENDERED}We add 3 and 4.\n\n`);
    // "stop" with text: a step that ended at the delimiter, as far as the answer tells.
    expect(second).toMatchObject({ text: "So the answer is \\boxed{7}.", tokens: 9, stopReason: "delimiter" });
    expect(branch.finished).toBe(false);
    const [third] = await policy.extend([branch], { ...options, seeds: [13] });
    expect(sent()[2]?.body.prompt).toBe(`${RENDERED}We add 3 and 4.\n\nSo the answer is \\boxed{7}.\n\n`);
    expect(third).toMatchObject({ text: "", tokens: 1, stopReason: "eos" });
    expect(branch.finished).toBe(true);
    expect(branch.steps).toEqual(["We add 3 and 4.", "So the answer is \\boxed{7}."]);
    expect(branch.generatedTokens).toBe(6 + 9 + 1);
  });

  it("auto: switches to text at the first answer without token_ids, once and said, and renders the prompt's text with /detokenize", async () => {
    const route: Handler = (entry, res) => {
      if (entry.path === "/tokenize") return send(res, 200, TOKENIZE.response);
      if (entry.path === "/detokenize") return send(res, 200, DETOKENIZE.response);
      const first = typeof entry.body.prompt === "object" || entry.body.prompt === RENDERED;
      send(res, 200, first ? SGLANG_STEP.response : SGLANG_EOS.response);
    };
    const { url, seen } = await fixtureServer(route);
    const notices: string[] = [];
    const policy = await connectPolicy(url, { onNotice: (message) => notices.push(message) });
    expect(policy.promptMode).toBe("auto");
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    const other = await policy.start({ problem: "Compute 3 + 4." });
    const [first] = await policy.extend([branch], { ...options, seeds: [1] });
    expect(completions(seen)[0]?.body).toMatchObject({ prompt: PROMPT_IDS, return_token_ids: true });
    expect(first).toMatchObject({ text: "We add 3 and 4.", tokens: 6, stopReason: "delimiter" });
    expect(policy.promptMode).toBe("text");
    expect(notices).toEqual([expect.stringMatching(/returned no token_ids \(return_token_ids\); prompts go as text from now on/)]);

    // SGLang's matched_stop: the EOS token id ends the solution.
    const [second, fresh] = await policy.extend([branch, other], { ...options, seeds: [2, 3] });
    // One on a sample prompt to find how the server renders text (its /apply-template is a 404), then one per prompt.
    expect(seen.filter((entry) => entry.path === "/detokenize").map((entry) => entry.body)).toEqual([DETOKENIZE.request, DETOKENIZE.request, DETOKENIZE.request]);
    expect(completions(seen).slice(1).map((entry) => entry.body.prompt)).toEqual(expect.arrayContaining([`${RENDERED}We add 3 and 4.\n\n`, RENDERED]));
    expect(second).toMatchObject({ text: "So the answer is \\boxed{7}.", tokens: 9, stopReason: "eos" });
    expect(fresh).toMatchObject({ text: "We add 3 and 4.", stopReason: "delimiter" });
    expect(branch.finished).toBe(true);
    expect(notices).toHaveLength(1);
  });

  it("auto: sends text again when the server refuses a token-id prompt with a 400 naming the prompt", async () => {
    const refusal = { error: { message: "'prompt' must be a string", type: "invalid_request_error", param: "prompt", code: null } };
    const route: Handler = (entry, res) => {
      if (entry.path === "/tokenize") return send(res, 200, TOKENIZE.response);
      if (entry.path === "/detokenize") return send(res, 200, DETOKENIZE.response);
      if (typeof entry.body.prompt !== "string") return send(res, 400, refusal);
      send(res, 200, OPENAI_STEP.response);
    };
    const { url, seen } = await fixtureServer(route);
    const notices: string[] = [];
    const policy = await connectPolicy(url, { onNotice: (message) => notices.push(message) });
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    const [step] = await policy.extend([branch], { ...options, seeds: [1] });
    expect(step).toMatchObject({ text: "We add 3 and 4.", tokens: 6, stopReason: "delimiter" });
    expect(completions(seen).map((entry) => typeof entry.body.prompt)).toEqual(["object", "string"]);
    expect(notices).toEqual([expect.stringMatching(/refused a token-id prompt \(400: 'prompt' must be a string\)/)]);
  });

  it("tokens: refuses an answer without token_ids, and a server without /tokenize with messages, naming the flag", async () => {
    const { url } = await fixtureServer(policyRoute([reply(SGLANG_STEP.response)]));
    const policy = await connectPolicy(url, { promptMode: "tokens" });
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    await expect(policy.extend([branch], { ...options, seeds: [1] })).rejects.toThrow(/has no token_ids; .*give --policy-prompt text or auto/);
    const llama = await fixtureServer(llamaCppRoute([reply(OPENAI_STEP.response)]));
    await expect(connectPolicy(llama.url, { promptMode: "tokens" })).rejects.toThrow(/\/tokenize with messages failed .*give --chat-template DIR/);
  });

  it("text: fails before any work on a server that renders no chat template to text, and renders with --chat-template instead", async () => {
    const { url, seen } = await fixtureServer((entry, res) => (entry.path === "/v1/completions" ? send(res, 200, OPENAI_STEP.response) : send(res, 404, { error: { message: "Not Found" } })));
    await expect(connectPolicy(url, { promptMode: "text" })).rejects.toThrow(/renders no chat template to text \(\/apply-template: 404: Not Found; \/tokenize \+ \/detokenize: 404: Not Found\); give --chat-template DIR/);
    expect(completions(seen)).toHaveLength(0);
    const dir = join(import.meta.dirname, "fixtures", "tiny-hf");
    const policy = await connectPolicy(url, { promptMode: "text", chatTemplate: dir });
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    await policy.extend([branch], { ...options, seeds: [1] });
    const [system, user] = promptToMessages({ problem: "Compute 3 + 4." });
    expect(completions(seen)[0]?.body.prompt).toBe(`<bos>[system] ${system?.content}\n[user] ${user?.content}\n[assistant] `);
  });
});

describe("n: k for the branches at one point (batchN)", () => {
  it("sends one request with n for the forks at the same point, seeded with the first fork's seed, and gives choice j (by its index) to fork j", async () => {
    const choice = (index: number, text: string, ids: number[]) => ({ ...STEP_CHOICE, index, text: `${text}\n\n`, token_ids: ids, logprobs: { ...STEP_CHOICE.logprobs, token_logprobs: ids.map(() => -0.5) } });
    const route: Handler = (entry, res) => {
      const n = entry.body.n as number;
      // Choices listed last first: the client must go by their index.
      const choices = Array.from({ length: n }, (_, j) => choice(j, `step ${j}`, Array.from({ length: j + 1 }, (_, k) => 1000 + 10 * j + k))).reverse();
      send(res, 200, { ...STEP.response, choices, usage: { prompt_tokens: 6, completion_tokens: 99, total_tokens: 105 } });
    };
    const { url, seen } = await fixtureServer(policyRoute([route]));
    const policy = await connectPolicy(url, { batchN: true });
    const root = await policy.start({ problem: "Compute 3 + 4." });
    const forks = [root.fork(), root.fork(), root.fork()];
    const steps = await policy.extend(forks, { ...options, seeds: [7, 8, 9] });
    expect(completions(seen).map((entry) => [entry.body.n, entry.body.seed])).toEqual([[3, 7]]);
    expect(steps.map((step) => [step.text, step.tokens])).toEqual([["step 0", 1], ["step 1", 2], ["step 2", 3]]);
    // Now at different points: one request each, n: 1.
    await policy.extend(forks, { ...options, seeds: [1, 2, 3] });
    expect(completions(seen).slice(1).map((entry) => entry.body.n)).toEqual([1, 1, 1]);
    expect(completions(seen)[2]?.body.prompt).toEqual([...PROMPT_IDS, 1010, 1011]);
  });

  it("fails with the flag to turn off when the server answers fewer choices than n", async () => {
    const { url } = await fixtureServer(policyRoute([reply(STEP.response)]));
    const policy = await connectPolicy(url, { batchN: true });
    const root = await policy.start({ problem: "Compute 3 + 4." });
    await expect(policy.extend([root.fork(), root.fork()], { ...options, seeds: [1, 2] })).rejects.toThrow(/asked for 2 choice\(s\) \(n\), got 1; .*leave --policy-batch-n off/);
  });
});

/** A server whose every answer, /v1/models included, comes from `answer`. */
async function fixtureServerWith(answer: (res: ServerResponse) => void): Promise<string> {
  const server = createServer((req, res) => {
    req.resume();
    req.on("end", () => answer(res));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  servers.push({ close: () => server.close() });
  server.unref();
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
}

describe("faults", () => {
  const fast = { backoffMs: 10, maxBackoffMs: 50 };

  async function oneStep(policy: ServedPolicy, signal?: AbortSignal) {
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    return (await policy.extend([branch], { ...options, seeds: [1], signal }))[0];
  }

  it("honours 429's Retry-After, then succeeds, and counts the retry", async () => {
    const { url, seen } = await fixtureServer(policyRoute([reply(ERRORS.overloaded.body, 429, { "retry-after": "1" }), reply(STEP.response)]));
    const policy = await connectPolicy(url, fast);
    const started = performance.now();
    const step = await oneStep(policy);
    const waited = performance.now() - started;
    expect(step).toMatchObject({ stopReason: "delimiter", retries: 1 });
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(waited).toBeLessThan(3000);
    expect(completions(seen)).toHaveLength(2);
    expect(policy.retries).toBe(1);
    expect(retryAfterMs("Thu, 01 Jan 1970 00:00:10 GMT", 4_000)).toBe(6_000);
  });

  it("retries a 500, then succeeds", async () => {
    const { url, seen } = await fixtureServer(policyRoute([reply(ERRORS.internal.body, 500), reply(STEP.response)]));
    const policy = await connectPolicy(url, fast);
    expect(await oneStep(policy)).toMatchObject({ stopReason: "delimiter", retries: 1 });
    expect(completions(seen)).toHaveLength(2);
  });

  it("retries a reset connection, then succeeds", async () => {
    const { url, seen } = await fixtureServer(policyRoute([(_seen, res) => res.socket?.destroy(), reply(STEP.response)]));
    const policy = await connectPolicy(url, fast);
    expect(await oneStep(policy)).toMatchObject({ stopReason: "delimiter", retries: 1 });
    expect(completions(seen)).toHaveLength(2);
  });

  it("gives up on a server slower than the timeout, after its retries", async () => {
    const { url, seen } = await fixtureServer(policyRoute([(_seen, res) => setTimeout(() => send(res, 200, STEP.response), 1500).unref()]));
    const policy = await connectPolicy(url, { ...fast, timeoutMs: 200, maxRetries: 1 });
    const started = performance.now();
    await expect(oneStep(policy)).rejects.toThrow(/no answer within 200 ms \(gave up after 2 attempts\)/);
    expect(performance.now() - started).toBeLessThan(1200);
    expect(completions(seen)).toHaveLength(2);
  });

  it("cancels requests in flight when the signal aborts", async () => {
    const { url } = await fixtureServer(policyRoute([() => undefined]));
    const policy = await connectPolicy(url, fast);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("stopped")), 100).unref();
    const started = performance.now();
    await expect(oneStep(policy, controller.signal)).rejects.toThrow("stopped");
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it("sends a failed request to another replica", async () => {
    const down = await fixtureServer(policyRoute([reply(ERRORS.internal.body, 503)]));
    const up = await fixtureServer(policyRoute([reply(STEP.response)]));
    const policy = await connectPolicy([down.url, up.url], fast);
    const branch = await policy.start({ problem: "Compute 3 + 4." });
    const forks = Array.from({ length: 6 }, () => branch.fork());
    const steps = await policy.extend(forks, { ...options, seeds: forks.map((_, i) => i) });
    expect(steps.every((step) => step.stopReason === "delimiter")).toBe(true);
    expect(completions(up.seen)).toHaveLength(6);
    expect(steps.reduce((sum, step) => sum + (step.retries ?? 0), 0)).toBe(completions(down.seen).length);
  });
});

/** Deterministic PRM rows from each input alone: p_positive of step k is a function of the input's text and k. */
function poolingAnswer(inputs: string[]) {
  return {
    object: "list",
    model: "prm",
    data: inputs.map((input, index) => {
      const steps = input.split("<extra_0>").length - 1;
      return { index, object: "pooling", data: Array.from({ length: steps }, (_, k) => [1 - ((input.length * (k + 3)) % 97) / 100, ((input.length * (k + 3)) % 97) / 100]) };
    }),
    usage: { prompt_tokens: inputs.reduce((sum, input) => sum + Math.ceil(input.length / 4), 0), total_tokens: 0 },
  };
}

describe("the served verifier against vLLM's /pooling protocol", () => {
  const PRM_MODELS = { object: "list", data: [{ id: "Qwen/Qwen2.5-Math-PRM-7B", object: "model", owned_by: "vllm", max_model_len: 4096 }] };

  it("renders qwen-prm inputs, sends token_classify and reads p_positive of each row", async () => {
    const { url, seen } = await fixtureServer(reply(POOLING.response), PRM_MODELS);
    const verifier = await connectVerifier(url, { format: "qwen-prm", parameters: 7e9 });
    const [answer] = await verifier.scoreSteps([{ problem: "Compute 3 + 4.", steps: ["We add 3 and 4.", "So the answer is \\boxed{7}."] }]);
    expect(seen.at(-1)?.path).toBe("/pooling");
    expect(seen.at(-1)?.body).toEqual(POOLING.request);
    expect(answer).toEqual({ scores: [0.9688, 0.9149], tokens: 48, retries: 0 });
  });

  it("gives the same scores however the requests were batched, and the same tokens in total", async () => {
    const { url, seen } = await fixtureServer((entry, res) => send(res, 200, poolingAnswer(entry.body.input)), PRM_MODELS);
    const requests = Array.from({ length: 7 }, (_, i) => ({ problem: `Compute ${i} + ${2 * i}.`, steps: Array.from({ length: 1 + (i % 3) }, (_, k) => `step ${k} of ${i}`) }));
    const one = await (await connectVerifier(url, { maxBatchInputs: 100 })).scoreSteps(requests);
    const calls = seen.length;
    const split = await (await connectVerifier(url, { maxBatchInputs: 2 })).scoreSteps(requests);
    const byChars = await (await connectVerifier(url, { maxBatchChars: renderQwenPrmInput("Compute 6 + 12.", ["x"]).length + 50 })).scoreSteps(requests);
    const pooled = seen.filter((entry) => entry.path === "/pooling");
    expect(pooled.slice(0, 1).map((entry) => entry.body.input.length)).toEqual([7]);
    expect(seen.length - calls).toBeGreaterThan(4 + 7);
    expect(split.map((answer) => answer.scores)).toEqual(one.map((answer) => answer.scores));
    expect(byChars.map((answer) => answer.scores)).toEqual(one.map((answer) => answer.scores));
    const total = (answers: typeof one) => answers.reduce((sum, answer) => sum + answer.tokens, 0);
    expect(total(split)).toBe(total(one));
    expect(total(byChars)).toBe(total(one));
  });

  it("refuses an empty row list or a row count that differs from the step count", async () => {
    const empty = { ...POOLING.response, data: [{ index: 0, object: "pooling", data: [] }] };
    const { url } = await fixtureServer(reply(empty), PRM_MODELS);
    const verifier = await connectVerifier(url);
    await expect(verifier.scoreSteps([{ problem: "P", steps: ["a", "b"] }])).rejects.toThrow(/no step rows .* lost its step tags/);
    const short = await fixtureServer(reply(POOLING.response), PRM_MODELS);
    await expect((await connectVerifier(short.url)).scoreSteps([{ problem: "P", steps: ["a", "b", "c"] }])).rejects.toThrow(/2 step rows for 3 steps/);
  });

  it("renders math-shepherd inputs with its step tag and reads p(+) of each row", async () => {
    const { url, seen } = await fixtureServer(reply({ ...POOLING.response, data: [{ index: 0, object: "pooling", data: [[0.8, 0.2], [0.3, 0.7]] }] }), PRM_MODELS);
    const [answer] = await (await connectVerifier(url, { format: "math-shepherd" })).scoreSteps([{ problem: "P?", steps: ["a", "b"] }]);
    expect(seen.at(-1)?.body.input).toEqual(["P? Step 1: a ки\nStep 2: b ки"]);
    expect(answer?.scores).toEqual([0.8, 0.3]);
  });
});

describe("bench with served models", () => {
  it("records the served model's fingerprint and the retries, never the API key, and refuses a resume against another model", async () => {
    const byDepth: Handler = (entry, res) => send(res, 200, entry.body.prompt.length === PROMPT_IDS.length ? STEP.response : EOS.response);
    const models = structuredClone(MODELS.response);
    const policyServer = await fixtureServer(policyRoute([reply(ERRORS.internal.body, 503), byDepth]), models);
    const prm = await fixtureServer((entry, res) => send(res, 200, poolingAnswer(entry.body.input)), { object: "list", data: [{ id: "prm", object: "model" }] });
    const out = join(await mkdtemp(join(tmpdir(), "deliberate-served-")), "run");
    const bench = () => {
      const program = new Command().exitOverride();
      registerBench(program);
      const args = ["bench", "--dataset", "synth", "--n", "2", "--strategies", "best-of-n", "--budgets", "2", "--progress", "none", "--out", out];
      return program.parseAsync([...args, "--policy", policyServer.url, "--policy-api-key", "sk-secret-123", "--verifier", prm.url], { from: "user" });
    };
    await bench();
    const results = (await readFile(join(out, "results.jsonl"), "utf8")).trim().split("\n").map((line) => JSON.parse(line) as { compute: { retries: number; flops: number | null } });
    expect(results).toHaveLength(2);
    expect(results.reduce((sum, result) => sum + result.compute.retries, 0)).toBe(1);
    expect(results.every((result) => result.compute.flops === null)).toBe(true);
    const config = await readFile(join(out, "config.json"), "utf8");
    expect(config).not.toContain("sk-secret-123");
    expect((JSON.parse(config) as { experiment: { fingerprints: { policy: string } } }).experiment.fingerprints.policy).toMatch(/^served:Qwen\/Qwen2.5-Math-1.5B-Instruct /);

    (models.data[0] as { id: string }).id = "Qwen/Qwen2.5-Math-7B-Instruct";
    await expect(bench()).rejects.toThrow(/The policy changed since that run started/);
  });
});

describe("a server that goes away mid-run", () => {
  it("stops the bench without recording the items in flight, and the same run resumes and completes once it is back", async () => {
    let down = false;
    let answered = 0;
    const byDepth: Handler = (entry, res) => {
      if (down) return res.socket?.destroy();
      if (++answered === 6) down = true;
      send(res, 200, entry.body.prompt.length === PROMPT_IDS.length ? STEP.response : EOS.response);
    };
    const { url } = await fixtureServer(policyRoute([byDepth]));
    const prm = await fixtureServer((entry, res) => send(res, 200, poolingAnswer(entry.body.input)), { object: "list", data: [{ id: "prm", object: "model" }] });
    const out = join(await mkdtemp(join(tmpdir(), "deliberate-served-")), "run");
    const config = parseBenchConfig({ n: 4, strategies: ["best-of-n"], budgets: [2], concurrency: 2, progress: "none", out });
    const connect = async () => ({ policy: await connectPolicy(url, { maxRetries: 2, backoffMs: 5 }), verifier: await connectVerifier(prm.url) });
    await expect(runBench(config, await connect())).rejects.toThrow(UnavailableError);
    const lines = async () => (await readFile(join(out, "results.jsonl"), "utf8").catch(() => "")).split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as { error: string | null });
    const before = await lines();
    expect(before.length).toBeLessThan(4);
    expect(before.every((result) => result.error === null)).toBe(true);

    down = false;
    answered = -1000;
    const summary = await runBench(config, await connect());
    const after = await lines();
    expect(after).toHaveLength(4);
    expect(after.every((result) => result.error === null)).toBe(true);
    expect(summary.errors).toBe(0);
  });
});

describe("messages", () => {
  it("are the shared convention", () => {
    expect(TOKENIZE.request.messages).toEqual(promptToMessages({ problem: "Compute 3 + 4." }));
  });
});
