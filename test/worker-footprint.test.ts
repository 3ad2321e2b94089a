// An engine worker thread loads only what its loop needs: the addon's wrappers,
// the step ring and protocol, and the two stream helpers over the main thread's
// piece table. Not the tokenizer (its vocabulary, encoders and the Jinja chat
// templates), gRPC, protobuf or OpenTelemetry: each module a worker loads is
// code and data in every worker's V8 heap (bench:memory, per worker).
import * as fs from 'node:fs';
import * as path from 'node:path';

const SRC = path.join(__dirname, '..', 'server', 'src');

/** Modules loaded at run time from `file` (type-only imports are erased), transitively. */
function runtimeImports(file: string, seen = new Map<string, string[]>()): Map<string, string[]> {
  if (seen.has(file)) return seen;
  const text = fs.readFileSync(file, 'utf8');
  const found: string[] = [];
  seen.set(file, found);
  for (const m of text.matchAll(/^import\s+(type\s+)?(?:[^'"]*?\s+from\s+)?'([^']+)';/gm)) {
    if (m[1]) continue;
    const spec = m[2];
    if (!spec.startsWith('.')) {
      found.push(spec);
      continue;
    }
    const base = path.resolve(path.dirname(file), spec);
    const target = fs.existsSync(`${base}.ts`) ? `${base}.ts` : path.join(base, 'index.ts');
    found.push(path.relative(SRC, target));
    runtimeImports(target, seen);
  }
  for (const m of text.matchAll(/require\('([^']+)'\)/g)) found.push(m[1]);
  return seen;
}

test('the engine worker loads no tokenizer, gRPC, protobuf or OpenTelemetry code', () => {
  const graph = runtimeImports(path.join(SRC, 'engine', 'worker.ts'));
  const loaded = new Set([...graph.values()].flat());
  const local = [...graph.keys()].map((f) => path.relative(SRC, f)).sort();
  expect(local).toEqual([
    'engine/addon.ts',
    'engine/model.ts',
    'engine/step-ring.ts',
    'engine/worker-protocol.ts',
    'engine/worker.ts',
    'telemetry/clock.ts',
    'tokenizer/piece-table.ts',
    'tokenizer/stop-matcher.ts',
    'tokenizer/stream-decoder.ts',
  ]);
  const packages = [...loaded].filter((m) => !m.includes('/') || m.startsWith('@')).filter((m) => !m.startsWith('node:'));
  expect(packages).toEqual([]);
});
