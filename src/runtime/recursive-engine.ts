/**
 * Decoding a recursive model (one shared block run `loops` times, an exit head after every loop) with
 * early exit. The decoding state of a branch is one set of state tensors per loop (loop-major in the
 * branch's state array); a token at loop l reads and replaces loop l's tensors only.
 *
 * Three modes:
 * - exits off (threshold null): the decode graph runs every loop for one token (DecoderEngine.extend);
 * - exits without depth-wise batching: per token, the one-loop graph runs over every branch at loop 0,
 *   then over the branches whose token did not exit, at loop 1, and so on;
 * - exits with depth-wise batching: each run of the one-loop graph takes every live branch at whatever
 *   loop its token is at; a branch whose token exited samples its next token and starts it at loop 0
 *   in the very next run, beside branches still finishing deeper loops.
 *
 * A token leaves after the first loop whose exit logits have a max softmax probability (temperature
 * 1) of at least the threshold; the last loop always ends it. It is sampled from that loop's logits
 * with the request's temperature and top-p. It never runs the loops after its exit; with the state
 * copy (config.json recursion.exit.skipped "copy", the shipped model) each of those loops' state is
 * updated from the token's hidden state at its exit by the copy graph (recursive.py's generate_exit
 * with skipped="copy"): one batched run over every row that exited in a run of the one-loop graph,
 * before that branch's next token reaches any loop. Without it (older exports) their state stays as
 * it was. Prompts (prefill, appended tokens) run every loop.
 */
import type { Tokenizer } from "@huggingface/tokenizers";
import { DecoderEngine, type EngineSettings, type ExtendItem, type ExtendRequest, type ExtendResult } from "./decoder-engine.js";
import type { CopyRow, DecoderGraphs, LoopGraph } from "./graphs.js";

export interface RecursiveSettings {
  /** Exit when the exit head's max probability reaches this; null runs every loop (exits off). */
  exitThreshold: number | null;
  /** One run over rows at every loop (true), or one run per loop depth (false). */
  depthBatching: boolean;
}

/** Max softmax probability of logits at temperature 1. */
export function exitConfidence(logits: Float32Array): number {
  let max = -Infinity;
  for (const value of logits) if (value > max) max = value;
  let sum = 0;
  for (const value of logits) sum += Math.exp(value - max);
  return 1 / sum;
}

interface InLoop {
  token: number;
  loop: number;
  hidden: Float32Array | null;
}

export class RecursiveDecoderEngine extends DecoderEngine {
  constructor(
    graphs: DecoderGraphs,
    private readonly loopGraph: LoopGraph,
    tokenizer: Tokenizer,
    settings: EngineSettings,
    readonly recursion: RecursiveSettings,
  ) {
    super(graphs, tokenizer, { ...settings, loops: loopGraph.loops });
  }

  override async extend(requests: readonly ExtendRequest[]): Promise<ExtendResult[]> {
    const threshold = this.recursion.exitThreshold;
    if (threshold === null) return super.extend(requests);
    const { loops, layouts } = this.loopGraph;
    const perLoop = layouts.length;
    const live = this.prepare(requests);
    /** Branches whose current token is going through the loops; the others have logits to sample from. */
    const inLoop = new Map<ExtendItem, InLoop>();
    let active = live.filter((item) => item.stop === null);
    while (active.length > 0) {
      // Without depth-wise batching a branch samples its next token only when every branch has finished its token.
      if (this.recursion.depthBatching || inLoop.size === 0) {
        for (const item of active) {
          if (inLoop.has(item)) continue;
          if (this.sampleNext(item)) inLoop.set(item, { token: item.tokens[item.tokens.length - 1] as number, loop: 0, hidden: null });
        }
        active = active.filter((item) => item.stop === null);
      }
      if (inLoop.size === 0) break;
      let rows = [...inLoop.keys()];
      if (!this.recursion.depthBatching) {
        const depth = Math.min(...rows.map((item) => (inLoop.get(item) as InLoop).loop));
        rows = rows.filter((item) => (inLoop.get(item) as InLoop).loop === depth);
      }
      const output = await this.loopGraph.run(
        rows.map((item) => {
          const { token, loop, hidden } = inLoop.get(item) as InLoop;
          return { token, hidden, loop, state: item.record.state.slice(loop * perLoop, (loop + 1) * perLoop), position: item.record.length };
        }),
      );
      this.decodeRuns++;
      /** The skipped loops of this run's tokens that exited early, for the state copy. */
      const copies: { item: ExtendItem; row: CopyRow }[] = [];
      rows.forEach((item, b) => {
        const current = inLoop.get(item) as InLoop;
        const { loop } = current;
        // A new array: forks share the old one (tensors are never written in place).
        const state = [...item.record.state];
        state.splice(loop * perLoop, perLoop, ...(output.states[b] as Float32Array[]));
        item.record.state = state;
        item.runs++;
        const logits = output.logits[b] as Float32Array;
        if (loop === loops - 1 || exitConfidence(logits) >= threshold) {
          inLoop.delete(item);
          if (this.loopGraph.copies && loop < loops - 1) {
            // Copied: the view would keep the whole batch's output alive.
            const hidden = (output.hidden[b] as Float32Array).slice();
            for (let later = loop + 1; later < loops; later++) {
              copies.push({ item, row: { hidden, loop: later, state: item.record.state.slice(later * perLoop, (later + 1) * perLoop), position: item.record.length } });
            }
            item.copies += loops - 1 - loop;
          }
          this.tokenFed(item, logits, loop + 1);
        } else {
          // Copied: the view would keep the whole batch's output alive.
          inLoop.set(item, { ...current, loop: loop + 1, hidden: (output.hidden[b] as Float32Array).slice() });
        }
      });
      if (copies.length > 0) {
        const states = await this.loopGraph.copy(copies.map(({ row }) => row));
        copies.forEach(({ item, row }, c) => {
          const state = [...item.record.state];
          state.splice(row.loop * perLoop, perLoop, ...(states[c] as Float32Array[]));
          item.record.state = state;
        });
      }
      active = active.filter((item) => item.stop === null);
    }
    return this.results(live);
  }

  override async close(): Promise<void> {
    await super.close();
    await this.loopGraph.release();
  }
}
