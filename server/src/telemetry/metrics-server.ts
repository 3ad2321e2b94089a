// The Prometheus scrape endpoint: GET /metrics on --metrics-port (default
// 9464, the OpenTelemetry Prometheus exporter's usual port). Our own tiny HTTP
// server around the exporter's request handler, so the port can be chosen at
// `serve` time (0 = any free port, reported back) and closed with the server.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { PrometheusExporter } from '@opentelemetry/exporter-prometheus';

export const DEFAULT_METRICS_PORT = 9464;
export const PROMETHEUS_TEXT_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export interface MetricsServer {
  readonly port: number;
  readonly host: string;
  close(): Promise<void>;
}

/** Serves `exporter` at http://host:port/metrics. Rejects if the port is taken. */
export function serveMetrics(
  exporter: PrometheusExporter,
  opts: { port?: number; host?: string } = {},
): Promise<MetricsServer> {
  const host = opts.host ?? '0.0.0.0';
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/metrics') {
      // The exporter answers "text/plain"; Prometheus 3 wants the format's version
      // spelled out (it refuses a scrape whose type it cannot determine).
      const setHeader = res.setHeader.bind(res);
      res.setHeader = (name: string, value: number | string | readonly string[]) =>
        name.toLowerCase() === 'content-type' && value === 'text/plain'
          ? setHeader(name, PROMETHEUS_TEXT_CONTENT_TYPE)
          : setHeader(name, value);
      exporter.getMetricsRequestHandler(req, res);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('tokenstream metrics: GET /metrics\n');
    }
  });
  // Scrapes are short; don't let an idle keep-alive connection hold shutdown.
  server.keepAliveTimeout = 5000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? DEFAULT_METRICS_PORT, host, () => {
      server.off('error', reject);
      const { port } = server.address() as AddressInfo;
      resolve({
        port,
        host,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/**
 * Parses a --metrics-port value: a port number (0 = any free port) or
 * "off"/"none"/"-1" to disable the endpoint. Throws a clear error otherwise.
 */
export function parseMetricsPort(value: string | undefined): number | undefined {
  if (value === undefined || value === '') return DEFAULT_METRICS_PORT;
  const v = value.trim().toLowerCase();
  if (v === 'off' || v === 'none' || v === 'false' || v === '-1') return undefined;
  if (!/^\d+$/.test(v) || Number(v) > 65535) {
    throw new Error(`--metrics-port: expected a port number 0-65535 or "off", got "${value}"`);
  }
  return Number(v);
}
