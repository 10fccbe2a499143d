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
 *
 * Lifecycle:  create/resume ──append*──► seal ──► (read-only, sealed)
 */
import type { FileHandle, FileSystem } from '../fs/types.js';
import {
  checksum,
  encodeFooter,
  encodeSegmentHeader,
  EntryType,
  SEGMENT_HEADER_BYTES,
  segmentFileName,
  type SegmentSummary,
} from './format.js';
import { scanSegment } from './segment-reader.js';

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
  private readonly summary: SegmentSummary;
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
  ) {
    this.segmentId = segmentId;
    this.path = path;
    this.handle = handle;
    this.baseRevision = baseRevision;
    this.sizeBytes = sizeBytes;
    this.summary = emptySummary();
    this.summaryComplete = sizeBytes === SEGMENT_HEADER_BYTES;
  }

  /** Create a new segment file; its header and its directory entry are durable on return. */
  static async create(fs: FileSystem, directory: string, segmentId: number, baseRevision: number): Promise<SegmentWriter> {
    const path = `${directory}/${segmentFileName(segmentId)}`;
    const handle = await fs.open(path, 'create');
    try {
      const header = encodeSegmentHeader({ segmentId, baseRevision });
      await handle.write(header, 0, header.length, 0);
      // The header is synced before the name, and the name before any record is written into
      // the file: recovery then never meets a named segment without a valid header.
      await handle.sync();
      await fs.syncDirectory(directory);
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
    return new SegmentWriter(segmentId, path, handle, baseRevision, SEGMENT_HEADER_BYTES);
  }

  /** Continue appending to an existing unsealed segment whose valid bytes end at `sizeBytes`. */
  static resume(path: string, handle: FileHandle, segmentId: number, baseRevision: number, sizeBytes: number): SegmentWriter {
    return new SegmentWriter(segmentId, path, handle, baseRevision, sizeBytes);
  }

  /**
   * Append encoded bytes at the end; returns the offset they were written at. Not synced. The
   * footer's data checksum over them is folded in by the next `datasync()`, `foldChecksum()` or
   * `seal()`, so that in 'sync' mode its CPU runs while the fdatasync is in flight.
   */
  async append(bytes: Buffer): Promise<number> {
    const offset = this.sizeBytes;
    // A synchronous pwrite into the page cache costs microseconds; the thread-pool round trip of
    // an async one measured slower for group commits of any size here.
    this.handle.writeSync(bytes, 0, bytes.length, offset);
    this.sizeBytes += bytes.length;
    if (this.summaryComplete) this.unsummed.push(bytes);
    return offset;
  }

  /** Fold the bytes appended since the last fold into the footer's data checksum (in append order). */
  foldChecksum(): void {
    for (const bytes of this.unsummed) this.summary.dataChecksum = checksum(bytes, this.summary.dataChecksum);
    this.unsummed.length = 0;
  }

  /** fdatasync the segment: appended bytes (and the size) durable. Folds the checksum meanwhile. */
  async datasync(): Promise<void> {
    const synced = this.handle.datasync();
    this.foldChecksum();
    await synced;
  }

  /** Record what an appended entry holds, for the footer. */
  note(type: number, key: Buffer, revision: number): void {
    noteEntry(this.summary, type, key, revision);
  }

  /**
   * Write the footer and trailer and make the whole segment durable. Returns the summary.
   * The caller must not append afterwards.
   */
  async seal(): Promise<SegmentSummary> {
    this.foldChecksum();
    const summary = this.summaryComplete ? this.summary : await this.rescanSummary();
    const footer = encodeFooter(summary, this.sizeBytes);
    await this.handle.write(footer, 0, footer.length, this.sizeBytes);
    this.sizeBytes += footer.length;
    // A sealed segment is durable as a whole before anything (a newer segment, a checkpoint that
    // skips it at open) relies on it being complete.
    await this.handle.datasync();
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
