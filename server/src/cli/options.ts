// Command-line options that can also come from environment variables, with
// --help text: the parser of the tokenstream commands and of the scripts.
import { parseArgs } from 'node:util';

export interface OptionSpec {
  /** Long name without dashes: "max-batch". */
  name: string;
  env?: string;
  kind: 'string' | 'int' | 'number' | 'boolean' | 'list';
  default?: string | number | boolean;
  help: string;
  /** Placeholder in --help ("N", "NAME=PATH"). */
  arg?: string;
  short?: string;
  /** int / number: the allowed range (inclusive). */
  min?: number;
  max?: number;
}

export type OptionValues = Record<string, string | number | boolean | string[] | undefined>;

export class UsageError extends Error {}

export function helpText(usage: string, specs: OptionSpec[]): string {
  const rows = specs.map((s) => {
    const flag = `${s.short ? `-${s.short}, ` : ''}--${s.name}${s.kind === 'boolean' ? '' : ` ${s.arg ?? 'VALUE'}`}`;
    const extra = [s.default !== undefined ? `default ${s.default}` : '', s.env ? `env ${s.env}` : ''].filter(Boolean).join('; ');
    return [flag, `${s.help}${extra ? ` (${extra})` : ''}`];
  });
  const width = Math.max(...rows.map((r) => r[0].length)) + 2;
  return `${usage}\n\nOptions:\n${rows.map(([f, h]) => `  ${f.padEnd(width)}${h}`).join('\n')}\n  ${'-h, --help'.padEnd(width)}this text\n`;
}

/** Parses argv; a flag beats its environment variable, which beats the default. */
export function parseOptions(argv: string[], specs: OptionSpec[], env: NodeJS.ProcessEnv = process.env): { values: OptionValues; positionals: string[]; help: boolean } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const s of specs) {
    options[s.name] = { type: s.kind === 'boolean' ? 'boolean' : 'string', multiple: s.kind === 'list' };
    if (s.short) options[s.name].short = s.short;
  }
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const values: OptionValues = {};
  for (const s of specs) {
    let raw = parsed.values[s.name] as string | boolean | string[] | undefined;
    if (raw === undefined && s.env && env[s.env] !== undefined && env[s.env] !== '') {
      const e = env[s.env]!;
      raw = s.kind === 'list' ? e.split(',').map((x) => x.trim()).filter(Boolean) : s.kind === 'boolean' ? /^(1|true|yes|on)$/i.test(e) : e;
    }
    if (raw === undefined) {
      values[s.name] = s.default;
      continue;
    }
    values[s.name] = convert(s, raw);
  }
  return { values, positionals: parsed.positionals, help: parsed.values.help === true };
}

/** parseOptions for a command that takes no positional arguments. */
export function parseFlagsOnly(argv: string[], specs: OptionSpec[], env: NodeJS.ProcessEnv = process.env): { values: OptionValues; help: boolean } {
  const { values, positionals, help } = parseOptions(argv, specs, env);
  if (positionals.length > 0 && !help) throw new UsageError(`unexpected argument '${positionals[0]}'`);
  return { values, help };
}

/**
 * A script's options (the bench and tool scripts), parsed and converted; null
 * after printing the help for --help. A usage error is thrown as a UsageError
 * whose message ends with the help.
 */
export function scriptOptions<T>(usage: string, specs: OptionSpec[], argv: string[], convert: (values: OptionValues) => T): T | null {
  try {
    const { values, help } = parseFlagsOnly(argv, specs, {});
    if (!help) return convert(values);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`${e.message}\n\n${helpText(usage, specs)}`);
    throw e;
  }
  process.stdout.write(helpText(usage, specs));
  return null;
}

/** A script's entry: main's exit code; a usage error prints its message (exit 2), another error its stack (exit 1). */
export function runScript(name: string, main: (argv: string[]) => Promise<number>): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      const usage = err instanceof UsageError;
      process.stderr.write(`${name}: ${usage ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = usage ? 2 : 1;
    },
  );
}

/** Comma-separated integers >= min. */
export function intList(name: string, text: string, min = 1): number[] {
  return text.split(',').map((x) => {
    const n = Number(x.trim());
    if (x.trim() === '' || !Number.isInteger(n) || n < min) throw new UsageError(`--${name}: expected integers >= ${min}, got '${x}'`);
    return n;
  });
}

/** A required string option's value. */
export function required(values: OptionValues, name: string): string {
  const v = values[name];
  if (v === undefined || v === '') throw new UsageError(`--${name} is required`);
  return String(v);
}

/** `<code>: <message>` for engine errors, the message otherwise. */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return typeof e?.code === 'string' ? `${e.code}: ${message}` : message;
}

function convert(s: OptionSpec, raw: string | boolean | string[]): string | number | boolean | string[] {
  if (s.kind === 'int' || s.kind === 'number') {
    const text = String(raw).trim();
    const n = Number(text);
    if (text === '' || !Number.isFinite(n) || (s.kind === 'int' && !Number.isInteger(n))) {
      throw new UsageError(`--${s.name}: expected ${s.kind === 'int' ? 'an integer' : 'a number'}, got '${raw}'`);
    }
    if (s.min !== undefined && n < s.min) throw new UsageError(`--${s.name}: must be >= ${s.min}, got ${n}`);
    if (s.max !== undefined && n > s.max) throw new UsageError(`--${s.name}: must be <= ${s.max}, got ${n}`);
    return n;
  }
  return raw;
}
