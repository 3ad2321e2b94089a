import { kernels } from '../server/src/engine/kernels';

const k = kernels();
const sizes = Int32Array.from([0, 1, 2, 3, 5, 7, 8, 16, 17, 63, 64, 100, 257, 1000]);

describe('ThreadPool.parallel_for', () => {
  test.each([1, 2, 3, 4, 8])('runs every task exactly once with %i threads, many times', (threads) => {
    const out = k.threadPoolRun(threads, sizes, 300, 0);
    expect(Array.from(out.subarray(0, sizes.length))).toEqual(new Array(sizes.length).fill(0));
    // thread indices stay in [0, threads)
    expect(out[sizes.length]).toBeLessThan(threads);
  });

  test('wakes sleeping workers: runs stay exact with pauses longer than the spin time', () => {
    const out = k.threadPoolRun(3, Int32Array.from([4, 50, 1000]), 6, 3000);
    expect(Array.from(out.subarray(0, 3))).toEqual([0, 0, 0]);
  });

  test('workers take part (more than the caller runs tasks)', () => {
    // with slow-enough jobs over several threads, some task lands on a worker
    const out = k.threadPoolRun(4, Int32Array.from([100000]), 20, 0);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeGreaterThan(0);
  });

  test('creating and destroying pools repeatedly is safe', () => {
    for (let i = 0; i < 50; i++) {
      const out = k.threadPoolRun(1 + (i % 4), Int32Array.from([i % 7, 33]), 2, 0);
      expect(Array.from(out.subarray(0, 2))).toEqual([0, 0]);
    }
  });

  test('rejects bad arguments', () => {
    expect(() => k.threadPoolRun(0, Int32Array.from([1]), 1, 0)).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
  });
});
