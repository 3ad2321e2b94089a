// The benchmark peer: llama.cpp through node-llama-cpp, pinned. It is not a
// project dependency (with its GPU variants it weighs ~730 MB): the bench
// installs it on first use into bench/peer/ (gitignored), with its own
// package.json, and loads it from there.
//
// Only the CPU prebuilt binary for this platform is installed next to the
// package (`--omit=optional` plus the one @node-llama-cpp/<platform> package),
// which keeps the folder around 85 MB; NODE_LLAMA_CPP_SKIP_DOWNLOAD keeps its
// postinstall from fetching or building llama.cpp. Run alone with
//   node dist/scripts/peer/install.js
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

import { packageRoot } from '../../server/src/engine/addon';

export const PEER_PACKAGE = 'node-llama-cpp';
export const PEER_VERSION = '3.21.1';

/** The prebuilt-binary package node-llama-cpp uses for CPU inference here, if it ships one. */
export function prebuiltBinaryPackage(platform = process.platform, arch = process.arch): string | null {
  const name: Record<string, string> = {
    'linux-x64': 'linux-x64',
    'linux-arm64': 'linux-arm64',
    'linux-arm': 'linux-armv7l',
    'darwin-arm64': 'mac-arm64-metal',
    'darwin-x64': 'mac-x64',
    'win32-x64': 'win-x64',
    'win32-arm64': 'win-arm64',
  };
  const key = `${platform}-${arch}`;
  return key in name ? `@node-llama-cpp/${name[key]}` : null;
}

export function peerDir(root: string): string {
  return path.join(root, 'bench', 'peer');
}

function installedVersion(dir: string, pkg: string): string | null {
  try {
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'node_modules', pkg, 'package.json'), 'utf8'));
    return typeof json.version === 'string' ? json.version : null;
  } catch {
    return null;
  }
}

/** True when bench/peer holds the pinned version with its binary. */
export function peerInstalled(root: string): boolean {
  const dir = peerDir(root);
  const binary = prebuiltBinaryPackage();
  return (
    installedVersion(dir, PEER_PACKAGE) === PEER_VERSION &&
    (binary === null || installedVersion(dir, binary) === PEER_VERSION)
  );
}

/**
 * Installs the pinned peer into bench/peer unless it is there already.
 * Returns the file URL of its ESM entry point. Progress goes to `log`.
 */
export function ensurePeer(root: string, log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  const dir = peerDir(root);
  const entry = path.join(dir, 'node_modules', PEER_PACKAGE, 'dist', 'index.js');
  if (!peerInstalled(root)) {
    fs.mkdirSync(dir, { recursive: true });
    const binary = prebuiltBinaryPackage();
    const dependencies: Record<string, string> = { [PEER_PACKAGE]: PEER_VERSION };
    if (binary) dependencies[binary] = PEER_VERSION;
    const manifest = {
      name: 'tokenstream-bench-peer',
      private: true,
      description: 'llama.cpp through node-llama-cpp for `npm run bench:engine`; not a project dependency',
      dependencies,
    };
    fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
    const args = ['install', '--no-audit', '--no-fund', '--no-package-lock'];
    // Without a known prebuilt package let npm pick node-llama-cpp's optional binaries itself.
    if (binary) args.push('--omit=optional');
    log(`installing ${PEER_PACKAGE}@${PEER_VERSION}${binary ? ` + ${binary}` : ''} into ${dir} (first use; takes a while)`);
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const r = spawnSync(npm, args, {
      cwd: dir,
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
    });
    if (r.status !== 0 || !peerInstalled(root))
      throw new Error(`could not install ${PEER_PACKAGE}@${PEER_VERSION} into ${dir} (npm exit ${r.status})`);
  }
  if (!fs.existsSync(entry)) throw new Error(`${entry} is missing: delete ${dir} and run again`);
  return pathToFileURL(entry).href;
}

/**
 * import() that survives compilation to CommonJS (tsc would turn a literal
 * import() into require(), which cannot load an ES module on Node 20).
 */
// eslint-disable-next-line @typescript-eslint/no-implied-eval
export const importEsm = new Function('specifier', 'return import(specifier)') as (
  specifier: string,
) => Promise<Record<string, unknown>>;

if (require.main === module) {
  process.stdout.write(`${ensurePeer(packageRoot())}\n`);
}
