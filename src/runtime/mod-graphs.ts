/**
 * A Mixture-of-Depths decoder (models/train/export_mod.py) run as segment graphs, so that a routed
 * block really skips the rows its router sends around it:
 *
 * - a plain segment (embeddings and/or plain blocks) runs on every row and returns the hidden
 *   states and the router logit of the routed block that follows;
 * - a routed segment runs on the rows whose logit is above 0 only, gathered into a smaller batch
 *   with their own caches; it returns x + sigmoid(logit) * (block(x) - x), scattered back; the
 *   other rows keep x and their cache of that block does not grow;
 * - a head segment (final norm and output layer) runs on every row.
 *
 * A routed block's cache holds only the tokens that went through it, so each row has its own cache
 * length per routed block, read from the tensor's size. Rows of different lengths are batched
 * right-aligned with an attention mask (0 on the padding). The prompt is prefilled the same way:
 * each routed block gets only the prompt tokens its router chose.
 */
import * as ort from "onnxruntime-node";
import { join } from "node:path";
import type { EmbeddedModConfig } from "./model-config.js";
import { checkGraphNames } from "./model-config.js";
import type { DecoderGraphs, StepOutput } from "./graphs.js";
import { openSession, type Device, type SessionSettings } from "./session.js";
import { batchState, unbatchState, type StateLayout } from "./state.js";

interface Segment {
  kind: "plain" | "routed" | "head";
  session: ort.InferenceSession;
  blocks: number[];
  embed: boolean;
  /** The plain segment's last output is the logits (no routed block after it). */
  head: boolean;
  /** State layout indices (key, value) of each block. */
  layouts: [number, number][];
  /** Index of the block in routedBlocks (routed segments). */
  routedIndex: number;
}

function int64(values: ArrayLike<number>, dims: number[]): ort.Tensor {
  const data = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = BigInt(values[i] as number);
  return new ort.Tensor("int64", data, dims);
}

export class ModGraphs implements DecoderGraphs {
  /** Floats per cache slot of one block (heads x head size). */
  private readonly slot: number;

  private constructor(
    private readonly segments: Segment[],
    readonly layouts: StateLayout[],
    readonly routedBlocks: readonly number[],
    private readonly width: number,
    readonly device: Exclude<Device, "auto">,
  ) {
    const layout = layouts[0] as StateLayout;
    this.slot = layout.dims.reduce((product, dim, axis) => (axis === layout.growAxis ? product : product * dim), 1);
  }

  static async open(dir: string, config: EmbeddedModConfig, settings: SessionSettings): Promise<ModGraphs> {
    const layouts = config.state.map((spec): StateLayout => {
      const dims = spec.shape.slice(1);
      const growAxis = dims.findIndex((dim) => typeof dim === "string");
      return { past: spec.past, present: spec.present, dims: dims.map((dim) => (typeof dim === "number" ? dim : 0)), growAxis: growAxis === -1 ? null : growAxis };
    });
    const layoutOf = (block: number, part: "key" | "value") => {
      const index = config.state.findIndex((spec) => spec.block === block && spec.past.endsWith(`.${part}`));
      if (index === -1) throw new Error(`${join(dir, "config.json")}: no ${part} state for block ${block}`);
      return index;
    };
    const routedBlocks = config.architecture.routed_blocks;
    let device: Exclude<Device, "auto"> = settings.device === "auto" ? "cpu" : settings.device;
    const segments: Segment[] = [];
    for (const [n, spec] of config.segments.entries()) {
      const graph = config.graphs[spec.graph];
      if (!graph) throw new Error(`${join(dir, "config.json")}: no graph ${spec.graph}`);
      const path = join(dir, graph.file);
      // The first graph picks the device (auto resolves there); the others follow it.
      // Seven sessions take turns: their idle threads must not spin (see SessionSettings.spinning).
      const opened = await openSession(path, { ...settings, spinning: false, ...(n === 0 ? {} : { device }) });
      device = opened.device;
      checkGraphNames(graph, opened.session, path);
      segments.push({
        kind: spec.kind,
        session: opened.session,
        blocks: spec.blocks,
        embed: spec.embed ?? false,
        head: spec.head ?? false,
        layouts: spec.blocks.map((block) => [layoutOf(block, "key"), layoutOf(block, "value")]),
        routedIndex: spec.kind === "routed" ? routedBlocks.indexOf(spec.blocks[0] as number) : -1,
      });
    }
    return new ModGraphs(segments, layouts, routedBlocks, config.architecture.d_model, device);
  }

  /** Slots in one sequence's cache tensor. */
  private cacheLength(tensor: Float32Array): number {
    return tensor.length / this.slot;
  }

  /** Past tensors of some blocks for a batch of rows, right-aligned, and the attention mask over past + `steps` new tokens. */
  private pastFeeds(segment: Segment, states: readonly Float32Array[][], steps: number) {
    const [keyIndex] = segment.layouts[0] as [number, number];
    const lengths = states.map((state) => this.cacheLength(state[keyIndex] as Float32Array));
    const maxLength = Math.max(...lengths);
    const feeds: Record<string, ort.Tensor> = {};
    for (const pair of segment.layouts) {
      for (const index of pair) {
        const layout = this.layouts[index] as StateLayout;
        const tensors = states.map((state) => state[index] as Float32Array);
        const dims = layout.dims.map((dim, axis) => (axis === layout.growAxis ? maxLength : dim));
        feeds[layout.past] = new ort.Tensor("float32", batchState(layout, tensors, lengths, maxLength), [states.length, ...dims]);
      }
    }
    // 1 on each row's own slots and the new tokens, 0 on the padding before them.
    const width = maxLength + steps;
    const mask = new BigInt64Array(states.length * width);
    lengths.forEach((length, b) => mask.fill(1n, b * width + maxLength - length, (b + 1) * width));
    feeds.attention_mask = new ort.Tensor("int64", mask, [states.length, width]);
    return { feeds, lengths, maxLength };
  }

  /** Writes a segment's present tensors into the rows' states (new arrays; nothing is written in place). */
  private storePresent(segment: Segment, outputs: ort.InferenceSession.OnnxValueMapType, states: Float32Array[][], lengths: readonly number[], maxLength: number, steps: number) {
    for (const pair of segment.layouts) {
      for (const index of pair) {
        const layout = this.layouts[index] as StateLayout;
        const data = (outputs[layout.present] as ort.Tensor).data as Float32Array;
        states.forEach((state, b) => {
          state[index] = unbatchState(layout, data, b, (lengths[b] as number) + steps, maxLength + steps);
        });
      }
    }
  }

  async prefill(tokens: readonly number[]) {
    const T = tokens.length;
    const state = this.layouts.map(() => new Float32Array(0));
    const routed = this.routedBlocks.map(() => 0);
    const positions = tokens.map((_, t) => t);
    let hidden: Float32Array | null = null;
    let logit: Float32Array | null = null;
    let logits: Float32Array | null = null;
    for (const segment of this.segments) {
      if (segment.kind === "routed") {
        const rows = positions.filter((t) => (logit as Float32Array)[t] as number > 0);
        routed[segment.routedIndex] = rows.length;
        if (rows.length === 0) continue;
        const x = hidden as Float32Array;
        const { feeds, lengths, maxLength } = this.pastFeeds(segment, [state], rows.length);
        const outputs = await segment.session.run({
          ...feeds,
          hidden_states: new ort.Tensor("float32", gatherRows(x, rows, this.width), [1, rows.length, this.width]),
          router_logits: new ort.Tensor("float32", Float32Array.from(rows, (t) => (logit as Float32Array)[t] as number), [1, rows.length]),
          position_ids: int64(rows, [1, rows.length]),
        });
        const wrapped = [state];
        this.storePresent(segment, outputs, wrapped, lengths, maxLength, rows.length);
        hidden = scatterRows(x, (outputs.hidden_states_out as ort.Tensor).data as Float32Array, rows, this.width);
      } else if (segment.kind === "head") {
        const x = hidden as Float32Array;
        const outputs = await segment.session.run({ hidden_states: new ort.Tensor("float32", x.slice((T - 1) * this.width), [1, 1, this.width]) });
        logits = ((outputs.logits as ort.Tensor).data as Float32Array).slice();
      } else {
        const { feeds, lengths, maxLength } = this.pastFeeds(segment, [state], T);
        const input = segment.embed ? int64(tokens, [1, T]) : new ort.Tensor("float32", hidden as Float32Array, [1, T, this.width]);
        const outputs = await segment.session.run({ ...feeds, [segment.embed ? "input_ids" : "hidden_states"]: input, position_ids: int64(positions, [1, T]) });
        this.storePresent(segment, outputs, [state], lengths, maxLength, T);
        if (segment.head) {
          const data = (outputs.logits as ort.Tensor).data as Float32Array;
          logits = data.slice(data.length - data.length / T);
        } else {
          hidden = (outputs.hidden_states_out as ort.Tensor).data as Float32Array;
          logit = (outputs.router_logits as ort.Tensor).data as Float32Array;
        }
      }
    }
    return { logits: logits as Float32Array, state, routed };
  }

  async step(tokens: readonly number[], states: readonly Float32Array[][], lengths: readonly number[]): Promise<StepOutput> {
    const B = tokens.length;
    const next = states.map((state) => [...state]);
    const routed = tokens.map(() => this.routedBlocks.map(() => 0));
    let hidden: Float32Array | null = null;
    let logit: Float32Array | null = null;
    let logits: Float32Array | null = null;
    for (const segment of this.segments) {
      if (segment.kind === "routed") {
        const rows: number[] = [];
        for (let b = 0; b < B; b++) if (((logit as Float32Array)[b] as number) > 0) rows.push(b);
        if (rows.length === 0) continue;
        const x = hidden as Float32Array;
        const rowStates = rows.map((b) => next[b] as Float32Array[]);
        const { feeds, lengths: cacheLengths, maxLength } = this.pastFeeds(segment, rowStates, 1);
        const outputs = await segment.session.run({
          ...feeds,
          hidden_states: new ort.Tensor("float32", gatherRows(x, rows, this.width), [rows.length, 1, this.width]),
          router_logits: new ort.Tensor("float32", Float32Array.from(rows, (b) => (logit as Float32Array)[b] as number), [rows.length, 1]),
          position_ids: int64(rows.map((b) => lengths[b] as number), [rows.length, 1]),
        });
        this.storePresent(segment, outputs, rowStates, cacheLengths, maxLength, 1);
        hidden = scatterRows(x, (outputs.hidden_states_out as ort.Tensor).data as Float32Array, rows, this.width);
        for (const b of rows) (routed[b] as number[])[segment.routedIndex] = 1;
      } else if (segment.kind === "head") {
        const outputs = await segment.session.run({ hidden_states: new ort.Tensor("float32", hidden as Float32Array, [B, 1, this.width]) });
        logits = (outputs.logits as ort.Tensor).data as Float32Array;
      } else {
        const { feeds, lengths: cacheLengths, maxLength } = this.pastFeeds(segment, next, 1);
        const input = segment.embed ? int64(tokens, [B, 1]) : new ort.Tensor("float32", hidden as Float32Array, [B, 1, this.width]);
        const outputs = await segment.session.run({ ...feeds, [segment.embed ? "input_ids" : "hidden_states"]: input, position_ids: int64(lengths, [B, 1]) });
        this.storePresent(segment, outputs, next, cacheLengths, maxLength, 1);
        if (segment.head) {
          logits = (outputs.logits as ort.Tensor).data as Float32Array;
        } else {
          hidden = (outputs.hidden_states_out as ort.Tensor).data as Float32Array;
          logit = (outputs.router_logits as ort.Tensor).data as Float32Array;
        }
      }
    }
    const all = logits as Float32Array;
    const vocab = all.length / B;
    return { logits: tokens.map((_, b) => all.subarray(b * vocab, (b + 1) * vocab)), states: next, routed };
  }

  async release() {
    for (const segment of this.segments) await segment.session.release();
  }
}

/** Rows `rows` of a [rows, width] matrix, packed. */
function gatherRows(x: Float32Array, rows: readonly number[], width: number): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, r) => out.set(x.subarray(row * width, (row + 1) * width), r * width));
  return out;
}

/** A copy of `x` with its rows `rows` replaced by the packed rows of `values`. */
function scatterRows(x: Float32Array, values: Float32Array, rows: readonly number[], width: number): Float32Array {
  const out = x.slice();
  rows.forEach((row, r) => out.set(values.subarray(r * width, (r + 1) * width), row * width));
  return out;
}
