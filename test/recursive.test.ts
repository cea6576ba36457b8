// The embedded recursive model (models/recursive): exits off and early exit with the state copy
// reproduce the PyTorch decoding of golden.json, depth-wise batching gives the same tokens as decoding
// each branch alone, the meter counts the loops really run and the state copies, and bad options are
// refused with clear errors.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseBenchConfig } from "../src/bench/config.js";
import { parseExitThreshold, parseOnOff } from "../src/commands/model-options.js";
import { ComputeMeter } from "../src/meter.js";
import { summarize } from "../src/report/stats.js";
import type { Branch } from "../src/policy.js";
import { loadPolicy, resolveModel } from "../src/runtime/load.js";
import { solve } from "../src/solve.js";
import type { ExtendResult, OnnxPolicy } from "../src/runtime/onnx-policy.js";
import { exitConfidence } from "../src/runtime/recursive-engine.js";
import { SAMPLE_PROBLEMS } from "./support/problems.js";

const Golden = z.object({
  prompt_ids: z.array(z.number().int()),
  greedy_ids: z.array(z.number().int()),
  exit_threshold: z.number(),
  exit_greedy_ids: z.array(z.number().int()),
  exit_token_loops: z.array(z.number().int()),
  exit_token_copies: z.array(z.number().int()),
  exit_nocopy_greedy_ids: z.array(z.number().int()),
});
const golden = Golden.parse(JSON.parse(readFileSync(join(resolveModel("recursive"), "golden.json"), "utf8")));
const config = JSON.parse(readFileSync(join(resolveModel("recursive"), "config.json"), "utf8")) as {
  recursion: { loops: number; exit: { default_threshold: number; skipped: string }; flops_per_loop_token: number; flops_per_copy_token: number };
};
const EOS = 2;

const PROBLEMS = SAMPLE_PROBLEMS.slice(0, 6);

/** The golden tokens up to and including the first <eos> (the runtime stops there). */
const upToEos = (ids: number[]) => (ids.includes(EOS) ? ids.slice(0, ids.indexOf(EOS) + 1) : ids);

async function greedyGolden(policy: OnnxPolicy): Promise<ExtendResult> {
  const branch = await policy.startFromTokens(golden.prompt_ids);
  const [result] = await policy.decode([branch], { temperature: 0, seeds: [0], maxStepTokens: golden.greedy_ids.length, stop: [] });
  branch.release();
  if (!result) throw new Error("no result");
  return result;
}

describe("the recursive model", () => {
  const policies: Record<string, OnnxPolicy> = {};
  beforeAll(async () => {
    policies.off = await loadPolicy("recursive", { threads: 1, exitThreshold: "off" });
    policies.depth = await loadPolicy("recursive", { threads: 1 });
    policies.flat = await loadPolicy("recursive", { threads: 1, depthBatching: false });
  });
  afterAll(async () => {
    for (const policy of Object.values(policies)) await policy.close();
  });
  const policy = (name: string) => policies[name] as OnnxPolicy;

  it("loads as --policy recursive with the shipped threshold and depth-wise batching by default", () => {
    expect(policy("depth").recursion).toEqual({
      loops: config.recursion.loops,
      flopsPerLoopToken: config.recursion.flops_per_loop_token,
      skipped: "copy",
      flopsPerCopyToken: config.recursion.flops_per_copy_token,
      exitThreshold: config.recursion.exit.default_threshold,
      depthBatching: true,
    });
    expect(policy("off").recursion?.exitThreshold).toBeNull();
    expect(policy("flat").recursion?.depthBatching).toBe(false);
    expect(golden.exit_threshold).toBe(config.recursion.exit.default_threshold);
    expect(config.recursion.exit.skipped).toBe("copy");
    // A state copy computes only what writes state: far cheaper than a loop.
    expect(config.recursion.flops_per_copy_token).toBeLessThan(config.recursion.flops_per_loop_token / 4);
  });

  it("decodes the golden prompt greedily with exits off to PyTorch's tokens, every token through every loop", async () => {
    const result = await greedyGolden(policy("off"));
    expect(result.tokenIds).toEqual(upToEos(golden.greedy_ids));
    expect(result.loops).toBe(result.tokens * config.recursion.loops);
    expect(result.copies).toBe(0);
    expect(result.runs).toBe(result.tokenIds.at(-1) === EOS ? result.tokens - 1 : result.tokens);
  });

  it.each(["depth", "flat"])("decodes the golden prompt greedily with early exit and the state copy (%s) to PyTorch's tokens, loops and copies", async (name) => {
    const result = await greedyGolden(policy(name));
    const want = upToEos(golden.exit_greedy_ids);
    expect(result.tokenIds).toEqual(want);
    const loops = golden.exit_token_loops.slice(0, want.length).reduce((a, b) => a + b, 0);
    expect(result.loops).toBe(loops);
    // Exits happened and so did full-depth tokens, or the check would not tell the modes apart.
    expect(loops).toBeLessThan(want.length * config.recursion.loops);
    // One copy per fed token (<eos> is not fed) and loop it skipped.
    const fed = want.at(-1) === EOS ? want.length - 1 : want.length;
    const copies = golden.exit_token_copies.slice(0, fed).reduce((a, b) => a + b, 0);
    expect(copies).toBeGreaterThan(0);
    expect(result.copies).toBe(copies);
  });

  it("the state copy changes the decoding (PyTorch without it gives other tokens), so the comparison above can fail", () => {
    expect(golden.exit_nocopy_greedy_ids).not.toEqual(golden.exit_greedy_ids);
  });

  /** Several steps over all branches together, then each branch alone from the same prompt, with the same seeds. */
  async function compare(together: OnnxPolicy, alone: OnnxPolicy, temperature: number) {
    const steps = 3;
    const seeds = (step: number, i: number) => 1000 * step + i;
    const batch = await Promise.all(PROBLEMS.map((problem) => together.start({ problem })));
    const batched: ExtendResult[][] = PROBLEMS.map(() => []);
    for (let step = 0; step < steps; step++) {
      const live = batch.map((branch, i) => [branch, i] as const).filter(([branch]) => !branch.finished);
      if (live.length === 0) break;
      const results = await together.decode(
        live.map(([branch]) => branch),
        { temperature, seeds: live.map(([, i]) => seeds(step, i)), maxStepTokens: 24 },
      );
      results.forEach((result, j) => batched[(live[j] as readonly [Branch, number])[1]]?.push(result));
    }
    for (const [i, problem] of PROBLEMS.entries()) {
      const branch = await alone.start({ problem });
      for (const [step, expected] of (batched[i] as ExtendResult[]).entries()) {
        const [single] = await alone.decode([branch], { temperature, seeds: [seeds(step, i)], maxStepTokens: 24 });
        expect(single?.tokenIds, `${problem} step ${step}`).toEqual(expected.tokenIds);
        expect(single?.logprobs).toEqual(expected.logprobs);
        expect(single?.loops).toBe(expected.loops);
        expect(single?.copies).toBe(expected.copies);
      }
      branch.release();
    }
    for (const branch of batch) branch.release();
    return batched.flat();
  }

  it.each([0, 1])("gives the same tokens with depth-wise batching over several branches as decoding each alone (temperature %s)", async (temperature) => {
    const results = await compare(policy("depth"), policy("depth"), temperature);
    const tokens = results.reduce((sum, r) => sum + r.tokens, 0);
    const loops = results.reduce((sum, r) => sum + (r.loops ?? 0), 0);
    // Some tokens exited early and some did not: the runs mixed rows at both loops.
    expect(loops).toBeGreaterThan(tokens);
    expect(loops).toBeLessThan(2 * tokens);
    expect(results.reduce((sum, r) => sum + (r.copies ?? 0), 0)).toBeGreaterThan(0);
  });

  it.each([0, 1])("gives the same tokens with and without depth-wise batching (temperature %s)", async (temperature) => {
    await compare(policy("depth"), policy("flat"), temperature);
  });

  it("takes fewer graph runs with depth-wise batching than without, for the same tokens", async () => {
    const run = async (p: OnnxPolicy) => {
      const branches = await Promise.all(PROBLEMS.map((problem) => p.start({ problem })));
      const before = (await p.stats()).decodeRuns;
      const results = await p.decode(branches, { temperature: 1, seeds: PROBLEMS.map((_, i) => i), maxStepTokens: 32, stop: [] });
      for (const branch of branches) branch.release();
      return { runs: (await p.stats()).decodeRuns - before, ids: results.map((r) => r.tokenIds) };
    };
    const depth = await run(policy("depth"));
    const flat = await run(policy("flat"));
    expect(depth.ids).toEqual(flat.ids);
    expect(depth.runs).toBeLessThan(flat.runs);
  });

  it("forks share state: a fork decodes like its parent with the same seed, and the parent is unchanged", async () => {
    const p = policy("depth");
    const parent = await p.start({ problem: "Compute (160 - 89) * 10 + 60." });
    await p.extend([parent], { temperature: 0, seeds: [0], maxStepTokens: 16 });
    const [a, b] = [parent.fork(), parent.fork()];
    const [ra] = await p.decode([a], { temperature: 1, seeds: [5], maxStepTokens: 16 });
    const [rb, rp] = await p.decode([b, parent], { temperature: 1, seeds: [5, 5], maxStepTokens: 16 });
    expect(rb?.tokenIds).toEqual(ra?.tokenIds);
    expect(rp?.tokenIds).toEqual(ra?.tokenIds);
    for (const branch of [a, b, parent]) branch.release();
  });

  it("meters FLOPs from the loops really run and reports mean loops per token", () => {
    // The spend a recursive policy reports (OnnxPolicy.spent): a prefill runs every loop, a step its loops.
    const meter = new ComputeMeter();
    meter.countPrefill(10, 5, { flops: 10 * 2 * 1000 });
    meter.countGenerated(8, 5, { flops: 12 * 1000 + 4 * 100, loops: 12, copies: 4 });
    const report = meter.report();
    expect(report.flops).toBe(10 * 2 * 1000 + 12 * 1000 + 4 * 100);
    expect(report.loops).toEqual({ tokens: 8, run: 12, perToken: 1.5, copies: 4, copiesPerToken: 0.5 });
    const plain = new ComputeMeter();
    plain.countGenerated(8, 5);
    expect(plain.report().flops).toBe(80);
    expect(plain.report().loops).toBeUndefined();
  });

  it("a search on the recursive policy counts the loops really run: FLOPs and mean loops per token", async () => {
    const perLoop = config.recursion.flops_per_loop_token;
    const perCopy = config.recursion.flops_per_copy_token;
    const run = (name: string) =>
      solve("Compute 12 * 7 + 3.", { strategy: "best-of-n", budget: 4, policy: policy(name), params: { select: "majority" }, limits: { maxSteps: 2, maxStepTokens: 24 } });
    const exits = (await run("depth")).compute;
    const off = (await run("off")).compute;
    for (const compute of [exits, off]) {
      expect(compute.loops?.tokens).toBe(compute.generatedTokens);
      expect(compute.flops).toBe((compute.prefilledTokens * 2 + (compute.loops?.run ?? NaN)) * perLoop + (compute.loops?.copies ?? NaN) * perCopy);
    }
    expect(off.loops?.perToken).toBe(2);
    expect(off.loops?.copies).toBe(0);
    expect(exits.loops?.copies).toBeGreaterThan(0);
    // At most one copy per generated token with two loops (a token that exits after loop 0 skips loop 1).
    expect(exits.loops?.copies).toBeLessThanOrEqual(exits.loops?.tokens ?? NaN);
    expect(exits.loops?.perToken).toBeGreaterThan(1);
    expect(exits.loops?.perToken).toBeLessThan(2);
  });

  it("reports mean loops per token per strategy and budget, only for results that have them", () => {
    const compute = (loops?: { tokens: number; run: number }) => ({
      generations: 1, generatedTokens: loops?.tokens ?? 10, prefilledTokens: 5, verifierTokens: 0, policyCalls: 1, verifierCalls: 0, retries: 0, flops: 1, wallMs: 1,
      ...(loops ? { loops: { ...loops, perToken: loops.run / loops.tokens } } : {}),
    });
    const result = (problemId: string, strategy: string, loops?: { tokens: number; run: number }) => ({
      problemId, strategy, strategyName: "best-of-n", budget: 4, seed: 0, level: 1, subject: null, answer: "1", gold: "1", correct: true, compute: compute(loops), ms: 1, error: null,
    });
    const summary = summarize([result("a", "exits", { tokens: 10, run: 12 }), result("b", "exits", { tokens: 30, run: 40 }), result("a", "plain")], { resamples: 10, seed: 0 });
    expect(summary.cells.find((cell) => cell.strategy === "exits")?.loopsPerToken).toBeCloseTo(52 / 40, 10);
    expect(summary.cells.find((cell) => cell.strategy === "plain")).not.toHaveProperty("loopsPerToken");
  });

  it("computes exit confidence as the max softmax probability", () => {
    expect(exitConfidence(Float32Array.from([0, 0, 0, 0]))).toBeCloseTo(0.25, 6);
    expect(exitConfidence(Float32Array.from([Math.log(3), 0]))).toBeCloseTo(0.75, 6);
  });

  it("refuses bad option values with clear errors", async () => {
    for (const bad of [0, -0.5, 1.5, Number.NaN]) {
      await expect(loadPolicy("recursive", { exitThreshold: bad })).rejects.toThrow(/exitThreshold must be a number in \(0, 1\] or "off"/);
    }
    await expect(loadPolicy("recursive", { exitThreshold: "of" as never })).rejects.toThrow(/exitThreshold must be/);
    await expect(loadPolicy("recursive", { depthBatching: "yes" as never })).rejects.toThrow(/depthBatching must be true or false/);
    await expect(loadPolicy("policy", { exitThreshold: 0.9, threads: 1 })).rejects.toThrow(/not a recursive model.*--policy recursive/);
    await expect(loadPolicy("policy", { depthBatching: false, threads: 1 })).rejects.toThrow(/not a recursive model.*depth-wise batching/);
  });

  it("parses the CLI flags and the bench config keys, and refuses bad values naming the flag", () => {
    expect(parseExitThreshold("0.85")).toBe(0.85);
    expect(parseExitThreshold("1")).toBe(1);
    expect(parseExitThreshold("off")).toBe("off");
    for (const bad of ["0", "-1", "1.01", "abc", "", "NaN"]) expect(() => parseExitThreshold(bad)).toThrow(/--exit-threshold must be a number in \(0, 1\].*or off, got/);
    expect(parseOnOff("--depth-batching")("on")).toBe(true);
    expect(parseOnOff("--depth-batching")("off")).toBe(false);
    expect(() => parseOnOff("--depth-batching")("maybe")).toThrow(/--depth-batching must be on or off, got "maybe"/);
    const config = parseBenchConfig({ strategies: "best-of-n", exitThreshold: "0.8", depthBatching: "off", out: "runs/x" });
    expect(config.experiment.exitThreshold).toBe(0.8);
    expect(config.run.depthBatching).toBe(false);
    const plain = parseBenchConfig({ strategies: "best-of-n", out: "runs/x" });
    expect("exitThreshold" in plain.experiment).toBe(false);
    expect(plain.run.depthBatching).toBeNull();
    expect(() => parseBenchConfig({ strategies: "best-of-n", exitThreshold: 2, out: "runs/x" })).toThrow(/exitThreshold: expected a number in \(0, 1\] or "off"/);
    expect(() => parseBenchConfig({ strategies: "best-of-n", depthBatching: "sometimes", out: "runs/x" })).toThrow(/depthBatching: expected on or off/);
  });
});
