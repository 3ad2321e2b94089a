// The ablation table of `npm run bench`: a baseline server, then the same server
// with one optimisation switched off at a time, each measured through the
// service under the same load (client/src/load-generator.ts: N concurrent
// streams of greedy generations for a few seconds) for throughput and p95
// inter-token latency. Each configuration is a fresh `tokenstream serve` child
// process (scripts/service/child-server.ts) with the switch as a flag or
// environment variable; one short generation per stream warms it up first.
// The baseline runs again after every configuration and each configuration is
// compared with the baseline runs on either side of it (see runAblation).
//
// Switches: SIMD level (TOKENSTREAM_CPU=avx2 / scalar instead of the best path),
// threads (logical instead of physical cores; said so when they are equal),
// batching (--max-batch-sequences 1), mmap (--load read), activation buffer
// reuse (--no-buffer-reuse), token coalescing (--no-coalesce).
import * as path from 'node:path';
import { runLoad as defaultRunLoad, type LoadOptions, type LoadResult } from '../../client/src/load-generator';
import { TokenStreamClient } from '../../client/src/client';
import { ChildServer, processMemory, uptime } from '../service/child-server';
import { formatValue, renderTable } from './targets';

export interface AblationVariant {
  /** the optimisation, as it is in the baseline */
  optimisation: string;
  /** what replaces it in this configuration ("-" for the baseline) */
  switched_off: string;
  args: string[];
  env?: Record<string, string>;
  /** set when there is nothing to measure on this machine (the reason) */
  unmeasured?: string;
}

export interface AblationRow {
  optimisation: string;
  switched_off: string;
  /** serve options / environment of this configuration beyond the baseline's */
  config: string;
  tokens_per_second: number | null;
  /** relative to the baseline: (this - baseline) / baseline */
  tps_delta: number | null;
  itl_p95_ms: number | null;
  itl_p95_delta: number | null;
  ttft_p95_ms: number | null;
  /** server RSS at the end of the load (MB) */
  rss_mb: number | null;
  /** tokens per message received (above 1: the server merged tokens) */
  tokens_per_message: number | null;
  requests: number;
  errors: Record<string, number>;
  note: string | null;
  uptime: string;
}

export interface AblationOptions {
  model: string;
  threads: number;
  streams: number;
  seconds: number;
  maxTokens: number;
  prompt: string;
}

export interface AblationReport {
  model: string;
  threads: number;
  streams: number;
  seconds: number;
  max_tokens: number;
  baseline: string;
  rows: AblationRow[];
  /** each run of the baseline configuration, in order */
  baseline_runs: AblationRow[];
}

export interface MachineShape {
  /** the kernel path the engine picks */
  bestPath: string;
  /** every path this CPU runs ('scalar' first) */
  supportedPaths: string[];
  physicalCores: number;
  logicalCores: number;
}

export const DEFAULT_PROMPT = 'The history of the printing press begins in the fifteenth century, when';

/** The baseline first, then one configuration per optimisation switched off. */
export function ablationVariants(m: MachineShape, threads: number): AblationVariant[] {
  const v: AblationVariant[] = [{ optimisation: 'baseline (everything on)', switched_off: '-', args: [] }];
  const simd = `SIMD kernels (${m.bestPath})`;
  for (const p of ['avx512', 'avx2', 'scalar']) {
    if (p === m.bestPath || !m.supportedPaths.includes(p)) continue;
    v.push({ optimisation: simd, switched_off: `${p} forced`, args: [], env: { TOKENSTREAM_CPU: p } });
  }
  const physical = `threads = physical cores (${threads})`;
  if (m.logicalCores === m.physicalCores) {
    v.push({
      optimisation: physical,
      switched_off: `logical cores (${m.logicalCores})`,
      args: [],
      unmeasured: `logical = physical = ${m.physicalCores} cores on this machine (no SMT): the same configuration`,
    });
  } else {
    v.push({ optimisation: physical, switched_off: `logical cores (${m.logicalCores})`, args: ['--threads', String(m.logicalCores)] });
  }
  v.push({ optimisation: 'continuous batching', switched_off: 'one sequence per step', args: ['--max-batch-sequences', '1'] });
  v.push({ optimisation: 'weights mmap-ed', switched_off: 'read into memory', args: ['--load', 'read'] });
  v.push({ optimisation: 'activation buffer reuse', switched_off: 'allocated per step', args: ['--no-buffer-reuse'] });
  v.push({ optimisation: 'token coalescing', switched_off: 'one message per token', args: ['--no-coalesce'] });
  return v;
}

/** serve options of the baseline (the variants add theirs). */
export function baselineArgs(o: AblationOptions): string[] {
  return ['--model', o.model, '--workers', '1', '--threads', String(o.threads), '--max-batch', String(o.streams), '--context', '1024', '--metrics-port', 'off'];
}

function describe(v: AblationVariant): string {
  const env = Object.entries(v.env ?? {}).map(([k, x]) => `${k}=${x}`);
  return [...env, ...v.args].join(' ') || '-';
}

/**
 * Warm-up: one short generation per stream, all at once, each to its end (a
 * time-bounded load would leave generations running into the measurement).
 */
async function warmUp(address: string, o: AblationOptions): Promise<void> {
  const client = new TokenStreamClient(address);
  try {
    await Promise.all(Array.from({ length: o.streams }, () => client.complete({ prompt: o.prompt, params: { maxTokens: 4, temperature: 0, ignoreEos: true } }).result));
  } finally {
    client.close();
  }
}

/** One configuration: start the server, warm up, measure, note its RSS, stop it. */
async function measureVariant(o: AblationOptions, v: AblationVariant, runLoad: (l: LoadOptions) => Promise<LoadResult>): Promise<Measurement> {
  const server = new ChildServer({ args: [...baselineArgs(o), ...v.args], env: v.env });
  try {
    const address = await server.listening;
    await server.serving;
    await warmUp(address, o);
    // The generations still running at the end get as long again to finish (then they are cancelled).
    const load = await runLoad({
      address,
      streams: o.streams,
      durationMs: o.seconds * 1000,
      drainTimeoutMs: o.seconds * 1000,
      maxTokens: o.maxTokens,
      prompt: o.prompt,
      ignoreEos: true,
      greedy: true,
    });
    return { load, rssMb: processMemory(server.pid).rss / (1024 * 1024) };
  } finally {
    await server.stop();
  }
}

/** What a row's deltas are taken against. */
export interface Reference {
  tokens_per_second: number | null;
  itl_p95_ms: number | null;
}

type Measurement = { load: LoadResult; rssMb: number };

/** Builds a row from a measurement (null: unmeasured) against the reference (null: this is the baseline). */
export function ablationRow(v: AblationVariant, m: Measurement | null, ref: Reference | null, up: string): AblationRow {
  const rel = (x: number | null, b: number | null | undefined): number | null => (x === null || !b ? null : (x - b) / b);
  const tps = m ? m.load.tokensPerSecond : null;
  const itl = m && m.load.itlMs.count > 0 ? m.load.itlMs.p95 : null;
  return {
    optimisation: v.optimisation,
    switched_off: v.switched_off,
    config: describe(v),
    tokens_per_second: tps,
    tps_delta: ref ? rel(tps, ref.tokens_per_second) : null,
    itl_p95_ms: itl,
    itl_p95_delta: ref ? rel(itl, ref.itl_p95_ms) : null,
    ttft_p95_ms: m && m.load.ttftMs.count > 0 ? m.load.ttftMs.p95 : null,
    rss_mb: m ? m.rssMb : null,
    tokens_per_message: m && m.load.messages ? m.load.tokens / m.load.messages : null,
    requests: m ? m.load.requests : 0,
    errors: m ? m.load.errors : {},
    note: v.unmeasured ?? null,
    uptime: up,
  };
}

/** The mean of the baseline runs' figures (nulls left out). */
export function meanReference(rows: Reference[]): Reference {
  const mean = (xs: Array<number | null>): number | null => {
    const v = xs.filter((x): x is number => x !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  return { tokens_per_second: mean(rows.map((r) => r.tokens_per_second)), itl_p95_ms: mean(rows.map((r) => r.itl_p95_ms)) };
}

/**
 * Runs the configurations. The baseline is measured before the first
 * configuration and again after each one; a configuration's deltas are taken
 * against the mean of the baseline runs just before and after it, so a shared
 * machine's drifting load shows less as an effect. The first server only warms
 * up this process (the load generator's code); its numbers are dropped. The
 * baseline row gives the mean of all baseline runs, their spread in its note.
 */
export async function runAblation(
  o: AblationOptions,
  machine: MachineShape,
  log: (l: string) => void,
  runLoad: (l: LoadOptions) => Promise<LoadResult> = defaultRunLoad,
): Promise<AblationReport> {
  const [baseVariant, ...others] = ablationVariants(machine, o.threads);
  const fmt = (r: AblationRow): string => {
    const errs = Object.entries(r.errors).map(([k, n]) => `${k}: ${n}`).join(', ');
    return `${formatValue(r.tokens_per_second, 'tok/s')} tok/s, p95 ITL ${formatValue(r.itl_p95_ms, 'ms')} ms, ${r.requests} requests${errs ? `, errors ${errs}` : ''}`;
  };
  const measure = async (v: AblationVariant, ref: Reference | null): Promise<AblationRow> => {
    const up = uptime();
    log(`ablation: ${v.optimisation} -> ${v.switched_off} (${describe(v)}); ${up}`);
    const row = ablationRow(v, await measureVariant(o, v, runLoad), ref, up);
    log(`  ${fmt(row)}`);
    return row;
  };
  log('ablation: warming up the load generator (not counted)');
  await measureVariant(o, baseVariant, runLoad);
  const baselines: AblationRow[] = [await measure(baseVariant, null)];
  const rows: AblationRow[] = [];
  for (const v of others) {
    if (v.unmeasured) {
      log(`ablation: ${v.optimisation} -> ${v.switched_off}: ${v.unmeasured}`);
      rows.push(ablationRow(v, null, null, uptime()));
      continue;
    }
    const m = await measureVariant(o, v, runLoad).then((x) => ({ x, up: uptime() }));
    const before = baselines[baselines.length - 1];
    const after = await measure(baseVariant, null);
    baselines.push(after);
    const row = ablationRow(v, m.x, meanReference([before, after]), m.up);
    log(`ablation: ${v.optimisation} -> ${v.switched_off} (${describe(v)}): ${fmt(row)}`);
    rows.push(row);
  }
  const mean = meanReference(baselines);
  const spread = (get: (r: AblationRow) => number | null, unit: string): string => {
    const xs = baselines.map(get).filter((x): x is number => x !== null);
    return xs.length ? `${formatValue(Math.min(...xs), unit)}-${formatValue(Math.max(...xs), unit)}` : '-';
  };
  const baseRow: AblationRow = {
    ...baselines[0],
    tokens_per_second: mean.tokens_per_second,
    itl_p95_ms: mean.itl_p95_ms,
    requests: baselines.reduce((a, r) => a + r.requests, 0),
    note: `mean of ${baselines.length} baseline runs (one before the first configuration and one after each): tok/s ${spread((r) => r.tokens_per_second, 'tok/s')}, p95 ITL ${spread((r) => r.itl_p95_ms, 'ms')} ms`,
  };
  return {
    model: o.model,
    threads: o.threads,
    streams: o.streams,
    seconds: o.seconds,
    max_tokens: o.maxTokens,
    baseline: baselineArgs(o).join(' '),
    rows: [baseRow, ...rows],
    baseline_runs: baselines,
  };
}

function delta(x: number | null): string {
  if (x === null || !Number.isFinite(x)) return '-';
  const pct = x * 100;
  return `${pct >= 0 ? '+' : ''}${pct.toFixed(pct !== 0 && Math.abs(pct) < 10 ? 1 : 0)} %`;
}

/** optimisation | switched off | tok/s | Δ | p95 ITL | Δ | p95 TTFT | tokens per message | RSS, then the notes. */
export function formatAblation(r: AblationReport): string {
  const cells = r.rows.map((x) => [
    x.optimisation,
    x.switched_off,
    formatValue(x.tokens_per_second, 'tok/s'),
    delta(x.tps_delta),
    x.itl_p95_ms === null ? '-' : `${formatValue(x.itl_p95_ms, 'ms')} ms`,
    delta(x.itl_p95_delta),
    x.ttft_p95_ms === null ? '-' : `${formatValue(x.ttft_p95_ms, 'ms')} ms`,
    x.tokens_per_message === null ? '-' : x.tokens_per_message.toFixed(2),
    x.rss_mb === null ? '-' : `${x.rss_mb.toFixed(0)} MB`,
  ]);
  const table = renderTable(
    ['optimisation', 'switched off', 'tok/s', 'Δ', 'p95 ITL', 'Δ', 'p95 TTFT', 'tok/msg', 'server RSS'],
    cells,
    [false, false, true, true, true, true, true, true, true],
  );
  const notes = r.rows.filter((x) => x.note).map((x) => `note: ${x.switched_off === '-' ? x.optimisation : `${x.optimisation} -> ${x.switched_off}`}: ${x.note}`);
  const errors = r.rows
    .filter((x) => Object.keys(x.errors).length > 0)
    .map((x) => `errors with ${x.switched_off}: ${Object.entries(x.errors).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  return [
    `ablation: ${path.basename(r.model)}, ${r.streams} streams × ${r.seconds} s of greedy generations of up to ${r.max_tokens} tokens through gRPC, each configuration a fresh server`,
    `baseline: tokenstream serve ${r.baseline.replace(r.model, path.basename(r.model))}`,
    '',
    table,
    ...notes,
    ...errors,
  ].join('\n');
}
