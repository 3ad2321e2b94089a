// The package version, for instrumentation scopes and service.version.
import * as fs from 'node:fs';
import * as path from 'node:path';

let cached: string | undefined;

export function readPackageVersion(): string {
  if (cached !== undefined) return cached;
  cached = '0.0.0';
  // server/src/telemetry (ts-jest) or dist/server/src/telemetry (compiled): walk up to package.json.
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      try {
        const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === 'tokenstream' && pkg.version) cached = pkg.version;
      } catch {
        // keep the fallback
      }
      break;
    }
    dir = path.dirname(dir);
  }
  return cached;
}
