/**
 * Property-based tests (fast-check) over what reads untrusted input: the grader (through its public
 * API only: isEquivalent, Grader, extractAnswer), the JSONL readers, the config loader and the CLI's
 * argument handling. Random and hostile input never crashes (only an InputError, or a one-line
 * `deliberate: ...` failure for the CLI), never hangs past a per-run limit, and never changes a file
 * it only reads.
 *
 * The seed is printed; replay a failure with DELIBERATE_PROPERTY_SEED=<seed> (fast-check's failure
 * message also gives the counterexample and its path).
 */
import { createHash, randomInt } from "node:crypto";
import { cpSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Command, CommanderError } from "commander";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { extractAnswer } from "../datasets/answer/extract.js";
import { Grader, isEquivalent } from "../datasets/answer/grader.js";
import { loadMathFile } from "../datasets/math.js";
import { parseBenchConfig, readConfigFile, resolveBenchConfig } from "../src/bench/config.js";
import { describeExpectedError, InputError } from "../src/errors.js";
import { loadRuns } from "../src/report/load.js";
import { buildProgram } from "../src/program.js";

const SEED = process.env.DELIBERATE_PROPERTY_SEED === undefined ? randomInt(2 ** 31) : Number(process.env.DELIBERATE_PROPERTY_SEED);
/** Longest a single run of an async property may take before it counts as a hang. */
const RUN_TIMEOUT_MS = 15_000;

const repo = fileURLToPath(new URL("..", import.meta.url));
let dir = "";
let previousCwd = "";

beforeAll(async () => {
  console.log(`property seed: ${SEED} (replay with DELIBERATE_PROPERTY_SEED=${SEED} npx vitest run test/properties.test.ts)`);
  fc.configureGlobal({ seed: SEED });
  dir = await mkdtemp(join(tmpdir(), "deliberate-properties-"));
  // The CLI resolves relative paths (random ones too) against the working directory: a scratch one.
  previousCwd = process.cwd();
  process.chdir(dir);
});
afterAll(async () => {
  process.chdir(previousCwd);
  fc.resetConfigureGlobal();
  await rm(dir, { recursive: true, force: true });
});

/** Text a hostile user (or a broken model) might send: LaTeX that nests, explodes or never closes. */
const hostileText = fc.oneof(
  fc.constantFrom(
    "",
    " ",
    "\\boxed{",
    "\\boxed{}",
    "}}}}{{{{",
    "\\frac{1}{0}",
    "0/0",
    "10^{10^{10^{10}}}",
    "9".repeat(5000),
    "\\sqrt{".repeat(300),
    "(".repeat(2000),
    "x^x^x^x^x^x^x^x",
    "\\left(\\right.",
    "1e308*1e308",
    "\u0000\uFFFF\uD800",
    "$$$$",
    "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
    "\\text{" + "a".repeat(10_000) + "}",
  ),
  fc.array(fc.constantFrom("\\frac{", "}", "{", "\\sqrt", "^", "_", "1", "x", "\\pi", "+", "-", "*", "/", "\\boxed{", "(", ")", ",", "\\%", "\\infty", " ", "\\dfrac", "e", ".", "\\le"), { maxLength: 60 }).map((parts) => parts.join("")),
  fc.string({ maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 100 }),
);

function hash(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

/** Runs `action` and checks that the files it only reads are unchanged afterwards. */
async function readsOnly<T>(files: readonly string[], action: () => Promise<T>): Promise<T> {
  const before = files.map(hash);
  try {
    return await action();
  } finally {
    expect(files.map(hash)).toEqual(before);
  }
}

/** Passes when `action` resolves or fails with an InputError; anything else is a crash. */
async function onlyInputErrors(action: () => Promise<unknown>): Promise<void> {
  await action().catch((error: unknown) => {
    if (!(error instanceof InputError)) throw error;
  });
}

describe("the grader", () => {
  it("extractAnswer never throws and gives a string or null", () => {
    fc.assert(
      fc.property(hostileText, (text) => {
        const answer = extractAnswer(text);
        expect(answer === null || typeof answer === "string").toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("isEquivalent always answers with a verdict, within its time limit", async () => {
    const grader = new Grader({ workers: 2, timeoutMs: 2000 });
    try {
      await fc.assert(
        fc.asyncProperty(hostileText, hostileText, async (pred, gold) => {
          const verdict = await grader.grade(pred, gold);
          expect(typeof verdict.equal).toBe("boolean");
          expect(verdict.reason).not.toBe("");
        }),
        { numRuns: 60, timeout: RUN_TIMEOUT_MS },
      );
    } finally {
      await grader.close();
    }
  });

  // Integers compare exactly, over the safe integers and beyond them as written (40 digits).
  const integer = fc.oneof(
    fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER - 1 }).map(BigInt),
    fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }),
  );
  it("finds a boxed integer equal to the same integer, and not to the next one", async () => {
    await fc.assert(
      fc.asyncProperty(integer, async (n) => {
        expect((await isEquivalent(`so the answer is $\\boxed{${n}}$.`, String(n))).equal).toBe(true);
        expect((await isEquivalent(`\\boxed{${n}}`, String(n + 1n))).equal).toBe(false);
      }),
      { numRuns: 40, timeout: RUN_TIMEOUT_MS },
    );
  });
});

/** A line of a MATH-style JSONL file: valid, nearly valid, or anything at all (never a line break). */
const mathLine = fc.oneof(
  fc.record(
    { problem: fc.string({ minLength: 1 }), answer: fc.string(), level: fc.oneof(fc.integer({ min: -2, max: 7 }), fc.constantFrom("Level 3", "Level ?", "Level x")), unique_id: fc.oneof(fc.string(), fc.integer()) },
    { requiredKeys: [] },
  ).map((value) => JSON.stringify(value)),
  fc.jsonValue().map((value) => JSON.stringify(value) ?? "null"),
  fc.string({ maxLength: 80 }),
  fc.constantFrom("", "   ", "\uFEFF{}", "{", '{"problem": "', "[]", "null", '{"problem": "x", "solution": "\\\\boxed{"}', "1".repeat(400)),
).map((line) => line.replace(/[\r\n]/g, " "));

let fileCounter = 0;
function scratchFile(name: string, text: string): string {
  const file = join(dir, `${fileCounter++}-${name}`);
  writeFileSync(file, text);
  return file;
}

describe("the JSONL readers", () => {
  it("loadMathFile skips exactly the bad lines, or stops at one with an InputError, and leaves the file as it was", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(mathLine, { maxLength: 30 }), async (lines) => {
        const file = scratchFile("problems.jsonl", lines.join("\n"));
        const nonBlank = lines.filter((line, index) => (index === 0 ? line.replace(/^\uFEFF/, "") : line).trim() !== "").length;
        await readsOnly([file], async () => {
          const skipped = await loadMathFile(file, { onBadLine: "skip" });
          expect(skipped.problems.length + skipped.badLines.length).toBe(nonBlank);
          await onlyInputErrors(() => loadMathFile(file));
        });
      }),
      { numRuns: 80, timeout: RUN_TIMEOUT_MS },
    );
  });

  it("the report's reader takes any results file: results, warnings, or an InputError", async () => {
    const fixture = readFileSync(join(repo, "test", "fixtures", "report-run", "results.jsonl"), "utf8").trim().split("\n");
    const resultLine = fc.oneof(fc.constantFrom(...fixture), mathLine, fc.constantFrom(...fixture).map((line) => line.slice(0, line.length >> 1)));
    await fc.assert(
      fc.asyncProperty(fc.array(resultLine, { maxLength: 20 }), async (lines) => {
        const run = join(dir, `${fileCounter++}-run`);
        mkdirSync(run);
        writeFileSync(join(run, "results.jsonl"), lines.join("\n"));
        await readsOnly([join(run, "results.jsonl")], () => onlyInputErrors(() => loadRuns([run])));
      }),
      { numRuns: 60, timeout: RUN_TIMEOUT_MS },
    );
  });
});

describe("the config loader", () => {
  const configText = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.jsonValue().map((value) => JSON.stringify(value) ?? ""),
    fc.dictionary(fc.constantFrom("dataset", "n", "budgets", "strategies", "seeds", "maxSteps", "temperature", "out", "shard", "level", "difficultyFile", "bogus"), fc.jsonValue()).map((value) => JSON.stringify(value)),
    fc.constantFrom(
      "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c, *c, *c, *c]",
      "strategies: [{ strategy: beam, params: { beamWidth: 1e300 } }]\nbudgets: [1, 2, 99999999]\nout: x",
      "strategies: [best-of-n]\nbudgets: '4,,4'\nout: x",
      "strategies: [{ strategy: compute-optimal, params: { table: /nonexistent.json } }]\nout: x",
      "!!binary |\n  R0lGODlhDAAMAIQAAP",
      "---\n---\n",
    ),
  );

  it("a YAML or JSON config file gives a configuration or an InputError, and is left as it was", async () => {
    await fc.assert(
      fc.asyncProperty(configText, fc.constantFrom(".yaml", ".json", ".yml", ".txt"), async (text, extension) => {
        const file = scratchFile(`config${extension}`, text);
        await readsOnly([file], async () => {
          await onlyInputErrors(() => readConfigFile(file));
          await onlyInputErrors(() => resolveBenchConfig({ flags: { out: "run" }, file }));
        });
      }),
      { numRuns: 100, timeout: RUN_TIMEOUT_MS },
    );
  });

  it("any value as a flat configuration is a configuration or an InputError", () => {
    fc.assert(
      fc.property(fc.oneof(fc.anything(), fc.dictionary(fc.constantFrom("strategies", "budgets", "n", "seeds", "out", "dataset", "split", "verifier"), fc.anything())), (value) => {
        try {
          parseBenchConfig(value);
        } catch (error) {
          expect(error).toBeInstanceOf(InputError);
        }
      }),
      { numRuns: 200 },
    );
  });
});

/** Stops a command before its action where the action would load models and search (solve). */
class NotRun extends Error {}

/** The program as src/cli.ts builds it, failing with exceptions instead of exiting, and silent. */
function program(): Command {
  const root = buildProgram();
  const quiet = (command: Command) => {
    command.exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
    command.commands.forEach(quiet);
  };
  quiet(root);
  // solve would search and serve would listen until stopped: both stop before their action.
  root.hook("preAction", (_root, action) => {
    if (action.name() === "solve" || action.name() === "serve") throw new NotRun();
  });
  return root;
}

describe("the CLI's argument handling", () => {
  it("any arguments end in success, a usage error or one `deliberate: ...` line; read files are unchanged", async () => {
    const inputs = join(dir, "inputs");
    mkdirSync(inputs);
    const cases = join(inputs, "cases.jsonl");
    writeFileSync(cases, '{"gold": "1/2", "pred": "0.5"}\n{"gold": "x", "pred": "\\\\frac{"}\n');
    const problems = join(inputs, "problems.jsonl");
    cpSync(join(repo, "test", "fixtures", "data-mixed.jsonl"), problems);
    const config = join(inputs, "sweep.yaml");
    cpSync(join(repo, "test", "fixtures", "bench-sweep.yaml"), config);
    const run = join(inputs, "run");
    cpSync(join(repo, "test", "fixtures", "report-run"), run, { recursive: true });
    const readOnly = [cases, problems, config, join(run, "results.jsonl"), join(run, "config.json")];
    const outputs = join(dir, "outputs");
    mkdirSync(outputs);

    // Each command with its own flags (and a bogus one), so that most runs get past commander's parsing.
    const leaves: { path: string[]; flags: string[] }[] = [];
    const visit = (command: Command, path: string[]) => {
      for (const sub of command.commands) {
        if (sub.commands.length > 0) visit(sub, [...path, sub.name()]);
        else leaves.push({ path: [...path, sub.name()], flags: [...sub.options.map((option) => option.long as string).filter((flag) => flag !== "--dry-run"), "--bogus"] });
      }
    };
    visit(program(), []);
    const value = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.integer().map(String),
      fc.double().map(String),
      fc.constantFrom("", "-1", "0", "1", "4", "16", "1,4", "1e309", "NaN", "1,2,x", "2/4", "0/0", "best-of-n", "beam", "majority", "none", "test", "synth", "../", "/"),
      fc.constantFrom(cases, problems, config, run, inputs, join(outputs, "out.jsonl"), join(outputs, "missing", "out.jsonl"), join(cases, "below-a-file")),
    );
    const argv = fc
      .constantFrom(...leaves)
      .chain((leaf) => fc.tuple(fc.constant(leaf.path), fc.array(fc.tuple(fc.constantFrom(...leaf.flags), value), { maxLength: 6 }), fc.array(value, { maxLength: 1 })))
      .map(([command, pairs, positional]) => {
      // Outputs go to the outputs directory (writing over an input is refused, and tested, elsewhere).
      const args = [...command, ...positional, ...pairs.flatMap(([flag, given]) => [flag, flag === "--out" && given.startsWith(inputs) ? join(outputs, "out") : given])];
      // Long-running commands only validate; solve and serve stop before their action (NotRun); data label reads
      // a file by default (standard input would wait for the test's own, which never ends).
      if (command[1] === "label") return ["data", "label", "--in", cases, ...args.slice(2)];
      return ["bench", "compare", "calibrate", "sweep-verifier"].includes(command[0] as string) ? [...args, "--dry-run"] : args;
    });

    const outcomes = { parsed: 0, usage: 0 };
    const silence = [vi.spyOn(process.stdout, "write").mockImplementation(() => true), vi.spyOn(process.stderr, "write").mockImplementation(() => true), vi.spyOn(console, "log").mockImplementation(() => undefined)];
    try {
      await fc.assert(
        fc.asyncProperty(argv, async (args) => {
          await readsOnly(readOnly, async () => {
            const usage = await program()
              .parseAsync(args, { from: "user" })
              .then(
                () => false,
                (error: unknown) => {
                  // A usage error (commander), a stop before solve's search, or an expected failure the CLI prints in one line.
                  if (error instanceof CommanderError) return true;
                  if (error instanceof NotRun || describeExpectedError(error) !== null) return false;
                  throw error;
                },
              );
            outcomes[usage ? "usage" : "parsed"]++;
          });
          // Dry runs and refused commands write nothing beside the outputs directory.
          expect(readdirSync(inputs).sort()).toEqual(["cases.jsonl", "problems.jsonl", "run", "sweep.yaml"]);
        }),
        { numRuns: 150, timeout: RUN_TIMEOUT_MS },
      );
    } finally {
      for (const spy of silence) spy.mockRestore();
    }
    // The generator reaches the commands' own validation, not only commander's.
    expect(outcomes.parsed).toBeGreaterThan(outcomes.usage / 4);
  });
});
