// make-model: writes a random-weight llama or qwen2 GGUF model with a real
// vocabulary, laid out exactly as llama.cpp expects (tensor names, shapes,
// metadata keys), for tests and benchmarks of shapes no real file is at hand for.
//
// Tensor types per --type follow the files in /work/shared/reference (made the
// way llama.cpp's converter/quantizer lay them out):
//   - 1-D tensors (norm weights, qwen2 Q/K/V biases) are always F32;
//   - f32 | f16 | bf16 | q8_0 | q4_0 | q4_1 | q5_0 | q5_1: every matrix, token_embd and
//     output included, has that type;
//   - q4_k_m / q5_k_m: Q4_K / Q5_K, except Q6_K for attn_v, ffn_down and output (and for
//     token_embd when the output is tied to it, since then it is the output matrix, as in
//     llama.cpp).
// Row-length fallback: ggml quantizes along ne[0], so a K-quant needs ne[0] % 256 == 0.
// As llama.cpp's quantizer (llama_tensor_get_type), a K-quant on other rows falls
// back to Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and to F16 if ne[0] is not a
// multiple of 32 either (real files: SmolLM2's embd 576 and Qwen2.5-0.5B's 896 give
// Q5_0 (Q5_1 in a Q5_K_M file) attention and FFN gate/up matrices and a Q8_0
// output/attn_v). llama.cpp refuses a 32-block type on rows not a multiple of 32;
// make-model writes F16 then.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readGgufMetadata, GgufFileMetadata } from '../server/src/engine/gguf';
import { randomTensorSource, tensorSeed } from '../server/src/engine/gguf-random';
import { GGML_TYPES, GgmlTypeName, GgufWriter } from '../server/src/engine/gguf-writer';
import { helpText, parseFlagsOnly, required, type OptionSpec } from '../server/src/cli/options';

export type ModelArch = 'llama' | 'qwen2';
export type ModelFileType = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0' | 'q4_1' | 'q5_0' | 'q5_1' | 'q4_k_m' | 'q5_k_m';

export interface MakeModelOptions {
  arch: ModelArch;
  embd: number;
  layers: number;
  heads: number;
  kvHeads: number;
  ffn: number;
  type: ModelFileType;
  vocabFrom: string;
  vocabSize?: number; // keep the first N tokens
  context: number;
  ropeBase: number;
  rmsEps: number;
  tied: boolean;
  seed: number;
  std: number; // weight standard deviation
  name?: string;
  out: string;
}

/** llama_ftype values llama.cpp writes as general.file_type. */
const FILE_TYPE_ID: Record<ModelFileType, number> = {
  f32: 0, f16: 1, q4_0: 2, q4_1: 3, q8_0: 7, q5_0: 8, q5_1: 9, q4_k_m: 15, q5_k_m: 17, bf16: 32,
};

export interface PlannedTensor {
  name: string;
  type: GgmlTypeName;
  dims: number[];
  /** the type the --type rules wanted, when the row length forced a fallback */
  wanted?: GgmlTypeName;
  mean: number; // norms ~1, everything else ~0
}

function baseType(name: string, fileType: ModelFileType, tied: boolean): GgmlTypeName {
  switch (fileType) {
    case 'q4_k_m':
    case 'q5_k_m': {
      const isOutput = name === 'output.weight' || (tied && name === 'token_embd.weight');
      if (isOutput || /attn_v\.weight$|ffn_down\.weight$/.test(name)) return 'q6_K';
      return fileType === 'q4_k_m' ? 'q4_K' : 'q5_K';
    }
    default:
      return fileType;
  }
}

/** llama.cpp's fallback for a K-quant whose rows are not whole super-blocks. */
const K_QUANT_FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = { q4_K: 'q5_0', q5_K: 'q5_1', q6_K: 'q8_0' };

/** The type a matrix with rows of `ne0` elements can have, falling back as documented above. */
export function compatibleType(type: GgmlTypeName, ne0: number): GgmlTypeName {
  if (ne0 % GGML_TYPES[type].blockSize === 0) return type;
  const t = K_QUANT_FALLBACK[type];
  return t && ne0 % GGML_TYPES[t].blockSize === 0 ? t : 'f16';
}

/** Tensor names, shapes and types, in llama.cpp's order. */
export function planTensors(o: Omit<MakeModelOptions, 'vocabFrom' | 'out'> & { vocabSize: number }): PlannedTensor[] {
  const headDim = o.embd / o.heads;
  const kvDim = headDim * o.kvHeads;
  const out: PlannedTensor[] = [];
  const matrix = (name: string, dims: number[]): void => {
    const wanted = baseType(name, o.type, o.tied);
    const type = compatibleType(wanted, dims[0]);
    out.push(type === wanted ? { name, type, dims, mean: 0 } : { name, type, dims, wanted, mean: 0 });
  };
  const vector = (name: string, n: number, mean: number): void => {
    out.push({ name, type: 'f32', dims: [n], mean });
  };
  matrix('token_embd.weight', [o.embd, o.vocabSize]);
  for (let i = 0; i < o.layers; i++) {
    const b = `blk.${i}.`;
    vector(b + 'attn_norm.weight', o.embd, 1);
    matrix(b + 'attn_q.weight', [o.embd, o.embd]);
    matrix(b + 'attn_k.weight', [o.embd, kvDim]);
    matrix(b + 'attn_v.weight', [o.embd, kvDim]);
    matrix(b + 'attn_output.weight', [o.embd, o.embd]);
    if (o.arch === 'qwen2') {
      vector(b + 'attn_q.bias', o.embd, 0);
      vector(b + 'attn_k.bias', kvDim, 0);
      vector(b + 'attn_v.bias', kvDim, 0);
    }
    vector(b + 'ffn_norm.weight', o.embd, 1);
    matrix(b + 'ffn_gate.weight', [o.embd, o.ffn]);
    matrix(b + 'ffn_up.weight', [o.embd, o.ffn]);
    matrix(b + 'ffn_down.weight', [o.ffn, o.embd]);
  }
  vector('output_norm.weight', o.embd, 1);
  if (!o.tied) matrix('output.weight', [o.embd, o.vocabSize]);
  return out;
}

interface CopiedKey {
  key: string;
  type: string;
  value: unknown;
}

/**
 * The tokenizer.* keys of a vocabulary file, truncated to the first `vocabSize`
 * tokens when asked: per-token arrays are cut, BPE merges that need a dropped
 * token are dropped, and special-token ids past the end are left out (llama.cpp
 * would reject them). Returns the keys and the final vocabulary size.
 */
export function tokenizerKeys(
  md: GgufFileMetadata,
  vocabSize: number | undefined,
  log: (msg: string) => void,
): { keys: CopiedKey[]; vocabSize: number } {
  const tokens = md.metadata['tokenizer.ggml.tokens'];
  if (!Array.isArray(tokens)) throw new Error(`${md.path}: no tokenizer.ggml.tokens array: not a vocabulary file`);
  const full = tokens.length;
  const n = vocabSize ?? full;
  if (!Number.isInteger(n) || n < 1 || n > full) throw new Error(`--vocab-size ${n}: the vocabulary has ${full} tokens`);
  const keep = new Set<string>(n < full ? (tokens as string[]).slice(0, n) : []);
  const keys: CopiedKey[] = [];
  for (const [key, value] of Object.entries(md.metadata)) {
    if (!key.startsWith('tokenizer.')) continue;
    const type = md.valueTypes[key];
    if (n === full) {
      keys.push({ key, type, value });
      continue;
    }
    const isArray = Array.isArray(value) || ArrayBuffer.isView(value);
    if (isArray && (value as ArrayLike<unknown>).length === full) {
      keys.push({ key, type, value: (value as string[] | Float32Array).slice(0, n) });
    } else if (key === 'tokenizer.ggml.merges') {
      const merges = (value as string[]).filter((m) => {
        const sp = m.indexOf(' ', 1);
        const [a, b] = [m.slice(0, sp), m.slice(sp + 1)];
        return keep.has(a) && keep.has(b) && keep.has(a + b);
      });
      log(`  kept ${merges.length} of ${(value as string[]).length} merges (both parts and result in the vocabulary)`);
      keys.push({ key, type, value: merges });
    } else if (/^tokenizer\.ggml\..*_token_id$/.test(key) && typeof value === 'number' && value >= n) {
      log(`  dropped ${key} = ${value}: past the truncated vocabulary`);
    } else {
      keys.push({ key, type, value });
    }
  }
  return { keys, vocabSize: n };
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new Error(msg);
}

/** Writes the model; returns the file size. `log` receives progress lines. */
export function makeModel(o: MakeModelOptions, log: (msg: string) => void = () => {}): number {
  for (const k of ['embd', 'layers', 'heads', 'kvHeads', 'ffn', 'context'] as const)
    check(Number.isInteger(o[k]) && o[k] > 0, `--${k} must be a positive integer (got ${o[k]})`);
  check(o.embd % o.heads === 0, `--embd ${o.embd} is not a multiple of --heads ${o.heads}`);
  check(o.heads % o.kvHeads === 0, `--heads ${o.heads} is not a multiple of --kv-heads ${o.kvHeads}`);
  check((o.embd / o.heads) % 2 === 0, `head dimension ${o.embd / o.heads} must be even (RoPE rotates pairs)`);
  check(o.arch === 'llama' || o.arch === 'qwen2', `--arch must be llama or qwen2 (got ${o.arch})`);
  check(o.type in FILE_TYPE_ID, `--type must be one of ${Object.keys(FILE_TYPE_ID).join(', ')} (got ${o.type})`);

  const vocab = readGgufMetadata(o.vocabFrom);
  const tok = tokenizerKeys(vocab, o.vocabSize, log);
  const plan = planTensors({ ...o, vocabSize: tok.vocabSize });
  const a = o.arch;
  const w = new GgufWriter();
  w.set('general.architecture', 'string', a);
  w.set('general.name', 'string', o.name ?? `random-${a}-${o.type}`);
  w.set('general.file_type', 'uint32', FILE_TYPE_ID[o.type]);
  w.set('general.alignment', 'uint32', 32);
  w.set(`${a}.context_length`, 'uint32', o.context);
  w.set(`${a}.embedding_length`, 'uint32', o.embd);
  w.set(`${a}.block_count`, 'uint32', o.layers);
  w.set(`${a}.feed_forward_length`, 'uint32', o.ffn);
  w.set(`${a}.attention.head_count`, 'uint32', o.heads);
  w.set(`${a}.attention.head_count_kv`, 'uint32', o.kvHeads);
  w.set(`${a}.rope.dimension_count`, 'uint32', o.embd / o.heads);
  w.set(`${a}.rope.freq_base`, 'float32', o.ropeBase);
  w.set(`${a}.attention.layer_norm_rms_epsilon`, 'float32', o.rmsEps);
  w.set(`${a}.vocab_size`, 'uint32', tok.vocabSize);
  for (const k of tok.keys) w.set(k.key, k.type, k.value);

  const fallbacks = plan.filter((t) => t.wanted);
  if (fallbacks.length) {
    const kinds = new Map<string, number>();
    for (const t of fallbacks) {
      const k = `${t.wanted} -> ${t.type} (ne[0] = ${t.dims[0]})`;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    for (const [k, c] of kinds) log(`  row length fallback: ${c} tensor(s) ${k}`);
  }
  for (const t of plan) {
    const seed = tensorSeed(o.seed, t.name);
    // norm weights 1 + N(0, std), biases and matrices N(0, std), as in the reference files
    w.addTensor(t.name, t.type, t.dims, randomTensorSource(t.type, t.dims, { seed, std: o.std, mean: t.mean }));
  }

  const total = w.fileSize();
  const params = plan.reduce((s, t) => s + t.dims.reduce((x, y) => x * y, 1), 0);
  log(`writing ${o.out}: ${a}, ${plan.length} tensors, ${(params / 1e6).toFixed(1)}M parameters, ${(total / 2 ** 20).toFixed(1)} MiB`);
  const t0 = Date.now();
  let lastReport = t0;
  const size = w.write(o.out, (p) => {
    const now = Date.now();
    if (now - lastReport >= 2000) {
      lastReport = now;
      const pct = ((100 * p.bytesWritten) / p.bytesTotal).toFixed(0);
      const mbps = p.bytesWritten / 2 ** 20 / ((now - t0) / 1000);
      log(`  ${pct}% (tensor ${p.tensorIndex + 1}/${p.tensorCount} ${p.name}), ${mbps.toFixed(0)} MiB/s`);
    }
  });
  log(`wrote ${size} bytes in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return size;
}

// ---- command line -------------------------------------------------------------

const OPTIONS: OptionSpec[] = [
  { name: 'arch', kind: 'string', default: 'llama', arg: 'llama|qwen2', help: 'architecture' },
  { name: 'embd', kind: 'int', default: 576, min: 1, arg: 'N', help: 'embedding length' },
  { name: 'layers', kind: 'int', default: 30, min: 1, arg: 'N', help: 'blocks' },
  { name: 'heads', kind: 'int', default: 9, min: 1, arg: 'N', help: 'attention heads' },
  { name: 'kv-heads', kind: 'int', default: 3, min: 1, arg: 'N', help: 'key/value heads' },
  { name: 'ffn', kind: 'int', default: 1536, min: 1, arg: 'N', help: 'feed-forward length' },
  { name: 'type', kind: 'string', default: 'f16', arg: 'T', help: 'f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q4_k_m|q5_k_m' },
  { name: 'vocab-from', kind: 'string', arg: 'FILE', help: 'GGUF file whose tokenizer.* keys are copied (required)' },
  { name: 'vocab-size', kind: 'int', min: 1, arg: 'N', help: 'keep only the first N tokens' },
  { name: 'context', kind: 'int', default: 2048, min: 1, arg: 'N', help: 'context length' },
  { name: 'rope-base', kind: 'number', arg: 'X', help: 'RoPE frequency base (default 10000 llama, 1000000 qwen2)' },
  { name: 'rms-eps', kind: 'number', arg: 'X', help: 'RMS norm epsilon (default 1e-5 llama, 1e-6 qwen2)' },
  { name: 'tied', kind: 'boolean', help: 'no output.weight: the output reuses token_embd' },
  { name: 'std', kind: 'number', default: 0.1, arg: 'X', help: 'weight standard deviation' },
  { name: 'seed', kind: 'int', default: 1, arg: 'S', help: 'random seed' },
  { name: 'name', kind: 'string', arg: 'S', help: 'general.name (default random-<arch>-<type>)' },
  { name: 'out', kind: 'string', arg: 'FILE', help: 'output path (required)' },
];

export const MAKE_MODEL_HELP = helpText(
  `Usage: tokenstream make-model --vocab-from FILE --out FILE [options]

Writes a random-weight GGUF model (llama.cpp layout) with a real vocabulary.`,
  OPTIONS,
);

/** The options of argv (null: --help was asked for). */
export function parseMakeModelArgs(argv: string[]): MakeModelOptions | null {
  const { values: v, help } = parseFlagsOnly(argv, OPTIONS, {});
  if (help) return null;
  const arch = v.arch as ModelArch;
  const num = (k: string): number => v[k] as number;
  return {
    arch,
    embd: num('embd'),
    layers: num('layers'),
    heads: num('heads'),
    kvHeads: num('kv-heads'),
    ffn: num('ffn'),
    type: (v.type as string).toLowerCase() as ModelFileType,
    vocabFrom: required(v, 'vocab-from'),
    vocabSize: v['vocab-size'] as number | undefined,
    context: num('context'),
    ropeBase: (v['rope-base'] as number | undefined) ?? (arch === 'qwen2' ? 1e6 : 1e4),
    rmsEps: (v['rms-eps'] as number | undefined) ?? (arch === 'qwen2' ? 1e-6 : 1e-5),
    tied: v.tied === true,
    std: num('std'),
    seed: num('seed') >>> 0,
    name: v.name as string | undefined,
    out: required(v, 'out'),
  };
}

/** CLI entry: `tokenstream make-model ...` and `node dist/scripts/make-model.js ...`. */
export async function makeModelCommand(argv: string[]): Promise<number> {
  let opts: MakeModelOptions | null;
  try {
    opts = parseMakeModelArgs(argv);
    if (!opts) {
      process.stdout.write(MAKE_MODEL_HELP);
      return 0;
    }
  } catch (e) {
    process.stderr.write(`make-model: ${(e as Error).message}\n\n${MAKE_MODEL_HELP}`);
    return 2;
  }
  try {
    fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
    makeModel(opts, (m) => process.stdout.write(m + '\n'));
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    process.stderr.write(`make-model: ${err.code ? err.code + ': ' : ''}${err.message}\n`);
    return 1;
  }
}

if (require.main === module) {
  makeModelCommand(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
