/**
 * Runtime benchmark (not a timed test): decode throughput at batch 1, 8, 32 and 64 for the embedded
 * recurrent policy, the baseline transformer and the Mixture-of-Depths transformer (models/mod;
 * beside the baseline: tokens/s ratio per batch and decode FLOPs per token as the meter counts them), the cost of a fork, decoding state bytes per
 * branch at lengths 64, 256 and 1024, how long the JavaScript thread is blocked per decoding step
 * (the model runs in a worker), and achieved FLOP/s beside a matrix-multiply peak measured in the
 * same run. Prints a table and writes runs/bench-runtime.json.
 *
 *   npm run bench:runtime [-- --device cpu|cuda|webgpu|auto] [-- --repeats 3] [-- --models policy,baseline,mod] [-- --mod DIR] [-- --threads N]
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { ComputeMeter } from "../src/meter.js";
import type { Branch } from "../src/policy.js";
import { loadPolicy, packageRoot } from "../src/runtime/load.js";
import type { OnnxPolicy } from "../src/runtime/onnx-policy.js";
import type { Device } from "../src/runtime/session.js";

const { values: flags } = parseArgs({
  options: {
    device: { type: "string", default: "cpu" },
    repeats: { type: "string", default: "3" },
    // The Mixture-of-Depths model to bench (default the export in models/mod), e.g. one made by
    // `export_mod.py --route-share 0.25` to bench an untrained checkpoint at a trained model's routed share.
    mod: { type: "string", default: "mod" },
    models: { type: "string", default: "policy,baseline,mod" },
    // Intra-op threads per model (default all cores). With 1 no session has idle threads spinning,
    // which the Mixture-of-Depths sessions never have (they take turns) and the others do by default.
    threads: { type: "string" },
  },
});
const device = flags.device as Device;
const repeats = Number(flags.repeats);
const BATCHES = [1, 8, 32, 64];
const TOKENS_PER_BRANCH = 96;
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

/** Decodes `batch` branches of a long problem until each generated TOKENS_PER_BRANCH tokens (or ended). */
async function decodeRun(policy: OnnxPolicy, batch: number, seed: number) {
  const root = await policy.start({ problem: "Compute (160 - 89) * 10 + 60 - 45 * 3 + 120 - 77." });
  const branches: Branch[] = Array.from({ length: batch }, () => root.fork());
  root.release();
  const delay = monitorEventLoopDelay({ resolution: 1 });
  const started = performance.now();
  delay.enable();
  let tokens = 0;
  let round = 0;
  let runs = 0;
  let live = branches;
  // Decode compute as the meter counts it (a Mixture-of-Depths model reports the FLOPs it really spent).
  const meter = new ComputeMeter();
  while (live.length > 0) {
    // No stop string: every round decodes 32 tokens a branch whatever the model writes (an untrained
    // model ends a step after two newlines, and rounds that short would measure the round trip, not decoding).
    const steps = await policy.decode(live, { temperature: 1, seeds: live.map((_, i) => seed * 1000 + round * 100 + i), maxStepTokens: 32, stop: [] });
    for (const step of steps) meter.countGenerated(step.tokens, policy.parameters, policy.spent(step.runs, step.routedTokens));
    tokens += steps.reduce((sum, step) => sum + step.tokens, 0);
    runs += Math.max(...steps.map((step) => step.runs));
    round++;
    live = live.filter((branch) => !branch.finished && branch.generatedTokens < TOKENS_PER_BRANCH);
  }
  delay.disable();
  const seconds = (performance.now() - started) / 1000;
  for (const branch of branches) branch.release();
  // Decoding steps this run took: one batched graph run per token.
  const compute = meter.report();
  return { tokensPerSecond: tokens / seconds, maxBlockedMs: delay.max / 1e6, meanBlockedMs: delay.mean / 1e6, runs, flopsPerToken: (compute.flops ?? NaN) / Math.max(1, compute.generatedTokens), routing: compute.routing };
}

async function forkCost(policy: OnnxPolicy): Promise<number> {
  const root = await policy.start({ problem: "Compute 17 + 5." });
  const count = 20_000;
  const started = performance.now();
  for (let i = 0; i < count; i++) root.fork().release();
  await policy.stats(); // the worker has applied every fork and release
  root.release();
  return ((performance.now() - started) * 1000) / count;
}

/** Matrix-multiply peak through ONNX Runtime on the same device and threads: 2 n^3 / time. */
async function matmulPeak(): Promise<number> {
  const session = await ort.InferenceSession.create(join(packageRoot(), "scripts", "matmul.onnx"), { executionProviders: [device === "auto" ? "cpu" : device] });
  const n = 1024;
  const data = Float32Array.from({ length: n * n }, (_, i) => ((i * 7919) % 1000) / 1000);
  const feeds = { A: new ort.Tensor("float32", data, [n, n]), B: new ort.Tensor("float32", data, [n, n]) };
  await session.run(feeds);
  const times: number[] = [];
  for (let i = 0; i < 7; i++) {
    const started = performance.now();
    await session.run(feeds);
    times.push((performance.now() - started) / 1000);
  }
  await session.release();
  return (2 * n ** 3) / median(times);
}

/** The event-loop delay the monitor reports for an idle loop: its floor, to read the decode figures against. */
async function idleLoopDelay(): Promise<{ max: number; mean: number }> {
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  await new Promise((resolve) => setTimeout(resolve, 1000));
  delay.disable();
  return { max: delay.max / 1e6, mean: delay.mean / 1e6 };
}

const report: Record<string, unknown> = { device, repeats, tokensPerBranch: TOKENS_PER_BRANCH, threads: flags.threads ? Number(flags.threads) : "all cores" };
const idle = await idleLoopDelay();
report.idleLoopDelayMs = { max: Number(idle.max.toFixed(2)), mean: Number(idle.mean.toFixed(3)) };
console.log(`event-loop delay of an idle loop (the monitor's floor): max ${idle.max.toFixed(2)} / mean ${idle.mean.toFixed(3)} ms`);
const peak = await matmulPeak();
report.matmulPeakGflops = peak / 1e9;
console.log(`matrix-multiply peak (1024 x 1024, ONNX Runtime, ${device}): ${(peak / 1e9).toFixed(1)} GFLOP/s`);

for (const name of (flags.models as string).split(",")) {
  const policy = await loadPolicy(name === "mod" ? (flags.mod as string) : name, { device, ...(flags.threads ? { threads: Number(flags.threads) } : {}) });
  const rows = [];
  for (const batch of BATCHES) {
    const runs = [];
    for (let r = 0; r < repeats; r++) runs.push(await decodeRun(policy, batch, r));
    const tokensPerSecond = median(runs.map((run) => run.tokensPerSecond));
    const flopsPerToken = median(runs.map((run) => run.flopsPerToken));
    const routing = runs[0]?.routing;
    rows.push({
      batch,
      tokensPerSecond: Math.round(tokensPerSecond),
      flopsPerToken: Math.round(flopsPerToken),
      ...(routing ? { routedShare: Object.fromEntries(Object.entries(routing).map(([block, entry]) => [block, Number(entry.share.toFixed(3))])) } : {}),
      achievedGflops: Number(((flopsPerToken * tokensPerSecond) / 1e9).toFixed(2)),
      // A run too short for the monitor to sample reports NaN; such runs are left out.
      maxBlockedMs: Number(median(runs.map((run) => run.maxBlockedMs).filter(Number.isFinite)).toFixed(2)),
      meanBlockedMs: Number(median(runs.map((run) => run.meanBlockedMs).filter(Number.isFinite)).toFixed(3)),
    });
  }
  const forkMicros = await forkCost(policy);
  const stateBytes = (await policy.stats([64, 256, 1024])).stateBytesAt;
  await policy.close();
  const batch1 = rows[0]?.tokensPerSecond ?? 1;
  const batch32 = rows.find((row) => row.batch === 32)?.tokensPerSecond ?? 0;
  report[name] = { model: policy.name, parameters: policy.parameters, device: policy.device, decode: rows, batch32OverBatch1: Number((batch32 / batch1).toFixed(2)), forkMicros: Number(forkMicros.toFixed(2)), stateBytes: { 64: stateBytes[0], 256: stateBytes[1], 1024: stateBytes[2] } };
  console.log(`\n${name}: ${policy.name} (${policy.parameters.toLocaleString()} parameters, ${policy.device}), median of ${repeats} runs`);
  console.log("batch  tokens/s  GFLOP/s  event-loop delay max / mean (ms)");
  for (const row of rows) {
    const routed = row.routedShare ? `  routed share per block ${Object.entries(row.routedShare).map(([block, share]) => `${block}: ${share}`).join(", ")}` : "";
    console.log(`${String(row.batch).padStart(5)}  ${String(row.tokensPerSecond).padStart(8)}  ${row.achievedGflops.toFixed(2).padStart(7)}  ${row.maxBlockedMs} / ${row.meanBlockedMs}  decode FLOPs/token ${row.flopsPerToken.toLocaleString()}${routed}`);
  }
  console.log(`batch 32 / batch 1: ${(batch32 / batch1).toFixed(2)}x; fork + release: ${forkMicros.toFixed(1)} us; state bytes per branch at 64 / 256 / 1024 tokens: ${stateBytes.join(" / ")}`);
}
type Rows = { decode: { batch: number; tokensPerSecond: number; flopsPerToken: number }[] } | undefined;
const rowsOf = (name: string) => report[name] as Rows;
const at = (name: string, batch: number) => rowsOf(name)?.decode.find((row) => row.batch === batch);
if (rowsOf("policy") && rowsOf("baseline")) {
  report.policyOverBaselineAtBatch32 = Number(((at("policy", 32)?.tokensPerSecond ?? 0) / (at("baseline", 32)?.tokensPerSecond ?? 1)).toFixed(2));
  console.log(`\nrecurrent policy / baseline transformer at batch 32: ${report.policyOverBaselineAtBatch32}x`);
}
if (rowsOf("mod") && rowsOf("baseline")) {
  const ratios = BATCHES.map((batch) => Number(((at("mod", batch)?.tokensPerSecond ?? 0) / (at("baseline", batch)?.tokensPerSecond ?? 1)).toFixed(2)));
  const flops = BATCHES.map((batch) => Number(((at("mod", batch)?.flopsPerToken ?? 0) / (at("baseline", batch)?.flopsPerToken ?? 1)).toFixed(3)));
  report.modOverBaseline = { batches: BATCHES, tokensPerSecond: ratios, decodeFlopsPerToken: flops };
  console.log(`Mixture-of-Depths / baseline transformer, tokens/s at batch ${BATCHES.join(" / ")}: ${ratios.map((r) => `${r}x`).join(" / ")} (target at batch 32: >= 1.2x)`);
  console.log(`Mixture-of-Depths / baseline decode FLOPs per token (meter): ${flops.join(" / ")}`);
}
mkdirSync(join(packageRoot(), "runs"), { recursive: true });
writeFileSync(join(packageRoot(), "runs", "bench-runtime.json"), JSON.stringify(report, null, 2) + "\n");
console.log("wrote runs/bench-runtime.json");
