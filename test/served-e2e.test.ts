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

/** `deliberate serve` with the embedded policy and PRM, on `port` (0: a free one); resolves once it listens. */
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
  compute: { retries: number; generatedTokens: number };
}

const SEARCH = ["--dataset", "synth", "--strategies", "beam", "--budgets", "4", "--max-steps", "12", "--max-step-tokens", "64", "--threads", "1", "--progress", "none"];
const servedModels = (url: string) => ["--policy", `${url}/v1`, "--policy-model", "deliberate-policy", "--verifier", `${url}/v1`, "--verifier-model", "deliberate-prm"];

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
    const local = await bench(await tempOut(), ["--n", "30", "--concurrency", "4", "--policy", "policy", "--verifier", "prm"]);
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
