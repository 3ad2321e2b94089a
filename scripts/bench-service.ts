// Service throughput: N concurrent greedy generations over gRPC on loopback
// against the same model driven directly (one sequence, no server), so the cost
// of the service (worker hand-off, gRPC, protobuf) and the gain of batching show.
//
//   node dist/scripts/bench-service.js [--model PATH] [--tokens N] [--streams 1,4,8] [--threads N]
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Model } from '../server/src/engine/model';
import { packageRoot } from '../server/src/engine/addon';
import { TokenStreamServer, DEFAULT_TRANSPORT } from '../server/src/grpc/server';
import { DEFAULT_BACKPRESSURE } from '../server/src/grpc/generation';
import { TokenStreamClient } from '../client/src/client';

const GREEDY = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, penaltyLastN: 64, seed: 0, topLogprobs: 0 };
const PROMPT = [1, 450, 1024, 338, 263]; // ids below 2048: valid in the mini reference models too

function direct(file: string, tokens: number, threads: number): number {
  const model = Model.load(file);
  const s = model.createSession({ maxSequences: 1, contextLength: tokens + 16, maxBatch: 16, threads });
  s.setSampler(0, GREEDY);
  const b = { seq: new Int32Array(16), token: new Int32Array(16), pos: new Int32Array(16), logits: new Uint8Array(16), length: PROMPT.length };
  PROMPT.forEach((t, i) => {
    b.token[i] = t;
    b.pos[i] = i;
    b.logits[i] = i === PROMPT.length - 1 ? 1 : 0;
  });
  s.decode(b);
  let tok = s.sample(0, 0).token;
  const t0 = performance.now();
  for (let i = 0; i < tokens; i++) {
    b.length = 1;
    b.token[0] = tok;
    b.pos[0] = PROMPT.length + i;
    b.logits[0] = 1;
    s.decode(b);
    tok = s.sample(0, 0).token;
  }
  const tps = tokens / ((performance.now() - t0) / 1000);
  s.close();
  model.close();
  return tps;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { model: { type: 'string' }, tokens: { type: 'string' }, streams: { type: 'string' }, threads: { type: 'string' }, server: { type: 'string' } },
  });
  const file = path.resolve(values.model ?? path.join(packageRoot(), 'models/llama-2-tiny-random.gguf'));
  const tokens = Number(values.tokens ?? 256);
  const streams = (values.streams ?? '1,4,8').split(',').map(Number);
  const threads = Number(values.threads ?? 1);
  console.log(`model ${path.basename(file)}, ${tokens} tokens per generation, ${threads} thread(s)`);
  console.log(`direct engine, 1 sequence: ${direct(file, tokens, threads).toFixed(0)} tokens/s`);

  // --server HOST:PORT: a server in another process (so client and server don't share a thread).
  const server = values.server ? null : await TokenStreamServer.start({
    host: '127.0.0.1',
    port: 0,
    models: [{ name: 'm', path: file }],
    workers: 1,
    threads,
    maxSequences: Math.max(...streams),
    contextLength: tokens + 64,
    kvType: 'f16',
    prefillChunk: 256,
    queueLimit: 64,
    graceMs: 1000,
    transport: DEFAULT_TRANSPORT,
    backpressure: DEFAULT_BACKPRESSURE,
  });
  await server?.ready;
  const client = new TokenStreamClient(values.server ?? `127.0.0.1:${server!.port}`);
  await client.complete({ tokens: PROMPT, params: { ...GREEDY, maxTokens: 8 } }).result; // warm-up
  for (const n of streams) {
    const session = client.session();
    const t0 = performance.now();
    const results = await Promise.all(
      Array.from({ length: n }, () => session.generate({ tokens: PROMPT, params: { temperature: 0, maxTokens: tokens, ignoreEos: true } }).result),
    );
    const secs = (performance.now() - t0) / 1000;
    const total = results.reduce((a, r) => a + r.tokenIds.length, 0);
    const ttft = results.map((r) => r.clientTtftMs).sort((a, b) => a - b);
    const perStream = results.map((r) => r.clientTokensPerSecond).reduce((a, b) => a + b, 0) / n;
    console.log(
      `service, ${n} stream(s): ${(total / secs).toFixed(0)} tokens/s total, ${perStream.toFixed(0)} tokens/s per stream, ttft p50 ${ttft[Math.floor(n / 2)].toFixed(1)} ms`,
    );
    await session.close();
  }
  client.close();
  await server?.shutdown(1000);
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
