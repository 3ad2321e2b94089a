// npm run bench (scripts/bench-all.ts): a short real run of the engine part on
// the bundled tiny model (--quick, no peer), its JSON and its table; the target
// rows and their verdicts from bench results; model choice and bad arguments.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { main, parseSuiteArgs } from '../scripts/bench-all';
import { BENCH_MODELS, chooseModels } from '../scripts/suite/models';
import { formatTargets, memoryRows, serviceRows, startupRows, targetRows, type EngineResult } from '../scripts/suite/targets';
import { captureStdout } from './helpers/capture-output';
import { builtModule } from './helpers/dist';

const TINY = path.join(__dirname, '..', 'models', 'llama-2-tiny-random.gguf');

beforeAll(() => {
  builtModule('scripts/bench-engine'); // the suite runs the compiled benches
});

test('--quick --only engine --no-peer --json FILE: the table on stdout, the same as JSON in the file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-all-'));
  const file = path.join(dir, 'out.json');
  try {
    const { result, stdout } = await captureStdout(() => main(['--model', TINY, '--quick', '--only', 'engine', '--no-peer', '--threads', '1', '--json', file]));
    expect(result).toBe(0);
    const r = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(Object.keys(r)).toEqual(['machine', 'options', 'targets', 'results', 'ablation', 'uptime_after']);
    expect(r.machine.uptime).toMatch(/load average/);
    expect(r.machine.physical_cores).toBeGreaterThan(0);
    expect(r.machine.bandwidth_gbs).toBeGreaterThan(0);
    expect(r.options).toEqual({ models: [path.resolve(TINY)], quick: true, only: ['engine'], peer: false, threads: 1 });
    expect(r.results.engine).toHaveLength(1);
    const e = r.results.engine[0] as EngineResult;
    expect(Object.keys(e.ours.batch_tps)).toEqual(['16', '32']);
    expect(e.llamacpp).toBeNull();
    expect(e.bytes_per_token).toBeGreaterThan(0);
    expect(r.results.service).toEqual([]);
    expect(r.results.memory).toBeNull();
    expect(r.ablation).toBeNull();
    // One row per engine target; no peer: the llama.cpp rows are unmeasured, the bandwidth row is judged.
    expect(r.targets.map((t: { target: number; measure: string }) => `${t.target} ${t.measure}`)).toEqual([
      '1 decode, batch 1: share of read bandwidth',
      '1 decode, batch 1',
      '2 prompt processing',
      '3 decode, 16 sequences',
      '3 decode, 32 sequences',
    ]);
    expect(r.targets[0].ours).toBe(e.ours.tg_tps);
    expect(r.targets[0].ratio).toBeCloseTo((e.bytes_per_token * e.ours.tg_tps) / (e.bandwidth_gbs! * 1e9), 9);
    expect(typeof r.targets[0].met).toBe('boolean');
    expect(r.targets.slice(1).map((t: { met: unknown }) => t.met)).toEqual([null, null, null, null]);
    // The text: header with the machine and the load, then the table with the same rows.
    expect(stdout).toMatch(/machine .*physical .*logical cores/);
    expect(stdout).toMatch(/load average/);
    expect(stdout).toContain('ratio / fraction');
    expect(stdout).toContain('decode, 32 sequences');
    expect(stdout).toContain(`${e.ours.pp_tps.toFixed(0)} tok/s`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test('--json alone: stdout is exactly the JSON report', async () => {
  const { stdout } = await captureStdout(() => main(['--model', TINY, '--quick', '--only', 'engine', '--no-peer', '--threads', '1', '--json']));
  const r = JSON.parse(stdout);
  expect(r.targets).toHaveLength(5);
}, 60_000);

test('rows and verdicts of the service, memory and start-up targets', () => {
  const service = serviceRows({
    model: '/m/a.gguf',
    threads: 2,
    tokens: 64,
    uptime: '',
    results: [
      { streams: 16, engine_tps: 1000, service_tps: 960, ratio: 0.96, latency_p99_ms: 0.8 },
      { streams: 1, engine_tps: 100, service_tps: 90, ratio: 0.9, latency_p99_ms: 1.5 },
    ],
  });
  expect(service.map((r) => [r.measure, r.ratio, r.met])).toEqual([
    ['service, 16 streams', 0.96, true],
    ['added latency p99, 16 streams', null, true],
    ['service, 1 streams', 0.9, false],
    ['added latency p99, 1 streams', null, false],
  ]);
  expect(service[0].reference_kind).toBe('engine alone');
  const memory = memoryRows({
    model: '/m/a.gguf',
    results: [
      { workers: 2, file_mb: 140, kv_cache_mb: 30, beyond_weights_mb: 110, overhead_mb: 80, kv_resident_mb: 4, growth_mb: 2, samples: [{ requests: 0, rss_mb: 240 }, { requests: 10000, rss_mb: 250 }] },
      { workers: 4, file_mb: 140, kv_cache_mb: 60, beyond_weights_mb: 130, overhead_mb: 120, kv_resident_mb: 8, growth_mb: 12, samples: [{ requests: 0, rss_mb: 240 }, { requests: 10000, rss_mb: 270 }] },
    ],
  });
  expect(memory.map((r) => [r.measure, r.ours, r.met])).toEqual([
    ['RSS - weights - KV (resident), 2 workers', 80, true],
    ['RSS growth over 10000 requests, 2 workers', 2, true],
    ['RSS - weights - KV (resident), 4 workers', 120, false],
    ['RSS growth over 10000 requests, 4 workers', 12, false],
  ]);
  const startup = startupRows({ model: '/m/b.gguf', results: [{ variant: 'plain', best_first_token_ms: 700, median_first_token_ms: 1200 }] });
  expect(startup.map((r) => [r.measure, r.ours, r.met])).toEqual([['first token after start, median', 1200, false]]);
  const table = formatTargets([...service, ...memory, ...startup]);
  expect(table.split('\n')).toHaveLength(2 + 9);
  expect(table).toContain('96.0 %');
  expect(table).toContain('1000 (engine alone)');
  expect(table).toMatch(/first token after start, median\s+1200 ms\s+-\s+-\s+< 1000 ms\s+NO/);
});

test('engine rows against llama.cpp: ratios and verdicts', () => {
  const e: EngineResult = {
    model: '/m/a.gguf',
    threads: 2,
    ours: { pp_tps: 500, tg_tps: 130, batch_tps: { '16': 900, '32': 1000 } },
    llamacpp: { pp_tps: 400, tg_tps: 100, batch_tps: { '16': 400, '32': 600 } },
    ratio: null,
    bandwidth_gbs: 10,
    bytes_per_token: 70e6,
  };
  const rows = targetRows({ engine: [e], service: [], memory: null, startup: null });
  expect(rows.map((r) => [r.measure, r.ratio, r.met])).toEqual([
    ['decode, batch 1: share of read bandwidth', (70e6 * 130) / 10e9, true],
    ['decode, batch 1', 1.3, true],
    ['prompt processing', 1.25, true],
    ['decode, 16 sequences', 2.25, true],
    ['decode, 32 sequences', 1000 / 600, false],
  ]);
});

test('models: the bench models found in bench/models, missing ones named with their make-model command', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-models-'));
  try {
    const dir = path.join(root, 'bench/models');
    fs.mkdirSync(dir, { recursive: true });
    expect(() => chooseModels([], root)).toThrow(/no benchmark model .*\n.*is missing; create it with:\n  npm run make-model -- --arch llama/);
    fs.writeFileSync(path.join(dir, BENCH_MODELS[1].file), '');
    const c = chooseModels([], root);
    expect(c.found).toEqual([path.join(dir, BENCH_MODELS[1].file)]);
    expect(c.missing).toHaveLength(2);
    expect(c.missing[0]).toContain(`--out bench/models/${BENCH_MODELS[0].file}`);
    expect(() => chooseModels([path.join(dir, BENCH_MODELS[2].file)], root)).toThrow(/not found; create it with:\n  npm run make-model -- .*--embd 2048/);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('bad arguments are refused', () => {
  expect(() => parseSuiteArgs(['--model', TINY, '--only', 'engine,gpu'])).toThrow(/--only: .*got 'gpu'/);
  expect(() => parseSuiteArgs(['--model', TINY, '--threads', '0'])).toThrow(/--threads/);
  expect(() => parseSuiteArgs(['--model', TINY, '--bogus'])).toThrow(/Unknown option '--bogus'/);
  const o = parseSuiteArgs(['--model', TINY, '--json', 'x.json', '--quick']);
  expect([o.json, o.quick, o.only]).toEqual(['x.json', true, ['engine', 'service', 'memory', 'startup', 'ablation']]);
});
