// Runs a CLI-style main() with process.stdout/stderr captured: returns what it
// returned and what it wrote to stdout (stderr is swallowed).
export async function captureStdout<T>(run: () => Promise<T>): Promise<{ result: T; stdout: string }> {
  let stdout = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  const err = jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const result = await run();
    return { result, stdout };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}
