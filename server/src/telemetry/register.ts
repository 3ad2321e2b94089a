// Loaded by bin/tokenstream.js before any command: starts the OpenTelemetry SDK
// for the commands that talk gRPC, before @grpc/grpc-js is first required (the
// gRPC instrumentation patches it on load). Other commands (info, run,
// make-model, health — Docker runs health every few seconds) start nothing.
import type { TelemetryRole } from './env-config';
import { metricExportersRequested, tracingRequested } from './env-config';
import type { TelemetryHandle } from './sdk';

const ROLES: Record<string, TelemetryRole> = {
  serve: 'server',
  generate: 'client',
  chat: 'client',
};

/** Starts telemetry for `command` (argv[2]); undefined when the command has none. */
export function startTelemetryForCommand(command: string | undefined): TelemetryHandle | undefined {
  const role = command ? ROLES[command] : undefined;
  if (!role) return undefined;
  // A client with nothing to export skips loading the SDK (saves ~130 ms per run).
  if (role === 'client' && !tracingRequested() && metricExportersRequested('client').length === 0) return undefined;
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { startTelemetry } = require('./sdk') as typeof import('./sdk');
    return startTelemetry({ role });
  } catch (err) {
    // Bad OTEL_* settings must not keep the server from serving.
    process.stderr.write(`tokenstream: telemetry disabled: ${err instanceof Error ? err.message : String(err)}\n`);
    return undefined;
  }
}
