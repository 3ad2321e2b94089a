// Every bad input gets its precise status as an `error` for its request_id, and
// the same stream goes on to serve a good request afterwards.
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { GenerateRequest, GenerateResponse } from '../server/src/generated/tokenstream/v1/tokenstream';
import { collect, errorCode, startServer, type Running } from './service-helpers';
import type { GenerationInput } from '../client/src/client';

let s: Running;

beforeAll(async () => {
  s = await startServer({ contextLength: 256, transport: { maxReceiveMessageBytes: 64 * 1024 } });
});

afterAll(async () => {
  await s.stop();
});

const ok = { temperature: 0, maxTokens: 4 };

const cases: Array<[string, GenerationInput, status, RegExp]> = [
  ['empty input', { prompt: '' }, status.INVALID_ARGUMENT, /empty input/],
  ['more than one input kind', { prompt: 'hi', tokens: [1, 2] }, status.INVALID_ARGUMENT, /more than one input/],
  ['prompt and messages', { prompt: 'hi', messages: [{ role: 'user', content: 'x' }] }, status.INVALID_ARGUMENT, /more than one input/],
  ['unknown model', { prompt: 'hi', model: 'nope' }, status.NOT_FOUND, /unknown model 'nope'/],
  ['token id outside the vocabulary', { tokens: [1, 32000] }, status.INVALID_ARGUMENT, /token id 32000 at index 1/],
  ['prompt longer than the context', { tokens: new Array(300).fill(1) }, status.OUT_OF_RANGE, /context of 256/],
  ['prompt text longer than the context', { prompt: 'word '.repeat(400) }, status.OUT_OF_RANGE, /context of 256/],
  ['max_tokens 0', { prompt: 'hi', params: { maxTokens: 0 } }, status.INVALID_ARGUMENT, /max_tokens/],
  ['max_tokens past the context', { prompt: 'hi', params: { maxTokens: 257 } }, status.OUT_OF_RANGE, /max_tokens 257/],
  ['temperature < 0', { prompt: 'hi', params: { temperature: -0.5 } }, status.INVALID_ARGUMENT, /temperature/],
  ['top_p 0', { prompt: 'hi', params: { topP: 0 } }, status.INVALID_ARGUMENT, /top_p/],
  ['top_p > 1', { prompt: 'hi', params: { topP: 1.5 } }, status.INVALID_ARGUMENT, /top_p/],
  ['top_k < 0', { prompt: 'hi', params: { topK: -1 } }, status.INVALID_ARGUMENT, /top_k/],
  ['min_p < 0', { prompt: 'hi', params: { minP: -0.1 } }, status.INVALID_ARGUMENT, /min_p/],
  ['min_p > 1', { prompt: 'hi', params: { minP: 1.1 } }, status.INVALID_ARGUMENT, /min_p/],
  ['repetition_penalty 0', { prompt: 'hi', params: { repetitionPenalty: 0 } }, status.INVALID_ARGUMENT, /repetition_penalty/],
  ['repetition_penalty < 0', { prompt: 'hi', params: { repetitionPenalty: -1 } }, status.INVALID_ARGUMENT, /repetition_penalty/],
  ['NaN temperature', { prompt: 'hi', params: { temperature: NaN } }, status.INVALID_ARGUMENT, /temperature/],
  ['too many logprobs', { prompt: 'hi', params: { logprobs: 21 } }, status.INVALID_ARGUMENT, /logprobs/],
  ['empty stop string', { prompt: 'hi', params: { stop: [''] } }, status.INVALID_ARGUMENT, /stop/],
  ['messages without a chat template', { messages: [{ role: 'user', content: 'hi' }] }, status.FAILED_PRECONDITION, /chat template/],
  ['empty role', { messages: [{ role: '', content: 'hi' }] }, status.INVALID_ARGUMENT, /role/],
];

test('every bad request gets its status on the stream, which keeps working', async () => {
  const session = s.client.session();
  for (const [name, input, code, message] of cases) {
    const gen = session.generate({ ...input, requestId: name });
    await expect(gen.result).rejects.toMatchObject({ code, requestId: name, message: expect.stringMatching(message) });
  }
  // Still usable.
  const good = await collect(session.generate({ tokens: [1, 15043], params: ok }));
  expect(good.tokenIds).toHaveLength(4);
  await session.close();
});

test('duplicate request_id, unknown cancel and missing request_id', async () => {
  const session = s.client.session();
  const replies: GenerateResponse[] = [];
  // Watch the raw stream for the replies to raw sends.
  const long = session.generate({ requestId: 'dup', tokens: [1, 15043], params: { temperature: 0, maxTokens: 200, ignoreEos: true } });
  const raw = (session as unknown as { call: NodeJS.EventEmitter }).call;
  raw.on('data', (m: GenerateResponse) => replies.push(m));
  session.send({ requestId: 'dup', tokens: [1], params: { maxTokens: 1, stop: [], ignoreEos: false } });
  session.send({ requestId: 'ghost', cancel: true });
  session.send({ requestId: '', tokens: [1] });
  const r = await long.result; // the original goes on undisturbed
  expect(r.tokenIds).toHaveLength(200);
  await new Promise((res) => setTimeout(res, 50));
  const errors = replies.filter((m) => m.error).map((m) => [m.requestId, m.error!.code]);
  expect(errors).toEqual(expect.arrayContaining([
    ['dup', status.ALREADY_EXISTS],
    ['ghost', status.NOT_FOUND],
    ['', status.INVALID_ARGUMENT],
  ]));
  // Exactly one final for 'dup'.
  expect(replies.filter((m) => m.requestId === 'dup' && m.final)).toHaveLength(1);
  const good = await collect(session.generate({ tokens: [1, 15043], params: ok }));
  expect(good.tokenIds).toHaveLength(4);
  await session.close();
});

/** A Generate stream with a pass-through serializer, to send arbitrary bytes. */
function rawStream(address: string) {
  const client = new Client(address, credentials.createInsecure());
  const call = client.makeBidiStreamRequest<Buffer, Buffer>(
    '/tokenstream.v1.TokenStream/Generate',
    (b) => b,
    (b) => b,
    new Metadata(),
  );
  const replies: GenerateResponse[] = [];
  let error: ServiceError | undefined;
  const ended = new Promise<void>((resolve) => {
    call.on('data', (b: Buffer) => replies.push(GenerateResponse.decode(b)));
    call.on('error', (e: ServiceError) => {
      error = e;
      resolve();
    });
    call.on('end', () => resolve());
  });
  return {
    send: (b: Buffer) => call.write(b),
    close: () => call.end(),
    replies,
    ended,
    error: () => error,
    dispose: () => client.close(),
  };
}

test('invalid UTF-8 and malformed messages: INVALID_ARGUMENT, the stream goes on', async () => {
  const st = rawStream(s.address);
  // A prompt with a lone continuation byte and a truncated 3-byte sequence.
  const good = Buffer.from(GenerateRequest.encode({ ...GenerateRequest.fromPartial({ requestId: 'u', prompt: 'abcdef' }) }).finish());
  const bad = Buffer.from(good);
  const at = bad.indexOf(Buffer.from('abcdef'));
  bad[at + 1] = 0x80;
  bad[at + 3] = 0xe6;
  st.send(bad);
  st.send(Buffer.from([0x0a, 0x05, 0x61])); // field 1, length 5, only 1 byte: truncated
  st.send(Buffer.from(GenerateRequest.encode(GenerateRequest.fromPartial({ requestId: 'fine', tokens: [1, 15043], params: { temperature: 0, maxTokens: 3, stop: [] } })).finish()));
  st.close();
  await st.ended;
  expect(st.error()).toBeUndefined();
  const errs = st.replies.filter((r) => r.error);
  expect(errs).toHaveLength(2);
  expect(errs[0]).toMatchObject({ requestId: 'u', error: { code: status.INVALID_ARGUMENT, message: expect.stringContaining('invalid UTF-8 in field prompt') } });
  expect(errs[1].error).toMatchObject({ code: status.INVALID_ARGUMENT, message: expect.stringContaining('malformed') });
  const fine = st.replies.filter((r) => r.requestId === 'fine');
  expect(fine[fine.length - 1].final).toBeDefined();
  st.dispose();
});

test('an oversized message ends only its call with RESOURCE_EXHAUSTED', async () => {
  const st = rawStream(s.address);
  st.send(Buffer.from(GenerateRequest.encode(GenerateRequest.fromPartial({ requestId: 'big', prompt: 'x'.repeat(100 * 1024) })).finish()));
  await st.ended;
  expect(st.error()?.code).toBe(status.RESOURCE_EXHAUSTED);
  st.dispose();
  // The server keeps serving.
  const r = await collect(s.client.complete({ tokens: [1, 15043], params: ok }));
  expect(r.tokenIds).toHaveLength(4);
});

test('Complete answers bad requests with the call status', async () => {
  expect(await errorCode(s.client.complete({ tokens: new Array(300).fill(1) }))).toBe(status.OUT_OF_RANGE);
  expect(await errorCode(s.client.complete({ prompt: 'hi', params: { minP: 2 } }))).toBe(status.INVALID_ARGUMENT);
  expect(await errorCode(s.client.complete({ prompt: 'hi', model: 'x' }))).toBe(status.NOT_FOUND);
  await expect(s.client.tokenize({ text: 'a', messages: [{ role: 'user', content: 'b' }] })).rejects.toMatchObject({ code: status.INVALID_ARGUMENT });
  await expect(s.client.tokenize({ model: 'x', text: 'a' })).rejects.toMatchObject({ code: status.NOT_FOUND });
});
