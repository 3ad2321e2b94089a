// Errors raised by the tokenizer carry a stable `.code`, like the engine's
// (native EngineError -> JS Error with .code), so the gRPC layer can map them.

export type TokenizerErrorCode =
  | 'TOKENIZER_UNSUPPORTED' // unknown tokenizer.ggml.model / tokenizer.ggml.pre
  | 'TOKENIZER_INVALID' // the vocabulary metadata is missing or malformed
  | 'TOKEN_OUT_OF_RANGE' // an id outside [0, vocabSize)
  | 'CHAT_TEMPLATE_MISSING' // no tokenizer.chat_template and no known template named
  | 'CHAT_TEMPLATE_ERROR'; // the Jinja template failed to parse or render

export class TokenizerError extends Error {
  readonly code: TokenizerErrorCode;
  constructor(code: TokenizerErrorCode, message: string) {
    super(message);
    this.name = 'TokenizerError';
    this.code = code;
  }
}
