// `tokenstream run`: generate tokens locally, without a server. The prompt in
// chunks of up to --batch tokens, then one token per decode step; timings go
// to stderr so stdout carries only the result.
import { Model, createBatch } from '../engine/model';
import type { SamplingConfig } from '../engine/types';
import { Tokenizer } from '../tokenizer';
import { describeError, helpText, parseFlagsOnly, required, UsageError, type OptionSpec, type OptionValues } from './options';

const USAGE = `Usage: tokenstream run --model FILE (--prompt-ids 1,2,3 | --prompt TEXT) --max-tokens N [options]

Generates tokens locally with the native engine. Timings (prompt and decode
tokens per second) are printed to stderr.`;

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'string', arg: 'FILE', help: 'the GGUF file' },
  { name: 'prompt-ids', kind: 'string', arg: 'LIST', help: 'comma-separated prompt token ids' },
  { name: 'prompt', kind: 'string', arg: 'TEXT', help: "prompt text (tokenized with the model's vocabulary, BOS added as it says)" },
  { name: 'max-tokens', kind: 'int', default: 16, min: 0, arg: 'N', help: 'tokens to generate' },
  { name: 'temperature', kind: 'number', default: 0, min: 0, arg: 'T', help: '0 = greedy' },
  { name: 'top-k', kind: 'int', default: 0, min: 0, arg: 'K', help: '0 = off' },
  { name: 'top-p', kind: 'number', default: 1, min: 0, max: 1, arg: 'P', help: '1 = off' },
  { name: 'min-p', kind: 'number', default: 0, min: 0, max: 1, arg: 'P', help: '0 = off' },
  { name: 'repeat-penalty', kind: 'number', default: 1, min: 0, arg: 'R', help: '1 = off' },
  { name: 'seed', kind: 'int', default: 0, min: 0, max: 0xffffffff, arg: 'S', help: 'sampling seed' },
  { name: 'threads', kind: 'int', min: 1, arg: 'N', help: 'native threads (default: physical cores)' },
  { name: 'ctx', kind: 'int', min: 1, arg: 'N', help: 'context length (default: prompt + max tokens)' },
  { name: 'batch', kind: 'int', default: 512, min: 1, arg: 'N', help: 'most prompt tokens per forward pass' },
  { name: 'ignore-eos', kind: 'boolean', help: 'keep generating after the end-of-sequence token' },
  { name: 'json', kind: 'boolean', help: 'print {"prompt_ids":[...],"generated":[...]} instead of text' },
];

export const RUN_HELP = helpText(USAGE, OPTIONS);

interface RunOptions {
  model: string;
  promptIds?: number[];
  prompt?: string;
  maxTokens: number;
  sampling: SamplingConfig;
  threads?: number;
  ctx?: number;
  batch: number;
  ignoreEos: boolean;
  json: boolean;
}

function parse(values: OptionValues): RunOptions {
  const model = required(values, 'model');
  const idsRaw = values['prompt-ids'] as string | undefined;
  const prompt = values.prompt as string | undefined;
  if ((idsRaw === undefined) === (prompt === undefined)) throw new UsageError('give exactly one of --prompt-ids and --prompt');
  let promptIds: number[] | undefined;
  if (idsRaw !== undefined) {
    promptIds = idsRaw.split(',').map((s) => {
      const n = Number(s.trim());
      if (s.trim() === '' || !Number.isInteger(n) || n < 0) throw new UsageError(`--prompt-ids: '${s}' is not a token id`);
      return n;
    });
  }
  const num = (name: string): number => values[name] as number;
  return {
    model,
    promptIds,
    prompt,
    maxTokens: num('max-tokens'),
    sampling: {
      temperature: num('temperature'),
      topK: num('top-k'),
      topP: num('top-p'),
      minP: num('min-p'),
      repetitionPenalty: num('repeat-penalty'),
      presencePenalty: 0,
      frequencyPenalty: 0,
      penaltyLastN: 64,
      seed: num('seed'),
      topLogprobs: 0,
    },
    threads: values.threads as number | undefined,
    ctx: values.ctx as number | undefined,
    batch: num('batch'),
    ignoreEos: values['ignore-eos'] === true,
    json: values.json === true,
  };
}

function rate(tokens: number, ms: number): string {
  return ms > 0 ? `${((tokens * 1000) / ms).toFixed(1)} tok/s` : '-';
}

export async function command(argv: string[]): Promise<number> {
  let o: RunOptions;
  try {
    const { values, help } = parseFlagsOnly(argv, OPTIONS);
    if (help) {
      process.stdout.write(RUN_HELP);
      return 0;
    }
    o = parse(values);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`tokenstream run: ${e.message}\n\n${RUN_HELP}`);
    return 2;
  }
  try {
    return generate(o);
  } catch (e) {
    process.stderr.write(`${describeError(e)}\n`);
    return 1;
  }
}

function generate(o: RunOptions): number {
  const model = Model.load(o.model);
  const tokenizer = o.prompt !== undefined || !o.json ? Tokenizer.load(o.model) : null;
  const promptIds = o.promptIds ?? tokenizer!.encode(o.prompt!, { addSpecial: true });
  if (promptIds.length === 0) throw Object.assign(new Error('the prompt is empty'), { code: 'INVALID_ARGUMENT' });
  const ctx = o.ctx ?? Math.min(model.info.contextLength, promptIds.length + Math.max(o.maxTokens, 1));
  const maxBatch = Math.min(o.batch, promptIds.length);
  const session = model.createSession({ maxSequences: 1, contextLength: ctx, maxBatch, threads: o.threads });
  session.setSampler(0, o.sampling, Int32Array.from(promptIds));
  const batch = createBatch(maxBatch);
  const eos = o.ignoreEos ? null : model.info.eosTokenId;

  // Prompt, in chunks; logits for its last token only.
  const t0 = performance.now();
  for (let start = 0; start < promptIds.length; start += maxBatch) {
    const n = Math.min(maxBatch, promptIds.length - start);
    for (let i = 0; i < n; i++) {
      batch.seq[i] = 0;
      batch.token[i] = promptIds[start + i];
      batch.pos[i] = start + i;
      batch.logits[i] = start + i === promptIds.length - 1 ? 1 : 0;
    }
    batch.length = n;
    session.decode(batch);
  }
  const tPrompt = performance.now() - t0;

  // Decode: sample, then feed the token back.
  const generated: number[] = [];
  const t1 = performance.now();
  while (generated.length < o.maxTokens) {
    const token = session.sample(0, 0).token;
    generated.push(token);
    if (token === eos || generated.length === o.maxTokens) break;
    const pos = promptIds.length + generated.length - 1;
    if (pos >= ctx) break;
    batch.seq[0] = 0;
    batch.token[0] = token;
    batch.pos[0] = pos;
    batch.logits[0] = 1;
    batch.length = 1;
    session.decode(batch);
  }
  const tDecode = performance.now() - t1;
  session.close();
  model.close();

  if (o.json) {
    process.stdout.write(JSON.stringify({ prompt_ids: promptIds, generated }) + '\n');
  } else {
    process.stdout.write(`${generated.join(' ')}\n`);
    if (tokenizer) process.stdout.write(`${JSON.stringify(tokenizer.decode(generated))}\n`);
  }
  // Decode rate: the steps after the first token (which came from the prompt's pass).
  process.stderr.write(
    `prompt: ${promptIds.length} tokens in ${tPrompt.toFixed(1)} ms (${rate(promptIds.length, tPrompt)}); ` +
      `decode: ${generated.length} tokens in ${tDecode.toFixed(1)} ms (${rate(Math.max(generated.length - 1, 0), tDecode)}); ` +
      `${session.threads} threads, ${model.info.cpuPath}\n`,
  );
  return 0;
}
