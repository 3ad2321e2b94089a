// Shapes shared by the engine bench and its llama.cpp peer.

export interface EngineNumbers {
  pp_tps: number;
  tg_tps: number;
  batch_tps: Record<string, number>;
}

export interface RunPlan {
  model: string;
  threads: number;
  prompt: number[]; // pp prompt
  genPrompt: number[]; // short prompt before timed generation
  genTokens: number; // timed tokens per sequence
  batchSizes: number[];
  reps: number; // timed repetitions; the best is reported
  contextLength: number; // per sequence
}

/**
 * One engine under test, opened once for the whole run so the bench can
 * alternate engines run by run (a shared machine's load then hits both alike).
 */
export interface BenchEngine {
  readonly name: string;
  /** Evaluates plan.prompt into an empty sequence; returns milliseconds. */
  pp(): Promise<number>;
  /**
   * n sequences (each a short distinct prompt, prefilled untimed) then decode
   * `steps` tokens each, greedily, stepping together; returns the milliseconds
   * of the decode steps.
   */
  generate(n: number, steps: number): Promise<number>;
  close(): Promise<void>;
}

/** The prompt of sequence i in generate(): the same length for all, never two alike. */
export function sequencePrompt(plan: RunPlan, i: number): number[] {
  return [...plan.genPrompt.slice(1), 10 + i];
}
