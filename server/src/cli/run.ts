// `tokenstream run`: generate tokens locally, without a server. The prompt in
// chunks of up to --batch tokens, then one token per decode step; timings go
// to stderr so stdout carries only the result.
import { Model, createBatch } from '../engine/model';
import type { SamplingConfig } from '../engine/types';
import { Tokenizer } from '../tokenizer';
import { UsageError, describeError, numberFlag, parseFlags } from './args';

export const RUN_HELP = `Usage: tokenstream run --model FILE (--prompt-ids 1,2,3 | --prompt TEXT) --max-tokens N [options]

Generates tokens locally with the native engine.

  --model FILE          the GGUF file
  --prompt-ids LIST     comma-separated prompt token ids
  --prompt TEXT         prompt text (tokenized with the model's vocabulary, BOS added as it says)
  --max-tokens N        tokens to generate (default 16)
  --temperature T       0 = greedy (default 0)
  --top-k K             0 = off (default 0)
  --top-p P             1 = off (default 1)
  --min-p P             0 = off (default 0)
  --repeat-penalty R    1 = off (default 1)
  --seed S              sampling seed (default 0)
  --threads N           native threads (default: physical cores)
  --ctx N               context length (default: prompt + max tokens)
  --batch N             most prompt tokens per forward pass (default 512)
  --ignore-eos          keep generating after the end-of-sequence token
  --json                print {"prompt_ids":[...],"generated":[...]} instead of text

Timings (prompt and decode tokens per second) are printed to stderr.
`;

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

function parse(argv: string[]): RunOptions {
  const { values, booleans } = parseFlags(argv, {
    values: ['model', 'prompt-ids', 'prompt', 'max-tokens', 'temperature', 'top-k', 'top-p', 'min-p', 'repeat-penalty', 'seed', 'threads', 'ctx', 'batch'],
    booleans: ['json', 'ignore-eos'],
  });
  const model = values.get('model');
  if (!model) throw new UsageError('--model FILE is required');
  const idsRaw = values.get('prompt-ids');
  const prompt = values.get('prompt');
  if ((idsRaw === undefined) === (prompt === undefined)) throw new UsageError('give exactly one of --prompt-ids and --prompt');
  let promptIds: number[] | undefined;
  if (idsRaw !== undefined) {
    promptIds = idsRaw.split(',').map((s) => {
      const n = Number(s.trim());
      if (s.trim() === '' || !Number.isInteger(n) || n < 0) throw new UsageError(`--prompt-ids: '${s}' is not a token id`);
      return n;
    });
  }
  return {
    model,
    promptIds,
    prompt,
    maxTokens: numberFlag(values, 'max-tokens', 16, { integer: true, min: 0 }),
    sampling: {
      temperature: numberFlag(values, 'temperature', 0, { min: 0 }),
      topK: numberFlag(values, 'top-k', 0, { integer: true, min: 0 }),
      topP: numberFlag(values, 'top-p', 1, { min: 0, max: 1 }),
      minP: numberFlag(values, 'min-p', 0, { min: 0, max: 1 }),
      repetitionPenalty: numberFlag(values, 'repeat-penalty', 1, { min: 0 }),
      presencePenalty: 0,
      frequencyPenalty: 0,
      penaltyLastN: 64,
      seed: numberFlag(values, 'seed', 0, { integer: true, min: 0, max: 0xffffffff }),
      topLogprobs: 0,
    },
    threads: values.has('threads') ? numberFlag(values, 'threads', 0, { integer: true, min: 1 }) : undefined,
    ctx: values.has('ctx') ? numberFlag(values, 'ctx', 0, { integer: true, min: 1 }) : undefined,
    batch: numberFlag(values, 'batch', 512, { integer: true, min: 1 }),
    ignoreEos: booleans.has('ignore-eos'),
    json: booleans.has('json'),
  };
}

function rate(tokens: number, ms: number): string {
  return ms > 0 ? `${((tokens * 1000) / ms).toFixed(1)} tok/s` : '-';
}

export async function command(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(RUN_HELP);
    return 0;
  }
  let o: RunOptions;
  try {
    o = parse(argv);
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
