// The PRM's own step rendering (src/runtime/prm-rendering.ts) against models/train/render.py: every
// case of test/fixtures/prm-rendering/cases.json (written by models/train/render_cases.py), the
// engine's input in each rendering, and a copy of the embedded PRM loaded with `rendering` set.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { loadVerifier, resolveModel } from "../src/runtime/load.js";
import { encodePrmRequest } from "../src/runtime/prm-engine.js";
import { PRM_RENDERINGS, renderStep, renderSteps } from "../src/runtime/prm-rendering.js";

const Mode = z.enum(PRM_RENDERINGS);
const Fixture = z.object({
  command: z.string(),
  // `previous`: the line before the step (modes `equations`, `grounded`, `fractions`; null: none);
  // `sources`: the numbers the step copies from (modes `grounded`, `fractions`)
  cases: z.array(
    z.object({ previous: z.string().nullable().optional(), sources: z.array(z.string()).nullable().optional(), step: z.string(), mode: Mode, text: z.string() }),
  ),
  solutions: z.array(z.object({ problem: z.string(), solution: z.string(), mode: Mode, text: z.string(), ends: z.array(z.number().int()) })),
});
const fixture = Fixture.parse(JSON.parse(readFileSync(new URL("./fixtures/prm-rendering/cases.json", import.meta.url), "utf8")));

describe("renderStep matches render.py", () => {
  it.each(PRM_RENDERINGS)("on every case in %s mode", (mode) => {
    const cases = fixture.cases.filter((c) => c.mode === mode);
    expect(cases.length).toBeGreaterThan(700);
    const render = (c: (typeof cases)[number]) => renderStep(c.step, mode, c.previous ?? undefined, c.sources ?? undefined);
    const mismatches = cases.filter((c) => render(c) !== c.text).map((c) => ({ previous: c.previous, step: c.step, want: c.text, got: render(c) }));
    expect(mismatches).toEqual([]);
  });

  it("renders whole solutions as render_solution does (blank steps dropped), in every mode", () => {
    for (const { problem, solution, mode, text } of fixture.solutions) {
      const steps = solution.split("\n\n");
      expect(renderSteps(problem, steps, mode).filter((_, k) => steps[k]?.trim() !== "").join("\n\n")).toBe(text);
    }
    expect(fixture.solutions.some(({ solution }) => solution.split("\n\n").some((step) => step.trim() === ""))).toBe(true);
  });

  it("covers checks of every kind, in several modes, and steps with none", () => {
    const columns = fixture.cases.filter((c) => c.mode === "columns");
    for (const header of [" | +", " | -", " | *"]) expect(columns.some((c) => c.text.includes(header))).toBe(true);
    expect(columns.some((c) => c.text.split(" | ").length > 2)).toBe(true);
    expect(columns.some((c) => c.text === c.step)).toBe(true);
    const paired = fixture.cases.filter((c) => c.mode === "equations" && c.previous != null);
    expect(paired.filter((c) => c.text !== renderStep(c.step, "columns")).length).toBeGreaterThan(500);
    expect(paired.filter((c) => c.text === renderStep(c.step, "columns") && /\d = /.test(c.step)).length).toBeGreaterThan(500);
    // `fractions`: ratio checks (`11/14 = 66/84`: 11 * 84 and 66 * 14 in shared columns), but none
    // for a same-denominator sum `a/m op b/m = c/m`, which keeps its numerators' check only
    const fractions = fixture.cases.filter((c) => c.mode === "fractions");
    expect(fractions.filter((c) => c.text.includes(" | /")).length).toBeGreaterThan(200);
    expect(renderStep("11/14 = 66/84", "fractions")).toBe("11/14 = 66/84 | /++ 1408=6401 1418=6461 0418=0461 0408=0401;");
    const sameDenominator = fractions.filter((c) => /^-?\d+\/(\d+) [-+] \d+\/\1 = -?\d+\/\1$/.test(c.step));
    expect(sameDenominator.length).toBeGreaterThan(100);
    expect(sameDenominator.filter((c) => c.text.includes(" | /"))).toEqual([]);
    expect(fractions.find((c) => c.step === "66/84 - 35/84 = 31/84")?.text).toBe("66/84 - 35/84 = 31/84 | -+++n 651 633;");
  });

  it("`equations` without a previous line is `columns`", () => {
    for (const { step, text } of fixture.cases.filter((c) => c.mode === "columns")) expect(renderStep(step, "equations")).toBe(text);
  });

  it("`ordinary` returns the step unchanged but for trailing whitespace", () => {
    // Python's whitespace: JavaScript's \s but \ufeff, with \x1c-\x1f and \x85.
    const pythonSpace = (ch: string) => ch !== "\ufeff" && (/\s/u.test(ch) || "\x1c\x1d\x1e\x1f\x85".includes(ch));
    for (const { step } of fixture.cases) {
      const text = renderStep(step, "ordinary");
      expect(step.startsWith(text)).toBe(true);
      expect([...step.slice(text.length)].every(pythonSpace)).toBe(true);
    }
    fc.assert(
      fc.property(fc.string(), fc.constantFrom("", " ", "\n", "\t \n\n", "\u3000"), (step, space) => {
        const text = renderStep(step + space, "ordinary");
        expect(text).toBe(renderStep(step, "ordinary"));
        expect(step.startsWith(text)).toBe(true);
      }),
    );
  });
});

describe("`equations` pairs a step of a linear equation with the line before it", () => {
  const withChecks = (step: string, ...checks: string[]) => [step, ...checks].join(" | ");

  it.each([
    // moving a term: `b + b' = 0` for the term as written before and after
    ["Solve for x: 3x - 37 = 17.", "3x = 17 + 37 = 54", withChecks("3x = 17 + 37 = 54", "++++s 774 315;", "+-++n 770 330;")],
    // moving an x term and a constant; then combining like terms: `4 - 2 = 2`, `-5 + 3 = -2`
    ["Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = -5 + 3", withChecks("4x - 2x = -5 + 3", "++-+n 220;", "+-++n 330;")],
    ["4x - 2x = -5 + 3", "2x = -2", withChecks("2x = -2", "-+++n 422;", "+-+-n 532;")],
    ["Solve for x: 15x - 37 = 13x - 11.", "15x - 13x = -11 + 37", withChecks("15x - 13x = -11 + 37", "++-+n 330 110;", "+-++n 770 330;")],
    ["15x - 13x = -11 + 37", "2x = 26", withChecks("2x = 26", "-+++n 532 110;", "+-++s 716 312;")],
    // distributing: `7 * -15 = -105`, the right side copied
    ["Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 = 15x - 185", withChecks("7x - 105 = 15x - 185", "*+--s 575 170 071;")],
    ["7x - 105 = 15x - 185", "7x - 15x = -185 + 105", withChecks("7x - 15x = -185 + 105", "++-+n 550 110;", "+-++n 550 000 110;")],
    ["7x - 15x = -185 + 105", "-8x = -80", withChecks("-8x = -80", "-++-s 578 100;", "+-+-n 550 808 110;")],
    // the quotient and the answer keep their own checks only
    ["-8x = -80", "x = -80 / (-8) = 10", withChecks("x = -80 / (-8) = 10", "*+--n 080 188 080;")],
    ["x = -80 / (-8) = 10", "The answer is \\boxed{10}", "The answer is \\boxed{10}"],
    // a wrong move shows in its check; a step of another form gets none
    ["Solve for x: 3x - 37 = 17.", "3x = 17 - 37 = -20", withChecks("3x = 17 - 37 = -20", "-++-s 770 312;", "+--+n 770 330;")],
    ["Solve for x: 4x - 3 = 2x - 5.", "2x = -2", "2x = -2"],
    ["Solve for x: 4x - 3 = 2x - 5.", "4x - 2x = 3 - 5", "4x - 2x = 3 - 5"],
    ["Solve for x: 7(x - 15) = 15x - 185.", "7x - 105 = 15x + 185", "7x - 105 = 15x + 185"],
    ["Compute 62 + 30.", "62 + 30 = 92", "62 + 30 = 92 | ++++n 202 639;"],
  ])("%s then %s", (previous, step, text) => {
    expect(renderStep(step, "equations", previous)).toBe(text);
  });

  it("renders a whole solution with its first step paired with the problem", () => {
    const steps = ["15x - 13x = -11 + 37", "2x = 26", "x = 26 / 2 = 13", "The answer is \\boxed{13}"];
    expect(renderSteps("Solve for x: 15x - 37 = 13x - 11.", steps, "equations")).toEqual([
      withChecks(steps[0] as string, "++-+n 330 110;", "+-++n 770 330;"),
      withChecks(steps[1] as string, "-+++n 532 110;", "+-++s 716 312;"),
      withChecks(steps[2] as string, "*+++n 326 122 020;"),
      steps[3],
    ]);
  });
});

describe("`grounded` lays each number a Compute step copies beside the number it should copy", () => {
  const withChecks = (step: string, ...checks: string[]) => [step, ...checks].join(" | ");

  it("from the problem in order, then from the previous step's result, and the answer from the last result", () => {
    // 401 copied as 410: every step true, the answer wrong; the copy check `410 + -401 = 0` is the
    // one whose columns do not add up (units 0 + 1 gives 0).
    const steps = ["861 * 8 = 6888", "6888 - 681 = 6207", "6207 + 406 = 6613", "6613 + 410 = 7023", "The answer is \\boxed{7023}"];
    const rendered = renderSteps("Compute 861 * 8 - 681 + 406 + 401.", steps, "grounded");
    expect(rendered[0]).toBe(withChecks(steps[0] as string, "*+++n 188 688 888 086;", "++-+n 110 660 880;", "++-+n 880;"));
    expect(rendered[3]).toBe(withChecks(steps[3] as string, "++++n 303 112 640 607;", "++-+n 330 110 660 660;", "++-+n 010 100 440;"));
    expect(rendered[4]).toBe(withChecks(steps[4] as string, "++-+n 330 220 000 770;"));
    // Without the problem (or for another kind of problem) there is nothing to copy from.
    expect(renderSteps("Solve for x: 3x - 37 = 17.", ["3x = 17 + 37 = 54"], "grounded")).toEqual(
      renderSteps("Solve for x: 3x - 37 = 17.", ["3x = 17 + 37 = 54"], "equations"),
    );
    expect(renderStep(steps[3] as string, "grounded")).toBe(renderStep(steps[3] as string, "columns"));
  });

  it("checks a fraction's numerator and denominator, and a sign carried from the previous step", () => {
    const [fraction] = renderSteps("Compute 14/3 + 1/5.", ["14/3 + 1/6 = 70/30 + 5/30"], "grounded");
    expect(fraction).toBe(withChecks("14/3 + 1/6 = 70/30 + 5/30", "++-+n 440 110;", "++-+n 330;", "++-+n 110;", "++-+n 650;"));
    const signed = renderSteps("Compute 293 - 50 - 347 + 101.", ["293 - 50 = 243", "243 - 347 = -104", "104 + 101 = 205"], "grounded");
    // -104 copied as 104: the check reads `104 + 104 = 0`, false
    expect(signed[2]).toContain(" | ++++n 440 000 110;");
  });
});

describe("the PRM engine's input", () => {
  const prmTokenizer = new Tokenizer(JSON.parse(readFileSync(join(resolveModel("prm"), "tokenizer.json"), "utf8")) as object, {});
  const tokenize = (text: string) => prmTokenizer.encode(text, { add_special_tokens: false }).ids;

  it.each(PRM_RENDERINGS)("is <bos> problem \\n\\n rendered steps, as render.py's render_solution gives them, in %s mode", (mode) => {
    const solutions = fixture.solutions.filter((s) => s.mode === mode);
    expect(solutions.length).toBeGreaterThan(10);
    for (const { problem, solution, text, ends } of solutions) {
      // render.py drops blank steps; the engine reads the steps it is given
      const steps = solution.split("\n\n").filter((step) => step.trim() !== "");
      const encoded = encodePrmRequest({ problem, steps }, { bosTokenId: 1, stepDelimiter: "\n\n", rendering: mode }, tokenize);
      const prefix = [1, ...tokenize(`${problem}\n\n`)];
      expect(encoded.ids).toEqual([...prefix, ...tokenize(text)]);
      // One token per character, so render.py's character offsets are token positions.
      expect(encoded.stepEnds).toEqual(ends.map((end) => prefix.length + end));
    }
  });

  it("in the ordinary rendering reads the steps exactly as written, trailing whitespace included", () => {
    const steps = ["62 + 30 = 92  ", "The answer is \\boxed{92}"];
    const encoded = encodePrmRequest({ problem: "Compute 62 + 30.", steps }, { bosTokenId: 1, stepDelimiter: "\n\n", rendering: "ordinary" }, tokenize);
    expect(encoded.ids).toEqual([1, ...tokenize(`Compute 62 + 30.\n\n${steps.join("\n\n")}`)]);
  });
});

describe("a PRM with `rendering` in config.json", () => {
  const copyWith = (rendering: unknown) => {
    const dir = mkdtempSync(join(tmpdir(), "deliberate-prm-rendering-"));
    cpSync(resolveModel("prm"), dir, { recursive: true });
    const config = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    writeFileSync(join(dir, "config.json"), JSON.stringify({ ...config, rendering }));
    return dir;
  };
  const problem = "Compute 62 + 30 - 7.";

  it("scores the rendered steps: other scores than the ordinary rendering, the same as the ordinary one given the rendered text", async () => {
    const steps = ["62 + 30 = 92", "92 - 7 = 85", "The answer is \\boxed{85}"];
    const ordinary = await loadVerifier("prm", { threads: 1 });
    const columns = await loadVerifier(copyWith("columns"), { threads: 1 });
    try {
      const [plain] = await ordinary.scoreSteps([{ problem, steps }]);
      const [prerendered] = await ordinary.scoreSteps([{ problem, steps: steps.map((step) => renderStep(step, "columns")) }]);
      const [rendered] = await columns.scoreSteps([{ problem, steps }]);
      expect(rendered?.scores).toHaveLength(3);
      expect(rendered?.scores[0]).not.toBeCloseTo(plain?.scores[0] ?? NaN, 6);
      expect(rendered?.tokens).toBeGreaterThan(plain?.tokens ?? Infinity);
      rendered?.scores.forEach((score, k) => expect(score).toBeCloseTo(prerendered?.scores[k] ?? NaN, 6));
      expect(rendered?.tokens).toBe(prerendered?.tokens);
    } finally {
      await ordinary.close();
      await columns.close();
    }
  });

  it("with `equations`, pairs the first step with the problem's equation and each later one with the step before it", async () => {
    const equation = "Solve for x: 7(x - 15) = 15x - 185.";
    const steps = ["7x - 105 = 15x - 185", "7x - 15x = -185 + 105", "-8x = -80", "x = -80 / (-8) = 10", "The answer is \\boxed{10}"];
    const ordinary = await loadVerifier("prm", { threads: 1 });
    const equations = await loadVerifier(copyWith("equations"), { threads: 1 });
    try {
      const [prerendered] = await ordinary.scoreSteps([{ problem: equation, steps: renderSteps(equation, steps, "equations") }]);
      const [rendered] = await equations.scoreSteps([{ problem: equation, steps }]);
      expect(renderSteps(equation, steps, "equations")[0]).toBe("7x - 105 = 15x - 185 | *+--s 575 170 071;");
      rendered?.scores.forEach((score, k) => expect(score).toBeCloseTo(prerendered?.scores[k] ?? NaN, 6));
      expect(rendered?.tokens).toBe(prerendered?.tokens);
    } finally {
      await ordinary.close();
      await equations.close();
    }
  });

  it("refuses an unknown rendering, naming the field", async () => {
    await expect(loadVerifier(copyWith("bogus"), { threads: 1 })).rejects.toThrow(/rendering: .*"ordinary".*"columns".*"overlap".*"equations".*"grounded".*"fractions"/);
  });
});
