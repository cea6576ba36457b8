/**
 * Conformance with Math-Verify's own public test suite (huggingface/Math-Verify, tests/,
 * Apache-2.0), carried over in test/fixtures/math-verify/: every case graded with the options of
 * the test it comes from. Prints the agreement per test file.
 */
import { afterAll, describe, expect, it } from "vitest";
import { Grader } from "../datasets/answer/grader.js";
import { agreementTable, listedDifferences, loadSuite, runSuite } from "./support/math-verify.js";

// Verdicts are what is checked here, not time: a generous limit keeps a loaded CI machine, on which a
// worker's first exact comparison loads mathjs for seconds, from turning verdicts into time-outs.
const grader = new Grader({ workers: 2, timeoutMs: 60_000 });
afterAll(() => grader.close());

describe("Math-Verify's test suite", () => {
  const cases = loadSuite();

  it("carries every case with its source file, test name and configuration", () => {
    expect(cases.length).toBeGreaterThanOrEqual(300);
    for (const c of cases) {
      expect(c.file).toMatch(/^tests\/test_\w+\.py$/);
      expect(c.test).toMatch(/^test_\w+$/);
      expect(c.config.extraction.length).toBeGreaterThan(0);
      expect(typeof c.config.float_rounding).toBe("number");
    }
  });

  it("agrees on at least 98% of the cases, with no internal error, and every disagreement is documented", async () => {
    const result = await runSuite(grader, cases);
    console.log(`Agreement with Math-Verify's expected verdicts:\n${agreementTable(result)}`);
    expect(result.total.errors).toBe(0);
    expect(result.total.agree / result.total.cases).toBeGreaterThanOrEqual(0.98);
    expect(new Set(result.disagreements.map((c) => c.id))).toEqual(listedDifferences());
  });
});
