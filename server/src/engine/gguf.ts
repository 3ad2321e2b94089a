// Typed access to GGUF metadata through the native reader (native/src/gguf).
// readGgufMetadata() maps the file, copies out metadata and the tensor list
// (never tensor data) and unmaps it again; it works on vocabulary-only files.
import { loadAddon } from './addon';
import type { GgufMetadata, GgufValue } from './types';

/** What the native reader returns: GgufMetadata with the reader-only fields always set. */
export interface GgufFileMetadata extends GgufMetadata {
  dataOffset: number;
  valueTypes: Record<string, string>;
}

/** An error with a stable `.code`, like the ones the native addon throws. */
export class GgufError extends Error {
  constructor(
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'GgufError';
  }
}

/**
 * Reads a GGUF file's header, metadata and tensor list.
 * Throws an Error with `.code` GGUF_INVALID (malformed file, message says what and at
 * which byte) or IO_ERROR (cannot open).
 */
export function readGgufMetadata(path: string): GgufFileMetadata {
  return loadAddon().readGgufMetadata(path) as GgufFileMetadata;
}

export type TypedNumberArray =
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array
  | BigInt64Array
  | BigUint64Array;

function where(md: GgufMetadata, key: string): string {
  return `${md.path}: metadata key '${key}'`;
}

function describe(v: GgufValue): string {
  if (Array.isArray(v)) return 'array';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}`;
  return typeof v;
}

function lookup(md: GgufMetadata, key: string): GgufValue | undefined {
  return Object.prototype.hasOwnProperty.call(md.metadata, key) ? md.metadata[key] : undefined;
}

function missing(md: GgufMetadata, key: string): never {
  throw new GgufError('GGUF_INVALID', `${where(md, key)} is missing`);
}

function wrongType(md: GgufMetadata, key: string, v: GgufValue, want: string): never {
  throw new GgufError('GGUF_INVALID', `${where(md, key)} is a ${describe(v)}, expected ${want}`);
}

/** The string at `key`; `def` when absent (throws when absent and no default). */
export function getString(md: GgufMetadata, key: string, def?: string): string {
  const v = lookup(md, key);
  if (v === undefined) return def !== undefined ? def : missing(md, key);
  if (typeof v !== 'string') wrongType(md, key, v, 'a string');
  return v;
}

/** The number at `key` (int or float; a 64-bit integer must fit in 2^53); `def` when absent. */
export function getNumber(md: GgufMetadata, key: string, def?: number): number {
  const v = lookup(md, key);
  if (v === undefined) return def !== undefined ? def : missing(md, key);
  if (typeof v === 'number') return v;
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER))
      throw new GgufError('GGUF_INVALID', `${where(md, key)} = ${v} does not fit in a JS number`);
    return Number(v);
  }
  return wrongType(md, key, v, 'a number');
}

/** The boolean at `key`; `def` when absent. */
export function getBool(md: GgufMetadata, key: string, def?: boolean): boolean {
  const v = lookup(md, key);
  if (v === undefined) return def !== undefined ? def : missing(md, key);
  if (typeof v !== 'boolean') wrongType(md, key, v, 'a bool');
  return v;
}

/** The array of strings at `key` (e.g. tokenizer.ggml.tokens); `def` when absent. */
export function getStringArray(md: GgufMetadata, key: string, def?: string[]): string[] {
  const v = lookup(md, key);
  if (v === undefined) return def !== undefined ? def : missing(md, key);
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) wrongType(md, key, v, 'an array of strings');
  return v as string[];
}

/** The numeric array at `key` as its typed array (e.g. tokenizer.ggml.scores -> Float32Array). */
export function getNumericArray(md: GgufMetadata, key: string, def?: TypedNumberArray): TypedNumberArray {
  const v = lookup(md, key);
  if (v === undefined) return def !== undefined ? def : missing(md, key);
  if (!ArrayBuffer.isView(v)) wrongType(md, key, v, 'a numeric array');
  return v as TypedNumberArray;
}

/** Any array value at `key` (typed array, string[] or nested/bool array). */
export function getArray(md: GgufMetadata, key: string): TypedNumberArray | GgufValue[] | string[] {
  const v = lookup(md, key);
  if (v === undefined) return missing(md, key);
  if (!Array.isArray(v) && !ArrayBuffer.isView(v)) wrongType(md, key, v, 'an array');
  return v as TypedNumberArray | GgufValue[] | string[];
}
