// Messages between the main thread and an engine worker (worker.ts). Control
// messages are small objects and rare; the per-step token reports go through a
// shared-memory ring (step-ring.ts) with a wake-up message when the main thread
// is not already reading.
import type { PieceTableData } from '../tokenizer/piece-table';
import type { KvType, LoadOptions, ModelInfo, SamplingConfig } from './types';

/** Bumped on any change here: a stale compiled worker refuses to start. */
export const WORKER_PROTOCOL_VERSION = 5;

export interface WorkerConfig {
  protocol: number;
  modelPath: string;
  load: LoadOptions;
  /** Concurrent sequences (KV slots) of the worker's session. */
  maxSequences: number;
  /** Per-sequence context (0 = the model's, capped at DEFAULT_CONTEXT_CAP). */
  contextLength: number;
  threads?: number;
  kvType: KvType;
  /** Prompt tokens fed per sequence per step; prompts are split at multiples of this. */
  prefillChunk: number;
  /** The step-report ring (step-ring.ts createRing()). */
  ring: SharedArrayBuffer;
  /** Niceness of the engine's threads (0: as the process; 1..19: yield to the main thread). */
  nice: number;
  /**
   * Most sequences in one step's batch (0: all; continuous batching). Above 0
   * (ablation: 1 = batching off) the sequences take turns, round robin.
   */
  maxBatchSequences: number;
  /** false (ablation): the session allocates its step buffers in every decode (SessionOptions.reuseBuffers). */
  reuseBuffers: boolean;
}

/** A generation handed to a worker. Token ids are validated by the main thread. */
export interface StartGeneration {
  type: 'start';
  id: number;
  tokens: Int32Array;
  maxTokens: number;
  sampling: SamplingConfig;
  ignoreEos: boolean;
  stops: string[];
  /** -1: no log-probabilities; else report them with this many alternatives. */
  logprobs: number;
  /** Date.now()-based deadline; 0 = none. */
  deadline: number;
}

export type ToWorker =
  /** First: the vocabulary's pieces (shared memory); the worker is ready once it has them. */
  | { type: 'pieces'; table: PieceTableData }
  | StartGeneration
  | { type: 'cancel'; id: number }
  | { type: 'pause'; id: number }
  | { type: 'resume'; id: number }
  /** Close once idle; `force`: cancel every sequence first (within one step). */
  | { type: 'shutdown'; force: boolean };

/** How a generation ended, as reported per entry (0 = still running). */
export enum Finish {
  None = 0,
  Eos = 1,
  Length = 2,
  StopSequence = 3,
  Cancelled = 4,
  Deadline = 5,
  Error = 6,
}

/** Ints per entry of a step frame (step-ring.ts). */
export const RECORD_INTS = 6;
/**
 * Entry layout in a step frame: [id, token (-1: none), finish (Finish),
 * text length (UTF-8 bytes of this entry's slice of the frame's text), logprob
 * count (-1: none; else 1 + alternatives, in the frame's logprobs / alternative
 * ids), matched stop index (-1: none)].
 */
export enum Rec {
  Id = 0,
  Token = 1,
  Finish = 2,
  TextLength = 3,
  LogprobCount = 4,
  StopIndex = 5,
}

/** The wake-up message: step frames are waiting in the ring. */
export const STEPS_READY = 0;

/** A step frame that did not fit in the ring (same layout, in its own buffer). */
export interface StepFrame {
  type: 'step';
  frame: ArrayBuffer;
}

export interface WorkerReady {
  type: 'ready';
  info: ModelInfo;
  contextLength: number;
  maxSequences: number;
}

export type FromWorker =
  | typeof STEPS_READY
  | WorkerReady
  | StepFrame
  | { type: 'load-error'; message: string; code?: string }
  /** A generation failed inside the engine; it has been dropped. */
  | { type: 'gen-error'; id: number; message: string }
  | { type: 'fatal'; message: string }
  | { type: 'closed' };

/** Per-sequence context used when --context is not given (the trained context can be huge). */
export const DEFAULT_CONTEXT_CAP = 4096;
