// `tokenstream info --model FILE [--json]`: a model's configuration, tensor
// types and the CPU kernel path the engine picked.
import { Model } from '../engine/model';
import { describeError, helpText, parseFlagsOnly, required, UsageError, type OptionSpec } from './options';

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'string', arg: 'FILE', help: 'the GGUF file' },
  { name: 'json', kind: 'boolean', help: 'one JSON object instead of text' },
  { name: 'cpu', kind: 'string', arg: 'scalar|avx2|avx512|neon', help: 'force a kernel path (default: TOKENSTREAM_CPU, else the best the CPU has)' },
];

export const INFO_HELP = helpText(
  `Usage: tokenstream info --model FILE [--json] [--cpu scalar|avx2|avx512|neon]

Prints a GGUF model's configuration, tensor types and the CPU kernel path.
A file the engine cannot load exits 1 with '<code>: <message>' on stderr.`,
  OPTIONS,
);

export async function command(argv: string[]): Promise<number> {
  let file: string;
  let json: boolean;
  let cpu: string | undefined;
  try {
    const { values, help } = parseFlagsOnly(argv, OPTIONS);
    if (help) {
      process.stdout.write(INFO_HELP);
      return 0;
    }
    file = required(values, 'model');
    json = values.json === true;
    cpu = values.cpu as string | undefined;
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`tokenstream info: ${e.message}\n\n${INFO_HELP}`);
    return 2;
  }
  let model: Model;
  try {
    model = Model.load(file, cpu ? { cpu: cpu as 'scalar' } : {});
  } catch (e) {
    process.stderr.write(`${describeError(e)}\n`);
    return 1;
  }
  const i = model.info;
  model.close();
  if (json) {
    process.stdout.write(JSON.stringify(i, null, 2) + '\n');
    return 0;
  }
  const types = Object.entries(i.tensorTypes)
    .sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  const rows: Array<[string, string | number]> = [
    ['file', `${i.path} (${(i.fileSize / 2 ** 20).toFixed(1)} MiB)`],
    ['name', i.name],
    ['architecture', i.architecture],
    ['parameters', `${(i.parameterCount / 1e6).toFixed(2)} M`],
    ['vocabulary', i.vocabSize],
    ['context length', i.contextLength],
    ['embedding length', i.embeddingLength],
    ['blocks', i.blockCount],
    ['attention heads', `${i.headCount} (KV heads ${i.headCountKv}, head size ${i.headDim})`],
    ['feed-forward length', i.feedForwardLength],
    ['RMS epsilon', Number(i.rmsEpsilon.toPrecision(6))],
    ['RoPE', `${i.ropeType}, base ${i.ropeBase}, ${i.ropeDimensionCount} dims` + (i.ropeFreqScale !== 1 ? `, linear scale ${1 / i.ropeFreqScale}` : '') + (i.hasRopeFreqs ? ', frequency factors' : '')],
    ['output', i.tiedOutput ? 'tied to token_embd' : 'output.weight'],
    ['tensor types', types],
    ['CPU kernel path', `${i.cpuPath} (${i.physicalCores} physical cores)`],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  process.stdout.write(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
  return 0;
}
