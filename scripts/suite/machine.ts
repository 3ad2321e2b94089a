// What the suite prints about the machine before its numbers: CPU, cores,
// kernel path, read bandwidth and the load average.
import * as fs from 'node:fs';
import * as os from 'node:os';
import { kernels } from '../../server/src/engine/kernels';
import { uptime } from '../service/child-server';

export interface MachineInfo {
  cpu: string;
  logical_cores: number;
  physical_cores: number;
  /** the kernel path the engine picks (TOKENSTREAM_CPU honoured) */
  cpu_path: string;
  /** streaming-read bandwidth with `bandwidth_threads` threads (null: no kernel in this build) */
  bandwidth_gbs: number | null;
  bandwidth_threads: number;
  node: string;
  uptime: string;
}

/**
 * How many cores other work keeps busy right now: the machine's CPU time
 * (user, system, interrupts, and time the hypervisor gave to other guests)
 * while this process sleeps for `ms`, from /proc/stat. Unlike the load
 * average, it does not remember the bench that ran just before. Elsewhere:
 * the 1-minute load average.
 */
export async function otherWorkCores(ms = 300): Promise<number> {
  const read = (): { busy: number; total: number } => {
    // user nice system idle iowait irq softirq steal (guest time is inside user)
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], total };
  };
  let a;
  try {
    a = read();
  } catch {
    return os.loadavg()[0];
  }
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * os.cpus().length : 0;
}

/** Streaming-read bandwidth, GB/s, over a 512 MB buffer (bigger than any cache). */
export function readBandwidth(threads: number): number | null {
  const k = kernels();
  return typeof k.readBandwidth === 'function' ? k.readBandwidth(512 * 1024 * 1024, threads) : null;
}

function cpuPath(): string {
  const env = process.env.TOKENSTREAM_CPU;
  return env ? `${env} (TOKENSTREAM_CPU)` : kernels().bestPath();
}

/** Physical cores as the engine counts them (its default thread count). */
export function enginePhysicalCores(): number {
  return kernels().physicalCores();
}

export function machineInfo(threads: number, measureBandwidth = true): MachineInfo {
  return {
    cpu: os.cpus()[0]?.model ?? '?',
    logical_cores: os.cpus().length,
    physical_cores: enginePhysicalCores(),
    cpu_path: cpuPath(),
    bandwidth_gbs: measureBandwidth ? readBandwidth(threads) : null,
    bandwidth_threads: threads,
    node: process.version,
    uptime: uptime(),
  };
}

export function formatMachine(m: MachineInfo): string {
  return [
    `machine  ${m.cpu}; ${m.physical_cores} physical / ${m.logical_cores} logical cores; kernels ${m.cpu_path}; node ${m.node}`,
    `         read bandwidth ${m.bandwidth_gbs === null ? '? (no kernel in this build)' : `${m.bandwidth_gbs.toFixed(1)} GB/s`} with ${m.bandwidth_threads} thread(s)`,
    `load     ${m.uptime}`,
  ].join('\n');
}
