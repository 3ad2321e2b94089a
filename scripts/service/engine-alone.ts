// The engine alone, for bench:service: a worker thread (where the server runs
// its engine too) with one Session configured like the server's worker (same
// slots, context, batch capacity, threads). For each {n, tokens} message: n
// sequences get the prompt in one batch, then decode together one token each
// per step, greedy, until each has `tokens`; replies with tokens/s.
import { parentPort, workerData } from 'node:worker_threads';
import { createBatch, Model } from '../../server/src/engine/model';

export interface EngineAloneConfig {
  file: string;
  threads: number;
  maxSequences: number;
  contextLength: number;
  maxBatch: number;
  prompt: number[];
}

const GREEDY = { temperature: 0, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, penaltyLastN: 64, seed: 0, topLogprobs: 0 };

if (parentPort) {
  const c = workerData as EngineAloneConfig;
  const model = Model.load(c.file);
  const session = model.createSession({ maxSequences: c.maxSequences, contextLength: c.contextLength, maxBatch: c.maxBatch, threads: c.threads });
  const batch = createBatch(session.maxBatch);
  const port = parentPort;
  port.on('message', (m: { n: number; tokens: number } | 'close') => {
    if (m === 'close') {
      session.close();
      model.close();
      port.close();
      return;
    }
    const { n, tokens } = m;
    const prompt = c.prompt;
    const t0 = performance.now();
    let k = 0;
    for (let s = 0; s < n; s++) {
      session.clearSequence(s);
      session.setSampler(s, GREEDY);
      for (let p = 0; p < prompt.length; p++, k++) {
        batch.seq[k] = s;
        batch.token[k] = prompt[p];
        batch.pos[k] = p;
        batch.logits[k] = p === prompt.length - 1 ? 1 : 0;
      }
    }
    batch.length = k;
    session.decode(batch);
    const last = new Int32Array(n);
    for (let s = 0; s < n; s++) last[s] = session.sample(s, s).token;
    for (let step = 1; step < tokens; step++) {
      for (let s = 0; s < n; s++) {
        batch.seq[s] = s;
        batch.token[s] = last[s];
        batch.pos[s] = prompt.length + step - 1;
        batch.logits[s] = 1;
      }
      batch.length = n;
      session.decode(batch);
      for (let s = 0; s < n; s++) last[s] = session.sample(s, s).token;
    }
    port.postMessage((n * tokens * 1000) / (performance.now() - t0));
  });
}
