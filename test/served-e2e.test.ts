/**
 * End to end: `deliberate serve` started as a child process on a free loopback port, and `bench`
 * driving it through `--policy URL --verifier URL`: the same answers as in process with the same
 * seeds; a fault proxy that resets and refuses requests; the server killed with -9 mid-run and the
 * same command resuming after a restart.
 */
import type { ChildProcess } from "node:child_process";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterEach, describe, expect, it } from "vitest";
import { registerBench } from "../src/commands/bench.js";
import { UnavailableError } from "../src/errors.js";
import { Random } from "../src/random.js";
import { connectPolicy, type PromptMode } from "../src/served/policy.js";
import type { Branch, StepResult } from "../src/policy.js";
import { spawnServe } from "./support/serve-process.js";

interface Serve {
  url: string;
  port: number;
  child: ChildProcess;
}
const children: ChildProcess[] = [];
const closers: (() => void)[] = [];
afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  for (const close of closers.splice(0)) close();
});

/** `deliberate serve` with the embedded policy and the default PRM (prm-columns), on `port` (0: a free one); resolves once it listens. */
async function startServe(port = 0): Promise<Serve> {
  const { url, child } = await spawnServe(["--port", String(port), "--threads", "1"]);
  children.push(child);
  return { url, port: Number(new URL(url).port), child };
}

interface Result {
  problemId: string;
  strategy: string;
  budget: number;
  seed: number;
  answer: string | null;
  correct: boolean;
  error: string | null;
  compute: { retries: number; generatedTokens: number; prefilledTokens: number };
}

const SEARCH = ["--dataset", "synth", "--strategies", "beam", "--budgets", "4", "--max-steps", "12", "--max-step-tokens", "64", "--threads", "1", "--progress", "none"];
const servedModels = (url: string) => ["--policy", `${url}/v1`, "--policy-model", "deliberate-policy", "--verifier", `${url}/v1`, "--verifier-model", "deliberate-prm-columns"];

async function bench(out: string, args: string[]): Promise<Result[]> {
  const program = new Command().exitOverride();
  registerBench(program);
  await program.parseAsync(["bench", ...SEARCH, "--out", out, ...args], { from: "user" });
  return results(out);
}

async function results(out: string): Promise<Result[]> {
  const text = await readFile(join(out, "results.jsonl"), "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Result);
}

const tempOut = async () => join(await mkdtemp(join(tmpdir(), "deliberate-e2e-")), "run");
const key = (result: Result) => `${result.problemId}|${result.strategy}|${result.budget}|${result.seed}`;

describe("bench through deliberate serve", () => {
  it("gives the same answers as in process with the same seeds", { timeout: 120_000 }, async () => {
    const serve = await startServe();
    const local = await bench(await tempOut(), ["--n", "30", "--concurrency", "4", "--policy", "policy", "--verifier", "prm-columns"]);
    const served = await bench(await tempOut(), ["--n", "30", "--concurrency", "4", ...servedModels(serve.url)]);
    expect(served).toHaveLength(30);
    const byKey = new Map(local.map((result) => [key(result), result]));
    const differ = served.filter((result) => byKey.get(key(result))?.answer !== result.answer);
    const accuracy = (list: Result[]) => list.filter((result) => result.correct).length / list.length;
    console.log(`served vs in process: ${differ.length} of ${served.length} answers differ; accuracy ${accuracy(served)} vs ${accuracy(local)}`);
    expect(differ).toHaveLength(0);
    expect(served.map((result) => result.compute.generatedTokens)).toEqual(served.map((result) => byKey.get(key(result))?.compute.generatedTokens));
  });

  it("finishes with one result per item behind a proxy that resets 10% of connections and answers 503 to 5%, and records the retries", { timeout: 120_000 }, async () => {
    const serve = await startServe();
    const random = new Random(7);
    let injected = 0;
    const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        // The load-time model check is left alone: its retries belong to no item.
        const draw = req.url === "/v1/models" ? 1 : random.next();
        if (draw < 0.1) {
          injected++;
          res.socket?.destroy();
          return;
        }
        if (draw < 0.15) {
          injected++;
          res.writeHead(503, { "content-type": "application/json" }).end(JSON.stringify({ error: { message: "overloaded", type: "ServiceUnavailable", code: 503 } }));
          return;
        }
        const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
        fetch(`${serve.url}${req.url}`, { method: req.method, headers: { "content-type": "application/json" }, body })
          .then(async (upstream) => res.writeHead(upstream.status, { "content-type": "application/json" }).end(await upstream.text()))
          .catch(() => res.socket?.destroy());
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    closers.push(() => proxy.close());
    const proxied = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    const out = await tempOut();
    const served = await bench(out, ["--n", "12", "--concurrency", "4", ...servedModels(proxied)]);
    expect(served).toHaveLength(12);
    expect(new Set(served.map(key)).size).toBe(12);
    expect(served.every((result) => result.error === null)).toBe(true);
    const retries = served.reduce((sum, result) => sum + result.compute.retries, 0);
    console.log(`fault proxy: ${injected} faults injected, ${retries} retries recorded`);
    expect(injected).toBeGreaterThan(10);
    expect(retries).toBe(injected);
  });

  it("stops when the server is killed with -9 mid-run, keeping finished items, and the same command completes after a restart", { timeout: 120_000 }, async () => {
    let serve = await startServe();
    const out = await tempOut();
    const args = ["--n", "16", "--concurrency", "2", ...servedModels(serve.url)];
    const watch = setInterval(() => {
      void results(out).then((done) => {
        if (done.length >= 4) serve.child.kill("SIGKILL");
      });
    }, 50);
    const stopped: unknown = await bench(out, args).then(
      () => null,
      (error: unknown) => error,
    );
    clearInterval(watch);
    expect(stopped).toBeInstanceOf(UnavailableError);
    const before = await results(out);
    expect(before.length).toBeGreaterThanOrEqual(4);
    expect(before.length).toBeLessThan(16);
    expect(before.every((result) => result.error === null)).toBe(true);

    serve = await startServe(serve.port);
    const after = await bench(out, args);
    expect(after).toHaveLength(16);
    expect(new Set(after.map(key)).size).toBe(16);
    expect(after.every((result) => result.error === null)).toBe(true);
  });
});

/**
 * A pass-through proxy to `deliberate serve` that notes each completion's prompt type, and with
 * `withoutTokenIds` drops token_ids from the answers, as a server without return_token_ids answers.
 */
async function promptProxy(target: string, withoutTokenIds: boolean): Promise<{ url: string; promptTypes: string[] }> {
  const promptTypes: string[] = [];
  const proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = chunks.length > 0 ? Buffer.concat(chunks).toString() : undefined;
      const completion = req.url === "/v1/completions";
      if (completion) promptTypes.push(Array.isArray((JSON.parse(body as string) as { prompt: unknown }).prompt) ? "ids" : "text");
      fetch(`${target}${req.url}`, { method: req.method, headers: { "content-type": "application/json" }, body })
        .then(async (upstream) => {
          let text = await upstream.text();
          if (completion && withoutTokenIds && upstream.ok) {
            const answer = JSON.parse(text) as { choices: Record<string, unknown>[] };
            for (const choice of answer.choices) {
              delete choice.token_ids;
              delete choice.prompt_token_ids;
            }
            text = JSON.stringify(answer);
          }
          res.writeHead(upstream.status, { "content-type": "application/json" }).end(text);
        })
        .catch(() => res.socket?.destroy());
    });
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  closers.push(() => proxy.close());
  return { url: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, promptTypes };
}

describe("text prompts through deliberate serve", () => {
  it("give the same answers and tokens as token ids (the embedded tokenizer is character-level, so text round-trips exactly), forced or found by auto", { timeout: 180_000 }, async () => {
    const serve = await startServe();
    const run = async (mode: PromptMode, withoutTokenIds: boolean) => {
      const proxy = await promptProxy(serve.url, withoutTokenIds);
      const results = await bench(await tempOut(), ["--n", "12", "--concurrency", "4", ...servedModels(proxy.url), "--policy-prompt", mode]);
      return { results, promptTypes: proxy.promptTypes };
    };
    const tokens = await run("tokens", false);
    const text = await run("text", false);
    const auto = await run("auto", true);
    expect(new Set(tokens.promptTypes)).toEqual(new Set(["ids"]));
    expect(new Set(text.promptTypes)).toEqual(new Set(["text"]));
    // auto sends ids until the first answer comes back without token_ids: only the first steps of the
    // items in flight then (4 items, 4 branches each) can have gone as ids.
    const sentAsIds = auto.promptTypes.filter((type) => type === "ids").length;
    expect(sentAsIds).toBeGreaterThan(0);
    expect(sentAsIds).toBeLessThanOrEqual(16);
    expect(auto.promptTypes.length).toBeGreaterThan(100);
    const byKey = new Map(tokens.results.map((result) => [key(result), result]));
    for (const other of [text.results, auto.results]) {
      expect(other).toHaveLength(12);
      const same = other.filter((result) => {
        const base = byKey.get(key(result));
        return base?.answer === result.answer && base.compute.generatedTokens === result.compute.generatedTokens && base.compute.prefilledTokens === result.compute.prefilledTokens;
      });
      expect(same).toHaveLength(12);
    }
  });
});

describe("n: k for the children of one parent", () => {
  // Hot enough that the four children of one parent differ, so that a choice given to the wrong child shows.
  const sampling = { temperature: 2.5, topP: 1, maxStepTokens: 64 };
  const served = (url: string, mode: PromptMode, batchN: boolean) => connectPolicy(`${url}/v1`, { model: "deliberate-policy", promptMode: mode, batchN });
  const summary = (steps: StepResult[]) => steps.map((step) => ({ text: step.text, tokens: step.tokens, stopReason: step.stopReason, logprobs: step.logprobs }));

  it("bench --policy-batch-n sends fewer completion requests for the same search, every item answered", { timeout: 120_000 }, async () => {
    const serve = await startServe();
    const run = async (extra: string[]) => {
      const proxy = await promptProxy(serve.url, false);
      const results = await bench(await tempOut(), ["--n", "6", "--concurrency", "2", ...servedModels(proxy.url), ...extra]);
      return { results, requests: proxy.promptTypes.length };
    };
    const separate = await run([]);
    const batched = await run(["--policy-batch-n"]);
    expect(batched.results).toHaveLength(6);
    expect(batched.results.every((result) => result.error === null && result.answer !== null)).toBe(true);
    console.log(`bench, beam budget 4, 6 problems: ${separate.requests} completion requests one per branch, ${batched.requests} with n: k`);
    expect(batched.requests).toBeLessThan(separate.requests);
  });

  for (const mode of ["tokens", "text"] as const) {
    it(`sends one request for k forks at the same point (${mode} prompts), each fork its own choice, as k requests seeded s, s+1, ...`, { timeout: 60_000 }, async () => {
      const serve = await startServe();
      const batched = await served(serve.url, mode, true);
      const separate = await served(serve.url, mode, false);
      // a problem whose first step the policy is unsure of, so that differently seeded forks differ
      const problem = { problem: "Compute 4817 * 63 - 9 / 14 + 2968." };
      const parent = await batched.start(problem);
      const children = Array.from({ length: 4 }, () => parent.fork());
      const other = await batched.start({ problem: "Compute 3 * 9." });
      const before = batched.endpoints.requests;
      // Four children of one parent and another prompt: two requests.
      const steps = await batched.extend([...children, other], { ...sampling, seeds: [500, 9, 9, 9, 77] });
      expect(batched.endpoints.requests - before).toBe(2);
      expect(batched.fingerprint).toMatch(/ batch-n$/);
      expect(separate.fingerprint).not.toMatch(/batch-n/);

      // deliberate serve seeds choice j of a request with seed + j, as vLLM does.
      const reference = await separate.start(problem);
      const one = Array.from({ length: 4 }, () => reference.fork());
      const expected = await separate.extend([...one, await separate.start({ problem: "Compute 3 * 9." })], { ...sampling, seeds: [500, 501, 502, 503, 77] });
      expect(new Set(steps.slice(0, 4).map((step) => step.text)).size).toBeGreaterThan(1);
      expect(summary(steps)).toEqual(summary(expected));
      expect(steps.every((step) => step.tokens > 0)).toBe(true);
      expect(children.map((child) => child.steps)).toEqual(one.map((branch) => branch.steps));

      // The children went their own ways: their next steps continue each one's own text.
      const open = children.map((child, i) => [child, one[i] as Branch] as const).filter(([child]) => !child.finished);
      const next = await batched.extend(open.map(([child]) => child), { ...sampling, seeds: open.map((_, i) => 40 + i) });
      const nextExpected = await separate.extend(open.map(([, branch]) => branch), { ...sampling, seeds: open.map((_, i) => 40 + i) });
      expect(summary(next)).toEqual(summary(nextExpected));
      await batched.close();
      await separate.close();
    });
  }
});
