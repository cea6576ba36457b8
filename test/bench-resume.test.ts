/**
 * A real kill: `deliberate bench` on the embedded models is killed with SIGKILL once a few results
 * are written, then restarted with the same command; it must end with exactly one result per work item.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { resultSchema, workItemKey } from "../src/bench/results.js";

const PROBLEMS = 8;
const BUDGETS = [1, 2];
const ITEMS = PROBLEMS * BUDGETS.length;

let dir = "";
afterAll(() => rm(dir, { recursive: true, force: true }));

function startBench(out: string) {
  const args = [
    ...["--import", "tsx", "src/cli.ts", "bench", "--policy", "policy", "--verifier", "prm"],
    ...["--n", String(PROBLEMS), "--strategies", "best-of-n", "--budgets", BUDGETS.join(",")],
    ...["--threads", "1", "--max-steps", "4", "--max-step-tokens", "16", "--concurrency", "2", "--progress", "none", "--out", out],
  ];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal, output })),
  );
  return { child, exited };
}

function resultLines(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8").split("\n").filter((line) => line !== "");
}

it("resumes after kill -9 with exactly one result per work item", async () => {
  dir = await mkdtemp(join(tmpdir(), "deliberate-bench-resume-"));
  const out = join(dir, "run");
  const results = join(out, "results.jsonl");

  const first = startBench(out);
  let killedAt = 0;
  while (first.child.exitCode === null) {
    killedAt = resultLines(results).length;
    if (killedAt >= 3) {
      first.child.kill("SIGKILL");
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const killed = await first.exited;
  expect(killed.signal, killed.output).toBe("SIGKILL");
  expect(killedAt).toBeLessThan(ITEMS);
  expect(existsSync(`${results}.lock`)).toBe(true);

  const second = await startBench(out).exited;
  expect(second.code, second.output).toBe(0);
  expect(second.output).toContain(`${ITEMS} of ${ITEMS} work items done`);

  const keys = resultLines(results).map((line) => workItemKey(resultSchema.parse(JSON.parse(line))));
  const expected = Array.from({ length: PROBLEMS }, (_, i) => BUDGETS.map((budget) => workItemKey({ problemId: `synth/ladder-2/test/1/${i}`, strategy: "best-of-n", budget, seed: 0 }))).flat();
  expect(keys.sort()).toEqual(expected.sort());
  expect(existsSync(`${results}.lock`)).toBe(false);
});
