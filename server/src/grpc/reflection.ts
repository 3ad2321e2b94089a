// gRPC server reflection, grpc.reflection.v1 and v1alpha (grpcurl tries v1 first,
// older tools only know v1alpha; the two are wire-identical). Answers from the
// compiled descriptors in a DescriptorPool.
import type { Server, ServerDuplexStream } from '@grpc/grpc-js';
import * as v1 from '../generated/grpc/reflection/v1/reflection';
import * as v1alpha from '../generated/grpc/reflection/v1alpha/reflection';
import type { DescriptorPool } from './descriptors';
import { Status } from './status';

type Request = v1.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse;

/** One reflection stream's answers. Files already sent on a stream are not resent as dependencies. */
export class ReflectionResponder {
  private readonly sent = new Set<string>();

  constructor(
    private readonly pool: DescriptorPool,
    private readonly services: () => string[],
  ) {}

  answer(req: Request): Response {
    const base: Response = { validHost: req.host, originalRequest: req };
    if (req.listServices !== undefined) {
      return { ...base, listServicesResponse: { service: this.services().map((name) => ({ name })) } };
    }
    if (req.fileByFilename !== undefined) {
      const file = this.pool.fileByName(req.fileByFilename);
      if (!file) return this.error(base, Status.NOT_FOUND, `file not found: ${req.fileByFilename}`);
      return this.files(base, file);
    }
    if (req.fileContainingSymbol !== undefined) {
      const file = this.pool.fileContainingSymbol(req.fileContainingSymbol);
      if (!file) return this.error(base, Status.NOT_FOUND, `symbol not found: ${req.fileContainingSymbol}`);
      return this.files(base, file);
    }
    if (req.fileContainingExtension !== undefined) {
      const { containingType, extensionNumber } = req.fileContainingExtension;
      return this.error(base, Status.NOT_FOUND, `extension not found: ${containingType} ${extensionNumber}`);
    }
    if (req.allExtensionNumbersOfType !== undefined) {
      const type = req.allExtensionNumbersOfType;
      if (!this.pool.hasMessage(type)) return this.error(base, Status.NOT_FOUND, `type not found: ${type}`);
      return { ...base, allExtensionNumbersResponse: { baseTypeName: type, extensionNumber: [] } };
    }
    return this.error(base, Status.INVALID_ARGUMENT, 'empty reflection request');
  }

  private files(base: Response, file: ReturnType<DescriptorPool['fileByName']> & object): Response {
    const files = this.pool.withDependencies(file, this.sent);
    for (const f of files) this.sent.add(f.name);
    return { ...base, fileDescriptorResponse: { fileDescriptorProto: files.map((f) => Buffer.from(f.bytes)) } };
  }

  private error(base: Response, code: Status, message: string): Response {
    return { ...base, errorResponse: { errorCode: code, errorMessage: message } };
  }
}

function handler(pool: DescriptorPool, services: () => string[]) {
  return (call: ServerDuplexStream<Request, Response>): void => {
    const responder = new ReflectionResponder(pool, services);
    call.on('data', (req: Request) => {
      call.write(responder.answer(req));
    });
    call.on('end', () => call.end());
    call.on('error', () => undefined);
  };
}

/**
 * Adds ServerReflection v1 and v1alpha. `services` lists the service names to
 * report (those actually registered on the server).
 */
export function addReflection(server: Server, pool: DescriptorPool, services: () => string[]): void {
  server.addService(v1.ServerReflectionService, { serverReflectionInfo: handler(pool, services) });
  // v1alpha messages have the same fields and numbers; the TS shapes are identical.
  server.addService(v1alpha.ServerReflectionService, {
    serverReflectionInfo: handler(pool, services) as unknown as v1alpha.ServerReflectionServer['serverReflectionInfo'],
  });
}

export const REFLECTION_SERVICES = ['grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection'];
