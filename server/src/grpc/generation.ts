// One generation on the main thread: receives its tokens from the scheduler,
// writes them to its call as chunks, and ends with exactly one terminal message.
//
// Flow control: while the call's stream accepts writes, every step's tokens go
// out at once. When a write returns false (the client reads slowly), tokens
// accumulate in one pending chunk (coalescing) until 'drain'; past
// `pauseTokens` pending tokens the worker pauses this sequence (its slot stays,
// other sequences keep going); if the client still hasn't read after `stallMs`
// (or `abortTokens` pile up) the generation ends with RESOURCE_EXHAUSTED.
import { Buffer } from 'node:buffer';
import type { Writable } from 'node:stream';
import { Finish } from '../engine/worker-protocol';
import { nowMs } from '../telemetry/clock';
import type { GenerationEnd, GenerationTrace } from '../telemetry/generation-trace';
import type { GenerationJob, Scheduler } from '../engine/scheduler';
import type { ServedModel } from '../engine/worker-pool';
import type { StartGeneration } from '../engine/worker-protocol';
import { FinishReason, type Final, type GenerateResponse, type TokenLogprob } from '../generated/tokenstream/v1/tokenstream';
import { ApiError, deadlineExceeded, internal, resourceExhausted, toServiceError } from './status';
import type { ValidatedGeneration } from './validation';

export interface BackpressureOptions {
  /** Pending (unwritten) tokens at which the sequence's decoding pauses. */
  pauseTokens: number;
  /** Pending tokens at which the generation ends with RESOURCE_EXHAUSTED. */
  abortTokens: number;
  /** How long a paused generation waits for the client before RESOURCE_EXHAUSTED. */
  stallMs: number;
}

export const DEFAULT_BACKPRESSURE: BackpressureOptions = { pauseTokens: 256, abortTokens: 4096, stallMs: 30_000 };

type WritableCall = Writable & { cancelled: boolean };

/**
 * Writes responses of one call. `single` calls (Complete) carry one generation and
 * end with its terminal message (an error becomes the call's status).
 */
export class CallWriter {
  private blocked = false;
  private ended = false;
  private readonly waiting = new Set<Generation>();
  private readonly scheduled = new Set<Generation>();
  private flushQueued = false;

  constructor(
    private readonly call: WritableCall,
    readonly single: boolean,
    /** Past the call's deadline grpc-js is ending the call: write nothing more. */
    private readonly deadline = Infinity,
  ) {
    call.on('drain', () => this.onDrain());
  }

  get closed(): boolean {
    return this.ended || this.call.cancelled || this.call.destroyed || this.call.writableEnded || Date.now() >= this.deadline;
  }

  get canWrite(): boolean {
    return !this.blocked && !this.closed;
  }

  write(msg: GenerateResponse): void {
    if (this.closed) return;
    if (!this.call.write(msg)) this.blocked = true;
  }

  /** `gen` has output to write at the next 'drain'. */
  wait(gen: Generation): void {
    this.waiting.add(gen);
  }

  /**
   * `gen` has output to write now. Writing happens in a setImmediate, after every
   * step report that reached this thread in the same event-loop turn has been
   * taken in: when this thread lags behind the workers, their tokens merge into
   * fewer messages instead of queueing up as one message per step.
   */
  schedule(gen: Generation): void {
    this.scheduled.add(gen);
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      for (const g of this.scheduled) {
        this.scheduled.delete(g);
        if (this.canWrite) g.flush();
        else this.waiting.add(g);
      }
    });
  }

  end(): void {
    if (this.closed) return;
    this.ended = true;
    this.call.end();
  }

  /** Ends the call with an error status (after anything already written). */
  fail(err: ApiError): void {
    if (this.closed) return;
    this.ended = true;
    this.call.emit('error', toServiceError(err));
  }

  private onDrain(): void {
    this.blocked = false;
    for (const gen of this.waiting) {
      this.waiting.delete(gen);
      gen.flush();
      if (this.blocked) break;
    }
  }
}

export type EndCause = 'cancel' | 'deadline' | 'slow' | 'disconnect';

const EMPTY = Buffer.alloc(0);
let nextId = 1;

export class Generation implements GenerationJob {
  readonly id: number;
  readonly work: Omit<StartGeneration, 'type' | 'id'>;
  private state: 'new' | 'queued' | 'running' | 'done' = 'new';
  private cause: EndCause | null = null;
  private scheduler: Scheduler;

  // The chunk being gathered.
  private pendingIds: number[] = [];
  private pendingText = '';
  private pendingLogprobs: TokenLogprob[] = [];
  private index = 0;
  private completion = 0;
  private paused = false;
  private stallTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;

  // Epoch milliseconds (nowMs()); token times are taken in the worker.
  private readonly arrivedAt = nowMs();
  private dispatchedAt = 0;
  private firstTokenAt = 0;
  private lastTokenAt = 0;
  /** The worker that ran it (-1: none yet). */
  workerIndex = -1;
  /** How it ended, for its span (set just before complete()). */
  private outcome: GenerationEnd = {};

  constructor(
    readonly requestId: string,
    private readonly v: ValidatedGeneration<ServedModel>,
    private readonly writer: CallWriter,
    private readonly backpressure: BackpressureOptions,
    private readonly onDone: (gen: Generation) => void,
    /** The call's deadline (Date.now() ms; Infinity = none): grpc-js ends the call itself then. */
    private readonly callDeadline = Infinity,
    /** Its span and request metrics (telemetry/generation-trace.ts). */
    private readonly trace?: GenerationTrace,
  ) {
    this.id = nextId;
    nextId = nextId >= 0x7fffffff ? 1 : nextId + 1;
    this.scheduler = v.model.scheduler;
    this.work = {
      tokens: v.tokens,
      maxTokens: v.maxTokens,
      sampling: v.sampling,
      ignoreEos: v.ignoreEos,
      stops: v.stops,
      logprobs: v.logprobs,
      deadline: 0,
    };
    // The worker checks the earlier of the generation's and the call's deadline at every step.
    const own = v.timeoutMs > 0 ? Date.now() + v.timeoutMs : Infinity;
    const deadline = Math.min(own, callDeadline);
    if (Number.isFinite(deadline)) this.work.deadline = deadline;
  }

  get done(): boolean {
    return this.state === 'done';
  }

  /** Hands the generation to the scheduler (throws RESOURCE_EXHAUSTED / UNAVAILABLE). */
  start(): void {
    this.scheduler.submit(this);
    if (this.state === 'new') this.state = 'queued';
    if (this.v.timeoutMs > 0) {
      this.deadlineTimer = setTimeout(() => this.cancel('deadline'), this.v.timeoutMs);
    }
  }

  dispatched(workerIndex: number): void {
    this.state = 'running';
    this.workerIndex = workerIndex;
    this.dispatchedAt = nowMs();
    this.trace?.admitted(this.dispatchedAt, workerIndex);
  }

  /**
   * Stops the generation. Queued: ends now. Running: the worker drops it within
   * one step and its last record ends it. 'disconnect' writes nothing more.
   */
  cancel(cause: EndCause): void {
    if (this.state === 'done') return;
    if (this.cause !== null && cause !== 'disconnect') return;
    this.cause = cause;
    const where = this.scheduler.cancel(this);
    if (where !== 'running') this.end(Finish.Cancelled, -1);
  }

  record(
    token: number,
    text: string,
    finish: Finish,
    stopIndex: number,
    logprobs: Float32Array | null,
    lpOffset: number,
    lpCount: number,
    topIds: Int32Array | null,
    topOffset: number,
    time: number,
  ): void {
    if (this.state === 'done') return;
    if (token >= 0) {
      if (this.completion === 0) this.firstTokenAt = time;
      this.lastTokenAt = time;
      this.trace?.token(time);
      this.completion++;
      this.pendingIds.push(token);
      if (logprobs && lpCount > 0) {
        const top = new Array(lpCount - 1);
        for (let i = 0; i < lpCount - 1; i++) top[i] = { tokenId: topIds![topOffset + i], logprob: logprobs[lpOffset + 1 + i] };
        this.pendingLogprobs.push({ tokenId: token, logprob: logprobs[lpOffset], top });
      }
    }
    this.pendingText += text;
    if (finish !== Finish.None) {
      this.end(finish, stopIndex);
      return;
    }
    if (this.cause === 'disconnect') return;
    if (this.writer.canWrite) {
      this.writer.schedule(this);
      return;
    }
    this.writer.wait(this);
    const pending = this.pendingIds.length;
    if (pending >= this.backpressure.abortTokens) {
      this.cancel('slow');
    } else if (pending >= this.backpressure.pauseTokens && !this.paused) {
      this.paused = true;
      this.scheduler.pause(this);
      this.stallTimer = setTimeout(() => this.cancel('slow'), this.backpressure.stallMs);
    }
  }

  failed(message: string): void {
    this.terminate(internal(`engine error: ${message}`));
  }

  /** Writes the pending chunk (on 'drain', or at once when the stream is writable). */
  flush(): void {
    if (this.pendingIds.length > 0 || this.pendingText.length > 0) {
      const ids = this.pendingIds;
      this.writer.write({
        requestId: this.requestId,
        chunk: {
          tokenIds: ids,
          text: this.pendingText,
          index: this.index,
          logprobs: this.pendingLogprobs,
          raw: this.v.includeBytes ? this.rawBytes(ids) : EMPTY,
        },
      });
      this.index += ids.length;
      this.trace?.written(this.index);
      this.pendingIds = [];
      this.pendingText = '';
      if (this.pendingLogprobs.length > 0) this.pendingLogprobs = [];
    }
    if (this.paused && this.state !== 'done') {
      this.paused = false;
      if (this.stallTimer) clearTimeout(this.stallTimer);
      this.stallTimer = null;
      this.scheduler.resume(this);
    }
  }

  private end(finish: Finish, stopIndex: number): void {
    switch (finish) {
      case Finish.Eos:
        return this.finish(FinishReason.STOP, '');
      case Finish.Length:
        return this.finish(FinishReason.LENGTH, '');
      case Finish.StopSequence:
        return this.finish(FinishReason.STOP_SEQUENCE, this.v.stops[stopIndex] ?? '');
      case Finish.Deadline:
        if (Date.now() >= this.callDeadline) {
          // The call's own deadline: grpc-js ends the call with DEADLINE_EXCEEDED.
          this.cause = 'disconnect';
          this.outcome = { error: { code: 4, message: 'call deadline exceeded' } };
          return this.complete(() => undefined);
        }
        return this.terminate(deadlineExceeded(`generation deadline of ${this.v.timeoutMs} ms exceeded`));
      case Finish.Error:
        return this.terminate(internal('engine error'));
      case Finish.Cancelled:
      default:
        switch (this.cause) {
          case 'deadline':
            return this.terminate(deadlineExceeded(`generation deadline of ${this.v.timeoutMs} ms exceeded`));
          case 'slow':
            return this.terminate(
              resourceExhausted(
                `client too slow: ${this.pendingIds.length} tokens unread; the generation was paused for ${this.backpressure.stallMs} ms without the client reading`,
              ),
            );
          default:
            return this.finish(FinishReason.CANCELLED, '');
        }
    }
  }

  private finish(reason: FinishReason, matchedStop: string): void {
    const final: Final = {
      finishReason: reason,
      usage: { promptTokens: this.v.tokens.length, completionTokens: this.completion },
      timings: this.timings(),
      matchedStop,
      traceId: this.trace?.traceId ?? '',
    };
    this.outcome = { finishReason: FinishReason[reason] };
    this.complete(() => {
      this.writer.write({ requestId: this.requestId, final });
      if (this.writer.single) this.writer.end();
    });
  }

  private terminate(err: ApiError): void {
    this.outcome = { error: { code: err.code, message: err.message } };
    this.complete(() => {
      if (this.writer.single) this.writer.fail(err);
      else this.writer.write({ requestId: this.requestId, error: { code: err.code, message: err.message } });
    });
  }

  /** Exactly once: write what is pending, then the terminal message (unless the client is gone). */
  private complete(writeTerminal: () => void): void {
    if (this.state === 'done') return;
    this.state = 'done';
    if (this.stallTimer) clearTimeout(this.stallTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.cause !== 'disconnect') {
      this.flush();
      writeTerminal();
    }
    this.trace?.end({ ...this.outcome, promptTokens: this.v.tokens.length, completionTokens: this.completion });
    this.onDone(this);
  }

  private timings(): Final['timings'] {
    const end = nowMs();
    const queueEnd = this.dispatchedAt || end;
    const decodeSeconds = (this.lastTokenAt - this.firstTokenAt) / 1000;
    return {
      queueMs: queueEnd - this.arrivedAt,
      timeToFirstTokenMs: this.firstTokenAt ? this.firstTokenAt - this.arrivedAt : 0,
      decodeTokensPerSecond: this.completion > 1 && decodeSeconds > 0 ? (this.completion - 1) / decodeSeconds : 0,
      totalMs: end - this.arrivedAt,
    };
  }

  private rawBytes(ids: number[]): Buffer {
    const tok = this.v.model.tokenizer;
    return Buffer.concat(ids.map((id) => tok.tokenBytes(id)));
  }
}
