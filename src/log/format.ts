/**
 * The bytes of the log: segment headers, entries, batch frames, footers and trailers.
 * doc/format.md is the prose version of this file; keep them in step.
 *
 * Invariants:
 * - All integers are little-endian. 64-bit integers are written as two u32 (low word first) and
 *   must be below 2^53 (they are read back as JS numbers).
 * - Every entry starts with a CRC32 (zlib.crc32, the IEEE polynomial) of all its bytes after the CRC
 *   field, then its total length. An entry is valid iff its length is at least the header size, it
 *   fits in the bytes available, its CRC matches, its type is known and its key fits in it.
 * - A batch is one frame entry holding whole inner entries; the frame's CRC covers them all, so a
 *   torn batch is dropped as a unit; each inner entry keeps its own CRC so one can be read alone.
 * - This module owns bytes only: no I/O.
 */
import { crc32 } from 'node:zlib';
import { decodeDelta, decodeManifest } from './object.js';

/** The one on-disk format version; an incompatible change bumps it (and CHANGELOG.md says so). */
export const FORMAT_VERSION = 1;

export const SEGMENT_MAGIC = Buffer.from('SILTSEG\0', 'latin1');
export const SEGMENT_TRAILER_MAGIC = Buffer.from('SILTEND\0', 'latin1');
export const SEGMENT_HEADER_BYTES = 32;
export const SEGMENT_TRAILER_BYTES = 16;

export const ENTRY_HEADER_BYTES = 20;
export const EXPIRY_FIELD_BYTES = 8;
/** Keys are limited by the u16 key-length field. */
export const KEY_BYTES_MAX = 0xffff;
/** Entry lengths are u32. */
export const ENTRY_BYTES_MAX = 0xffff_ffff;

export const EntryType = {
  PUT: 1,
  DELETE: 2,
  BATCH: 3,
  FOOTER: 4,
  /** A put whose value is held in the block store; the entry's value is a `ValueReference`. */
  PUT_REFERENCE: 5,
  /** A put of an object (writeAt/append/truncate); the entry's value is an object manifest (src/log/object.ts). */
  PUT_OBJECT: 6,
  // Reserved for a later format (decoders reject it today): 7 NAMESPACE.
  /**
   * A block of an object held in the log instead of a block file (a small slice's bytes, carried
   * by the write that adds the slice): key = the block's SHA-256 (32 bytes), value = its data.
   * Not a key's record: the index never sees it (see `decodeBlockEntry`).
   */
  BLOCK: 8,
  /**
   * A write to an object recorded as what it changed: the slices it appends and the new size, on
   * top of the key's previous record (`baseRevision`), which is in the same segment (src/log/object.ts).
   */
  PUT_OBJECT_DELTA: 9,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export const EntryFlag = {
  /** An 8-byte expiry time (ms since the epoch) follows the header. */
  EXPIRES: 1,
} as const;

const KNOWN_FLAGS = EntryFlag.EXPIRES;

export function writeUint64(buffer: Buffer, value: number, offset: number): void {
  buffer.writeUInt32LE(value % 0x1_0000_0000, offset);
  buffer.writeUInt32LE(Math.floor(value / 0x1_0000_0000), offset + 4);
}

export function readUint64(buffer: Uint8Array, offset: number): number {
  const view = buffer as Buffer;
  const low = view.readUInt32LE(offset);
  const high = view.readUInt32LE(offset + 4);
  // A value that fits a small integer is returned as one (`| 0`). Computed as below, a revision
  // was a double even when small, and the index's locations replayed at open then had a double
  // field where those loaded from the checkpoint had an integer one: V8 changed their shared
  // layout and migrated each checkpointed location at its first access, 2.5-3 s for 3M keys.
  return high === 0 && low < 0x4000_0000 ? low | 0 : low + high * 0x1_0000_0000;
}

/**
 * Below this many bytes a CRC is computed here rather than by zlib: a call of `zlib.crc32` costs
 * about 0.35 µs before its first byte (argument checks, the native call), more than this loop
 * takes for a 50-byte entry (about 0.1 µs); from about 128 bytes zlib's is faster. Measured on
 * this machine's Node 20 (doc/measurements.md, "CRCs of small entries").
 */
const SHORT_CHECKSUM_BYTES = 128;

/**
 * Lookup tables of the reflected CRC-32 polynomial zlib uses (0xEDB88320), eight of them for
 * slicing-by-8: `table[k * 256 + byte]` is the CRC of `byte` followed by k zero bytes.
 */
const CRC_TABLE = (() => {
  const table = new Int32Array(8 * 256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? 0xedb88320 ^ (crc >>> 1) : crc >>> 1;
    table[byte] = crc;
  }
  for (let byte = 0; byte < 256; byte++) {
    let crc = table[byte] as number;
    for (let slice = 1; slice < 8; slice++) {
      crc = (table[crc & 0xff] as number) ^ (crc >>> 8);
      table[slice * 256 + byte] = crc;
    }
  }
  return table;
})();

/** CRC-32 of `bytes` continuing from `initial` (zlib's `crc32`: same polynomial, same results). */
export function checksum(bytes: Uint8Array, initial = 0): number {
  return checksumRange(bytes, 0, bytes.length, initial);
}

/** `checksum(bytes.subarray(start, end), initial)`, without making the view for a short range. */
export function checksumRange(bytes: Uint8Array, start: number, end: number, initial = 0): number {
  if (end - start >= SHORT_CHECKSUM_BYTES) return crc32(bytes.subarray(start, end), initial);
  const table = CRC_TABLE;
  let crc = ~initial;
  let index = start;
  for (; index + 8 <= end; index += 8) {
    const low = crc ^ ((bytes[index] as number) | ((bytes[index + 1] as number) << 8) | ((bytes[index + 2] as number) << 16) | ((bytes[index + 3] as number) << 24));
    crc =
      (table[1792 + (low & 0xff)] as number) ^
      (table[1536 + ((low >>> 8) & 0xff)] as number) ^
      (table[1280 + ((low >>> 16) & 0xff)] as number) ^
      (table[1024 + (low >>> 24)] as number) ^
      (table[768 + (bytes[index + 4] as number)] as number) ^
      (table[512 + (bytes[index + 5] as number)] as number) ^
      (table[256 + (bytes[index + 6] as number)] as number) ^
      (table[bytes[index + 7] as number] as number);
  }
  for (; index < end; index++) crc = (table[(crc ^ (bytes[index] as number)) & 0xff] as number) ^ (crc >>> 8);
  return ~crc >>> 0;
}

/**
 * `x^(2^k)` modulo the CRC-32 polynomial, k = 0..31 (reflected, as zlib's `x2n_table`): shifting a
 * CRC past n zero bytes multiplies it by `x^(8n)`, built from these.
 */
const X2N_TABLE = (() => {
  const table = new Int32Array(32);
  let power = 1 << 30; // x^1
  table[0] = power;
  for (let k = 1; k < 32; k++) table[k] = power = multiplyModP(power, power);
  return table;
})();

/** a * b modulo the CRC-32 polynomial, both reflected (zlib's `multmodp`). */
function multiplyModP(a: number, b: number): number {
  let product = 0;
  for (let bit = 0x8000_0000; bit !== 0; bit >>>= 1) {
    if ((a & bit) !== 0) product ^= b;
    b = b & 1 ? (b >>> 1) ^ 0xedb88320 : b >>> 1;
  }
  return product;
}

/**
 * The CRC-32 of A followed by B from the CRC of A, the CRC of B and B's length (zlib's
 * `crc32_combine`), without reading either: 0.4 µs here, where reading 64 KiB again took 37 µs.
 */
export function checksumCombine(crcA: number, crcB: number, lengthB: number): number {
  // x^(8 * lengthB), from x^0 (the top bit, reflected): a factor x^(2^(k+3)) per bit k of lengthB.
  let shift = 0x8000_0000 | 0;
  for (let n = lengthB >>> 0, k = 3; n !== 0; n >>>= 1, k++) {
    if ((n & 1) !== 0) shift = multiplyModP(X2N_TABLE[k & 31] as number, shift);
  }
  return (multiplyModP(shift, crcA) ^ crcB) >>> 0;
}

/**
 * Entries of at least this many bytes are folded into a running CRC by `checksumCombine` with
 * their own CRC: a combine took 0.4 µs here, zlib's CRC of 1 KiB about 0.9 µs (4 KiB 3.0, 64 KiB 37).
 */
const COMBINE_MIN_BYTES = 1024;

/**
 * `checksum(bytes, initial)` of bytes that are whole entries one after another (a group commit's
 * write): an entry of `COMBINE_MIN_BYTES` or more is not read again, its own CRC (of its bytes
 * after the CRC field) is combined in. Bytes that do not parse as whole entries are read.
 */
export function checksumEntries(bytes: Buffer, initial = 0): number {
  let crc = initial;
  let at = 0;
  while (at < bytes.length) {
    const length = at + 8 <= bytes.length ? bytes.readUInt32LE(at + 4) : 0;
    if (length < ENTRY_HEADER_BYTES || at + length > bytes.length) return checksumRange(bytes, at, bytes.length, crc);
    if (length >= COMBINE_MIN_BYTES) {
      crc = checksumCombine(checksumRange(bytes, at, at + 4, crc), bytes.readUInt32LE(at), length - 4);
    } else {
      crc = checksumRange(bytes, at, at + length, crc);
    }
    at += length;
  }
  return crc;
}

// ---------------------------------------------------------------------------------------------
// Segment header (32 bytes)
//   0  magic "SILTSEG\0"     8
//   8  format version u16    2
//  10  flags u16 (0)         2
//  12  segment id u32        4
//  16  base revision u64     8   the store's revision counter when the segment was created
//  24  reserved u32 (0)      4
//  28  crc32 of bytes 0..28  4

export interface SegmentHeader {
  segmentId: number;
  baseRevision: number;
}

export function encodeSegmentHeader(header: SegmentHeader): Buffer {
  const buffer = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(buffer, 0);
  buffer.writeUInt16LE(FORMAT_VERSION, 8);
  buffer.writeUInt16LE(0, 10);
  buffer.writeUInt32LE(header.segmentId, 12);
  writeUint64(buffer, header.baseRevision, 16);
  buffer.writeUInt32LE(checksum(buffer.subarray(0, 28)), 28);
  return buffer;
}

/**
 * The version of a segment header whose magic is silt's, when it is not the one this silt
 * writes: a header is written whole before any record, so that is another silt's segment (or
 * damage no crash leaves), never a creation cut short.
 */
export function foreignSegmentVersion(buffer: Buffer): number | undefined {
  if (buffer.length < SEGMENT_HEADER_BYTES || !buffer.subarray(0, 8).equals(SEGMENT_MAGIC)) return undefined;
  const version = buffer.readUInt16LE(8);
  return version === FORMAT_VERSION ? undefined : version;
}

/** Validates magic, then version, then checksum (in that order); returns a reason on failure. */
export function decodeSegmentHeader(buffer: Buffer): SegmentHeader | string {
  if (buffer.length < SEGMENT_HEADER_BYTES) return 'short header';
  if (!buffer.subarray(0, 8).equals(SEGMENT_MAGIC)) return 'bad magic';
  const version = buffer.readUInt16LE(8);
  if (version !== FORMAT_VERSION) return `unsupported format version ${version}`;
  if (checksum(buffer.subarray(0, 28)) !== buffer.readUInt32LE(28)) return 'header checksum mismatch';
  return { segmentId: buffer.readUInt32LE(12), baseRevision: readUint64(buffer, 16) };
}

// ---------------------------------------------------------------------------------------------
// Entry
//   0  crc32 of bytes 4..length  u32
//   4  length (whole entry)      u32
//   8  type                      u8
//   9  flags                     u8
//  10  key length                u16
//  12  revision                  u64
//  20  [expires at, ms]          u64   iff flags & EXPIRES
//  ..  key bytes, then value bytes (the rest of the entry)

/** The entry types that change a key: the three kinds of record the index applies. */
export type KeyEntryType = typeof EntryType.PUT | typeof EntryType.DELETE | typeof EntryType.PUT_REFERENCE | typeof EntryType.PUT_OBJECT | typeof EntryType.PUT_OBJECT_DELTA;

export function isKeyEntryType(type: number): type is KeyEntryType {
  return type === EntryType.PUT || type === EntryType.DELETE || type === EntryType.PUT_REFERENCE || type === EntryType.PUT_OBJECT || type === EntryType.PUT_OBJECT_DELTA;
}

export interface EntryInput {
  type: KeyEntryType;
  /** The key's bytes, or the key as a binary string (one char per byte, as the store keeps keys). */
  key: Uint8Array | string;
  value?: Uint8Array;
  revision: number;
  expiresAtMs?: number;
}

export function entryLength(key: Uint8Array | string, value: Uint8Array | undefined, expires: boolean): number {
  return ENTRY_HEADER_BYTES + (expires ? EXPIRY_FIELD_BYTES : 0) + key.length + (value?.length ?? 0);
}

const latin1Write = (Buffer.prototype as unknown as { latin1Write: (this: Buffer, text: string, offset: number, length: number) => number }).latin1Write;

/** Encode one PUT or DELETE entry into `target` at `offset`; returns the entry's length. */
export function encodeEntry(target: Buffer, offset: number, input: EntryInput): number {
  const expires = input.expiresAtMs !== undefined;
  const length = entryLength(input.key, input.value, expires);
  target.writeUInt32LE(length, offset + 4);
  target[offset + 8] = input.type;
  target[offset + 9] = expires ? EntryFlag.EXPIRES : 0;
  target.writeUInt16LE(input.key.length, offset + 10);
  writeUint64(target, input.revision, offset + 12);
  let cursor = offset + ENTRY_HEADER_BYTES;
  if (expires) {
    writeUint64(target, input.expiresAtMs as number, cursor);
    cursor += EXPIRY_FIELD_BYTES;
  }
  // A binary-string key is written straight into the entry (no Buffer made for it first).
  if (typeof input.key === 'string') latin1Write.call(target, input.key, cursor, input.key.length);
  else target.set(input.key, cursor);
  cursor += input.key.length;
  if (input.value) target.set(input.value, cursor);
  target.writeUInt32LE(checksumRange(target, offset + 4, offset + length), offset);
  return length;
}

/** Batch frame: an entry header (key length 0, flags 0) then a u32 count, then the inner entries. */
export const BATCH_HEADER_BYTES = ENTRY_HEADER_BYTES + 4;

export function encodeBatchHeader(target: Buffer, offset: number, length: number, revision: number, count: number): void {
  target.writeUInt32LE(length, offset + 4);
  target[offset + 8] = EntryType.BATCH;
  target[offset + 9] = 0;
  target.writeUInt16LE(0, offset + 10);
  writeUint64(target, revision, offset + 12);
  target.writeUInt32LE(count, offset + 20);
}

/** Called once the inner entries are in place. */
export function sealBatch(target: Buffer, offset: number, length: number): void {
  target.writeUInt32LE(checksumRange(target, offset + 4, offset + length), offset);
}

/** A decoded PUT or DELETE; `key` and `value` are views into the source buffer. */
export interface DecodedEntry {
  type: KeyEntryType;
  revision: number;
  expiresAtMs: number | undefined;
  key: Buffer;
  value: Buffer | undefined;
  /** Offset of the entry in the source buffer, and its length. */
  offsetBytes: number;
  lengthBytes: number;
}

export type EntryCheck =
  | { ok: true; type: EntryType; lengthBytes: number }
  /**
   * `checked`: the framing and CRC hold, only the type or flags are unknown. A torn or partly
   * written entry fails its CRC; such an entry was written whole, by a silt that knows more.
   */
  | { ok: false; reason: string; checked?: boolean };

/** Check the framing and CRC of the entry at `offset` (does not descend into batches). */
export function checkEntry(buffer: Buffer, offset: number, end = buffer.length): EntryCheck {
  if (end - offset < ENTRY_HEADER_BYTES) return { ok: false, reason: 'truncated header' };
  const length = buffer.readUInt32LE(offset + 4);
  if (length < ENTRY_HEADER_BYTES) return { ok: false, reason: `length ${length} below header size` };
  if (length > end - offset) return { ok: false, reason: `length ${length} runs past the end` };
  if (checksumRange(buffer, offset + 4, offset + length) !== buffer.readUInt32LE(offset)) {
    return { ok: false, reason: 'checksum mismatch' };
  }
  const type = buffer[offset + 8] as number;
  if ((type < EntryType.PUT || type > EntryType.PUT_OBJECT) && type !== EntryType.BLOCK && type !== EntryType.PUT_OBJECT_DELTA) return { ok: false, reason: `unknown type ${type}`, checked: true };
  const flags = buffer[offset + 9] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0) return { ok: false, reason: `unknown flags ${flags}`, checked: true };
  return { ok: true, type: type as EntryType, lengthBytes: length };
}

/** Decode a PUT/DELETE whose framing and CRC were already checked; a reason string if malformed. */
export function decodeCheckedEntry(buffer: Buffer, offset: number, length: number): DecodedEntry | string {
  const type = buffer[offset + 8] as number;
  if (!isKeyEntryType(type)) return `type ${type} is not a put or delete`;
  const flags = buffer[offset + 9] as number;
  const keyLength = buffer.readUInt16LE(offset + 10);
  const revision = readUint64(buffer, offset + 12);
  let cursor = offset + ENTRY_HEADER_BYTES;
  let expiresAtMs: number | undefined;
  if (flags & EntryFlag.EXPIRES) {
    if (cursor + EXPIRY_FIELD_BYTES > offset + length) return 'expiry field runs past the entry';
    expiresAtMs = readUint64(buffer, cursor);
    cursor += EXPIRY_FIELD_BYTES;
  }
  if (cursor + keyLength > offset + length) return 'key runs past the entry';
  const key = buffer.subarray(cursor, cursor + keyLength);
  cursor += keyLength;
  if (type === EntryType.DELETE && cursor !== offset + length) return 'delete entry carries a value';
  const value = type === EntryType.DELETE ? undefined : buffer.subarray(cursor, offset + length);
  if (type === EntryType.PUT_REFERENCE && typeof decodeReference(value as Buffer) === 'string') return 'malformed value reference';
  if (type === EntryType.PUT_OBJECT) {
    const manifest = decodeManifest(value as Buffer);
    if (typeof manifest === 'string') return `malformed object manifest: ${manifest}`;
  }
  if (type === EntryType.PUT_OBJECT_DELTA) {
    const delta = decodeDelta(value as Buffer);
    if (typeof delta === 'string') return `malformed object delta: ${delta}`;
  }
  return { type, revision, expiresAtMs, key, value, offsetBytes: offset, lengthBytes: length };
}

/**
 * The get path's check of the PUT entry of exactly `length` bytes at `offset` (standalone or inside
 * a batch: inner entries carry their own CRC), allocating nothing but the CRC's view: its length
 * field, its CRC (skipped iff `crcChecked`, which the caller may pass only when these very bytes
 * already passed this check and cannot have changed since), type PUT, known flags, and that it is
 * at `revision` with a key of `keyLength` bytes that fits. Returns the offset of the key (the
 * value runs from the key's end to the entry's end), or the reason the entry is not that put.
 * PUT_REFERENCE entries go through `decodeEntry`.
 */
export function checkPutEntry(buffer: Buffer, offset: number, length: number, revision: number, keyLength: number, crcChecked: boolean): number | string {
  if (length < ENTRY_HEADER_BYTES) return `length ${length} below header size`;
  if (offset + length > buffer.length) return 'entry runs past the end of the file';
  const recorded = buffer.readUInt32LE(offset + 4);
  if (recorded !== length) return `entry length ${recorded} differs from the index's ${length}`;
  if (!crcChecked && checksumRange(buffer, offset + 4, offset + length) !== buffer.readUInt32LE(offset)) return 'checksum mismatch';
  const type = buffer[offset + 8] as number;
  if (type !== EntryType.PUT) return `expected a put entry, found type ${type}`;
  const flags = buffer[offset + 9] as number;
  if ((flags & ~KNOWN_FLAGS) !== 0) return `unknown flags ${flags}`;
  if (buffer.readUInt16LE(offset + 10) !== keyLength || readUint64(buffer, offset + 12) !== revision) return 'entry does not hold the key the index expects';
  const keyAt = offset + ENTRY_HEADER_BYTES + (flags & EntryFlag.EXPIRES ? EXPIRY_FIELD_BYTES : 0);
  if (keyAt + keyLength > offset + length) return 'key runs past the entry';
  return keyAt;
}

/** Bytes of a BLOCK entry carrying `dataBytes` bytes. */
export function blockEntryLength(dataBytes: number): number {
  return ENTRY_HEADER_BYTES + BLOCK_HASH_BYTES + dataBytes;
}

const BLOCK_HASH_BYTES = 32;

/** Encode a BLOCK entry (key = `hash`, the SHA-256 of `data`) into `target` at `offset`; returns its length. */
export function encodeBlockEntry(target: Buffer, offset: number, hash: Uint8Array, data: Uint8Array, revision: number): number {
  const length = blockEntryLength(data.length);
  target.writeUInt32LE(length, offset + 4);
  target[offset + 8] = EntryType.BLOCK;
  target[offset + 9] = 0;
  target.writeUInt16LE(BLOCK_HASH_BYTES, offset + 10);
  writeUint64(target, revision, offset + 12);
  target.set(hash, offset + ENTRY_HEADER_BYTES);
  target.set(data, offset + ENTRY_HEADER_BYTES + BLOCK_HASH_BYTES);
  target.writeUInt32LE(checksumRange(target, offset + 4, offset + length), offset);
  return length;
}

/** A decoded BLOCK entry; `hash` and `data` are views into the source buffer. */
export interface DecodedBlockEntry {
  hash: Buffer;
  data: Buffer;
  revision: number;
  offsetBytes: number;
  lengthBytes: number;
}

/**
 * Decode a BLOCK entry whose framing and CRC were already checked (`checkEntry`): flags 0, a
 * 32-byte key (the hash) and at least one byte of data. The data is not hashed here (the CRC
 * covers it; `verify()` hashes it). A reason string if malformed.
 */
export function decodeBlockEntry(buffer: Buffer, offset: number, length: number): DecodedBlockEntry | string {
  if (buffer[offset + 8] !== EntryType.BLOCK) return `expected a block entry, found type ${buffer[offset + 8] as number}`;
  if (buffer[offset + 9] !== 0) return 'a block entry has flags';
  if (buffer.readUInt16LE(offset + 10) !== BLOCK_HASH_BYTES) return 'a block entry key is not a 32-byte hash';
  if (length <= ENTRY_HEADER_BYTES + BLOCK_HASH_BYTES) return 'a block entry carries no data';
  const hashAt = offset + ENTRY_HEADER_BYTES;
  return {
    hash: buffer.subarray(hashAt, hashAt + BLOCK_HASH_BYTES),
    data: buffer.subarray(hashAt + BLOCK_HASH_BYTES, offset + length),
    revision: readUint64(buffer, offset + 12),
    offsetBytes: offset,
    lengthBytes: length,
  };
}

/** Check and decode a standalone PUT/DELETE entry (the read path); a reason string on failure. */
export function decodeEntry(buffer: Buffer, offset = 0, end = buffer.length): DecodedEntry | string {
  const check = checkEntry(buffer, offset, end);
  if (!check.ok) return check.reason;
  return decodeCheckedEntry(buffer, offset, check.lengthBytes);
}

/**
 * Decode the inner entries of a batch frame already checked by `checkEntry`. The frame is valid
 * iff its inner entries are valid PUT/DELETEs with the frame's revision that exactly fill it.
 */
export function decodeBatch(buffer: Buffer, offset: number, length: number): DecodedEntry[] | string {
  if (length < BATCH_HEADER_BYTES) return 'batch frame shorter than its header';
  const revision = readUint64(buffer, offset + 12);
  const count = buffer.readUInt32LE(offset + 20);
  const end = offset + length;
  const entries: DecodedEntry[] = [];
  let cursor = offset + BATCH_HEADER_BYTES;
  for (let index = 0; index < count; index++) {
    const inner = decodeEntry(buffer, cursor, end);
    if (typeof inner === 'string') return `batch entry ${index}: ${inner}`;
    if (inner.revision !== revision) return `batch entry ${index}: revision differs from the batch`;
    entries.push(inner);
    cursor += inner.lengthBytes;
  }
  if (cursor !== end) return 'batch entries do not fill the frame';
  return entries;
}

// ---------------------------------------------------------------------------------------------
// Value reference (the value of a PUT_REFERENCE entry): a large value held in the block store.
//   0  size of the value in bytes u64
//   8  block size u32            every block but the last holds exactly this many bytes
//  12  block count u32           = ceil(size / block size)
//  16  SHA-256 of the whole value, 32 bytes (the value's digest)
//  48  SHA-256 of each block, 32 bytes each, in order

export const REFERENCE_HEADER_BYTES = 48;
const HASH_BYTES = 32;

export interface ValueReference {
  sizeBytes: number;
  blockBytes: number;
  /** SHA-256 of the whole value. */
  digest: Buffer;
  /** The blocks' hashes, 32 bytes each, concatenated. */
  blockHashes: Buffer;
}

export function referenceBlockCount(reference: ValueReference): number {
  return reference.blockHashes.length / HASH_BYTES;
}

export function referenceBlockHash(reference: ValueReference, index: number): Buffer {
  return reference.blockHashes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES);
}

/** Bytes of block `index` of the value. */
export function referenceBlockLength(reference: ValueReference, index: number): number {
  return Math.min(reference.blockBytes, reference.sizeBytes - index * reference.blockBytes);
}

export function encodeReference(reference: ValueReference): Buffer {
  const buffer = Buffer.allocUnsafe(REFERENCE_HEADER_BYTES + reference.blockHashes.length);
  writeUint64(buffer, reference.sizeBytes, 0);
  buffer.writeUInt32LE(reference.blockBytes, 8);
  buffer.writeUInt32LE(reference.blockHashes.length / HASH_BYTES, 12);
  reference.digest.copy(buffer, 16);
  reference.blockHashes.copy(buffer, REFERENCE_HEADER_BYTES);
  return buffer;
}

/** A reference is valid iff its block count matches its size and block size and the hashes fill it. */
export function decodeReference(value: Buffer): ValueReference | string {
  if (value.length < REFERENCE_HEADER_BYTES) return 'reference too short';
  const sizeBytes = readUint64(value, 0);
  const blockBytes = value.readUInt32LE(8);
  const count = value.readUInt32LE(12);
  if (blockBytes === 0 || count !== Math.ceil(sizeBytes / blockBytes)) return 'reference block count does not match its size';
  if (value.length !== REFERENCE_HEADER_BYTES + count * HASH_BYTES) return 'reference hashes do not fill it';
  return {
    sizeBytes,
    blockBytes,
    digest: Buffer.from(value.subarray(16, 48)),
    blockHashes: Buffer.from(value.subarray(REFERENCE_HEADER_BYTES)),
  };
}

// ---------------------------------------------------------------------------------------------
// Footer: an entry of type FOOTER (key length 0, revision = max revision), whose value area holds
//   0  entry count u32     (puts + deletes, counting those inside batches)
//   4  put count u32
//   8  delete count u32
//  12  min revision u64
//  20  max revision u64
//  28  data crc32 u32     (of every byte from the end of the header to the footer)
//  32  min key length u16, min key, max key length u16, max key
// followed by the 16-byte trailer: footer offset u64, then "SILTEND\0".

export interface SegmentSummary {
  entryCount: number;
  putCount: number;
  deleteCount: number;
  minRevision: number;
  maxRevision: number;
  dataChecksum: number;
  minKey: Buffer | undefined;
  maxKey: Buffer | undefined;
}

export function encodeFooter(summary: SegmentSummary, footerOffset: number): Buffer {
  const minKey = summary.minKey ?? Buffer.alloc(0);
  const maxKey = summary.maxKey ?? Buffer.alloc(0);
  const bodyBytes = 32 + 2 + minKey.length + 2 + maxKey.length;
  const length = ENTRY_HEADER_BYTES + bodyBytes;
  const buffer = Buffer.alloc(length + SEGMENT_TRAILER_BYTES);
  buffer.writeUInt32LE(length, 4);
  buffer[8] = EntryType.FOOTER;
  buffer[9] = 0;
  buffer.writeUInt16LE(0, 10);
  writeUint64(buffer, summary.maxRevision, 12);
  let cursor = ENTRY_HEADER_BYTES;
  buffer.writeUInt32LE(summary.entryCount, cursor);
  buffer.writeUInt32LE(summary.putCount, cursor + 4);
  buffer.writeUInt32LE(summary.deleteCount, cursor + 8);
  writeUint64(buffer, summary.minRevision, cursor + 12);
  writeUint64(buffer, summary.maxRevision, cursor + 20);
  buffer.writeUInt32LE(summary.dataChecksum >>> 0, cursor + 28);
  cursor += 32;
  buffer.writeUInt16LE(minKey.length, cursor);
  minKey.copy(buffer, cursor + 2);
  cursor += 2 + minKey.length;
  buffer.writeUInt16LE(maxKey.length, cursor);
  maxKey.copy(buffer, cursor + 2);
  buffer.writeUInt32LE(checksum(buffer.subarray(4, length)), 0);
  writeUint64(buffer, footerOffset, length);
  SEGMENT_TRAILER_MAGIC.copy(buffer, length + 8);
  return buffer;
}

/** Decode a footer entry already checked by `checkEntry`. */
export function decodeFooter(buffer: Buffer, offset: number, length: number): SegmentSummary | string {
  const body = offset + ENTRY_HEADER_BYTES;
  const end = offset + length;
  if (body + 36 > end) return 'footer too short';
  const minKeyLength = buffer.readUInt16LE(body + 32);
  const maxKeyAt = body + 34 + minKeyLength;
  if (maxKeyAt + 2 > end) return 'footer min key runs past the footer';
  const maxKeyLength = buffer.readUInt16LE(maxKeyAt);
  if (maxKeyAt + 2 + maxKeyLength !== end) return 'footer keys do not fill the footer';
  const entryCount = buffer.readUInt32LE(body);
  return {
    entryCount,
    putCount: buffer.readUInt32LE(body + 4),
    deleteCount: buffer.readUInt32LE(body + 8),
    minRevision: readUint64(buffer, body + 12),
    maxRevision: readUint64(buffer, body + 20),
    dataChecksum: buffer.readUInt32LE(body + 28),
    minKey: entryCount === 0 ? undefined : Buffer.from(buffer.subarray(body + 34, body + 34 + minKeyLength)),
    maxKey: entryCount === 0 ? undefined : Buffer.from(buffer.subarray(maxKeyAt + 2, maxKeyAt + 2 + maxKeyLength)),
  };
}

/** Parse a trailer (the last 16 bytes of a sealed segment); the footer offset, or undefined. */
export function decodeTrailer(buffer: Buffer): number | undefined {
  if (buffer.length !== SEGMENT_TRAILER_BYTES) return undefined;
  if (!buffer.subarray(8, 16).equals(SEGMENT_TRAILER_MAGIC)) return undefined;
  return readUint64(buffer, 0);
}

/** The file name of a segment: 16 hex digits, so names sort in id order. */
export function segmentFileName(segmentId: number): string {
  return `${segmentId.toString(16).padStart(16, '0')}.log`;
}

const SEGMENT_NAME = /^([0-9a-f]{16})\.log$/;

export function parseSegmentFileName(name: string): number | undefined {
  const match = SEGMENT_NAME.exec(name);
  return match ? Number.parseInt(match[1] as string, 16) : undefined;
}
