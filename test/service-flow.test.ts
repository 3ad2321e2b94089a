// Flow control and lifecycles: slow readers (coalescing, pausing, RESOURCE_EXHAUSTED),
// cancel / disconnect / deadlines freeing their KV slot, the bounded queue, and
// graceful and forced shutdown. A client that stops reading is simulated with a
// tiny HTTP/2 flow-control window and a paused call, so the server sees real
// backpressure.
import { status } from '@grpc/grpc-js';
import { FinishReason, GenerateRequest, GenerateResponse } from '../server/src/generated/tokenstream/v1/tokenstream';
import { collect, errorCode, sleep, startServer, type Running } from './service-helpers';
import { rawCall, type RawCall } from './grpc-helpers';
import type { BackpressureOptions } from '../server/src/grpc/generation';

const PROMPT = [1, 15043, 29892];

/**
 * A long generation with big chunks (20 alternatives' logprobs and raw bytes: some
 * 300 bytes a token), so that it overflows every buffer between server and client
 * (HTTP/2 windows, stream buffers: some 50 KB here) long before it ends.
 */
const MAX_TOKENS = 1900;
const req = (p: Partial<GenerateRequest>): Uint8Array =>
  GenerateRequest.encode(
    GenerateRequest.fromPartial({ tokens: PROMPT, params: { temperature: 0, ignoreEos: true, maxTokens: MAX_TOKENS, logprobs: 20 }, includeBytes: true, ...p }),
  ).finish();

/** The client's HTTP/2 stream window: small, so that a client that stops reading blocks the server soon. */
const WINDOW = 8192;
const COMPLETE = '/tokenstream.v1.TokenStream/Complete';
const GENERATE = '/tokenstream.v1.TokenStream/Generate';

/** A Complete call from a client that does not read. */
function stalledComplete(address: string, request: Uint8Array, deadlineMs?: number): RawCall {
  const call = rawCall(address, COMPLETE, { windowBytes: WINDOW, paused: true, deadlineMs });
  call.write(request);
  call.end();
  return call;
}

const decoded = (c: RawCall): GenerateResponse[] => c.messages.map((m) => GenerateResponse.decode(m));

function backpressure(over: Partial<BackpressureOptions>): BackpressureOptions {
  return { pauseTokens: 32, abortTokens: 4096, stallMs: 20_000, ...over };
}

describe('a client that stops reading', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer({ contextLength: 2048, backpressure: backpressure({}) });
  });
  afterAll(async () => {
    await s.stop();
  });

  test('gets coalesced chunks and loses nothing; other streams do not stall', async () => {
    const call = stalledComplete(s.address, req({ requestId: 'slow' }));
    await sleep(300);
    // Another client is served meanwhile.
    const other = await collect(s.client.complete({ tokens: PROMPT, params: { temperature: 0, maxTokens: 100, ignoreEos: true } }));
    expect(other.tokenIds).toHaveLength(100);
    await sleep(700);
    // The stalled generation is paused, not finished (unpaused it takes well under a second).
    expect(call.status).toBeUndefined();
    call.resume();
    await call.done;
    expect(call.status).toBe(status.OK);
    const msgs = decoded(call);
    const chunks = msgs.filter((m) => m.chunk).map((m) => m.chunk!);
    const final = msgs[msgs.length - 1].final!;
    expect(final.finishReason).toBe(FinishReason.LENGTH);
    expect(final.usage!.completionTokens).toBe(MAX_TOKENS);
    let index = 0;
    for (const c of chunks) {
      expect(c.index).toBe(index);
      expect(c.logprobs).toHaveLength(c.tokenIds.length);
      index += c.tokenIds.length;
    }
    expect(index).toBe(MAX_TOKENS);
    // Coalesced: fewer messages than tokens; the pause left one chunk of at least pauseTokens.
    expect(chunks.length).toBeLessThan(MAX_TOKENS);
    expect(Math.max(...chunks.map((c) => c.tokenIds.length))).toBeGreaterThanOrEqual(32);
    // Memory stays bounded while the client does not read: the paused generation
    // held about pauseTokens (plus what the worker made before the pause reached
    // it: the tiny model makes ~10 tokens per ms, so a pause that takes 20 ms on a
    // loaded machine adds ~200; 239 was seen in CI), never a large part of the generation.
    expect(Math.max(...chunks.map((c) => c.tokenIds.length))).toBeLessThan(MAX_TOKENS / 4);
    // Pausing changed nothing in the result.
    const normal = await collect(s.client.complete({ tokens: PROMPT, params: { temperature: 0, ignoreEos: true, maxTokens: MAX_TOKENS } }));
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual(normal.tokenIds);
    call.close();
  });
});

test('a client that never reads ends with RESOURCE_EXHAUSTED and frees its slot', async () => {
  const s = await startServer({ maxSequences: 1, contextLength: 2048, backpressure: backpressure({ pauseTokens: 16, stallMs: 300 }) });
  try {
    const call = stalledComplete(s.address, req({}));
    await sleep(50);
    // The only slot is held by the stalled generation until it is given up.
    const next = s.client.complete({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 } });
    await sleep(150);
    expect(next.done).toBe(false);
    expect((await next.result).tokenIds).toHaveLength(4);
    call.resume();
    await call.done;
    expect(call.status).toBe(status.RESOURCE_EXHAUSTED);
    expect(call.details).toMatch(/client too slow/);
    // Everything produced before giving up was still delivered, in order.
    let index = 0;
    for (const m of decoded(call)) {
      expect(m.chunk!.index).toBe(index);
      index += m.chunk!.tokenIds.length;
    }
    expect(index).toBeGreaterThan(16);
    expect(index).toBeLessThan(MAX_TOKENS);
    call.close();
  } finally {
    await s.stop();
  }
});

describe('slots, queue, cancel and deadlines (one slot per server)', () => {
  let s: Running;
  beforeAll(async () => {
    s = await startServer({ maxSequences: 1, queueLimit: 1, contextLength: 2048, backpressure: backpressure({ pauseTokens: 16 }) });
  });
  afterAll(async () => {
    await s.stop();
  });

  /** A Generate stream whose client does not read, with a generation that holds the only slot. */
  async function holdSlot(): Promise<RawCall> {
    const call = rawCall(s.address, GENERATE, { windowBytes: WINDOW, paused: true });
    call.write(req({ requestId: 'holder' }));
    await sleep(100);
    return call;
  }

  test('a cancel message frees the slot: the waiting request is admitted', async () => {
    const holder = await holdSlot();
    const session = s.client.session();
    const waiting = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 } });
    await sleep(300);
    expect(waiting.done).toBe(false); // queued behind the holder
    // The queue holds one: a third request is refused.
    const third = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 } });
    expect(await errorCode(third)).toBe(status.RESOURCE_EXHAUSTED);

    holder.write(GenerateRequest.encode(GenerateRequest.fromPartial({ requestId: 'holder', cancel: true })).finish());
    expect((await waiting.result).tokenIds).toHaveLength(4);
    holder.end();
    holder.resume();
    await holder.done;
    expect(holder.status).toBe(status.OK);
    const terminals = decoded(holder).filter((m) => m.final || m.error);
    expect(terminals).toHaveLength(1);
    expect(terminals[0].final!.finishReason).toBe(FinishReason.CANCELLED);
    expect(terminals[0].final!.usage!.completionTokens).toBeLessThan(MAX_TOKENS);
    holder.close();
    await session.close();
  });

  test('a disconnect frees the slot', async () => {
    const holder = await holdSlot();
    const waiting = s.client.complete({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 } });
    await sleep(200);
    expect(waiting.done).toBe(false);
    holder.cancel();
    expect((await waiting.result).tokenIds).toHaveLength(4);
    holder.close();
  });

  test('timeout_ms ends a queued and a running generation with DEADLINE_EXCEEDED', async () => {
    const holder = await holdSlot();
    const session = s.client.session();
    const t0 = Date.now();
    const queued = session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 }, timeoutMs: 200 });
    expect(await errorCode(queued)).toBe(status.DEADLINE_EXCEEDED);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    holder.cancel();
    holder.close();
    // Running: a generation that cannot finish in time (its reader is paused).
    const call = rawCall(s.address, GENERATE, { windowBytes: WINDOW, paused: true });
    call.write(req({ requestId: 'late', timeoutMs: 300 }));
    call.end();
    await sleep(600);
    call.resume();
    await call.done;
    const msgs = decoded(call);
    expect(msgs[msgs.length - 1].error?.code).toBe(status.DEADLINE_EXCEEDED);
    expect(msgs.filter((m) => m.final || m.error)).toHaveLength(1);
    call.close();
    // And the slot is free again.
    expect((await collect(session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 } }))).tokenIds).toHaveLength(4);
    await session.close();
  });

  test('the call deadline stops its generation and frees the slot, even while the client does not read', async () => {
    const t0 = Date.now();
    const call = stalledComplete(s.address, req({}), 300);
    await sleep(50);
    const next = s.client.complete({ tokens: PROMPT, params: { temperature: 0, maxTokens: 4 } });
    await sleep(100);
    expect(next.done).toBe(false);
    // Admitted once the deadline passed (grpc-js itself would only notice when the
    // client reads again, so the server keeps its own deadline timer).
    expect((await next.result).tokenIds).toHaveLength(4);
    const freedAfter = Date.now() - t0;
    expect(freedAfter).toBeGreaterThanOrEqual(290);
    expect(freedAfter).toBeLessThan(3000);
    // A real client gives up at its deadline and resets the stream.
    call.cancel();
    await call.done;
    call.close();
  });
});

describe('shutdown', () => {
  test('graceful: NOT_SERVING, new work UNAVAILABLE, in-flight work completes', async () => {
    const s = await startServer({ contextLength: 2048, graceMs: 10_000, backpressure: backpressure({}) });
    const call = rawCall(s.address, GENERATE, { windowBytes: WINDOW, paused: true });
    call.write(req({ requestId: 'inflight' }));
    await sleep(200);
    const stopping = s.server.shutdown(10_000);
    await sleep(50);
    expect(await s.client.healthStatus('')).toBe('NOT_SERVING');
    expect(await s.client.healthStatus('tiny')).toBe('NOT_SERVING');
    const late = s.client.complete({ tokens: PROMPT, params: { maxTokens: 2 } });
    expect(await errorCode(late)).toBe(status.UNAVAILABLE);
    call.resume();
    await call.done;
    // The server ended the stream with OK after its last generation.
    expect(call.status).toBe(status.OK);
    const msgs = decoded(call);
    const final = msgs[msgs.length - 1].final!;
    expect(final.finishReason).toBe(FinishReason.LENGTH);
    expect(final.usage!.completionTokens).toBe(MAX_TOKENS);
    await stopping;
    call.close();
    s.client.close();
  });

  test('forced after the grace period when a client never reads', async () => {
    const s = await startServer({ contextLength: 2048, backpressure: backpressure({}) });
    const call = stalledComplete(s.address, req({}));
    await sleep(200);
    const t0 = Date.now();
    await s.server.shutdown(300);
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3000);
    call.resume();
    await call.done;
    expect(decoded(call).some((m) => m.final)).toBe(false);
    expect(call.status).not.toBe(status.OK);
    call.close();
    s.client.close();
  });

  test('forced while generations are decoding: workers stop between steps, the process survives', async () => {
    for (let round = 0; round < 3; round++) {
      const s = await startServer({ contextLength: 2048 });
      const session = s.client.session();
      const gens = [0, 1, 2].map(() => session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: 2000, ignoreEos: true } }));
      await gens[0][Symbol.asyncIterator]().next(); // decoding
      await s.server.shutdown(0);
      for (const g of gens) await g.result.catch(() => undefined);
      expect(s.server.pool.get('tiny')!.workers.every((w) => !w.alive)).toBe(true);
      s.client.close();
    }
  });
});
