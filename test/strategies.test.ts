import { describe, expect, it } from "vitest";
import { InputError } from "../src/errors.js";
import { solve } from "../src/solve.js";
import type { StrategyResult } from "../src/strategy.js";
import { beam, beamParams } from "../strategies/beam.js";
import { bestOfN } from "../strategies/best-of-n.js";
import { dvts } from "../strategies/dvts.js";
import { lookahead } from "../strategies/lookahead.js";
import { drawCounts, particleFiltering, resamplingWeights } from "../strategies/particle-filtering.js";
import { mcts } from "../strategies/mcts.js";
import { Random } from "../src/random.js";
import { getStrategy, STRATEGY_NAMES, type StrategyName } from "../strategies/registry.js";
import { revision, revisionsPerChain } from "../strategies/revision.js";
import { SynthRuleVerifier } from "../verifiers/synth-rule.js";
import { generateSynth } from "../datasets/synth/generate.js";
import { splitSteps } from "../datasets/synth/check.js";
import { ScriptedPolicy, ScriptedVerifier, solutionScript, testContext, type StepScript } from "./support/scripted-policy.js";

/** Tokens the scripted policy charges for these steps: characters plus one each. */
const tokensOf = (...steps: string[]) => steps.reduce((sum, step) => sum + step.length + 1, 0);

const prunedSteps = (result: StrategyResult) => result.tree.filter((node) => node.status === "pruned").map((node) => node.step);

/** A solution that never ends: step i is "s<i>". */
const endless: StepScript = ({ steps }) => ({ text: `s${steps.length}` });

describe("best-of-n", () => {
  // Answers: 4 twice at 0.9, 5 three times at 0.3, 7 once at 0.95. The first solution has 3 steps.
  const solutions = [
    "x1\n\ny1\n\nA: \\boxed{4}",
    "x2\n\nB: \\boxed{4}",
    "x3\n\nC: \\boxed{5}",
    "x4\n\nD: \\boxed{5}",
    "x5\n\nE: \\boxed{5}",
    "x6\n\nF: \\boxed{7}",
  ];
  const scores = { "A: \\boxed{4}": 0.9, "B: \\boxed{4}": 0.9, "C: \\boxed{5}": 0.3, "D: \\boxed{5}": 0.3, "E: \\boxed{5}": 0.3, "F: \\boxed{7}": 0.95 };

  async function run(select: "naive" | "majority" | "weighted") {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const verifier = ScriptedVerifier.byStep(scores, 0.6);
    const context = testContext(policy, verifier);
    const result = await bestOfN.run("P", context, { budget: 6, select, aggregate: "last" });
    return { policy, verifier, context, result };
  }

  it("samples N solutions from one prefill, extends them together and releases each as it finishes", async () => {
    const { policy, result } = await run("weighted");
    expect(policy.prompts).toEqual([{ problem: "P" }]);
    expect(policy.calls.map((call) => call.size)).toEqual([6, 6, 1]);
    expect(policy.calls.every((call) => call.temperature === 0.8)).toBe(true);
    expect(policy.forks).toBe(5);
    expect(policy.peakLive).toBe(6);
    expect(policy.live).toBe(0);
    expect(result.candidates.map((candidate) => candidate.text)).toEqual(solutions);
    expect(result.candidates.every((candidate) => candidate.finished)).toBe(true);
  });

  it("meters exactly N generations and the candidates' tokens", async () => {
    const { context, result } = await run("weighted");
    const compute = result.compute;
    expect(compute.generations).toBe(6);
    expect(compute.generatedTokens).toBe(result.candidates.reduce((sum, candidate) => sum + candidate.tokens, 0));
    expect(result.candidates[0]?.tokens).toBe(tokensOf("x1", "y1", "A: \\boxed{4}"));
    expect(compute.prefilledTokens).toBe(1);
    expect(compute.policyCalls).toBe(4); // one prefill and three rounds
    expect(compute.verifierCalls).toBe(1);
    expect(compute.flops).toBe(2 * 1_000 * (compute.generatedTokens + 1) + 2 * 100 * compute.verifierTokens);
    expect(context.meter.report().generations).toBe(6);
  });

  it("counts what the seam returns, and reports FLOPs as unknown (not 0) when a parameter count is unknown", async () => {
    const policy = new ScriptedPolicy(solutionScript(solutions), null);
    const verifier = ScriptedVerifier.byStep(scores, 0.6);
    const result = await bestOfN.run("P", testContext(policy, verifier), { budget: 6, select: "weighted", aggregate: "last" });
    expect(result.compute.generatedTokens).toBe(policy.generatedTokens);
    expect(result.compute.verifierTokens).toBe(verifier.calls[0]?.reduce((sum, { problem, steps }) => sum + problem.length + steps.join("\n\n").length, 0));
    expect(result.compute.flops).toBeNull();
    const unknownVerifier = new ScriptedVerifier(() => 0.5, null);
    const known = await bestOfN.run("P", testContext(new ScriptedPolicy(solutionScript(solutions)), unknownVerifier), { budget: 2, select: "naive", aggregate: "last" });
    expect(known.compute.flops).toBeNull();
  });

  it("chooses the highest score (naive), the most frequent answer (majority) or the heaviest answer (weighted)", async () => {
    expect((await run("naive")).result.answer).toBe("7");
    expect((await run("majority")).result.answer).toBe("5");
    const weighted = (await run("weighted")).result;
    expect(weighted.answer).toBe("4");
    expect(weighted.chosen?.text).toBe(solutions[0]);
    expect(weighted.candidates.map((candidate) => candidate.stepScores.length)).toEqual([3, 2, 2, 2, 2, 2]);
  });

  it("scores all solutions in one verifier call, and majority calls no verifier", async () => {
    expect((await run("weighted")).verifier.calls.map((call) => call.length)).toEqual([6]);
    const majority = await run("majority");
    expect(majority.verifier.calls).toHaveLength(0);
    expect(majority.result.candidates.every((candidate) => candidate.score === null && candidate.stepScores.length === 0)).toBe(true);
  });

  it("never scores an empty step made by a trailing delimiter", async () => {
    // The model writes "...\boxed{9}\n\n" then ends: the runtime's last step is empty.
    const policy = new ScriptedPolicy(solutionScript(["x\n\nG: \\boxed{9}\n\n", "y\n\nH: \\boxed{8}"]));
    const verifier = ScriptedVerifier.byStep({ "": 1, "G: \\boxed{9}": 0.1, "H: \\boxed{8}": 0.5 });
    const result = await bestOfN.run("P", testContext(policy, verifier), { budget: 2, select: "naive", aggregate: "last" });
    const [trailing] = result.candidates;
    expect(trailing?.steps).toEqual(["x", "G: \\boxed{9}"]);
    expect(trailing?.text).toBe("x\n\nG: \\boxed{9}");
    expect(trailing?.stepScores).toHaveLength(2);
    expect(trailing?.score).toBe(0.1);
    expect(verifier.calls.flat().every((request) => request.steps.every((step) => step.trim() !== ""))).toBe(true);
    expect(result.answer).toBe("8");
  });

  it("stops a solution at maxSteps (unfinished, no answer) and a step at maxStepTokens", async () => {
    const policy = new ScriptedPolicy(({ steps }) => ({ text: `step number ${steps.length}` }));
    const context = testContext(policy, null, { limits: { maxSteps: 3, maxStepTokens: 5 } });
    const result = await bestOfN.run("P", context, { budget: 2, select: "majority", aggregate: "last" });
    expect(result.candidates.map((candidate) => [candidate.steps.length, candidate.finished])).toEqual([
      [3, false],
      [3, false],
    ]);
    expect(result.candidates[0]?.steps[0]).toBe("step ");
    expect(result.compute.generatedTokens).toBe(2 * 3 * 5);
    expect(result.answer).toBeNull();
    expect(result.chosen).toBeNull();
  });
});

describe("beam", () => {
  // Round 1 writes a1 b1 c1 d1; a1 and c1 are kept. Round 2: a2x, "a: 5" (finished), c2x, c2y; c2x
  // and c2y are kept. Round 3: "c: 6", c3, "d: 5", "e: 7"; with four finished beams the search stops.
  const solutions = [
    "a1\n\na2x\n\nnever",
    "a1\n\na: \\boxed{5}",
    "b1\n\nnever",
    "c1\n\nc2x\n\nc: \\boxed{6}",
    "c1\n\nc2x\n\nc3\n\nnever",
    "c1\n\nc2y\n\nd: \\boxed{5}",
    "c1\n\nc2y\n\ne: \\boxed{7}",
    "d1\n\nnever",
  ];
  const scores = {
    a1: 0.9,
    b1: 0.2,
    c1: 0.8,
    d1: 0.1,
    a2x: 0.3,
    "a: \\boxed{5}": 0.7,
    c2x: 0.95,
    c2y: 0.4,
    "c: \\boxed{6}": 0.85,
    c3: 0.5,
    "d: \\boxed{5}": 0.6,
    "e: \\boxed{7}": 0.2,
  };

  async function run(select: "naive" | "majority" | "weighted", maxSteps = 10) {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const verifier = ScriptedVerifier.byStep(scores);
    const context = testContext(policy, verifier, { limits: { maxSteps, maxStepTokens: 100 } });
    const result = await beam.run("P", context, { budget: 4, beamWidth: 2, select, aggregate: "last" });
    return { policy, verifier, result };
  }

  it("keeps the top N/M beams each round, expands each M times and sets finished beams aside", async () => {
    const { policy, verifier, result } = await run("naive");
    expect(prunedSteps(result)).toEqual(["b1", "d1", "a2x"]);
    expect(result.candidates.map((candidate) => [candidate.answer, candidate.finished, candidate.score])).toEqual([
      ["5", true, 0.7],
      ["6", true, 0.85],
      ["5", true, 0.6],
      ["7", true, 0.2],
      [null, false, 0.5],
    ]);
    expect(policy.calls.map((call) => call.size)).toEqual([4, 4, 4]);
    expect(verifier.calls.map((call) => call.length)).toEqual([4, 4, 4]);
    expect(policy.peakLive).toBe(4);
    expect(policy.live).toBe(0);
    expect(result.tree.find((node) => node.step === "c2x")?.score).toBe(0.95);
  });

  it("reports the real tokens and N generations", async () => {
    const { result } = await run("naive");
    const decoded = tokensOf("a1", "b1", "c1", "d1", "a2x", "a: \\boxed{5}", "c2x", "c2y", "c: \\boxed{6}", "c3", "d: \\boxed{5}", "e: \\boxed{7}");
    expect(result.compute.generatedTokens).toBe(decoded);
    expect(result.compute.generations).toBe(4);
    expect(result.candidates[1]?.tokens).toBe(tokensOf("c1", "c2x", "c: \\boxed{6}"));
  });

  it("chooses among finished beams as best-of-N does", async () => {
    expect((await run("naive")).result.answer).toBe("6");
    expect((await run("majority")).result.answer).toBe("5");
    const weighted = (await run("weighted")).result;
    expect(weighted.answer).toBe("5"); // 0.7 + 0.6 against 0.85
    expect(weighted.chosen?.text).toBe("a1\n\na: \\boxed{5}");
  });

  it("runs at most maxSteps rounds; beams still active become unfinished candidates", async () => {
    const { policy, result } = await run("naive", 2);
    expect(policy.calls).toHaveLength(2);
    expect(result.candidates.map((candidate) => [candidate.text, candidate.finished])).toEqual([
      ["a1\n\na: \\boxed{5}", true],
      ["a1\n\na2x", false],
      ["c1\n\nc2x", false],
      ["c1\n\nc2y", false],
    ]);
    expect(result.answer).toBe("5");
    expect(policy.live).toBe(0);
  });
});

describe("lookahead", () => {
  // a1 looks better than b1 on its own (0.9 against 0.5), but its greedy continuation a2 scores 0.1
  // and b1's scores 0.9: looking one step ahead keeps b1.
  const solutions = ["a1\n\na2\n\nnever", "b1\n\nb2\n\nb: \\boxed{4}", "b1\n\nb: \\boxed{3}", "b1\n\nb2\n\nb: \\boxed{8}"];
  const scores = { a1: 0.9, a2: 0.1, b1: 0.5, b2: 0.9, "b: \\boxed{4}": 0.95, "b: \\boxed{3}": 0.8, "b: \\boxed{8}": 0.3 };

  async function run() {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const verifier = ScriptedVerifier.byStep(scores);
    const result = await lookahead.run("P", testContext(policy, verifier), { budget: 4, beamWidth: 2, lookahead: 1, select: "naive", aggregate: "last" });
    return { policy, verifier, result };
  }

  it("scores each step by a greedy rollout, then discards the rollout", async () => {
    const { policy, verifier, result } = await run();
    expect(prunedSteps(result)).toEqual(["a1"]);
    expect(result.tree.find((node) => node.step === "a1")?.score).toBe(0.1);
    expect(result.tree.find((node) => node.step === "b1")?.score).toBe(0.9);
    expect(result.tree.some((node) => node.step === "a2")).toBe(false);
    // Round 1: 2 beams, 2 rollouts; round 2: 2 beams, 1 rollout (one beam finished); round 3: both finish.
    expect(policy.calls.map((call) => [call.size, call.temperature])).toEqual([
      [2, 0.8],
      [2, 0],
      [2, 0.8],
      [1, 0],
      [2, 0.8],
    ]);
    expect(verifier.calls).toHaveLength(3);
    expect(policy.peakLive).toBe(4);
    expect(policy.live).toBe(0);
    expect(result.answer).toBe("4");
    expect(result.candidates.map((candidate) => candidate.answer)).toEqual(["3", "4", "8"]);
    expect(result.chosen?.stepScores).toEqual([0.5, 0.9, 0.95]);
  });

  it("counts the rollouts' tokens and N generations for N / (k + 1) beams", async () => {
    const { result } = await run();
    const beams = tokensOf("a1", "b1", "b2", "b: \\boxed{3}", "b: \\boxed{4}", "b: \\boxed{8}");
    const rollouts = tokensOf("a2", "b2", "b: \\boxed{4}");
    expect(result.compute.generatedTokens).toBe(beams + rollouts);
    expect(result.compute.generations).toBe(4);
  });
});

describe("dvts", () => {
  // Two subtrees of two proposals: {a1, b1} keeps b1, {c1, d1} keeps c1, although a beam search
  // would keep c1 and d1. Then subtree 1 keeps "b: 2" (finished), subtree 2 keeps "c: 9".
  const solutions = ["a1\n\nnever", "b1\n\nb: \\boxed{2}", "b1\n\nb2\n\nnever", "c1\n\nc: \\boxed{3}", "c1\n\nc: \\boxed{9}", "d1\n\nnever"];
  const scores = { a1: 0.3, b1: 0.4, c1: 0.9, d1: 0.8, "b: \\boxed{2}": 0.5, b2: 0.45, "c: \\boxed{3}": 0.7, "c: \\boxed{9}": 0.75 };

  async function run(select: "naive" | "majority" | "weighted") {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const verifier = ScriptedVerifier.byStep(scores);
    const result = await dvts.run("P", testContext(policy, verifier), { budget: 4, beamWidth: 2, select, aggregate: "last" });
    return { policy, verifier, result };
  }

  it("expands N/M subtrees greedily, M proposals per step each", async () => {
    const { policy, verifier, result } = await run("naive");
    expect(prunedSteps(result)).toEqual(["a1", "d1", "b2", "c: \\boxed{3}"]);
    expect(result.candidates.map((candidate) => candidate.text)).toEqual(["b1\n\nb: \\boxed{2}", "c1\n\nc: \\boxed{9}"]);
    expect(policy.calls.map((call) => call.size)).toEqual([4, 4]);
    expect(verifier.calls.map((call) => call.length)).toEqual([4, 4]);
    expect(policy.peakLive).toBe(4);
    expect(policy.live).toBe(0);
    expect(result.answer).toBe("9");
    expect((await run("majority")).result.answer).toBe("2"); // a 1-1 tie goes to the first subtree
  });

  it("reports the real tokens and N generations", async () => {
    const { result } = await run("naive");
    const decoded = tokensOf("a1", "b1", "c1", "d1", "b: \\boxed{2}", "b2", "c: \\boxed{3}", "c: \\boxed{9}");
    expect(result.compute.generatedTokens).toBe(decoded);
    expect(result.compute.generations).toBe(4);
  });

  it("ends a subtree at maxSteps", async () => {
    const policy = new ScriptedPolicy(endless);
    const context = testContext(policy, ScriptedVerifier.byStep({}), { limits: { maxSteps: 3, maxStepTokens: 100 } });
    const result = await dvts.run("P", context, { budget: 4, beamWidth: 2, select: "naive", aggregate: "last" });
    expect(policy.calls).toHaveLength(3);
    expect(result.candidates.map((candidate) => [candidate.steps.length, candidate.finished])).toEqual([
      [3, false],
      [3, false],
    ]);
    expect(policy.live).toBe(0);
  });
});

describe("revision", () => {
  // Chain A: "A0: 1" (0.9), revised to "A1: 3" (0.2). Chain B: "B0: 2" (0.4), revised to "B1: 2" (0.6).
  const revise: StepScript = ({ prompt, sibling }) => {
    const last = prompt.previousAttempts?.at(-1);
    if (last === undefined) return { text: sibling === 0 ? "A0 \\boxed{1}" : "B0 \\boxed{2}", end: true };
    return { text: last.startsWith("A") ? "A1 \\boxed{3}" : "B1 \\boxed{2}", end: true };
  };
  const scores = { "A0 \\boxed{1}": 0.9, "A1 \\boxed{3}": 0.2, "B0 \\boxed{2}": 0.4, "B1 \\boxed{2}": 0.6 };

  async function run(withinChain: "verifier" | "majority" | "last" | "pool") {
    const policy = new ScriptedPolicy(revise);
    const verifier = ScriptedVerifier.byStep(scores);
    const params = { budget: 4, ratio: 1, history: 4, withinChain, select: "weighted", aggregate: "last" } as const;
    const result = await revision.run("P", testContext(policy, verifier), params);
    return { policy, verifier, result };
  }

  it("splits the budget into chains x revisions by the sequential-to-parallel ratio", () => {
    expect(revisionsPerChain(16, 1)).toBe(4);
    expect(revisionsPerChain(16, 4)).toBe(8);
    expect(revisionsPerChain(16, 16)).toBe(16);
    expect(revisionsPerChain(16, 1 / 16)).toBe(1);
    expect(revisionsPerChain(16, 2)).toBeNull();
  });

  it("shows each chain its previous attempts and selects within, then across chains", async () => {
    const { policy, verifier, result } = await run("verifier");
    expect(policy.prompts).toEqual([
      { problem: "P" },
      { problem: "P", previousAttempts: ["A0 \\boxed{1}"] },
      { problem: "P", previousAttempts: ["B0 \\boxed{2}"] },
    ]);
    expect(result.candidates.map((candidate) => candidate.answer)).toEqual(["1", "3", "2", "2"]);
    expect(verifier.calls.map((call) => call.length)).toEqual([2, 2]);
    expect(result.answer).toBe("1"); // A0 (0.9) and B1 (0.6) picked within their chains
    expect((await run("last")).result.answer).toBe("2"); // A1 (0.2) against B1 (0.6)
    // Pooled: one weighted vote over all four attempts, "2" (0.4 + 0.6) against "1" (0.9) and "3" (0.2).
    expect((await run("pool")).result.answer).toBe("2");
    expect(result.compute.generations).toBe(4);
    expect(policy.peakLive).toBe(2);
    expect(policy.live).toBe(0);
  });

  it("samples the revisions at revisionTemperature and the first attempts at the run's temperature (0.8)", async () => {
    const cooled = new ScriptedPolicy(revise);
    const params = { budget: 4, ratio: 1, history: 4, withinChain: "verifier", select: "weighted", aggregate: "last" } as const;
    await revision.run("P", testContext(cooled, ScriptedVerifier.byStep(scores)), { ...params, revisionTemperature: 0.25 });
    expect(cooled.calls.map((call) => call.temperature)).toEqual([0.8, 0.25]);
    const { policy } = await run("verifier");
    expect(policy.calls.map((call) => call.temperature)).toEqual([0.8, 0.8]);
  });

  it("links a revision's prompt node to the attempt it revises", async () => {
    const { result } = await run("verifier");
    const prompts = result.tree.filter((node) => node.depth === 0);
    expect(prompts).toHaveLength(3);
    for (const prompt of prompts.slice(1)) {
      expect(result.tree[prompt.parentId as number]?.finished).toBe(true);
    }
  });

  it("shows at most `history` previous attempts, the most recent", async () => {
    const policy = new ScriptedPolicy(({ prompt }) => {
      const n = prompt.previousAttempts?.length ?? 0;
      return { text: `attempt ${n} \\boxed{${n}}`, end: true };
    });
    const verifier = ScriptedVerifier.byStep({});
    const params = { budget: 3, ratio: 3, history: 1, withinChain: "verifier", select: "naive", aggregate: "last" } as const;
    const result = await revision.run("P", testContext(policy, verifier), params);
    expect(policy.prompts.map((prompt) => prompt.previousAttempts)).toEqual([undefined, ["attempt 0 \\boxed{0}"], ["attempt 1 \\boxed{1}"]]);
    expect(result.candidates).toHaveLength(3);
  });
});

describe("particle-filtering", () => {
  // After the prompt, forks write "good" and "bad" in turn; "good" goes on to answer 1, "bad" to 2.
  const solutions = ["good\n\ng2\n\nG: \\boxed{1}", "bad\n\nb2\n\nB: \\boxed{2}"];
  const scores = { good: 0.99, g2: 0.99, "G: \\boxed{1}": 0.99, bad: 0.01, b2: 0.01, "B: \\boxed{2}": 0.01 };

  async function run(budget: number, seed = 1) {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const verifier = ScriptedVerifier.byStep(scores);
    const context = testContext(policy, verifier, { random: new Random(seed) });
    const result = await particleFiltering.run("P", context, { budget, resampleTemperature: 1, select: "weighted", aggregate: "last" });
    return { policy, verifier, result };
  }

  it("weights particles by their PRM scores and resamples: low-scored particles are pruned, high-scored ones forked", async () => {
    const { policy, verifier, result } = await run(4);
    // Round 1: 2 "good" and 2 "bad"; resampled, all 4 continue "good" (weights 0.99 : 0.01 as log-odds).
    expect(policy.calls.map((call) => call.size)).toEqual([4, 4, 4]);
    expect(verifier.calls.map((call) => call.length)).toEqual([4, 4, 4]);
    const prunedFirstSteps = result.tree.filter((node) => node.depth === 1 && node.status === "pruned").map((node) => node.step);
    expect(prunedFirstSteps).toEqual(["bad", "bad"]);
    expect(result.answer).toBe("1");
    expect(result.candidates.every((candidate) => candidate.answer === "1" && candidate.finished)).toBe(true);
    expect(policy.live).toBe(0);
    expect(policy.peakLive).toBe(4);
  });

  it("meters N generations and the real tokens", async () => {
    const { policy, result } = await run(4);
    expect(result.compute.generations).toBe(4);
    expect(result.compute.generatedTokens).toBe(policy.generatedTokens);
    expect(result.compute.policyCalls).toBe(policy.calls.length + 1); // and the prefill
  });

  it("softmax of log-odds / temperature: equal scores draw uniformly, a higher temperature flattens", () => {
    expect(resamplingWeights([0.5, 0.5, 0.5, 0.5], 1)).toEqual([0.25, 0.25, 0.25, 0.25]);
    const [sharp] = resamplingWeights([0.9, 0.5], 1);
    const [flat] = resamplingWeights([0.9, 0.5], 10);
    expect(sharp).toBeCloseTo(0.9, 10);
    expect(flat as number).toBeLessThan(sharp as number);
    expect(flat as number).toBeGreaterThan(0.5);
    expect(resamplingWeights([1, 0], 1).every(Number.isFinite)).toBe(true);
  });

  it("draws with the seeded random source: the same seed repeats the counts, which sum to the draws", () => {
    const weights = [0.1, 0.2, 0.3, 0.4];
    const counts = drawCounts(weights, 1000, new Random(5));
    expect(counts.reduce((sum, count) => sum + count, 0)).toBe(1000);
    expect(drawCounts(weights, 1000, new Random(5))).toEqual(counts);
    counts.forEach((count, index) => expect(Math.abs(count / 1000 - (weights[index] as number))).toBeLessThan(0.05));
  });

  it("keeps finished particles in the population, never extended again, while the others go on", async () => {
    // Half the particles end at once ("S"); the others go on for two more steps. A high temperature keeps both kinds.
    const policy = new ScriptedPolicy(solutionScript(["S: \\boxed{3}", "long\n\nl2\n\nL: \\boxed{4}"]));
    const verifier = ScriptedVerifier.byStep({ "S: \\boxed{3}": 0.9, long: 0.5, l2: 0.5, "L: \\boxed{4}": 0.5 });
    const result = await particleFiltering.run("P", testContext(policy, verifier), { budget: 8, resampleTemperature: 100, select: "weighted", aggregate: "last" });
    expect(policy.calls[0]?.size).toBe(8);
    expect(policy.calls[1]?.size).toBeLessThan(8);
    expect(new Set(result.candidates.map((candidate) => candidate.answer))).toEqual(new Set(["3", "4"]));
    expect(result.candidates.filter((candidate) => candidate.answer === "3").every((candidate) => candidate.steps.length === 1)).toBe(true);
    expect(policy.live).toBe(0);
  });

  it("is seeded: the same seed resamples the same way", async () => {
    const treeOf = async (seed: number) => (await run(8, seed)).result.tree.map((node) => [node.parentId, node.step, node.status]);
    expect(await treeOf(3)).toEqual(await treeOf(3));
    expect(await treeOf(4)).not.toEqual(await treeOf(3));
  });
});

describe("mcts", () => {
  // After the prompt, forks write "a" and "b" in turn; after "a", "x" and "y". Answer 1 scores 0.9, answer 2 scores 0.2.
  const solutions = ["a\n\nx\n\nA1: \\boxed{1}", "a\n\ny\n\nA2: \\boxed{1}", "b\n\nz\n\nB: \\boxed{2}"];
  const scores = { "A1: \\boxed{1}": 0.9, "B: \\boxed{2}": 0.2 };

  async function run(params: Partial<{ budget: number; branching: number; exploration: number }> = {}) {
    const policy = new ScriptedPolicy(solutionScript(solutions));
    const verifier = ScriptedVerifier.byStep(scores, 0.5);
    const result = await mcts.run("P", testContext(policy, verifier), { budget: 4, branching: 2, exploration: 0, select: "weighted", aggregate: "last", ...params });
    return { policy, verifier, result };
  }

  it("expands k children, rolls each out to the end, and expands next the child with the best value", async () => {
    const { policy, verifier, result } = await run();
    // Iteration 1: the root becomes "a" and "b", rolled out to A1 (0.9) and B (0.2). Iteration 2: "a" becomes "x" and "y".
    expect(policy.prompts).toEqual([{ problem: "P" }]);
    expect(policy.calls.map((call) => call.size)).toEqual([2, 2, 2, 2, 2]);
    expect(verifier.calls.map((call) => call.length)).toEqual([2, 2]);
    expect(result.candidates.map((candidate) => candidate.steps.join("|"))).toEqual(["a|x|A1: \\boxed{1}", "b|z|B: \\boxed{2}", "a|x|A1: \\boxed{1}", "a|y|A2: \\boxed{1}"]);
    expect(result.candidates.map((candidate) => candidate.score)).toEqual([0.9, 0.2, 0.9, 0.5]);
    expect(result.answer).toBe("1");
    expect(policy.live).toBe(0);
  });

  it("meters one generation per expanded child with its rollout, and the real tokens", async () => {
    const { policy, result } = await run({ budget: 3 });
    expect(result.compute.generations).toBe(3);
    expect(result.candidates).toHaveLength(3);
    expect(result.compute.generatedTokens).toBe(policy.generatedTokens);
  });

  it("explores by UCT: a high exploration constant expands the less valued child too", async () => {
    const expanded = (result: StrategyResult, step: string) => result.tree.some((node) => node.step === step && node.children.length > 1);
    const greedy = await run({ budget: 6, exploration: 0 });
    const exploring = await run({ budget: 6, exploration: 10 });
    expect(expanded(greedy.result, "b")).toBe(false);
    expect(expanded(exploring.result, "b")).toBe(true);
    expect(greedy.policy.live + exploring.policy.live).toBe(0);
  });

  it("ends early, counting only what it spent, when every path is finished", async () => {
    const policy = new ScriptedPolicy(solutionScript(["A: \\boxed{1}", "B: \\boxed{2}"]));
    const result = await mcts.run("P", testContext(policy, ScriptedVerifier.byStep({})), { budget: 8, branching: 2, exploration: 1, select: "weighted", aggregate: "last" });
    expect(result.compute.generations).toBe(2);
    expect(result.candidates).toHaveLength(2);
    expect(policy.live).toBe(0);
  });

  it("is seeded: the same seed draws the same step seeds", async () => {
    const seedsOf = async (seed: number) => {
      const policy = new ScriptedPolicy(endless);
      await solve("P", { strategy: "mcts", budget: 4, params: { branching: 2 }, policy, verifier: ScriptedVerifier.byStep({}), seed, limits: { maxSteps: 3 } });
      return policy.calls.map((call) => call.seeds);
    };
    expect(await seedsOf(7)).toEqual(await seedsOf(7));
    expect(await seedsOf(8)).not.toEqual(await seedsOf(7));
  });

  it("keeps at most N + k branches live", async () => {
    const policy = new ScriptedPolicy(endless);
    await solve("P", { strategy: "mcts", budget: 16, params: { branching: 4 }, policy, verifier: ScriptedVerifier.byStep({}), limits: { maxSteps: 4 } });
    expect(policy.peakLive).toBeLessThanOrEqual(16 + 4);
    expect(policy.live).toBe(0);
  });
});

describe("every strategy", () => {
  const configs: { name: StrategyName; params: Record<string, unknown> }[] = [
    { name: "best-of-n", params: {} },
    { name: "beam", params: { beamWidth: 2 } },
    { name: "lookahead", params: { beamWidth: 1, lookahead: 1 } },
    { name: "dvts", params: { beamWidth: 2 } },
    { name: "revision", params: { ratio: 1 } },
    { name: "particle-filtering", params: {} },
    { name: "mcts", params: { branching: 2 } },
  ];

  it("stops with an AbortError when aborted between rounds, releasing every branch", async () => {
    for (const { name, params } of configs) {
      const controller = new AbortController();
      const policy = new ScriptedPolicy((state) => {
        if (state.steps.length === 2) controller.abort();
        return endless(state);
      });
      const running = solve("P", { strategy: name, budget: 4, params, policy, verifier: ScriptedVerifier.byStep({}), signal: controller.signal });
      await expect(running, name).rejects.toMatchObject({ name: "AbortError" });
      expect(policy.live, name).toBe(0);
    }
  });

  it("starts nothing when already aborted", async () => {
    const policy = new ScriptedPolicy(endless);
    const running = solve("P", { strategy: "beam", budget: 4, params: { beamWidth: 2 }, policy, verifier: ScriptedVerifier.byStep({}), signal: AbortSignal.abort() });
    await expect(running).rejects.toMatchObject({ name: "AbortError" });
    expect(policy.prompts).toHaveLength(0);
  });

  it("releases every branch when the policy fails", async () => {
    for (const { name, params } of configs) {
      const policy = new ScriptedPolicy((state) => {
        if (state.steps.length === 1) throw new Error("model failure");
        return endless(state);
      });
      const running = solve("P", { strategy: name, budget: 4, params, policy, verifier: ScriptedVerifier.byStep({}) });
      await expect(running, name).rejects.toThrow("model failure");
      expect(policy.live, name).toBe(0);
    }
  });

  it("spends exactly its budget in generations and keeps within maxSteps", async () => {
    for (const { name, params } of configs) {
      const policy = new ScriptedPolicy(endless);
      const result = await solve("P", { strategy: name, budget: 4, params, policy, verifier: ScriptedVerifier.byStep({}), limits: { maxSteps: 3 } });
      expect(result.compute.generations, name).toBe(4);
      expect(Math.max(...result.candidates.map((candidate) => candidate.steps.length)), name).toBe(3);
      expect(result.compute.generatedTokens, name).toBe(policy.generatedTokens);
      expect(policy.live, name).toBe(0);
    }
  });

  it("is seeded: the same seed repeats the run, another seed draws other seeds", async () => {
    const seedsOf = async (seed: number) => {
      const policy = new ScriptedPolicy(({ steps, seed: branchSeed }) => ({ text: `${branchSeed % 3}`, end: steps.length === 2 }));
      const result = await solve("P", { strategy: "beam", budget: 4, params: { beamWidth: 2 }, policy, verifier: ScriptedVerifier.byStep({ "0": 0.2, "1": 0.5, "2": 0.9 }), seed });
      return { seeds: policy.calls.map((call) => call.seeds), texts: result.candidates.map((candidate) => candidate.text) };
    };
    const first = await seedsOf(7);
    expect(await seedsOf(7)).toEqual(first);
    expect((await seedsOf(8)).seeds).not.toEqual(first.seeds);
    expect(new Set(first.seeds[0]).size).toBe(4);
  });
});

describe("parameters and registry", () => {
  const policy = new ScriptedPolicy(endless);
  const verifier = ScriptedVerifier.byStep({});

  it("says that the budget is not a multiple of the beam width", async () => {
    const beamRun = solve("P", { strategy: "beam", budget: 16, params: { beamWidth: 5 }, policy, verifier });
    await expect(beamRun).rejects.toThrow(InputError);
    await expect(beamRun).rejects.toThrow("invalid beam parameters: budget: budget 16 is not a multiple of beamWidth 5");
    await expect(solve("P", { strategy: "dvts", budget: 16, params: { beamWidth: 5 }, policy, verifier })).rejects.toThrow(
      "budget 16 is not a multiple of beamWidth 5",
    );
  });

  it("says what look-ahead and revision budgets must divide into", async () => {
    await expect(solve("P", { strategy: "lookahead", budget: 4, params: { lookahead: 2 }, policy, verifier })).rejects.toThrow(
      "budget 4 is not a multiple of lookahead + 1 = 3",
    );
    await expect(solve("P", { strategy: "lookahead", budget: 4, params: { lookahead: 1, beamWidth: 4 }, policy, verifier })).rejects.toThrow(
      "budget 4 with lookahead 1 runs 2 beams, which is not a multiple of beamWidth 4",
    );
    await expect(solve("P", { strategy: "revision", budget: 16, params: { ratio: 2 }, policy, verifier })).rejects.toThrow(
      "for budget 16 use ratio 0.0625, 0.25, 1, 4, 16",
    );
  });

  it("names the field of any other bad parameter, limit or sampling option", async () => {
    await expect(solve("P", { strategy: "best-of-n", budget: 0, policy, verifier })).rejects.toThrow(/best-of-n parameters: budget:/);
    await expect(solve("P", { strategy: "best-of-n", budget: 2, params: { select: "best" }, policy, verifier })).rejects.toThrow(/select:/);
    await expect(solve("P", { strategy: "best-of-n", budget: 2, policy, verifier, limits: { maxSteps: 0 } })).rejects.toThrow(/limits: maxSteps:/);
    await expect(solve("P", { strategy: "best-of-n", budget: 2, policy, verifier, sampling: { temperature: -1 } })).rejects.toThrow(/temperature:/);
  });

  it("fills in defaults", () => {
    expect(beamParams.parse({ budget: 16 })).toEqual({ budget: 16, beamWidth: 4, select: "weighted", aggregate: "last" });
  });

  it("asks for a verifier where the strategy needs one", async () => {
    await expect(solve("P", { strategy: "beam", budget: 4, params: { beamWidth: 2 }, policy })).rejects.toThrow(
      "beam search needs a step verifier (a PRM), and none was given",
    );
    await expect(solve("P", { strategy: "best-of-n", budget: 2, policy })).rejects.toThrow(/select=majority without one/);
  });

  it("looks strategies up by name, listing the valid names otherwise", () => {
    expect(STRATEGY_NAMES).toEqual(["best-of-n", "beam", "lookahead", "dvts", "revision", "compute-optimal", "particle-filtering", "mcts"]);
    expect(getStrategy("dvts")).toBe(dvts);
    expect(() => getStrategy("mtcs")).toThrow('unknown strategy "mtcs"; valid strategies: best-of-n, beam, lookahead, dvts, revision, compute-optimal, particle-filtering, mcts');
  });
});

describe("solve", () => {
  it("returns the answer, every candidate with step scores, the tree and the compute", async () => {
    const [problem] = generateSynth({ split: "test", seed: 3, n: 1 });
    if (problem === undefined) throw new Error("no synthetic problem");
    const gold = splitSteps(problem.solution);
    const wrong = [...gold.slice(0, -1), "The answer is \\boxed{123456789}"];
    const policy = new ScriptedPolicy(solutionScript([wrong.join("\n\n"), gold.join("\n\n")]));
    const result = await solve(problem.problem, { strategy: "best-of-n", budget: 2, policy, verifier: new SynthRuleVerifier(), params: { select: "naive" } });
    expect(result.strategy).toBe("best-of-n");
    expect(result.params).toEqual({ budget: 2, select: "naive", aggregate: "last" });
    expect(result.answer).toBe(problem.answer);
    expect(result.candidates.map((candidate) => candidate.score)).toEqual([0, 1]);
    expect(result.chosen?.stepScores).toEqual(gold.map(() => 1));
    expect(result.tree.filter((node) => node.finished)).toHaveLength(2);
    expect(result.compute.generations).toBe(2);
  });
});
