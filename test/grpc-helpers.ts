// Test helpers that talk to the server the way grpcurl does: every schema comes
// from server reflection (no .proto and no generated code on the client side),
// requests are built from JSON and responses read back as JSON.
import * as http2 from 'node:http2';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import { create, createFileRegistry, fromBinary, fromJson, toBinary, toJson, type FileRegistry, type JsonValue } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import * as reflection from '../server/src/generated/grpc/reflection/v1/reflection';
import * as reflectionAlpha from '../server/src/generated/grpc/reflection/v1alpha/reflection';

export interface Reflected {
  services: string[];
  files: Map<string, FileDescriptorProto>;
  registry: FileRegistry;
}

type ReflectionStub = reflection.ServerReflectionClient | reflectionAlpha.ServerReflectionClient;

/** One reflection stream; `ask` sends a request and resolves with its response. */
function openReflection(address: string, version: 'v1' | 'v1alpha') {
  const Ctor = version === 'v1' ? reflection.ServerReflectionClient : reflectionAlpha.ServerReflectionClient;
  const client: ReflectionStub = new Ctor(address, credentials.createInsecure());
  const call = client.serverReflectionInfo();
  const waiting: Array<(r: reflection.ServerReflectionResponse) => void> = [];
  call.on('data', (r: reflection.ServerReflectionResponse) => waiting.shift()?.(r));
  call.on('error', () => undefined);
  return {
    ask(req: Partial<reflection.ServerReflectionRequest>): Promise<reflection.ServerReflectionResponse> {
      return new Promise((resolve) => {
        waiting.push(resolve);
        call.write(reflection.ServerReflectionRequest.fromPartial(req));
      });
    },
    close(): void {
      call.end();
      client.close();
    },
  };
}

/**
 * Lists the services, fetches the file of every service by symbol and every
 * import by file name, and builds a registry that must resolve every type.
 */
export async function reflect(address: string, version: 'v1' | 'v1alpha' = 'v1'): Promise<Reflected> {
  const r = openReflection(address, version);
  try {
    const list = await r.ask({ listServices: '*' });
    if (!list.listServicesResponse) throw new Error(`list_services failed: ${JSON.stringify(list.errorResponse)}`);
    const services = list.listServicesResponse.service.map((s) => s.name);
    const files = new Map<string, FileDescriptorProto>();
    const addAll = (resp: reflection.ServerReflectionResponse): void => {
      if (!resp.fileDescriptorResponse) throw new Error(`reflection error: ${JSON.stringify(resp.errorResponse)}`);
      for (const bytes of resp.fileDescriptorResponse.fileDescriptorProto) {
        const file = fromBinary(FileDescriptorProtoSchema, bytes);
        files.set(file.name, file);
      }
    };
    for (const service of services) addAll(await r.ask({ fileContainingSymbol: service }));
    // Fetch any import not sent yet, as grpcurl does.
    for (;;) {
      const missing = [...files.values()].flatMap((f) => f.dependency).filter((d) => !files.has(d));
      if (missing.length === 0) break;
      addAll(await r.ask({ fileByFilename: missing[0] }));
    }
    const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...files.values()] }));
    return { services, files, registry };
  } finally {
    r.close();
  }
}

export async function reflectionAsk(
  address: string,
  req: Partial<reflection.ServerReflectionRequest>,
  version: 'v1' | 'v1alpha' = 'v1',
): Promise<reflection.ServerReflectionResponse> {
  const r = openReflection(address, version);
  try {
    return await r.ask(req);
  } finally {
    r.close();
  }
}

const passThrough = (b: Buffer): Buffer => b;

/** A method's request/response schemas, resolved from the reflected registry. */
function methodSchemas(registry: FileRegistry, method: string) {
  const [serviceName, methodName] = method.split('/');
  const service = registry.getService(serviceName);
  if (!service) throw new Error(`service ${serviceName} not in registry`);
  const m = service.methods.find((x) => x.name === methodName);
  if (!m) throw new Error(`method ${method} not in registry`);
  return { path: `/${serviceName}/${methodName}`, input: m.input, output: m.output, kind: m.methodKind };
}

export interface DynamicResult {
  messages: JsonValue[];
  error?: ServiceError;
}

/** Calls any method like `grpcurl -d '<json>'`; for client streams, `requests` are sent in order. */
export function dynamicCall(
  address: string,
  registry: FileRegistry,
  method: string,
  requests: JsonValue[],
  opts: { deadlineMs?: number } = {},
): Promise<DynamicResult> {
  const { path, input, output, kind } = methodSchemas(registry, method);
  const client = new Client(address, credentials.createInsecure());
  const encode = (json: JsonValue): Buffer => Buffer.from(toBinary(input, fromJson(input, json)));
  const decode = (b: Buffer): JsonValue => toJson(output, fromBinary(output, b));
  const callOpts = opts.deadlineMs ? { deadline: Date.now() + opts.deadlineMs } : {};
  return new Promise<DynamicResult>((resolve) => {
    const messages: JsonValue[] = [];
    const done = (error?: ServiceError): void => {
      client.close();
      resolve({ messages, error });
    };
    if (kind === 'unary') {
      client.makeUnaryRequest(path, passThrough, passThrough, encode(requests[0]), new Metadata(), callOpts, (err, resp) => {
        if (resp) messages.push(decode(resp));
        done(err ?? undefined);
      });
      return;
    }
    const call =
      kind === 'server_streaming'
        ? client.makeServerStreamRequest(path, passThrough, passThrough, encode(requests[0]), new Metadata(), callOpts)
        : client.makeBidiStreamRequest(path, passThrough, passThrough, new Metadata(), callOpts);
    call.on('data', (b: Buffer) => messages.push(decode(b)));
    call.on('error', (err: ServiceError) => done(err));
    call.on('end', () => setImmediate(() => done()));
    if (kind !== 'server_streaming') {
      const duplex = call as ReturnType<Client['makeBidiStreamRequest']>;
      for (const r of requests) duplex.write(encode(r));
      duplex.end();
    }
  });
}

/**
 * A gRPC call over plain node:http2, for clients that must really stop reading:
 * grpc-js's client keeps consuming (and buffering without bound) when a call is
 * paused before its first read, so the server would never see backpressure. With
 * node:http2, a paused stream stops acknowledging data and the HTTP/2 window closes.
 */
export interface RawCall {
  /** Decoded response messages, in order. */
  messages: Buffer[];
  /** grpc-status and grpc-message once the call has ended. */
  status?: number;
  details?: string;
  done: Promise<void>;
  write(message: Uint8Array): void;
  end(): void;
  pause(): void;
  resume(): void;
  /** Resets the stream (what a client disconnecting looks like to the server). */
  cancel(): void;
  close(): void;
}

export function rawCall(address: string, method: string, opts: { windowBytes?: number; deadlineMs?: number; paused?: boolean } = {}): RawCall {
  const session = http2.connect(`http://${address}`, { settings: { initialWindowSize: opts.windowBytes ?? 65535 } });
  session.on('error', () => undefined);
  const headers: http2.OutgoingHttpHeaders = {
    ':method': 'POST',
    ':path': method,
    'content-type': 'application/grpc',
    te: 'trailers',
  };
  if (opts.deadlineMs !== undefined) headers['grpc-timeout'] = `${opts.deadlineMs}m`;
  const stream = session.request(headers);
  const call: RawCall = {
    messages: [],
    done: Promise.resolve(),
    write: (m) => {
      const frame = Buffer.alloc(5 + m.length);
      frame.writeUInt32BE(m.length, 1);
      Buffer.from(m).copy(frame, 5);
      stream.write(frame);
    },
    end: () => stream.end(),
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    cancel: () => stream.close(http2.constants.NGHTTP2_CANCEL),
    close: () => session.close(),
  };
  let pending = Buffer.alloc(0);
  const takeStatus = (h: http2.IncomingHttpHeaders): void => {
    if (h['grpc-status'] !== undefined) {
      call.status = Number(h['grpc-status']);
      call.details = decodeURIComponent(String(h['grpc-message'] ?? ''));
    }
  };
  stream.on('response', takeStatus);
  stream.on('trailers', takeStatus);
  stream.on('data', (data: Buffer) => {
    pending = Buffer.concat([pending, data]);
    while (pending.length >= 5) {
      const len = pending.readUInt32BE(1);
      if (pending.length < 5 + len) break;
      call.messages.push(pending.subarray(5, 5 + len));
      pending = pending.subarray(5 + len);
    }
  });
  if (opts.paused) stream.pause();
  stream.on('error', () => undefined);
  call.done = new Promise((resolve) => stream.on('close', () => resolve()));
  return call;
}
