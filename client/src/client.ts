// A typed client for tokenstream.v1: many generations multiplexed on one Generate
// stream, each read as an async iterator of chunks, with cancel and deadlines.
//
//   const client = new TokenStreamClient('127.0.0.1:50051');
//   const session = client.session();
//   const gen = session.generate({ prompt: 'Once upon a time', params: { maxTokens: 32 } });
//   for await (const chunk of gen) process.stdout.write(chunk.text);
//   const { final } = await gen.result;
import { credentials, Metadata, status, type ChannelCredentials, type ClientDuplexStream, type ClientOptions, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import {
  TokenStreamClient as GrpcTokenStreamClient,
  type Chunk,
  type DetokenizeRequest,
  type DetokenizeResponse,
  type Final,
  type GenerateRequest,
  type GenerateResponse,
  type ListModelsResponse,
  type ModelDescription,
  type SamplingParams,
  type TokenizeRequest,
  type TokenizeResponse,
} from '../../server/src/generated/tokenstream/v1/tokenstream';
import { HealthClient, HealthCheckResponse_ServingStatus } from '../../server/src/generated/grpc/health/v1/health';
import { FinishReason as FinishReasonEnum } from '../../server/src/generated/tokenstream/v1/tokenstream';
import { clientTelemetry, type ClientGenerationTrace } from '../../server/src/telemetry/client-trace';

export type { Chunk, Final, SamplingParams, ModelDescription };
export { FinishReason } from '../../server/src/generated/tokenstream/v1/tokenstream';

/** What a generation is started with; request_id is assigned when left out. */
export type GenerationInput = Partial<Omit<GenerateRequest, 'cancel' | 'params'>> & { params?: Partial<SamplingParams> };

/** A generation that ended with an error (its gRPC status code and message). */
export class GenerationError extends Error {
  constructor(
    readonly code: status,
    message: string,
    readonly requestId = '',
  ) {
    super(message);
    this.name = 'GenerationError';
  }
}

export interface GenerationResult {
  requestId: string;
  text: string;
  tokenIds: number[];
  final: Final;
  /** Measured here: from the start to the first token, and tokens per second after it (0 when every token came in one message). */
  clientTtftMs: number;
  clientTokensPerSecond: number;
}

/** One generation: an async iterable of chunks, plus its final result. */
export class Generation implements AsyncIterable<Chunk> {
  /** Resolves with the whole text and the final message; rejects with GenerationError. */
  readonly result: Promise<GenerationResult>;
  private readonly queue: Chunk[] = [];
  private wake: (() => void) | null = null;
  private ended = false;
  private error: GenerationError | null = null;
  private text = '';
  private readonly tokenIds: number[] = [];
  private readonly startedAt = performance.now();
  private firstAt = 0;
  private lastAt = 0;
  private settle!: { resolve: (r: GenerationResult) => void; reject: (e: GenerationError) => void };
  private iterated = false;

  constructor(
    readonly requestId: string,
    private readonly cancelFn: () => void,
    private readonly onBuffered: (delta: number) => void = () => undefined,
    /** Its client span (telemetry/client-trace.ts); a no-op when telemetry is off. */
    private readonly trace?: ClientGenerationTrace,
  ) {
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    // Callers that only iterate must not get an unhandled rejection.
    this.result.catch(() => undefined);
  }

  /** Asks the server to stop; the generation ends with finish reason CANCELLED. */
  cancel(): void {
    if (!this.ended) this.cancelFn();
  }

  get done(): boolean {
    return this.ended;
  }

  /** @internal */
  deliver(msg: GenerateResponse): void {
    if (this.ended) return;
    if (msg.chunk) {
      const now = performance.now();
      if (msg.chunk.tokenIds.length > 0) {
        if (!this.firstAt) this.firstAt = now;
        this.lastAt = now;
      }
      this.trace?.chunk(msg.chunk.tokenIds.length);
      this.text += msg.chunk.text;
      this.tokenIds.push(...msg.chunk.tokenIds);
      if (this.iterated) {
        this.queue.push(msg.chunk);
        this.onBuffered(1);
      }
    } else if (msg.final) {
      this.ended = true;
      this.trace?.end({
        finishReason: FinishReasonEnum[msg.final.finishReason],
        promptTokens: msg.final.usage?.promptTokens,
        completionTokens: msg.final.usage?.completionTokens,
      });
      const n = this.tokenIds.length;
      const secs = (this.lastAt - this.firstAt) / 1000;
      this.settle.resolve({
        requestId: this.requestId,
        text: this.text,
        tokenIds: this.tokenIds,
        final: msg.final,
        clientTtftMs: this.firstAt ? this.firstAt - this.startedAt : 0,
        clientTokensPerSecond: n > 1 && secs > 0 ? (n - 1) / secs : 0,
      });
    } else if (msg.error) {
      this.fail(new GenerationError(msg.error.code, msg.error.message, this.requestId));
      return;
    }
    this.notify();
  }

  /** @internal */
  fail(err: GenerationError): void {
    if (this.ended) return;
    this.ended = true;
    this.trace?.end({ error: { code: err.code, message: err.message } });
    this.error = err;
    this.settle.reject(err);
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Chunk> {
    if (this.iterated) throw new Error('a generation can be iterated once');
    this.iterated = true;
    // Chunks that arrived before iteration began are folded into one.
    if (this.text || this.tokenIds.length) {
      this.queue.push({ tokenIds: [...this.tokenIds], text: this.text, index: 0, logprobs: [], raw: Buffer.alloc(0) });
      this.onBuffered(1);
    }
    for (;;) {
      while (this.queue.length > 0) {
        const c = this.queue.shift()!;
        this.onBuffered(-1);
        yield c;
      }
      if (this.ended) {
        if (this.error) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }
}

export interface SessionOptions {
  /** A deadline for the whole stream (ms from now). */
  deadlineMs?: number;
  metadata?: Metadata;
  /** Chunks buffered in this process (not yet read by iterators) before the stream stops reading from the network. */
  maxBuffered?: number;
}

/** One Generate stream carrying many generations. */
export class GenerateSession {
  private readonly call: ClientDuplexStream<GenerateRequest, GenerateResponse>;
  private readonly gens = new Map<string, Generation>();
  private nextId = 1;
  private buffered = 0;
  private paused = false;
  private closedError: GenerationError | null = null;
  /** Resolves when the server ends the stream (after close(), or on error). */
  readonly closed: Promise<void>;

  constructor(grpc: GrpcTokenStreamClient, opts: SessionOptions = {}) {
    const maxBuffered = opts.maxBuffered ?? 1024;
    this.call = grpc.generate(opts.metadata ?? new Metadata(), opts.deadlineMs ? { deadline: Date.now() + opts.deadlineMs } : {});
    this.call.on('data', (msg: GenerateResponse) => {
      const gen = this.gens.get(msg.requestId);
      if (!gen) return;
      // ALREADY_EXISTS answers a second start with an id in flight (only possible
      // through send()); the generation with that id goes on.
      if (msg.error?.code === status.ALREADY_EXISTS) return;
      gen.deliver(msg);
      if (gen.done) this.gens.delete(msg.requestId);
      if (this.buffered >= maxBuffered && !this.paused) {
        this.paused = true;
        this.call.pause();
      }
    });
    this.bufferedDelta = (d: number) => {
      this.buffered += d;
      if (this.paused && this.buffered < maxBuffered / 2) {
        this.paused = false;
        this.call.resume();
      }
    };
    this.closed = new Promise((resolve) => {
      // 'status' comes once, with the call's final status, after every message.
      this.call.on('status', (st: StatusObject) => {
        const e =
          st.code === status.OK ? new GenerationError(status.UNAVAILABLE, 'the stream was ended by the server') : new GenerationError(st.code, st.details);
        this.closedError = e;
        for (const g of this.gens.values()) g.fail(new GenerationError(e.code, e.message, g.requestId));
        this.gens.clear();
        resolve();
      });
      // Errors are reported through 'status'; without a listener 'error' would throw.
      this.call.on('error', () => undefined);
    });
  }

  private readonly bufferedDelta: (d: number) => void;

  /** Starts a generation on this stream. */
  generate(input: GenerationInput): Generation {
    const requestId = input.requestId || `g${this.nextId++}`;
    if (this.gens.has(requestId)) throw new Error(`request_id '${requestId}' is in flight on this session`);
    const trace = startClientTrace(input, requestId);
    const gen = new Generation(requestId, () => this.call.write(request({ requestId, cancel: true })), this.bufferedDelta, trace);
    if (this.closedError) {
      gen.fail(new GenerationError(this.closedError.code, this.closedError.message, requestId));
      return gen;
    }
    this.gens.set(requestId, gen);
    this.call.write(request({ ...input, requestId, ...traceFields(input, trace) }));
    return gen;
  }

  /** Sends a raw request (no bookkeeping): for tests of the protocol itself. */
  send(req: Partial<GenerateRequest>): void {
    this.call.write(request(req));
  }

  /** Half-closes: the server finishes the generations in flight and ends the stream. */
  close(): Promise<void> {
    this.call.end();
    return this.closed;
  }

  /** Cancels the whole call (every generation on it stops). */
  abort(): void {
    this.call.cancel();
  }

  get inFlight(): number {
    return this.gens.size;
  }
}

/** The generation's client span (its context goes in the start message). */
function startClientTrace(input: GenerationInput, requestId: string, server?: string): ClientGenerationTrace {
  return clientTelemetry().startGeneration({
    requestId,
    model: input.model ?? '',
    operation: input.messages && input.messages.length > 0 ? 'chat' : 'text_completion',
    maxTokens: input.params?.maxTokens,
    temperature: input.params?.temperature,
    topP: input.params?.topP,
    topK: input.params?.topK,
    seed: input.params?.seed,
    server,
  });
}

/** A caller's own traceparent wins; else the client span's (none when not sampled). */
function traceFields(input: GenerationInput, trace: ClientGenerationTrace): Partial<GenerationInput> {
  if (input.traceparent || !trace.traceparent) return {};
  return { traceparent: trace.traceparent, tracestate: trace.tracestate };
}

function request(input: GenerationInput & { cancel?: boolean }): GenerateRequest {
  return {
    requestId: input.requestId ?? '',
    prompt: input.prompt ?? '',
    messages: input.messages ?? [],
    tokens: input.tokens ?? [],
    model: input.model ?? '',
    params: input.params ? { stop: [], ignoreEos: false, ...input.params } : undefined,
    cancel: input.cancel ?? false,
    addSpecial: input.addSpecial,
    parseSpecial: input.parseSpecial ?? false,
    includeBytes: input.includeBytes ?? false,
    timeoutMs: input.timeoutMs ?? 0,
    traceparent: input.traceparent ?? '',
    tracestate: input.tracestate ?? '',
  };
}

export interface ClientConfig {
  credentials?: ChannelCredentials;
  options?: Partial<ClientOptions>;
}

export class TokenStreamClient {
  readonly grpc: GrpcTokenStreamClient;
  private readonly health: HealthClient;

  constructor(
    readonly address = '127.0.0.1:50051',
    config: ClientConfig = {},
  ) {
    const creds = config.credentials ?? credentials.createInsecure();
    this.grpc = new GrpcTokenStreamClient(address, creds, config.options);
    this.health = new HealthClient(address, creds, config.options);
  }

  /** Opens a Generate stream for multiplexed generations. */
  session(opts: SessionOptions = {}): GenerateSession {
    return new GenerateSession(this.grpc, opts);
  }

  /** One generation over the Complete RPC (errors end the call with a status). */
  complete(input: GenerationInput, opts: { deadlineMs?: number } = {}): Generation {
    const requestId = input.requestId ?? '';
    const trace = startClientTrace(input, requestId, this.address);
    const call = trace.run(() =>
      this.grpc.complete(request({ ...input, requestId, ...traceFields(input, trace) }), opts.deadlineMs ? { deadline: Date.now() + opts.deadlineMs } : {}),
    );
    const gen = new Generation(requestId, () => call.cancel(), undefined, trace);
    call.on('data', (msg: GenerateResponse) => gen.deliver(msg));
    call.on('status', (st: StatusObject) => {
      if (st.code !== status.OK) gen.fail(new GenerationError(st.code, st.details, requestId));
      else gen.fail(new GenerationError(status.INTERNAL, 'the call ended without a final message', requestId));
    });
    call.on('error', () => undefined); // reported through 'status'
    return gen;
  }

  tokenize(req: Partial<TokenizeRequest>): Promise<TokenizeResponse> {
    return unary((cb) => this.grpc.tokenize({ model: '', text: '', parseSpecial: false, messages: [], ...req }, cb));
  }

  detokenize(req: Partial<DetokenizeRequest>): Promise<DetokenizeResponse> {
    return unary((cb) => this.grpc.detokenize({ model: '', tokens: [], ...req }, cb));
  }

  async listModels(): Promise<ModelDescription[]> {
    const r = await unary<ListModelsResponse>((cb) => this.grpc.listModels({}, cb));
    return r.models;
  }

  /** Health of '' (the server), a service name or a model name. */
  async healthStatus(service = ''): Promise<keyof typeof HealthCheckResponse_ServingStatus> {
    const r = await unary<{ status: HealthCheckResponse_ServingStatus }>((cb) => this.health.check({ service }, cb));
    return HealthCheckResponse_ServingStatus[r.status] as keyof typeof HealthCheckResponse_ServingStatus;
  }

  /** Resolves once the server reports SERVING (polls health until `timeoutMs`). */
  async waitUntilServing(timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      try {
        if ((await this.healthStatus('')) === 'SERVING') return;
      } catch {
        // not up yet
      }
      if (Date.now() > end) throw new Error(`${this.address} not SERVING after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  close(): void {
    this.grpc.close();
    this.health.close();
  }
}

function unary<T>(start: (cb: (err: ServiceError | null, res: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    start((err, res) => (err ? reject(new GenerationError(err.code, err.details || err.message)) : resolve(res)));
  });
}
