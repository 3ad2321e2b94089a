// The load generator (client/src/load-generator.ts), its latency chart
// (client/src/latency-chart.ts) and `tokenstream bench-load`, against a real
// server on loopback with the bundled tiny model.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LoadError, runLoad, summarize, type LoadResult } from '../client/src/load-generator';
import { chartFormatFor, escapeXml, histogram, renderLatencyHtml, renderLatencySvg } from '../client/src/latency-chart';
import { main } from '../server/src/cli/main';
import { builtModule, ROOT } from './helpers/dist';
import { allElements, parseXml, type XmlElement } from './helpers/xml';
import { startServer, type Running } from './service-helpers';

const bin = path.join(ROOT, 'bin/tokenstream.js');
/** A port nothing listens on (connection refused at once). */
const CLOSED = '127.0.0.1:1';

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: ROOT });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - t0 }));
  });
}

/** main() in this process with stdout and stderr captured. */
async function runInProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = jest.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((stdout += c.toString()), true));
  const err = jest.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((stderr += c.toString()), true));
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

const byClass = (root: XmlElement, name: string, cls: string): XmlElement[] =>
  allElements(root).filter((e) => e.name === name && (e.attrs.class ?? '').split(' ').includes(cls));

/** The chart's structure: a title with the run's numbers, bars and three markers per panel. */
function checkSvg(svg: XmlElement, r: { streams: number }): void {
  expect(svg.name).toBe('svg');
  expect(svg.attrs.xmlns).toBe('http://www.w3.org/2000/svg');
  expect(byClass(svg, 'text', 'title')[0].text).toMatch(new RegExp(`${r.streams} streams · [\\d.]+ tokens/s`));
  for (const id of ['ttft', 'itl']) {
    const panel = allElements(svg).find((e) => e.name === 'g' && e.attrs.id === id)!;
    expect(panel).toBeDefined();
    const bars = byClass(panel, 'rect', 'bar');
    expect(bars.length).toBeGreaterThan(0);
    expect(bars.every((b) => Number(b.attrs.height) > 0 && Number(b.attrs['data-count']) > 0)).toBe(true);
    const markers = byClass(panel, 'line', 'marker');
    expect(markers.map((m) => m.attrs['data-percentile'])).toEqual(['p50', 'p95', 'p99']);
    const values = markers.map((m) => Number(m.attrs['data-value']));
    expect(values[0]).toBeGreaterThan(0);
    expect(values[1]).toBeGreaterThanOrEqual(values[0]);
    expect(values[2]).toBeGreaterThanOrEqual(values[1]);
    expect(byClass(panel, 'text', 'axis-label').map((t) => t.text).join(' ')).toMatch(/milliseconds/);
  }
}

describe('bench-load against a real server', () => {
  let srv: Running;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-load-'));

  beforeAll(async () => {
    builtModule('server/src/cli/bench-load');
    builtModule('client/src/latency-chart');
    srv = await startServer({ maxSequences: 4 });
  });

  afterAll(async () => {
    await srv?.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  test('runLoad keeps the streams busy and measures every token', async () => {
    const progress: number[] = [];
    const maxTokens = 12;
    const r = await runLoad({ address: srv.address, streams: 3, durationMs: 1000, maxTokens, progressIntervalMs: 200, onProgress: (p) => progress.push(p.tokens) });
    expect(r.errors).toEqual({});
    expect(r.streams).toBe(3);
    expect(r.model).toBe('tiny');
    expect(r.completed).toBeGreaterThan(3);
    expect(r.requests).toBe(r.completed);
    // ignore_eos is on by default: every generation yields max_tokens.
    expect(r.tokens).toBe(r.completed * maxTokens);
    // Every generation ran past the 1 s mark only by its own length.
    expect(r.durationMs).toBeGreaterThanOrEqual(950);
    expect(r.durationMs).toBeLessThan(5000);
    expect(r.tokensPerSecond).toBeCloseTo(r.tokens / (r.durationMs / 1000), 6);
    expect(r.ttftSamples).toHaveLength(r.completed);
    // One ITL sample per token after a generation's first message.
    expect(r.messages).toBeGreaterThanOrEqual(r.completed);
    expect(r.itlSamples.length).toBeGreaterThan(0);
    expect(r.itlSamples.length).toBeLessThanOrEqual(r.tokens - r.completed);
    for (const s of [r.ttftMs, r.itlMs]) {
      expect(s.p50).toBeGreaterThan(0);
      expect(s.p50).toBeLessThanOrEqual(s.p95);
      expect(s.p95).toBeLessThanOrEqual(s.p99);
      expect(s.p99).toBeLessThanOrEqual(s.max);
      expect(s.mean).toBeGreaterThan(0);
      expect(s.mean).toBeLessThanOrEqual(s.max);
    }
    expect(r.ttftMs.count).toBe(r.completed);
    expect(r.itlMs.count).toBe(r.itlSamples.length);
    // The ITL of a generation spans its decode: their sum is below the wall time times the streams.
    expect(r.itlSamples.reduce((a, b) => a + b, 0)).toBeLessThan((r.durationMs * 3) + 1);
    expect(progress.length).toBeGreaterThanOrEqual(3);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  });

  test('an abort signal stops the run early and keeps what was measured', async () => {
    const controller = new AbortController();
    const t0 = Date.now();
    setTimeout(() => controller.abort(), 300);
    const r = await runLoad({ address: srv.address, streams: 2, durationMs: 30_000, maxTokens: 8, signal: controller.signal });
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(r.aborted).toBe(true);
    expect(r.completed).toBeGreaterThan(0);
  });

  test('Complete calls instead of Generate streams measure the same way', async () => {
    const r = await runLoad({ address: srv.address, streams: 2, durationMs: 300, maxTokens: 6, api: 'complete' });
    expect(r.errors).toEqual({});
    expect(r.api).toBe('complete');
    expect(r.completed).toBeGreaterThan(0);
    expect(r.tokens).toBe(r.completed * 6);
  });

  test('a model the server does not serve fails before any load', async () => {
    await expect(runLoad({ address: srv.address, streams: 1, durationMs: 100, maxTokens: 4, model: 'nope' })).rejects.toThrow(
      /has no model 'nope' \(it serves: tiny\)/,
    );
  });

  test('the CLI prints the report and writes a well-formed SVG chart', async () => {
    const file = path.join(tmp, 'latency.svg');
    const r = await run(['bench-load', '--address', srv.address, '--streams', '2', '--duration', '0.5', '--max-tokens', '8', '--chart', file]);
    expect(r.stderr).toMatch(/wrote .*latency\.svg/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/2 streams, 8 tokens per generation/);
    expect(r.stdout).toMatch(/^requests +\d+ \(\d+ completed\) in [\d.]+ s$/m);
    expect(r.stdout).toMatch(/^tokens +\d+ \([\d.]+ tokens\/s/m);
    expect(r.stdout).toMatch(/^TTFT +p50 [\d.]+ +p95 [\d.]+ +p99 [\d.]+ /m);
    expect(r.stdout).toMatch(/^ITL +p50 [\d.]+ +p95 [\d.]+ +p99 [\d.]+ /m);
    expect(r.stdout).toMatch(/^errors +none$/m);
    checkSvg(parseXml(fs.readFileSync(file, 'utf8')), { streams: 2 });
  });

  test('the CLI prints JSON (samples only when asked) and writes an HTML page', async () => {
    const file = path.join(tmp, 'latency.html');
    const r = await run(['bench-load', '--server', srv.address, '--streams', '2', '--duration', '0.3', '--max-tokens', '6', '--json', '--samples', '--chart', file, '--quiet']);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/tokens\/s/); // --quiet: no progress lines
    const j = JSON.parse(r.stdout) as LoadResult;
    expect(j.tokens).toBe(j.completed * 6);
    expect(j.ttftSamples).toHaveLength(j.completed);
    expect(j.ttftMs.p99).toBeGreaterThanOrEqual(j.ttftMs.p50);
    const html = fs.readFileSync(file, 'utf8');
    expect(html.startsWith('<!DOCTYPE html>\n')).toBe(true);
    const page = parseXml(html.slice('<!DOCTYPE html>'.length));
    expect(page.name).toBe('html');
    const rows = allElements(page).filter((e) => e.name === 'tr');
    expect(rows.map((row) => row.children[0].text)).toEqual(['ms', 'TTFT', 'ITL']);
    expect(rows[1].children[1].text).toBe(String(j.completed));
    checkSvg(allElements(page).find((e) => e.name === 'svg')!, { streams: 2 });

    const plain = await run(['bench-load', '--address', srv.address, '--streams', '1', '--duration', '0.2', '--max-tokens', '4', '--json']);
    expect(plain.code).toBe(0);
    const k = JSON.parse(plain.stdout) as Partial<LoadResult>;
    expect(k.completed).toBeGreaterThan(0);
    expect(k).not.toHaveProperty('ttftSamples');
    expect(k).not.toHaveProperty('itlSamples');
  });
});

describe('bench-load failures', () => {
  test('an unreachable server fails fast with a clear message', async () => {
    const t0 = Date.now();
    const err = await runLoad({ address: CLOSED, streams: 2, durationMs: 10_000, maxTokens: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LoadError);
    expect((err as Error).message).toMatch(/^cannot reach a tokenstream server at 127\.0\.0\.1:1 \(UNAVAILABLE: .*ECONNREFUSED/);
    expect(Date.now() - t0).toBeLessThan(3000);
    const r = await run(['bench-load', '--address', CLOSED, '--duration', '10']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^tokenstream bench-load: cannot reach a tokenstream server at 127\.0\.0\.1:1 \(UNAVAILABLE: /);
    expect(r.ms).toBeLessThan(5000);
  });

  test('a server that goes away mid-run: its errors are counted, the run ends on time', async () => {
    const doomed = await startServer({ maxSequences: 2 });
    const t0 = Date.now();
    setTimeout(() => void doomed.stop(), 300);
    const r = await runLoad({ address: doomed.address, streams: 2, durationMs: 1200, maxTokens: 8 });
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(r.completed).toBeGreaterThan(0);
    expect(r.errors.UNAVAILABLE).toBeGreaterThan(0);
    expect(r.requests).toBe(r.completed + r.errors.UNAVAILABLE + (r.errors.CANCELLED ?? 0));
  });

  test('a server that never answers fails after the connect timeout', async () => {
    // A listening socket that never speaks HTTP/2: the client waits, then gives up.
    const net = await import('node:net');
    const sockets: import('node:net').Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const address = `127.0.0.1:${(silent.address() as { port: number }).port}`;
    const t0 = Date.now();
    try {
      await expect(runLoad({ address, streams: 1, durationMs: 10_000, maxTokens: 4, connectTimeoutMs: 400 })).rejects.toThrow(
        `cannot reach a tokenstream server at ${address} (no answer within 400 ms)`,
      );
      expect(Date.now() - t0).toBeLessThan(2500);
    } finally {
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  test('bad flags exit 2 with the reason and the usage', async () => {
    for (const [args, why] of [
      [['--streams', '0'], /--streams must be 1 \.\. 4096/],
      [['--streams', 'x'], /--streams: expected an integer, got 'x'/],
      [['--duration=-1'], /--duration must be > 0/],
      [['--max-tokens', '0'], /--max-tokens must be >= 1/],
      [['--chart', 'out.png'], /--chart: the file name must end in \.svg or \.html/],
      [['--samples'], /--samples only goes with --json/],
      [['--bogus'], /Unknown option '--bogus'/],
      [['extra'], /unexpected argument 'extra'/],
      [['--address', 'a:1', '--server', 'b:2'], /--address or --server, not both/],
    ] as const) {
      const r = await runInProcess(['bench-load', ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toMatch(why);
      expect(r.stderr).toMatch(/Usage: tokenstream bench-load \[options\]/);
    }
    const help = await runInProcess(['bench-load', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--streams N .*\(default 8\)/);
    expect(help.stdout).toMatch(/--chart FILE/);
    // The executable too (the exit code a shell sees).
    expect((await run(['bench-load', '--streams', '0'])).code).toBe(2);
  });

  test('runLoad refuses options that cannot run', async () => {
    await expect(runLoad({ address: CLOSED, streams: 0, durationMs: 100, maxTokens: 4 })).rejects.toThrow(/streams must be an integer >= 1/);
    await expect(runLoad({ address: CLOSED, streams: 1, durationMs: 0, maxTokens: 4 })).rejects.toThrow(/durationMs must be a positive number/);
    await expect(runLoad({ address: CLOSED, streams: 1, durationMs: 100, maxTokens: 1.5 })).rejects.toThrow(/maxTokens must be an integer/);
  });
});

describe('latency summary and chart', () => {
  test('summarize: nearest-rank percentiles, mean and max', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 .. 1, unsorted
    expect(summarize(xs)).toEqual({ count: 100, mean: 50.5, p50: 50, p95: 95, p99: 99, max: 100 });
    expect(summarize([7])).toEqual({ count: 1, mean: 7, p50: 7, p95: 7, p99: 7, max: 7 });
    expect(summarize([])).toEqual({ count: 0, mean: 0, p50: 0, p95: 0, p99: 0, max: 0 });
  });

  test('histogram: every sample in one bucket; log scale for wide ranges', () => {
    const narrow = histogram([1, 1.5, 2, 2, 3]);
    expect(narrow.scale.log).toBe(false);
    expect(narrow.counts.reduce((a, b) => a + b, 0)).toBe(5);
    const wide = [0, 0.01, 0.3, 0.3, 2, 250];
    const h = histogram(wide);
    expect(h.scale.log).toBe(true);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(wide.length);
    expect(h.zeros).toBe(1);
    expect(h.scale.lo).toBeLessThanOrEqual(0.01);
    expect(h.scale.hi).toBeGreaterThanOrEqual(250);
    expect(h.counts[0]).toBe(2); // 0 and 0.01
    const last = h.counts.findLastIndex((c) => c > 0);
    expect(h.counts[last]).toBe(1); // 250, alone, within the last edges
    expect(h.edges[last]).toBeLessThanOrEqual(250);
    expect(h.edges[last + 1]).toBeGreaterThan(250);
  });

  test('embedded text is escaped and an empty run still renders', () => {
    const empty = summarize([]);
    const r: LoadResult = {
      streams: 1, durationMs: 0, requests: 1, completed: 0, tokens: 0, tokensPerSecond: 0,
      ttftMs: empty, itlMs: empty, errors: { UNAVAILABLE: 1 }, ttftSamples: [], itlSamples: [],
      model: `<m&"x'>`, address: 'a<b>:1',
    };
    const svg = parseXml(renderLatencySvg(r));
    expect(byClass(svg, 'text', 'title')[0].text).toContain(`<m&"x'>`);
    expect(byClass(svg, 'text', 'empty')).toHaveLength(2);
    const page = parseXml(renderLatencyHtml(r).replace('<!DOCTYPE html>', ''));
    expect(allElements(page).find((e) => e.name === 'title')!.text).toContain(`<m&"x'>`);
    expect(escapeXml(`a&<>"'`)).toBe('a&amp;&lt;&gt;&quot;&#39;');
    expect([chartFormatFor('x.SVG'), chartFormatFor('x.html'), chartFormatFor('x.htm'), chartFormatFor('x.png')]).toEqual(['svg', 'html', 'html', undefined]);
  });
});
