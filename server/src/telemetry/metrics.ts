// The server's metric instruments: the GenAI conventions' histograms (names,
// units and bucket boundaries from semconv.ts) plus the engine's own gauges and
// counters. Instruments come from whatever MeterProvider is global when the
// ServerMetrics is built (the no-op one when metrics are off: every record call
// is then a cheap no-op), or from the meter passed in (tests).
import type { Attributes, Counter, Histogram, Meter } from '@opentelemetry/api';
import { metrics } from '@opentelemetry/api';
import * as sc from './semconv';
import { readPackageVersion } from './version';

/** One worker as the gauges see it at scrape time. */
export interface WorkerState {
  workerId: number;
  model: string;
  /** sequences currently decoding or prefilling in this worker */
  activeSequences: number;
  /** KV cache sequence slots in use / available */
  kvSlotsUsed: number;
  kvSlotsLimit: number;
  /** generations waiting for this worker (when the service queues per worker) */
  queueLength?: number;
}

/** What the service reports when a scrape (or an OTLP export) reads the gauges. */
export interface ServingState {
  /** generations waiting for a slot, across all workers, by model */
  queueLength: number | Record<string, number>;
  workers: WorkerState[];
}

/** One finished (or refused) generation, as the request histograms see it. */
export interface GenerationRecord {
  operation: string;
  model: string;
  responseModel?: string;
  /** set when the generation did not end normally (cancelled, deadline_exceeded, ...) */
  errorType?: string;
  /** arrival to last token (or to the end, when it failed) */
  durationS: number;
  /** successful generations with at least one token */
  timeToFirstTokenS?: number;
  /** successful generations with at least two tokens */
  timePerOutputTokenS?: number;
  inputTokens: number;
  outputTokens: number;
}

export class ServerMetrics {
  private readonly requestDuration: Histogram;
  private readonly timeToFirstToken: Histogram;
  private readonly timePerOutputToken: Histogram;
  private readonly tokenUsage: Histogram;
  private readonly batchSize: Histogram;
  private readonly batchTokens: Histogram;
  private readonly stepDuration: Histogram;
  private readonly tokensGenerated: Counter;
  private readonly tokensPrompt: Counter;
  private readonly errors: Counter;
  private stateSource: (() => ServingState) | undefined;
  /** per-worker attribute objects, built once so the per-step path allocates nothing */
  private readonly workerAttributes = new Map<number, Attributes>();
  private readonly requestAttributes = new Map<string, Attributes>();

  constructor(meter: Meter = metrics.getMeter(sc.INSTRUMENTATION_SCOPE, readPackageVersion())) {
    this.requestDuration = meter.createHistogram(sc.METRIC_SERVER_REQUEST_DURATION, {
      description: 'Generation duration: arrival to the last output token',
      unit: 's',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_REQUEST_DURATION] },
    });
    this.timeToFirstToken = meter.createHistogram(sc.METRIC_SERVER_TIME_TO_FIRST_TOKEN, {
      description: 'Time to generate the first token (queue + prompt processing), successful generations',
      unit: 's',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_TIME_TO_FIRST_TOKEN] },
    });
    this.timePerOutputToken = meter.createHistogram(sc.METRIC_SERVER_TIME_PER_OUTPUT_TOKEN, {
      description: 'Time per output token after the first, successful generations',
      unit: 's',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_TIME_PER_OUTPUT_TOKEN] },
    });
    this.tokenUsage = meter.createHistogram(sc.METRIC_CLIENT_TOKEN_USAGE, {
      description: 'Input and output tokens per generation',
      unit: '{token}',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_TOKEN_USAGE] },
    });
    this.batchSize = meter.createHistogram(sc.METRIC_TS_BATCH_SIZE, {
      description: 'Sequences in one engine step of a worker',
      unit: '{sequence}',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_BATCH_SIZE] },
    });
    this.batchTokens = meter.createHistogram(sc.METRIC_TS_BATCH_TOKENS, {
      description: 'Tokens in one engine step of a worker (prompt chunks included)',
      unit: '{token}',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_BATCH_TOKENS] },
    });
    this.stepDuration = meter.createHistogram(sc.METRIC_TS_STEP_DURATION, {
      description: 'Duration of one engine step (one batched forward pass and sampling)',
      unit: 's',
      advice: { explicitBucketBoundaries: [...sc.BUCKETS_STEP_DURATION] },
    });
    this.tokensGenerated = meter.createCounter(sc.METRIC_TS_TOKENS_GENERATED, {
      description: 'Tokens generated, per worker (rate() = decode tokens/s)',
      unit: '{token}',
    });
    this.tokensPrompt = meter.createCounter(sc.METRIC_TS_TOKENS_PROMPT, {
      description: 'Prompt tokens processed, per worker (rate() = prefill tokens/s)',
      unit: '{token}',
    });
    this.errors = meter.createCounter(sc.METRIC_TS_ERRORS, {
      description: 'Generations that ended with an error or were refused, by error type and gRPC status code',
      unit: '{error}',
    });

    const queueLength = meter.createObservableGauge(sc.METRIC_TS_QUEUE_LENGTH, {
      description: 'Generations waiting for a sequence slot',
      unit: '{request}',
    });
    const active = meter.createObservableGauge(sc.METRIC_TS_SEQUENCES_ACTIVE, {
      description: 'Sequences being processed, per worker',
      unit: '{sequence}',
    });
    const kvUsed = meter.createObservableGauge(sc.METRIC_TS_KV_SLOTS_USED, {
      description: 'KV cache sequence slots in use, per worker',
      unit: '{slot}',
    });
    const kvLimit = meter.createObservableGauge(sc.METRIC_TS_KV_SLOTS_LIMIT, {
      description: 'KV cache sequence slots available, per worker',
      unit: '{slot}',
    });
    meter.addBatchObservableCallback(
      (result) => {
        const state = this.readState();
        if (!state) return;
        if (typeof state.queueLength === 'number') result.observe(queueLength, state.queueLength);
        else {
          for (const [model, n] of Object.entries(state.queueLength)) {
            result.observe(queueLength, n, { [sc.ATTR_GEN_AI_REQUEST_MODEL]: model });
          }
        }
        for (const w of state.workers) {
          const attrs = this.attributesOf(w.workerId, w.model);
          result.observe(active, w.activeSequences, attrs);
          result.observe(kvUsed, w.kvSlotsUsed, attrs);
          result.observe(kvLimit, w.kvSlotsLimit, attrs);
        }
      },
      [queueLength, active, kvUsed, kvLimit],
    );
  }

  /** Where the gauges read queue length, active sequences and KV slots (called at scrape time only). */
  setStateSource(source: (() => ServingState) | undefined): void {
    this.stateSource = source;
  }

  /** Records one generation's histograms; called once, when it ends. */
  recordGeneration(r: GenerationRecord): void {
    const attrs = this.requestAttributesOf(r.operation, r.model, r.responseModel ?? r.model);
    this.requestDuration.record(r.durationS, r.errorType ? { ...attrs, [sc.ATTR_ERROR_TYPE]: r.errorType } : attrs);
    if (!r.errorType) {
      if (r.timeToFirstTokenS !== undefined) this.timeToFirstToken.record(r.timeToFirstTokenS, attrs);
      if (r.timePerOutputTokenS !== undefined) this.timePerOutputToken.record(r.timePerOutputTokenS, attrs);
    }
    this.tokenUsage.record(r.inputTokens, { ...attrs, [sc.ATTR_GEN_AI_TOKEN_TYPE]: 'input' });
    this.tokenUsage.record(r.outputTokens, { ...attrs, [sc.ATTR_GEN_AI_TOKEN_TYPE]: 'output' });
  }

  /** Counts an error by its low-cardinality type and gRPC status code (refusals included). */
  recordError(errorType: string, grpcStatusCode: number, model?: string): void {
    const attrs: Attributes = { [sc.ATTR_ERROR_TYPE]: errorType, [sc.ATTR_RPC_GRPC_STATUS_CODE]: grpcStatusCode };
    if (model) attrs[sc.ATTR_GEN_AI_REQUEST_MODEL] = model;
    this.errors.add(1, attrs);
  }

  /**
   * One engine step of a worker: `sequences` sequences and `tokens` tokens in
   * the batch, `generated` new tokens sampled, `promptTokens` prompt tokens
   * processed. Allocation-free after a worker's first step.
   */
  recordStep(
    workerId: number,
    model: string,
    sequences: number,
    tokens: number,
    durationS: number,
    generated: number,
    promptTokens: number,
  ): void {
    const attrs = this.attributesOf(workerId, model);
    this.batchSize.record(sequences, attrs);
    this.batchTokens.record(tokens, attrs);
    this.stepDuration.record(durationS, attrs);
    if (generated > 0) this.tokensGenerated.add(generated, attrs);
    if (promptTokens > 0) this.tokensPrompt.add(promptTokens, attrs);
  }

  private readState(): ServingState | undefined {
    try {
      return this.stateSource?.();
    } catch {
      return undefined; // a scrape must never take the server down
    }
  }

  private attributesOf(workerId: number, model: string): Attributes {
    let attrs = this.workerAttributes.get(workerId);
    if (!attrs || attrs[sc.ATTR_GEN_AI_REQUEST_MODEL] !== model) {
      attrs = { [sc.ATTR_TS_WORKER_ID]: workerId, [sc.ATTR_GEN_AI_REQUEST_MODEL]: model };
      this.workerAttributes.set(workerId, attrs);
    }
    return attrs;
  }

  private requestAttributesOf(operation: string, model: string, responseModel: string): Attributes {
    const key = `${operation}\u0000${model}\u0000${responseModel}`;
    let attrs = this.requestAttributes.get(key);
    if (!attrs) {
      attrs = {
        [sc.ATTR_GEN_AI_OPERATION_NAME]: operation,
        [sc.ATTR_GEN_AI_PROVIDER_NAME]: sc.GEN_AI_PROVIDER,
        [sc.ATTR_GEN_AI_REQUEST_MODEL]: model,
        [sc.ATTR_GEN_AI_RESPONSE_MODEL]: responseModel,
      };
      if (this.requestAttributes.size < 1024) this.requestAttributes.set(key, attrs);
    }
    return attrs;
  }
}
