// The server's entry point to telemetry: one object holding the tracer and the
// metric instruments, so the service's call sites stay one-liners:
//   const gen = serverTelemetry().startGeneration({...});  gen.token(t); ... gen.end({...})
//   serverTelemetry().metrics.recordStep(...)
import type { Context, Tracer, TracerProvider, MeterProvider } from '@opentelemetry/api';
import { context, metrics, trace } from '@opentelemetry/api';
import { GenerationTrace } from './generation-trace';
import type { GenerationStart } from './generation-trace';
import { ServerMetrics } from './metrics';
import * as sc from './semconv';
import { readPackageVersion } from './version';

export class ServerTelemetry {
  readonly tracer: Tracer;
  readonly metrics: ServerMetrics;

  constructor(opts: { tracerProvider?: TracerProvider; meterProvider?: MeterProvider } = {}) {
    const version = readPackageVersion();
    this.tracer = (opts.tracerProvider ?? trace.getTracerProvider()).getTracer(sc.INSTRUMENTATION_SCOPE, version);
    this.metrics = new ServerMetrics((opts.meterProvider ?? metrics.getMeterProvider()).getMeter(sc.INSTRUMENTATION_SCOPE, version));
  }

  /**
   * Starts a generation's span at its arrival. `activeContext` defaults to the
   * current context: call it inside the gRPC handler so the stream span is found.
   */
  startGeneration(info: GenerationStart, activeContext: Context = context.active()): GenerationTrace {
    return new GenerationTrace(this.tracer, this.metrics, info, activeContext);
  }
}

let instance: ServerTelemetry | undefined;

/**
 * The process's ServerTelemetry, built on first use from the global providers.
 * Build it after startTelemetry() (the metrics API has no proxy: instruments
 * made before the MeterProvider is registered stay no-ops).
 */
export function serverTelemetry(): ServerTelemetry {
  if (!instance) instance = new ServerTelemetry();
  return instance;
}

/** Forgets the process instance (after the SDK is restarted, e.g. in tests). */
export function resetServerTelemetry(): void {
  instance = undefined;
}
