// The engine's TypeScript contract. Implemented by server/src/engine/model.ts
// (Model, Session over the native addon) and server/src/engine/gguf.ts
// (metadata reader). Synchronous calls, meant to run on a worker thread.

/** A GGUF metadata value as JS sees it. Numeric arrays come as typed arrays. */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | string[]
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array
  | GgufValue[]; // arrays of arrays / bools

export interface GgufTensorSummary {
  name: string;
  type: string; // "f16", "q4_0", ...
  dims: number[]; // ne[0] first
  offset: number; // absolute byte offset in the file
  nbytes: number;
}

export interface GgufMetadata {
  path: string;
  version: number;
  fileSize: number;
  alignment: number;
  metadata: Record<string, GgufValue>;
  tensors: GgufTensorSummary[];
  /** absolute byte offset of the data section (set by the reader) */
  dataOffset?: number;
  /**
   * key -> GGUF value type ("uint32", "float32", "string", "array<int32>", ...), set by
   * the reader, so a writer can copy a value with its exact type (see gguf-writer.ts).
   */
  valueTypes?: Record<string, string>;
}

export type CpuPathName = 'scalar' | 'avx2' | 'avx512' | 'neon';
export type KvType = 'f16' | 'f32';

export interface ModelInfo {
  path: string;
  name: string; // general.name or the file's base name
  architecture: 'llama' | 'qwen2';
  parameterCount: number;
  fileSize: number;
  vocabSize: number;
  contextLength: number; // the model's trained context
  embeddingLength: number;
  blockCount: number;
  headCount: number;
  headCountKv: number;
  headDim: number;
  feedForwardLength: number;
  rmsEpsilon: number;
  ropeBase: number;
  ropeDimensionCount: number;
  ropeType: 'normal' | 'neox';
  tiedOutput: boolean;
  /** tensor type name -> number of tensors of that type */
  tensorTypes: Record<string, number>;
  cpuPath: CpuPathName;
  physicalCores: number;
}

export interface LoadOptions {
  /** force a kernel path; default: TOKENSTREAM_CPU env var, else the best the CPU has */
  cpu?: CpuPathName;
  /** madvise(WILLNEED) the mapping at load */
  prefetch?: boolean;
  /** mlock the mapping */
  lock?: boolean;
  /**
   * how the file gets into memory: 'mmap' (default) maps it read-only, shared by
   * every worker and process; 'read' reads it whole into a heap block at load
   * (resident, private: the ablation counterpart of the mapping)
   */
  load?: 'mmap' | 'read';
}

export interface SessionOptions {
  /** KV cache sequence slots (0 .. maxSequences-1) */
  maxSequences: number;
  /** per-sequence context length (<= model context) */
  contextLength: number;
  /** most tokens in one decode() batch */
  maxBatch?: number; // default 512
  /** native threads for this session; default: physical cores */
  threads?: number;
  kvType?: KvType; // default 'f16'
}

/**
 * One batch for decode(): parallel arrays, entry i = (seq[i], token[i], pos[i], logits[i]).
 * Entries of one sequence must be in increasing position order; positions of a
 * sequence continue from what is already in its KV slot.
 */
export interface Batch {
  seq: Int32Array;
  token: Int32Array;
  pos: Int32Array;
  logits: Uint8Array; // 1 = return logits for this entry
  length: number; // entries used (arrays may be longer: reused buffers)
}

export interface SamplingConfig {
  temperature: number; // 0 = greedy
  topK: number; // 0 = off
  topP: number; // 1 = off
  minP: number; // 0 = off
  repetitionPenalty: number; // 1 = off
  presencePenalty: number; // 0 = off
  frequencyPenalty: number; // 0 = off
  penaltyLastN: number; // tokens of history the penalties look at (default 64)
  seed: number; // uint32
  topLogprobs: number; // N alternatives to report (0 = none)
}

export interface SampledToken {
  token: number;
  logprob: number; // natural log of the probability after penalties, before temperature/truncation
  top?: Array<{ token: number; logprob: number }>;
}

export interface Session {
  readonly vocabSize: number;
  readonly maxSequences: number;
  readonly contextLength: number;
  readonly maxBatch: number;
  /**
   * One forward pass for the whole batch. Returns logits of the entries with
   * logits=1, in batch order, row-major [nOut][vocabSize]. The returned array
   * is a view of session memory, valid until the next decode().
   */
  decode(batch: Batch): Float32Array;
  /** Sets a sequence's sampler (rng seeded, penalty history = `history`). */
  setSampler(seq: number, config: SamplingConfig, history?: Int32Array): void;
  /** Samples from logits row `row` of the last decode() for `seq`; the token joins its history. */
  sample(seq: number, row: number): SampledToken;
  /** Drops a sequence's KV entries; its slot can be reused from position 0. */
  clearSequence(seq: number): void;
  /** Tokens currently cached for a sequence (its next position). */
  sequenceLength(seq: number): number;
  /** Bytes of the KV cache allocated (all slots × context). */
  readonly kvCacheBytes: number;
  /** Bytes of the KV cache in memory now: the pages written so far (≤ kvCacheBytes, rounded to pages). */
  readonly kvResidentBytes: number;
  close(): void;
}
