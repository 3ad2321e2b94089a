// Stop strings on streamed text: found across piece boundaries, the possible start of
// one held back, nothing of it (or after it) sent.
import fc from 'fast-check';
import { StopMatcher } from '../server/src/tokenizer';
import { tokenizerFor } from './tokenizer-helpers';

function run(stops: string[], pieces: string[]): { text: string; stopped: boolean; emits: string[] } {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  let stopped = false;
  for (const p of pieces) {
    const r = m.push(p);
    emits.push(r.emit);
    if (r.stopped) {
      stopped = true;
      break;
    }
  }
  if (!stopped) emits.push(m.flush());
  return { text: emits.join(''), stopped, emits };
}

test('a stop string spanning pieces is found; the text before it is all that is sent', () => {
  const r = run(['</answer>'], ['The answer is 42', '</ans', 'wer>', ' and more']);
  expect(r.stopped).toBe(true);
  expect(r.text).toBe('The answer is 42');
  // "</ans" was held back: it might have been (and was) the stop string
  expect(r.emits).toEqual(['The answer is 42', '', '']);
});

test('held text that turns out not to be a stop string is released', () => {
  const r = run(['STOP'], ['go ST', 'ART', ' now']);
  expect(r.stopped).toBe(false);
  expect(r.emits).toEqual(['go ', 'START', ' now', '']);
  // held at the end of the stream: flush() gives it back
  expect(run(['STOP'], ['go STO'])).toEqual({ text: 'go STO', stopped: false, emits: ['go ', 'STO'] });
});

test('the first piece that completes a stop string ends the stream; the earliest such stop wins', () => {
  const r = run(['\n\n', 'User:'], ['Hi there.User: x\n\n']);
  expect(r).toEqual({ text: 'Hi there.', stopped: true, emits: ['Hi there.'] });
  // as llama.cpp's server checks after each token: "bc" is complete after "xabc"
  expect(run(['bc', 'abcd'], ['xabc', 'd']).text).toBe('xa');
  // both complete in the same piece: the one that starts first
  expect(run(['bc', 'abcd'], ['xab', 'cd']).text).toBe('x');
});

test('a stop string inside one piece, at its start, and no stop strings at all', () => {
  expect(run(['###'], ['a###b']).text).toBe('a');
  expect(run(['###'], ['###'])).toEqual({ text: '', stopped: true, emits: [''] });
  expect(run([], ['a', 'b'])).toEqual({ text: 'ab', stopped: false, emits: ['a', 'b', ''] });
  expect(run([''], ['a'])).toEqual({ text: 'a', stopped: false, emits: ['a', ''] });
});

test('after stopping, nothing more comes out', () => {
  const m = new StopMatcher(['x']);
  expect(m.push('axb')).toEqual({ emit: 'a', stopped: true });
  expect(m.push('more')).toEqual({ emit: '', stopped: true });
  expect(m.flush()).toBe('');
  expect(m.stopped).toBe(true);
});

test('on the detokenizer stream: a stop string spread over several tokens', () => {
  const tok = tokenizerFor('llama-spm');
  const ids = tok.encode('Question: why? Answer: because. Question: what?');
  const dec = tok.createStreamDecoder();
  const m = new StopMatcher(['. Question']);
  const pieces: string[] = [];
  let out = '';
  for (const id of ids) {
    const piece = dec.push(id);
    pieces.push(piece);
    const r = m.push(piece);
    out += r.emit;
    if (r.stopped) break;
  }
  expect(out).toBe('Question: why? Answer: because');
  // the stop string really came in several tokens
  expect(pieces.slice(-2)).toEqual(['.', ' Question']);
});

test('property: for any text, stops and chunking, the output is the text up to the stop that ends it', () => {
  const alphabet = fc.constantFrom('a', 'b', 'c', 'ab', '\n', ' ', 'é', '🦙');
  const str = fc.array(alphabet, { maxLength: 20 }).map((a) => a.join(''));
  fc.assert(
    fc.property(str, fc.array(str.filter((s) => s.length > 0 && s.length < 5), { maxLength: 3 }), fc.array(fc.nat(6)), (text, stops, cuts) => {
      // cut the text into pieces at the given lengths
      const pieces: string[] = [];
      let i = 0;
      for (const c of cuts) {
        if (i >= text.length) break;
        pieces.push(text.slice(i, i + c));
        i += c;
      }
      pieces.push(text.slice(i));
      // oracle: after each piece, look at all the text so far; the first time any stop
      // string is in it, cut at the earliest one
      let first = -1;
      let seen = '';
      for (const p of pieces) {
        seen += p;
        for (const s of stops) {
          const at = seen.indexOf(s);
          if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0) break;
      }
      const r = run(stops, pieces);
      expect(r.text).toBe(first >= 0 ? text.slice(0, first) : text);
      expect(r.stopped).toBe(first >= 0);
    }),
    { numRuns: 1000 },
  );
});
