// `tokenstream serve`: the gRPC server. With no arguments it serves the bundled
// model on 127.0.0.1:50051 (what `npm start` runs).
import * as path from 'node:path';
import { packageRoot } from '../engine/addon';
import type { CpuPathName, KvType } from '../engine/types';
import type { ModelSpec } from '../engine/worker-pool';
import { startMallocTrim } from '../engine/malloc';
import { DEFAULT_BACKPRESSURE } from '../grpc/generation';
import { TokenStreamServer, type ServeOptions } from '../grpc/server';
import { helpText, parseFlagsOnly, UsageError, type OptionSpec } from './options';
import { DEFAULT_METRICS_PORT, parseMetricsPort } from '../telemetry/metrics-server';
import { attachServerTelemetry } from '../telemetry/service-hooks';

export const DEFAULT_MODEL = 'models/llama-2-tiny-random.gguf';

export const SERVE_OPTIONS: OptionSpec[] = [
  { name: 'host', env: 'TOKENSTREAM_HOST', kind: 'string', default: '127.0.0.1', arg: 'HOST', help: 'address to listen on' },
  { name: 'port', env: 'TOKENSTREAM_PORT', kind: 'int', min: 0, max: 65535, default: 50051, arg: 'PORT', help: 'port to listen on (0 = any free port)' },
  {
    name: 'model',
    env: 'TOKENSTREAM_MODEL',
    kind: 'list',
    arg: 'NAME=PATH',
    help: `a GGUF model to serve, repeatable (env: comma-separated); the first is the default; NAME defaults to the file name (default ${DEFAULT_MODEL})`,
  },
  { name: 'workers', env: 'TOKENSTREAM_WORKERS', kind: 'int', min: 1, default: 1, arg: 'N', help: 'worker threads per model, each with its own session' },
  { name: 'threads', env: 'TOKENSTREAM_THREADS', kind: 'int', min: 1, arg: 'N', help: 'native threads per worker (default: physical cores / workers)' },
  { name: 'max-batch', env: 'TOKENSTREAM_MAX_BATCH', kind: 'int', min: 1, default: 8, arg: 'N', help: 'concurrent sequences per worker (KV slots batched into one forward pass)' },
  { name: 'context', env: 'TOKENSTREAM_CONTEXT', kind: 'int', min: 0, default: 0, arg: 'N', help: 'context tokens per sequence (0 = the model\'s, at most 4096)' },
  { name: 'kv-type', env: 'TOKENSTREAM_KV_TYPE', kind: 'string', default: 'f16', arg: 'f16|f32', help: 'KV cache element type' },
  { name: 'worker-restarts', env: 'TOKENSTREAM_WORKER_RESTARTS', kind: 'int', min: 0, default: 5, arg: 'N', help: 'a worker that stops by itself is replaced, at most N times per model per minute (0 = never)' },
  { name: 'queue-limit', env: 'TOKENSTREAM_QUEUE_LIMIT', kind: 'int', min: 0, default: 64, arg: 'N', help: 'generations that may wait for a free slot, per model (beyond: RESOURCE_EXHAUSTED)' },
  { name: 'prefill-chunk', env: 'TOKENSTREAM_PREFILL_CHUNK', kind: 'int', min: 1, default: 256, arg: 'N', help: 'prompt tokens per sequence per step (long prompts are split so running streams keep going)' },
  { name: 'grace-ms', env: 'TOKENSTREAM_GRACE_MS', kind: 'int', min: 0, default: 10000, arg: 'MS', help: 'on SIGTERM/SIGINT, time for in-flight generations to finish before a forced shutdown' },
  { name: 'max-message-bytes', env: 'TOKENSTREAM_MAX_MESSAGE_BYTES', kind: 'int', min: 1024, default: 4 * 1024 * 1024, arg: 'BYTES', help: 'largest request message (beyond: RESOURCE_EXHAUSTED)' },
  { name: 'pause-tokens', env: 'TOKENSTREAM_PAUSE_TOKENS', kind: 'int', min: 1, default: DEFAULT_BACKPRESSURE.pauseTokens, arg: 'N', help: 'unread tokens at which a slow client\'s generation pauses' },
  { name: 'stall-ms', env: 'TOKENSTREAM_STALL_MS', kind: 'int', min: 0, default: DEFAULT_BACKPRESSURE.stallMs, arg: 'MS', help: 'how long a paused generation waits for its client before RESOURCE_EXHAUSTED' },
  { name: 'metrics-port', env: 'TOKENSTREAM_METRICS_PORT', kind: 'string', default: String(DEFAULT_METRICS_PORT), arg: 'PORT|off', help: 'Prometheus metrics endpoint (GET /metrics); 0 = any free port, off = none' },
  { name: 'metrics-host', env: 'TOKENSTREAM_METRICS_HOST', kind: 'string', arg: 'HOST', help: 'address of the metrics endpoint (default: --host)' },
  { name: 'cpu', env: 'TOKENSTREAM_CPU', kind: 'string', arg: 'PATH', help: 'force a kernel path: scalar, avx2, avx512, neon (default: the best the CPU has)' },
  {
    name: 'engine-nice',
    env: 'TOKENSTREAM_ENGINE_NICE',
    kind: 'int',
    min: 0,
    max: 19,
    default: 0,
    arg: 'N',
    help: "niceness 0..19 of the engine threads: above 0 they give way to the server's main thread at once, so tokens leave sooner when every core decodes",
  },
  {
    name: 'prefetch',
    env: 'TOKENSTREAM_PREFETCH',
    kind: 'boolean',
    help: 'at load, ask the kernel to read the whole model file ahead (madvise WILLNEED) instead of paging it in on first use',
  },
  {
    name: 'load',
    env: 'TOKENSTREAM_LOAD',
    kind: 'string',
    default: 'mmap',
    arg: 'mmap|read',
    help: 'how the model file gets into memory: mmap maps it (shared by every worker, paged in on use); read copies it into each process\'s heap at load (an ablation)',
  },
  {
    name: 'max-batch-sequences',
    env: 'TOKENSTREAM_MAX_BATCH_SEQUENCES',
    kind: 'int',
    min: 0,
    default: 0,
    arg: 'N',
    help: 'most sequences in one forward pass (0 = all: continuous batching); 1 turns batching off, the sequences take turns (an ablation)',
  },
  {
    name: 'no-buffer-reuse',
    env: 'TOKENSTREAM_NO_BUFFER_REUSE',
    kind: 'boolean',
    help: 'allocate the activation and scratch buffers in every decode step instead of once per worker (an ablation)',
  },
  {
    name: 'no-coalesce',
    env: 'TOKENSTREAM_NO_COALESCE',
    kind: 'boolean',
    help: 'write every token as its own message even when the client is behind, instead of merging the tokens it has not taken yet (an ablation)',
  },
  {
    name: 'mlock',
    env: 'TOKENSTREAM_MLOCK',
    kind: 'boolean',
    help: "lock the model's pages in memory (mlock) so they are never evicted; needs RLIMIT_MEMLOCK >= the file size",
  },
];

const USAGE = 'Usage: tokenstream serve [options]\n\nServes tokenstream.v1.TokenStream, grpc.health.v1.Health and server reflection over gRPC.';

/** "NAME=PATH" or "PATH" (name = file name without .gguf). */
export function parseModelSpec(arg: string): ModelSpec {
  const eq = arg.indexOf('=');
  const p = eq > 0 ? arg.slice(eq + 1) : arg;
  const name = eq > 0 ? arg.slice(0, eq) : path.basename(p).replace(/\.gguf$/i, '');
  if (!name || !p) throw new UsageError(`--model: expected NAME=PATH or PATH, got '${arg}'`);
  return { name, path: path.resolve(p) };
}

/** ServeOptions plus what only the command handles: the metrics endpoint (telemetry/metrics-server.ts). */
export interface ServeCommandOptions extends ServeOptions {
  /** undefined: no endpoint */
  metricsPort: number | undefined;
  metricsHost: string;
}

/** Turns the command line and environment into ServeCommandOptions (throws UsageError on bad values). */
export function serveOptionsFrom(argv: string[], env: NodeJS.ProcessEnv = process.env): ServeCommandOptions | 'help' {
  const { values, help } = parseFlagsOnly(argv, SERVE_OPTIONS, env);
  if (help) return 'help';
  const models = ((values.model as string[] | undefined) ?? []).map(parseModelSpec);
  if (models.length === 0) models.push({ name: path.basename(DEFAULT_MODEL, '.gguf'), path: path.join(packageRoot(), DEFAULT_MODEL) });
  const kvType = values['kv-type'] as string;
  if (kvType !== 'f16' && kvType !== 'f32') throw new UsageError(`--kv-type: f16 or f32, got '${kvType}'`);
  const cpu = values.cpu as string | undefined;
  if (cpu !== undefined && !['scalar', 'avx2', 'avx512', 'neon'].includes(cpu)) throw new UsageError(`--cpu: scalar, avx2, avx512 or neon, got '${cpu}'`);
  const load = values.load as string;
  if (load !== 'mmap' && load !== 'read') throw new UsageError(`--load: mmap or read, got '${load}'`);
  const port = values.port as number;
  let metricsPort: number | undefined;
  try {
    metricsPort = parseMetricsPort(values['metrics-port'] as string);
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  return {
    metricsPort,
    metricsHost: (values['metrics-host'] as string | undefined) ?? (values.host as string),
    host: values.host as string,
    port,
    models,
    workers: values.workers as number,
    threads: values.threads as number | undefined,
    maxSequences: values['max-batch'] as number,
    contextLength: values.context as number,
    kvType: kvType as KvType,
    queueLimit: values['queue-limit'] as number,
    workerRestarts: values['worker-restarts'] as number,
    engineNice: values['engine-nice'] as number,
    prefillChunk: values['prefill-chunk'] as number,
    maxBatchSequences: values['max-batch-sequences'] as number,
    reuseBuffers: !values['no-buffer-reuse'],
    graceMs: values['grace-ms'] as number,
    transport: { maxReceiveMessageBytes: values['max-message-bytes'] as number },
    backpressure: {
      ...DEFAULT_BACKPRESSURE,
      pauseTokens: values['pause-tokens'] as number,
      stallMs: values['stall-ms'] as number,
      coalesce: !values['no-coalesce'],
    },
    load: {
      ...(cpu ? { cpu: cpu as CpuPathName } : {}),
      ...(values.prefetch ? { prefetch: true } : {}),
      ...(values.mlock ? { lock: true } : {}),
      ...(load === 'read' ? { load: 'read' as const } : {}),
    },
  };
}

export async function serveCommand(argv: string[]): Promise<number> {
  let opts: ServeCommandOptions | 'help';
  try {
    opts = serveOptionsFrom(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tokenstream serve: ${err.message}\n\n${helpText(USAGE, SERVE_OPTIONS)}`);
      return 2;
    }
    throw err;
  }
  if (opts === 'help') {
    process.stdout.write(helpText(USAGE, SERVE_OPTIONS));
    return 0;
  }
  const log = (msg: string): void => {
    process.stderr.write(`tokenstream: ${msg}\n`);
  };
  const server = await TokenStreamServer.start(opts);
  for (const m of server.pool.models.values()) m.onNotice = log;
  log(`listening on ${server.address} (loading ${opts.models.map((m) => `${m.name}=${m.path}`).join(', ')})`);
  let metrics;
  try {
    metrics = await attachServerTelemetry(server, { port: opts.metricsPort, host: opts.metricsHost });
  } catch (err) {
    log(`metrics endpoint: ${err instanceof Error ? err.message : String(err)}`);
    await server.shutdown(0);
    return 1;
  }
  if (metrics) log(`metrics on http://${metrics.host.includes(':') ? `[${metrics.host}]` : metrics.host}:${metrics.port}/metrics`);
  const stopped = new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        log(`${sig} again: exiting now`);
        process.exit(1);
      }
      log(`${sig}: draining (up to ${opts.graceMs} ms), then shutting down`);
      server.shutdown().then(
        () => resolve(0),
        (err) => {
          log(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
          resolve(1);
        },
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  try {
    await server.ready;
    const m = [...server.pool.models.values()].map(
      (x) => `${x.name} (${x.info?.architecture}, ${x.workers.length}×${x.maxSequences} slots, ctx ${x.contextLength}, ${x.info?.cpuPath}, ${(x.info as { loadMode?: string } | undefined)?.loadMode ?? 'mmap'})`,
    );
    log(`serving ${m.join('; ')}`);
  } catch (err) {
    log(`failed to load: ${err instanceof Error ? err.message : String(err)}`);
    await server.shutdown(0);
    await metrics?.close();
    return 1;
  }
  // Load-time buffers are freed by now; from here on, every 10 s (malloc.ts).
  const stopTrim = startMallocTrim();
  const code = await stopped;
  stopTrim();
  await metrics?.close();
  log('stopped');
  return code;
}
