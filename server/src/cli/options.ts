// Command-line options that can also come from environment variables, with --help text.
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

function convert(s: OptionSpec, raw: string | boolean | string[]): string | number | boolean | string[] {
  if (s.kind === 'int' || s.kind === 'number') {
    const text = String(raw).trim();
    const n = Number(text);
    if (text === '' || !Number.isFinite(n) || (s.kind === 'int' && !Number.isInteger(n))) {
      throw new UsageError(`--${s.name}: expected ${s.kind === 'int' ? 'an integer' : 'a number'}, got '${raw}'`);
    }
    return n;
  }
  return raw;
}
