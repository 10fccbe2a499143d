/**
 * Reading segments: scanning entries for recovery, reading a segment's header and footer at open,
 * and reading one entry for a get.
 *
 * Invariants:
 * - A scan stops at the first invalid entry and reports where and why; it never skips over damage,
 *   because the entries after it cannot be trusted to be in order with what was lost.
 * - Reading one entry checks its CRC and its key: a location that does not hold the key asked for
 *   is CORRUPTION, never another key's value.
 */
import type { FileHandle } from '../fs/types.js';
import {
  checkEntry,
  decodeBatch,
  decodeBlockEntry,
  decodeCheckedEntry,
  decodeFooter,
  decodeSegmentHeader,
  foreignSegmentVersion,
  decodeTrailer,
  EntryType,
  SEGMENT_HEADER_BYTES,
  SEGMENT_TRAILER_BYTES,
  type DecodedBlockEntry,
  type DecodedEntry,
  type SegmentHeader,
  type SegmentSummary,
} from './format.js';

export interface ScanDamage {
  /** Offset (in the scanned buffer) of the first entry that is not valid. */
  offsetBytes: number;
  reason: string;
  /**
   * The entry's framing and CRC hold, but its type, flags or content are not ones this silt
   * reads: not a torn write (that fails the CRC), so not a tail a crash left.
   */
  checked: boolean;
}

export interface ScanResult {
  /** Offset just past the last valid entry (or past the trailer of a sealed segment). */
  endOffset: number;
  damage: ScanDamage | undefined;
  footer: { offsetBytes: number; summary: SegmentSummary } | undefined;
  /** Records seen: a batch frame counts once. */
  recordCount: number;
}

/**
 * Scan `buffer` from `startOffset`, calling `onEntry` for every PUT/DELETE in log order (entries of
 * a batch only once the whole frame has checked out), and `onBlock` (if given) for every BLOCK entry. Offsets are relative to `buffer`, which holds
 * the file's bytes from `bufferFileOffset` on (the trailer records a file offset).
 */
export function scanSegment(
  buffer: Buffer,
  startOffset: number,
  onEntry: (entry: DecodedEntry) => void,
  bufferFileOffset = 0,
  onBlock?: (block: DecodedBlockEntry) => void,
): ScanResult {
  let cursor = startOffset;
  let recordCount = 0;
  while (cursor < buffer.length) {
    const check = checkEntry(buffer, cursor);
    if (!check.ok) return { endOffset: cursor, damage: { offsetBytes: cursor, reason: check.reason, checked: check.checked === true }, footer: undefined, recordCount };
    const length = check.lengthBytes;
    if (check.type === EntryType.FOOTER) {
      const summary = decodeFooter(buffer, cursor, length);
      const trailerAt = cursor + length;
      const trailerOk =
        typeof summary !== 'string' &&
        trailerAt + SEGMENT_TRAILER_BYTES === buffer.length &&
        decodeTrailer(buffer.subarray(trailerAt, trailerAt + SEGMENT_TRAILER_BYTES)) === bufferFileOffset + cursor;
      if (!trailerOk) {
        const reason = typeof summary === 'string' ? summary : 'footer not followed by its trailer at the end';
        // Not `checked`: sealing writes the footer, then the trailer; a crash between leaves this.
        return { endOffset: cursor, damage: { offsetBytes: cursor, reason, checked: false }, footer: undefined, recordCount };
      }
      return { endOffset: buffer.length, damage: undefined, footer: { offsetBytes: cursor, summary }, recordCount };
    }
    if (check.type === EntryType.BATCH) {
      const entries = decodeBatch(buffer, cursor, length);
      if (typeof entries === 'string') return { endOffset: cursor, damage: { offsetBytes: cursor, reason: entries, checked: true }, footer: undefined, recordCount };
      for (const entry of entries) onEntry(entry);
    } else if (check.type === EntryType.BLOCK) {
      // A block carried in the log: checked here, reported only to callers that want blocks.
      const block = decodeBlockEntry(buffer, cursor, length);
      if (typeof block === 'string') return { endOffset: cursor, damage: { offsetBytes: cursor, reason: block, checked: true }, footer: undefined, recordCount };
      onBlock?.(block);
    } else {
      const entry = decodeCheckedEntry(buffer, cursor, length);
      if (typeof entry === 'string') return { endOffset: cursor, damage: { offsetBytes: cursor, reason: entry, checked: true }, footer: undefined, recordCount };
      onEntry(entry);
    }
    recordCount++;
    cursor += length;
  }
  return { endOffset: cursor, damage: undefined, footer: undefined, recordCount };
}

const ZERO_STRIDE = 64 * 1024;
const ZEROS = Buffer.alloc(ZERO_STRIDE);

/**
 * The end of the data in `buffer[from..]`: one past its last non-zero byte, or `from` when all of
 * it is zero. Zeros at the end of a segment are its preallocation, not data (see segment-writer.ts).
 */
export function endOfNonZero(buffer: Buffer, from: number): number {
  let end = buffer.length;
  // Whole strides of zeros from the end are compared with memcmp, not byte by byte.
  while (end - from >= ZERO_STRIDE && buffer.subarray(end - ZERO_STRIDE, end).equals(ZEROS)) end -= ZERO_STRIDE;
  while (end > from && buffer[end - 1] === 0) end--;
  return end;
}

export async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<number> {
  let read = 0;
  while (read < buffer.length) {
    const count = await handle.read(buffer, read, buffer.length - read, position + read);
    if (count === 0) break;
    read += count;
  }
  return read;
}

export function readFullySync(handle: FileHandle, buffer: Buffer, position: number): number {
  let read = 0;
  while (read < buffer.length) {
    const count = handle.readSync(buffer, read, buffer.length - read, position + read);
    if (count === 0) break;
    read += count;
  }
  return read;
}

export interface SegmentOpenInfo {
  sizeBytes: number;
  /** The header, or why it is not valid. */
  header: SegmentHeader | string;
  /** The header's version when its magic is silt's but the version is not this silt's (`foreignSegmentVersion`). */
  foreignVersion: number | undefined;
  /** Present iff the segment ends with a valid footer and trailer. */
  footer: { offsetBytes: number; summary: SegmentSummary } | undefined;
}

/** Read what open needs of a segment without scanning it: its header, and its footer if sealed. */
export async function readSegmentInfo(handle: FileHandle): Promise<SegmentOpenInfo> {
  const sizeBytes = await handle.size();
  const headerBytes = Buffer.alloc(Math.min(SEGMENT_HEADER_BYTES, sizeBytes));
  await readFully(handle, headerBytes, 0);
  const header = decodeSegmentHeader(headerBytes);
  let footer: SegmentOpenInfo['footer'];
  if (typeof header !== 'string' && sizeBytes >= SEGMENT_HEADER_BYTES + SEGMENT_TRAILER_BYTES) {
    const trailer = Buffer.alloc(SEGMENT_TRAILER_BYTES);
    await readFully(handle, trailer, sizeBytes - SEGMENT_TRAILER_BYTES);
    const footerOffset = decodeTrailer(trailer);
    if (footerOffset !== undefined && footerOffset >= SEGMENT_HEADER_BYTES && footerOffset < sizeBytes - SEGMENT_TRAILER_BYTES) {
      const footerBytes = Buffer.alloc(sizeBytes - SEGMENT_TRAILER_BYTES - footerOffset);
      await readFully(handle, footerBytes, footerOffset);
      const check = checkEntry(footerBytes, 0);
      if (check.ok && check.type === EntryType.FOOTER && check.lengthBytes === footerBytes.length) {
        const summary = decodeFooter(footerBytes, 0, check.lengthBytes);
        if (typeof summary !== 'string') footer = { offsetBytes: footerOffset, summary };
      }
    }
  }
  return { sizeBytes, header, foreignVersion: foreignSegmentVersion(headerBytes), footer };
}

/** Read `length` bytes at `offset` of a segment file (synchronously) and decode the entry there. */
export function readEntrySync(handle: FileHandle, offset: number, length: number): DecodedEntry | string {
  const bytes = Buffer.allocUnsafe(length);
  const read = readFullySync(handle, bytes, offset);
  if (read !== length) return `entry at ${offset} runs past the end of the file`;
  const check = checkEntry(bytes, 0);
  if (!check.ok) return check.reason;
  if (check.lengthBytes !== length) return `entry length ${check.lengthBytes} differs from the index's ${length}`;
  return decodeCheckedEntry(bytes, 0, length);
}
