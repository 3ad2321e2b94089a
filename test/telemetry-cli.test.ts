// The real executables with the standard OTEL_* variables: `tokenstream serve`
// and `tokenstream generate` export over OTLP/HTTP (JSON) to a receiver run by
// the test; one trace goes client -> server -> worker phases. Also the metrics
// endpoint of `serve`, and `tokenstream health` (the container health check).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as path from 'node:path';
import { ROOT, builtModule } from './helpers/dist';
import { startOtlpReceiver, type OtlpReceiver, type OtlpSpan } from './helpers/otlp-receiver';
import { parsePrometheusText, sumOf } from './helpers/prometheus-text';
import * as sc from '../server/src/telemetry/semconv';

const BIN = path.join(ROOT, 'bin/tokenstream.js');
const MODEL = path.join(ROOT, 'models/llama-2-tiny-random.gguf');

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && !k.startsWith('TOKENSTREAM_')));
  return { ...env, ...extra };
}

function run(args: string[], env: NodeJS.ProcessEnv, timeoutMs = 30000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env, cwd: ROOT });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${args[0]} timed out: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

let receiver: OtlpReceiver;
let server: ChildProcessWithoutNullStreams;
let serverLog = '';
let grpcPort = 0;
let metricsPort = 0;
let otelEnv: Record<string, string>;

beforeAll(async () => {
  builtModule('server/src/telemetry/register');
  builtModule('server/src/cli/serve');
  builtModule('server/src/cli/health');
  builtModule('client/src/client');
  receiver = await startOtlpReceiver();
  otelEnv = {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  };
  server = spawn(
    process.execPath,
    [BIN, 'serve', '--port', '0', '--metrics-port', '0', '--model', `tiny=${MODEL}`, '--threads', '1', '--context', '256'],
    { env: cleanEnv(otelEnv), cwd: ROOT },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${serverLog}`)), 30000);
    server.stderr.on('data', (d) => {
      serverLog += d;
      const listen = /listening on 127\.0\.0\.1:(\d+)/.exec(serverLog);
      const metrics = /metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(serverLog);
      if (listen && metrics && /serving /.test(serverLog)) {
        grpcPort = Number(listen[1]);
        metricsPort = Number(metrics[1]);
        clearTimeout(timer);
        resolve();
      }
    });
    server.on('exit', (code) => reject(new Error(`serve exited (${code}): ${serverLog}`)));
  });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    server.kill('SIGKILL');
  }
  await receiver?.close();
});

test('health: SERVING exits 0; nothing listening exits 1', async () => {
  const ok = await run(['health', '--server', `127.0.0.1:${grpcPort}`], cleanEnv({}));
  expect([ok.code, ok.stdout.trim()]).toEqual([0, 'SERVING']);
  const model = await run(['health', '--server', `127.0.0.1:${grpcPort}`, '--service', 'tiny'], cleanEnv({}));
  expect([model.code, model.stdout.trim()]).toEqual([0, 'SERVING']);
  const down = await run(['health', '--server', '127.0.0.1:1', '--timeout-ms', '1500'], cleanEnv({}));
  expect(down.code).toBe(1);
  expect(down.stdout).toMatch(/^UNREACHABLE/);
});

test('generate -> serve: one trace from the CLI client span to the server generation span and its worker phases', async () => {
  const N = 16;
  const gen = await run(
    ['generate', '--server', `127.0.0.1:${grpcPort}`, '--tokens', '1,15043,29892', '--max-tokens', String(N), '--temperature', '0', '--ignore-eos'],
    cleanEnv(otelEnv),
  );
  expect(gen.code).toBe(0);
  const isServerGen = (s: OtlpSpan) => s.name === 'text_completion tiny' && s.resource['service.name'] === 'tokenstream';
  const spans = await receiver.waitFor((all) => all.some(isServerGen) && all.some((s) => s.resource['service.name'] === 'tokenstream-client' && s.kind === 3));
  const client = spans.find((s) => s.resource['service.name'] === 'tokenstream-client' && s.kind === 3 && s.name === 'text_completion')!;
  const serverGen = spans.find(isServerGen)!;
  expect(serverGen.traceId).toBe(client.traceId);
  expect(serverGen.parentSpanId).toBe(client.spanId);
  // the CLI prints the trace id to look up in Jaeger
  expect(gen.stderr).toContain(`| trace ${serverGen.traceId}]`);
  expect(client.attributes[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(N);
  expect(serverGen.attributes[sc.ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]).toBe(N);
  const latencies = serverGen.attributes[`${sc.ATTR_TS_TOKEN_LATENCY_US}.0`] as number[];
  expect(latencies).toHaveLength(N);
  expect(latencies.every((v) => v > 0)).toBe(true);
  const phases = spans.filter((s) => s.parentSpanId === serverGen.spanId).map((s) => s.name).sort();
  expect(phases).toEqual(['decode', 'prefill', 'queue']);
  // the CLI's gRPC CLIENT span for the stream, and the server's stream span linked from the generation
  expect(spans.some((s) => s.resource['service.name'] === 'tokenstream-client' && s.name === 'grpc.tokenstream.v1.TokenStream/Generate' && s.kind === 3)).toBe(true);
  const stream = await receiver.waitFor((all) => all.some((s) => s.spanId === serverGen.links[0]?.spanId));
  expect(stream.find((s) => s.spanId === serverGen.links[0].spanId)!.name).toBe('grpc.tokenstream.v1.TokenStream/Generate');
  // health probes are not traced
  expect(receiver.spans().filter((s) => s.name.includes('grpc.health'))).toEqual([]);

  const expo = parsePrometheusText(await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text());
  expect(sumOf(expo, 'gen_ai_server_request_duration_count', { gen_ai_request_model: 'tiny' })).toBe(1);
  expect(sumOf(expo, 'gen_ai_server_time_to_first_token_count')).toBe(1);
  expect(sumOf(expo, 'tokenstream_tokens_generated_total', { tokenstream_worker_id: '0', gen_ai_request_model: 'tiny' })).toBe(N);
});

test('SIGTERM: the server drains, flushes its telemetry and exits 0', async () => {
  const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
  server.kill('SIGTERM');
  expect(await exited).toBe(0);
  expect(serverLog).toMatch(/stopped/);
});
