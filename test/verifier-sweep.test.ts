/** The verifier-quality sweep's parts: the step score log, its AUCs, and the sweep's numbers and files. */
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { afterAll, describe, expect, it, vi } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadAllocationTable } from "../src/allocation/table.js";
import { calibrationBudgets, SWEEP_CALIBRATION_GRID } from "../src/commands/sweep-verifier.js";
import { readStepScores, StepScoreLog, stepAucs, type StepScoreRecord } from "../src/bench/step-score-log.js";
import type { BenchResult } from "../src/bench/results.js";
import { bootstrapMeanCI, DEFAULT_BOOTSTRAP } from "../src/report/stats.js";
import { measureVerifierSweep, sweepMarkdown, sweepTable, writeVerifierSweep } from "../src/report/verifier-sweep.js";
import { splitSteps } from "../datasets/synth/check.js";
import { generateSynth } from "../datasets/synth/generate.js";
import { SimulatedRuleVerifier } from "../verifiers/simulated-rule.js";
import { buildProgram } from "../src/program.js";

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "deliberate-sweep-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("StepScoreLog", () => {
  const problem = generateSynth({ split: "test", seed: 2, n: 20 }).find((p) => splitSteps(p.solution).length >= 3);
  if (problem === undefined) throw new Error("no three-step problem in the sample");
  const steps = splitSteps(problem.solution);
  const broken = [steps[0] as string, `${steps[1]} + 1`, ...steps.slice(2)];

  it("logs each prefix once with the checker's label, whatever the requests repeat, and reads it back on reopening", async () => {
    const file = join(await tempDir(), "step-scores.jsonl");
    const verifier = new SimulatedRuleVerifier(0.8);
    const log = await StepScoreLog.open(verifier, file);
    const answers = await log.scoreSteps([{ problem: problem.problem, steps }]);
    expect(answers).toEqual(await verifier.scoreSteps([{ problem: problem.problem, steps }]));
    // The broken copy shares its first prefix with the gold solution: only the later ones are new.
    await log.scoreSteps([
      { problem: problem.problem, steps: broken },
      { problem: problem.problem, steps: steps.slice(0, 2) },
    ]);
    const records = log.records;
    expect(records).toHaveLength(steps.length + broken.length - 1);
    expect(records.slice(0, steps.length).every((record) => record.correct && record.afterCorrect)).toBe(true);
    expect(records.slice(steps.length).map((record) => [record.step, record.correct, record.afterCorrect])).toEqual([
      [1, false, true],
      ...broken.slice(2).map((_, i) => [i + 2, false, false]),
    ]);
    expect(records.map((record) => record.score)).toEqual([...(answers[0]?.scores ?? []), ...((await verifier.scoreSteps([{ problem: problem.problem, steps: broken }]))[0]?.scores.slice(1) ?? [])]);
    expect(readFileSync(file, "utf8").trim().split("\n")).toHaveLength(records.length);

    const reopened = await StepScoreLog.open(verifier, file);
    expect(reopened.records).toEqual(records);
    await reopened.scoreSteps([{ problem: problem.problem, steps }]);
    expect(await readStepScores(file)).toHaveLength(records.length);
  });

  it("cuts a torn last line off when it reopens, and names the file and line of a bad one", async () => {
    const file = join(await tempDir(), "step-scores.jsonl");
    const log = await StepScoreLog.open(new SimulatedRuleVerifier(0.9), file);
    await log.scoreSteps([{ problem: problem.problem, steps }]);
    appendFileSync(file, '{"problem": "ab');
    expect(await StepScoreLog.open(new SimulatedRuleVerifier(0.9), file).then((again) => again.records.length)).toBe(steps.length);
    expect(readFileSync(file, "utf8").endsWith("}\n")).toBe(true);
    appendFileSync(file, "not json\n");
    await expect(readStepScores(file)).rejects.toThrow(`${file}:${steps.length + 1}: not a step score record`);
  });
});

describe("stepAucs", () => {
  const record = (problem: string, step: number, correct: boolean, afterCorrect: boolean, score: number): StepScoreRecord => ({
    problem,
    prefix: `${problem}-${step}-${score}`,
    step,
    correct,
    afterCorrect,
    score,
  });

  it("pools every prefix, and compares within a problem only right and wrong k-th steps after right earlier ones", () => {
    // An easy problem scored high throughout and a hard one scored low: pooled, right prefixes
    // mostly outscore wrong ones; within each problem the wrong step outscores the right one.
    const records = [
      record("easy", 0, true, true, 0.9),
      record("easy", 1, true, true, 0.8),
      record("easy", 1, false, true, 0.85),
      record("hard", 0, true, true, 0.3),
      record("hard", 0, false, true, 0.35),
      // After a wrong step: in the pooled AUC only.
      record("hard", 1, false, false, 0.1),
    ];
    const aucs = stepAucs(records);
    // Pooled: right {0.9, 0.8, 0.3} against wrong {0.85, 0.35, 0.1}: 0.9 beats 3, 0.8 beats 2, 0.3 beats 1: 6 of 9.
    expect(aucs.pooled).toBeCloseTo(6 / 9, 12);
    // Within a problem: (easy, 1) 0.8 < 0.85 and (hard, 0) 0.3 < 0.35: 0 of 2 pairs.
    expect(aucs).toMatchObject({ withinProblem: 0, withinProblemPairs: 2, correct: 3, incorrect: 3 });
    expect(stepAucs(records.filter((entry) => entry.problem === "easy" && entry.step === 0)).withinProblem).toBeNaN();
  });
});

describe("measureVerifierSweep", () => {
  /** A bench run directory whose results are `correct` per problem (p0, p1, ...) for each strategy. */
  async function runDir(budget: number, strategies: Record<string, boolean[]>): Promise<string> {
    const dir = await tempDir();
    const lines = Object.entries(strategies).flatMap(([strategy, correct]) =>
      correct.map(
        (right, i): BenchResult => ({
          problemId: `p${i}`,
          strategy,
          strategyName: strategy,
          budget,
          seed: 0,
          level: 1,
          subject: null,
          answer: null,
          gold: "1",
          correct: right,
          compute: null,
          ms: 0,
          error: null,
        }),
      ),
    );
    writeFileSync(join(dir, "results.jsonl"), lines.map((line) => `${JSON.stringify(line)}\n`).join(""));
    return dir;
  }
  const aucs = { pooled: 0.81, withinProblem: 0.79, correct: 10, incorrect: 20, withinProblemPairs: 7 };

  it("gives each strategy's accuracy and its paired gain over one sample, and writes the table, JSON and plot", async () => {
    const single = [true, false, false, true, false, false, false, false];
    const bestOfN = [true, true, false, true, false, true, false, false];
    const beam = [true, false, false, false, false, true, false, false];
    const passAt1 = await runDir(1, { "one-sample": single });
    const simulated = await runDir(16, { "best-of-n": bestOfN, "beam-w4": beam });
    const learned = await runDir(16, { "best-of-n": single, "beam-w4": single });
    const sweep = await measureVerifierSweep(
      passAt1,
      [
        { kind: "simulated", verifier: "rule@0.8", targetAuc: 0.8, runDir: simulated, aucs, allocation: null },
        { kind: "learned", verifier: "prm", targetAuc: null, runDir: learned, aucs: { ...aucs, withinProblem: 0.55 }, allocation: null },
      ],
      ["best-of-n", "beam-w4"],
      16,
    );
    expect(sweep.passAt1).toMatchObject({ accuracy: 0.25, problems: 8 });
    const [simulatedPoint, learnedPoint] = sweep.points;
    expect(simulatedPoint?.gains.map((gain) => [gain.strategy, gain.accuracy, gain.gain])).toEqual([
      ["best-of-n", 0.5, 0.25],
      ["beam-w4", 0.25, 0],
    ]);
    const differences = bestOfN.map((right, i) => Number(right) - Number(single[i]));
    const [low, high] = bootstrapMeanCI(differences, DEFAULT_BOOTSTRAP);
    expect(simulatedPoint?.gains[0]).toMatchObject({ gainLow: low, gainHigh: high, problems: 8 });
    expect(learnedPoint?.gains.every((gain) => gain.gain === 0 && gain.gainLow === 0 && gain.gainHigh === 0)).toBe(true);

    const table = sweepTable(sweep);
    expect(table).toContain("| verifier | target step AUC | measured step AUC | within-problem AUC | best-of-n N=16: accuracy (gain, 95% CI) | beam-w4 N=16: accuracy (gain, 95% CI) |");
    expect(table).toContain(`| simulated (rule@0.8) | 0.8 | 0.810 | 0.790 | 50.0% (+25.0, +${(low * 100).toFixed(1)} to +${(high * 100).toFixed(1)}) | 25.0% (+0.0,`);
    expect(table).toContain("| learned (prm) | – | 0.810 | 0.550 | 25.0% (+0.0, +0.0 to +0.0) | 25.0% (+0.0, +0.0 to +0.0) |");

    const out = join(await tempDir(), "sweep");
    await mkdir(out);
    const written = await writeVerifierSweep(sweep, out, "deliberate sweep-verifier --n 8");
    const markdown = readFileSync(written.markdown, "utf8");
    expect(markdown).toContain("`deliberate sweep-verifier --n 8`");
    expect(markdown).toContain("One sample (pass@1): 25.0%");
    expect(markdown).toContain("Simulated verifiers are not models");
    expect(JSON.parse(readFileSync(written.json, "utf8"))).toMatchObject({ command: "deliberate sweep-verifier --n 8", budget: 16, strategies: ["best-of-n", "beam-w4"] });
    // The plot's marks, in layer order: the zero line, a line per strategy, a CI bar per point, the
    // simulated points (two strategies at one AUC) and the learned verifier's diamonds.
    const svg = readFileSync(written.plot, "utf8");
    const marks = [...svg.matchAll(/<g class="mark-(\w+) role-mark[^"]*"[^>]*>(.*?)<\/g>/gs)].map(([, type, body]) => [type, (body as string).match(/<(path|line)\b/g)?.length ?? 0]);
    expect(marks).toEqual([
      ["rule", 1],
      ["line", 1],
      ["line", 1],
      ["rule", 4],
      ["symbol", 2],
      ["symbol", 2],
    ]);
  });

  it("names the allocation table each point's compute-optimal ran with, and where its bins came from", async () => {
    const passAt1 = await runDir(1, { "one-sample": [true, false] });
    const run = await runDir(16, { "compute-optimal": [true, true] });
    const setting = { kind: "simulated" as const, verifier: "rule@0.8", targetAuc: 0.8, runDir: run, aucs };
    const shipped = await measureVerifierSweep(passAt1, [{ ...setting, allocation: { file: "/pkg/models/allocation.json", source: "shipped" } }], ["compute-optimal"], 16);
    expect(sweepTable(shipped)).toContain("| 100.0% (+50.0, +0.0 to +100.0) | shipped (models/allocation.json) |");
    expect(sweepMarkdown(shipped, "c")).toContain("from the shipped allocation table, which was calibrated with the learned PRM's scores");

    const file = "runs/s/simulated-auc-0.8/calibration/allocation.json";
    const calibration = { problems: 20, samples: 4, budgets: [1, 2, 4, 8], grid: ["best-of-n-weighted", "beam-w4"] };
    const own = await measureVerifierSweep(passAt1, [{ ...setting, allocation: { file, source: "calibrated" } }], ["compute-optimal"], 16, calibration);
    expect(own.calibration).toEqual(calibration);
    expect(sweepTable(own)).toContain(`| own calibration (${file}) |`);
    const markdown = sweepMarkdown(own, "c");
    expect(markdown).toContain("Compute-optimal ran with a table calibrated by the sweep with each verifier's own scores");
    expect(markdown).toContain("the grid best-of-n-weighted, beam-w4 at budgets 1, 2, 4, 8 on 20 synthetic calibration problems");
    expect(markdown).not.toContain("off-calibration");
  });
});

describe("deliberate sweep-verifier", () => {
  const run = (...args: string[]) => buildProgram().exitOverride().parseAsync(["node", "deliberate", "sweep-verifier", ...args, "--dry-run"]);

  it("refuses a simulated AUC outside (0.5, 1] and a simulated --verifier, naming the flag and the value", async () => {
    await expect(run("--aucs", "0.6,0.5")).rejects.toThrow(`--aucs: each simulated verifier's step AUC must be a number in (0.5, 1], got "0.5" in "0.6,0.5"`);
    await expect(run("--aucs", "0.6,,0.8")).rejects.toThrow(/got "" in "0.6,,0.8"/);
    await expect(run("--verifier", "rule@0.7")).rejects.toThrow("--verifier rule@0.7: the sweep's --verifier is the learned verifier placed on the curve; give the simulated ones with --aucs");
    await expect(run("--verifier", "rule@2")).rejects.toThrow(`--verifier rule@2: a simulated verifier's AUC must be a number in (0.5, 1], got "2"`);
    await expect(run("--progress-interval", "0")).rejects.toThrow("--progress-interval: expected a positive number of seconds");
    await expect(run("--ladder", "3")).rejects.toThrow("--ladder: expected a ladder, one of 1, 2, got 3");
  });
});

describe("deliberate sweep-verifier --calibrate-n", () => {
  const cli = (...args: string[]) => buildProgram().exitOverride().parseAsync(["node", "deliberate", "sweep-verifier", ...args]);

  it("calibrates with the grid of the shipped table at the powers of two compute-optimal can run after its 4 estimate samples", () => {
    expect(calibrationBudgets(16)).toEqual([1, 2, 4, 8]);
    expect(calibrationBudgets(12)).toEqual([1, 2, 4, 8]);
    expect(calibrationBudgets(6)).toEqual([1, 2]);
    expect(calibrationBudgets(5)).toEqual([1]);
    expect(calibrationBudgets(4)).toEqual([]);
    expect(SWEEP_CALIBRATION_GRID).toEqual(parseYaml(readFileSync(new URL("../benchmarks/calibration-grid.yaml", import.meta.url), "utf8")));
  });

  it("refuses a calibration that would be in vain or clash with --allocation, naming --calibrate-n, before any work", async () => {
    const out = join(await tempDir(), "sweep");
    const run = (...args: string[]) => cli(...args, "--out", out, "--dry-run");
    await expect(run("--calibrate-n", "0")).rejects.toThrow(`--calibrate-n must be a positive integer, got "0"`);
    await expect(run("--calibrate-n", "5", "--allocation", "models/allocation.json")).rejects.toThrow(
      "--calibrate-n: compute-optimal runs with each verifier's own calibrated table; leave out --allocation",
    );
    await expect(run("--calibrate-n", "5", "--strategies", "best-of-n,beam-w4")).rejects.toThrow(
      "--calibrate-n: no configuration in --strategies best-of-n,beam-w4 allocates by difficulty (compute-optimal), so there is no table to calibrate",
    );
    await expect(run("--calibrate-n", "5", "--budget", "4")).rejects.toThrow(
      "--calibrate-n: at --budget 4, compute-optimal spends the whole budget on its 4-sample difficulty estimate and runs no table entry",
    );
    expect(existsSync(out)).toBe(false);
  });

  it("plans each verifier's calibration in its own directory in a dry run, the learned verifier's too", async () => {
    const out = join(await tempDir(), "sweep");
    const written: string[] = [];
    const write = vi.spyOn(process.stdout, "write").mockImplementation((chunk) => written.push(String(chunk)) > 0);
    try {
      await cli("--n", "5", "--aucs", "0.8", "--budget", "8", "--calibrate-n", "10", "--out", out, "--dry-run");
    } finally {
      write.mockRestore();
    }
    const plan = written.join("");
    for (const [name, dir] of [
      ["simulated verifier rule@0.8", join(out, "simulated-auc-0.8")],
      ["learned verifier prm-columns", join(out, "learned")],
    ] as const) {
      const calibration = join(dir, "calibration");
      expect(plan).toContain(`${name}: first the calibration of its compute-optimal table, ${join(calibration, "allocation.json")}\ndifficulty pass: 10 problems, into ${calibration}\n`);
      for (const budget of [1, 2, 4]) expect(plan).toContain(`${join(calibration, `budget-${budget}`)}: `);
      expect(plan).not.toContain(join(calibration, "budget-8"));
      expect(plan).toContain(`${name}: ${join(dir, "budget-8")}: 15 work items: 5 problems x best-of-n, beam-w4, compute-optimal x budgets 8 x 1 seeds (compute-optimal then with ${join(calibration, "allocation.json")})`);
    }
    expect(plan).toContain(`${join(out, "simulated-auc-0.8", "calibration", "budget-4")}: 50 work items: 10 problems x best-of-n-weighted, best-of-n-majority, beam-w4, dvts-w4, revision-r4 x budgets 4`);
    expect(existsSync(out)).toBe(false);
  });

  /** Every file under `dir` by its path there, but the sweep's own outputs (rewritten by every run). */
  function snapshot(dir: string): Map<string, string> {
    const files = readdirSync(dir, { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile());
    return new Map(
      files
        .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
        .filter((path) => !path.startsWith("verifier-sweep.") && !path.startsWith("plots"))
        .sort()
        .map((path) => [path, readFileSync(join(dir, path), "utf8")]),
    );
  }

  it("runs each simulated verifier's compute-optimal with the table calibrated in its own directory, and resumes without redoing finished work", async () => {
    const out = join(await tempDir(), "sweep");
    const args = ["--n", "5", "--aucs", "0.7,0.9", "--verifier", "none", "--budget", "6", "--strategies", "best-of-n,compute-optimal"];
    const sweep = () => cli(...args, "--calibrate-n", "5", "--threads", "1", "--concurrency", "5", "--progress", "none", "--out", out);
    await sweep();
    const tableFile = (auc: string) => join(out, `simulated-auc-${auc}`, "calibration", "allocation.json");
    const lines = (path: string) => readFileSync(join(out, path), "utf8").trimEnd().split("\n");
    for (const auc of ["0.7", "0.9"]) {
      const table = loadAllocationTable(tableFile(auc));
      expect(table).toMatchObject({ verifier: `synth-rule-simulated-auc-${auc}`, difficulty: { samples: 4 } });
      expect([...new Set(table.entries.map((entry) => entry.budget))]).toEqual([1, 2]);
      expect(lines(`simulated-auc-${auc}/calibration/difficulty.jsonl`)).toHaveLength(5);
      // The stage's bench run records the table its compute-optimal ran with: the one its calibration wrote.
      const config = JSON.parse(readFileSync(join(out, `simulated-auc-${auc}`, "budget-6", "config.json"), "utf8"));
      const computeOptimal = config.experiment.strategies.find((strategy: { label: string }) => strategy.label === "compute-optimal");
      expect(computeOptimal.params.table).toEqual(table);
      const bins = lines(`simulated-auc-${auc}/budget-6/results.jsonl`).map((line) => JSON.parse(line)).filter((result) => result.strategy === "compute-optimal").map((result) => result.difficultyBin);
      expect(bins).toHaveLength(5);
      // Bins of its own table: 1 to one more than its edges.
      expect(bins.every((bin) => bin >= 1 && bin <= table.difficulty.edges.length + 1)).toBe(true);
    }
    const report = JSON.parse(readFileSync(join(out, "verifier-sweep.json"), "utf8"));
    expect(report.points.map((point: { allocation: unknown }) => point.allocation)).toEqual(["0.7", "0.9"].map((auc) => ({ file: tableFile(auc), source: "calibrated" })));
    expect(report.calibration).toEqual({ problems: 5, samples: 4, budgets: [1, 2], grid: ["best-of-n-weighted", "best-of-n-majority"] });
    expect(readFileSync(join(out, "verifier-sweep.md"), "utf8")).toContain(`| own calibration (${tableFile("0.9")}) |`);

    // Run again: everything is done, so nothing changes (the tables are rebuilt the same).
    const finished = snapshot(out);
    await sweep();
    expect(snapshot(out)).toEqual(finished);

    // Stopped in rule@0.9's calibration: 3 of its 10 grid results at budget 2, no table, no stage run.
    const grid = join("simulated-auc-0.9", "calibration", "budget-2", "results.jsonl");
    const done = lines(grid).slice(0, 3);
    writeFileSync(join(out, grid), `${done.join("\n")}\n`);
    rmSync(tableFile("0.9"));
    rmSync(join(out, "simulated-auc-0.9", "budget-6"), { recursive: true });
    const untouched = new Map([...snapshot(out)].filter(([path]) => path !== grid));
    await sweep();
    const resumed = snapshot(out);
    expect(new Map([...resumed].filter(([path]) => untouched.has(path)))).toEqual(untouched);
    const redone = lines(grid);
    expect(redone.slice(0, 3)).toEqual(done);
    expect(new Set(redone.map((line) => `${JSON.parse(line).problemId} ${JSON.parse(line).strategy}`)).size).toBe(10);
    const config = JSON.parse(readFileSync(join(out, "simulated-auc-0.9", "budget-6", "config.json"), "utf8"));
    expect(config.experiment.strategies.find((strategy: { label: string }) => strategy.label === "compute-optimal").params.table).toEqual(loadAllocationTable(tableFile("0.9")));
    expect(lines("simulated-auc-0.9/budget-6/results.jsonl")).toHaveLength(10);
  }, 180_000);
});
