// A real server on loopback (real addon, real model file, worker threads) for the
// service tests, plus small helpers to run generations and collect their output.
import * as path from 'node:path';
import { TokenStreamServer, DEFAULT_TRANSPORT, type ServeOptions } from '../server/src/grpc/server';
import { DEFAULT_BACKPRESSURE } from '../server/src/grpc/generation';
import { TokenStreamClient, type Generation, type GenerationResult } from '../client/src/client';
import type { Chunk } from '../server/src/generated/tokenstream/v1/tokenstream';

export const TINY_MODEL = path.resolve(__dirname, '../models/llama-2-tiny-random.gguf');

export interface Running {
  server: TokenStreamServer;
  address: string;
  client: TokenStreamClient;
  stop(): Promise<void>;
}

export function serveOptions(over: Partial<ServeOptions> = {}): ServeOptions {
  return {
    host: '127.0.0.1',
    port: 0,
    models: [{ name: 'tiny', path: TINY_MODEL }],
    workers: 1,
    threads: 1,
    maxSequences: 8,
    contextLength: 1024,
    kvType: 'f16',
    prefillChunk: 64,
    queueLimit: 16,
    graceMs: 2000,
    transport: DEFAULT_TRANSPORT,
    backpressure: DEFAULT_BACKPRESSURE,
    ...over,
  };
}

export async function startServer(over: Partial<ServeOptions> = {}): Promise<Running> {
  const server = await TokenStreamServer.start(serveOptions(over));
  await server.ready;
  const address = `127.0.0.1:${server.port}`;
  const client = new TokenStreamClient(address);
  return {
    server,
    address,
    client,
    async stop() {
      client.close();
      await server.shutdown(1000);
    },
  };
}

export interface Collected extends GenerationResult {
  chunks: Chunk[];
}

/** Iterates a generation to its end, keeping every chunk. */
export async function collect(gen: Generation): Promise<Collected> {
  const chunks: Chunk[] = [];
  for await (const c of gen) chunks.push(c);
  return { ...(await gen.result), chunks };
}

/** Awaits a generation's failure and returns its status code. */
export async function errorCode(gen: Generation): Promise<number> {
  try {
    await gen.result;
  } catch (err) {
    return (err as { code: number }).code;
  }
  throw new Error(`generation ${gen.requestId} succeeded, expected an error`);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
