// `tokenstream serve` in a child process, for the service benchmarks: the bench
// (the client) and the server then have their own event loops, as in production.
// The child's stderr is watched for the "listening on" and "serving" lines.
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { packageRoot } from '../../server/src/engine/addon';

export interface ChildServerOptions {
  /** `serve` options after the subcommand (`--port` defaults to 0 = any free port). */
  args: string[];
  /** Modules to preload in the server (node -r), e.g. the token-times hook. */
  preload?: string[];
  /** More node options (e.g. --cpu-prof). */
  nodeArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Echo the server's stderr (prefixed) to ours. */
  echo?: boolean;
}

export class ChildServer {
  readonly child: ChildProcess;
  /** performance.now() in this process just before spawn(). */
  readonly spawnedAt: number;
  /** Resolves with the address once the server is bound. */
  readonly listening: Promise<string>;
  /** Resolves once every model is loaded (the "serving" line), with performance.now() at that moment. */
  readonly serving: Promise<number>;
  readonly exited: Promise<number>;
  private stderr = '';

  constructor(opts: ChildServerOptions) {
    const bin = path.join(packageRoot(), 'bin/tokenstream.js');
    const args = [...(opts.nodeArgs ?? []), ...(opts.preload ?? []).flatMap((m) => ['-r', m]), bin, 'serve', ...opts.args];
    if (!opts.args.includes('--port')) args.push('--port', '0');
    this.spawnedAt = performance.now();
    this.child = spawn(process.execPath, args, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let onListen!: (a: string) => void;
    let onServing!: (t: number) => void;
    let onFail!: (e: Error) => void;
    this.listening = new Promise((res, rej) => {
      onListen = res;
      onFail = rej;
    });
    const servingFail: Array<(e: Error) => void> = [];
    this.serving = new Promise((res, rej) => {
      onServing = res;
      servingFail.push(rej);
    });
    this.listening.catch(() => undefined);
    this.serving.catch(() => undefined);
    let buffered = '';
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => {
      const t = performance.now();
      this.stderr += d;
      if (opts.echo) process.stderr.write(d.replace(/^(?=.)/gm, '  [server] '));
      buffered += d;
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        const m = /listening on (\S+)/.exec(line);
        if (m) onListen(m[1]);
        if (/^tokenstream: serving /.test(line)) onServing(t);
        if (/failed to load/.test(line)) servingFail.forEach((f) => f(new Error(line)));
      }
    });
    this.exited = new Promise((resolve) => {
      this.child.on('exit', (code, signal) => {
        const e = new Error(`server exited (${code ?? signal}) before it was ready:\n${this.stderr}`);
        onFail(e);
        servingFail.forEach((f) => f(e));
        resolve(code ?? 1);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get log(): string {
    return this.stderr;
  }

  /** SIGTERM (graceful shutdown) and wait for the exit; SIGKILL after `killAfterMs`. */
  async stop(killAfterMs = 15_000): Promise<number> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.exited;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), killAfterMs);
    const code = await this.exited;
    clearTimeout(timer);
    return code;
  }
}

/** Resident set size of a process in bytes (Linux /proc): its file-backed, anonymous and shared-memory (tmpfs, memfd) parts. */
export function processMemory(pid: number): { rss: number; rssFile: number; rssAnon: number; rssShmem: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { rss: kb('VmRSS'), rssFile: kb('RssFile'), rssAnon: kb('RssAnon'), rssShmem: kb('RssShmem') };
}

/** `uptime` (load averages), for the record next to each measurement. */
export function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim();
  } catch {
    return `load average: ${os.loadavg().map((x) => x.toFixed(2)).join(', ')}`;
  }
}

/** p-th percentile (0..100) of a sorted array (nearest rank). */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** The compiled script next to this one (benches preload or run compiled files). */
export function compiledScript(name: string): string {
  const local = path.join(__dirname, `${name}.js`);
  if (__filename.endsWith('.js') && fs.existsSync(local)) return local;
  const built = path.join(packageRoot(), 'dist/scripts/service', `${name}.js`);
  if (!fs.existsSync(built)) throw new Error(`${built} not found: run \`npm run build:ts\``);
  return built;
}
