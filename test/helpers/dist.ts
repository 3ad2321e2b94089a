// Tests that run real processes (the CLI, exporters that need Node's own module
// loader) use the compiled output in dist/. Fail clearly when it is missing or
// older than its source, instead of testing stale code.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..');

/** Absolute path of dist/<rel>.js for source <rel>.ts; throws if not built or stale. */
export function builtModule(rel: string): string {
  const source = path.join(ROOT, `${rel}.ts`);
  const built = path.join(ROOT, 'dist', `${rel}.js`);
  if (!fs.existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
  if (fs.existsSync(source) && fs.statSync(source).mtimeMs > fs.statSync(built).mtimeMs) {
    throw new Error(`${built} is older than ${source}: run \`npm run build\` first`);
  }
  return built;
}
