// The ablation table of npm run bench (scripts/suite/ablation.ts): which
// configurations it runs on which machine, the rows and deltas it builds, and a
// short real run on the bundled tiny model (a server per configuration, load
// through gRPC). Speeds are printed, never asserted.
import * as path from 'node:path';
import { kernels } from '../server/src/engine/kernels';
import { ablationRow, ablationVariants, baselineArgs, formatAblation, meanReference, runAblation, type AblationVariant } from '../scripts/suite/ablation';
import type { LoadResult } from '../client/src/load-generator';
import { builtModule } from './helpers/dist';

const TINY = path.join(__dirname, '..', 'models', 'llama-2-tiny-random.gguf');

test('configurations: the baseline, then each optimisation off alone; equal core counts are said, not measured', () => {
  const noSmt = ablationVariants({ bestPath: 'avx512', supportedPaths: ['scalar', 'avx2', 'avx512'], physicalCores: 2, logicalCores: 2 }, 2);
  expect(noSmt.map((v) => [v.switched_off, [...Object.entries(v.env ?? {}).map(([k, x]) => `${k}=${x}`), ...v.args].join(' ')])).toEqual([
    ['-', ''],
    ['avx2 forced', 'TOKENSTREAM_CPU=avx2'],
    ['scalar forced', 'TOKENSTREAM_CPU=scalar'],
    ['logical cores (2)', ''],
    ['one sequence per step', '--max-batch-sequences 1'],
    ['read into memory', '--load read'],
    ['allocated per step', '--no-buffer-reuse'],
    ['one message per token', '--no-coalesce'],
  ]);
  expect(noSmt[3].unmeasured).toMatch(/logical = physical = 2 cores/);
  const smt = ablationVariants({ bestPath: 'avx2', supportedPaths: ['scalar', 'avx2'], physicalCores: 4, logicalCores: 8 }, 4);
  expect(smt.filter((v) => v.env?.TOKENSTREAM_CPU).map((v) => v.env!.TOKENSTREAM_CPU)).toEqual(['scalar']);
  const threads = smt.find((v) => v.switched_off.startsWith('logical'))!;
  expect([threads.optimisation, threads.args, threads.unmeasured]).toEqual(['threads = physical cores (4)', ['--threads', '8'], undefined]);
});

const load = (tps: number, p95: number): LoadResult => ({
  streams: 4,
  durationMs: 1000,
  requests: 10,
  completed: 10,
  tokens: tps,
  tokensPerSecond: tps,
  ttftMs: { count: 10, mean: 5, p50: 5, p95: 6, p99: 7, max: 8 },
  itlMs: { count: tps, mean: p95 / 2, p50: p95 / 2, p95, p99: p95 * 2, max: p95 * 3 },
  errors: {},
  ttftSamples: [],
  itlSamples: [],
  messages: tps / 2,
});

test('rows: deltas against the baseline; the table prints them with the notes', () => {
  const v = (switched_off: string, extra: Partial<AblationVariant> = {}): AblationVariant => ({ optimisation: 'x', switched_off, args: [], ...extra });
  const base = ablationRow(v('-'), { load: load(1000, 2), rssMb: 200 }, null, 'up');
  expect([base.tps_delta, base.itl_p95_delta]).toEqual([null, null]);
  const off = ablationRow(v('off', { args: ['--no-coalesce'] }), { load: load(800, 3), rssMb: 210 }, base, 'up');
  expect(off.tps_delta).toBeCloseTo(-0.2, 12);
  expect(off.itl_p95_delta).toBeCloseTo(0.5, 12);
  expect(off.config).toBe('--no-coalesce');
  const same = ablationRow(v('logical', { unmeasured: 'no SMT' }), null, base, 'up');
  expect([same.tokens_per_second, same.tps_delta, same.note]).toEqual([null, null, 'no SMT']);
  const text = formatAblation({ model: '/m/a.gguf', threads: 2, streams: 4, seconds: 3, max_tokens: 64, baseline: '--model /m/a.gguf', rows: [base, off, same], baseline_runs: [base] });
  expect(text).toContain('baseline: tokenstream serve --model a.gguf');
  expect(text).toMatch(/off\s+800\s+-20 %\s+3\.000 ms\s+\+50 %\s+6\.000 ms\s+2\.00\s+210 MB/);
  expect(text).toContain('note: x -> logical: no SMT');
});

test('mean of the baseline runs around a configuration', () => {
  expect(meanReference([{ tokens_per_second: 100, itl_p95_ms: 2 }, { tokens_per_second: 300, itl_p95_ms: null }])).toEqual({ tokens_per_second: 200, itl_p95_ms: 2 });
});

test('a short real run: one server per configuration, the baseline around each; every row measured but the unmeasurable one', async () => {
  builtModule('server/src/cli/serve');
  // One SIMD row (scalar) rather than every path this CPU has: the file stays short.
  const machine = { bestPath: 'avx2', supportedPaths: ['scalar', 'avx2'], physicalCores: 2, logicalCores: 2 };
  expect(kernels().supportedPaths()).toContain('avx2');
  const o = { model: TINY, threads: 1, streams: 2, seconds: 0.3, maxTokens: 8, prompt: 'Hello' };
  const r = await runAblation(o, machine, () => undefined);
  const variants = ablationVariants(machine, 1);
  expect(r.rows.map((x) => x.switched_off)).toEqual(variants.map((v) => v.switched_off));
  // before the first configuration, then after each measured one
  expect(r.baseline_runs).toHaveLength(1 + variants.filter((v) => v.switched_off !== '-' && !v.unmeasured).length);
  expect(r.rows[0].note).toMatch(new RegExp(`^mean of ${r.baseline_runs.length} baseline runs`));
  expect(r.rows[0].tokens_per_second).toBeCloseTo(r.baseline_runs.reduce((a, x) => a + x.tokens_per_second!, 0) / r.baseline_runs.length, 6);
  expect(r.baseline).toBe(baselineArgs(o).join(' '));
  for (const [i, row] of r.rows.entries()) {
    if (variants[i].unmeasured) {
      expect(row.tokens_per_second).toBeNull();
      continue;
    }
    expect(row.errors).toEqual({});
    expect(row.requests).toBeGreaterThan(0);
    expect(row.tokens_per_second).toBeGreaterThan(0);
    expect(row.itl_p95_ms).toBeGreaterThan(0);
    expect(row.rss_mb).toBeGreaterThan(10);
    expect(row.tokens_per_message).toBeGreaterThanOrEqual(1);
    if (row.switched_off === 'one message per token') expect(row.tokens_per_message).toBe(1);
    expect(row.uptime).toMatch(/load average/);
    if (i > 0) expect(row.tps_delta).not.toBeNull();
  }
  expect(formatAblation(r).split('\n').filter((l) => /\d MB$/.test(l))).toHaveLength(r.rows.length - 1);
}, 60_000);
