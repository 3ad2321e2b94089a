// A load generator for a running tokenstream server: keeps `streams` generations
// in flight for `durationMs`, and measures time to first token, inter-token
// latency and throughput as a client sees them.
//
// What a "stream" is: one bidirectional Generate call (the product's main API)
// held open for the whole run, carrying one generation at a time, the next one
// started as soon as the previous one's final message arrives. N streams are N
// clients that each keep one generation going (one HTTP/2 stream each, on the
// channel grpc-js shares between them). `api: 'complete'` uses one Complete call
// per generation instead (the server-streaming path).
//
// What is measured, in the client, at the moment each message is read:
// - TTFT: from just before the start request is written to the first message
//   carrying a token.
// - ITL: the gap between consecutive token-carrying messages of one generation,
//   per token. When the server merges several tokens into one message (it does
//   when the client or the transport lags; see Chunk in the proto), each of the
//   message's k tokens gets gap / k, so the ITL samples of a generation add up to
//   its decode time. There is one sample per token after the first message
//   (tokens that came with the first token have no gap of their own; TTFT covers
//   them). `messages` vs `tokens` shows how much merging happened.
// - tokens/s: every token received (also those of generations that later
//   failed) over the wall time from the first request to the last terminal
//   message.
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { ListModelsResponse } from '../../server/src/generated/tokenstream/v1/tokenstream';
import { percentiles } from '../../server/src/telemetry/latency-stats';
import { GenerationError, TokenStreamClient, type GenerateSession, type Generation, type GenerationInput } from './client';

export const DEFAULT_LOAD_PROMPT = 'The quick brown fox jumps over the lazy dog. Once upon a time, in a small village by the sea,';

export interface LoadProgress {
  elapsedMs: number;
  requests: number;
  completed: number;
  inFlight: number;
  tokens: number;
  tokensPerSecond: number;
  errors: number;
}

export interface LoadOptions {
  address: string; // host:port of a running tokenstream server
  streams: number; // concurrent generations kept in flight
  durationMs: number; // keep starting new generations until this elapses, then wait for in-flight ones
  maxTokens: number; // per generation
  prompt?: string; // default: a fixed short English prompt
  model?: string; // model name if the server has several
  ignoreEos?: boolean; // default true, so every generation yields maxTokens
  greedy?: boolean; // default true
  signal?: AbortSignal;
  /** 'generate' (default): one Generate stream per stream; 'complete': a Complete call per generation. */
  api?: 'generate' | 'complete';
  /** Give up on reaching the server after this long (default 5000 ms). */
  connectTimeoutMs?: number;
  /** After `durationMs`, cancel generations still running after this long (default 60 000 ms). */
  drainTimeoutMs?: number;
  /** Called every `progressIntervalMs` (default 1000) while the load runs. */
  onProgress?: (p: LoadProgress) => void;
  progressIntervalMs?: number;
}

export interface LatencySummary {
  count: number;
  mean: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
} // milliseconds

export interface LoadResult {
  streams: number;
  durationMs: number; // actual wall time from first request to last final message
  requests: number;
  completed: number;
  tokens: number;
  tokensPerSecond: number;
  ttftMs: LatencySummary;
  itlMs: LatencySummary;
  errors: Record<string, number>; // gRPC status name -> count
  ttftSamples: number[];
  itlSamples: number[]; // raw, ms
  /** Token-carrying messages received (tokens / messages > 1: the server merged tokens). */
  messages?: number;
  /** The model that served the load (the server's default when none was named). */
  model?: string;
  address?: string;
  maxTokens?: number;
  api?: 'generate' | 'complete';
  /** The run was stopped by `signal`. */
  aborted?: boolean;
}

/** The run could not start: the server is unreachable, or the options are wrong. */
export class LoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoadError';
  }
}

/** Mean, nearest-rank p50/p95/p99 and max; all 0 when there are no samples. */
export function summarize(samples: readonly number[]): LatencySummary {
  const n = samples.length;
  if (n === 0) return { count: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 };
  const values = Float64Array.from(samples);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i];
  const [p50, p95, p99, max] = percentiles(values, n, [0.5, 0.95, 0.99, 1]);
  return { count: n, mean: sum / n, p50, p95, p99, max };
}

function checkOptions(o: LoadOptions): void {
  const int = (name: string, v: number, min: number): void => {
    if (!Number.isInteger(v) || v < min) throw new LoadError(`${name} must be an integer >= ${min} (got ${v})`);
  };
  int('streams', o.streams, 1);
  int('maxTokens', o.maxTokens, 1);
  if (!(o.durationMs > 0) || !Number.isFinite(o.durationMs)) throw new LoadError(`durationMs must be a positive number (got ${o.durationMs})`);
  if (!o.address) throw new LoadError('address is empty');
}

/** ListModels with a deadline: fails fast (and clearly) when nothing answers at `address`. */
async function preflight(client: TokenStreamClient, o: LoadOptions): Promise<string> {
  const timeoutMs = o.connectTimeoutMs ?? 5000;
  let res: ListModelsResponse;
  try {
    res = await new Promise<ListModelsResponse>((resolve, reject) =>
      client.grpc.listModels({}, new Metadata(), { deadline: Date.now() + timeoutMs }, (err: ServiceError | null, r: ListModelsResponse) => (err ? reject(err) : resolve(r))),
    );
  } catch (err) {
    const e = err as ServiceError;
    const why = e.code === status.DEADLINE_EXCEEDED ? `no answer within ${timeoutMs} ms` : `${status[e.code] ?? 'ERROR'}: ${e.details || e.message}`;
    throw new LoadError(`cannot reach a tokenstream server at ${o.address} (${why})`);
  }
  if (o.model) {
    if (!res.models.some((m) => m.name === o.model)) {
      throw new LoadError(`the server at ${o.address} has no model '${o.model}' (it serves: ${res.models.map((m) => m.name).join(', ') || 'none'})`);
    }
    return o.model;
  }
  return res.models.find((m) => m.isDefault)?.name ?? res.models[0]?.name ?? '';
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the load and returns what was measured. Rejects with LoadError only when the run cannot start. */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  checkOptions(o);
  const api = o.api ?? 'generate';
  // Reconnect quickly if the server goes away mid-run (its errors are counted, not thrown).
  const client = new TokenStreamClient(o.address, { options: { 'grpc.max_reconnect_backoff_ms': 1000 } });
  try {
    const model = await preflight(client, o);
    const input: GenerationInput = {
      prompt: o.prompt ?? DEFAULT_LOAD_PROMPT,
      model: o.model ?? '',
      params: { maxTokens: o.maxTokens, ignoreEos: o.ignoreEos ?? true, ...(o.greedy ?? true ? { temperature: 0 } : {}) },
    };
    const run = new LoadRun(client, input, o, api);
    const result = await run.execute();
    return { ...result, model, address: o.address, maxTokens: o.maxTokens, api };
  } finally {
    client.close();
  }
}

/** The state of one run: counters and samples shared by the stream loops. */
class LoadRun {
  private requests = 0;
  private completed = 0;
  private tokens = 0;
  private messages = 0;
  private inFlight = 0;
  private readonly errors: Record<string, number> = {};
  private errorCount = 0;
  private readonly ttft: number[] = [];
  private readonly itl: number[] = [];
  private firstSentAt = Infinity;
  private lastEndAt = 0;
  private stopAt = 0;
  private stopping = false;
  private aborted = false;
  private readonly sessions = new Set<GenerateSession>();
  private readonly running = new Set<Generation>();

  constructor(
    private readonly client: TokenStreamClient,
    private readonly input: GenerationInput,
    private readonly o: LoadOptions,
    private readonly api: 'generate' | 'complete',
  ) {}

  async execute(): Promise<Omit<LoadResult, 'model' | 'address' | 'maxTokens' | 'api'>> {
    const startedAt = performance.now();
    this.stopAt = startedAt + this.o.durationMs;
    const onAbort = (): void => this.abort();
    if (this.o.signal?.aborted) this.aborted = this.stopping = true;
    this.o.signal?.addEventListener('abort', onAbort);
    const progress = this.o.onProgress
      ? setInterval(() => this.o.onProgress!(this.progress(performance.now() - startedAt)), this.o.progressIntervalMs ?? 1000)
      : undefined;
    // Past the duration, stop starting; past the drain timeout, cancel what still runs.
    const stopTimer = setTimeout(() => {
      this.stopping = true;
      drainTimer = setTimeout(() => this.cancelAll(), this.o.drainTimeoutMs ?? 60_000);
    }, this.o.durationMs);
    let drainTimer: NodeJS.Timeout | undefined;
    try {
      await Promise.all(Array.from({ length: this.o.streams }, () => (this.api === 'generate' ? this.streamLoop() : this.completeLoop())));
    } finally {
      clearInterval(progress);
      clearTimeout(stopTimer);
      clearTimeout(drainTimer);
      this.o.signal?.removeEventListener('abort', onAbort);
    }
    const durationMs = this.requests > 0 ? Math.max(0, this.lastEndAt - this.firstSentAt) : 0;
    return {
      streams: this.o.streams,
      durationMs,
      requests: this.requests,
      completed: this.completed,
      tokens: this.tokens,
      tokensPerSecond: durationMs > 0 ? this.tokens / (durationMs / 1000) : 0,
      ttftMs: summarize(this.ttft),
      itlMs: summarize(this.itl),
      errors: this.errors,
      ttftSamples: this.ttft,
      itlSamples: this.itl,
      messages: this.messages,
      ...(this.aborted ? { aborted: true } : {}),
    };
  }

  private progress(elapsedMs: number): LoadProgress {
    const since = this.firstSentAt === Infinity ? 0 : performance.now() - this.firstSentAt;
    return {
      elapsedMs,
      requests: this.requests,
      completed: this.completed,
      inFlight: this.inFlight,
      tokens: this.tokens,
      tokensPerSecond: since > 0 ? this.tokens / (since / 1000) : 0,
      errors: this.errorCount,
    };
  }

  private get keepGoing(): boolean {
    return !this.stopping && performance.now() < this.stopAt;
  }

  private abort(): void {
    this.aborted = true;
    this.stopping = true;
    this.cancelAll();
  }

  /** Ends every call in flight: their generations fail with CANCELLED. */
  private cancelAll(): void {
    for (const s of this.sessions) s.abort();
    for (const g of this.running) g.cancel();
  }

  /** One Generate stream carrying one generation at a time. */
  private async streamLoop(): Promise<void> {
    let session: GenerateSession | null = null;
    let ended = false;
    try {
      while (this.keepGoing) {
        if (!session || ended) {
          if (session) this.sessions.delete(session);
          const s = this.client.session();
          session = s;
          ended = false;
          this.sessions.add(s);
          void s.closed.then(() => {
            if (session === s) ended = true;
          });
        }
        await this.measure((input) => session!.generate(input));
      }
    } finally {
      if (session) {
        // Half-close and let the server end the call; don't wait on a server that hangs.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([session.close(), new Promise((r) => (timer = setTimeout(r, 2000)))]);
        clearTimeout(timer);
        this.sessions.delete(session);
      }
    }
  }

  /** One Complete call per generation. */
  private async completeLoop(): Promise<void> {
    while (this.keepGoing) await this.measure((input) => this.client.complete(input));
  }

  /** Starts one generation, reads it to its end and records what it measured. */
  private async measure(start: (input: GenerationInput) => Generation): Promise<void> {
    const sentAt = performance.now();
    if (sentAt < this.firstSentAt) this.firstSentAt = sentAt;
    this.requests++;
    this.inFlight++;
    const gen = start(this.input);
    this.running.add(gen);
    let got = 0;
    let lastAt = 0;
    let failed = false;
    try {
      for await (const chunk of gen) {
        const k = chunk.tokenIds.length;
        if (k === 0) continue;
        const now = performance.now();
        this.messages++;
        if (got === 0) {
          // Tokens that came with the first one have no gap of their own: TTFT covers them.
          this.ttft.push(now - sentAt);
        } else {
          const gap = (now - lastAt) / k;
          for (let i = 0; i < k; i++) this.itl.push(gap);
        }
        got += k;
        this.tokens += k;
        lastAt = now;
      }
      this.completed++;
    } catch (err) {
      failed = true;
      const name = err instanceof GenerationError ? (status[err.code] ?? `CODE_${err.code}`) : err instanceof Error ? err.name : 'ERROR';
      this.errors[name] = (this.errors[name] ?? 0) + 1;
      this.errorCount++;
    } finally {
      this.running.delete(gen);
      this.inFlight--;
      this.lastEndAt = Math.max(this.lastEndAt, performance.now());
    }
    // A failing server must not turn this loop into a busy one.
    if (failed && this.keepGoing) await sleep(50);
  }
}
