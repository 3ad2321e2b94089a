// The stable `.code` of the error a call throws (undefined when it does not
// throw), for tests that check which engine/tokenizer error they get.
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return undefined;
}
