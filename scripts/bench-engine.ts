// npm run bench:engine -- --model FILE [--threads N] [--json] [--no-peer]
//                         [--reps N] [--tokens N] [--prompt N] [--batch 4,8]
//
// Engine throughput, ours against llama.cpp (node-llama-cpp 3.21.1, CPU
// backend) on the same GGUF file with the same thread count, in one run:
//   pp      prompt processing, 128-token prompt in one batch       (tok/s)
//   tg      decode at batch 1: one token per step, greedy           (tok/s)
//   batch N aggregate decode of N sequences stepping together       (tok/s)
// Each figure is the best of --reps timed runs after a warm-up run, the two
// engines taking turns run by run so that a shared machine's changing load
// hits both alike; decode steps include sampling (greedy) on both sides. Also prints this machine's
// read bandwidth (the addon's streaming-read kernel, the best of one read
// before each timed batch-1 round) and the fraction of it a batch-1 decode
// reaches: bytes of weights read per token x tok/s / bandwidth.
// --json prints exactly
//   {"model","threads","ours":{pp_tps,tg_tps,batch_tps:{"4","8"}},"llamacpp":{...},"ratio":{...},"read_bandwidth_gbs"}
// (llamacpp and ratio are null with --no-peer). Progress goes to stderr.
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadAddon, packageRoot } from '../server/src/engine/addon';
import { readGgufMetadata } from '../server/src/engine/gguf';
import { GREEDY_SAMPLING, Model, createBatch } from '../server/src/engine/model';
import type { GgufMetadata } from '../server/src/engine/types';
import { intList, type OptionSpec, required, runScript, scriptOptions } from '../server/src/cli/options';
import { type BenchEngine, type EngineNumbers, type RunPlan, sequencePrompt } from './peer/bench-types';
import { openLlamaCpp } from './peer/llamacpp';
import { otherWorkCores } from './suite/machine';

const GEN_PROMPT = 16;

interface Options {
  model: string;
  threads?: number;
  json: boolean;
  peer: boolean;
  reps: number;
  tokens: number;
  prompt: number; // pp prompt length
  batchSizes: number[];
}

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'string', arg: 'FILE', help: 'the GGUF file (required)' },
  { name: 'threads', kind: 'int', min: 1, arg: 'N', help: 'threads of both engines (default: physical cores)' },
  { name: 'json', kind: 'boolean', help: 'one JSON object on stdout instead of the table' },
  { name: 'no-peer', kind: 'boolean', help: 'measure tokenstream only' },
  { name: 'reps', kind: 'int', default: 3, min: 1, arg: 'N', help: 'runs of each measurement' },
  { name: 'tokens', kind: 'int', default: 64, min: 1, arg: 'N', help: 'tokens decoded per run' },
  { name: 'prompt', kind: 'int', default: 128, min: 1, arg: 'N', help: 'prompt length of the prompt-processing run' },
  { name: 'batch', kind: 'string', default: '4,8', arg: 'N,...', help: 'sequences decoded together in the batched runs' },
];

const USAGE = 'usage: npm run bench:engine -- --model FILE [options]';

function parseArgs(argv: string[]): Options | null {
  return scriptOptions(USAGE, OPTIONS, argv, (values) => ({
    model: path.resolve(required(values, 'model')),
    threads: values.threads as number | undefined,
    json: values.json === true,
    peer: values['no-peer'] !== true,
    reps: values.reps as number,
    tokens: values.tokens as number,
    prompt: values.prompt as number,
    batchSizes: intList('batch', values.batch as string),
  }));
}

/** Deterministic ordinary-token ids (away from the specials at the start of the vocabulary). */
function tokenIds(n: number, vocab: number, salt: number): number[] {
  const lo = Math.min(100, Math.floor(vocab / 4));
  const span = Math.max(1, Math.min(vocab, 30000) - lo);
  return Array.from({ length: n }, (_, i) => lo + ((i * 7919 + salt * 104729) % span));
}

/** Bytes of weights one decode step reads: every tensor, but only one row of the embedding unless it is also the LM head. */
export function weightBytesPerToken(md: GgufMetadata, vocab: number): number {
  const tied = !md.tensors.some((t) => t.name === 'output.weight');
  let bytes = 0;
  for (const t of md.tensors) {
    if (t.name === 'token_embd.weight' && !tied) bytes += t.nbytes / vocab;
    else bytes += t.nbytes;
  }
  return bytes;
}

const GREEDY = GREEDY_SAMPLING;

function openOurs(plan: RunPlan, log: (l: string) => void): BenchEngine {
  const model = Model.load(plan.model);
  const maxSeq = Math.max(1, ...plan.batchSizes);
  const session = model.createSession({
    maxSequences: maxSeq,
    contextLength: plan.contextLength,
    maxBatch: Math.max(plan.prompt.length, maxSeq * plan.genPrompt.length),
    threads: plan.threads,
  });
  log(`ours (${model.info.cpuPath}): context ${session.contextLength}, batch ${session.maxBatch}, threads ${plan.threads}`);
  const batch = createBatch(session.maxBatch);
  const now = (): number => performance.now();
  // Prefill `prompts[i]` into sequence i (one batch), logits for each last entry.
  const prefill = (prompts: number[][]): void => {
    let k = 0;
    prompts.forEach((p, s) => {
      session.clearSequence(s);
      p.forEach((tok, pos) => {
        batch.seq[k] = s;
        batch.token[k] = tok;
        batch.pos[k] = pos;
        batch.logits[k] = pos === p.length - 1 ? 1 : 0;
        k++;
      });
    });
    batch.length = k;
    session.decode(batch);
  };
  return {
    name: 'ours',
    async pp() {
      const t0 = now();
      prefill([plan.prompt]);
      return now() - t0;
    },
    async generate(n, steps) {
      prefill(Array.from({ length: n }, (_, i) => sequencePrompt(plan, i)));
      const next = new Int32Array(n);
      for (let s = 0; s < n; s++) {
        session.setSampler(s, GREEDY);
        next[s] = session.sample(s, s).token;
      }
      const t0 = now();
      for (let step = 0; step < steps; step++) {
        for (let s = 0; s < n; s++) {
          batch.seq[s] = s;
          batch.token[s] = next[s];
          batch.pos[s] = plan.genPrompt.length + step;
          batch.logits[s] = 1;
        }
        batch.length = n;
        session.decode(batch);
        for (let s = 0; s < n; s++) next[s] = session.sample(s, s).token;
      }
      return now() - t0;
    },
    async close() {
      session.close();
      model.close();
    },
  };
}

/**
 * Runs every measure on every engine: a warm-up run, then plan.reps timed
 * runs, the engines taking turns run by run (order flipped each time) so
 * changing load on a shared machine hits them alike. Best run per measure.
 * Before each timed round of batch-1 decode the read bandwidth is measured
 * too (readGbs: the best of those), because this VM's ceiling moves by 2x
 * within minutes: a decode's share is only meaningful against a ceiling read
 * in the same minute.
 */
async function measure(
  engines: BenchEngine[],
  plan: RunPlan,
  log: (l: string) => void,
  readGbsNow: () => number | null,
): Promise<{ numbers: EngineNumbers[]; readGbs: number | null }> {
  const out: EngineNumbers[] = engines.map(() => ({ pp_tps: 0, tg_tps: 0, batch_tps: {} }));
  let readGbs: number | null = null;
  const rounds = async (run: (e: BenchEngine, warm: boolean) => Promise<number>, keep: (i: number, tps: number) => void, beforeRound: (r: number) => void = () => undefined) => {
    for (let r = 0; r <= plan.reps; r++) {
      beforeRound(r);
      const order = engines.map((_, i) => i);
      if (r % 2 === 1) order.reverse();
      for (const i of order) {
        const tps = await run(engines[i], r === 0);
        if (r > 0) keep(i, tps);
      }
    }
  };
  await rounds(
    async (e) => (plan.prompt.length * 1000) / (await e.pp()),
    (i, tps) => (out[i].pp_tps = Math.max(out[i].pp_tps, tps)),
  );
  log('pp done');
  for (const n of [1, ...plan.batchSizes]) {
    await rounds(
      async (e, warm) => {
        const steps = warm ? 4 : plan.genTokens;
        return (n * steps * 1000) / (await e.generate(n, steps));
      },
      (i, tps) => {
        if (n === 1) out[i].tg_tps = Math.max(out[i].tg_tps, tps);
        else out[i].batch_tps[String(n)] = Math.max(out[i].batch_tps[String(n)] ?? 0, tps);
      },
      (r) => {
        if (n !== 1 || r === 0) return;
        const g = readGbsNow();
        if (g !== null) readGbs = Math.max(readGbs ?? 0, g);
      },
    );
    log(`${n === 1 ? 'tg' : `batch ${n}`} done`);
  }
  return { numbers: out, readGbs };
}

function ratio(a: EngineNumbers, b: EngineNumbers): EngineNumbers {
  const r = (x: number, y: number): number => (y > 0 ? x / y : NaN);
  const batch: Record<string, number> = {};
  for (const k of Object.keys(a.batch_tps)) batch[k] = r(a.batch_tps[k], b.batch_tps[k]);
  return { pp_tps: r(a.pp_tps, b.pp_tps), tg_tps: r(a.tg_tps, b.tg_tps), batch_tps: batch };
}

function round(e: EngineNumbers, digits: number): EngineNumbers {
  const f = (x: number): number => Number(x.toFixed(digits));
  const batch: Record<string, number> = {};
  for (const [k, v] of Object.entries(e.batch_tps)) batch[k] = f(v);
  return { pp_tps: f(e.pp_tps), tg_tps: f(e.tg_tps), batch_tps: batch };
}

function loadAverage(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}

/** Physical cores, as the engine counts them (its default thread count). */
function defaultThreads(): number {
  const kernels = loadAddon().kernels;
  if (kernels && typeof kernels.physicalCores === 'function') return kernels.physicalCores() as number;
  return Math.max(1, Math.floor(os.cpus().length / 2));
}

/** The addon's streaming-read kernel, GB/s, or null when this build has none. */
function readBandwidth(threads: number): number | null {
  const kernels = loadAddon().kernels;
  if (!kernels || typeof kernels.readBandwidth !== 'function') return null;
  return kernels.readBandwidth(512 * 1024 * 1024, threads) as number;
}

export async function main(argv: string[]): Promise<number> {
  const opts = parseArgs(argv);
  if (!opts) return 0;
  const log = (l: string): void => {
    process.stderr.write(`${l}\n`);
  };
  const md = readGgufMetadata(opts.model);
  const vocab = (() => {
    const t = md.tensors.find((x) => x.name === 'token_embd.weight');
    return t ? t.dims[1] : 32000;
  })();
  const root = packageRoot();
  const threads = opts.threads ?? defaultThreads();
  const plan: RunPlan = {
    model: opts.model,
    threads,
    prompt: tokenIds(opts.prompt, vocab, 1),
    genPrompt: tokenIds(GEN_PROMPT, vocab, 2),
    genTokens: opts.tokens,
    batchSizes: opts.batchSizes,
    reps: opts.reps,
    contextLength: Math.max(opts.prompt, GEN_PROMPT + opts.tokens) + 64,
  };
  const loadBefore = loadAverage();
  log(`load before: ${loadBefore}`);
  const other = await otherWorkCores();
  const busy = other > 0.25;
  const busyNote = `WARNING: other work kept ${other.toFixed(2)} cores busy at the start: it shares the CPU, figures are unreliable`;
  if (busy) log(busyNote);
  const engines: BenchEngine[] = [openOurs(plan, log)];
  let results: EngineNumbers[];
  let bandwidth: number | null;
  try {
    if (opts.peer) engines.push(await openLlamaCpp(root, plan, log));
    ({ numbers: results, readGbs: bandwidth } = await measure(engines, plan, log, () => readBandwidth(threads)));
  } finally {
    for (const e of engines) await e.close();
  }
  const ours = results[0];
  const peer: EngineNumbers | null = opts.peer ? results[1] : null;
  log(`ours: ${JSON.stringify(round(ours, 1))}`);
  if (peer) log(`llama.cpp: ${JSON.stringify(round(peer, 1))}`);
  const loadAfter = loadAverage();
  log(`load after: ${loadAfter}`);

  if (opts.json) {
    const out = {
      model: opts.model,
      threads,
      ours: round(ours, 2),
      llamacpp: peer ? round(peer, 2) : null,
      ratio: peer ? round(ratio(ours, peer), 3) : null,
      read_bandwidth_gbs: bandwidth === null ? null : Number(bandwidth.toFixed(2)),
    };
    process.stdout.write(`${JSON.stringify(out)}\n`);
    return 0;
  }
  const bytes = weightBytesPerToken(md, vocab);
  const types = Object.entries(
    md.tensors.reduce<Record<string, number>>((acc, t) => ((acc[t.type] = (acc[t.type] ?? 0) + 1), acc), {}),
  )
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  const fmt = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : x.toFixed(1));
  const fmtR = (x: number | undefined): string => (x === undefined || Number.isNaN(x) ? '-' : `${x.toFixed(2)}x`);
  const rat = peer ? ratio(ours, peer) : null;
  const rows: Array<[string, number, number | undefined, number | undefined]> = [
    [`pp tok/s (${opts.prompt}-token prompt)`, ours.pp_tps, peer?.pp_tps, rat?.pp_tps],
    ['tg tok/s (batch 1)', ours.tg_tps, peer?.tg_tps, rat?.tg_tps],
    ...opts.batchSizes.map((n): [string, number, number | undefined, number | undefined] => [
      `decode tok/s, ${n} sequences`,
      ours.batch_tps[String(n)],
      peer?.batch_tps[String(n)],
      rat?.batch_tps[String(n)],
    ]),
  ];
  const lines = [
    `model    ${opts.model}`,
    `         ${(md.fileSize / 1e6).toFixed(1)} MB; tensors: ${types}`,
    `threads  ${threads}   machine: ${os.cpus()[0]?.model ?? '?'} (${os.cpus().length} logical)`,
    `load     ${loadBefore}`,
    '',
    `${'measure'.padEnd(34)}${'ours'.padStart(10)}${'llama.cpp'.padStart(12)}${'ratio'.padStart(9)}`,
    ...rows.map(([name, a, b, r]) => `${name.padEnd(34)}${fmt(a).padStart(10)}${fmt(b).padStart(12)}${fmtR(r).padStart(9)}`),
    '',
  ];
  if (bandwidth !== null) {
    const frac = (tps: number): string => `${((bytes * tps * 100) / (bandwidth * 1e9)).toFixed(0)}%`;
    lines.push(
      `read bandwidth ${bandwidth.toFixed(1)} GB/s with ${threads} thread(s) (best of the reads between the batch-1 rounds); weights read per token ${(bytes / 1e6).toFixed(1)} MB`,
      `batch-1 decode reaches ${frac(ours.tg_tps)} of it (ours)${peer ? `, ${frac(peer.tg_tps)} (llama.cpp)` : ''}`,
    );
  } else {
    lines.push(`weights read per token ${(bytes / 1e6).toFixed(1)} MB (no read-bandwidth kernel in this build)`);
  }
  lines.push(`load after: ${loadAfter}`);
  if (busy) lines.push(busyNote);
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

if (require.main === module) runScript('bench:engine', main);
