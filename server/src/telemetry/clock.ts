// One clock for every thread. Worker threads have their own
// performance.timeOrigin, so performance.now() values of different threads
// cannot be compared; timeOrigin + now() is wall-clock milliseconds with
// sub-microsecond resolution, comparable across threads and accepted by
// OpenTelemetry as a span/event time. No imports: workers load this alone.

/** Milliseconds since the Unix epoch, fractional (resolution well under 1 µs). */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
