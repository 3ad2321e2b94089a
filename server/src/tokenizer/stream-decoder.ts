// Streaming detokenizer: ids arrive one at a time, text leaves as soon as it is
// final. Concatenating every push() and the flush() gives exactly Detokenizer.decode
// of all the ids:
// - bytes of a UTF-8 character split over tokens are held until it is complete
//   (an incomplete character at the end comes out of flush() as U+FFFD);
// - the first piece loses its leading space when the vocabulary adds a space prefix;
// - llama.cpp's clean-up of tokenization spaces, which looks up to three characters
//   ahead, runs as three small state machines that hold back a space (and what
//   follows it) until the next characters decide its fate.

/** Where the pieces come from: a Detokenizer, or a worker's PieceTable (piece-table.ts). */
export interface PieceSource {
  piece(id: number, special: boolean): Uint8Array;
  readonly addSpacePrefix: boolean;
  readonly cleanSpaces: boolean;
}

/** Pass 1: drop a space right before one of ? ! . , */
class DropSpaceBeforePunctuation {
  private held = false;
  constructor(private readonly next: (s: string) => void) {}
  push(c: string): void {
    if (this.held) {
      this.held = false;
      if (c === '?' || c === '!' || c === '.' || c === ',') {
        this.next(c);
        return;
      }
      this.next(' ');
    }
    if (c === ' ') this.held = true;
    else this.next(c);
  }
  end(): void {
    if (this.held) this.next(' ');
    this.held = false;
  }
}

/** Pass 2: " ' " -> "'" (left to right, without overlap) */
class JoinLoneApostrophe {
  private held = ''; // '', ' ' or " '"
  constructor(private readonly next: (s: string) => void) {}
  push(c: string): void {
    if (this.held === " '") {
      this.held = '';
      if (c === ' ') {
        this.next("'");
        return; // this space is used up: it can't open another " ' "
      }
      this.next(' ');
      this.next("'");
    } else if (this.held === ' ') {
      if (c === "'") {
        this.held = " '";
        return;
      }
      this.held = '';
      this.next(' ');
    }
    if (c === ' ') this.held = ' ';
    else this.next(c);
  }
  end(): void {
    for (const c of this.held) this.next(c);
    this.held = '';
  }
}

/** Pass 3: " 's", " 'm", " 're", " 've" lose the space */
class JoinContraction {
  private held = ''; // '', ' ', " '", " 'r", " 'v"
  constructor(private readonly next: (s: string) => void) {}
  push(c: string): void {
    const h = this.held;
    if (h === " 'r" || h === " 'v") {
      this.held = '';
      if (c === 'e') {
        this.next(h.slice(1) + c);
        return;
      }
      this.next(h);
    } else if (h === " '") {
      this.held = '';
      if (c === 's' || c === 'm') {
        this.next("'" + c);
        return;
      }
      if (c === 'r' || c === 'v') {
        this.held = " '" + c;
        return;
      }
      this.next(h);
    } else if (h === ' ') {
      if (c === "'") {
        this.held = " '";
        return;
      }
      this.held = '';
      this.next(' ');
    }
    if (c === ' ') this.held = ' ';
    else this.next(c);
  }
  end(): void {
    if (this.held) this.next(this.held);
    this.held = '';
  }
}

/** The three clean-up passes chained, fed and drained as strings. */
export class CleanSpacesStream {
  private out = '';
  private readonly pass3 = new JoinContraction((s) => {
    this.out += s;
  });
  private readonly pass2 = new JoinLoneApostrophe((s) => {
    for (const c of s) this.pass3.push(c);
  });
  private readonly pass1 = new DropSpaceBeforePunctuation((s) => this.pass2.push(s));

  push(text: string): string {
    for (let i = 0; i < text.length; i++) this.pass1.push(text[i]);
    const r = this.out;
    this.out = '';
    return r;
  }

  end(): string {
    this.pass1.end();
    this.pass2.end();
    this.pass3.end();
    const r = this.out;
    this.out = '';
    return r;
  }
}

export class StreamDecoder {
  private readonly utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
  private readonly clean: CleanSpacesStream | null;
  private removeSpace: boolean;

  constructor(
    private readonly detokenizer: PieceSource,
    private readonly special: boolean,
  ) {
    this.clean = detokenizer.cleanSpaces ? new CleanSpacesStream() : null;
    this.removeSpace = detokenizer.addSpacePrefix;
  }

  /** The text that token `id` completes (often '', or more than its own piece). */
  push(id: number): string {
    let piece = this.detokenizer.piece(id, this.special);
    if (this.removeSpace && piece.length > 0 && piece[0] === 0x20) piece = piece.subarray(1);
    this.removeSpace = false;
    const text = this.utf8.decode(piece, { stream: true });
    return this.clean ? this.clean.push(text) : text;
  }

  /** Whatever is still held; the decoder can be used again afterwards, from scratch. */
  flush(): string {
    const text = this.utf8.decode();
    this.removeSpace = this.detokenizer.addSpacePrefix;
    return this.clean ? this.clean.push(text) + this.clean.end() : text;
  }
}
