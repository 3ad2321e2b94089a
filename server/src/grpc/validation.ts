// Checks a GenerateRequest and turns it into what a worker runs: prompt token ids,
// a complete SamplingConfig (defaults filled in), stop strings and limits. Every
// rejection is an ApiError with the status the API promises.
import { randomInt } from 'node:crypto';
import type { GenerateRequest, SamplingParams } from '../generated/tokenstream/v1/tokenstream';
import type { SamplingConfig } from '../engine/types';
import { failedPrecondition, invalidArgument, notFound, outOfRange } from './status';

/** Defaults for unset SamplingParams fields (documented in the proto). */
export const SAMPLING_DEFAULTS = {
  maxTokens: 256,
  temperature: 0.8,
  topK: 40,
  topP: 0.95,
  minP: 0.05,
  repetitionPenalty: 1,
  presencePenalty: 0,
  frequencyPenalty: 0,
  penaltyLastN: 64,
} as const;

export const LIMITS = {
  maxStops: 16,
  maxStopBytes: 256,
  maxLogprobs: 20,
  maxMessages: 1024,
  maxRequestIdBytes: 256,
} as const;

/** What validation needs to know about a model (implemented by ServedModel). */
export interface ModelForValidation {
  readonly name: string;
  readonly vocabSize: number;
  /** Per-sequence context. */
  readonly contextLength: number;
  /** The longest token in bytes, or more (an upper bound): text longer than context × this cannot fit. */
  readonly maxTokenBytes: number;
  encode(text: string, opts: { addSpecial: boolean; parseSpecial: boolean }): ArrayLike<number>;
  /** Rendered with the chat template and tokenized as llama.cpp's server does (one BOS, special tokens parsed). */
  encodeChat(messages: Array<{ role: string; content: string }>): ArrayLike<number>;
  hasChatTemplate(): boolean;
}

export interface ValidatedGeneration<M extends ModelForValidation> {
  model: M;
  tokens: Int32Array;
  maxTokens: number;
  sampling: SamplingConfig;
  stops: string[];
  ignoreEos: boolean;
  /** -1: no logprobs. */
  logprobs: number;
  includeBytes: boolean;
  timeoutMs: number;
  chat: boolean;
}

const isSet = (v: number | undefined): v is number => v !== undefined;

/** Range checks of the sampling parameters; returns a complete config. */
export function validateSampling(p: SamplingParams | undefined): { sampling: SamplingConfig; maxTokens?: number; logprobs: number; stops: string[]; ignoreEos: boolean } {
  const params: Partial<SamplingParams> = p ?? {};
  const finite = (name: string, v: number | undefined): void => {
    if (isSet(v) && !Number.isFinite(v)) throw invalidArgument(`${name} must be a finite number, got ${v}`);
  };
  for (const k of ['temperature', 'topP', 'minP', 'repetitionPenalty', 'presencePenalty', 'frequencyPenalty'] as const) {
    finite(snake(k), params[k]);
  }
  if (isSet(params.maxTokens) && params.maxTokens === 0) throw invalidArgument('max_tokens must be at least 1');
  if (isSet(params.temperature) && params.temperature < 0) throw invalidArgument(`temperature must be >= 0, got ${params.temperature}`);
  if (isSet(params.topP) && !(params.topP > 0 && params.topP <= 1)) throw invalidArgument(`top_p must be in (0, 1], got ${params.topP}`);
  if (isSet(params.topK) && params.topK < 0) throw invalidArgument(`top_k must be >= 0, got ${params.topK}`);
  if (isSet(params.minP) && !(params.minP >= 0 && params.minP <= 1)) throw invalidArgument(`min_p must be in [0, 1], got ${params.minP}`);
  if (isSet(params.repetitionPenalty) && !(params.repetitionPenalty > 0)) {
    throw invalidArgument(`repetition_penalty must be > 0, got ${params.repetitionPenalty}`);
  }
  if (isSet(params.logprobs) && params.logprobs > LIMITS.maxLogprobs) {
    throw invalidArgument(`logprobs must be at most ${LIMITS.maxLogprobs}, got ${params.logprobs}`);
  }
  const stops = params.stop ?? [];
  if (stops.length > LIMITS.maxStops) throw invalidArgument(`at most ${LIMITS.maxStops} stop strings, got ${stops.length}`);
  for (const s of stops) {
    const bytes = Buffer.byteLength(s);
    if (bytes === 0) throw invalidArgument('stop strings must not be empty');
    if (bytes > LIMITS.maxStopBytes) throw invalidArgument(`stop strings must be at most ${LIMITS.maxStopBytes} bytes, got ${bytes}`);
  }
  const sampling: SamplingConfig = {
    temperature: params.temperature ?? SAMPLING_DEFAULTS.temperature,
    topK: params.topK ?? SAMPLING_DEFAULTS.topK,
    topP: params.topP ?? SAMPLING_DEFAULTS.topP,
    minP: params.minP ?? SAMPLING_DEFAULTS.minP,
    repetitionPenalty: params.repetitionPenalty ?? SAMPLING_DEFAULTS.repetitionPenalty,
    presencePenalty: params.presencePenalty ?? SAMPLING_DEFAULTS.presencePenalty,
    frequencyPenalty: params.frequencyPenalty ?? SAMPLING_DEFAULTS.frequencyPenalty,
    penaltyLastN: params.penaltyLastN ?? SAMPLING_DEFAULTS.penaltyLastN,
    seed: params.seed ?? randomInt(0, 2 ** 32 - 1),
    topLogprobs: params.logprobs ?? 0,
  };
  return { sampling, maxTokens: params.maxTokens, logprobs: isSet(params.logprobs) ? params.logprobs : -1, stops: [...stops], ignoreEos: params.ignoreEos ?? false };
}

/** Resolves the model: empty name = the default. */
export function resolveModel<M>(name: string, lookup: (name: string) => M | undefined, known: () => string[]): M {
  const model = lookup(name);
  if (!model) throw notFound(`unknown model '${name}' (serving: ${known().join(', ')})`);
  return model;
}

/** The prompt's token ids from exactly one of prompt / messages / tokens. */
export function promptTokens(req: GenerateRequest, model: ModelForValidation): { tokens: Int32Array; chat: boolean } {
  const kinds = [req.prompt !== '' && 'prompt', req.messages.length > 0 && 'messages', req.tokens.length > 0 && 'tokens'].filter(Boolean);
  if (kinds.length === 0) throw invalidArgument('empty input: set one of prompt, messages or tokens');
  if (kinds.length > 1) throw invalidArgument(`more than one input: ${kinds.join(' and ')} (set exactly one)`);
  const ctx = model.contextLength;
  // Text this long cannot fit whatever it tokenizes to: refuse without tokenizing.
  const refuseHopeless = (bytes: number): void => {
    const minTokens = Math.ceil(bytes / Math.max(1, model.maxTokenBytes));
    if (minTokens >= ctx) throw tooLong(minTokens, 'at least ');
  };
  const tooLong = (n: number, atLeast = ''): Error =>
    outOfRange(`the prompt is ${atLeast}${n} tokens; model '${model.name}' has a context of ${ctx} tokens per sequence (the prompt must leave room for at least one token)`);

  if (req.tokens.length > 0) {
    const ids = req.tokens;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] >= model.vocabSize) {
        throw invalidArgument(`token id ${ids[i]} at index ${i} is outside the vocabulary (model '${model.name}' has ${model.vocabSize} tokens)`);
      }
    }
    if (ids.length >= ctx) throw tooLong(ids.length);
    return { tokens: Int32Array.from(ids), chat: false };
  }

  let ids: ArrayLike<number>;
  if (req.messages.length > 0) {
    if (req.messages.length > LIMITS.maxMessages) throw invalidArgument(`at most ${LIMITS.maxMessages} messages, got ${req.messages.length}`);
    let bytes = 0;
    for (const [i, m] of req.messages.entries()) {
      if (m.role === '') throw invalidArgument(`messages[${i}].role is empty`);
      bytes += Buffer.byteLength(m.content);
    }
    if (!model.hasChatTemplate()) throw failedPrecondition(`model '${model.name}' has no chat template: send a prompt or tokens instead`);
    refuseHopeless(bytes);
    try {
      ids = model.encodeChat(req.messages.map((m) => ({ role: m.role, content: m.content })));
    } catch (err) {
      throw invalidArgument(`the chat template rejected the messages: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else {
    refuseHopeless(Buffer.byteLength(req.prompt));
    ids = model.encode(req.prompt, { addSpecial: req.addSpecial ?? true, parseSpecial: req.parseSpecial });
  }
  if (ids.length === 0) throw invalidArgument('the prompt tokenizes to no tokens');
  if (ids.length >= ctx) throw tooLong(ids.length);
  return { tokens: Int32Array.from(ids), chat: req.messages.length > 0 };
}

/** Full validation of a generation request against its model. */
export function validateGeneration<M extends ModelForValidation>(req: GenerateRequest, model: M): ValidatedGeneration<M> {
  if (Buffer.byteLength(req.requestId) > LIMITS.maxRequestIdBytes) throw invalidArgument(`request_id must be at most ${LIMITS.maxRequestIdBytes} bytes`);
  const s = validateSampling(req.params);
  const ctx = model.contextLength;
  if (s.maxTokens !== undefined && s.maxTokens > ctx) {
    throw outOfRange(`max_tokens ${s.maxTokens} is past the context of ${ctx} tokens of model '${model.name}'`);
  }
  const { tokens, chat } = promptTokens(req, model);
  return {
    model,
    tokens,
    maxTokens: s.maxTokens ?? SAMPLING_DEFAULTS.maxTokens,
    sampling: s.sampling,
    stops: s.stops,
    ignoreEos: s.ignoreEos,
    logprobs: s.logprobs,
    includeBytes: req.includeBytes,
    timeoutMs: req.timeoutMs,
    chat,
  };
}

function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
