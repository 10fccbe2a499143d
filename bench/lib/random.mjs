/**
 * mulberry32, a small seeded PRNG returning floats in [0, 1): the same seed gives the same
 * sequence, in every child and every run. Shared by the bench scripts and the crash workload
 * (test/crash/workload.mjs, plain JavaScript like them).
 */
export function mulberry32(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}
