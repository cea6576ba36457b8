/**
 * The model directories deliberate loads, validated with zod: the embedded models' config.json
 * (written by models/train/export.py) and Hugging Face decoder-only exports (optimum or
 * transformers.js layout: config.json with `model_type`, tokenizer.json, onnx/*.onnx).
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { z } from "zod";
import { describeZodError, InputError } from "../errors.js";
import { PRM_RENDERINGS } from "./prm-rendering.js";

const dimension = z.union([z.string(), z.number().int()]);
const tensorSpec = z.object({ name: z.string(), shape: z.array(dimension), dtype: z.string() });
const graphSpec = z.object({ file: z.string(), inputs: z.array(tensorSpec), outputs: z.array(tensorSpec) });

const stateSpec = z.object({ past: z.string(), present: z.string(), shape: z.array(dimension), dtype: z.literal("float32") });

/** A recursive model's extra section (models/train/export_recursive.py): the one-loop graph and early exit. */
export const recursionConfig = z.looseObject({
  loops: z.number().int().min(2),
  hidden_size: z.number().int().positive(),
  loop_graph: z.literal("loop"),
  /** The one-loop graph's state: entry k of loop l is config.state[l * loop_state.length + k]. */
  loop_state: z.array(stateSpec).min(1),
  /**
   * What a token that exits after loop l leaves in the later loops' state: nothing ("none", older
   * exports), or the state copy ("copy": copy_graph updates each later loop's state from the token's
   * hidden state at its exit).
   */
  exit: z.looseObject({ default_threshold: z.number().gt(0).lte(1), skipped: z.enum(["none", "copy"]).optional() }),
  copy_graph: z.literal("copy").optional(),
  flops_per_loop_token: z.number().positive(),
  /** FLOPs of one state copy (one skipped loop) for one token. */
  flops_per_copy_token: z.number().positive().optional(),
});
export type RecursionConfig = z.infer<typeof recursionConfig>;

/**
 * The interleaved revision layout (models/train/revision_layout.py): the prompt holds the problem
 * only, and before each step of the revised solution the runtime feeds `injected_line` with
 * `{previous_step}` standing for the previous attempt's step at that position (empty past its last
 * step), as forced tokens that are context, not part of the solution.
 */
export const interleavedRevisionFormat = z.strictObject({
  layout: z.literal("interleaved"),
  prompt: z.string().includes("{problem}"),
  injected_line: z.string().includes("{previous_step}"),
});
export type InterleavedRevisionFormat = z.infer<typeof interleavedRevisionFormat>;

/** The embedded prompt formats; `revision` is the flat template string or the interleaved layout. */
export const embeddedPromptFormat = z.looseObject({
  policy: z.string(),
  revision: z
    .union([z.string(), interleavedRevisionFormat], {
      error: 'expected a template string, or { layout: "interleaved", prompt: "...{problem}...", injected_line: "...{previous_step}..." }',
    })
    .optional(),
});
export type EmbeddedPromptFormat = z.infer<typeof embeddedPromptFormat>;

/** What every embedded decoder's config.json says, whatever its graphs. */
const embeddedDecoderFields = {
  name: z.string(),
  parameters: z.number().int().positive(),
  step_delimiter: z.string(),
  bos_token_id: z.number().int(),
  eos_token_id: z.number().int(),
  pad_token_id: z.number().int(),
  prompt_format: embeddedPromptFormat,
};

export const embeddedDecoderConfig = z.looseObject({
  ...embeddedDecoderFields,
  state: z.array(stateSpec),
  graphs: z.object({ prefill: graphSpec, decode: graphSpec, loop: graphSpec.optional(), copy: graphSpec.optional() }),
  max_prefill_tokens: z.number().int().positive().optional(),
  /** Recursive models only. */
  recursion: recursionConfig.optional(),
  /** Weights stored once beside the graphs (ONNX external data), when the graphs share them. */
  weights: z.looseObject({ file: z.string() }).optional(),
});
export type EmbeddedDecoderConfig = z.infer<typeof embeddedDecoderConfig>;

/**
 * A Mixture-of-Depths decoder (models/train/export_mod.py): segment graphs run in order, routed
 * blocks on the routed rows only; `flops` splits 2 x parameters per token into what every token
 * uses and what each routed block adds for the tokens that go through it.
 */
export const embeddedModConfig = z.looseObject({
  ...embeddedDecoderFields,
  architecture: z.looseObject({ d_model: z.number().int().positive(), heads: z.number().int().positive(), routed_blocks: z.array(z.number().int()) }),
  segments: z
    .array(
      z.object({
        kind: z.enum(["plain", "routed", "head"]),
        graph: z.string(),
        blocks: z.array(z.number().int()),
        embed: z.boolean().optional(),
        router_for: z.number().int().nullable().optional(),
        head: z.boolean().optional(),
      }),
    )
    .min(1),
  state: z.array(z.object({ past: z.string(), present: z.string(), shape: z.array(dimension), dtype: z.literal("float32"), block: z.number().int(), routed: z.boolean() })),
  graphs: z.record(z.string(), graphSpec),
  flops: z.object({ per_token: z.number().positive(), per_routed_block: z.record(z.string(), z.number().nonnegative()) }),
  max_prefill_tokens: z.number().int().positive().optional(),
});
export type EmbeddedModConfig = z.infer<typeof embeddedModConfig>;

export const embeddedPrmConfig = z.looseObject({
  name: z.string(),
  parameters: z.number().int().positive(),
  step_delimiter: z.string(),
  bos_token_id: z.number().int(),
  pad_token_id: z.number().int(),
  graphs: z.object({ scores: graphSpec }),
  max_sequence_tokens: z.number().int().positive().optional(),
  /** How the model reads a step (models/train/render.py); absent: `ordinary`, the steps as written. */
  rendering: z.enum(PRM_RENDERINGS).optional(),
});
export type EmbeddedPrmConfig = z.infer<typeof embeddedPrmConfig>;

/** The fields of a Hugging Face config.json that the runtime needs for a decoder with a KV cache. */
export const huggingFaceConfig = z.looseObject({
  model_type: z.string(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().optional(),
  hidden_size: z.number().int().positive(),
  head_dim: z.number().int().positive().optional(),
  vocab_size: z.number().int().positive(),
  eos_token_id: z.union([z.number().int(), z.array(z.number().int())]).optional(),
  bos_token_id: z.number().int().nullable().optional(),
  max_position_embeddings: z.number().int().positive().optional(),
});
export type HuggingFaceConfig = z.infer<typeof huggingFaceConfig>;

export type ModelDirectory =
  | { kind: "embedded-decoder"; dir: string; config: EmbeddedDecoderConfig; tokenizer: unknown }
  | { kind: "embedded-prm"; dir: string; config: EmbeddedPrmConfig; tokenizer: unknown }
  | { kind: "embedded-mod"; dir: string; config: EmbeddedModConfig; tokenizer: unknown }
  | { kind: "hf-decoder"; dir: string; config: HuggingFaceConfig; tokenizer: unknown; tokenizerConfig: Record<string, unknown>; graph: string };

function readJson(path: string, what: string): unknown {
  if (!existsSync(path)) throw new InputError(`${what} is missing: ${path}`);
  try {
    return JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new InputError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
}

function parse<T>(schema: z.ZodType<T>, value: unknown, path: string): T {
  const result = schema.safeParse(value);
  if (!result.success) throw new InputError(`${path}: ${describeZodError(result.error)}`);
  return result.data;
}

/** Which ONNX file of a Hugging Face export to use: the merged decoder first, then the plain one. */
const HF_GRAPHS = ["onnx/decoder_model_merged.onnx", "onnx/model.onnx", "decoder_model_merged.onnx", "model.onnx"];

/** Reads and validates a model directory; errors name the file and what is wrong with it. */
export function readModelDirectory(dir: string): ModelDirectory {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`model directory not found: ${dir}`);
  const configPath = join(dir, "config.json");
  const raw = readJson(configPath, "config.json");
  const tokenizer = readJson(join(dir, "tokenizer.json"), "tokenizer.json");
  const fields = (raw ?? {}) as Record<string, unknown>;
  if (typeof fields.model_type === "string") {
    const config = parse(huggingFaceConfig, raw, configPath);
    const graph = HF_GRAPHS.map((file) => join(dir, file)).find((path) => existsSync(path));
    if (!graph) throw new InputError(`${dir} has no ONNX decoder (looked for ${HF_GRAPHS.join(", ")})`);
    const tokenizerConfigPath = join(dir, "tokenizer_config.json");
    const tokenizerConfig = existsSync(tokenizerConfigPath) ? (readJson(tokenizerConfigPath, "tokenizer_config.json") as Record<string, unknown>) : {};
    return { kind: "hf-decoder", dir, config, tokenizer, tokenizerConfig, graph };
  }
  const graphs = fields.graphs as Record<string, unknown> | undefined;
  if (graphs && "scores" in graphs) {
    const config = parse(embeddedPrmConfig, raw, configPath);
    requireFiles(dir, [config.graphs.scores.file]);
    return { kind: "embedded-prm", dir, config, tokenizer };
  }
  if (graphs && Array.isArray(fields.segments)) {
    const config = parse(embeddedModConfig, raw, configPath);
    for (const segment of config.segments) {
      if (!(segment.graph in config.graphs)) throw new InputError(`${configPath}: segment graph ${segment.graph} is not in graphs`);
    }
    requireFiles(dir, Object.values(config.graphs).map((graph) => graph.file));
    return { kind: "embedded-mod", dir, config, tokenizer };
  }
  if (graphs && "decode" in graphs) {
    const config = parse(embeddedDecoderConfig, raw, configPath);
    if (config.recursion) {
      if (!config.graphs.loop) throw new InputError(`${configPath}: a recursive model (recursion) needs graphs.loop`);
      if (config.recursion.exit.skipped === "copy" && (!config.graphs.copy || config.recursion.flops_per_copy_token === undefined)) {
        throw new InputError(`${configPath}: a recursive model with the state copy (recursion.exit.skipped "copy") needs graphs.copy and recursion.flops_per_copy_token`);
      }
      const { loops, loop_state: loopState } = config.recursion;
      if (config.state.length !== loops * loopState.length) {
        throw new InputError(`${configPath}: state has ${config.state.length} tensors, expected loops x loop_state = ${loops} x ${loopState.length}`);
      }
    }
    requireFiles(dir, decoderFiles(config));
    return { kind: "embedded-decoder", dir, config, tokenizer };
  }
  throw new InputError(
    `${configPath} describes neither a deliberate model (graphs.prefill/decode or graphs.scores) nor a Hugging Face model (model_type)`,
  );
}

/** An embedded decoder's graph files and its shared weights file, if any. */
function decoderFiles(config: EmbeddedDecoderConfig): string[] {
  const { prefill, decode, loop, copy } = config.graphs;
  return [prefill.file, decode.file, ...(loop ? [loop.file] : []), ...(copy ? [copy.file] : []), ...(config.weights ? [config.weights.file] : [])];
}

/** The files a model is loaded from: config, tokenizer files and graphs (with external weight data). */
export function modelFiles(model: ModelDirectory): string[] {
  const jsonFiles = ["config.json", "tokenizer.json"].map((file) => join(model.dir, file));
  if (model.kind === "embedded-prm") return [...jsonFiles, join(model.dir, model.config.graphs.scores.file)];
  if (model.kind === "embedded-mod") return [...jsonFiles, ...Object.values(model.config.graphs).map((graph) => join(model.dir, graph.file))];
  if (model.kind === "embedded-decoder") {
    return [...jsonFiles, ...decoderFiles(model.config).map((file) => join(model.dir, file))];
  }
  const tokenizerConfig = join(model.dir, "tokenizer_config.json");
  // An export over 2 GB keeps its weights beside the graph (model.onnx_data, model.onnx.data, ...).
  const graphDir = dirname(model.graph);
  const weights = readdirSync(graphDir)
    .filter((name) => name.startsWith(basename(model.graph)))
    .sort()
    .map((name) => join(graphDir, name));
  return [...jsonFiles, ...(existsSync(tokenizerConfig) ? [tokenizerConfig] : []), ...weights];
}

/**
 * A SHA-256 over a model's files (names and contents): what a benchmark run records, so that it
 * does not resume with other weights after a retrain. Reading the files costs about what loading them does.
 */
export async function fingerprintModel(model: ModelDirectory): Promise<string> {
  const hash = createHash("sha256");
  for (const file of modelFiles(model)) {
    hash.update(`${basename(file)}\0`);
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  }
  return `sha256:${hash.digest("hex")}`;
}

function requireFiles(dir: string, files: string[]): void {
  for (const file of files) {
    if (!existsSync(join(dir, file))) throw new InputError(`${join(dir, file)} is missing (named in config.json)`);
  }
}

/** Checks that an ONNX session's inputs and outputs are the ones config.json names. */
export function checkGraphNames(
  graph: { inputs: { name: string }[]; outputs: { name: string }[] },
  session: { inputNames: readonly string[]; outputNames: readonly string[] },
  where: string,
): void {
  const missing = (expected: string[], actual: readonly string[]) => expected.filter((name) => !actual.includes(name));
  const inputs = missing(graph.inputs.map((t) => t.name), session.inputNames);
  const outputs = missing(graph.outputs.map((t) => t.name), session.outputNames);
  if (inputs.length > 0 || outputs.length > 0) {
    throw new InputError(
      `${where}: the ONNX graph does not match config.json` +
        (inputs.length ? `; missing inputs ${inputs.join(", ")} (graph has ${session.inputNames.join(", ")})` : "") +
        (outputs.length ? `; missing outputs ${outputs.join(", ")} (graph has ${session.outputNames.join(", ")})` : ""),
    );
  }
}
