// npm run bench:service -- [--model FILE]... [--streams 1,8,16] [--tokens N] [--threads N] [--reps N]
//                          [--engine-nice N] [--server-prof DIR] [--json]
//
// Service overhead: tokens/s end to end through gRPC versus the engine alone at
// the same batch composition, and the latency the service adds to each token.
//
// - engine alone: in a worker thread of this process (the server runs its
//   engine in a worker thread too), one Session configured like the server's
//   worker (same slots, context, threads); N sequences get the prompt in one
//   batch, then decode together one token each per step, greedy, until each has
//   --tokens tokens. tokens/s = N × tokens / wall time.
// - service: `tokenstream serve` in a child process (its own event loop, as in
//   production), this process as the client on loopback: N Generate calls at
//   once, same prompt, same --tokens (ignore_eos), greedy. tokens/s = N × tokens
//   / (last final message - first request sent).
// - added latency per token: arrival at this client (the 'data' event, after
//   protobuf decoding) minus the time the token left the engine in the worker
//   (the step report's time, collected in the server by a preloaded hook,
//   scripts/service/token-times-hook.ts). Both are nowMs(), one monotonic clock
//   for all threads and processes of the machine.
// Each figure is the best (tokens/s) of --reps runs after a warm-up; latency
// percentiles pool every token of every run. `uptime` is printed with each model.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Metadata } from '@grpc/grpc-js';
import { TokenStreamClient } from '../client/src/client';
import { packageRoot } from '../server/src/engine/addon';
import { Worker } from 'node:worker_threads';
import { physicalCores } from '../server/src/engine/worker-pool';
import type { GenerateResponse } from '../server/src/generated/tokenstream/v1/tokenstream';
import { nowMs } from '../server/src/telemetry/clock';
import { SERVE_OPTIONS } from '../server/src/cli/serve';
import { intList, type OptionSpec, runScript, scriptOptions } from '../server/src/cli/options';
import { ChildServer, compiledScript, percentile, uptime } from './service/child-server';
import type { EngineAloneConfig } from './service/engine-alone';

const GREEDY = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, penaltyLastN: 64, seed: 0, topLogprobs: 0 };
/** Token ids below 2048: valid in the bundled tiny model too. */
const PROMPT = [1, 450, 1024, 338, 263];
/** The server's default prompt chunk (the worker's batch capacity is chunk + slots). */
const PREFILL_CHUNK = 256;

interface Options {
  models: string[];
  streams: number[];
  tokens: number;
  threads: number;
  reps: number;
  json: boolean;
  /** Directory for a CPU profile of the server (node --cpu-prof). */
  serverProf?: string;
  /** serve --engine-nice */
  engineNice?: string;
}

export interface StreamsResult {
  streams: number;
  engine_tps: number;
  service_tps: number;
  /** service / engine */
  ratio: number;
  /** engine -> client, per token (ms) */
  latency_p50_ms: number;
  latency_p99_ms: number;
  latency_max_ms: number;
  /** the part of it until the token reached the main thread (worker -> main hand-off) */
  to_main_p50_ms: number;
  to_main_p99_ms: number;
  /** fraction of tokens whose added latency is over 1 ms */
  latency_over_1ms: number;
  /** tokens per message received, on average */
  tokens_per_message: number;
  /** CPU time per token: the server's main thread, the whole server, this client process (µs) */
  server_main_cpu_us_per_token: number;
  server_cpu_us_per_token: number;
  client_cpu_us_per_token: number;
}

export interface ModelResult {
  model: string;
  threads: number;
  tokens: number;
  uptime: string;
  results: StreamsResult[];
}

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'list', arg: 'FILE', help: 'a GGUF file; repeat for more (default: bench/models/smollm2-135m-shape-q8_0.gguf if present, and the bundled tiny model)' },
  { name: 'streams', kind: 'string', default: '1,8,16', arg: 'N,...', help: 'concurrent generations of each run' },
  { name: 'tokens', kind: 'int', default: 256, min: 1, arg: 'N', help: 'tokens per generation' },
  { name: 'threads', kind: 'int', min: 1, arg: 'N', help: 'engine threads (default: physical cores)' },
  { name: 'reps', kind: 'int', default: 3, min: 1, arg: 'N', help: 'runs of each measurement (the best counts)' },
  { name: 'json', kind: 'boolean', help: 'JSON on stdout (the table goes to stderr)' },
  { name: 'server-prof', kind: 'string', arg: 'DIR', help: "write a CPU profile of the server (node --cpu-prof) to DIR" },
  { name: 'engine-nice', kind: 'int', min: 0, max: 19, arg: 'N', help: 'serve --engine-nice' },
];

function options(argv: string[]): Options | null {
  return scriptOptions('usage: npm run bench:service -- [options]', OPTIONS, argv, (values) => {
    let models = (values.model as string[] | undefined) ?? [];
    if (models.length === 0) {
      const realistic = path.join(packageRoot(), 'bench/models/smollm2-135m-shape-q8_0.gguf');
      models = [...(fs.existsSync(realistic) ? [realistic] : []), path.join(packageRoot(), 'models/llama-2-tiny-random.gguf')];
    }
    return {
      models: models.map((m) => path.resolve(m)),
      streams: intList('streams', values.streams as string),
      tokens: values.tokens as number,
      threads: (values.threads as number | undefined) ?? physicalCores(),
      reps: values.reps as number,
      json: values.json === true,
      serverProf: values['server-prof'] as string | undefined,
      engineNice: values['engine-nice'] === undefined ? undefined : String(values['engine-nice']),
    };
  });
}

/** The engine alone in a worker thread (scripts/service/engine-alone.ts), configured like the server's worker. */
class EngineAlone {
  private readonly worker: Worker;
  private readonly ready: Promise<void>;

  constructor(file: string, threads: number, maxSeq: number, context: number) {
    const config: EngineAloneConfig = { file, threads, maxSequences: maxSeq, contextLength: context, maxBatch: PREFILL_CHUNK + maxSeq, prompt: PROMPT };
    this.worker = new Worker(compiledScript('engine-alone'), { workerData: config });
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('online', () => resolve());
      this.worker.once('error', reject);
    });
  }

  /** n sequences: the prompt in one batch, then one token each per step; resolves with tokens/s. */
  async run(n: number, tokens: number): Promise<number> {
    await this.ready;
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.worker.once('error', onError);
      this.worker.once('message', (tps: number) => {
        this.worker.off('error', onError);
        resolve(tps);
      });
      this.worker.postMessage({ n, tokens });
    });
  }

  async close(): Promise<void> {
    const exited = new Promise((resolve) => this.worker.once('exit', resolve));
    this.worker.postMessage('close');
    await exited;
  }
}

interface CallTimes {
  requestId: string;
  arrivals: Float64Array;
  messages: number;
}

/** N generations at once, one Generate call each; resolves with tokens/s and every token's arrival time. */
async function serviceRun(client: TokenStreamClient, n: number, tokens: number, tag: string): Promise<{ tps: number; calls: CallTimes[] }> {
  const t0 = nowMs();
  const calls = await Promise.all(
    Array.from({ length: n }, (_, i) => {
      const requestId = `${tag}-${i}`;
      const times: CallTimes = { requestId, arrivals: new Float64Array(tokens).fill(NaN), messages: 0 };
      return new Promise<{ times: CallTimes; end: number }>((resolve, reject) => {
        const call = client.grpc.generate(new Metadata());
        let end = 0;
        call.on('data', (msg: GenerateResponse) => {
          const t = nowMs();
          times.messages++;
          if (msg.chunk) {
            const ids = msg.chunk.tokenIds;
            for (let k = 0; k < ids.length; k++) times.arrivals[msg.chunk.index + k] = t;
          } else if (msg.final) {
            end = t;
          } else if (msg.error) {
            reject(new Error(`${requestId}: ${msg.error.message}`));
          }
        });
        call.on('error', reject);
        call.on('status', () => (end ? resolve({ times, end }) : reject(new Error(`${requestId}: stream ended without a final message`))));
        call.write({
          requestId,
          prompt: '',
          messages: [],
          tokens: PROMPT,
          model: '',
          params: { ...GREEDY, maxTokens: tokens, ignoreEos: true, stop: [] },
          cancel: false,
          parseSpecial: false,
          includeBytes: false,
          timeoutMs: 0,
          traceparent: '',
          tracestate: '',
        });
        call.end();
      });
    }),
  );
  const end = Math.max(...calls.map((c) => c.end));
  return { tps: (n * tokens * 1000) / (end - t0), calls: calls.map((c) => c.times) };
}

/** Serve options that keep the server to its job (no metrics endpoint, when the build has one). */
export function quietServe(): string[] {
  return SERVE_OPTIONS.some((s) => s.name === 'metrics-port') ? ['--metrics-port', 'off'] : [];
}

/** CPU time (ns) of the threads of `pid`: the main thread's and the sum of all. */
function threadCpu(pid: number): { main: number; total: number } {
  const read = (tid: string): number => {
    try {
      return Number(fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    } catch {
      return 0; // the thread ended
    }
  };
  let total = 0;
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) total += read(tid);
  return { main: read(String(pid)), total };
}

async function benchModel(file: string, o: Options, log: (l: string) => void): Promise<ModelResult> {
  const maxSeq = Math.max(...o.streams);
  const context = PROMPT.length + o.tokens + 8;
  const up = uptime();
  log(`\n${path.basename(file)}: ${o.tokens} tokens per generation, threads ${o.threads}, ${maxSeq} slots`);
  log(`  ${up}`);
  const timesFile = path.join(os.tmpdir(), `tokenstream-token-times-${process.pid}.json`);
  const server = new ChildServer({
    args: ['--model', file, '--max-batch', String(maxSeq), '--threads', String(o.threads), '--context', String(context), '--workers', '1', ...quietServe(), ...(o.engineNice ? ['--engine-nice', o.engineNice] : [])],
    preload: [compiledScript('token-times-hook')],
    env: { TOKENSTREAM_TOKEN_TIMES: timesFile },
    nodeArgs: [...(o.serverProf ? ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', o.serverProf] : []), ...(process.env.BENCH_SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean)],
  });
  const engine = new EngineAlone(file, o.threads, maxSeq, context);
  const runs = new Map<number, { engine: number; service: number; calls: CallTimes[]; mainCpu: number; serverCpu: number; clientCpu: number }>();
  try {
    const address = await server.listening;
    await server.serving;
    const client = new TokenStreamClient(address);
    try {
      await engine.run(maxSeq, Math.min(16, o.tokens)); // warm-ups
      await serviceRun(client, maxSeq, Math.min(16, o.tokens), 'warmup');
      // Engine and service runs alternate, so both see the same load on a shared machine.
      for (const n of o.streams) {
        const r = { engine: 0, service: 0, calls: [] as CallTimes[], mainCpu: 0, serverCpu: 0, clientCpu: 0 };
        for (let rep = 0; rep < o.reps; rep++) {
          r.engine = Math.max(r.engine, await engine.run(n, o.tokens));
          const cpu0 = threadCpu(server.pid);
          const client0 = process.cpuUsage();
          const run = await serviceRun(client, n, o.tokens, `n${n}-r${rep}`);
          const cpu1 = threadCpu(server.pid);
          const client1 = process.cpuUsage(client0);
          r.mainCpu += cpu1.main - cpu0.main;
          r.serverCpu += cpu1.total - cpu0.total;
          r.clientCpu += (client1.user + client1.system) * 1000;
          r.calls.push(...run.calls);
          r.service = Math.max(r.service, run.tps);
        }
        runs.set(n, r);
      }
    } finally {
      client.close();
    }
  } finally {
    await engine.close();
    await server.stop();
  }
  const engineTimes = JSON.parse(fs.readFileSync(timesFile, 'utf8')) as Record<string, number[]>;
  fs.rmSync(timesFile, { force: true });
  const results: StreamsResult[] = [];
  for (const n of o.streams) {
    const r = runs.get(n)!;
    const lat: number[] = [];
    const toMain: number[] = [];
    let messages = 0;
    for (const c of r.calls) {
      const times = engineTimes[c.requestId] ?? [];
      messages += c.messages - 1; // the final message carries no token
      for (let i = 0; i < c.arrivals.length && 2 * i + 1 < times.length; i++) {
        if (Number.isNaN(c.arrivals[i])) continue;
        lat.push(c.arrivals[i] - times[2 * i]);
        toMain.push(times[2 * i + 1] - times[2 * i]);
      }
    }
    lat.sort((a, b) => a - b);
    toMain.sort((a, b) => a - b);
    const tokens = r.calls.length * o.tokens;
    results.push({
      streams: n,
      engine_tps: r.engine,
      service_tps: r.service,
      ratio: r.service / r.engine,
      latency_p50_ms: percentile(lat, 50),
      latency_p99_ms: percentile(lat, 99),
      latency_max_ms: lat[lat.length - 1],
      to_main_p50_ms: percentile(toMain, 50),
      to_main_p99_ms: percentile(toMain, 99),
      latency_over_1ms: lat.filter((x) => x > 1).length / lat.length,
      tokens_per_message: tokens / messages,
      server_main_cpu_us_per_token: r.mainCpu / 1000 / tokens,
      server_cpu_us_per_token: r.serverCpu / 1000 / tokens,
      client_cpu_us_per_token: r.clientCpu / 1000 / tokens,
    });
  }
  return { model: file, threads: o.threads, tokens: o.tokens, uptime: up, results };
}

export async function main(argv: string[]): Promise<number> {
  const o = options(argv);
  if (!o) return 0;
  const log = (l: string): void => {
    (o.json ? process.stderr : process.stdout).write(`${l}\n`);
  };
  const all: ModelResult[] = [];
  for (const m of o.models) {
    const r = await benchModel(m, o, log);
    all.push(r);
    log(
      `  streams  engine tok/s  service tok/s   ratio  added latency p50 / p99 / max (ms)  > 1 ms  of it to main p50 / p99  tok/msg  CPU µs/token: server main / server / client`,
    );
    for (const x of r.results) {
      log(
        [
          String(x.streams).padStart(9),
          x.engine_tps.toFixed(0).padStart(12),
          x.service_tps.toFixed(0).padStart(13),
          `${(x.ratio * 100).toFixed(1)} %`.padStart(7),
          `${x.latency_p50_ms.toFixed(3)} / ${x.latency_p99_ms.toFixed(3)} / ${x.latency_max_ms.toFixed(3)}`.padStart(34),
          `${(x.latency_over_1ms * 100).toFixed(1)} %`.padStart(6),
          `${x.to_main_p50_ms.toFixed(3)} / ${x.to_main_p99_ms.toFixed(3)}`.padStart(25),
          x.tokens_per_message.toFixed(2).padStart(7),
          `${x.server_main_cpu_us_per_token.toFixed(1)} / ${x.server_cpu_us_per_token.toFixed(1)} / ${x.client_cpu_us_per_token.toFixed(1)}`.padStart(20),
        ].join('  '),
      );
    }
    log(`  ${uptime()}`);
  }
  if (o.json) process.stdout.write(`${JSON.stringify(all)}\n`);
  return 0;
}

if (require.main === module) runScript('bench:service', main);
