/**
 * The model flags shared by commands that run models: which policy, which verifier, which device,
 * and for served models (a URL in --policy or --verifier) the model, key, format and FLOPs flags.
 */
import { Command, Option } from "commander";
import { z } from "zod";
import type { Policy, StepVerifier } from "../policy.js";
import { loadPolicy, loadVerifier, type LoadOptions } from "../runtime/load.js";
import { DEVICES, type Device } from "../runtime/session.js";
import { connectPolicy, PROMPT_MODES } from "../served/policy.js";
import { connectVerifier, VERIFIER_FORMATS } from "../served/verifier.js";
import { SynthRuleVerifier } from "../../verifiers/synth-rule.js";
import { isSimulatedAuc, SimulatedRuleVerifier } from "../../verifiers/simulated-rule.js";
import { describeZodError, InputError } from "../errors.js";

/** The flags of served models, by their commander keys; they are not part of a bench's config.json (the key must never be stored). */
const servedFlagsSchema = z.strictObject({
  policyModel: z.string().min(1).optional(),
  policyApiKey: z.string().min(1).optional(),
  policyParams: z.coerce.number().positive().optional(),
  stepDelimiter: z.string().min(1).optional(),
  chatTemplate: z.string().min(1).optional(),
  policyPrompt: z.enum(PROMPT_MODES).optional(),
  policyBatchN: z.boolean().optional(),
  verifierModel: z.string().min(1).optional(),
  verifierApiKey: z.string().min(1).optional(),
  verifierParams: z.coerce.number().positive().optional(),
  verifierFormat: z.enum(VERIFIER_FORMATS).optional(),
});
export type ServedFlags = z.output<typeof servedFlagsSchema>;
const SERVED_KEYS = Object.keys(servedFlagsSchema.shape);

/** Splits a command's options into the served-model flags and the rest. */
export function splitServedFlags(options: Record<string, unknown>): { served: ServedFlags; rest: Record<string, unknown> } {
  const picked = Object.fromEntries(Object.entries(options).filter(([key]) => SERVED_KEYS.includes(key)));
  const parsed = servedFlagsSchema.safeParse(picked);
  if (!parsed.success) {
    const flag = (key: string) => `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
    throw new InputError(parsed.error.issues.map((issue) => `${flag(String(issue.path[0]))}: ${issue.message}`).join("; ") || describeZodError(parsed.error));
  }
  return { served: parsed.data, rest: Object.fromEntries(Object.entries(options).filter(([key]) => !SERVED_KEYS.includes(key))) };
}

export interface ModelFlags extends ServedFlags {
  policy: string;
  verifier: string;
  device: Device;
  threads?: number;
  /** Cut a problem too long for the policy instead of refusing it. */
  truncateProblem?: boolean;
  /** Recursive policies: early-exit threshold in (0, 1], or "off". */
  exitThreshold?: number | "off";
  /** Recursive policies: depth-wise batching (default on). */
  depthBatching?: boolean;
}

const isUrl = (value: string) => /^https?:\/\//i.test(value);
/** Comma-separated replica URLs. */
const urlsOf = (value: string) => value.split(",").map((part) => part.trim()).filter((part) => part !== "");
/** A delimiter as typed on a command line: `\n` and `\t` stand for a newline and a tab. */
const unescape = (value: string) => value.replace(/\\n/g, "\n").replace(/\\t/g, "\t");

export function positiveInteger(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed <= 0) throw new InputError(`${flag} must be a positive integer, got "${value}"`);
    return parsed;
  };
}

/** --exit-threshold: a number in (0, 1], or off. */
export function parseExitThreshold(value: string): number | "off" {
  if (value.trim().toLowerCase() === "off") return "off";
  const parsed = Number(value);
  if (value.trim() === "" || !Number.isFinite(parsed) || parsed <= 0 || parsed > 1) {
    throw new InputError(`--exit-threshold must be a number in (0, 1] (the exit head's max probability a token needs to leave early) or off, got "${value}"`);
  }
  return parsed;
}

/** --depth-batching: on or off. */
export function parseOnOff(flag: string) {
  return (value: string): boolean => {
    const normalized = value.trim().toLowerCase();
    if (normalized === "on" || normalized === "true") return true;
    if (normalized === "off" || normalized === "false") return false;
    throw new InputError(`${flag} must be on or off, got "${value}"`);
  };
}

/** The model flags; with `served` (the default), also the flags of served models (a URL in --policy or --verifier). */
export function addModelOptions(command: Command, { served = true } = {}): Command {
  command
    .option(
      "--policy <model>",
      "policy model: policy (embedded recurrent), baseline (embedded transformer), recursive (embedded recursive model with early exit), mod (Mixture-of-Depths transformer; untrained weights, source checkout only), a model directory, or the URL of a served model (http://host:8000/v1; comma-separated replicas)",
      "policy",
    )
    .option(
      "--verifier <model>",
      "step verifier: prm-columns (embedded PRM that reads each step's arithmetic in columns, the default), prm (the first-generation embedded PRM), rule (the synthetic task's exact checker), rule@AUC (a simulated verifier: the checker with noise calibrated to step AUC " +
        "AUC in (0.5, 1]; rule@AUC:seed=S for another draw of the noise), none, a PRM directory, or the URL of a served PRM (vLLM /pooling)",
      checkVerifierFlag,
      "prm-columns",
    )
    .addOption(new Option("--device <device>", "where models run (auto: the first GPU provider that starts, else cpu)").choices([...DEVICES]).default("cpu"))
    .option("--threads <n>", "intra-op threads per model (default: all cores)", positiveInteger("--threads"))
    .option(
      "--exit-threshold <p>",
      "recursive policy: a token leaves after the first loop whose exit head's max probability reaches p, in (0, 1], or off to run every loop (default: the model's, recursive: 0.9)",
      parseExitThreshold,
    )
    .option("--depth-batching <on|off>", "recursive policy with early exit: one run over branches at every loop depth (default on); same tokens either way", parseOnOff("--depth-batching"));
  if (!served) return command;
  return command
    .option("--policy-model <id>", "served policy: the model id, when the server serves several")
    .option("--policy-api-key <key>", "served policy: API key (default $DELIBERATE_POLICY_API_KEY); never printed or stored")
    .option("--policy-params <n>", "served policy: parameter count, for FLOPs (without it FLOPs are reported as unknown)")
    .option("--step-delimiter <text>", "served policy: the string between steps, \\n for a newline (default \\n\\n)")
    .option("--chat-template <dir>", "served policy: format prompts with this tokenizer directory (tokenizer_config.json, tokenizer.json) instead of the server's /tokenize")
    .addOption(
      new Option("--policy-prompt <mode>", "served policy: prompts as token ids, as text (servers that take or return no ids), or auto (ids until the server shows it needs text)")
        .choices([...PROMPT_MODES])
        .default("auto"),
    )
    .option("--policy-batch-n", "served policy: one request with n: k for the k children of one parent (faster; samples then derive from one seed, see README)")
    .option("--verifier-model <id>", "served verifier: the model id, when the server serves several")
    .option("--verifier-api-key <key>", "served verifier: API key (default $DELIBERATE_VERIFIER_API_KEY); never printed or stored")
    .option("--verifier-params <n>", "served verifier: parameter count, for FLOPs")
    .addOption(new Option("--verifier-format <format>", "served verifier: input and output convention (default qwen-prm)").choices([...VERIFIER_FORMATS]));
}

export interface LoadedModels {
  policy: Policy;
  verifier: StepVerifier | null;
  close(): Promise<void>;
}

const SIMULATED = /^rule@([^:]*)(?::seed=(.*))?$/;

/**
 * The simulated verifier a --verifier value names (`rule@0.8`, `rule@0.8:seed=3`), or null when it
 * names another verifier.
 */
export function parseSimulatedVerifier(value: string): { auc: number; noiseSeed: number } | null {
  const match = SIMULATED.exec(value);
  if (match === null) return null;
  const [, aucText = "", seedText] = match;
  const auc = aucText.trim() === "" ? Number.NaN : Number(aucText);
  if (!isSimulatedAuc(auc)) throw new InputError(`--verifier ${value}: a simulated verifier's AUC must be a number in (0.5, 1], got "${aucText}"`);
  const noiseSeed = seedText === undefined ? 0 : Number(seedText);
  if (seedText !== undefined && (seedText.trim() === "" || !Number.isInteger(noiseSeed))) {
    throw new InputError(`--verifier ${value}: the noise seed must be an integer, got "${seedText}"`);
  }
  return { auc, noiseSeed };
}

/** The --verifier value, once a simulated verifier's AUC and seed are checked (when it names one). */
function checkVerifierFlag(value: string): string {
  parseSimulatedVerifier(value);
  return value;
}

/** The options of local models: device, threads, what to do with a long problem, and `local`'s. */
function localOptions(flags: ModelFlags, local: Partial<LoadOptions>) {
  return {
    device: flags.device,
    ...(flags.threads ? { threads: flags.threads } : {}),
    ...(flags.truncateProblem ? { promptOverflow: "truncate" as const } : {}),
    ...local,
  };
}

/** Loads or connects the step verifier that --verifier names; null for none. */
export async function loadStepVerifier(flags: ModelFlags, local: Partial<LoadOptions> = {}): Promise<StepVerifier | null> {
  if (flags.verifier === "none") return null;
  if (flags.verifier === "rule") return new SynthRuleVerifier();
  const simulated = parseSimulatedVerifier(flags.verifier);
  if (simulated !== null) return new SimulatedRuleVerifier(simulated.auc, simulated.noiseSeed);
  if (isUrl(flags.verifier)) {
    return connectVerifier(urlsOf(flags.verifier), {
      model: flags.verifierModel,
      apiKey: flags.verifierApiKey ?? process.env.DELIBERATE_VERIFIER_API_KEY,
      parameters: flags.verifierParams ?? null,
      format: flags.verifierFormat,
    });
  }
  return loadVerifier(flags.verifier, localOptions(flags, local));
}

/** Loads or connects the models the flags name; `local` adds options for local models (`deliberate serve`'s --max-model-len). */
export async function loadModels(flags: ModelFlags, local: Partial<LoadOptions> = {}): Promise<LoadedModels> {
  const recursion = {
    ...(flags.exitThreshold !== undefined ? { exitThreshold: flags.exitThreshold } : {}),
    ...(flags.depthBatching !== undefined ? { depthBatching: flags.depthBatching } : {}),
  };
  if (isUrl(flags.policy) && Object.keys(recursion).length > 0) {
    throw new InputError("--exit-threshold and --depth-batching apply to a local recursive policy (--policy recursive), not to a served model");
  }
  const policy = isUrl(flags.policy)
    ? await connectPolicy(urlsOf(flags.policy), {
        model: flags.policyModel,
        apiKey: flags.policyApiKey ?? process.env.DELIBERATE_POLICY_API_KEY,
        parameters: flags.policyParams ?? null,
        stepDelimiter: flags.stepDelimiter === undefined ? undefined : unescape(flags.stepDelimiter),
        chatTemplate: flags.chatTemplate,
        promptMode: flags.policyPrompt,
        batchN: flags.policyBatchN,
      })
    : await loadPolicy(flags.policy, { ...localOptions(flags, local), ...recursion });
  let verifier: StepVerifier | null = null;
  try {
    verifier = await loadStepVerifier(flags, local);
  } catch (error) {
    await policy.close();
    throw error;
  }
  return {
    policy,
    verifier,
    async close() {
      await policy.close();
      await verifier?.close();
    },
  };
}
