// `tokenstream info --model FILE [--json]`: a model's configuration, tensor
// types and the CPU kernel path the engine picked.
import { Model } from '../engine/model';
import { UsageError, describeError, parseFlags } from './args';

export const INFO_HELP = `Usage: tokenstream info --model FILE [--json] [--cpu scalar|avx2|avx512|neon]

Prints a GGUF model's configuration, tensor types and the CPU kernel path.

  --model FILE   the GGUF file
  --json         one JSON object instead of text
  --cpu PATH     force a kernel path (default: TOKENSTREAM_CPU, else the best the CPU has)

A file the engine cannot load exits 1 with '<code>: <message>' on stderr.
`;

export async function command(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(INFO_HELP);
    return 0;
  }
  let file: string;
  let json: boolean;
  let cpu: string | undefined;
  try {
    const { values, booleans } = parseFlags(argv, { values: ['model', 'cpu'], booleans: ['json'] });
    const m = values.get('model');
    if (!m) throw new UsageError('--model FILE is required');
    file = m;
    json = booleans.has('json');
    cpu = values.get('cpu');
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
