// The gRPC server: TokenStream, Health and reflection (v1, v1alpha) on one port.
// Lifecycle: bind first (health NOT_SERVING), load the models in worker threads,
// then SERVING; on shutdown NOT_SERVING, refuse new generations, let the ones in
// flight finish within the grace period, then close — forced after the grace
// period, since tryShutdown can wait forever on a vanished client (grpc-node #1458).
import { Server, ServerCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { DescriptorPool } from './descriptors';
import { HealthRegistry, ServingStatus } from './health';
import { addReflection, REFLECTION_SERVICES } from './reflection';

export const TOKENSTREAM_SERVICE = 'tokenstream.v1.TokenStream';
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
