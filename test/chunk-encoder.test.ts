// Chunks encoded by hand (PendingChunk) are byte for byte what the generated
// GenerateResponse.encode writes for the same chunk: ids of every varint size,
// text, index, logprobs with alternatives (zeros omitted as proto3 does), raw
// bytes, an empty request id; and the buffers are reusable after clear().
import { PendingChunk, varintSize } from '../server/src/grpc/chunk-encoder';
import { serializeResponse } from '../server/src/grpc/service';
import { GenerateResponse, type TokenLogprob } from '../server/src/generated/tokenstream/v1/tokenstream';

let seed = 99;
const rand = (n: number): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};
const ID_SIZES = [0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455, 268435456, 0xffffffff];

function expectedBytes(requestId: string, index: number, ids: number[], text: string, lps: TokenLogprob[], raw: Uint8Array): Buffer {
  return Buffer.from(GenerateResponse.encode({ requestId, chunk: { tokenIds: ids, text, index, logprobs: lps, raw } }).finish());
}

test('varint sizes at every boundary', () => {
  expect(ID_SIZES.map(varintSize)).toEqual([1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
});

test('random chunks encode exactly as GenerateResponse.encode', () => {
  const chunk = new PendingChunk();
  const enc = new TextEncoder();
  for (let round = 0; round < 500; round++) {
    const requestId = rand(5) === 0 ? '' : `req-${'é'.repeat(rand(3))}${rand(1e6)}`;
    const index = rand(3) === 0 ? 0 : ID_SIZES[rand(ID_SIZES.length)];
    const ids: number[] = [];
    const lps: TokenLogprob[] = [];
    let text = '';
    const rawParts: number[] = [];
    const withLogprobs = rand(2) === 0;
    const withRaw = rand(3) === 0;
    for (let t = rand(40); t > 0; t--) {
      const id = rand(2) === 0 ? rand(32000) : ID_SIZES[rand(ID_SIZES.length)];
      ids.push(id);
      chunk.addToken(id);
      if (withLogprobs) {
        const n = 1 + rand(5);
        const values = new Float32Array(n + 2);
        const alt = new Int32Array(n + 2);
        for (let i = 0; i < n; i++) values[1 + i] = rand(4) === 0 ? 0 : -rand(1000) / 7;
        for (let i = 0; i < n - 1; i++) alt[2 + i] = rand(4) === 0 ? 0 : rand(50000);
        chunk.addLogprob(id, values, 1, n, alt, 2);
        lps.push({ tokenId: id, logprob: values[1], top: Array.from({ length: n - 1 }, (_, i) => ({ tokenId: alt[2 + i], logprob: values[2 + i] })) });
      }
      if (withRaw) {
        const bytes = Uint8Array.from({ length: rand(4) }, () => rand(256));
        chunk.addRaw(bytes);
        rawParts.push(...bytes);
      }
      if (rand(2) === 0) {
        const piece = ['a', ' word', 'é', '日本', '😀', ''][rand(6)];
        text += piece;
        const bytes = enc.encode(`xx${piece}`);
        chunk.addText(bytes, 2, bytes.length - 2);
      }
    }
    const got = chunk.encode(Buffer.from(requestId), index);
    expect(got).toEqual(expectedBytes(requestId, index, ids, text, lps, Uint8Array.from(rawParts)));
    // It decodes back to the same chunk.
    const back = GenerateResponse.decode(got);
    expect(back.chunk?.tokenIds).toEqual(ids);
    expect(back.chunk?.text).toBe(text);
    expect(chunk.count).toBe(ids.length);
    chunk.clear();
    expect(chunk.empty).toBe(true);
  }
});

test('serializeResponse passes encoded chunks through and encodes other responses', () => {
  const b = Buffer.from([1, 2, 3]);
  expect(serializeResponse(b)).toBe(b);
  const final = { requestId: 'r', final: { finishReason: 1, usage: { promptTokens: 2, completionTokens: 3 }, matchedStop: '', traceId: '' } };
  expect(serializeResponse(final)).toEqual(Buffer.from(GenerateResponse.encode(final).finish()));
});
