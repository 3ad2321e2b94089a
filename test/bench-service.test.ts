// The service bench end to end on the bundled tiny model (a real child server,
// real client): the JSON it prints, every token's engine -> client latency found
// (the preloaded hook matched every token), ratios and CPU figures present.
// Nothing about speed is asserted.
import * as path from 'node:path';
import { main } from '../scripts/bench-service';
import { captureStdout } from './helpers/capture-output';

const TINY = path.join(__dirname, '..', 'models', 'llama-2-tiny-random.gguf');

test('--json prints one result per model and stream count', async () => {
  const { result, stdout } = await captureStdout(() =>
    main(['--model', TINY, '--json', '--streams', '1,3', '--tokens', '6', '--reps', '1', '--threads', '1']),
  );
  expect(result).toBe(0);
  const r = JSON.parse(stdout.trim());
  expect(r).toHaveLength(1);
  expect(r[0]).toMatchObject({ model: path.resolve(TINY), threads: 1, tokens: 6 });
  expect(r[0].results.map((x: { streams: number }) => x.streams)).toEqual([1, 3]);
  for (const x of r[0].results) {
    for (const k of ['engine_tps', 'service_tps', 'ratio', 'tokens_per_message', 'server_main_cpu_us_per_token', 'client_cpu_us_per_token']) {
      expect(x[k]).toBeGreaterThan(0);
    }
    // Latencies exist for the tokens (a token arrives after it left the engine).
    expect(x.latency_p50_ms).toBeGreaterThan(0);
    expect(x.latency_p99_ms).toBeGreaterThanOrEqual(x.latency_p50_ms);
    expect(x.tokens_per_message).toBeLessThanOrEqual(6);
  }
}, 60_000);
