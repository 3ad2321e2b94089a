// W3C trace context for generations: parse a `traceparent`/`tracestate` pair
// carried in a start message, fall back to the call's metadata, and keep the
// gRPC stream's span for a link. Also ends a stream span the gRPC
// instrumentation would leave open when the client cancels.
import type { Context, Link, Span, SpanContext, TextMapGetter } from '@opentelemetry/api';
import {
  ROOT_CONTEXT,
  SpanStatusCode,
  TraceFlags,
  context,
  createTraceState,
  isSpanContextValid,
  propagation,
  trace,
} from '@opentelemetry/api';
import { ATTR_RPC_GRPC_STATUS_CODE } from './semconv';

/** The part of grpc-js `Metadata` this module reads. */
export interface MetadataLike {
  get(key: string): Array<string | Buffer>;
  getMap?(): Record<string, string | Buffer>;
}

// version "00": exactly four fields; a higher version may append fields (W3C
// Trace Context, "versioning of traceparent"), so parse the first four only.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Parses a W3C `traceparent` (and optional `tracestate`); undefined if absent or invalid. */
export function parseTraceparent(traceparent: string | undefined, tracestate?: string): SpanContext | undefined {
  if (!traceparent) return undefined;
  const m = TRACEPARENT.exec(traceparent.trim());
  if (!m) return undefined;
  const [, version, traceId, spanId, flags, rest] = m;
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  const spanContext: SpanContext = {
    traceId,
    spanId,
    traceFlags: parseInt(flags, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!isSpanContextValid(spanContext)) return undefined; // all-zero ids
  if (tracestate) spanContext.traceState = createTraceState(tracestate);
  return spanContext;
}

/** Formats a span context as a W3C `traceparent`. */
export function formatTraceparent(sc: SpanContext): string {
  return `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
}

const metadataGetter: TextMapGetter<MetadataLike> = {
  get(carrier, key) {
    const values = carrier.get(key);
    if (!values || values.length === 0) return undefined;
    return values.map((v) => (typeof v === 'string' ? v : v.toString('utf8')));
  },
  keys(carrier) {
    return carrier.getMap ? Object.keys(carrier.getMap()) : [];
  },
};

/** Extracts the remote parent from gRPC call metadata with the global propagator. */
export function contextFromMetadata(metadata: MetadataLike): Context | undefined {
  const extracted = propagation.extract(ROOT_CONTEXT, metadata, metadataGetter);
  const sc = trace.getSpanContext(extracted);
  return sc && isSpanContextValid(sc) ? extracted : undefined;
}

export interface ParentChoice {
  parent: Context;
  /** the stream span (gRPC instrumentation's SERVER span), when it is not the parent */
  links: Link[];
  /** where the parent came from, for debugging and tests */
  source: 'message' | 'metadata' | 'active' | 'none';
}

/**
 * Parent of a generation span: the message's traceparent, else the call's
 * metadata traceparent, else the active context (the stream span when gRPC is
 * instrumented). The stream span is linked unless it is the parent.
 */
export function chooseParent(opts: {
  traceparent?: string;
  tracestate?: string;
  metadata?: MetadataLike;
  active?: Context;
}): ParentChoice {
  const active = opts.active ?? context.active();
  const streamSpan = trace.getSpan(active);
  const streamContext = streamSpan?.spanContext();
  const links: Link[] = [];
  const linkStream = () => {
    if (streamContext && isSpanContextValid(streamContext)) {
      links.push({ context: streamContext, attributes: { 'tokenstream.link': 'grpc_stream' } });
    }
  };
  const fromMessage = parseTraceparent(opts.traceparent, opts.tracestate);
  if (fromMessage) {
    linkStream();
    // Keep the active context's other entries (baggage), replace the span.
    return { parent: trace.setSpanContext(active, fromMessage), links, source: 'message' };
  }
  const fromMetadata = opts.metadata ? contextFromMetadata(opts.metadata) : undefined;
  if (fromMetadata) {
    linkStream();
    return { parent: fromMetadata, links, source: 'metadata' };
  }
  if (streamContext && isSpanContextValid(streamContext)) return { parent: active, links, source: 'active' };
  return { parent: active, links, source: 'none' };
}

// The instrumentation marks a call whose span it has ended with this symbol and
// then ignores the call's later 'finish'/error. Not re-exported by the package;
// without it the only cost is a diag warning about ending an ended span.
let callSpanEnded: symbol | undefined;
try {
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  callSpanEnded = require('@opentelemetry/instrumentation-grpc/build/src/serverUtils').CALL_SPAN_ENDED;
} catch {
  callSpanEnded = undefined;
}

/**
 * The gRPC instrumentation ends a streaming call's SERVER span on 'finish' or
 * an error, but not on 'cancelled': when a client cancels (or vanishes) while
 * generations are in flight, grpc-js emits 'end' then 'cancelled' and the call
 * is destroyed without 'finish', so the span would stay open forever (or end
 * as OK if the handler ends the call afterwards). Call this at the top of a
 * streaming handler, inside the handler's context: it ends that span with
 * CANCELLED. No-op when the call is not traced.
 */
export function endStreamSpanOnCancel(call: { on(event: 'cancelled', listener: () => void): unknown }): Span | undefined {
  const span = trace.getSpan(context.active());
  if (!span || !span.isRecording()) return undefined;
  call.on('cancelled', () => {
    if (!span.isRecording()) return; // already ended by finish/error
    if (callSpanEnded) (call as unknown as Record<symbol, boolean>)[callSpanEnded] = true;
    span.setAttribute(ATTR_RPC_GRPC_STATUS_CODE, 1); // CANCELLED
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'cancelled by the client' });
    span.end();
  });
  return span;
}
