import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  spreadAcrossBins,
  binOfScore,
  buildAllocationTable,
  loadAllocationTable,
  lookupEntry,
  quantileEdges,
  type AllocationTable,
  type CalibrationOutcome,
} from "../src/allocation/table.js";
import { describeZodError, InputError } from "../src/errors.js";
import { solve } from "../src/solve.js";
import { computeOptimal, computeOptimalParams } from "../strategies/compute-optimal.js";
import { getStrategy } from "../strategies/registry.js";
import { ScriptedPolicy, ScriptedVerifier, solutionScript, testContext } from "./support/scripted-policy.js";

/** Ten calibration problems: e0-e4 are easy (high predicted scores), h0-h4 hard. */
const difficulty = new Map<string, number>([
  ...[0, 1, 2, 3, 4].map((i): [string, number] => [`e${i}`, 0.9 - i * 0.01]),
  ...[0, 1, 2, 3, 4].map((i): [string, number] => [`h${i}`, 0.2 - i * 0.01]),
]);

/** Best-of-N wins on the easy problems, beam search on the hard ones, at both budgets. */
function outcomes(): CalibrationOutcome[] {
  const rows: CalibrationOutcome[] = [];
  for (const problemId of difficulty.keys()) {
    const easy = problemId.startsWith("e");
    for (const budget of [4, 16]) {
      rows.push({ problemId, label: "best-of-n", strategy: "best-of-n", params: {}, budget, accuracy: easy ? 1 : 0 });
      rows.push({ problemId, label: "beam-w2", strategy: "beam", params: { beamWidth: 2 }, budget, accuracy: easy ? 0.5 : 1 });
    }
  }
  return rows;
}

describe("the allocation table", () => {
  const table = buildAllocationTable({ policy: "p", verifier: "v", samples: 2, difficulty, outcomes: outcomes(), bins: 2 });

  it("bins by quantiles of the predicted score, bin 1 the easiest", () => {
    expect(quantileEdges([0.1, 0.2, 0.3, 0.4], 2)).toEqual([0.3]);
    expect(table.difficulty.edges).toHaveLength(1);
    expect(binOfScore(0.95, table.difficulty.edges)).toBe(1);
    expect(binOfScore(0.05, table.difficulty.edges)).toBe(2);
  });

  it("chooses per bin and budget what the calibration results say, with cross-validated accuracy", () => {
    const chosen = table.entries.map(({ bin, budget, label, accuracy, problems }) => ({ bin, budget, label, accuracy, problems }));
    expect(chosen).toEqual([
      { bin: 1, budget: 4, label: "best-of-n", accuracy: 1, problems: 5 },
      { bin: 1, budget: 16, label: "best-of-n", accuracy: 1, problems: 5 },
      { bin: 2, budget: 4, label: "beam-w2", accuracy: 1, problems: 5 },
      { bin: 2, budget: 16, label: "beam-w2", accuracy: 1, problems: 5 },
    ]);
    expect(table.entries[2]).toMatchObject({ strategy: "beam", params: { beamWidth: 2 } });
  });

  it("reports the held-out accuracy, not the accuracy of the choice on its own data", () => {
    // One lucky problem per bin makes the other configuration win on one fold only.
    const noisy = outcomes().map((row) => (row.problemId === "e0" && row.label === "beam-w2" && row.budget === 4 ? { ...row, accuracy: 1 } : row));
    const rows = noisy.concat(
      [...difficulty.keys()].map((problemId) => ({ problemId, label: "lucky", strategy: "best-of-n", params: {}, budget: 4, accuracy: problemId === "e1" ? 1 : 0 })),
    );
    const noisyTable = buildAllocationTable({ policy: "p", verifier: "v", samples: 2, difficulty, outcomes: rows, bins: 2, seed: 3 });
    const easy4 = noisyTable.entries.find((entry) => entry.bin === 1 && entry.budget === 4);
    expect(easy4?.label).toBe("best-of-n");
    expect(easy4?.accuracy).toBeLessThanOrEqual(1);
    expect(easy4?.accuracy).toBeGreaterThan(0.5);
  });

  it("keeps the baseline unless another configuration leads it by more than one standard error", () => {
    // Hard problems h0-h4: best-of-n solves h2 only; "lucky" solves h0 and h1 (lead 0.2, standard
    // error 0.37); "steady" solves h0-h2 (lead 0.4, standard error 0.24).
    const solvedBy: Record<string, string[]> = { "best-of-n": ["h2"], lucky: ["h0", "h1"], steady: ["h0", "h1", "h2"] };
    const rows = (labels: string[]) =>
      [...difficulty.keys()].flatMap((problemId) =>
        labels.map((label) => ({ problemId, label, strategy: "best-of-n", params: {}, budget: 4, accuracy: problemId.startsWith("e") || solvedBy[label]?.includes(problemId) ? 1 : 0 })),
      );
    const hardLabel = (labels: string[], baseline?: string) =>
      buildAllocationTable({ policy: "p", verifier: "v", samples: 2, difficulty, outcomes: rows(labels), bins: 2, baseline }).entries.find((entry) => entry.bin === 2)?.label;
    expect(hardLabel(["best-of-n", "lucky"])).toBe("lucky");
    expect(hardLabel(["best-of-n", "lucky"], "best-of-n")).toBe("best-of-n");
    expect(hardLabel(["best-of-n", "lucky", "steady"], "best-of-n")).toBe("steady");
    // A baseline that did not run at that budget leaves the best accuracy to win.
    expect(hardLabel(["lucky", "steady"], "best-of-n")).toBe("steady");
  });

  it("gives an unseen bin or budget the nearest entry", () => {
    expect(lookupEntry(table.entries, 5, 16).bin).toBe(2);
    expect(lookupEntry(table.entries, 1, 12).budget).toBe(4);
    expect(lookupEntry(table.entries, 1, 100).budget).toBe(16);
    expect(lookupEntry(table.entries, 2, 2).budget).toBe(4);
  });

  it("spreads a benchmark's average budget over the bins where it buys the most accuracy", () => {
    const entry = (bin: number, budget: number, accuracy: number) => ({ bin, budget, label: `b${budget}`, strategy: "best-of-n", params: {}, accuracy, problems: 10 });
    const spreadTable: AllocationTable = {
      ...table,
      // The easy bin gains nothing past budget 4; the hard bin keeps gaining up to 16.
      entries: [entry(1, 4, 0.9), entry(1, 16, 0.9), entry(2, 4, 0.2), entry(2, 16, 0.6)],
    };
    const spread = spreadAcrossBins(spreadTable.entries, 10);
    expect([spread?.get(1)?.budget, spread?.get(2)?.budget]).toEqual([4, 16]);
    // At an average of 4 both bins get 4; below the cheapest entries nothing fits.
    const tight = spreadAcrossBins(spreadTable.entries, 4);
    expect([tight?.get(1)?.budget, tight?.get(2)?.budget]).toEqual([4, 4]);
    expect(spreadAcrossBins(spreadTable.entries, 2)).toBeNull();
  });

  it("refuses a file that does not match the schema, naming the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "deliberate-table-"));
    const path = join(dir, "table.json");
    writeFileSync(path, JSON.stringify({ ...table, difficulty: { samples: 0, edges: [] } }));
    expect(() => loadAllocationTable(path)).toThrow(/table\.json is not an allocation table: difficulty\.samples/);
    writeFileSync(path, "{ not json");
    expect(() => loadAllocationTable(path)).toThrow(/cannot read allocation table/);
    writeFileSync(path, JSON.stringify(table));
    expect(loadAllocationTable(path)).toEqual(table);
  });

  it("loads a table without an oracle section, as older tables are", () => {
    const path = join(mkdtempSync(join(tmpdir(), "deliberate-table-")), "table.json");
    writeFileSync(path, JSON.stringify(table));
    expect(JSON.parse(readFileSync(path, "utf8"))).not.toHaveProperty("oracle");
    expect(loadAllocationTable(path).oracle).toBeUndefined();
  });
});

describe("the oracle section of the allocation table", () => {
  /** The oracle pass rates disagree with the predicted scores: h3 and h4 are only half hard. */
  const oracleDifficulty = new Map<string, number>([
    ...[0, 1, 2, 3, 4].map((i): [string, number] => [`e${i}`, 1]),
    ["h0", 0],
    ["h1", 0],
    ["h2", 0],
    ["h3", 0.5],
    ["h4", 0.5],
  ]);
  /** Best-of-N wins where the oracle says easy, majority voting on h3 and h4, beam search on h0-h2. */
  function oracleOutcomes(): CalibrationOutcome[] {
    return outcomes().flatMap((row) => {
      const half = row.problemId === "h3" || row.problemId === "h4";
      const beam = row.label === "beam-w2" && half ? { ...row, accuracy: 0 } : row;
      return [beam, ...(row.label === "best-of-n" ? [{ ...row, label: "majority", params: { select: "majority" }, accuracy: half ? 1 : 0 }] : [])];
    });
  }
  const input = { policy: "p", verifier: "v", samples: 2, difficulty, outcomes: oracleOutcomes(), bins: 3 };
  const table = buildAllocationTable({ ...input, oracleDifficulty });

  it("keeps equal values in one bin: tied quantiles give fewer, unequal bins", () => {
    expect(quantileEdges([1, 1, 1, 1, 1, 1, 0.5, 0.25, 0, 0], 5)).toEqual([0.25, 1]);
    // An edge at the smallest value would leave the bin below it empty.
    expect(quantileEdges([0, 0, 0, 0, 0, 0, 0.5, 0.75, 1, 1], 5)).toEqual([0.5, 1]);
    expect([1, 0.75, 0.5, 0].map((passRate) => binOfScore(passRate, [0.5, 1]))).toEqual([1, 2, 2, 3]);
    expect(table.oracle?.edges).toEqual([0.5, 1]);
  });

  it("chooses per oracle bin what the calibration results say, by the same cross-validated procedure", () => {
    const chosen = table.oracle?.entries.map(({ bin, budget, label, accuracy, problems }) => ({ bin, budget, label, accuracy, problems }));
    expect(chosen).toEqual([
      { bin: 1, budget: 4, label: "best-of-n", accuracy: 1, problems: 5 },
      { bin: 1, budget: 16, label: "best-of-n", accuracy: 1, problems: 5 },
      { bin: 2, budget: 4, label: "majority", accuracy: 1, problems: 2 },
      { bin: 2, budget: 16, label: "majority", accuracy: 1, problems: 2 },
      { bin: 3, budget: 4, label: "beam-w2", accuracy: 1, problems: 3 },
      { bin: 3, budget: 16, label: "beam-w2", accuracy: 1, problems: 3 },
    ]);
    expect(table.oracle?.entries[2]).toMatchObject({ strategy: "best-of-n", params: { select: "majority" } });
    // The predicted section is the one built without the oracle.
    const predictedOnly = buildAllocationTable(input);
    expect(predictedOnly.oracle).toBeUndefined();
    expect({ ...table, oracle: undefined }).toEqual({ ...predictedOnly, oracle: undefined });
  });

  it("round-trips through a file, and refuses oracle edges that are not ascending", () => {
    const path = join(mkdtempSync(join(tmpdir(), "deliberate-table-")), "table.json");
    writeFileSync(path, JSON.stringify(table));
    expect(loadAllocationTable(path)).toEqual(table);
    writeFileSync(path, JSON.stringify({ ...table, oracle: { ...table.oracle, edges: [1, 0.5] } }));
    expect(() => loadAllocationTable(path)).toThrow(/oracle\.edges must be ascending/);
  });

  it("spreads an average budget over bins weighted by their problems", () => {
    const entry = (bin: number, budget: number, accuracy: number, problems: number) => ({ bin, budget, label: `b${budget}`, strategy: "best-of-n", params: {}, accuracy, problems });
    // Bin 1 holds 8 problems: at an average of 7, only the small bin 2 can get 16 (8x4 + 2x16 = 64 <= 70).
    const entries = [entry(1, 4, 0.9, 8), entry(1, 16, 0.95, 8), entry(2, 4, 0.2, 2), entry(2, 16, 0.6, 2)];
    const spread = spreadAcrossBins(entries, 7);
    expect([spread?.get(1)?.budget, spread?.get(2)?.budget]).toEqual([4, 16]);
  });
});

describe("compute-optimal", () => {
  const table: AllocationTable = {
    version: 1,
    policy: "scripted-policy",
    verifier: "scripted-verifier",
    difficulty: { samples: 2, edges: [0.5] },
    entries: [
      { bin: 1, budget: 2, label: "best-of-n", strategy: "best-of-n", params: { select: "weighted" }, accuracy: 0.9, problems: 10 },
      { bin: 2, budget: 4, label: "beam-w2", strategy: "beam", params: { beamWidth: 2, select: "weighted" }, accuracy: 0.4, problems: 10 },
    ],
    source: { folds: 2 },
  };
  const solutions = ["a\n\nx \\boxed{1}", "b\n\ny \\boxed{2}"];

  it("is registered by name", () => {
    expect(getStrategy("compute-optimal")).toBe(computeOptimal);
  });

  it("counts the estimate's samples, keeps them as candidates, and runs the configuration of the predicted bin with the rest", async () => {
    // Every final step scores 0.9: bin 1 (easy), whose configuration (calibrated at budget 2) runs
    // with the 4 generations left after the 2 estimate samples.
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const context = testContext(policy, ScriptedVerifier.byStep({}, 0.9));
    const result = await computeOptimal.run("P", context, { budget: 6, table, spread: false, difficulty: "predicted" });
    expect(result.difficulty).toEqual({ score: 0.9, bin: 1, configuration: "best-of-n" });
    expect(result.compute.generations).toBe(6);
    expect(result.candidates).toHaveLength(6);
    expect(policy.prompts).toHaveLength(2);
    expect(policy.live).toBe(0);
  });

  it("runs any registered strategy a table chose, looked up through the context; refuses one that allocates itself", async () => {
    const chosen = (strategy: string) => ({ ...table, entries: [{ bin: 1, budget: 2, label: strategy, strategy, params: {}, accuracy: 0.9, problems: 10 }] });
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const result = await computeOptimal.run("P", testContext(policy, ScriptedVerifier.byStep({}, 0.9)), { budget: 6, table: chosen("particle-filtering"), spread: false, difficulty: "predicted" });
    expect(result.difficulty).toEqual({ score: 0.9, bin: 1, configuration: "particle-filtering" });
    expect(result.compute.generations).toBe(6);
    expect(policy.live).toBe(0);
    const running = computeOptimal.run("P", testContext(new ScriptedPolicy(solutionScript(solutions)), ScriptedVerifier.byStep({}, 0.9)), {
      budget: 6,
      table: chosen("compute-optimal"),
      spread: false,
      difficulty: "predicted",
    });
    await expect(running).rejects.toThrow("allocation table entry compute-optimal: compute-optimal runs a table's choices itself and cannot be one");
  });

  it("sends a hard problem to the hard bin's configuration", async () => {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const context = testContext(policy, ScriptedVerifier.byStep({}, 0.1));
    const result = await computeOptimal.run("P", context, { budget: 6, table, spread: false, difficulty: "predicted" });
    expect(result.difficulty).toMatchObject({ bin: 2, configuration: "beam-w2" });
    expect(result.compute.generations).toBe(6);
    expect(result.compute.generatedTokens).toBeGreaterThanOrEqual(result.candidates.reduce((sum, candidate) => sum + candidate.tokens, 0));
  });

  it("with spread, gives a hard problem more than its share of an average budget", async () => {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    // Average budget 5: 2 estimate samples + an average of 3 over the bins; bin 1 gets 2, bin 2 gets 4.
    const result = await computeOptimal.run("P", testContext(policy, ScriptedVerifier.byStep({}, 0.1)), { budget: 5, table, spread: true, difficulty: "predicted" });
    expect(result.difficulty).toMatchObject({ bin: 2, configuration: "beam-w2" });
    expect(result.compute.generations).toBe(6);
  });

  describe("with difficulty oracle", () => {
    const withOracle: AllocationTable = {
      ...table,
      oracle: {
        edges: [0.5],
        entries: [
          { bin: 1, budget: 2, label: "majority-2", strategy: "best-of-n", params: { select: "majority" }, accuracy: 0.9, problems: 10 },
          { bin: 1, budget: 8, label: "majority-8", strategy: "best-of-n", params: { select: "majority" }, accuracy: 0.9, problems: 10 },
          { bin: 2, budget: 4, label: "beam-w2", strategy: "beam", params: { beamWidth: 2, select: "weighted" }, accuracy: 0.4, problems: 10 },
        ],
      },
    };
    const oracle = (budget: number, spread = false) => ({ budget, table: withOracle, spread, difficulty: "oracle" as const });

    it("draws no estimate and gives the whole budget to the oracle bin's configuration", async () => {
      const policy = new ScriptedPolicy(solutionScript(solutions));
      const verifier = ScriptedVerifier.byStep({}, 0.9);
      const result = await computeOptimal.run("P", testContext(policy, verifier, { knownDifficulty: { passRate: 0.25 } }), oracle(7));
      expect(result.difficulty).toEqual({ score: 0.25, bin: 2, configuration: "beam-w2" });
      // Beam search width 2, chosen at its table budget 4, runs with 6 of the 7: the most that is a
      // multiple of its width. Nothing else was generated.
      expect(result.compute.generations).toBe(6);
      expect(policy.prompts).toHaveLength(1);
      expect(policy.live).toBe(0);
    });

    it("needs no verifier when the configuration needs none (the estimate would)", async () => {
      const policy = new ScriptedPolicy(solutionScript(solutions));
      const result = await computeOptimal.run("P", testContext(policy, null, { knownDifficulty: { passRate: 1 } }), oracle(10));
      expect(result.difficulty).toEqual({ score: 1, bin: 1, configuration: "majority-8" });
      expect(result.compute.generations).toBe(10);
      expect(result.candidates).toHaveLength(10);
      expect(result.answer).not.toBeNull();
    });

    it("with spread, spreads the average budget over the oracle bins", async () => {
      const policy = new ScriptedPolicy(solutionScript(solutions));
      // Average 3: bin 1 gets 2 and bin 2 gets 4.
      const result = await computeOptimal.run("P", testContext(policy, ScriptedVerifier.byStep({}, 0.9), { knownDifficulty: { passRate: 0 } }), oracle(3, true));
      expect(result.difficulty).toMatchObject({ bin: 2, configuration: "beam-w2" });
      expect(result.compute.generations).toBe(4);
    });

    it("is threaded from solve's knownDifficulty", async () => {
      const policy = new ScriptedPolicy(solutionScript(solutions));
      const result = await solve("P", { strategy: "compute-optimal", budget: 2, policy, params: { table: withOracle, difficulty: "oracle" }, knownDifficulty: { passRate: 0.75 } });
      expect(result.difficulty).toEqual({ score: 0.75, bin: 1, configuration: "majority-2" });
      expect(result.params).toMatchObject({ difficulty: "oracle", spread: false });
    });

    it("says what is missing: the problem's pass rate, or the table's oracle section", async () => {
      const policy = new ScriptedPolicy(solutionScript(solutions));
      await expect(computeOptimal.run("P", testContext(policy, null), oracle(4))).rejects.toThrow(
        /compute-optimal with difficulty oracle needs each problem's oracle pass rate: give the bench a difficultyFile/,
      );
      const noOracle = { ...oracle(4), table };
      await expect(computeOptimal.run("P", testContext(policy, null, { knownDifficulty: { passRate: 1 } }), noOracle)).rejects.toThrow(InputError);
      await expect(computeOptimal.run("P", testContext(policy, null, { knownDifficulty: { passRate: 1 } }), noOracle)).rejects.toThrow(
        /needs an allocation table with an oracle section, and this table has none: re-run deliberate calibrate/,
      );
      const parsed = computeOptimalParams.safeParse({ budget: 4, table, difficulty: "oracle" });
      expect(parsed.success ? null : describeZodError(parsed.error)).toMatch(/^table: .*re-run deliberate calibrate/);
      expect(computeOptimalParams.parse({ budget: 4, table }).difficulty).toBe("predicted");
      expect(policy.calls).toHaveLength(0);
    });
  });

  it("spends a budget no larger than the estimate on the estimate alone", async () => {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const result = await computeOptimal.run("P", testContext(policy, ScriptedVerifier.byStep({}, 0.9)), { budget: 2, table, spread: false, difficulty: "predicted" });
    expect(result.difficulty?.configuration).toBeNull();
    expect(result.compute.generations).toBe(2);
    expect(result.answer).not.toBeNull();
  });
});
