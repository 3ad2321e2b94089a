// Malformed GGUF files: each is refused with a coded error whose message says
// what is wrong, where, and for which key or tensor. Each file is read in a
// child process, so a crash or hang would fail the test instead of the runner.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { READ_EACH, READ_ONE, runWithAddon } from './gguf-child';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gguf-bad-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// ---- a byte-level GGUF builder: every field can be set to anything ----

class Bytes {
  private parts: Buffer[] = [];
  length = 0;
  put(b: Buffer): this {
    this.parts.push(b);
    this.length += b.length;
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    return this.put(b);
  }
  u64(v: number | bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
    return this.put(b);
  }
  str(s: string, len?: number | bigint): this {
    const b = Buffer.from(s, 'utf8');
    return this.u64(len ?? b.length).put(b);
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const T = { u32: 4, f32: 6, str: 8, arr: 9 }; // GGUF value type ids

const kvString = (key: string, value: string): Buffer => new Bytes().str(key).u32(T.str).str(value).build();
const kvU32 = (key: string, value: number): Buffer => new Bytes().str(key).u32(T.u32).u32(value).build();
const kvStringArray = (key: string, values: string[]): Buffer => {
  const b = new Bytes().str(key).u32(T.arr).u32(T.str).u64(values.length);
  for (const v of values) b.str(v);
  return b.build();
};

interface TensorSpec {
  name: string;
  dims: Array<number | bigint>;
  type: number;
  offset: number | bigint;
}

interface Spec {
  magic?: string;
  version?: number;
  nTensors?: bigint;
  nKv?: bigint;
  kvs?: Buffer[];
  tensors?: TensorSpec[];
  nDims?: (t: TensorSpec) => number; // override the written n_dims
  dataBytes?: number;
}

const BASE_KVS = () => [
  kvString('general.architecture', 'llama'),
  kvString('general.name', 'malformed test file'),
  kvStringArray('tokenizer.ggml.tokens', ['<unk>', '<s>', '</s>', 'hello', 'world']),
];
// a: f32 4x2 (32 bytes at 0), b: q8_0 32x1 (34 bytes at 32)
const BASE_TENSORS = (): TensorSpec[] => [
  { name: 'a', dims: [4, 2], type: 0, offset: 0 },
  { name: 'b', dims: [32], type: 8, offset: 32 },
];

/** Builds a file and the byte positions of its parts (for cutting it short in the right place). */
function build(spec: Spec = {}): { buf: Buffer; marks: Record<string, number> } {
  const kvs = spec.kvs ?? BASE_KVS();
  const tensors = spec.tensors ?? BASE_TENSORS();
  const b = new Bytes();
  const marks: Record<string, number> = {};
  b.put(Buffer.from(spec.magic ?? 'GGUF', 'latin1'));
  b.u32(spec.version ?? 3);
  b.u64(spec.nTensors ?? tensors.length);
  b.u64(spec.nKv ?? kvs.length);
  kvs.forEach((kv, i) => {
    marks[`kv${i}`] = b.length;
    b.put(kv);
  });
  tensors.forEach((t, i) => {
    marks[`tensor${i}`] = b.length;
    b.str(t.name).u32(spec.nDims ? spec.nDims(t) : t.dims.length);
    for (const d of t.dims) b.u64(d);
    b.u32(t.type).u64(t.offset);
  });
  marks.infosEnd = b.length;
  const pad = (32 - (b.length % 32)) % 32;
  b.put(Buffer.alloc(pad));
  marks.data = b.length;
  b.put(Buffer.alloc(spec.dataBytes ?? 66, 0x11));
  return { buf: b.build(), marks };
}

type ReadResult = { ok: boolean; tensors?: number; code?: string; message?: string };

function fileFor(name: string): string {
  return path.join(dir, `${name.replace(/[^a-z0-9]+/gi, '_')}.gguf`);
}

/**
 * Reads every file in one child process (one JSON line each). The child must end
 * normally; if it crashed, the files after the crash have no result and their tests fail.
 */
function readAllInChild(files: string[]): { results: Map<string, ReadResult>; exit: object } {
  const r = runWithAddon(READ_EACH, files);
  const results = new Map<string, ReadResult>();
  for (const line of r.stdout.split('\n').filter(Boolean)) {
    const { file, ...rest } = JSON.parse(line);
    results.set(file, rest);
  }
  return { results, exit: { signal: r.signal, status: r.status, stderr: r.stderr } };
}

const u32At = (buf: Buffer, at: number, v: number): Buffer => {
  const c = Buffer.from(buf);
  c.writeUInt32LE(v, at);
  return c;
};

interface BadCase {
  name: string;
  file: () => Buffer;
  message: RegExp;
  code?: string;
}

const CASES: BadCase[] = [
  { name: 'bad magic', file: () => build({ magic: 'GGUX' }).buf, message: /bad magic \(not a GGUF file\) at byte 0$/ },
  { name: 'GGUF v1', file: () => build({ version: 1 }).buf, message: /unsupported GGUF version 1 .* at byte 4$/ },
  { name: 'unknown version', file: () => build({ version: 7 }).buf, message: /unsupported GGUF version 7 at byte 4$/ },
  { name: 'empty file', file: () => Buffer.alloc(0), message: /truncated file: 0 bytes is too small/ },
  {
    name: 'truncated inside the header',
    file: () => build().buf.subarray(0, 12),
    message: /truncated file: tensor count needs 8 bytes, 4 remain at byte 8$/,
  },
  {
    name: 'truncated inside a KV key',
    file: () => {
      const { buf, marks } = build();
      return buf.subarray(0, marks.kv1 + 8 + 5); // 5 of the 12 bytes of 'general.name'
    },
    message: /truncated file or absurd length: metadata key of 12 bytes, but 5 remain at byte \d+$/,
  },
  {
    name: 'truncated inside a string value',
    file: () => {
      const { buf, marks } = build();
      return buf.subarray(0, marks.kv2 - 4);
    },
    message: /string value of 19 bytes, but 15 remain at byte \d+ \(key 'general.name'\)$/,
  },
  {
    name: 'truncated inside an array',
    file: () => {
      const { buf, marks } = build();
      return buf.subarray(0, marks.tensor0 - 3); // inside the last token string
    },
    message: /truncated .*string array element.* \(key 'tokenizer.ggml.tokens'\)$/,
  },
  {
    name: 'truncated inside the tensor infos',
    file: () => {
      const { buf, marks } = build();
      return buf.subarray(0, marks.tensor1 + 8 + 1 + 4 + 3); // inside b's first dimension
    },
    message: /truncated file: tensor dimension needs 8 bytes, 3 remain at byte \d+ \(tensor 'b'\)$/,
  },
  {
    name: 'file ends before the data section',
    file: () => {
      const { buf, marks } = build();
      return buf.subarray(0, marks.infosEnd + 1);
    },
    message: /data section starts at byte \d+, past the end of the file/,
  },
  {
    name: 'truncated inside the tensor data',
    file: () => build({ dataBytes: 60 }).buf,
    message: /tensor data \[\d+\+32, \+34 bytes\) extends past the end of the file .* \(tensor 'b'\)$/,
  },
  {
    name: 'absurd KV count',
    file: () => build({ nKv: 1n << 63n }).buf,
    message: /absurd metadata count 9223372036854775808 .* at byte 16$/,
  },
  {
    name: 'absurd tensor count',
    file: () => build({ nTensors: (1n << 64n) - 1n }).buf,
    message: /absurd tensor count 18446744073709551615 .* at byte 8$/,
  },
  {
    name: 'absurd key length',
    file: () => build({ kvs: [new Bytes().str('general.name', 1n << 63n).u32(T.str).str('x').build()] }).buf,
    message: /absurd length: metadata key of 9223372036854775808 bytes/,
  },
  {
    name: 'absurd string length',
    file: () => build({ kvs: [new Bytes().str('general.name').u32(T.str).str('x', (1n << 64n) - 1n).build()] }).buf,
    message: /absurd length: string value of 18446744073709551615 bytes.*\(key 'general.name'\)$/,
  },
  {
    name: 'absurd array length',
    file: () =>
      build({ kvs: [new Bytes().str('tokenizer.ggml.scores').u32(T.arr).u32(T.f32).u64(1n << 62n).build()] }).buf,
    message: /absurd array length: 4611686018427387904 elements of float32 need at least 2\^64 bytes.*\(key 'tokenizer.ggml.scores'\)$/,
  },
  {
    name: 'too many dimensions',
    file: () => build({ tensors: [{ name: 'five', dims: [1, 1, 1, 1, 1], type: 0, offset: 0 }] }).buf,
    message: /too many dimensions: 5 \(at most 4\) at byte \d+ \(tensor 'five'\)$/,
  },
  {
    name: 'zero dimension',
    file: () => build({ tensors: [{ name: 'z', dims: [4, 0], type: 0, offset: 0 }] }).buf,
    message: /dimension 1 is 0 \(must be > 0\) .*\(tensor 'z'\)$/,
  },
  {
    name: 'negative dimension',
    file: () => build({ tensors: [{ name: 'n', dims: [-4], type: 0, offset: 0 }] }).buf,
    message: /dimension 0 is -4 \(must be > 0\)/,
  },
  {
    name: 'overflowing dimensions',
    file: () => build({ tensors: [{ name: 'big', dims: [1n << 32n, 1n << 32n], type: 0, offset: 0 }] }).buf,
    message: /dimensions overflow: the element count does not fit in int64 .*\(tensor 'big'\)$/,
  },
  {
    name: 'byte size overflow',
    file: () => build({ tensors: [{ name: 'huge', dims: [1n << 62n], type: 0, offset: 0 }] }).buf,
    message: /tensor byte size overflows 64 bits .*\(tensor 'huge'\)$/,
  },
  {
    name: 'unknown tensor type',
    file: () => build({ tensors: [{ name: 'w', dims: [32], type: 99, offset: 0 }] }).buf,
    message: /unknown tensor type id 99 at byte \d+ \(tensor 'w'\)$/,
  },
  {
    name: 'row length not a multiple of the block size',
    file: () => build({ tensors: [{ name: 'q', dims: [16, 2], type: 8, offset: 0 }] }).buf,
    message: /row length 16 is not a multiple of the block size 32 of type q8_0 .*\(tensor 'q'\)$/,
  },
  {
    name: 'tensor data past the end of the file',
    file: () => build({ tensors: [{ name: 'far', dims: [8], type: 0, offset: 1n << 40n }] }).buf,
    message: /tensor data \[\d+\+1099511627776, \+32 bytes\) extends past the end of the file .*\(tensor 'far'\)$/,
  },
  {
    name: 'misaligned tensor offset',
    file: () => build({ tensors: [{ name: 'm', dims: [8], type: 0, offset: 36 }] }).buf,
    message: /misaligned tensor offset 36 \(alignment 32\) .*\(tensor 'm'\)$/,
  },
  {
    name: 'overlapping tensors',
    file: () =>
      build({
        tensors: [
          { name: 'a', dims: [16], type: 0, offset: 0 },
          { name: 'b', dims: [8], type: 0, offset: 32 },
        ],
      }).buf,
    message: /tensor data overlaps tensor 'a' \(offsets 0\+64 and 32\) .*\(tensor 'b'\)$/,
  },
  {
    name: 'alignment not a power of two',
    file: () => build({ kvs: [kvU32('general.alignment', 48)] }).buf,
    message: /bad alignment 48: general.alignment must be a nonzero power of two .*\(key 'general.alignment'\)$/,
  },
  {
    name: 'alignment zero',
    file: () => build({ kvs: [kvU32('general.alignment', 0)] }).buf,
    message: /bad alignment 0/,
  },
  {
    name: 'alignment of the wrong type',
    file: () => build({ kvs: [kvString('general.alignment', '32')] }).buf,
    message: /general.alignment has type string, expected an integer/,
  },
  {
    name: 'duplicate key',
    file: () => build({ kvs: [...BASE_KVS(), kvString('general.name', 'again')] }).buf,
    message: /duplicate metadata key at byte \d+ \(key 'general.name'\)$/,
  },
  {
    name: 'duplicate tensor name',
    file: () =>
      build({
        tensors: [
          { name: 'a', dims: [8], type: 0, offset: 0 },
          { name: 'a', dims: [8], type: 0, offset: 32 },
        ],
      }).buf,
    message: /duplicate tensor name at byte \d+ \(tensor 'a'\)$/,
  },
  {
    name: 'unknown value type',
    file: () => build({ kvs: [new Bytes().str('k').u32(13).u32(0).build()] }).buf,
    message: /unknown value type id 13 at byte 33 \(key 'k'\)$/,
  },
  {
    name: 'unknown array element type',
    file: () => build({ kvs: [new Bytes().str('k').u32(T.arr).u32(77).u64(0).build()] }).buf,
    message: /unknown array element type id 77 .*\(key 'k'\)$/,
  },
  {
    name: 'arrays nested too deep',
    file: () => {
      const b = new Bytes().str('deep').u32(T.arr);
      for (let i = 0; i < 10; i++) b.u32(T.arr).u64(1);
      b.u32(T.u32).u64(0);
      return build({ kvs: [b.build()] }).buf;
    },
    message: /arrays nested more than 8 deep .*\(key 'deep'\)$/,
  },
  {
    name: 'n_dims field corrupted to 2^31',
    file: () => {
      const { buf, marks } = build();
      return u32At(buf, marks.tensor1 + 8 + 1, 0x80000000);
    },
    message: /too many dimensions: 2147483648 .*\(tensor 'b'\)$/,
  },
];

describe('malformed files are refused with GGUF_INVALID', () => {
  const BASE = fileFor('well-formed base');
  let run: ReturnType<typeof readAllInChild>;
  beforeAll(() => {
    fs.writeFileSync(BASE, build().buf);
    for (const c of CASES) fs.writeFileSync(fileFor(c.name), c.file());
    run = readAllInChild([BASE, ...CASES.map((c) => fileFor(c.name))]);
  });

  test('the reader process ends normally (no crash, abort or hang)', () => {
    expect(run.exit).toEqual({ signal: null, status: 0, stderr: '' });
  });

  test('the well-formed base file reads', () => {
    expect(run.results.get(BASE)).toEqual({ ok: true, tensors: 2 });
  });

  for (const c of CASES) {
    test(c.name, () => {
      const r = run.results.get(fileFor(c.name));
      expect(r).toBeDefined();
      expect(r!.ok).toBe(false);
      expect(r!.code).toBe(c.code ?? 'GGUF_INVALID');
      expect(r!.message).toMatch(c.message);
      expect(r!.message!.startsWith(fileFor(c.name) + ': ')).toBe(true); // names the file
    });
  }
});

describe('unreadable paths are IO_ERROR', () => {
  test('missing file', () => {
    const r = runWithAddon(READ_ONE, [path.join(dir, 'missing.gguf')]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'IO_ERROR', message: expect.stringMatching(/cannot open: No such file/) });
  });
  test('a directory', () => {
    const r = runWithAddon(READ_ONE, [dir]);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: false, code: 'IO_ERROR', message: expect.stringMatching(/not a regular file/) });
  });
});
