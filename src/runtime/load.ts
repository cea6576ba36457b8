/**
 * Loading models: the embedded ones (shipped in models/) by name, or any model directory by path.
 * Each model gets its own worker thread.
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { InputError } from "../errors.js";
import { startWorker } from "../worker-threads.js";
import type { LoadParams, ModelInfo } from "./model-worker.js";
import { OnnxPolicy } from "./onnx-policy.js";
import { OnnxStepVerifier } from "./onnx-verifier.js";
import type { PromptOverflow } from "./prompt.js";
import type { Device } from "./session.js";
import { WorkerClient } from "./worker-client.js";

/** The embedded models, by the names the CLI and configs use. */
export const EMBEDDED_MODELS = {
  policy: "models/policy",
  baseline: "models/baseline",
  recursive: "models/recursive",
  prm: "models/prm",
  "prm-columns": "models/prm-columns",
  mod: "models/mod",
} as const;
export type EmbeddedModel = keyof typeof EMBEDDED_MODELS;

export interface LoadOptions {
  /** cpu (default), cuda, webgpu, or auto (the first that starts, else cpu). */
  device?: Device;
  /** Intra-op threads per model. Default: all cores. */
  threads?: number;
  /** Cap on the decoding state a policy holds, in bytes. Default 2 GiB. */
  maxStateBytes?: number;
  maxSequenceTokens?: number;
  /** Largest PRM batch in padded tokens. Default 16,384. */
  maxBatchTokens?: number;
  /**
   * A policy prompt longer than the model's limit (max_prefill_tokens, or max_position_embeddings):
   * "error" (default) refuses it with an InputError, "truncate" cuts the problem's end to fit.
   */
  promptOverflow?: PromptOverflow;
  /**
   * Recursive models (`recursive`, or a directory with `recursion` in config.json): a token leaves
   * the shared block after the first loop whose exit head's max softmax probability (temperature 1)
   * reaches this threshold, a number in (0, 1]; "off" runs every loop. Default: the model's
   * `recursion.exit.default_threshold`. An error for other models.
   */
  exitThreshold?: number | "off";
  /**
   * Recursive models with early exit: one run of the shared block over every branch at whatever loop
   * its token is at (true, the default), or one run per loop depth (false). Same tokens either way.
   * An error for other models.
   */
  depthBatching?: boolean;
}

/** Checks the recursive-model options; an InputError names the option and what it takes. */
export function checkRecursionOptions(options: Pick<LoadOptions, "exitThreshold" | "depthBatching">): void {
  const { exitThreshold, depthBatching } = options;
  if (exitThreshold !== undefined && exitThreshold !== "off" && !(typeof exitThreshold === "number" && exitThreshold > 0 && exitThreshold <= 1)) {
    throw new InputError(`exitThreshold must be a number in (0, 1] or "off", got ${JSON.stringify(exitThreshold)}`);
  }
  if (depthBatching !== undefined && typeof depthBatching !== "boolean") {
    throw new InputError(`depthBatching must be true or false, got ${JSON.stringify(depthBatching)}`);
  }
}

/** The package's root directory (where package.json and models/ are), from source or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json")) || JSON.parse(readFileSync(join(dir, "package.json"), "utf8")).name !== "deliberate") {
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the deliberate package root");
    dir = parent;
  }
  return dir;
}

/** A model directory from an embedded model's name (`policy`, `baseline`, `recursive`, `prm`, `prm-columns`, `mod`) or a path. */
export function resolveModel(source: string): string {
  if (source in EMBEDDED_MODELS) return join(packageRoot(), EMBEDDED_MODELS[source as EmbeddedModel]);
  return resolve(source);
}

async function loadInWorker(source: string, options: LoadOptions): Promise<{ client: WorkerClient; info: ModelInfo }> {
  checkRecursionOptions(options);
  const params: LoadParams = {
    dir: resolveModel(source),
    device: options.device ?? "cpu",
    maxStateBytes: options.maxStateBytes ?? 2 * 2 ** 30,
    maxBatchTokens: options.maxBatchTokens ?? 16_384,
    ...(options.threads ? { threads: options.threads } : {}),
    ...(options.maxSequenceTokens ? { maxSequenceTokens: options.maxSequenceTokens } : {}),
    ...(options.promptOverflow ? { promptOverflow: options.promptOverflow } : {}),
    ...(options.exitThreshold !== undefined ? { exitThreshold: options.exitThreshold } : {}),
    ...(options.depthBatching !== undefined ? { depthBatching: options.depthBatching } : {}),
  };
  const client = new WorkerClient(startWorker(import.meta.url, "model-worker"));
  try {
    return { client, info: await client.call("load", params) };
  } catch (error) {
    await client.close();
    throw new InputError((error as Error).message);
  }
}

/** A policy (decoder) model: `policy`, `baseline`, `recursive`, or a model directory (embedded or Hugging Face export). */
export async function loadPolicy(source: string, options: LoadOptions = {}): Promise<OnnxPolicy> {
  const { client, info } = await loadInWorker(source, options);
  if (info.kind !== "decoder") {
    await client.close();
    throw new InputError(`${source} is a process reward model, not a policy`);
  }
  return new OnnxPolicy(client, info);
}

/** A process reward model: `prm`, `prm-columns`, or a model directory. */
export async function loadVerifier(source: string, options: LoadOptions = {}): Promise<OnnxStepVerifier> {
  const { client, info } = await loadInWorker(source, options);
  if (info.kind !== "prm") {
    await client.close();
    throw new InputError(`${source} is a policy, not a process reward model`);
  }
  return new OnnxStepVerifier(client, info);
}
