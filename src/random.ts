/**
 * Seeded randomness. Every random choice in deliberate draws from a `Random` passed down from the
 * caller, so the same seed gives the same result. Backed by pure-rand's Mersenne Twister, whose
 * seeding spreads a 32-bit seed over its whole state: xoroshiro128+ seeded from an integer gave
 * first draws near 0 or 1 for many seeds (0.0000 after seed 2^31 - 1, 1.0000 after seeds 0-3), and
 * every branch step starts a generator from a seed, so its first token was sampled from the tail.
 */
import { mersenne } from "pure-rand/generator/mersenne";
import { uniformFloat64 } from "pure-rand/distribution/uniformFloat64";
import { uniformInt } from "pure-rand/distribution/uniformInt";
import type { JumpableRandomGenerator } from "pure-rand/types/JumpableRandomGenerator";

export class Random {
  private readonly generator: JumpableRandomGenerator;

  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
    this.generator = mersenne(seed | 0);
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return uniformFloat64(this.generator);
  }

  /** Uniform integer in [from, to], both included. */
  int(from: number, to: number): number {
    return uniformInt(this.generator, from, to);
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error("pick from an empty array");
    return items[this.int(0, items.length - 1)] as T;
  }

  /** A new array with the items in a random order (Fisher-Yates). */
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(0, i);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  }

  /** An independent generator derived from this one, for a sub-task that must not shift our stream. */
  fork(): Random {
    return new Random(this.int(-0x80000000, 0x7fffffff));
  }
}
