import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { registerReport } from "../src/commands/report.js";
import { InputError } from "../src/errors.js";
import type { BenchResult } from "../src/bench/results.js";
import { chooseReference, compareWithReference, type Efficiency, type EfficiencyRow } from "../src/report/efficiency.js";
import { loadRuns, type RunInfo } from "../src/report/load.js";
import { comparePaired, parseBaseline, type PairedRow } from "../src/report/paired.js";
import { bootstrapMeanCI, DEFAULT_BOOTSTRAP, summarize, type Cell, type GroupCell, type Summary } from "../src/report/stats.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/report-run", import.meta.url));
const FIXTURE_TEXT = readFileSync(join(FIXTURE, "results.jsonl"), "utf8");

/** The fixture lines as plain JSON: the expected numbers below are counted from these, not by src/report. */
interface Line {
  problemId: string;
  strategy: string;
  budget: number;
  seed: number;
  level: number;
  correct: boolean;
  error: string | null;
  compute: { generations: number; generatedTokens: number; flops: number } | null;
  difficultyBin?: number | null;
}
const LINES = FIXTURE_TEXT.trim().split("\n").map((text) => JSON.parse(text) as Line);
const STRATEGIES = ["beam-w4", "best-of-n", "compute-optimal"];
const BUDGETS = [1, 4, 16];

/** Mean over problems of (right answers / seeds), by plain counting. */
function expectedAccuracy(keep: (line: Line) => boolean): { accuracy: number; problems: number } {
  const counts = new Map<string, { right: number; total: number }>();
  for (const line of LINES.filter(keep)) {
    const count = counts.get(line.problemId) ?? { right: 0, total: 0 };
    count.right += line.correct ? 1 : 0;
    count.total += 1;
    counts.set(line.problemId, count);
  }
  const perProblem = [...counts.values()].map((count) => count.right / count.total);
  return { accuracy: perProblem.reduce((a, b) => a + b, 0) / perProblem.length, problems: perProblem.length };
}

const pct = (value: number) => `${(value * 100).toFixed(1)}%`;

/** Elements drawn by each data mark (vega's `mark-<type> role-mark` groups) of an SVG, by mark type. */
function countMarks(svg: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [, type, body] of svg.matchAll(/<g class="mark-(\w+) role-mark[^"]*"[^>]*>(.*?)<\/g>/gs)) {
    counts[type as string] = (counts[type as string] ?? 0) + (body as string).match(/<(path|line)\b/g)!.length;
  }
  return counts;
}

async function runCli(...args: string[]): Promise<string> {
  const program = new Command("deliberate").exitOverride();
  registerReport(program);
  const write = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
  try {
    await program.parseAsync(["node", "deliberate", "report", ...args]);
    return write.mock.calls.map((call) => String(call[0])).join("");
  } finally {
    write.mockRestore();
  }
}

const tempDirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "deliberate-report-"));
  tempDirs.push(dir);
  return dir;
}
afterAll(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** A run directory holding the given result files (name -> text). */
async function runDir(files: Record<string, string>): Promise<string> {
  const dir = await tempDir();
  await Promise.all(Object.entries(files).map(([name, text]) => writeFile(join(dir, name), text)));
  return dir;
}

describe("deliberate report on the fixture run", () => {
  let out: string;
  let json: Summary & { efficiency: Efficiency; plots: string[] };
  let markdown: string;
  let html: string;

  beforeAll(async () => {
    out = join(await tempDir(), "report");
    const printed = await runCli(FIXTURE, "--out", out);
    expect(printed).toContain(join(out, "report.html"));
    json = JSON.parse(await readFile(join(out, "report.json"), "utf8")) as typeof json;
    markdown = await readFile(join(out, "report.md"), "utf8");
    html = await readFile(join(out, "report.html"), "utf8");
  });

  it("writes the three reports and the plots", () => {
    for (const file of ["report.md", "report.html", "report.json"]) expect(existsSync(join(out, file))).toBe(true);
    expect(json.plots).toEqual([
      "plots/accuracy-budget.svg",
      "plots/accuracy-generations.svg",
      "plots/accuracy-tokens.svg",
      "plots/accuracy-flops.svg",
      "plots/accuracy-level.svg",
      "plots/accuracy-difficulty-bin.svg",
    ]);
    for (const plot of json.plots) expect(existsSync(join(out, plot))).toBe(true);
  });

  it("shows what the run's config.json says", () => {
    expect(markdown).toContain("(dataset synth, policy griffin-tiny, verifier prm-tiny)");
    expect(markdown).toContain("| experiment.strategies.1.params.beamWidth | 4 |");
    expect(html).toContain("<td>experiment.budgets</td><td>1, 4, 16</td>");
  });

  it("reports every strategy and budget with the accuracies counted from the JSONL", () => {
    expect(json.strategies).toEqual(STRATEGIES);
    expect(json.budgets).toEqual(BUDGETS);
    expect(json.cells).toHaveLength(9);
    for (const strategy of STRATEGIES) {
      for (const budget of BUDGETS) {
        const lines = LINES.filter((line) => line.strategy === strategy && line.budget === budget);
        const expected = expectedAccuracy((line) => line.strategy === strategy && line.budget === budget);
        const cell = json.cells.find((c) => c.strategy === strategy && c.budget === budget) as Cell;
        expect(cell.accuracy).toBeCloseTo(expected.accuracy, 12);
        expect(cell).toMatchObject({ problems: 6, seeds: 2, items: 12, errors: lines.filter((line) => line.error !== null).length });
        expect(cell.ciLow).toBeLessThanOrEqual(cell.accuracy);
        expect(cell.ciHigh).toBeGreaterThanOrEqual(cell.accuracy);

        // Generations and tokens: seeds averaged per problem (skipping failed items), then the mean over problems.
        const meanPerProblem = (value: (compute: NonNullable<Line["compute"]>) => number) => {
          const byProblem = new Map<string, number[]>();
          for (const line of lines) if (line.compute) byProblem.set(line.problemId, [...(byProblem.get(line.problemId) ?? []), value(line.compute)]);
          const perProblem = [...byProblem.values()].map((values) => values.reduce((a, b) => a + b, 0) / values.length);
          return perProblem.reduce((a, b) => a + b, 0) / perProblem.length;
        };
        expect(cell.meanGenerations).toBeCloseTo(meanPerProblem((compute) => compute.generations), 9);
        expect(cell.meanGeneratedTokens).toBeCloseTo(meanPerProblem((compute) => compute.generatedTokens), 9);

        const row = new RegExp(`^\\| ${strategy} \\| ${budget} \\| ${pct(expected.accuracy).replace(".", "\\.")} \\|`, "m");
        expect(markdown).toMatch(row);
        expect(html).toContain(`${strategy}</td><td class="num">${budget}</td><td class="num">${pct(expected.accuracy)}</td>`);
      }
    }
    expect(json.cells.reduce((sum, cell) => sum + cell.errors, 0)).toBe(3);
  });

  it("breaks accuracy down by level and by predicted difficulty bin", () => {
    expect(json.levels).toEqual([1, 2, 3]);
    expect(json.byLevel).toHaveLength(27);
    for (const cell of json.byLevel) {
      const expected = expectedAccuracy((l) => l.strategy === cell.strategy && l.budget === cell.budget && l.level === cell.group);
      expect(cell.accuracy).toBeCloseTo(expected.accuracy, 12);
      expect(cell.problems).toBe(2);
    }
    // The per-level table: one row per strategy and budget, each level's accuracy, then the overall one.
    expect(markdown).toContain("### Accuracy per level");
    for (const strategy of STRATEGIES) {
      for (const budget of BUDGETS) {
        const levelCells = [1, 2, 3].map((level) =>
          pct(expectedAccuracy((l) => l.strategy === strategy && l.budget === budget && l.level === level).accuracy),
        );
        const overall = pct(expectedAccuracy((l) => l.strategy === strategy && l.budget === budget).accuracy);
        expect(markdown).toContain(`| ${strategy} | ${budget} | ${[...levelCells, overall].join(" | ")} |`);
      }
    }
    // Only compute-optimal predicts a bin in the fixture.
    const binned = LINES.filter((line) => line.difficultyBin != null);
    expect(json.difficultyBins).toEqual([...new Set(binned.map((line) => line.difficultyBin))].sort());
    expect(new Set(json.byDifficultyBin.map((cell: GroupCell) => cell.strategy))).toEqual(new Set(["compute-optimal"]));
    for (const cell of json.byDifficultyBin) {
      const expected = expectedAccuracy((l) => l.strategy === cell.strategy && l.budget === cell.budget && l.difficultyBin === cell.group);
      expect(cell.accuracy).toBeCloseTo(expected.accuracy, 12);
    }
  });

  it("names the most accurate strategy at each budget", () => {
    for (const budget of BUDGETS) {
      const accuracies = STRATEGIES.map((strategy) => ({ strategy, ...expectedAccuracy((l) => l.strategy === strategy && l.budget === budget) }));
      const best = Math.max(...accuracies.map((entry) => entry.accuracy));
      const win = json.wins.find((w) => w.budget === budget && w.level === null);
      expect(win?.winners).toEqual(accuracies.filter((entry) => entry.accuracy === best).map((entry) => entry.strategy));
    }
    expect(markdown).toContain("## Which strategy wins");
    expect(markdown).toMatch(/^- N=16: \*\*compute-optimal\*\* 83\.3%, ahead of beam-w4 \(66\.7%\)/m);
  });

  it("draws the marks of every plot, one point per cell", async () => {
    const marks = await Promise.all(json.plots.map(async (plot) => countMarks(await readFile(join(out, plot), "utf8"))));
    const [budget, generations, tokens, flops, level, bin] = marks;
    for (const plot of [budget, generations, tokens, flops]) expect(plot).toEqual({ rule: 9, line: 3, symbol: 9 });
    expect(level).toMatchObject({ rule: 27, symbol: 27 });
    expect(bin).toMatchObject({ rule: json.byDifficultyBin.length, symbol: json.byDifficultyBin.length });
  });

  it("measures compute efficiency against the weighted best-of-n by default", () => {
    const accuracy = (strategy: string, budget: number) => expectedAccuracy((l) => l.strategy === strategy && l.budget === budget).accuracy;
    // best-of-n reaches 25%, 33.3% and 50% at 1, 4 and 16; beam-w4 at 4 and compute-optimal at 1 land exactly on its points.
    expect([1, 4, 16].map((budget) => accuracy("best-of-n", budget))).toEqual([3 / 12, 4 / 12, 6 / 12]);
    expect(accuracy("beam-w4", 4)).toBe(6 / 12);
    expect(accuracy("compute-optimal", 1)).toBe(4 / 12);
    expect(json.efficiency.reference).toBe("best-of-n");
    expect(json.efficiency.rows).toHaveLength(6);
    const row = (strategy: string, budget: number) => json.efficiency.rows.find((r) => r.strategy === strategy && r.budget === budget) as EfficiencyRow;
    expect(row("beam-w4", 4)).toMatchObject({ bound: "exact", generations: 4 });
    expect(row("beam-w4", 4).referenceBudgetNeeded).toBeCloseTo(16, 9);
    expect(row("beam-w4", 4).generationsRatio).toBeCloseTo(4, 9);
    expect(row("compute-optimal", 1).generationsRatio).toBeCloseTo(4, 9);
    expect(row("compute-optimal", 16)).toMatchObject({ bound: "at-least", referenceBudgetNeeded: 16, generationsRatio: 1 });

    expect(markdown).toContain("## Compute efficiency against best-of-n");
    expect(markdown).toContain(
      "- best-of-n needs more than 16.0 generations (its largest budget) to match **compute-optimal** at N=16 (16.0 generations spent): " +
        "more than 1.00x, within noise (95% CI 1.00x–∞ over 6 problems); in generated tokens more than 0.98x, within noise (95% CI 0.97x–∞ over 6 problems).\n",
    );
    // 6 problems: the 4x of beam-w4 at N=4 is as likely 1x (best-of-n at 16 ties it in some resamples).
    expect(markdown).toMatch(/^\| beam-w4 \| 4 \| 50\.0% \| 4\.0 \| 16\.0 \| 4\.00x \| 1\.00–4\.00x, within noise \| 226 \| 904 \| 4\.00x \| 1\.00–4\.00x, within noise \|$/m);
    expect(markdown).toMatch(/^\| compute-optimal \| 4 \| 58\.3% \| 4\.0 \| > 16\.0 \| > 4\.00x \| 1\.59x–∞ \|/m);
    expect(markdown).toContain("interpolated linearly in log2(compute) between its measured budgets (1, 4, 16)");
    expect(markdown).toContain("Each ratio has a 95% percentile bootstrap interval over the problems that every cell involved ran (1,000 seeded resamples");
    expect(html).toContain("<h2>Compute efficiency against best-of-n</h2>");
    expect(html).toContain("<li>best-of-n needs more than 16.0 generations (its largest budget) to match <strong>compute-optimal</strong> at N=16");
  });

  it("makes report.html self-contained: inline SVG and CSS, no script or external resource", () => {
    expect(html.match(/<svg\b/g)).toHaveLength(6);
    expect(html).toContain("<style>");
    expect(html).not.toMatch(/<script|<link|@import|\b(src|href)=|url\(\s*["']?https?:/i);
  });
});

describe("report statistics", () => {
  it("bootstrap CI contains the mean and is the same for the same seed", () => {
    const values = [0.91, 0.13, 0.5, 0.77, 0.02, 0.64, 0.38, 1, 0.29, 0.85, 0.5, 0.07];
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const options = { resamples: 1000, seed: 7 };
    const [low, high] = bootstrapMeanCI(values, options);
    expect(low).toBeLessThan(mean);
    expect(high).toBeGreaterThan(mean);
    expect(bootstrapMeanCI(values, options)).toEqual([low, high]);
    expect(bootstrapMeanCI(values, { ...options, seed: 8 })).not.toEqual([low, high]);
    expect(bootstrapMeanCI([0.5, 0.5, 0.5], options)).toEqual([0.5, 0.5]);
  });

  it("reports a cell's FLOPs as unknown when any of its items' FLOPs are unknown, not as a mean of the rest", async () => {
    const { results } = await loadRuns([FIXTURE]);
    const [first] = results;
    const compute = first?.compute;
    if (first === undefined || compute == null) throw new Error("the fixture has no compute");
    const unknown = results.map((result) => (result === first ? { ...result, compute: { ...compute, flops: null } } : result));
    const cellOf = (summary: ReturnType<typeof summarize>) => summary.cells.find((cell) => cell.strategy === first.strategy && cell.budget === first.budget);
    expect(cellOf(summarize(results))?.meanFlops).toBeGreaterThan(0);
    expect(cellOf(summarize(unknown))?.meanFlops).toBeNull();
  });

  it("counts a problem once however many seeds it has", async () => {
    const { results } = await loadRuns([FIXTURE]);
    const oneSeed = summarize(results.filter((result) => result.seed === 0));
    expect(oneSeed.cells.every((cell) => cell.problems === 6 && cell.items === 6)).toBe(true);
    expect(JSON.stringify(summarize(results))).toEqual(JSON.stringify(summarize(results, DEFAULT_BOOTSTRAP)));
  });
});

describe("compute efficiency against a reference", () => {
  /** One cell: `problems` problems, the first `right` of them correct, each spending `generations` and `tokens`. */
  function cell(strategy: string, budget: number, cellSpec: { problems?: number; right: number; generations: number; tokens: number }, strategyName = strategy): BenchResult[] {
    return Array.from({ length: cellSpec.problems ?? 10 }, (_, i) => ({
      problemId: `p${i}`,
      strategy,
      strategyName,
      budget,
      seed: 0,
      level: null,
      subject: null,
      answer: null,
      gold: "1",
      correct: i < cellSpec.right,
      compute: {
        generations: cellSpec.generations,
        generatedTokens: cellSpec.tokens,
        prefilledTokens: 0,
        verifierTokens: 0,
        policyCalls: 0,
        verifierCalls: 0,
        retries: 0,
        flops: 0,
        wallMs: 0,
      },
      ms: 0,
      error: null,
    }));
  }
  /** best-of-n at 20%, 40% and 60% with 1, 4 and 16 generations (100 tokens each). */
  const reference = [
    ...cell("best-of-n", 1, { right: 2, generations: 1, tokens: 100 }),
    ...cell("best-of-n", 4, { right: 4, generations: 4, tokens: 400 }),
    ...cell("best-of-n", 16, { right: 6, generations: 16, tokens: 1600 }),
  ];
  const efficiency = (results: BenchResult[]) => compareWithReference(summarize(results, { resamples: 10, seed: 0 }), results, "best-of-n");
  const row = (rows: EfficiencyRow[], strategy: string, budget: number) => rows.find((r) => r.strategy === strategy && r.budget === budget);

  it("interpolates the reference's budget in log2(generations) and divides by what the strategy spent", () => {
    const { rows, missing } = efficiency([
      ...reference,
      ...cell("beam", 4, { right: 5, generations: 4, tokens: 200 }),
      // Same accuracy for half the generations: twice the ratio.
      ...cell("compute-optimal", 4, { right: 5, generations: 2, tokens: 400 }),
    ]);
    expect(missing).toBeNull();
    expect(rows).toHaveLength(2);
    const beam = row(rows, "beam", 4) as EfficiencyRow;
    expect(beam).toMatchObject({ reference: "best-of-n", accuracy: 0.5, generations: 4, generatedTokens: 200, bound: "exact" });
    expect(beam.referenceBudgetNeeded).toBeCloseTo(8, 12);
    expect(beam.generationsRatio).toBeCloseTo(2, 12);
    expect(beam.referenceTokensNeeded).toBeCloseTo(800, 9);
    expect(beam.tokensRatio).toBeCloseTo(4, 12);
    expect(row(rows, "compute-optimal", 4)?.generationsRatio).toBeCloseTo(4, 12);
    expect(row(rows, "compute-optimal", 4)?.tokensRatio).toBeCloseTo(2, 12);
  });

  it("gives each ratio a percentile bootstrap interval over problems: 16^a for a reference that goes from 0% at 1 to 100% at 16", () => {
    // Whatever the resample, best-of-n is 0% with 1 generation and 100% with 16, so it needs
    // 2^(4a) = 16^a generations for accuracy a; beam spends 1, so its ratio is 16^a, a monotone
    // function of its resampled accuracy: the interval is 16^(the bootstrap interval of that mean).
    // 1,001 resamples put the 2.5% and 97.5% quantiles on replicates, with nothing interpolated.
    const correct = [true, false, true, true, false, true, false, true, true, false];
    const results = [
      ...cell("best-of-n", 1, { right: 0, generations: 1, tokens: 100 }),
      ...cell("best-of-n", 16, { right: 10, generations: 16, tokens: 1600 }),
      ...cell("beam", 1, { right: 0, generations: 1, tokens: 100 }).map((result, i) => ({ ...result, correct: correct[i] as boolean })),
    ];
    const options = { resamples: 1001, seed: 5 };
    const [row] = compareWithReference(summarize(results, options), results, "best-of-n").rows;
    const [low, high] = bootstrapMeanCI(correct.map((right) => (right ? 1 : 0)), options);
    expect(row?.generationsRatio).toBeCloseTo(16 ** 0.6, 12);
    expect(row?.generationsInterval?.low).toBeCloseTo(16 ** low, 12);
    expect(row?.generationsInterval?.high).toBeCloseTo(16 ** high, 12);
    expect(row?.generationsInterval).toMatchObject({ withinNoise: false, problems: 10 });
    expect(low).toBeGreaterThan(0.2);
    expect(high).toBeLessThan(1);
    // Tokens: 100 spent, best-of-n needs 100 * 16^a: the same interval.
    expect(row?.tokensInterval?.low).toBeCloseTo(16 ** low, 9);
  });

  it("labels a ratio within noise when its interval includes 1x, and resamples only the problems every cell ran", () => {
    // One right answer in 10: the point estimate is 16^0.1 = 1.32x, but a resample without that
    // problem is at best-of-n's smallest budget (an upper bound, down to 0).
    const results = [
      ...cell("best-of-n", 1, { right: 0, generations: 1, tokens: 100 }),
      ...cell("best-of-n", 16, { right: 10, generations: 16, tokens: 1600 }),
      ...cell("beam", 1, { right: 1, generations: 1, tokens: 100 }),
      // Two problems more that the reference did not run.
      ...cell("beam", 1, { problems: 12, right: 1, generations: 1, tokens: 100 }).slice(10),
    ];
    const [row] = compareWithReference(summarize(results, { resamples: 1000, seed: 0 }), results, "best-of-n").rows;
    expect(row?.generationsInterval).toMatchObject({ low: 0, withinNoise: true, problems: 10 });
    expect(row?.generationsInterval?.high).toBeCloseTo(16 ** 0.3, 9);
  });

  it("gives a bound outside the reference's measured budgets", () => {
    const { rows } = efficiency([
      ...reference,
      ...cell("beam", 1, { right: 1, generations: 1, tokens: 50 }),
      ...cell("beam", 4, { right: 2, generations: 4, tokens: 200 }),
      ...cell("beam", 16, { right: 7, generations: 16, tokens: 800 }),
    ]);
    // At or below the reference's smallest budget's accuracy: at most that budget.
    expect(row(rows, "beam", 1)).toMatchObject({ bound: "at-most", referenceBudgetNeeded: 1, generationsRatio: 1, referenceTokensNeeded: 100, tokensRatio: 2 });
    expect(row(rows, "beam", 4)).toMatchObject({ bound: "at-most", referenceBudgetNeeded: 1, generationsRatio: 0.25 });
    // Above its largest: more than that budget, a lower bound on the ratio.
    expect(row(rows, "beam", 16)).toMatchObject({ bound: "at-least", referenceBudgetNeeded: 16, generationsRatio: 1, tokensRatio: 2 });
  });

  it("reads a non-monotone reference curve where it first reaches the accuracy", () => {
    const { rows } = efficiency([
      ...cell("best-of-n", 1, { right: 2, generations: 1, tokens: 100 }),
      ...cell("best-of-n", 4, { right: 6, generations: 4, tokens: 400 }),
      ...cell("best-of-n", 16, { right: 4, generations: 16, tokens: 1600 }),
      ...cell("beam", 16, { right: 5, generations: 16, tokens: 1600 }),
    ]);
    expect(row(rows, "beam", 16)?.referenceBudgetNeeded).toBeCloseTo(2 ** 1.5, 12);
  });

  it("compares only at budgets the reference ran, and says so when there are none", () => {
    const { rows, missing } = efficiency([...reference, ...cell("beam", 8, { right: 5, generations: 8, tokens: 800 })]);
    expect(rows).toEqual([]);
    expect(missing).toBe("No compute-efficiency section: no other strategy ran at a budget that best-of-n ran at.");
  });

  it("picks the one best-of-n configuration with weighted selection as the default reference", () => {
    const results = [
      ...cell("bon", 4, { right: 1, generations: 4, tokens: 1 }, "best-of-n"),
      ...cell("majority", 4, { right: 1, generations: 4, tokens: 1 }, "best-of-n"),
      ...cell("beam", 4, { right: 1, generations: 4, tokens: 1 }),
    ];
    const run = (strategies: unknown[]): RunInfo => ({ dir: "run", config: { experiment: { strategies } }, files: [] });
    const configured = run([
      { label: "bon", strategy: "best-of-n", params: { select: "weighted" } },
      { label: "majority", strategy: "best-of-n", params: { select: "majority" } },
    ]);
    expect(chooseReference(results, [configured], undefined)).toEqual({ reference: "bon", missing: null });
    // Weighted is best-of-n's default selection.
    expect(chooseReference(results, [run([{ label: "bon", strategy: "best-of-n", params: {} }, { label: "majority", params: { select: "majority" } }])], undefined).reference).toBe("bon");

    // Without a config, only the label can say so.
    const unconfigured: RunInfo = { dir: "run", config: null, files: [] };
    expect(chooseReference(results, [unconfigured], undefined).reference).toBeNull();
    const named = [...results, ...cell("best-of-n-weighted", 4, { right: 1, generations: 4, tokens: 1 }, "best-of-n")];
    expect(chooseReference(named, [unconfigured], undefined).reference).toBe("best-of-n-weighted");

    const several = chooseReference(named, [configured], undefined);
    expect(several.reference).toBeNull();
    expect(several.missing).toContain("several weighted best-of-n configurations (best-of-n-weighted, bon); name the reference with --reference <label>");

    expect(chooseReference(results, [configured], "beam").reference).toBe("beam");
    expect(() => chooseReference(results, [configured], "dvts")).toThrow(new InputError("reference strategy dvts is not in the runs; their strategies: beam, bon, majority"));
  });

  it("leaves the section out with a note when there is no reference, and takes --reference", async () => {
    const withoutBestOfN = FIXTURE_TEXT.trim().split("\n").filter((text) => !text.includes('"strategy":"best-of-n"'));
    const dir = await runDir({ "results.jsonl": withoutBestOfN.join("\n") + "\n" });
    await runCli(dir);
    const markdown = await readFile(join(dir, "report.md"), "utf8");
    expect(markdown).not.toContain("## Compute efficiency");
    expect(markdown).toContain("- No compute-efficiency section: no best-of-n configuration with weighted selection in the runs; name the reference with --reference <label>.");
    expect(JSON.parse(await readFile(join(dir, "report.json"), "utf8")).efficiency).toEqual({ reference: null, missing: expect.any(String), rows: [] });

    await runCli(dir, "--reference", "beam-w4");
    expect(await readFile(join(dir, "report.md"), "utf8")).toContain("## Compute efficiency against beam-w4");
    await expect(runCli(dir, "--reference", "best-of-n")).rejects.toThrow("reference strategy best-of-n is not in the runs");
  });
});

describe("reading run directories", () => {
  const fixtureLines = FIXTURE_TEXT.trim().split("\n");

  it("merges shards in one directory and several run directories into the same numbers", async () => {
    const whole = summarize((await loadRuns([FIXTURE])).results);
    const shards = await runDir({
      "results.shard-1-of-2.jsonl": fixtureLines.filter((_, i) => i % 2 === 0).join("\n") + "\n",
      "results.shard-2-of-2.jsonl": fixtureLines.filter((_, i) => i % 2 === 1).join("\n") + "\n",
    });
    expect(summarize((await loadRuns([shards])).results)).toEqual(whole);

    const byStrategy = (keep: boolean) => fixtureLines.filter((text) => text.includes('"strategy":"beam-w4"') === keep).join("\n") + "\n";
    const runs = [await runDir({ "results.jsonl": byStrategy(true) }), await runDir({ "results.jsonl": byStrategy(false) })];
    expect(summarize((await loadRuns(runs)).results)).toEqual(whole);
  });

  it("refuses a work item found twice, naming both files", async () => {
    const dir = await runDir({
      "results.shard-1-of-2.jsonl": fixtureLines.slice(0, 3).join("\n") + "\n",
      "results.shard-2-of-2.jsonl": fixtureLines.slice(2, 5).join("\n") + "\n",
    });
    const error = await loadRuns([dir]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InputError);
    expect((error as Error).message).toContain(`${join(dir, "results.shard-2-of-2.jsonl")}:1: duplicate work item`);
    expect((error as Error).message).toContain(`already in ${join(dir, "results.shard-1-of-2.jsonl")}:3`);
  });

  it("names the file, line and field of a malformed result", async () => {
    const noBudget = JSON.stringify({ ...JSON.parse(fixtureLines[2] as string), budget: "four" });
    const dir = await runDir({ "results.jsonl": [fixtureLines[0], fixtureLines[1], noBudget].join("\n") + "\n" });
    await expect(loadRuns([dir])).rejects.toThrow(new RegExp(`results\\.jsonl:3: budget: .*number`));

    const badJson = await runDir({ "results.jsonl": [fixtureLines[0], "{oops", fixtureLines[1]].join("\n") + "\n" });
    await expect(loadRuns([badJson])).rejects.toThrow(/results\.jsonl:2: not valid JSON/);
  });

  it("skips a half-written last line with a warning", async () => {
    const dir = await runDir({ "results.jsonl": [fixtureLines[0], fixtureLines[1], (fixtureLines[2] as string).slice(0, 40)].join("\n") });
    const { results, warnings } = await loadRuns([dir]);
    expect(results).toHaveLength(2);
    expect(warnings).toEqual([`${join(dir, "results.jsonl")}:3: incomplete last line skipped (is the run still writing?)`]);
  });

  it("says there is nothing to report in an empty run directory", async () => {
    const empty = await tempDir();
    await expect(loadRuns([empty])).rejects.toThrow(`${empty}: nothing to report`);
    const emptyFile = await runDir({ "results.jsonl": "" });
    await expect(runCli(emptyFile)).rejects.toThrow("nothing to report");
    await expect(runCli(FIXTURE, emptyFile)).rejects.toThrow("--out is required");
  });
});

describe("which strategy wins", () => {
  it("says that every strategy ties when no runner-up is left, and that one ran alone", async () => {
    const lines = FIXTURE_TEXT.trim().split("\n").filter((text) => text.includes('"strategy":"best-of-n"') && text.includes('"budget":1,'));
    expect(lines.length).toBeGreaterThan(0);
    const twin = lines.map((text) => text.replace('"strategy":"best-of-n"', '"strategy":"twin"'));
    const tied = await runDir({ "results.jsonl": [...lines, ...twin].join("\n") + "\n" });
    await runCli(tied);
    const accuracy = pct(expectedAccuracy((line) => line.strategy === "best-of-n" && line.budget === 1).accuracy);
    expect(await readFile(join(tied, "report.md"), "utf8")).toContain(`- N=1: every strategy that ran ties at ${accuracy} (**best-of-n** and **twin**).`);
    const alone = await runDir({ "results.jsonl": lines.join("\n") + "\n" });
    await runCli(alone);
    expect(await readFile(join(alone, "report.md"), "utf8")).toContain(`- N=1: only **best-of-n** ran (${accuracy}).`);
  });

  it("names no most accurate strategy overall when the best ones tie", async () => {
    const lines = FIXTURE_TEXT.trim().split("\n").filter((text) => text.includes('"strategy":"best-of-n"') && text.includes('"budget":1,'));
    const twin = lines.map((text) => text.replace('"strategy":"best-of-n"', '"strategy":"twin"'));
    const tied = await runDir({ "results.jsonl": [...lines, ...twin].join("\n") + "\n" });
    await runCli(tied);
    const report = await readFile(join(tied, "report.md"), "utf8");
    const accuracy = pct(expectedAccuracy((line) => line.strategy === "best-of-n" && line.budget === 1).accuracy);
    expect(report).not.toContain("Most accurate overall");
    expect(report).toContain(`No strategy is most accurate overall: every strategy at every budget ties at ${accuracy}.`);

    // Two of three tie at the top: both are named as a tie, the third not at all.
    const loser = lines.map((text) => text.replace('"strategy":"best-of-n"', '"strategy":"loser"').replace('"correct":true', '"correct":false'));
    const partly = await runDir({ "results.jsonl": [...lines, ...twin, ...loser].join("\n") + "\n" });
    await runCli(partly);
    expect(await readFile(join(partly, "report.md"), "utf8")).toContain(`No single most accurate strategy overall: **best-of-n** at N=1, **twin** at N=1 tie at ${accuracy}.`);
  });
});

describe("paired comparisons against a baseline", () => {
  /** Per problem: the mean of `correct` over its seeds, counted from the fixture's lines. */
  function perProblemAccuracy(strategy: string, budget: number): Map<string, number> {
    const counts = new Map<string, { right: number; total: number }>();
    for (const line of LINES.filter((l) => l.strategy === strategy && l.budget === budget)) {
      const count = counts.get(line.problemId) ?? { right: 0, total: 0 };
      count.right += line.correct ? 1 : 0;
      count.total += 1;
      counts.set(line.problemId, count);
    }
    return new Map([...counts].map(([id, count]) => [id, count.right / count.total]));
  }
  /** The problem's predicted bin: compute-optimal's, from its lowest seed. */
  function binOf(problemId: string): number {
    const lines = LINES.filter((l) => l.problemId === problemId && l.difficultyBin != null).sort((a, b) => a.seed - b.seed);
    return lines[0]?.difficultyBin as number;
  }

  type PairedJson = { baseline: string; rows: PairedRow[] }[];

  it("compares every strategy with the weighted best-of-n at its own budget by default, overall, per level and per bin", async () => {
    const out = join(await tempDir(), "report");
    await runCli(FIXTURE, "--out", out);
    const paired = (JSON.parse(await readFile(join(out, "report.json"), "utf8")) as { paired: PairedJson }).paired;
    expect(paired.map((comparison) => comparison.baseline)).toEqual(["best-of-n"]);
    const rows = paired[0]!.rows;
    for (const strategy of ["beam-w4", "compute-optimal"]) {
      for (const budget of BUDGETS) {
        const ours = perProblemAccuracy(strategy, budget);
        const theirs = perProblemAccuracy("best-of-n", budget);
        const differences = [...ours].map(([id, value]) => ({ id, d: value - (theirs.get(id) as number) }));
        const all = rows.find((row) => row.strategy === strategy && row.budget === budget && row.group.kind === "all") as PairedRow;
        expect(all).toMatchObject({ baselineStrategy: "best-of-n", baselineBudget: budget, problems: 6 });
        expect(all.difference).toBeCloseTo(differences.reduce((sum, { d }) => sum + d, 0) / 6, 12);
        expect(all.better).toBe(differences.filter(({ d }) => d > 0).length);
        expect(all.worse).toBe(differences.filter(({ d }) => d < 0).length);
        expect(all.low).toBeLessThanOrEqual(all.difference);
        expect(all.high).toBeGreaterThanOrEqual(all.difference);
        expect(all.clear).toBe(all.low > 0 || all.high < 0);
        expect(rows.filter((row) => row.strategy === strategy && row.budget === budget && row.group.kind === "level").map((row) => row.problems)).toEqual([2, 2, 2]);

        // Bins: only compute-optimal predicts one, so beam search against best-of-n has no bin rows.
        const binRows = rows.filter((row) => row.strategy === strategy && row.budget === budget && row.group.kind === "bin");
        if (strategy === "beam-w4") {
          expect(binRows).toEqual([]);
          continue;
        }
        const bins = [...new Set([...ours.keys()].map(binOf))].sort((a, b) => a - b);
        expect(binRows.map((row) => (row.group as { value: number }).value)).toEqual(bins);
        for (const row of binRows) {
          const inBin = differences.filter(({ id }) => binOf(id) === (row.group as { value: number }).value);
          expect(row.problems).toBe(inBin.length);
          expect(row.difference).toBeCloseTo(inBin.reduce((sum, { d }) => sum + d, 0) / inBin.length, 12);
        }
      }
    }
    expect(rows.some((row) => row.strategy === "best-of-n")).toBe(false);
    const markdown = await readFile(join(out, "report.md"), "utf8");
    expect(markdown).toContain("## Paired comparisons against best-of-n");
    expect(markdown).toMatch(/^- \*\*compute-optimal\*\* at N=16 against best-of-n at N=16: /m);
    expect(await readFile(join(out, "report.html"), "utf8")).toContain("<h2>Paired comparisons against best-of-n</h2>");
  });

  it("compares every other strategy and budget with a fixed label@N, and takes several baselines", async () => {
    const out = join(await tempDir(), "report");
    await runCli(FIXTURE, "--out", out, "--baseline", "best-of-n@16", "--baseline", "beam-w4");
    const paired = (JSON.parse(await readFile(join(out, "report.json"), "utf8")) as { paired: PairedJson }).paired;
    expect(paired.map((comparison) => comparison.baseline)).toEqual(["best-of-n@16", "beam-w4"]);
    const overall = (comparison: PairedJson[number]) =>
      comparison.rows.filter((row) => row.group.kind === "all").map((row) => `${row.strategy}@${row.budget} vs ${row.baselineStrategy}@${row.baselineBudget}`);
    expect(overall(paired[0]!)).toEqual([
      "beam-w4@1 vs best-of-n@16", "beam-w4@4 vs best-of-n@16", "beam-w4@16 vs best-of-n@16",
      "best-of-n@1 vs best-of-n@16", "best-of-n@4 vs best-of-n@16",
      "compute-optimal@1 vs best-of-n@16", "compute-optimal@4 vs best-of-n@16", "compute-optimal@16 vs best-of-n@16",
    ]);
    expect(overall(paired[1]!)).toHaveLength(6);
    expect(paired[1]!.rows.every((row) => row.baselineStrategy === "beam-w4" && row.baselineBudget === row.budget)).toBe(true);
  });

  it("calls a difference clear only when its interval excludes 0", () => {
    const items = (strategy: string, correct: (i: number) => boolean): BenchResult[] =>
      Array.from({ length: 40 }, (_, i) => ({
        problemId: `p${i}`, strategy, strategyName: strategy, budget: 16, seed: 0, level: 1 + (i % 2), subject: null,
        answer: null, gold: "1", correct: correct(i), compute: null, ms: 1, error: null,
      }) as unknown as BenchResult);
    const results = [...items("base", (i) => i % 2 === 0), ...items("better", () => true), ...items("same", (i) => i % 2 === 0)];
    const [comparison] = comparePaired(results, [parseBaseline("base")], DEFAULT_BOOTSTRAP);
    const all = (strategy: string) => comparison!.rows.find((row) => row.strategy === strategy && row.group.kind === "all") as PairedRow;
    expect(all("better")).toMatchObject({ difference: 0.5, better: 20, worse: 0, clear: true });
    expect(all("better").low).toBeGreaterThan(0);
    expect(all("same")).toMatchObject({ difference: 0, better: 0, worse: 0, clear: false });
    // Level 2 holds the odd problems, which the baseline gets wrong and "better" right.
    expect(comparison!.rows.find((row) => row.strategy === "better" && row.group.kind === "level" && row.group.value === 2))
      .toMatchObject({ problems: 20, difference: 1, low: 1, high: 1, clear: true });
  });

  it("refuses a baseline that names no strategy and budget of the runs, or a malformed one", async () => {
    await expect(runCli(FIXTURE, "--out", join(await tempDir(), "r"), "--baseline", "best-of-n@64")).rejects.toThrow(
      "--baseline best-of-n@64 names no strategy and budget of the runs; they have: beam-w4@1, beam-w4@4, beam-w4@16, best-of-n@1",
    );
    await expect(runCli(FIXTURE, "--out", join(await tempDir(), "r"), "--baseline", "dvts")).rejects.toThrow(InputError);
    expect(() => parseBaseline("best-of-n@0")).toThrow("--baseline best-of-n@0: the budget after @ must be a positive integer");
    expect(parseBaseline("best-of-n@64")).toEqual({ strategy: "best-of-n", budget: 64 });
    expect(parseBaseline("a@b")).toEqual({ strategy: "a@b", budget: null });
  });
});
