// The C allocator's settings for `tokenstream serve` (native/src/runtime/malloc_tuning.h).
// glibc gives each thread that allocates an arena of its own (up to 8 per core)
// that keeps what its thread freed: a server's V8 platform threads, engine
// workers and libuv threads, which allocate little once running, then hold a
// few MB each. With the arenas capped at 2 before the engine workers start, and
// freed memory handed back every 10 s (malloc_trim: ~0.2 ms on the main thread),
// a server with 2 workers holds ~4 MB less (bench:memory). MALLOC_ARENA_MAX in
// the environment wins. No-ops where the C library is not glibc.
import { loadAddon } from './addon';

export const SERVE_MALLOC_ARENAS = 2;
export const SERVE_MALLOC_TRIM_MS = 10_000;

/** Caps malloc's arenas unless MALLOC_ARENA_MAX is set; returns whether it did. Call before the workers start. */
export function tuneMallocForServing(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.MALLOC_ARENA_MAX !== undefined) return false;
  return loadAddon().mallocLimitArenas(SERVE_MALLOC_ARENAS) as boolean;
}

/** Hands freed malloc memory back to the system now (malloc_trim); false where unsupported. */
export function trimMalloc(): boolean {
  return loadAddon().mallocTrim() as boolean;
}

/** Trims every `everyMs` (a timer that keeps nothing alive); returns the function that stops it. */
export function startMallocTrim(everyMs = SERVE_MALLOC_TRIM_MS): () => void {
  if (!trimMalloc()) return () => undefined;
  const timer = setInterval(trimMalloc, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
