// Loads the native addon once. TOKENSTREAM_ADDON points at another build (used
// by developers building into their own folder); the default is cmake-js's output.
import * as fs from 'node:fs';
import * as path from 'node:path';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = any;

let cached: NativeAddon | undefined;

/** The package root: works from both server/src (ts-jest) and dist/server/src (compiled). */
export function packageRoot(): string {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('tokenstream package root not found');
    dir = up;
  }
  return dir;
}

export function addonPath(): string {
  if (process.env.TOKENSTREAM_ADDON) return path.resolve(process.env.TOKENSTREAM_ADDON);
  return path.join(packageRoot(), 'native/build/Release/tokenstream.node');
}

export function loadAddon(): NativeAddon {
  if (!cached) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    cached = require(addonPath());
  }
  return cached;
}
