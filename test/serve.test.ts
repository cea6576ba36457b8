/**
 * `deliberate serve` against the official openai client and plain fetch: the embedded policy and
 * PRM behind vLLM's API, compared with the same models in process.
 */
import { spawnServe } from "./support/serve-process.js";
import OpenAI from "openai";
import type { CompletionCreateParamsNonStreaming } from "openai/resources/completions";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Branch } from "../src/policy.js";
import { loadPolicy, loadVerifier } from "../src/runtime/load.js";
import type { ExtendResult, OnnxPolicy } from "../src/runtime/onnx-policy.js";
import type { OnnxStepVerifier } from "../src/runtime/onnx-verifier.js";
import { promptToMessages } from "../src/served/messages.js";
import { renderQwenPrmInput } from "../src/served/qwen-prm.js";
import { PrefixCache } from "../src/serve/prefix-cache.js";
import { startServer, type RunningServer } from "../src/serve/server.js";

/** The vLLM fields of a completion choice that the openai client's types do not name. */
interface VllmChoice {
  index: number;
  text: string;
  finish_reason: string;
  stop_reason: string | null;
  token_ids: number[] | null;
  prompt_token_ids: number[] | null;
  logprobs: { tokens: string[]; token_logprobs: number[]; top_logprobs: Record<string, number>[]; text_offset: number[] } | null;
}
interface VllmCompletion {
  choices: VllmChoice[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

const PROMPT = { problem: "Compute (17 + 5) * 3 - 8." };

let policy: OnnxPolicy;
let verifier: OnnxStepVerifier;
let server: RunningServer;
let client: OpenAI;
let promptIds: number[];

beforeAll(async () => {
  policy = await loadPolicy("policy", { threads: 1 });
  verifier = await loadVerifier("prm", { threads: 1 });
  server = await startServer({
    policy,
    verifier,
    policyName: "deliberate-policy",
    verifierName: "deliberate-prm",
    host: "127.0.0.1",
    port: 0,
    prefixCache: { maxEntries: 256, maxBytes: 64 * 2 ** 20 },
  });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0, timeout: 30_000 });
  promptIds = await policy.renderPrompt(PROMPT);
});

afterAll(async () => {
  await server?.close();
  await policy?.close();
  await verifier?.close();
});

/** A completion with vLLM's extra fields, through the official client. */
async function complete(body: Record<string, unknown>): Promise<VllmCompletion> {
  const response = await client.completions.create({ model: "deliberate-policy", ...body } as unknown as CompletionCreateParamsNonStreaming);
  return response as unknown as VllmCompletion;
}

async function post(path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${server.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function metrics(): Promise<Record<string, number>> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Object.fromEntries(
    text
      .split("\n")
      .filter((line) => line !== "" && !line.startsWith("#"))
      .map((line) => [line.split(" ")[0], Number(line.split(" ")[1])]),
  );
}

const STEP = { max_tokens: 48, stop: ["\n\n"], return_token_ids: true, logprobs: 0 };

describe("deliberate serve", () => {
  it("answers /health and lists both models with their context length, before the strategy models", async () => {
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    const models = await client.models.list();
    expect(models.data.map((model) => model.id).slice(0, 3)).toEqual(["deliberate-policy", "deliberate-prm", "best-of-n-1"]);
    expect((models.data[0] as unknown as { max_model_len: number }).max_model_len).toBe(4096);
  });

  it("tokenizes chat messages in the model's prompt format, and text with the tokenizer", async () => {
    const chat = await post("/tokenize", { model: "deliberate-policy", messages: promptToMessages(PROMPT) });
    expect(chat.json).toEqual({ count: promptIds.length, max_model_len: 4096, tokens: promptIds, token_strs: null });
    const text = await post("/tokenize", { prompt: "<bos>Compute 1 + 1.\n\n" });
    expect(text.json.tokens).toEqual(await policy.tokenize("<bos>Compute 1 + 1.\n\n", true));
    expect(text.json.tokens).toEqual(await policy.renderPrompt({ problem: "Compute 1 + 1." }));
  });

  it("detokenizes ids to the text that tokenizes back to them, special tokens written out, and refuses ids out of vocabulary", async () => {
    const detokenized = await post("/detokenize", { model: "deliberate-policy", tokens: promptIds });
    expect(detokenized.json).toEqual({ prompt: expect.stringMatching(/^<bos>/) });
    const again = await post("/tokenize", { prompt: detokenized.json.prompt, add_special_tokens: false });
    expect(again.json.tokens).toEqual(promptIds);
    const outside = await post("/detokenize", { tokens: [1, 100_000] });
    expect(outside.status).toBe(400);
    expect(JSON.stringify(outside.json)).toContain("Token id 100000 is out of vocabulary");
  });

  it("decodes a search step over HTTP to exactly the tokens of the in-process policy with the same seed, and resumes the next step from the prefix cache", async () => {
    const branch = await policy.start(PROMPT);
    const inProcess: ExtendResult[] = [];
    const overHttp: VllmChoice[] = [];
    let sent = promptIds;
    for (const [step, seed] of [11, 12, 13].entries()) {
      const [local] = await policy.decode([branch], { temperature: 1, seeds: [seed], maxStepTokens: 48 });
      inProcess.push(local as ExtendResult);
      const before = await metrics();
      const { choices } = await complete({ ...STEP, prompt: sent, seed, temperature: 1, include_stop_str_in_output: true });
      const after = await metrics();
      const choice = choices[0] as VllmChoice;
      overHttp.push(choice);
      // The first step prefills the prompt; every later one resumes from the state the previous step left.
      expect(after.deliberate_prefix_cache_hits_total).toBe((before.deliberate_prefix_cache_hits_total as number) + (step === 0 ? 0 : 1));
      expect(after.deliberate_prefix_cache_reused_tokens_total).toBe((before.deliberate_prefix_cache_reused_tokens_total as number) + (step === 0 ? 0 : sent.length));
      sent = [...sent, ...(choice.token_ids as number[])];
    }
    branch.release();
    overHttp.forEach((choice, i) => {
      const local = inProcess[i] as ExtendResult;
      expect(choice.token_ids).toEqual(local.tokenIds);
      expect(choice.logprobs?.token_logprobs).toEqual(local.logprobs);
      expect(choice.text).toBe(local.fullText);
      expect(choice.text.trim()).toBe(local.text);
    });
    expect(new Set(overHttp.map((choice) => choice.text)).size).toBe(3);
  });

  it("resumes from the longest cached prefix and feeds only the tokens the prompt adds", async () => {
    const problem = { problem: "Compute 96 - 41." };
    const ids = await policy.renderPrompt(problem);
    const first = await complete({ ...STEP, prompt: ids, seed: 1, temperature: 1 });
    const cached = [...ids, ...(first.choices[0]?.token_ids as number[])];
    // The client's next prompt goes past the cached state by a few tokens of its own.
    const extra = await policy.tokenize("96 -", false);
    const before = await metrics();
    const resumed = await complete({ ...STEP, prompt: [...cached, ...extra], seed: 2, temperature: 1 });
    const after = await metrics();
    expect(after.deliberate_prefix_cache_hits_total).toBe((before.deliberate_prefix_cache_hits_total as number) + 1);
    expect(after.deliberate_prefix_cache_reused_tokens_total).toBe((before.deliberate_prefix_cache_reused_tokens_total as number) + cached.length);
    // In process: the same state (prompt, then the first step decoded), the same tokens appended, the same seed.
    const branch = await policy.startFromTokens(ids);
    await policy.decode([branch], { temperature: 1, seeds: [1], maxStepTokens: 48, stop: ["\n\n"] });
    await policy.appendTokens(branch, extra);
    const [local] = await policy.decode([branch], { temperature: 1, seeds: [2], maxStepTokens: 48, stop: ["\n\n"] });
    branch.release();
    expect(resumed.choices[0]?.token_ids).toEqual(local?.tokenIds);
  });

  it("gives the same tokens for the same seed, and choice j of n the tokens of seed + j", async () => {
    // A product the policy is unsure of, so that samples of it differ: policy-4 writes the first step
    // of a level-5 problem the same way under seeds 5-7, but 17 * 23 three ways.
    const hard = await policy.renderPrompt({ problem: "Compute 17 * 23." });
    const body = { prompt: hard, temperature: 1.5, max_tokens: 40, return_token_ids: true };
    const first = await complete({ ...body, seed: 5 });
    const again = await complete({ ...body, seed: 5 });
    expect(again.choices[0]?.token_ids).toEqual(first.choices[0]?.token_ids);
    const several = await complete({ ...body, seed: 5, n: 3 });
    expect(several.choices.map((choice) => choice.index)).toEqual([0, 1, 2]);
    expect(several.choices[0]?.token_ids).toEqual(first.choices[0]?.token_ids);
    const seed7 = await complete({ ...body, seed: 7 });
    expect(several.choices[2]?.token_ids).toEqual(seed7.choices[0]?.token_ids);
    expect(new Set(several.choices.map((choice) => JSON.stringify(choice.token_ids))).size).toBe(3);
  });

  it("stops at the step delimiter, with and without it in the text, and runs to max_tokens without a stop", async () => {
    const body = { prompt: promptIds, temperature: 0, seed: 0, max_tokens: 48, return_token_ids: true };
    const [withStop, withoutStop, unstopped] = await Promise.all([
      complete({ ...body, stop: "\n\n", include_stop_str_in_output: true }),
      complete({ ...body, stop: ["\n\n"] }),
      complete({ ...body, max_tokens: 30 }),
    ]);
    const kept = withStop.choices[0] as VllmChoice;
    const cut = withoutStop.choices[0] as VllmChoice;
    expect(kept.finish_reason).toBe("stop");
    expect(kept.stop_reason).toBe("\n\n");
    expect(kept.text.endsWith("\n\n")).toBe(true);
    expect(cut.text).toBe(kept.text.slice(0, -2));
    expect(cut.token_ids).toEqual(kept.token_ids);
    const free = unstopped.choices[0] as VllmChoice;
    expect(free.finish_reason).toBe("length");
    expect(free.stop_reason).toBeNull();
    expect(free.token_ids).toHaveLength(30);
    // Greedy, so the unstopped run starts with the stopped step and writes past its delimiter.
    expect(free.text.startsWith(kept.text)).toBe(true);
  });

  it("reads a prompt as text or token ids alike, in the list forms too, and counts usage in token ids", async () => {
    const text = "<bos>Compute 12 * 7 + 3.\n\n";
    const ids = await policy.tokenize(text, true);
    const body = { temperature: 1, seed: 3, max_tokens: 24, return_token_ids: true };
    const fromText = await complete({ ...body, prompt: text });
    const fromIds = await complete({ ...body, prompt: ids });
    expect(fromText.choices[0]?.prompt_token_ids).toEqual(ids);
    expect(fromText.choices[0]?.token_ids).toEqual(fromIds.choices[0]?.token_ids);
    expect(fromText.choices[0]?.text).toBe(fromIds.choices[0]?.text);
    const listed = await complete({ ...body, prompt: [ids, promptIds], n: 2 });
    expect(listed.choices.map((choice) => choice.prompt_token_ids)).toEqual([ids, ids, promptIds, promptIds]);
    expect(listed.choices[0]?.token_ids).toEqual(fromIds.choices[0]?.token_ids);
    const generated = listed.choices.reduce((sum, choice) => sum + (choice.token_ids?.length ?? 0), 0);
    expect(listed.usage).toEqual({ prompt_tokens: ids.length + promptIds.length, completion_tokens: generated, total_tokens: ids.length + promptIds.length + generated, prompt_tokens_details: null });
    const texts = await complete({ ...body, prompt: [text, text] });
    expect(texts.choices.map((choice) => choice.token_ids)).toEqual([fromIds.choices[0]?.token_ids, fromIds.choices[0]?.token_ids]);
  });

  it("refuses a prompt past the context length (400) and an unknown model (404) with vLLM's errors", async () => {
    const long = Array.from({ length: 4096 }, (_, i) => promptIds[i % promptIds.length] as number);
    const tooLong = await complete({ prompt: long }).catch((error: unknown) => error);
    expect(tooLong).toBeInstanceOf(OpenAI.BadRequestError);
    expect((tooLong as InstanceType<typeof OpenAI.BadRequestError>).message).toContain(
      "This model's maximum context length is 4096 tokens. However, your request has 4096 input tokens.",
    );
    const tooMuch = await post("/v1/completions", { model: "deliberate-policy", prompt: long.slice(0, 4000), max_tokens: 200 });
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.json).toEqual({
      error: {
        message: "'max_tokens' or 'max_completion_tokens' is too large: 200. This model's maximum context length is 4096 tokens and your request has 4000 input tokens (200 > 4096 - 4000).",
        type: "BadRequestError",
        param: null,
        code: 400,
      },
    });
    const unknown = await complete({ model: "gpt-4", prompt: promptIds }).catch((error: unknown) => error);
    expect(unknown).toBeInstanceOf(OpenAI.NotFoundError);
    expect((unknown as Error).message).toContain("The model `gpt-4` does not exist.");
    const invalid = await post("/v1/completions", { model: "deliberate-policy", prompt: promptIds, n: 0 });
    expect(invalid.status).toBe(400);
    expect((invalid.json.error as { message: string }).message).toMatch(/^n: /);
    const malformed = await fetch(`${server.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: "{" });
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { type: string } }).error.type).toBe("BadRequestError");
    const outOfVocabulary = await post("/v1/completions", { model: "deliberate-policy", prompt: [...promptIds, policy.maxTokenId + 1] });
    expect(outOfVocabulary.status).toBe(400);
    expect((outOfVocabulary.json.error as { message: string }).message).toBe(`Token id ${policy.maxTokenId + 1} is out of vocabulary`);
    const streaming = await post("/v1/completions", { model: "deliberate-policy", prompt: promptIds, stream: true });
    expect(streaming.status).toBe(400);
    expect((streaming.json.error as { message: string }).message).toContain("stream is not supported");
  });

  it("decodes requests that arrive together in shared batches", async () => {
    const before = await metrics();
    const prompts = ["Compute 96 - 41.", "Compute 1/2 + 1/3.", "Solve for x: 3x + 7 = 22.", "Compute 3/4 + 5/6.", "Compute 12 * 7 + 3.", "Compute 17 + 5."];
    const ids = await Promise.all(prompts.map((problem) => policy.renderPrompt({ problem })));
    await Promise.all(ids.map((prompt, i) => complete({ prompt, seed: i, temperature: 1, max_tokens: 32 })));
    const after = await metrics();
    const batches = (after.deliberate_decode_batches_total as number) - (before.deliberate_decode_batches_total as number);
    expect((after.deliberate_decode_branch_steps_total as number) - (before.deliberate_decode_branch_steps_total as number)).toBe(6);
    // Six requests, decoded in at most two batches (the first may start before the others arrive).
    expect(batches).toBeLessThanOrEqual(2);
  });

  it("scores Qwen2.5-Math-PRM inputs with the hosted PRM: one [1 - p, p] row per step, p as scored in process", async () => {
    const solutions = [
      { problem: "Compute 17 + 5.", steps: ["17 + 5 = 22", "The answer is \\boxed{22}"] },
      { problem: "Compute 17 + 5.", steps: ["17 + 5 = 23", "The answer is \\boxed{23}"] },
      { problem: "Compute (17 + 5) * 3 - 8.", steps: ["17 + 5 = 22", "22 * 3 = 66", "66 - 8 = 58", "The answer is \\boxed{58}"] },
    ];
    const expected = await verifier.scoreSteps(solutions);
    const { status, json } = await post("/pooling", { model: "deliberate-prm", task: "token_classify", input: solutions.map((s) => renderQwenPrmInput(s.problem, s.steps)) });
    expect(status).toBe(200);
    const data = json.data as { index: number; object: string; data: number[][] }[];
    expect(data.map((item) => item.index)).toEqual([0, 1, 2]);
    data.forEach((item, i) => {
      expect(item.object).toBe("pooling");
      expect(item.data).toHaveLength(solutions[i]?.steps.length as number);
      item.data.forEach((row, k) => {
        expect(row[1]).toBeCloseTo(expected[i]?.scores[k] as number, 6);
        expect((row[0] as number) + (row[1] as number)).toBeCloseTo(1, 9);
      });
    });
    expect(new Set(data.flatMap((item) => item.data.map((row) => row[1]))).size).toBeGreaterThan(1);
    expect((json.usage as { prompt_tokens: number }).prompt_tokens).toBe(expected.reduce((sum, answer) => sum + answer.tokens, 0));
    const single = await post("/pooling", { input: renderQwenPrmInput(solutions[0]?.problem as string, solutions[0]?.steps as string[]) });
    expect((single.json.data as { data: number[][] }[])[0]?.data).toEqual(data[0]?.data);
    const bad = await post("/pooling", { model: "deliberate-prm", input: [renderQwenPrmInput("Compute 1 + 1.", ["1 + 1 = 2"]), "Compute 1 + 1. 1 + 1 = 2"] });
    expect(bad.status).toBe(400);
    expect((bad.json.error as { message: string }).message).toMatch(/^input\[1\]: not in the Qwen2.5-Math-PRM form/);
    const wrongModel = await post("/pooling", { model: "deliberate-policy", input: "x" });
    expect(wrongModel.status).toBe(400);
  });
});

describe("the prefix cache", () => {
  const fakeBranch = () => {
    const branch = { released: false, release: () => (branch.released = true) };
    return branch as unknown as Branch & { released: boolean };
  };

  it("finds the longest cached prefix, evicts the least recently used past its limits, and releases what it drops", () => {
    const cache = new PrefixCache({ maxEntries: 2, maxBytes: 1000 }, (length) => 10 * length);
    const [a, ab, other] = [fakeBranch(), fakeBranch(), fakeBranch()];
    cache.insert([1, 2], a);
    cache.insert([1, 2, 3, 4], ab);
    expect(cache.lookup([1, 2, 3, 4, 5])?.branch).toBe(ab);
    expect(cache.lookup([1, 2, 3])?.branch).toBe(a);
    expect(cache.lookup([1, 23])).toBeNull();
    // [1, 2] was used last, so [1, 2, 3, 4] goes first.
    cache.insert([7], other);
    expect(ab.released).toBe(true);
    expect(a.released).toBe(false);
    expect(cache.stats()).toEqual({ hits: 2, misses: 1, reusedTokens: 6, entries: 2, bytes: 30 });
    const big = fakeBranch();
    cache.insert(Array.from({ length: 99 }, (_, i) => i), big);
    // 990 + 20 + 10 bytes is over the limit: the least recently used ([1, 2]) goes.
    expect(cache.stats()).toMatchObject({ entries: 2, bytes: 1000 });
    expect([a.released, other.released, big.released]).toEqual([true, false, false]);
    cache.clear();
    expect(big.released).toBe(true);
    expect(cache.stats().entries).toBe(0);
  });
});

describe("the deliberate serve command", () => {
  it("prints the URL it listens on, serves, and stops on SIGTERM", async () => {
    const serve = await spawnServe(["--port", "0", "--verifier", "none", "--threads", "1"]);
    try {
      expect(serve.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${serve.url}/health`)).status).toBe(200);
      const models = (await (await fetch(`${serve.url}/v1/models`)).json()) as { data: { id: string }[] };
      // Without a verifier, the only strategy models are majority votes.
      expect(models.data.map((model) => model.id)).toEqual(["deliberate-policy", ...[1, 2, 4, 8, 16, 32, 64].map((budget) => `majority-${budget}`)]);
      const pooling = await fetch(`${serve.url}/pooling`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ input: "x" }) });
      expect(pooling.status).toBe(400);
    } finally {
      serve.child.kill("SIGTERM");
    }
    expect(await serve.exited).toBe(0);
  });
});
