// `tokenstream` — one executable, many subcommands.
export const HELP = `tokenstream — gRPC streaming token generation over a native GGUF engine

Usage: tokenstream <command> [options]

Commands:
  info        print a model's configuration, tensor types and CPU kernel path
  run         generate tokens locally, without a server
  make-model  write a random-weight llama/qwen2 GGUF model (tests, benchmarks)
  tokenize    print the token ids of a text (any GGUF file's tokenizer)
  detokenize  print the text of token ids
  serve       the gRPC server (no options: the bundled model on 127.0.0.1:50051)
  generate    stream a generation from a server to the terminal
  chat        an interactive chat with a server
  health      a server's gRPC health status (exit 0 if SERVING)
  bench-load  a load generator: TTFT, inter-token latency and tokens/s of a server
  help        this text

Run 'tokenstream <command> --help' for a command's options.
`;

type Command = (argv: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {};

export function registerCommand(name: string, load: () => Promise<Command>): void {
  commands[name] = load;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    process.stdout.write(HELP);
    return cmd ? 0 : 1;
  }
  const load = commands[cmd];
  if (!load) {
    process.stderr.write(`tokenstream: unknown command '${cmd}'\n\n${HELP}`);
    return 2;
  }
  return (await load())(rest);
}

// Subcommands: one line each, loaded only when run.
registerCommand('make-model', async () => (await import('./make-model')).command);
registerCommand('tokenize', async () => (await import('./tokenize')).tokenizeCommand);
registerCommand('detokenize', async () => (await import('./tokenize')).detokenizeCommand);
registerCommand('info', async () => (await import('./info')).command);
registerCommand('run', async () => (await import('./run')).command);
registerCommand('serve', async () => (await import('./serve')).serveCommand);
registerCommand('generate', async () => (await import('./generate')).generateCommand);
registerCommand('chat', async () => (await import('./chat')).chatCommand);
registerCommand('health', async () => (await import('./health')).healthCommand);
registerCommand('bench-load', async () => (await import('./bench-load')).benchLoadCommand);
