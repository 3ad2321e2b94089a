import { loadAddon } from '../server/src/engine/addon';

test('the native addon loads', () => {
  const addon = loadAddon();
  expect(typeof addon).toBe('object');
});
