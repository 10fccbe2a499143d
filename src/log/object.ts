/**
 * The bytes of an object manifest (the value of a PUT_OBJECT entry), and the pure logic over it:
 * resolving overlapping slices by commit order, fragmentation measures, and light compaction.
 * doc/format.md is the prose version; keep them in step. No I/O here.
 *
 * Model (from JuiceFS/slayerfs): an object of `sizeBytes` is split into chunks of `chunkBytes`.
 * Each write adds one slice to every chunk it touches; a slice covers `[offsetBytes, offsetBytes +
 * lengthBytes)` of its chunk, and its bytes are `[skipBytes, skipBytes + lengthBytes)` of the
 * concatenation of its blocks (content-addressed, like a value reference's). A chunk's slices are
 * kept in commit order, oldest first: where slices overlap, the later one in the list wins. No slice
 * carries an ID; list order is the only order, so nothing can disagree with commit order.
 * Bytes no slice covers (holes) read as zeros.
 *
 * Invariants of a valid manifest (`decodeManifest` checks them all):
 * - chunks are listed in strictly increasing index order, each with at least one slice, and each
 *   starts below `sizeBytes`; chunks not listed hold no slice;
 * - every slice has a positive length, lies inside its chunk and inside `sizeBytes`;
 * - a slice's block count is ceil(dataBytes / blockBytes) and `skipBytes + lengthBytes <= dataBytes`.
 */
import { readUint64, writeUint64 } from './format.js';

const HASH_BYTES = 32;
export const MANIFEST_HEADER_BYTES = 16;
const CHUNK_HEADER_BYTES = 8;
const SLICE_HEADER_BYTES = 24;

export interface Slice {
  /** Start of the covered range, relative to the chunk. */
  offsetBytes: number;
  lengthBytes: number;
  /** Where the slice's bytes start in the concatenation of its blocks. */
  skipBytes: number;
  /** Every block but the last holds exactly this many bytes. */
  blockBytes: number;
  /** Bytes in all of the slice's blocks together. */
  dataBytes: number;
  /** SHA-256 of each block, 32 bytes each, concatenated. */
  blockHashes: Buffer;
}

export interface ObjectChunk {
  index: number;
  /** Oldest first (commit order). */
  slices: Slice[];
}

export interface ObjectManifest {
  sizeBytes: number;
  chunkBytes: number;
  /** Chunks holding at least one slice, by increasing index. */
  chunks: ObjectChunk[];
}

export function sliceBlockCount(slice: Slice): number {
  return slice.blockHashes.length / HASH_BYTES;
}

export function sliceBlockHash(slice: Slice, index: number): Buffer {
  return slice.blockHashes.subarray(index * HASH_BYTES, (index + 1) * HASH_BYTES);
}

export function sliceBlockLength(slice: Slice, index: number): number {
  return Math.min(slice.blockBytes, slice.dataBytes - index * slice.blockBytes);
}

/** Every block reference of the manifest (a block used by two slices is visited twice), with its length. */
export function forEachManifestBlock(manifest: ObjectManifest, visit: (hash: Buffer, lengthBytes: number) => void): void {
  for (const chunk of manifest.chunks) {
    for (const slice of chunk.slices) {
      const count = sliceBlockCount(slice);
      for (let index = 0; index < count; index++) visit(sliceBlockHash(slice, index), sliceBlockLength(slice, index));
    }
  }
}

/**
 * The slices `next` holds that `previous` does not, and the other way round, as multisets of slice
 * objects (by identity: a manifest derived from another by `withChunk`/`truncateManifest` shares
 * its unchanged chunks and slices). Chunks that are the very same object at the same index are
 * skipped whole, so the cost is the size of the changed chunks, not of the object.
 */
export function manifestDelta(next: ObjectManifest, previous: ObjectManifest): { added: Slice[]; removed: Slice[] } {
  const previousChunks = new Map<number, ObjectChunk>();
  for (const chunk of previous.chunks) previousChunks.set(chunk.index, chunk);
  const counts = new Map<Slice, number>();
  for (const chunk of next.chunks) {
    const before = previousChunks.get(chunk.index);
    if (before === chunk) {
      previousChunks.delete(chunk.index);
      continue;
    }
    let from = 0;
    if (before !== undefined && startsWithSameSlices(chunk.slices, before.slices)) {
      // Slices appended to the chunk (a write, a delta): only the new ones count.
      previousChunks.delete(chunk.index);
      from = before.slices.length;
    }
    for (let position = from; position < chunk.slices.length; position++) {
      const slice = chunk.slices[position] as Slice;
      counts.set(slice, (counts.get(slice) ?? 0) + 1);
    }
  }
  const removed: Slice[] = [];
  for (const chunk of previousChunks.values()) {
    for (const slice of chunk.slices) {
      const count = counts.get(slice) ?? 0;
      if (count > 0) counts.set(slice, count - 1);
      else removed.push(slice);
    }
  }
  const added: Slice[] = [];
  for (const [slice, count] of counts) for (let copy = 0; copy < count; copy++) added.push(slice);
  return { added, removed };
}

/** Whether `slices` begins with exactly the slice objects of `prefix` (by identity). */
function startsWithSameSlices(slices: readonly Slice[], prefix: readonly Slice[]): boolean {
  if (prefix.length > slices.length) return false;
  for (let position = 0; position < prefix.length; position++) if (slices[position] !== prefix[position]) return false;
  return true;
}

/** Bytes of chunk `index` of an object of `sizeBytes` (the last chunk may be short). */
export function chunkLength(manifest: { sizeBytes: number; chunkBytes: number }, index: number): number {
  return Math.max(0, Math.min(manifest.chunkBytes, manifest.sizeBytes - index * manifest.chunkBytes));
}

export function findChunk(manifest: ObjectManifest, index: number): ObjectChunk | undefined {
  let low = 0;
  let high = manifest.chunks.length - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    const chunk = manifest.chunks[middle] as ObjectChunk;
    if (chunk.index === index) return chunk;
    if (chunk.index < index) low = middle + 1;
    else high = middle - 1;
  }
  return undefined;
}

/** A manifest with chunk `index`'s slices replaced (removed when `slices` is empty). Shares the other chunks. */
export function withChunk(manifest: ObjectManifest, index: number, slices: Slice[]): ObjectManifest {
  const chunks = manifest.chunks.filter((chunk) => chunk.index !== index);
  if (slices.length > 0) {
    chunks.push({ index, slices });
    chunks.sort((left, right) => left.index - right.index);
  }
  return { sizeBytes: manifest.sizeBytes, chunkBytes: manifest.chunkBytes, chunks };
}

/**
 * The manifest cut (or extended, with a hole) to `sizeBytes`: chunks past the end go, and slices
 * of the new last chunk are clipped, so bytes past the new end read as zeros if the object grows again.
 */
export function truncateManifest(manifest: ObjectManifest, sizeBytes: number): ObjectManifest {
  const chunks: ObjectChunk[] = [];
  for (const chunk of manifest.chunks) {
    const chunkStart = chunk.index * manifest.chunkBytes;
    if (chunkStart >= sizeBytes) break;
    const end = sizeBytes - chunkStart;
    if (end >= manifest.chunkBytes) {
      chunks.push(chunk);
      continue;
    }
    const slices: Slice[] = [];
    for (const slice of chunk.slices) {
      if (slice.offsetBytes >= end) continue;
      slices.push(slice.offsetBytes + slice.lengthBytes <= end ? slice : { ...slice, lengthBytes: end - slice.offsetBytes });
    }
    if (slices.length > 0) chunks.push({ index: chunk.index, slices });
  }
  return { sizeBytes, chunkBytes: manifest.chunkBytes, chunks };
}

/** A piece of a chunk's visible bytes: `[start, end)` of the chunk, from `slice` (or zeros). */
export interface ChunkPiece {
  start: number;
  end: number;
  slice: Slice | undefined;
}

/** Disjoint, sorted, merged ranges. */
type Ranges = Array<[number, number]>;

/** Index of the first range of `covered` that ends after `position` (binary search). */
function firstEndingAfter(covered: Ranges, position: number): number {
  let low = 0;
  let high = covered.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((covered[middle] as [number, number])[1] <= position) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The parts of `[start, end)` not in `covered`. */
function uncovered(covered: Ranges, start: number, end: number): Ranges {
  const result: Ranges = [];
  let cursor = start;
  for (let position = firstEndingAfter(covered, start); position < covered.length; position++) {
    const [coveredStart, coveredEnd] = covered[position] as [number, number];
    if (coveredStart >= end) break;
    if (coveredStart > cursor) result.push([cursor, coveredStart]);
    cursor = Math.max(cursor, coveredEnd);
    if (cursor >= end) break;
  }
  if (cursor < end) result.push([cursor, end]);
  return result;
}

/**
 * `covered` with `[start, end)` added, merged with the ranges it touches. Changes `covered` in
 * place (binary search and one splice: a chunk of n slices resolves in about n log n, not n²)
 * and returns it.
 */
function addRange(covered: Ranges, start: number, end: number): Ranges {
  // The ranges that overlap or touch [start, end): from the first ending at or after `start`
  // to the last starting at or before `end`.
  const first = firstEndingAfter(covered, start - 1);
  let last = first;
  while (last < covered.length && (covered[last] as [number, number])[0] <= end) last++;
  if (last > first) {
    start = Math.min(start, (covered[first] as [number, number])[0]);
    end = Math.max(end, (covered[last - 1] as [number, number])[1]);
  }
  covered.splice(first, last - first, [start, end]);
  return covered;
}

/**
 * What `[from, to)` of a chunk reads as: pieces in increasing order that exactly cover it, each
 * from the newest slice covering it (the last in commit order), or zeros. Slices are visited
 * newest first, each contributing only what no newer slice covers.
 */
export function resolveChunk(slices: readonly Slice[], from: number, to: number): ChunkPiece[] {
  const pieces: ChunkPiece[] = [];
  let covered: Ranges = [];
  for (let position = slices.length - 1; position >= 0; position--) {
    const slice = slices[position] as Slice;
    const start = Math.max(from, slice.offsetBytes);
    const end = Math.min(to, slice.offsetBytes + slice.lengthBytes);
    if (start >= end) continue;
    for (const [pieceStart, pieceEnd] of uncovered(covered, start, end)) pieces.push({ start: pieceStart, end: pieceEnd, slice });
    covered = addRange(covered, start, end);
    if (covered.length === 1 && (covered[0] as [number, number])[0] <= from && (covered[0] as [number, number])[1] >= to) break;
  }
  for (const [start, end] of uncovered(covered, from, to)) pieces.push({ start, end, slice: undefined });
  return pieces.sort((left, right) => left.start - right.start);
}

/**
 * Light compaction: the slices with every one wholly covered by newer slices dropped (metadata
 * only). Reads return the same bytes: a dropped slice contributed none.
 */
export function dropCoveredSlices(slices: readonly Slice[]): Slice[] {
  const kept: Slice[] = [];
  let covered: Ranges = [];
  for (let position = slices.length - 1; position >= 0; position--) {
    const slice = slices[position] as Slice;
    const end = slice.offsetBytes + slice.lengthBytes;
    if (uncovered(covered, slice.offsetBytes, end).length === 0) continue;
    kept.push(slice);
    covered = addRange(covered, slice.offsetBytes, end);
  }
  return kept.reverse();
}

/**
 * Whether `slices` were laid down like appends: each starts at or past the end of the one before
 * (so no two overlap, and commit order is offset order), and they average at least `minMeanBytes`.
 * Such a chunk reads every byte from exactly one slice, in order: heavy compaction would only
 * trade its pieces for block-size ones (see "Slice compaction" in doc/format.md).
 */
export function appendShaped(slices: readonly Slice[], minMeanBytes: number): boolean {
  let end = 0;
  let bytes = 0;
  for (const slice of slices) {
    if (slice.offsetBytes < end) return false;
    end = slice.offsetBytes + slice.lengthBytes;
    bytes += slice.lengthBytes;
  }
  return bytes >= minMeanBytes * slices.length;
}

export interface ChunkFragmentation {
  index: number;
  slices: number;
  /** Bytes of the chunk some slice covers. */
  coveredBytes: number;
  /** Bytes covered by more than one slice, counted once per extra slice: sum of slice lengths less `coveredBytes`. */
  coveredTwiceBytes: number;
  /** coveredTwiceBytes / (sum of slice lengths): the fraction of the slices' bytes that reads never return. */
  overlapRatio: number;
}

export function chunkFragmentation(chunk: ObjectChunk): ChunkFragmentation {
  let covered: Ranges = [];
  let total = 0;
  for (const slice of chunk.slices) {
    total += slice.lengthBytes;
    covered = addRange(covered, slice.offsetBytes, slice.offsetBytes + slice.lengthBytes);
  }
  let coveredBytes = 0;
  for (const [start, end] of covered) coveredBytes += end - start;
  return {
    index: chunk.index,
    slices: chunk.slices.length,
    coveredBytes,
    coveredTwiceBytes: total - coveredBytes,
    overlapRatio: total === 0 ? 0 : (total - coveredBytes) / total,
  };
}

/** Same slices (by content), in the same order. */
export function sameSlice(left: Slice, right: Slice): boolean {
  return (
    left === right ||
    (left.offsetBytes === right.offsetBytes &&
      left.lengthBytes === right.lengthBytes &&
      left.skipBytes === right.skipBytes &&
      left.blockBytes === right.blockBytes &&
      left.dataBytes === right.dataBytes &&
      left.blockHashes.equals(right.blockHashes))
  );
}

/** Whether `slices` begins with exactly `prefix` (by content). */
export function startsWithSlices(slices: readonly Slice[], prefix: readonly Slice[]): boolean {
  if (prefix.length > slices.length) return false;
  for (let position = 0; position < prefix.length; position++) if (!sameSlice(slices[position] as Slice, prefix[position] as Slice)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// Encoding
//   manifest := size u64, chunk bytes u32, chunk count u32, chunk{chunk count}
//   chunk    := index u32, slice count u32, slice{slice count}
//   slice    := offset u32, length u32, skip u32, block bytes u32, data bytes u32, block count u32,
//               SHA-256{block count}

export function encodedManifestLength(manifest: ObjectManifest): number {
  let length = MANIFEST_HEADER_BYTES;
  for (const chunk of manifest.chunks) {
    length += CHUNK_HEADER_BYTES;
    for (const slice of chunk.slices) length += SLICE_HEADER_BYTES + slice.blockHashes.length;
  }
  return length;
}

export function encodeManifest(manifest: ObjectManifest): Buffer {
  const buffer = Buffer.allocUnsafe(encodedManifestLength(manifest));
  writeUint64(buffer, manifest.sizeBytes, 0);
  buffer.writeUInt32LE(manifest.chunkBytes, 8);
  buffer.writeUInt32LE(manifest.chunks.length, 12);
  let cursor = MANIFEST_HEADER_BYTES;
  for (const chunk of manifest.chunks) {
    buffer.writeUInt32LE(chunk.index, cursor);
    buffer.writeUInt32LE(chunk.slices.length, cursor + 4);
    cursor += CHUNK_HEADER_BYTES;
    for (const slice of chunk.slices) cursor = writeSlice(buffer, cursor, slice);
  }
  return buffer;
}

/** Write `slice` (its header, then its block hashes) at `cursor`; returns the cursor after it. */
function writeSlice(buffer: Buffer, cursor: number, slice: Slice): number {
  buffer.writeUInt32LE(slice.offsetBytes, cursor);
  buffer.writeUInt32LE(slice.lengthBytes, cursor + 4);
  buffer.writeUInt32LE(slice.skipBytes, cursor + 8);
  buffer.writeUInt32LE(slice.blockBytes, cursor + 12);
  buffer.writeUInt32LE(slice.dataBytes, cursor + 16);
  buffer.writeUInt32LE(slice.blockHashes.length / HASH_BYTES, cursor + 20);
  cursor += SLICE_HEADER_BYTES;
  slice.blockHashes.copy(buffer, cursor);
  return cursor + slice.blockHashes.length;
}

/**
 * Read and check the `count` slices at `cursor` of chunk `index` of a `what` ('manifest' or
 * 'delta', for the reasons) of an object of `sizeBytes` in chunks of `chunkBytes`: the slices and
 * the cursor after them, or a reason string.
 */
function readSlices(value: Buffer, cursor: number, count: number, what: string, index: number, chunkBytes: number, sizeBytes: number): { slices: Slice[]; end: number } | string {
  const slices: Slice[] = [];
  let end = cursor;
  for (let position = 0; position < count; position++) {
    const read = readSlice(value, end, what, index, chunkBytes, sizeBytes);
    if (typeof read === 'string') return read;
    slices.push(read.slice);
    end = read.end;
  }
  return { slices, end };
}

/** One slice, as `readSlices` reads each. */
function readSlice(value: Buffer, cursor: number, what: string, index: number, chunkBytes: number, sizeBytes: number): { slice: Slice; end: number } | string {
  if (cursor + SLICE_HEADER_BYTES > value.length) return `${what} slice runs past its end`;
  const offsetBytes = value.readUInt32LE(cursor);
  const lengthBytes = value.readUInt32LE(cursor + 4);
  const skipBytes = value.readUInt32LE(cursor + 8);
  const blockBytes = value.readUInt32LE(cursor + 12);
  const dataBytes = value.readUInt32LE(cursor + 16);
  const blockCount = value.readUInt32LE(cursor + 20);
  const hashesAt = cursor + SLICE_HEADER_BYTES;
  if (lengthBytes === 0 || offsetBytes + lengthBytes > chunkBytes || index * chunkBytes + offsetBytes + lengthBytes > sizeBytes) {
    return `${what} chunk ${index}: a slice lies outside its chunk or the object`;
  }
  if (blockBytes === 0 || blockCount !== Math.ceil(dataBytes / blockBytes) || skipBytes + lengthBytes > dataBytes) {
    return `${what} chunk ${index}: a slice's blocks do not match its sizes`;
  }
  const end = hashesAt + blockCount * HASH_BYTES;
  if (end > value.length) return `${what} block hashes run past its end`;
  return { slice: { offsetBytes, lengthBytes, skipBytes, blockBytes, dataBytes, blockHashes: Buffer.from(value.subarray(hashesAt, end)) }, end };
}

/** Decode and check a manifest (see the invariants at the top); a reason string if malformed. */
export function decodeManifest(value: Buffer): ObjectManifest | string {
  if (value.length < MANIFEST_HEADER_BYTES) return 'manifest too short';
  const sizeBytes = readUint64(value, 0);
  const chunkBytes = value.readUInt32LE(8);
  const chunkCount = value.readUInt32LE(12);
  if (chunkBytes === 0) return 'manifest chunk size is 0';
  const chunks: ObjectChunk[] = [];
  let cursor = MANIFEST_HEADER_BYTES;
  let lastIndex = -1;
  for (let chunkPosition = 0; chunkPosition < chunkCount; chunkPosition++) {
    if (cursor + CHUNK_HEADER_BYTES > value.length) return 'manifest chunk runs past its end';
    const index = value.readUInt32LE(cursor);
    const sliceCount = value.readUInt32LE(cursor + 4);
    cursor += CHUNK_HEADER_BYTES;
    if (index <= lastIndex) return 'manifest chunks out of order';
    lastIndex = index;
    const chunkStart = index * chunkBytes;
    if (chunkStart >= sizeBytes) return `manifest chunk ${index} starts past the object's end`;
    if (sliceCount === 0) return `manifest chunk ${index} has no slices`;
    const read = readSlices(value, cursor, sliceCount, 'manifest', index, chunkBytes, sizeBytes);
    if (typeof read === 'string') return read;
    chunks.push({ index, slices: read.slices });
    cursor = read.end;
  }
  if (cursor !== value.length) return 'manifest does not fill its entry';
  return { sizeBytes, chunkBytes, chunks };
}


// ---------------------------------------------------------------------------------------------
// Deltas (PUT_OBJECT_DELTA entries)
//   delta := base revision u64, base offset u64, size u64, chunk bytes u32, count u32, item{count}
//   item  := chunk index u32 (bit 31 clear), slice                                 (an append)
//          | chunk index u32 | 0x8000_0000, replaced u32, slice count u32, slice{slice count}
//                                                                                  (a replacement)
//
// A write that only adds slices (writeAt, append) to an object whose record is in the active
// segment is recorded as a delta: the slices it appends, each to the end of its chunk's list, and
// the new size, on top of the key's previous record, whose revision is `baseRevision` and which
// is at `baseOffsetBytes` of the same segment (open follows these back to rebuild a chain). A
// slice compaction's commit is recorded the same way, as one replacement: the first `replaced`
// slices of its chunk (those it read) give way to the compacted ones, the slices written after
// them stay. A key's record is then a chain: one full manifest (PUT_OBJECT) and the deltas after
// it, all in one segment (a write whose previous record is in another segment writes a full
// manifest).

/** A slice appended to the end of chunk `index`'s list. */
export interface DeltaAppend {
  index: number;
  slice: Slice;
}

/** Chunk `index`'s first `replacedCount` slices replaced by `slices` (none: the chunk goes, if nothing follows them). */
export interface DeltaReplacement {
  index: number;
  replacedCount: number;
  slices: Slice[];
}

export type DeltaItem = DeltaAppend | DeltaReplacement;

export interface ObjectDelta {
  /** The revision of the record this delta applies to, and its offset in the segment (the delta's own). */
  baseRevision: number;
  baseOffsetBytes: number;
  sizeBytes: number;
  chunkBytes: number;
  /** Applied in order. */
  items: DeltaItem[];
}

const DELTA_HEADER_BYTES = 32;
/** Set in an item's chunk index when the item is a replacement. */
const REPLACEMENT_BIT = 0x8000_0000;
/** An object holds fewer chunks than this (writes past it are TOO_LARGE): a chunk index never has REPLACEMENT_BIT set. */
export const MAX_OBJECT_CHUNKS = REPLACEMENT_BIT;

function isReplacement(item: DeltaItem): item is DeltaReplacement {
  return (item as DeltaReplacement).replacedCount !== undefined;
}

export function encodeDelta(delta: ObjectDelta): Buffer {
  let length = DELTA_HEADER_BYTES;
  for (const item of delta.items) {
    if (isReplacement(item)) {
      length += 12;
      for (const slice of item.slices) length += SLICE_HEADER_BYTES + slice.blockHashes.length;
    } else {
      length += 4 + SLICE_HEADER_BYTES + item.slice.blockHashes.length;
    }
  }
  const buffer = Buffer.allocUnsafe(length);
  writeUint64(buffer, delta.baseRevision, 0);
  writeUint64(buffer, delta.baseOffsetBytes, 8);
  writeUint64(buffer, delta.sizeBytes, 16);
  buffer.writeUInt32LE(delta.chunkBytes, 24);
  buffer.writeUInt32LE(delta.items.length, 28);
  let cursor = DELTA_HEADER_BYTES;
  for (const item of delta.items) {
    if (isReplacement(item)) {
      buffer.writeUInt32LE((item.index | REPLACEMENT_BIT) >>> 0, cursor);
      buffer.writeUInt32LE(item.replacedCount, cursor + 4);
      buffer.writeUInt32LE(item.slices.length, cursor + 8);
      cursor += 12;
      for (const slice of item.slices) cursor = writeSlice(buffer, cursor, slice);
    } else {
      buffer.writeUInt32LE(item.index, cursor);
      cursor = writeSlice(buffer, cursor + 4, item.slice);
    }
  }
  return buffer;
}

/** Decode and check a delta on its own (`applyDelta` checks it against the manifest); a reason if malformed. */
export function decodeDelta(value: Buffer): ObjectDelta | string {
  if (value.length < DELTA_HEADER_BYTES) return 'delta too short';
  const baseRevision = readUint64(value, 0);
  const baseOffsetBytes = readUint64(value, 8);
  const sizeBytes = readUint64(value, 16);
  const chunkBytes = value.readUInt32LE(24);
  const count = value.readUInt32LE(28);
  if (chunkBytes === 0) return 'delta chunk size is 0';
  const items: DeltaItem[] = [];
  let cursor = DELTA_HEADER_BYTES;
  for (let position = 0; position < count; position++) {
    if (cursor + 4 > value.length) return 'delta item runs past its end';
    const word = value.readUInt32LE(cursor);
    const index = word & ~REPLACEMENT_BIT;
    if ((word & REPLACEMENT_BIT) === 0) {
      const read = readSlice(value, cursor + 4, 'delta', index, chunkBytes, sizeBytes);
      if (typeof read === 'string') return read;
      items.push({ index, slice: read.slice });
      cursor = read.end;
      continue;
    }
    if (cursor + 12 > value.length) return 'delta replacement runs past its end';
    const replacedCount = value.readUInt32LE(cursor + 4);
    const sliceCount = value.readUInt32LE(cursor + 8);
    if (replacedCount === 0) return `delta chunk ${index}: a replacement of no slices`;
    const read = readSlices(value, cursor + 12, sliceCount, 'delta', index, chunkBytes, sizeBytes);
    if (typeof read === 'string') return read;
    items.push({ index, replacedCount, slices: read.slices });
    cursor = read.end;
  }
  if (cursor !== value.length) return 'delta does not fill its entry';
  return { baseRevision, baseOffsetBytes, sizeBytes, chunkBytes, items };
}

/**
 * The manifest `delta` makes of `manifest` (its base): the slices appended to their chunks, the
 * replacements made, the size set (a delta never shrinks an object). Shares the chunks it does not
 * touch. A reason string if the delta does not fit the manifest.
 */
export function applyDelta(manifest: ObjectManifest, delta: ObjectDelta): ObjectManifest | string {
  if (delta.chunkBytes !== manifest.chunkBytes) return `delta chunk size ${delta.chunkBytes} differs from the object's ${manifest.chunkBytes}`;
  if (delta.sizeBytes < manifest.sizeBytes) return `delta shrinks the object from ${manifest.sizeBytes} to ${delta.sizeBytes} bytes`;
  let result: ObjectManifest = { sizeBytes: delta.sizeBytes, chunkBytes: manifest.chunkBytes, chunks: manifest.chunks };
  for (const item of delta.items) {
    const slices = findChunk(result, item.index)?.slices ?? [];
    if (isReplacement(item)) {
      if (item.replacedCount > slices.length) return `delta replaces ${item.replacedCount} slices of chunk ${item.index}, which holds ${slices.length}`;
      result = withChunk(result, item.index, [...item.slices, ...slices.slice(item.replacedCount)]);
    } else {
      result = withChunk(result, item.index, [...slices, item.slice]);
    }
  }
  return result;
}
