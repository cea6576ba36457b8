/**
 * Runtime benchmark (not a timed test): decode throughput at batch 1, 8, 32 and 64 for the embedded
 * recurrent policy and the baseline transformer, and for the recursive model with exits off, with
 * early exit one loop depth at a time, and with early exit and depth-wise batching (tokens/s, mean
 * loops per token, graph runs per token, and both exit modes over exits off), the cost of a fork, decoding state bytes per
 * branch at lengths 64, 256 and 1024, how long the JavaScript thread is blocked per decoding step
 * (the model runs in a worker), and achieved FLOP/s beside a matrix-multiply peak measured in the
 * same run. Prints a table and writes runs/bench-runtime.json.
 *
 *   npm run bench:runtime [-- --device cpu|cuda|webgpu|auto] [-- --repeats 3] [-- --models policy,baseline,recursive]
 *                         [-- --exit-threshold 0.9] [-- --threads N]
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
import type { Branch } from "../src/policy.js";
import { loadPolicy, packageRoot } from "../src/runtime/load.js";
import type { OnnxPolicy } from "../src/runtime/onnx-policy.js";
import type { Device } from "../src/runtime/session.js";

const { values: flags } = parseArgs({
  options: {
    device: { type: "string", default: "cpu" },
    repeats: { type: "string", default: "3" },
    models: { type: "string", default: "policy,baseline,recursive" },
    "exit-threshold": { type: "string" },
    threads: { type: "string" },
  },
});
const threads = flags.threads === undefined ? {} : { threads: Number(flags.threads) };
const models = new Set(flags.models.split(",").map((name) => name.trim()));
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
  let round = 0;
  let runs = 0;
  const graphRunsBefore = (await policy.stats()).decodeRuns;
  let live = branches;
  while (live.length > 0) {
    const steps = await policy.extend(live, { temperature: 1, seeds: live.map((_, i) => seed * 1000 + round * 100 + i), maxStepTokens: 32 });
    tokens += steps.reduce((sum, step) => sum + step.tokens, 0);
    loops += steps.reduce((sum, step) => sum + (step.loops ?? 0), 0);
    runs += Math.max(...steps.map((step) => step.calls));
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
  return { tokensPerSecond: tokens / seconds, tokensPerCpuSecond: tokens / cpuSeconds, maxBlockedMs: delay.max / 1e6, meanBlockedMs: delay.mean / 1e6, runs, tokens, loops, graphRuns };
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

const report: Record<string, unknown> = { device, repeats, threads: threads.threads ?? null, tokensPerBranch: TOKENS_PER_BRANCH };
const idle = await idleLoopDelay();
report.idleLoopDelayMs = { max: Number(idle.max.toFixed(2)), mean: Number(idle.mean.toFixed(3)) };
console.log(`event-loop delay of an idle loop (the monitor's floor): max ${idle.max.toFixed(2)} / mean ${idle.mean.toFixed(3)} ms`);
const peak = await matmulPeak();
report.matmulPeakGflops = peak / 1e9;
console.log(`matrix-multiply peak (1024 x 1024, ONNX Runtime, ${device}): ${(peak / 1e9).toFixed(1)} GFLOP/s`);

for (const name of ["policy", "baseline"].filter((model) => models.has(model))) {
  const policy = await loadPolicy(name, { device, ...threads });
  const rows = [];
  for (const batch of BATCHES) {
    const runs = [];
    for (let r = 0; r < repeats; r++) runs.push(await decodeRun(policy, batch, r));
    const tokensPerSecond = median(runs.map((run) => run.tokensPerSecond));
    rows.push({
      batch,
      tokensPerSecond: Math.round(tokensPerSecond),
      achievedGflops: Number(((2 * policy.parameters * tokensPerSecond) / 1e9).toFixed(2)),
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
  report[name] = { parameters: policy.parameters, device: policy.device, decode: rows, batch32OverBatch1: Number((batch32 / batch1).toFixed(2)), forkMicros: Number(forkMicros.toFixed(2)), stateBytes: { 64: stateBytes[0], 256: stateBytes[1], 1024: stateBytes[2] } };
  console.log(`\n${name} (${policy.parameters.toLocaleString()} parameters, ${policy.device}), median of ${repeats} runs`);
  console.log("batch  tokens/s  GFLOP/s  event-loop delay max / mean (ms)");
  for (const row of rows) console.log(`${String(row.batch).padStart(5)}  ${String(row.tokensPerSecond).padStart(8)}  ${row.achievedGflops.toFixed(2).padStart(7)}  ${row.maxBlockedMs} / ${row.meanBlockedMs}`);
  console.log(`batch 32 / batch 1: ${(batch32 / batch1).toFixed(2)}x; fork + release: ${forkMicros.toFixed(1)} us; state bytes per branch at 64 / 256 / 1024 tokens: ${stateBytes.join(" / ")}`);
}
if (models.has("policy") && models.has("baseline")) {
  const policyRow = (report.policy as { decode: { batch: number; tokensPerSecond: number }[] }).decode.find((row) => row.batch === 32);
  const baselineRow = (report.baseline as { decode: { batch: number; tokensPerSecond: number }[] }).decode.find((row) => row.batch === 32);
  report.policyOverBaselineAtBatch32 = Number(((policyRow?.tokensPerSecond ?? 0) / (baselineRow?.tokensPerSecond ?? 1)).toFixed(2));
  console.log(`\nrecurrent policy / baseline transformer at batch 32: ${report.policyOverBaselineAtBatch32}x`);
}

/**
 * The recursive model in three modes, in one run: exits off (decode graph, every loop), early exit
 * one loop depth at a time (no depth-wise batching), and early exit with depth-wise batching. The
 * same seeds give the two exit modes the same tokens.
 */
if (models.has("recursive")) {
  const threshold = flags["exit-threshold"] === undefined ? undefined : flags["exit-threshold"] === "off" ? ("off" as const) : Number(flags["exit-threshold"]);
  const modes = [
    { key: "exitsOff", label: "exits off", options: { exitThreshold: "off" as const } },
    { key: "exitsNoDepthBatching", label: "exits, no depth batching", options: { ...(threshold !== undefined ? { exitThreshold: threshold } : {}), depthBatching: false } },
    { key: "exitsDepthBatching", label: "exits + depth batching", options: { ...(threshold !== undefined ? { exitThreshold: threshold } : {}), depthBatching: true } },
  ];
  const table: Record<string, { batch: number; tokensPerSecond: number; tokensPerCpuSecond: number; loopsPerToken: number; graphRuns: number; rowsPerRun: number }[]> = {};
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
  console.log("batch  mode                        tokens/s  tokens/CPU s  loops/token  graph runs  rows/run  vs exits off (wall / CPU)");
  for (const batch of BATCHES) {
    for (const mode of modes) {
      const row = (table[mode.key] ?? []).find((entry) => entry.batch === batch);
      const ratio = ratios.find((entry) => entry.batch === batch);
      const depth = mode.key === "exitsDepthBatching";
      const versus =
        mode.key === "exitsOff"
          ? ""
          : `${(depth ? ratio?.depthBatchingOverOff : ratio?.noDepthBatchingOverOff)?.toFixed(2)}x / ${(depth ? ratio?.cpuDepthBatchingOverOff : ratio?.cpuNoDepthBatchingOverOff)?.toFixed(2)}x`;
      console.log(`${String(batch).padStart(5)}  ${mode.label.padEnd(26)}  ${String(row?.tokensPerSecond).padStart(8)}  ${String(row?.tokensPerCpuSecond).padStart(12)}  ${row?.loopsPerToken.toFixed(3).padStart(11)}  ${String(row?.graphRuns).padStart(10)}  ${row?.rowsPerRun.toFixed(1).padStart(8)}  ${versus}`);
    }
  }
}
mkdirSync(join(packageRoot(), "runs"), { recursive: true });
writeFileSync(join(packageRoot(), "runs", "bench-runtime.json"), JSON.stringify(report, null, 2) + "\n");
console.log("wrote runs/bench-runtime.json");
