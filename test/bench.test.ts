import { mkdtemp, readFile, appendFile, writeFile, rm } from "node:fs/promises";
import { existsSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { Command } from "commander";
import { afterAll, describe, expect, it } from "vitest";
import { Grader } from "../datasets/answer/grader.js";
import { DEFAULT_LADDER, generateSynth } from "../datasets/synth/generate.js";
import { parseBenchConfig, resolveBenchConfig, type BenchConfig } from "../src/bench/config.js";
import { resultSchema, workItemKey, type BenchResult } from "../src/bench/results.js";
import { cellAccuracy, loadBenchProblems, runBench, shardOf, workItems, type RunBenchOptions } from "../src/bench/run.js";
import { lineProgress } from "../src/bench/progress.js";
import { loadRuns } from "../src/report/load.js";
import { PassThrough } from "node:stream";
import { readRunResults, ResultsWriter } from "../src/bench/store.js";
import { registerBench } from "../src/commands/bench.js";
import { InputError } from "../src/errors.js";
import { writeReport } from "../src/report/report.js";
import type { Branch, ExtendOptions, PolicyPrompt, StepResult } from "../src/policy.js";
import { ScriptedPolicy, ScriptedVerifier, type StepScript } from "./support/scripted-policy.js";

const grader = new Grader({ workers: 1 });
afterAll(() => grader.close());

// The config's dataset: the first 4 synthetic test problems of seed 1 (the defaults).
const problems = generateSynth({ split: "test", seed: 1, n: 4 });
const goldOf = new Map(problems.map((problem) => [problem.problem, problem.answer]));
const [first, second, third] = problems as [(typeof problems)[0], (typeof problems)[0], (typeof problems)[0]];

/** Two steps: some work, then the gold answer (or a wrong one for `wrong`); throws on `failing`. */
function script(options: { wrong?: string; failing?: string } = {}): StepScript {
  return ({ prompt, steps }) => {
    if (prompt.problem === options.failing) throw new Error("model exploded");
    if (steps.length === 0) return { text: "Let us compute." };
    const answer = prompt.problem === options.wrong ? "-12345" : goldOf.get(prompt.problem);
    return { text: `The answer is \\boxed{${answer}}`, end: true };
  };
}

const verifier = new ScriptedVerifier(() => 0.5);

const dirs: string[] = [];
afterAll(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "deliberate-bench-"));
  dirs.push(dir);
  return dir;
}

/** 4 problems x 2 strategy configurations x 2 budgets x 1 seed = 16 work items. */
function config(out: string, overrides: Record<string, unknown> = {}): BenchConfig {
  return parseBenchConfig({
    n: 4,
    strategies: ["best-of-n", { label: "beam-w2", strategy: "beam", params: { beamWidth: 2 } }],
    budgets: [2, 4],
    concurrency: 1,
    out,
    ...overrides,
  });
}
const ITEMS = 16;

function run(cfg: BenchConfig, options: Partial<RunBenchOptions> = {}) {
  return runBench(cfg, { policy: new ScriptedPolicy(script()), verifier, grader, ...options });
}

async function lines(dir: string, file = "results.jsonl"): Promise<BenchResult[]> {
  const text = await readFile(join(dir, file), "utf8");
  expect(text.endsWith("\n")).toBe(true);
  return text.trimEnd().split("\n").map((line) => resultSchema.parse(JSON.parse(line)));
}

function expectOnePerItem(results: readonly BenchResult[], cfg: BenchConfig): void {
  const expected = workItems(
    problems.map(({ unique_id, problem, answer, level, subject }) => ({ id: unique_id, problem, answer, level, subject })),
    cfg.experiment,
  ).map((item) => item.key);
  expect(results.map(workItemKey).sort()).toEqual(expected.sort());
}

describe("runBench", () => {
  it("writes exactly one graded line per work item, and config.json", async () => {
    const dir = await tempDir();
    const cfg = config(dir);
    const summary = await runBench(cfg, { policy: new ScriptedPolicy(script({ wrong: second.problem })), verifier, grader });
    const results = await lines(dir);
    expect(results).toHaveLength(ITEMS);
    expectOnePerItem(results, cfg);
    for (const result of results) {
      const problem = problems.find((candidate) => candidate.unique_id === result.problemId);
      expect(result).toMatchObject({ gold: problem?.answer, level: problem?.level, subject: problem?.subject, error: null, difficultyBin: null });
      expect(result.strategyName).toBe(result.strategy === "beam-w2" ? "beam" : "best-of-n");
      expect(result.correct).toBe(result.problemId !== second.unique_id);
      expect(result.answer).toBe(result.correct ? problem?.answer : "-12345");
      expect(result.compute?.generations).toBe(result.budget);
      expect(result.ms).toBeGreaterThanOrEqual(0);
    }
    expect(summary).toMatchObject({ items: ITEMS, done: ITEMS, ranNow: ITEMS, errors: 0, interrupted: false, repairedBytes: 0 });
    expect(summary.accuracy).toContainEqual({ strategy: "beam-w2", budget: 4, items: 4, correct: 3, errors: 0, gradingFailures: 0 });

    const record = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    expect(record.experiment.strategies[1]).toEqual({ label: "beam-w2", strategy: "beam", params: { beamWidth: 2, select: "weighted", aggregate: "last" } });
    expect(record.experiment).toMatchObject({ budgets: [2, 4], seeds: 1, policy: "scripted-policy", verifier: "scripted-verifier" });
    expect(record.experiment.dataset).toEqual({ name: "synth", split: "test", n: 4, seed: 1, ladder: DEFAULT_LADDER });
    expect(record.run.concurrency).toBe(1);
    expect(existsSync(join(dir, "results.jsonl.lock"))).toBe(false);
  });

  it("resumes: a second run skips every finished item and writes nothing", async () => {
    const dir = await tempDir();
    await run(config(dir));
    const before = await readFile(join(dir, "results.jsonl"), "utf8");
    const policy = new ScriptedPolicy(script());
    const summary = await run(config(dir, { concurrency: 4, itemTimeout: 30 }), { policy });
    expect(summary).toMatchObject({ done: ITEMS, ranNow: 0 });
    expect(policy.calls).toHaveLength(0);
    expect(await readFile(join(dir, "results.jsonl"), "utf8")).toBe(before);
  });

  it("stops on the signal without recording running items, then resumes where it stopped", async () => {
    const dir = await tempDir();
    const controller = new AbortController();
    let seen = 0;
    const stopped = await run(config(dir), {
      signal: controller.signal,
      onResult: () => {
        if (++seen === 3) controller.abort();
      },
    });
    expect(stopped).toMatchObject({ interrupted: true, done: 3, ranNow: 3 });
    expect(await lines(dir)).toHaveLength(3);

    const resumed = await run(config(dir));
    expect(resumed).toMatchObject({ interrupted: false, done: ITEMS, ranNow: ITEMS - 3 });
    expectOnePerItem(await lines(dir), config(dir));
  });

  it("cuts off a torn last line (kill -9 mid-write) before appending", async () => {
    const dir = await tempDir();
    const controller = new AbortController();
    await run(config(dir), { signal: controller.signal, onResult: () => controller.abort() });
    const torn = '{"problemId":"synth/test/1/3","strategy":"beam-w2","bud';
    await appendFile(join(dir, "results.jsonl"), torn);
    expect(await readRunResults(dir)).toHaveLength(1);

    const summary = await run(config(dir));
    expect(summary.repairedBytes).toBe(torn.length);
    expectOnePerItem(await lines(dir), config(dir));
  });

  it("records an item whose policy throws, with its error, and goes on", async () => {
    const dir = await tempDir();
    const summary = await runBench(config(dir), { policy: new ScriptedPolicy(script({ failing: third.problem })), verifier, grader });
    const results = await lines(dir);
    expectOnePerItem(results, config(dir));
    const failed = results.filter((result) => result.error !== null);
    expect(failed).toHaveLength(4);
    for (const result of failed) {
      expect(result).toMatchObject({ problemId: third.unique_id, error: "model exploded", correct: false, answer: null });
      expect(result.compute?.generations).toBe(result.budget);
    }
    expect(results.filter((result) => result.correct)).toHaveLength(ITEMS - 4);
    expect(summary.errors).toBe(4);
  });

  it("records an item that runs past --item-timeout as failed", async () => {
    /** Never answers for `first` until the item's signal aborts. */
    class StallingPolicy extends ScriptedPolicy {
      override extend(branches: readonly Branch[], options: ExtendOptions): Promise<StepResult[]> {
        const stalled = branches.some((branch) => (branch as unknown as { prompt: PolicyPrompt }).prompt.problem === first.problem);
        if (!stalled) return super.extend(branches, options);
        return new Promise((_, reject) => options.signal?.addEventListener("abort", () => reject(options.signal?.reason as Error), { once: true }));
      }
    }
    const dir = await tempDir();
    const cfg = config(dir, { itemTimeout: 0.2, concurrency: 4, strategies: ["best-of-n"] });
    const summary = await run(cfg, { policy: new StallingPolicy(script()) });
    const results = await lines(dir);
    expect(results).toHaveLength(8);
    const failed = results.filter((result) => result.error !== null);
    expect(failed.map((result) => result.problemId)).toEqual([first.unique_id, first.unique_id]);
    expect(failed[0]?.error).toMatch(/^timeout: the item ran longer than 0.2 s/);
    expect(summary).toMatchObject({ errors: 2, interrupted: false });
  });

  it("stops at a configuration error (a strategy that needs a verifier, without one) and records nothing", async () => {
    const dir = await tempDir();
    await expect(run(config(dir), { verifier: null })).rejects.toThrow(/best-of-n at budget \d: .*needs a step verifier/);
    expect(await readFile(join(dir, "results.jsonl"), "utf8")).toBe("");
    expect(existsSync(join(dir, "results.jsonl.lock"))).toBe(false);
  });

  it("refuses to resume with a different configuration; run settings may change", async () => {
    const dir = await tempDir();
    await run(config(dir, { strategies: ["best-of-n"], budgets: [2] }));
    await expect(run(config(dir, { strategies: ["best-of-n"], budgets: [2, 4] }))).rejects.toThrow(/another configuration[^]*budgets: \[2\] there, \[2,4\] now/);
    await expect(run(config(dir, { strategies: ["best-of-n"], budgets: [2], maxSteps: 3 }))).rejects.toThrow(/limits:/);
    const summary = await run(config(dir, { strategies: ["best-of-n"], budgets: [2], concurrency: 8, device: "auto", threads: 2, progress: "lines" }));
    expect(summary.ranNow).toBe(0);
  });

  it("records the models' and problems' fingerprints and refuses to resume with other weights or problems", async () => {
    const dir = await tempDir();
    const cfg = config(dir, { strategies: ["best-of-n"], budgets: [2] });
    const policyWithWeights = (fingerprint: string) => Object.assign(new ScriptedPolicy(script()), { fingerprint });
    await run(cfg, { policy: policyWithWeights("sha256:aaa") });
    const stored = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    expect(stored.experiment.fingerprints).toEqual({ policy: "sha256:aaa", verifier: null, problems: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    expect((await run(cfg, { policy: policyWithWeights("sha256:aaa") })).ranNow).toBe(0);
    await expect(run(cfg, { policy: policyWithWeights("sha256:bbb") })).rejects.toThrow(
      /fingerprints: \{"policy":"sha256:aaa",[^\n]*there, \{"policy":"sha256:bbb",[^]*The policy changed since that run started/,
    );
    // The same problem ids with another text: a generator that changed under the run.
    const loaded = await loadBenchProblems(cfg);
    const changed = loaded.map((problem, i) => (i === 0 ? { ...problem, problem: `${problem.problem} ` } : problem));
    await expect(run(cfg, { policy: policyWithWeights("sha256:aaa"), problems: changed })).rejects.toThrow(/The problems changed since that run started/);
    // A run recorded before fingerprints existed cannot be checked, and resumes.
    delete stored.experiment.fingerprints;
    await writeFile(join(dir, "config.json"), JSON.stringify(stored));
    expect((await run(cfg, { policy: policyWithWeights("sha256:bbb") })).ranNow).toBe(0);
  });

  it("locks the results file against a second writer and takes over a dead process's lock", async () => {
    const dir = await tempDir();
    const writer = await ResultsWriter.open(dir, null);
    await expect(ResultsWriter.open(dir, null)).rejects.toThrow(/another deliberate bench \(pid \d+/);
    await writer.close();
    await writeFile(join(dir, "results.jsonl.lock"), JSON.stringify({ pid: 2 ** 30, host: hostname() }));
    const next = await ResultsWriter.open(dir, null);
    await next.close();
  });
});

describe("grading that does not finish (a loaded machine, a pathological answer)", () => {
  /**
   * An answer equal to `value` that takes a few hundred milliseconds to grade (a sum of 1,600 terms
   * to evaluate), far past a 50 ms limit; a plain answer takes about a millisecond.
   */
  const slow = (value: string) => `${value}${"+1-1".repeat(800)}`;

  it("records it as a grading failure with the answer kept, leaves it out of accuracy, and the same command grades it again without the search", async () => {
    const dir = await tempDir();
    // first: a right answer that is slow to grade; second: a wrong answer; the others: right answers.
    const slowScript: StepScript = ({ prompt, steps }) => {
      if (steps.length === 0) return { text: "Let us compute." };
      const gold = goldOf.get(prompt.problem) as string;
      const answer = prompt.problem === first.problem ? slow(gold) : prompt.problem === second.problem ? "-12345" : gold;
      return { text: `The answer is \\boxed{${answer}}`, end: true };
    };
    // Steps long enough for the slow answer (a step is cut at its token limit).
    const cfg = (overrides: Record<string, unknown> = {}) => config(dir, { strategies: ["best-of-n"], concurrency: 4, maxStepTokens: 8192, ...overrides });
    const stream = new PassThrough();
    let printed = "";
    stream.on("data", (chunk: Buffer) => (printed += chunk.toString()));
    // No grader given: the run's own, with the run's grading limit (3 tries).
    const summary = await runBench(cfg({ gradeTimeout: 0.05 }), { policy: new ScriptedPolicy(slowScript), verifier, progress: lineProgress(3600, stream) });

    let results = await lines(dir);
    expectOnePerItem(results, cfg());
    const failed = results.filter((result) => result.gradingFailed === true);
    expect(failed.map((result) => result.problemId)).toEqual([first.unique_id, first.unique_id]);
    for (const result of failed) {
      expect(result).toMatchObject({ correct: false, answer: slow(first.answer), error: "grading timed out after 0.05 s (3 tries)" });
      expect(result.compute?.generations).toBe(result.budget);
    }
    expect(results.filter((result) => result.correct).map((result) => result.problemId).sort()).toEqual([third.unique_id, third.unique_id, problems[3]?.unique_id, problems[3]?.unique_id].sort());
    expect(summary).toMatchObject({ done: ITEMS / 2, errors: 2, gradingFailures: 2, regraded: 0 });
    // Accuracy over the graded items: 2 right of 3, not 2 of 4.
    for (const cell of summary.accuracy) {
      expect(cell).toMatchObject({ items: 4, correct: 2, gradingFailures: 1 });
      expect(cellAccuracy(cell)).toBeCloseTo(2 / 3);
    }
    expect(printed).toMatch(/8\/8 items .*\| 2 errors \(2 grading\) \|/);
    // A report counts them in no number, and says so.
    const loaded = await loadRuns([dir]);
    expect({ graded: loaded.results.length, failures: loaded.gradingFailures.length }).toEqual({ graded: 6, failures: 2 });
    expect(loaded.warnings).toEqual([expect.stringMatching(/^2 items are left out of every number: their grading did not finish .*\(best-of-n N=2: 1, best-of-n N=4: 1\)/)]);

    // The same command with the default limit: the answers are graded again, the search does not run again.
    const policy = new ScriptedPolicy(slowScript);
    const resumed = await runBench(cfg(), { policy, verifier });
    expect(policy.calls).toHaveLength(0);
    expect(resumed).toMatchObject({ done: ITEMS / 2, ranNow: 0, regraded: 2, errors: 0, gradingFailures: 0 });
    results = await lines(dir);
    expectOnePerItem(results, cfg());
    for (const result of results.filter((result) => result.problemId === first.unique_id)) {
      expect(result).toMatchObject({ correct: true, error: null, answer: slow(first.answer) });
      expect(result.gradingFailed).toBeUndefined();
    }
    for (const cell of resumed.accuracy) expect(cellAccuracy(cell)).toBe(3 / 4);
    expect((await loadRuns([dir])).warnings).toEqual([]);
  });

  it("fails an item whose vote could not compare two answers (no wrong vote), and runs it again on resume", async () => {
    const dir = await tempDir();
    // Two samples per problem: the plain gold answer and the slow form of it, which the vote must compare.
    const votingScript: StepScript = ({ prompt, steps, sibling }) => {
      if (steps.length === 0) return { text: "Let us compute." };
      const gold = goldOf.get(prompt.problem) as string;
      const answer = prompt.problem === first.problem && sibling === 1 ? slow(gold) : gold;
      return { text: `The answer is \\boxed{${answer}}`, end: true };
    };
    const cfg = (overrides: Record<string, unknown> = {}) =>
      config(dir, { strategies: [{ label: "majority", strategy: "best-of-n", params: { select: "majority" } }], budgets: [2], concurrency: 4, maxStepTokens: 8192, ...overrides });
    const summary = await runBench(cfg({ gradeTimeout: 0.05 }), { policy: new ScriptedPolicy(votingScript), verifier });
    const failed = (await lines(dir)).filter((result) => result.error !== null);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ problemId: first.unique_id, gradingFailed: true, answer: null, correct: false });
    expect(failed[0]?.error).toBe("comparing two answers for the vote timed out after 0.05 s (3 tries)");
    expect(summary).toMatchObject({ gradingFailures: 1 });
    expect(cellAccuracy(summary.accuracy[0] as (typeof summary.accuracy)[0])).toBe(1);

    const policy = new ScriptedPolicy(votingScript);
    const resumed = await runBench(cfg(), { policy, verifier });
    expect(resumed).toMatchObject({ ranNow: 1, regraded: 0, gradingFailures: 0, errors: 0 });
    expect(policy.calls.length).toBeGreaterThan(0);
    const results = await lines(dir);
    expect(results).toHaveLength(4);
    expect(results.every((result) => result.correct)).toBe(true);
  });
});

describe("shards", () => {
  it("partition the work items: every item in exactly one shard", async () => {
    const cfg = config("unused", { seeds: 3 });
    const keys = workItems(await loadBenchProblems(cfg), cfg.experiment).map((item) => item.key);
    const shards = [1, 2, 3].map((index) => keys.filter((key) => shardOf(key, 3) === index));
    expect(shards.every((shard) => shard.length > 0)).toBe(true);
    expect(shards.flat().sort()).toEqual([...keys].sort());
    expect(new Set(shards.flat()).size).toBe(keys.length);
  });

  it("write their own results files; together they hold every item once", async () => {
    const dir = await tempDir();
    const one = await run(config(dir, { shard: "1/2" }));
    const two = await run(config(dir, { shard: "2/2" }));
    expect(one.items + two.items).toBe(ITEMS);
    expect(one.resultsFile).toBe(join(dir, "results.shard-1-of-2.jsonl"));
    expect(await lines(dir, "results.shard-1-of-2.jsonl")).toHaveLength(one.items);
    expect(await lines(dir, "results.shard-2-of-2.jsonl")).toHaveLength(two.items);
    expectOnePerItem(await readRunResults(dir), config(dir));
    // Unsharded now: the shards' results count as done.
    expect((await run(config(dir))).ranNow).toBe(0);
  });
});

describe("bench configuration", () => {
  /** Runs `deliberate bench ARGS` up to its first error, which must come before any work. */
  async function cliError(args: string[]): Promise<string> {
    const out = join(await tempDir(), "run");
    const program = new Command().exitOverride();
    registerBench(program);
    const error: unknown = await program.parseAsync(["bench", "--out", out, ...args], { from: "user" }).then(
      () => null,
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(InputError);
    expect(existsSync(out)).toBe(false);
    return (error as InputError).message;
  }

  it("names the flag of a bad value", async () => {
    expect(await cliError(["--strategies", "best-of-n", "--budgets", "1,x"])).toBe('--budgets: expected a positive integer, got "x"');
    expect(await cliError(["--strategies", "best-of-n", "--seeds", "0"])).toBe("--seeds: expected a positive integer");
    expect(await cliError(["--strategies", "best-of-nn"])).toMatch(/^--strategies: unknown strategy "best-of-nn"; valid strategies: best-of-n, beam/);
    expect(await cliError(["--strategies", "best-of-n", "--dataset", "math500", "--split", "test"])).toBe("--split: applies to the synth dataset only");
    expect(await cliError(["--strategies", "best-of-n", "--shard", "3/2"])).toBe("--shard: expected I/N with 1 <= I <= N");
    expect(await cliError(["--strategies", "best-of-n", "--temperature", "-1"])).toMatch(/^--temperature: /);
    expect(await cliError(["--budgets", "4"])).toBe("--strategies: required");
    expect(await cliError(["--strategies", "best-of-n", "--grade-timeout", "0"])).toBe("--grade-timeout: expected a positive number of seconds");
    expect(await cliError(["--strategies", "best-of-n", "--ladder", "3"])).toBe('--ladder: expected a ladder, one of 1, 2, got 3');
    expect(await cliError(["--strategies", "best-of-n", "--dataset", "math500", "--ladder", "2"])).toBe("--ladder: applies to the synth dataset only");
  });

  it("draws the synth problems from the ladder asked for, and resumes a run recorded before ladders as ladder 1", async () => {
    const two = await loadBenchProblems(config("unused", { ladder: 2 }));
    expect(two.map((problem) => problem.problem)).toEqual(generateSynth({ split: "test", seed: 1, n: 4, ladder: 2 }).map((problem) => problem.problem));
    const out = join(await tempDir(), "run");
    await run(config(out, { ladder: 1 }));
    // As config.json was written before the dataset had a ladder.
    const record = JSON.parse(await readFile(join(out, "config.json"), "utf8"));
    delete record.experiment.dataset.ladder;
    await writeFile(join(out, "config.json"), JSON.stringify(record));
    await run(config(out, { ladder: 1 }));
    await expect(run(config(out, { ladder: 2 }))).rejects.toThrow(/another configuration[^]*dataset:/);
  });

  it("skips a budget that does not fit a strategy's shape, with the reason, and refuses one that fits at no budget", async () => {
    const cfg = await resolveBenchConfig({ flags: { strategies: "best-of-n,beam", budgets: "1,4,6", out: "runs/x" } });
    expect(cfg.experiment.skipped).toEqual([
      { label: "beam", budget: 1, reason: expect.stringMatching(/budget 1 is not a multiple of beamWidth 4/) },
      { label: "beam", budget: 6, reason: expect.stringMatching(/budget 6 is not a multiple of beamWidth 4/) },
    ]);
    expect(workItems([{ id: "p", problem: "P", answer: "1", level: 1, subject: null }], cfg.experiment).map((item) => `${item.strategy.label}@${item.budget}`)).toEqual([
      "best-of-n@1",
      "best-of-n@4",
      "best-of-n@6",
      "beam@4",
    ]);
    const message = await cliError(["--strategies", "best-of-n,beam", "--budgets", "1,6"]);
    expect(message).toMatch(/--strategies: beam \(beam\) at budget 1: .*not a multiple of beamWidth 4/);
    expect(message).toMatch(/--strategies: beam \(beam\) at budget 6: .*not a multiple of beamWidth 4/);
  });

  it("runs no item of a skipped pair, keeps it in config.json, and the report notes it", async () => {
    const dir = await tempDir();
    const cfg = config(dir, { budgets: [1, 2] });
    expect(cfg.experiment.skipped.map(({ label, budget }) => [label, budget])).toEqual([["beam-w2", 1]]);
    await run(cfg);
    expect((await lines(dir)).filter((result) => result.strategy === "beam-w2").map((result) => result.budget)).toEqual([2, 2, 2, 2]);
    expect(JSON.parse(await readFile(join(dir, "config.json"), "utf8")).experiment.skipped).toEqual(cfg.experiment.skipped);
    await writeReport([dir], { out: dir });
    expect(await readFile(join(dir, "report.md"), "utf8")).toMatch(/beam-w2 did not run at N=1 in .*: budget: budget 1 is not a multiple of beamWidth 2/);
  });

  it("names the config file and field of a bad setting", async () => {
    const message = await cliError(["--config", "test/fixtures/bench-bad-params.yaml"]);
    expect(message).toBe("test/fixtures/bench-bad-params.yaml: strategies.1.params.beamwidth: beam has no parameter beamwidth; its parameters: budget, beamWidth, select, aggregate");
    expect(await cliError(["--config", "test/fixtures/bench-unknown-key.json"])).toMatch(/^test\/fixtures\/bench-unknown-key.json: \(top level\): .*"budget"/);
    expect(await cliError(["--config", "test/fixtures/missing.yaml"])).toBe("--config: cannot read test/fixtures/missing.yaml: no such file or directory (ENOENT)");
  });

  it("layers flag defaults, then the file, then the flags; --strategies picks the file's configurations by label", async () => {
    const cfg = await resolveBenchConfig({
      file: "test/fixtures/bench-sweep.yaml",
      defaults: { policy: "policy", concurrency: "99" },
      flags: { strategies: "beam-w2,best-of-n", budgets: "4", out: "runs/x" },
    });
    expect(cfg.experiment.strategies).toEqual([
      { label: "beam-w2", strategy: "beam", params: { beamWidth: 2, select: "weighted", aggregate: "last" } },
      { label: "best-of-n", strategy: "best-of-n", params: { select: "weighted", aggregate: "last" } },
    ]);
    expect(cfg.experiment).toMatchObject({ budgets: [4], dataset: { name: "synth", n: 4 }, limits: { maxSteps: 4, maxStepTokens: 256 }, policy: "policy" });
    expect(cfg.run).toMatchObject({ concurrency: 2, progress: "none" });

    const other = await resolveBenchConfig({ file: "test/fixtures/bench-sweep.yaml", flags: { dataFile: "problems.jsonl", out: "runs/y" } });
    expect(other.experiment.dataset).toEqual({ name: "file", file: "problems.jsonl" });
  });
});

describe("a difficulty file (compute-optimal with difficulty oracle)", () => {
  const noCompute = { generations: 0, generatedTokens: 0, prefilledTokens: 0, verifierTokens: 0, policyCalls: 0, verifierCalls: 0, retries: 0, flops: 0, wallMs: 0 };
  /** A line of difficulty.jsonl, as a difficulty pass writes it. */
  const record = (problemId: string, passRate: number) =>
    JSON.stringify({
      problemId,
      strategy: "estimate",
      strategyName: "best-of-n",
      budget: 2,
      seed: 0,
      level: 1,
      subject: null,
      answer: null,
      gold: "1",
      correct: false,
      compute: noCompute,
      ms: 0,
      error: null,
      score: 0.5,
      scores: [0.5],
      oracle: { samples: 4, correct: passRate * 4, passRate, compute: noCompute },
    });
  const entry = (bin: number, budget: number, label: string, params: Record<string, unknown>) => ({ bin, budget, label, strategy: "best-of-n", params, accuracy: 0.5, problems: 2 });
  const table = {
    version: 1,
    policy: "scripted-policy",
    verifier: "scripted-verifier",
    difficulty: { samples: 1, edges: [0.5] },
    entries: [entry(1, 1, "naive-1", { select: "naive" }), entry(2, 2, "naive-2", { select: "naive" })],
    oracle: { edges: [0.5], entries: [entry(1, 1, "oracle-1", { select: "naive" }), entry(2, 2, "oracle-2", { select: "naive" })] },
    source: { folds: 2 },
  };

  /** A directory with the table, a difficulty file of `lines` and a config file running compute-optimal with difficulty oracle. */
  async function setup(lines: string[], tableValue: object = table) {
    const dir = await tempDir();
    await writeFile(join(dir, "allocation.json"), JSON.stringify(tableValue));
    await writeFile(join(dir, "difficulty.jsonl"), lines.map((line) => `${line}\n`).join(""));
    const strategies = [{ label: "co-oracle", strategy: "compute-optimal", params: { difficulty: "oracle", table: join(dir, "allocation.json") } }];
    await writeFile(join(dir, "bench.json"), JSON.stringify({ n: 4, budgets: [2], strategies }));
    return { dir, difficultyFile: join(dir, "difficulty.jsonl"), configFile: join(dir, "bench.json"), strategies };
  }
  // The first two problems are easy for the oracle, the others hard.
  const passRates = problems.map((problem, index) => [problem.unique_id, index < 2 ? 1 : 0] as const);
  const allLines = passRates.map(([id, passRate]) => record(id, passRate));

  it("gives each problem its pass rate: the oracle bin's configuration gets the whole budget", async () => {
    const { dir, difficultyFile, strategies } = await setup(allLines);
    const out = join(dir, "run");
    const cfg = parseBenchConfig({ n: 4, budgets: [2], strategies, difficultyFile, out });
    expect(cfg.experiment.knownDifficulty).toEqual(Object.fromEntries(passRates));
    await run(cfg);
    const results = await lines(out);
    // Both bins spend the whole budget of 2: the easy bin's configuration was calibrated at 1.
    expect(results.map((result) => [result.problemId, result.difficultyBin, result.compute?.generations])).toEqual(
      passRates.map(([id, passRate]) => [id, passRate === 1 ? 1 : 2, 2]),
    );
    expect(JSON.parse(await readFile(join(out, "config.json"), "utf8")).experiment.knownDifficulty).toEqual(Object.fromEntries(passRates));

    // Other pass rates are another experiment.
    await writeFile(difficultyFile, passRates.map(([id]) => `${record(id, 0.25)}\n`).join(""));
    await expect(run(parseBenchConfig({ n: 4, budgets: [2], strategies, difficultyFile, out }))).rejects.toThrow(/another configuration[^]*knownDifficulty:/);
  });

  it("fails before any work on a missing file, a bad line or a problem it lacks", async () => {
    const { dir, difficultyFile, configFile } = await setup([allLines[0] as string, '{"problemId": "x"}', ...allLines.slice(1)]);
    const cliError = async (args: string[]) => {
      const out = join(dir, "run");
      const program = new Command().exitOverride();
      registerBench(program);
      const error: unknown = await program.parseAsync(["bench", "--out", out, "--config", configFile, ...args], { from: "user" }).then(
        () => null,
        (failure: unknown) => failure,
      );
      expect(error).toBeInstanceOf(InputError);
      expect(existsSync(out)).toBe(false);
      return (error as InputError).message;
    };
    expect(await cliError(["--difficulty-file", join(dir, "missing.jsonl")])).toBe(`--difficulty-file: cannot read ${join(dir, "missing.jsonl")}: no such file`);
    expect(await cliError(["--difficulty-file", difficultyFile])).toMatch(new RegExp(`^--difficulty-file: ${difficultyFile}:2: not a difficulty record \\(strategy: `));
    await writeFile(difficultyFile, `${allLines.slice(0, 2).join("\n")}\n{"problemId":`);
    expect(await cliError(["--difficulty-file", difficultyFile])).toBe(`--difficulty-file: ${difficultyFile}:3: not valid JSON; fix or delete that line`);
    await writeFile(difficultyFile, `${allLines.slice(0, 2).join("\n")}\n`);
    expect(await cliError(["--difficulty-file", difficultyFile])).toBe(
      `co-oracle (compute-optimal with difficulty oracle) needs every problem's oracle pass rate, and ${difficultyFile} has none for 2 of the 4 problems ` +
        `(${problems.slice(2).map((problem) => problem.unique_id).join(", ")}): run deliberate calibrate --difficulty-only on the same problems`,
    );
    expect(await cliError([])).toMatch(/^--difficulty-file: required by co-oracle \(compute-optimal with difficulty oracle\)/);
    // runBench checks it too, before it writes anything.
    const out = join(dir, "direct");
    const cfg = parseBenchConfig({ n: 4, budgets: [2], strategies: [{ label: "co-oracle", strategy: "compute-optimal", params: { difficulty: "oracle", table: join(dir, "allocation.json") } }], difficultyFile, out });
    await expect(run(cfg)).rejects.toThrow(/has none for 2 of the 4 problems/);
    expect(existsSync(out)).toBe(false);
  });

  it("refuses difficulty oracle with a table that has no oracle section", async () => {
    const { difficultyFile, strategies, dir } = await setup(allLines, { ...table, oracle: undefined });
    expect(() => parseBenchConfig({ n: 4, budgets: [2], strategies, difficultyFile, out: join(dir, "run") })).toThrow(
      /^strategies\.0: co-oracle \(compute-optimal\) at budget 2: table: compute-optimal with difficulty oracle needs an allocation table with an oracle section, .*re-run deliberate calibrate/,
    );
  });

  it("resumes a run whose config.json predates difficulty files", async () => {
    const dir = await tempDir();
    const cfg = config(dir, { strategies: ["best-of-n"], budgets: [2] });
    await run(cfg);
    const file = join(dir, "config.json");
    const stored = JSON.parse(await readFile(file, "utf8"));
    delete stored.experiment.knownDifficulty;
    await writeFile(file, JSON.stringify(stored));
    expect((await run(cfg)).ranNow).toBe(0);
  });
});
