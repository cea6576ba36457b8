/** Choosing the next token from logits: greedy, or temperature with top-k and top-p, seeded. */
import type { Random } from "../random.js";
import type { SamplingOptions } from "../policy.js";

export interface SampledToken {
  token: number;
  /** Log-probability of the token under the model's own distribution (temperature 1). */
  logprob: number;
}

function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (const value of logits) if (value > max) max = value;
  let sum = 0;
  for (const value of logits) sum += Math.exp(value - max);
  return max + Math.log(sum);
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if ((logits[i] as number) > (logits[best] as number)) best = i;
  return best;
}

export function sampleToken(logits: Float32Array, options: SamplingOptions, random: Random): SampledToken {
  const normalizer = logSumExp(logits);
  const logprobOf = (token: number) => (logits[token] as number) - normalizer;
  if (options.temperature <= 0) {
    const token = argmax(logits);
    return { token, logprob: logprobOf(token) };
  }
  // Candidates sorted by probability, so that top-k and top-p can cut the tail; plain temperature
  // sampling needs no order, which saves a sort over large vocabularies.
  const order = Array.from(logits.keys());
  if (options.topK !== undefined || (options.topP ?? 1) < 1) order.sort((a, b) => (logits[b] as number) - (logits[a] as number));
  const topK = Math.min(options.topK ?? order.length, order.length);
  let max = -Infinity;
  for (let i = 0; i < topK; i++) max = Math.max(max, logits[order[i] as number] as number);
  const weights: number[] = [];
  let total = 0;
  for (let i = 0; i < topK; i++) {
    const weight = Math.exp(((logits[order[i] as number] as number) - max) / options.temperature);
    weights.push(weight);
    total += weight;
  }
  const topP = options.topP ?? 1;
  let kept = weights.length;
  if (topP < 1) {
    let mass = 0;
    for (let i = 0; i < weights.length; i++) {
      mass += (weights[i] as number) / total;
      if (mass >= topP) {
        kept = i + 1;
        break;
      }
    }
  }
  let keptTotal = 0;
  for (let i = 0; i < kept; i++) keptTotal += weights[i] as number;
  let threshold = random.next() * keptTotal;
  for (let i = 0; i < kept; i++) {
    threshold -= weights[i] as number;
    if (threshold < 0) return { token: order[i] as number, logprob: logprobOf(order[i] as number) };
  }
  const last = order[kept - 1] as number;
  return { token: last, logprob: logprobOf(last) };
}

/** The `count` most likely tokens, most likely first, with their log-probabilities (temperature 1). */
export function topTokens(logits: Float32Array, count: number): SampledToken[] {
  const normalizer = logSumExp(logits);
  const order = Array.from(logits.keys()).sort((a, b) => (logits[b] as number) - (logits[a] as number));
  return order.slice(0, count).map((token) => ({ token, logprob: (logits[token] as number) - normalizer }));
}
