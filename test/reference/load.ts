// Builds the float64 reference model from a GGUF file through the engine: its
// configuration (ModelInfo) and its weights dequantized by the engine's scalar
// dequantizer.
import { readGgufMetadata } from '../../server/src/engine/gguf';
import { Model } from '../../server/src/engine/model';
import { RefMatrix, ReferenceModel } from './forward64';

export function loadReference(file: string): ReferenceModel {
  const model = Model.load(file, { cpu: 'scalar' });
  const md = readGgufMetadata(file);
  const tensors = new Map(md.tensors.map((t) => [t.name, t]));
  const vec = (name: string): Float32Array | undefined => (tensors.has(name) ? model.dequantizeTensor(name) : undefined);
  const mat = (name: string): RefMatrix => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: no tensor ${name}`);
    return { data: model.dequantizeTensor(name), cols: t.dims[0], rows: t.dims[1], type: t.type };
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
