// The step ring between an engine worker and the main thread: frames come out
// in order and intact across wrap-arounds, a full ring falls back to message
// frames without reordering, the main thread is woken once per read, and text
// is the UTF-8 that TextEncoder writes.
import { createRing, StepReader, StepWriter, type StepView } from '../server/src/engine/step-ring';
import { Rec, RECORD_INTS } from '../server/src/engine/worker-protocol';

interface Entry {
  id: number;
  token: number;
  finish: number;
  text: string;
  stop: number;
  lp?: { logprob: number; top: Array<{ token: number; logprob: number }> };
}

interface Step {
  time: number;
  stepMs: number;
  batchTokens: number;
  batchSequences: number;
  entries: Entry[];
}

const decoder = new TextDecoder();

/** What a StepView says, as plain data. */
function read(v: StepView): Step {
  const entries: Entry[] = [];
  let text = v.text;
  let lp = v.logprobs;
  let top = v.topIds;
  for (let e = 0; e < v.count; e++) {
    const o = v.records + e * RECORD_INTS;
    const len = v.i32[o + Rec.TextLength];
    const entry: Entry = {
      id: v.i32[o + Rec.Id],
      token: v.i32[o + Rec.Token],
      finish: v.i32[o + Rec.Finish],
      text: decoder.decode(v.u8.slice(text, text + len)),
      stop: v.i32[o + Rec.StopIndex],
    };
    text += len;
    const n = v.i32[o + Rec.LogprobCount];
    if (n > 0) {
      entry.lp = { logprob: v.f32[lp], top: [] };
      for (let i = 1; i < n; i++) entry.lp.top.push({ token: v.i32[top + i - 1], logprob: v.f32[lp + i] });
      lp += n;
      top += n - 1;
    }
    entries.push(entry);
  }
  return { time: v.time, stepMs: v.stepMs, batchTokens: v.batchTokens, batchSequences: v.batchSequences, entries };
}

/** A writer and a reader on one ring, with the worker's messages queued as a port would. */
function pair(bytes: number) {
  const ring = createRing(bytes);
  const messages: Array<'wake' | ArrayBuffer> = [];
  const writer = new StepWriter(
    ring,
    () => messages.push('wake'),
    (frame) => messages.push(frame),
  );
  const got: Step[] = [];
  const reader = new StepReader(ring, (v) => got.push(read(v)));
  /** The main thread handling every queued message. */
  const deliver = (): void => {
    for (const m of messages.splice(0)) {
      if (m === 'wake') reader.woken();
      else reader.frame(m);
    }
  };
  return { writer, reader, got, messages, deliver };
}

let seed = 12345;
const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const PIECES = ['a', ' the', 'é', '日本', '😀', '\ud800', 'x\udc00y', '', 'word', '\u0000', '🏳️‍🌈'];

function randomStep(t: number): Step {
  const entries: Entry[] = [];
  const n = rand(6);
  for (let e = 0; e < n; e++) {
    let text = '';
    for (let k = rand(4); k > 0; k--) text += PIECES[rand(PIECES.length)];
    const entry: Entry = { id: rand(1000), token: rand(3) === 0 ? -1 : rand(32000), finish: rand(7), text, stop: rand(3) - 1 };
    if (rand(3) === 0) {
      const top = Array.from({ length: rand(4) }, () => ({ token: rand(32000), logprob: -rand(100) / 8 }));
      entry.lp = { logprob: -rand(100) / 4, top };
    }
    entries.push(entry);
  }
  return { time: 1.7e12 + t * 0.25, stepMs: t / 8, batchTokens: rand(300), batchSequences: rand(16), entries };
}

function write(w: StepWriter, s: Step): void {
  for (const e of s.entries) w.add(e.id, e.token, e.finish, e.text, e.stop, e.lp);
  w.send(s.time, s.stepMs, s.batchTokens, s.batchSequences);
}

/** A step as it reads back: text as UTF-8 round trip (lone surrogates become U+FFFD). */
function expected(s: Step): Step {
  return { ...s, entries: s.entries.map((e) => ({ ...e, text: decoder.decode(new TextEncoder().encode(e.text)) })) };
}

test('frames arrive in order and intact across many wrap-arounds', () => {
  const { writer, got, deliver } = pair(4096);
  const sent: Step[] = [];
  for (let t = 0; t < 3000; t++) {
    const s = randomStep(t);
    sent.push(s);
    write(writer, s);
    // The main thread reads now and then: sometimes after every step, sometimes after many.
    if (rand(4) === 0) deliver();
  }
  deliver();
  expect(got).toEqual(sent.map(expected));
});

test('a full ring sends frames as messages, still in order; one wake-up per read', () => {
  const { writer, got, messages, deliver } = pair(4096);
  const sent: Step[] = [];
  for (let t = 0; t < 200; t++) {
    const s: Step = { time: t, stepMs: 1, batchTokens: 1, batchSequences: 1, entries: [{ id: t, token: t, finish: 0, text: 'x'.repeat(100), stop: -1 }] };
    sent.push(s);
    write(writer, s);
  }
  // Nothing was read: one wake-up, then the frames that did not fit went as messages.
  expect(messages[0]).toBe('wake');
  expect(messages.filter((m) => m === 'wake')).toHaveLength(1);
  const fallbacks = messages.filter((m) => m !== 'wake').length;
  expect(fallbacks).toBeGreaterThan(150);
  deliver();
  expect(got.map((s) => s.entries[0].id)).toEqual(sent.map((s) => s.entries[0].id));
  // Drained: the ring takes frames again, with a new wake-up.
  write(writer, sent[0]);
  expect(messages).toEqual(['wake']);
  deliver();
  expect(got).toHaveLength(201);
});

test('a frame bigger than half the ring goes as a message', () => {
  const { writer, got, messages, deliver } = pair(4096);
  write(writer, { time: 1, stepMs: 1, batchTokens: 1, batchSequences: 1, entries: [{ id: 1, token: 2, finish: 0, text: 'é'.repeat(2000), stop: -1 }] });
  expect(messages).toHaveLength(1);
  expect(messages[0]).toBeInstanceOf(ArrayBuffer);
  deliver();
  expect(got[0].entries[0].text).toBe('é'.repeat(2000));
});

test('the text bytes are what TextEncoder writes, for every kind of character', () => {
  const { writer, got, deliver } = pair(1 << 16);
  const samples = ['', 'ascii', '\u007f\u0080\u07ff\u0800\uffff', '\ud83d\ude00', '\ud800', '\udfff', 'a\ud800b', '\ud800\ud800\udc00', '𝄞 music', '\u0000nul'];
  for (const text of samples) writer.add(1, 1, 0, text, -1);
  writer.send(0, 0, 0, 0);
  deliver();
  const v = got[0];
  expect(v.entries.map((e) => e.text)).toEqual(samples.map((t) => decoder.decode(new TextEncoder().encode(t))));
});
