// An engine worker thread: loads the model (the weights are a shared read-only
// mapping, so several workers on one file cost no extra memory), owns one Session
// with `maxSequences` KV slots, detokenizes from the main thread's piece table
// (shared memory: no vocabulary of its own) and runs continuous batching:
//
//   each step: take new messages (starts, cancels, pauses) without yielding,
//              end cancelled / expired sequences,
//              one token for every decoding sequence + a prompt chunk of the
//              sequences still reading their prompt (split at fixed multiples of
//              prefillChunk, so a long prompt never holds up running streams),
//              one decode() for all of it, sample each sequence,
//              detokenize and match stop strings, write one report frame into
//              the ring shared with the main thread (step-ring.ts).
//
// With maxBatchSequences > 0 (an ablation: 1 = batching off) a step takes at
// most that many sequences, each a token or a prompt chunk, in turns.
//
// The loop runs synchronously while there is work; messages are pulled with
// receiveMessageOnPort between steps (so a cancel takes effect within one step,
// also during a long prompt), and the thread sleeps in its event loop when idle.
import * as os from 'node:os';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { Model } from './model';
import { nowMs } from '../telemetry/clock';
// Not '../tokenizer': a worker loads no vocabulary and no tokenizer code, only
// the main thread's table of pieces (piece-table.ts) and the two stream helpers.
import { PieceTable } from '../tokenizer/piece-table';
import { StopMatcher } from '../tokenizer/stop-matcher';
import { StreamDecoder } from '../tokenizer/stream-decoder';
import type { Batch, Session } from './types';
import { StepWriter } from './step-ring';
import {
  DEFAULT_CONTEXT_CAP,
  Finish,
  STEPS_READY,
  WORKER_PROTOCOL_VERSION,
  type FromWorker,
  type StartGeneration,
  type ToWorker,
  type WorkerConfig,
} from './worker-protocol';

/** One generation in a KV slot. */
interface Sequence {
  id: number;
  slot: number;
  prompt: Int32Array;
  /** Prompt tokens already decoded. */
  fed: number;
  /** Tokens in the slot's KV cache once the current step's batch is decoded. */
  pos: number;
  /** The last sampled token, fed at the next step. */
  lastToken: number;
  generated: number;
  maxTokens: number;
  ignoreEos: boolean;
  paused: boolean;
  cancelled: boolean;
  deadline: number;
  decoder: StreamDecoder;
  stopper: StopMatcher | null;
  stops: string[];
  /** Text given to the stop matcher and not emitted yet (to tell which stop string matched). */
  stopHeld: string;
  logprobs: number;
  /** Row of this sequence's logits in the current step (-1: none). */
  row: number;
}

const port = parentPort!;
const config = workerData as WorkerConfig;

function post(msg: FromWorker, transfer?: ArrayBuffer[]): void {
  port.postMessage(msg, transfer);
}

class BatchingEngine {
  private readonly slots: Array<Sequence | null>;
  /** Active sequences in admission order (prompt chunks are served first come, first served). */
  private readonly active: Sequence[] = [];
  private readonly byId = new Map<number, Sequence>();
  private readonly batch: Batch;
  private readonly batchSeqs: Sequence[];
  /** buildLimitedBatch's sequences of the step (kept to allocate nothing per step) */
  private readonly served: Sequence[] = [];
  private readonly report: StepWriter;
  private running = false;
  private closing = false;
  private closed = false;
  /** The vocabulary's pieces: the main thread's first message (no generation comes before it). */
  private pieces!: PieceTable;

  constructor(
    private readonly model: Model,
    private readonly session: Session,
    private readonly prefillChunk: number,
    /** 0: every sequence in every step; else at most this many, round robin */
    private readonly maxBatchSequences = 0,
  ) {
    this.slots = new Array(session.maxSequences).fill(null);
    const cap = session.maxBatch;
    this.batch = { seq: new Int32Array(cap), token: new Int32Array(cap), pos: new Int32Array(cap), logits: new Uint8Array(cap), length: 0 };
    this.batchSeqs = new Array(cap);
    this.report = new StepWriter(
      config.ring,
      () => port.postMessage(STEPS_READY),
      (frame) => post({ type: 'step', frame }, [frame]),
    );
  }

  /** Handles one message; starts the loop if it was idle. */
  onMessage(msg: ToWorker): void {
    this.handle(msg);
    if (!this.running) this.run();
  }

  private handle(msg: ToWorker): void {
    switch (msg.type) {
      case 'start':
        this.admit(msg);
        break;
      case 'cancel': {
        const s = this.byId.get(msg.id);
        if (s) s.cancelled = true;
        break;
      }
      case 'pause': {
        const s = this.byId.get(msg.id);
        if (s) s.paused = true;
        break;
      }
      case 'resume': {
        const s = this.byId.get(msg.id);
        if (s) s.paused = false;
        break;
      }
      case 'pieces':
        this.pieces = new PieceTable(msg.table);
        post({ type: 'ready', info: this.model.info, contextLength: this.session.contextLength, maxSequences: this.session.maxSequences });
        break;
      case 'shutdown':
        this.closing = true;
        if (msg.force) for (const s of this.active) s.cancelled = true;
        break;
    }
  }

  private admit(msg: StartGeneration): void {
    const slot = this.slots.indexOf(null);
    if (slot < 0 || this.byId.has(msg.id)) {
      post({ type: 'gen-error', id: msg.id, message: slot < 0 ? 'no free sequence slot' : `duplicate generation id ${msg.id}` });
      return;
    }
    try {
      this.session.clearSequence(slot);
      const history = msg.tokens.length > msg.sampling.penaltyLastN ? msg.tokens.subarray(msg.tokens.length - msg.sampling.penaltyLastN) : msg.tokens;
      this.session.setSampler(slot, msg.sampling, history);
    } catch (err) {
      post({ type: 'gen-error', id: msg.id, message: errorMessage(err) });
      return;
    }
    const seq: Sequence = {
      id: msg.id,
      slot,
      prompt: msg.tokens,
      fed: 0,
      pos: 0,
      lastToken: -1,
      generated: 0,
      maxTokens: msg.maxTokens,
      ignoreEos: msg.ignoreEos,
      paused: false,
      cancelled: false,
      deadline: msg.deadline,
      decoder: new StreamDecoder(this.pieces, false),
      stopper: msg.stops.length > 0 ? new StopMatcher(msg.stops) : null,
      stops: msg.stops,
      stopHeld: '',
      logprobs: msg.logprobs,
      row: -1,
    };
    this.slots[slot] = seq;
    this.active.push(seq);
    this.byId.set(seq.id, seq);
  }

  private drainMessages(): void {
    for (;;) {
      const m = receiveMessageOnPort(port);
      if (!m) return;
      this.handle(m.message as ToWorker);
    }
  }

  /** Steps until nothing can run (no sequences, or all paused). */
  private run(): void {
    this.running = true;
    try {
      for (;;) {
        this.drainMessages();
        const t0 = performance.now();
        this.endStopped();
        const fed = this.buildBatch();
        if (fed === 0) {
          if (!this.report.empty) this.report.send(nowMs(), 0, 0, 0);
          break;
        }
        const sequences = this.batchSequenceCount();
        this.decodeAndSample();
        this.report.send(nowMs(), performance.now() - t0, fed, sequences);
      }
    } finally {
      this.running = false;
    }
    if (this.closing && this.active.length === 0) this.close();
  }

  /** Ends cancelled sequences and those past their deadline. */
  private endStopped(): void {
    let now = 0;
    for (let i = 0; i < this.active.length; i++) {
      const s = this.active[i];
      let finish = Finish.None;
      if (s.cancelled) finish = Finish.Cancelled;
      else if (s.deadline > 0 && (now || (now = Date.now())) >= s.deadline) finish = Finish.Deadline;
      if (finish !== Finish.None) {
        this.report.add(s.id, -1, finish, this.flushText(s).text, -1);
        this.release(s);
        i--;
      }
    }
  }

  /** Fills the batch; returns the number of entries. */
  private buildBatch(): number {
    if (this.maxBatchSequences > 0) return this.buildLimitedBatch(this.maxBatchSequences);
    const b = this.batch;
    const cap = b.seq.length;
    const ctx = this.session.contextLength;
    let n = 0;
    // One token for every decoding sequence.
    for (let i = 0; i < this.active.length; i++) {
      const s = this.active[i];
      s.row = -1;
      if (s.paused || s.fed < s.prompt.length) continue;
      if (s.pos >= ctx) {
        // The sampled token has no room in the context: the sequence is full.
        this.report.add(s.id, -1, Finish.Length, this.flushText(s).text, -1);
        this.release(s);
        i--;
        continue;
      }
      n = this.addDecodeEntry(s, n);
    }
    // Prompt chunks, first come first served, while the batch has room.
    for (const s of this.active) {
      if (s.paused || s.fed >= s.prompt.length) continue;
      const end = this.chunkEnd(s);
      if (n + end - s.fed > cap) break;
      n = this.addPromptChunk(s, n, end);
    }
    b.length = n;
    return n;
  }

  /**
   * At most `limit` sequences: the first ones in `active` that can run, each
   * with its token or its next prompt chunk; those then move to the back of
   * `active`, so every sequence gets its turn (round robin).
   */
  private buildLimitedBatch(limit: number): number {
    const b = this.batch;
    const cap = b.seq.length;
    const ctx = this.session.contextLength;
    const served = this.served;
    served.length = 0;
    let n = 0;
    for (let i = 0; i < this.active.length && served.length < limit; i++) {
      const s = this.active[i];
      if (s.paused) continue;
      if (s.fed >= s.prompt.length) {
        if (s.pos >= ctx) {
          this.report.add(s.id, -1, Finish.Length, this.flushText(s).text, -1);
          this.release(s);
          i--;
          continue;
        }
        n = this.addDecodeEntry(s, n);
      } else {
        const end = this.chunkEnd(s);
        if (n + end - s.fed > cap) break;
        n = this.addPromptChunk(s, n, end);
      }
      served.push(s);
    }
    for (const s of served) {
      this.active.splice(this.active.indexOf(s), 1);
      this.active.push(s);
    }
    b.length = n;
    return n;
  }

  /** Batch entry n: the sequence's last sampled token at its next position. Returns n + 1. */
  private addDecodeEntry(s: Sequence, n: number): number {
    const b = this.batch;
    b.seq[n] = s.slot;
    b.token[n] = s.lastToken;
    b.pos[n] = s.pos;
    b.logits[n] = 1;
    this.batchSeqs[n] = s;
    s.pos++;
    return n + 1;
  }

  /** Where the sequence's next prompt chunk ends: the next multiple of the chunk size, or the prompt's end. */
  private chunkEnd(s: Sequence): number {
    return Math.min(s.prompt.length, (Math.floor(s.fed / this.prefillChunk) + 1) * this.prefillChunk);
  }

  /** Entries n.. : prompt tokens fed..end-1, logits for the prompt's last token only. Returns the next n. */
  private addPromptChunk(s: Sequence, n: number, end: number): number {
    const b = this.batch;
    for (let p = s.fed; p < end; p++) {
      b.seq[n] = s.slot;
      b.token[n] = s.prompt[p];
      b.pos[n] = p;
      b.logits[n] = p === s.prompt.length - 1 ? 1 : 0;
      this.batchSeqs[n] = s;
      n++;
    }
    s.fed = end;
    s.pos = end;
    return n;
  }

  /** Distinct sequences in the batch (entries of one sequence are contiguous). */
  private batchSequenceCount(): number {
    let n = 0;
    for (let i = 0; i < this.batch.length; i++) if (i === 0 || this.batchSeqs[i] !== this.batchSeqs[i - 1]) n++;
    return n;
  }

  private decodeAndSample(): void {
    const b = this.batch;
    try {
      this.session.decode(b);
    } catch (err) {
      // The engine failed on this batch: every sequence in it ends with an error.
      const failed = new Set<Sequence>();
      for (let i = 0; i < b.length; i++) failed.add(this.batchSeqs[i]);
      for (const s of failed) {
        post({ type: 'gen-error', id: s.id, message: errorMessage(err) });
        this.release(s);
      }
      return;
    }
    let row = 0;
    for (let i = 0; i < b.length; i++) {
      if (b.logits[i] === 0) continue;
      const s = this.batchSeqs[i];
      const r = row++;
      let sampled;
      try {
        sampled = this.session.sample(s.slot, r);
      } catch (err) {
        post({ type: 'gen-error', id: s.id, message: errorMessage(err) });
        this.release(s);
        continue;
      }
      this.onToken(s, sampled.token, s.logprobs >= 0 ? sampled : undefined);
    }
  }

  private onToken(s: Sequence, token: number, lp: { logprob: number; top?: Array<{ token: number; logprob: number }> } | undefined): void {
    s.generated++;
    s.lastToken = token;
    if (!s.ignoreEos && this.pieces.isEndOfGeneration(token)) {
      const { text, stopIndex } = this.flushText(s);
      this.report.add(s.id, token, stopIndex >= 0 ? Finish.StopSequence : Finish.Eos, text, stopIndex, lp);
      this.release(s);
      return;
    }
    let text = s.decoder.push(token);
    if (s.stopper) {
      const r = this.matchStops(s, text);
      text = r.text;
      if (r.stopIndex >= 0) {
        this.report.add(s.id, token, Finish.StopSequence, text, r.stopIndex, lp);
        this.release(s);
        return;
      }
    }
    if (s.generated >= s.maxTokens) {
      const tail = this.flushText(s);
      this.report.add(s.id, token, tail.stopIndex >= 0 ? Finish.StopSequence : Finish.Length, text + tail.text, tail.stopIndex, lp);
      this.release(s);
      return;
    }
    this.report.add(s.id, token, Finish.None, text, -1, lp);
  }

  /** Everything held back (incomplete UTF-8, a possible stop string's start), at the end. */
  private flushText(s: Sequence): { text: string; stopIndex: number } {
    const text = s.decoder.flush();
    if (!s.stopper) return { text, stopIndex: -1 };
    const r = this.matchStops(s, text);
    if (r.stopIndex >= 0) return r;
    return { text: r.text + s.stopper.flush(), stopIndex: -1 };
  }

  /** Feeds the stop matcher; on a match, which stop string it was (the held text starts with it). */
  private matchStops(s: Sequence, text: string): { text: string; stopIndex: number } {
    const r = s.stopper!.push(text);
    const held = s.stopHeld + text;
    if (!r.stopped) {
      s.stopHeld = held.slice(r.emit.length);
      return { text: r.emit, stopIndex: -1 };
    }
    const rest = held.slice(r.emit.length);
    let stopIndex = s.stops.findIndex((stop) => rest.startsWith(stop));
    if (stopIndex < 0) stopIndex = 0;
    return { text: r.emit, stopIndex };
  }

  private release(s: Sequence): void {
    const i = this.active.indexOf(s);
    if (i >= 0) this.active.splice(i, 1);
    this.byId.delete(s.id);
    this.slots[s.slot] = null;
    try {
      this.session.clearSequence(s.slot);
    } catch {
      // The slot is cleared again before reuse.
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.session.close();
      this.model.close();
    } finally {
      post({ type: 'closed' });
      port.close();
    }
  }

  get idle(): boolean {
    return this.active.length === 0;
  }
}

function errorMessage(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as Error & { code?: string }).code;
    return code ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

function start(): void {
  if (config.protocol !== WORKER_PROTOCOL_VERSION) {
    post({
      type: 'load-error',
      message: `stale worker build (protocol ${WORKER_PROTOCOL_VERSION}, expected ${config.protocol}): run \`npm run build:ts\``,
    });
    port.close();
    return;
  }
  let engine: BatchingEngine;
  try {
    // Before the session starts its thread pool: the pool's threads inherit this thread's niceness.
    if (config.nice > 0) os.setPriority(0, config.nice);
    const model = Model.load(config.modelPath, config.load);
    const contextLength = config.contextLength > 0 ? config.contextLength : Math.min(model.info.contextLength, DEFAULT_CONTEXT_CAP);
    const session = model.createSession({
      maxSequences: config.maxSequences,
      contextLength,
      maxBatch: config.prefillChunk + config.maxSequences,
      threads: config.threads,
      kvType: config.kvType,
      reuseBuffers: config.reuseBuffers,
    });
    // 'ready' once the main thread's pieces arrive (handle(): 'pieces').
    engine = new BatchingEngine(model, session, config.prefillChunk, config.maxBatchSequences);
  } catch (err) {
    const code = (err as { code?: string }).code;
    post({ type: 'load-error', message: err instanceof Error ? err.message : String(err), code });
    port.close();
    return;
  }
  port.on('message', (msg: ToWorker) => {
    try {
      engine.onMessage(msg);
      if (msg.type === 'shutdown' && engine.idle) engine.close();
    } catch (err) {
      // The engine's state is unknown: report and end this thread (from here, not
      // from the main thread's terminate(), which could land inside a native call).
      post({ type: 'fatal', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      process.exit(1);
    }
  });
}

start();
