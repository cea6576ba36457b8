import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repo = fileURLToPath(new URL("..", import.meta.url));

/** Results of every budget's run directory, straight from the JSONL files. */
function readResults(out: string): { strategy: string; budget: number; correct: boolean }[] {
  return readdirSync(out)
    .filter((name) => name.startsWith("budget-"))
    .flatMap((dir) =>
      readFileSync(join(out, dir, "results.jsonl"), "utf8")
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line)),
    );
}

describe("deliberate compare (end to end on the embedded models)", () => {
  it("benchmarks the main strategies on a handful of problems and writes a report whose numbers match the results", () => {
    const out = mkdtempSync(join(tmpdir(), "deliberate-compare-"));
    const run = spawnSync(
      process.execPath,
      ["--import", "tsx", join(repo, "src", "cli.ts"), "compare", "--n", "5", "--budgets", "1,4", "--out", out, "--threads", "1", "--progress", "none"],
      { encoding: "utf8", timeout: 240_000 },
    );
    expect(run.stderr).not.toMatch(/Error/);
    expect(run.status).toBe(0);
    expect(run.stdout).toContain(`report: ${join(out, "report.html")}`);
    for (const file of ["report.md", "report.html", "report.json"]) expect(existsSync(join(out, file))).toBe(true);

    const results = readResults(out);
    // beam-w4 runs at N=4 only (a width of 4 needs a budget that is a multiple of 4).
    expect(results).toHaveLength(5 * 4 + 5 * 5);
    const report = JSON.parse(readFileSync(join(out, "report.json"), "utf8"));
    const cells = report.cells as { strategy: string; budget: number; accuracy: number }[];
    expect(new Set(cells.map((cell) => cell.strategy))).toEqual(new Set(["best-of-n", "majority", "beam-w4", "compute-optimal", "compute-optimal-spread"]));
    for (const cell of cells) {
      const mine = results.filter((result) => result.strategy === cell.strategy && result.budget === cell.budget);
      expect(cell.accuracy).toBeCloseTo(mine.filter((result) => result.correct).length / mine.length, 10);
    }
    const markdown = readFileSync(join(out, "report.md"), "utf8");
    for (const label of ["best-of-n", "majority", "beam-w4", "compute-optimal", "compute-optimal-spread"]) expect(markdown).toContain(label);
  }, 300_000);
});
