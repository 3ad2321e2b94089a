// grpc.health.v1.Health: Check, List and Watch. Statuses are kept for "" (the
// server as a whole), "tokenstream.v1.TokenStream" and each model name; they are
// NOT_SERVING while models load and while the server drains.
import type { Server, ServerUnaryCall, ServerWritableStream, sendUnaryData } from '@grpc/grpc-js';
import {
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthService,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthListRequest,
  type HealthListResponse,
} from '../generated/grpc/health/v1/health';
import { notFound, toServiceError } from './status';

export { ServingStatus };

type Watcher = (status: ServingStatus) => void;

export class HealthRegistry {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<Watcher>>();
  private readonly streams = new Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>();

  set(service: string, status: ServingStatus): void {
    if (this.statuses.get(service) === status) return;
    this.statuses.set(service, status);
    for (const w of this.watchers.get(service) ?? []) w(status);
  }

  /** Sets every known service (e.g. NOT_SERVING when draining). */
  setAll(status: ServingStatus): void {
    for (const service of [...this.statuses.keys()]) this.set(service, status);
  }

  get(service: string): ServingStatus | undefined {
    return this.statuses.get(service);
  }

  all(): Map<string, ServingStatus> {
    return new Map(this.statuses);
  }

  /** Ends every Watch stream (at shutdown, so that they don't hold the server open). */
  closeWatchers(): void {
    for (const call of this.streams) call.end();
    this.streams.clear();
    this.watchers.clear();
  }

  addTo(server: Server): void {
    server.addService(HealthService, {
      check: (call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, cb: sendUnaryData<HealthCheckResponse>) => {
        const status = this.statuses.get(call.request.service);
        if (status === undefined) cb(toServiceError(notFound(`unknown service: '${call.request.service}'`)));
        else cb(null, { status });
      },
      list: (_call: ServerUnaryCall<HealthListRequest, HealthListResponse>, cb: sendUnaryData<HealthListResponse>) => {
        const statuses: HealthListResponse['statuses'] = {};
        for (const [name, status] of this.statuses) statuses[name] = { status };
        cb(null, { statuses });
      },
      watch: (call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const service = call.request.service;
        const send: Watcher = (status) => {
          if (!call.cancelled && call.writable) call.write({ status });
        };
        let set = this.watchers.get(service);
        if (!set) this.watchers.set(service, (set = new Set()));
        set.add(send);
        this.streams.add(call);
        const stop = (): void => {
          this.watchers.get(service)?.delete(send);
          this.streams.delete(call);
        };
        call.on('cancelled', stop);
        call.on('finish', stop);
        call.on('error', stop);
        send(this.statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN);
      },
    });
  }
}
