/**
 * Every example command of README.md (its sh blocks) and of every command's --help runs as written,
 * in a fresh working directory, with these differences, which the test states rather than hides:
 * - `bench`, `compare`, `calibrate` and `sweep-verifier` examples run with `--dry-run`: everything is validated (the
 *   settings, each strategy's parameters at every budget, the problems, the run directory, the
 *   files named) and nothing runs; as written they take minutes to hours.
 * - Placeholder model paths (`./my-model`, `path/to/onnx-model`) are the tiny test export.
 * - The files the examples read are made first: the README's YAML example is `sweep.yaml`, the
 *   configurations that the docs spell out inline are `majority.yaml`, `oracle.yaml` and
 *   `grid.yaml`, and `benchmarks/` is copied; what an earlier real run would have written (a finished
 *   run for `report`, the allocation tables, the difficulty file) comes from fixtures; named datasets come from a cache
 *   holding the shared MATH-500 copy (the examples then need no network).
 * - `serve` examples run for real on a free port (`--port 0`): the server must answer /health (with
 *   the example's `--api-key`, when it gives one), then stop on SIGTERM with status 0.
 * Everything else (grade, data, solve, report) runs for real and must exit 0.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { buildProgram } from "../src/program.js";
import { spawnServe } from "./support/serve-process.js";
import { generateSynth } from "../datasets/synth/generate.js";

const repo = fileURLToPath(new URL("..", import.meta.url));
const README = readFileSync(join(repo, "README.md"), "utf8");
const MATH500 = join(repo, "..", "shared", "datasets", "math500.jsonl");
const TSX = import.meta.resolve("tsx");

/** Splits a command line as sh does for these examples: quotes, backslash escapes, # comments. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let word: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const char = line[i] as string;
    if (/\s/.test(char)) {
      if (word !== null) words.push(word);
      word = null;
    } else if (char === "#" && word === null) {
      break;
    } else if (char === "'") {
      const end = line.indexOf("'", i + 1);
      if (end === -1) throw new Error(`unclosed ' in ${line}`);
      word = (word ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (char === '"') {
      word ??= "";
      for (i++; i < line.length && line[i] !== '"'; i++) {
        if (line[i] === "\\" && /["\\$`]/.test(line[i + 1] ?? "")) i++;
        word += line[i];
      }
      if (i >= line.length) throw new Error(`unclosed " in ${line}`);
    } else if (char === "\\") {
      word = (word ?? "") + (line[++i] ?? "");
    } else {
      word = (word ?? "") + char;
    }
  }
  if (word !== null) words.push(word);
  return words;
}

/** The `deliberate ...` lines of README.md's sh blocks, continuation lines joined. */
function readmeExamples(): string[] {
  const blocks = [...README.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => (match[1] as string).replace(/\\\n\s*/g, ""));
  return blocks.flatMap((block) => block.split("\n").map((line) => line.trim()).filter((line) => line.startsWith("deliberate ")));
}

const program = buildProgram;

function helpOf(command: Command): string {
  let text = "";
  command.configureOutput({ writeOut: (chunk) => (text += chunk) });
  command.outputHelp();
  return text;
}

/** Every command and sub-command, and the `deliberate ...` lines of their --help. */
function helpExamples(): { commands: string[]; examples: string[] } {
  const commands: string[] = [];
  const examples: string[] = [];
  const visit = (command: Command, path: string[]) => {
    for (const sub of command.commands) {
      commands.push([...path, sub.name()].join(" "));
      examples.push(...helpOf(sub).split("\n").filter((line) => /^\s+deliberate /.test(line)).map((line) => line.trim()));
      visit(sub, [...path, sub.name()]);
    }
  };
  visit(program(), []);
  return { commands, examples };
}

function cli(args: string[], cwd: string, env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ["--import", TSX, join(repo, "src", "cli.ts"), ...args], { cwd, env, encoding: "utf8", timeout: 300_000 });
}

/** Starts a `serve` example on a free port, checks /health, stops it with SIGTERM; its exit status and output. */
async function serveOnce(args: string[], cwd: string, env: NodeJS.ProcessEnv): Promise<{ status: number | null; stderr: string; health: number }> {
  const port = args.indexOf("--port");
  const freePort = port === -1 ? [...args, "--port", "0"] : args.map((arg, i) => (i === port + 1 ? "0" : arg));
  const serve = await spawnServe(freePort.slice(1), { cwd, env });
  const key = args.indexOf("--api-key");
  const headers: Record<string, string> = key === -1 ? {} : { authorization: `Bearer ${args[key + 1]}` };
  const health = (await fetch(`${serve.url}/health`, { headers })).status;
  serve.child.kill("SIGTERM");
  const status = await serve.exited;
  return { status, stderr: serve.output(), health };
}

const PLACEHOLDER_MODELS = new Set(["./my-model", "path/to/onnx-model"]);
/** Commands whose examples would run for minutes: they run with --dry-run. */
const LONG_RUNNING = new Set(["bench", "compare", "calibrate", "sweep-verifier"]);

/** The arguments an example runs with (see the file's comment). */
function argumentsOf(example: string): string[] {
  const [, ...args] = shellWords(example);
  const replaced = args.map((arg) => (PLACEHOLDER_MODELS.has(arg) ? join(repo, "test", "fixtures", "tiny-hf") : arg));
  return LONG_RUNNING.has(replaced[0] as string) ? [...replaced, "--dry-run"] : replaced;
}

/** The one-line YAML after `marker` in a text: a configuration the docs spell out inline. */
function inlineYaml(text: string, marker: RegExp): string {
  const match = marker.exec(text);
  if (match === null) throw new Error(`no inline configuration matching ${marker}`);
  return `${match[1]}\n`;
}

const examples = [...new Set([...readmeExamples(), ...helpExamples().examples])];
let cwd = "";
let env: NodeJS.ProcessEnv = {};

beforeAll(async () => {
  cwd = await mkdtemp(join(tmpdir(), "deliberate-examples-"));
  env = { ...process.env, DELIBERATE_CACHE: join(cwd, "cache") };
  const write = (file: string, text: string) => {
    mkdirSync(join(cwd, file, ".."), { recursive: true });
    writeFileSync(join(cwd, file), text);
  };
  write("cases.jsonl", '{"gold": "\\\\frac{1}{2}", "pred": "0.5"}\n{"gold": "3", "pred": "4"}\n');
  write("problem.txt", "Compute (17 + 5) * 3 - 8.\n");
  write("my.jsonl", readFileSync(join(repo, "test", "fixtures", "data-mixed.jsonl"), "utf8").split("\n")[0] + "\n");
  const sample = generateSynth({ split: "train", seed: 1, n: 1 })[0];
  write("samples.jsonl", `${JSON.stringify({ problem: sample?.problem, solution: sample?.solution, answer: sample?.answer })}\n`);
  write("sweep.yaml", (/```yaml\n([\s\S]*?)```/.exec(README)?.[1] as string) ?? "");
  write("majority.yaml", inlineYaml(README, /majority\.yaml: "(.*)"/));
  const help = program();
  const benchHelp = helpOf(help.commands.find((command) => command.name() === "bench") as Command);
  write("oracle.yaml", inlineYaml(benchHelp, /where oracle\.yaml has (strategies: .*)/));
  const calibrateHelp = helpOf(help.commands.find((command) => command.name() === "calibrate") as Command);
  write("grid.yaml", `${calibrateHelp.split("\n").filter((line) => /^\s+- \{ label:/.test(line)).join("\n")}\n`);
  // The project's benchmark configurations, which examples name by their path in the repository.
  cpSync(join(repo, "benchmarks"), join(cwd, "benchmarks"), { recursive: true });
  // What earlier real runs would have written: the shipped allocation table (it has an oracle section),
  mkdirSync(join(cwd, "models"));
  copyFileSync(join(repo, "models", "allocation.json"), join(cwd, "models", "allocation.json"));
  for (const dir of ["cal", "calibration-prm-columns"]) {
    mkdirSync(join(cwd, "runs", dir), { recursive: true });
    copyFileSync(join(repo, "models", "allocation.json"), join(cwd, "runs", dir, "allocation.json"));
  }
  // and the oracle pass rates of the synthetic test problems (calibrate --difficulty-only).
  const compute = { generations: 0, generatedTokens: 0, prefilledTokens: 0, verifierTokens: 0, policyCalls: 0, verifierCalls: 0, flops: 0, wallMs: 0 };
  // (The examples run the test split's first 100 and 500 problems.)
  const problems = new Map([100, 500].flatMap((n) => generateSynth({ split: "test", seed: 1, n })).map((problem) => [problem.unique_id, problem]));
  const records = [...problems.values()].map((problem, index) =>
    JSON.stringify({
      problemId: problem.unique_id,
      strategy: "estimate",
      strategyName: "best-of-n",
      budget: 2,
      seed: 0,
      level: problem.level,
      subject: problem.subject,
      answer: null,
      gold: problem.answer,
      correct: false,
      compute,
      ms: 0,
      error: null,
      score: 0.5,
      scores: [0.5],
      oracle: { samples: 4, correct: index % 5, passRate: (index % 5) / 4, compute },
    }),
  );
  write("runs/test-difficulty/difficulty.jsonl", `${records.join("\n")}\n`);
  if (existsSync(MATH500)) {
    mkdirSync(join(cwd, "cache"));
    copyFileSync(MATH500, join(cwd, "cache", "math500.jsonl"));
  }
});
afterAll(() => rm(cwd, { recursive: true, force: true }));

/**
 * A finished run for each directory `report` reads that no example wrote: the report fixture's
 * results, split between them, less the lines a directory of this report already holds, so that no
 * work item is found twice. Returns the directories made, which the example removes after it, so
 * that a later example writing there (a `compare --out`) finds no run of another configuration.
 * A directory named `budget-N` for a budget the fixture lacks (the README's best-of-n@64 run) gets
 * the fixture's largest-budget results relabelled as budget N, so that `--baseline LABEL@N` finds it
 * (split between the directories of one such budget).
 */
function finishedRuns(args: string[]): string[] {
  const out = args.indexOf("--out");
  const dirs = args.slice(1).filter((arg, index) => !arg.startsWith("--") && index + 1 !== out);
  const results = (dir: string) => join(cwd, dir, "results.jsonl");
  const taken = new Set(dirs.filter((dir) => existsSync(results(dir))).flatMap((dir) => readFileSync(results(dir), "utf8").trim().split("\n")));
  const fixture = readFileSync(join(repo, "test", "fixtures", "report-run", "results.jsonl"), "utf8").trim().split("\n");
  const budgetOf = (line: string): number => JSON.parse(line).budget;
  const largest = Math.max(...fixture.map(budgetOf));
  const namedBudget = (dir: string) => Number(/budget-(\d+)$/.exec(dir)?.[1] ?? Number.NaN);
  const fresh = dirs.filter((dir) => !existsSync(results(dir)));
  const beyond = fresh.filter((dir) => namedBudget(dir) > largest);
  const shared = fresh.filter((dir) => !beyond.includes(dir));
  const lines = fixture.filter((line) => !taken.has(line));
  for (const dir of fresh) cpSync(join(repo, "test", "fixtures", "report-run"), join(cwd, dir), { recursive: true });
  shared.forEach((dir, k) => writeFileSync(results(dir), `${lines.filter((_, i) => i % shared.length === k).join("\n")}\n`));
  for (const dir of beyond) {
    // directories beyond the fixture with the same budget split its lines, as the shared ones do
    const alike = beyond.filter((other) => namedBudget(other) === namedBudget(dir));
    const relabelled = fixture
      .filter((line) => budgetOf(line) === largest)
      .filter((_, i) => i % alike.length === alike.indexOf(dir))
      .map((line) => JSON.stringify({ ...JSON.parse(line), budget: namedBudget(dir) }));
    writeFileSync(results(dir), `${relabelled.join("\n")}\n`);
  }
  return fresh;
}

describe("the examples", () => {
  it("are found: the README's and every command's with examples in its --help", () => {
    expect(readmeExamples().length).toBeGreaterThan(15);
    const { commands, examples: fromHelp } = helpExamples();
    for (const name of ["grade", "solve", "bench", "calibrate"]) expect(fromHelp.some((line) => line.startsWith(`deliberate ${name} `)), name).toBe(true);
    // The test registers the commands itself: it must know every command the CLI has.
    const listed = cli(["--help"], repo, process.env).stdout;
    const commandSection = listed.slice(listed.indexOf("Commands:"));
    const cliCommands = [...commandSection.matchAll(/^ {2}([a-z-]+)\b/gm)].map((match) => match[1]).filter((name) => name !== "help");
    expect(cliCommands.sort()).toEqual(commands.filter((name) => !name.includes(" ")).sort());
  });

  it.for(examples)("%s", async (example, { skip }) => {
    const args = argumentsOf(example);
    // Without the shared MATH-500 copy the example would download it; it is checked where the copy is.
    if (args.some((arg) => arg === "math500") && !existsSync(MATH500)) skip();
    const made = args[0] === "report" ? finishedRuns(args) : [];
    onTestFinished(() => made.forEach((dir) => rmSync(join(cwd, dir), { recursive: true, force: true })));
    if (args[0] === "serve") {
      const served = await serveOnce(args, cwd, env);
      expect(served.health, served.stderr).toBe(200);
      expect(served.status, served.stderr).toBe(0);
      return;
    }
    const run = cli(args, cwd, env);
    expect(run.status, `${args.join(" ")}\n${run.stderr}`).toBe(0);
    expect(run.stderr).not.toMatch(/^deliberate: /m);
  });
});
