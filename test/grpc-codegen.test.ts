// The committed generated code and descriptor set must be exactly what `npm run gen`
// produces from proto/ now: regenerate into a temp dir and compare byte for byte.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..');
const buf = path.join(root, 'node_modules/.bin/buf');
const committed = path.join(root, 'server/src/generated');

function listFiles(dir: string, base = dir): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .flatMap((e) => (e.isDirectory() ? listFiles(path.join(dir, e.name), base) : [path.relative(base, path.join(dir, e.name))]))
    .sort();
}

test('server/src/generated is up to date with proto/ (run `npm run gen` if this fails)', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tokenstream-gen-'));
  try {
    execFileSync(buf, ['generate', 'proto', '--template', 'proto/buf.gen.yaml', '--output', tmp], { cwd: root, stdio: 'pipe' });
    const fresh = path.join(tmp, 'server/src/generated');
    execFileSync(buf, ['build', 'proto', '-o', path.join(fresh, 'descriptor.binpb')], { cwd: root, stdio: 'pipe' });

    const expected = listFiles(fresh);
    expect(expected).toContain('tokenstream/v1/tokenstream.ts');
    expect(expected).toContain('descriptor.binpb');
    expect(listFiles(committed)).toEqual(expected);
    for (const file of expected) {
      const a = fs.readFileSync(path.join(committed, file));
      const b = fs.readFileSync(path.join(fresh, file));
      if (!a.equals(b)) throw new Error(`${file} is stale: run \`npm run gen\``);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
