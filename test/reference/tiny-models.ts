// Tiny random llama / qwen2 GGUF files for the reference-forward tests, in the
// layout make-model writes (planTensors), with the extras a real file may
// carry: RoPE frequency factors (Llama 3) and linear RoPE scaling.
import * as path from 'node:path';
import { randomTensorSource, tensorSeed } from '../../server/src/engine/gguf-random';
import { GgufWriter } from '../../server/src/engine/gguf-writer';
import { ModelArch, ModelFileType, planTensors } from '../../scripts/make-model';

export interface TinySpec {
  arch: ModelArch;
  type: ModelFileType;
  embd: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  vocab: number;
  tied: boolean;
  ropeBase: number;
  ropeFreqs?: boolean; // write rope_freqs.weight
  ropeScale?: number; // rope.scaling.type linear with this factor
  seed: number;
}

export function writeTinyModel(dir: string, name: string, s: TinySpec): string {
  const plan = planTensors({
    arch: s.arch, embd: s.embd, layers: s.layers, heads: s.heads, kvHeads: s.kvHeads, ffn: s.ffn, type: s.type,
    vocabSize: s.vocab, context: 256, ropeBase: s.ropeBase, rmsEps: 1e-6, tied: s.tied, seed: s.seed, std: 0.1,
  });
  const a = s.arch;
  const w = new GgufWriter();
  w.set('general.architecture', 'string', a);
  w.set('general.name', 'string', name);
  w.set(`${a}.context_length`, 'uint32', 256);
  w.set(`${a}.embedding_length`, 'uint32', s.embd);
  w.set(`${a}.block_count`, 'uint32', s.layers);
  w.set(`${a}.feed_forward_length`, 'uint32', s.ffn);
  w.set(`${a}.attention.head_count`, 'uint32', s.heads);
  w.set(`${a}.attention.head_count_kv`, 'uint32', s.kvHeads);
  w.set(`${a}.rope.freq_base`, 'float32', s.ropeBase);
  w.set(`${a}.attention.layer_norm_rms_epsilon`, 'float32', 1e-6);
  if (s.ropeScale) {
    w.set(`${a}.rope.scaling.type`, 'string', 'linear');
    w.set(`${a}.rope.scaling.factor`, 'float32', s.ropeScale);
  }
  for (const t of plan)
    w.addTensor(t.name, t.type, t.dims, randomTensorSource(t.type, t.dims, { seed: tensorSeed(s.seed, t.name), std: 0.1, mean: t.mean }));
  if (s.ropeFreqs) {
    const n = s.embd / s.heads / 2;
    // Llama 3 style: high frequencies untouched, low ones divided by up to 8.
    const f = Float32Array.from({ length: n }, (_, i) => 1 + (7 * i) / Math.max(1, n - 1));
    w.addTensor('rope_freqs.weight', 'f32', [n], new Uint8Array(f.buffer));
  }
  const file = path.join(dir, `${name}.gguf`);
  w.write(file);
  return file;
}
