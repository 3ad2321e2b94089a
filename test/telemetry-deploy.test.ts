// docker-compose.yml, the Dockerfile, the Prometheus config and the Grafana
// provisioning + dashboard, checked by reading them (no Docker engine here):
// every service, port, mount, healthcheck and cross-reference, and every
// metric and label the dashboard queries against a real scrape of /metrics.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { serveMetrics } from '../server/src/telemetry/metrics-server';
import { startTelemetry } from '../server/src/telemetry/sdk';
import { serverTelemetry } from '../server/src/telemetry/server-telemetry';
import { nowMs } from '../server/src/telemetry/clock';
import { ROOT } from './helpers/dist';
import { parsePrometheusText } from './helpers/prometheus-text';
import { checkDashboardAgainst, dashboardQueries } from './helpers/dashboard';

/* eslint-disable @typescript-eslint/no-explicit-any */
const read = (rel: string) => fs.readFileSync(path.join(ROOT, rel), 'utf8');
const compose: any = parseYaml(read('docker-compose.yml'));
const services: Record<string, any> = compose.services;

/** "host:container[/proto]" port mappings of a compose service -> container ports. */
function containerPorts(service: any): number[] {
  return (service.ports ?? []).map((p: string) => Number(String(p).split(':').pop()!.split('/')[0]));
}

/** host-path:container-path[:ro] volumes -> [host, container]. */
function bindMounts(service: any): Array<[string, string]> {
  return (service.volumes ?? [])
    .map((v: string) => String(v).split(':'))
    .filter((parts: string[]) => parts[0].startsWith('.'))
    .map((parts: string[]) => [parts[0], parts[1]] as [string, string]);
}

describe('docker-compose.yml', () => {
  test('Jaeger all-in-one with OTLP gRPC/HTTP and the UI', () => {
    const jaeger = services.jaeger;
    expect(jaeger.image).toMatch(/^jaegertracing\/all-in-one:\d+\.\d+\.\d+$/);
    expect(containerPorts(jaeger)).toEqual(expect.arrayContaining([4317, 4318, 16686]));
  });

  test('the server: built from the Dockerfile, OTLP wired to Jaeger, models volume, gRPC health check', () => {
    const ts = services.tokenstream;
    expect(ts.build).toBe('.');
    const env = ts.environment;
    const endpoint = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT);
    expect(services[endpoint.hostname]).toBe(services.jaeger);
    const protocol = env.OTEL_EXPORTER_OTLP_PROTOCOL;
    // OTLP/HTTP goes to 4318, OTLP/gRPC to 4317; the port must be one Jaeger listens on
    expect(Number(endpoint.port)).toBe(protocol === 'grpc' ? 4317 : 4318);
    expect(['http/protobuf', 'http/json', 'grpc']).toContain(protocol);
    expect(env.OTEL_TRACES_EXPORTER).toBe('otlp');
    expect(env.OTEL_SERVICE_NAME).toBe('tokenstream');
    // Jaeger keeps traces only: metrics go to the Prometheus endpoint
    expect(env.OTEL_METRICS_EXPORTER).toBe('prometheus');
    expect(env.TOKENSTREAM_HOST).toBe('0.0.0.0');
    expect(containerPorts(ts)).toEqual(expect.arrayContaining([Number(env.TOKENSTREAM_PORT), Number(env.TOKENSTREAM_METRICS_PORT)]));
    const models = bindMounts(ts).find(([, c]) => c === '/models');
    expect(models).toBeDefined();
    // the default model named in the environment is in the mounted folder
    const defaultModel = /=(\/models\/[^,}]+)/.exec(env.TOKENSTREAM_MODEL)![1];
    expect(fs.existsSync(path.join(ROOT, models![0], path.basename(defaultModel)))).toBe(true);
    expect(ts.healthcheck.test).toEqual(['CMD', 'node', 'bin/tokenstream.js', 'health', '--server', `127.0.0.1:${env.TOKENSTREAM_PORT}`]);
    expect(ts.depends_on.jaeger).toBeDefined();
  });

  test('the traced CLI client service reaches the server and Jaeger', () => {
    const client = services.client;
    expect(client.image).toBe(services.tokenstream.image);
    expect(client.entrypoint).toEqual(['node', 'bin/tokenstream.js', 'generate', '--server', `tokenstream:${services.tokenstream.environment.TOKENSTREAM_PORT}`]);
    expect(client.environment.OTEL_EXPORTER_OTLP_ENDPOINT).toBe(services.tokenstream.environment.OTEL_EXPORTER_OTLP_ENDPOINT);
    expect(client.depends_on.tokenstream.condition).toBe('service_healthy');
  });

  test('Prometheus scrapes the server metrics endpoint', () => {
    const prom = services.prometheus;
    expect(prom.image).toMatch(/^prom\/prometheus:v3\.\d+\.\d+$/);
    const [host, container] = bindMounts(prom).find(([, c]) => c === '/etc/prometheus/prometheus.yml')!;
    const config: any = parseYaml(read(host));
    expect(container).toBe('/etc/prometheus/prometheus.yml');
    const job = config.scrape_configs.find((j: any) => j.job_name === 'tokenstream');
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job.static_configs[0].targets).toEqual([`tokenstream:${services.tokenstream.environment.TOKENSTREAM_METRICS_PORT}`]);
    expect(containerPorts(prom)).toContain(9090);
  });

  test('Grafana gets the provisioned datasources and the dashboard kept in the repo', () => {
    const grafana = services.grafana;
    expect(grafana.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    const mounts = new Map(bindMounts(grafana).map(([h, c]) => [c, h]));
    const provisioning = mounts.get('/etc/grafana/provisioning')!;
    const dashboards = mounts.get('/var/lib/grafana/dashboards')!;
    expect(fs.existsSync(path.join(ROOT, provisioning, 'datasources'))).toBe(true);
    const ds: any = parseYaml(read(path.join(provisioning, 'datasources/datasources.yml')));
    const prometheus = ds.datasources.find((d: any) => d.type === 'prometheus');
    expect(new URL(prometheus.url).hostname).toBe('prometheus');
    expect(Number(new URL(prometheus.url).port)).toBe(9090);
    const jaeger = ds.datasources.find((d: any) => d.type === 'jaeger');
    expect(new URL(jaeger.url).hostname).toBe('jaeger');
    expect(containerPorts(services.jaeger)).toContain(Number(new URL(jaeger.url).port));
    const providers: any = parseYaml(read(path.join(provisioning, 'dashboards/dashboards.yml')));
    expect(providers.providers[0].options.path).toBe('/var/lib/grafana/dashboards');
    expect(fs.existsSync(path.join(ROOT, dashboards, 'tokenstream.json'))).toBe(true);
    expect(grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe('/var/lib/grafana/dashboards/tokenstream.json');
    // every datasource the dashboard names is provisioned
    const dash = JSON.parse(read(path.join(dashboards, 'tokenstream.json')));
    const uids = new Set(ds.datasources.map((d: any) => d.uid));
    for (const p of dash.panels.filter((x: any) => x.datasource)) expect(uids.has(p.datasource.uid)).toBe(true);
  });

  test('every bind-mounted host path exists', () => {
    for (const [name, svc] of Object.entries(services)) {
      for (const [host] of bindMounts(svc)) {
        expect([name, fs.existsSync(path.join(ROOT, host))]).toEqual([name, true]);
      }
    }
  });
});

describe('Dockerfile', () => {
  const text = read('Dockerfile');
  const lines = text.split('\n').filter((l) => !l.trimStart().startsWith('#'));
  const joined = lines.join('\n').replace(/\\\n/g, ' ');
  const stages = joined.split(/^FROM /m).slice(1).map((s) => 'FROM ' + s);

  test('multi-stage: a build stage with the toolchain, a slim non-root runtime', () => {
    expect(stages.length).toBe(2);
    const [build, runtime] = stages;
    expect(build).toMatch(/^FROM \S+ AS build/);
    expect(build).toMatch(/apt-get install[^\n]*\bg\+\+/);
    expect(build).toMatch(/apt-get install[^\n]*\bcmake\b/);
    expect(build).toMatch(/npm ci\b/);
    expect(build).toMatch(/npm run build\b/);
    expect(build).toMatch(/npm prune --omit=dev/);
    expect(text).toMatch(/ARG NODE_IMAGE=node:20-[a-z]+-slim/);
    expect(runtime).toMatch(/^FROM \$\{NODE_IMAGE\} AS runtime/);
    expect(runtime).not.toMatch(/apt-get|g\+\+|cmake/);
    const user = /^USER (\S+)/m.exec(runtime)![1];
    expect(['root', '0']).not.toContain(user);
    expect(runtime).toMatch(/^EXPOSE .*\b50051\b.*\b9464\b/m);
    expect(runtime).toMatch(/HEALTHCHECK .*CMD \["node", "bin\/tokenstream.js", "health"/);
    expect(runtime).toMatch(/^ENTRYPOINT \["node", "bin\/tokenstream.js"\]/m);
  });

  test('nothing is fetched at build time besides apt and npm', () => {
    expect(joined).not.toMatch(/\b(curl|wget)\b/);
    expect(joined).not.toMatch(/^ADD\s+https?:/m);
    expect(joined).not.toMatch(/git clone/);
  });

  test('every COPY source exists in the repository, and .dockerignore keeps local builds out', () => {
    for (const m of joined.matchAll(/^COPY (?!--from)(.+)$/gm)) {
      const parts = m[1].trim().split(/\s+/);
      for (const src of parts.slice(0, -1)) expect([src, fs.existsSync(path.join(ROOT, src))]).toEqual([src, true]);
    }
    const ignore = read('.dockerignore').split('\n');
    for (const p of ['node_modules', 'dist', 'native/build']) expect(ignore).toContain(p);
    // the runtime copies only what the build stage produced or copied in
    for (const m of joined.matchAll(/^COPY --from=build \/app\/(\S+)/gm)) {
      const src = m[1];
      const produced = ['node_modules', 'dist', 'native/build/Release/tokenstream.node'].includes(src);
      expect([src, produced || fs.existsSync(path.join(ROOT, src))]).toEqual([src, true]);
    }
  });
});

describe('Grafana dashboard', () => {
  test('panels cover the required views', () => {
    const dash = JSON.parse(read('deploy/grafana/dashboards/tokenstream.json'));
    const titles = dash.panels.map((p: any) => p.title).join(' | ');
    for (const want of [/Time to first token/, /Time per output token/, /tokens\/s per worker/, /Queue length/, /Batch size/, /KV slots in use/, /Errors by type and gRPC code/]) {
      expect(titles).toMatch(want);
    }
    const exprs = dashboardQueries().map((q) => q.expr).join('\n');
    expect(exprs).toMatch(/histogram_quantile\(0\.99, sum by \(le\) \(rate\(gen_ai_server_time_to_first_token_bucket/);
    expect(exprs).toMatch(/histogram_quantile\(0\.5, sum by \(le\) \(rate\(gen_ai_server_time_per_output_token_bucket/);
    const ids = dash.panels.map((p: any) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test('every metric and label it queries is on a real scrape of the metrics endpoint', async () => {
    const handle = startTelemetry({ role: 'server', env: {} });
    await handle.ready();
    const server = await serveMetrics(handle.prometheus!, { port: 0, host: '127.0.0.1' });
    try {
      const t = serverTelemetry();
      const start = nowMs() - 50;
      const ok = t.startGeneration({ requestId: 'a', model: 'tiny', startTimeMs: start });
      ok.admitted(start + 1, 0, 0);
      for (let i = 0; i < 4; i++) ok.token(start + 10 + i);
      ok.end({ finishReason: 'STOP', promptTokens: 3, completionTokens: 4 });
      t.startGeneration({ requestId: 'b', model: 'tiny' }).end({ error: { code: 8, message: 'queue full', type: 'queue_full' } });
      t.metrics.recordStep(0, 'tiny', 1, 4, 0.01, 1, 3);
      t.metrics.setStateSource(() => ({ queueLength: 0, workers: [{ workerId: 0, model: 'tiny', activeSequences: 0, kvSlotsUsed: 0, kvSlotsLimit: 8 }] }));
      const expo = parsePrometheusText(await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text());
      expect(checkDashboardAgainst(expo)).toEqual([]);
      // and the check has teeth: a scrape without the engine metrics fails it
      const without = { ...expo, samples: expo.samples.filter((s) => !s.name.startsWith('tokenstream_kv')) };
      expect(checkDashboardAgainst(without).join('\n')).toMatch(/tokenstream_kv_slots_used is not on the endpoint/);
    } finally {
      await server.close();
      await handle.shutdown();
    }
  });
});
