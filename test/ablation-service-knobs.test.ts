// The server's ablation switches (bench ablation table): parsed from flags and
// environment, and each taking effect on a real server:
// - --max-batch-sequences 1: every engine step holds one sequence (batching
//   off), the sequences take turns, the outputs are unchanged;
// - --no-coalesce: a client that falls behind still gets one message per token;
// - --load read / TOKENSTREAM_CPU: reach the worker threads of `tokenstream serve`
//   (its "serving" line reports the kernel path and the load mode).
import { status } from '@grpc/grpc-js';
import { serveOptionsFrom } from '../server/src/cli/serve';
import type { StepView } from '../server/src/engine/step-ring';
import { Rec } from '../server/src/engine/worker-protocol';
import { GenerateRequest, GenerateResponse, FinishReason } from '../server/src/generated/tokenstream/v1/tokenstream';
import { ChildServer } from '../scripts/service/child-server';
import { rawCall } from './grpc-helpers';
import { builtModule } from './helpers/dist';
import { collect, sleep, startServer, TINY_MODEL } from './service-helpers';

const PROMPT = [1, 450, 1024, 338, 263];

function options(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const o = serveOptionsFrom(argv, env);
  if (o === 'help') throw new Error('help');
  return o;
}

test('the switches: off by default, on by flag or environment, bad values refused', () => {
  const d = options([]);
  expect([d.maxBatchSequences, d.reuseBuffers, d.backpressure.coalesce, d.load]).toEqual([0, true, true, {}]);
  const on = options(['--max-batch-sequences', '1', '--no-buffer-reuse', '--no-coalesce', '--load', 'read']);
  expect([on.maxBatchSequences, on.reuseBuffers, on.backpressure.coalesce, on.load]).toEqual([1, false, false, { load: 'read' }]);
  const env = options([], { TOKENSTREAM_MAX_BATCH_SEQUENCES: '2', TOKENSTREAM_NO_BUFFER_REUSE: '1', TOKENSTREAM_NO_COALESCE: 'true', TOKENSTREAM_LOAD: 'read' });
  expect([env.maxBatchSequences, env.reuseBuffers, env.backpressure.coalesce, env.load]).toEqual([2, false, false, { load: 'read' }]);
  expect(() => options(['--load', 'copy'])).toThrow(/--load: mmap or read/);
  expect(() => options(['--max-batch-sequences', '-1'])).toThrow(/--max-batch-sequences/);
});

/** Per engine step of the server's only worker, as its step reports say: sequences in the batch, and the generation of its first entry. */
function watchSteps(server: Awaited<ReturnType<typeof startServer>>['server']): Array<{ sequences: number; id: number }> {
  const seen: Array<{ sequences: number; id: number }> = [];
  const w = server.pool.defaultModel.workers[0];
  const report = w.onReport;
  w.onReport = (r: StepView) => {
    if (r.batchSequences > 0) seen.push({ sequences: r.batchSequences, id: r.i32[r.records + Rec.Id] });
    report(r);
  };
  return seen;
}

test('--max-batch-sequences 1: one sequence per step, taking turns; same tokens as with batching', async () => {
  const run = async (maxBatchSequences: number) => {
    const s = await startServer({ maxSequences: 4, maxBatchSequences });
    try {
      const steps = watchSteps(s.server);
      const gens = [0, 1, 2, 3].map((i) => s.client.complete({ tokens: [...PROMPT, 10 + i], params: { temperature: 0, maxTokens: 100, ignoreEos: true } }));
      const results = await Promise.all(gens.map((g) => collect(g)));
      return { steps, tokens: results.map((r) => r.tokenIds) };
    } finally {
      await s.stop();
    }
  };
  const batched = await run(0);
  const single = await run(1);
  expect(Math.max(...batched.steps.map((x) => x.sequences))).toBeGreaterThan(1);
  expect(Math.max(...single.steps.map((x) => x.sequences))).toBe(1);
  // 4 prompts + 4 × 99 decode steps, one sequence each
  expect(single.steps).toHaveLength(4 + 4 * 99);
  // Taking turns: once they are all running, the generation changes from step to
  // step (one after the other it would change 3 times in all).
  let changes = 0;
  for (let i = 1; i < single.steps.length; i++) if (single.steps[i].id !== single.steps[i - 1].id) changes++;
  expect(changes).toBeGreaterThan(100);
  expect(single.tokens).toEqual(batched.tokens);
}, 30_000);

test('--no-coalesce: a client that falls behind gets one message per token', async () => {
  const MAX_TOKENS = 600;
  const run = async (coalesce: boolean): Promise<number[]> => {
    const s = await startServer({ contextLength: 1024, backpressure: { pauseTokens: 64, abortTokens: 4096, stallMs: 20_000, coalesce } });
    try {
      // Big messages (logprobs with 20 alternatives, raw bytes) and a small HTTP/2 window: the server sees backpressure soon.
      const call = rawCall(s.address, '/tokenstream.v1.TokenStream/Complete', { windowBytes: 8192, paused: true });
      call.write(
        GenerateRequest.encode(
          GenerateRequest.fromPartial({ tokens: PROMPT, params: { temperature: 0, ignoreEos: true, maxTokens: MAX_TOKENS, logprobs: 20 }, includeBytes: true }),
        ).finish(),
      );
      call.end();
      await sleep(400);
      call.resume();
      await call.done;
      expect(call.status).toBe(status.OK);
      const msgs = call.messages.map((m) => GenerateResponse.decode(m));
      call.close();
      expect(msgs[msgs.length - 1].final!.finishReason).toBe(FinishReason.LENGTH);
      const sizes = msgs.filter((m) => m.chunk).map((m) => m.chunk!.tokenIds.length);
      expect(sizes.reduce((a, b) => a + b, 0)).toBe(MAX_TOKENS);
      return sizes;
    } finally {
      await s.stop();
    }
  };
  const merged = await run(true);
  expect(Math.max(...merged)).toBeGreaterThan(1);
  const each = await run(false);
  expect(each).toHaveLength(MAX_TOKENS);
  expect(new Set(each)).toEqual(new Set([1]));
}, 30_000);

test('--no-coalesce: a client that never reads still ends with RESOURCE_EXHAUSTED (unsent messages count as pending)', async () => {
  const s = await startServer({ contextLength: 2048, backpressure: { pauseTokens: 16, abortTokens: 4096, stallMs: 300, coalesce: false } });
  try {
    const call = rawCall(s.address, '/tokenstream.v1.TokenStream/Complete', { windowBytes: 8192, paused: true });
    call.write(
      GenerateRequest.encode(
        GenerateRequest.fromPartial({ tokens: PROMPT, params: { temperature: 0, ignoreEos: true, maxTokens: 1900, logprobs: 20 }, includeBytes: true }),
      ).finish(),
    );
    call.end();
    await sleep(1000);
    call.resume();
    await call.done;
    expect(call.status).toBe(status.RESOURCE_EXHAUSTED);
    expect(call.details).toMatch(/client too slow: [1-9]\d* tokens unread/);
    const sizes = call.messages.map((m) => GenerateResponse.decode(m).chunk!.tokenIds.length);
    expect(new Set(sizes)).toEqual(new Set([1]));
    expect(sizes.length).toBeLessThan(1900);
    call.close();
  } finally {
    await s.stop();
  }
}, 30_000);

test('serve: TOKENSTREAM_CPU and --load read reach the worker threads', async () => {
  builtModule('server/src/cli/serve');
  const server = new ChildServer({ args: ['--model', TINY_MODEL, '--metrics-port', 'off', '--load', 'read'], env: { TOKENSTREAM_CPU: 'avx2' } });
  try {
    await server.serving;
    expect(server.log).toMatch(/serving .*, avx2, read\)/);
  } finally {
    await server.stop();
  }
  const plain = new ChildServer({ args: ['--model', TINY_MODEL, '--metrics-port', 'off'], env: { TOKENSTREAM_CPU: 'scalar' } });
  try {
    await plain.serving;
    expect(plain.log).toMatch(/serving .*, scalar, mmap\)/);
  } finally {
    await plain.stop();
  }
}, 30_000);
