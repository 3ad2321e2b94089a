#!/usr/bin/env node
'use strict';
// The one executable: subcommands live in server/src/cli (compiled to dist/ by `npm run build`).
// Telemetry (OTEL_* environment variables) starts before any command loads, so the gRPC
// instrumentation can patch @grpc/grpc-js; it is flushed before the process exits.
// A server keeps its V8 heap small (server/src/engine/heap.ts); set before anything allocates.
// And its malloc arenas few (server/src/engine/malloc.ts), before any engine worker thread starts.
if (process.argv[2] === 'serve') {
  require('../dist/server/src/engine/heap.js').tuneHeapForServing();
  try {
    require('../dist/server/src/engine/malloc.js').tuneMallocForServing();
  } catch {
    // No addon yet: serve reports that when it loads a model.
  }
}
const telemetry = require('../dist/server/src/telemetry/register.js').startTelemetryForCommand(process.argv[2]);

function flushTelemetry() {
  if (!telemetry) return Promise.resolve();
  // An unreachable collector must not hold the exit for long.
  return Promise.race([telemetry.shutdown(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
}

require('../dist/server/src/cli/main.js').main(process.argv.slice(2)).then(
  async (code) => {
    await flushTelemetry();
    process.exitCode = code ?? 0;
  },
  async (err) => {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    await flushTelemetry();
    process.exitCode = 1;
  },
);
