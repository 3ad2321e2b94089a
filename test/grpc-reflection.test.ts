// Reflection and health, checked the way grpcurl uses them: every file fetched
// over reflection must load into a descriptor registry that resolves every type
// and import, and methods must be callable from JSON with reflected schemas only.
import { create, createFileRegistry, fromBinary, ScalarType, type DescMessage } from '@bufbuild/protobuf';
import { FileDescriptorProtoSchema, FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { GrpcHost } from '../server/src/grpc/server';
import { ServingStatus } from '../server/src/grpc/health';
import { DescriptorPool } from '../server/src/grpc/descriptors';
import { Status } from '../server/src/grpc/status';
import { dynamicCall, reflect, reflectionAsk } from './grpc-helpers';

let host: GrpcHost;
let address: string;

beforeAll(async () => {
  host = new GrpcHost();
  const port = await host.bind('127.0.0.1', 0);
  address = `127.0.0.1:${port}`;
  host.health.set('', ServingStatus.SERVING);
  host.health.set('tiny', ServingStatus.NOT_SERVING);
});

afterAll(async () => {
  await host.close(1000);
});

describe.each(['v1', 'v1alpha'] as const)('reflection %s', (version) => {
  test('lists the services and serves files that resolve every type and import', async () => {
    const { services, files, registry } = await reflect(address, version);
    expect(services).toEqual(
      expect.arrayContaining(['grpc.health.v1.Health', 'grpc.reflection.v1.ServerReflection', 'grpc.reflection.v1alpha.ServerReflection']),
    );
    for (const s of services) {
      const service = registry.getService(s);
      expect(service).toBeDefined();
      for (const m of service!.methods) {
        // Resolved descriptors, not names: the registry had every file it needed.
        expect(m.input.typeName).toMatch(/\./);
        expect(m.output.typeName).toMatch(/\./);
      }
    }
    // One file per .proto, named as compiled.
    expect([...files.keys()]).toEqual(expect.arrayContaining(['grpc/health/v1/health.proto']));
  });
});

test('the tokenstream file resolves completely and keeps its compiled shape', async () => {
  const pool = DescriptorPool.load();
  const resp = await reflectionAsk(address, { fileByFilename: 'tokenstream/v1/tokenstream.proto' });
  const served = resp.fileDescriptorResponse!.fileDescriptorProto;
  // Byte-identical to the descriptor set buf compiled.
  expect(Buffer.from(served[0]).equals(Buffer.from(pool.fileByName('tokenstream/v1/tokenstream.proto')!.bytes))).toBe(true);

  const sym = await reflectionAsk(address, { fileContainingSymbol: 'tokenstream.v1.TokenStream.Generate' });
  expect(sym.fileDescriptorResponse!.fileDescriptorProto.length).toBeGreaterThanOrEqual(1);

  const file = fromBinary(FileDescriptorProtoSchema, served[0]);
  const reg = createFileRegistry(create(FileDescriptorSetSchema, { file: [file] }));
  const svc = reg.getService('tokenstream.v1.TokenStream')!;
  expect(svc.methods.map((m) => m.name)).toEqual(['Generate', 'Complete', 'Tokenize', 'Detokenize', 'ListModels']);
  const gen = svc.methods[0];
  expect(gen.methodKind).toBe('bidi_streaming');
  expect(svc.methods[1].methodKind).toBe('server_streaming');
  const req: DescMessage = gen.input;
  // snake_case names as written, fully-qualified types, proto3 optional kept as such.
  expect(req.fields.map((f) => f.name)).toEqual(
    expect.arrayContaining(['request_id', 'prompt', 'messages', 'tokens', 'model', 'params', 'cancel']),
  );
  const params = req.field.params.message!;
  expect(params.typeName).toBe('tokenstream.v1.SamplingParams');
  const temperature = params.field.temperature;
  expect(temperature.scalar).toBe(ScalarType.FLOAT);
  expect(file.messageType.find((m) => m.name === 'SamplingParams')!.field.find((f) => f.name === 'temperature')!.proto3Optional).toBe(true);
  // proto3 optional is a synthetic oneof, not a real one.
  expect(params.oneofs).toEqual([]);
  const resp2 = gen.output;
  expect(resp2.oneofs.map((o) => o.name)).toEqual(['kind']);
  expect(reg.getEnum('tokenstream.v1.FinishReason')!.values.map((v) => v.name)).toEqual([
    'FINISH_REASON_UNSPECIFIED',
    'STOP',
    'LENGTH',
    'STOP_SEQUENCE',
    'CANCELLED',
  ]);
  // Comments travel with the descriptor (grpcurl describe shows them).
  expect(file.sourceCodeInfo?.location.some((l) => (l.leadingComments ?? '').includes('exactly one terminal message'))).toBe(true);
});

test('symbols of every kind resolve; unknown names and extensions answer NOT_FOUND', async () => {
  for (const symbol of [
    'tokenstream.v1.GenerateRequest',
    'tokenstream.v1.GenerateRequest.request_id',
    'tokenstream.v1.FinishReason',
    'tokenstream.v1.STOP_SEQUENCE',
    'tokenstream.v1.TokenStream.Complete',
    'grpc.health.v1.HealthCheckResponse.ServingStatus',
    'grpc.health.v1.HealthListResponse.StatusesEntry',
  ]) {
    const r = await reflectionAsk(address, { fileContainingSymbol: symbol });
    expect(r.fileDescriptorResponse).toBeDefined();
  }
  const unknown = await reflectionAsk(address, { fileContainingSymbol: 'tokenstream.v1.Nope' });
  expect(unknown.errorResponse?.errorCode).toBe(Status.NOT_FOUND);
  const noFile = await reflectionAsk(address, { fileByFilename: 'nope.proto' }, 'v1alpha');
  expect(noFile.errorResponse?.errorCode).toBe(Status.NOT_FOUND);
  const ext = await reflectionAsk(address, { fileContainingExtension: { containingType: 'tokenstream.v1.GenerateRequest', extensionNumber: 100 } });
  expect(ext.errorResponse?.errorCode).toBe(Status.NOT_FOUND);
  const nums = await reflectionAsk(address, { allExtensionNumbersOfType: 'tokenstream.v1.GenerateRequest' });
  expect(nums.allExtensionNumbersResponse).toEqual({ baseTypeName: 'tokenstream.v1.GenerateRequest', extensionNumber: [] });
  const echoed = await reflectionAsk(address, { host: 'h', listServices: '' });
  expect(echoed.validHost).toBe('h');
  expect(echoed.originalRequest?.listServices).toBe('');
});

test('health Check/List/Watch callable from JSON with reflected schemas', async () => {
  const { registry } = await reflect(address);
  const check = await dynamicCall(address, registry, 'grpc.health.v1.Health/Check', [{ service: '' }]);
  expect(check.error).toBeUndefined();
  expect(check.messages).toEqual([{ status: 'SERVING' }]);

  const model = await dynamicCall(address, registry, 'grpc.health.v1.Health/Check', [{ service: 'tiny' }]);
  expect(model.messages).toEqual([{ status: 'NOT_SERVING' }]);

  const unknown = await dynamicCall(address, registry, 'grpc.health.v1.Health/Check', [{ service: 'nope' }]);
  expect(unknown.error?.code).toBe(Status.NOT_FOUND);

  const list = await dynamicCall(address, registry, 'grpc.health.v1.Health/List', [{}]);
  expect(list.messages).toEqual([{ statuses: { '': { status: 'SERVING' }, tiny: { status: 'NOT_SERVING' } } }]);

  // Watch: current status, then every change; the client ends it with a deadline.
  setTimeout(() => host.health.set('tiny', ServingStatus.SERVING), 200);
  const watch = await dynamicCall(address, registry, 'grpc.health.v1.Health/Watch', [{ service: 'tiny' }], { deadlineMs: 800 });
  expect(watch.messages).toEqual([{ status: 'NOT_SERVING' }, { status: 'SERVING' }]);
  expect(watch.error?.code).toBe(Status.DEADLINE_EXCEEDED);

  const watchUnknown = await dynamicCall(address, registry, 'grpc.health.v1.Health/Watch', [{ service: 'nope' }], { deadlineMs: 300 });
  expect(watchUnknown.messages).toEqual([{ status: 'SERVICE_UNKNOWN' }]);
});

test('reflection itself is callable from JSON (a bidi stream)', async () => {
  const { registry } = await reflect(address);
  const r = await dynamicCall(address, registry, 'grpc.reflection.v1.ServerReflection/ServerReflectionInfo', [
    { listServices: '' },
    { fileContainingSymbol: 'nope.Nope' },
  ]);
  expect(r.error).toBeUndefined();
  expect(r.messages).toHaveLength(2);
  expect(JSON.stringify(r.messages[0])).toContain('grpc.health.v1.Health');
  expect((r.messages[1] as { errorResponse: { errorCode: number } }).errorResponse.errorCode).toBe(Status.NOT_FOUND);
});
