// A process's resident memory by kind, from /proc/<pid>/smaps (Linux): the
// model file's mapping (the weights, as far as paged in), the KV caches (the
// engine maps each session's cache as a memfd named "tokenstream-kv", see
// native/src/model/kv_memory.h), the node executable, other files (shared
// libraries, the addon), and anonymous memory (V8 heaps, malloc, stacks).
// RSS - weights - KV is then exactly what the server costs beyond the two.
import * as fs from 'node:fs';

export interface ResidentMemory {
  /** all mappings' Rss */
  rss: number;
  /** the model files' mappings */
  weights: number;
  /** the KV caches' mappings */
  kv: number;
  /** the node executable's mappings */
  node: number;
  /** other file mappings: shared libraries, the addon, ... */
  otherFiles: number;
  /** anonymous memory: [heap], [stack], unnamed mappings */
  anon: number;
}

export const KV_MAPPING = '/memfd:tokenstream-kv';

const HEADER = /^[0-9a-f]+-[0-9a-f]+\s+\S+\s+\S+\s+\S+\s+\d+\s*(.*)$/;

/** Parses smaps text; `weightFiles` are the model files' real paths, `nodeBinary` the executable's. */
export function classifySmaps(text: string, weightFiles: readonly string[], nodeBinary: string): ResidentMemory {
  const r: ResidentMemory = { rss: 0, weights: 0, kv: 0, node: 0, otherFiles: 0, anon: 0 };
  let kind: Exclude<keyof ResidentMemory, 'rss'> = 'anon';
  for (const line of text.split('\n')) {
    const h = HEADER.exec(line);
    if (h) {
      const name = h[1].replace(/ \(deleted\)$/, '');
      if (weightFiles.includes(name)) kind = 'weights';
      else if (name.startsWith(KV_MAPPING)) kind = 'kv';
      else if (name === nodeBinary) kind = 'node';
      else if (name.startsWith('/')) kind = 'otherFiles';
      else kind = 'anon'; // '', [heap], [stack], [anon:...], [vdso] ...
      continue;
    }
    if (line.startsWith('Rss:')) {
      const kb = Number(/^Rss:\s+(\d+) kB/.exec(line)?.[1] ?? 0);
      r[kind] += kb * 1024;
      r.rss += kb * 1024;
    }
  }
  return r;
}

/** The resident memory of process `pid` by kind (see classifySmaps). */
export function residentMemory(pid: number, weightFiles: readonly string[], nodeBinary = process.execPath): ResidentMemory {
  const real = (p: string): string => {
    try {
      return fs.realpathSync(p);
    } catch {
      return p;
    }
  };
  return classifySmaps(fs.readFileSync(`/proc/${pid}/smaps`, 'utf8'), weightFiles.map(real), real(nodeBinary));
}
