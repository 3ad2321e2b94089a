// Runs the native GGUF reader in a child process, so a crash (segfault, abort,
// hang) shows up as a failed child instead of killing the test runner.
import { spawnSync } from 'node:child_process';
import { addonPath } from '../server/src/engine/addon';

export interface ChildResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` (plain JS; `addon` is the loaded addon, `args` its arguments) in a fresh node. */
export function runWithAddon(script: string, args: string[], timeoutMs = 20000): ChildResult {
  const prelude = 'const addon = require(process.argv[1]); const args = process.argv.slice(2);\n';
  const r = spawnSync(process.execPath, ['-e', prelude + script, addonPath(), ...args], {
    encoding: 'utf8',
    timeout: timeoutMs,
    maxBuffer: 16 << 20,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** readGgufMetadata(file) in a child: {ok: true} or {code, message} of the thrown error. */
export const READ_ONE = `
try {
  const md = addon.readGgufMetadata(args[0]);
  console.log(JSON.stringify({ ok: true, tensors: md.tensors.length }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, code: e.code, message: e.message }));
}
`;

/** readGgufMetadata on each file in turn, one JSON line per file (a crash leaves the rest missing). */
export const READ_EACH = `
for (const file of args) {
  let r;
  try {
    const md = addon.readGgufMetadata(file);
    r = { file, ok: true, tensors: md.tensors.length };
  } catch (e) {
    r = { file, ok: false, code: e.code, message: e.message };
  }
  require('fs').writeSync(1, JSON.stringify(r) + '\\n');
}
`;
