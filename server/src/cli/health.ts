// `tokenstream health`: asks a server's grpc.health.v1.Health/Check and exits 0
// when it answers SERVING (1 otherwise) — the container health check in the
// Dockerfile and docker-compose.yml. No telemetry (Docker runs it every 10 s).
import { TokenStreamClient } from '../../../client/src/client';
import { helpText, parseFlagsOnly, UsageError, type OptionSpec } from './options';

const OPTIONS: OptionSpec[] = [
  { name: 'server', env: 'TOKENSTREAM_SERVER', kind: 'string', default: '127.0.0.1:50051', arg: 'HOST:PORT', help: 'the tokenstream server' },
  { name: 'service', kind: 'string', arg: 'NAME', help: 'a service ("tokenstream.v1.TokenStream") or model name; empty = the server as a whole' },
  { name: 'timeout-ms', kind: 'int', default: 3000, arg: 'MS', help: 'give up after this long' },
];
const USAGE = 'Usage: tokenstream health [options]\n\nPrints the gRPC health status; exits 0 if SERVING, 1 otherwise.';

export async function healthCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseFlagsOnly(argv, OPTIONS);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`tokenstream health: ${err.message}\n\n${helpText(USAGE, OPTIONS)}`);
    return 2;
  }
  if (parsed.help) {
    process.stdout.write(helpText(USAGE, OPTIONS));
    return 0;
  }
  const v = parsed.values;
  const client = new TokenStreamClient(v.server as string, { options: { 'grpc.max_reconnect_backoff_ms': 1000 } });
  let timer: NodeJS.Timeout | undefined;
  try {
    const status = await Promise.race([
      client.healthStatus((v.service as string | undefined) ?? ''),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer from ${v.server} within ${v['timeout-ms']} ms`)), v['timeout-ms'] as number);
      }),
    ]);
    process.stdout.write(`${status}\n`);
    return status === 'SERVING' ? 0 : 1;
  } catch (err) {
    const e = err as { details?: string; message?: string };
    process.stdout.write(`UNREACHABLE: ${e.details || e.message || String(err)}\n`);
    return 1;
  } finally {
    clearTimeout(timer);
    client.close();
  }
}
