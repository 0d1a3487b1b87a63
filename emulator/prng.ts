/**
 * A tiny seeded PRNG (mulberry32). Rate-based faults, dropped rows and shuffles draw from it so that a run with the
 * same seed and the same sequence of requests makes the same decisions: a failing test can be replayed.
 */

/** Returns numbers in [0, 1), a pure function of the seed and of how many numbers were drawn before. */
export type Random = () => number;

export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives an independent seed for one stream (a fault kind, a job) so that drawing from one stream never shifts the
 * numbers another stream gets: adding a rate fault does not change which rows another fault drops.
 */
export function deriveSeed(seed: number, stream: string | number): number {
  // FNV-1a over the stream label, mixed with the base seed.
  let hash = (0x811c9dc5 ^ (seed >>> 0)) >>> 0;
  for (const char of String(stream)) {
    hash ^= char.codePointAt(0) ?? 0;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
