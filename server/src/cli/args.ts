// A small flag parser for the CLI subcommands: --name value, --name=value and
// boolean --flags; unknown flags and missing values are errors.
export class UsageError extends Error {}

export interface FlagSpec {
  /** flags that take a value */
  values: readonly string[];
  /** flags that are on or off */
  booleans: readonly string[];
}

export function parseFlags(argv: string[], spec: FlagSpec): { values: Map<string, string>; booleans: Set<string> } {
  const values = new Map<string, string>();
  const booleans = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument '${arg}'`);
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    if (spec.booleans.includes(name)) {
      if (eq > 0) throw new UsageError(`--${name} takes no value`);
      booleans.add(name);
    } else if (spec.values.includes(name)) {
      const value = eq > 0 ? arg.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      values.set(name, value);
    } else {
      throw new UsageError(`unknown option --${name}`);
    }
  }
  return { values, booleans };
}

export function numberFlag(values: Map<string, string>, name: string, def: number, opts: { integer?: boolean; min?: number; max?: number } = {}): number {
  const raw = values.get(name);
  if (raw === undefined) return def;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || (opts.integer && !Number.isInteger(n)))
    throw new UsageError(`--${name} must be ${opts.integer ? 'an integer' : 'a number'} (got '${raw}')`);
  if (opts.min !== undefined && n < opts.min) throw new UsageError(`--${name} must be >= ${opts.min} (got ${n})`);
  if (opts.max !== undefined && n > opts.max) throw new UsageError(`--${name} must be <= ${opts.max} (got ${n})`);
  return n;
}

/** `<code>: <message>` for engine errors, the message otherwise. */
export function describeError(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  return typeof e?.code === 'string' ? `${e.code}: ${message}` : message;
}
