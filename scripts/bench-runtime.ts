/**
 * Runtime benchmark (not a timed test): decode throughput at batch 1, 8, 32 and 64 for the embedded
 * recurrent policy, the baseline transformer and the Mixture-of-Depths transformer (models/mod;
 * beside the baseline: tokens/s ratio per batch and decode FLOPs per token as the meter counts them),
 * and for the recursive model with exits off, with early exit one loop depth at a time, and with early
 * exit and depth-wise batching (tokens/s, mean loops per token, graph runs per token, and both exit
 * modes over exits off), the cost of a fork, decoding state bytes per
 * branch at lengths 64, 256 and 1024, how long the JavaScript thread is blocked per decoding step
 * (the model runs in a worker), and achieved FLOP/s beside a matrix-multiply peak measured in the
 * same run. Prints a table and writes runs/bench-runtime.json.
 *
 *   npm run bench:runtime [-- --device cpu|cuda|webgpu|auto] [-- --repeats 3] [-- --models policy,baseline,mod,recursive]
 *                         [-- --mod DIR] [-- --exit-threshold 0.9] [-- --threads N]
 *
 * For the recursive model it also reports tokens per CPU second (user + system time of this process,
 * its worker threads and ONNX Runtime's included): on a shared machine, where other work steals the
 * cores, CPU time is steadier than wall time. Read it with --threads 1 (ONNX Runtime's extra
 * intra-op threads spin while they wait, which counts as CPU time).
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
    models: { type: "string", default: "policy,baseline,mod,recursive" },
    "exit-threshold": { type: "string" },
    // Intra-op threads per model (default all cores). With 1 no session has idle threads spinning,
    // which the Mixture-of-Depths sessions never have (they take turns) and the others do by default.
    threads: { type: "string" },
  },
});
const threads = flags.threads === undefined ? {} : { threads: Number(flags.threads) };
const models = (flags.models as string).split(",").map((name) => name.trim());
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
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  delay.enable();
  let tokens = 0;
  let loops = 0;
  let copies = 0;
  let round = 0;
  let runs = 0;
  const graphRunsBefore = (await policy.stats()).decodeRuns;
  let live = branches;
  // Decode compute as the meter counts it (a Mixture-of-Depths model reports the FLOPs it really spent).
  const meter = new ComputeMeter();
  while (live.length > 0) {
    // No stop string: every round decodes 32 tokens a branch whatever the model writes (an untrained
    // model ends a step after two newlines, and rounds that short would measure the round trip, not decoding).
    const steps = await policy.decode(live, { temperature: 1, seeds: live.map((_, i) => seed * 1000 + round * 100 + i), maxStepTokens: 32, stop: [] });
    for (const step of steps) meter.countGenerated(step.tokens, policy.parameters, policy.spent(step.runs, step.routedTokens, step.loops, step.copies));
    tokens += steps.reduce((sum, step) => sum + step.tokens, 0);
    loops += steps.reduce((sum, step) => sum + (step.loops ?? 0), 0);
    copies += steps.reduce((sum, step) => sum + (step.copies ?? 0), 0);
    runs += Math.max(...steps.map((step) => step.runs));
    round++;
    live = live.filter((branch) => !branch.finished && branch.generatedTokens < TOKENS_PER_BRANCH);
  }
  delay.disable();
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const graphRuns = (await policy.stats()).decodeRuns - graphRunsBefore;
  for (const branch of branches) branch.release();
  // Decoding steps this run took: one batched graph run per token (recursive model with exits: per loop depth, or per mixed-depth run).
  const compute = meter.report();
  return {
    tokensPerSecond: tokens / seconds,
    tokensPerCpuSecond: tokens / cpuSeconds,
    maxBlockedMs: delay.max / 1e6,
    meanBlockedMs: delay.mean / 1e6,
    runs,
    tokens,
    loops,
    copies,
    graphRuns,
    flopsPerToken: (compute.flops ?? NaN) / Math.max(1, compute.generatedTokens),
    routing: compute.routing,
  };
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

const report: Record<string, unknown> = { device, repeats, tokensPerBranch: TOKENS_PER_BRANCH, threads: threads.threads ?? "all cores" };
const idle = await idleLoopDelay();
report.idleLoopDelayMs = { max: Number(idle.max.toFixed(2)), mean: Number(idle.mean.toFixed(3)) };
console.log(`event-loop delay of an idle loop (the monitor's floor): max ${idle.max.toFixed(2)} / mean ${idle.mean.toFixed(3)} ms`);
const peak = await matmulPeak();
report.matmulPeakGflops = peak / 1e9;
console.log(`matrix-multiply peak (1024 x 1024, ONNX Runtime, ${device}): ${(peak / 1e9).toFixed(1)} GFLOP/s`);

// The recursive model runs in its three modes below.
for (const name of models.filter((model) => model !== "recursive")) {
  const policy = await loadPolicy(name === "mod" ? (flags.mod as string) : name, { device, ...threads });
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

/**
 * The recursive model in three modes, in one run: exits off (decode graph, every loop), early exit
 * one loop depth at a time (no depth-wise batching), and early exit with depth-wise batching. The
 * same seeds give the two exit modes the same tokens.
 */
if (models.includes("recursive")) {
  const threshold = flags["exit-threshold"] === undefined ? undefined : flags["exit-threshold"] === "off" ? ("off" as const) : Number(flags["exit-threshold"]);
  const modes = [
    { key: "exitsOff", label: "exits off", options: { exitThreshold: "off" as const } },
    { key: "exitsNoDepthBatching", label: "exits, no depth batching", options: { ...(threshold !== undefined ? { exitThreshold: threshold } : {}), depthBatching: false } },
    { key: "exitsDepthBatching", label: "exits + depth batching", options: { ...(threshold !== undefined ? { exitThreshold: threshold } : {}), depthBatching: true } },
  ];
  const table: Record<string, { batch: number; tokensPerSecond: number; tokensPerCpuSecond: number; loopsPerToken: number; copiesPerToken: number; graphRuns: number; rowsPerRun: number }[]> = {};
  // All three loaded at once and run in turn for each batch and repeat, so that a slow spell of a
  // shared machine falls on every mode alike and the ratios compare like with like.
  const loaded = [];
  for (const mode of modes) loaded.push({ mode, policy: await loadPolicy("recursive", { device, ...threads, ...mode.options }) });
  const exits = loaded[2]?.policy;
  const info = { parameters: exits?.parameters ?? 0, device: exits?.device ?? device, exitThreshold: exits?.recursion?.exitThreshold ?? null, loops: exits?.recursion?.loops ?? 0 };
  for (const batch of BATCHES) {
    const runs: Record<string, Awaited<ReturnType<typeof decodeRun>>[]> = {};
    for (let r = 0; r < repeats; r++) {
      for (const { mode, policy } of loaded) (runs[mode.key] ??= []).push(await decodeRun(policy, batch, r));
    }
    for (const { mode } of loaded) {
      const done = runs[mode.key] ?? [];
      const tokens = done.reduce((sum, run) => sum + run.tokens, 0);
      (table[mode.key] ??= []).push({
        batch,
        tokensPerSecond: Math.round(median(done.map((run) => run.tokensPerSecond))),
        tokensPerCpuSecond: Math.round(median(done.map((run) => run.tokensPerCpuSecond))),
        loopsPerToken: Number((done.reduce((sum, run) => sum + run.loops, 0) / tokens).toFixed(3)),
        // State copies (one per exited token and skipped loop; copy-graph runs are not in graph runs).
        copiesPerToken: Number((done.reduce((sum, run) => sum + run.copies, 0) / tokens).toFixed(3)),
        // Batched graph runs per decode run (mean over repeats), and rows per graph run: a run of the
        // one-loop graph holds one row per loop run, a decode-graph run one row per token (every loop).
        graphRuns: Math.round(done.reduce((sum, run) => sum + run.graphRuns, 0) / done.length),
        rowsPerRun: Number(
          (done.reduce((sum, run) => sum + (mode.key === "exitsOff" ? run.tokens : run.loops), 0) / done.reduce((sum, run) => sum + run.graphRuns, 0)).toFixed(1),
        ),
      });
    }
  }
  for (const { policy } of loaded) await policy.close();
  const ratios = BATCHES.map((batch) => {
    const row = (key: string) => (table[key] ?? []).find((entry) => entry.batch === batch);
    const ratio = (key: string, field: "tokensPerSecond" | "tokensPerCpuSecond") => Number(((row(key)?.[field] ?? 0) / (row("exitsOff")?.[field] || 1)).toFixed(2));
    return {
      batch,
      noDepthBatchingOverOff: ratio("exitsNoDepthBatching", "tokensPerSecond"),
      depthBatchingOverOff: ratio("exitsDepthBatching", "tokensPerSecond"),
      cpuNoDepthBatchingOverOff: ratio("exitsNoDepthBatching", "tokensPerCpuSecond"),
      cpuDepthBatchingOverOff: ratio("exitsDepthBatching", "tokensPerCpuSecond"),
    };
  });
  report.recursive = { ...info, decode: table, speedupOverExitsOff: ratios };
  console.log(`\nrecursive (${info.parameters.toLocaleString()} unique parameters, ${info.device}, ${info.loops} loops, exit threshold ${info.exitThreshold}), median of ${repeats} runs, modes interleaved`);
  console.log("batch  mode                        tokens/s  tokens/CPU s  loops/token  copies/token  graph runs  rows/run  vs exits off (wall / CPU)");
  for (const batch of BATCHES) {
    for (const mode of modes) {
      const row = (table[mode.key] ?? []).find((entry) => entry.batch === batch);
      const ratio = ratios.find((entry) => entry.batch === batch);
      const depth = mode.key === "exitsDepthBatching";
      const versus =
        mode.key === "exitsOff"
          ? ""
          : `${(depth ? ratio?.depthBatchingOverOff : ratio?.noDepthBatchingOverOff)?.toFixed(2)}x / ${(depth ? ratio?.cpuDepthBatchingOverOff : ratio?.cpuNoDepthBatchingOverOff)?.toFixed(2)}x`;
      console.log(`${String(batch).padStart(5)}  ${mode.label.padEnd(26)}  ${String(row?.tokensPerSecond).padStart(8)}  ${String(row?.tokensPerCpuSecond).padStart(12)}  ${row?.loopsPerToken.toFixed(3).padStart(11)}  ${row?.copiesPerToken.toFixed(3).padStart(12)}  ${String(row?.graphRuns).padStart(10)}  ${row?.rowsPerRun.toFixed(1).padStart(8)}  ${versus}`);
    }
  }
}
mkdirSync(join(packageRoot(), "runs"), { recursive: true });
writeFileSync(join(packageRoot(), "runs", "bench-runtime.json"), JSON.stringify(report, null, 2) + "\n");
console.log("wrote runs/bench-runtime.json");
