/**
 * The index checkpoint ("hint" file): every live key with its location, sorted, as of a position
 * in the log, so that open loads it and replays only the log after that position.
 *
 * Invariants:
 * - The file is written under a temporary name, synced, renamed over `index.hint`, and the
 *   directory is synced: a reader sees the old checkpoint or the new one, never a mix.
 * - It only covers log bytes that were durable before it was written (the writer seals or syncs
 *   first), so replaying from its position never misses an acknowledged write.
 * - It is an optimisation: a checkpoint that fails any check is ignored and the log is replayed.
 */
import type { FileSystem } from '../fs/types.js';
import { checksum, readUint64, writeUint64, type ValueReference } from './format.js';
import { applyDelta, decodeDelta, type ObjectManifest } from './object.js';

export const HINT_FILE_NAME = 'index.hint';
export const HINT_TEMPORARY_FILE_NAME = 'index.hint.tmp';
export const HINT_MAGIC = Buffer.from('SILTHNT\0', 'latin1');
/**
 * 3: entries of varints, each key stored as what it shares with the one before and the rest
 * (doc/format.md). 2: entries of fixed fields that may carry a chain (flag 16); 1: the same
 * without chains. Versions 1 and 2 are read too.
 */
export const HINT_VERSION = 3;
export const HINT_HEADER_BYTES = 40;
/** Versions 1 and 2: the fixed fields of an entry before its expiry, chain and key. */
const HINT_ENTRY_FIXED_BYTES = 23;
/** Version 3: the most an entry's fields take before its key bytes (flags, nine varints). */
const HINT_ENTRY_MAX_FIELD_BYTES = 1 + 9 * 8;
const MAX_KEY_BYTES = 0xffff;
const HINT_FLAG_EXPIRES = 1;
/** The entry is a PUT_REFERENCE: open reads it to learn the blocks it references. */
const HINT_FLAG_REFERENCE = 2;
/** The entry is a PUT_OBJECT: open reads it to learn the object's manifest (and its blocks). */
const HINT_FLAG_OBJECT = 4;
/** The entry is a block carried in the log (a BLOCK entry): its key is the block's SHA-256. */
const HINT_FLAG_BLOCK = 8;
/** The entry is a PUT_OBJECT_DELTA: chain start u32 and chain bytes u32 follow (after the expiry, if any). */
const HINT_FLAG_CHAIN = 16;
const CHAIN_FIELD_BYTES = 8;
const BLOCK_KEY_BYTES = 32;
const CHUNK_BYTES = 1 << 20;

/** Write `value` (a safe integer, not negative) as a LEB128 varint at `offset`; returns the end. */
function writeVarint(target: Buffer, value: number, offset: number): number {
  let rest = value;
  let at = offset;
  while (rest >= 0x80) {
    target[at++] = (rest % 0x80) | 0x80;
    rest = Math.floor(rest / 0x80);
  }
  target[at++] = rest;
  return at;
}

/** Where the last `readVarint` that succeeded ended. */
let varintEnd = 0;

/**
 * The LEB128 varint at `offset` (at most 8 bytes, at most 2^53 - 1), its end left in
 * `varintEnd`; -1 if it runs past `end`, is longer, or is larger.
 */
function readVarint(bytes: Buffer, offset: number, end: number): number {
  // Up to four bytes (below 2^28) with integer operations, so that a small value is a small
  // integer for V8: locations loaded from a checkpoint and those a replay builds (`readUint64`)
  // must share one field representation, or V8 migrates millions of them at first access.
  let value = 0;
  let at = offset;
  for (let shift = 0; shift < 28; shift += 7, at++) {
    if (at >= end) return -1;
    const byte = bytes[at] as number;
    value |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      varintEnd = at + 1;
      return value;
    }
  }
  let scale = 0x10000000;
  for (; at < offset + 8; at++, scale *= 0x80) {
    if (at >= end) return -1;
    const byte = bytes[at] as number;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      varintEnd = at + 1;
      return value <= Number.MAX_SAFE_INTEGER ? value : -1;
    }
  }
  return -1;
}

/** How many leading characters `key` shares with `previous` (latin1 strings: one byte each). */
function sharedPrefix(previous: string, key: string): number {
  const limit = Math.min(previous.length, key.length);
  let shared = 0;
  while (shared < limit && previous.charCodeAt(shared) === key.charCodeAt(shared)) shared++;
  return shared;
}

/** Where an entry lives in the log, and what the index needs to know about it. */
export interface EntryLocation {
  segmentId: number;
  offsetBytes: number;
  lengthBytes: number;
  revision: number;
  expiresAtMs: number | undefined;
  /** Present iff the value is held in the block store. */
  reference?: ValueReference;
  /** Present iff the value is an object (chunks of slices of blocks); the decoded manifest. */
  object?: ObjectManifest;
  /**
   * Present iff the entry is a PUT_OBJECT_DELTA: the key's record is a chain, a full manifest at
   * `chainStartBytes` of the same segment and the deltas after it up to this entry, and
   * `chainBytes` is the bytes of the chain's earlier entries (they are live while this one is).
   */
  chainStartBytes?: number;
  chainBytes?: number;
  /**
   * Not state but a memo of a check (see `Store.readValue`): the key that the inline PUT entry at
   * this location was found to hold when it was read and checked in full (CRC, type, length,
   * revision, key bytes), as the index's own string for it; `undefined` until then. For a value
   * in blocks, the key its PUT_REFERENCE or PUT_OBJECT entry was found to hold by such a check
   * (`Store.readAt`, which then skips it). Every new location starts with `undefined`, including
   * one copied from another (a moved entry is checked again at its new place).
   */
  verifiedKey: string | undefined;
}

/** The live log bytes a location holds: its entry's, and those of the earlier entries of its chain. */
export function liveLength(location: EntryLocation): number {
  return location.lengthBytes + (location.chainBytes ?? 0);
}

/**
 * The location of the PUT_OBJECT_DELTA entry at `location` (segment, offset, length, revision),
 * applied on top of `current`, the key's location before it: the object with the delta's slices
 * appended, and the chain grown by `current`'s entries. A reason string if it does not apply (no
 * object before it in the same segment, or one at another revision).
 */
export function deltaLocation(current: EntryLocation | undefined, location: EntryLocation, value: Buffer): EntryLocation | string {
  const delta = decodeDelta(value);
  if (typeof delta === 'string') return delta;
  if (current?.object === undefined || current.segmentId !== location.segmentId || current.offsetBytes !== delta.baseOffsetBytes || delta.baseOffsetBytes >= location.offsetBytes) {
    return `an object delta on the record at offset ${delta.baseOffsetBytes}, which is not the key's record before it in its segment`;
  }
  if (current.revision !== delta.baseRevision) return `an object delta on revision ${delta.baseRevision}, but the key is at revision ${current.revision}`;
  const object = applyDelta(current.object, delta);
  if (typeof object === 'string') return object;
  return { ...location, object, chainStartBytes: current.chainStartBytes ?? current.offsetBytes, chainBytes: liveLength(current), verifiedKey: undefined };
}

/** Where a block carried in the log (a BLOCK entry) lives. */
export interface LogBlockLocation {
  segmentId: number;
  offsetBytes: number;
  lengthBytes: number;
  revision: number;
}

export interface HintPosition {
  /** The log is covered up to this segment and offset (exclusive). */
  segmentId: number;
  offsetBytes: number;
  maxRevision: number;
}

/**
 * Write a checkpoint of `entries` (sorted by key, keys as latin1 strings) covering the log up to
 * `position`. Durable (file and name) on return.
 */
export async function writeHint(
  fs: FileSystem,
  directory: string,
  position: HintPosition,
  entries: Iterable<[string, EntryLocation]>,
  blocks: ReadonlyArray<[string, LogBlockLocation]> = [],
): Promise<{ entryCount: number; sizeBytes: number }> {
  const temporaryPath = `${directory}/${HINT_TEMPORARY_FILE_NAME}`;
  const handle = await fs.open(temporaryPath, 'overwrite');
  let entryCount = 0;
  let fileOffset = HINT_HEADER_BYTES;
  let entriesChecksum = 0;
  try {
    let chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    let used = 0;
    const flushChunk = async (): Promise<void> => {
      if (used === 0) return;
      const bytes = chunk.subarray(0, used);
      entriesChecksum = checksum(bytes, entriesChecksum);
      await handle.write(bytes, 0, used, fileOffset);
      fileOffset += used;
      // A fresh chunk: the write above may still be reading the old one on another thread.
      chunk = Buffer.allocUnsafe(CHUNK_BYTES);
      used = 0;
    };
    // Sorted keys share long prefixes (`user:000123`, `user:000124`): each is stored as the
    // length it shares with the key before it and the rest. With the numbers as varints, an entry
    // of a 14-byte key took 37 bytes in version 2 and takes about 15.
    let previousKey = '';
    for (const [key, location] of entries) {
      const needed = HINT_ENTRY_MAX_FIELD_BYTES + key.length;
      if (used + needed > chunk.length) {
        await flushChunk();
        if (needed > chunk.length) chunk = Buffer.allocUnsafe(needed);
      }
      const expires = location.expiresAtMs !== undefined;
      const chained = location.chainBytes !== undefined;
      chunk[used++] =
        (expires ? HINT_FLAG_EXPIRES : 0) | (location.reference !== undefined ? HINT_FLAG_REFERENCE : 0) | (location.object !== undefined ? HINT_FLAG_OBJECT : 0) | (chained ? HINT_FLAG_CHAIN : 0);
      const shared = sharedPrefix(previousKey, key);
      used = writeVarint(chunk, shared, used);
      used = writeVarint(chunk, key.length - shared, used);
      used = writeVarint(chunk, location.segmentId, used);
      used = writeVarint(chunk, location.offsetBytes, used);
      used = writeVarint(chunk, location.lengthBytes, used);
      used = writeVarint(chunk, location.revision, used);
      if (expires) used = writeVarint(chunk, location.expiresAtMs as number, used);
      if (chained) {
        used = writeVarint(chunk, location.chainStartBytes as number, used);
        used = writeVarint(chunk, location.chainBytes as number, used);
      }
      used += chunk.write(shared === 0 ? key : key.substring(shared), used, 'latin1');
      previousKey = key;
      entryCount++;
    }
    // Then the blocks carried in the log that live values reference, by increasing hash.
    for (const [hex, location] of [...blocks].sort((left, right) => (left[0] < right[0] ? -1 : left[0] > right[0] ? 1 : 0))) {
      const needed = HINT_ENTRY_MAX_FIELD_BYTES + BLOCK_KEY_BYTES;
      if (used + needed > chunk.length) await flushChunk();
      chunk[used++] = HINT_FLAG_BLOCK;
      used = writeVarint(chunk, 0, used);
      used = writeVarint(chunk, BLOCK_KEY_BYTES, used);
      used = writeVarint(chunk, location.segmentId, used);
      used = writeVarint(chunk, location.offsetBytes, used);
      used = writeVarint(chunk, location.lengthBytes, used);
      used = writeVarint(chunk, location.revision, used);
      used += chunk.write(hex, used, 'hex');
      entryCount++;
    }
    await flushChunk();
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32LE(entriesChecksum >>> 0, 0);
    await handle.write(trailer, 0, 4, fileOffset);
    fileOffset += 4;
    const header = Buffer.alloc(HINT_HEADER_BYTES);
    HINT_MAGIC.copy(header, 0);
    header.writeUInt16LE(HINT_VERSION, 8);
    header.writeUInt16LE(0, 10);
    header.writeUInt32LE(position.segmentId, 12);
    writeUint64(header, position.offsetBytes, 16);
    writeUint64(header, position.maxRevision, 24);
    header.writeUInt32LE(entryCount, 32);
    header.writeUInt32LE(checksum(header.subarray(0, 36)), 36);
    await handle.write(header, 0, HINT_HEADER_BYTES, 0);
    // The checkpoint's bytes are durable before its name replaces the old one.
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(temporaryPath, `${directory}/${HINT_FILE_NAME}`);
  // The rename is durable before anything (a segment's deletion, later) relies on the new checkpoint.
  await fs.syncDirectory(directory);
  return { entryCount, sizeBytes: fileOffset };
}

export interface LoadedHint {
  position: HintPosition;
  keys: string[];
  locations: EntryLocation[];
  /** Sum of the entries' lengths: the live log bytes the checkpoint describes. */
  liveBytes: number;
  /** Distinct segment ids the entries point into. */
  segmentIds: Set<number>;
  /** Positions (in `keys`) of entries whose values are block references, to be read at open. */
  referencePositions: number[];
  /** Positions (in `keys`) of entries whose values are objects, to be read at open. */
  objectPositions: number[];
  /** Blocks carried in the log that live values reference: hex hash and where. */
  blocks: Array<[string, LogBlockLocation]>;
}

/** Decode a checkpoint: magic, version, header checksum, then entries checksum; a reason on failure. */
export function decodeHint(bytes: Buffer, nowMs: number): LoadedHint | string {
  if (bytes.length < HINT_HEADER_BYTES + 4) return 'short file';
  if (!bytes.subarray(0, 8).equals(HINT_MAGIC)) return 'bad magic';
  const version = bytes.readUInt16LE(8);
  if (version !== HINT_VERSION && version !== 2 && version !== 1) return `unsupported version ${version}`;
  const varints = version >= 3;
  if (checksum(bytes.subarray(0, 36)) !== bytes.readUInt32LE(36)) return 'header checksum mismatch';
  const entriesEnd = bytes.length - 4;
  if (checksum(bytes.subarray(HINT_HEADER_BYTES, entriesEnd)) !== bytes.readUInt32LE(entriesEnd)) {
    return 'entries checksum mismatch';
  }
  const position: HintPosition = {
    segmentId: bytes.readUInt32LE(12),
    offsetBytes: readUint64(bytes, 16),
    maxRevision: readUint64(bytes, 24),
  };
  const entryCount = bytes.readUInt32LE(32);
  const keys: string[] = new Array(entryCount);
  const locations: EntryLocation[] = new Array(entryCount);
  const segmentIds = new Set<number>();
  const referencePositions: number[] = [];
  const objectPositions: number[] = [];
  let lastSegmentId = -1;
  let liveBytes = 0;
  let kept = 0;
  let cursor = HINT_HEADER_BYTES;
  let previousKey: string | undefined;
  const blocks: Array<[string, LogBlockLocation]> = [];
  let previousBlock: string | undefined;
  /** Version 3: the previous key's bytes, then this one's (its shared prefix is already there). */
  const keyBytes = varints ? Buffer.allocUnsafe(MAX_KEY_BYTES) : undefined;
  let previousKeyLength = 0;
  for (let index = 0; index < entryCount; index++) {
    let flags: number;
    let shared = 0;
    let keyLength: number;
    let segmentId: number;
    let offsetBytes: number;
    let lengthBytes: number;
    let revision: number;
    let expiresAtMs: number | undefined;
    let chainStartBytes: number | undefined;
    let chainBytes: number | undefined;
    if (varints) {
      if (cursor >= entriesEnd) return 'entries run past the end';
      flags = bytes[cursor++] as number;
      shared = readVarint(bytes, cursor, entriesEnd);
      const suffix = shared < 0 ? -1 : readVarint(bytes, varintEnd, entriesEnd);
      segmentId = suffix < 0 ? -1 : readVarint(bytes, varintEnd, entriesEnd);
      offsetBytes = segmentId < 0 ? -1 : readVarint(bytes, varintEnd, entriesEnd);
      lengthBytes = offsetBytes < 0 ? -1 : readVarint(bytes, varintEnd, entriesEnd);
      revision = lengthBytes < 0 ? -1 : readVarint(bytes, varintEnd, entriesEnd);
      if (revision < 0) return 'malformed entry';
      if (flags & HINT_FLAG_EXPIRES) {
        expiresAtMs = readVarint(bytes, varintEnd, entriesEnd);
        if (expiresAtMs < 0) return 'malformed expiry';
      }
      if (flags & HINT_FLAG_CHAIN) {
        chainStartBytes = readVarint(bytes, varintEnd, entriesEnd);
        chainBytes = chainStartBytes < 0 ? -1 : readVarint(bytes, varintEnd, entriesEnd);
        if (chainBytes < 0) return 'malformed chain entry';
      }
      cursor = varintEnd;
      if (shared > previousKeyLength || shared + suffix > MAX_KEY_BYTES) return 'key shares more than the key before it has';
      keyLength = shared + suffix;
    } else {
      if (cursor + HINT_ENTRY_FIXED_BYTES > entriesEnd) return 'entries run past the end';
      keyLength = bytes.readUInt16LE(cursor);
      flags = bytes[cursor + 2] as number;
      segmentId = bytes.readUInt32LE(cursor + 3);
      offsetBytes = bytes.readUInt32LE(cursor + 7);
      lengthBytes = bytes.readUInt32LE(cursor + 11);
      revision = readUint64(bytes, cursor + 15);
      cursor += HINT_ENTRY_FIXED_BYTES;
      if (flags & HINT_FLAG_EXPIRES) {
        if (cursor + 8 > entriesEnd) return 'entries run past the end';
        expiresAtMs = readUint64(bytes, cursor);
        cursor += 8;
      }
      if (flags & HINT_FLAG_CHAIN) {
        if (cursor + CHAIN_FIELD_BYTES > entriesEnd) return 'malformed chain entry';
        chainStartBytes = bytes.readUInt32LE(cursor);
        chainBytes = bytes.readUInt32LE(cursor + 4);
        cursor += CHAIN_FIELD_BYTES;
      }
    }
    if (flags & HINT_FLAG_CHAIN) {
      if (!(flags & HINT_FLAG_OBJECT)) return 'malformed chain entry';
      if (chainBytes === 0 || (chainStartBytes as number) + (chainBytes as number) > offsetBytes) return 'chain entry does not end before its record';
    }
    const stored = keyLength - shared;
    if (cursor + stored > entriesEnd) return 'key runs past the end';
    if (flags & HINT_FLAG_BLOCK) {
      // Block entries follow every key entry, by strictly increasing hash.
      if (flags !== HINT_FLAG_BLOCK || keyLength !== BLOCK_KEY_BYTES || shared !== 0) return 'malformed block entry';
      const hex = bytes.toString('hex', cursor, cursor + keyLength);
      cursor += keyLength;
      if (previousBlock !== undefined && !(previousBlock < hex)) return 'block entries out of order';
      previousBlock = hex;
      segmentIds.add(segmentId);
      blocks.push([hex, { segmentId, offsetBytes, lengthBytes, revision }]);
      continue;
    }
    if (previousBlock !== undefined) return 'a key entry after a block entry';
    let key: string;
    if (keyBytes !== undefined) {
      // A few bytes as a rule: a loop costs less than the call of a native copy.
      if (stored <= 32) for (let at = 0; at < stored; at++) keyBytes[shared + at] = bytes[cursor + at] as number;
      else bytes.copy(keyBytes, shared, cursor, cursor + stored);
      key = keyBytes.toString('latin1', 0, keyLength);
      previousKeyLength = keyLength;
    } else {
      key = bytes.toString('latin1', cursor, cursor + keyLength);
    }
    cursor += stored;
    if (previousKey !== undefined && !(previousKey < key)) return 'keys out of order';
    previousKey = key;
    // Expired inline values are left out; one with blocks stays, for the expiry sweep to remove
    // with a tombstone (see recovery.ts).
    if (expiresAtMs !== undefined && expiresAtMs <= nowMs && (flags & (HINT_FLAG_REFERENCE | HINT_FLAG_OBJECT)) === 0) continue;
    if (segmentId !== lastSegmentId) {
      segmentIds.add(segmentId);
      lastSegmentId = segmentId;
    }
    liveBytes += lengthBytes + (chainBytes ?? 0);
    if (flags & HINT_FLAG_REFERENCE) referencePositions.push(kept);
    if (flags & HINT_FLAG_OBJECT) objectPositions.push(kept);
    keys[kept] = key;
    const location: EntryLocation = { segmentId, offsetBytes, lengthBytes, revision, expiresAtMs, verifiedKey: undefined };
    if (chainBytes !== undefined) {
      location.chainStartBytes = chainStartBytes as number;
      location.chainBytes = chainBytes;
    }
    locations[kept] = location;
    kept++;
  }
  if (cursor !== entriesEnd) return 'entries do not fill the file';
  keys.length = kept;
  locations.length = kept;
  return { position, keys, locations, liveBytes, segmentIds, referencePositions, objectPositions, blocks };
}
