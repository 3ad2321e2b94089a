// Options shared by the client commands (generate, chat): server address and sampling.
import type { SamplingParams } from '../../../client/src/client';
import type { OptionSpec, OptionValues } from './options';

export const CLIENT_OPTIONS: OptionSpec[] = [
  { name: 'server', env: 'TOKENSTREAM_SERVER', kind: 'string', default: '127.0.0.1:50051', arg: 'HOST:PORT', help: 'the tokenstream server' },
  { name: 'model', kind: 'string', arg: 'NAME', help: 'a model the server serves (default: its default model)' },
  { name: 'max-tokens', kind: 'int', arg: 'N', help: 'most tokens to generate (server default 256)' },
  { name: 'temperature', kind: 'number', arg: 'T', help: '0 = greedy (server default 0.8)' },
  { name: 'top-k', kind: 'int', arg: 'K', help: '0 = off (server default 40)' },
  { name: 'top-p', kind: 'number', arg: 'P', help: '1 = off (server default 0.95)' },
  { name: 'min-p', kind: 'number', arg: 'P', help: '0 = off (server default 0.05)' },
  { name: 'repetition-penalty', kind: 'number', arg: 'R', help: '1 = off' },
  { name: 'presence-penalty', kind: 'number', arg: 'X', help: '0 = off' },
  { name: 'frequency-penalty', kind: 'number', arg: 'X', help: '0 = off' },
  { name: 'seed', kind: 'int', arg: 'N', help: 'random seed (default: random)' },
  { name: 'stop', kind: 'list', arg: 'TEXT', help: 'stop string, repeatable' },
  { name: 'ignore-eos', kind: 'boolean', help: 'keep going past end-of-generation tokens' },
  { name: 'timeout-ms', kind: 'int', arg: 'MS', help: 'deadline for the generation' },
];

export function samplingFrom(v: OptionValues): Partial<SamplingParams> {
  const p: Partial<SamplingParams> = {};
  const num = (k: string): number | undefined => v[k] as number | undefined;
  if (num('max-tokens') !== undefined) p.maxTokens = num('max-tokens');
  if (num('temperature') !== undefined) p.temperature = num('temperature');
  if (num('top-k') !== undefined) p.topK = num('top-k');
  if (num('top-p') !== undefined) p.topP = num('top-p');
  if (num('min-p') !== undefined) p.minP = num('min-p');
  if (num('repetition-penalty') !== undefined) p.repetitionPenalty = num('repetition-penalty');
  if (num('presence-penalty') !== undefined) p.presencePenalty = num('presence-penalty');
  if (num('frequency-penalty') !== undefined) p.frequencyPenalty = num('frequency-penalty');
  if (num('seed') !== undefined) p.seed = num('seed');
  p.stop = (v.stop as string[] | undefined) ?? [];
  p.ignoreEos = v['ignore-eos'] === true;
  return p;
}
