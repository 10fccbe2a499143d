/**
 * The writer of the active segment: appends encoded entries, keeps the running summary for the
 * footer, and seals the segment with a footer and trailer.
 *
 * Invariants:
 * - Bytes are appended at `sizeBytes` only; nothing before it is rewritten.
 * - `create` makes the header durable and the file's directory entry durable before it returns, so
 *   a record in a segment never outlives the segment's name.
 * - A resumed segment (reopened after a restart) does not know the summary of what it held before;
 *   `seal` rescans that prefix once to compute it.
 * - While it is written, the file is preallocated: extended with zeros (sparse, by ftruncate)
 *   `stepBytes` at a time ahead of its end, so an fdatasync after an append inside it does not
 *   also commit a new file size (measured here: 0.14 ms against 0.26 ms for a 100-byte append +
 *   fdatasync). The zeros past `sizeBytes` are not data: recovery ends the valid prefix at the first
 *   zero length. `seal` and `trim` cut the file back to `sizeBytes`, so a sealed or cleanly closed
 *   segment holds exactly its bytes.
 *
 * Lifecycle:  create/resume ──append*──► seal ──► (read-only, sealed)
 */
import type { FileHandle, FileSystem } from '../fs/types.js';
import {
  checksum,
  checksumEntries,
  encodeFooter,
  encodeSegmentHeader,
  EntryType,
  SEGMENT_HEADER_BYTES,
  segmentFileName,
  type SegmentSummary,
} from './format.js';
import { scanSegment } from './segment-reader.js';

/**
 * How far ahead of its end the active segment's file is extended (by ftruncate: a hole, no disk
 * space until written). One size change per 4 MiB of log instead of one per fdatasync; and after
 * a crash, recovery reads at most this many zeros past the valid end.
 */
export const PREALLOCATE_STEP_BYTES = 4 * 1024 * 1024;

export function emptySummary(): SegmentSummary {
  return {
    entryCount: 0,
    putCount: 0,
    deleteCount: 0,
    minRevision: 0,
    maxRevision: 0,
    dataChecksum: 0,
    minKey: undefined,
    maxKey: undefined,
  };
}

/** Fold one PUT/DELETE into a summary (keys are compared bytewise). */
export function noteEntry(summary: SegmentSummary, type: number, key: Buffer, revision: number): void {
  summary.entryCount++;
  if (type === EntryType.DELETE) summary.deleteCount++;
  else summary.putCount++;
  if (summary.minRevision === 0 || revision < summary.minRevision) summary.minRevision = revision;
  if (revision > summary.maxRevision) summary.maxRevision = revision;
  if (summary.minKey === undefined || Buffer.compare(key, summary.minKey) < 0) summary.minKey = Buffer.from(key);
  if (summary.maxKey === undefined || Buffer.compare(key, summary.maxKey) > 0) summary.maxKey = Buffer.from(key);
}

export class SegmentWriter {
  readonly segmentId: number;
  readonly path: string;
  readonly handle: FileHandle;
  readonly baseRevision: number;
  sizeBytes: number;
  /** The file's size: `sizeBytes`, or more while preallocated. */
  private allocatedBytes: number;
  /** How far ahead of the end the file is extended (0: never). */
  private readonly stepBytes: number;
  private readonly summary: SegmentSummary;
  /** The smallest and largest key noted, as binary strings (the summary's are set at seal). */
  private minKey: string | undefined;
  private maxKey: string | undefined;
  /** Appended buffers not yet in `summary.dataChecksum` (see `append`). */
  private readonly unsummed: Buffer[] = [];
  /** False for a resumed segment whose earlier entries are not in `summary`. */
  private summaryComplete: boolean;

  private constructor(
    segmentId: number,
    path: string,
    handle: FileHandle,
    baseRevision: number,
    sizeBytes: number,
    stepBytes: number,
  ) {
    this.segmentId = segmentId;
    this.path = path;
    this.handle = handle;
    this.baseRevision = baseRevision;
    this.sizeBytes = sizeBytes;
    this.allocatedBytes = sizeBytes;
    this.stepBytes = stepBytes;
    this.summary = emptySummary();
    this.summaryComplete = sizeBytes === SEGMENT_HEADER_BYTES;
  }

  /**
   * Create a new segment file, preallocated `stepBytes` past its header (0: not at all); its
   * header, its size and its directory entry are durable on return.
   */
  static async create(fs: FileSystem, directory: string, segmentId: number, baseRevision: number, stepBytes = 0): Promise<SegmentWriter> {
    const path = `${directory}/${segmentFileName(segmentId)}`;
    const handle = await fs.open(path, 'create');
    const allocatedBytes = SEGMENT_HEADER_BYTES + stepBytes;
    try {
      const header = encodeSegmentHeader({ segmentId, baseRevision });
      await handle.write(header, 0, header.length, 0);
      if (allocatedBytes > SEGMENT_HEADER_BYTES) await handle.truncate(allocatedBytes);
      // The header is synced before the name, and the name before any record is written into
      // the file: recovery then never meets a named segment without a valid header.
      await handle.sync();
      await fs.syncDirectory(directory);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    const writer = new SegmentWriter(segmentId, path, handle, baseRevision, SEGMENT_HEADER_BYTES, stepBytes);
    writer.allocatedBytes = allocatedBytes;
    return writer;
  }

  /**
   * Continue appending to an existing unsealed segment whose file ends at its valid bytes,
   * `sizeBytes` (recovery cut anything after them); `stepBytes` as for `create`.
   */
  static resume(path: string, handle: FileHandle, segmentId: number, baseRevision: number, sizeBytes: number, stepBytes = 0): SegmentWriter {
    return new SegmentWriter(segmentId, path, handle, baseRevision, sizeBytes, stepBytes);
  }

  /** Extend the file with zeros `stepBytes` past the end (when not already), durably. */
  async preallocate(): Promise<void> {
    if (this.stepBytes === 0 || this.allocatedBytes > this.sizeBytes) return;
    await this.handle.truncate(this.sizeBytes + this.stepBytes);
    await this.handle.sync();
    this.allocatedBytes = this.sizeBytes + this.stepBytes;
  }

  /** Cut the preallocated zeros off (a clean close): the file then holds exactly its bytes. */
  async trim(): Promise<void> {
    if (this.allocatedBytes <= this.sizeBytes) return;
    await this.handle.truncate(this.sizeBytes);
    await this.handle.sync();
    this.allocatedBytes = this.sizeBytes;
  }

  /**
   * Append encoded entries (whole ones) at the end; returns the offset they were written at. Not
   * synced. The footer's data checksum over them is folded in by the next `datasync()` (while the
   * fdatasync is in flight in the thread pool), `datasyncSync()` (just before it), `foldChecksum()`
   * or `seal()`.
   */
  async append(bytes: Buffer): Promise<number> {
    const offset = this.sizeBytes;
    const end = offset + bytes.length;
    if (end > this.allocatedBytes && this.stepBytes > 0) {
      // One size change per step, committed by the next fdatasync; appends are never concurrent
      // (the store's commit loop awaits each), so the offset above stays the end.
      await this.handle.truncate(end + this.stepBytes);
      this.allocatedBytes = end + this.stepBytes;
    }
    // A synchronous pwrite into the page cache costs microseconds; the thread-pool round trip of
    // an async one measured slower for group commits of any size here.
    this.handle.writeSync(bytes, 0, bytes.length, offset);
    this.sizeBytes += bytes.length;
    // Past the preallocation the file simply grows (a record larger than what is left).
    if (this.sizeBytes > this.allocatedBytes) this.allocatedBytes = this.sizeBytes;
    if (this.summaryComplete) this.unsummed.push(bytes);
    return offset;
  }

  /**
   * Fold the bytes appended since the last fold into the footer's data checksum (in append order).
   * They are whole entries, so a large one's own CRC is combined in instead of reading its bytes
   * again (`checksumEntries`).
   */
  foldChecksum(): void {
    for (const bytes of this.unsummed) this.summary.dataChecksum = checksumEntries(bytes, this.summary.dataChecksum);
    this.unsummed.length = 0;
  }

  /** fdatasync the segment: appended bytes (and the size) durable. Folds the checksum meanwhile. */
  async datasync(): Promise<void> {
    const synced = this.handle.datasync();
    this.foldChecksum();
    await synced;
  }

  /** Whether the file system can `datasyncSync`. */
  get canSyncInline(): boolean {
    return this.handle.datasyncSync !== undefined;
  }

  /** `datasync` on the calling thread: returns once the bytes are durable (the checksum folded first). Only when `canSyncInline`. */
  datasyncSync(): void {
    this.foldChecksum();
    (this.handle.datasyncSync as () => void).call(this.handle);
  }

  /** Record what an appended entry holds, for the footer. */
  note(type: number, key: string, revision: number): void {
    // The key range is kept as binary strings (one char per byte, so `<` is bytewise order):
    // comparing them costs less than Buffer.compare per record. The summary gets Buffers at seal.
    const summary = this.summary;
    summary.entryCount++;
    if (type === EntryType.DELETE) summary.deleteCount++;
    else summary.putCount++;
    if (summary.minRevision === 0 || revision < summary.minRevision) summary.minRevision = revision;
    if (revision > summary.maxRevision) summary.maxRevision = revision;
    if (this.minKey === undefined || key < this.minKey) this.minKey = key;
    if (this.maxKey === undefined || key > this.maxKey) this.maxKey = key;
  }

  /**
   * Write the footer and trailer and make the whole segment durable. Returns the summary.
   * The caller must not append afterwards.
   */
  async seal(): Promise<SegmentSummary> {
    if (this.summaryComplete) {
      if (this.minKey !== undefined) this.summary.minKey = Buffer.from(this.minKey, 'latin1');
      if (this.maxKey !== undefined) this.summary.maxKey = Buffer.from(this.maxKey, 'latin1');
    }
    this.foldChecksum();
    const summary = this.summaryComplete ? this.summary : await this.rescanSummary();
    const footer = encodeFooter(summary, this.sizeBytes);
    await this.handle.write(footer, 0, footer.length, this.sizeBytes);
    this.sizeBytes += footer.length;
    // A sealed segment is durable as a whole before anything (a newer segment, a checkpoint that
    // skips it at open) relies on it being complete. Its trailer is found at the end of the file,
    // so the preallocated zeros are cut first, and the new size is made durable with it (fsync).
    if (this.allocatedBytes > this.sizeBytes) {
      await this.handle.truncate(this.sizeBytes);
      this.allocatedBytes = this.sizeBytes;
      await this.handle.sync();
    } else {
      await this.handle.datasync();
    }
    return summary;
  }

  private async rescanSummary(): Promise<SegmentSummary> {
    const bytes = Buffer.alloc(this.sizeBytes);
    let read = 0;
    while (read < bytes.length) {
      const count = await this.handle.read(bytes, read, bytes.length - read, read);
      if (count === 0) break;
      read += count;
    }
    const summary = emptySummary();
    const scan = scanSegment(bytes, SEGMENT_HEADER_BYTES, (entry) => noteEntry(summary, entry.type, entry.key, entry.revision));
    if (scan.damage !== undefined || scan.endOffset !== this.sizeBytes) {
      throw new Error(`segment ${this.path} changed under its writer: ${scan.damage?.reason ?? 'short'}`);
    }
    summary.dataChecksum = checksum(bytes.subarray(SEGMENT_HEADER_BYTES, this.sizeBytes));
    return summary;
  }
}
