// The client side of a generation: a CLIENT span `{operation} {model}` whose
// context travels in the start message's `traceparent`, so the server's
// generation span becomes its child and one trace shows client -> server ->
// worker. Also the GenAI client metrics. All no-ops when telemetry is off.
import type { Attributes, Context, Histogram, Meter, MeterProvider, Span, Tracer, TracerProvider } from '@opentelemetry/api';
import { SpanKind, SpanStatusCode, context, metrics, trace } from '@opentelemetry/api';
import { nowMs } from './clock';
import * as sc from './semconv';
import { formatTraceparent } from './trace-context';
import { readPackageVersion } from './version';
import { errorTypeOfGrpcCode } from './generation-trace';

export interface ClientGenerationStart {
  requestId: string;
  /** '' = the server's default model */
  model: string;
  operation?: typeof sc.GEN_AI_OPERATION_TEXT_COMPLETION | typeof sc.GEN_AI_OPERATION_CHAT;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  seed?: number;
  /** "host:port" of the server */
  server?: string;
}

export interface ClientGenerationEnd {
  finishReason?: string;
  error?: { code: number; message: string };
  promptTokens?: number;
  completionTokens?: number;
  /** the model that answered (ListModels name), when known */
  responseModel?: string;
}

class ClientMetrics {
  readonly duration: Histogram;
  readonly tokenUsage: Histogram;
  readonly timeToFirstChunk: Histogram;
  constructor(meter: Meter) {
    this.duration = meter.createHistogram(sc.METRIC_CLIENT_OPERATION_DURATION, {
      description: 'GenAI operation duration as the client sees it',
      unit: 's',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_REQUEST_DURATION] },
    });
    this.tokenUsage = meter.createHistogram(sc.METRIC_CLIENT_TOKEN_USAGE, {
      description: 'Input and output tokens per generation',
      unit: '{token}',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_TOKEN_USAGE] },
    });
    this.timeToFirstChunk = meter.createHistogram(sc.METRIC_CLIENT_TIME_TO_FIRST_CHUNK, {
      description: 'Time from the request to the first chunk with output',
      unit: 's',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_TIME_TO_FIRST_TOKEN] },
    });
  }
}

export class ClientGenerationTrace {
  readonly span: Span;
  /** W3C context to send in the start message ('' when not sampled: send nothing) */
  readonly traceparent: string;
  readonly tracestate: string;
  private readonly startMs = nowMs();
  private firstChunkMs = NaN;
  private ended = false;

  constructor(
    tracer: Tracer,
    private readonly metrics: ClientMetrics,
    private readonly info: ClientGenerationStart,
    parent: Context,
  ) {
    const operation = info.operation ?? sc.GEN_AI_OPERATION_TEXT_COMPLETION;
    const attrs: Attributes = {
      [sc.ATTR_GEN_AI_OPERATION_NAME]: operation,
      [sc.ATTR_GEN_AI_PROVIDER_NAME]: sc.GEN_AI_PROVIDER,
      [sc.ATTR_GEN_AI_REQUEST_STREAM]: true,
      [sc.ATTR_TS_REQUEST_ID]: info.requestId,
    };
    if (info.model) attrs[sc.ATTR_GEN_AI_REQUEST_MODEL] = info.model;
    if (info.maxTokens !== undefined) attrs[sc.ATTR_GEN_AI_REQUEST_MAX_TOKENS] = info.maxTokens;
    if (info.temperature !== undefined) attrs[sc.ATTR_GEN_AI_REQUEST_TEMPERATURE] = info.temperature;
    if (info.topP !== undefined) attrs[sc.ATTR_GEN_AI_REQUEST_TOP_P] = info.topP;
    if (info.topK !== undefined) attrs[sc.ATTR_GEN_AI_REQUEST_TOP_K] = info.topK;
    if (info.seed !== undefined) attrs[sc.ATTR_GEN_AI_REQUEST_SEED] = info.seed;
    if (info.server) {
      const at = info.server.lastIndexOf(':');
      attrs[sc.ATTR_SERVER_ADDRESS] = at > 0 ? info.server.slice(0, at) : info.server;
      const port = at > 0 ? Number(info.server.slice(at + 1)) : NaN;
      if (Number.isInteger(port)) attrs[sc.ATTR_SERVER_PORT] = port;
    }
    this.span = tracer.startSpan(
      `${operation}${info.model ? ` ${info.model}` : ''}`,
      { kind: SpanKind.CLIENT, startTime: this.startMs, attributes: attrs },
      parent,
    );
    const sc0 = this.span.spanContext();
    const recording = this.span.isRecording();
    this.traceparent = recording ? formatTraceparent(sc0) : '';
    this.tracestate = recording ? (sc0.traceState?.serialize() ?? '') : '';
  }

  /**
   * Runs `fn` (e.g. starting the gRPC call) with this span active, so the
   * instrumented gRPC client makes its CLIENT span a child of it and sends its
   * context in the call metadata: one trace from here to the server's worker.
   */
  run<T>(fn: () => T): T {
    return context.with(trace.setSpan(context.active(), this.span), fn);
  }

  /** A chunk arrived (call for every chunk; only the first with tokens matters). */
  chunk(tokens: number): void {
    if (tokens > 0 && Number.isNaN(this.firstChunkMs)) {
      this.firstChunkMs = nowMs();
      if (this.span.isRecording()) this.span.addEvent('first_chunk');
    }
  }

  end(result: ClientGenerationEnd): void {
    if (this.ended) return;
    this.ended = true;
    const endMs = nowMs();
    const errorType = result.error
      ? errorTypeOfGrpcCode(result.error.code)
      : result.finishReason === 'CANCELLED'
        ? 'cancelled'
        : undefined;
    const model = this.info.model || result.responseModel || '';
    const attrs: Attributes = {
      [sc.ATTR_GEN_AI_OPERATION_NAME]: this.info.operation ?? sc.GEN_AI_OPERATION_TEXT_COMPLETION,
      [sc.ATTR_GEN_AI_PROVIDER_NAME]: sc.GEN_AI_PROVIDER,
    };
    if (model) attrs[sc.ATTR_GEN_AI_REQUEST_MODEL] = model;
    this.metrics.duration.record((endMs - this.startMs) / 1000, errorType ? { ...attrs, [sc.ATTR_ERROR_TYPE]: errorType } : attrs);
    if (!Number.isNaN(this.firstChunkMs)) this.metrics.timeToFirstChunk.record((this.firstChunkMs - this.startMs) / 1000, attrs);
    if (result.promptTokens !== undefined) {
      this.metrics.tokenUsage.record(result.promptTokens, { ...attrs, [sc.ATTR_GEN_AI_TOKEN_TYPE]: 'input' });
    }
    if (result.completionTokens !== undefined) {
      this.metrics.tokenUsage.record(result.completionTokens, { ...attrs, [sc.ATTR_GEN_AI_TOKEN_TYPE]: 'output' });
    }
    if (!this.span.isRecording()) return;
    const end: Attributes = {};
    if (result.responseModel) end[sc.ATTR_GEN_AI_RESPONSE_MODEL] = result.responseModel;
    if (result.promptTokens !== undefined) end[sc.ATTR_GEN_AI_USAGE_INPUT_TOKENS] = result.promptTokens;
    if (result.completionTokens !== undefined) end[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS] = result.completionTokens;
    if (result.finishReason) end[sc.ATTR_TS_FINISH_REASON] = result.finishReason;
    if (!Number.isNaN(this.firstChunkMs)) {
      end[sc.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (this.firstChunkMs - this.startMs) / 1000;
    }
    this.span.setAttributes(end);
    if (errorType) {
      this.span.setAttribute(sc.ATTR_ERROR_TYPE, errorType);
      this.span.setStatus({ code: SpanStatusCode.ERROR, message: result.error?.message ?? 'cancelled' });
    }
    this.span.end(endMs);
  }
}

export class ClientTelemetry {
  private readonly tracer: Tracer;
  private readonly metrics: ClientMetrics;

  constructor(opts: { tracerProvider?: TracerProvider; meterProvider?: MeterProvider } = {}) {
    const version = readPackageVersion();
    this.tracer = (opts.tracerProvider ?? trace.getTracerProvider()).getTracer(sc.INSTRUMENTATION_SCOPE, version);
    this.metrics = new ClientMetrics(
      (opts.meterProvider ?? metrics.getMeterProvider()).getMeter(sc.INSTRUMENTATION_SCOPE, version),
    );
  }

  /** Starts the client span, parented on `parent` (default: the active context). */
  startGeneration(info: ClientGenerationStart, parent: Context = context.active()): ClientGenerationTrace {
    return new ClientGenerationTrace(this.tracer, this.metrics, info, parent);
  }
}

let instance: ClientTelemetry | undefined;

/** The process's ClientTelemetry (built on first use from the global providers). */
export function clientTelemetry(): ClientTelemetry {
  if (!instance) instance = new ClientTelemetry();
  return instance;
}

/** Forgets the process instance (after the SDK is restarted). */
export function resetClientTelemetry(): void {
  instance = undefined;
}
