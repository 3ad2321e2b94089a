// Kernel throughput against the machine's memory bandwidth.
//   node dist/scripts/bench-kernels.js [--rows 5632 --cols 2048 --threads 2 --batch 1 --iters 30
//                                       --types q4_0,q8_0,q4_1,q5_0,q5_1,q4_K,q5_K,q6_K,f16 --paths avx512,avx2,scalar
//                                       --stream-mb 256]
// Calls cycle through copies of the matrix totalling at least --stream-mb, so
// the weights come from memory as in a real model (0: one copy, cache-resident).
// For each weight type and path: best time of one matmul call, the weight
// bytes read per second (GB/s) and that as a share of the streaming-read
// bandwidth measured with the same thread count (batch 1 = the decode GEMV).
import { GgmlType, kernels, type KernelPathName } from '../server/src/engine/kernels';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const TYPES: Record<string, { id: number; elems: number; bytes: number }> = {
  f32: { id: GgmlType.F32, elems: 1, bytes: 4 },
  f16: { id: GgmlType.F16, elems: 1, bytes: 2 },
  bf16: { id: GgmlType.BF16, elems: 1, bytes: 2 },
  q8_0: { id: GgmlType.Q8_0, elems: 32, bytes: 34 },
  q4_0: { id: GgmlType.Q4_0, elems: 32, bytes: 18 },
  q4_1: { id: GgmlType.Q4_1, elems: 32, bytes: 20 },
  q5_0: { id: GgmlType.Q5_0, elems: 32, bytes: 22 },
  q5_1: { id: GgmlType.Q5_1, elems: 32, bytes: 24 },
  q4_K: { id: GgmlType.Q4_K, elems: 256, bytes: 144 },
  q5_K: { id: GgmlType.Q5_K, elems: 256, bytes: 176 },
  q6_K: { id: GgmlType.Q6_K, elems: 256, bytes: 210 },
};

function main(): void {
  const k = kernels();
  const rows = Number(arg('rows', '5632'));
  const cols = Number(arg('cols', '2048'));
  const threads = Number(arg('threads', '2'));
  const batch = Number(arg('batch', '1'));
  const iters = Number(arg('iters', '30'));
  const types = arg('types', 'q4_0,q8_0,q4_K,q6_K,f16').split(',');
  const streamBytes = Number(arg('stream-mb', '256')) * (1 << 20);
  const paths = arg('paths', k.supportedPaths().slice().reverse().join(',')).split(',') as KernelPathName[];

  const bw = k.readBandwidth(256 << 20, threads);
  console.log(`weights streamed from ${streamBytes ? 'memory' : 'cache'}`);
  console.log(`read bandwidth: ${bw.toFixed(1)} GB/s with ${threads} thread(s); matrix ${rows} x ${cols}, batch ${batch}`);
  for (const name of types) {
    const t = TYPES[name];
    if (!t) throw new Error(`unknown type ${name}`);
    const bytes = (rows * cols * t.bytes) / t.elems;
    const copies = Math.max(1, Math.ceil(streamBytes / bytes));
    const w = new Uint8Array(bytes * copies);
    // sane content: small fp16 scales everywhere a block could keep one
    const view = new DataView(w.buffer);
    for (let i = 0; i + 2 <= w.length; i += 2) view.setUint16(i, 0x2000 + ((i * 7919) & 0x3ff), true);
    const x = new Float32Array(batch * cols).map((_, i) => Math.sin(i));
    for (const path of paths) {
      if (path === 'scalar' && bytes > 64 << 20) continue;
      const s = k.benchMatmul(t.id, path, w, rows, cols, x, batch, threads, path === 'scalar' ? 3 : Math.max(iters, copies), copies);
      const gbs = bytes / s / 1e9;
      console.log(
        `${name.padEnd(5)} ${path.padEnd(13)} ${(s * 1e3).toFixed(3).padStart(8)} ms  ${gbs.toFixed(1).padStart(6)} GB/s  ${((100 * gbs) / bw).toFixed(0).padStart(3)}% of bandwidth  ${((2 * rows * cols * batch) / s / 1e9).toFixed(1)} GFLOP/s`,
      );
    }
  }
}

main();
