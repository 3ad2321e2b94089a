// Glue between the gRPC service and the telemetry library, so the service's
// own files only gain one-line call sites: the GenerationStart of a request,
// the end of a refused generation, the gauges' view of the worker pool, and the
// metrics endpoint of a running server.
import type { GenerateRequest } from '../generated/tokenstream/v1/tokenstream';
import type { EngineWorker, WorkerPool } from '../engine/worker-pool';
import { RECORD_INTS, Rec } from '../engine/worker-protocol';
import type { StepView } from '../engine/step-ring';
import type { GenerationStart, GenerationTrace } from './generation-trace';
import { errorTypeOfGrpcCode } from './generation-trace';
import type { MetricsServer } from './metrics-server';
import { serveMetrics } from './metrics-server';
import type { ServingState } from './metrics';
import { activeTelemetry } from './active';
import { serverTelemetry } from './server-telemetry';
import type { MetadataLike } from './trace-context';

/** A generation's span start from its request (model: the resolved model name). */
export function generationStartOf(req: GenerateRequest, model: string, metadata?: MetadataLike): GenerationStart {
  const p = req.params;
  return {
    requestId: req.requestId,
    model,
    operation: req.messages.length > 0 ? 'chat' : 'text_completion',
    maxTokens: p?.maxTokens,
    temperature: p?.temperature,
    topP: p?.topP,
    topK: p?.topK,
    frequencyPenalty: p?.frequencyPenalty,
    presencePenalty: p?.presencePenalty,
    seed: p?.seed,
    stop: p?.stop,
    stream: true,
    traceparent: req.traceparent || undefined,
    tracestate: req.tracestate || undefined,
    metadata,
  };
}

/**
 * A generation refused before it ran (invalid request, queue full, draining,
 * unknown model): ends its span with the error, or, when no span was started,
 * counts the error. `err` carries a gRPC status `code` (an ApiError).
 */
export function endRefused(trace: GenerationTrace | undefined, err: unknown, model = ''): void {
  const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  if (typeof err === 'object' && err !== null) counted.add(err);
  const code = typeof e.code === 'number' ? e.code : 13; // not an ApiError: INTERNAL, as the service answers
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (trace) trace.end({ error: { code, message, type: refusalType(code, message) } });
  else serverTelemetry().metrics.recordError(refusalType(code, message), code, model || undefined);
}

// Errors endRefused() has seen: a handler's catch-all counts only the others.
const counted = new WeakSet<object>();

/** Counts an error answered to a start or cancel message, unless endRefused() already did. */
export function countRefusal(err: unknown, model = ''): void {
  if (typeof err === 'object' && err !== null && counted.has(err)) return;
  endRefused(undefined, err, model);
}

/** RESOURCE_EXHAUSTED is shared by a full queue, a slow client and oversized messages: say which. */
function refusalType(code: number, message: string): string {
  if (code === 8 && /queue full/i.test(message)) return 'queue_full';
  return errorTypeOfGrpcCode(code);
}

// The model each engine worker serves (known from the pool; steps arrive per worker).
const modelOfWorker = new WeakMap<EngineWorker, string>();

/**
 * One engine step's metrics (batch size, tokens, duration, tokens generated per
 * worker), from its report. Prompt tokens are approximated as the batch's tokens
 * minus the tokens sampled (a sequence finishing its prompt in the step counts one short).
 */
export function recordStep(worker: EngineWorker, r: StepView): void {
  if (r.batchSequences === 0) return; // a flush of finished sequences, not an engine step
  let generated = 0;
  const rec = r.i32;
  for (let e = 0, o = r.records; e < r.count; e++, o += RECORD_INTS) if (rec[o + Rec.Token] >= 0) generated++;
  serverTelemetry().metrics.recordStep(
    worker.index,
    modelOfWorker.get(worker) ?? '',
    r.batchSequences,
    r.batchTokens,
    r.stepMs / 1000,
    generated,
    Math.max(0, r.batchTokens - generated),
  );
}

/** What the gauges report: per model queue length, per worker active sequences and KV slots. */
export function servingStateOf(pool: WorkerPool): ServingState {
  const queueLength: Record<string, number> = {};
  const workers: ServingState['workers'] = [];
  for (const m of pool.models.values()) {
    queueLength[m.name] = m.scheduler?.queued ?? 0;
    for (const w of m.workers) {
      modelOfWorker.set(w, m.name);
      if (!w.alive) continue;
      // One sequence per KV slot: a running generation holds its slot until it ends.
      workers.push({ workerId: w.index, model: m.name, activeSequences: w.load, kvSlotsUsed: w.load, kvSlotsLimit: w.capacity });
    }
  }
  return { queueLength, workers };
}

/**
 * Connects a running server to telemetry: the gauges read its pool, and the
 * Prometheus endpoint (when the SDK has a Prometheus reader and `port` is set)
 * listens on host:port. Resolves with the endpoint, or undefined when there is none.
 */
export async function attachServerTelemetry(
  server: { pool: WorkerPool; ready?: Promise<void> },
  opts: { port?: number; host: string },
): Promise<MetricsServer | undefined> {
  serverTelemetry().metrics.setStateSource(() => servingStateOf(server.pool));
  // Workers are created as models load: name them for recordStep() once they exist.
  void server.ready?.then(() => servingStateOf(server.pool), () => undefined);
  const handle = activeTelemetry();
  if (!handle?.prometheus || opts.port === undefined) return undefined;
  await handle.ready();
  return serveMetrics(handle.prometheus, { port: opts.port, host: opts.host });
}
