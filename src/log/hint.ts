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
import type { ObjectManifest } from './object.js';

export const HINT_FILE_NAME = 'index.hint';
export const HINT_TEMPORARY_FILE_NAME = 'index.hint.tmp';
export const HINT_MAGIC = Buffer.from('SILTHNT\0', 'latin1');
export const HINT_VERSION = 1;
export const HINT_HEADER_BYTES = 40;
const HINT_ENTRY_FIXED_BYTES = 23;
const HINT_FLAG_EXPIRES = 1;
/** The entry is a PUT_REFERENCE: open reads it to learn the blocks it references. */
const HINT_FLAG_REFERENCE = 2;
/** The entry is a PUT_OBJECT: open reads it to learn the object's manifest (and its blocks). */
const HINT_FLAG_OBJECT = 4;
/** The entry is a block carried in the log (a BLOCK entry): its key is the block's SHA-256. */
const HINT_FLAG_BLOCK = 8;
const BLOCK_KEY_BYTES = 32;
const CHUNK_BYTES = 1 << 20;

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
    for (const [key, location] of entries) {
      const needed = HINT_ENTRY_FIXED_BYTES + 8 + key.length;
      if (used + needed > chunk.length) {
        await flushChunk();
        if (needed > chunk.length) chunk = Buffer.allocUnsafe(needed);
      }
      const expires = location.expiresAtMs !== undefined;
      chunk.writeUInt16LE(key.length, used);
      chunk[used + 2] = (expires ? HINT_FLAG_EXPIRES : 0) | (location.reference !== undefined ? HINT_FLAG_REFERENCE : 0) | (location.object !== undefined ? HINT_FLAG_OBJECT : 0);
      chunk.writeUInt32LE(location.segmentId, used + 3);
      chunk.writeUInt32LE(location.offsetBytes, used + 7);
      chunk.writeUInt32LE(location.lengthBytes, used + 11);
      writeUint64(chunk, location.revision, used + 15);
      used += HINT_ENTRY_FIXED_BYTES;
      if (expires) {
        writeUint64(chunk, location.expiresAtMs as number, used);
        used += 8;
      }
      used += chunk.write(key, used, 'latin1');
      entryCount++;
    }
    // Then the blocks carried in the log that live values reference, by increasing hash.
    for (const [hex, location] of [...blocks].sort((left, right) => (left[0] < right[0] ? -1 : left[0] > right[0] ? 1 : 0))) {
      const needed = HINT_ENTRY_FIXED_BYTES + BLOCK_KEY_BYTES;
      if (used + needed > chunk.length) await flushChunk();
      chunk.writeUInt16LE(BLOCK_KEY_BYTES, used);
      chunk[used + 2] = HINT_FLAG_BLOCK;
      chunk.writeUInt32LE(location.segmentId, used + 3);
      chunk.writeUInt32LE(location.offsetBytes, used + 7);
      chunk.writeUInt32LE(location.lengthBytes, used + 11);
      writeUint64(chunk, location.revision, used + 15);
      used += HINT_ENTRY_FIXED_BYTES;
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
  if (version !== HINT_VERSION) return `unsupported version ${version}`;
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
  for (let index = 0; index < entryCount; index++) {
    if (cursor + HINT_ENTRY_FIXED_BYTES > entriesEnd) return 'entries run past the end';
    const keyLength = bytes.readUInt16LE(cursor);
    const flags = bytes[cursor + 2] as number;
    const expires = flags & HINT_FLAG_EXPIRES;
    const segmentId = bytes.readUInt32LE(cursor + 3);
    const offsetBytes = bytes.readUInt32LE(cursor + 7);
    const lengthBytes = bytes.readUInt32LE(cursor + 11);
    const revision = readUint64(bytes, cursor + 15);
    cursor += HINT_ENTRY_FIXED_BYTES;
    let expiresAtMs: number | undefined;
    if (expires) {
      expiresAtMs = readUint64(bytes, cursor);
      cursor += 8;
    }
    if (cursor + keyLength > entriesEnd) return 'key runs past the end';
    if (flags & HINT_FLAG_BLOCK) {
      // Block entries follow every key entry, by strictly increasing hash.
      if (flags !== HINT_FLAG_BLOCK || keyLength !== BLOCK_KEY_BYTES) return 'malformed block entry';
      const hex = bytes.toString('hex', cursor, cursor + keyLength);
      cursor += keyLength;
      if (previousBlock !== undefined && !(previousBlock < hex)) return 'block entries out of order';
      previousBlock = hex;
      segmentIds.add(segmentId);
      blocks.push([hex, { segmentId, offsetBytes, lengthBytes, revision }]);
      continue;
    }
    if (previousBlock !== undefined) return 'a key entry after a block entry';
    const key = bytes.toString('latin1', cursor, cursor + keyLength);
    cursor += keyLength;
    if (previousKey !== undefined && !(previousKey < key)) return 'keys out of order';
    previousKey = key;
    if (expiresAtMs !== undefined && expiresAtMs <= nowMs) continue;
    if (segmentId !== lastSegmentId) {
      segmentIds.add(segmentId);
      lastSegmentId = segmentId;
    }
    liveBytes += lengthBytes;
    if (flags & HINT_FLAG_REFERENCE) referencePositions.push(kept);
    if (flags & HINT_FLAG_OBJECT) objectPositions.push(kept);
    keys[kept] = key;
    locations[kept] = { segmentId, offsetBytes, lengthBytes, revision, expiresAtMs };
    kept++;
  }
  if (cursor !== entriesEnd) return 'entries do not fill the file';
  keys.length = kept;
  locations.length = kept;
  return { position, keys, locations, liveBytes, segmentIds, referencePositions, objectPositions, blocks };
}
