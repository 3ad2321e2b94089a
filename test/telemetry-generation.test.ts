// The generation span and request metrics, driven through the real OpenTelemetry
// SDK (BasicTracerProvider + InMemorySpanExporter, MeterProvider + a pull
// reader) with synthetic timestamps: every attribute, child span, latency array
// and histogram is checked against values computed from those timestamps.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags, propagation } from '@opentelemetry/api';
import { core } from '@opentelemetry/sdk-node';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, MetricReader, DataPointType } from '@opentelemetry/sdk-metrics';
import type { HistogramMetricData, MetricData } from '@opentelemetry/sdk-metrics';
import fc from 'fast-check';
import { GenerationTrace, MAX_CHUNKS, SLOW_GAP_EVENTS, TOKEN_CHUNK } from '../server/src/telemetry/generation-trace';
import { largestIndices, percentiles } from '../server/src/telemetry/latency-stats';
import { ServerTelemetry } from '../server/src/telemetry/server-telemetry';
import * as sc from '../server/src/telemetry/semconv';
import { formatTraceparent, parseTraceparent } from '../server/src/telemetry/trace-context';

class PullReader extends MetricReader {
  protected async onShutdown(): Promise<void> {}
  protected async onForceFlush(): Promise<void> {}
}

function setup() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new PullReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  const telemetry = new ServerTelemetry({ tracerProvider, meterProvider });
  const collect = async (): Promise<Map<string, MetricData>> => {
    const { resourceMetrics } = await reader.collect();
    const out = new Map<string, MetricData>();
    for (const s of resourceMetrics.scopeMetrics) for (const m of s.metrics) out.set(m.descriptor.name, m);
    return out;
  };
  const spans = async (): Promise<ReadableSpan[]> => {
    await tracerProvider.forceFlush();
    return exporter.getFinishedSpans();
  };
  return { telemetry, exporter, tracerProvider, collect, spans };
}

/** Concatenates the chunked int-array attribute `<prefix>.0..k`. */
function chunked(span: ReadableSpan, prefix: string): number[] {
  const n = span.attributes[sc.ATTR_TS_TOKEN_CHUNKS] as number;
  const out: number[] = [];
  for (let c = 0; c < n; c++) out.push(...(span.attributes[`${prefix}.${c}`] as number[]));
  return out;
}

function hrToMs(t: [number, number]): number {
  return t[0] * 1000 + t[1] / 1e6;
}

const T0 = Date.UTC(2025, 0, 1, 12, 0, 0); // whole milliseconds: exact arithmetic below

/** Runs a synthetic generation: arrival T0, admitted +2 ms, first token +10 ms, then `gaps` (ms). */
function runGeneration(telemetry: ServerTelemetry, gaps: number[], end: Parameters<GenerationTrace['end']>[0], extra = {}) {
  const gen = telemetry.startGeneration(
    {
      requestId: 'req-1',
      model: 'tiny',
      maxTokens: 64,
      temperature: 0.5,
      topP: 0.9,
      topK: 40,
      seed: 7,
      stop: ['\n\n'],
      startTimeMs: T0,
      labels: { tenant: 'a' },
      ...extra,
    },
    ROOT_CONTEXT,
  );
  gen.admitted(T0 + 2, 3, 5);
  let t = T0 + 10;
  const times = [t];
  gen.token(t);
  gen.written(1, t + 0.25);
  for (const g of gaps) {
    t += g;
    times.push(t);
    gen.token(t);
    gen.written(times.length, t + 0.25);
  }
  const summary = gen.end({ promptTokens: 12, completionTokens: times.length, endTimeMs: t + 1, ...end });
  return { gen, times, summary };
}

describe('generation span', () => {
  test('a finished generation: GenAI attributes, phase spans, every token latency, events', async () => {
    const { telemetry, spans } = setup();
    const gaps = [5, 7, 3, 20, 4, 6];
    const { gen, times, summary } = runGeneration(telemetry, gaps, { finishReason: 'STOP' });
    const all = await spans();
    const span = all.find((s) => s.name === 'text_completion tiny')!;
    expect(span).toBeDefined();
    expect(span.kind).toBe(SpanKind.INTERNAL);
    expect(gen.traceId).toBe(span.spanContext().traceId);
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    const a = span.attributes;
    expect(a[sc.ATTR_GEN_AI_OPERATION_NAME]).toBe('text_completion');
    expect(a[sc.ATTR_GEN_AI_PROVIDER_NAME]).toBe('tokenstream');
    expect(a[sc.ATTR_GEN_AI_REQUEST_MODEL]).toBe('tiny');
    expect(a[sc.ATTR_GEN_AI_REQUEST_MAX_TOKENS]).toBe(64);
    expect(a[sc.ATTR_GEN_AI_REQUEST_TEMPERATURE]).toBe(0.5);
    expect(a[sc.ATTR_GEN_AI_REQUEST_TOP_P]).toBe(0.9);
    expect(a[sc.ATTR_GEN_AI_REQUEST_TOP_K]).toBe(40);
    expect(a[sc.ATTR_GEN_AI_REQUEST_SEED]).toBe(7);
    expect(a[sc.ATTR_GEN_AI_REQUEST_STOP_SEQUENCES]).toEqual(['\n\n']);
    expect(a[sc.ATTR_GEN_AI_REQUEST_STREAM]).toBe(true);
    expect(a[sc.ATTR_GEN_AI_RESPONSE_ID]).toBe('req-1');
    expect(a[sc.ATTR_GEN_AI_USAGE_INPUT_TOKENS]).toBe(12);
    expect(a[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(7);
    expect(a[sc.ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(['stop']);
    expect(a[sc.ATTR_TS_FINISH_REASON]).toBe('STOP');
    expect(a[sc.ATTR_TS_WORKER_ID]).toBe(3);
    expect(a[sc.ATTR_TS_KV_SLOT]).toBe(5);
    expect(a[`${sc.ATTR_TS_LABEL_PREFIX}tenant`]).toBe('a');
    expect(a[sc.ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK]).toBeCloseTo(0.01, 9);
    expect(a[sc.ATTR_TS_TTFT_MS]).toBe(10);
    // gaps sorted: 3 4 5 6 7 20 -> nearest-rank p50 = 5, p99 = 20
    expect(a[sc.ATTR_TS_ITL_P50_MS]).toBe(5);
    expect(a[sc.ATTR_TS_ITL_P99_MS]).toBe(20);
    expect(a[sc.ATTR_TS_ITL_MAX_MS]).toBe(20);
    expect(a[sc.ATTR_TS_QUEUE_MS]).toBe(2);
    expect(a[sc.ATTR_TS_PREFILL_MS]).toBe(8);
    expect(a[sc.ATTR_TS_DECODE_MS]).toBe(45);
    expect(summary.decodeTokensPerSecond).toBeCloseTo(6000 / 45, 6);
    expect(hrToMs(span.startTime)).toBeCloseTo(T0, 3);
    expect(hrToMs(span.endTime)).toBeCloseTo(times[times.length - 1] + 1, 3);

    // Every token: latency[0] = TTFT, then the gaps, in order; µs integers.
    expect(a[sc.ATTR_TS_TOKEN_COUNT]).toBe(7);
    expect(chunked(span, sc.ATTR_TS_TOKEN_LATENCY_US)).toEqual([10000, ...gaps.map((g) => g * 1000)]);
    expect(chunked(span, sc.ATTR_TS_TOKEN_WRITE_DELAY_US)).toEqual(new Array(7).fill(250));
    expect(a[sc.ATTR_TS_WRITE_DELAY_P50_MS]).toBe(0.25);

    // Events: first token, then the slowest gaps, slowest first.
    const events = span.events.map((e) => [e.name, e.attributes?.[sc.ATTR_TS_TOKEN_INDEX], e.attributes?.[sc.ATTR_TS_GAP_MS]]);
    expect(events[0]).toEqual(['first_token', 0, undefined]);
    expect(events.slice(1)).toEqual([
      ['slow_gap', 4, 20],
      ['slow_gap', 2, 7],
      ['slow_gap', 6, 6],
      ['slow_gap', 1, 5],
      ['slow_gap', 5, 4],
      ['slow_gap', 3, 3],
    ]);
    expect(hrToMs(span.events[0].time)).toBeCloseTo(T0 + 10, 3);

    // Phase child spans with the reported times.
    const child = (name: string) => all.find((s) => s.name === name)!;
    for (const name of ['queue', 'prefill', 'decode']) {
      expect(child(name).parentSpanContext?.spanId).toBe(span.spanContext().spanId);
      expect(child(name).spanContext().traceId).toBe(span.spanContext().traceId);
      expect(child(name).attributes[sc.ATTR_TS_WORKER_ID]).toBe(3);
    }
    expect([hrToMs(child('queue').startTime) - T0, hrToMs(child('queue').endTime) - T0]).toEqual([0, 2]);
    expect(hrToMs(child('prefill').startTime) - T0).toBeCloseTo(2, 3);
    expect(hrToMs(child('prefill').endTime) - T0).toBeCloseTo(10, 3);
    expect(hrToMs(child('decode').startTime) - T0).toBeCloseTo(10, 3);
    expect(hrToMs(child('decode').endTime) - T0).toBeCloseTo(55, 3);
    expect(all).toHaveLength(4);
  });

  test('1000 tokens: all accounted for, nothing dropped; 100k tokens stay within the attribute limit', async () => {
    const { telemetry, spans } = setup();
    const gaps = Array.from({ length: 999 }, (_, i) => 1 + (i % 7) * 0.5);
    const { times } = runGeneration(telemetry, gaps, { finishReason: 'LENGTH' });
    let span = (await spans()).find((s) => s.name.startsWith('text_completion'))!;
    const lat = chunked(span, sc.ATTR_TS_TOKEN_LATENCY_US);
    expect(lat).toHaveLength(1000);
    expect(span.attributes[sc.ATTR_TS_TOKEN_CHUNKS]).toBe(1);
    expect(lat.every((v) => v > 0)).toBe(true);
    // The latencies add up to the last token's offset: every token is recoverable.
    expect(lat.reduce((s, v) => s + v, 0)).toBe(Math.round((times[999] - T0) * 1000));
    expect(span.droppedAttributesCount).toBe(0);
    expect(span.droppedEventsCount).toBe(0);
    expect(span.events).toHaveLength(1 + SLOW_GAP_EVENTS);
    expect(span.attributes[sc.ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(['length']);

    const long = setup();
    const n = 100_000;
    runGeneration(long.telemetry, new Array(n - 1).fill(0.5), { finishReason: 'LENGTH' });
    span = (await long.spans()).find((s) => s.name.startsWith('text_completion'))!;
    const chunks = span.attributes[sc.ATTR_TS_TOKEN_CHUNKS] as number;
    expect(chunks).toBeLessThanOrEqual(MAX_CHUNKS);
    expect(chunks).toBeGreaterThan(1);
    expect((span.attributes[`${sc.ATTR_TS_TOKEN_LATENCY_US}.0`] as number[]).length).toBeGreaterThan(TOKEN_CHUNK);
    const all = chunked(span, sc.ATTR_TS_TOKEN_LATENCY_US);
    expect(all).toHaveLength(n);
    expect(all.slice(1).every((v) => v === 500)).toBe(true);
    expect(chunked(span, sc.ATTR_TS_TOKEN_WRITE_DELAY_US)).toHaveLength(n);
    expect(span.droppedAttributesCount).toBe(0);
    expect(Object.keys(span.attributes).length).toBeLessThanOrEqual(128);
  });

  test('parent: the message traceparent wins, then the call metadata; the stream span is linked', async () => {
    const { telemetry, spans, tracerProvider } = setup();
    const streamSpan = tracerProvider.getTracer('grpc').startSpan('grpc.tokenstream.v1.TokenStream/Generate');
    const streamContext = trace.setSpan(ROOT_CONTEXT, streamSpan);
    const clientTrace = '0af7651916cd43dd8448eb211c80319c';
    const traceparent = `00-${clientTrace}-b7ad6b7169203331-01`;
    const g1 = telemetry.startGeneration(
      { requestId: 'a', model: 'tiny', traceparent, tracestate: 'vendor=x' },
      streamContext,
    );
    g1.end({ finishReason: 'STOP' });

    // metadata (grpc-js Metadata shape) read with the global W3C propagator
    propagation.setGlobalPropagator(new core.W3CTraceContextPropagator());
    const metaTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const metadata = {
      get: (k: string) => (k === 'traceparent' ? [`00-${metaTrace}-00f067aa0ba902b7-01`] : []),
      getMap: () => ({ traceparent: `00-${metaTrace}-00f067aa0ba902b7-01` }),
    };
    const g2 = telemetry.startGeneration({ requestId: 'b', model: 'tiny', metadata }, streamContext);
    g2.end({ finishReason: 'STOP' });
    // message beats metadata
    const g3 = telemetry.startGeneration({ requestId: 'c', model: 'tiny', metadata, traceparent }, streamContext);
    g3.end({ finishReason: 'STOP' });
    // neither: the stream span is the parent (no link to itself)
    const g4 = telemetry.startGeneration({ requestId: 'd', model: 'tiny' }, streamContext);
    g4.end({ finishReason: 'STOP' });
    propagation.disable();

    const byId = new Map((await spans()).filter((s) => s.name.startsWith('text_')).map((s) => [s.attributes[sc.ATTR_GEN_AI_RESPONSE_ID], s]));
    const s1 = byId.get('a')!;
    expect(s1.spanContext().traceId).toBe(clientTrace);
    expect(s1.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
    expect(s1.spanContext().traceState?.get('vendor')).toBe('x');
    expect(s1.links.map((l) => l.context.spanId)).toEqual([streamSpan.spanContext().spanId]);
    const s2 = byId.get('b')!;
    expect(s2.spanContext().traceId).toBe(metaTrace);
    expect(s2.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
    expect(s2.links).toHaveLength(1);
    expect(byId.get('c')!.spanContext().traceId).toBe(clientTrace);
    const s4 = byId.get('d')!;
    expect(s4.parentSpanContext?.spanId).toBe(streamSpan.spanContext().spanId);
    expect(s4.links).toHaveLength(0);
  });

  test('an unsampled traceparent (flags 00) gives a non-recording span under the default parent-based sampler', async () => {
    const { telemetry, spans } = setup();
    const g = telemetry.startGeneration(
      { requestId: 'x', model: 'tiny', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00' },
      ROOT_CONTEXT,
    );
    g.token(Date.now());
    g.end({ finishReason: 'STOP' });
    expect(g.traceId).toBe('');
    expect(await spans()).toHaveLength(0);
  });

  test('cancelled and failed generations end with an error status and error.type', async () => {
    const { telemetry, spans } = setup();
    runGeneration(telemetry, [5, 5], { finishReason: 'CANCELLED' }, { requestId: 'c' });
    runGeneration(telemetry, [5], { error: { code: 4, message: 'deadline of 100 ms expired' } }, { requestId: 'd' });
    runGeneration(telemetry, [], { error: { code: 8, message: 'queue full', type: 'queue_full' } }, { requestId: 'q' });
    const byId = new Map((await spans()).filter((s) => s.name.startsWith('text_')).map((s) => [s.attributes[sc.ATTR_GEN_AI_RESPONSE_ID], s]));
    const c = byId.get('c')!;
    expect(c.status).toEqual({ code: SpanStatusCode.ERROR, message: 'cancelled' });
    expect(c.attributes[sc.ATTR_ERROR_TYPE]).toBe('cancelled');
    expect(c.attributes[sc.ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(['cancelled']);
    expect(chunked(c, sc.ATTR_TS_TOKEN_LATENCY_US)).toHaveLength(3);
    const d = byId.get('d')!;
    expect(d.status).toEqual({ code: SpanStatusCode.ERROR, message: 'deadline of 100 ms expired' });
    expect(d.attributes[sc.ATTR_ERROR_TYPE]).toBe('deadline_exceeded');
    expect(byId.get('q')!.attributes[sc.ATTR_ERROR_TYPE]).toBe('queue_full');
  });

  test('tokens never written (cancelled with output pending) have write delay -1', async () => {
    const { telemetry, spans } = setup();
    const g = telemetry.startGeneration({ requestId: 'p', model: 'tiny', startTimeMs: T0 }, ROOT_CONTEXT);
    g.admitted(T0 + 1);
    g.token(T0 + 5);
    g.token(T0 + 6);
    g.written(1, T0 + 7); // the first token only; the second was still pending
    g.token(T0 + 8);
    g.end({ finishReason: 'CANCELLED', endTimeMs: T0 + 9 });
    const span = (await spans()).find((s) => s.name.startsWith('text_'))!;
    expect(chunked(span, sc.ATTR_TS_TOKEN_WRITE_DELAY_US)).toEqual([2000, -1, -1]);
  });

  test('end() is idempotent and a chat operation is named chat', async () => {
    const { telemetry, spans } = setup();
    const g = telemetry.startGeneration({ requestId: 'i', model: 'tiny', operation: 'chat' }, ROOT_CONTEXT);
    g.end({ finishReason: 'STOP' });
    g.end({ finishReason: 'CANCELLED' });
    const s = (await spans()).filter((x) => x.name.startsWith('chat'));
    expect(s).toHaveLength(1);
    expect(s[0].name).toBe('chat tiny');
    expect(s[0].status.code).toBe(SpanStatusCode.UNSET);
  });
});

describe('request metrics', () => {
  test('histograms use the conventions buckets; TTFT and TPOT only for successful generations', async () => {
    const { telemetry, collect } = setup();
    runGeneration(telemetry, [5, 7, 3], { finishReason: 'STOP' });
    runGeneration(telemetry, [5], { finishReason: 'CANCELLED' });
    runGeneration(telemetry, [], { error: { code: 8, message: 'full', type: 'queue_full' } });
    const m = await collect();
    const hist = (name: string) => m.get(name) as HistogramMetricData;
    const boundaries = (name: string) => hist(name).dataPoints[0].value.buckets.boundaries;
    expect(boundaries(sc.METRIC_SERVER_REQUEST_DURATION)).toEqual(sc.BUCKETS_REQUEST_DURATION);
    expect(boundaries(sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN)).toEqual(sc.BUCKETS_TIME_TO_FIRST_TOKEN);
    expect(boundaries(sc.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN)).toEqual(sc.BUCKETS_TIME_PER_OUTPUT_TOKEN);
    expect(boundaries(sc.METRIC_CLIENT_TOKEN_USAGE)).toEqual(sc.BUCKETS_TOKEN_USAGE);
    for (const name of [sc.METRIC_SERVER_REQUEST_DURATION, sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN, sc.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN]) {
      expect(hist(name).descriptor.unit).toBe('s');
      expect(hist(name).dataPointType).toBe(DataPointType.HISTOGRAM);
    }
    // request.duration: one success + one per error type
    const dur = hist(sc.METRIC_SERVER_REQUEST_DURATION).dataPoints;
    const byError = new Map(dur.map((p) => [p.attributes[sc.ATTR_ERROR_TYPE] ?? 'ok', p.value]));
    expect([...byError.keys()].sort()).toEqual(['cancelled', 'ok', 'queue_full']);
    expect(byError.get('ok')!.count).toBe(1);
    expect(byError.get('ok')!.sum).toBeCloseTo(0.025, 9); // last token at +25 ms
    for (const p of dur) {
      expect(p.attributes[sc.ATTR_GEN_AI_OPERATION_NAME]).toBe('text_completion');
      expect(p.attributes[sc.ATTR_GEN_AI_PROVIDER_NAME]).toBe('tokenstream');
      expect(p.attributes[sc.ATTR_GEN_AI_REQUEST_MODEL]).toBe('tiny');
    }
    const ttft = hist(sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN).dataPoints;
    expect(ttft).toHaveLength(1);
    expect(ttft[0].value.count).toBe(1);
    expect(ttft[0].value.sum).toBeCloseTo(0.01, 9);
    const tpot = hist(sc.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN).dataPoints;
    expect(tpot[0].value.count).toBe(1);
    expect(tpot[0].value.sum).toBeCloseTo(0.015 / 3, 9);
    const usage = hist(sc.METRIC_CLIENT_TOKEN_USAGE).dataPoints;
    const input = usage.find((p) => p.attributes[sc.ATTR_GEN_AI_TOKEN_TYPE] === 'input')!;
    expect(input.value.count).toBe(3);
    expect(input.value.sum).toBe(36);
    const errors = m.get(sc.METRIC_TS_ERRORS)!.dataPoints.map((p) => [p.attributes[sc.ATTR_ERROR_TYPE], p.attributes[sc.ATTR_RPC_GRPC_STATUS_CODE], p.value]);
    expect(errors.sort()).toEqual([['cancelled', 1, 1], ['queue_full', 8, 1]]);
  });

  test('engine steps and gauges: batch size, tokens per worker, queue, active sequences, KV slots', async () => {
    const { telemetry, collect } = setup();
    telemetry.metrics.recordStep(0, 'tiny', 4, 4, 0.004, 4, 0);
    telemetry.metrics.recordStep(0, 'tiny', 2, 130, 0.02, 1, 128);
    telemetry.metrics.recordStep(1, 'tiny', 1, 1, 0.001, 1, 0);
    telemetry.metrics.setStateSource(() => ({
      queueLength: 3,
      workers: [
        { workerId: 0, model: 'tiny', activeSequences: 4, kvSlotsUsed: 4, kvSlotsLimit: 8 },
        { workerId: 1, model: 'tiny', activeSequences: 1, kvSlotsUsed: 1, kvSlotsLimit: 8 },
      ],
    }));
    const m = await collect();
    const perWorker = (name: string) =>
      new Map(m.get(name)!.dataPoints.map((p) => [p.attributes[sc.ATTR_TS_WORKER_ID], p.value]));
    expect(perWorker(sc.METRIC_TS_TOKENS_GENERATED)).toEqual(new Map([[0, 5], [1, 1]]));
    expect(perWorker(sc.METRIC_TS_TOKENS_PROMPT)).toEqual(new Map([[0, 128]]));
    const batch = perWorker(sc.METRIC_TS_BATCH_SIZE).get(0) as { count: number; sum: number };
    expect([batch.count, batch.sum]).toEqual([2, 6]);
    expect(m.get(sc.METRIC_TS_QUEUE_LENGTH)!.dataPoints[0].value).toBe(3);
    expect(perWorker(sc.METRIC_TS_SEQUENCES_ACTIVE)).toEqual(new Map([[0, 4], [1, 1]]));
    expect(perWorker(sc.METRIC_TS_KV_SLOTS_USED)).toEqual(new Map([[0, 4], [1, 1]]));
    expect(perWorker(sc.METRIC_TS_KV_SLOTS_LIMIT)).toEqual(new Map([[0, 8], [1, 8]]));
    // A failing state source must not break collection.
    telemetry.metrics.setStateSource(() => {
      throw new Error('boom');
    });
    await expect(collect()).resolves.toBeDefined();
  });

  test('with tracing off (no TracerProvider) metrics still record and no trace id is given', async () => {
    const reader = new PullReader();
    const telemetry = new ServerTelemetry({ meterProvider: new MeterProvider({ readers: [reader] }) });
    const { gen } = runGeneration(telemetry, [1, 2], { finishReason: 'STOP' });
    expect(gen.traceId).toBe('');
    expect(gen.span.isRecording()).toBe(false);
    const { resourceMetrics } = await reader.collect();
    const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((x) => x.descriptor.name));
    expect(names).toContain(sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN);
  });
});

describe('trace context and latency statistics', () => {
  test('traceparent parsing follows W3C Trace Context', () => {
    const ok = parseTraceparent('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'a=1,b=2')!;
    expect(ok).toMatchObject({ traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED, isRemote: true });
    expect(ok.traceState?.get('b')).toBe('2');
    expect(formatTraceparent(ok)).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    // future versions may append fields; version 00 may not; ff is invalid; zero ids are invalid
    expect(parseTraceparent('01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra')).toBeDefined();
    for (const bad of [
      '',
      'garbage',
      '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra',
      'ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      '00-00000000000000000000000000000000-b7ad6b7169203331-01',
      '00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01',
      '00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01',
    ]) {
      expect(parseTraceparent(bad)).toBeUndefined();
    }
  });

  test('percentiles and largest indices agree with a brute-force reference', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { maxLength: 200 }), fc.integer({ min: 0, max: 12 }), (xs, k) => {
        const a = Float64Array.from(xs);
        const sorted = [...xs].sort((p, q) => p - q);
        const [p50, p99, max] = percentiles(a, xs.length, [0.5, 0.99, 1]);
        if (xs.length === 0) expect(Number.isNaN(p50)).toBe(true);
        else {
          expect(p50).toBe(sorted[Math.ceil(0.5 * xs.length) - 1]);
          expect(p99).toBe(sorted[Math.ceil(0.99 * xs.length) - 1]);
          expect(max).toBe(sorted[xs.length - 1]);
        }
        const idx = largestIndices(a, xs.length, k);
        const ref = xs
          .map((v, i) => [v, i] as const)
          .sort((p, q) => q[0] - p[0] || p[1] - q[1])
          .slice(0, k)
          .map(([, i]) => i);
        expect(idx).toEqual(ref);
      }),
      { numRuns: 300 },
    );
  });
});
