/**
 * Load benchmark of the strategies served as chat models (a script that prints figures, not a timed
 * test): `deliberate serve`'s server on a loopback port with the embedded policy and PRM, and
 * `--requests` chat completions from `--concurrency` clients at once through the official openai
 * client, cycling through `--models` over synthetic test problems. Every request must be answered
 * with a 200 or a clean 429 (with Retry-After); anything else is counted as a failure and makes the
 * script exit 1. Prints latency (p50, p99), throughput, tokens, and resident memory after a warm-up,
 * at its peak and after the run (the searches' memory must come back), and writes JSON.
 * No new request starts after `--time-limit` seconds. `--passes N` repeats the load N times and
 * reports the memory after each pass, to tell memory that keeps growing from memory that plateaus.
 *
 *   npm run bench:serve [-- --requests 200 --concurrency 32 --models best-of-n-4,beam-4 --max-concurrent 8 --out runs/bench-serve.json]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import OpenAI from "openai";
import { generateSynth } from "../datasets/synth/generate.js";
import { defaultAllocationTable, loadAllocationTable } from "../src/allocation/table.js";
import { loadPolicy, loadVerifier } from "../src/runtime/load.js";
import { createServer } from "../src/serve/server.js";

const { values: flags } = parseArgs({
  options: {
    requests: { type: "string", default: "200" },
    concurrency: { type: "string", default: "32" },
    models: { type: "string", default: "best-of-n-4,beam-4,majority-4,compute-optimal-4" },
    "max-concurrent": { type: "string", default: "8" },
    "max-queue": { type: "string", default: "64" },
    "time-limit": { type: "string", default: "600" },
    passes: { type: "string", default: "1" },
    out: { type: "string", default: "runs/bench-serve.json" },
  },
});
const requests = Number(flags.requests);
const concurrency = Number(flags.concurrency);
const models = flags.models.split(",");
const timeLimitMs = Number(flags["time-limit"]) * 1000;
const passes = Number(flags.passes);
const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

/** Memory once garbage is collected (run with --expose-gc, as `npm run bench:serve` does) and the allocator settles, in MiB. */
async function settledMemory(): Promise<{ rss: number; heapUsed: number; external: number }> {
  globalThis.gc?.();
  await new Promise((resolve) => setTimeout(resolve, 500));
  globalThis.gc?.();
  const { rss, heapUsed, external } = process.memoryUsage();
  return { rss: mib(rss), heapUsed: mib(heapUsed), external: mib(external) };
}

const policy = await loadPolicy("policy");
const verifier = await loadVerifier("prm");
const server = await createServer({
  policy,
  verifier,
  policyName: "deliberate-policy",
  verifierName: "deliberate-prm",
  host: "127.0.0.1",
  port: 0,
  prefixCache: { maxEntries: 4096, maxBytes: 2 ** 29 },
  service: { maxConcurrent: Number(flags["max-concurrent"]), maxQueue: Number(flags["max-queue"]), requestTimeoutMs: 120_000 },
  strategyDefaults: { "compute-optimal": { table: loadAllocationTable(defaultAllocationTable()) } },
});
const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "none", maxRetries: 0, timeout: 180_000 });
const problems = generateSynth({ split: "test", seed: 1, n: requests }).map((problem) => problem.problem);

interface Outcome {
  status: number;
  ms: number;
  tokens: number;
  retryAfter?: string | null;
  error?: string;
}

async function ask(index: number): Promise<Outcome> {
  const started = performance.now();
  const body = { model: models[index % models.length] as string, messages: [{ role: "user" as const, content: problems[index % problems.length] as string }], seed: index };
  try {
    const response = await client.chat.completions.create(body);
    return { status: 200, ms: performance.now() - started, tokens: response.usage?.total_tokens ?? 0 };
  } catch (error) {
    const status = error instanceof OpenAI.APIError ? (error.status ?? 0) : 0;
    const retryAfter = error instanceof OpenAI.APIError ? (error.headers?.get("retry-after") ?? null) : null;
    return { status, ms: performance.now() - started, tokens: 0, retryAfter, error: (error as Error).message };
  }
}

/** `count` requests from `clients` concurrent clients; none starts after the deadline. */
async function load(count: number, clients: number, deadline: number): Promise<Outcome[]> {
  const outcomes: Outcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count && performance.now() < deadline) outcomes.push(await ask(next++));
  };
  await Promise.all(Array.from({ length: clients }, worker));
  return outcomes;
}

// Warm-up at full concurrency, so that the runtime's arenas and the JIT have grown before "before".
await load(concurrency, concurrency, Infinity);
const before = await settledMemory();
let rssPeak = 0;
const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 100);
const started = performance.now();
const outcomes: Outcome[] = [];
const afterPasses: Awaited<ReturnType<typeof settledMemory>>[] = [];
for (let pass = 0; pass < passes; pass++) {
  outcomes.push(...(await load(requests, concurrency, started + timeLimitMs)));
  afterPasses.push(await settledMemory());
}
const seconds = (performance.now() - started) / 1000;
clearInterval(sampler);
const held = await policy.stats();
await server.close();
await policy.close();
await verifier.close();

const ok = outcomes.filter((outcome) => outcome.status === 200);
const refused = outcomes.filter((outcome) => outcome.status === 429);
const clean429 = refused.filter((outcome) => Number(outcome.retryAfter) >= 1);
const failed = outcomes.filter((outcome) => outcome.status !== 200 && !(outcome.status === 429 && Number(outcome.retryAfter) >= 1));
const latencies = ok.map((outcome) => outcome.ms).sort((a, b) => a - b);
const tokens = ok.reduce((sum, outcome) => sum + outcome.tokens, 0);
const result = {
  requests: requests * passes,
  passes,
  sent: outcomes.length,
  concurrency,
  models,
  serverSlots: Number(flags["max-concurrent"]),
  serverQueue: Number(flags["max-queue"]),
  answered200: ok.length,
  answered429: refused.length,
  clean429: clean429.length,
  failed: failed.length,
  failures: failed.slice(0, 5).map(({ status, error }) => ({ status, error })),
  seconds: Number(seconds.toFixed(2)),
  requestsPerSecond: Number((ok.length / seconds).toFixed(2)),
  tokensPerSecond: Math.round(tokens / seconds),
  latencyMs: { p50: Math.round(percentile(latencies, 50)), p99: Math.round(percentile(latencies, 99)), max: Math.round(latencies.at(-1) ?? NaN) },
  memoryMiB: { before, peakRss: mib(rssPeak), afterEachPass: afterPasses },
  policyAfter: { liveBranches: held.liveBranches, heldStateBytes: held.heldStateBytes },
};

console.log(`deliberate serve, strategies as chat models: ${outcomes.length} of ${requests * passes} requests at ${concurrency} concurrent (${models.join(", ")}), ${result.serverSlots} search slots`);
console.log(`  answered: ${ok.length} x 200, ${refused.length} x 429 (${clean429.length} with Retry-After), ${failed.length} failed`);
console.log(`  latency: p50 ${result.latencyMs.p50} ms, p99 ${result.latencyMs.p99} ms, max ${result.latencyMs.max} ms`);
console.log(`  throughput: ${result.requestsPerSecond} requests/s, ${result.tokensPerSecond} tokens/s (usage: policy prefill + generated + verifier) over ${result.seconds} s`);
const memory = (m: typeof before) => `${m.rss} MiB (JS heap ${m.heapUsed}, external ${m.external})`;
console.log(`  resident memory: ${memory(before)} after warm-up, ${result.memoryMiB.peakRss} MiB at peak`);
for (const [pass, after] of afterPasses.entries()) console.log(`  after pass ${pass + 1}: ${memory(after)}`);
console.log(`  policy after the run: ${held.liveBranches} live branches, ${held.heldStateBytes} bytes of decoding state`);
for (const failure of result.failures) console.log(`  failure: ${failure.status} ${failure.error}`);
mkdirSync(dirname(flags.out), { recursive: true });
writeFileSync(flags.out, `${JSON.stringify(result, null, 2)}\n`);
console.log(`wrote ${flags.out}`);
process.exitCode = failed.length > 0 ? 1 : 0;
