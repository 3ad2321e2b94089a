// `tokenstream bench-load --streams 8 --duration 10`: a load generator against a
// running server (client/src/load-generator.ts): prints TTFT, inter-token latency
// and tokens/s, optionally as JSON and as an SVG or HTML latency chart.
import * as fs from 'node:fs';
import { LoadError, runLoad, type LatencySummary, type LoadResult } from '../../../client/src/load-generator';
import { chartFormatFor, renderLatencyHtml, renderLatencySvg } from '../../../client/src/latency-chart';
import { helpText, parseFlagsOnly, UsageError, type OptionSpec } from './options';

const OPTIONS: OptionSpec[] = [
  { name: 'address', env: 'TOKENSTREAM_SERVER', kind: 'string', default: '127.0.0.1:50051', arg: 'HOST:PORT', help: 'the tokenstream server' },
  { name: 'server', kind: 'string', arg: 'HOST:PORT', help: 'the same as --address (as generate and chat spell it)' },
  { name: 'streams', kind: 'int', default: 8, arg: 'N', help: 'generations kept in flight, each on its own Generate stream' },
  { name: 'duration', kind: 'number', default: 10, arg: 'S', help: 'seconds to keep starting generations (then the ones in flight finish)' },
  { name: 'max-tokens', kind: 'int', default: 64, arg: 'N', help: 'tokens per generation' },
  { name: 'prompt', kind: 'string', arg: 'TEXT', help: 'the prompt of every generation (default: a fixed short English text)' },
  { name: 'model', kind: 'string', arg: 'NAME', help: "a model the server serves (default: the server's default model)" },
  { name: 'stop-at-eos', kind: 'boolean', help: 'let generations end at end-of-generation tokens (default: ignore them, so each yields --max-tokens)' },
  { name: 'sample', kind: 'boolean', help: 'sample with the server defaults instead of greedy decoding' },
  { name: 'complete', kind: 'boolean', help: 'one Complete call per generation instead of Generate streams' },
  { name: 'json', kind: 'boolean', help: 'print the result as JSON (without the raw samples unless --samples)' },
  { name: 'samples', kind: 'boolean', help: 'with --json: include every TTFT and ITL sample' },
  { name: 'chart', kind: 'string', arg: 'FILE', help: 'write the latency distributions to FILE.svg or FILE.html' },
  { name: 'connect-timeout', kind: 'number', default: 5, arg: 'S', help: 'give up when the server does not answer within S seconds' },
  { name: 'quiet', kind: 'boolean', help: 'no progress line on stderr' },
];

const USAGE = `Usage: tokenstream bench-load [options]

Keeps --streams generations in flight against a running tokenstream server for
--duration seconds, then reports time to first token (TTFT), inter-token latency
(ITL) p50/p95/p99, tokens/s and errors. Progress goes to stderr once a second.

Examples:
  tokenstream bench-load --address 127.0.0.1:50051 --streams 8 --duration 10
  tokenstream bench-load --streams 16 --max-tokens 128 --chart latency.html
  tokenstream bench-load --duration 5 --json > load.json`;

function fail(message: string): number {
  process.stderr.write(`tokenstream bench-load: ${message}\n\n${helpText(USAGE, OPTIONS)}`);
  return 2;
}

export async function benchLoadCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseFlagsOnly(argv, OPTIONS);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    return fail(err.message);
  }
  if (parsed.help) {
    process.stdout.write(helpText(USAGE, OPTIONS));
    return 0;
  }
  const v = parsed.values;
  const streams = v.streams as number;
  const duration = v.duration as number;
  const maxTokens = v['max-tokens'] as number;
  const connectTimeout = v['connect-timeout'] as number;
  if (streams < 1 || streams > 4096) return fail(`--streams must be 1 .. 4096 (got ${streams})`);
  if (!(duration > 0) || duration > 86_400) return fail(`--duration must be > 0 and at most 86400 seconds (got ${duration})`);
  if (maxTokens < 1) return fail(`--max-tokens must be >= 1 (got ${maxTokens})`);
  if (!(connectTimeout > 0)) return fail(`--connect-timeout must be > 0 (got ${connectTimeout})`);
  if (v.samples && !v.json) return fail('--samples only goes with --json');
  const chart = v.chart as string | undefined;
  const format = chart === undefined ? undefined : chartFormatFor(chart);
  if (chart !== undefined && !format) return fail(`--chart: the file name must end in .svg or .html (got '${chart}')`);
  const explicitAddress = argv.some((a) => a === '--address' || a.startsWith('--address='));
  if (v.server !== undefined && explicitAddress && v.server !== v.address) return fail('give the server with --address or --server, not both');
  const address = (v.server as string | undefined) ?? (v.address as string);

  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  const progress = !v.quiet;
  let result: LoadResult;
  try {
    result = await runLoad({
      address,
      streams,
      durationMs: duration * 1000,
      maxTokens,
      prompt: v.prompt as string | undefined,
      model: v.model as string | undefined,
      ignoreEos: !v['stop-at-eos'],
      greedy: !v.sample,
      api: v.complete ? 'complete' : 'generate',
      connectTimeoutMs: connectTimeout * 1000,
      signal: controller.signal,
      onProgress: progress
        ? (p) =>
            process.stderr.write(
              `[${(p.elapsedMs / 1000).toFixed(0).padStart(3)} s] ${p.completed} done, ${p.inFlight} in flight, ` +
                `${p.tokens} tokens, ${p.tokensPerSecond.toFixed(1)} tokens/s${p.errors ? `, ${p.errors} errors` : ''}\n`,
            )
        : undefined,
    });
  } catch (err) {
    if (!(err instanceof LoadError)) throw err;
    process.stderr.write(`tokenstream bench-load: ${err.message}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
  }

  if (v.json) {
    const out: Partial<LoadResult> = { ...result };
    if (!v.samples) {
      delete out.ttftSamples;
      delete out.itlSamples;
    }
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(report(result));
  }
  if (chart && format) {
    try {
      fs.writeFileSync(chart, format === 'svg' ? renderLatencySvg(result) : renderLatencyHtml(result));
    } catch (err) {
      process.stderr.write(`tokenstream bench-load: cannot write ${chart}: ${(err as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`tokenstream bench-load: wrote ${chart}\n`);
  }
  // Failed generations, or nothing finished at all: not a clean run.
  return result.completed > 0 && Object.keys(result.errors).length === 0 ? 0 : 1;
}

const ms = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const line = (name: string, s: LatencySummary): string =>
  `${name.padEnd(6)} p50 ${ms(s.p50)}  p95 ${ms(s.p95)}  p99 ${ms(s.p99)}  max ${ms(s.max)}  mean ${ms(s.mean)} ms  (${s.count} samples)\n`;

/** The human-readable report. */
export function report(r: LoadResult): string {
  const errors = Object.entries(r.errors);
  return (
    `tokenstream bench-load: ${r.address ?? ''}${r.model ? ` model ${r.model}` : ''}, ${r.streams} streams, ${r.maxTokens ?? '?'} tokens per generation` +
    `${r.aborted ? ' (interrupted)' : ''}\n` +
    `requests  ${r.requests} (${r.completed} completed) in ${(r.durationMs / 1000).toFixed(2)} s\n` +
    `tokens    ${r.tokens} (${r.tokensPerSecond.toFixed(1)} tokens/s${r.messages ? `, ${(r.tokens / r.messages).toFixed(2)} tokens per message` : ''})\n` +
    line('TTFT', r.ttftMs) +
    line('ITL', r.itlMs) +
    `errors    ${errors.length === 0 ? 'none' : errors.map(([k, n]) => `${k} ${n}`).join(', ')}\n`
  );
}
