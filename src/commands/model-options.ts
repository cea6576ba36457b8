/** The model flags shared by commands that run models: which policy, which verifier, which device. */
import { Command, Option } from "commander";
import type { Policy, StepVerifier } from "../policy.js";
import { loadPolicy, loadVerifier } from "../runtime/load.js";
import { DEVICES, type Device } from "../runtime/session.js";
import { SynthRuleVerifier } from "../../verifiers/synth-rule.js";
import { InputError } from "../errors.js";

export interface ModelFlags {
  policy: string;
  verifier: string;
  device: Device;
  threads?: number;
  /** Cut a problem too long for the policy instead of refusing it. */
  truncateProblem?: boolean;
}

export function positiveInteger(flag: string) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed <= 0) throw new InputError(`${flag} must be a positive integer, got "${value}"`);
    return parsed;
  };
}

export function addModelOptions(command: Command): Command {
  return command
    .option("--policy <model>", "policy model: policy (embedded recurrent), baseline (embedded transformer), or a model directory", "policy")
    .option("--verifier <model>", "step verifier: prm (embedded), rule (the synthetic task's exact checker), none, or a PRM directory", "prm")
    .addOption(new Option("--device <device>", "where models run (auto: the first GPU provider that starts, else cpu)").choices([...DEVICES]).default("cpu"))
    .option("--threads <n>", "intra-op threads per model (default: all cores)", positiveInteger("--threads"));
}

export interface LoadedModels {
  policy: Policy;
  verifier: StepVerifier | null;
  close(): Promise<void>;
}

export async function loadModels(flags: ModelFlags): Promise<LoadedModels> {
  const options = { device: flags.device, ...(flags.threads ? { threads: flags.threads } : {}), ...(flags.truncateProblem ? { promptOverflow: "truncate" as const } : {}) };
  const policy = await loadPolicy(flags.policy, options);
  let verifier: StepVerifier | null = null;
  try {
    if (flags.verifier === "rule") verifier = new SynthRuleVerifier();
    else if (flags.verifier !== "none") verifier = await loadVerifier(flags.verifier, options);
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
