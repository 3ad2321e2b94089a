#!/usr/bin/env node
'use strict';
// The one executable: subcommands live in server/src/cli (compiled to dist/ by `npm run build`).
require('../dist/server/src/cli/main.js').main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code ?? 0; },
  (err) => { process.stderr.write(`${err && err.stack ? err.stack : err}\n`); process.exitCode = 1; },
);
