// npm run bench:memory -- [--model FILE] [--workers 1,2,4] [--requests 10000] [--every 1000]
//                         [--concurrency 16] [--max-tokens 4] [--max-batch 8] [--context 512]
//
// Server memory: `tokenstream serve` in a child process with K workers on one
// model. The weights are one read-only mapping shared by every worker, so RSS
// should be about one copy of the mapped file + the KV caches (K workers × slots
// × context, resident as far as used) + a fixed overhead (Node itself, V8
// isolates, buffers) under 100 MB, and stay flat however many requests go
// through. The server's /proc/<pid>/smaps says exactly which resident pages are
// the weights (the model file's mapping) and which the KV caches (the memfds
// named tokenstream-kv the engine maps them in), so the overhead printed is
// RSS - resident weights - resident KV, with no credit for KV pages never
// touched. For each K: RSS and its parts after loading and after a warm-up,
// then every --every requests of a --requests run (half on Complete calls,
// half as generations multiplexed on Generate streams that are reopened every 50).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { intList, type OptionSpec, runScript, scriptOptions } from '../server/src/cli/options';
import { TokenStreamClient, type GenerateSession } from '../client/src/client';
import { packageRoot } from '../server/src/engine/addon';
import { Model } from '../server/src/engine/model';
import { quietServe } from './bench-service';
import { ChildServer, processMemory, uptime } from './service/child-server';
import { residentMemory } from './service/smaps';

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
  rss_shmem_mb: number;
  /** resident pages of the model file's mapping */
  weights_mb: number;
  /** resident pages of the KV caches */
  kv_resident_mb: number;
  /** resident pages of the node executable */
  node_mb: number;
  /** other file mappings (shared libraries, the addon) */
  other_files_mb: number;
  /** anonymous memory (V8 heaps, malloc, stacks) */
  anon_mb: number;
  /** RSS - weights_mb - kv_resident_mb (RSS summed over smaps) */
  overhead_mb: number;
}

export interface MemoryResult {
  workers: number;
  file_mb: number;
  kv_cache_mb: number;
  loaded: MemorySample;
  samples: MemorySample[];
  /** RSS at the end minus the mapped weights (the file): KV caches as far as touched + everything else */
  beyond_weights_mb: number;
  /** at the end: RSS - resident weights - resident KV caches */
  overhead_mb: number;
  /** at the end: the KV caches' resident part */
  kv_resident_mb: number;
  /** RSS at the end minus RSS after the first --every requests */
  growth_mb: number;
}

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'string', arg: 'FILE', help: 'the GGUF file (default: bench/models/smollm2-135m-shape-q8_0.gguf if present, else the bundled tiny model)' },
  { name: 'workers', kind: 'string', default: '1,2,4', arg: 'K,...', help: 'engine workers of each run' },
  { name: 'requests', kind: 'int', default: 10_000, min: 1, arg: 'N', help: 'requests of each run' },
  { name: 'every', kind: 'int', default: 1000, min: 1, arg: 'N', help: 'a memory sample every N requests' },
  { name: 'concurrency', kind: 'int', default: 16, min: 1, arg: 'N', help: 'requests in flight at once' },
  { name: 'max-tokens', kind: 'int', default: 4, min: 1, arg: 'N', help: 'tokens per request' },
  { name: 'max-batch', kind: 'int', default: 8, min: 1, arg: 'N', help: 'serve --max-batch' },
  { name: 'context', kind: 'int', default: 512, min: 1, arg: 'N', help: 'serve --context' },
  { name: 'threads', kind: 'int', default: 1, min: 1, arg: 'N', help: 'serve --threads' },
  { name: 'json', kind: 'boolean', help: 'JSON on stdout' },
];

function options(argv: string[]): Options | null {
  return scriptOptions('usage: npm run bench:memory -- [options]', OPTIONS, argv, (values) => {
    const realistic = path.join(packageRoot(), 'bench/models/smollm2-135m-shape-q8_0.gguf');
    return {
      model: path.resolve((values.model as string | undefined) ?? (fs.existsSync(realistic) ? realistic : path.join(packageRoot(), 'models/llama-2-tiny-random.gguf'))),
      workers: intList('workers', values.workers as string),
      requests: values.requests as number,
      every: values.every as number,
      concurrency: values.concurrency as number,
      maxTokens: values['max-tokens'] as number,
      maxBatch: values['max-batch'] as number,
      context: values.context as number,
      threads: values.threads as number,
      json: values.json === true,
    };
  });
}

function sample(pid: number, requests: number, model: string): MemorySample {
  const m = processMemory(pid);
  const r = residentMemory(pid, [model]);
  return {
    requests,
    rss_mb: m.rss / MB,
    rss_file_mb: m.rssFile / MB,
    rss_anon_mb: m.rssAnon / MB,
    rss_shmem_mb: m.rssShmem / MB,
    weights_mb: r.weights / MB,
    kv_resident_mb: r.kv / MB,
    node_mb: r.node / MB,
    other_files_mb: r.otherFiles / MB,
    anon_mb: r.anon / MB,
    overhead_mb: (r.rss - r.weights - r.kv) / MB,
  };
}

function breakdown(s: MemorySample): string {
  return (
    `RSS ${s.rss_mb.toFixed(1)} MB = weights ${s.weights_mb.toFixed(1)} + KV ${s.kv_resident_mb.toFixed(1)} + overhead ${s.overhead_mb.toFixed(1)}` +
    ` (node ${s.node_mb.toFixed(1)}, other files ${s.other_files_mb.toFixed(1)}, anon ${s.anon_mb.toFixed(1)})`
  );
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
    const loaded = sample(server.pid, 0, o.model);
    const client = new TokenStreamClient(address);
    const samples: MemorySample[] = [];
    try {
      await load(client, Math.max(o.concurrency, 200), o, () => undefined); // warm-up: every page of the weights touched, JIT warm
      samples.push(sample(server.pid, 0, o.model));
      log(`  K=${workers}: loaded: ${breakdown(loaded)}`);
      log(`       warm:   ${breakdown(samples[0])}`);
      await load(client, o.requests, o, (n) => {
        if (n % o.every !== 0) return;
        const s = sample(server.pid, n, o.model);
        samples.push(s);
        log(`    ${String(n).padStart(6)} requests: ${breakdown(s)}`);
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
      overhead_mb: last.overhead_mb,
      kv_resident_mb: last.kv_resident_mb,
      growth_mb: last.rss_mb - firstRun.rss_mb,
    };
  } finally {
    await server.stop();
  }
}

export async function main(argv: string[]): Promise<number> {
  const o = options(argv);
  if (!o) return 0;
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
  log('  workers   RSS MB (loaded / warm / end)   weights MB (file)   KV resident MB (allocated)   RSS - weights - KV MB   growth over the run MB');
  for (const r of results) {
    const warm = r.samples[0];
    const end = r.samples[r.samples.length - 1];
    log(
      `  ${String(r.workers).padStart(7)}   ${`${r.loaded.rss_mb.toFixed(1)} / ${warm.rss_mb.toFixed(1)} / ${end.rss_mb.toFixed(1)}`.padStart(28)}   ${`${end.weights_mb.toFixed(1)} (${r.file_mb.toFixed(1)})`.padStart(17)}   ${`${end.kv_resident_mb.toFixed(1)} (${r.kv_cache_mb.toFixed(1)})`.padStart(26)}   ${r.overhead_mb.toFixed(1).padStart(21)}   ${r.growth_mb.toFixed(1).padStart(6)}`,
    );
  }
  log(`  ${uptime()}`);
  if (o.json) process.stdout.write(`${JSON.stringify({ model: o.model, results })}\n`);
  return 0;
}

if (require.main === module) runScript('bench:memory', main);
