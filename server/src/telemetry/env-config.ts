// Which telemetry the OTEL_* environment asks for. No OpenTelemetry imports:
// register.ts decides with this whether to load the SDK at all (~130 ms).

export type TelemetryRole = 'server' | 'client';

export function list(env: NodeJS.ProcessEnv, name: string): string[] | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  return raw
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
}

function truthy(value: string | undefined): boolean {
  return value !== undefined && /^(true|1|yes|on)$/i.test(value.trim());
}

/** Whether the environment asks for traces to be exported (rules: sdk.ts header comment). */
export function tracingRequested(env: NodeJS.ProcessEnv = process.env): boolean {
  if (truthy(env.OTEL_SDK_DISABLED)) return false;
  const exporters = list(env, 'OTEL_TRACES_EXPORTER');
  if (exporters) return !(exporters.length === 1 && exporters[0] === 'none');
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim());
}

/** Metric exporters the environment asks for, for this role. */
export function metricExportersRequested(role: TelemetryRole, env: NodeJS.ProcessEnv = process.env): string[] {
  if (truthy(env.OTEL_SDK_DISABLED)) return [];
  const asked = list(env, 'OTEL_METRICS_EXPORTER');
  let names: string[];
  if (asked) names = asked.includes('none') ? [] : asked;
  else {
    names = role === 'server' ? ['prometheus'] : [];
    if (env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT?.trim()) names.push('otlp');
  }
  // Only a server has a metrics port to scrape.
  return [...new Set(names)].filter((n) => role === 'server' || n !== 'prometheus');
}

