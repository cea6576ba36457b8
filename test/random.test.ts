import { describe, expect, it } from "vitest";
import { Random } from "../src/random.js";

/** How many of `values` fall in each tenth of [0, 1). */
function deciles(values: readonly number[]): number[] {
  const counts = Array.from({ length: 10 }, () => 0);
  for (const value of values) counts[Math.min(9, Math.floor(value * 10))]! += 1;
  return counts;
}

describe("Random", () => {
  // Every branch step starts a generator from a seed and samples its first token with the first
  // draw, so first draws must be uniform over seeds (a badly seeded generator gave ~0 or ~1).
  it("gives uniform first draws for consecutive seeds", () => {
    const first = Array.from({ length: 2000 }, (_, seed) => new Random(seed).next());
    for (const count of deciles(first)) expect(count).toBeGreaterThan(140);
    for (const count of deciles(first)) expect(count).toBeLessThan(260);
  });

  it("gives uniform first draws for the seeds a search derives from its run seed", () => {
    const run = new Random(0);
    const first = Array.from({ length: 2000 }, () => new Random(run.int(0, 0x7fffffff)).next());
    for (const count of deciles(first)) expect(count).toBeGreaterThan(140);
    for (const count of deciles(first)) expect(count).toBeLessThan(260);
  });

  it("repeats a stream for the same seed", () => {
    const a = new Random(42);
    const b = new Random(42);
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
  });
});
