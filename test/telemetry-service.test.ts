// Telemetry of the real service: a server on loopback (real addon, tiny model,
// worker threads), the real client library, the SDK with an in-memory span
// exporter and its Prometheus reader, and the gRPC instrumentation on grpc-js.
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type * as grpc from '@grpc/grpc-js';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startTelemetry } from '../server/src/telemetry/sdk';
import * as sc from '../server/src/telemetry/semconv';
import { attachServerTelemetry } from '../server/src/telemetry/service-hooks';
import type { MetricsServer } from '../server/src/telemetry/metrics-server';
import { checkDashboardAgainst } from './helpers/dashboard';
import { bucketBounds, parsePrometheusText, sumOf } from './helpers/prometheus-text';
import type * as Helpers from './service-helpers';

// The SDK first, then the gRPC instrumentation's patch (jest's module registry is
// invisible to require-in-the-middle, so apply it to the module jest loads),
// then the service and client modules, which capture grpc-js constructors on load.
const memory = new InMemorySpanExporter();
const telemetry = startTelemetry({ role: 'server', env: {}, spanProcessors: [new SimpleSpanProcessor(memory)] });
// eslint-disable-next-line @typescript-eslint/no-var-requires
const grpcModule: typeof grpc = require('@grpc/grpc-js');
new GrpcInstrumentation({ ignoreGrpcMethods: ['Check', 'Watch', 'List', 'ServerReflectionInfo'] }).getModuleDefinitions()[0].patch!(grpcModule, '1.14.0');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { startServer, collect, errorCode, sleep } = require('./service-helpers') as typeof Helpers;

const spans = (): ReadableSpan[] => memory.getFinishedSpans();
const byName = (name: string) => spans().filter((s) => s.name === name);
const genSpan = (requestId: string, kind = SpanKind.INTERNAL) =>
  spans().find((s) => s.kind === kind && s.attributes[kind === SpanKind.INTERNAL ? sc.ATTR_GEN_AI_RESPONSE_ID : sc.ATTR_TS_REQUEST_ID] === requestId);
function tokenLatencies(span: ReadableSpan, prefix = sc.ATTR_TS_TOKEN_LATENCY_US): number[] {
  const out: number[] = [];
  for (let c = 0; c < (span.attributes[sc.ATTR_TS_TOKEN_CHUNKS] as number); c++) out.push(...(span.attributes[`${prefix}.${c}`] as number[]));
  return out;
}
async function waitFor<T>(get: () => T | undefined, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out waiting for a span');
    await sleep(10);
  }
}

const PROMPT = [1, 15043, 29892, 590, 1024];
const greedy = (maxTokens: number) => ({ temperature: 0, maxTokens, ignoreEos: true });

let running: Helpers.Running;
let metricsEndpoint: MetricsServer;
let generations = 0; // started on `running`, for the metric counts
let successful = 0;

beforeAll(async () => {
  running = await startServer();
  metricsEndpoint = (await attachServerTelemetry(running.server, { port: 0, host: '127.0.0.1' }))!;
});

afterAll(async () => {
  await metricsEndpoint?.close();
  await running?.stop();
  await telemetry.shutdown();
});

test('Complete of N tokens: a generation span with the GenAI attributes and N per-token latencies, child of the client span', async () => {
  const N = 24;
  const r = await collect(running.client.complete({ requestId: 'c1', tokens: PROMPT, params: greedy(N) }));
  generations++;
  successful++;
  expect(r.tokenIds).toHaveLength(N);
  const span = await waitFor(() => genSpan('c1'));
  expect(span.name).toBe('text_completion tiny');
  expect(r.final.traceId).toBe(span.spanContext().traceId);
  const a = span.attributes;
  expect(a[sc.ATTR_GEN_AI_OPERATION_NAME]).toBe('text_completion');
  expect(a[sc.ATTR_GEN_AI_PROVIDER_NAME]).toBe('tokenstream');
  expect(a[sc.ATTR_GEN_AI_REQUEST_MODEL]).toBe('tiny');
  expect(a[sc.ATTR_GEN_AI_REQUEST_MAX_TOKENS]).toBe(N);
  expect(a[sc.ATTR_GEN_AI_REQUEST_TEMPERATURE]).toBe(0);
  expect(a[sc.ATTR_GEN_AI_USAGE_INPUT_TOKENS]).toBe(PROMPT.length);
  expect(a[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(N);
  expect(a[sc.ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(['length']);
  expect(a[sc.ATTR_TS_WORKER_ID]).toBe(0);
  expect(span.status.code).toBe(SpanStatusCode.UNSET);
  // every token, in order, with positive latencies that add up to the last token's time
  const lat = tokenLatencies(span);
  expect(lat).toHaveLength(N);
  expect(lat.every((us) => us > 0)).toBe(true);
  expect(lat[0] / 1000).toBeCloseTo(a[sc.ATTR_TS_TTFT_MS] as number, 0);
  const decodeMs = lat.slice(1).reduce((x, y) => x + y, 0) / 1000;
  expect(Math.abs(decodeMs - (a[sc.ATTR_TS_DECODE_MS] as number))).toBeLessThan(0.05);
  expect(a[sc.ATTR_TS_ITL_P50_MS]).toBeGreaterThan(0);
  expect(a[sc.ATTR_TS_ITL_P99_MS]).toBeGreaterThanOrEqual(a[sc.ATTR_TS_ITL_P50_MS] as number);
  // each token was written to the stream after it left the engine
  const writes = tokenLatencies(span, sc.ATTR_TS_TOKEN_WRITE_DELAY_US);
  expect(writes).toHaveLength(N);
  expect(writes.every((us) => us >= 0 && us < 5_000_000)).toBe(true);
  // phases, from the worker's timestamps
  const children = spans().filter((s) => s.parentSpanContext?.spanId === span.spanContext().spanId);
  expect(children.map((s) => s.name).sort()).toEqual(['decode', 'prefill', 'queue']);
  // client -> server: the client library's span is the parent, same trace
  const client = genSpan('c1', SpanKind.CLIENT)!;
  expect(client.name).toBe('text_completion');
  expect(span.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
  expect(client.attributes[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(N);
  // the gRPC SERVER span of the call is linked
  const call = await waitFor(() =>
    byName('grpc.tokenstream.v1.TokenStream/Complete').find((s) => s.kind === SpanKind.SERVER && s.spanContext().traceId === span.spanContext().traceId),
  );
  expect(span.links.map((l) => l.context.spanId)).toContain(call.spanContext().spanId);
  // ... whose parent is the instrumented client's CLIENT span for the call: one trace
  const grpcClient = await waitFor(() =>
    byName('grpc.tokenstream.v1.TokenStream/Complete').find((s) => s.kind === SpanKind.CLIENT && s.spanContext().spanId === call.parentSpanContext?.spanId),
  );
  expect(grpcClient.parentSpanContext?.spanId).toBe(client.spanContext().spanId);
});

test('a traceparent in the start message becomes the parent', async () => {
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const r = await collect(running.client.complete({ requestId: 'tp', tokens: PROMPT, params: greedy(4), traceparent }));
  generations++;
  successful++;
  expect(r.final.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
  const span = await waitFor(() => genSpan('tp'));
  expect(span.parentSpanContext?.spanId).toBe('00f067aa0ba902b7');
});

test('a 1000-token generation on a Generate stream accounts for all 1000 tokens', async () => {
  const session = running.client.session();
  const r = await collect(session.generate({ requestId: 'long', tokens: PROMPT, params: greedy(1000) }));
  generations++;
  successful++;
  await session.close();
  expect(r.tokenIds).toHaveLength(1000);
  const span = await waitFor(() => genSpan('long'));
  const lat = tokenLatencies(span);
  expect(lat).toHaveLength(1000);
  expect(lat.every((us) => us > 0)).toBe(true);
  expect(tokenLatencies(span, sc.ATTR_TS_TOKEN_WRITE_DELAY_US)).toHaveLength(1000);
  expect(span.attributes[sc.ATTR_TS_TOKEN_COUNT]).toBe(1000);
  expect(span.droppedAttributesCount).toBe(0);
  expect(span.droppedEventsCount).toBe(0);
});

test('a cancelled generation ends with status ERROR, error.type cancelled', async () => {
  const session = running.client.session();
  const gen = session.generate({ requestId: 'cx', tokens: PROMPT, params: greedy(1000) });
  const it = gen[Symbol.asyncIterator]();
  await it.next(); // running
  gen.cancel();
  const result = await gen.result;
  generations++;
  await session.close();
  expect(result.final.finishReason).toBe(4); // CANCELLED
  const span = await waitFor(() => genSpan('cx'));
  expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'cancelled' });
  expect(span.attributes[sc.ATTR_ERROR_TYPE]).toBe('cancelled');
  expect(span.attributes[sc.ATTR_GEN_AI_RESPONSE_FINISH_REASONS]).toEqual(['cancelled']);
  expect(tokenLatencies(span).length).toBe(span.attributes[sc.ATTR_TS_TOKEN_COUNT]);
  const client = genSpan('cx', SpanKind.CLIENT)!;
  expect(client.attributes[sc.ATTR_ERROR_TYPE]).toBe('cancelled');
});

test('a stream the client cancels still ends its spans: the generation and the gRPC stream span', async () => {
  const session = running.client.session();
  const gen = session.generate({ requestId: 'gone', tokens: PROMPT, params: greedy(1000) });
  await gen[Symbol.asyncIterator]().next();
  session.abort(); // cancels the whole call
  generations++;
  await expect(gen.result).rejects.toMatchObject({ code: 1 });
  const span = await waitFor(() => genSpan('gone'));
  expect(span.attributes[sc.ATTR_ERROR_TYPE]).toBe('cancelled');
  const streamSpanId = span.links[0].context.spanId;
  const stream = await waitFor(() => spans().find((s) => s.spanContext().spanId === streamSpanId));
  expect(stream.name).toBe('grpc.tokenstream.v1.TokenStream/Generate');
  expect(stream.kind).toBe(SpanKind.SERVER);
  expect(stream.attributes[sc.ATTR_RPC_GRPC_STATUS_CODE]).toBe(1);
  expect(stream.status.code).toBe(SpanStatusCode.ERROR);
});

test('health checks are not traced', async () => {
  expect(await running.client.healthStatus('')).toBe('SERVING');
  await sleep(50);
  expect(spans().filter((s) => s.name.includes('Health'))).toEqual([]);
});

test('the metrics endpoint: histograms with the conventions buckets and counts matching the requests; the dashboard queries exist', async () => {
  const text = await (await fetch(`http://127.0.0.1:${metricsEndpoint.port}/metrics`)).text();
  const expo = parsePrometheusText(text);
  const model = { gen_ai_request_model: 'tiny' };
  expect(sumOf(expo, 'gen_ai_server_request_duration_count', model)).toBe(generations);
  expect(sumOf(expo, 'gen_ai_server_request_duration_count', { ...model, error_type: 'cancelled' })).toBe(generations - successful);
  expect(sumOf(expo, 'gen_ai_server_time_to_first_token_count', model)).toBe(successful);
  expect(sumOf(expo, 'gen_ai_server_time_per_output_token_count', model)).toBe(successful);
  expect(sumOf(expo, 'gen_ai_client_token_usage_count', { ...model, gen_ai_token_type: 'input' })).toBe(generations);
  expect(sumOf(expo, 'gen_ai_client_token_usage_sum', { ...model, gen_ai_token_type: 'input' })).toBe(generations * PROMPT.length);
  expect(bucketBounds(expo, 'gen_ai_server_time_to_first_token')).toEqual(sc.BUCKETS_TIME_TO_FIRST_TOKEN);
  expect(bucketBounds(expo, 'gen_ai_server_request_duration')).toEqual(sc.BUCKETS_REQUEST_DURATION);
  expect(bucketBounds(expo, 'gen_ai_server_time_per_output_token')).toEqual(sc.BUCKETS_TIME_PER_OUTPUT_TOKEN);
  // engine: every generated token counted per worker; steps with their batch sizes
  const generated = sumOf(expo, 'tokenstream_tokens_generated_total', { tokenstream_worker_id: '0', ...model });
  expect(generated).toBeGreaterThanOrEqual(24 + 4 + 1000);
  expect(sumOf(expo, 'tokenstream_batch_size_count', { tokenstream_worker_id: '0' })).toBeGreaterThan(0);
  expect(sumOf(expo, 'tokenstream_kv_slots_limit', { tokenstream_worker_id: '0' })).toBe(8);
  expect(sumOf(expo, 'tokenstream_sequences_active', { tokenstream_worker_id: '0' })).toBe(0);
  expect(sumOf(expo, 'tokenstream_queue_length', model)).toBe(0);
  expect(sumOf(expo, 'tokenstream_errors_total', { error_type: 'cancelled' })).toBe(generations - successful);
  // every metric and label the Grafana dashboard queries is on this real scrape
  expect(checkDashboardAgainst(expo)).toEqual([]);
});

test('refusals are counted by type: a full queue, an invalid request', async () => {
  const small = await startServer({ maxSequences: 1, queueLimit: 0 });
  try {
    const busy = small.client.complete({ requestId: 'busy', tokens: PROMPT, params: greedy(1000) });
    await busy[Symbol.asyncIterator]().next();
    expect(await errorCode(small.client.complete({ requestId: 'full', tokens: PROMPT, params: greedy(4) }))).toBe(8);
    expect(await errorCode(small.client.complete({ requestId: 'bad', tokens: PROMPT, params: { temperature: -1 } }))).toBe(3);
    busy.cancel();
    await errorCode(busy).catch(() => undefined);
    const full = await waitFor(() => genSpan('full'));
    expect(full.attributes[sc.ATTR_ERROR_TYPE]).toBe('queue_full');
    expect(full.status.code).toBe(SpanStatusCode.ERROR);
    const bad = await waitFor(() => genSpan('bad'));
    expect(bad.attributes[sc.ATTR_ERROR_TYPE]).toBe('invalid_argument');
    const expo = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsEndpoint.port}/metrics`)).text());
    expect(sumOf(expo, 'tokenstream_errors_total', { error_type: 'queue_full', rpc_grpc_status_code: '8' })).toBe(1);
    expect(sumOf(expo, 'tokenstream_errors_total', { error_type: 'invalid_argument', rpc_grpc_status_code: '3' })).toBe(1);
  } finally {
    await small.stop();
  }
});
