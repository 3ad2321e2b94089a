// `tokenstream make-model`: random-weight GGUF models for tests and benchmarks
// (the implementation lives in scripts/make-model.ts, also runnable on its own).
export { makeModelCommand as command } from '../../../scripts/make-model';
