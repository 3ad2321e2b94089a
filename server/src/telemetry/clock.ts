// One clock for every thread. Worker threads have their own
// performance.timeOrigin, so performance.now() values of different threads
// cannot be compared, and timeOrigin + now() of two threads (or processes)
// disagree by up to ~0.1 ms (each samples the wall clock separately at start).
// So the first thread to load this fixes one base (wall-clock ms minus the
// monotonic clock, in TOKENSTREAM_CLOCK_BASE) that worker threads and child
// processes inherit through the environment: nowMs() is then the same
// monotonic clock everywhere on the machine, shifted to Unix-epoch milliseconds
// (what OpenTelemetry takes as a span/event time). No imports: workers load this alone.

const BASE_ENV = 'TOKENSTREAM_CLOCK_BASE';

/** performance.now() + offset = this process's monotonic clock (ms) + the shared base. */
const offset = ((): number => {
  const hrMs = (): number => Number(process.hrtime.bigint()) / 1e6;
  let base = Number(process.env[BASE_ENV]);
  if (!process.env[BASE_ENV] || !Number.isFinite(base)) {
    base = performance.timeOrigin + performance.now() - hrMs();
    process.env[BASE_ENV] = String(base);
  }
  // performance.now() is the monotonic clock minus this thread's origin: read both
  // back to back (the smallest gap of a few tries) to learn that origin.
  let best = Infinity;
  let result = 0;
  for (let i = 0; i < 5; i++) {
    const a = hrMs();
    const p = performance.now();
    const b = hrMs();
    if (b - a < best) {
      best = b - a;
      result = (a + b) / 2 - p + base;
    }
  }
  return result;
})();

/** Milliseconds since the Unix epoch, fractional (resolution well under 1 µs), comparable across threads and processes. */
export function nowMs(): number {
  return performance.now() + offset;
}
