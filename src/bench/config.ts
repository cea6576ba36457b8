/**
 * The configuration of a benchmark run, from CLI flags, a YAML or JSON file, or both (flags win).
 *
 * A config file uses the flags' names in camelCase as keys (`dataFile`, `maxSteps`, `budgets`, ...)
 * with the same values as on the command line; lists may be YAML lists or comma-separated strings.
 * `strategies` also takes configurations: `{label, strategy, params}`. Everything is validated
 * before any work starts, each strategy's parameters at every budget, and an error names the flag
 * (or the file and field) that was wrong.
 *
 * The parsed config has two halves: `experiment` decides the results (a resumed run must have the
 * same one), `run` only how the run goes (concurrency, device, progress, ...).
 */
import { extname } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { BENCH_GRADER_OPTIONS } from "../../datasets/answer/grader.js";
import { DEFAULT_LADDER, LADDER_IDS, LEVELS, SPLITS, type LadderId, type Split } from "../../datasets/synth/generate.js";
import { SOURCE_NAMES, type SourceName } from "../../datasets/sources.js";
import { getStrategy } from "../../strategies/registry.js";
import { describeZodError, InputError } from "../errors.js";
import { readTextFile } from "../files.js";
import { DEVICES, type Device } from "../runtime/session.js";
import { FileParamError, limitsSchema, loadFileParams, samplingSchema, type Limits, type Sampling } from "../strategy.js";
import { readOraclePassRates } from "./difficulty-file.js";

export const DATASETS = ["synth", ...SOURCE_NAMES] as const;
export const PROGRESS_MODES = ["auto", "bar", "lines", "none"] as const;
export type ProgressMode = (typeof PROGRESS_MODES)[number];

export type DatasetSpec =
  | { name: "synth"; split: Split; n: number; seed: number; ladder: LadderId }
  | { name: SourceName }
  | { name: "file"; file: string };

export interface StrategyConfig {
  /** Unique in a run; the `strategy` field of results. */
  label: string;
  /** The registered strategy it runs. */
  strategy: string;
  /** Its parameters with the defaults filled in, without the budget. */
  params: Record<string, unknown>;
}

/** Runs slice `index` (1-based) of `count`. */
export interface Shard {
  index: number;
  count: number;
}

export interface Experiment {
  dataset: DatasetSpec;
  filter: { levels: number[] | null; subjects: string[] | null; limit: number | null; shuffleSeed: number | null };
  strategies: StrategyConfig[];
  budgets: number[];
  /** Seeds 0 to seeds - 1. */
  seeds: number;
  limits: Limits;
  sampling: Sampling;
  /** Labels of the models, for the record; null: the Policy's (StepVerifier's) own name. */
  policy: string | null;
  verifier: string | null;
  /** Recursive policies: the early-exit threshold, when one was given (it changes the results). */
  exitThreshold?: number | "off";
  /**
   * SHA-256 fingerprints of the loaded models' files (null: none) and of the problems (ids, texts,
   * answers), so that a resume after a retrain or a change of the dataset's generator is refused.
   */
  fingerprints: { policy: string | null; verifier: string | null; problems: string | null };
  /**
   * Each problem's oracle pass rate, from `difficultyFile`, for compute-optimal with difficulty
   * oracle; the values themselves, so a resume with other ones is refused. Null without a file.
   */
  knownDifficulty: Record<string, number> | null;
  /**
   * The (configuration, budget) pairs that do not run because the configuration's shape does not
   * fit the budget (beam width 4 at budget 2), with why; the report notes them.
   */
  skipped: SkippedConfiguration[];
}

export interface SkippedConfiguration {
  label: string;
  budget: number;
  /** Why its parameters do not hold at this budget. */
  reason: string;
}

export interface RunSettings {
  device: Device;
  threads: number | null;
  concurrency: number;
  itemTimeoutS: number | null;
  /**
   * Time limit of one grading try in seconds (default 30; see BENCH_GRADER_OPTIONS). A grading
   * that does not finish in three tries is recorded as a grading failure, never as a wrong answer.
   */
  gradeTimeoutS: number;
  progress: ProgressMode;
  progressIntervalS: number;
  cacheDir: string | null;
  /** Recursive policies: depth-wise batching (null: the default, on); it changes speed, not results. */
  depthBatching: boolean | null;
  /** Where `experiment.knownDifficulty` was read from, for messages. */
  difficultyFile: string | null;
}

export interface BenchConfig {
  experiment: Experiment;
  run: RunSettings;
  shard: Shard | null;
  /** The run directory. */
  out: string;
}

const got = (issue: { input?: unknown }) => `got ${JSON.stringify(issue.input) ?? String(issue.input)}`;
/** The message of a missing or mistyped value. */
const required = (expected: string) => (issue: { input?: unknown }) => (issue.input === undefined ? "required" : `${expected}, ${got(issue)}`);

/** Numbers may come as strings (flags, or quoted in a file). */
function numeric<T extends z.ZodType>(schema: T) {
  return z.preprocess((value) => (typeof value === "string" && value.trim() !== "" && Number.isFinite(Number(value)) ? Number(value) : value), schema);
}

/** A list from a YAML list or a comma-separated string; a single number is a list of one. */
function list<T extends z.ZodType>(item: T) {
  return z.preprocess(
    (value) => (typeof value === "string" ? value.split(",").map((part) => part.trim()) : typeof value === "number" ? [value] : value),
    z.array(item, { error: required("expected a list") }).min(1, "expected a non-empty list"),
  );
}

const integer = numeric(z.int({ error: (issue) => `expected an integer, ${got(issue)}` }));
const count = numeric(z.int({ error: (issue) => `expected a positive integer, ${got(issue)}` }).min(1, "expected a positive integer"));
const seconds = numeric(z.number({ error: (issue) => `expected a number of seconds, ${got(issue)}` }).positive("expected a positive number of seconds"));
const text = z.string({ error: required("expected a string") }).trim().min(1, "expected a non-empty string");
const oneOf = <T extends string>(values: readonly T[]) =>
  z.enum(values as readonly [T, ...T[]], { error: (issue) => `expected one of ${values.join(", ")}, ${got(issue)}` });

const shardText = z
  .string()
  .regex(/^\d+\/\d+$/, 'expected "I/N", e.g. 1/4')
  .transform((value) => {
    const [index, count] = value.split("/").map(Number) as [number, number];
    return { index, count };
  })
  .refine(({ index, count }) => count >= 1 && index >= 1 && index <= count, "expected I/N with 1 <= I <= N");

/** A strategy entry: a registered name (or a label from the config file), or a configuration. */
const strategyEntry = z.preprocess(
  (value) => (typeof value === "string" ? { strategy: value } : value),
  z.strictObject({
    label: text.regex(/^[^,\s]+$/, "expected a label without commas or spaces").optional(),
    strategy: text,
    params: z.record(z.string(), z.unknown()).default({}),
  }),
);

const THRESHOLD = 'expected a number in (0, 1] or "off"';

/** The flat form: the flags (camelCase) and the keys of a config file. */
const flatSchema = z.strictObject({
  dataset: oneOf(DATASETS).optional(),
  dataFile: text.optional(),
  split: oneOf(SPLITS).optional(),
  n: count.optional(),
  dataSeed: integer.optional(),
  ladder: numeric(z.union(LADDER_IDS.map((id) => z.literal(id)), { error: (issue) => `expected a ladder, one of ${LADDER_IDS.join(", ")}, ${got(issue)}` })).optional(),
  level: list(count).optional(),
  subject: list(text).optional(),
  limit: count.optional(),
  shuffleSeed: integer.optional(),
  strategies: list(strategyEntry),
  budgets: list(count).default([1, 4, 16, 64]),
  seeds: count.default(1),
  maxSteps: numeric(z.unknown()).optional(),
  maxStepTokens: numeric(z.unknown()).optional(),
  temperature: numeric(z.unknown()).optional(),
  topP: numeric(z.unknown()).optional(),
  policy: text.optional(),
  verifier: text.optional(),
  exitThreshold: z
    .union([z.literal("off"), numeric(z.number().gt(0, THRESHOLD).lte(1, THRESHOLD))], { error: (issue) => `${THRESHOLD}, ${got(issue)}` })
    .optional(),
  depthBatching: z
    .preprocess((value) => (value === "on" ? true : value === "off" ? false : value), z.boolean({ error: (issue) => `expected on or off, ${got(issue)}` }))
    .optional(),
  device: oneOf(DEVICES).default("cpu"),
  threads: count.optional(),
  concurrency: count.default(8),
  itemTimeout: seconds.optional(),
  gradeTimeout: seconds.default(BENCH_GRADER_OPTIONS.timeoutMs / 1000),
  shard: shardText.optional(),
  progress: oneOf(PROGRESS_MODES).default("auto"),
  progressInterval: seconds.default(30),
  cacheDir: text.optional(),
  difficultyFile: text.optional(),
  out: text,
});
type Flat = z.output<typeof flatSchema>;

const SYNTH_DEFAULTS = { split: "test", n: 100, seed: 1 } as const;

/** Validates a part of the flat config with another schema, reporting its issues under `prefix`. */
function check<T>(schema: z.ZodType<T>, value: unknown, ctx: z.RefinementCtx, prefix: PropertyKey[] = []): T | undefined {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  for (const issue of parsed.error.issues) ctx.addIssue({ code: "custom", message: issue.message, path: [...prefix, ...issue.path] });
  return undefined;
}

function datasetSpec(flat: Flat, ctx: z.RefinementCtx): DatasetSpec {
  if (flat.dataset !== undefined && flat.dataFile !== undefined) {
    ctx.addIssue({ code: "custom", path: ["dataFile"], message: `cannot be combined with dataset ${flat.dataset}: give one source of problems` });
  }
  const name = flat.dataFile !== undefined ? "file" : (flat.dataset ?? "synth");
  if (name !== "synth") {
    for (const key of ["split", "n", "dataSeed", "ladder"] as const) {
      if (flat[key] !== undefined) ctx.addIssue({ code: "custom", path: [key], message: "applies to the synth dataset only" });
    }
    return name === "file" ? { name, file: flat.dataFile as string } : { name };
  }
  const outOfRange = flat.level?.filter((level) => !(LEVELS as readonly number[]).includes(level)) ?? [];
  if (outOfRange.length > 0) ctx.addIssue({ code: "custom", path: ["level"], message: `the synth dataset has levels 1-5, got ${outOfRange.join(", ")}` });
  return { name, split: flat.split ?? SYNTH_DEFAULTS.split, n: flat.n ?? SYNTH_DEFAULTS.n, seed: flat.dataSeed ?? SYNTH_DEFAULTS.seed, ladder: flat.ladder ?? DEFAULT_LADDER };
}

/**
 * Resolves each strategy entry and validates its parameters at every budget before any work. A
 * budget that does not fit a configuration's shape (beam width 4 at budget 2: the strategies check
 * what depends on the budget in refinements, whose issues are "custom") is skipped for it and
 * recorded in `skipped`; a configuration that runs at no budget, any other invalid parameter, an
 * unknown one, or a PRM-weighted vote with --verifier none is an error naming the flag or field.
 */
function strategyConfigs(flat: Flat, ctx: z.RefinementCtx, skipped: SkippedConfiguration[]): StrategyConfig[] {
  const labels = new Set<string>();
  return flat.strategies.flatMap((entry, index): StrategyConfig[] => {
    const path = ["strategies", index];
    const label = entry.label ?? entry.strategy;
    if (labels.has(label)) ctx.addIssue({ code: "custom", path, message: `the label ${label} is used twice; give each configuration its own label` });
    labels.add(label);
    let strategy;
    try {
      strategy = getStrategy(entry.strategy);
    } catch (error) {
      ctx.addIssue({ code: "custom", path, message: (error as Error).message });
      return [];
    }
    if ("budget" in entry.params) {
      ctx.addIssue({ code: "custom", path: [...path, "params", "budget"], message: "the budget is not a parameter; it comes from budgets" });
      return [];
    }
    let given;
    try {
      // A file parameter is given by path (or is the default); the run's config keeps the file's content itself.
      given = loadFileParams(strategy, entry.params);
    } catch (error) {
      if (!(error instanceof FileParamError)) throw error;
      ctx.addIssue({ code: "custom", path: [...path, "params", error.param], message: error.message });
      return [];
    }
    let filled: Record<string, unknown> | undefined;
    const skips: SkippedConfiguration[] = [];
    for (const budget of flat.budgets) {
      const parsed = strategy.params.safeParse({ ...given, budget });
      if (parsed.success) {
        const need = strategy.needsVerifier(parsed.data);
        // Checked here, before the run directory is written, so that the corrected command is not refused as another run.
        if (flat.verifier === "none" && need !== null && filled === undefined) {
          ctx.addIssue({ code: "custom", path: ["verifier"], message: `none, but ${label} runs ${need}, which needs a step verifier` });
        }
        filled ??= parsed.data as Record<string, unknown>;
        continue;
      }
      // A misspelt parameter is named once, under its own path, not at every budget.
      const unknown = parsed.error.issues.find((issue) => issue.code === "unrecognized_keys");
      if (unknown !== undefined) {
        for (const key of unknown.keys) ctx.addIssue({ code: "custom", path: [...path, "params", key], message: unknown.message });
        return [];
      }
      if (parsed.error.issues.every((issue) => issue.code === "custom")) skips.push({ label, budget, reason: describeZodError(parsed.error) });
      else ctx.addIssue({ code: "custom", path, message: `${label} (${strategy.name}) at budget ${budget}: ${describeZodError(parsed.error)}` });
    }
    if (filled === undefined) {
      // It runs at none of the budgets: each reason is an error.
      for (const skip of skips) ctx.addIssue({ code: "custom", path, message: `${label} (${strategy.name}) at budget ${skip.budget}: ${skip.reason}` });
      return [];
    }
    skipped.push(...skips);
    const params = Object.fromEntries(Object.entries(filled).filter(([key]) => key !== "budget"));
    return [{ label, strategy: strategy.name, params }];
  });
}

/** Why a strategy configuration needs each problem's known difficulty (its oracle pass rate), or null. */
export function needsKnownDifficulty({ strategy, params }: StrategyConfig): string | null {
  return getStrategy(strategy).needsKnownDifficulty?.(params) ?? null;
}

/**
 * The oracle pass rates of `difficultyFile`, read now so that a bad file fails before any work.
 * A strategy with difficulty oracle needs the file; whether it covers the run's problems is
 * checked once they are loaded (`checkKnownDifficulty` in run.ts).
 */
function knownDifficulty(flat: Flat, strategies: readonly StrategyConfig[], ctx: z.RefinementCtx): Record<string, number> | null {
  if (flat.difficultyFile === undefined) {
    const oracle = strategies.find((strategy) => needsKnownDifficulty(strategy) !== null);
    if (oracle !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["difficultyFile"],
        message: `required by ${oracle.label} (${needsKnownDifficulty(oracle)}): each problem's oracle pass rate, a difficulty.jsonl of deliberate calibrate --difficulty-only`,
      });
    }
    return null;
  }
  try {
    return Object.fromEntries(readOraclePassRates(flat.difficultyFile));
  } catch (error) {
    ctx.addIssue({ code: "custom", path: ["difficultyFile"], message: (error as Error).message });
    return null;
  }
}

const defined = <T extends object>(value: T) => Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));

export const benchConfigSchema = flatSchema.transform((flat, ctx): BenchConfig => {
  const duplicates = flat.budgets.filter((budget, index) => flat.budgets.indexOf(budget) !== index);
  if (duplicates.length > 0) ctx.addIssue({ code: "custom", path: ["budgets"], message: `${duplicates.join(", ")} given twice` });
  const dataset = datasetSpec(flat, ctx);
  const skipped: SkippedConfiguration[] = [];
  const strategies = strategyConfigs(flat, ctx, skipped);
  const known = knownDifficulty(flat, strategies, ctx);
  const limits = check(limitsSchema, defined({ maxSteps: flat.maxSteps, maxStepTokens: flat.maxStepTokens }), ctx);
  const sampling = check(samplingSchema, defined({ temperature: flat.temperature, topP: flat.topP }), ctx);
  if (limits === undefined || sampling === undefined) return z.NEVER;
  return {
    experiment: {
      dataset,
      filter: { levels: flat.level ?? null, subjects: flat.subject ?? null, limit: flat.limit ?? null, shuffleSeed: flat.shuffleSeed ?? null },
      strategies,
      budgets: flat.budgets,
      seeds: flat.seeds,
      limits,
      sampling,
      policy: flat.policy ?? null,
      verifier: flat.verifier ?? null,
      ...(flat.exitThreshold !== undefined ? { exitThreshold: flat.exitThreshold } : {}),
      // filled in from the loaded models when the run starts
      fingerprints: { policy: null, verifier: null, problems: null },
      knownDifficulty: known,
      skipped,
    },
    run: {
      device: flat.device,
      threads: flat.threads ?? null,
      concurrency: flat.concurrency,
      itemTimeoutS: flat.itemTimeout ?? null,
      gradeTimeoutS: flat.gradeTimeout,
      progress: flat.progress,
      progressIntervalS: flat.progressInterval,
      cacheDir: flat.cacheDir ?? null,
      depthBatching: flat.depthBatching ?? null,
      difficultyFile: flat.difficultyFile ?? null,
    },
    shard: flat.shard ?? null,
    out: flat.out,
  };
});

/**
 * Validates a flat config. `where` names the source of a field for error messages (a flag, or a
 * file and field); by default the field path.
 */
export function parseBenchConfig(input: unknown, where: (path: readonly PropertyKey[]) => string = (path) => path.join(".") || "config"): BenchConfig {
  const parsed = benchConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${where(issue.path)}: ${issue.message}`);
  throw new InputError(problems.length === 1 ? (problems[0] as string) : `invalid bench configuration:\n  ${problems.join("\n  ")}`);
}

/** Reads a YAML (.yaml, .yml) or JSON (.json) config file: an object with the flat config's keys. */
export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  const extension = extname(file).toLowerCase();
  if (![".yaml", ".yml", ".json"].includes(extension)) throw new InputError(`--config: ${file} must be a .yaml, .yml or .json file`);
  const source = await readTextFile(file, "--config");
  let value: unknown;
  try {
    value = extension === ".json" ? JSON.parse(source) : parseYaml(source);
  } catch (error) {
    throw new InputError(`${file}: ${(error as Error).message}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new InputError(`${file}: expected an object of settings (keys as the flags in camelCase)`);
  return value as Record<string, unknown>;
}

export interface ConfigSources {
  /** The flags given on the command line, by their camelCase names. */
  flags: Record<string, unknown>;
  /** The defaults of flags that were not given; the file overrides them. */
  defaults?: Record<string, unknown>;
  /** A YAML or JSON config file. */
  file?: string;
}

const flagName = (key: string) => `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;

/**
 * The config from flag defaults, then the file, then the flags. A dataset flag replaces the file's
 * source of problems (and its synth settings, for another dataset), and `--strategies` may name
 * configurations of the file by their labels.
 */
export async function resolveBenchConfig({ flags, defaults = {}, file }: ConfigSources): Promise<BenchConfig> {
  const fromFile = file === undefined ? {} : await readConfigFile(file);
  const layered: Record<string, unknown> = { ...defaults, ...fromFile };
  if (flags.dataset !== undefined || flags.dataFile !== undefined) {
    const dropped = flags.dataset === "synth" ? ["dataset", "dataFile"] : ["dataset", "dataFile", "split", "n", "dataSeed", "ladder"];
    for (const key of dropped) delete layered[key];
  }
  Object.assign(layered, flags);
  if (typeof flags.strategies === "string" && Array.isArray(fromFile.strategies)) {
    const configured = fromFile.strategies as unknown[];
    layered.strategies = flags.strategies.split(",").map((name) => {
      const trimmed = name.trim();
      return configured.find((entry) => typeof entry === "object" && entry !== null && (entry as { label?: unknown }).label === trimmed) ?? trimmed;
    });
  }
  // A field is named as in the file when the file set it, else as its flag (given or missing).
  return parseBenchConfig(layered, (path) => {
    const [key] = path;
    if (typeof key === "string" && !(key in fromFile && !(key in flags))) return flagName(key);
    return `${file ?? "config"}: ${path.join(".") || "(top level)"}`;
  });
}
