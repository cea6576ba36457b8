import { afterAll, describe, expect, it } from "vitest";
import { aggregateScores, outcomeScore } from "../verifiers/aggregate.js";
import { cachedEquivalence, groupByAnswer, selectCandidate, type Voter } from "../verifiers/select.js";
import { solutionSteps, splitSolution } from "../verifiers/steps.js";
import { prefixCorrectness, SynthRuleVerifier } from "../verifiers/synth-rule.js";
import { SimulatedRuleVerifier } from "../verifiers/simulated-rule.js";
import { rocAuc } from "../verifiers/auc.js";
import { parseSimulatedVerifier } from "../src/commands/model-options.js";
import { scoreOutcomes } from "../verifiers/outcome.js";
import { Grader } from "../datasets/answer/grader.js";
import { splitSteps as synthSplitSteps } from "../datasets/synth/check.js";
import { generateSynth } from "../datasets/synth/generate.js";
import { ComputeMeter } from "../src/meter.js";
import { sameString, ScriptedVerifier } from "./support/scripted-policy.js";

const voters = (...pairs: [string | null, number | null][]): Voter[] => pairs.map(([answer, score]) => ({ answer, score }));

describe("aggregateScores", () => {
  it("reduces step scores by last, min, prod and mean", () => {
    const scores = [0.9, 0.5, 0.8];
    expect(aggregateScores(scores, "last")).toBe(0.8);
    expect(aggregateScores(scores, "min")).toBe(0.5);
    expect(aggregateScores(scores, "prod")).toBeCloseTo(0.36, 12);
    expect(aggregateScores(scores, "mean")).toBeCloseTo(2.2 / 3, 12);
    expect(outcomeScore(scores)).toBe(0.8);
  });

  it("scores a solution with no steps 0 under every rule", () => {
    for (const rule of ["last", "min", "prod", "mean"] as const) expect(aggregateScores([], rule)).toBe(0);
  });
});

describe("steps", () => {
  it("never makes an empty step of a trailing or doubled delimiter", () => {
    expect(splitSolution("1 + 1 = 2\n\nThe answer is \\boxed{2}\n\n", "\n\n")).toEqual(["1 + 1 = 2", "The answer is \\boxed{2}"]);
    expect(splitSolution("a\n\n\n\nb", "\n\n")).toEqual(["a", "b"]);
    expect(splitSolution("", "\n\n")).toEqual([]);
    expect(solutionSteps(["a", "", "  ", "b"])).toEqual(["a", "b"]);
  });
});

describe("selectCandidate", () => {
  // 4 twice at 0.9, 5 three times at 0.3, 7 once at 0.95, and one candidate without an answer at 1.
  const candidates = voters(["4", 0.9], ["5", 0.3], [null, 1], ["5", 0.3], ["7", 0.95], ["4", 0.9], ["5", 0.3]);

  it("naive takes the highest score among candidates with an answer", async () => {
    expect(await selectCandidate(candidates, "naive", sameString)).toBe(candidates[4]);
  });

  it("majority takes the most frequent answer, weighted the largest sum of scores", async () => {
    expect((await selectCandidate(candidates, "majority", sameString))?.answer).toBe("5");
    const weighted = await selectCandidate(candidates, "weighted", sameString);
    expect(weighted).toBe(candidates[0]);
  });

  it("breaks ties toward what came first, and returns null when no candidate has an answer", async () => {
    expect((await selectCandidate(voters(["2", 0.5], ["3", 0.5]), "majority", sameString))?.answer).toBe("2");
    expect((await selectCandidate(voters(["2", 0.4], ["3", 0.4]), "naive", sameString))?.answer).toBe("2");
    expect(await selectCandidate(voters([null, 0.9]), "weighted", sameString)).toBeNull();
    expect(await selectCandidate([], "naive", sameString)).toBeNull();
  });

  it("groups by equivalence, asking once per pair of distinct answers", async () => {
    const asked: string[] = [];
    const equivalent = cachedEquivalence((a, b) => {
      asked.push(`${a}|${b}`);
      return Promise.resolve(Number(a) === Number(b));
    });
    const groups = await groupByAnswer(voters(["1.0", 1], ["1", 1], ["2", 1], ["1", 1], ["1.0", 1], ["2.0", 1]), equivalent);
    expect(groups.map((group) => [group.answer, group.votes])).toEqual([
      ["1.0", 4],
      ["2", 2],
    ]);
    // "1" vs "1.0"; "2" vs "1.0"; "2.0" vs "1.0" and "2"; repeats of a string are never compared again.
    expect(asked).toHaveLength(4);
    await equivalent("1", "1.0");
    await equivalent("1.0", "1");
    expect(asked).toHaveLength(4);
  });
});

describe("majority with the grader", () => {
  const grader = new Grader({ workers: 1 });
  afterAll(() => grader.close());

  it("puts \\frac12, 0.5 and \\frac{1}{2} in one group", async () => {
    const equivalent = cachedEquivalence(async (a, b) => (await grader.grade(a, b)).equal);
    const candidates = voters(["3", null], ["\\frac12", null], ["0.5", null], ["3", null], ["\\frac{1}{2}", null]);
    const groups = await groupByAnswer(candidates, equivalent);
    expect(groups.map((group) => [group.answer, group.votes])).toEqual([
      ["3", 2],
      ["\\frac12", 3],
    ]);
    expect((await selectCandidate(candidates, "majority", equivalent))?.answer).toBe("\\frac12");
  });
});

describe("SynthRuleVerifier", () => {
  const problems = generateSynth({ split: "test", seed: 1, n: 12 });
  const verifier = new SynthRuleVerifier();

  it("scores every prefix of a gold solution 1", async () => {
    const requests = problems.map((p) => ({ problem: p.problem, steps: synthSplitSteps(p.solution) }));
    const answers = await verifier.scoreSteps(requests);
    answers.forEach((answer, index) => expect(answer).toEqual({ scores: requests[index]?.steps.map(() => 1), tokens: 0 }));
  });

  it("scores 0 from the first wrong step on, and a wrong final answer 0", async () => {
    const problem = problems.find((p) => synthSplitSteps(p.solution).length >= 3);
    if (problem === undefined) throw new Error("no three-step problem in the sample");
    const steps = synthSplitSteps(problem.solution);
    const broken = [...steps];
    broken[1] = `${broken[1]} + 1`;
    const wrongAnswer = [...steps.slice(0, -1), "The answer is \\boxed{123456789}"];
    const [brokenScores, wrongScores] = (
      await verifier.scoreSteps([
        { problem: problem.problem, steps: broken },
        { problem: problem.problem, steps: wrongAnswer },
      ])
    ).map((answer) => answer.scores);
    expect(brokenScores).toEqual([1, ...steps.slice(1).map(() => 0)]);
    expect(wrongScores).toEqual([...steps.slice(0, -1).map(() => 1), 0]);
  });
});

describe("rocAuc", () => {
  it("is 1 for a perfect ranking, 0 for a reversed one and 1/2 when every score ties", () => {
    const labels = [true, true, false, false];
    expect(rocAuc([0.9, 0.8, 0.2, 0.1], labels)).toBe(1);
    expect(rocAuc([0.1, 0.2, 0.8, 0.9], labels)).toBe(0);
    expect(rocAuc([0.5, 0.5, 0.5, 0.5], labels)).toBe(0.5);
  });

  it("counts the pairs a positive wins and half the ties", () => {
    // Positives 0.8, 0.4, 0.3; negatives 0.5, 0.3. Pairs won: 0.8 beats both, 0.4 beats 0.3,
    // 0.3 ties 0.3 (one half): 3.5 of 6.
    expect(rocAuc([0.8, 0.5, 0.4, 0.3, 0.3], [true, false, true, true, false])).toBeCloseTo(3.5 / 6, 12);
  });

  it("is NaN with one class only, and refuses mismatched lengths", () => {
    expect(rocAuc([0.1, 0.2], [true, true])).toBeNaN();
    expect(() => rocAuc([0.1], [true, false])).toThrow(/1 scores for 2 labels/);
  });
});

describe("SimulatedRuleVerifier", () => {
  const problems = generateSynth({ split: "test", seed: 3, n: 600 });
  // Each gold solution (correct prefixes), and a copy broken at a step chosen by the problem's
  // index (the broken copy's prefixes from that step on: its earlier ones are the gold's).
  const requests = problems.flatMap((p, index) => {
    const steps = synthSplitSteps(p.solution);
    const at = index % steps.length;
    const broken = steps.map((step, i) => (i === at ? `${step} + 1` : step));
    return [
      { problem: p.problem, steps, from: 0 },
      { problem: p.problem, steps: broken, from: at },
    ];
  });

  async function measuredAuc(verifier: SimulatedRuleVerifier): Promise<{ auc: number; right: number; wrong: number }> {
    const answers = await verifier.scoreSteps(requests);
    const scores: number[] = [];
    const labels: boolean[] = [];
    requests.forEach((request, index) => {
      const correct = prefixCorrectness(request.problem, request.steps);
      for (let i = request.from; i < request.steps.length; i++) {
        scores.push(answers[index]?.scores[i] as number);
        labels.push(correct[i] as boolean);
      }
    });
    return { auc: rocAuc(scores, labels), right: labels.filter(Boolean).length, wrong: labels.filter((label) => !label).length };
  }

  it.each([0.6, 0.7, 0.8, 0.9, 0.95])("gives step AUC %s against the checker's labels (within 0.025)", async (target) => {
    const { auc, right, wrong } = await measuredAuc(new SimulatedRuleVerifier(target));
    // Thousands of each class: the AUC's standard error is under 0.01.
    expect(right).toBeGreaterThan(1500);
    expect(wrong).toBeGreaterThan(1000);
    expect(Math.abs(auc - target)).toBeLessThan(0.025);
  });

  it("at AUC 1 scores the checker's 0 and 1: a perfect ranking", async () => {
    const verifier = new SimulatedRuleVerifier(1);
    expect((await measuredAuc(verifier)).auc).toBe(1);
    expect(await verifier.scoreSteps(requests.slice(0, 20))).toEqual(await new SynthRuleVerifier().scoreSteps(requests.slice(0, 20)));
  });

  it("gives a step the same score in any batch and order, another with another noise seed, always inside (0, 1)", async () => {
    const verifier = new SimulatedRuleVerifier(0.8);
    const [first, second] = requests;
    if (first === undefined || second === undefined) throw new Error("no requests");
    const together = await verifier.scoreSteps([first, second]);
    const reversed = await new SimulatedRuleVerifier(0.8).scoreSteps([second, first]);
    expect(reversed).toEqual([together[1], together[0]]);
    // A prefix's score does not depend on the steps after it.
    const shorter = await verifier.scoreSteps([{ problem: first.problem, steps: first.steps.slice(0, 1) }]);
    expect(shorter[0]?.scores[0]).toBe(together[0]?.scores[0]);
    const reseeded = await new SimulatedRuleVerifier(0.8, 1).scoreSteps([first]);
    expect(reseeded[0]?.scores).not.toEqual(together[0]?.scores);
    for (const score of together.flatMap((answer) => answer.scores)) expect(score > 0 && score < 1).toBe(true);
  });

  it("refuses an AUC outside (0.5, 1]", () => {
    for (const auc of [0.5, 0.3, 1.01, Number.NaN]) expect(() => new SimulatedRuleVerifier(auc)).toThrow(/must be in \(0\.5, 1\]/);
  });
});

describe("--verifier rule@AUC", () => {
  it("names a simulated verifier, with an optional noise seed", () => {
    expect(parseSimulatedVerifier("rule@0.8")).toEqual({ auc: 0.8, noiseSeed: 0 });
    expect(parseSimulatedVerifier("rule@1:seed=7")).toEqual({ auc: 1, noiseSeed: 7 });
    expect(parseSimulatedVerifier("rule")).toBeNull();
    expect(parseSimulatedVerifier("prm")).toBeNull();
  });

  it("refuses an AUC outside (0.5, 1] or a bad seed, naming the flag and the value", () => {
    expect(() => parseSimulatedVerifier("rule@0.5")).toThrow('--verifier rule@0.5: a simulated verifier\'s AUC must be a number in (0.5, 1], got "0.5"');
    expect(() => parseSimulatedVerifier("rule@")).toThrow(/AUC must be a number in \(0\.5, 1\], got ""/);
    expect(() => parseSimulatedVerifier("rule@high")).toThrow(/got "high"/);
    expect(() => parseSimulatedVerifier("rule@0.8:seed=x")).toThrow('--verifier rule@0.8:seed=x: the noise seed must be an integer, got "x"');
  });
});

describe("scoreOutcomes", () => {
  it("gives each solution its last step's score in one call, 0 for no steps", async () => {
    const verifier = ScriptedVerifier.byStep({ good: 0.9, bad: 0.2 });
    const meter = new ComputeMeter();
    const scores = await scoreOutcomes(verifier, "P", [["x", "good"], ["bad", ""], []], meter);
    expect(scores).toEqual([0.9, 0.2, 0]);
    expect(verifier.calls).toHaveLength(1);
    expect(verifier.calls[0]?.map((request) => request.steps)).toEqual([["x", "good"], ["bad"]]);
  });
});
