// Parity probe: the engine's per-step logprobs next to llama.cpp's, computed
// here by llama.cpp itself (node-llama-cpp 3.21.1, installed on first use into
// bench/peer like the benchmark's peer) and, when given, next to a reference
// JSON in the shared reference format. For kernel and forward-pass work:
// "how many steps agree bit for bit with llama.cpp on this machine" is the
// measure that is not blurred by the chaos of 8-bit activations
// (docs/llama-cpp-parity.md).
//
//   node dist/scripts/parity-llamacpp.js                       # every file of the reference JSON
//   node dist/scripts/parity-llamacpp.js --model F.gguf --prompt-ids 1,2,3 [--steps 32]
//
// Procedure, for both engines: a fresh sequence per prompt, the prompt in one
// batch, then each next token alone; logprob = log-softmax over the vocabulary.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { packageRoot } from '../server/src/engine/addon';
import { Model, createBatch } from '../server/src/engine/model';
import { type OptionSpec, runScript, scriptOptions, UsageError } from '../server/src/cli/options';
import { ensurePeer, importEsm } from './peer/install';

interface Case {
  text?: string;
  prompt_ids: number[];
  generated: number[];
  steps: Array<{ top5: Array<[number, number]> }>;
}

const OPTIONS: OptionSpec[] = [
  { name: 'reference', kind: 'string', arg: 'FILE', help: 'reference JSON (default test/fixtures/reference/llama-cpp-reference.json)' },
  { name: 'only', kind: 'string', arg: 'NAME,...', help: 'only these files of the reference' },
  { name: 'model', kind: 'string', arg: 'FILE', help: 'a model not in the reference (with --prompt-ids): llama.cpp generates greedily' },
  { name: 'prompt-ids', kind: 'string', arg: 'LIST', help: 'comma-separated prompt ids for --model' },
  { name: 'steps', kind: 'int', default: 32, min: 1, arg: 'N', help: 'generated steps for --model' },
  { name: 'threads', kind: 'int', default: 2, min: 1, arg: 'N', help: 'threads for both engines' },
  { name: 'cpu', kind: 'string', arg: 'PATH', help: "the engine's kernel path (default: best)" },
  { name: 'json', kind: 'boolean', help: 'one JSON object per file instead of text' },
];

const USAGE = 'Usage: node dist/scripts/parity-llamacpp.js [options]';

/** Natural-log softmax value of `ids` in one logits row. */
function logprobs(row: ArrayLike<number>, ids: number[]): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const lz = max + Math.log(sum);
  return ids.map((id) => row[id] - lz);
}

/** Our logprobs of the listed ids at each step. */
function ours(file: string, cases: Case[], threads: number, cpu: string | undefined): number[][][] {
  const model = Model.load(file, cpu ? { cpu: cpu as 'scalar' } : {});
  const longest = Math.max(...cases.map((c) => c.prompt_ids.length + c.generated.length));
  const session = model.createSession({ maxSequences: 1, contextLength: longest + 1, maxBatch: longest, threads });
  const batch = createBatch(longest);
  const feed = (tokens: number[], start: number): Float32Array => {
    tokens.forEach((t, i) => {
      batch.seq[i] = 0;
      batch.token[i] = t;
      batch.pos[i] = start + i;
      batch.logits[i] = i === tokens.length - 1 ? 1 : 0;
    });
    batch.length = tokens.length;
    return session.decode(batch);
  };
  const out = cases.map((c) => {
    session.clearSequence(0);
    const steps: number[][] = [];
    let row = feed(c.prompt_ids, 0);
    for (let s = 0; s < c.steps.length; s++) {
      steps.push(logprobs(row, c.steps[s].top5.map(([id]) => id)));
      if (s + 1 < c.steps.length) row = feed([c.generated[s]], c.prompt_ids.length + s);
    }
    return steps;
  });
  session.close();
  model.close();
  return out;
}

/* The few node-llama-cpp 3.21 shapes used here. */
interface PeerSequence {
  controlledEvaluate(items: unknown[]): Promise<Array<{ next?: { probabilities?: Map<number, number> } } | undefined>>;
}
interface PeerContext {
  getSequence(): PeerSequence;
  dispose(): Promise<void>;
}
interface PeerModel {
  createContext(o: Record<string, unknown>): Promise<PeerContext>;
  dispose(): Promise<void>;
}
interface PeerLlama {
  loadModel(o: Record<string, unknown>): Promise<PeerModel>;
}

/** llama.cpp's full-vocabulary probabilities at each step (prompt, then one token at a time). */
async function llamaCppSteps(llama: PeerLlama, file: string, prompt: number[], next: (step: number, probs: Map<number, number>) => number | null, threads: number): Promise<Array<Map<number, number>>> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const ctx = await model.createContext({ contextSize: 512, sequences: 1, threads: { ideal: threads, min: threads } });
  const seq = ctx.getSequence();
  const steps: Array<Map<number, number>> = [];
  const probe = { generateNext: { probabilities: true } };
  let items: unknown[] = [...prompt.slice(0, -1), [prompt[prompt.length - 1], probe]];
  for (let s = 0; ; s++) {
    const res = await seq.controlledEvaluate(items);
    const probs = res[res.length - 1]?.next?.probabilities;
    if (!probs) throw new Error('node-llama-cpp returned no probabilities');
    steps.push(probs);
    const t = next(s, probs);
    if (t === null) break;
    items = [[t, probe]];
  }
  await ctx.dispose();
  await model.dispose();
  return steps;
}

interface Agreement {
  steps: number; // steps whose listed logprobs all agree within 0.002
  ids: number; // listed logprobs within 1e-5
  total: number;
  median: number;
  worst: number;
}

function agreement(a: number[][][], b: number[][][]): Agreement {
  const diffs: number[] = [];
  let steps = 0;
  a.forEach((c, i) =>
    c.forEach((s, j) => {
      const d = s.map((v, k) => Math.abs(v - b[i][j][k]));
      diffs.push(...d);
      if (Math.max(...d) < 0.002) steps++;
    }),
  );
  diffs.sort((x, y) => x - y);
  return { steps, ids: diffs.filter((d) => d < 1e-5).length, total: diffs.length, median: diffs[diffs.length >> 1], worst: diffs[diffs.length - 1] };
}

function show(name: string, what: string, g: Agreement, nSteps: number): string {
  return `${name.padEnd(28)} ${what.padEnd(22)} steps ${String(g.steps).padStart(3)}/${nSteps}  ids<1e-5 ${String(g.ids).padStart(3)}/${g.total}  median ${g.median.toFixed(4)}  worst ${g.worst.toFixed(4)}`;
}

async function main(argv: string[]): Promise<number> {
  const values = scriptOptions(USAGE, OPTIONS, argv, (v) => v);
  if (!values) return 0;
  const root = packageRoot();
  const threads = values.threads as number;
  const cpu = values.cpu as string | undefined;
  const entry = ensurePeer(root);
  const mod = await importEsm(entry);
  const getLlama = mod.getLlama as (o: Record<string, unknown>) => Promise<PeerLlama>;
  const llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, maxThreads: threads, logLevel: (mod.LlamaLogLevel as Record<string, unknown>).error, progressLogs: false });

  // Work list: (file, cases, reference logprobs or null).
  const work: Array<{ name: string; file: string; cases: Case[]; reference: number[][][] | null }> = [];
  if (values.model !== undefined) {
    const file = path.resolve(values.model as string);
    const ids = ((values['prompt-ids'] as string | undefined) ?? '').split(',').filter(Boolean).map(Number);
    if (!ids.length || ids.some((n) => !Number.isInteger(n) || n < 0)) throw new UsageError('--model needs --prompt-ids');
    const n = values.steps as number;
    // llama.cpp generates greedily; its top-5 at each step are the ids compared.
    const generated: number[] = [];
    const steps: Case['steps'] = [];
    await llamaCppSteps(llama, file, ids, (s, probs) => {
      const top = [...probs.entries()].sort((x, y) => y[1] - x[1]).slice(0, 5);
      steps.push({ top5: top.map(([id, p]) => [id, Math.log(p)]) });
      generated.push(top[0][0]);
      return s + 1 < n ? top[0][0] : null;
    }, threads);
    work.push({ name: path.basename(file), file, cases: [{ prompt_ids: ids, generated, steps }], reference: null });
  } else {
    const refFile = path.resolve((values.reference as string | undefined) ?? path.join(root, 'test/fixtures/reference/llama-cpp-reference.json'));
    const ref = JSON.parse(fs.readFileSync(refFile, 'utf8')) as { models: Record<string, Case[]> };
    const only = (values.only as string | undefined)?.split(',');
    for (const [name, cases] of Object.entries(ref.models)) {
      if (only && !only.includes(name)) continue;
      const candidates = [path.join(path.dirname(refFile), name), path.join(root, 'test/fixtures/models', name), path.join(root, 'models', name)];
      const file = candidates.find((f) => fs.existsSync(f));
      if (!file) throw new Error(`${name}: not found next to ${refFile} nor in test/fixtures/models or models/`);
      work.push({ name, file, cases, reference: cases.map((c) => c.steps.map((s) => s.top5.map(([, lp]) => lp))) });
    }
  }

  for (const w of work) {
    const mine = ours(w.file, w.cases, threads, cpu);
    const theirs: number[][][] = [];
    for (const c of w.cases) {
      const probs = await llamaCppSteps(llama, w.file, c.prompt_ids, (s) => (s + 1 < c.steps.length ? c.generated[s] : null), threads);
      theirs.push(probs.map((p, s) => c.steps[s].top5.map(([id]) => Math.log(p.get(id) ?? 0))));
    }
    const nSteps = w.cases.reduce((a, c) => a + c.steps.length, 0);
    const rows: Record<string, Agreement> = { 'engine vs llama.cpp': agreement(mine, theirs) };
    if (w.reference) {
      rows['engine vs reference'] = agreement(mine, w.reference);
      rows['llama.cpp vs reference'] = agreement(theirs, w.reference);
    }
    if (values.json === true) process.stdout.write(`${JSON.stringify({ model: w.name, steps: nSteps, ...rows })}\n`);
    else for (const [k, g] of Object.entries(rows)) process.stdout.write(`${show(w.name, k, g, nSteps)}\n`);
  }
  return 0;
}

if (require.main === module) runScript('parity-llamacpp', main);
