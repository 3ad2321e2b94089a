// `tokenstream generate "Once upon a time" --max-tokens 64`: streams one generation
// from a server to stdout, then a line of timings and token counts on stderr.
import { FinishReason, GenerationError, TokenStreamClient } from '../../../client/src/client';
import { statusName } from '../grpc/status';
import { CLIENT_OPTIONS, samplingFrom } from './client-options';
import { helpText, parseOptions, UsageError, type OptionSpec } from './options';

const OPTIONS: OptionSpec[] = [
  ...CLIENT_OPTIONS,
  { name: 'tokens', kind: 'string', arg: 'IDS', help: 'prompt as comma-separated token ids instead of text' },
];
const USAGE = 'Usage: tokenstream generate [options] "PROMPT"\n\nStreams a generation from a tokenstream server to stdout.';

export async function generateCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseOptions(argv, OPTIONS);
    if (parsed.help) {
      process.stdout.write(helpText(USAGE, OPTIONS));
      return 0;
    }
    if (parsed.positionals.length > 1) throw new UsageError('give the prompt as one argument (quote it)');
    if (parsed.positionals.length === 0 && parsed.values.tokens === undefined) throw new UsageError('no prompt given');
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`tokenstream generate: ${err.message}\n\n${helpText(USAGE, OPTIONS)}`);
    return 2;
  }
  const v = parsed.values;
  const tokens = v.tokens === undefined ? [] : String(v.tokens).split(',').map((x) => Number(x.trim()));
  if (tokens.some((t) => !Number.isInteger(t) || t < 0)) {
    process.stderr.write(`tokenstream generate: --tokens: expected comma-separated ids, got '${v.tokens}'\n`);
    return 2;
  }
  const client = new TokenStreamClient(v.server as string);
  const session = client.session();
  try {
    const gen = session.generate({
      prompt: parsed.positionals[0] ?? '',
      tokens,
      model: (v.model as string | undefined) ?? '',
      params: samplingFrom(v),
      timeoutMs: (v['timeout-ms'] as number | undefined) ?? 0,
    });
    for await (const chunk of gen) process.stdout.write(chunk.text);
    const r = await gen.result;
    const u = r.final.usage!;
    process.stdout.write('\n');
    process.stderr.write(
      // (no rate when every token came in one message: nothing to time after the first)
      `[ttft ${r.clientTtftMs.toFixed(1)} ms | ${r.clientTokensPerSecond > 0 ? r.clientTokensPerSecond.toFixed(1) : '-'} tokens/s | prompt ${u.promptTokens} tokens | ` +
        `completion ${u.completionTokens} tokens | finish ${FinishReason[r.final.finishReason]}` +
        // the server's trace id when it traced the generation: paste it into Jaeger's search
        `${r.final.traceId ? ` | trace ${r.final.traceId}` : ''}]\n`,
    );
    return 0;
  } catch (err) {
    const msg = err instanceof GenerationError ? `${statusName(err.code)}: ${err.message}` : String(err);
    process.stderr.write(`\ntokenstream generate: ${msg}\n`);
    return 1;
  } finally {
    await Promise.race([session.close(), new Promise((r) => setTimeout(r, 1000))]);
    client.close();
  }
}
