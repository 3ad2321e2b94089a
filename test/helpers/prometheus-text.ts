// A small parser for the Prometheus text exposition format (0.0.4), enough to
// check what a scrape really contains: samples with labels, and TYPE lines.

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: Sample[];
  /** metric family name -> type (counter, gauge, histogram, ...) */
  types: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/g;

export function parsePrometheusText(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^# TYPE (\S+) (\S+)/.exec(line);
      if (m) types.set(m[1], m[2]);
      continue;
    }
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[3]) {
      for (const l of m[3].matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: m[1], labels, value: m[4] === '+Inf' ? Infinity : Number(m[4]) });
  }
  return { samples, types };
}

/** The `le` bounds of a histogram's buckets for one label set (first series found), without +Inf. */
export function bucketBounds(expo: Exposition, family: string): number[] {
  const buckets = expo.samples.filter((s) => s.name === `${family}_bucket`);
  if (buckets.length === 0) return [];
  const key = seriesKey(buckets[0].labels);
  return buckets
    .filter((s) => seriesKey(s.labels) === key && s.labels.le !== '+Inf')
    .map((s) => Number(s.labels.le));
}

function seriesKey(labels: Record<string, string>): string {
  return Object.entries(labels)
    .filter(([k]) => k !== 'le')
    .sort()
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** Sum of a sample family's values over series whose labels include `match`. */
export function sumOf(expo: Exposition, name: string, match: Record<string, string> = {}): number {
  return expo.samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((acc, s) => acc + s.value, 0);
}
