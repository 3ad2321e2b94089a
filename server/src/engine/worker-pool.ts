// The engine side of the server on the main thread: for each configured model, a
// tokenizer (for validation, Tokenize/Detokenize and raw bytes), a set of worker
// threads each owning one Session, and the Scheduler that feeds them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { applyHeapFlags, servingHeapFlags } from './heap';
import { Tokenizer } from '../tokenizer';
import { packageRoot } from './addon';
import { Scheduler } from './scheduler';
import type { KvType, LoadOptions, ModelInfo } from './types';
import { createRing, StepReader, type StepView } from './step-ring';
import { STEPS_READY, WORKER_PROTOCOL_VERSION, type FromWorker, type ToWorker, type WorkerConfig, type WorkerReady } from './worker-protocol';

export interface ModelSpec {
  name: string;
  path: string;
}

export interface EngineOptions {
  /** Worker threads per model. */
  workers: number;
  /** Native threads per worker (default: physical cores / all workers). */
  threads?: number;
  /** Concurrent sequences per worker. */
  maxSequences: number;
  /** Per-sequence context (0 = the model's, capped). */
  contextLength: number;
  kvType: KvType;
  /** Prompt tokens per sequence per step. */
  prefillChunk: number;
  /** Generations allowed to wait for a slot, per model. */
  queueLimit: number;
  /** Restarts of workers that stopped by themselves, per model per minute (0: never restart). Default 5. */
  workerRestarts?: number;
  /** Niceness of the engine threads (default 0 = the process's). */
  engineNice?: number;
  load?: LoadOptions;
  /** Most sequences per step (default 0 = all: continuous batching); 1 = batching off (ablation). */
  maxBatchSequences?: number;
  /** false (ablation): step buffers allocated in every decode. Default true. */
  reuseBuffers?: boolean;
}

/** The compiled worker script (ts-jest runs sources, but a worker needs JavaScript). */
export function workerScript(): string {
  const local = path.join(__dirname, 'worker.js');
  if (__filename.endsWith('.js') && fs.existsSync(local)) return local;
  const built = path.join(packageRoot(), 'dist/server/src/engine/worker.js');
  if (!fs.existsSync(built)) throw new Error(`${built} not found: run \`npm run build:ts\``);
  return built;
}

/** One worker thread, as the scheduler sees it. */
export class EngineWorker {
  private readonly worker: Worker;
  readonly ready: Promise<WorkerReady>;
  /** Resolves when the thread runs (or has ended). */
  readonly online: Promise<void>;
  load = 0;
  capacity: number;
  alive = true;
  /** shutdown() or terminate() was asked for: an exit then is no failure. */
  stopping = false;
  private terminating = false;
  /** One step's entries (the view is reused: valid during the call only). */
  onReport: (r: StepView) => void = () => undefined;
  onGenError: (id: number, message: string) => void = () => undefined;
  onExit: (message: string) => void = () => undefined;
  private readonly exited: Promise<void>;

  constructor(
    readonly index: number,
    config: Omit<WorkerConfig, 'ring'>,
  ) {
    this.capacity = config.maxSequences;
    const ring = createRing();
    const steps = new StepReader(ring, (r) => this.onReport(r));
    const workerData: WorkerConfig = { ...config, ring };
    this.worker = new Worker(workerScript(), { workerData, name: `tokenstream-engine-${index}` });
    // Starting a worker puts V8's flags back to the command line's (in the
    // constructor, and again on the new thread before it is online): set ours again.
    applyHeapFlags(servingHeapFlags());
    this.online = new Promise((resolve) => {
      this.worker.once('online', () => {
        applyHeapFlags(servingHeapFlags());
        resolve();
      });
      this.worker.once('exit', () => resolve());
    });
    let readyResolve!: (r: WorkerReady) => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise((res, rej) => {
      readyResolve = res;
      readyReject = rej;
    });
    // Never an unhandled rejection: callers await `ready` when they care.
    this.ready.catch(() => undefined);
    let lastError = '';
    this.worker.on('message', (m: FromWorker) => {
      if (m === STEPS_READY) {
        steps.woken();
        return;
      }
      // Steps in the ring came before this message.
      steps.drain();
      switch (m.type) {
        case 'step':
          steps.frame(m.frame);
          break;
        case 'ready':
          this.capacity = m.maxSequences;
          readyResolve(m);
          break;
        case 'load-error':
          lastError = m.message;
          readyReject(Object.assign(new Error(m.message), { code: m.code }));
          break;
        case 'gen-error':
          this.onGenError(m.id, m.message);
          break;
        case 'fatal':
          lastError = m.message; // the worker exits by itself
          break;
        case 'closed':
          break;
      }
    });
    this.worker.on('error', (err) => {
      lastError = err.message;
      readyReject(err);
    });
    this.exited = new Promise((resolve) => {
      this.worker.on('exit', (code) => {
        steps.drain();
        this.alive = false;
        readyReject(new Error(lastError || `engine worker exited with code ${code}`));
        // Generations still on this worker end now (with an error nobody may read any more).
        this.onExit(lastError || (this.terminating ? 'terminated' : `exit code ${code}`));
        resolve();
      });
    });
  }

  post(msg: ToWorker): void {
    if (this.alive) this.worker.postMessage(msg);
  }

  /**
   * Asks the worker to close its session and exit: once idle, or with `force`
   * after cancelling its sequences (within one step). terminate() only as a last
   * resort after `killAfterMs`: stopping a thread inside a native call can abort
   * the process (node-addon-api throws when the environment is going away).
   */
  async shutdown(force: boolean, killAfterMs = force ? 2000 : Infinity): Promise<void> {
    this.stopping = true;
    this.post({ type: 'shutdown', force });
    if (!Number.isFinite(killAfterMs)) {
      await this.exited;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const stuck = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), killAfterMs))),
    ]);
    clearTimeout(timer);
    if (stuck) await this.terminate();
  }

  /** Stops the thread now (see shutdown() for why that is the last resort). */
  async terminate(): Promise<void> {
    this.stopping = true;
    this.terminating = true;
    await this.worker.terminate();
    await this.exited;
  }
}

/** Physical cores on Linux (distinct core ids); logical CPUs elsewhere. */
export function physicalCores(): number {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const cores = new Set<string>();
    let phys = '0';
    for (const line of info.split('\n')) {
      const [k, v] = line.split(':').map((x) => x?.trim());
      if (k === 'physical id') phys = v;
      if (k === 'core id') cores.add(`${phys}:${v}`);
    }
    if (cores.size > 0) return cores.size;
  } catch {
    // not Linux
  }
  return os.availableParallelism();
}

/** The first restart of a stopped worker waits this long; each further one within the minute 4× longer. */
const RESTART_DELAY_MS = 100;
const RESTART_WINDOW_MS = 60_000;

export type ModelState = 'loading' | 'ready' | 'failed' | 'closed';

export class ServedModel {
  state: ModelState = 'loading';
  loadError?: Error;
  info?: ModelInfo;
  tokenizer!: Tokenizer;
  vocabSize = 0;
  contextLength = 0;
  maxSequences = 0;
  maxTokenBytes = 1;
  threads?: number;
  readonly workers: EngineWorker[] = [];
  scheduler!: Scheduler;
  /** Called when every worker of this model has stopped outside a shutdown (and none is restarting). */
  onDown: (message: string) => void = () => undefined;
  /** What the operator should hear about: a worker that stopped, its restart. */
  onNotice: (message: string) => void = () => undefined;
  /** When recent restarts happened (ms), for the per-minute limit. */
  private restarts: number[] = [];
  /** Replacements being started (close() stops them too). */
  private readonly restarting = new Set<{ timer?: NodeJS.Timeout; worker?: EngineWorker }>();

  constructor(
    readonly name: string,
    readonly path: string,
    readonly isDefault: boolean,
    private readonly opts: EngineOptions,
    private readonly threadsPerWorker: number | undefined,
  ) {}

  /**
   * Loads the model in every worker and the tokenizer here; resolves when all are
   * ready. The workers start first: the tokenizer (and its encoder, built ahead of
   * the first request) loads on this thread while they map the model.
   */
  async start(): Promise<void> {
    try {
      this.threads = this.threadsPerWorker;
      for (let i = 0; i < this.opts.workers; i++) this.workers.push(this.spawnWorker(i));
      this.scheduler = new Scheduler(
        this.workers,
        this.opts.queueLimit,
        (message) => {
          if (this.state === 'ready') this.state = 'failed';
          this.loadError = new Error(message);
          this.onDown(message);
        },
        (worker, message) => this.restartLater(worker, message),
      );
      // (After the threads are up: starting one resets V8's heap flags, see heap.ts.)
      await Promise.all(this.workers.map((w) => w.online));
      this.tokenizer = Tokenizer.load(this.path);
      // The workers detokenize from this table's shared memory (each is ready once it has it).
      for (const w of this.workers) this.sendPieces(w);
      this.vocabSize = this.tokenizer.vocabSize;
      // An upper bound of the longest token's bytes (the stored text's UTF-8 is never
      // shorter than the piece it stands for).
      let longest = 1;
      for (let id = 0; id < this.vocabSize; id++) longest = Math.max(longest, Buffer.byteLength(this.tokenizer.tokenText(id), 'utf8'));
      this.maxTokenBytes = longest;
      this.tokenizer.encode(''); // builds the encoder now rather than in the first request
      const ready = await Promise.all(this.workers.map((w) => w.ready));
      this.info = ready[0].info;
      this.contextLength = ready[0].contextLength;
      this.maxSequences = ready[0].maxSequences;
      this.state = 'ready';
    } catch (err) {
      this.state = 'failed';
      this.loadError = err instanceof Error ? err : new Error(String(err));
      await Promise.all(this.workers.map((w) => w.shutdown(true)));
      throw new Error(`model '${this.name}' (${this.path}): ${this.loadError.message}`);
    }
  }

  private spawnWorker(index: number): EngineWorker {
    return new EngineWorker(index, {
      protocol: WORKER_PROTOCOL_VERSION,
      modelPath: this.path,
      load: this.opts.load ?? {},
      maxSequences: this.opts.maxSequences,
      contextLength: this.opts.contextLength,
      threads: this.threadsPerWorker,
      kvType: this.opts.kvType,
      prefillChunk: this.opts.prefillChunk,
      nice: this.opts.engineNice ?? 0,
      maxBatchSequences: this.opts.maxBatchSequences ?? 0,
      reuseBuffers: this.opts.reuseBuffers ?? true,
    });
  }

  private sendPieces(w: EngineWorker): void {
    w.post({ type: 'pieces', table: this.tokenizer.pieceTable.data });
  }

  /**
   * A worker of a serving model stopped by itself (an engine error, the
   * isolate out of memory): its generations have failed; a fresh worker takes
   * its place after a short delay, unless this happened too often within the
   * minute (then something is wrong that a restart does not mend). Returns
   * whether a replacement is coming.
   */
  private restartLater(old: EngineWorker, message: string): boolean {
    if (old.stopping || this.state !== 'ready') return false;
    const what = `engine worker ${old.index} of model '${this.name}' stopped (${message})`;
    const now = Date.now();
    this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS);
    const limit = this.opts.workerRestarts ?? 5;
    if (this.restarts.length >= limit) {
      this.onNotice(`${what}; not restarted (${limit} restarts within a minute, --worker-restarts)`);
      return false;
    }
    const delay = RESTART_DELAY_MS * 4 ** this.restarts.length;
    this.restarts.push(now);
    this.onNotice(`${what}; restarting it in ${delay} ms`);
    const pending: { timer?: NodeJS.Timeout; worker?: EngineWorker } = {};
    this.restarting.add(pending);
    pending.timer = setTimeout(() => void this.restart(old, pending), delay);
    return true;
  }

  private async restart(old: EngineWorker, pending: { worker?: EngineWorker }): Promise<void> {
    const next = (pending.worker = this.spawnWorker(old.index));
    let failure = '';
    try {
      await next.online;
      this.sendPieces(next);
      await next.ready;
    } catch (err) {
      failure = err instanceof Error ? err.message : String(err);
    }
    this.restarting.delete(pending);
    if (this.state !== 'ready') {
      // closed meanwhile: close() did not see this worker
      await next.shutdown(true);
      this.scheduler.replaced(old, null, 'the model is closed');
      return;
    }
    if (failure) {
      this.onNotice(`engine worker ${old.index} of model '${this.name}' could not be restarted: ${failure}`);
      this.scheduler.replaced(old, null, failure);
      return;
    }
    this.onNotice(`engine worker ${old.index} of model '${this.name}' restarted`);
    this.scheduler.replaced(old, next, '');
  }

  // What validation needs (ModelForValidation).
  encode(text: string, opts: { addSpecial: boolean; parseSpecial: boolean }): ArrayLike<number> {
    return this.tokenizer.encode(text, opts);
  }

  encodeChat(messages: Array<{ role: string; content: string }>): ArrayLike<number> {
    return this.tokenizer.encodeChat(messages, { addGenerationPrompt: true });
  }

  hasChatTemplate(): boolean {
    return this.tokenizer.hasChatTemplate();
  }

  /** Stops taking generations; waits for workers to finish their sequences, up to the caller. */
  async close(force: boolean): Promise<void> {
    this.scheduler?.close();
    this.state = 'closed';
    for (const p of this.restarting) clearTimeout(p.timer);
    await Promise.all([...this.workers, ...[...this.restarting].flatMap((p) => (p.worker ? [p.worker] : []))].map((w) => w.shutdown(force)));
  }
}

export class WorkerPool {
  readonly models = new Map<string, ServedModel>();
  readonly defaultModel: ServedModel;

  constructor(specs: ModelSpec[], opts: EngineOptions) {
    if (specs.length === 0) throw new Error('no model configured');
    const totalWorkers = specs.length * opts.workers;
    const threads = opts.threads ?? (totalWorkers > 1 ? Math.max(1, Math.floor(physicalCores() / totalWorkers)) : undefined);
    for (const [i, spec] of specs.entries()) {
      if (this.models.has(spec.name)) throw new Error(`model name '${spec.name}' given twice`);
      this.models.set(spec.name, new ServedModel(spec.name, spec.path, i === 0, opts, threads));
    }
    this.defaultModel = this.models.get(specs[0].name)!;
  }

  /** '' = the default model. */
  get(name: string): ServedModel | undefined {
    return name === '' ? this.defaultModel : this.models.get(name);
  }

  names(): string[] {
    return [...this.models.keys()];
  }

  /** Loads all models; `onReady` is called as each one becomes ready. */
  async start(onReady: (m: ServedModel) => void = () => undefined): Promise<void> {
    await Promise.all(
      [...this.models.values()].map(async (m) => {
        await m.start();
        onReady(m);
      }),
    );
  }

  inFlight(): number {
    let n = 0;
    for (const m of this.models.values()) if (m.scheduler) n += m.scheduler.inFlight + m.scheduler.queued;
    return n;
  }

  async close(force: boolean): Promise<void> {
    await Promise.all([...this.models.values()].map((m) => m.close(force)));
  }
}
