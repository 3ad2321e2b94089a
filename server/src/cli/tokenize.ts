// `tokenstream tokenize` / `tokenstream detokenize`: the tokenizer of any GGUF file
// (a model or a vocabulary-only file) from the command line.
import * as fs from 'node:fs';
import { Tokenizer } from '../tokenizer';
import { parseFlags, UsageError } from './args';

export const TOKENIZE_HELP = `Usage: tokenstream tokenize --model FILE (--text "..." | --file F) [--add-special] [--special]

Prints the token ids of the text as a JSON array. By default exactly the text's
tokens, as llama.cpp's tokenizer tests make them: no BOS/EOS, control tokens such as
"<|im_start|>" are plain text.
  --model FILE     a GGUF file (a model, or a vocabulary-only file)
  --text TEXT      the text to tokenize
  --file F         read the text from F (UTF-8)
  --add-special    add BOS/EOS as the model's metadata says (add_bos_token, add_eos_token)
  --special        parse control tokens written in the text
`;

export const DETOKENIZE_HELP = `Usage: tokenstream detokenize --model FILE --ids 1,2,3 [--special]

Prints the text of the token ids (as llama.cpp's detokenizer makes it) and a newline.
  --model FILE     a GGUF file (a model, or a vocabulary-only file)
  --ids IDS        token ids: comma/space separated, or a JSON array
  --special        render control tokens (e.g. "<|eot_id|>"); by default they give no text
`;

interface Args {
  values: Record<string, string>;
  flags: Set<string>;
}

export function parseIds(text: string): number[] {
  const t = text.trim();
  const parts = t.startsWith('[') ? (JSON.parse(t) as unknown[]).map(String) : t.split(/[\s,]+/).filter((s) => s !== '');
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new Error(`--ids: '${p}' is not a token id`);
    return Number(p);
  });
}

async function run(name: string, help: string, argv: string[], body: (a: Args) => string): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(help);
    return 0;
  }
  let out: string;
  try {
    out = body(parseArgsFor(name, argv));
  } catch (e) {
    const err = e as Error & { code?: string };
    if (err instanceof UsageError || !err.code) {
      process.stderr.write(`${name}: ${err.message}\n\n${help}`);
      return 2;
    }
    process.stderr.write(`${name}: ${err.code}: ${err.message}\n`);
    return 1;
  }
  process.stdout.write(out);
  return 0;
}

function parseArgsFor(name: string, argv: string[]): Args {
  const { values, booleans } = parseFlags(
    argv,
    name === 'tokenize'
      ? { values: ['model', 'text', 'file'], booleans: ['special', 'add-special'] }
      : { values: ['model', 'ids'], booleans: ['special'] },
  );
  return { values: Object.fromEntries(values), flags: booleans };
}

function requireValue(a: Args, key: string): string {
  const v = a.values[key];
  if (v === undefined) throw new UsageError(`--${key} is required`);
  return v;
}

export function tokenizeCommand(argv: string[]): Promise<number> {
  return run('tokenize', TOKENIZE_HELP, argv, (a) => {
    const model = requireValue(a, 'model');
    const hasText = a.values.text !== undefined;
    const hasFile = a.values.file !== undefined;
    if (hasText === hasFile) throw new UsageError('give either --text or --file');
    let text: string;
    if (hasFile) {
      try {
        text = fs.readFileSync(a.values.file, 'utf8');
      } catch (e) {
        throw Object.assign(new Error(`cannot read ${a.values.file}: ${(e as Error).message}`), { code: 'IO_ERROR' });
      }
    } else text = a.values.text;
    const tok = Tokenizer.load(model);
    const ids = tok.encode(text, { addSpecial: a.flags.has('add-special'), parseSpecial: a.flags.has('special') });
    return JSON.stringify(ids) + '\n';
  });
}

export function detokenizeCommand(argv: string[]): Promise<number> {
  return run('detokenize', DETOKENIZE_HELP, argv, (a) => {
    const model = requireValue(a, 'model');
    let ids: number[];
    try {
      ids = parseIds(requireValue(a, 'ids'));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const tok = Tokenizer.load(model);
    return tok.decode(ids, { special: a.flags.has('special') }) + '\n';
  });
}
