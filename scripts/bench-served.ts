/**
 * The same beam search (budget 16, 50 synthetic problems) in process and through `deliberate serve`
 * (a child process on a free loopback port, the same embedded models), side by side: wall time,
 * generated tokens per second, requests, and the HTTP overhead of one step request (sequential
 * single-branch steps, served minus in process); and the served search again with `batchN` (one
 * `n: k` request for the k children of a parent). Prints the figures and writes runs/bench-served.json.
 *
 *   npm run bench:served [-- --n 50 --budget 16 --concurrency 8]
 */
import { spawnServe } from "../test/support/serve-process.js";
import { mkdirSync, writeFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseBenchConfig } from "../src/bench/config.js";
import { readRunResults } from "../src/bench/store.js";
import { runBench } from "../src/bench/run.js";
import type { Policy, StepVerifier } from "../src/policy.js";
import { loadPolicy, loadVerifier, packageRoot } from "../src/runtime/load.js";
import { connectPolicy, type ServedPolicy } from "../src/served/policy.js";
import { connectVerifier } from "../src/served/verifier.js";

const { values: flags } = parseArgs({ options: { n: { type: "string", default: "50" }, budget: { type: "string", default: "16" }, concurrency: { type: "string", default: "8" } } });
const n = Number(flags.n);
const budget = Number(flags.budget);
const concurrency = Number(flags.concurrency);

async function startServe(): Promise<{ url: string; stop(): void }> {
  const { url, child } = await spawnServe(["--port", "0", "--threads", "1"]);
  return { url, stop: () => child.kill("SIGTERM") };
}

/** The beam search over the synthetic problems with these models: wall seconds, generated tokens, results. */
async function search(policy: Policy, verifier: StepVerifier) {
  const out = join(await mkdtemp(join(tmpdir(), "deliberate-bench-served-")), "run");
  const config = parseBenchConfig({ n, strategies: ["beam"], budgets: [budget], maxSteps: 12, maxStepTokens: 64, concurrency, progress: "none", out });
  const started = performance.now();
  const summary = await runBench(config, { policy, verifier });
  const seconds = (performance.now() - started) / 1000;
  const results = await readRunResults(out);
  const tokens = results.reduce((sum, result) => sum + (result.compute?.generatedTokens ?? 0), 0);
  const correct = `${results.filter((result) => result.correct).length} of ${results.length}`;
  return { seconds, tokens, tokensPerSecond: tokens / seconds, errors: summary.errors, correct, answers: results.map((result) => `${result.problemId}:${result.answer}`).sort() };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** Ms of single-branch steps from one prefilled prompt, one at a time, with seeds from `firstSeed`. */
async function stepTimes(policy: Policy, firstSeed: number, count = 20): Promise<number[]> {
  const root = await policy.start({ problem: "Compute (160 - 89) * 10 + 60 - 45 * 3." });
  const times: number[] = [];
  for (let i = 0; i < count; i++) {
    const branch = root.fork();
    const started = performance.now();
    await policy.extend([branch], { temperature: 1, seeds: [firstSeed + i], maxStepTokens: 64 });
    times.push(performance.now() - started);
    branch.release();
  }
  root.release();
  return times;
}

/** Ms of the policy client's `extend` of k forks of one prompt (with `batchN`, one request), median of `rounds`. */
async function clientExpansion(policy: Policy, k: number, rounds = 15): Promise<number> {
  const root = await policy.start({ problem: "Compute (160 - 89) * 10 + 60 - 45 * 3." });
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const forks = Array.from({ length: k }, () => root.fork());
    const started = performance.now();
    await policy.extend(forks, { temperature: 1, seeds: forks.map((_, i) => 1000 * round + i), maxStepTokens: 64 });
    times.push(performance.now() - started);
  }
  return median(times);
}

/** Ms to expand one prompt k ways: one request with `n: k` against k requests at once (median of `rounds`). */
async function expansion(base: string, prompt: number[], k: number, rounds = 15): Promise<{ nK: number; kRequests: number }> {
  const body = { model: "deliberate-policy", prompt, max_tokens: 64, temperature: 1, stop: ["\n\n"], include_stop_str_in_output: true, return_token_ids: true };
  const post = (extra: object) => fetch(`${base}/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body, ...extra }) }).then((res) => res.json());
  const nK: number[] = [];
  const kRequests: number[] = [];
  for (let round = 0; round < rounds; round++) {
    let started = performance.now();
    await post({ n: k, seed: 1000 * round });
    nK.push(performance.now() - started);
    started = performance.now();
    await Promise.all(Array.from({ length: k }, (_, i) => post({ n: 1, seed: 1000 * round + i })));
    kRequests.push(performance.now() - started);
  }
  return { nK: median(nK), kRequests: median(kRequests) };
}

const localPolicy = await loadPolicy("policy", { threads: 1 });
const localVerifier = await loadVerifier("prm", { threads: 1 });
const local = await search(localPolicy, localVerifier);
await localVerifier.close();

const serve = await startServe();
let served: Awaited<ReturnType<typeof search>>;
let servedBatchN: Awaited<ReturnType<typeof search>>;
let batchNRequests: number;
let clientFourWays: { batchN: number; separate: number };
let requests: number;
let retries: number;
const localSteps: number[] = [];
const servedSteps: number[] = [];
let expand: { nK: number; kRequests: number };
try {
  const policy: ServedPolicy = await connectPolicy(`${serve.url}/v1`, { model: "deliberate-policy" });
  const verifier = await connectVerifier(`${serve.url}/v1`, { model: "deliberate-prm" });
  served = await search(policy, verifier);
  requests = policy.endpoints.requests + verifier.endpoints.requests;
  retries = policy.retries + verifier.endpoints.retries;
  // Alternating blocks, so that load from elsewhere on the machine falls on both sides alike.
  for (let block = 0; block < 4; block++) {
    localSteps.push(...(await stepTimes(localPolicy, 100 * block)));
    servedSteps.push(...(await stepTimes(policy, 100 * block)));
  }
  const prompt = await localPolicy.renderPrompt({ problem: "Compute (160 - 89) * 10 + 60 - 45 * 3." });
  expand = await expansion(`${serve.url}/v1`, prompt, 4);
  const batchingPolicy = await connectPolicy(`${serve.url}/v1`, { model: "deliberate-policy", batchN: true });
  const policyRequestsBefore = batchingPolicy.endpoints.requests;
  servedBatchN = await search(batchingPolicy, verifier);
  batchNRequests = batchingPolicy.endpoints.requests - policyRequestsBefore;
  clientFourWays = { batchN: await clientExpansion(batchingPolicy, 4), separate: await clientExpansion(policy, 4) };
  await batchingPolicy.close();
  await policy.close();
  await verifier.close();
} finally {
  serve.stop();
  await localPolicy.close();
}
const localStepMs = median(localSteps);
const servedStepMs = median(servedSteps);

const sameAnswers = served.answers.filter((answer, i) => answer === local.answers[i]).length;
const report = {
  problems: n,
  budget,
  concurrency,
  inProcess: { seconds: Number(local.seconds.toFixed(2)), generatedTokens: local.tokens, tokensPerSecond: Math.round(local.tokensPerSecond), errors: local.errors },
  served: { seconds: Number(served.seconds.toFixed(2)), generatedTokens: served.tokens, tokensPerSecond: Math.round(served.tokensPerSecond), errors: served.errors, requests, retries },
  servedOverInProcess: Number((served.tokensPerSecond / local.tokensPerSecond).toFixed(3)),
  sameAnswers: `${sameAnswers} of ${served.answers.length}`,
  stepRequestMs: { inProcess: Number(localStepMs.toFixed(2)), served: Number(servedStepMs.toFixed(2)), httpOverhead: Number((servedStepMs - localStepMs).toFixed(2)) },
  amortizedOverheadMsPerRequest: Number(((1000 * (served.seconds - local.seconds)) / requests).toFixed(2)),
  expandFourWaysMs: { oneRequestN4: Number(expand.nK.toFixed(2)), fourRequests: Number(expand.kRequests.toFixed(2)) },
  servedBatchN: {
    seconds: Number(servedBatchN.seconds.toFixed(2)),
    generatedTokens: servedBatchN.tokens,
    tokensPerSecond: Math.round(servedBatchN.tokensPerSecond),
    errors: servedBatchN.errors,
    policyRequests: batchNRequests,
    accuracy: servedBatchN.correct,
    accuracyWithout: served.correct,
    clientExtendFourForksMs: { batchN: Number(clientFourWays.batchN.toFixed(2)), separate: Number(clientFourWays.separate.toFixed(2)) },
  },
};
console.log(`beam search, budget ${budget}, ${n} synthetic problems, ${concurrency} at once`);
console.log(`              wall s   gen tokens   tokens/s`);
console.log(`in process  ${report.inProcess.seconds.toFixed(1).padStart(8)} ${String(local.tokens).padStart(12)} ${String(report.inProcess.tokensPerSecond).padStart(10)}`);
console.log(`served      ${report.served.seconds.toFixed(1).padStart(8)} ${String(served.tokens).padStart(12)} ${String(report.served.tokensPerSecond).padStart(10)}`);
console.log(`served / in process: ${(100 * report.servedOverInProcess).toFixed(1)}% of the throughput (target 70%); ${report.sameAnswers} answers the same`);
console.log(`${requests} HTTP requests, ${retries} retries`);
console.log(`one step request (median of 80, alternating): ${report.stepRequestMs.inProcess} ms in process, ${report.stepRequestMs.served} ms served: ${report.stepRequestMs.httpOverhead} ms of HTTP overhead`);
console.log(`whole run: ${report.amortizedOverheadMsPerRequest} ms more wall time per HTTP request`);
console.log(`expanding a prompt 4 ways (median of 15): one request with n=4 ${report.expandFourWaysMs.oneRequestN4} ms, four requests at once ${report.expandFourWaysMs.fourRequests} ms`);
const withN = report.servedBatchN;
console.log(`served with --policy-batch-n: ${withN.seconds.toFixed(1)} s, ${withN.generatedTokens} gen tokens, ${withN.tokensPerSecond} tokens/s, ${withN.policyRequests} policy requests; accuracy ${withN.accuracy} (without: ${withN.accuracyWithout})`);
console.log(`the client's extend of 4 forks of one prompt (median of 15): ${withN.clientExtendFourForksMs.batchN} ms with batchN, ${withN.clientExtendFourForksMs.separate} ms without`);
mkdirSync(join(packageRoot(), "runs"), { recursive: true });
writeFileSync(join(packageRoot(), "runs", "bench-served.json"), JSON.stringify(report, null, 2) + "\n");
