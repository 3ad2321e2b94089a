// V8 heap settings for `tokenstream serve`, applied before anything else loads
// (bin/tokenstream.js). A server's live heap is small (~20 MB on the main thread,
// ~6 MB per engine worker) but V8's defaults let it grow to several times that:
// the young generation doubles up to 2 × 16 MB per isolate whenever a scavenge
// sees many survivors (each request's objects live for its duration), and the
// old generation may grow to ~3× the live size between full collections. With
// the young generation kept at its initial 2 × 1 MB and the old generation let
// grow by 20 % between full collections, RSS stays flat at about load size
// (bench:memory: ~200 MB -> ~120 MB after 32 000 requests on the bundled model)
// for no measurable CPU per token (bench:service). --optimize-for-size lets the
// old generation of each isolate grow 2 MB instead of 8 MB past its live size
// before a full collection (V8's minimum growing step): the live heaps are
// flat over any number of requests (main ~15 MB, each engine worker ~4 MB after
// a forced GC), but without it the engine worker's heap climbed 4 -> 10 MB over
// 12 000 requests before its first full collection, which read as RSS growth
// (bench:memory, 1 worker: RSS - weights - KV 105-112 -> ~94 MB after 10 000
// requests; main-thread CPU per token unchanged). The flags are V8's, process
// wide (worker isolates included) and read at each collection, so setting them
// at run time is safe; but starting a worker thread puts V8's flags back to the
// command line's, so they are set again as each engine worker is created and
// when it is online (worker-pool.ts). A V8 heap flag given by the user (node
// options or NODE_OPTIONS) wins: then nothing is changed.

export const SERVE_HEAP_FLAGS = ['--semi-space-growth-factor=1', '--heap-growing-percent=20', '--optimize-for-size'];

const USER_HEAP_FLAG = /--(no-)?(semi-space-growth-factor|heap-growing-percent|max-semi-space-size|min-semi-space-size|optimize-for-size)\b/;

/** Applies SERVE_HEAP_FLAGS unless the process was started with heap flags of its own; returns whether it did. */
export function tuneHeapForServing(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  if (execArgv.some((a) => USER_HEAP_FLAG.test(a)) || USER_HEAP_FLAG.test(nodeOptions)) return false;
  applyHeapFlags(SERVE_HEAP_FLAGS);
  applied = SERVE_HEAP_FLAGS;
  return true;
}

let applied: readonly string[] = [];

/** The flags tuneHeapForServing() set in this process (none if it was not called). */
export function servingHeapFlags(): readonly string[] {
  return applied;
}

/** Sets V8 flags (process wide). */
export function applyHeapFlags(flags: readonly string[]): void {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const v8 = require('node:v8') as typeof import('node:v8');
  for (const f of flags) v8.setFlagsFromString(f);
}
