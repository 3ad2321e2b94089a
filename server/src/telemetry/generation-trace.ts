// One generation's telemetry: its span (GenAI conventions), phase child spans,
// every token's latency, and the request metrics.
//
// Shape, chosen for cost (see docs/telemetry.md for the measurements):
// - one INTERNAL span `{operation} {model}` per generation, child spans `queue`,
//   `prefill` and `decode` built from the timestamps the service reports;
// - every token's latency in chunked integer-array attributes (µs):
//   `tokenstream.token.latency_us.<k>` (token 0: arrival -> first token; token
//   i: gap since token i-1, both taken where the token left the engine) and
//   `tokenstream.token.write_delay_us.<k>` (engine -> written to the stream);
//   array attributes are not subject to the 128-event limit and cost one
//   attribute per chunk, so no token is dropped however long the generation;
// - span events only for the first token and the slowest gaps (bounded);
// - TTFT, ITL p50/p99/max and write-delay percentiles as attributes.
// Per token the hot path stores one double; everything else happens once, at end().
import type { Attributes, Span, SpanContext, Tracer } from '@opentelemetry/api';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { nowMs } from './clock';
import { largestIndices, percentilesInPlace, scratchBuffer } from './latency-stats';
import type { ServerMetrics } from './metrics';
import * as sc from './semconv';
import type { MetadataLike } from './trace-context';
import { chooseParent } from './trace-context';

/** Entries per latency-array attribute, until there would be more than MAX_CHUNKS of them. */
export const TOKEN_CHUNK = 1024;
export const MAX_CHUNKS = 16;
/** Slowest inter-token gaps reported as span events. */
export const SLOW_GAP_EVENTS = 8;
/** Request labels copied to span attributes, at most. */
export const MAX_LABELS = 16;

export interface GenerationStart {
  requestId: string;
  /** the model name as requested (the default model's name when the request left it empty) */
  model: string;
  /** the model that served it, when it differs (an alias) */
  responseModel?: string;
  /** `chat` when a chat template rendered the input */
  operation?: typeof sc.GEN_AI_OPERATION_TEXT_COMPLETION | typeof sc.GEN_AI_OPERATION_CHAT;
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  seed?: number;
  stop?: string[];
  /** tokens are streamed (always, for this service) */
  stream?: boolean;
  conversationId?: string;
  /** low-cardinality tags copied to `tokenstream.label.<key>` */
  labels?: Record<string, string>;
  /** W3C context carried in the start message; wins over the call metadata */
  traceparent?: string;
  tracestate?: string;
  /** the call's metadata: its traceparent is the parent when the message has none */
  metadata?: MetadataLike;
  serverAddress?: string;
  serverPort?: number;
  /** arrival time (nowMs()); default: now */
  startTimeMs?: number;
}

export interface GenerationEnd {
  /** proto FinishReason name when it ended with a final message: STOP, LENGTH, STOP_SEQUENCE, CANCELLED */
  finishReason?: string;
  /** when it ended with an error message (or was refused) */
  error?: { code: number; message: string; type?: string };
  promptTokens?: number;
  completionTokens?: number;
  cachedPromptTokens?: number;
  endTimeMs?: number;
}

/** Timing summary of an ended generation (milliseconds), e.g. for a Final message. */
export interface GenerationSummary {
  queueMs: number;
  ttftMs: number;
  prefillMs: number;
  decodeMs: number;
  totalMs: number;
  tokens: number;
  decodeTokensPerSecond: number;
  itlP50Ms: number;
  itlP99Ms: number;
  itlMaxMs: number;
}

const GRPC_CODE_NAMES = [
  'ok', 'cancelled', 'unknown', 'invalid_argument', 'deadline_exceeded', 'not_found', 'already_exists',
  'permission_denied', 'resource_exhausted', 'failed_precondition', 'aborted', 'out_of_range',
  'unimplemented', 'internal', 'unavailable', 'data_loss', 'unauthenticated',
];

/** Low-cardinality error.type for a gRPC status code. */
export function errorTypeOfGrpcCode(code: number): string {
  return GRPC_CODE_NAMES[code] ?? sc.ERROR_TYPE_OTHER;
}

/** gen_ai.response.finish_reasons values (OpenAI-style, as the conventions' examples). */
function semconvFinishReason(reason: string): string {
  switch (reason) {
    case 'STOP':
    case 'STOP_SEQUENCE':
      return 'stop';
    case 'LENGTH':
      return 'length';
    case 'CANCELLED':
      return 'cancelled';
    default:
      return reason.toLowerCase();
  }
}

export class GenerationTrace {
  readonly span: Span;
  /** trace id of the generation span; '' when it is not sampled */
  readonly traceId: string;
  private readonly recording: boolean;
  private readonly startMs: number;
  private admittedMs = NaN;
  private prefillDoneMs = NaN;
  private workerId: number | undefined;
  private ended = false;
  // Token times (epoch ms, as taken in the worker). Only kept when the span is
  // recording; metrics need only the first, the last and the count.
  private times: Float64Array;
  private count = 0;
  private firstMs = NaN;
  private lastMs = NaN;
  // Stream writes as (tokens written so far, time) pairs, one per write.
  private writes: Float64Array;
  private writeCount = 0;
  private summaryCache: GenerationSummary | undefined;

  constructor(
    private readonly tracer: Tracer,
    private readonly metrics: ServerMetrics | undefined,
    private readonly info: GenerationStart,
    activeContext = context.active(),
  ) {
    this.startMs = info.startTimeMs ?? nowMs();
    const operation = info.operation ?? sc.GEN_AI_OPERATION_TEXT_COMPLETION;
    const { parent, links } = chooseParent({
      traceparent: info.traceparent,
      tracestate: info.tracestate,
      metadata: info.metadata,
      active: activeContext,
    });
    this.span = tracer.startSpan(
      `${operation} ${info.model}`,
      { kind: SpanKind.INTERNAL, startTime: this.startMs, links, attributes: startAttributes(info, operation) },
      parent,
    );
    this.recording = this.span.isRecording();
    const spanContext: SpanContext = this.span.spanContext();
    this.traceId = this.recording ? spanContext.traceId : '';
    this.times = new Float64Array(this.recording ? 64 : 0);
    this.writes = new Float64Array(this.recording ? 32 : 0);
  }

  /** The generation left the queue and got a sequence slot in a worker. */
  admitted(timeMs = nowMs(), workerId?: number, slot?: number): void {
    this.admittedMs = timeMs;
    this.workerId = workerId;
    if (this.recording) {
      if (workerId !== undefined) this.span.setAttribute(sc.ATTR_TS_WORKER_ID, workerId);
      if (slot !== undefined) this.span.setAttribute(sc.ATTR_TS_KV_SLOT, slot);
    }
  }

  /** Prompt processing finished (default: the first token's time). */
  prefillDone(timeMs = nowMs()): void {
    this.prefillDoneMs = timeMs;
  }

  /** One token left the engine at `timeMs` (taken in the worker). */
  token(timeMs: number): void {
    if (this.count === 0) this.firstMs = timeMs;
    this.lastMs = timeMs;
    if (this.recording) {
      if (this.count === this.times.length) this.times = grow(this.times);
      this.times[this.count] = timeMs;
    }
    this.count++;
  }

  /** `n` tokens that left the engine at the times in `times[offset..offset+n)`. */
  tokens(times: ArrayLike<number>, offset: number, n: number): void {
    for (let i = 0; i < n; i++) this.token(times[offset + i]);
  }

  /** Every token up to `tokensWritten` (a running total) was written to the stream at `timeMs`. */
  written(tokensWritten: number, timeMs = nowMs()): void {
    if (!this.recording) return;
    if (this.writeCount + 2 > this.writes.length) this.writes = grow(this.writes);
    this.writes[this.writeCount++] = tokensWritten;
    this.writes[this.writeCount++] = timeMs;
  }

  get tokenCount(): number {
    return this.count;
  }

  /** Ends the span (status, usage, latency arrays, child spans) and records the metrics. Idempotent. */
  end(result: GenerationEnd): GenerationSummary {
    if (this.ended) return this.summaryCache!;
    this.ended = true;
    const endMs = result.endTimeMs ?? nowMs();
    const errorType = result.error
      ? (result.error.type ?? errorTypeOfGrpcCode(result.error.code))
      : result.finishReason === 'CANCELLED'
        ? 'cancelled'
        : undefined;
    const n = this.count;
    const lastMs = n > 0 ? this.lastMs : endMs;
    const summary = this.summarize(endMs);
    this.summaryCache = summary;

    const operation = this.info.operation ?? sc.GEN_AI_OPERATION_TEXT_COMPLETION;
    const inputTokens = result.promptTokens ?? 0;
    const outputTokens = result.completionTokens ?? n;
    this.metrics?.recordGeneration({
      operation,
      model: this.info.model,
      responseModel: this.info.responseModel,
      errorType,
      durationS: ((errorType ? endMs : lastMs) - this.startMs) / 1000,
      timeToFirstTokenS: n > 0 ? (this.firstMs - this.startMs) / 1000 : undefined,
      timePerOutputTokenS: n > 1 ? (this.lastMs - this.firstMs) / 1000 / (n - 1) : undefined,
      inputTokens,
      outputTokens,
    });
    if (result.error) this.metrics?.recordError(errorType!, result.error.code, this.info.model);
    else if (errorType === 'cancelled') this.metrics?.recordError(errorType, 1, this.info.model);

    if (!this.recording) return summary;
    const span = this.span;
    const attrs: Attributes = {
      [sc.ATTR_GEN_AI_USAGE_INPUT_TOKENS]: inputTokens,
      [sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: outputTokens,
      [sc.ATTR_TS_TOKEN_COUNT]: n,
      [sc.ATTR_TS_QUEUE_MS]: round3(summary.queueMs),
      [sc.ATTR_TS_PREFILL_MS]: round3(summary.prefillMs),
      [sc.ATTR_TS_DECODE_MS]: round3(summary.decodeMs),
    };
    if (result.cachedPromptTokens !== undefined) {
      attrs[sc.ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = result.cachedPromptTokens;
    }
    if (result.finishReason) {
      attrs[sc.ATTR_GEN_AI_RESPONSE_FINISH_REASONS] = [semconvFinishReason(result.finishReason)];
      attrs[sc.ATTR_TS_FINISH_REASON] = result.finishReason;
    }
    if (n > 0) {
      attrs[sc.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = (this.firstMs - this.startMs) / 1000;
      attrs[sc.ATTR_TS_TTFT_MS] = round3(summary.ttftMs);
    }
    if (n > 1) {
      attrs[sc.ATTR_TS_ITL_P50_MS] = round3(summary.itlP50Ms);
      attrs[sc.ATTR_TS_ITL_P99_MS] = round3(summary.itlP99Ms);
      attrs[sc.ATTR_TS_ITL_MAX_MS] = round3(summary.itlMaxMs);
      attrs[sc.ATTR_TS_DECODE_TOKENS_PER_S] = round3(summary.decodeTokensPerSecond);
    }
    this.addTokenArrays(attrs);
    span.setAttributes(attrs);

    if (errorType) {
      span.setAttribute(sc.ATTR_ERROR_TYPE, errorType);
      span.setStatus({
        code: SpanStatusCode.ERROR,
        message: result.error ? result.error.message : 'cancelled',
      });
    }
    this.addChildSpans(endMs);
    span.end(endMs);
    return summary;
  }

  private summarize(endMs: number): GenerationSummary {
    const n = this.count;
    const admitted = Number.isNaN(this.admittedMs) ? this.startMs : this.admittedMs;
    const first = n > 0 ? this.firstMs : endMs;
    const last = n > 0 ? this.lastMs : endMs;
    let itl = [NaN, NaN, NaN];
    if (this.recording && n > 1) {
      const gaps = scratchBuffer(0, n - 1);
      for (let i = 1; i < n; i++) gaps[i - 1] = this.times[i] - this.times[i - 1];
      itl = percentilesInPlace(gaps, n - 1, [0.5, 0.99, 1]);
    }
    return {
      queueMs: admitted - this.startMs,
      ttftMs: n > 0 ? first - this.startMs : NaN,
      prefillMs: (Number.isNaN(this.prefillDoneMs) ? first : this.prefillDoneMs) - admitted,
      decodeMs: last - first,
      totalMs: endMs - this.startMs,
      tokens: n,
      decodeTokensPerSecond: n > 1 && last > first ? ((n - 1) * 1000) / (last - first) : 0,
      itlP50Ms: itl[0],
      itlP99Ms: itl[1],
      itlMaxMs: itl[2],
    };
  }

  /** Latency arrays (µs, integers) chunked into attributes; events for the first token and slowest gaps. */
  private addTokenArrays(attrs: Attributes): void {
    const n = this.count;
    if (n === 0) return;
    const chunk = Math.max(TOKEN_CHUNK, Math.ceil(n / MAX_CHUNKS));
    const chunks = Math.ceil(n / chunk);
    attrs[sc.ATTR_TS_TOKEN_CHUNKS] = chunks;
    const times = this.times;
    const latency = scratchBuffer(0, n);
    latency[0] = times[0] - this.startMs;
    for (let i = 1; i < n; i++) latency[i] = times[i] - times[i - 1];
    for (let c = 0; c < chunks; c++) {
      const from = c * chunk;
      const to = Math.min(n, from + chunk);
      const values = new Array<number>(to - from);
      for (let i = from; i < to; i++) values[i - from] = Math.round(latency[i] * 1000);
      attrs[`${sc.ATTR_TS_TOKEN_LATENCY_US}.${c}`] = values;
    }
    if (this.writeCount > 0) {
      // Write time of token i = time of the first write whose running total exceeds i.
      const delays = scratchBuffer(1, n);
      let w = 0;
      let writtenDelayCount = 0;
      for (let i = 0; i < n; i++) {
        while (w < this.writeCount && this.writes[w] <= i) w += 2;
        if (w < this.writeCount) {
          delays[i] = this.writes[w + 1] - times[i];
          writtenDelayCount++;
        } else delays[i] = -1; // never written (cancelled or failed with tokens pending)
      }
      for (let c = 0; c < chunks; c++) {
        const from = c * chunk;
        const to = Math.min(n, from + chunk);
        const values = new Array<number>(to - from);
        for (let i = from; i < to; i++) values[i - from] = delays[i] < 0 ? -1 : Math.round(delays[i] * 1000);
        attrs[`${sc.ATTR_TS_TOKEN_WRITE_DELAY_US}.${c}`] = values;
      }
      if (writtenDelayCount > 0) {
        const written = scratchBuffer(2, writtenDelayCount);
        let k = 0;
        for (let i = 0; i < n; i++) if (delays[i] >= 0) written[k++] = delays[i];
        const [p50, p99] = percentilesInPlace(written, k, [0.5, 0.99]);
        attrs[sc.ATTR_TS_WRITE_DELAY_P50_MS] = round3(p50);
        attrs[sc.ATTR_TS_WRITE_DELAY_P99_MS] = round3(p99);
      }
    }
    this.span.addEvent('first_token', { [sc.ATTR_TS_TOKEN_INDEX]: 0 }, times[0]);
    if (n > 1) {
      const gaps = latency.subarray(1);
      for (const g of largestIndices(gaps, n - 1, SLOW_GAP_EVENTS)) {
        this.span.addEvent(
          'slow_gap',
          { [sc.ATTR_TS_TOKEN_INDEX]: g + 1, [sc.ATTR_TS_GAP_MS]: round3(gaps[g]) },
          times[g + 1],
        );
      }
    }
  }

  private addChildSpans(endMs: number): void {
    const parent = trace.setSpan(ROOT_CONTEXT, this.span);
    const worker: Attributes = this.workerId !== undefined ? { [sc.ATTR_TS_WORKER_ID]: this.workerId } : {};
    const admitted = Number.isNaN(this.admittedMs) ? undefined : this.admittedMs;
    // Never admitted (cancelled or failed while queued): it waited until the end.
    this.tracer.startSpan('queue', { startTime: this.startMs, attributes: worker }, parent).end(admitted ?? endMs);
    if (admitted !== undefined) {
      const prefillEnd = !Number.isNaN(this.prefillDoneMs)
        ? this.prefillDoneMs
        : this.count > 0
          ? this.firstMs
          : endMs;
      this.tracer.startSpan('prefill', { startTime: admitted, attributes: worker }, parent).end(prefillEnd);
    }
    if (this.count > 0) {
      this.tracer
        .startSpan('decode', { startTime: this.firstMs, attributes: { ...worker, [sc.ATTR_TS_TOKEN_COUNT]: this.count } }, parent)
        .end(Math.max(this.lastMs, this.firstMs));
    }
  }
}

function startAttributes(info: GenerationStart, operation: string): Attributes {
  const a: Attributes = {
    [sc.ATTR_GEN_AI_OPERATION_NAME]: operation,
    [sc.ATTR_GEN_AI_PROVIDER_NAME]: sc.GEN_AI_PROVIDER,
    [sc.ATTR_GEN_AI_REQUEST_MODEL]: info.model,
    [sc.ATTR_GEN_AI_RESPONSE_MODEL]: info.responseModel ?? info.model,
    [sc.ATTR_GEN_AI_REQUEST_STREAM]: info.stream ?? true,
    [sc.ATTR_GEN_AI_OUTPUT_TYPE]: 'text',
    [sc.ATTR_GEN_AI_RESPONSE_ID]: info.requestId,
    [sc.ATTR_TS_REQUEST_ID]: info.requestId,
  };
  if (info.maxTokens !== undefined) a[sc.ATTR_GEN_AI_REQUEST_MAX_TOKENS] = info.maxTokens;
  if (info.temperature !== undefined) a[sc.ATTR_GEN_AI_REQUEST_TEMPERATURE] = info.temperature;
  if (info.topP !== undefined) a[sc.ATTR_GEN_AI_REQUEST_TOP_P] = info.topP;
  if (info.topK !== undefined) a[sc.ATTR_GEN_AI_REQUEST_TOP_K] = info.topK;
  if (info.frequencyPenalty !== undefined) a[sc.ATTR_GEN_AI_REQUEST_FREQUENCY_PENALTY] = info.frequencyPenalty;
  if (info.presencePenalty !== undefined) a[sc.ATTR_GEN_AI_REQUEST_PRESENCE_PENALTY] = info.presencePenalty;
  if (info.seed !== undefined) a[sc.ATTR_GEN_AI_REQUEST_SEED] = info.seed;
  if (info.stop && info.stop.length > 0) a[sc.ATTR_GEN_AI_REQUEST_STOP_SEQUENCES] = info.stop;
  if (info.conversationId) a[sc.ATTR_GEN_AI_CONVERSATION_ID] = info.conversationId;
  if (info.serverAddress) {
    a[sc.ATTR_SERVER_ADDRESS] = info.serverAddress;
    if (info.serverPort !== undefined) a[sc.ATTR_SERVER_PORT] = info.serverPort;
  }
  if (info.labels) {
    // Bounded: the span keeps at most 128 attributes and the latency arrays need theirs.
    let kept = 0;
    for (const [k, v] of Object.entries(info.labels)) {
      if (kept++ === MAX_LABELS) break;
      a[sc.ATTR_TS_LABEL_PREFIX + k] = v;
    }
  }
  return a;
}

function grow(a: Float64Array): Float64Array {
  const b = new Float64Array(Math.max(16, a.length * 2));
  b.set(a);
  return b;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
