// `tokenstream chat`: an interactive chat loop against a server. Each turn sends
// the whole conversation as `messages` (rendered with the model's chat template on
// the server). For a model without a template it falls back to a plain
// "User:/Assistant:" transcript prompt with a stop string.
import * as readline from 'node:readline';
import { status } from '@grpc/grpc-js';
import { GenerationError, TokenStreamClient, type GenerationInput, type SamplingParams } from '../../../client/src/client';
import { statusName } from '../grpc/status';
import { CLIENT_OPTIONS, samplingFrom } from './client-options';
import { helpText, parseFlagsOnly, UsageError, type OptionSpec } from './options';

const OPTIONS: OptionSpec[] = [...CLIENT_OPTIONS, { name: 'system', kind: 'string', arg: 'TEXT', help: 'a system message to start the conversation with' }];
const USAGE = 'Usage: tokenstream chat [options]\n\nAn interactive chat with a tokenstream server. Type a message and Enter; /reset starts over; /exit or Ctrl-D ends.';

interface Turn {
  role: string;
  content: string;
}

function transcript(turns: Turn[]): string {
  return `${turns.map((t) => `${t.role === 'user' ? 'User' : t.role === 'system' ? 'System' : 'Assistant'}: ${t.content}`).join('\n')}\nAssistant:`;
}

export async function chatCommand(argv: string[], input: NodeJS.ReadableStream = process.stdin, output: NodeJS.WritableStream = process.stdout): Promise<number> {
  let parsed;
  try {
    parsed = parseFlagsOnly(argv, OPTIONS);
    if (parsed.help) {
      output.write(helpText(USAGE, OPTIONS));
      return 0;
    }
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`tokenstream chat: ${err.message}\n\n${helpText(USAGE, OPTIONS)}`);
    return 2;
  }
  const v = parsed.values;
  const client = new TokenStreamClient(v.server as string);
  const session = client.session();
  const params: Partial<SamplingParams> = samplingFrom(v);
  const system: Turn[] = v.system ? [{ role: 'system', content: v.system as string }] : [];
  let turns: Turn[] = [...system];
  let useTemplate = true;
  const rl = readline.createInterface({ input, terminal: false });
  const interactive = (input as NodeJS.ReadStream).isTTY === true;
  const prompt = (): void => {
    if (interactive) output.write('> ');
  };
  let code = 0;
  prompt();
  try {
    for await (const line of rl) {
      const text = line.trim();
      if (text === '/exit' || text === '/quit') break;
      if (text === '/reset') {
        turns = [...system];
        prompt();
        continue;
      }
      if (text === '') {
        prompt();
        continue;
      }
      turns.push({ role: 'user', content: text });
      let reply: string | null = null;
      while (reply === null) {
        const req: GenerationInput = useTemplate
          ? { messages: turns, model: (v.model as string) ?? '', params }
          : { prompt: transcript(turns), model: (v.model as string) ?? '', params: { ...params, stop: [...(params.stop ?? []), '\nUser:'] } };
        const gen = session.generate(req);
        try {
          let out = '';
          for await (const chunk of gen) {
            output.write(chunk.text);
            out += chunk.text;
          }
          reply = out.trim();
        } catch (err) {
          if (err instanceof GenerationError && err.code === status.FAILED_PRECONDITION && useTemplate) {
            useTemplate = false; // no chat template: use a transcript prompt
            continue;
          }
          throw err;
        }
      }
      output.write('\n');
      turns.push({ role: 'assistant', content: reply });
      prompt();
    }
  } catch (err) {
    const msg = err instanceof GenerationError ? `${statusName(err.code)}: ${err.message}` : String(err);
    process.stderr.write(`\ntokenstream chat: ${msg}\n`);
    code = 1;
  } finally {
    rl.close();
    await Promise.race([session.close(), new Promise((r) => setTimeout(r, 1000))]);
    client.close();
  }
  return code;
}
