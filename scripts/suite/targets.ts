// The performance targets of issue 6 as table rows, built from the JSON the
// individual benches print (bench-engine, bench-service, bench-memory,
// bench-startup), and the one table `npm run bench` prints. Pure functions:
// the numbers in, rows and text out.
import * as path from 'node:path';
import type { EngineNumbers } from '../peer/bench-types';

/** bench-engine --json, plus what the suite adds: the read bandwidth (measured beside the decode runs) and the weight bytes one decode step reads. */
export interface EngineResult {
  model: string;
  threads: number;
  ours: EngineNumbers;
  llamacpp: EngineNumbers | null;
  ratio: EngineNumbers | null;
  /** GB/s with `threads` threads (null: no bandwidth kernel in this build) */
  bandwidth_gbs: number | null;
  bytes_per_token: number;
}

/** bench-service --json (one entry per model; the fields the targets use). */
export interface ServiceResult {
  model: string;
  threads: number;
  tokens: number;
  uptime: string;
  results: Array<{ streams: number; engine_tps: number; service_tps: number; ratio: number; latency_p99_ms: number }>;
}

/** bench-memory --json (the fields the targets use). */
export interface MemoryResult {
  model: string;
  results: Array<{
    workers: number;
    file_mb: number;
    kv_cache_mb: number;
    beyond_weights_mb: number;
    /** RSS - resident weights - resident KV caches, at the end */
    overhead_mb: number;
    kv_resident_mb: number;
    growth_mb: number;
    samples: Array<{ requests: number; rss_mb: number }>;
  }>;
}

/** bench-startup --json (the fields the targets use). */
export interface StartupResult {
  model: string;
  results: Array<{ variant: string; best_first_token_ms: number; median_first_token_ms: number }>;
}

export interface SuiteResults {
  engine: EngineResult[];
  service: ServiceResult[];
  memory: MemoryResult | null;
  startup: StartupResult | null;
}

/** One row of the targets table. `reference` is llama.cpp's figure, or what the row names as its reference. */
export interface TargetRow {
  /** issue 6 target number, 1..6 */
  target: number;
  measure: string;
  model: string;
  unit: string;
  ours: number | null;
  reference: number | null;
  /** what `reference` is ("llama.cpp", "engine alone", or null) */
  reference_kind: string | null;
  /** ours / reference (a ratio, "x"), or a fraction (shown as %) */
  ratio: number | null;
  ratio_kind: 'ratio' | 'fraction' | null;
  goal: string;
  /** null: not measured (e.g. no peer, no bandwidth kernel) */
  met: boolean | null;
}

/** What the targets ask for (issue 6). */
export const GOALS = {
  bandwidthFraction: 0.9,
  decodeVsLlama: 1.3,
  promptVsLlama: 1.0,
  batchVsLlama: 2.0,
  serviceFraction: 0.95,
  addedP99Ms: 1,
  overheadMb: 100,
  /** "flat over 10 000 requests": growth after the first sample */
  growthMb: 10,
  firstTokenMs: 1000,
} as const;

const name = (file: string): string => path.basename(file).replace(/\.gguf$/i, '');

function vs(ours: number | undefined, ref: number | undefined | null): number | null {
  if (ours === undefined || ref === undefined || ref === null || !(ref > 0)) return null;
  return ours / ref;
}

function atLeast(x: number | null, goal: number): boolean | null {
  return x === null ? null : x >= goal;
}

/** Rows 1-3 for one model's engine run. */
export function engineRows(e: EngineResult): TargetRow[] {
  const m = name(e.model);
  const peer = e.llamacpp;
  const rows: TargetRow[] = [];
  const fraction = e.bandwidth_gbs ? (e.bytes_per_token * e.ours.tg_tps) / (e.bandwidth_gbs * 1e9) : null;
  rows.push({
    target: 1,
    measure: 'decode, batch 1: share of read bandwidth',
    model: m,
    unit: 'tok/s',
    ours: e.ours.tg_tps,
    reference: null,
    reference_kind: null,
    ratio: fraction,
    ratio_kind: fraction === null ? null : 'fraction',
    goal: `>= ${GOALS.bandwidthFraction * 100} % of ${e.bandwidth_gbs ? e.bandwidth_gbs.toFixed(1) : '?'} GB/s`,
    met: atLeast(fraction, GOALS.bandwidthFraction),
  });
  const llamaRow = (target: number, measure: string, ours: number | undefined, ref: number | undefined, goal: number): TargetRow => {
    const r = vs(ours, ref);
    return {
      target,
      measure,
      model: m,
      unit: 'tok/s',
      ours: ours ?? null,
      reference: ref ?? null,
      reference_kind: peer ? 'llama.cpp' : null,
      ratio: r,
      ratio_kind: r === null ? null : 'ratio',
      goal: `>= ${goal.toFixed(1)}x llama.cpp`,
      met: atLeast(r, goal),
    };
  };
  rows.push(llamaRow(1, 'decode, batch 1', e.ours.tg_tps, peer?.tg_tps, GOALS.decodeVsLlama));
  rows.push(llamaRow(2, 'prompt processing', e.ours.pp_tps, peer?.pp_tps, GOALS.promptVsLlama));
  for (const n of Object.keys(e.ours.batch_tps)) {
    rows.push(llamaRow(3, `decode, ${n} sequences`, e.ours.batch_tps[n], peer?.batch_tps[n], GOALS.batchVsLlama));
  }
  return rows;
}

/** Rows 4: service throughput against the engine alone, and the latency it adds. */
export function serviceRows(s: ServiceResult): TargetRow[] {
  const m = name(s.model);
  return s.results.flatMap((x): TargetRow[] => [
    {
      target: 4,
      measure: `service, ${x.streams} streams`,
      model: m,
      unit: 'tok/s',
      ours: x.service_tps,
      reference: x.engine_tps,
      reference_kind: 'engine alone',
      ratio: x.ratio,
      ratio_kind: 'fraction',
      goal: `>= ${GOALS.serviceFraction * 100} % of engine alone`,
      met: x.ratio >= GOALS.serviceFraction,
    },
    {
      target: 4,
      measure: `added latency p99, ${x.streams} streams`,
      model: m,
      unit: 'ms',
      ours: x.latency_p99_ms,
      reference: null,
      reference_kind: null,
      ratio: null,
      ratio_kind: null,
      goal: `< ${GOALS.addedP99Ms} ms`,
      met: x.latency_p99_ms < GOALS.addedP99Ms,
    },
  ]);
}

/** Rows 5: RSS beyond the resident weights and KV caches, and its growth over the run, per worker count. */
export function memoryRows(r: MemoryResult): TargetRow[] {
  const m = name(r.model);
  return r.results.flatMap((x): TargetRow[] => {
    const requests = x.samples.length > 0 ? x.samples[x.samples.length - 1].requests : 0;
    return [
      // Exact: the server's smaps tell the weights' and the KV caches' resident
      // pages apart from everything else (no credit for KV pages never touched).
      {
        target: 5,
        measure: `RSS - weights - KV (resident), ${x.workers} worker${x.workers > 1 ? 's' : ''}`,
        model: m,
        unit: 'MB',
        ours: x.overhead_mb,
        reference: null,
        reference_kind: null,
        ratio: null,
        ratio_kind: null,
        goal: `< ${GOALS.overheadMb} MB`,
        met: x.overhead_mb < GOALS.overheadMb,
      },
      {
        target: 5,
        measure: `RSS growth over ${requests} requests, ${x.workers} worker${x.workers > 1 ? 's' : ''}`,
        model: m,
        unit: 'MB',
        ours: x.growth_mb,
        reference: null,
        reference_kind: null,
        ratio: null,
        ratio_kind: null,
        goal: `flat (< ${GOALS.growthMb} MB)`,
        met: x.growth_mb < GOALS.growthMb,
      },
    ];
  });
}

/** Row 6: first token after process start (median of the starts). */
export function startupRows(r: StartupResult): TargetRow[] {
  const m = name(r.model);
  return r.results.map((x) => ({
    target: 6,
    measure: `first token after start${x.variant === 'plain' ? '' : ` (--${x.variant})`}, median`,
    model: m,
    unit: 'ms',
    ours: x.median_first_token_ms,
    reference: null,
    reference_kind: null,
    ratio: null,
    ratio_kind: null,
    goal: `< ${GOALS.firstTokenMs} ms`,
    met: x.median_first_token_ms < GOALS.firstTokenMs,
  }));
}

export function targetRows(r: SuiteResults): TargetRow[] {
  return [
    ...r.engine.flatMap(engineRows),
    ...r.service.flatMap(serviceRows),
    ...(r.memory ? memoryRows(r.memory) : []),
    ...(r.startup ? startupRows(r.startup) : []),
  ];
}

/** A number in a table cell: precision by unit and size. */
export function formatValue(x: number | null, unit: string): string {
  if (x === null || !Number.isFinite(x)) return '-';
  if (unit === 'ms') return x < 10 ? x.toFixed(3) : x.toFixed(0);
  if (unit === 'MB') return x.toFixed(1);
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function formatRatio(x: number | null, kind: TargetRow['ratio_kind']): string {
  if (x === null || kind === null || !Number.isFinite(x)) return '-';
  return kind === 'fraction' ? `${(x * 100).toFixed(1)} %` : `${x.toFixed(2)}x`;
}

/** Left-aligned first columns, right-aligned numbers, one space-padded line per row. */
export function renderTable(header: string[], rows: string[][], rightAligned: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (rightAligned[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The targets table: target | model | measure | ours | llama.cpp / ref | ratio / fraction | goal | met? */
export function formatTargets(rows: TargetRow[]): string {
  const cells = rows.map((r) => [
    String(r.target),
    r.model,
    r.measure,
    `${formatValue(r.ours, r.unit)} ${r.unit}`,
    r.reference === null ? '-' : `${formatValue(r.reference, r.unit)}${r.reference_kind && r.reference_kind !== 'llama.cpp' ? ` (${r.reference_kind})` : ''}`,
    formatRatio(r.ratio, r.ratio_kind),
    r.goal,
    r.met === null ? '-' : r.met ? 'yes' : 'NO',
  ]);
  return renderTable(
    ['#', 'model', 'target', 'ours', 'llama.cpp / ref', 'ratio / fraction', 'goal', 'met?'],
    cells,
    [false, false, false, true, true, true, false, false],
  );
}
