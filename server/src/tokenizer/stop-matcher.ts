// Stop strings on streamed text. Text that could be the start of a stop string is
// held back until the next pieces show it is not; the first push() that completes a
// stop string ends the stream: the text before it is released, the stop string and
// anything after it are dropped. When one push completes several, the one that starts
// first wins (llama.cpp's server makes the same check after each token).

export interface StopResult {
  /** text that is final and can be sent */
  emit: string;
  /** a stop string was found: `emit` is the last text of this stream */
  stopped: boolean;
}

export class StopMatcher {
  private readonly stops: string[];
  private held = '';
  private done = false;

  constructor(stops: string[]) {
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
  }

  get stopped(): boolean {
    return this.done;
  }

  push(text: string): StopResult {
    if (this.done) return { emit: '', stopped: true };
    if (this.stops.length === 0) return { emit: text, stopped: false };
    const buf = this.held + text;
    let first = -1;
    for (const s of this.stops) {
      const at = buf.indexOf(s);
      if (at >= 0 && (first < 0 || at < first)) first = at;
    }
    if (first >= 0) {
      this.done = true;
      this.held = '';
      return { emit: buf.slice(0, first), stopped: true };
    }
    // hold the longest tail of buf that begins some stop string
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > hold; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    this.held = buf.slice(buf.length - hold);
    return { emit: buf.slice(0, buf.length - hold), stopped: false };
  }

  /** End of the stream without a stop: the held text is final after all. */
  flush(): string {
    const r = this.done ? '' : this.held;
    this.held = '';
    return r;
  }
}
