/**
 * The decoder graphs behind one interface: the embedded models' prefill and decode graphs (state
 * masked by position), and Hugging Face optimum exports (one merged graph with an attention mask and
 * `use_cache_branch`). The engine above never sees ONNX names.
 */
import * as ort from "onnxruntime-node";
import { join } from "node:path";
import { InputError } from "../errors.js";
import type { EmbeddedDecoderConfig, HuggingFaceConfig } from "./model-config.js";
import { checkGraphNames } from "./model-config.js";
import { openSession, type Device, type SessionSettings } from "./session.js";
import { batchState, unbatchState, type StateLayout } from "./state.js";

export interface StepOutput {
  /** Next-token logits per sequence. */
  logits: Float32Array[];
  /** New state per sequence (one tensor per layout). */
  states: Float32Array[][];
  /** Mixture-of-Depths graphs: per sequence, 1 for each routed block (in `routedBlocks` order) the token went through, else 0. */
  routed?: number[][];
}

export interface DecoderGraphs {
  readonly layouts: readonly StateLayout[];
  readonly device: Exclude<Device, "auto">;
  /** Mixture-of-Depths graphs: the routed blocks, whose tokens are counted in `routed`. */
  readonly routedBlocks?: readonly number[];
  /** Runs a whole prompt (one sequence); returns the logits after its last token and the state (and, for routed blocks, how many prompt tokens went through each). */
  prefill(tokens: readonly number[]): Promise<{ logits: Float32Array; state: Float32Array[]; routed?: number[] }>;
  /** Feeds one token to each sequence; `lengths` are the tokens each has consumed so far. */
  step(tokens: readonly number[], states: readonly Float32Array[][], lengths: readonly number[]): Promise<StepOutput>;
  release(): Promise<void>;
}

const int64 = (values: readonly number[], dims: number[]) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);

function layoutDims(layout: StateLayout, length: number): number[] {
  return layout.dims.map((dim, axis) => (axis === layout.growAxis ? length : dim));
}

function pastTensors(layouts: readonly StateLayout[], states: readonly Float32Array[][], lengths: readonly number[]) {
  const maxLength = Math.max(...lengths);
  const feeds: Record<string, ort.Tensor> = {};
  layouts.forEach((layout, i) => {
    const tensors = states.map((state) => state[i] as Float32Array);
    feeds[layout.past] = new ort.Tensor("float32", batchState(layout, tensors, lengths, maxLength), [states.length, ...layoutDims(layout, maxLength)]);
  });
  return { feeds, maxLength };
}

function splitOutputs(layouts: readonly StateLayout[], outputs: ort.InferenceSession.OnnxValueMapType, lengths: readonly number[], maxLength: number): StepOutput {
  const logitsTensor = outputs.logits as ort.Tensor;
  const vocab = logitsTensor.dims[logitsTensor.dims.length - 1] as number;
  const logitsData = logitsTensor.data as Float32Array;
  const logits = lengths.map((_, b) => logitsData.subarray(b * vocab, (b + 1) * vocab));
  const states = lengths.map((length, b) =>
    layouts.map((layout) => unbatchState(layout, (outputs[layout.present] as ort.Tensor).data as Float32Array, b, length + 1, maxLength + 1)),
  );
  return { logits, states };
}

/** The last row of [1, T, V] logits, copied so the output buffer can go. */
function lastLogits(tensor: ort.Tensor): Float32Array {
  const vocab = tensor.dims[tensor.dims.length - 1] as number;
  const data = tensor.data as Float32Array;
  return data.slice(data.length - vocab);
}

/** A state tensor's layout from its config entry (shape with the batch axis first; a symbolic dimension grows). */
function layoutOf(spec: { past: string; present: string; shape: (string | number)[] }): StateLayout {
  const dims = spec.shape.slice(1);
  const growAxis = dims.findIndex((dim) => typeof dim === "string");
  return { past: spec.past, present: spec.present, dims: dims.map((dim) => (typeof dim === "number" ? dim : 0)), growAxis: growAxis === -1 ? null : growAxis };
}

export class EmbeddedGraphs implements DecoderGraphs {
  private constructor(
    private readonly prefillSession: ort.InferenceSession,
    private readonly decodeSession: ort.InferenceSession,
    readonly layouts: StateLayout[],
    readonly device: Exclude<Device, "auto">,
  ) {}

  static async open(dir: string, config: EmbeddedDecoderConfig, settings: SessionSettings): Promise<EmbeddedGraphs> {
    const prefill = await openSession(join(dir, config.graphs.prefill.file), settings);
    const decode = await openSession(join(dir, config.graphs.decode.file), { ...settings, device: prefill.device });
    checkGraphNames(config.graphs.prefill, prefill.session, join(dir, config.graphs.prefill.file));
    checkGraphNames(config.graphs.decode, decode.session, join(dir, config.graphs.decode.file));
    return new EmbeddedGraphs(prefill.session, decode.session, config.state.map(layoutOf), prefill.device);
  }

  async prefill(tokens: readonly number[]) {
    const outputs = await this.prefillSession.run({
      input_ids: int64(tokens, [1, tokens.length]),
      position_ids: int64(tokens.map((_, i) => i), [1, tokens.length]),
    });
    const state = this.layouts.map((layout) => (outputs[layout.present] as ort.Tensor).data as Float32Array);
    return { logits: lastLogits(outputs.logits as ort.Tensor), state };
  }

  async step(tokens: readonly number[], states: readonly Float32Array[][], lengths: readonly number[]) {
    const { feeds, maxLength } = pastTensors(this.layouts, states, lengths);
    const outputs = await this.decodeSession.run({
      ...feeds,
      input_ids: int64(tokens, [tokens.length, 1]),
      position_ids: int64(lengths, [tokens.length, 1]),
    });
    return splitOutputs(this.layouts, outputs, lengths, maxLength);
  }

  async release() {
    await this.prefillSession.release();
    await this.decodeSession.release();
  }
}

/**
 * A Hugging Face decoder exported by optimum (or for transformers.js): `input_ids`,
 * `attention_mask`, `position_ids`, `past_key_values.{i}.key|value` to `logits`,
 * `present.{i}.key|value`; a merged decoder also takes `use_cache_branch`.
 */
export class HuggingFaceGraphs implements DecoderGraphs {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly layouts: StateLayout[],
    readonly device: Exclude<Device, "auto">,
  ) {}

  static async open(graph: string, config: HuggingFaceConfig, settings: SessionSettings): Promise<HuggingFaceGraphs> {
    const { session, device } = await openSession(graph, settings);
    const kvHeads = config.num_key_value_heads ?? config.num_attention_heads;
    const headDim = config.head_dim ?? config.hidden_size / config.num_attention_heads;
    const layouts: StateLayout[] = [];
    for (let i = 0; i < config.num_hidden_layers; i++) {
      for (const part of ["key", "value"]) {
        layouts.push({ past: `past_key_values.${i}.${part}`, present: `present.${i}.${part}`, dims: [kvHeads, 0, headDim], growAxis: 1 });
      }
    }
    const expected = ["input_ids", "attention_mask", ...layouts.map((layout) => layout.past)];
    const missing = expected.filter((name) => !session.inputNames.includes(name));
    if (missing.length > 0 || !session.outputNames.includes("logits")) {
      throw new InputError(
        `${graph} does not look like a decoder with a KV cache for ${config.num_hidden_layers} layers: ` +
          `missing ${[...missing, ...(session.outputNames.includes("logits") ? [] : ["logits (output)"])].join(", ")}`,
      );
    }
    return new HuggingFaceGraphs(session, layouts, device);
  }

  /** A merged decoder picks its branch by `use_cache_branch`: false for the prompt, true with a cache. */
  private cacheBranch(useCache: boolean): Record<string, ort.Tensor> {
    return this.session.inputNames.includes("use_cache_branch") ? { use_cache_branch: new ort.Tensor("bool", [useCache], [1]) } : {};
  }

  async prefill(tokens: readonly number[]) {
    const inputs: Record<string, ort.Tensor> = { ...this.cacheBranch(false) };
    for (const layout of this.layouts) inputs[layout.past] = new ort.Tensor("float32", new Float32Array(0), [1, ...layoutDims(layout, 0)]);
    Object.assign(inputs, {
      input_ids: int64(tokens, [1, tokens.length]),
      attention_mask: int64(tokens.map(() => 1), [1, tokens.length]),
    });
    if (this.session.inputNames.includes("position_ids")) inputs.position_ids = int64(tokens.map((_, i) => i), [1, tokens.length]);
    const outputs = await this.session.run(inputs);
    const state = this.layouts.map((layout) => (outputs[layout.present] as ort.Tensor).data as Float32Array);
    return { logits: lastLogits(outputs.logits as ort.Tensor), state };
  }

  async step(tokens: readonly number[], states: readonly Float32Array[][], lengths: readonly number[]) {
    const { feeds, maxLength } = pastTensors(this.layouts, states, lengths);
    // Padded cache slots (left of a shorter sequence) are masked out.
    const mask = lengths.flatMap((length) => Array.from({ length: maxLength + 1 }, (_, j) => (j >= maxLength - length ? 1 : 0)));
    const inputs: Record<string, ort.Tensor> = {
      ...feeds,
      ...this.cacheBranch(true),
      input_ids: int64(tokens, [tokens.length, 1]),
      attention_mask: int64(mask, [tokens.length, maxLength + 1]),
    };
    if (this.session.inputNames.includes("position_ids")) inputs.position_ids = int64(lengths, [tokens.length, 1]);
    const outputs = await this.session.run(inputs);
    return splitOutputs(this.layouts, outputs, lengths, maxLength);
  }

  async release() {
    await this.session.release();
  }
}

/** One row of a run of a recursive model's one-loop graph. */
export interface LoopRow {
  /** The token being decoded (read at loop 0). */
  token: number;
  /** The previous loop's hidden state for this token (loops after 0); null at loop 0. */
  hidden: Float32Array | null;
  loop: number;
  /** The state of the row's own loop (one tensor per loop layout). */
  state: readonly Float32Array[];
  /** The token's position. */
  position: number;
}

/** One row of a run of the state-copy graph: a skipped loop's state updated from a token's exit hidden state. */
export interface CopyRow {
  /** The token's hidden state after the loop it exited at. */
  hidden: Float32Array;
  /** The skipped loop whose state is copied into. */
  loop: number;
  /** That loop's state (one tensor per loop layout). */
  state: readonly Float32Array[];
  /** The token's position. */
  position: number;
}

export interface LoopOutput {
  hidden: Float32Array[];
  /** The exit head's logits after the row's loop. */
  logits: Float32Array[];
  /** The row's loop's new state. */
  states: Float32Array[][];
}

/**
 * A recursive model's one-loop graph (loop.onnx): one loop of the shared block for a batch of rows,
 * each at its own loop with that loop's state; rows at loop 0 embed their token, later rows take the
 * previous loop's hidden state. One run can hold rows at every loop (depth-wise batching).
 */
export class LoopGraph {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** The state-copy graph (copy.onnx), when the model has the state copy. */
    private readonly copySession: ort.InferenceSession | null,
    /** Layouts of one loop's state (all fixed-size). */
    readonly layouts: StateLayout[],
    readonly loops: number,
    readonly hiddenSize: number,
  ) {}

  static async open(dir: string, config: EmbeddedDecoderConfig, settings: SessionSettings & { device: Exclude<Device, "auto"> }): Promise<LoopGraph> {
    const { recursion, graphs } = config;
    if (!recursion || !graphs.loop) throw new InputError(`${dir}/config.json describes no recursive model (recursion, graphs.loop)`);
    const path = join(dir, graphs.loop.file);
    const { session } = await openSession(path, settings);
    checkGraphNames(graphs.loop, session, path);
    const layouts = recursion.loop_state.map(layoutOf);
    const growing = layouts.find((layout) => layout.growAxis !== null);
    if (growing) throw new InputError(`${path}: loop state ${growing.past} grows with the sequence; the recursive runtime needs fixed-size state`);
    let copySession: ort.InferenceSession | null = null;
    if (recursion.exit.skipped === "copy" && graphs.copy) {
      const copyPath = join(dir, graphs.copy.file);
      copySession = (await openSession(copyPath, settings)).session;
      checkGraphNames(graphs.copy, copySession, copyPath);
    }
    return new LoopGraph(session, copySession, layouts, recursion.loops, recursion.hidden_size);
  }

  /** Whether an exited token's skipped loops get the state copy (`copy`). */
  get copies(): boolean {
    return this.copySession !== null;
  }

  /** The state copy for a batch of rows, each a skipped loop of an exited token: each row's loop's new state. */
  async copy(rows: readonly CopyRow[]): Promise<Float32Array[][]> {
    if (!this.copySession) throw new Error("this recursive model has no state-copy graph");
    const B = rows.length;
    const D = this.hiddenSize;
    const hidden = new Float32Array(B * D);
    rows.forEach((row, b) => hidden.set(row.hidden, b * D));
    const feeds: Record<string, ort.Tensor> = {
      hidden: new ort.Tensor("float32", hidden, [B, 1, D]),
      loop: int64(rows.map((row) => row.loop), [B]),
      position_ids: int64(rows.map((row) => row.position), [B, 1]),
    };
    this.layouts.forEach((layout, k) => {
      feeds[layout.past] = new ort.Tensor("float32", batchState(layout, rows.map((row) => row.state[k] as Float32Array), [], 0), [B, ...layout.dims]);
    });
    const outputs = await this.copySession.run(feeds);
    return rows.map((_, b) => this.layouts.map((layout) => unbatchState(layout, (outputs[layout.present] as ort.Tensor).data as Float32Array, b, 0, 0)));
  }

  async run(rows: readonly LoopRow[]): Promise<LoopOutput> {
    const B = rows.length;
    const D = this.hiddenSize;
    const hidden = new Float32Array(B * D);
    rows.forEach((row, b) => {
      if (row.hidden) hidden.set(row.hidden, b * D);
    });
    const feeds: Record<string, ort.Tensor> = {
      input_ids: int64(rows.map((row) => row.token), [B, 1]),
      hidden: new ort.Tensor("float32", hidden, [B, 1, D]),
      loop: int64(rows.map((row) => row.loop), [B]),
      position_ids: int64(rows.map((row) => row.position), [B, 1]),
    };
    this.layouts.forEach((layout, k) => {
      feeds[layout.past] = new ort.Tensor("float32", batchState(layout, rows.map((row) => row.state[k] as Float32Array), [], 0), [B, ...layout.dims]);
    });
    const outputs = await this.session.run(feeds);
    const hiddenOut = (outputs.hidden_out as ort.Tensor).data as Float32Array;
    const logitsTensor = outputs.logits as ort.Tensor;
    const vocab = logitsTensor.dims[logitsTensor.dims.length - 1] as number;
    const logits = logitsTensor.data as Float32Array;
    return {
      hidden: rows.map((_, b) => hiddenOut.subarray(b * D, (b + 1) * D)),
      logits: rows.map((_, b) => logits.subarray(b * vocab, (b + 1) * vocab)),
      states: rows.map((_, b) => this.layouts.map((layout) => unbatchState(layout, (outputs[layout.present] as ort.Tensor).data as Float32Array, b, 0, 0))),
    };
  }

  async release() {
    await this.session.release();
    await this.copySession?.release();
  }
}
