// Starts the OpenTelemetry SDK (@opentelemetry/sdk-node) from the standard
// OTEL_* environment variables. Must run before @grpc/grpc-js is first
// required so the gRPC instrumentation can patch it: bin/tokenstream.js calls
// startTelemetryForCommand() before it loads any command.
//
// Differences from a bare NodeSDK, all deliberate:
// - Traces are exported only when asked for: OTEL_TRACES_EXPORTER set (not
//   "none"), or an OTLP endpoint set (OTEL_EXPORTER_OTLP_ENDPOINT /
//   OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). NodeSDK would otherwise default to OTLP
//   on localhost:4318 and log a connection error per batch. With tracing off no
//   TracerProvider is registered: every span is the API's no-op, and neither
//   the gRPC instrumentation nor a context manager is installed.
// - Metrics: the server always has a Prometheus reader (served by
//   metrics-server.ts on --metrics-port, not by the exporter's own server);
//   OTEL_METRICS_EXPORTER (otlp, prometheus, console, none) is honoured when set,
//   and OTLP metrics are added when OTEL_EXPORTER_OTLP_METRICS_ENDPOINT is set.
// - Logs: only when OTEL_LOGS_EXPORTER is set (we emit none through the API).
// - Batch span processor queue: 16384 instead of 2048 unless
//   OTEL_BSP_MAX_QUEUE_SIZE is set (the default drops spans silently under load).
// - With tracing off (the default server: Prometheus metrics only) NodeSDK is
//   not loaded at all: a MeterProvider with the readers is registered directly.
//   Loading sdk-node pulls in every exporter and instrumentation it knows
//   (measured: +12.5 MB RSS in a server that uses none of them).
import type { ContextManager, TextMapPropagator } from '@opentelemetry/api';
import { DiagConsoleLogger, DiagLogLevel, context, diag, metrics, propagation, trace } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { GrpcInstrumentation as GrpcInstrumentationT } from '@opentelemetry/instrumentation-grpc';
import type { ResourceDetector } from '@opentelemetry/resources';
import {
  defaultResource,
  detectResources,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  resourceFromAttributes,
  serviceInstanceIdDetector,
} from '@opentelemetry/resources';
import type { IMetricReader, PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { ConsoleMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { NodeSDK as NodeSDKT } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { resetClientTelemetry } from './client-trace';
import { resetServerTelemetry } from './server-telemetry';
import { list, metricExportersRequested, tracingRequested } from './env-config';
import type { TelemetryRole } from './env-config';
import { readPackageVersion } from './version';

export { metricExportersRequested, tracingRequested };
export type { TelemetryRole };

export interface TelemetryOptions {
  role: TelemetryRole;
  /** environment to read; default process.env (NodeSDK itself always reads process.env) */
  env?: NodeJS.ProcessEnv;
  /** replace the span processors from the environment (tests: an in-memory exporter) */
  spanProcessors?: SpanProcessor[];
  /** replace the metric readers from the environment */
  metricReaders?: IMetricReader[];
  /** patch @grpc/grpc-js (default: when tracing is on) */
  instrumentGrpc?: boolean;
  textMapPropagator?: TextMapPropagator;
}

export type { TelemetryHandle } from './active';
import type { TelemetryHandle } from './active';
import { activeTelemetry, setActiveTelemetry } from './active';
export { activeTelemetry };

let diagLoggerSet = false;

const DETECTORS: Record<string, ResourceDetector> = {
  env: envDetector,
  host: hostDetector,
  os: osDetector,
  process: processDetector,
  serviceinstance: serviceInstanceIdDetector,
};

/** OTEL_NODE_RESOURCE_DETECTORS (env, host, os, process, serviceinstance, all, none); default env,process,host. */
function detectorsFromEnv(env: NodeJS.ProcessEnv): ResourceDetector[] {
  const names = list(env, 'OTEL_NODE_RESOURCE_DETECTORS') ?? ['env', 'process', 'host'];
  if (names.includes('none')) return [];
  if (names.includes('all')) return Object.values(DETECTORS);
  return names.flatMap((n) => (DETECTORS[n] ? [DETECTORS[n]] : []));
}


// sdk-node builds its OTLP metric exporter (protocol from OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL,
// endpoint/headers/timeouts from the OTLP variables) and the periodic reader (OTEL_METRIC_EXPORT_*)
// in this module; it is not re-exported, but sdk-node pins the versions of everything it loads.
interface SdkNodeUtils {
  getOtlpMetricExporterFromEnv(): PushMetricExporter;
  getPeriodicExportingMetricReaderFromEnv(exporter: PushMetricExporter): IMetricReader;
}

function otlpMetricReader(): IMetricReader | undefined {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const utils = require('@opentelemetry/sdk-node/build/src/utils') as SdkNodeUtils;
    return utils.getPeriodicExportingMetricReaderFromEnv(utils.getOtlpMetricExporterFromEnv());
  } catch (err) {
    diag.error(`tokenstream: OTLP metrics requested but the exporter could not be built: ${String(err)}`);
    return undefined;
  }
}

type Resource = ReturnType<typeof defaultResource>;

/** Tracing (or gRPC instrumentation) wanted: the full NodeSDK, loaded only now. */
function startNodeSdk(
  resource: Resource,
  options: TelemetryOptions,
  tracing: boolean,
  instrumentGrpc: boolean,
  readers: IMetricReader[],
): NodeSDKT {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { NodeSDK } = require('@opentelemetry/sdk-node') as { NodeSDK: typeof NodeSDKT };
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const { GrpcInstrumentation } = require('@opentelemetry/instrumentation-grpc') as {
    GrpcInstrumentation: typeof GrpcInstrumentationT;
  };
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    // tracing off: an empty list makes NodeSDK register no TracerProvider at all
    spanProcessors: options.spanProcessors ?? (tracing ? undefined : []),
    metricReaders: readers,
    instrumentations: instrumentGrpc
      ? [
          new GrpcInstrumentation({
            // Health probes (every few seconds from Docker) and reflection are noise in Jaeger.
            ignoreGrpcMethods: ['Check', 'Watch', 'List', 'ServerReflectionInfo'],
          }),
        ]
      : [],
    textMapPropagator: options.textMapPropagator,
    // Without tracing nothing needs the active context: no AsyncLocalStorage
    // (its async hooks cost something on every promise and callback). null = none.
    contextManager: tracing ? undefined : (null as unknown as ContextManager),
  });
  sdk.start();
  return sdk;
}

/**
 * Metrics only: what NodeSDK would register with no span processors, no
 * instrumentations and no context manager, i.e. one global MeterProvider (no
 * TracerProvider: spans stay the API's no-ops; no propagator: with no spans
 * recorded a remote parent has nothing to attach to).
 */
function startMeterProvider(resource: Resource, readers: IMetricReader[]): { shutdown(): Promise<void> } {
  const provider = new MeterProvider({ resource, readers });
  metrics.setGlobalMeterProvider(provider);
  return provider;
}

/**
 * Starts the SDK once per process. A second call returns the running handle
 * unchanged (shut it down first to restart with other options).
 */
export function startTelemetry(options: TelemetryOptions): TelemetryHandle {
  const running = activeTelemetry();
  if (running) return running;
  const env = options.env ?? process.env;
  if (env === process.env && env.OTEL_BSP_MAX_QUEUE_SIZE === undefined) {
    // BatchSpanProcessor reads process.env itself; see the header comment.
    process.env.OTEL_BSP_MAX_QUEUE_SIZE = '16384';
  }
  if (process.env.OTEL_LOGS_EXPORTER === undefined) {
    // NodeSDK reads this from process.env only; "none" = no LoggerProvider at all.
    process.env.OTEL_LOGS_EXPORTER = 'none';
  }
  if (env.OTEL_LOG_LEVEL === undefined && !diagLoggerSet) {
    // Exporter failures (collector down) are worth one line each, not silence.
    diag.setLogger(new DiagConsoleLogger(), DiagLogLevel.WARN);
    diagLoggerSet = true;
  }

  const tracing = options.spanProcessors ? options.spanProcessors.length > 0 : tracingRequested(env);
  const readers: IMetricReader[] = [];
  const readerNames: string[] = [];
  let prometheus: PrometheusExporter | undefined;
  if (options.metricReaders) {
    readers.push(...options.metricReaders);
    for (const r of options.metricReaders) {
      if (r instanceof PrometheusExporter) prometheus ??= r;
      readerNames.push(r instanceof PrometheusExporter ? 'prometheus' : 'custom');
    }
  } else {
    for (const name of metricExportersRequested(options.role, env)) {
      if (name === 'prometheus') {
        prometheus = new PrometheusExporter({ preventServerStart: true });
        readers.push(prometheus);
      } else if (name === 'otlp') {
        const reader = otlpMetricReader();
        if (!reader) continue;
        readers.push(reader);
      } else if (name === 'console') {
        readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter() }));
      } else {
        diag.warn(`tokenstream: unsupported OTEL_METRICS_EXPORTER value "${name}" (otlp, prometheus, console, none)`);
        continue;
      }
      readerNames.push(name);
    }
  }

  const instrumentGrpc = options.instrumentGrpc ?? tracing;
  // The resource is detected here rather than by NodeSDK so that ready() can wait
  // for its asynchronous attributes (a scrape before that logs an error per read).
  // Precedence, lowest first: defaults, our service name/version, detectors (env last).
  const resource = defaultResource()
    .merge(
      resourceFromAttributes({
        [ATTR_SERVICE_NAME]: options.role === 'server' ? 'tokenstream' : 'tokenstream-client',
        [ATTR_SERVICE_VERSION]: readPackageVersion(),
      }),
    )
    .merge(detectResources({ detectors: detectorsFromEnv(env).filter((d) => d !== envDetector) }))
    .merge(detectResources({ detectors: detectorsFromEnv(env).filter((d) => d === envDetector) }));
  const sdk: { shutdown(): Promise<void> } =
    tracing || instrumentGrpc || options.textMapPropagator
      ? startNodeSdk(resource, options, tracing, instrumentGrpc, readers)
      : startMeterProvider(resource, readers);
  // instruments must come from the providers just registered
  resetServerTelemetry();
  resetClientTelemetry();
  let stopped: Promise<void> | undefined;
  const handle: TelemetryHandle = {
    role: options.role,
    tracing,
    metricReaders: readerNames,
    prometheus,
    ready: async () => {
      await resource.waitForAsyncAttributes?.();
    },
    shutdown() {
      if (!stopped) {
        stopped = sdk.shutdown().catch((err) => diag.warn(`tokenstream: telemetry shutdown: ${String(err)}`));
        stopped = stopped.finally(() => {
          // Unregister the globals too, so a later startTelemetry() can register new ones.
          trace.disable();
          metrics.disable();
          propagation.disable();
          context.disable();
          if (activeTelemetry() === handle) setActiveTelemetry(undefined);
          resetServerTelemetry();
          resetClientTelemetry();
        });
      }
      return stopped;
    },
  };
  setActiveTelemetry(handle);
  return handle;
}
