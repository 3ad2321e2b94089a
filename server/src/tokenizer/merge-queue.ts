// The two data structures both merge loops (SPM and BPE) run on, over typed
// arrays so that encoding a word allocates nothing once the buffers have grown.

/** Open-addressing hash map from a pair of non-negative int32 keys to two int32 values. */
export class PairTable {
  private keysA: Int32Array;
  private keysB: Int32Array;
  private vals1: Int32Array;
  private vals2: Int32Array;
  private mask: number;
  size = 0;

  constructor(expected: number) {
    let cap = 16;
    while (cap < expected * 2) cap <<= 1;
    this.keysA = new Int32Array(cap).fill(-1);
    this.keysB = new Int32Array(cap);
    this.vals1 = new Int32Array(cap);
    this.vals2 = new Int32Array(cap);
    this.mask = cap - 1;
  }

  private slot(a: number, b: number): number {
    let h = (Math.imul(a, 0x9e3779b1) ^ Math.imul(b + 0x7f4a7c15, 0x85ebca77)) >>> 0;
    h ^= h >>> 15;
    let i = h & this.mask;
    while (this.keysA[i] !== -1 && (this.keysA[i] !== a || this.keysB[i] !== b)) i = (i + 1) & this.mask;
    return i;
  }

  /** Adds (a, b) -> (v1, v2) unless (a, b) is present already (the first entry wins). */
  add(a: number, b: number, v1: number, v2: number): void {
    if ((this.size + 1) * 2 > this.keysA.length) this.grow();
    const i = this.slot(a, b);
    if (this.keysA[i] !== -1) return;
    this.keysA[i] = a;
    this.keysB[i] = b;
    this.vals1[i] = v1;
    this.vals2[i] = v2;
    this.size++;
  }

  /** Slot of (a, b), or -1 when absent; read the values with value1/value2. */
  find(a: number, b: number): number {
    if (a < 0 || b < 0) return -1;
    const i = this.slot(a, b);
    return this.keysA[i] === -1 ? -1 : i;
  }

  value1(slot: number): number {
    return this.vals1[slot];
  }

  value2(slot: number): number {
    return this.vals2[slot];
  }

  private grow(): void {
    const { keysA, keysB, vals1, vals2 } = this;
    const cap = keysA.length * 2;
    this.keysA = new Int32Array(cap).fill(-1);
    this.keysB = new Int32Array(cap);
    this.vals1 = new Int32Array(cap);
    this.vals2 = new Int32Array(cap);
    this.mask = cap - 1;
    this.size = 0;
    for (let i = 0; i < keysA.length; i++) if (keysA[i] !== -1) this.add(keysA[i], keysB[i], vals1[i], vals2[i]);
  }
}

/**
 * Priority queue of candidate merges: highest `priority` first, ties broken by the
 * lower `left` symbol index (llama.cpp's comparators for both SPM and BPE).
 * Each entry also carries `right`, a `check` value the caller uses to detect
 * entries made stale by earlier merges, and the merge's result `value`.
 */
export class MergeQueue {
  priority = new Float64Array(256);
  left = new Int32Array(256);
  right = new Int32Array(256);
  check = new Int32Array(256);
  value = new Int32Array(256);
  private heap = new Int32Array(256);
  private entries = 0;
  length = 0;

  clear(): void {
    this.entries = 0;
    this.length = 0;
  }

  push(priority: number, left: number, right: number, check: number, value: number): void {
    if (this.entries === this.priority.length) this.growEntries();
    const e = this.entries++;
    this.priority[e] = priority;
    this.left[e] = left;
    this.right[e] = right;
    this.check[e] = check;
    this.value[e] = value;
    if (this.length === this.heap.length) {
      const h = new Int32Array(this.heap.length * 2);
      h.set(this.heap);
      this.heap = h;
    }
    // sift up
    const heap = this.heap;
    let i = this.length++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(e, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = e;
  }

  /** Removes the best entry and returns its index (read priority/left/right/check/value[index]). */
  pop(): number {
    const heap = this.heap;
    const top = heap[0];
    const last = heap[--this.length];
    // sift down
    let i = 0;
    const n = this.length;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && this.before(heap[child + 1], heap[child])) child++;
      if (!this.before(heap[child], last)) break;
      heap[i] = heap[child];
      i = child;
    }
    if (n > 0) heap[i] = last;
    return top;
  }

  private before(a: number, b: number): boolean {
    const pa = this.priority[a];
    const pb = this.priority[b];
    return pa > pb || (pa === pb && this.left[a] < this.left[b]);
  }

  private growEntries(): void {
    const cap = this.priority.length * 2;
    const p = new Float64Array(cap);
    p.set(this.priority);
    this.priority = p;
    for (const k of ['left', 'right', 'check', 'value'] as const) {
      const a = new Int32Array(cap);
      a.set(this[k]);
      this[k] = a;
    }
  }
}
