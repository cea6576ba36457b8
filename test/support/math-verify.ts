/**
 * Math-Verify's public test suite as a conformance suite for the grader: the cases carried over in
 * test/fixtures/math-verify/ (see the README there), each graded with the options its test used,
 * and the agreement with Math-Verify's expected verdicts per test file.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CompareOptions, Verdict } from "../../datasets/answer/compare.js";
import type { Grader } from "../../datasets/answer/grader.js";

export const suiteDir = fileURLToPath(new URL("../fixtures/math-verify", import.meta.url));

export interface MathVerifyCase {
  /** Where the case is in the fixtures: `test_all.jsonl:12` (file and line). */
  id: string;
  /** The test file in huggingface/Math-Verify, e.g. tests/test_all.py. */
  file: string;
  /** The pytest function the case comes from. */
  test: string;
  gold: string;
  pred: string;
  expected: boolean;
  config: {
    extraction: ("latex" | "expr")[];
    boxed_match_priority: number;
    float_rounding: number;
    strict: boolean;
    allow_set_relation_comp: boolean;
  };
  note?: string;
}

/** The case ids that DIFFERENCES.md lists as deliberate or known differences from Math-Verify. */
export function listedDifferences(dir = suiteDir): Set<string> {
  const text = readFileSync(join(dir, "DIFFERENCES.md"), "utf8");
  return new Set([...text.matchAll(/`(test_\w+\.jsonl:\d+)`/g)].map((match) => match[1] as string));
}

export function loadSuite(dir = suiteDir): MathVerifyCase[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".jsonl"))
    .sort()
    .flatMap((name) =>
      readFileSync(join(dir, name), "utf8")
        .split("\n")
        .map((line, index) => ({ line, id: `${name}:${index + 1}` }))
        .filter(({ line }) => line.trim() !== "")
        .map(({ line, id }) => ({ id, ...(JSON.parse(line) as Omit<MathVerifyCase, "id">) })),
    );
}

/** The grader options that reproduce a case's Math-Verify configuration. */
export function optionsFor(config: MathVerifyCase["config"]): CompareOptions {
  return {
    decimalPlaces: config.float_rounding,
    extraction: config.extraction,
    allowSetRelationComparison: config.allow_set_relation_comp,
    strictVariables: config.strict,
  };
}

/** An internal error rather than a verdict: an exception in the comparison or a dead worker. */
export function isInternalError(verdict: Verdict): boolean {
  return /^(?:error|worker error):/.test(verdict.reason);
}

export interface SuiteResult {
  perFile: { file: string; cases: number; agree: number; errors: number }[];
  total: { cases: number; agree: number; errors: number };
  disagreements: (MathVerifyCase & { verdict: Verdict })[];
}

export async function runSuite(grader: Grader, cases = loadSuite()): Promise<SuiteResult> {
  const verdicts = await Promise.all(cases.map((c) => grader.grade(c.pred, c.gold, optionsFor(c.config))));
  const files = [...new Set(cases.map((c) => c.file))];
  const tally = (subset: number[]) => ({
    cases: subset.length,
    agree: subset.filter((i) => verdicts[i]?.equal === cases[i]?.expected).length,
    errors: subset.filter((i) => isInternalError(verdicts[i] as Verdict)).length,
  });
  const indices = cases.map((_, i) => i);
  return {
    perFile: files.map((file) => ({ file, ...tally(indices.filter((i) => cases[i]?.file === file)) })),
    total: tally(indices),
    disagreements: cases
      .map((c, i) => ({ ...c, verdict: verdicts[i] as Verdict }))
      .filter((c) => c.verdict.equal !== c.expected),
  };
}

const percent = (agree: number, cases: number) => `${((100 * agree) / cases).toFixed(1)}%`;

/** The agreement table in Markdown, one row per test file and the total. */
export function agreementTable(result: SuiteResult): string {
  const rows = [...result.perFile, { file: "all", ...result.total }].map(
    (row) => `| ${row.file} | ${row.cases} | ${row.agree} | ${percent(row.agree, row.cases)} | ${row.errors} |`,
  );
  return ["| Math-Verify test file | cases | agree | agreement | internal errors |", "| --- | ---: | ---: | ---: | ---: |", ...rows].join("\n");
}
