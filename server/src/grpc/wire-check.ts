// Request decoding that never throws into grpc-js. A message that fails to decode,
// or whose string fields hold invalid UTF-8 (proto3 requires valid UTF-8; the
// generated decoder would silently turn it into U+FFFD), is still handed to the
// handler, marked with the reason, so that the handler can answer INVALID_ARGUMENT
// for that one request and keep the stream going (grpc-js would end the whole call
// with INTERNAL on a throwing deserializer).
import { isUtf8 } from 'node:buffer';
import { ScalarType, createFileRegistry, create, type DescField, type DescMessage } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import type { DescriptorPool } from './descriptors';

export const BAD_REQUEST = Symbol('badRequest');

export type Checked<T> = T & { [BAD_REQUEST]?: string };

/** The path of the first string field with invalid UTF-8 ("messages[1].content"), if any. */
export function findInvalidUtf8(desc: DescMessage, bytes: Uint8Array, prefix = ''): string | undefined {
  const reader = new BinaryReader(bytes);
  const counts = new Map<number, number>();
  while (reader.pos < reader.len) {
    const [no, wireType] = reader.tag();
    const field = desc.fields.find((f) => f.number === no);
    if (!field || wireType !== WireType.LengthDelimited) {
      reader.skip(wireType);
      continue;
    }
    const index = counts.get(no) ?? 0;
    counts.set(no, index + 1);
    const data = reader.bytes();
    const where = `${prefix}${field.name}${field.fieldKind === 'list' || field.fieldKind === 'map' ? `[${index}]` : ''}`;
    const bad = checkField(field, data, where);
    if (bad) return bad;
  }
  return undefined;
}

function checkField(field: DescField, data: Uint8Array, where: string): string | undefined {
  switch (field.fieldKind) {
    case 'scalar':
      return field.scalar === ScalarType.STRING && !isUtf8(data) ? where : undefined;
    case 'list':
      if (field.listKind === 'scalar') return field.scalar === ScalarType.STRING && !isUtf8(data) ? where : undefined;
      if (field.listKind === 'message') return findInvalidUtf8(field.message, data, `${where}.`);
      return undefined;
    case 'message':
      return findInvalidUtf8(field.message, data, `${where}.`);
    case 'map': {
      // A map entry: key = 1, value = 2.
      const reader = new BinaryReader(data);
      while (reader.pos < reader.len) {
        const [no, wt] = reader.tag();
        if (wt !== WireType.LengthDelimited) {
          reader.skip(wt);
          continue;
        }
        const part = reader.bytes();
        if (no === 1 && field.mapKey === ScalarType.STRING && !isUtf8(part)) return `${where}.key`;
        if (no === 2 && field.mapKind === 'scalar' && field.scalar === ScalarType.STRING && !isUtf8(part)) return `${where}.value`;
        if (no === 2 && field.mapKind === 'message') {
          const bad = findInvalidUtf8(field.message, part, `${where}.value.`);
          if (bad) return bad;
        }
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Wraps a generated decoder: never throws; marks undecodable messages and those
 * with invalid UTF-8 with BAD_REQUEST (the message says which field).
 */
export function checkedDecoder<T extends object>(
  pool: DescriptorPool,
  typeName: string,
  decode: (b: Buffer) => T,
  empty: () => T,
): (b: Buffer) => Checked<T> {
  const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: [...pool.files.values()].map((f) => f.proto) }));
  const desc = registry.getMessage(typeName);
  if (!desc) throw new Error(`message type ${typeName} not in the descriptor set`);
  return (b: Buffer): Checked<T> => {
    let msg: Checked<T>;
    try {
      msg = decode(b);
    } catch (err) {
      msg = empty();
      msg[BAD_REQUEST] = `malformed ${typeName} message: ${err instanceof Error ? err.message : String(err)}`;
      return msg;
    }
    let bad: string | undefined;
    try {
      bad = findInvalidUtf8(desc, b);
    } catch (err) {
      bad = undefined;
      msg[BAD_REQUEST] = `malformed ${typeName} message: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (bad) msg[BAD_REQUEST] = `invalid UTF-8 in field ${bad}`;
    return msg;
  };
}
