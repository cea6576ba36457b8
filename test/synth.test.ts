import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough, Readable } from "node:stream";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { InputError } from "../src/errors.js";
import { registerSynth } from "../src/commands/data-synth.js";
import { checkSolution, parseAnswer, splitSteps } from "../datasets/synth/check.js";
import { lastBoxed } from "../datasets/answer/extract.js";
import { generateSynth, splitOf, SUBJECTS, type Split, type SynthProblem } from "../datasets/synth/generate.js";
import { labelJsonl } from "../datasets/synth/label.js";

const mean = (values: number[]) => values.reduce((sum, value) => sum + value, 0) / values.length;

function byLevel(problems: SynthProblem[], measure: (problem: SynthProblem) => number): number[] {
  return [1, 2, 3, 4, 5].map((level) => mean(problems.filter((p) => p.level === level).map(measure)));
}

/** Adds 1 to the last integer in `text`. */
function bumpLastNumber(text: string): string {
  return text.replace(/(\d+)(?!.*\d)/s, (digits) => String(Number(digits) + 1));
}

describe("generateSynth", () => {
  it("is deterministic by seed, and a smaller n is a prefix", () => {
    const a = generateSynth({ split: "train", seed: 7, n: 100 });
    expect(generateSynth({ split: "train", seed: 7, n: 100 })).toEqual(a);
    expect(generateSynth({ split: "train", seed: 7, n: 40 })).toEqual(a.slice(0, 40));
    const other = generateSynth({ split: "train", seed: 8, n: 100 });
    expect(other.map((p) => p.problem)).not.toEqual(a.map((p) => p.problem));
    expect(a[3]?.unique_id).toBe("synth/ladder-2/train/7/3");
    expect(generateSynth({ split: "train", seed: 7, n: 4, ladder: 1 })[3]?.unique_id).toBe("synth/train/7/3");
  });

  it("keeps train, calibration and test disjoint whatever the seeds", () => {
    const problems = (split: Split) =>
      new Set([1, 2, 3, 4].flatMap((seed) => generateSynth({ split, seed, n: 500 }).map((p) => p.problem)));
    const train = problems("train");
    const test = problems("test");
    const calibration = problems("calibration");
    expect(train.size).toBeGreaterThan(1900);
    expect(test.size).toBeGreaterThan(1500);
    for (const problem of test) {
      expect(train.has(problem)).toBe(false);
      expect(calibration.has(problem)).toBe(false);
      expect(splitOf(problem)).toBe("test");
    }
    for (const problem of calibration) expect(train.has(problem)).toBe(false);
  });

  it("has no duplicates within a set", () => {
    const problems = generateSynth({ split: "test", seed: 1, n: 2000 }).map((p) => p.problem);
    expect(new Set(problems).size).toBe(problems.length);
  });

  it("spreads problems evenly over the levels with a 50/25/25 subject mix", () => {
    const problems = generateSynth({ split: "train", seed: 3, n: 200 });
    for (const level of [1, 2, 3, 4, 5]) {
      const atLevel = problems.filter((p) => p.level === level);
      expect(atLevel).toHaveLength(40);
      const count = (subject: string) => atLevel.filter((p) => p.subject === subject).length;
      expect([count("Arithmetic"), count("Fractions"), count("Linear Equations")]).toEqual([20, 10, 10]);
    }
    const chosen = generateSynth({ split: "train", seed: 3, n: 30, levels: [1, 2] });
    expect(new Set(chosen.map((p) => p.level))).toEqual(new Set([1, 2]));
  });

  it("writes plain ASCII in the MATH schema", () => {
    for (const problem of generateSynth({ split: "calibration", seed: 4, n: 100 })) {
      expect(Object.keys(problem).sort()).toEqual(["answer", "level", "problem", "solution", "subject", "unique_id"]);
      expect(SUBJECTS).toContain(problem.subject);
      expect(problem.problem + problem.solution).toMatch(/^[\x20-\x7e\n]*$/);
      expect(lastBoxed(problem.solution)).toBe(problem.answer);
    }
  });

  it("makes problems harder as the level rises (ladder 1)", () => {
    const problems = generateSynth({ split: "train", seed: 5, n: 2000, ladder: 1 });
    const steps = byLevel(problems, (p) => splitSteps(p.solution).length);
    const length = byLevel(problems, (p) => p.solution.length);
    const magnitude = byLevel(problems, (p) => Math.max(...(p.problem.match(/\d+/g) ?? []).map(Number)));
    for (let level = 1; level < 5; level++) {
      expect(steps[level]).toBeGreaterThan(steps[level - 1] as number);
      expect(length[level]).toBeGreaterThan(length[level - 1] as number);
      expect(magnitude[level]).toBeGreaterThan(magnitude[level - 1] as number);
    }
  });
});

describe("generateSynth, ladder 2", () => {
  it("names the ladder in its ids and draws other problems than ladder 1", () => {
    const two = generateSynth({ split: "test", seed: 1, n: 50, ladder: 2 });
    expect(two[3]?.unique_id).toBe("synth/ladder-2/test/1/3");
    const one = new Set(generateSynth({ split: "test", seed: 1, n: 50, ladder: 1 }).map((p) => p.problem));
    expect(two.filter((p) => one.has(p.problem)).length).toBeLessThan(5);
    expect(new Set(two.map((p) => p.problem)).size).toBe(50);
    expect(() => generateSynth({ split: "test", seed: 1, n: 5, ladder: 3 as 2 })).toThrow(/ladder must be one of 1, 2, got 3/);
  });

  it("starts where ladder 1 is at level 3 or above, and rises with the level", () => {
    const one = generateSynth({ split: "train", seed: 5, n: 1000, ladder: 1 });
    const two = generateSynth({ split: "train", seed: 5, n: 1000, ladder: 2 });
    const length = (problems: SynthProblem[]) => byLevel(problems, (p) => p.solution.length);
    expect(length(two)[0]).toBeGreaterThan(length(one)[2] as number);
    for (let level = 1; level < 5; level++) expect(length(two)[level]).toBeGreaterThan(length(two)[level - 1] as number);
  });

  it("writes gold solutions the rule checker accepts", () => {
    for (const p of generateSynth({ split: "test", seed: 11, n: 500, ladder: 2 })) {
      const check = checkSolution(p.problem, p.solution, p.answer);
      expect(check.steps.filter((step) => !step.correct), `${p.problem}\n${p.solution}`).toEqual([]);
      expect(check.answerCorrect).toBe(true);
    }
  });
});

describe("checkSolution", () => {
  it("accepts every generated gold solution", () => {
    const problems = [
      ...generateSynth({ split: "train", seed: 11, n: 1000 }),
      ...generateSynth({ split: "test", seed: 11, n: 250 }),
    ];
    for (const p of problems) {
      const check = checkSolution(p.problem, p.solution, p.answer);
      const wrong = check.steps.filter((step) => !step.correct);
      expect(wrong, `${p.problem}\n${p.solution}`).toEqual([]);
      expect(check.allStepsCorrect).toBe(true);
      expect(check.answerCorrect).toBe(true);
      expect(check.answer).toBe(p.answer);
    }
  });

  it("catches a changed number in any step and labels the prefixes from there on", () => {
    for (const p of generateSynth({ split: "train", seed: 12, n: 300 })) {
      const steps = splitSteps(p.solution);
      steps.forEach((step, index) => {
        const corrupted = steps.map((s, i) => (i === index ? bumpLastNumber(s) : s)).join("\n\n");
        const check = checkSolution(p.problem, corrupted);
        expect(check.steps[index]?.correct, `${p.problem}: ${bumpLastNumber(step)}`).toBe(false);
        expect(check.steps[index]?.reason).toBeTruthy();
        expect(check.prefixCorrect).toEqual(steps.map((_, i) => i < index));
        expect(check.allStepsCorrect).toBe(false);
        expect(check.answerCorrect).toBe(index < steps.length - 1);
      });
    }
  });

  it("checks the worked examples of the task", () => {
    const linear = checkSolution(
      "Solve for x: 5x - 3 = 2x + 12.",
      "5x - 2x = 12 + 3\n\n3x = 15\n\nx = 15 / 3 = 5\n\nThe answer is \\boxed{5}",
    );
    expect(linear.steps.map((s) => s.correct)).toEqual([true, true, true, true]);
    expect(linear.answerCorrect).toBe(true);
    const fractions = checkSolution(
      "Compute 3/4 + 5/6.",
      "3/4 + 5/6 = 9/12 + 10/12\n\n9/12 + 10/12 = 19/12\n\nThe answer is \\boxed{\\frac{19}{12}}",
    );
    expect(fractions.allStepsCorrect).toBe(true);
    expect(checkSolution("Compute (17 + 5) * 3 - 8.", "The answer is \\boxed{58}").answerCorrect).toBe(true);
    expect(checkSolution("Solve for x: 3(x - 2) = x + 4.", "3x - 6 = x + 4\n\n2x = 10\n\nThe answer is \\boxed{5}").allStepsCorrect).toBe(
      true,
    );
  });

  it("marks a true step of a `Compute` problem wrong when it copies a number from nowhere", () => {
    const problem = "Compute 861 * 8 - 681 + 406 + 401.";
    const copiedWrong = "861 * 8 = 6888\n\n6888 - 681 = 6207\n\n6207 + 406 = 6613\n\n6613 + 410 = 7023\n\nThe answer is \\boxed{7023}";
    const check = checkSolution(problem, copiedWrong);
    expect(check.steps.map((s) => s.correct)).toEqual([true, true, true, false, false]);
    expect(check.steps[3]?.reason).toBe("410 is in neither the problem nor an earlier step");
    expect(check.prefixCorrect).toEqual([true, true, true, false, false]);
    expect(checkSolution(problem, copiedWrong.replace("410", "401").replace(/7023/g, "7014")).allStepsCorrect).toBe(true);
    // Numbers are matched by value, with their sign: an earlier result, a fraction rewritten in another
    // form, a number of the problem at the end of its sentence.
    expect(checkSolution("Compute 293 - 50 - 347 + 101.", "293 - 50 = 243\n\n243 - 347 = -104\n\n-104 + 101 = -3").allStepsCorrect).toBe(true);
    expect(checkSolution("Compute 293 - 50 - 347 + 101.", "293 - 50 = 243\n\n243 - 347 = -104\n\n104 + 101 = 205").steps[2]?.reason).toBe(
      "104 is in neither the problem nor an earlier step",
    );
    expect(checkSolution("Compute 1/2 + 1/4.", "2/4 + 1/4 = 3/4\n\nThe answer is \\boxed{\\frac{3}{4}}").allStepsCorrect).toBe(true);
    expect(checkSolution("Compute 1/2 + 1/4.", "1/2 + 1/8 = 4/8 + 1/8").steps[0]?.reason).toBe("1/8 is in neither the problem nor an earlier step");
    // Only the first side copies: later sides are checked by value. A false step keeps its own reason.
    expect(checkSolution("Compute 2 + 3.", "2 + 3 = 5 = 1 + 4").allStepsCorrect).toBe(true);
    expect(checkSolution("Compute 2 + 3.", "2 + 7 = 8").steps[0]?.reason).toMatch(/side 2 is 8 but side 1 is 9/);
    // `Solve for x` lines are checked at the problem's own x instead.
    expect(checkSolution("Solve for x: 3x - 37 = 17.", "3x = 17 + 37 = 54\n\nx = 54 / 3 = 18").allStepsCorrect).toBe(true);
  });

  it("ignores a trailing delimiter and blank steps", () => {
    const solution = "17 + 5 = 22\n\n22 * 3 = 66\n\nThe answer is \\boxed{66}";
    const plain = checkSolution("Compute (17 + 5) * 3.", solution);
    for (const variant of [solution + "\n\n", solution + "\n\n  \n\n", "\n\n" + solution]) {
      expect(checkSolution("Compute (17 + 5) * 3.", variant)).toEqual(plain);
    }
    expect(plain.steps).toHaveLength(3);
  });

  it("marks unparseable steps incorrect with a reason", () => {
    const check = checkSolution(
      "Compute 2 + 3.",
      "2 + = 5\n\nwe add the numbers\n\n2 + 3 = 5 = 10 / 0\n\n2 + 3 = y\n\nThe answer is \\boxed{five}",
    );
    expect(check.steps.map((s) => s.correct)).toEqual([false, false, false, false, false]);
    expect(check.steps.map((s) => s.reason)).toEqual([
      expect.stringMatching(/side 1 does not parse/),
      "not an equation (no '=')",
      expect.stringMatching(/division by zero/),
      expect.stringMatching(/side 2 does not parse/),
      "answer five is not a number",
    ]);
    expect(check.answer).toBe("five");
    expect(check.answerCorrect).toBe(false);
  });

  it("evaluates with precedence, unary minus and implicit multiplication", () => {
    // Not a `Compute` problem, so that no step needs its numbers from the problem.
    const steps = ["-2 * -3 = 6", "2(3 + 4) - 1 = 13", "-7/12 + 4/12 = -1/4", "1.5 * 4 = 6", "(1 + 2)(3 + 4) = 21"];
    expect(checkSolution("Check these steps.", steps.join("\n\n")).steps.every((s) => s.correct)).toBe(true);
    const x = checkSolution("Solve for x: 4x + 2 = 2x - 6.", "2x = -8\n\nx = -8 / 2 = -4\n\n-x = 4\n\n2(x + 1) = -6");
    expect(x.allStepsCorrect).toBe(true);
    expect(checkSolution("Compute 1 + 1.", "x = 2").steps[0]?.reason).toMatch(/x has no value/);
  });

  it("compares the answer with the truth and with a gold answer", () => {
    expect(checkSolution("Compute 1/2 + 1/4.", "The answer is \\boxed{3/4}").answerCorrect).toBe(true);
    expect(checkSolution("Compute 1/2 + 1/4.", "The answer is \\boxed{\\dfrac{3}{4}}").answerCorrect).toBe(true);
    expect(checkSolution("Compute 1/2 - 1.", "The answer is \\boxed{-\\frac{1}{2}}").answerCorrect).toBe(true);
    expect(checkSolution("Compute 1/2 - 1.", "The answer is \\boxed{-\\frac{1}{2}}", "\\frac{1}{2}").answerCorrect).toBe(false);
    expect(checkSolution("Compute 1/2 - 1.", "no answer here").answerCorrect).toBe(false);
    // Not a synthetic problem: only a gold answer can judge it.
    expect(checkSolution("What is the area of a unit circle?", "The answer is \\boxed{\\pi}", "\\pi").answerCorrect).toBe(true);
    expect(checkSolution("What is the area of a unit circle?", "The answer is \\boxed{\\pi}").answerCorrect).toBe(null);
  });

  it("parses answers", () => {
    expect(parseAnswer("\\frac{19}{12}")?.toString()).toBe("19/12");
    expect(parseAnswer("-\\frac{38}{12}")?.toString()).toBe("-19/6");
    expect(parseAnswer(" -5 ")?.toString()).toBe("-5");
    expect(parseAnswer("4/2")?.toString()).toBe("2");
    expect(parseAnswer("1/0")).toBe(null);
    expect(parseAnswer("x = 5")).toBe(null);
  });
});

describe("labelJsonl", () => {
  async function label(lines: string[]): Promise<Record<string, unknown>[]> {
    const output = new PassThrough();
    const chunks: string[] = [];
    output.on("data", (chunk: Buffer) => chunks.push(chunk.toString()));
    await labelJsonl(Readable.from(lines.map((line) => line + "\n")), output, "samples.jsonl");
    return chunks
      .join("")
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  }

  it("adds step and prefix labels, keeping every field", async () => {
    const rows = await label([
      JSON.stringify({ problem: "Compute 2 + 3 * 4.", solution: "3 * 4 = 12\n\n2 + 12 = 15\n\nThe answer is \\boxed{15}", id: 1 }),
      "",
      JSON.stringify({ problem: "Compute 2 + 3 * 4.", solution: "3 * 4 = 12\n\n2 + 12 = 14\n\nThe answer is \\boxed{14}\n\n", answer: "14" }),
    ]);
    expect(rows).toEqual([
      {
        problem: "Compute 2 + 3 * 4.",
        solution: "3 * 4 = 12\n\n2 + 12 = 15\n\nThe answer is \\boxed{15}",
        id: 1,
        stepCorrect: [true, false, false],
        prefixCorrect: [true, false, false],
        predicted: "15",
        correct: false,
      },
      expect.objectContaining({ answer: "14", stepCorrect: [true, true, true], prefixCorrect: [true, true, true], predicted: "14", correct: true }),
    ]);
  });

  it("names the line of a bad input", async () => {
    await expect(label(['{"problem": "Compute 1 + 1."}'])).rejects.toThrow(/samples\.jsonl:1: solution/);
    await expect(label(["", "not json"])).rejects.toThrow("samples.jsonl:2: not valid JSON");
  });
});

describe("data synth and data label commands", () => {
  function program(): Command {
    const root = new Command("deliberate").exitOverride();
    registerSynth(root.command("data").exitOverride());
    return root;
  }

  it("writes a split to --out and labels it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "synth-"));
    const out = join(dir, "test.jsonl");
    await program().parseAsync(["data", "synth", "--split", "test", "--per-level", "4", "--levels", "2,1", "--seed", "9", "--out", out], {
      from: "user",
    });
    const lines = (await readFile(out, "utf8")).trim().split("\n");
    const problems = lines.map((line) => JSON.parse(line) as SynthProblem);
    expect(problems).toEqual(generateSynth({ split: "test", seed: 9, n: 8, levels: [1, 2] }));

    const samples = join(dir, "samples.jsonl");
    await writeFile(samples, lines.join("\n") + "\n");
    const labelled = join(dir, "labelled.jsonl");
    await program().parseAsync(["data", "label", "--in", samples, "--out", labelled], { from: "user" });
    const rows = (await readFile(labelled, "utf8")).trim().split("\n").map((line) => JSON.parse(line) as { correct: boolean });
    expect(rows).toHaveLength(8);
    expect(rows.every((row) => row.correct)).toBe(true);
  });

  it("leaves out the problems of an --exclude file: the larger set less the smaller one", async () => {
    const dir = await mkdtemp(join(tmpdir(), "synth-"));
    const [small, rest] = [join(dir, "small.jsonl"), join(dir, "rest.jsonl")];
    const synth = (args: string[]) => program().parseAsync(["data", "synth", "--split", "test", "--seed", "3", ...args], { from: "user" });
    await synth(["--n", "10", "--out", small]);
    await synth(["--n", "20", "--exclude", small, "--out", rest]);
    const ids = async (file: string) => (await readFile(file, "utf8")).trim().split("\n").map((line) => (JSON.parse(line) as SynthProblem).unique_id);
    const [smallIds, restIds] = [await ids(small), await ids(rest)];
    expect(restIds).toHaveLength(10);
    expect(restIds.filter((id) => smallIds.includes(id))).toEqual([]);
    expect(new Set([...smallIds, ...restIds])).toEqual(new Set(generateSynth({ split: "test", seed: 3, n: 20 }).map((problem) => problem.unique_id)));
    await expect(synth(["--n", "5", "--exclude", join(dir, "missing.jsonl")])).rejects.toThrow("--exclude: cannot read");
    await expect(synth(["--n", "5", "--exclude", small, "--out", small])).rejects.toThrow("is the same file as --exclude");
  });

  it("rejects bad flags with messages naming them", async () => {
    const run = (args: string[]) => program().parseAsync(["data", "synth", ...args], { from: "user" });
    await expect(run(["--split", "dev"])).rejects.toThrow(new InputError("--split must be one of train, calibration, test"));
    await expect(run(["--split", "test", "--n", "0"])).rejects.toThrow("--n must be a positive integer");
    await expect(run(["--split", "test", "--levels", "1,6"])).rejects.toThrow("--levels must be");
    await expect(run(["--split", "test", "--seed", "1.5"])).rejects.toThrow("--seed must be an integer");
    await expect(run(["--split", "test", "--n", "5", "--per-level", "2"])).rejects.toThrow("give --n or --per-level, not both");
    await expect(
      program().parseAsync(["data", "label", "--in", "/nonexistent/samples.jsonl"], { from: "user" }),
    ).rejects.toThrow("cannot read /nonexistent/samples.jsonl: no such file");
    await expect(run(["--split", "test", "--n", "5", "--out", "/nonexistent/test.jsonl"])).rejects.toThrow(
      "cannot write /nonexistent/test.jsonl: no such directory",
    );
  });
});
