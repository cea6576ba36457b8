import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import { afterEach, describe, expect, it, vi } from "vitest";
import { applyFilter, collectProblems } from "../datasets/filter.js";
import { loadMathFile, MathJsonlDataset } from "../datasets/math.js";
import type { Problem } from "../datasets/problem.js";
import { registerData } from "../src/commands/data.js";
import { InputError } from "../src/errors.js";

const shared = (name: string) => fileURLToPath(new URL(`../../shared/datasets/${name}`, import.meta.url));
const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const MATH500 = shared("math500.jsonl");
const MATH_TEST = shared("math_test.jsonl");

function countBy(problems: readonly Problem[], key: (problem: Problem) => string | number | null) {
  const counts: Record<string, number> = {};
  for (const problem of problems) {
    const value = String(key(problem));
    counts[value] = (counts[value] ?? 0) + 1;
  }
  return counts;
}

describe("MATH-style JSONL loader", () => {
  it("loads MATH-500 with the documented levels and subjects", async () => {
    const { problems, badLines } = await loadMathFile(MATH500);
    expect(problems).toHaveLength(500);
    expect(badLines).toEqual([]);
    expect(countBy(problems, (p) => p.level)).toEqual({ 1: 43, 2: 90, 3: 105, 4: 128, 5: 134 });
    expect(countBy(problems, (p) => p.subject)).toEqual({
      Algebra: 124,
      "Intermediate Algebra": 97,
      Prealgebra: 82,
      "Number Theory": 62,
      Precalculus: 56,
      Geometry: 41,
      "Counting & Probability": 38,
    });
    expect(problems[0]).toMatchObject({
      id: "test/precalculus/807.json",
      answer: "\\left( 3, \\frac{\\pi}{2} \\right)",
      level: 2,
      subject: "Precalculus",
    });
    expect(problems[0]?.solution).toContain("\\boxed{");
    expect(new Set(problems.map((p) => p.id)).size).toBe(500);
  });

  it("loads the 5,000-problem MATH test split, ids falling back to file:line", async () => {
    const { problems } = await loadMathFile(MATH_TEST);
    expect(problems).toHaveLength(5000);
    expect(countBy(problems, (p) => p.level)).toEqual({ 1: 437, 2: 894, 3: 1131, 4: 1214, 5: 1324 });
    expect(problems[0]?.id).toBe("math_test.jsonl:1");
    expect(problems.filter((p) => p.id.startsWith("test/"))).toHaveLength(500);
    expect(new Set(problems.map((p) => p.id)).size).toBe(5000);
  });

  it('reads "Level N" strings, maps type to subject and takes a missing answer from the solution', async () => {
    const { problems } = await loadMathFile(fixture("data-mixed.jsonl"));
    expect(problems.map((p) => [p.id, p.level, p.subject, p.answer])).toEqual([
      ["test/prealgebra/1.json", 1, "Prealgebra", "2"],
      ["data-mixed.jsonl:2", 2, "Geometry", "\\frac{1}{2}"], // the last \boxed{}, not the first
      ["data-mixed.jsonl:4", null, "Algebra", "\\{1,2\\}"], // "Level ?"; line 3 is blank
      ["42", 5, "Number Theory", "7"],
    ]);
    expect(problems[3]).not.toHaveProperty("solution");
  });

  it("stops at a bad line with an error naming the file, line and field", async () => {
    const load = loadMathFile(fixture("data-bad-level.jsonl"));
    await expect(load).rejects.toThrow(InputError);
    await expect(load).rejects.toThrow(/data-bad-level\.jsonl, line 3: level: expected .*"Level N"/);
    await expect(loadMathFile(fixture("data-bad.jsonl"))).rejects.toThrow(/data-bad\.jsonl, line 2: invalid JSON/);
  });

  it("skips and reports bad lines in skip mode", async () => {
    const { problems, badLines } = await loadMathFile(fixture("data-bad.jsonl"), { onBadLine: "skip" });
    expect(problems.map((p) => p.id)).toEqual(["data-bad.jsonl:1", "data-bad.jsonl:6"]);
    expect(badLines.map((bad) => bad.line)).toEqual([2, 3, 4, 5]);
    expect(badLines[0]?.reason).toMatch(/^invalid JSON/);
    expect(badLines[1]?.reason).toMatch(/^level: expected/);
    expect(badLines[2]?.reason).toMatch(/^problem: .*expected string/);
    expect(badLines[3]?.reason).toMatch(/^answer: expected a string, or a solution with a final \\boxed\{\}/);
  });

  it("names a missing file", async () => {
    await expect(loadMathFile(fixture("data-none.jsonl"))).rejects.toThrow(/cannot read .*data-none\.jsonl: no such file/);
  });

  it("is a re-iterable Dataset named after its file", async () => {
    const dataset = new MathJsonlDataset(fixture("data-mixed.jsonl"));
    expect(dataset.name).toBe("data-mixed.jsonl");
    const first: string[] = [];
    for await (const problem of dataset) first.push(problem.id);
    const second: string[] = [];
    for await (const problem of dataset) second.push(problem.id);
    expect(second).toEqual(first);
    expect(first).toHaveLength(4);
  });
});

describe("filters", () => {
  it("filters by level and case-insensitive subject", async () => {
    const { problems } = await loadMathFile(MATH500, { levels: [4, 5] });
    expect(problems).toHaveLength(128 + 134);
    const algebra = await loadMathFile(MATH500, { subjects: ["algebra", "GEOMETRY"] });
    expect(algebra.problems).toHaveLength(124 + 41);
    const both = await loadMathFile(MATH500, { levels: [1], subjects: [" counting & probability "] });
    expect(both.problems.length).toBeGreaterThan(0);
    expect(both.problems.every((p) => p.level === 1 && p.subject === "Counting & Probability")).toBe(true);
  });

  it("drops problems without a level when levels are asked for", () => {
    const problem: Problem = { id: "x", problem: "p", answer: "1", level: null, subject: null };
    expect(applyFilter([problem], { levels: [1] })).toEqual([]);
    expect(applyFilter([problem], { subjects: ["algebra"] })).toEqual([]);
    expect(applyFilter([problem], {})).toEqual([problem]);
  });

  it("limits in file order without a seed", async () => {
    const all = (await loadMathFile(MATH_TEST)).problems;
    const { problems } = await loadMathFile(MATH_TEST, { limit: 7 });
    expect(problems).toEqual(all.slice(0, 7));
  });

  it("shuffles with a seed: same seed, same order; another seed, another order", async () => {
    const ids = async (shuffleSeed: number, limit?: number) =>
      (await loadMathFile(MATH500, { levels: [5], shuffleSeed, limit })).problems.map((p) => p.id);
    const unshuffled = (await loadMathFile(MATH500, { levels: [5] })).problems.map((p) => p.id);
    const a = await ids(1);
    expect(a).toHaveLength(134);
    expect(await ids(1)).toEqual(a);
    expect(a).not.toEqual(unshuffled);
    expect([...a].sort()).toEqual([...unshuffled].sort());
    expect(await ids(2)).not.toEqual(a);
    // filter, then shuffle, then limit: the limited list is a prefix of the full shuffled one
    expect(await ids(1, 10)).toEqual(a.slice(0, 10));
  });

  it("collectProblems stops reading at the limit when there is no shuffle", async () => {
    let read = 0;
    async function* source(): AsyncGenerator<Problem> {
      for (let i = 0; i < 100; i++) {
        read++;
        yield { id: String(i), problem: "p", answer: "1", level: (i % 5) + 1, subject: "Algebra" };
      }
    }
    const kept = await collectProblems(source(), { levels: [2], limit: 3 });
    expect(kept.map((p) => p.id)).toEqual(["1", "6", "11"]);
    expect(read).toBe(12);
  });
});

describe("deliberate data show", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  async function run(...args: string[]): Promise<string> {
    const program = new Command("deliberate").exitOverride().configureOutput({ writeErr: () => {} });
    registerData(program);
    let out = "";
    vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
      out += String(chunk);
      return true;
    });
    await program.parseAsync(["node", "deliberate", ...args]);
    return out;
  }

  it("prints the filtered problems of a data file as JSONL", async () => {
    const out = await run("data", "show", "--data-file", MATH500, "--level", "4,5", "--subject", "Geometry", "--limit", "3");
    const lines = out.trimEnd().split("\n").map((line) => JSON.parse(line) as Problem);
    expect(lines).toHaveLength(3);
    expect(lines.every((p) => p.subject === "Geometry" && (p.level === 4 || p.level === 5))).toBe(true);
  });

  it("orders by --shuffle-seed", async () => {
    const first = await run("data", "show", "--data-file", MATH500, "--shuffle-seed", "7", "--limit", "5");
    const again = await run("data", "show", "--data-file", MATH500, "--shuffle-seed", "7", "--limit", "5");
    const plain = await run("data", "show", "--data-file", MATH500, "--limit", "5");
    expect(again).toBe(first);
    expect(first).not.toBe(plain);
  });

  it("rejects bad flag values with an error naming the flag", async () => {
    await expect(run("data", "show", "--data-file", MATH500, "--level", "4x")).rejects.toThrow(/--level.*expected an integer/);
    await expect(run("data", "show", "--data-file", MATH500, "--limit", "0")).rejects.toThrow(/--limit.*positive integer/);
    await expect(run("data", "show", "--data-file", MATH500, "--shuffle-seed", "1.5")).rejects.toThrow(/--shuffle-seed/);
    await expect(run("data", "show", "math5000")).rejects.toThrow(CommanderError);
    await expect(run("data", "show")).rejects.toThrow(/a dataset name .* or --data-file PATH/);
  });
});
