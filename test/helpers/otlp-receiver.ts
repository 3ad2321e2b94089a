// A real OTLP/HTTP receiver for tests: a loopback HTTP server accepting
// POST /v1/traces and /v1/metrics with OTLP/JSON bodies (the encoding
// OTEL_EXPORTER_OTLP_PROTOCOL=http/json selects), decoded per the OTLP/JSON
// mapping of the official protos (ids as hex, int64 as strings, AnyValue).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type AttrValue = string | number | boolean | AttrValue[] | null;

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttrValue>;
  events: Array<{ name: string; timeNs: bigint; attributes: Record<string, AttrValue> }>;
  links: Array<{ traceId: string; spanId: string }>;
  status: { code: number; message?: string };
  resource: Record<string, AttrValue>;
  scope: string;
}

interface AnyValueJson {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: number;
  arrayValue?: { values?: AnyValueJson[] };
  kvlistValue?: unknown;
  bytesValue?: string;
}

export function decodeAnyValue(v: AnyValueJson | undefined): AttrValue {
  if (!v) return null;
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return Number(v.doubleValue);
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(decodeAnyValue);
  return null;
}

export function decodeAttributes(list: Array<{ key: string; value: AnyValueJson }> | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) out[kv.key] = decodeAnyValue(kv.value);
  return out;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
export function spansOf(body: any): OtlpSpan[] {
  const out: OtlpSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const resource = decodeAttributes(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: s.kind,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: decodeAttributes(s.attributes),
          events: (s.events ?? []).map((e: any) => ({
            name: e.name,
            timeNs: BigInt(e.timeUnixNano),
            attributes: decodeAttributes(e.attributes),
          })),
          links: (s.links ?? []).map((l: any) => ({ traceId: l.traceId, spanId: l.spanId })),
          status: { code: s.status?.code ?? 0, message: s.status?.message },
          resource,
          scope: ss.scope?.name ?? '',
        });
      }
    }
  }
  return out;
}

/** Metric names in an ExportMetricsServiceRequest. */
export function metricNamesOf(body: any): string[] {
  const out: string[] = [];
  for (const rm of body.resourceMetrics ?? []) for (const sm of rm.scopeMetrics ?? []) for (const m of sm.metrics ?? []) out.push(m.name);
  return out;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface OtlpReceiver {
  readonly endpoint: string; // http://127.0.0.1:port
  readonly requests: Array<{ path: string; contentType: string; body: unknown }>;
  spans(): OtlpSpan[];
  metricNames(): string[];
  /** resolves once `pred` holds over the spans received (polls; rejects after timeoutMs) */
  waitFor(pred: (spans: OtlpSpan[]) => boolean, timeoutMs?: number): Promise<OtlpSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: OtlpReceiver['requests'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const contentType = String(req.headers['content-type'] ?? '');
      const raw = Buffer.concat(chunks);
      let body: unknown = raw;
      if (contentType.includes('json')) {
        try {
          body = JSON.parse(raw.toString('utf8'));
        } catch {
          res.writeHead(400).end();
          return;
        }
      }
      requests.push({ path: req.url ?? '', contentType, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const spans = () => requests.filter((r) => r.path === '/v1/traces').flatMap((r) => spansOf(r.body));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    spans,
    metricNames: () => requests.filter((r) => r.path === '/v1/metrics').flatMap((r) => metricNamesOf(r.body)),
    async waitFor(pred, timeoutMs = 10000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const s = spans();
        if (pred(s)) return s;
        if (Date.now() > deadline) throw new Error(`OTLP receiver: condition not met; got spans ${s.map((x) => x.name).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
