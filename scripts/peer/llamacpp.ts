// The peer side of `npm run bench:engine`: the same measurements as ours, on
// llama.cpp through node-llama-cpp (CPU backend, same file, same threads).
// - pp: one evaluation of the prompt (batch size >= prompt: one forward pass);
// - tg: its own generation loop (sequence.evaluate, greedy), one token per
//   step, timed after the first token;
// - batch N: N sequences of one context generating at once; node-llama-cpp
//   gathers their pending tokens into one llama_decode per step.
import { type BenchEngine, type RunPlan, sequencePrompt } from './bench-types';
import { ensurePeer, importEsm } from './install';

/* Minimal shapes of the node-llama-cpp 3.21 API used here. */
interface PeerSequence {
  evaluate(tokens: number[], options?: { temperature?: number }): AsyncGenerator<number, void, unknown>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  clearHistory(): Promise<void>;
  dispose(): Promise<void>;
}
interface PeerContext {
  getSequence(): PeerSequence;
  dispose(): Promise<void>;
  readonly contextSize: number;
  readonly batchSize: number;
  readonly idealThreads: number;
}
interface PeerModel {
  createContext(options: Record<string, unknown>): Promise<PeerContext>;
  dispose(): Promise<void>;
}
interface PeerLlama {
  loadModel(options: Record<string, unknown>): Promise<PeerModel>;
  dispose(): Promise<void>;
  readonly buildType: string;
}

const now = (): number => performance.now();

export async function openLlamaCpp(root: string, plan: RunPlan, log: (line: string) => void): Promise<BenchEngine> {
  const entry = ensurePeer(root, log);
  const mod = await importEsm(entry);
  const getLlama = mod.getLlama as (o: Record<string, unknown>) => Promise<PeerLlama>;
  const levels = mod.LlamaLogLevel as Record<string, unknown>;
  const llama = await getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    maxThreads: plan.threads,
    logLevel: levels.error,
    progressLogs: false,
  });
  const threads = { ideal: plan.threads, min: plan.threads };
  const model = await llama.loadModel({ modelPath: plan.model, gpuLayers: 0 });
  // One context per sequence count (1 for pp and tg), all made up front.
  const contexts = new Map<number, { ctx: PeerContext; seqs: PeerSequence[] }>();
  for (const n of [1, ...plan.batchSizes]) {
    if (contexts.has(n)) continue;
    const ctx = await model.createContext({
      contextSize: plan.contextLength,
      batchSize: Math.max(512, plan.prompt.length, n),
      sequences: n,
      threads,
    });
    contexts.set(n, { ctx, seqs: Array.from({ length: n }, () => ctx.getSequence()) });
  }
  const single = contexts.get(1)!;
  log(
    `llama.cpp (${llama.buildType}, cpu): context ${single.ctx.contextSize}, batch ${single.ctx.batchSize}, threads ${single.ctx.idealThreads}`,
  );
  return {
    name: 'llama.cpp',
    async pp() {
      const seq = single.seqs[0];
      await seq.clearHistory();
      const t0 = now();
      await seq.evaluateWithoutGeneratingNewTokens(plan.prompt);
      return now() - t0;
    },
    async generate(n, steps) {
      const { seqs } = contexts.get(n)!;
      await Promise.all(seqs.map((s) => s.clearHistory()));
      const its = seqs.map((s, i) => s.evaluate(sequencePrompt(plan, i), { temperature: 0 }));
      await Promise.all(its.map((it) => it.next())); // prompts + first tokens, untimed
      const t0 = now();
      await Promise.all(
        its.map(async (it) => {
          for (let k = 0; k < steps; k++) await it.next();
        }),
      );
      const ms = now() - t0;
      await Promise.all(its.map((it) => it.return(undefined)));
      return ms;
    },
    async close() {
      for (const { ctx, seqs } of contexts.values()) {
        await Promise.all(seqs.map((s) => s.dispose()));
        await ctx.dispose();
      }
      await model.dispose();
      await llama.dispose();
    },
  };
}
