/**
 * A StepVerifier served over HTTP by vLLM's `/pooling` (`task: token_classify`): a process reward
 * model whose pooler returns one row of class probabilities per step tag.
 *
 * Formats:
 * - `qwen-prm` (Qwen2.5-Math-PRM-7B/72B): input rendered by `renderQwenPrmInput`, rows
 *   `[p_negative, p_positive]`, the step score is `p_positive`.
 * - `math-shepherd` (peiyi9979/math-shepherd-mistral-7b-prm, served with vLLM's STEP pooler and
 *   `returned_token_ids` [648, 387], the ids of "+" and "-"): "question Step 1: ... ки\nStep 2: ... ки",
 *   rows `[p("+"), p("-")]`, the step score is `p("+")`.
 *
 * Many requests go in one call (`input` as a list), split to stay under `maxBatchInputs` inputs
 * and `maxBatchChars` characters per call; each input is scored on its own, so the scores do not
 * depend on the split.
 */
import { z } from "zod";
import type { ScoreRequest, StepScores, StepVerifier } from "../policy.js";
import { checkModel, describeCard, Endpoints, type HttpOptions } from "./http.js";
import { renderQwenPrmInput } from "./qwen-prm.js";

export const VERIFIER_FORMATS = ["qwen-prm", "math-shepherd"] as const;
export type VerifierFormat = (typeof VERIFIER_FORMATS)[number];

interface Format {
  render(problem: string, steps: readonly string[]): string;
  /** The column of a row that holds the probability the step is good. */
  goodColumn: number;
}

const FORMATS: Record<VerifierFormat, Format> = {
  "qwen-prm": { render: renderQwenPrmInput, goodColumn: 1 },
  "math-shepherd": {
    render: (problem, steps) => `${problem} ${steps.map((step, i) => `Step ${i + 1}: ${step} ки`).join("\n")}`,
    goodColumn: 0,
  },
};

export interface ServedVerifierOptions extends HttpOptions {
  model?: string;
  /** Default qwen-prm. */
  format?: VerifierFormat;
  parameters?: number | null;
  /** Most inputs in one /pooling call. Default 32. */
  maxBatchInputs?: number;
  /** Most characters of input in one /pooling call. Default 256 000. */
  maxBatchChars?: number;
}

const probability = z.number().min(0).max(1);
const poolingSchema = z.object({
  data: z.array(z.object({ index: z.int(), data: z.array(z.array(probability)) })),
  usage: z.object({ prompt_tokens: z.int() }).nullish(),
});

export class ServedStepVerifier implements StepVerifier {
  constructor(
    readonly endpoints: Endpoints,
    readonly name: string,
    readonly fingerprint: string,
    readonly parameters: number | null,
    private readonly format: VerifierFormat,
    private readonly maxBatchInputs: number,
    private readonly maxBatchChars: number,
  ) {}

  async scoreSteps(requests: readonly ScoreRequest[], signal?: AbortSignal): Promise<StepScores[]> {
    signal?.throwIfAborted();
    const inputs = requests.map(({ problem, steps }) => FORMATS[this.format].render(problem, steps));
    const answers = await Promise.all(this.batches(inputs).map((batch) => this.scoreBatch(batch, requests, inputs, signal)));
    return answers.flat().sort((a, b) => a.index - b.index).map(({ answer }) => answer);
  }

  /** Consecutive runs of request indices under the size limits (an input over the char limit goes alone). */
  private batches(inputs: readonly string[]): number[][] {
    const batches: number[][] = [];
    let current: number[] = [];
    let chars = 0;
    inputs.forEach((input, index) => {
      if (current.length > 0 && (current.length >= this.maxBatchInputs || chars + input.length > this.maxBatchChars)) {
        batches.push(current);
        current = [];
        chars = 0;
      }
      current.push(index);
      chars += input.length;
    });
    if (current.length > 0) batches.push(current);
    return batches;
  }

  private async scoreBatch(batch: number[], requests: readonly ScoreRequest[], inputs: readonly string[], signal?: AbortSignal): Promise<{ index: number; answer: StepScores }[]> {
    const body = { model: this.name, task: "token_classify", input: batch.map((index) => inputs[index]) };
    const { value, retries } = await this.endpoints.request("root", "/pooling", body, poolingSchema, signal);
    if (value.data.length !== batch.length) throw new Error(`verifier ${this.name}: /pooling answered ${value.data.length} results for ${batch.length} inputs`);
    // usage counts the whole call; it is shared out by input length, so the call's total is exact.
    const total = value.usage?.prompt_tokens ?? 0;
    const chars = batch.reduce((sum, index) => sum + (inputs[index] as string).length, 0);
    let given = 0;
    return batch.map((index, position) => {
      const result = value.data.find((entry) => entry.index === position);
      const steps = (requests[index] as ScoreRequest).steps.length;
      if (result === undefined) throw new Error(`verifier ${this.name}: /pooling gave no result for input ${position}`);
      if (result.data.length === 0) throw new Error(`verifier ${this.name}: no step rows for an input of ${steps} steps; the input lost its step tags (is the server's pooler the step pooler of a ${this.format} model?)`);
      if (result.data.length !== steps) throw new Error(`verifier ${this.name}: ${result.data.length} step rows for ${steps} steps`);
      const scores = result.data.map((row) => {
        const good = row[FORMATS[this.format].goodColumn];
        if (row.length !== 2 || good === undefined) throw new Error(`verifier ${this.name}: a step row of ${row.length} values, expected 2`);
        return good;
      });
      const last = position === batch.length - 1;
      const tokens = last ? total - given : Math.floor((total * (inputs[index] as string).length) / Math.max(1, chars));
      given += tokens;
      return { index, answer: { scores, tokens, retries: position === 0 ? retries : 0 } };
    });
  }

  async close(): Promise<void> {
    await this.endpoints.close();
  }
}

/** Connects to a served PRM, checking the endpoints and the model before any work (see `checkModel`). */
export async function connectVerifier(urls: string | readonly string[], options: ServedVerifierOptions = {}): Promise<ServedStepVerifier> {
  const endpoints = new Endpoints(typeof urls === "string" ? [urls] : urls, options);
  const card = await checkModel(endpoints, options.model, "--verifier");
  return new ServedStepVerifier(
    endpoints,
    card.id,
    describeCard(card),
    options.parameters ?? null,
    options.format ?? "qwen-prm",
    options.maxBatchInputs ?? 32,
    options.maxBatchChars ?? 256_000,
  );
}
