// What the Grafana dashboard queries, checked against a real scrape: every
// metric it names must be on the endpoint, with every label it groups by,
// filters on or prints in a legend.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT } from './dist';
import type { Exposition } from './prometheus-text';

export const DASHBOARD = 'deploy/grafana/dashboards/tokenstream.json';

/* eslint-disable @typescript-eslint/no-explicit-any */
/** Metric names and `by (...)`/legend labels the dashboard's queries use. */
export function dashboardQueries(): Array<{ title: string; expr: string; legend: string }> {
  const dash = JSON.parse(fs.readFileSync(path.join(ROOT, DASHBOARD), 'utf8'));
  const out: Array<{ title: string; expr: string; legend: string }> = [];
  for (const p of dash.panels) for (const t of p.targets ?? []) out.push({ title: p.title, expr: t.expr, legend: t.legendFormat ?? '' });
  for (const v of dash.templating.list) out.push({ title: `$${v.name}`, expr: v.definition, legend: '' });
  return out;
}

const METRIC = /\b((?:gen_ai|tokenstream)_[a-z0-9_]+)\b/g;
const PROMQL_WORDS = new Set(['le']);

export function checkDashboardAgainst(expo: Exposition): string[] {
  const problems: string[] = [];
  const names = new Set(expo.samples.map((s) => s.name));
  const labelsOf = (name: string) => new Set(expo.samples.filter((s) => s.name === name).flatMap((s) => Object.keys(s.labels)));
  for (const q of dashboardQueries()) {
    const metrics = [...q.expr.matchAll(METRIC)].map((m) => m[1]).filter((m) => !m.startsWith('gen_ai_request_') && !m.startsWith('tokenstream_worker'));
    if (metrics.length === 0) problems.push(`${q.title}: no metric in ${q.expr}`);
    for (const m of metrics) {
      if (!names.has(m)) {
        problems.push(`${q.title}: ${m} is not on the endpoint`);
        continue;
      }
      const labels = labelsOf(m);
      const used = [
        ...[...q.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((b) => b[1].split(',').map((x) => x.trim())),
        ...[...q.expr.matchAll(/\{([^}]*)\}/g)].flatMap((b) => [...b[1].matchAll(/([a-z_]+)\s*=~?/g)].map((x) => x[1])),
        ...[...q.legend.matchAll(/\{\{\s*([a-z_]+)\s*\}\}/g)].map((x) => x[1]),
        ...[...q.expr.matchAll(/label_values\([^,]+,\s*([a-z_]+)\)/g)].map((x) => x[1]),
      ].filter((l) => l && !PROMQL_WORDS.has(l));
      for (const l of used) {
        // error_type only exists on failed series; the others must be on every series
        if (!labels.has(l)) problems.push(`${q.title}: label ${l} is not on ${m}`);
      }
    }
  }
  return problems;
}

