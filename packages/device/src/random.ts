/**
 * A source of uniform random numbers in [0, 1), like `Math.random`. Every jittered delay in this
 * package takes one, so tests and the fleet simulator can replay a schedule exactly.
 */
export type Random = () => number;

/** The default random source. */
export const systemRandom: Random = Math.random;

/**
 * mulberry32: a tiny, fast 32-bit seeded PRNG (Tommy Ettinger, public domain). Not for
 * cryptography; good enough to spread reconnects and to replay a schedule from a seed.
 */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A uniformly random integer in [min, max] (both inclusive). */
export function uniformInt(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}
