// The compiled FileDescriptorProtos of every .proto the server speaks, read from the
// descriptor set `npm run gen` builds with buf (server/src/generated/descriptor.binpb).
// Reflection serves these exact bytes, so grpcurl sees what protoc/buf compiled:
// one file per .proto, its imports, fully-qualified type names, snake_case field
// names and proto3 `optional` as written (none of @grpc/reflection's rebuilt shapes).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { FileDescriptorProtoSchema, type DescriptorProto, type FileDescriptorProto } from '@bufbuild/protobuf/wkt';
import { packageRoot } from '../engine/addon';

export interface DescriptorFile {
  name: string;
  /** The serialized FileDescriptorProto exactly as compiled. */
  bytes: Uint8Array;
  proto: FileDescriptorProto;
  dependencies: string[];
}

export class DescriptorPool {
  readonly files = new Map<string, DescriptorFile>();
  /** Fully-qualified symbol (no leading dot) -> the file declaring it. */
  private readonly symbols = new Map<string, string>();
  /** Fully-qualified message names (for all_extension_numbers_of_type). */
  private readonly messages = new Set<string>();
  readonly services: string[] = [];

  /** Parses a serialized google.protobuf.FileDescriptorSet. */
  constructor(descriptorSet: Uint8Array) {
    const reader = new BinaryReader(descriptorSet);
    while (reader.pos < reader.len) {
      const [fieldNo, wireType] = reader.tag();
      if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
        const bytes = reader.bytes();
        const proto = fromBinary(FileDescriptorProtoSchema, bytes);
        this.files.set(proto.name, { name: proto.name, bytes, proto, dependencies: proto.dependency });
        this.index(proto);
      } else {
        reader.skip(wireType);
      }
    }
    for (const file of this.files.values()) {
      for (const dep of file.dependencies) {
        if (!this.files.has(dep)) throw new Error(`descriptor set: ${file.name} imports ${dep}, which is missing`);
      }
    }
  }

  static load(file = defaultDescriptorPath()): DescriptorPool {
    return new DescriptorPool(fs.readFileSync(file));
  }

  fileByName(name: string): DescriptorFile | undefined {
    return this.files.get(name);
  }

  fileContainingSymbol(symbol: string): DescriptorFile | undefined {
    const name = this.symbols.get(symbol.startsWith('.') ? symbol.slice(1) : symbol);
    return name === undefined ? undefined : this.files.get(name);
  }

  hasMessage(name: string): boolean {
    return this.messages.has(name.startsWith('.') ? name.slice(1) : name);
  }

  /** `file` followed by its transitive dependencies, skipping names in `exclude`. */
  withDependencies(file: DescriptorFile, exclude: Set<string> = new Set()): DescriptorFile[] {
    const out: DescriptorFile[] = [];
    const seen = new Set<string>();
    const visit = (f: DescriptorFile, isRoot: boolean): void => {
      if (seen.has(f.name)) return;
      seen.add(f.name);
      if (isRoot || !exclude.has(f.name)) out.push(f);
      for (const dep of f.dependencies) visit(this.files.get(dep)!, false);
    };
    visit(file, true);
    return out;
  }

  private index(file: FileDescriptorProto): void {
    const prefix = file.package ? `${file.package}.` : '';
    const add = (symbol: string): void => {
      this.symbols.set(symbol, file.name);
    };
    if (file.package) {
      // A package name resolves to (one of) its files, as grpc-go's resolver does.
      const parts = file.package.split('.');
      for (let i = 1; i <= parts.length; i++) {
        const pkg = parts.slice(0, i).join('.');
        if (!this.symbols.has(pkg)) add(pkg);
      }
    }
    const addEnum = (scope: string, e: { name: string; value: Array<{ name: string }> }): void => {
      add(scope + e.name);
      // Enum values are scoped like siblings of their enum (C++ rules).
      for (const v of e.value) add(scope + v.name);
    };
    const addMessage = (scope: string, m: DescriptorProto): void => {
      const full = scope + m.name;
      add(full);
      this.messages.add(full);
      for (const f of m.field) add(`${full}.${f.name}`);
      for (const o of m.oneofDecl) add(`${full}.${o.name}`);
      for (const x of m.extension) add(`${full}.${x.name}`);
      for (const e of m.enumType) addEnum(`${full}.`, e);
      for (const n of m.nestedType) addMessage(`${full}.`, n);
    };
    for (const m of file.messageType) addMessage(prefix, m);
    for (const e of file.enumType) addEnum(prefix, e);
    for (const x of file.extension) add(prefix + x.name);
    for (const s of file.service) {
      add(prefix + s.name);
      this.services.push(prefix + s.name);
      for (const m of s.method) add(`${prefix}${s.name}.${m.name}`);
    }
  }
}

export function defaultDescriptorPath(): string {
  return path.join(packageRoot(), 'server/src/generated/descriptor.binpb');
}
