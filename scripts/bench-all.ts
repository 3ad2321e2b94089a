// npm run bench -- [--model FILE]... [--quick] [--only engine,service,memory,startup,ablation]
//                  [--json [FILE]] [--no-peer] [--threads N] [--streams N] [--seconds S]
//
// The whole benchmark suite and ONE table of the performance targets (issue 6):
//   1 decode at batch 1: share of the machine's read bandwidth, and vs llama.cpp
//   2 prompt processing, 512-token prompt, vs llama.cpp
//   3 aggregate decode with 16 and 32 sequences vs llama.cpp
//   4 service: tokens/s through gRPC vs the engine alone, added p99 latency
//   5 memory: RSS beyond weights + KV caches, and its growth over the requests
//   6 start-up: first token after process start
// followed by the ablation table (scripts/suite/ablation.ts): a baseline server,
// then each optimisation switched off alone, through the service under load.
//
// Each bench runs as its own child process (node dist/scripts/bench-*.js --json):
// engine on every model, service and memory on the first, start-up on the
// largest. Models default to the bench models of bench/README.md that exist in
// bench/models/ (a missing one is named with the make-model command that creates it).
// --quick: fewer tokens, reps and requests (a smoke run, not numbers to quote).
// --json: the same as JSON on stdout (the text goes to stderr), or into FILE.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { helpText, type OptionSpec, runScript, scriptOptions, UsageError } from '../server/src/cli/options';

import { packageRoot } from '../server/src/engine/addon';
import { readGgufMetadata } from '../server/src/engine/gguf';
import { weightBytesPerToken } from './bench-engine';
import { uptime } from './service/child-server';
import { formatAblation, runAblation, DEFAULT_PROMPT, type AblationReport } from './suite/ablation';
import { kernels } from '../server/src/engine/kernels';
import { chooseModels } from './suite/models';
import { enginePhysicalCores, formatMachine, machineInfo, type MachineInfo } from './suite/machine';
import {
  formatTargets,
  targetRows,
  type EngineResult,
  type MemoryResult,
  type ServiceResult,
  type StartupResult,
  type SuiteResults,
  type TargetRow,
} from './suite/targets';

export const PARTS = ['engine', 'service', 'memory', 'startup', 'ablation'] as const;
export type Part = (typeof PARTS)[number];

export interface SuiteOptions {
  models: string[];
  quick: boolean;
  only: Part[];
  /** null: no JSON; '-': stdout; else a file */
  json: string | null;
  peer: boolean;
  threads: number;
  /** ablation: concurrent streams */
  streams: number;
  /** ablation: seconds of load per configuration */
  seconds: number;
  /** bench models missing from bench/models (a note each) */
  missing: string[];
}

export interface SuiteReport {
  machine: MachineInfo;
  options: { models: string[]; quick: boolean; only: Part[]; peer: boolean; threads: number };
  targets: TargetRow[];
  results: SuiteResults;
  ablation: AblationReport | null;
  uptime_after: string;
}

const USAGE = 'usage: npm run bench -- [options]';
const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'list', arg: 'FILE', help: 'a GGUF file; repeat for more (default: the bench models of bench/README.md that exist)' },
  { name: 'quick', kind: 'boolean', help: 'shorter runs (a smoke test of the suite, not numbers to quote)' },
  { name: 'only', kind: 'string', default: PARTS.join(','), arg: 'PART,...', help: `parts to run, of ${PARTS.join(', ')}` },
  { name: 'json', kind: 'string', arg: '[FILE]', help: 'also write the report as JSON to FILE (no FILE: to stdout, the table to stderr)' },
  { name: 'no-peer', kind: 'boolean', help: 'measure tokenstream only (no llama.cpp)' },
  { name: 'threads', kind: 'int', min: 1, arg: 'N', help: 'engine threads (default: physical cores)' },
  { name: 'streams', kind: 'int', default: 8, min: 1, arg: 'N', help: 'concurrent streams of the ablation' },
  { name: 'seconds', kind: 'number', min: 0.001, arg: 'S', help: 'length of each ablation run (default 6, --quick 2)' },
];

export function parseSuiteArgs(argv: string[], root = packageRoot()): SuiteOptions {
  // --json takes an optional value: a following argument that is not a flag is its file.
  let json: string | null = null;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--json') {
      json = i + 1 < argv.length && !argv[i + 1].startsWith('--') ? argv[++i] : '-';
    } else if (argv[i].startsWith('--json=')) {
      json = argv[i].slice('--json='.length) || '-';
    } else {
      rest.push(argv[i]);
    }
  }
  // (--help is answered by main before this.)
  return scriptOptions(USAGE, OPTIONS, rest, (values) => {
    const quick = values.quick === true;
    const only = (values.only as string).split(',').map((p) => p.trim());
    for (const p of only) if (!(PARTS as readonly string[]).includes(p)) throw new UsageError(`--only: one or more of ${PARTS.join(', ')}; got '${p}'`);
    const choice = chooseModels((values.model as string[] | undefined) ?? [], root);
    return {
      models: choice.found,
      missing: choice.missing,
      quick,
      only: only as Part[],
      json,
      peer: values['no-peer'] !== true,
      threads: (values.threads as number | undefined) ?? enginePhysicalCores(),
      streams: values.streams as number,
      seconds: (values.seconds as number | undefined) ?? (quick ? 2 : 6),
    };
  })!;
}

/** dist/scripts/<name>.js: the benches run compiled, each in its own process. */
export function benchScript(name: string): string {
  const file = path.join(packageRoot(), 'dist/scripts', `${name}.js`);
  if (!fs.existsSync(file)) throw new Error(`${file} not found: run \`npm run build:ts\``);
  return file;
}

/** Runs a bench script with --json; its stderr (progress) goes to ours; resolves with its parsed stdout. */
export function runBenchJson<T>(name: string, args: string[]): Promise<T> {
  const script = benchScript(name);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err += d;
      process.stderr.write(d.replace(/^(?=.)/gm, `  [${name}] `));
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`${name} ${args.join(' ')} exited with ${code}:\n${err.trim().split('\n').slice(-5).join('\n')}`));
        return;
      }
      try {
        resolve(JSON.parse(out) as T);
      } catch {
        reject(new Error(`${name} printed no JSON:\n${out.slice(0, 500)}`));
      }
    });
  });
}

/** Per-part arguments: the full run, or a short one with --quick. */
export function benchArgs(o: SuiteOptions): Record<Exclude<Part, 'ablation'>, string[]> {
  const q = o.quick;
  return {
    engine: ['--prompt', '512', '--batch', '16,32', '--reps', q ? '1' : '3', '--tokens', q ? '16' : '64', '--threads', String(o.threads), ...(o.peer ? [] : ['--no-peer'])],
    service: ['--streams', q ? '16' : '1,16', '--tokens', q ? '32' : '256', '--reps', q ? '1' : '3', '--threads', String(o.threads)],
    memory: ['--workers', q ? '1' : '1,2', '--requests', q ? '1000' : '10000', '--every', q ? '500' : '1000'],
    startup: ['--reps', q ? '2' : '5', '--variants', 'plain'],
  };
}

function vocabOf(file: string): { bytes: number } {
  const md = readGgufMetadata(file);
  const t = md.tensors.find((x) => x.name === 'token_embd.weight');
  return { bytes: weightBytesPerToken(md, t ? t.dims[1] : 32000) };
}

export async function runSuite(o: SuiteOptions, log: (l: string) => void): Promise<SuiteReport> {
  const machine = machineInfo(o.threads);
  log(formatMachine(machine));
  for (const m of o.missing) log(`note: ${m}`);
  const args = benchArgs(o);
  const results: SuiteResults = { engine: [], service: [], memory: null, startup: null };
  const has = (p: Part): boolean => o.only.includes(p);
  const first = o.models[0];
  const largest = [...o.models].sort((a, b) => fs.statSync(b).size - fs.statSync(a).size)[0];
  if (has('engine')) {
    for (const m of o.models) {
      log(`engine: ${path.basename(m)} (${uptime()})`);
      const { read_bandwidth_gbs: gbs, ...r } = await runBenchJson<Omit<EngineResult, 'bandwidth_gbs' | 'bytes_per_token'> & { read_bandwidth_gbs: number | null }>('bench-engine', [
        '--model',
        m,
        ...args.engine,
      ]);
      // The ceiling read beside this model's decode runs (the VM's moves within minutes), else the suite's.
      results.engine.push({ ...r, bandwidth_gbs: gbs ?? machine.bandwidth_gbs, bytes_per_token: vocabOf(m).bytes });
    }
  }
  if (has('service')) {
    log(`service: ${path.basename(first)} (${uptime()})`);
    results.service = await runBenchJson<ServiceResult[]>('bench-service', ['--model', first, ...args.service]);
  }
  if (has('memory')) {
    log(`memory: ${path.basename(first)} (${uptime()})`);
    results.memory = await runBenchJson<MemoryResult>('bench-memory', ['--model', first, ...args.memory]);
  }
  if (has('startup')) {
    log(`start-up: ${path.basename(largest)} (${uptime()})`);
    results.startup = await runBenchJson<StartupResult>('bench-startup', ['--model', largest, ...args.startup]);
  }
  let ablation: AblationReport | null = null;
  if (has('ablation')) {
    const k = kernels();
    ablation = await runAblation(
      { model: first, threads: o.threads, streams: o.streams, seconds: o.seconds, maxTokens: o.quick ? 32 : 128, prompt: DEFAULT_PROMPT },
      { bestPath: process.env.TOKENSTREAM_CPU || k.bestPath(), supportedPaths: k.supportedPaths(), physicalCores: machine.physical_cores, logicalCores: machine.logical_cores },
      log,
    );
  }
  return {
    machine,
    options: { models: o.models, quick: o.quick, only: o.only, peer: o.peer, threads: o.threads },
    targets: targetRows(results),
    results,
    ablation,
    uptime_after: uptime(),
  };
}

/** The text report: machine and load, the targets table, the load after. */
export function formatReport(r: SuiteReport): string {
  const lines = [formatMachine(r.machine), `threads  ${r.options.threads}${r.options.quick ? '   (--quick: short runs, not numbers to quote)' : ''}`, ''];
  if (r.targets.length > 0) lines.push(formatTargets(r.targets), '');
  if (r.ablation) lines.push(formatAblation(r.ablation), '');
  lines.push(`load after: ${r.uptime_after}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(helpText(USAGE, OPTIONS));
    return 0;
  }
  const o = parseSuiteArgs(argv);
  const textOut = o.json === '-' ? process.stderr : process.stdout;
  const log = (l: string): void => {
    process.stderr.write(`${l}\n`);
  };
  const report = await runSuite(o, log);
  textOut.write(`\n${formatReport(report)}\n`);
  if (o.json !== null) {
    const text = `${JSON.stringify(report, null, 2)}\n`;
    if (o.json === '-') process.stdout.write(text);
    else fs.writeFileSync(o.json, text);
  }
  return 0;
}

if (require.main === module) runScript('bench', main);
