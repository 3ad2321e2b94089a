// tokenstream.v1.TokenStream handlers.
import type {
  Metadata,
  sendUnaryData,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { ServedModel, WorkerPool } from '../engine/worker-pool';
import {
  DetokenizeRequest,
  GenerateRequest,
  TokenizeRequest,
  TokenStreamService,
  type DetokenizeResponse,
  GenerateResponse,
  type ListModelsRequest,
  type ListModelsResponse,
  type ModelDescription,
  type TokenizeResponse,
  type TokenStreamServer,
} from '../generated/tokenstream/v1/tokenstream';
import type { DescriptorPool } from './descriptors';
import { CallWriter, Generation, type BackpressureOptions } from './generation';
import type { GenerationTrace } from '../telemetry/generation-trace';
import { countRefusal, endRefused, generationStartOf } from '../telemetry/service-hooks';
import { serverTelemetry } from '../telemetry/server-telemetry';
import { endStreamSpanOnCancel } from '../telemetry/trace-context';
import { alreadyExists, ApiError, asApiError, failedPrecondition, invalidArgument, notFound, toServiceError, unavailable } from './status';
import { resolveModel, validateGeneration } from './validation';
import { BAD_REQUEST, checkedDecoder, type Checked } from './wire-check';

/** The state of one Generate stream. */
class GenerateStream {
  readonly gens = new Map<string, Generation>();
  halfClosed = false;

  constructor(readonly writer: CallWriter) {}

  /** Ends the call once the client has half-closed (or the server drains) and nothing is in flight. */
  maybeEnd(draining: boolean): void {
    if ((this.halfClosed || draining) && this.gens.size === 0) this.writer.end();
  }
}

export class TokenStreamHandlers {
  private draining = false;
  private readonly streams = new Set<GenerateStream>();
  private readonly idleWaiters: Array<() => void> = [];
  private active = 0;

  constructor(
    private readonly pool: WorkerPool,
    private readonly backpressure: BackpressureOptions,
  ) {}

  /** The service definition with request decoders that never throw (see wire-check.ts). */
  static definition(descriptors: DescriptorPool): typeof TokenStreamService {
    const gen = checkedDecoder(descriptors, 'tokenstream.v1.GenerateRequest', GenerateRequest.decode, () => GenerateRequest.fromPartial({}));
    const tok = checkedDecoder(descriptors, 'tokenstream.v1.TokenizeRequest', TokenizeRequest.decode, () => TokenizeRequest.fromPartial({}));
    const detok = checkedDecoder(descriptors, 'tokenstream.v1.DetokenizeRequest', DetokenizeRequest.decode, () =>
      DetokenizeRequest.fromPartial({}),
    );
    return {
      ...TokenStreamService,
      generate: { ...TokenStreamService.generate, requestDeserialize: gen, responseSerialize: serializeResponse },
      complete: { ...TokenStreamService.complete, requestDeserialize: gen, responseSerialize: serializeResponse },
      tokenize: { ...TokenStreamService.tokenize, requestDeserialize: tok },
      detokenize: { ...TokenStreamService.detokenize, requestDeserialize: detok },
    };
  }

  implementation(): TokenStreamServer & UntypedServiceImplementation {
    return {
      generate: (call) => this.generate(call),
      complete: (call) => this.complete(call),
      tokenize: (call, cb) => this.unary(call, cb, (req) => this.tokenize(req)),
      detokenize: (call, cb) => this.unary(call, cb, (req) => this.detokenize(req)),
      listModels: (call, cb) => this.unary(call, cb, (req) => this.listModels(req)),
    };
  }

  /** Generations in flight (queued or running) on all calls. */
  get inFlight(): number {
    return this.active;
  }

  /** Refuses new generations (UNAVAILABLE); Generate streams end as their last generation ends. */
  drain(): void {
    this.draining = true;
    for (const s of this.streams) s.maybeEnd(true);
  }

  /** Resolves when no generation is in flight. */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private generate(call: ServerDuplexStream<GenerateRequest, GenerateResponse>): void {
    endStreamSpanOnCancel(call);
    const deadline = callDeadline(call);
    const stream = new GenerateStream(new CallWriter(call, false, deadline));
    this.streams.add(stream);
    const replyError = (requestId: string, err: ApiError): void => {
      stream.writer.write({ requestId, error: { code: err.code, message: err.message } });
    };
    call.on('data', (req: Checked<GenerateRequest>) => {
      const requestId = req.requestId;
      try {
        if (req[BAD_REQUEST]) throw invalidArgument(req[BAD_REQUEST]);
        if (req.cancel) {
          const gen = stream.gens.get(requestId);
          if (!gen) throw notFound(`no generation '${requestId}' in flight on this stream`);
          gen.cancel('cancel');
          return;
        }
        if (requestId === '') throw invalidArgument('request_id is required on Generate streams');
        if (stream.gens.has(requestId)) throw alreadyExists(`a generation '${requestId}' is already in flight on this stream`);
        const gen = this.launch(req, stream.writer, deadline, () => {
          stream.gens.delete(requestId);
          stream.maybeEnd(this.draining);
        }, call.metadata);
        stream.gens.set(requestId, gen);
      } catch (err) {
        countRefusal(err, req.model);
        replyError(requestId, asApiError(err));
      }
    });
    call.on('end', () => {
      stream.halfClosed = true;
      stream.maybeEnd(this.draining);
    });
    const gone = (): void => {
      for (const gen of stream.gens.values()) gen.cancel('disconnect');
    };
    call.on('cancelled', gone);
    call.on('error', gone);
    // grpc-js reports an expired deadline only once the status could be sent,
    // which a client that stopped reading delays: stop the generations on time.
    const timer = deadlineTimer(deadline, gone);
    const closed = (): void => {
      this.streams.delete(stream);
      if (timer) clearTimeout(timer);
    };
    call.on('close', closed);
    call.on('finish', closed);
  }

  private complete(call: ServerWritableStream<GenerateRequest, GenerateResponse>): void {
    endStreamSpanOnCancel(call);
    const deadline = callDeadline(call);
    const writer = new CallWriter(call, true, deadline);
    const req = call.request as Checked<GenerateRequest>;
    try {
      if (req[BAD_REQUEST]) throw invalidArgument(req[BAD_REQUEST]);
      if (req.cancel) throw invalidArgument('cancel is only meaningful on Generate streams');
      let timer: NodeJS.Timeout | undefined;
      const gen = this.launch(req, writer, deadline, () => clearTimeout(timer), call.metadata);
      call.on('cancelled', () => gen.cancel('disconnect'));
      timer = deadlineTimer(deadline, () => gen.cancel('disconnect'));
    } catch (err) {
      countRefusal(err, req.model);
      writer.fail(asApiError(err));
    }
  }

  /** Validates and starts a generation; it counts as in flight until its terminal message. */
  private launch(req: GenerateRequest, writer: CallWriter, deadline: number, onDone: () => void, metadata?: Metadata): Generation {
    if (this.draining) throw unavailable('the server is shutting down');
    const model = this.readyModel(req.model);
    // The generation's span starts at arrival; a refusal from here on ends it with the error.
    let trace: GenerationTrace | undefined;
    try {
      trace = serverTelemetry().startGeneration(generationStartOf(req, model.name, metadata));
      const v = validateGeneration(req, model);
      const gen = new Generation(req.requestId, v, writer, this.backpressure, () => {
        this.active--;
        if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
        onDone();
      }, deadline, trace);
      gen.start(); // throws when the queue is full; nothing is counted then
      this.active++;
      return gen;
    } catch (err) {
      endRefused(trace, err, model.name);
      throw err;
    }
  }

  private model(name: string): ServedModel {
    return resolveModel(name, (n) => this.pool.get(n), () => this.pool.names());
  }

  private readyModel(name: string): ServedModel {
    const model = this.model(name);
    if (model.state === 'loading') throw unavailable(`model '${model.name}' is loading`);
    if (model.state !== 'ready') throw unavailable(`model '${model.name}' is not available (${model.state})`);
    return model;
  }

  private unary<Req, Res>(call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>, handle: (req: Req) => Res): void {
    try {
      const req = call.request as Checked<Req & object>;
      if (req[BAD_REQUEST]) throw invalidArgument(req[BAD_REQUEST]);
      cb(null, handle(call.request));
    } catch (err) {
      cb(toServiceError(err));
    }
  }

  private tokenize(req: TokenizeRequest): TokenizeResponse {
    const model = this.readyModel(req.model);
    let ids: ArrayLike<number>;
    if (req.messages.length > 0) {
      if (req.text !== '') throw invalidArgument('more than one input: text and messages (set exactly one)');
      if (!model.hasChatTemplate()) throw failedPrecondition(`model '${model.name}' has no chat template`);
      ids = model.encodeChat(req.messages);
    } else {
      ids = model.encode(req.text, { addSpecial: req.addSpecial ?? true, parseSpecial: req.parseSpecial });
    }
    const tokens = Array.from(ids);
    return { tokens, pieces: tokens.map((id) => Buffer.from(model.tokenizer.tokenBytes(id))) };
  }

  private detokenize(req: DetokenizeRequest): DetokenizeResponse {
    const model = this.readyModel(req.model);
    for (const [i, id] of req.tokens.entries()) {
      if (id >= model.vocabSize) {
        throw invalidArgument(`token id ${id} at index ${i} is outside the vocabulary (model '${model.name}' has ${model.vocabSize} tokens)`);
      }
    }
    const raw = Buffer.concat(req.tokens.map((id) => model.tokenizer.tokenBytes(id)));
    return { text: model.tokenizer.decode(req.tokens), raw };
  }

  private listModels(_req: ListModelsRequest): ListModelsResponse {
    const models: ModelDescription[] = [];
    for (const m of this.pool.models.values()) {
      const info = m.info;
      models.push({
        name: m.name,
        architecture: info?.architecture ?? '',
        parameterCount: info?.parameterCount ?? 0,
        weightTypes: { ...(info?.tensorTypes ?? {}) },
        contextLength: info?.contextLength ?? 0,
        sessionContextLength: m.contextLength,
        cpuPath: info?.cpuPath ?? '',
        workers: m.workers.length,
        maxSequences: m.maxSequences,
        vocabSize: m.vocabSize,
        isDefault: m.isDefault,
        modelName: info?.name ?? '',
        fileSize: info?.fileSize ?? 0,
      });
    }
    return { models };
  }
}

/** Chunks come encoded already (generation.ts, chunk-encoder.ts); other responses are encoded here. */
export function serializeResponse(msg: GenerateResponse | Buffer): Buffer {
  return Buffer.isBuffer(msg) ? msg : Buffer.from(GenerateResponse.encode(msg).finish());
}

/** The call's deadline as Date.now() milliseconds (Infinity: none). */
function callDeadline(call: { getDeadline(): Date | number }): number {
  const d = call.getDeadline();
  return d instanceof Date ? d.getTime() : d;
}

function deadlineTimer(deadline: number, fire: () => void): NodeJS.Timeout | undefined {
  if (!Number.isFinite(deadline)) return undefined;
  return setTimeout(fire, Math.max(0, deadline - Date.now()));
}
