/**
 * A seeded xorshift32 draw of an integer in [0, n): the same cases on every
 * run, and every case of a small range comes up (an LCG's low bits cycle too
 * soon for n = 16).
 */
export function xorshift32(seed: number): (n: number) => number {
  let x = seed | 0 || 1;
  return (n) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
}
