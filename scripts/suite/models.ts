// The benchmark models of bench/README.md: their file names in bench/models/
// and the make-model command that writes each (random weights, real shapes).
import * as fs from 'node:fs';
import * as path from 'node:path';

const VOCAB = 'test/fixtures/tokenizer/ggml-vocab-llama-spm.gguf';
const SMOLLM2 = '--arch llama --embd 576 --layers 30 --heads 9 --kv-heads 3 --ffn 1536 --tied';
const TINYLLAMA = '--arch llama --embd 2048 --layers 22 --heads 32 --kv-heads 4 --ffn 5632';

/** File name -> make-model arguments (without --out). In the order the suite runs them. */
export const BENCH_MODELS: ReadonlyArray<{ file: string; args: string }> = [
  { file: 'smollm2-135m-shape-q8_0.gguf', args: `${SMOLLM2} --type q8_0 --vocab-from ${VOCAB}` },
  { file: 'smollm2-135m-shape-q4_0.gguf', args: `${SMOLLM2} --type q4_0 --vocab-from ${VOCAB}` },
  { file: 'tinyllama-1.1b-shape-q4_0.gguf', args: `${TINYLLAMA} --type q4_0 --vocab-from ${VOCAB}` },
];

export function makeModelCommand(file: string, dir = 'bench/models'): string | null {
  const m = BENCH_MODELS.find((x) => x.file === path.basename(file));
  return m ? `npm run make-model -- ${m.args} --out ${path.join(dir, m.file)}` : null;
}

export interface ModelChoice {
  /** absolute paths that exist */
  found: string[];
  /** one line per missing default model, with the command that creates it */
  missing: string[];
}

/**
 * The models to run: `given` (each must exist: a missing one throws, naming the
 * make-model command when it is one of the bench models), else the bench models
 * present in `dir` (the missing ones listed with their command). Throws when
 * nothing is left to run.
 */
export function chooseModels(given: string[], root: string, dir = path.join(root, 'bench/models')): ModelChoice {
  if (given.length > 0) {
    const found: string[] = [];
    for (const g of given) {
      const file = path.resolve(g);
      if (!fs.existsSync(file)) {
        const cmd = makeModelCommand(file, path.relative(root, path.dirname(file)) || '.');
        throw new Error(`model ${file} not found${cmd ? `; create it with:\n  ${cmd}` : ''}`);
      }
      found.push(file);
    }
    return { found, missing: [] };
  }
  const found: string[] = [];
  const missing: string[] = [];
  for (const m of BENCH_MODELS) {
    const file = path.join(dir, m.file);
    if (fs.existsSync(file)) found.push(file);
    else missing.push(`${path.relative(root, file)} is missing; create it with:\n  ${makeModelCommand(file, path.relative(root, dir))}`);
  }
  if (found.length === 0) {
    throw new Error(`no benchmark model in ${dir} (or pass --model FILE):\n${missing.join('\n')}`);
  }
  return { found, missing };
}
