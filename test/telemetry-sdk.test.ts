// The SDK bootstrap end to end, with real parts: the Prometheus endpoint
// scraped over HTTP, an OTLP/HTTP JSON export to a receiver on loopback, and
// the gRPC instrumentation on a real grpc-js server and client.
import type * as grpc from '@grpc/grpc-js';
import { spawn } from 'node:child_process';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { nowMs } from '../server/src/telemetry/clock';
import { parseMetricsPort, serveMetrics } from '../server/src/telemetry/metrics-server';
import { metricExportersRequested, startTelemetry, tracingRequested } from '../server/src/telemetry/sdk';
import * as sc from '../server/src/telemetry/semconv';
import { serverTelemetry } from '../server/src/telemetry/server-telemetry';
import { endStreamSpanOnCancel, formatTraceparent } from '../server/src/telemetry/trace-context';
import { startOtlpReceiver } from './helpers/otlp-receiver';
import { ROOT, builtModule } from './helpers/dist';
import { bucketBounds, parsePrometheusText, sumOf } from './helpers/prometheus-text';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const grpcModule: typeof grpc = require('@grpc/grpc-js');

/** A generation with `n` tokens 1 ms apart, each written right away. */
function fakeGeneration(n: number, extra: Record<string, unknown> = {}) {
  const start = nowMs() - n - 5;
  const gen = serverTelemetry().startGeneration({ requestId: `r${n}`, model: 'tiny', maxTokens: n, startTimeMs: start, ...extra });
  gen.admitted(start + 1, 0, 0);
  for (let i = 0; i < n; i++) {
    gen.token(start + 4 + i);
    gen.written(i + 1, start + 4.1 + i);
  }
  gen.end({ finishReason: 'LENGTH', promptTokens: 3, completionTokens: n, endTimeMs: start + 5 + n });
  return gen;
}

describe('environment decisions', () => {
  test('traces only when an exporter or an OTLP endpoint is configured', () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://x:4318/v1/traces' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'console' })).toBe(true);
    expect(tracingRequested({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://x' })).toBe(false);
    expect(tracingRequested({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'otlp' })).toBe(false);
  });

  test('metrics: Prometheus for the server by default, OTLP when asked, none for a bare client', () => {
    expect(metricExportersRequested('server', {})).toEqual(['prometheus']);
    expect(metricExportersRequested('client', {})).toEqual([]);
    expect(metricExportersRequested('server', { OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: 'http://c:4318/v1/metrics' })).toEqual(['prometheus', 'otlp']);
    expect(metricExportersRequested('server', { OTEL_METRICS_EXPORTER: 'otlp' })).toEqual(['otlp']);
    expect(metricExportersRequested('server', { OTEL_METRICS_EXPORTER: 'none' })).toEqual([]);
    expect(metricExportersRequested('client', { OTEL_METRICS_EXPORTER: 'prometheus,otlp' })).toEqual(['otlp']);
    expect(metricExportersRequested('server', { OTEL_SDK_DISABLED: 'true' })).toEqual([]);
  });

  test('--metrics-port values', () => {
    expect(parseMetricsPort(undefined)).toBe(9464);
    expect(parseMetricsPort('0')).toBe(0);
    expect(parseMetricsPort('9100')).toBe(9100);
    expect(parseMetricsPort('off')).toBeUndefined();
    expect(() => parseMetricsPort('70000')).toThrow(/port number/);
    expect(() => parseMetricsPort('abc')).toThrow(/port number/);
  });
});

describe('Prometheus endpoint', () => {
  test('serves the GenAI histograms with the conventions buckets and counts matching the requests', async () => {
    const handle = startTelemetry({ role: 'server', env: {} });
    await handle.ready();
    try {
      expect(handle.tracing).toBe(false);
      expect(handle.metricReaders).toEqual(['prometheus']);
      const server = await serveMetrics(handle.prometheus!, { port: 0, host: '127.0.0.1' });
      try {
        for (const n of [3, 5, 8]) fakeGeneration(n);
        serverTelemetry().metrics.recordStep(0, 'tiny', 2, 2, 0.003, 2, 0);
        serverTelemetry().metrics.setStateSource(() => ({
          queueLength: 1,
          workers: [{ workerId: 0, model: 'tiny', activeSequences: 2, kvSlotsUsed: 2, kvSlotsLimit: 4 }],
        }));
        const res = await fetch(`http://127.0.0.1:${server.port}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
        const expo = parsePrometheusText(await res.text());
        const family = (name: string) => name.replace(/\./g, '_');
        expect(expo.types.get(family(sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN))).toBe('histogram');
        expect(bucketBounds(expo, family(sc.METRIC_SERVER_REQUEST_DURATION))).toEqual(sc.BUCKETS_REQUEST_DURATION);
        expect(bucketBounds(expo, family(sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN))).toEqual(sc.BUCKETS_TIME_TO_FIRST_TOKEN);
        expect(bucketBounds(expo, family(sc.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN))).toEqual(sc.BUCKETS_TIME_PER_OUTPUT_TOKEN);
        expect(bucketBounds(expo, family(sc.METRIC_CLIENT_TOKEN_USAGE))).toEqual(sc.BUCKETS_TOKEN_USAGE);
        expect(sumOf(expo, 'gen_ai_server_request_duration_count')).toBe(3);
        expect(sumOf(expo, 'gen_ai_server_time_to_first_token_count', { gen_ai_request_model: 'tiny' })).toBe(3);
        expect(sumOf(expo, 'gen_ai_server_time_per_output_token_count')).toBe(3);
        expect(sumOf(expo, 'gen_ai_client_token_usage_sum', { gen_ai_token_type: 'output' })).toBe(16);
        // the +Inf bucket holds every observation
        expect(sumOf(expo, 'gen_ai_server_time_to_first_token_bucket', { le: '+Inf' })).toBe(3);
        expect(sumOf(expo, 'tokenstream_tokens_generated_total', { tokenstream_worker_id: '0' })).toBe(2);
        expect(sumOf(expo, 'tokenstream_queue_length')).toBe(1);
        expect(sumOf(expo, 'tokenstream_kv_slots_used', { tokenstream_worker_id: '0' })).toBe(2);
        expect((await fetch(`http://127.0.0.1:${server.port}/other`)).status).toBe(404);
      } finally {
        await server.close();
      }
    } finally {
      await handle.shutdown();
    }
  });

  test('a taken port is a clear error', async () => {
    const handle = startTelemetry({ role: 'server', env: {} });
    try {
      const a = await serveMetrics(handle.prometheus!, { port: 0, host: '127.0.0.1' });
      await expect(serveMetrics(handle.prometheus!, { port: a.port, host: '127.0.0.1' })).rejects.toThrow(/EADDRINUSE/);
      await a.close();
    } finally {
      await handle.shutdown();
    }
  });
});

describe('what the SDK loads', () => {
  // NodeSDK drags in every exporter it knows; a metrics-only server does without it.
  test('metrics only: no sdk-node, a working MeterProvider; tracing: NodeSDK', async () => {
    const sdkJs = builtModule('server/src/telemetry/sdk');
    const child = `
      const { metrics } = require('@opentelemetry/api');
      const { startTelemetry } = require(${JSON.stringify(sdkJs)});
      const handle = startTelemetry({ role: 'server' });
      const loaded = Object.keys(require.cache).some((k) => k.includes('/@opentelemetry/sdk-node/'));
      metrics.getMeter('t').createCounter('probe_total').add(3);
      handle.prometheus.collect().then(({ resourceMetrics }) => {
        const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
        process.stdout.write(JSON.stringify({ tracing: handle.tracing, loaded, names }));
        return handle.shutdown();
      });
    `;
    const lean = await runNode(child, {});
    expect(lean.code).toBe(0);
    expect(JSON.parse(lean.stdout)).toEqual({ tracing: false, loaded: false, names: ['probe_total'] });
    const full = await runNode(child, { OTEL_TRACES_EXPORTER: 'console' });
    expect(full.code).toBe(0);
    expect(JSON.parse(full.stdout)).toEqual({ tracing: true, loaded: true, names: ['probe_total'] });
  });
});

describe('OTLP export', () => {
  // The OTLP exporters load their HTTP transport with a dynamic import(), which
  // jest's VM cannot run: export from a real Node process built from dist/.
  test('http/json: the receiver gets the generation span with every token, and the metrics', async () => {
    const receiver = await startOtlpReceiver();
    try {
      const sdkJs = builtModule('server/src/telemetry/sdk');
      const telemetryJs = builtModule('server/src/telemetry/server-telemetry');
      const child = `
        const { startTelemetry } = require(${JSON.stringify(sdkJs)});
        const { serverTelemetry } = require(${JSON.stringify(telemetryJs)});
        const handle = startTelemetry({ role: 'server' });
        if (!handle.tracing || handle.metricReaders.join() !== 'otlp') throw new Error('unexpected setup ' + JSON.stringify(handle));
        const start = Date.now() - 400;
        const gen = serverTelemetry().startGeneration({ requestId: 'r1', model: 'tiny', maxTokens: 300, startTimeMs: start,
          traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
        gen.admitted(start + 1, 0, 0);
        for (let i = 0; i < 300; i++) { gen.token(start + 4 + i); gen.written(i + 1, start + 4.1 + i); }
        gen.end({ finishReason: 'LENGTH', promptTokens: 3, completionTokens: 300, endTimeMs: start + 305 });
        handle.shutdown().then(() => process.stdout.write(gen.traceId));
      `;
      const { stdout, code } = await runNode(child, {
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_SERVICE_NAME: 'tokenstream-test',
        OTEL_METRICS_EXPORTER: 'otlp',
      });
      expect(code).toBe(0);
      expect(stdout).toBe('0af7651916cd43dd8448eb211c80319c');
      const spans = receiver.spans();
      const span = spans.find((s) => s.name === 'text_completion tiny')!;
      expect(span.traceId).toBe('0af7651916cd43dd8448eb211c80319c');
      expect(span.parentSpanId).toBe('b7ad6b7169203331');
      expect(span.kind).toBe(1); // SPAN_KIND_INTERNAL in OTLP numbering
      expect(span.resource['service.name']).toBe('tokenstream-test');
      expect(span.scope).toBe('tokenstream');
      expect(span.attributes[sc.ATTR_GEN_AI_OPERATION_NAME]).toBe('text_completion');
      expect(span.attributes[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(300);
      const latencies = span.attributes[`${sc.ATTR_TS_TOKEN_LATENCY_US}.0`] as number[];
      expect(latencies).toHaveLength(300);
      expect(latencies[0]).toBe(4000);
      expect(latencies.slice(1).every((v) => v === 1000)).toBe(true);
      expect(span.events.map((e) => e.name)).toContain('first_token');
      const children = spans.filter((s) => s.parentSpanId === span.spanId).map((s) => s.name).sort();
      expect(children).toEqual(['decode', 'prefill', 'queue']);
      expect(receiver.requests.every((r) => r.contentType.startsWith('application/json'))).toBe(true);
      expect(receiver.metricNames()).toEqual(
        expect.arrayContaining([sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN, sc.METRIC_SERVER_REQUEST_DURATION, sc.METRIC_CLIENT_TOKEN_USAGE]),
      );
    } finally {
      await receiver.close();
    }
  });

  test('grpc: OTEL_EXPORTER_OTLP_PROTOCOL=grpc exports to an OTLP/gRPC TraceService', async () => {
    // A TraceService/Export endpoint taking the request as raw protobuf bytes;
    // span names are length-delimited UTF-8 in it, so they can be counted as is.
    const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
    const exportMethod = {
      path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
      requestStream: false,
      responseStream: false,
      requestSerialize: raw.serialize,
      requestDeserialize: raw.deserialize,
      responseSerialize: raw.serialize,
      responseDeserialize: raw.deserialize,
    };
    const bodies: Buffer[] = [];
    const server = new grpcModule.Server();
    server.addService({ Export: exportMethod } as unknown as grpc.ServiceDefinition, {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
        bodies.push(call.request);
        cb(null, Buffer.alloc(0)); // an empty ExportTraceServiceResponse
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpcModule.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    try {
      const sdkJs = builtModule('server/src/telemetry/sdk');
      const telemetryJs = builtModule('server/src/telemetry/server-telemetry');
      const child = `
        const { startTelemetry } = require(${JSON.stringify(sdkJs)});
        const { serverTelemetry } = require(${JSON.stringify(telemetryJs)});
        const handle = startTelemetry({ role: 'server' });
        const gen = serverTelemetry().startGeneration({ requestId: 'g1', model: 'grpc-model' });
        gen.token(Date.now());
        gen.end({ finishReason: 'STOP', completionTokens: 1 });
        handle.shutdown().then(() => process.stdout.write(gen.traceId));
      `;
      const { stdout, stderr, code } = await runNode(child, {
        OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
        OTEL_METRICS_EXPORTER: 'none',
      });
      expect([code, stderr]).toEqual([0, '']);
      expect(stdout).toMatch(/^[0-9a-f]{32}$/);
      const all = Buffer.concat(bodies);
      expect(all.includes(Buffer.from('text_completion grpc-model'))).toBe(true);
      expect(all.includes(Buffer.from(stdout, 'hex'))).toBe(true); // trace id, as 16 raw bytes
    } finally {
      server.forceShutdown();
    }
  });
});

function runNode(code: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve) => {
    const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
    const child = spawn(process.execPath, ['-e', code], { env: { ...clean, ...env }, cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (c) => resolve({ stdout, stderr, code: c }));
  });
}

// Jest loads modules through its own registry, which require-in-the-middle
// cannot see; apply the instrumentation's own patch to the module jest loaded.
// (The module object itself: TypeScript's `import * as` copy has getter-only properties.)
function instrumentGrpc(): GrpcInstrumentation {
  const instrumentation = new GrpcInstrumentation();
  const def = instrumentation.getModuleDefinitions()[0];
  def.patch!(grpcModule, grpcModule.getChannelzServiceDefinition ? '1.14.0' : '1.0.0');
  return instrumentation;
}

describe('gRPC streams', () => {
  const json = {
    serialize: (o: unknown) => Buffer.from(JSON.stringify(o)),
    deserialize: (b: Buffer) => JSON.parse(b.toString('utf8')),
  };
  const method = (name: string) => ({
    path: `/test.v1.Gen/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  });
  const service = { Generate: method('Generate'), Unguarded: method('Unguarded') } as unknown as grpc.ServiceDefinition;

  test('client traceparent -> stream span -> generation span (linked); a cancelled stream still ends its span', async () => {
    const memory = new InMemorySpanExporter();
    const handle = startTelemetry({ role: 'server', env: {}, spanProcessors: [new SimpleSpanProcessor(memory)], metricReaders: [] });
    instrumentGrpc();
    type Msg = { id: string; traceparent?: string; tokens: number };
    const server = new grpcModule.Server();
    // Like the service: a half-close ends the call once the generations in flight are done.
    const handler = (guard: boolean) => (call: grpc.ServerDuplexStream<Msg, unknown>) => {
      if (guard) endStreamSpanOnCancel(call);
      let inFlight = 0;
      call.on('data', (msg: Msg) => {
        const gen = serverTelemetry().startGeneration({ requestId: msg.id, model: 'tiny', traceparent: msg.traceparent, metadata: call.metadata });
        gen.admitted();
        if (msg.tokens === 0) {
          // runs until the client cancels the call
          inFlight++;
          call.on('cancelled', () => gen.end({ finishReason: 'CANCELLED' }));
          call.write({ id: msg.id, traceId: gen.traceId });
          return;
        }
        for (let i = 0; i < msg.tokens; i++) gen.token(nowMs());
        call.write({ id: msg.id, traceId: gen.traceId });
        gen.written(msg.tokens);
        gen.end({ finishReason: 'STOP', completionTokens: msg.tokens });
      });
      call.on('end', () => {
        if (inFlight === 0) call.end();
      });
    };
    server.addService(service, { Generate: handler(true), Unguarded: handler(false) });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpcModule.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    const Client = grpcModule.makeGenericClientConstructor(service, 'Gen');
    const client = new Client(`127.0.0.1:${port}`, grpcModule.credentials.createInsecure()) as unknown as Record<
      string,
      () => grpc.ClientDuplexStream<Msg, { id: string; traceId: string }>
    >;
    const tracer = trace.getTracer('test-client');
    const spans = () => memory.getFinishedSpans();
    const waitFor = async (pred: () => boolean) => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((r) => setTimeout(r, 10));
      return pred();
    };
    try {
      // 1. A finished stream. The client's operation span is active when the call starts, so the
      //    instrumented client puts its traceparent in the call metadata; the message carries the
      //    traceparent of the client's per-generation span, which becomes the generation's parent.
      const root = tracer.startSpan('client operation');
      const rootCtx = trace.setSpan(ROOT_CONTEXT, root);
      const clientGen = tracer.startSpan('client generation', {}, rootCtx);
      const replies: Array<{ id: string; traceId: string }> = [];
      await context.with(rootCtx, async () => {
        const call = client.Generate();
        call.on('data', (m) => replies.push(m));
        call.write({ id: 'g1', tokens: 4, traceparent: formatTraceparent(clientGen.spanContext()) });
        call.write({ id: 'g2', tokens: 2 }); // no traceparent in the message: the call metadata's
        call.end();
        await new Promise((resolve) => call.on('status', resolve));
      });
      clientGen.end();
      root.end();
      const traceId = root.spanContext().traceId;
      expect(replies.map((r) => r.traceId)).toEqual([traceId, traceId]);
      const byName = (name: string) => spans().filter((s) => s.name === name);
      const grpcClient = byName('grpc.test.v1.Gen/Generate').find((s) => s.kind === SpanKind.CLIENT)!;
      const grpcServer = byName('grpc.test.v1.Gen/Generate').find((s) => s.kind === SpanKind.SERVER)!;
      expect(grpcClient.parentSpanContext?.spanId).toBe(root.spanContext().spanId);
      expect(grpcServer.parentSpanContext?.spanId).toBe(grpcClient.spanContext().spanId);
      const gens = new Map(byName('text_completion tiny').map((s) => [s.attributes[sc.ATTR_GEN_AI_RESPONSE_ID], s]));
      const g1 = gens.get('g1')!;
      expect(g1.spanContext().traceId).toBe(traceId);
      expect(g1.parentSpanContext?.spanId).toBe(clientGen.spanContext().spanId);
      expect(g1.links.map((l) => l.context.spanId)).toEqual([grpcServer.spanContext().spanId]);
      const g2 = gens.get('g2')!;
      expect(g2.parentSpanContext?.spanId).toBe(grpcClient.spanContext().spanId); // the call's traceparent
      expect(g2.links.map((l) => l.context.spanId)).toEqual([grpcServer.spanContext().spanId]);

      // 2. The client cancels a stream with a generation in flight. grpc-js emits 'end',
      //    'cancelled', 'close' -- no 'finish' -- and the instrumentation listens for
      //    'finish' and errors only, so its SERVER span would stay open forever: the
      //    unguarded method shows it; endStreamSpanOnCancel() ends it with CANCELLED.
      for (const name of ['Generate', 'Unguarded']) {
        const call = client[name]();
        const started = new Promise((resolve) => call.once('data', resolve));
        call.on('error', () => undefined); // CANCELLED, expected
        call.write({ id: `c-${name}`, tokens: 0 });
        await started;
        call.cancel();
      }
      const cancelledGen = await waitFor(() => spans().some((s) => s.attributes[sc.ATTR_GEN_AI_RESPONSE_ID] === 'c-Generate'));
      expect(cancelledGen).toBe(true);
      const cg = spans().find((s) => s.attributes[sc.ATTR_GEN_AI_RESPONSE_ID] === 'c-Generate')!;
      expect(cg.status.code).toBe(SpanStatusCode.ERROR);
      expect(cg.attributes[sc.ATTR_ERROR_TYPE]).toBe('cancelled');
      expect(await waitFor(() => byName('grpc.test.v1.Gen/Generate').filter((s) => s.kind === SpanKind.SERVER).length === 2)).toBe(true);
      const cancelledStream = byName('grpc.test.v1.Gen/Generate').filter((s) => s.kind === SpanKind.SERVER)[1];
      expect(cancelledStream.attributes[sc.ATTR_RPC_GRPC_STATUS_CODE]).toBe(1);
      expect(cancelledStream.status.code).toBe(SpanStatusCode.ERROR);
      expect(cg.links[0].context.spanId).toBe(cancelledStream.spanContext().spanId);
      await new Promise((r) => setTimeout(r, 200));
      expect(byName('grpc.test.v1.Gen/Unguarded').filter((s) => s.kind === SpanKind.SERVER)).toHaveLength(0);
    } finally {
      client.close();
      server.forceShutdown();
      await handle.shutdown();
    }
  });
});
