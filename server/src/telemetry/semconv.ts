// Names, units and bucket boundaries from the OpenTelemetry GenAI semantic
// conventions (docs/gen-ai/gen-ai-spans.md and gen-ai-metrics.md, status
// Development), plus tokenstream's own names. Kept as plain strings here: the
// GenAI names live only in @opentelemetry/semantic-conventions' "incubating"
// entry point, which its authors ask users to copy rather than import.

// --- GenAI span / metric attributes -------------------------------------------------
export const ATTR_GEN_AI_OPERATION_NAME = 'gen_ai.operation.name';
export const ATTR_GEN_AI_PROVIDER_NAME = 'gen_ai.provider.name';
export const ATTR_GEN_AI_REQUEST_MODEL = 'gen_ai.request.model';
export const ATTR_GEN_AI_REQUEST_MAX_TOKENS = 'gen_ai.request.max_tokens';
export const ATTR_GEN_AI_REQUEST_TEMPERATURE = 'gen_ai.request.temperature';
export const ATTR_GEN_AI_REQUEST_TOP_P = 'gen_ai.request.top_p';
export const ATTR_GEN_AI_REQUEST_TOP_K = 'gen_ai.request.top_k';
export const ATTR_GEN_AI_REQUEST_FREQUENCY_PENALTY = 'gen_ai.request.frequency_penalty';
export const ATTR_GEN_AI_REQUEST_PRESENCE_PENALTY = 'gen_ai.request.presence_penalty';
export const ATTR_GEN_AI_REQUEST_SEED = 'gen_ai.request.seed';
export const ATTR_GEN_AI_REQUEST_STOP_SEQUENCES = 'gen_ai.request.stop_sequences';
export const ATTR_GEN_AI_REQUEST_STREAM = 'gen_ai.request.stream';
export const ATTR_GEN_AI_CONVERSATION_ID = 'gen_ai.conversation.id';
export const ATTR_GEN_AI_OUTPUT_TYPE = 'gen_ai.output.type';
export const ATTR_GEN_AI_RESPONSE_ID = 'gen_ai.response.id';
export const ATTR_GEN_AI_RESPONSE_MODEL = 'gen_ai.response.model';
export const ATTR_GEN_AI_RESPONSE_FINISH_REASONS = 'gen_ai.response.finish_reasons';
export const ATTR_GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = 'gen_ai.response.time_to_first_chunk';
export const ATTR_GEN_AI_USAGE_INPUT_TOKENS = 'gen_ai.usage.input_tokens';
export const ATTR_GEN_AI_USAGE_OUTPUT_TOKENS = 'gen_ai.usage.output_tokens';
export const ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = 'gen_ai.usage.cache_read.input_tokens';
export const ATTR_GEN_AI_TOKEN_TYPE = 'gen_ai.token.type';
export const ATTR_ERROR_TYPE = 'error.type';
export const ATTR_SERVER_ADDRESS = 'server.address';
export const ATTR_SERVER_PORT = 'server.port';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

export const GEN_AI_OPERATION_TEXT_COMPLETION = 'text_completion';
export const GEN_AI_OPERATION_CHAT = 'chat';
/** No well-known gen_ai.provider.name value fits an in-process engine; the conventions allow a custom one. */
export const GEN_AI_PROVIDER = 'tokenstream';
export const ERROR_TYPE_OTHER = '_OTHER';

// --- GenAI metrics -------------------------------------------------------------------
export const METRIC_SERVER_REQUEST_DURATION = 'gen_ai.server.request.duration';
export const METRIC_SERVER_TIME_TO_FIRST_TOKEN = 'gen_ai.server.time_to_first_token';
export const METRIC_SERVER_TIME_PER_OUTPUT_TOKEN = 'gen_ai.server.time_per_output_token';
export const METRIC_CLIENT_TOKEN_USAGE = 'gen_ai.client.token.usage';
export const METRIC_CLIENT_OPERATION_DURATION = 'gen_ai.client.operation.duration';
export const METRIC_CLIENT_TIME_TO_FIRST_CHUNK = 'gen_ai.client.operation.time_to_first_chunk';

/** gen_ai.server.request.duration and gen_ai.client.operation.duration (seconds). */
export const BUCKETS_REQUEST_DURATION: readonly number[] = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/** gen_ai.server.time_to_first_token (seconds); also used for the client's time to first chunk. */
export const BUCKETS_TIME_TO_FIRST_TOKEN: readonly number[] = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/** gen_ai.server.time_per_output_token (seconds). */
export const BUCKETS_TIME_PER_OUTPUT_TOKEN: readonly number[] = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/** gen_ai.client.token.usage ({token}). */
export const BUCKETS_TOKEN_USAGE: readonly number[] = [
  1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
];

// --- tokenstream's own names -------------------------------------------------------------
export const ATTR_TS_REQUEST_ID = 'tokenstream.request.id';
export const ATTR_TS_WORKER_ID = 'tokenstream.worker.id';
export const ATTR_TS_KV_SLOT = 'tokenstream.kv.slot';
export const ATTR_TS_FINISH_REASON = 'tokenstream.finish_reason';
export const ATTR_TS_QUEUE_MS = 'tokenstream.queue_ms';
export const ATTR_TS_PREFILL_MS = 'tokenstream.prefill_ms';
export const ATTR_TS_DECODE_MS = 'tokenstream.decode_ms';
export const ATTR_TS_TTFT_MS = 'tokenstream.ttft_ms';
export const ATTR_TS_ITL_P50_MS = 'tokenstream.itl.p50_ms';
export const ATTR_TS_ITL_P99_MS = 'tokenstream.itl.p99_ms';
export const ATTR_TS_ITL_MAX_MS = 'tokenstream.itl.max_ms';
export const ATTR_TS_DECODE_TOKENS_PER_S = 'tokenstream.decode_tokens_per_s';
export const ATTR_TS_WRITE_DELAY_P50_MS = 'tokenstream.write_delay.p50_ms';
export const ATTR_TS_WRITE_DELAY_P99_MS = 'tokenstream.write_delay.p99_ms';
export const ATTR_TS_TOKEN_COUNT = 'tokenstream.token.count';
/** Chunked int arrays: `<prefix>.0`, `<prefix>.1`, ... ; see generation-trace.ts. */
export const ATTR_TS_TOKEN_LATENCY_US = 'tokenstream.token.latency_us';
export const ATTR_TS_TOKEN_WRITE_DELAY_US = 'tokenstream.token.write_delay_us';
export const ATTR_TS_TOKEN_CHUNKS = 'tokenstream.token.chunks';
export const ATTR_TS_TOKEN_INDEX = 'tokenstream.token.index';
export const ATTR_TS_GAP_MS = 'tokenstream.gap_ms';
export const ATTR_TS_LABEL_PREFIX = 'tokenstream.label.';
export const ATTR_TS_BATCH_SIZE = 'tokenstream.batch.size';

export const METRIC_TS_QUEUE_LENGTH = 'tokenstream.queue.length';
export const METRIC_TS_SEQUENCES_ACTIVE = 'tokenstream.sequences.active';
export const METRIC_TS_KV_SLOTS_USED = 'tokenstream.kv.slots.used';
export const METRIC_TS_KV_SLOTS_LIMIT = 'tokenstream.kv.slots.limit';
export const METRIC_TS_BATCH_SIZE = 'tokenstream.batch.size';
export const METRIC_TS_BATCH_TOKENS = 'tokenstream.batch.tokens';
export const METRIC_TS_STEP_DURATION = 'tokenstream.step.duration';
export const METRIC_TS_TOKENS_GENERATED = 'tokenstream.tokens.generated';
export const METRIC_TS_TOKENS_PROMPT = 'tokenstream.tokens.prompt';
export const METRIC_TS_ERRORS = 'tokenstream.errors';

/** Sequences per engine step. */
export const BUCKETS_BATCH_SIZE: readonly number[] = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128];
/** Tokens per engine step (prompt chunks make this larger than the sequence count). */
export const BUCKETS_BATCH_TOKENS: readonly number[] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
/** One engine step (seconds). */
export const BUCKETS_STEP_DURATION: readonly number[] = [
  0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5,
];

export const INSTRUMENTATION_SCOPE = 'tokenstream';
