// Builds the float64 reference model from a GGUF file through the engine: its
// configuration (ModelInfo) and its weights dequantized by the engine's scalar
// dequantizer (and, for q4_1/q5_1, each block's m read from the file).
import * as fs from 'node:fs';
import { readGgufMetadata } from '../../server/src/engine/gguf';
import { f16ToF32 } from '../../server/src/engine/gguf-random';
import { Model } from '../../server/src/engine/model';
import { RefMatrix, ReferenceModel } from './forward64';

/** The fp16 m (bytes 2..3 of every block) of a q4_1 / q5_1 tensor, read from the file. */
function blockMins(file: string, offset: number, nbytes: number, blockBytes: number): Float64Array {
  const buf = Buffer.alloc(nbytes);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, buf, 0, nbytes, offset);
  } finally {
    fs.closeSync(fd);
  }
  return Float64Array.from({ length: nbytes / blockBytes }, (_, i) => f16ToF32(buf.readUInt16LE(i * blockBytes + 2)));
}

export function loadReference(file: string): ReferenceModel {
  const model = Model.load(file, { cpu: 'scalar' });
  const md = readGgufMetadata(file);
  const tensors = new Map(md.tensors.map((t) => [t.name, t]));
  const vec = (name: string): Float32Array | undefined => (tensors.has(name) ? model.dequantizeTensor(name) : undefined);
  const mat = (name: string): RefMatrix => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: no tensor ${name}`);
    const m: RefMatrix = { data: model.dequantizeTensor(name), cols: t.dims[0], rows: t.dims[1], type: t.type };
    if (t.type === 'q4_1' || t.type === 'q5_1') m.blockMins = blockMins(file, t.offset, t.nbytes, t.type === 'q5_1' ? 24 : 20);
    return m;
  };
  const i = model.info;
  const tokenEmbd = mat('token_embd.weight');
  const ref = new ReferenceModel(
    {
      nEmbd: i.embeddingLength, nLayer: i.blockCount, nHead: i.headCount, nHeadKv: i.headCountKv, headDim: i.headDim,
      nFf: i.feedForwardLength, nVocab: i.vocabSize, rmsEps: i.rmsEpsilon, ropeBase: i.ropeBase,
      ropeDim: i.ropeDimensionCount, ropeType: i.ropeType, ropeFreqScale: i.ropeFreqScale, ropeFreqs: vec('rope_freqs.weight'),
    },
    {
      tokenEmbd,
      layers: Array.from({ length: i.blockCount }, (_, l) => {
        const p = `blk.${l}.`;
        return {
          attnNorm: vec(p + 'attn_norm.weight')!, wq: mat(p + 'attn_q.weight'), wk: mat(p + 'attn_k.weight'),
          wv: mat(p + 'attn_v.weight'), wo: mat(p + 'attn_output.weight'), bq: vec(p + 'attn_q.bias'),
          bk: vec(p + 'attn_k.bias'), bv: vec(p + 'attn_v.bias'), ffnNorm: vec(p + 'ffn_norm.weight')!,
          wGate: mat(p + 'ffn_gate.weight'), wUp: mat(p + 'ffn_up.weight'), wDown: mat(p + 'ffn_down.weight'),
        };
      }),
      outputNorm: vec('output_norm.weight')!,
      output: i.tiedOutput ? tokenEmbd : mat('output.weight'),
    },
  );
  model.close();
  return ref;
}
