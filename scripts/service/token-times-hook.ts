// Preloaded into a benchmarked server (node -r): records, per generation, the
// time each token left the engine (the worker's step time, nowMs()) and the time
// it reached the generation on the main thread, and writes them as JSON
// {requestId: [engine ms, main ms, engine ms, main ms, ...]} to
// $TOKENSTREAM_TOKEN_TIMES when the process exits. The bench compares them with the arrival times at its client:
// nowMs() is one monotonic clock across threads and processes (telemetry/clock.ts).
// Cost in the server: two array pushes and a clock read per token on the main thread.
import * as fs from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { Generation } from '../../server/src/grpc/generation';
import { nowMs } from '../../server/src/telemetry/clock';

const out = process.env.TOKENSTREAM_TOKEN_TIMES;
// Preloads run in worker threads too; generations live on the main thread.
if (out && isMainThread) {
  const times = new Map<string, number[]>();
  const proto = Generation.prototype as unknown as { record: (...args: unknown[]) => void; requestId: string };
  const original = proto.record;
  proto.record = function (this: Generation, ...args: unknown[]): void {
    // record(token, text, finish, stopIndex, logprobs, lpOffset, lpCount, topIds, topOffset, time)
    if ((args[0] as number) >= 0) {
      let list = times.get(this.requestId);
      if (!list) times.set(this.requestId, (list = []));
      list.push(args[args.length - 1] as number, nowMs());
    }
    original.apply(this, args);
  };
  process.on('exit', () => {
    fs.writeFileSync(out, JSON.stringify(Object.fromEntries(times)));
  });
}
