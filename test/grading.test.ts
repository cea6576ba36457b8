import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { extractAnswer, lastBoxed, answerFromText } from "../datasets/answer/extract.js";
import { Worker } from "node:worker_threads";
import { Grader, gradingFailureMessage } from "../datasets/answer/grader.js";
import { isInternalError } from "./support/math-verify.js";
import { restrictedMath } from "../datasets/mathjs.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const shared = join(repo, "..", "shared", "datasets");
const readJsonl = (path: string) =>
  readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line));

const grader = new Grader({ workers: 2 });
afterAll(() => grader.close());

describe("extractAnswer", () => {
  it("takes the last boxed answer with nested braces", () => {
    expect(extractAnswer("First \\boxed{1}, then \\boxed{\\frac{1}{2}}.")).toBe("\\frac{1}{2}");
    expect(extractAnswer("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}")).toBe("\\left( 3, \\frac{\\pi}{2} \\right)");
    expect(extractAnswer("so \\fbox{7}")).toBe("7");
    expect(extractAnswer("so \\boxed 5.")).toBe("5");
  });
  it("ignores a boxed answer whose braces never close", () => {
    expect(lastBoxed("\\boxed{\\frac{1}{2}")).toBeNull();
    expect(extractAnswer("\\boxed{\\frac{1}{2}")).toBeNull();
  });
  it("falls back to 'final answer is', then to the configured fallback, else null", () => {
    expect(extractAnswer("The final answer is $12$. I hope")).toBe("12");
    expect(extractAnswer("We find $x=3$ and so $y = 4$")).toBeNull();
    expect(extractAnswer("We find $x=3$ and so $y = 4$", { fallback: "last-math" })).toBe("y = 4");
    expect(extractAnswer("it is 3 then 42 apples", { fallback: "last-number" })).toBe("42");
  });
  it("reads an answer from prose the way Math-Verify does", () => {
    expect(answerFromText("\\frac{1}{2}")).toBe("\\frac{1}{2}");
    expect(answerFromText("Thus the probability is $\\frac{1}{2}$.")).toBe("\\frac{1}{2}");
    expect(answerFromText("Adding gives three and four. The answer is 7.")).toBe("7");
    expect(answerFromText("")).toBeNull();
  });
});

describe("answers in prose (issue 16)", () => {
  it.each([
    // A currency sign inside the math, escaped or in \text, and prose around it.
    ["The total is $\\$12.50$.", "12.5", ["latex", "expr"], true],
    ["The total cost is $\\$1,250.50$ dollars.", "1250.5", ["latex", "expr"], true],
    ["The answer is $\\text{\\$}12.50$.", "12.5", ["latex", "expr"], true],
    ["It costs $5 and 6 dollars, so the answer is $11$.", "11", ["latex", "expr"], true],
    // Text and an escaped dollar between the dollar signs.
    ["Answer $ \\frac{1}{2} \\$ = \\frac{10}{9} $", "\\frac{10}{9}", ["latex"], true],
    // Display math may span lines; inline math may not, for the LaTeX target (as in Math-Verify).
    ["Thus the answer is\n$$\n\\frac{10}{9}\n$$", "\\frac{10}{9}", ["latex"], true],
    ["Thus the answer is\n\\[\n\\frac{10}{9}\n\\]", "\\frac{10}{9}", ["latex"], true],
    ["Thus the answer is \\(\n\\frac{10}{9}\n\\).", "\\frac{10}{9}", ["latex"], false],
    // The expression target reads \(...\) over lines whole, not the 9 inside it.
    ["Thus the answer is \\(\n\\frac{10}{9}\n\\).", "\\frac{10}{9}", ["latex", "expr"], true],
    ["Thus the answer is \\(\n\\frac{10}{9}\n\\).", "9", ["latex", "expr"], false],
  ] as [string, string, ("latex" | "expr")[], boolean][])("%j against %s (%j): %s", async (pred, gold, extraction, expected) => {
    const verdict = await grader.grade(pred, gold, { extraction });
    expect(verdict.equal, verdict.reason).toBe(expected);
  });
});

describe("the grading table", () => {
  const cases = readJsonl(join(repo, "test", "fixtures", "grading-cases.jsonl")) as {
    category: string;
    gold: string;
    pred: string;
    expected: boolean;
  }[];

  it("has at least 200 cases, equal and not equal, in every category", () => {
    expect(cases.length).toBeGreaterThanOrEqual(200);
    const categories = new Set(cases.map((c) => c.category));
    for (const category of categories) {
      const inCategory = cases.filter((c) => c.category === category);
      expect(inCategory.some((c) => c.expected), `${category} has an equal case`).toBe(true);
      expect(inCategory.some((c) => !c.expected), `${category} has a not-equal case`).toBe(true);
    }
  });

  it("grades every case as expected, with no internal error", async () => {
    const verdicts = await Promise.all(cases.map((c) => grader.grade(c.pred, c.gold)));
    expect(verdicts.filter(isInternalError)).toEqual([]);
    const wrong = cases
      .map((c, i) => ({ ...c, got: verdicts[i] }))
      .filter((c) => c.got?.equal !== c.expected)
      .map((c) => `${c.category}: gold ${c.gold} / pred ${c.pred}: expected ${c.expected}, got ${JSON.stringify(c.got)}`);
    expect(wrong).toEqual([]);
  });
});

describe("MATH answers that were graded wrongly (issue 16)", () => {
  it.each([
    // Decimal commas: 0{,}5 is 0.5, 14{,}916 groups thousands.
    ["0{,}5", "5", false],
    ["0{,}5", "0.5", true],
    ["3{,}5", "35", false],
    ["3{,}5", "3.5", true],
    ["14{,}916", "14916", true],
    // Big integers are exact.
    ["12345678901234567890", "12345678901234567891", false],
    ["2^{64}", "18446744073709551617", false],
    // Found by the property suite: the parser writes the round one as 582076609134674072265625e+6.
    ["582076609134674072265624999999", "582076609134674072265625000000", false],
    ["582076609134674072265625000000", "5.82076609134674072265625 \\times 10^{29}", true],
    ["2^{64}", "18446744073709551616", true],
    ["10^{20}+1", "10^{20}", false],
    ["999999999", "1000000000", false],
    ["10^{20}+1-10^{20}", "1", true],
    // Decimals are rounded to 6 places, as Math-Verify does, and compared exactly then.
    ["999999999.0", "1000000000", false],
    ["1234567890.1", "1234567890.2", false],
    ["0.3333333", "\\frac13", true],
    ["0.33333", "\\frac13", false],
    // A percent is its value, or its number with the sign dropped; 0.5% is not 1/2.
    ["\\frac12", "0.5\\%", false],
    ["0.5\\%", "\\frac12", false],
    ["50\\%", "\\frac12", true],
    ["50", "50\\%", true],
    // Labelled and several answers.
    ["x=1, x=2", "1,2", true],
    ["x = 1 \\text{ and } x = 2", "1,2", true],
    ["\\boxed{3} \\text{ and } \\boxed{5}", "3, 5", true],
    ["(p,q)=(3,2)", "(3,2)", true],
    ["a_3 = 2, a_{37} = 19", "2, 19", true],
    ["f(x)=2x+3", "y=2x+3", true],
    ["f(x)=2x+3", "y=2x+4", false],
    // Binomials, sums (whose = is no prefix), \inf.
    ["\\binom{5}{2}", "10", true],
    ["\\sum_{i=1}^{3} i", "6", true],
    ["\\sum_{i=1}^{3} i", "7", false],
    ["(-\\inf, 3)", "(-\\infty, 3)", true],
    // An inequality in an absolute value against the set it describes, either way round.
    ["[-3/2,-1] \\cup [1,3/2]", "1 \\le |z| \\le 3/2", true],
    ["1 \\le |z| \\le 3/2", "[-3/2,-1] \\cup [1,3/2]", true],
    ["[-2,-1] \\cup [1,2]", "1 \\le |z| \\le 3/2", false],
    ["[1,3/2]", "1 \\le |z| \\le 3/2", false],
    ["[-2,2]", "|x| \\le 2", true],
    ["(-\\infty,-1) \\cup (1,\\infty)", "|x| > 1", true],
    // Approximations, a trailing backslash, doubled backslashes.
    ["\\frac{1}{\\sqrt3} \\approx 0.577", "\\frac{\\sqrt3}{3}", true],
    ["5\\", "5", true],
    ["\\\\frac{1}{2}", "\\frac12", true],
  ] as [string, string, boolean][])("%s against %s: %s", async (pred, gold, expected) => {
    const verdict = await grader.grade(pred, gold);
    expect(verdict.equal, verdict.reason).toBe(expected);
  });

  it.each([
    ["deep brackets", `${"(".repeat(2000)}1${")".repeat(2000)}`],
    ["deep braces", `${"{".repeat(2000)}1${"}".repeat(2000)}`],
    ["an inequality against an interval it does not describe", "x \\in [-2,7]"],
  ])("%s gets a verdict with a reason, not an internal error", async (_name, pred) => {
    const verdict = await grader.grade(pred, "-2 \\le x^2 \\le 7");
    expect(verdict.equal).toBe(false);
    expect(isInternalError(verdict), verdict.reason).toBe(false);
  });
});

describe("strictVariables (Math-Verify's strict)", () => {
  it.each([
    ["f(y)", "f(x)", true, false],
    ["f(y)", "f(x)", false, true],
    ["f(t)=2t+3", "f(x)=2x+3", true, false],
    ["f(t)=2t+3", "f(x)=2x+3", false, true],
    ["a+2b", "x+2y", false, true],
    ["2a+b", "x+2y", false, false],
    ["x+y", "x+1", false, false],
  ] as [string, string, boolean, boolean][])("%s against %s, strict %s: %s", async (pred, gold, strictVariables, expected) => {
    const verdict = await grader.grade(pred, gold, { strictVariables });
    expect(verdict.equal, verdict.reason).toBe(expected);
  });
});

describe("the restricted mathjs instance", () => {
  it("does exact fraction arithmetic but evaluates, parses and imports nothing", () => {
    const math = restrictedMath();
    expect(math.add(math.fraction(1, 3), math.fraction(1, 6)).toString()).toBe("0.5");
    for (const call of [() => math.evaluate("1 + 1"), () => math.parse("x"), () => math.compile("x"), () => math.import({}), () => math.createUnit("foo")]) {
      expect(call).toThrow(/disabled/);
    }
  });
});

describe("gold solutions against gold answers", () => {
  const gradeGold = async (file: string) => {
    const rows = readJsonl(join(shared, file)) as { solution: string; answer: string }[];
    const verdicts = await Promise.all(rows.map((row) => grader.grade(extractAnswer(row.solution) ?? "", row.answer)));
    return { total: rows.length, equal: verdicts.filter((v) => v.equal).length };
  };
  it("MATH-500: 500 of 500", async () => {
    expect(await gradeGold("math500.jsonl")).toEqual({ total: 500, equal: 500 });
  });
  it("MATH test split: 5,000 of 5,000", async () => {
    expect(await gradeGold("math_test.jsonl")).toEqual({ total: 5000, equal: 5000 });
  });
});

describe("untrusted answers", () => {
  it.each([
    ["a power tower", "9^{9^{9^{9}}}", "1"],
    ["a double factorial", "1000!!", "1"],
    ["a huge factorial", "100000!", "1"],
    ["unbalanced braces", "\\frac{1}{2", "\\frac{1}{2}"],
    ["a 1 MB string", "1".repeat(1_000_000), "1"],
    ["a 500x500 matrix", `\\begin{pmatrix}${Array(500).fill(Array(500).fill("1").join("&")).join("\\\\")}\\end{pmatrix}`, "1"],
    ["4,900 minus signs", `${"-".repeat(4900)}1`, "1"],
    ["a sum of 2,400 ones", `${"1+".repeat(2400)}1`, "1"],
    ["900 fraction commands", "\\frac".repeat(900), "1"],
    ["1,000 plus-minus signs", "\\pm1".repeat(1000), "1"],
  ])("%s yields false with a reason, quickly", async (_name, pred, gold) => {
    const started = Date.now();
    const verdict = await grader.grade(pred, gold);
    expect(verdict.equal).toBe(false);
    expect(verdict.reason.length).toBeGreaterThan(0);
    expect(isInternalError(verdict), verdict.reason).toBe(false);
    expect(Date.now() - started).toBeLessThan(6_000);
  });

  /** A slow answer equal to 12: a sum of 500 "+1-1" takes about 100 ms to grade, far above 1 ms. */
  const slowTwelve = `12${"+1-1".repeat(500)}`;

  it("retries a comparison that runs past the limit on fresh workers, then reports it incomplete (never a judgment)", async () => {
    const impatient = new Grader({ workers: 1, timeoutMs: 1, retries: 2 });
    try {
      const started = Date.now();
      const verdict = await impatient.grade(slowTwelve, "12");
      expect(verdict).toMatchObject({ equal: false, incomplete: true, reason: "timeout after 1 ms, 3 tries" });
      expect(gradingFailureMessage(verdict)).toBe("grading timed out after 0.001 s (3 tries)");
      expect({ retried: impatient.retried, timeouts: impatient.timeouts }).toEqual({ retried: 2, timeouts: 1 });
      // Bounded: three tries of a pathological input cost three limits (plus worker starts), not more.
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await impatient.close();
    }
    // With a normal limit the same answer is graded, and equal.
    expect(await grader.grade(slowTwelve, "12")).toMatchObject({ equal: true });
  });

  it("retries on a fresh worker: a comparison whose first worker hangs is answered by the second", async () => {
    // Test workers that hang on their first request when they are the first worker started, and
    // answer "equal" otherwise; each reports its start through a shared counter.
    const started = new Int32Array(new SharedArrayBuffer(4));
    const source = `
      const { parentPort, workerData } = require("node:worker_threads");
      const index = Atomics.add(workerData.started, 0, 1);
      parentPort.on("message", (request) => {
        if (index === 0) return; // hangs: the grader must kill this worker and retry elsewhere
        parentPort.postMessage({ id: request.id, verdict: { equal: true, reason: "test", pred: request.pred, gold: request.gold } });
      });
      parentPort.postMessage({ ready: true });`;
    const retrying = new Grader({ workers: 1, timeoutMs: 300, retries: 1, startWorker: () => new Worker(source, { eval: true, workerData: { started } }) });
    try {
      const verdict = await retrying.grade("12", "12");
      expect(verdict).toMatchObject({ equal: true, reason: "test" });
      expect(verdict.incomplete).toBeUndefined();
      expect(Atomics.load(started, 0)).toBe(2);
      expect({ retried: retrying.retried, timeouts: retrying.timeouts }).toEqual({ retried: 1, timeouts: 0 });
      // Without retries the same hang is incomplete, not a wrong answer.
      Atomics.store(started, 0, 0);
      const once = new Grader({ workers: 1, timeoutMs: 300, startWorker: () => new Worker(source, { eval: true, workerData: { started } }) });
      try {
        expect(await once.grade("12", "12")).toMatchObject({ equal: false, incomplete: true, reason: "timeout after 300 ms" });
      } finally {
        await once.close();
      }
    } finally {
      await retrying.close();
    }
  });

  it("does not count a worker's start against a comparison's limit", async () => {
    // A cold worker takes far longer than 50 ms to load its libraries and build the compute engine;
    // the comparison itself (about a millisecond) is what the limit measures.
    const tight = new Grader({ workers: 1, timeoutMs: 50 });
    try {
      expect(await tight.grade("\\frac{24}{2}", "12")).toMatchObject({ equal: true });
      expect(tight.timeouts).toBe(0);
    } finally {
      await tight.close();
    }
  });

  it("kills a comparison that runs past the time limit and keeps grading", async () => {
    const impatient = new Grader({ workers: 1, timeoutMs: 1 });
    try {
      const verdict = await impatient.grade(slowTwelve, "12");
      expect(verdict).toMatchObject({ equal: false, reason: "timeout after 1 ms", incomplete: true });
      expect(impatient.timeouts).toBe(1);
    } finally {
      await impatient.close();
    }
    // A fresh worker answers normally.
    expect((await grader.grade("x^2+2x+1", "(x+1)^2")).equal).toBe(true);
  });
});

describe("deliberate grade", () => {
  const cli = (args: string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", join(repo, "src", "cli.ts"), "grade", ...args], { encoding: "utf8" });

  it("prints the verdict and the normalized forms for one pair", () => {
    const result = cli(["--gold", "\\frac{1}{2}", "--pred", "0.5"]);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/^true\n\s+pred: 0.5\n\s+gold: \\frac\{1\}\{2\}/);
  });

  it("grades a file, keeps extra fields and order, and counts", () => {
    const dir = mkdtempSync(join(tmpdir(), "deliberate-grade-"));
    const input = join(dir, "cases.jsonl");
    const lines = [
      { id: "a", gold: "(1,2)", pred: "(2,1)", note: { keep: true } },
      { id: "b", gold: "\\frac{1}{2}", pred: "The answer is $\\boxed{0.5}$." },
      { id: "c", gold: "[0,1)", pred: "[0,1)" },
    ];
    writeFileSync(input, lines.map((line) => JSON.stringify(line)).join("\n") + "\n");
    const result = cli(["--file", input]);
    expect(result.status).toBe(0);
    const out = result.stdout.trim().split("\n").map((line) => JSON.parse(line));
    expect(out.map((line) => [line.id, line.equal])).toEqual([["a", false], ["b", true], ["c", true]]);
    expect(out[0].note).toEqual({ keep: true });
    expect(result.stderr).toMatch(/2\/3 equal, 0 timed out/);
  });

  it("names the line of a bad case and the missing field", () => {
    const dir = mkdtempSync(join(tmpdir(), "deliberate-grade-"));
    const input = join(dir, "bad.jsonl");
    writeFileSync(input, '{"gold":"1","pred":"1"}\n{"gold":"1"}\n');
    const result = cli(["--file", input]);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("line 2: pred:");
    expect(result.stdout.trim().split("\n")).toHaveLength(1);
  });
});
