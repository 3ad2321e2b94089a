// One generation on the main thread: receives its tokens from the scheduler,
// writes them to its call as chunks, and ends with exactly one terminal message.
//
// Flow control: while the call's stream accepts writes, every step's tokens go
// out at once. When a write returns false (the client reads slowly), tokens
// accumulate in one pending chunk (coalescing) until 'drain'; past
// `pauseTokens` pending tokens the worker pauses this sequence (its slot stays,
// other sequences keep going); if the client still hasn't read after `stallMs`
// (or `abortTokens` pile up) the generation ends with RESOURCE_EXHAUSTED.
//
// With `coalesce: false` (an ablation) every token is written at once as its
// own message, whatever the call's state; the messages grpc-js has not sent
// yet count as the pending tokens for pausing.
//
// Per token nothing is allocated here: ids and UTF-8 text are copied from the
// step ring into the generation's PendingChunk, which encodes each message
// itself (written as a Buffer; see serializeResponse in service.ts).
import { Buffer } from 'node:buffer';
import type { Writable } from 'node:stream';
import { Finish } from '../engine/worker-protocol';
import { nowMs } from '../telemetry/clock';
import type { GenerationEnd, GenerationTrace } from '../telemetry/generation-trace';
import type { GenerationJob, Scheduler } from '../engine/scheduler';
import type { ServedModel } from '../engine/worker-pool';
import type { StartGeneration } from '../engine/worker-protocol';
import { FinishReason, type Final, type GenerateResponse } from '../generated/tokenstream/v1/tokenstream';
import { PendingChunk } from './chunk-encoder';
import { ApiError, deadlineExceeded, internal, resourceExhausted, toServiceError } from './status';
import type { ValidatedGeneration } from './validation';

export interface BackpressureOptions {
  /** Pending (unwritten) tokens at which the sequence's decoding pauses. */
  pauseTokens: number;
  /** Pending tokens at which the generation ends with RESOURCE_EXHAUSTED. */
  abortTokens: number;
  /** How long a paused generation waits for the client before RESOURCE_EXHAUSTED. */
  stallMs: number;
  /** Merge the tokens a call cannot take yet into one message (default true; false = one message per token: an ablation). */
  coalesce?: boolean;
}

export const DEFAULT_BACKPRESSURE: BackpressureOptions = { pauseTokens: 256, abortTokens: 4096, stallMs: 30_000, coalesce: true };

type WritableCall = Writable & { cancelled: boolean };

/** Writers with generations to flush once the current task is done (one flush for all calls). */
const flushQueue = new Set<CallWriter>();
let flushPending = false;

function runFlushQueue(): void {
  flushPending = false;
  for (const w of flushQueue) {
    flushQueue.delete(w);
    w.flushScheduled();
  }
}

/**
 * Writes responses of one call. `single` calls (Complete) carry one generation and
 * end with its terminal message (an error becomes the call's status).
 *
 * At most one message per call is on its way through grpc-js at a time: tokens
 * that arrive while it is (the transport or this thread is behind) merge into
 * the next message instead of queueing up as one message per step.
 */
export class CallWriter {
  private blocked = false;
  private ended = false;
  /** Messages handed to the call whose write has not completed. */
  private inFlight = 0;
  private readonly waiting = new Set<Generation>();
  private readonly scheduled = new Set<Generation>();
  private readonly written = (): void => {
    this.inFlight--;
    if (this.inFlight === 0 && !this.blocked) this.flushWaiting();
  };

  constructor(
    private readonly call: WritableCall,
    readonly single: boolean,
    /** Past the call's deadline grpc-js is ending the call: write nothing more. */
    private readonly deadline = Infinity,
  ) {
    call.on('drain', () => {
      this.blocked = false;
      this.flushWaiting();
    });
  }

  get closed(): boolean {
    return this.ended || this.call.cancelled || this.call.destroyed || this.call.writableEnded || (this.deadline !== Infinity && Date.now() >= this.deadline);
  }

  get canWrite(): boolean {
    return !this.blocked && this.inFlight === 0 && !this.closed;
  }

  /** Messages handed to the call and not yet written out by grpc-js. */
  get unwritten(): number {
    return this.inFlight;
  }

  /** A response, or one already encoded (a chunk from PendingChunk). */
  write(msg: GenerateResponse | Buffer): void {
    if (this.closed) return;
    this.inFlight++;
    if (!this.call.write(msg, this.written)) this.blocked = true;
  }

  /** `gen` has output to write once the call can take it. */
  wait(gen: Generation): void {
    this.waiting.add(gen);
  }

  /**
   * `gen` has output to write now. Writing happens in a microtask, after the task
   * at hand (reading every step a worker has published so far) is done: when
   * this thread lags behind the workers, their tokens merge into fewer messages
   * instead of queueing up as one message per step.
   */
  schedule(gen: Generation): void {
    this.scheduled.add(gen);
    flushQueue.add(this);
    if (!flushPending) {
      flushPending = true;
      queueMicrotask(runFlushQueue);
    }
  }

  /** @internal (the flush queue) */
  flushScheduled(): void {
    for (const g of this.scheduled) {
      this.scheduled.delete(g);
      this.waiting.add(g);
    }
    if (this.canWrite) this.flushWaiting();
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

  /** Every waiting generation writes its chunk (one message each), until the call pushes back. */
  private flushWaiting(): void {
    for (const gen of this.waiting) {
      this.waiting.delete(gen);
      gen.flush();
      if (this.blocked) break;
    }
  }
}

export type EndCause = 'cancel' | 'deadline' | 'slow' | 'disconnect';

let nextId = 1;

export class Generation implements GenerationJob {
  readonly id: number;
  readonly work: Omit<StartGeneration, 'type' | 'id'>;
  private state: 'new' | 'queued' | 'running' | 'done' = 'new';
  private cause: EndCause | null = null;
  private scheduler: Scheduler;

  // The chunk being gathered.
  private readonly pending = new PendingChunk();
  private readonly requestIdBytes: Buffer;
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
    this.requestIdBytes = Buffer.from(requestId, 'utf8');
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
    finish: Finish,
    stopIndex: number,
    text: Uint8Array,
    textStart: number,
    textLength: number,
    logprobs: Float32Array,
    lpOffset: number,
    lpCount: number,
    topIds: Int32Array,
    topOffset: number,
    time: number,
  ): void {
    if (this.state === 'done') return;
    const pending = this.pending;
    if (token >= 0) {
      if (this.completion === 0) this.firstTokenAt = time;
      this.lastTokenAt = time;
      this.trace?.token(time);
      this.completion++;
      pending.addToken(token);
      if (lpCount > 0) pending.addLogprob(token, logprobs, lpOffset, lpCount, topIds, topOffset);
      if (this.v.includeBytes) pending.addRaw(this.v.model.tokenizer.tokenBytes(token));
    }
    if (textLength > 0) pending.addText(text, textStart, textLength);
    if (finish !== Finish.None) {
      this.end(finish, stopIndex);
      return;
    }
    if (this.cause === 'disconnect') return;
    if (this.backpressure.coalesce === false) {
      this.writeEachToken();
      return;
    }
    if (this.writer.canWrite) {
      this.writer.schedule(this);
      return;
    }
    this.writer.wait(this);
    if (pending.count >= this.backpressure.abortTokens) {
      this.cancel('slow');
    } else if (pending.count >= this.backpressure.pauseTokens && !this.paused) {
      this.paused = true;
      this.scheduler.pause(this);
      this.stallTimer = setTimeout(() => this.cancel('slow'), this.backpressure.stallMs);
    }
  }

  /** Coalescing off: this step's token goes out now as its own message; unwritten messages count for pausing. */
  private writeEachToken(): void {
    if (!this.pending.empty) {
      const msg = this.pending.encode(this.requestIdBytes, this.index);
      this.index += this.pending.count;
      this.pending.clear();
      this.writer.write(msg);
      this.trace?.written(this.index);
    }
    const unwritten = this.writer.unwritten;
    if (unwritten >= this.backpressure.abortTokens) {
      this.cancel('slow');
    } else if (unwritten >= this.backpressure.pauseTokens && !this.paused) {
      this.paused = true;
      this.scheduler.pause(this);
      this.stallTimer = setTimeout(() => this.cancel('slow'), this.backpressure.stallMs);
      this.writer.wait(this); // flush() on 'drain' resumes it
    }
  }

  failed(message: string): void {
    this.terminate(internal(`engine error: ${message}`));
  }

  /** Writes the pending chunk (on 'drain', or at once when the stream is writable). */
  flush(): void {
    if (!this.pending.empty) {
      const msg = this.pending.encode(this.requestIdBytes, this.index);
      this.index += this.pending.count;
      this.pending.clear();
      this.writer.write(msg);
      this.trace?.written(this.index);
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
                `client too slow: ${Math.max(this.pending.count, this.backpressure.coalesce === false ? this.writer.unwritten : 0)} tokens unread; the generation was paused for ${this.backpressure.stallMs} ms without the client reading`,
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
}
