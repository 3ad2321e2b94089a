// Tokenizer throughput: encodes ~1 MB of mixed English / code / CJK text and prints MB/s.
//   npm run bench:tokenizer [-- --model FILE ... --mb 1 --runs 3]
// Default models: the llama.cpp vocabularies in test/fixtures/tokenizer (SPM and GPT-2 BPE).
// "cold" is the first encode (empty word caches), "warm" the best of the following runs.
import * as path from 'node:path';
import { type OptionSpec, runScript, scriptOptions } from '../server/src/cli/options';
import { Tokenizer } from '../server/src/tokenizer';
import { utf8ByteLength } from '../server/src/tokenizer/unicode';

const ENGLISH = (
  'the of and to in is was for that with as on by at from his her they this which be are had not have one ' +
  'an were their or been has but all when would there who more will out up so said what its about into than ' +
  'them can only other time new some could these two may first then do any like my now over such our man me ' +
  "even most made after also did many before must through back years where much your way well down should " +
  "because each just those people Mr how too little state good very make world still own see men work long " +
  "get here between both life being under never day same another know while last might us great old year " +
  "don't it's we're they've I'll she'd tokenizer streaming generation model server latency throughput"
).split(' ');

const CODE = [
  'function add(a, b) {\n  return a + b;\n}\n',
  'for (let i = 0; i < n; i++) {\n    sum += values[i] * weights[i];\n}\n',
  'def tokenize(text: str) -> list[int]:\n    return [vocab[w] for w in text.split()]\n',
  'const result = await fetch(`${baseUrl}/v1/generate`, { method: "POST", body });\n',
  'if (err != nil) {\n\treturn fmt.Errorf("decode: %w", err)\n}\n',
  '#include <stdio.h>\nint main(void) { printf("%d\\n", 42); return 0; }\n',
  'SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL 7 DAY;\n',
  '    x = np.zeros((batch, 4096), dtype=np.float32)  # 16 KiB per row\n',
];

const CJK = '的一是不了人我在有他这中大来上个国到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现分将外但身些与高意进把法此实回二理美点月明其种声全工己话儿者向情部正名定女问力机给等几很业最间新什打便位因重被走电四第门相次东政海口使教西再平真听世气信北少关并内加化由却代军产入先山五太水万市眼体别处总才场师书比住员九笑性通目华报立马命张活难神数件安表原车白应路期叫死常提感金何更反合放做系计或司利受光王果亲界及今京务制解各任至清物台象记边共风战干接它许八特觉望直服毛林题建南度统色字请交爱让认算论百吃义科怎元社术结六功指思非流每青管夫连远资队跟带花快条院变联言权往展该领传近留红治决周保达办运武半候七必城父强步完革深区即求品士转量空甚众技轻程告江语英基派满式李息写呢识极令黄德收脸钱党倒未持音';
const EMOJI = ['🦙', '🚀', '😁', '✅', '👍🏽', '😶‍🌫️'];

/** Deterministic pseudo-random numbers (xorshift32). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

/**
 * About `bytes` bytes of text: ~55% English-like prose (common words, numbers and
 * made-up words), ~30% code, ~15% CJK, some emoji. Deterministic for a seed.
 */
export function mixedText(bytes: number, seed = 1): string {
  const r = rng(seed);
  const pick = <T>(a: readonly T[] | string): T => a[Math.floor(r() * a.length)] as T;
  const SYLLABLES = ['ka', 'lo', 'ri', 'sen', 'tor', 'ex', 'qua', 'min', 'dra', 'vel', 'ph', 'ing', 'tion', 'st', 'ou'];
  const pseudoWord = () => {
    let w = '';
    const n = 1 + Math.floor(r() * 4);
    for (let i = 0; i < n; i++) w += pick(SYLLABLES);
    return w;
  };
  const parts: string[] = [];
  let size = 0;
  while (size < bytes) {
    const x = r();
    let s: string;
    if (x < 0.55) {
      const words: string[] = [];
      const n = 8 + Math.floor(r() * 20);
      for (let i = 0; i < n; i++) {
        const y = r();
        // numbers, made-up words (so that, as in real text, many words are new to the cache), common words
        words.push(y < 0.05 ? String(Math.floor(r() * 100000)) : y < 0.3 ? pseudoWord() : pick(ENGLISH));
      }
      words[0] = words[0][0].toUpperCase() + words[0].slice(1);
      s = words.join(' ') + pick(['. ', '. ', ', ', '? ', '! ', '.\n\n']);
      if (r() < 0.05) s += pick(EMOJI) + ' ';
    } else if (x < 0.85) {
      s = pick(CODE);
    } else {
      let t = '';
      const n = 10 + Math.floor(r() * 30);
      for (let i = 0; i < n; i++) t += pick(CJK);
      s = t + pick(['。', '，', '！', '？']) + (r() < 0.3 ? '\n' : '');
    }
    parts.push(s);
    size += utf8ByteLength(s);
  }
  return parts.join('');
}

const OPTIONS: OptionSpec[] = [
  { name: 'model', kind: 'list', arg: 'FILE', help: 'a GGUF vocabulary; repeat for more (default: the SPM and GPT-2 test vocabularies)' },
  { name: 'mb', kind: 'number', default: 1, min: 0.001, arg: 'MB', help: 'size of the generated text' },
  { name: 'runs', kind: 'int', default: 3, min: 2, arg: 'N', help: 'encodings timed (the first is cold)' },
];

function parseArgs(argv: string[]): { models: string[]; mb: number; runs: number } | null {
  return scriptOptions('usage: npm run bench:tokenizer -- [options]', OPTIONS, argv, (v) => {
    const models = (v.model as string[] | undefined) ?? [];
    if (models.length === 0) {
      const fix = path.join(__dirname, '..', '..', 'test', 'fixtures', 'tokenizer');
      models.push(path.join(fix, 'ggml-vocab-llama-spm.gguf'), path.join(fix, 'ggml-vocab-gpt-2.gguf'));
    }
    return { models, mb: v.mb as number, runs: v.runs as number };
  });
}

async function main(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  if (!o) return 0;
  const { models, mb, runs } = o;
  const text = mixedText(Math.round(mb * 1024 * 1024));
  const bytes = utf8ByteLength(text);
  console.log(`text: ${(bytes / 1e6).toFixed(2)} MB, ${text.length} UTF-16 units (English / code / CJK / emoji)`);
  for (const model of models) {
    let t0 = process.hrtime.bigint();
    const tok = Tokenizer.load(model);
    const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const times: number[] = [];
    let n = 0;
    for (let i = 0; i < runs; i++) {
      t0 = process.hrtime.bigint();
      n = tok.encode(text).length;
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
    }
    const ids = tok.encode(text);
    t0 = process.hrtime.bigint();
    const back = tok.decode(ids);
    const decodeS = Number(process.hrtime.bigint() - t0) / 1e9;
    const warm = Math.min(...times.slice(1));
    console.log(
      `${path.basename(model)} (${tok.model}${tok.pre ? '/' + tok.pre : ''}, ${tok.vocabSize} tokens): ` +
        `load ${loadMs.toFixed(0)} ms; encode cold ${(bytes / 1e6 / times[0]).toFixed(1)} MB/s, ` +
        `warm ${(bytes / 1e6 / warm).toFixed(1)} MB/s (${n} tokens, ${(n / warm / 1e6).toFixed(2)} M tokens/s); ` +
        `decode ${(bytes / 1e6 / decodeS).toFixed(1)} MB/s${back.length > 0 ? '' : ' (empty?)'}`,
    );
  }
  return 0;
}

if (require.main === module) runScript('bench:tokenizer', main);
