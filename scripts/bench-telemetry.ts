// Tracing overhead at full load: the same `tokenstream serve` process (the real
// CLI, configured only by OTEL_* variables) under the same load, with
//   disabled  OTEL_SDK_DISABLED=true, no metrics endpoint: no telemetry at all
//   metrics   the default: Prometheus endpoint (scraped every second), no traces
//   sampled0  metrics + tracing set up (OTLP endpoint, gRPC instrumentation,
//             context propagation) but every trace sampled out (always_off):
//             the cost of the machinery alone
//   tracing   metrics + every generation traced and exported over OTLP/HTTP
//             (protobuf) to a sink in this process, which counts the generation
//             spans it receives (none may be dropped)
// Configurations alternate within each round (order reversed every other round)
// so drift on a shared machine hits them alike. Reported: the median over rounds
// of each configuration, and the median of the per-round ratios to `disabled`
// (paired within a round: the steadier figure when other processes compete for
// the cores). Server CPU per token (all its threads, from /proc) is reported
// next to throughput: it is less sensitive to competing load.
//
//   node dist/scripts/bench-telemetry.js [--model PATH] [--streams 8] [--tokens 128]
//        [--seconds 6] [--rounds 3] [--threads 1] [--workers 1]
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { type OptionSpec, runScript, scriptOptions } from '../server/src/cli/options';
import { TokenStreamClient } from '../client/src/client';
import { packageRoot } from '../server/src/engine/addon';

type Config = 'disabled' | 'metrics' | 'sampled0' | 'tracing';
const CONFIGS: Config[] = ['disabled', 'metrics', 'sampled0', 'tracing'];
const PROMPT = [1, 450, 1024, 338, 263];
const MODEL_NAME = 'bench';

interface Sink {
  url: string;
  spans: number;
  requests: number;
  bytes: number;
  close(): void;
}

/** An OTLP/HTTP receiver that counts generation spans by their name in the protobuf bytes. */
async function startSink(): Promise<Sink> {
  const needle = Buffer.from(`text_completion ${MODEL_NAME}`);
  const sink: Sink = { url: '', spans: 0, requests: 0, bytes: 0, close: () => undefined };
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (d: Buffer) => parts.push(d));
    req.on('end', () => {
      const body = Buffer.concat(parts);
      sink.requests++;
      sink.bytes += body.length;
      for (let at = body.indexOf(needle); at >= 0; at = body.indexOf(needle, at + needle.length)) sink.spans++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  sink.close = () => {
    server.close();
    server.closeAllConnections();
  };
  return sink;
}

interface Server {
  child: ChildProcessWithoutNullStreams;
  grpcPort: number;
  metricsPort: number;
}

function startServer(config: Config, opts: { model: string; streams: number; tokens: number; threads: number; workers: number }, sink: Sink): Promise<Server> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_') && !k.startsWith('TOKENSTREAM_')));
  const env: NodeJS.ProcessEnv = { ...base };
  if (config === 'disabled') env.OTEL_SDK_DISABLED = 'true';
  if (config === 'tracing' || config === 'sampled0') {
    env.OTEL_EXPORTER_OTLP_ENDPOINT = sink.url;
    env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/protobuf';
  }
  if (config === 'sampled0') env.OTEL_TRACES_SAMPLER = 'always_off';
  const args = [
    path.join(packageRoot(), 'bin/tokenstream.js'),
    'serve',
    '--port', '0',
    '--metrics-port', config === 'disabled' ? 'off' : '0',
    '--model', `${MODEL_NAME}=${opts.model}`,
    '--workers', String(opts.workers),
    '--threads', String(opts.threads),
    '--max-batch', String(opts.streams),
    '--context', String(opts.tokens + 64),
    '--queue-limit', String(opts.streams * 4),
  ];
  const child = spawn(process.execPath, args, { env });
  let log = '';
  return new Promise((resolve, reject) => {
    child.stderr.on('data', (d) => {
      log += d;
      const listen = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      const metrics = /metrics on http:\/\/[^:]+:(\d+)\/metrics/.exec(log);
      if (listen && /serving /.test(log) && (config === 'disabled' || metrics)) {
        resolve({ child, grpcPort: Number(listen[1]), metricsPort: metrics ? Number(metrics[1]) : 0 });
      }
    });
    child.on('exit', (code) => reject(new Error(`serve exited (${code}): ${log}`)));
  });
}

async function stopServer(s: Server): Promise<void> {
  const exited = new Promise((resolve) => s.child.on('exit', resolve));
  s.child.kill('SIGTERM'); // drains, then flushes telemetry
  await exited;
}

/**
 * CPU time (user + system, all threads) of a process so far, in ms, from
 * /proc/<pid>/stat (clock ticks of 10 ms). Less sensitive than wall-clock
 * throughput to other processes competing for the cores.
 */
function cpuMs(pid: number, thread?: number): number {
  try {
    const stat = fs.readFileSync(thread === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${thread}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10; // utime, stime (fields 14, 15)
  } catch {
    return NaN; // not Linux
  }
}

/** `streams` generations always in flight for `seconds`; returns tokens/s, server CPU per 1000 tokens, generations completed. */
async function load(
  address: string,
  serverPid: number,
  streams: number,
  tokens: number,
  seconds: number,
  metricsPort: number,
): Promise<{ tps: number; cpuPerKToken: number; mainPerKToken: number; generations: number }> {
  const client = new TokenStreamClient(address);
  const session = client.session();
  await session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 8, ignoreEos: true } }).result; // warm-up
  let total = 0;
  let generations = 0;
  const cpu0 = cpuMs(serverPid);
  const main0 = cpuMs(serverPid, serverPid); // the main thread: where telemetry runs
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  // a Prometheus-like scrape every second while the load runs
  const scraper = metricsPort
    ? setInterval(() => void fetch(`http://127.0.0.1:${metricsPort}/metrics`).then((r) => r.text()).catch(() => undefined), 1000)
    : undefined;
  const lane = async (): Promise<void> => {
    while (performance.now() < end) {
      const r = await session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: tokens, ignoreEos: true } }).result;
      total += r.tokenIds.length;
      generations++;
    }
  };
  await Promise.all(Array.from({ length: streams }, lane));
  const secs = (performance.now() - t0) / 1000;
  const cpu = cpuMs(serverPid) - cpu0;
  const main = cpuMs(serverPid, serverPid) - main0;
  if (scraper) clearInterval(scraper);
  await session.close();
  client.close();
  return { tps: total / secs, cpuPerKToken: (cpu / total) * 1000, mainPerKToken: (main / total) * 1000, generations: generations + 1 };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'string', arg: 'PATH', help: 'the GGUF file (default: the bundled tiny model)' },
  { name: 'streams', kind: 'int', default: 8, min: 1, arg: 'N', help: 'concurrent generations' },
  { name: 'tokens', kind: 'int', default: 128, min: 1, arg: 'N', help: 'tokens per generation' },
  { name: 'seconds', kind: 'number', default: 6, min: 0.1, arg: 'S', help: 'length of each run' },
  { name: 'rounds', kind: 'int', default: 3, min: 1, arg: 'N', help: 'rounds of all configurations' },
  { name: 'threads', kind: 'int', default: 1, min: 1, arg: 'N', help: 'serve --threads' },
  { name: 'workers', kind: 'int', default: 1, min: 1, arg: 'N', help: 'serve --workers' },
];

async function main(argv: string[]): Promise<number> {
  const values = scriptOptions('usage: node dist/scripts/bench-telemetry.js [options]', OPTIONS, argv, (v) => v);
  if (!values) return 0;
  const opts = {
    model: path.resolve((values.model as string | undefined) ?? path.join(packageRoot(), 'models/llama-2-tiny-random.gguf')),
    streams: values.streams as number,
    tokens: values.tokens as number,
    threads: values.threads as number,
    workers: values.workers as number,
  };
  const seconds = values.seconds as number;
  const rounds = values.rounds as number;
  console.log(
    `model ${path.basename(opts.model)}, ${opts.streams} concurrent generations of ${opts.tokens} tokens, ` +
      `${opts.workers} worker(s) x ${opts.threads} thread(s), ${seconds} s per run, ${rounds} rounds`,
  );
  const sink = await startSink();
  const results: Record<Config, number[]> = { disabled: [], metrics: [], sampled0: [], tracing: [] };
  const cpu: Record<Config, number[]> = { disabled: [], metrics: [], sampled0: [], tracing: [] };
  const mainCpu: Record<Config, number[]> = { disabled: [], metrics: [], sampled0: [], tracing: [] };
  let spansExpected = 0;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? CONFIGS : [...CONFIGS].reverse();
    for (const config of order) {
      const server = await startServer(config, opts, sink);
      const r = await load(`127.0.0.1:${server.grpcPort}`, server.child.pid!, opts.streams, opts.tokens, seconds, server.metricsPort);
      await stopServer(server);
      if (config === 'tracing') spansExpected += r.generations;
      results[config].push(r.tps);
      cpu[config].push(r.cpuPerKToken);
      mainCpu[config].push(r.mainPerKToken);
      console.log(
        `  round ${round + 1} ${config.padEnd(8)} ${r.tps.toFixed(0).padStart(7)} tokens/s, ` +
          `server CPU ${r.cpuPerKToken.toFixed(1).padStart(6)} ms per 1000 tokens, main thread ${r.mainPerKToken.toFixed(1).padStart(6)} (${r.generations} generations)`,
      );
    }
  }
  sink.close();
  const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)} %`;
  const pairedRatio = (series: Record<Config, number[]>, c: Config): number =>
    median(series[c].map((v, i) => v / series.disabled[i] - 1));
  const us = (x: number): string => `${x >= 0 ? '+' : ''}${x.toFixed(2)} µs`;
  console.log('\n            tokens/s  paired   | server CPU per token (all threads)  paired | main thread CPU per token  vs. disabled');
  for (const c of CONFIGS) {
    const base = c === 'disabled';
    const mainDelta = median(mainCpu[c].map((v, i) => v - mainCpu.disabled[i])); // ms/1000 tokens = µs/token
    console.log(
      `  ${c.padEnd(9)} ${median(results[c]).toFixed(0).padStart(8)} ${(base ? '' : pct(pairedRatio(results, c))).padStart(8)}   |` +
        ` ${median(cpu[c]).toFixed(1).padStart(20)} µs ${(base ? '' : pct(pairedRatio(cpu, c))).padStart(14)} |` +
        ` ${median(mainCpu[c]).toFixed(1).padStart(17)} µs ${(base ? '' : us(mainDelta)).padStart(12)}`,
    );
  }
  console.log(`\ntraced generations: ${spansExpected} completed, ${sink.spans} generation spans received over OTLP (${sink.requests} requests, ${(sink.bytes / 1e6).toFixed(1)} MB)`);
  return 0;
}

runScript('bench-telemetry', main);
