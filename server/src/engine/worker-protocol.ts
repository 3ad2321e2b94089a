// Messages between the main thread and an engine worker (worker.ts). Control
// messages are small objects and rare; the per-step token report is a few typed
// arrays and one string for all sequences of the step (no per-token objects).
import type { KvType, LoadOptions, ModelInfo, SamplingConfig } from './types';

/** Bumped on any change here: a stale compiled worker refuses to start. */
export const WORKER_PROTOCOL_VERSION = 1;

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

/** Ints per entry of StepReport.records. */
export const RECORD_INTS = 6;
/**
 * Entry layout in StepReport.records: [id, token (-1: none), finish (Finish),
 * text length (UTF-16 units of this entry's slice of `text`), logprob count
 * (-1: none; else 1 + alternatives, stored in `logprobs` / `topIds`),
 * matched stop index (-1: none)].
 */
export enum Rec {
  Id = 0,
  Token = 1,
  Finish = 2,
  TextLength = 3,
  LogprobCount = 4,
  StopIndex = 5,
}

/** Everything one decode step produced, for every sequence that produced something. */
export interface StepReport {
  type: 'step';
  records: Int32Array;
  text: string;
  /** Per entry with logprobs: the token's logprob, then the alternatives' logprobs. */
  logprobs: Float32Array | null;
  /** Per entry with logprobs: the alternatives' ids (count - 1 of them). */
  topIds: Int32Array | null;
  /** When the step's tokens left the engine (nowMs(): epoch ms, comparable across threads). */
  time: number;
  /** Tokens fed to the engine in this step (prompt + decode) and the sequences they belong to. */
  batchTokens: number;
  batchSequences: number;
  /** The step's duration: batch building, one decode(), sampling, detokenizing. */
  stepMs: number;
}

export interface WorkerReady {
  type: 'ready';
  info: ModelInfo;
  contextLength: number;
  maxSequences: number;
}

export type FromWorker =
  | WorkerReady
  | StepReport
  | { type: 'load-error'; message: string; code?: string }
  /** A generation failed inside the engine; it has been dropped. */
  | { type: 'gen-error'; id: number; message: string }
  | { type: 'fatal'; message: string }
  | { type: 'closed' };

/** Per-sequence context used when --context is not given (the trained context can be huge). */
export const DEFAULT_CONTEXT_CAP = 4096;
