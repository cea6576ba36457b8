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
import { PRM_RENDERINGS, renderStep } from "../src/runtime/prm-rendering.js";

const Mode = z.enum(PRM_RENDERINGS);
const Fixture = z.object({
  command: z.string(),
  cases: z.array(z.object({ step: z.string(), mode: Mode, text: z.string() })),
  solutions: z.array(z.object({ problem: z.string(), solution: z.string(), mode: Mode, text: z.string(), ends: z.array(z.number().int()) })),
});
const fixture = Fixture.parse(JSON.parse(readFileSync(new URL("./fixtures/prm-rendering/cases.json", import.meta.url), "utf8")));

describe("renderStep matches render.py", () => {
  it.each(PRM_RENDERINGS)("on every case in %s mode", (mode) => {
    const cases = fixture.cases.filter((c) => c.mode === mode);
    expect(cases.length).toBeGreaterThan(700);
    const mismatches = cases.filter((c) => renderStep(c.step, mode) !== c.text).map((c) => ({ step: c.step, want: c.text, got: renderStep(c.step, mode) }));
    expect(mismatches).toEqual([]);
  });

  it("covers checks of every kind, in several modes, and steps with none", () => {
    const columns = fixture.cases.filter((c) => c.mode === "columns");
    for (const header of [" | +", " | -", " | *"]) expect(columns.some((c) => c.text.includes(header))).toBe(true);
    expect(columns.some((c) => c.text.split(" | ").length > 2)).toBe(true);
    expect(columns.some((c) => c.text === c.step)).toBe(true);
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

describe("the PRM engine's input", () => {
  const prmTokenizer = new Tokenizer(JSON.parse(readFileSync(join(resolveModel("prm"), "tokenizer.json"), "utf8")) as object, {});
  const tokenize = (text: string) => prmTokenizer.encode(text, { add_special_tokens: false }).ids;

  it.each(PRM_RENDERINGS)("is <bos> problem \\n\\n rendered steps, as render.py's render_solution gives them, in %s mode", (mode) => {
    const solutions = fixture.solutions.filter((s) => s.mode === mode);
    expect(solutions.length).toBeGreaterThan(10);
    for (const { problem, solution, text, ends } of solutions) {
      const encoded = encodePrmRequest({ problem, steps: solution.split("\n\n") }, { bosTokenId: 1, stepDelimiter: "\n\n", rendering: mode }, tokenize);
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

  it("refuses an unknown rendering, naming the field", async () => {
    await expect(loadVerifier(copyWith("bogus"), { threads: 1 })).rejects.toThrow(/rendering: .*"ordinary".*"columns".*"overlap"/);
  });
});
