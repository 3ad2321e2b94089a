// The process's running telemetry handle. Kept apart from sdk.ts so that code
// asking "is telemetry on?" does not load the SDK itself.
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { TelemetryRole } from './env-config';

export interface TelemetryHandle {
  readonly role: TelemetryRole;
  /** a TracerProvider is registered */
  readonly tracing: boolean;
  /** names of the metric readers in use: 'prometheus', 'otlp', 'console', 'custom' */
  readonly metricReaders: string[];
  /** the server's Prometheus reader; serve it with serveMetrics() */
  readonly prometheus: PrometheusExporter | undefined;
  /** resolves when the resource's asynchronous attributes (host.id) are known: await before serving metrics */
  ready(): Promise<void>;
  /** flushes and stops everything (safe to call twice) */
  shutdown(): Promise<void>;
}

let active: TelemetryHandle | undefined;

/** The running telemetry, if startTelemetry() was called. */
export function activeTelemetry(): TelemetryHandle | undefined {
  return active;
}

export function setActiveTelemetry(handle: TelemetryHandle | undefined): void {
  active = handle;
}
