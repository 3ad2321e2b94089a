// Per-model scheduling across that model's workers: a new generation goes to the
// least-loaded worker with a free sequence slot; when every slot is taken it waits
// in a bounded FIFO queue (full queue: RESOURCE_EXHAUSTED) and is handed out as
// soon as a slot frees. Step reports from the workers are routed back to their
// generations here.
import { resourceExhausted, unavailable } from '../grpc/status';
import { recordStep } from '../telemetry/service-hooks';
import type { EngineWorker } from './worker-pool';
import type { StepView } from './step-ring';
import { Finish, Rec, RECORD_INTS, type StartGeneration } from './worker-protocol';

/** A generation as the scheduler sees it (implemented on the gRPC side). */
export interface GenerationJob {
  readonly id: number;
  /** What the worker runs. */
  readonly work: Omit<StartGeneration, 'type' | 'id'>;
  /** Left the queue for worker `workerIndex`. */
  dispatched(workerIndex: number): void;
  /**
   * One entry of a step: a token (or -1), its new text (UTF-8, `textLength`
   * bytes of `text` from `textStart`) and, when asked for, logprobs
   * (logprobs[lpOffset] is the token's, then lpCount-1 alternatives whose ids
   * start at topIds[topOffset]). `finish` != None ends the generation. The
   * arrays are views of shared memory that is reused after this call: copy what
   * is kept. `time`: when the step's tokens left the engine (nowMs(), taken in the worker).
   */
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
  ): void;
  /** The engine failed this generation (it has been dropped). */
  failed(message: string): void;
}

interface Placement {
  job: GenerationJob;
  worker: EngineWorker;
}

export class Scheduler {
  private readonly queue: GenerationJob[] = [];
  private readonly running = new Map<number, Placement>();
  private closed = false;

  /** Workers that stopped and are being replaced (jobs wait for them meanwhile). */
  private replacing = 0;

  constructor(
    private readonly workers: EngineWorker[],
    private readonly queueLimit: number,
    /** Called once no worker is left and none is coming (the model cannot serve any more). */
    private readonly onAllDown: (message: string) => void = () => undefined,
    /** A worker stopped by itself: true if a replacement will come (replaced() then says how it went). */
    private readonly onWorkerLost: (worker: EngineWorker, message: string) => boolean = () => false,
  ) {
    for (const w of workers) this.wire(w);
  }

  private wire(w: EngineWorker): void {
    w.onReport = (r) => this.onReport(r, w);
    w.onGenError = (id, message) => this.onGenError(id, message);
    w.onExit = (message) => this.onWorkerExit(w, message);
  }

  get queued(): number {
    return this.queue.length;
  }

  get inFlight(): number {
    return this.running.size;
  }

  /** Starts the job now or queues it; throws RESOURCE_EXHAUSTED when the queue is full. */
  submit(job: GenerationJob): void {
    if (this.closed) throw unavailable('the server is shutting down');
    if (!this.serving()) throw unavailable('no engine worker is running for this model');
    const worker = this.pickWorker();
    if (worker && this.queue.length === 0) {
      this.dispatch(job, worker);
      return;
    }
    if (this.queue.length >= this.queueLimit) {
      throw resourceExhausted(`queue full: ${this.queue.length} generations are waiting (--queue-limit ${this.queueLimit}); retry later`);
    }
    this.queue.push(job);
    this.pump();
  }

  /** Cancels a job: returns 'queued' if it never started (it is removed), 'running' if the worker was told, 'unknown' otherwise. */
  cancel(job: GenerationJob): 'queued' | 'running' | 'unknown' {
    const qi = this.queue.indexOf(job);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      return 'queued';
    }
    const p = this.running.get(job.id);
    if (!p) return 'unknown';
    p.worker.post({ type: 'cancel', id: job.id });
    return 'running';
  }

  pause(job: GenerationJob): void {
    this.running.get(job.id)?.worker.post({ type: 'pause', id: job.id });
  }

  resume(job: GenerationJob): void {
    this.running.get(job.id)?.worker.post({ type: 'resume', id: job.id });
  }

  /** No new jobs from now on (queued and running ones go on). */
  close(): void {
    this.closed = true;
  }

  /**
   * The outcome of a replacement onWorkerLost promised: `next` (ready) takes
   * `old`'s place and gets the waiting jobs; null: it could not start.
   */
  replaced(old: EngineWorker, next: EngineWorker | null, message: string): void {
    this.replacing--;
    if (next) {
      this.workers[this.workers.indexOf(old)] = next;
      this.wire(next);
      this.pump();
    } else {
      this.downIfNoWorker(message);
    }
  }

  private serving(): boolean {
    return this.replacing > 0 || this.workers.some((w) => w.alive);
  }

  private pickWorker(): EngineWorker | undefined {
    let best: EngineWorker | undefined;
    for (const w of this.workers) {
      if (!w.alive || w.load >= w.capacity) continue;
      if (!best || w.load < best.load) best = w;
    }
    return best;
  }

  private dispatch(job: GenerationJob, worker: EngineWorker): void {
    worker.load++;
    this.running.set(job.id, { job, worker });
    job.dispatched(worker.index);
    const w = job.work;
    worker.post({ type: 'start', id: job.id, ...w });
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const worker = this.pickWorker();
      if (!worker) return;
      this.dispatch(this.queue.shift()!, worker);
    }
  }

  private onReport(r: StepView, worker: EngineWorker): void {
    recordStep(worker, r);
    const rec = r.i32;
    let textPos = r.text;
    let lpPos = r.logprobs;
    let topPos = r.topIds;
    let freed = false;
    for (let e = 0, o = r.records; e < r.count; e++, o += RECORD_INTS) {
      const id = rec[o + Rec.Id];
      const textStart = textPos;
      const textLength = rec[o + Rec.TextLength];
      textPos += textLength;
      const lpCount = rec[o + Rec.LogprobCount];
      const lpOffset = lpPos;
      const topOffset = topPos;
      if (lpCount > 0) {
        lpPos += lpCount;
        topPos += lpCount - 1;
      }
      const finish = rec[o + Rec.Finish] as Finish;
      const p = this.running.get(id);
      if (!p) continue;
      if (finish !== Finish.None) {
        this.running.delete(id);
        p.worker.load--;
        freed = true;
      }
      p.job.record(rec[o + Rec.Token], finish, rec[o + Rec.StopIndex], r.u8, textStart, textLength, r.f32, lpOffset, Math.max(0, lpCount), rec, topOffset, r.time);
    }
    if (freed) this.pump();
  }

  private onGenError(id: number, message: string): void {
    const p = this.running.get(id);
    if (!p) return;
    this.running.delete(id);
    p.worker.load--;
    p.job.failed(message);
    this.pump();
  }

  private onWorkerExit(worker: EngineWorker, message: string): void {
    for (const [id, p] of [...this.running]) {
      if (p.worker !== worker) continue;
      this.running.delete(id);
      p.job.failed(`engine worker stopped: ${message}`);
    }
    worker.load = 0;
    if (!this.closed && this.onWorkerLost(worker, message)) {
      this.replacing++;
      return;
    }
    this.downIfNoWorker(message);
  }

  private downIfNoWorker(message: string): void {
    if (this.serving()) return;
    for (const job of this.queue.splice(0)) job.failed(`no engine worker left: ${message}`);
    if (!this.closed) this.onAllDown(message);
  }
}
