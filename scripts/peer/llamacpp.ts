// The peer side of `npm run bench:engine`: the same measurements as ours, on
// llama.cpp through node-llama-cpp (CPU backend, same file, same threads).
// - pp: one evaluation of the prompt (batch size >= prompt: one forward pass);
// - tg: its own generation loop (sequence.evaluate, greedy), one token per
//   step, timed after the first token;
// - batch N: N sequences of one context generating at once; node-llama-cpp
//   gathers their pending tokens into one llama_decode per step.
import { ensurePeer, importEsm } from './install';

export interface EngineNumbers {
  pp_tps: number;
  tg_tps: number;
  batch_tps: Record<string, number>;
}

export interface RunPlan {
  model: string;
  threads: number;
  prompt: number[]; // pp prompt
  genPrompt: number[]; // short prompt before timed generation
  genTokens: number; // timed tokens per sequence
  batchSizes: number[];
  reps: number; // timed repetitions; the best is reported
  contextLength: number; // per sequence
}

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
  readonly gpu: unknown;
  readonly buildType: string;
}

const now = (): number => performance.now();

async function generate(seq: PeerSequence, prompt: number[], tokens: number): Promise<number> {
  const it = seq.evaluate(prompt, { temperature: 0 });
  await it.next(); // prompt + first token: not timed
  const t0 = now();
  for (let i = 0; i < tokens; i++) await it.next();
  const ms = now() - t0;
  await it.return(undefined);
  return ms;
}

export async function measureLlamaCpp(root: string, plan: RunPlan, log: (line: string) => void): Promise<EngineNumbers> {
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
  try {
    // pp and tg: one sequence; batch size >= prompt so pp is one forward pass.
    const ctx = await model.createContext({
      contextSize: plan.contextLength,
      batchSize: Math.max(plan.prompt.length, 512),
      sequences: 1,
      threads,
    });
    log(`llama.cpp (${llama.buildType}, cpu): context ${ctx.contextSize}, batch ${ctx.batchSize}, threads ${ctx.idealThreads}`);
    const seq = ctx.getSequence();
    let ppBest = 0;
    for (let r = 0; r <= plan.reps; r++) {
      await seq.clearHistory();
      const t0 = now();
      await seq.evaluateWithoutGeneratingNewTokens(plan.prompt);
      const tps = (plan.prompt.length * 1000) / (now() - t0);
      if (r > 0) ppBest = Math.max(ppBest, tps); // r = 0 warms up
    }
    let tgBest = 0;
    for (let r = 0; r <= plan.reps; r++) {
      await seq.clearHistory();
      const ms = await generate(seq, plan.genPrompt, r === 0 ? 8 : plan.genTokens);
      if (r > 0) tgBest = Math.max(tgBest, (plan.genTokens * 1000) / ms);
    }
    await seq.dispose();
    await ctx.dispose();

    const batch: Record<string, number> = {};
    for (const n of plan.batchSizes) {
      const bctx = await model.createContext({
        contextSize: plan.contextLength,
        batchSize: Math.max(512, n),
        sequences: n,
        threads,
      });
      const seqs = Array.from({ length: n }, () => bctx.getSequence());
      let best = 0;
      for (let r = 0; r <= plan.reps; r++) {
        await Promise.all(seqs.map((s) => s.clearHistory()));
        const steps = r === 0 ? 4 : plan.genTokens;
        // Each sequence gets its own prompt so no two are identical.
        const its = seqs.map((s, i) => s.evaluate([...plan.genPrompt.slice(1), 10 + i], { temperature: 0 }));
        await Promise.all(its.map((it) => it.next())); // prefill together, untimed
        const t0 = now();
        await Promise.all(
          its.map(async (it) => {
            for (let k = 0; k < steps; k++) await it.next();
          }),
        );
        const ms = now() - t0;
        await Promise.all(its.map((it) => it.return(undefined)));
        if (r > 0) best = Math.max(best, (n * steps * 1000) / ms);
      }
      batch[String(n)] = best;
      await Promise.all(seqs.map((s) => s.dispose()));
      await bctx.dispose();
    }
    return { pp_tps: ppBest, tg_tps: tgBest, batch_tps: batch };
  } finally {
    await model.dispose();
    await llama.dispose();
  }
}
