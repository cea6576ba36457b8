/**
 * Grading throughput through the CLI: the 5,000 gold solutions of the MATH test split against their
 * gold answers, `deliberate grade --file`, run 5 times. Prints the median wall time and how many
 * comparisons hit the time limit, then the agreement with Math-Verify's expected verdicts on its own
 * test suite (test/fixtures/math-verify/) per test file, and writes both as JSON to
 * runs/bench-grade.json. Needs the build (npm ci or npm run build) and ../shared/datasets/math_test.jsonl.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Grader } from "../datasets/answer/grader.js";
import { agreementTable, runSuite } from "../test/support/math-verify.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const source = process.argv[2] ?? join(repo, "..", "shared", "datasets", "math_test.jsonl");
const cases = join(tmpdir(), "deliberate-bench-grade.jsonl");
const rows = readFileSync(source, "utf8").split("\n").filter((line) => line.trim() !== "");
writeFileSync(
  cases,
  rows.map((line) => {
    const { solution, answer } = JSON.parse(line) as { solution: string; answer: string };
    return JSON.stringify({ gold: answer, pred: solution });
  }).join("\n") + "\n",
);

const runs: { seconds: number; summary: string }[] = [];
for (let i = 0; i < 5; i++) {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, [join(repo, "dist", "src", "cli.js"), "grade", "--file", cases, "--out", join(tmpdir(), "deliberate-bench-graded.jsonl")], { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`deliberate grade failed: ${result.stderr}`);
  runs.push({ seconds: Number(process.hrtime.bigint() - started) / 1e9, summary: result.stderr.trim() });
}
const sorted = runs.map((run) => run.seconds).sort((a, b) => a - b);
const median = sorted[Math.floor(sorted.length / 2)] as number;
console.log(`graded ${rows.length} pairs through the CLI, ${runs.length} runs: median ${median.toFixed(2)} s (${runs.at(-1)?.summary})`);

const grader = new Grader({ timeoutMs: 60_000 });
const conformance = await runSuite(grader);
await grader.close();
console.log(`\nAgreement with Math-Verify's expected verdicts on its test suite:\n${agreementTable(conformance)}`);
const report = {
  pairs: rows.length,
  runs: runs.length,
  medianSeconds: Number(median.toFixed(2)),
  lastSummary: runs.at(-1)?.summary,
  mathVerify: { perFile: conformance.perFile, total: conformance.total, disagreements: conformance.disagreements.map((c) => c.id) },
};
mkdirSync(join(repo, "runs"), { recursive: true });
writeFileSync(join(repo, "runs", "bench-grade.json"), JSON.stringify(report, null, 2) + "\n");
