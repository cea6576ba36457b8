import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const repo = fileURLToPath(new URL("..", import.meta.url));
const math500 = join(repo, "..", "shared", "datasets", "math500.jsonl");
const cli = (args: string[]) => spawnSync(process.execPath, ["--import", "tsx", join(repo, "src", "cli.ts"), ...args], { encoding: "utf8", timeout: 120_000 });

describe("MATH-500 with a user-given ONNX model directory", () => {
  it("benchmarks and reports through the same commands", () => {
    const out = mkdtempSync(join(tmpdir(), "deliberate-math500-"));
    const bench = cli([
      "bench", "--data-file", math500, "--limit", "3", "--config", join(repo, "test", "fixtures", "bench-math500-majority.yaml"),
      "--policy", join(repo, "test", "fixtures", "tiny-hf"), "--verifier", "none", "--threads", "1", "--progress", "none", "--out", out,
    ]);
    expect(bench.status, bench.stderr).toBe(0);
    const results = readFileSync(join(out, "results.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line));
    expect(results).toHaveLength(3 * 2);
    for (const result of results) {
      expect(result.error).toBeNull();
      expect(typeof result.correct).toBe("boolean");
      expect(result.compute.generatedTokens).toBeGreaterThan(0);
      expect(result.problemId).toMatch(/^test\//);
    }
    const report = cli(["report", out]);
    expect(report.status, report.stderr).toBe(0);
    expect(existsSync(join(out, "report.html"))).toBe(true);
  }, 180_000);
});
