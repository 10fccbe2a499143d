/**
 * The log's segments by id, with running totals for the compaction scheduler.
 *
 * The scheduler looks at the whole log after every group commit: how much of it is dead (for the
 * write stall and for starting background compaction) and whether any sealed segment is dead
 * enough to be worth rewriting. Summing that over every segment each time cost O(segments) per
 * commit: a small put ('none' mode, 64 KiB segments) took 119 µs at about 400 segments and 414 µs
 * at about 4,500 (`bench/segment-count.mjs`). So the table keeps the sums as the records change,
 * and those checks are O(1); the segments are only walked (and sorted) once one is known to be
 * worth picking.
 *
 * Invariants:
 * - `totalBytes` and `deadBytes` are the sums of `sizeBytes` and `deadBytesOf` over the records in
 *   the table, and each count is the number of sealed records in it past that threshold, at every
 *   moment: a record's `sizeBytes`, `liveBytes` and `sealed` are accessors that update them.
 * - A record counts from its `set` until its `delete` (or it is replaced): changes to it after
 *   that leave the totals alone.
 */
import { SEGMENT_HEADER_BYTES, type SegmentSummary } from '../log/format.js';

export interface SegmentRecord {
  segmentId: number;
  path: string;
  /** Bytes written. */
  sizeBytes: number;
  /** Bytes whose records are in the index (less than `sizeBytes` while a group is being applied). */
  appliedBytes: number;
  sealed: boolean;
  /** Bytes of the entries the index points at in this segment. */
  liveBytes: number;
  /** The part of `liveBytes` that is live blocks carried in the log (BLOCK entries). */
  liveBlockBytes: number;
  /** The footer's summary (key range), for a sealed segment. */
  summary: SegmentSummary | undefined;
}

/** A segment's dead bytes: written, but no record the index points at (header excluded). */
export function deadBytesOf(segment: Pick<SegmentRecord, 'sizeBytes' | 'liveBytes'>): number {
  return Math.max(0, segment.sizeBytes - SEGMENT_HEADER_BYTES - segment.liveBytes);
}

export class SegmentTable extends Map<number, SegmentRecord> {
  /** Sum of `sizeBytes`. */
  totalBytes = 0;
  /** Sum of the dead bytes. */
  deadBytes = 0;
  /** Sealed segments with any dead bytes (what `compact()` rewrites). */
  sealedWithDead = 0;
  /** Sealed segments with dead bytes at least `deadRatio` of their size (background compaction may pick them). */
  sealedAtRatio = 0;
  /** Of those, the ones at least `nearlyDead` of their size dead (picked whatever the rest of the log holds). */
  sealedNearlyDead = 0;
  private readonly unlinks = new WeakMap<SegmentRecord, () => void>();

  constructor(
    private readonly deadRatio: number,
    private readonly nearlyDead: number,
  ) {
    super();
  }

  override set(segmentId: number, record: SegmentRecord): this {
    const previous = super.get(segmentId);
    if (previous !== record) {
      if (previous !== undefined) this.unlinks.get(previous)?.();
      this.link(record);
    }
    return super.set(segmentId, record);
  }

  override delete(segmentId: number): boolean {
    const previous = super.get(segmentId);
    if (previous !== undefined) this.unlinks.get(previous)?.();
    return super.delete(segmentId);
  }

  override clear(): void {
    for (const record of super.values()) this.unlinks.get(record)?.();
    super.clear();
  }

  /** Dead bytes over all bytes (0 for an empty log). */
  deadFraction(): number {
    return this.totalBytes === 0 ? 0 : this.deadBytes / this.totalBytes;
  }

  /** A mismatch between the totals and a pass over the records (for tests), or undefined. */
  recount(): string | undefined {
    const fresh = new SegmentTable(this.deadRatio, this.nearlyDead);
    for (const record of super.values()) fresh.count(record.sizeBytes, record.liveBytes, record.sealed, 1);
    for (const field of ['totalBytes', 'deadBytes', 'sealedWithDead', 'sealedAtRatio', 'sealedNearlyDead'] as const) {
      if (fresh[field] !== this[field]) return `${field} is ${this[field]}, the segments say ${fresh[field]}`;
    }
    return undefined;
  }

  /** Turn the record's counted fields into accessors that keep the totals, and count it. */
  private link(record: SegmentRecord): void {
    let sizeBytes = record.sizeBytes;
    let liveBytes = record.liveBytes;
    let sealed = record.sealed;
    let linked = true;
    this.count(sizeBytes, liveBytes, sealed, 1);
    const change = (apply: () => void): void => {
      if (linked) this.count(sizeBytes, liveBytes, sealed, -1);
      apply();
      if (linked) this.count(sizeBytes, liveBytes, sealed, 1);
    };
    Object.defineProperties(record, {
      sizeBytes: { get: () => sizeBytes, set: (value: number) => change(() => (sizeBytes = value)), enumerable: true, configurable: true },
      liveBytes: { get: () => liveBytes, set: (value: number) => change(() => (liveBytes = value)), enumerable: true, configurable: true },
      sealed: { get: () => sealed, set: (value: boolean) => change(() => (sealed = value)), enumerable: true, configurable: true },
    });
    this.unlinks.set(record, () => {
      if (!linked) return;
      this.count(sizeBytes, liveBytes, sealed, -1);
      linked = false;
    });
  }

  private count(sizeBytes: number, liveBytes: number, sealed: boolean, sign: 1 | -1): void {
    const dead = Math.max(0, sizeBytes - SEGMENT_HEADER_BYTES - liveBytes);
    this.totalBytes += sign * sizeBytes;
    this.deadBytes += sign * dead;
    if (!sealed || dead === 0) return;
    this.sealedWithDead += sign;
    if (dead >= this.deadRatio * sizeBytes) this.sealedAtRatio += sign;
    if (dead >= Math.max(this.deadRatio, this.nearlyDead) * sizeBytes) this.sealedNearlyDead += sign;
  }
}
