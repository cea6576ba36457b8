/**
 * The server's prefix cache: decoding state (a branch in the model's worker) of recent sequences,
 * keyed by their token ids, least recently used first out. A request resumes from the longest
 * cached prefix of its prompt, so a search step that sends the problem and the earlier steps as
 * token ids only feeds the tokens it adds. vLLM does this with KV-cache blocks; here a cached entry
 * is a whole branch (for the recurrent policy a fixed 40 KB, for a KV cache growing with length).
 *
 * Cached branches are never decoded or appended to: callers fork them. The cache owns its entries
 * and releases them when they are evicted or replaced.
 */
import type { Branch } from "../policy.js";

export interface PrefixCacheLimits {
  maxEntries: number;
  maxBytes: number;
}

interface Entry {
  tokens: readonly number[];
  branch: Branch;
  bytes: number;
}

export interface PrefixCacheStats {
  /** Lookups that found a cached prefix, and lookups that found none. */
  hits: number;
  misses: number;
  /** Prompt tokens that did not need prefilling thanks to a hit. */
  reusedTokens: number;
  entries: number;
  bytes: number;
}

const keyOf = (tokens: readonly number[]) => tokens.join(",");

export class PrefixCache {
  /** A Map iterates in insertion order: re-inserting on use keeps the least recently used first. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;
  private hits = 0;
  private misses = 0;
  private reusedTokens = 0;

  constructor(
    private readonly limits: PrefixCacheLimits,
    /** Bytes of decoding state of a branch at a given length. */
    private readonly stateBytes: (length: number) => number,
  ) {}

  /** The cached entry with the longest prefix of `tokens` (possibly all of them), or null. */
  lookup(tokens: readonly number[]): { branch: Branch; length: number } | null {
    const key = keyOf(tokens);
    let best: [string, Entry] | null = null;
    for (const [entryKey, entry] of this.entries) {
      const isPrefix = entryKey === key || key.startsWith(`${entryKey},`);
      if (isPrefix && entry.tokens.length > (best?.[1].tokens.length ?? 0)) best = [entryKey, entry];
    }
    if (best === null) {
      this.misses++;
      return null;
    }
    const [entryKey, entry] = best;
    this.entries.delete(entryKey);
    this.entries.set(entryKey, entry);
    this.hits++;
    this.reusedTokens += entry.tokens.length;
    return { branch: entry.branch, length: entry.tokens.length };
  }

  /** Caches `branch` as the state after `tokens`; the cache now owns it. */
  insert(tokens: readonly number[], branch: Branch): void {
    const key = keyOf(tokens);
    this.remove(key);
    const entry = { tokens: [...tokens], branch, bytes: this.stateBytes(tokens.length) };
    this.entries.set(key, entry);
    this.bytes += entry.bytes;
    for (const [oldest] of this.entries) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) break;
      this.remove(oldest);
    }
  }

  private remove(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    entry.branch.release();
  }

  stats(): PrefixCacheStats {
    return { hits: this.hits, misses: this.misses, reusedTokens: this.reusedTokens, entries: this.entries.size, bytes: this.bytes };
  }

  clear(): void {
    for (const key of [...this.entries.keys()]) this.remove(key);
  }
}
