// Model and Session over the native engine (native/src/model). Synchronous,
// meant to run on a worker thread. Several workers loading the same file share
// one native mapping (the addon keeps a process-wide registry).
import * as path from 'node:path';
import { loadAddon, type NativeAddon } from './addon';
import type {
  Batch,
  CpuPathName,
  LoadOptions,
  ModelInfo,
  SampledToken,
  SamplingConfig,
  Session as SessionApi,
  SessionOptions,
} from './types';

/** ModelInfo plus what the native side knows beyond the contract. */
export interface NativeModelInfo extends ModelInfo {
  ropeFreqScale: number;
  hasRopeFreqs: boolean;
  eosTokenId: number | null;
  /** process-unique id of the native model: equal ids share one mapping (e.g. across workers) */
  instanceId: number;
  /** how the file is held: mapped, or read into a heap block (LoadOptions.load) */
  loadMode: 'mmap' | 'read';
}

/** Session options the engine accepts beyond the contract. */
export interface EngineSessionOptions extends SessionOptions {
  /** logits rows one decode() may return; default min(maxBatch, maxSequences) */
  maxOutputs?: number;
  /**
   * false (ablation/debug only): the step's activation and scratch buffers are
   * allocated anew in every decode() instead of once at creation. Default true.
   */
  reuseBuffers?: boolean;
}

export const DEFAULT_SAMPLING: SamplingConfig = {
  temperature: 0,
  topK: 0,
  topP: 1,
  minP: 0,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
  seed: 0,
  topLogprobs: 0,
};

/** Greedy with no penalty window: what the tests and the engine bench decode with. */
export const GREEDY_SAMPLING: SamplingConfig = { ...DEFAULT_SAMPLING, penaltyLastN: 0 };

export class Model {
  readonly info: NativeModelInfo;
  private handle: unknown;
  private readonly addon: NativeAddon;

  private constructor(addon: NativeAddon, handle: unknown) {
    this.addon = addon;
    this.handle = handle;
    const raw = addon.modelInfo(handle) as NativeModelInfo;
    if (!raw.name) raw.name = path.basename(raw.path).replace(/\.gguf$/i, '');
    this.info = Object.freeze(raw);
  }

  /**
   * Maps a GGUF file and binds its tensors. Throws an Error with `.code`:
   * IO_ERROR, GGUF_INVALID, MODEL_UNSUPPORTED, INVALID_ARGUMENT (bad cpu path).
   */
  static load(file: string, opts: LoadOptions = {}): Model {
    const addon = loadAddon();
    const cpu: CpuPathName | '' = opts.cpu ?? ((process.env.TOKENSTREAM_CPU ?? '') as CpuPathName | '');
    const handle = addon.modelLoad(path.resolve(file), {
      cpu,
      prefetch: opts.prefetch ?? false,
      lock: opts.lock ?? false,
      load: opts.load ?? 'mmap',
    });
    return new Model(addon, handle);
  }

  createSession(opts: EngineSessionOptions): Session {
    if (this.handle === undefined) throw closedError('model');
    return new Session(this.addon, this.addon.sessionCreate(this.handle, opts));
  }

  /** Float32 copy of a tensor's values, dequantized by the engine (for tests and tools). */
  dequantizeTensor(name: string): Float32Array {
    if (this.handle === undefined) throw closedError('model');
    return this.addon.modelDequantizeTensor(this.handle, name) as Float32Array;
  }

  /** Drops this handle's reference; the mapping goes when no session or worker holds it. */
  close(): void {
    if (this.handle === undefined) return;
    this.addon.modelRelease(this.handle);
    this.handle = undefined;
  }
}

interface NativeSession {
  handle: unknown;
  logits: ArrayBuffer;
  maxOutputs: number;
  threads: number;
  contextLength: number;
  maxBatch: number;
  maxSequences: number;
  vocabSize: number;
  kvCacheBytes: number;
}

export class Session implements SessionApi {
  readonly vocabSize: number;
  readonly maxSequences: number;
  readonly contextLength: number;
  readonly maxBatch: number;
  readonly maxOutputs: number;
  readonly threads: number;
  readonly kvCacheBytes: number;
  private handle: unknown;
  private readonly logitsMemory: ArrayBuffer;

  constructor(
    private readonly addon: NativeAddon,
    native: NativeSession,
  ) {
    this.handle = native.handle;
    this.logitsMemory = native.logits;
    this.vocabSize = native.vocabSize;
    this.maxSequences = native.maxSequences;
    this.contextLength = native.contextLength;
    this.maxBatch = native.maxBatch;
    this.maxOutputs = native.maxOutputs;
    this.threads = native.threads;
    this.kvCacheBytes = native.kvCacheBytes;
  }

  decode(batch: Batch): Float32Array {
    const rows: number = this.addon.sessionDecode(
      this.live(),
      batch.seq,
      batch.token,
      batch.pos,
      batch.logits,
      batch.length,
    );
    // A view of native memory: no copy; valid until the next decode().
    return new Float32Array(this.logitsMemory, 0, rows * this.vocabSize);
  }

  setSampler(seq: number, config: SamplingConfig, history?: Int32Array): void {
    this.addon.sessionSetSampler(this.live(), seq, { ...DEFAULT_SAMPLING, ...config }, history);
  }

  sample(seq: number, row: number): SampledToken {
    return this.addon.sessionSample(this.live(), seq, row) as SampledToken;
  }

  clearSequence(seq: number): void {
    this.addon.sessionClear(this.live(), seq);
  }

  sequenceLength(seq: number): number {
    return this.addon.sessionLength(this.live(), seq) as number;
  }

  get kvResidentBytes(): number {
    return this.addon.sessionKvResident(this.live()) as number;
  }

  close(): void {
    if (this.handle === undefined) return;
    this.addon.sessionClose(this.handle);
    this.handle = undefined;
  }

  private live(): unknown {
    if (this.handle === undefined) throw closedError('session');
    return this.handle;
  }
}

function closedError(what: string): Error {
  const err = new Error(`the ${what} was closed`) as Error & { code: string };
  err.code = 'CLOSED';
  return err;
}

/** A Batch with room for `capacity` entries, to be filled and reused. */
export function createBatch(capacity: number): Batch {
  return {
    seq: new Int32Array(capacity),
    token: new Int32Array(capacity),
    pos: new Int32Array(capacity),
    logits: new Uint8Array(capacity),
    length: 0,
  };
}
