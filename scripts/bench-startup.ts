// npm run bench:startup -- [--model FILE] [--reps 3] [--variants plain,prefetch,mlock] [--threads N]
//
// Start-up: from spawning `tokenstream serve --model FILE` to the first token
// streamed to a client, with the file in the page cache (it is read once
// first). Each rep is a fresh process; the client sends its request the moment
// the server says it is serving. Printed per variant (plain, --prefetch,
// --mlock): time to "listening" (process up, port bound), to "serving" (model
// loaded in every worker), and to the first token at the client; best and
// median of the reps.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type OptionSpec, runScript, scriptOptions, UsageError } from '../server/src/cli/options';
import { Metadata } from '@grpc/grpc-js';
import { TokenStreamClient } from '../client/src/client';
import { packageRoot } from '../server/src/engine/addon';
import type { GenerateResponse } from '../server/src/generated/tokenstream/v1/tokenstream';
import { quietServe } from './bench-service';
import { ChildServer, percentile, uptime } from './service/child-server';

const VARIANTS: Record<string, string[]> = { plain: [], prefetch: ['--prefetch'], mlock: ['--mlock'] };

interface Options {
  model: string;
  reps: number;
  variants: string[];
  threads?: number;
  json: boolean;
}

export interface StartupRun {
  listening_ms: number;
  serving_ms: number;
  first_token_ms: number;
}

export interface StartupResult {
  variant: string;
  runs: StartupRun[];
  best_first_token_ms: number;
  median_first_token_ms: number;
}

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'string', arg: 'FILE', help: 'the GGUF file (default: bench/models/tinyllama-1.1b-shape-q4_0.gguf if present, else the bundled tiny model)' },
  { name: 'reps', kind: 'int', default: 3, min: 1, arg: 'N', help: 'fresh server processes per variant' },
  { name: 'variants', kind: 'string', default: 'plain,prefetch,mlock', arg: 'V,...', help: `of ${Object.keys(VARIANTS).join(', ')}` },
  { name: 'threads', kind: 'int', min: 1, arg: 'N', help: 'serve --threads' },
  { name: 'json', kind: 'boolean', help: 'JSON on stdout' },
];

function options(argv: string[]): Options | null {
  return scriptOptions('usage: npm run bench:startup -- [options]', OPTIONS, argv, (values) => {
    const variants = (values.variants as string).split(',');
    for (const v of variants) if (!VARIANTS[v]) throw new UsageError(`--variants: ${Object.keys(VARIANTS).join(', ')}; got '${v}'`);
    const big = path.join(packageRoot(), 'bench/models/tinyllama-1.1b-shape-q4_0.gguf');
    return {
      model: path.resolve((values.model as string | undefined) ?? (fs.existsSync(big) ? big : path.join(packageRoot(), 'models/llama-2-tiny-random.gguf'))),
      reps: values.reps as number,
      variants,
      threads: values.threads as number | undefined,
      json: values.json === true,
    };
  });
}

/** Reads the whole file, so it is in the page cache. */
function warmPageCache(file: string): void {
  const fd = fs.openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1 << 22);
  try {
    while (fs.readSync(fd, buf, 0, buf.length, null) > 0);
  } finally {
    fs.closeSync(fd);
  }
}

/** One start: spawn, wait for "serving", one greedy generation; times from the spawn. */
async function startOnce(o: Options, extra: string[]): Promise<StartupRun> {
  const server = new ChildServer({
    // serve's defaults (slots, context, threads) but the port (any free one) and no metrics endpoint.
    args: ['--model', o.model, ...(o.threads ? ['--threads', String(o.threads)] : []), ...quietServe(), ...extra],
  });
  try {
    const address = await server.listening;
    const listening = performance.now();
    const serving = await server.serving;
    const client = new TokenStreamClient(address);
    const firstToken = await new Promise<number>((resolve, reject) => {
      const call = client.grpc.generate(new Metadata());
      let first = 0;
      call.on('data', (m: GenerateResponse) => {
        if (!first && m.chunk && m.chunk.tokenIds.length > 0) first = performance.now();
        if (m.error) reject(new Error(m.error.message));
      });
      call.on('error', reject);
      call.on('status', () => (first ? resolve(first) : reject(new Error('no token'))));
      call.write({
        requestId: 'startup',
        prompt: '',
        messages: [],
        tokens: [1, 450, 1024, 338, 263],
        model: '',
        params: { maxTokens: 2, temperature: 0, ignoreEos: true, stop: [] },
        cancel: false,
        parseSpecial: false,
        includeBytes: false,
        timeoutMs: 0,
        traceparent: '',
        tracestate: '',
      });
      call.end();
    });
    client.close();
    return { listening_ms: listening - server.spawnedAt, serving_ms: serving - server.spawnedAt, first_token_ms: firstToken - server.spawnedAt };
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
  warmPageCache(o.model);
  log(`${path.basename(o.model)} (${(fs.statSync(o.model).size / 1024 / 1024).toFixed(0)} MB, in the page cache), ${o.reps} starts per variant`);
  log(`  ${uptime()}`);
  await startOnce(o, []); // warm-up: node, the addon and the scripts in the page cache too
  const results: StartupResult[] = [];
  for (const v of o.variants) {
    const runs: StartupRun[] = [];
    for (let r = 0; r < o.reps; r++) runs.push(await startOnce(o, VARIANTS[v]));
    const sorted = runs.map((x) => x.first_token_ms).sort((a, b) => a - b);
    results.push({ variant: v, runs, best_first_token_ms: sorted[0], median_first_token_ms: percentile(sorted, 50) });
  }
  log('  variant    listening ms   serving ms   first token ms (each start)            best   median');
  for (const r of results) {
    const each = r.runs.map((x) => x.first_token_ms.toFixed(0)).join(' / ');
    const lis = percentile(r.runs.map((x) => x.listening_ms).sort((a, b) => a - b), 50);
    const srv = percentile(r.runs.map((x) => x.serving_ms).sort((a, b) => a - b), 50);
    log(
      `  ${r.variant.padEnd(9)}  ${lis.toFixed(0).padStart(12)}   ${srv.toFixed(0).padStart(10)}   ${each.padEnd(36)}  ${r.best_first_token_ms.toFixed(0).padStart(6)}   ${r.median_first_token_ms.toFixed(0).padStart(6)}`,
    );
  }
  log(`  ${uptime()}`);
  if (o.json) process.stdout.write(`${JSON.stringify({ model: o.model, results })}\n`);
  return 0;
}

if (require.main === module) runScript('bench:startup', main);
