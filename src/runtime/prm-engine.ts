/**
 * The process reward model's engine, inside its worker thread: scores many (problem, steps)
 * requests in batches of right-padded sequences and reads each step's score at the step's last
 * token (the input is `<bos> problem \n\n step_1 \n\n ... step_k`, each step in the model's rendering).
 */
import * as ort from "onnxruntime-node";
import type { Tokenizer } from "@huggingface/tokenizers";
import { InputError } from "../errors.js";
import { type PrmRendering, renderSteps } from "./prm-rendering.js";

export interface PrmSettings {
  bosTokenId: number;
  padTokenId: number;
  stepDelimiter: string;
  /** How the model reads a step (config.json `rendering`, see prm-rendering.ts); `ordinary` passes steps through as written. */
  rendering: PrmRendering;
  /** Largest batch, in padded tokens, for one graph run. */
  maxBatchTokens: number;
  /** Longest sequence (problem and steps) the model reads, and where that limit comes from. */
  maxSequenceTokens: number;
  limitSource: string;
}

export interface PrmRequest {
  problem: string;
  steps: readonly string[];
}

export interface PrmResult {
  scores: number[];
  /** Tokens the model read for this request. */
  tokens: number;
}

interface Encoded {
  index: number;
  ids: number[];
  /** Position of each step's last token. */
  stepEnds: number[];
}

/**
 * The token ids of one request, `<bos> problem + delimiter + steps joined by the delimiter`, and the
 * position of each step's last token. With `ordinary` the steps are read exactly as written (as the
 * shipped PRM was trained); other renderings render each step as models/train/render.py does
 * (`equations` pairs each step with the one before it, the first with the problem).
 */
export function encodePrmRequest(
  request: PrmRequest,
  settings: Pick<PrmSettings, "bosTokenId" | "stepDelimiter" | "rendering">,
  tokenize: (text: string) => number[],
): { ids: number[]; stepEnds: number[] } {
  const ids = [settings.bosTokenId, ...tokenize(request.problem + settings.stepDelimiter)];
  const stepEnds: number[] = [];
  const steps = settings.rendering === "ordinary" ? request.steps : renderSteps(request.problem, request.steps, settings.rendering);
  steps.forEach((step, k) => {
    if (k > 0) ids.push(...tokenize(settings.stepDelimiter));
    ids.push(...tokenize(step));
    stepEnds.push(ids.length - 1);
  });
  return { ids, stepEnds };
}

export class PrmEngine {
  /** Graph runs so far. */
  runs = 0;

  constructor(
    private readonly session: ort.InferenceSession,
    private readonly tokenizer: Tokenizer,
    private readonly settings: PrmSettings,
  ) {}

  private encode(request: PrmRequest, index: number): Encoded {
    const { ids, stepEnds } = encodePrmRequest(request, this.settings, (text) => this.tokenizer.encode(text, { add_special_tokens: false }).ids);
    if (ids.length > this.settings.maxSequenceTokens) {
      throw new InputError(`a problem with its steps is ${ids.length} tokens, above the verifier's limit of ${this.settings.maxSequenceTokens} (${this.settings.limitSource})`);
    }
    return { index, ids, stepEnds };
  }

  async score(requests: readonly PrmRequest[]): Promise<PrmResult[]> {
    const encoded = requests.map((request, i) => this.encode(request, i)).sort((a, b) => a.ids.length - b.ids.length);
    const results: PrmResult[] = new Array(requests.length);
    let start = 0;
    while (start < encoded.length) {
      // Sorted by length, so each batch pads little; a batch stops where it would pass the token budget.
      let end = start + 1;
      while (end < encoded.length && (end + 1 - start) * (encoded[end] as Encoded).ids.length <= this.settings.maxBatchTokens) end++;
      const batch = encoded.slice(start, end);
      const scores = await this.run(batch);
      batch.forEach((item, b) => {
        results[item.index] = { scores: item.stepEnds.map((position) => scores[b]?.[position] ?? NaN), tokens: item.ids.length };
      });
      start = end;
    }
    return results;
  }

  private async run(batch: Encoded[]): Promise<Float32Array[]> {
    const width = Math.max(...batch.map((item) => item.ids.length));
    const ids = new BigInt64Array(batch.length * width).fill(BigInt(this.settings.padTokenId));
    const mask = new BigInt64Array(batch.length * width);
    batch.forEach((item, b) => {
      item.ids.forEach((id, t) => {
        ids[b * width + t] = BigInt(id);
        mask[b * width + t] = 1n;
      });
    });
    const outputs = await this.session.run({
      input_ids: new ort.Tensor("int64", ids, [batch.length, width]),
      attention_mask: new ort.Tensor("int64", mask, [batch.length, width]),
    });
    this.runs++;
    const data = (outputs.scores as ort.Tensor).data as Float32Array;
    return batch.map((_, b) => data.subarray(b * width, (b + 1) * width));
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
