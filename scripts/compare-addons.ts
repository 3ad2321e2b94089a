// node dist/scripts/compare-addons.js --addon NAME=FILE --addon NAME=FILE [--model FILE]...
//                                     [--rounds 2] [--json] [-- bench-engine options]
//
// Engine speed of two or more builds of the addon (e.g. plain vs profile-guided,
// plain vs LTO) on the same models: bench-engine --no-peer --json runs with
// TOKENSTREAM_ADDON set to each build in turn, the order flipped every round so
// that a shared machine's changing load hits them alike; the best figure of
// the rounds is kept per measure. Prints one table per model and `uptime`.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { type OptionSpec, runScript, scriptOptions, UsageError } from '../server/src/cli/options';
import type { EngineNumbers } from './peer/bench-types';
import { uptime } from './service/child-server';
import { benchScript } from './bench-all';
import { renderTable } from './suite/targets';

export interface AddonComparison {
  model: string;
  uptime_before: string;
  uptime_after: string;
  /** build name -> best numbers over the rounds */
  results: Record<string, EngineNumbers>;
}

function runEngine(addon: string, model: string, extra: string[]): Promise<EngineNumbers> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [benchScript('bench-engine'), '--model', model, '--no-peer', '--json', ...extra], {
      env: { ...process.env, TOKENSTREAM_ADDON: addon },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve((JSON.parse(out) as { ours: EngineNumbers }).ours) : reject(new Error(`bench-engine with ${addon} exited ${code}:\n${err}`))));
  });
}

function best(a: EngineNumbers | undefined, b: EngineNumbers): EngineNumbers {
  if (!a) return b;
  const batch: Record<string, number> = {};
  for (const k of Object.keys(b.batch_tps)) batch[k] = Math.max(a.batch_tps[k] ?? 0, b.batch_tps[k]);
  return { pp_tps: Math.max(a.pp_tps, b.pp_tps), tg_tps: Math.max(a.tg_tps, b.tg_tps), batch_tps: batch };
}

export async function compareAddons(addons: Array<[string, string]>, model: string, rounds: number, extra: string[], log: (l: string) => void): Promise<AddonComparison> {
  const results: Record<string, EngineNumbers> = {};
  const before = uptime();
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? addons : [...addons].reverse();
    for (const [name, file] of order) {
      log(`  ${path.basename(model)}: ${name} (round ${r + 1}/${rounds})`);
      results[name] = best(results[name], await runEngine(file, model, extra));
    }
  }
  return { model, uptime_before: before, uptime_after: uptime(), results };
}

export function formatComparison(c: AddonComparison): string {
  const names = Object.keys(c.results);
  const first = c.results[names[0]];
  const measures: Array<[string, (e: EngineNumbers) => number]> = [
    ['pp tok/s', (e) => e.pp_tps],
    ['tg tok/s (batch 1)', (e) => e.tg_tps],
    ...Object.keys(first.batch_tps).map((k): [string, (e: EngineNumbers) => number] => [`decode tok/s, ${k} sequences`, (e) => e.batch_tps[k]]),
  ];
  const rows = measures.map(([label, get]) => [
    label,
    ...names.map((n) => get(c.results[n]).toFixed(1)),
    ...names.slice(1).map((n) => `${((get(c.results[n]) / get(first) - 1) * 100).toFixed(1)} %`),
  ]);
  const header = ['measure', ...names, ...names.slice(1).map((n) => `${n} vs ${names[0]}`)];
  return [
    `${path.basename(c.model)}   (${c.uptime_before})`,
    renderTable(header, rows, header.map((_, i) => i > 0)),
    `load after: ${c.uptime_after}`,
  ].join('\n');
}

const USAGE = 'usage: node dist/scripts/compare-addons.js --addon NAME=FILE --addon NAME=FILE --model FILE [options] [-- bench-engine options]';
const OPTIONS: OptionSpec[] = [
  { name: 'addon', kind: 'list', arg: 'NAME=FILE', help: 'a build of the addon; two or more' },
  { name: 'model', kind: 'list', arg: 'FILE', help: 'a GGUF file; one or more' },
  { name: 'rounds', kind: 'int', default: 2, min: 1, arg: 'N', help: 'rounds (the builds in flipped order each round)' },
  { name: 'json', kind: 'boolean', help: 'JSON on stdout' },
];

export async function main(argv: string[]): Promise<number> {
  const dash = argv.indexOf('--');
  const extra = dash >= 0 ? argv.slice(dash + 1) : [];
  const values = scriptOptions(USAGE, OPTIONS, dash >= 0 ? argv.slice(0, dash) : argv, (v) => v);
  if (!values) return 0;
  const addons = ((values.addon as string[] | undefined) ?? []).map((a): [string, string] => {
    const eq = a.indexOf('=');
    if (eq <= 0) throw new UsageError(`--addon NAME=FILE, got '${a}'`);
    return [a.slice(0, eq), path.resolve(a.slice(eq + 1))];
  });
  if (addons.length < 2) throw new UsageError('give at least two --addon NAME=FILE');
  const models = (values.model as string[] | undefined) ?? [];
  if (models.length === 0) throw new UsageError('give at least one --model FILE');
  const rounds = values.rounds as number;
  const log = (l: string): void => void process.stderr.write(`${l}\n`);
  const all: AddonComparison[] = [];
  for (const m of models) {
    const c = await compareAddons(addons, path.resolve(m), rounds, extra, log);
    all.push(c);
    if (!values.json) process.stdout.write(`${formatComparison(c)}\n\n`);
  }
  if (values.json) process.stdout.write(`${JSON.stringify(all)}\n`);
  return 0;
}

if (require.main === module) runScript('compare-addons', main);
