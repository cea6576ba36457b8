import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { Grader } from "../datasets/answer/grader.js";
import { DEFAULT_LADDER, generateSynth } from "../datasets/synth/generate.js";
import { calibrate, parseCalibrateConfig, type CalibrateConfig } from "../src/calibration/calibrate.js";
import { DIFFICULTY_FILE, difficultyRecordSchema, readOraclePassRates } from "../src/bench/difficulty-file.js";
import { loadAllocationTable } from "../src/allocation/table.js";
import { registerCalibrate, spreadChoices } from "../src/commands/calibrate.js";
import { ScriptedPolicy, ScriptedVerifier, type StepScript } from "./support/scripted-policy.js";

const grader = new Grader({ workers: 1 });
const dirs: string[] = [];
afterAll(async () => {
  await grader.close();
  await Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "deliberate-calibrate-"));
  dirs.push(dir);
  return dir;
}

// The config's dataset: the first 6 synthetic calibration problems of seed 1 (or test problems, for
// the difficulty pass alone); even ones are easy.
const problems = generateSynth({ split: "calibration", seed: 1, n: 6 });
const testProblems = generateSynth({ split: "test", seed: 1, n: 6 });
const goldOf = new Map([...problems, ...testProblems].map((problem) => [problem.problem, problem.answer]));
const easy = new Set([problems, testProblems].flatMap((split) => split.filter((_, index) => index % 2 === 0).map((problem) => problem.problem)));
const WRONG = "-98765";
const OTHER = "-43210";

/**
 * Every solution is "Let us compute." then an answer that depends on the sample's place among its
 * siblings: on an easy problem [wrong, gold, gold, gold], on a hard one [gold, wrong, wrong, other].
 */
const script: StepScript = ({ prompt, steps, sibling }) => {
  if (steps.length === 0) return { text: "Let us compute." };
  const gold = goldOf.get(prompt.problem) as string;
  const answers = easy.has(prompt.problem) ? [WRONG, gold, gold, gold] : [gold, WRONG, WRONG, OTHER];
  return { text: `The answer is \\boxed{${answers[sibling % 4]}}`, end: true };
};

/**
 * The wrong answer scores highest on an easy problem (0.95 against 0.85), the gold one on a hard
 * problem (0.3 against 0.1): the mean of two samples is 0.9 (easy) or 0.2 (hard). So at N = 4 a
 * majority vote is right on easy problems only, and the highest score on hard ones only.
 */
const verifier = new ScriptedVerifier((steps, problem) => {
  const last = steps[steps.length - 1] as string;
  if (!last.includes("boxed")) return 0.5;
  const right = last.includes(`{${goldOf.get(problem)}}`);
  return easy.has(problem) ? (right ? 0.85 : 0.95) : right ? 0.3 : 0.1;
});

function config(out: string): CalibrateConfig {
  return parseCalibrateConfig({
    n: 6,
    samples: 2,
    oracleSamples: 4,
    budgets: [2, 4],
    bins: 2,
    concurrency: 2,
    grid: [
      { label: "naive", strategy: "best-of-n", params: { select: "naive" } },
      { label: "majority", strategy: "best-of-n", params: { select: "majority" } },
      { label: "beam-w4", strategy: "beam", params: { beamWidth: 4, select: "majority" } },
    ],
    out,
  });
}

const lines = async (file: string) => (await readFile(file, "utf8")).trimEnd().split("\n");

describe("calibrate", () => {
  it("records the difficulty, runs the grid where it is valid, and builds a table that chooses per bin", async () => {
    const dir = await tempDir();
    const cfg = config(dir);
    expect(cfg.skipped).toEqual([expect.objectContaining({ label: "beam-w4", budget: 2 })]);
    const result = await calibrate(cfg, { policy: new ScriptedPolicy(script), verifier, grader });

    const records = (await lines(join(dir, DIFFICULTY_FILE))).map((line) => difficultyRecordSchema.parse(JSON.parse(line)));
    expect(records.map((record) => record.problemId).sort()).toEqual(problems.map((problem) => problem.unique_id).sort());
    for (const record of records) {
      const isEasy = easy.has(problems.find((problem) => problem.unique_id === record.problemId)?.problem ?? "");
      expect(record.score).toBeCloseTo(isEasy ? 0.9 : 0.2);
      expect(record.oracle).toMatchObject({ samples: 4, correct: isEasy ? 3 : 1, passRate: isEasy ? 0.75 : 0.25 });
      expect(record.compute?.generations).toBe(2);
      expect(record.oracle.compute.generations).toBe(4);
      expect(record.oracle.compute.verifierCalls).toBe(0);
    }
    expect(await lines(join(dir, "budget-2", "results.jsonl"))).toHaveLength(6 * 2);
    expect(await lines(join(dir, "budget-4", "results.jsonl"))).toHaveLength(6 * 3);

    const table = loadAllocationTable(join(dir, "allocation.json"));
    expect(table).toEqual(result.table);
    expect(table).toMatchObject({ policy: "scripted-policy", verifier: "scripted-verifier", difficulty: { samples: 2, edges: [expect.closeTo(0.9)] } });
    const chosen = table.entries.map(({ bin, budget, label, accuracy }) => ({ bin, budget, label, accuracy }));
    // At N = 2 both rules fail on easy problems (the tie goes to the first in the grid) and both
    // are right on hard ones; at N = 4 the vote wins on easy problems, the highest score on hard ones.
    expect(chosen).toEqual([
      { bin: 1, budget: 2, label: "naive", accuracy: 0 },
      { bin: 1, budget: 4, label: "majority", accuracy: 1 },
      { bin: 2, budget: 2, label: "naive", accuracy: 1 },
      { bin: 2, budget: 4, label: "naive", accuracy: 1 },
    ]);
    // The oracle pass rates (0.75 easy, 0.25 hard) bin the problems as the predicted scores do, so it chooses the same.
    expect(table.oracle).toEqual({ edges: [0.75], entries: table.entries });
    expect(result.bins).toEqual([
      { bin: 1, problems: 3, minScore: expect.closeTo(0.9), maxScore: expect.closeTo(0.9), oraclePassRate: 0.75, meanLevel: expect.any(Number) },
      { bin: 2, problems: 3, minScore: expect.closeTo(0.2), maxScore: expect.closeTo(0.2), oraclePassRate: 0.25, meanLevel: expect.any(Number) },
    ]);

    // Run again: everything is there, so no model is called and no line is added.
    const before = await Promise.all([DIFFICULTY_FILE, "budget-2/results.jsonl", "budget-4/results.jsonl"].map((file) => readFile(join(dir, file), "utf8")));
    const policy = new ScriptedPolicy(script);
    const again = await calibrate(cfg, { policy, verifier, grader });
    expect(policy.calls).toHaveLength(0);
    expect(await Promise.all([DIFFICULTY_FILE, "budget-2/results.jsonl", "budget-4/results.jsonl"].map((file) => readFile(join(dir, file), "utf8")))).toEqual(before);
    expect(again.table).toEqual(result.table);

    // A line torn by a kill is cut off, and only its problem runs again.
    const [difficulty] = before as [string];
    const kept = difficulty.slice(0, difficulty.lastIndexOf("\n", difficulty.length - 2) + 1);
    await writeFile(join(dir, DIFFICULTY_FILE), `${kept}{"problemId":`);
    const resumed = new ScriptedPolicy(script);
    await calibrate(cfg, { policy: resumed, verifier, grader });
    expect(resumed.prompts).toHaveLength(2);
    expect(await lines(join(dir, DIFFICULTY_FILE))).toHaveLength(6);
  });

  it("refuses to resume with other difficulty settings", async () => {
    const dir = await tempDir();
    const small = (samples: number) =>
      parseCalibrateConfig({ n: 6, samples, oracleSamples: 4, budgets: [2], bins: 2, grid: [{ label: "naive", strategy: "best-of-n" }], out: dir });
    await calibrate(small(2), { policy: new ScriptedPolicy(script), verifier, grader });
    await expect(calibrate(small(3), { policy: new ScriptedPolicy(script), verifier, grader })).rejects.toThrow(/samples: 2 there, 3 now/);
    expect(await lines(join(dir, DIFFICULTY_FILE))).toHaveLength(6);
  });
});

describe("calibrate --difficulty-only", () => {
  it("runs only the difficulty pass, on any split: difficulty.jsonl and the bins, no grid and no table", async () => {
    const dir = await tempDir();
    const cfg = parseCalibrateConfig({ n: 6, split: "test", samples: 2, oracleSamples: 4, bins: 2, difficultyOnly: true, out: dir });
    expect(cfg.runs[0]?.experiment.dataset).toEqual({ name: "synth", split: "test", n: 6, seed: 1, ladder: DEFAULT_LADDER });
    const result = await calibrate(cfg, { policy: new ScriptedPolicy(script), verifier, grader });
    expect(result.table).toBeNull();
    expect(result.grid).toEqual([]);
    expect(existsSync(join(dir, "allocation.json"))).toBe(false);
    expect(existsSync(join(dir, "budget-1"))).toBe(false);
    const passRates = readOraclePassRates(join(dir, DIFFICULTY_FILE));
    expect(new Map([...passRates].sort())).toEqual(new Map(testProblems.map((problem, index) => [problem.unique_id, index % 2 === 0 ? 0.75 : 0.25] as const).sort()));
    expect(result.bins).toEqual([
      { bin: 1, problems: 3, minScore: expect.closeTo(0.9), maxScore: expect.closeTo(0.9), oraclePassRate: 0.75, meanLevel: expect.any(Number) },
      { bin: 2, problems: 3, minScore: expect.closeTo(0.2), maxScore: expect.closeTo(0.2), oraclePassRate: 0.25, meanLevel: expect.any(Number) },
    ]);
    expect(() => parseCalibrateConfig({ difficultyOnly: true, allocationOut: "x.json", out: dir })).toThrow(/allocationOut: no table is written with the difficulty pass alone/);
  });
});

describe("calibrate settings", () => {
  it("skips a configuration where its parameters do not hold, and fails on one that is wrong everywhere", () => {
    const cfg = parseCalibrateConfig({ out: "x" });
    expect(cfg.runs.map((run) => run.experiment.budgets[0])).toEqual([1, 2, 4, 8, 16]);
    expect(cfg.runs[0]?.experiment.dataset).toEqual({ name: "synth", split: "calibration", n: 100, seed: 1, ladder: DEFAULT_LADDER });
    expect(cfg.runs.find((run) => run.experiment.budgets[0] === 16)?.experiment.strategies).toHaveLength(10);
    expect(cfg.runs[0]?.experiment.strategies.map((strategy) => strategy.label)).toEqual(["best-of-n-weighted", "best-of-n-majority", "best-of-n-naive", "revision-r1"]);
    expect(cfg.skipped.filter((skip) => skip.label === "lookahead-k3").map((skip) => skip.budget)).toEqual([1, 2, 4, 8]);
    expect(() => parseCalibrateConfig({ out: "x", grid: [{ label: "b", strategy: "beam", params: { beamWidth: "four" } }] })).toThrow(/grid\.0\.params: beamWidth/);
    expect(() => parseCalibrateConfig({ out: "x", budgets: [3], grid: [{ label: "b", strategy: "beam" }] })).toThrow(/budgets: no grid configuration runs/);
  });
});

describe("calibrate's spread table", () => {
  it("shows what compute-optimal-spread runs per bin at each budget past the estimate, with its generations and accuracy", () => {
    const entry = (bin: number, budget: number, accuracy: number) => ({ bin, budget, label: "bon", strategy: "best-of-n", params: {}, accuracy, problems: 10 });
    // Bin 1 is solved by one sample; bin 2 gains up to 16. At N=16 (12 after the 4-sample estimate, 240 over the 20
    // problems) the spread gives bin 1 one generation and bin 2 sixteen; at N=8 (80) bin 2 can only have 4.
    const entries = [1, 4, 16].flatMap((budget) => [entry(1, budget, 1), entry(2, budget, { 1: 0.1, 4: 0.3, 16: 0.6 }[budget] as number)]);
    entries.push(entry(1, 8, 1), entry(2, 8, 0.4));
    const cells = spreadChoices(entries, 4).slice(1).map((line) => line.split(/\s{2,}/));
    expect(cells).toEqual([
      ["bin", "N=8", "N=16"],
      ["1", "bon@1", "bon@1"],
      ["2", "bon@4", "bon@16"],
      ["generations", "6.5", "12.5"],
      ["accuracy", "0.65", "0.80"],
    ]);
  });
});

describe("deliberate calibrate flags", () => {
  async function cli(...args: string[]): Promise<void> {
    const program = new Command().exitOverride();
    registerCalibrate(program);
    await program.parseAsync(["node", "deliberate", "calibrate", ...args]);
  }

  it("fails before any work, naming the flag or the grid file's field", async () => {
    const out = join(await tempDir(), "run");
    await expect(cli("--samples", "0", "--out", out)).rejects.toThrow(/--samples must be a positive integer/);
    await expect(cli("--budgets", "1,x", "--out", out)).rejects.toThrow(/--budgets: expected a positive integer/);
    await expect(cli("--split", "nope", "--out", out)).rejects.toThrow(/--split: expected one of/);
    await expect(cli("--verifier", "none", "--out", out)).rejects.toThrow(/--verifier: calibration needs a step verifier/);
    await expect(cli("--n", "5")).rejects.toThrow(/--out: required/);
    await expect(cli("--grid", "test/fixtures/calibrate-bad-grid.yaml", "--out", out)).rejects.toThrow(/calibrate-bad-grid\.yaml: \[1\]\.params: beamWidth/);
    await expect(cli("--difficulty-only", "--allocation-out", join(out, "a.json"), "--out", out)).rejects.toThrow(/--allocation-out: no table is written with the difficulty pass alone/);
    expect(existsSync(out)).toBe(false);
  });
});
