// GGUF v3 writer: metadata of any GGUF value type and tensors of the types the
// engine computes. Tensor data is streamed (a source may emit it in chunks), so
// multi-gigabyte files never sit in memory; the file appears under its final
// name only when complete (written to `<path>.partial`, then renamed).
import * as fs from 'node:fs';

export type GgufScalarTypeName =
  | 'uint8'
  | 'int8'
  | 'uint16'
  | 'int16'
  | 'uint32'
  | 'int32'
  | 'float32'
  | 'bool'
  | 'string'
  | 'uint64'
  | 'int64'
  | 'float64';

/** A scalar type name, or "array<T>" (T itself may be an array type). */
export type GgufValueTypeName = GgufScalarTypeName | `array<${string}>`;

const VALUE_TYPE_ID: Record<GgufScalarTypeName | 'array', number> = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
};

const FIXED_SIZE: Partial<Record<GgufScalarTypeName, number>> = {
  uint8: 1,
  int8: 1,
  bool: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  uint64: 8,
  int64: 8,
  float64: 8,
};

/** Typed-array class whose bytes are exactly the GGUF encoding of each numeric type. */
const TYPED_ARRAY_NAME: Partial<Record<GgufScalarTypeName, string>> = {
  uint8: 'Uint8Array',
  int8: 'Int8Array',
  uint16: 'Uint16Array',
  int16: 'Int16Array',
  uint32: 'Uint32Array',
  int32: 'Int32Array',
  float32: 'Float32Array',
  float64: 'Float64Array',
  uint64: 'BigUint64Array',
  int64: 'BigInt64Array',
};

/** ggml tensor types the writer knows (ids and block layouts as ggml defines them). */
export const GGML_TYPES = {
  f32: { id: 0, blockSize: 1, typeSize: 4 },
  f16: { id: 1, blockSize: 1, typeSize: 2 },
  q4_0: { id: 2, blockSize: 32, typeSize: 18 },
  q4_1: { id: 3, blockSize: 32, typeSize: 20 },
  q5_0: { id: 6, blockSize: 32, typeSize: 22 },
  q5_1: { id: 7, blockSize: 32, typeSize: 24 },
  q8_0: { id: 8, blockSize: 32, typeSize: 34 },
  q4_K: { id: 12, blockSize: 256, typeSize: 144 },
  q5_K: { id: 13, blockSize: 256, typeSize: 176 },
  q6_K: { id: 14, blockSize: 256, typeSize: 210 },
  bf16: { id: 30, blockSize: 1, typeSize: 2 },
} as const;
export type GgmlTypeName = keyof typeof GGML_TYPES;

/** Bytes of a tensor of `type` with dims (ne[0] first); throws if ne[0] is not a whole number of blocks. */
export function tensorBytes(type: GgmlTypeName, dims: readonly number[]): number {
  const t = GGML_TYPES[type];
  if (!t) throw new Error(`unknown tensor type '${type}'`);
  if (dims.length < 1 || dims.length > 4) throw new Error(`a tensor has 1 to 4 dimensions, got ${dims.length}`);
  for (const d of dims) if (!Number.isSafeInteger(d) || d <= 0) throw new Error(`bad dimension ${d}`);
  if (dims[0] % t.blockSize !== 0)
    throw new Error(`row length ${dims[0]} is not a multiple of ${type}'s block size ${t.blockSize}`);
  const rows = dims.slice(1).reduce((a, b) => a * b, 1);
  const n = (dims[0] / t.blockSize) * t.typeSize * rows;
  if (!Number.isSafeInteger(n)) throw new Error('tensor too large');
  return n;
}

/**
 * Tensor data: all bytes at once, or a function that emits them in order, in
 * chunks of any size (the writer checks the total).
 */
export type TensorSource = Uint8Array | ((emit: (chunk: Uint8Array) => void) => void);

export interface WriteProgress {
  tensorIndex: number;
  tensorCount: number;
  name: string;
  bytesWritten: number;
  bytesTotal: number;
}

interface PendingTensor {
  name: string;
  type: GgmlTypeName;
  dims: number[];
  source: TensorSource;
  nbytes: number;
}

/** Growable little-endian byte buffer for the header. */
class ByteSink {
  buf = Buffer.alloc(1 << 16);
  len = 0;
  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const next = Buffer.alloc(size);
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void {
    this.reserve(1);
    this.buf.writeUInt8(v, this.len);
    this.len += 1;
  }
  u32(v: number): void {
    this.reserve(4);
    this.buf.writeUInt32LE(v, this.len);
    this.len += 4;
  }
  u64(v: number | bigint): void {
    this.reserve(8);
    this.buf.writeBigUInt64LE(BigInt(v), this.len);
    this.len += 8;
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
  }
  string(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    this.u64(n);
    this.reserve(n);
    this.buf.write(s, this.len, 'utf8');
    this.len += n;
  }
  /** One fixed-size scalar of `type`, range-checked. */
  scalar(type: GgufScalarTypeName, v: unknown, what: string): void {
    const size = FIXED_SIZE[type]!;
    this.reserve(size);
    const b = this.buf;
    const o = this.len;
    const num = (): number => {
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new Error(`${what}: expected a number, got ${typeof v}`);
      return Number(v);
    };
    const int = (lo: number, hi: number): number => {
      const x = num();
      if (!Number.isInteger(x) || x < lo || x > hi) throw new Error(`${what}: ${x} is not a valid ${type}`);
      return x;
    };
    switch (type) {
      case 'uint8': b.writeUInt8(int(0, 0xff), o); break;
      case 'int8': b.writeInt8(int(-0x80, 0x7f), o); break;
      case 'uint16': b.writeUInt16LE(int(0, 0xffff), o); break;
      case 'int16': b.writeInt16LE(int(-0x8000, 0x7fff), o); break;
      case 'uint32': b.writeUInt32LE(int(0, 0xffffffff), o); break;
      case 'int32': b.writeInt32LE(int(-0x80000000, 0x7fffffff), o); break;
      case 'float32': b.writeFloatLE(num(), o); break;
      case 'float64': b.writeDoubleLE(num(), o); break;
      case 'uint64':
      case 'int64': {
        if (typeof v !== 'bigint' && !(typeof v === 'number' && Number.isSafeInteger(v)))
          throw new Error(`${what}: ${String(v)} is not a valid ${type} (use a bigint beyond 2^53)`);
        if (type === 'uint64') b.writeBigUInt64LE(BigInt(v), o);
        else b.writeBigInt64LE(BigInt(v), o);
        break;
      }
      case 'bool':
        if (typeof v !== 'boolean') throw new Error(`${what}: expected a boolean, got ${typeof v}`);
        b.writeUInt8(v ? 1 : 0, o);
        break;
      default:
        throw new Error(`${what}: ${type} is not a fixed-size type`);
    }
    this.len += size;
  }
}

/** Splits "array<array<uint8>>" into its element type; undefined for scalar names. */
function arrayElementType(type: string): string | undefined {
  const m = /^array<(.+)>$/.exec(type);
  return m ? m[1] : undefined;
}

function isScalarTypeName(type: string): type is GgufScalarTypeName {
  return Object.prototype.hasOwnProperty.call(VALUE_TYPE_ID, type) && type !== 'array';
}

function checkTypeName(type: string, key: string): void {
  const elem = arrayElementType(type);
  if (elem !== undefined) return checkTypeName(elem, key);
  if (!isScalarTypeName(type)) throw new Error(`metadata '${key}': unknown GGUF value type '${type}'`);
}

function encodeValue(sink: ByteSink, type: string, value: unknown, what: string): void {
  const elem = arrayElementType(type);
  if (elem === undefined) {
    if (type === 'string') {
      if (typeof value !== 'string') throw new Error(`${what}: expected a string, got ${typeof value}`);
      sink.string(value);
    } else {
      sink.scalar(type as GgufScalarTypeName, value, what);
    }
    return;
  }
  const elemId = isScalarTypeName(elem) ? VALUE_TYPE_ID[elem] : VALUE_TYPE_ID.array;
  sink.u32(elemId);
  const list = value as ArrayLike<unknown>;
  if (list === null || typeof list !== 'object' || typeof list.length !== 'number')
    throw new Error(`${what}: expected an array for type ${type}`);
  sink.u64(list.length);
  // A typed array whose class is the element type's encoding: copy its bytes.
  if (isScalarTypeName(elem) && ArrayBuffer.isView(list) && list.constructor.name === TYPED_ARRAY_NAME[elem]) {
    const view = list as unknown as ArrayBufferView;
    sink.bytes(new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
    return;
  }
  for (let i = 0; i < list.length; i++) encodeValue(sink, elem, list[i], `${what}[${i}]`);
}

export interface GgufWriterOptions {
  /** data alignment (power of two); written as general.alignment when not 32 */
  alignment?: number;
}

export class GgufWriter {
  private readonly kvs = new Map<string, Buffer>(); // key -> encoded key, type and value
  private readonly tensors: PendingTensor[] = [];
  private readonly tensorNames = new Set<string>();
  private readonly alignment: number;

  constructor(options: GgufWriterOptions = {}) {
    const a = options.alignment ?? 32;
    if (!Number.isInteger(a) || a <= 0 || (a & (a - 1)) !== 0) throw new Error(`alignment ${a} is not a power of two`);
    this.alignment = a;
    if (a !== 32) this.set('general.alignment', 'uint32', a);
  }

  /** Adds (or replaces) a metadata value with an explicit GGUF type. Insertion order is kept. */
  set(key: string, type: GgufValueTypeName | string, value: unknown): this {
    checkTypeName(type, key);
    if (key === 'general.alignment' && value !== this.alignment)
      throw new Error(`general.alignment is fixed by the writer's alignment option (${this.alignment})`);
    // Encoded now, so a bad value fails here naming the key, and big arrays are encoded once.
    const sink = new ByteSink();
    sink.string(key);
    const elem = arrayElementType(type);
    sink.u32(elem === undefined ? VALUE_TYPE_ID[type as GgufScalarTypeName] : VALUE_TYPE_ID.array);
    encodeValue(sink, type, value, `metadata '${key}'`);
    this.kvs.set(key, Buffer.from(sink.buf.subarray(0, sink.len)));
    return this;
  }

  has(key: string): boolean {
    return this.kvs.has(key);
  }

  /** Adds a tensor; dims are ggml's order (ne[0], the row length, first). */
  addTensor(name: string, type: GgmlTypeName, dims: readonly number[], source: TensorSource): this {
    if (this.tensorNames.has(name)) throw new Error(`duplicate tensor name '${name}'`);
    const nbytes = tensorBytes(type, dims);
    if (source instanceof Uint8Array || ArrayBuffer.isView(source)) {
      if ((source as Uint8Array).byteLength !== nbytes)
        throw new Error(`tensor '${name}': ${(source as Uint8Array).byteLength} bytes given, ${type} ${dims.join('x')} needs ${nbytes}`);
    }
    this.tensorNames.add(name);
    this.tensors.push({ name, type, dims: [...dims], source, nbytes });
    return this;
  }

  /** Bytes the file will have. */
  fileSize(): number {
    let data = 0;
    for (const t of this.tensors) data = this.align(data) + t.nbytes;
    return this.align(this.header().length) + data;
  }

  private align(n: number): number {
    return Math.ceil(n / this.alignment) * this.alignment;
  }

  private header(): Buffer {
    const sink = new ByteSink();
    sink.u32(0x46554747); // "GGUF"
    sink.u32(3);
    sink.u64(this.tensors.length);
    sink.u64(this.kvs.size);
    for (const encoded of this.kvs.values()) sink.bytes(encoded);
    let offset = 0;
    for (const t of this.tensors) {
      offset = this.align(offset);
      sink.string(t.name);
      sink.u32(t.dims.length);
      for (const d of t.dims) sink.u64(d);
      sink.u32(GGML_TYPES[t.type].id);
      sink.u64(offset);
      offset += t.nbytes;
    }
    return sink.buf.subarray(0, sink.len);
  }

  /** Writes the file; calls onProgress after each chunk of tensor data. Returns the file size. */
  write(path: string, onProgress?: (p: WriteProgress) => void): number {
    const tmp = `${path}.partial`;
    const fd = fs.openSync(tmp, 'w');
    let pos = 0;
    const put = (b: Uint8Array): void => {
      let done = 0;
      while (done < b.length) done += fs.writeSync(fd, b, done, b.length - done, pos + done);
      pos += b.length;
    };
    const padTo = (target: number): void => {
      if (target > pos) put(new Uint8Array(target - pos));
    };
    try {
      put(this.header());
      padTo(this.align(pos));
      const dataStart = pos;
      const bytesTotal = this.tensors.reduce((s, t) => s + t.nbytes, 0);
      let bytesWritten = 0;
      this.tensors.forEach((t, i) => {
        padTo(dataStart + this.align(pos - dataStart));
        const start = pos;
        const report = (): void =>
          onProgress?.({ tensorIndex: i, tensorCount: this.tensors.length, name: t.name, bytesWritten, bytesTotal });
        const emit = (chunk: Uint8Array): void => {
          if (pos - start + chunk.length > t.nbytes)
            throw new Error(`tensor '${t.name}': source emitted more than its ${t.nbytes} bytes`);
          put(chunk);
          bytesWritten += chunk.length;
          report();
        };
        if (typeof t.source === 'function') t.source(emit);
        else emit(t.source);
        if (pos - start !== t.nbytes)
          throw new Error(`tensor '${t.name}': source emitted ${pos - start} bytes, expected ${t.nbytes}`);
      });
      fs.closeSync(fd);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(tmp, { force: true });
      throw e;
    }
    fs.renameSync(tmp, path);
    return pos;
  }
}
