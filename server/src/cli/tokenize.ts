// `tokenstream tokenize` / `tokenstream detokenize`: the tokenizer of any GGUF file
// (a model or a vocabulary-only file) from the command line.
import * as fs from 'node:fs';
import { Tokenizer } from '../tokenizer';
import { helpText, parseFlagsOnly, required, UsageError, type OptionSpec, type OptionValues } from './options';

const MODEL: OptionSpec = { name: 'model', kind: 'string', arg: 'FILE', help: 'a GGUF file (a model, or a vocabulary-only file)' };

const TOKENIZE_OPTIONS: OptionSpec[] = [
  MODEL,
  { name: 'text', kind: 'string', arg: 'TEXT', help: 'the text to tokenize' },
  { name: 'file', kind: 'string', arg: 'F', help: 'read the text from F (UTF-8)' },
  { name: 'add-special', kind: 'boolean', help: "add BOS/EOS as the model's metadata says (add_bos_token, add_eos_token)" },
  { name: 'special', kind: 'boolean', help: 'parse control tokens written in the text' },
];

const DETOKENIZE_OPTIONS: OptionSpec[] = [
  MODEL,
  { name: 'ids', kind: 'string', arg: 'IDS', help: 'token ids: comma/space separated, or a JSON array' },
  { name: 'special', kind: 'boolean', help: 'render control tokens (e.g. "<|eot_id|>"); by default they give no text' },
];

export const TOKENIZE_HELP = helpText(
  `Usage: tokenstream tokenize --model FILE (--text "..." | --file F) [--add-special] [--special]

Prints the token ids of the text as a JSON array. By default exactly the text's
tokens, as llama.cpp's tokenizer tests make them: no BOS/EOS, control tokens such as
"<|im_start|>" are plain text.`,
  TOKENIZE_OPTIONS,
);

export const DETOKENIZE_HELP = helpText(
  `Usage: tokenstream detokenize --model FILE --ids 1,2,3 [--special]

Prints the text of the token ids (as llama.cpp's detokenizer makes it) and a newline.`,
  DETOKENIZE_OPTIONS,
);

export function parseIds(text: string): number[] {
  const t = text.trim();
  const parts = t.startsWith('[') ? (JSON.parse(t) as unknown[]).map(String) : t.split(/[\s,]+/).filter((s) => s !== '');
  return parts.map((p) => {
    if (!/^\d+$/.test(p)) throw new Error(`--ids: '${p}' is not a token id`);
    return Number(p);
  });
}

async function run(name: string, help: string, specs: OptionSpec[], argv: string[], body: (values: OptionValues) => string): Promise<number> {
  let out: string;
  try {
    const { values, help: wantHelp } = parseFlagsOnly(argv, specs);
    if (wantHelp) {
      process.stdout.write(help);
      return 0;
    }
    out = body(values);
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

export function tokenizeCommand(argv: string[]): Promise<number> {
  return run('tokenize', TOKENIZE_HELP, TOKENIZE_OPTIONS, argv, (v) => {
    const model = required(v, 'model');
    const file = v.file as string | undefined;
    if ((v.text === undefined) === (file === undefined)) throw new UsageError('give either --text or --file');
    let text: string;
    if (file !== undefined) {
      try {
        text = fs.readFileSync(file, 'utf8');
      } catch (e) {
        throw Object.assign(new Error(`cannot read ${file}: ${(e as Error).message}`), { code: 'IO_ERROR' });
      }
    } else text = v.text as string;
    const tok = Tokenizer.load(model);
    const ids = tok.encode(text, { addSpecial: v['add-special'] === true, parseSpecial: v.special === true });
    return JSON.stringify(ids) + '\n';
  });
}

export function detokenizeCommand(argv: string[]): Promise<number> {
  return run('detokenize', DETOKENIZE_HELP, DETOKENIZE_OPTIONS, argv, (v) => {
    const model = required(v, 'model');
    let ids: number[];
    try {
      ids = parseIds(required(v, 'ids'));
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    const tok = Tokenizer.load(model);
    return tok.decode(ids, { special: v.special === true }) + '\n';
  });
}
