// The latency distributions of a load run (load-generator.ts) as a self-contained
// SVG: one histogram for time to first token and one for inter-token latency,
// with p50/p95/p99 markers; and an HTML page with that SVG and a summary table.
// Hand-written markup, no dependencies; every embedded text is escaped.
import type { LatencySummary, LoadResult } from './load-generator';

const WIDTH = 900;
const PANEL_HEIGHT = 300;
const TITLE_HEIGHT = 56;
const MARGIN = { left: 70, right: 30, top: 46, bottom: 52 };
const BUCKETS = 40;
/** Wider ranges than this (max / smallest positive sample) get a log-scale x axis. */
const LOG_RATIO = 20;
const MARKERS = [
  { key: 'p50', color: '#1a9850' },
  { key: 'p95', color: '#f39c12' },
  { key: 'p99', color: '#d73027' },
] as const;

/** 'svg' or 'html' from a file name's extension; undefined for anything else. */
export function chartFormatFor(file: string): 'svg' | 'html' | undefined {
  const lower = file.toLowerCase();
  if (lower.endsWith('.svg')) return 'svg';
  if (lower.endsWith('.html') || lower.endsWith('.htm')) return 'html';
  return undefined;
}

/** Text safe inside XML/HTML elements and quoted attributes. */
export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

interface Scale {
  log: boolean;
  lo: number;
  hi: number;
  /** Value -> 0..1 along the axis (clamped). */
  at(v: number): number;
  ticks: number[];
}

function niceStep(range: number, count: number): number {
  const raw = range / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

function linearScale(min: number, max: number): Scale {
  let lo = min;
  let hi = max;
  if (hi - lo < 1e-9) {
    const pad = Math.max(Math.abs(hi) * 0.05, 0.01);
    lo = Math.max(0, lo - pad);
    hi += pad;
  }
  const step = niceStep(hi - lo, 6);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let t = lo; t <= hi + step * 1e-6; t += step) ticks.push(Number(t.toPrecision(12)));
  return { log: false, lo, hi, at: (v) => Math.min(1, Math.max(0, (v - lo) / (hi - lo))), ticks };
}

/** The largest 1-2-5 step value <= v (down) or the smallest >= v (up). */
function step125(v: number, up: boolean): number {
  const e = Math.floor(Math.log10(v));
  const cands = [1, 2, 5, 10, 0.5].map((m) => Number((m * 10 ** e).toPrecision(12))).sort((a, b) => a - b);
  return up ? cands.find((c) => c >= v * (1 - 1e-9))! : [...cands].reverse().find((c) => c <= v * (1 + 1e-9))!;
}

function logScale(minPositive: number, max: number): Scale {
  const lo = step125(minPositive, false);
  const hi = step125(max, true);
  const l0 = Math.log10(lo);
  const span = Math.log10(hi) - l0;
  const ticks: number[] = [];
  for (let e = Math.floor(l0); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of span > 3 ? [1] : [1, 2, 5]) {
      const t = m * 10 ** e;
      if (t >= lo * 0.999 && t <= hi * 1.001) ticks.push(Number(t.toPrecision(12)));
    }
  }
  return { log: true, lo, hi, at: (v) => (v <= lo ? 0 : Math.min(1, (Math.log10(v) - l0) / span)), ticks };
}

export interface Histogram {
  scale: Scale;
  /** Bucket i covers [edges[i], edges[i + 1]) along the scale. */
  edges: number[];
  counts: number[];
  /** Zero samples, counted in the first bucket of a log scale. */
  zeros: number;
}

/** Buckets evenly spaced along a linear scale, or along a log scale for wide ranges. */
export function histogram(samples: readonly number[], buckets = BUCKETS): Histogram {
  let min = Infinity;
  let minPositive = Infinity;
  let max = -Infinity;
  let zeros = 0;
  for (const s of samples) {
    if (s < min) min = s;
    if (s > max) max = s;
    if (s > 0 && s < minPositive) minPositive = s;
    if (s <= 0) zeros++;
  }
  if (samples.length === 0) {
    min = 0;
    max = 1;
  }
  const useLog = minPositive !== Infinity && max / minPositive > LOG_RATIO;
  const scale = useLog ? logScale(minPositive, max) : linearScale(Math.max(0, min), max);
  const edges: number[] = [];
  for (let i = 0; i <= buckets; i++) {
    const f = i / buckets;
    edges.push(scale.log ? 10 ** (Math.log10(scale.lo) + f * (Math.log10(scale.hi) - Math.log10(scale.lo))) : scale.lo + f * (scale.hi - scale.lo));
  }
  const counts = new Array<number>(buckets).fill(0);
  for (const s of samples) {
    const i = Math.min(buckets - 1, Math.max(0, Math.floor(scale.at(s) * buckets)));
    counts[i]++;
  }
  return { scale, edges, counts, zeros: useLog ? zeros : 0 };
}

/** "1.25", "120", "0.004": a latency for labels. */
export function formatMs(v: number): string {
  if (v === 0) return '0';
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  if (v >= 1) return v.toFixed(2);
  return Number(v.toPrecision(2)).toString();
}

const fmt = (v: number): string => Number(v.toFixed(2)).toString();

function panel(y0: number, title: string, unit: string, samples: readonly number[], summary: LatencySummary, id: string): string {
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const x0 = MARGIN.left;
  const top = y0 + MARGIN.top;
  const bottom = top + plotH;
  const out: string[] = [`<g class="panel" id="${id}">`];
  out.push(`<text class="panel-title" x="${x0}" y="${fmt(y0 + 22)}">${escapeXml(`${title} (n = ${summary.count})`)}</text>`);
  if (samples.length === 0) {
    out.push(`<text class="empty" x="${fmt(x0 + plotW / 2)}" y="${fmt(top + plotH / 2)}" text-anchor="middle">no samples</text>`, '</g>');
    return out.join('\n');
  }
  const h = histogram(samples);
  const peak = Math.max(...h.counts);
  const yStep = niceStep(peak, 4);
  const yMax = Math.max(yStep, Math.ceil(peak / yStep) * yStep);
  const X = (f: number): number => x0 + f * plotW;
  const Y = (c: number): number => bottom - (c / yMax) * plotH;
  // grid and y axis
  out.push(`<g class="y-axis">`);
  for (let c = 0; c <= yMax + yStep * 1e-6; c += yStep) {
    out.push(`<line class="grid" x1="${x0}" x2="${x0 + plotW}" y1="${fmt(Y(c))}" y2="${fmt(Y(c))}"/>`);
    out.push(`<text x="${x0 - 6}" y="${fmt(Y(c) + 4)}" text-anchor="end">${c}</text>`);
  }
  out.push(`<text class="axis-label" transform="translate(${x0 - 52},${fmt((top + bottom) / 2)}) rotate(-90)" text-anchor="middle">${escapeXml(unit)}</text>`, '</g>');
  // bars
  out.push(`<g class="bars">`);
  for (let i = 0; i < h.counts.length; i++) {
    if (h.counts[i] === 0) continue;
    const a = X(i / h.counts.length);
    const b = X((i + 1) / h.counts.length);
    const tip = `${formatMs(h.edges[i])}–${formatMs(h.edges[i + 1])} ms: ${h.counts[i]}`;
    out.push(
      `<rect class="bar" x="${fmt(a + 0.5)}" y="${fmt(Y(h.counts[i]))}" width="${fmt(Math.max(1, b - a - 1))}" height="${fmt(bottom - Y(h.counts[i]))}" data-count="${h.counts[i]}"><title>${escapeXml(tip)}</title></rect>`,
    );
  }
  out.push('</g>');
  // x axis
  out.push(`<g class="x-axis">`, `<line class="axis" x1="${x0}" x2="${x0 + plotW}" y1="${bottom}" y2="${bottom}"/>`);
  for (const t of h.scale.ticks) {
    const x = fmt(X(h.scale.at(t)));
    out.push(`<line class="axis" x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 5}"/>`, `<text x="${x}" y="${bottom + 18}" text-anchor="middle">${Number(t.toPrecision(6))}</text>`);
  }
  const xLabel = `milliseconds${h.scale.log ? ' (log scale)' : ''}${h.zeros ? `; ${h.zeros} zero values counted in the first bucket` : ''}`;
  out.push(`<text class="axis-label" x="${fmt(x0 + plotW / 2)}" y="${bottom + 38}" text-anchor="middle">${escapeXml(xLabel)}</text>`, '</g>');
  // percentile markers: a dashed line each, named at its top (staggered), values in a legend
  out.push(`<g class="markers">`);
  MARKERS.forEach((m, i) => {
    const value = summary[m.key];
    const x = X(h.scale.at(value));
    out.push(
      `<line class="marker" data-percentile="${m.key}" data-value="${fmt(value)}" x1="${fmt(x)}" x2="${fmt(x)}" y1="${top - 4}" y2="${bottom}" stroke="${m.color}" stroke-width="2" stroke-dasharray="5,3"/>`,
      `<text class="marker-label" x="${fmt(x + 3)}" y="${fmt(top + 6 + i * 13)}" fill="${m.color}">${m.key}</text>`,
      `<text class="legend" x="${fmt(x0 + plotW - (MARKERS.length - i) * 130)}" y="${fmt(y0 + 22)}" fill="${m.color}">${escapeXml(`${m.key} ${formatMs(value)} ms`)}</text>`,
    );
  });
  out.push('</g>', '</g>');
  return out.join('\n');
}

function titleOf(r: LoadResult): string {
  const model = r.model ? ` · ${r.model}` : '';
  return `tokenstream bench-load${model} · ${r.streams} streams · ${r.tokensPerSecond.toFixed(1)} tokens/s`;
}

function subtitleOf(r: LoadResult): string {
  const errors = Object.values(r.errors).reduce((a, b) => a + b, 0);
  return (
    `${r.completed} of ${r.requests} generations completed in ${(r.durationMs / 1000).toFixed(2)} s · ${r.tokens} tokens` +
    `${r.maxTokens ? ` · ${r.maxTokens} per generation` : ''}${errors ? ` · ${errors} errors` : ''}${r.address ? ` · ${r.address}` : ''}`
  );
}

/** The SVG document: title, then the TTFT and ITL histograms. */
export function renderLatencySvg(r: LoadResult): string {
  const height = TITLE_HEIGHT + 2 * PANEL_HEIGHT;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    '<style>.grid{stroke:#e5e5e5}.axis{stroke:#333}.bar{fill:#4a78b5}.panel-title{font-size:15px;font-weight:bold}.title{font-size:18px;font-weight:bold}.axis-label{fill:#333}.empty{fill:#999;font-size:16px}</style>',
    `<rect width="${WIDTH}" height="${height}" fill="#fff"/>`,
    `<text class="title" x="${MARGIN.left}" y="24">${escapeXml(titleOf(r))}</text>`,
    `<text class="subtitle" x="${MARGIN.left}" y="44">${escapeXml(subtitleOf(r))}</text>`,
    panel(TITLE_HEIGHT, 'Time to first token', 'generations', r.ttftSamples, r.ttftMs, 'ttft'),
    panel(TITLE_HEIGHT + PANEL_HEIGHT, 'Inter-token latency', 'tokens', r.itlSamples, r.itlMs, 'itl'),
    '</svg>',
    '',
  ].join('\n');
}

/** An HTML page: a summary table and the SVG (well-formed XML after the doctype). */
export function renderLatencyHtml(r: LoadResult): string {
  const row = (name: string, s: LatencySummary): string =>
    `<tr><th>${name}</th><td>${s.count}</td>${[s.p50, s.p95, s.p99, s.max, s.mean].map((v) => `<td>${formatMs(v)}</td>`).join('')}</tr>`;
  const errors = Object.entries(r.errors);
  const title = escapeXml(titleOf(r));
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8"/>',
    `<title>${title}</title>`,
    '<style>body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}th{background:#f4f4f4}</style>',
    '</head>',
    '<body>',
    `<h1>${title}</h1>`,
    `<p>${escapeXml(subtitleOf(r))}</p>`,
    '<table class="summary">',
    '<tr><th>ms</th><th>samples</th><th>p50</th><th>p95</th><th>p99</th><th>max</th><th>mean</th></tr>',
    row('TTFT', r.ttftMs),
    row('ITL', r.itlMs),
    '</table>',
    `<p>Errors: ${errors.length === 0 ? 'none' : escapeXml(errors.map(([k, n]) => `${k} ${n}`).join(', '))}</p>`,
    renderLatencySvg(r),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
