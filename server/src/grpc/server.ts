// The gRPC server: TokenStream, Health and reflection (v1, v1alpha) on one port.
// Lifecycle: bind first (health NOT_SERVING), load the models in worker threads,
// then SERVING; on shutdown NOT_SERVING, refuse new generations, let the ones in
// flight finish within the grace period, then close — forced after the grace
// period, since tryShutdown can wait forever on a vanished client (grpc-node #1458).
import { Server, ServerCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { DescriptorPool } from './descriptors';
import { HealthRegistry, ServingStatus } from './health';
import { addReflection, REFLECTION_SERVICES } from './reflection';
import { WorkerPool, type EngineOptions, type ModelSpec } from '../engine/worker-pool';
import type { BackpressureOptions } from './generation';
import { TokenStreamHandlers } from './service';

export const TOKENSTREAM_SERVICE = 'tokenstream.v1.TokenStream';
/** At shutdown, once no generation is in flight: time left for unary calls before connections are closed. */
const CLOSE_IDLE_MS = 500;
export const HEALTH_SERVICE = 'grpc.health.v1.Health';

export interface TransportOptions {
  /** Largest request message accepted (bytes); bigger ones end their call with RESOURCE_EXHAUSTED. */
  maxReceiveMessageBytes: number;
}

export const DEFAULT_TRANSPORT: TransportOptions = { maxReceiveMessageBytes: 4 * 1024 * 1024 };

export function channelOptions(t: TransportOptions): ChannelOptions {
  return {
    'grpc.max_receive_message_length': t.maxReceiveMessageBytes,
    'grpc.max_send_message_length': -1,
    // Tolerate client keepalive pings during long prompts and idle streams.
    'grpc.keepalive_time_ms': 60_000,
    'grpc.keepalive_timeout_ms': 20_000,
    'grpc.keepalive_permit_without_calls': 1,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
  } as ChannelOptions;
}

/** A bound grpc-js server with health and reflection; services are added before bind. */
export class GrpcHost {
  readonly server: Server;
  readonly health = new HealthRegistry();
  readonly descriptors: DescriptorPool;
  private readonly serviceNames: string[] = [];
  port = 0;

  constructor(transport: TransportOptions = DEFAULT_TRANSPORT, descriptors = DescriptorPool.load()) {
    this.server = new Server(channelOptions(transport));
    this.descriptors = descriptors;
    this.health.addTo(this.server);
    addReflection(this.server, this.descriptors, () => [...this.serviceNames].sort());
    this.serviceNames.push(HEALTH_SERVICE, ...REFLECTION_SERVICES);
    this.health.set('', ServingStatus.NOT_SERVING);
  }

  /** Records a service added to `server` (for reflection's list_services). */
  registered(name: string): void {
    if (!this.serviceNames.includes(name)) this.serviceNames.push(name);
  }

  async bind(host: string, port: number): Promise<number> {
    const target = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(target, ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    return this.port;
  }

  /**
   * Stops accepting calls and closes: tryShutdown waits for open calls; after
   * `graceMs` the rest are cancelled (forceShutdown).
   */
  async close(graceMs: number): Promise<void> {
    this.health.setAll(ServingStatus.NOT_SERVING);
    this.health.closeWatchers();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, Math.max(0, graceMs));
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

export interface ServeOptions extends EngineOptions {
  host: string;
  port: number;
  models: ModelSpec[];
  /** How long in-flight generations may take to finish at shutdown. */
  graceMs: number;
  transport: TransportOptions;
  backpressure: BackpressureOptions;
}

/** The whole server: gRPC host + engine workers + TokenStream handlers. */
export class TokenStreamServer {
  readonly grpc: GrpcHost;
  readonly pool: WorkerPool;
  readonly handlers: TokenStreamHandlers;
  /** Resolves when every model is loaded (rejects if one fails). */
  ready: Promise<void> = Promise.resolve();
  private shuttingDown: Promise<void> | null = null;

  private constructor(private readonly opts: ServeOptions) {
    this.grpc = new GrpcHost(opts.transport);
    this.pool = new WorkerPool(opts.models, opts);
    this.handlers = new TokenStreamHandlers(this.pool, opts.backpressure);
    this.grpc.server.addService(TokenStreamHandlers.definition(this.grpc.descriptors), this.handlers.implementation());
    this.grpc.registered(TOKENSTREAM_SERVICE);
    const health = this.grpc.health;
    health.set(TOKENSTREAM_SERVICE, ServingStatus.NOT_SERVING);
    for (const m of this.pool.models.values()) {
      health.set(m.name, ServingStatus.NOT_SERVING);
      // A model whose workers all stopped no longer serves; the server as a whole
      // is SERVING only while every model is.
      m.onDown = () => {
        health.set(m.name, ServingStatus.NOT_SERVING);
        health.set('', ServingStatus.NOT_SERVING);
        health.set(TOKENSTREAM_SERVICE, ServingStatus.NOT_SERVING);
      };
    }
  }

  /** Binds, then loads the models in the background (health says NOT_SERVING until `ready`). */
  static async start(opts: ServeOptions): Promise<TokenStreamServer> {
    const s = new TokenStreamServer(opts);
    await s.grpc.bind(opts.host, opts.port);
    s.ready = s.pool.start((m) => {
      if (!s.shuttingDown) s.grpc.health.set(m.name, ServingStatus.SERVING);
    });
    s.ready.then(
      () => {
        if (s.shuttingDown) return;
        s.grpc.health.set('', ServingStatus.SERVING);
        s.grpc.health.set(TOKENSTREAM_SERVICE, ServingStatus.SERVING);
      },
      () => undefined,
    );
    return s;
  }

  get port(): number {
    return this.grpc.port;
  }

  get address(): string {
    return `${this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host}:${this.port}`;
  }

  /**
   * Graceful shutdown: NOT_SERVING, no new generations (UNAVAILABLE), in-flight
   * ones get `graceMs` to finish; then every call and worker is closed, by force
   * if needed.
   */
  shutdown(graceMs = this.opts.graceMs): Promise<void> {
    if (!this.shuttingDown) this.shuttingDown = this.doShutdown(graceMs);
    return this.shuttingDown;
  }

  private async doShutdown(graceMs: number): Promise<void> {
    const deadline = Date.now() + graceMs;
    this.grpc.health.setAll(ServingStatus.NOT_SERVING);
    this.handlers.drain();
    for (const m of this.pool.models.values()) m.scheduler?.close();
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      this.handlers.idle().then(() => true),
      new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
    ]);
    clearTimeout(timer);
    // No generation is in flight any more: what is left are idle connections
    // (which a client may keep open forever) and short unary calls.
    await this.grpc.close(finished ? Math.min(CLOSE_IDLE_MS, Math.max(0, deadline - Date.now())) : 0);
    await this.pool.close(!finished);
  }
}
