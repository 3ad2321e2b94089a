// Order statistics over per-token latencies. Called once per generation when
// its span ends, never per token.

/**
 * Nearest-rank percentiles of `values[0..count)` (p in [0, 1]). Sorts a copy;
 * returns NaN for every p when count is 0.
 */
export function percentiles(values: Float64Array, count: number, ps: readonly number[]): number[] {
  return percentilesInPlace(values.slice(0, count), count, ps);
}

/** As percentiles(), but sorts `values[0..count)` in place (for scratch buffers). */
export function percentilesInPlace(values: Float64Array, count: number, ps: readonly number[]): number[] {
  if (count <= 0) return ps.map(() => NaN);
  const sorted = values.subarray(0, count).sort();
  return ps.map((p) => {
    const rank = Math.ceil(p * count);
    return sorted[Math.min(count - 1, Math.max(0, rank - 1))];
  });
}

/**
 * Scratch buffers reused by every generation's end (the main thread ends one
 * at a time): no per-generation garbage of per-token size.
 */
const scratch: Float64Array[] = [new Float64Array(1024), new Float64Array(1024), new Float64Array(1024)];

/** Scratch buffer `which` (0-2) with room for at least `n` doubles; valid until the next call for it. */
export function scratchBuffer(which: 0 | 1 | 2, n: number): Float64Array {
  if (scratch[which].length < n) scratch[which] = new Float64Array(Math.max(n, scratch[which].length * 2));
  return scratch[which];
}

/**
 * Indices of the k largest of `values[0..count)`, largest first; ties keep the
 * earlier index first. O(count * k), fine for the small k used for span events.
 */
export function largestIndices(values: Float64Array, count: number, k: number): number[] {
  const out: number[] = [];
  const n = Math.min(k, count);
  if (n <= 0) return out;
  for (let i = 0; i < count; i++) {
    const v = values[i];
    if (out.length === n && v <= values[out[n - 1]]) continue;
    let at = out.length < n ? out.length : n - 1;
    while (at > 0 && values[out[at - 1]] < v) at--;
    if (out.length < n) out.splice(at, 0, i);
    else {
      out.pop();
      out.splice(at, 0, i);
    }
  }
  return out;
}
