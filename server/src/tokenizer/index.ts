// Tokenizer: text <-> token ids from the vocabulary a GGUF file carries, token-exact
// with llama.cpp (llama_tokenize / llama_detokenize), plus what streaming generation
// needs: a streaming detokenizer, end-of-generation ids and chat prompts.

import { readGgufMetadata } from '../engine/gguf';
import type { GgufMetadata } from '../engine/types';
import { BpeTokenizer } from './bpe';
import { BUILTIN_CHAT_TEMPLATES, renderChatTemplate, type ChatMessage } from './chat-template';
import { Detokenizer } from './detokenizer';
import { TokenizerError } from './errors';
import { SpecialTokenSplitter } from './special-tokens';
import { SpmTokenizer } from './spm';
import type { PieceTable } from './piece-table';
import { StreamDecoder } from './stream-decoder';
import { vocabFromMetadata, type Vocab } from './vocab';

export { TokenizerError, type TokenizerErrorCode } from './errors';
export { StopMatcher, type StopResult } from './stop-matcher';
export { StreamDecoder, type PieceSource } from './stream-decoder';
export { PieceTable, type PieceTableData } from './piece-table';
export { BUILTIN_CHAT_TEMPLATES, type ChatMessage } from './chat-template';

export interface EncodeOptions {
  /** add BOS / EOS as the model's metadata says (add_bos_token, add_eos_token); default false */
  addSpecial?: boolean;
  /** match control tokens written in the text (e.g. "<|im_start|>"); default false: they are plain text */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** render control and unknown tokens (e.g. "<|eot_id|>"); default false: they give no text */
  special?: boolean;
}

export interface ChatOptions {
  /** end with the assistant's turn header, so the model answers; default true */
  addGenerationPrompt?: boolean;
  /** 'chatml' | 'llama3' | 'llama2', or a Jinja source; default: the model's tokenizer.chat_template */
  template?: string;
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly bos: number | null;
  readonly eos: number | null;
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** 'llama' (SentencePiece BPE) or 'gpt2' (byte-level BPE) */
  readonly model: string;
  /** tokenizer.ggml.pre ('' when the file has none) */
  readonly pre: string;
  /** what llama.cpp would warn about on load (e.g. no tokenizer.ggml.pre): for the log */
  readonly warnings: readonly string[];

  // The encoders are built on first use: an engine worker only decodes, and the
  // SPM pair table alone is ~4 MB for a 32k vocabulary.
  private spmEncoder: SpmTokenizer | null | undefined;
  private bpeEncoder: BpeTokenizer | null | undefined;
  private readonly special: SpecialTokenSplitter;
  private readonly detokenizer: Detokenizer;

  private constructor(private readonly vocab: Vocab) {
    this.vocabSize = vocab.tokens.length;
    this.bos = vocab.bos;
    this.eos = vocab.eos;
    this.addBos = vocab.addBos;
    this.addEos = vocab.addEos;
    this.model = vocab.model;
    this.pre = vocab.pre;
    this.warnings = vocab.warnings;
    this.special = new SpecialTokenSplitter(vocab);
    this.detokenizer = new Detokenizer(vocab);
  }

  private get spm(): SpmTokenizer | null {
    if (this.spmEncoder === undefined) this.spmEncoder = this.vocab.type === 'spm' ? new SpmTokenizer(this.vocab) : null;
    return this.spmEncoder;
  }

  private get bpe(): BpeTokenizer | null {
    if (this.bpeEncoder === undefined) this.bpeEncoder = this.vocab.type === 'bpe' ? new BpeTokenizer(this.vocab) : null;
    return this.bpeEncoder;
  }

  /** From a GGUF file's metadata (tokenizer.ggml.*). Throws TokenizerError. */
  static fromMetadata(meta: GgufMetadata): Tokenizer {
    return new Tokenizer(vocabFromMetadata(meta));
  }

  /** From a GGUF file (a model, or a vocabulary-only file); reads only its metadata. */
  static load(path: string): Tokenizer {
    return Tokenizer.fromMetadata(readGgufMetadata(path));
  }

  /** End-of-turn token (tokenizer.ggml.eot_token_id, or found by name), if any. */
  get eot(): number | null {
    return this.vocab.eot;
  }

  /** Padding token (tokenizer.ggml.padding_token_id), if any. */
  get pad(): number | null {
    return this.vocab.pad;
  }

  /** The text of a token as the vocabulary stores it (e.g. "▁Hello", "<|im_end|>"). */
  tokenText(id: number): string {
    this.detokenizer.checkId(id);
    return this.vocab.tokens[id];
  }

  /** The id of a token with exactly this text, or null. */
  tokenId(text: string): number | null {
    return this.vocab.tokenToId.get(text) ?? null;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const addSpecial = opts.addSpecial ?? false;
    const fragments = this.special.partition(text, opts.parseSpecial ?? false);
    const out: number[] = [];
    if (addSpecial && this.vocab.addBos) out.push(this.vocab.bos!);
    if (this.spm) {
      // a space goes in front of the text and of each text after a special token
      let afterSpecial = true;
      for (const f of fragments) {
        if (f.token >= 0) {
          out.push(f.token);
          afterSpecial = true;
          continue;
        }
        const piece = text.slice(f.start, f.end);
        this.spm.encode(this.vocab.addSpacePrefix && afterSpecial ? ' ' + piece : piece, out);
        afterSpecial = false;
      }
    } else {
      for (const f of fragments) {
        if (f.token >= 0) out.push(f.token);
        else this.bpe!.encode(f.start === 0 && f.end === text.length ? text : text.slice(f.start, f.end), out);
      }
    }
    if (addSpecial && this.vocab.addEos) out.push(this.vocab.eos!);
    return out;
  }

  /** llama.cpp's detokenize (remove_special = false). Throws TOKEN_OUT_OF_RANGE for a bad id. */
  decode(ids: ArrayLike<number>, opts: DecodeOptions = {}): string {
    return this.detokenizer.decode(ids, opts.special ?? false);
  }

  /** The raw bytes of one token's piece (control tokens included), a fresh copy. */
  tokenBytes(id: number): Uint8Array {
    return this.detokenizer.piece(id, true).slice();
  }

  /** EOS, EOT and the tokens the vocabulary marks as ending a generation. */
  isEndOfGeneration(id: number): boolean {
    return this.vocab.eog.has(id);
  }

  /** The end-of-generation ids, ascending. */
  endOfGenerationIds(): number[] {
    return [...this.vocab.eog].sort((a, b) => a - b);
  }

  /** Every token's piece in shared memory, for engine workers (they detokenize with it instead of a Tokenizer). */
  get pieceTable(): PieceTable {
    return this.detokenizer.table;
  }

  createStreamDecoder(opts: DecodeOptions = {}): StreamDecoder {
    return new StreamDecoder(this.detokenizer, opts.special ?? false);
  }

  hasChatTemplate(): boolean {
    return this.vocab.chatTemplate !== null;
  }

  /** The prompt for a conversation, rendered by the model's (or the named) chat template. */
  renderChat(messages: ChatMessage[], opts: ChatOptions = {}): string {
    let source: string | null;
    if (opts.template !== undefined && opts.template !== '') {
      source = BUILTIN_CHAT_TEMPLATES[opts.template] ?? opts.template;
    } else {
      source = this.vocab.chatTemplate;
    }
    if (source === null) {
      throw new TokenizerError(
        'CHAT_TEMPLATE_MISSING',
        `the model has no chat template (tokenizer.chat_template); name one of: ${Object.keys(BUILTIN_CHAT_TEMPLATES).join(', ')}`,
      );
    }
    return renderChatTemplate(source, messages, {
      addGenerationPrompt: opts.addGenerationPrompt ?? true,
      bosToken: this.vocab.bos !== null ? this.vocab.tokens[this.vocab.bos] : '',
      eosToken: this.vocab.eos !== null ? this.vocab.tokens[this.vocab.eos] : '',
    });
  }

  /**
   * The token ids of a conversation's prompt, as llama.cpp's server makes them:
   * rendered, with BOS added per the metadata (and a BOS the template wrote itself
   * dropped so there is one), control tokens parsed.
   */
  encodeChat(messages: ChatMessage[], opts: ChatOptions = {}): number[] {
    let prompt = this.renderChat(messages, opts);
    if (this.vocab.addBos && this.vocab.bos !== null) {
      const bosText = this.vocab.tokens[this.vocab.bos];
      if (prompt.startsWith(bosText)) prompt = prompt.slice(bosText.length);
    }
    return this.encode(prompt, { addSpecial: true, parseSpecial: true });
  }
}
