// npm run bench:memory -- [--model FILE] [--workers 1,2,4] [--requests 10000] [--every 1000]
//                         [--concurrency 16] [--max-tokens 4] [--max-batch 8] [--context 512]
//
// Server memory: `tokenstream serve` in a child process with K workers on one
// model. The weights are one read-only mapping shared by every worker, so RSS
// should be about one copy of the mapped file + the KV caches (K workers × slots
// × context, resident as far as used) + a fixed overhead (Node itself, V8
// isolates, buffers) under 100 MB, and stay flat however many requests go
// through. Printed: RSS minus the weights, next to the KV caches allocated. For each K: RSS (file-backed and
// anonymous parts, from /proc) after loading and after a warm-up, then every
// --every requests of a --requests run (half on Complete calls, half as
// generations multiplexed on Generate streams that are reopened every 50).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { TokenStreamClient, type GenerateSession } from '../client/src/client';
import { packageRoot } from '../server/src/engine/addon';
import { Model } from '../server/src/engine/model';
import { quietServe } from './bench-service';
import { ChildServer, processMemory, uptime } from './service/child-server';

const MB = 1024 * 1024;
const PROMPT = [1, 450, 1024, 338, 263];

interface Options {
  model: string;
  workers: number[];
  requests: number;
  every: number;
  concurrency: number;
  maxTokens: number;
  maxBatch: number;
  context: number;
  threads: number;
  json: boolean;
}

export interface MemorySample {
  requests: number;
  rss_mb: number;
  rss_file_mb: number;
  rss_anon_mb: number;
}

export interface MemoryResult {
  workers: number;
  file_mb: number;
  kv_cache_mb: number;
  loaded: MemorySample;
  samples: MemorySample[];
  /** RSS at the end minus the mapped weights (the file): KV caches as far as touched + everything else */
  beyond_weights_mb: number;
  /** RSS at the end minus RSS after the first --every requests */
  growth_mb: number;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      workers: { type: 'string' },
      requests: { type: 'string' },
      every: { type: 'string' },
      concurrency: { type: 'string' },
      'max-tokens': { type: 'string' },
      'max-batch': { type: 'string' },
      context: { type: 'string' },
      threads: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const int = (v: string | undefined, name: string, dflt: number): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected an integer >= 1, got '${v}'`);
    return n;
  };
  const realistic = path.join(packageRoot(), 'bench/models/smollm2-135m-shape-q8_0.gguf');
  return {
    model: path.resolve(values.model ?? (fs.existsSync(realistic) ? realistic : path.join(packageRoot(), 'models/llama-2-tiny-random.gguf'))),
    workers: (values.workers ?? '1,2,4').split(',').map((s) => int(s, 'workers', 1)),
    requests: int(values.requests, 'requests', 10_000),
    every: int(values.every, 'every', 1000),
    concurrency: int(values.concurrency, 'concurrency', 16),
    maxTokens: int(values['max-tokens'], 'max-tokens', 4),
    maxBatch: int(values['max-batch'], 'max-batch', 8),
    context: int(values.context, 'context', 512),
    threads: int(values.threads, 'threads', 1),
    json: values.json ?? false,
  };
}

function sample(pid: number, requests: number): MemorySample {
  const m = processMemory(pid);
  return { requests, rss_mb: m.rss / MB, rss_file_mb: m.rssFile / MB, rss_anon_mb: m.rssAnon / MB };
}

/** KV cache bytes of one worker's session (asked of the engine with the server's settings). */
function kvCacheBytes(file: string, o: Options): number {
  const model = Model.load(file);
  try {
    const s = model.createSession({ maxSequences: o.maxBatch, contextLength: o.context, maxBatch: 256 + o.maxBatch, threads: 1, kvType: 'f16' });
    const bytes = s.kvCacheBytes;
    s.close();
    return bytes;
  } finally {
    model.close();
  }
}

/**
 * Runs `total` requests, `concurrency` at a time: even-numbered lanes use Complete,
 * odd ones Generate streams reopened every 50 generations. `onDone(n)` after each.
 */
async function load(client: TokenStreamClient, total: number, o: Options, onDone: (n: number) => Promise<void> | void): Promise<void> {
  let started = 0;
  let done = 0;
  const params = { temperature: 0, maxTokens: o.maxTokens, ignoreEos: true };
  const lane = async (k: number): Promise<void> => {
    let session: GenerateSession | null = null;
    let onSession = 0;
    while (started < total) {
      started++;
      if (k % 2 === 0) {
        await client.complete({ tokens: PROMPT, params }).result;
      } else {
        if (!session || onSession === 50) {
          await session?.close();
          session = client.session();
          onSession = 0;
        }
        onSession++;
        await session.generate({ tokens: PROMPT, params }).result;
      }
      done++;
      await onDone(done);
    }
    await session?.close();
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, k) => lane(k)));
}

async function measure(o: Options, workers: number, kvBytes: number, log: (l: string) => void): Promise<MemoryResult> {
  const server = new ChildServer({
    args: [
      '--model', o.model, '--workers', String(workers), '--threads', String(o.threads), '--max-batch', String(o.maxBatch),
      '--context', String(o.context), '--queue-limit', String(o.concurrency * 2), ...quietServe(),
    ],
  });
  try {
    const address = await server.listening;
    await server.serving;
    const loaded = sample(server.pid, 0);
    const client = new TokenStreamClient(address);
    const samples: MemorySample[] = [];
    try {
      await load(client, Math.max(o.concurrency, 200), o, () => undefined); // warm-up: every page of the weights touched, JIT warm
      samples.push(sample(server.pid, 0));
      log(`  K=${workers}: loaded ${loaded.rss_mb.toFixed(1)} MB, after warm-up ${samples[0].rss_mb.toFixed(1)} MB (file ${samples[0].rss_file_mb.toFixed(1)}, anon ${samples[0].rss_anon_mb.toFixed(1)})`);
      await load(client, o.requests, o, (n) => {
        if (n % o.every !== 0) return;
        const s = sample(server.pid, n);
        samples.push(s);
        log(`    ${String(n).padStart(6)} requests: RSS ${s.rss_mb.toFixed(1)} MB (file ${s.rss_file_mb.toFixed(1)}, anon ${s.rss_anon_mb.toFixed(1)})`);
      });
    } finally {
      client.close();
    }
    const last = samples[samples.length - 1];
    const firstRun = samples.length > 1 ? samples[1] : samples[0];
    const fileMb = fs.statSync(o.model).size / MB;
    const kvMb = (kvBytes * workers) / MB;
    return {
      workers,
      file_mb: fileMb,
      kv_cache_mb: kvMb,
      loaded,
      samples,
      beyond_weights_mb: last.rss_mb - fileMb,
      growth_mb: last.rss_mb - firstRun.rss_mb,
    };
  } finally {
    await server.stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  const o = options(argv);
  const log = (l: string): void => {
    (o.json ? process.stderr : process.stdout).write(`${l}\n`);
  };
  const kv = kvCacheBytes(o.model, o);
  log(`${path.basename(o.model)} (${(fs.statSync(o.model).size / MB).toFixed(1)} MB), ${o.maxBatch} slots × context ${o.context} per worker (KV ${(kv / MB).toFixed(1)} MB per worker)`);
  log(`${o.requests} requests of ${o.maxTokens} tokens, ${o.concurrency} at a time, threads ${o.threads} per worker`);
  const results: MemoryResult[] = [];
  for (const k of o.workers) {
    log(`  ${uptime()}`);
    results.push(await measure(o, k, kv, log));
  }
  log('');
  log('  workers   weights MB   KV allocated MB   RSS MB (loaded / warm / end)   RSS - weights MB   growth over the run MB');
  for (const r of results) {
    const warm = r.samples[0];
    const end = r.samples[r.samples.length - 1];
    log(
      `  ${String(r.workers).padStart(7)}   ${r.file_mb.toFixed(1).padStart(10)}   ${r.kv_cache_mb.toFixed(1).padStart(15)}   ${`${r.loaded.rss_mb.toFixed(1)} / ${warm.rss_mb.toFixed(1)} / ${end.rss_mb.toFixed(1)}`.padStart(28)}   ${r.beyond_weights_mb.toFixed(1).padStart(16)}   ${r.growth_mb.toFixed(1).padStart(6)}`,
    );
  }
  log(`  ${uptime()}`);
  if (o.json) process.stdout.write(`${JSON.stringify({ model: o.model, results })}\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err) => {
      console.error(err);
      process.exitCode = 1;
    },
  );
}
