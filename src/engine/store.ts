/**
 * The Store: the public API over the log, the index and the file layer. It wires subsystems
 * together; byte layouts live in src/log.
 *
 * Invariants:
 * - Revisions are handed out in the order writes are queued, and the log holds records in that
 *   order, so log order is revision order.
 * - The index only ever points at records that were written (and, in 'sync' mode, made durable):
 *   a write is applied to the index after its group is written, before its promise resolves.
 * - Conditional writes are checked against the index plus the writes queued ahead of them
 *   (`pending`), so two racing `ifAbsent` puts cannot both succeed.
 * - One group commit in flight at a time; the next group forms behind it.
 * - After an I/O error on the write path the store is 'failed': every later write rejects with
 *   FAILED naming the cause; reads keep working; nothing retries the fsync.
 *
 * Lifecycle:
 *   open ──► 'open' ──(write-path I/O error)──► 'failed'
 *              │                                   │
 *              └──────────── close() ──────────────┴──► 'closing' ──► 'closed'
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { constants as bufferConstants } from 'node:buffer';
import { addAbortSignal, Readable } from 'node:stream';
import { ErrorCode, SiltError, toIoError } from '../errors.js';
import { NodeFileSystem } from '../fs/node-file-system.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { lastFoundKey, OrderedIndex, type IndexSnapshot, type KeyRange } from '../index/ordered-index.js';
import {
  checkEntry,
  checkPutEntry,
  BATCH_HEADER_BYTES,
  blockEntryLength,
  decodeBlockEntry,
  encodeBlockEntry,
  type SegmentSummary,
  ENTRY_HEADER_BYTES,
  EXPIRY_FIELD_BYTES,
  decodeEntry,
  decodeSegmentHeader,
  encodeBatchHeader,
  encodeEntry,
  encodeReference,
  parseSegmentFileName,
  type KeyEntryType,
  referenceBlockCount,
  referenceBlockHash,
  referenceBlockLength,
  type ValueReference,
  entryLength,
  EntryType,
  SEGMENT_HEADER_BYTES,
  SEGMENT_TRAILER_BYTES,
  decodeTrailer,
  sealBatch,
  segmentFileName,
} from '../log/format.js';
import {
  appendShaped,
  chunkFragmentation,
  chunkLength,
  dropCoveredSlices,
  encodeDelta,
  encodeManifest,
  findChunk,
  forEachManifestBlock,
  manifestDelta,
  MAX_OBJECT_CHUNKS,
  resolveChunk,
  sliceBlockHash,
  sliceBlockLength,
  startsWithSlices,
  truncateManifest,
  withChunk,
  type ChunkFragmentation,
  type ChunkPiece,
  type DeltaItem,
  type ObjectManifest,
  type Slice,
} from '../log/object.js';
import { HINT_FILE_NAME, liveLength, writeHint, type EntryLocation, type HintPosition, type LogBlockLocation } from '../log/hint.js';
import { type CacheView, isChecked, markChecked, ReadCache } from '../log/read-cache.js';
import { readFully, readFullySync, scanSegment } from '../log/segment-reader.js';
import { PREALLOCATE_STEP_BYTES, SegmentWriter } from '../log/segment-writer.js';
import { resolveOptions, type OpenOptions, type ResolvedOptions } from '../options.js';
import { BlockStore, sha256, type BlockBuffer } from '../blob/block-store.js';
import { DelayedList } from '../blob/delayed-list.js';
import { verifyStore, type VerifyProgress, type VerifyResult } from '../check/verify.js';
import { ExpiryQueue } from './expiry-queue.js';
import { deadBytesOf, SegmentTable, type SegmentRecord } from './segment-table.js';
import { DirectoryLock } from './lock.js';
import { recover, type RecoveryReport } from './recovery.js';
import type {
  ObjectCompactionResult,
  ObjectOptions,
  ObjectStats,
  ObjectWriteResult,
  BatchOperation,
  Bytes,
  CompactionStats,
  DeleteOptions,
  DeleteResult,
  Entry,
  PutOptions,
  PutStreamOptions,
  PutStreamResult,
  RangeOptions,
  ReadStreamOptions,
  Snapshot,
  ValueStat,
  StoreState,
  StoreStats,
  WriteResult,
} from './types.js';

const defaultFileSystem = new NodeFileSystem();
/** Unpins readers (iterators, snapshots) that were dropped without finishing. */
/** A segment at least this dead is always worth rewriting in the background (see nextBackgroundSegment). */
const NEARLY_DEAD = 0.9;

const readerRegistry = new FinalizationRegistry<() => void>((unpin) => unpin());

/** One operation of a batch, validated and encoded, before its record is written. */
interface PreparedBatchOperation {
  type: KeyEntryType;
  key: Buffer;
  value: Buffer | undefined;
  expiresAtMs: number | undefined;
  reference: ValueReference | undefined;
  userBytes: number;
}

/** What one garbage-collection pass did. */
export interface GcResult {
  /** Blocks put on the delayed list (phase 1). */
  listed: number;
  /** Blocks deleted (phase 2), and their bytes. */
  deleted: number;
  bytesDeleted: number;
  /** Listed blocks written again meanwhile, taken off the list. */
  revived: number;
  /** Blocks still on the list after the pass: too young, pinned by a reader, being rewritten, or past the batch limit. */
  waiting: number;
}
const BUFFER_BYTES_MAX = bufferConstants.MAX_LENGTH;
/** Blocks of one large write being written at once (each holds a `blockBytes` buffer). */
const BLOCK_WRITES_IN_FLIGHT = 4;
/** Thrown by an object write whose base value expired while the write was prepared (it starts again). */
const EXPIRED_WHILE_PREPARED = Symbol('expired while prepared');
type ObjectOperation = { kind: 'write' | 'append'; offset: number; data: Buffer } | { kind: 'truncate'; size: number };
/** How many times a read-only open lists the store again when a file it listed is gone. */
const READ_ONLY_OPEN_ATTEMPTS = 5;
/** A read-only open's staleness probe reads a record this long at most (a segment's size if larger). */
const WHOLE_ENTRY_PROBE_LIMIT_BYTES = 64 * 1024 * 1024;
/** Objects whose `stat()` digest is kept (the most recently used; about 150 bytes each). */
const OBJECT_DIGESTS_KEPT = 4096;
/**
 * The expiry sweep: at most one pass per EXPIRY_SWEEP_INTERVAL_MS (expired puts may count as live
 * bytes that long), each dropping at most EXPIRY_SWEEP_BATCH (then the next is due at once, so a
 * mass expiry does not hold the event loop); the timer is re-armed at least every
 * EXPIRY_TIMER_MAX_MS. Stale queue entries (keys written again) are dropped once the queue holds
 * more than twice what the last such pass kept, plus EXPIRY_QUEUE_SLACK.
 */
const EXPIRY_SWEEP_INTERVAL_MS = 100;
const EXPIRY_SWEEP_BATCH = 10_000;
const EXPIRY_TIMER_MAX_MS = 60 * 60 * 1000;
const EXPIRY_QUEUE_SLACK = 1024;
/**
 * A segment roll writes an index checkpoint only once the log has grown, since the last
 * checkpoint's snapshot, by this many times what a checkpoint would take now
 * (`expectedCheckpointBytes`). A checkpoint holds every key (about 35-45 bytes each for short
 * keys in its version 2, about 15 in version 3), so one per roll cost more than the log itself past about 1.5 million keys with 64 MiB
 * segments, and filling a store grew quadratically (3M keys of 20-byte values: 138 MB of
 * checkpoints beside 162 MB of log). With 2, roll checkpoints add at most about half a byte per
 * log byte, and a reopen after a crash replays at most about twice a checkpoint's size of log,
 * plus a segment and whatever was written while the last checkpoint was being written. A store
 * whose index is small next to a segment still checkpoints at every roll. Close always writes
 * one. (Compaction's checkpoints, one before each segment it deletes, are not counted here.)
 */
const CHECKPOINT_LOG_GROWTH = 2;
/**
 * Background compaction leaves alone a chunk laid down like appends whose slices average at least
 * this (or the block size, if smaller): its reads cost no more than a compacted chunk's (measured:
 * 64 KiB appends read at 2.1-2.75x a fresh value's speed, heavily compacted at 1.1x), and rewriting
 * it would write every appended byte twice. Only while the object holds at most
 * `objects.appendSlicesMax` slices: that bounds its manifest and memory. See "Slice compaction" in doc/format.md.
 */
const APPEND_SLICE_BYTES = 64 * 1024;

/**
 * The entries of a checkpoint: the index snapshot's, with the expired puts `dropped` from the
 * index whose tombstones were not applied at the snapshot (a key the snapshot holds keeps its
 * entry: that record is newer), all in key order.
 */
function* withDropped(view: IndexSnapshot<EntryLocation>, dropped: Array<[string, EntryLocation]>): Generator<[string, EntryLocation]> {
  const extra = dropped.filter(([key]) => view.get(key) === undefined).sort(([left], [right]) => (left < right ? -1 : left > right ? 1 : 0));
  let next = 0;
  for (const entry of view.range()) {
    while (next < extra.length && (extra[next] as [string, EntryLocation])[0] < entry[0]) yield extra[next++] as [string, EntryLocation];
    yield entry;
  }
  while (next < extra.length) yield extra[next++] as [string, EntryLocation];
}

/** The number of slices in all of `manifest`'s chunks. */
function manifestSlices(manifest: ObjectManifest): number {
  let count = 0;
  for (const chunk of manifest.chunks) count += chunk.slices.length;
  return count;
}

async function* concatIterables(head: Buffer[], rest: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  yield* head;
  yield* rest;
}

/** One key's change inside a queued write. */
interface PendingOperation {
  /** For a BLOCK entry: the block's hex hash (not a key: the index and `pending` never see it). */
  key: string;
  type: KeyEntryType | typeof EntryType.BLOCK;
  /** Offset of the entry inside the write's bytes, and its length. */
  relativeOffsetBytes: number;
  lengthBytes: number;
  expiresAtMs: number | undefined;
  userBytes: number;
  /** For PUT_REFERENCE: the blocks the value is in. */
  reference?: ValueReference | undefined;
  /** For PUT_OBJECT: the object's manifest. */
  object?: ObjectManifest | undefined;
  /**
   * For a slice compaction's PUT_OBJECT: it keeps the key's revision and replaces the manifest only
   * if the key is still at this revision (guaranteed by the check at enqueue; checked again here).
   */
  replacesRevision?: number | undefined;
  /** For a copy made by compaction: where the original entry is. */
  relocatedFrom?: { segmentId: number; offsetBytes: number; revision: number } | undefined;
  /**
   * For the tombstone of an expired put with blocks (written by the expiry sweep or compaction,
   * see `dropExpired`): the put's blocks (hex, as held), held until it is applied, so that GC
   * lists them only once a record in the log, not the clock alone, keeps the put from coming back
   * at a replay.
   */
  heldUntilApplied?: string[] | undefined;
  /**
   * For a PUT_OBJECT_DELTA: the key's record it applies to (which must still be the key's record,
   * in the segment the delta is written to; `commitGroup` writes a full manifest instead otherwise).
   */
  deltaBase?: { segmentId: number; offsetBytes: number; object: ObjectManifest } | undefined;
  /** For segment compaction's copy of a delta chain: a full manifest of the key's current object, not a byte copy. */
  rebase?: boolean;
}

/** Hex hashes of every block of `slices` (a block once per slice using it). */
function sliceBlockHexes(slices: Slice[]): string[] {
  const hexes: string[] = [];
  for (const slice of slices) {
    const count = slice.blockHashes.length / 32;
    for (let index = 0; index < count; index++) hexes.push(sliceBlockHash(slice, index).toString('hex'));
  }
  return hexes;
}

/** A block an object write carries in the log (a BLOCK entry) instead of a block file. */
interface CarriedBlock {
  hash: Buffer;
  /** `hash` in hex, the block's key in `logBlocks` and reference counts. */
  hex: string;
  data: Buffer;
}

/** A write waiting for (or in) a group commit. */
interface PendingWrite {
  revision: number;
  bytes: Buffer;
  operations: PendingOperation[];
  /** What the write's promise resolves with once committed. */
  result: unknown;
  resolve: (result: unknown) => void;
  reject: (error: unknown) => void;
}

/**
 * A source that a putStream gave up on (refused, failed, aborted, closed) is not left open, as
 * `stream.pipeline` would not leave it: a Readable not yet destroyed is destroyed (without an
 * error, which its owner may not listen for: a file's descriptor, a socket), a generator is
 * returned (not awaited: one stuck in a step returns only once the step ends). A source read to
 * its end, or whose iteration already returned it, is left as it is.
 */
function releaseSource(source: unknown): void {
  if (source === null || typeof source !== 'object') return;
  const readable = source as { destroy?: unknown; destroyed?: unknown };
  if (typeof readable.destroy === 'function') {
    if (readable.destroyed !== true) (readable.destroy as () => void).call(source);
    return;
  }
  const generator = source as { return?: unknown };
  if (typeof generator.return === 'function') {
    void Promise.resolve()
      .then(() => (generator.return as () => unknown).call(source))
      .catch(() => undefined);
  }
}

function invalid(message: string): SiltError {
  return new SiltError(ErrorCode.INVALID_ARGUMENT, message);
}

function toBytes(value: unknown, what: string): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw invalid(`${what} must be a string or a Uint8Array, got ${value === null ? 'null' : typeof value}`);
}

function checkRevisionOption(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw invalid(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
  return value;
}

function checkTtl(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 2 ** 40) {
    throw invalid(`ttlMs must be a positive finite number of milliseconds, got ${String(value)}`);
  }
  return value;
}

const ASCII = /^[\x00-\x7f]*$/;
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice: (this: Uint8Array, start: number, end: number) => string }).latin1Slice;

/** Typed to take the bytes of a Uint8Array read below its length (never undefined). */
const fromCharCode = String.fromCharCode as (...codes: Array<number | undefined>) => string;

/**
 * The bytes as a latin1 string: one char per byte, so JS string order is bytewise order. Keys of
 * 8 to 16 bytes (common binary ids) go through `String.fromCharCode` with one argument per byte,
 * which makes the same flat one-byte string as the native `latin1Slice` without the call into C++
 * (measured: 4% faster random gets of 16-byte keys); other lengths use `latin1Slice`.
 */
function latin1(b: Uint8Array): string {
  switch (b.length) {
    case 16: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    case 15: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14]);
    case 14: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13]);
    case 13: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12]);
    case 12: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]);
    case 11: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10]);
    case 10: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9]);
    case 9: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]);
    case 8: return fromCharCode(b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]);
    default: return latin1Slice.call(b, 0, b.length);
  }
}

/**
 * Whether `bytes[at .. at + key.length]` are the bytes of the latin1 string `key` (one char per
 * byte); no allocation. The caller checks the stored key's length.
 */
function keyAtMatches(bytes: Buffer, at: number, key: string): boolean {
  const length = key.length;
  if (at + length > bytes.length) return false;
  for (let index = 0; index < length; index++) if (bytes[at + index] !== key.charCodeAt(index)) return false;
  return true;
}

const ITERATION_DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined }) as IteratorReturnResult<undefined>;

/**
 * The async iterator behind `entries`, `keys` and `values` (of the store and of snapshots): it
 * walks an index range (a snapshot) and projects each live entry. Reads are synchronous, so each
 * `next()` does its work at once and returns a settled promise: measured 45 ns per entry of
 * overhead against 115 ns for an async generator, whose every `yield` costs extra microtask turns.
 * Like a generator it is done for good after it ends, throws, or `return()` is called, and it
 * unpins its readers then (or, if dropped unfinished, when it is collected).
 */
class RangeReader<T> implements AsyncIterableIterator<T> {
  /** Set by the store once the reader is registered. */
  unpin: () => void = () => undefined;
  private source: Iterator<[string, EntryLocation]> | undefined;
  private remaining: number;

  constructor(
    source: Iterator<[string, EntryLocation]>,
    limit: number,
    private readonly project: (key: string, location: EntryLocation) => T,
    private readonly checkReadable: () => void,
  ) {
    this.source = source;
    this.remaining = limit;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    const source = this.source;
    if (source === undefined) return Promise.resolve(ITERATION_DONE);
    try {
      for (;;) {
        if (this.remaining <= 0) return this.finish(undefined);
        const step = source.next();
        if (step.done === true) return this.finish(undefined);
        const location = step.value[1];
        // Date.now() only for entries with an expiry.
        if (location.expiresAtMs !== undefined && location.expiresAtMs <= Date.now()) continue;
        this.checkReadable();
        this.remaining--;
        return Promise.resolve({ done: false, value: this.project(step.value[0], location) });
      }
    } catch (error) {
      this.stop();
      return Promise.reject(error);
    }
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    return this.finish(value);
  }

  throw(error?: unknown): Promise<IteratorResult<T>> {
    this.stop();
    return Promise.reject(error);
  }

  private finish(value: unknown): Promise<IteratorResult<T>> {
    this.stop();
    return Promise.resolve(value === undefined ? ITERATION_DONE : ({ done: true, value } as unknown as IteratorResult<T>));
  }

  private stop(): void {
    if (this.source === undefined) return;
    const source = this.source;
    this.source = undefined;
    source.return?.();
    this.unpin();
  }
}

/** A copy of `bytes[start .. end]` in a new buffer (from Node's pool when small, as `Buffer.from`). */
function copyOut(bytes: Buffer, start: number, end: number): Buffer {
  const length = end - start;
  const copy = Buffer.allocUnsafe(length);
  // Up to about 32 bytes a loop beats the native copy's call overhead (measured with the
  // allocation: 16 bytes 58 ns against 108, 32 bytes even, 64 bytes 143 against 98).
  if (length <= 32) for (let index = 0; index < length; index++) copy[index] = bytes[start + index] as number;
  else bytes.copy(copy, 0, start, end);
  return copy;
}

/** The smallest string greater than every string starting with `prefix`, or undefined if none. */
function prefixUpperBound(prefix: string): string | undefined {
  let end = prefix.length;
  while (end > 0 && prefix.charCodeAt(end - 1) === 0xff) end--;
  if (end === 0) return undefined;
  return prefix.slice(0, end - 1) + String.fromCharCode(prefix.charCodeAt(end - 1) + 1);
}

/** A compacted segment, kept until no reader may use it and no checkpoint on disk names it. */
interface RetiredSegment {
  segmentId: number;
  path: string;
  sizeBytes: number;
  summary: SegmentSummary | undefined;
  epoch: number;
  /**
   * The checkpoint on disk may name records in it: the file stays until a checkpoint whose
   * snapshot was taken after the retirement is written.
   */
  awaitsCheckpoint: boolean;
}

/** Bytes `from..to` of the block `hash` (of `blockBytes`), to be copied to offset `at` of a read's buffer. */
interface BlockPart {
  hash: Buffer;
  blockBytes: number;
  from: number;
  to: number;
  at: number;
}

/**
 * An open store. Create it with `open()`. It emits `'error'` (with the SiltError) when background
 * work (compaction, GC, checkpoint, interval fsync) fails and the store stops taking writes; the
 * event is only emitted when someone listens, so an unobserved failure never throws.
 */
export class Store extends EventEmitter {
  readonly directory: string;
  private readonly options: ResolvedOptions;
  private readonly fs: FileSystem;
  private readonly lock: DirectoryLock | undefined;
  private index: OrderedIndex<EntryLocation>;
  /** The log's segments, with the totals the compaction scheduler checks after every commit. */
  private readonly segments: SegmentTable;
  private readonly readHandles = new Map<number, FileHandle>();
  private readonly readCache: ReadCache;
  private active: SegmentWriter | undefined;
  private state: StoreState = 'open';
  private failure: SiltError | undefined;
  private revision: number;
  private lastAppliedRevision: number;
  private readonly recoveryReport: RecoveryReport;

  private readonly queue: PendingWrite[] = [];
  /**
   * What the queued writes will make of a key: the revision of its last queued write, negated for
   * a delete (a number, not an object: one Map entry and no allocation per write).
   */
  private readonly pending = new Map<string, number>();
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private compacting: Promise<void> | undefined;
  /** Dead bytes are past `stallRatio`: writes wait for compaction. */
  private stalled = false;
  /** Writes waiting for compaction that have not taken their turn yet (see `afterStall`). */
  private stallWaiting = 0;
  /** Settles once the last write that waited for compaction took its turn. */
  private stallTurn: Promise<void> = Promise.resolve();
  /** Set when a background compaction run retired nothing: the user bytes written by then. */
  private futileSinceUserBytes: number | undefined;
  /**
   * Compacted segments waiting for the readers that may use them, and (`awaitsCheckpoint`) for a
   * checkpoint that no longer names them (see `releaseRetired`).
   */
  private readonly retired: RetiredSegment[] = [];
  /** Bumped at each retirement; readers pin the epoch they were created in. */
  private readerEpoch = 0;
  private readonly readerPins = new Map<number, number>();
  private readonly compactionCounters: CompactionStats = {
    runs: 0,
    segmentsCompacted: 0,
    segmentsDeleted: 0,
    bytesRead: 0,
    bytesWritten: 0,
    tombstonesKept: 0,
    tombstonesDropped: 0,
    expiredAsTombstones: 0,
    stalls: 0,
    stallMs: 0,
  };
  private readonly rollWaiters: Array<{ resolve: () => void; reject: (error: unknown) => void }> = [];
  /** Bytes written to the active segment since its last fsync. */
  private dirty = false;
  private intervalTimer: NodeJS.Timeout | undefined;
  private intervalSync: Promise<void> | undefined;
  /** An fdatasync of the active segment started by `fsyncActiveIfDirty`, while it runs. */
  private logSyncing: Promise<void> | undefined;

  private checkpointRunning: Promise<void> | undefined;
  private checkpointNext:
    | { position: HintPosition; snapshot: IndexSnapshot<EntryLocation>; blocks: Array<[string, LogBlockLocation]>; dropped: Array<[string, EntryLocation]>; releases: RetiredSegment[] }
    | undefined;
  /** Position of the last checkpoint written or loaded: nothing to do on close if unchanged. */
  private checkpointPosition: { segmentId: number; offsetBytes: number } | undefined;

  private liveBytes = 0;
  /**
   * The checkpoint on disk, the one an open would load: 'none' without an `index.hint`; its
   * position's segment once this store wrote or loaded it; 'unknown' for one it could not load,
   * or after a write of it failed (either file may be there). Compaction deletes a segment past
   * it without writing a checkpoint first: the checkpoint names nothing in it (see
   * `checkpointNamesNothingIn`).
   */
  private checkpointOnDisk: { segmentId: number } | 'none' | 'unknown' = 'unknown';
  /** Entries of the checkpoint on disk, written or loaded (with `checkpointBytes`: bytes per entry). */
  private checkpointEntriesOnDisk = 0;
  /** Size of `index.hint` on disk, and bytes written to checkpoints by this open. */
  private checkpointBytes = 0;
  private checkpointBytesWritten = 0;
  /**
   * `counters.logBytes` when the last checkpoint's index snapshot was taken; below 0 after an
   * open that replayed log bytes the existing checkpoint does not cover (they count as written
   * since it). See CHECKPOINT_LOG_GROWTH.
   */
  private logBytesAtCheckpoint = 0;
  private readonly blocks: BlockStore;
  private orphanBlocksRemoved = 0;
  /** Phase 1 of block GC: the persisted list of unreferenced blocks and when they were listed. */
  private delayed: DelayedList | undefined;
  /** Blocks whose last reference went away and that are not listed yet, with the reader epoch then. */
  private readonly candidates = new Map<string, number>();
  /** Reader epoch at which each listed block lost its last reference (absent: listed at open, no reader). */
  private readonly listedEpochs = new Map<string, number>();
  /** Blocks a write in flight has stored or found, until its record is applied or it fails. */
  private readonly holds = new Map<string, number>();
  /**
   * Expired puts with blocks dropped from the index whose tombstones are not applied yet (key →
   * the put's location). A checkpoint of the index taken meanwhile still holds them: it covers
   * the log only up to a position the tombstone lies after, so without the put a reopen from it
   * (the tombstone lost to a crash) would find the blocks unreferenced and delete them, and a later
   * replay of the log would find the put referencing them again.
   */
  private readonly droppedUntilLogged = new Map<string, EntryLocation>();
  /** Per key, the settling of the last write that must finish before later writes to it start. */
  private readonly keyTails = new Map<string, Promise<void>>();
  private gcRunning: Promise<GcResult> | undefined;
  /** The id of the segment a roll is creating, while it does (see `verify`). */
  private creatingSegmentId: number | undefined;
  /** The run of `close()` once it was called: new writes are refused, those called before finish. */
  private closeRun: Promise<void> | undefined;
  /** Per key, the digest `stat()` computed for an object and its revision (see `objectDigest`). */
  private readonly objectDigests = new Map<string, { revision: number; digest: Promise<string> }>();
  /** Per key, the writes waiting for compaction before they are queued (see `stallHeld`). */
  private readonly heldByStall = new Map<string, Set<Promise<void>>>();
  /**
   * The stream sources waiting for a chunk (`nextChunk`), each rejected (with CLOSED) when
   * `close()` is called. One short-lived promise per wait, not one long-lived promise raced every
   * time: each `Promise.race` against a promise that stays pending leaves a reaction on it that
   * holds the race's result, so every chunk a stream ever read stayed reachable until close (a
   * 1 GiB `putStream` held 1 GiB).
   */
  private readonly chunkWaits = new Set<(error: SiltError) => void>();
  private gcTimer: NodeJS.Timeout | undefined;
  /** Indexed puts with `ttlMs`, by expiry time: the sweep drops them from the index once expired. */
  private readonly expiries = new ExpiryQueue();
  private expiryTimer: NodeJS.Timeout | undefined;
  /** When the armed expiry timer fires (ms since the epoch). */
  private expiryTimerDueMs = 0;
  private lastExpirySweepMs = 0;
  /** Read-only: where the bytes of the newest segment ended at open (see `viewIsStale`). */
  private viewLogEndBytes = 0;
  /** Read-only: the log was found gone past this open's view (see `viewIsStale`). */
  private viewStale = false;
  /** The last write of tombstones the expiry sweep queued, until it lands (idle() waits for it). */
  private expiryWrite: Promise<void> | undefined;
  /** Entries the queue kept at its last pass over stale ones. */
  private expiriesKept = 0;
  private readonly expiryCounters = { swept: 0, sweeps: 0, tombstones: 0 };
  /** Segments a compaction run is rewriting now. */
  private readonly segmentsInCompaction = new Set<number>();
  /** Background slice compaction: chunks waiting (per key), and the run in progress. */
  private readonly objectQueue = new Map<string, Set<number>>();
  private objectCompacting: Promise<void> | undefined;
  /**
   * Pacing of background slice compaction (`objects.compactBudget`): bytes it may still rewrite
   * (negative: rewritten ahead of the object writes that pay for them), when an object write last
   * happened, the wake-up of a paced wait, and whether `idle()` asked it to catch up.
   */
  private objectCredit = 0;
  private lastObjectWriteMs = 0;
  private objectPaceWake: (() => void) | undefined;
  private objectCatchUp = false;
  private objectWakeOnWrite = false;
  private readonly objectCounters = { writes: 0, lightCompactions: 0, heavyCompactions: 0, syncCompactions: 0, bytesRewritten: 0, conflicts: 0, givenUp: 0, inlineSlices: 0, inlineBytes: 0, slicesDeduplicated: 0, blocksReused: 0, deltaRecords: 0, pacedWaits: 0, expiredRetries: 0 };
  /**
   * Blocks carried in the log (BLOCK entries), by hex hash: where the newest copy is. One is live
   * (counted in its segment's live bytes, copied by segment compaction, listed in the checkpoint)
   * while the block's reference count is above zero; a dead one stays mapped until its segment
   * file is deleted, for readers that still hold a manifest naming it.
   */
  private readonly logBlocks = new Map<string, LogBlockLocation>();
  private readonly gcCounters = { runs: 0, listed: 0, deleted: 0, bytesDeleted: 0, revived: 0, skippedPinned: 0 };
  /** Live versions pointing at each block (hex hash); absent = zero. */
  private readonly referenceCounts = new Map<string, number>();
  /** Bytes of the live values held in blocks, counting each value (not each block) once. */
  private logicalBlockBytes = 0;
  private readonly counters = { puts: 0, deletes: 0, batches: 0, groups: 0, fsyncs: 0, inlineFsyncs: 0, logBytes: 0, userBytes: 0 };
  /**
   * The running average (weight 1/8 for the newest) of how long the group commit's fdatasync
   * took, in ms: on the main thread, the call; in the thread pool, from the call to its callback.
   * While it is at most `inlineSyncMaxMs` the next one runs on the main thread.
   */
  private groupSyncMs = 0;
  private readonly checkpointCounters = { written: 0, lastEntryCount: 0, lastDurationMs: 0, failures: 0 };

  private constructor(
    directory: string,
    options: ResolvedOptions,
    fs: FileSystem,
    lock: DirectoryLock | undefined,
    index: OrderedIndex<EntryLocation>,
    revision: number,
    report: RecoveryReport,
  ) {
    super();
    this.directory = directory;
    this.options = options;
    this.segments = new SegmentTable(options.compaction.deadRatio, NEARLY_DEAD);
    this.fs = fs;
    this.lock = lock;
    this.index = index;
    this.revision = revision;
    this.lastAppliedRevision = revision;
    this.recoveryReport = report;
    this.readCache = new ReadCache(options.cacheBytes);
    // Block files kept open for page reads take a quarter of the read-handle budget again.
    this.blocks = new BlockStore(fs, directory, options.blockBytes, options.blockCacheBytes, options.stagedBlockBytes, undefined, Math.floor(options.maxOpenFiles / 4));
  }

  /** Open (and recover) the store in `directory`. See `open()`. */
  static async open(directory: string, openOptions?: OpenOptions): Promise<Store> {
    if (typeof directory !== 'string' || directory.length === 0) throw invalid('directory must be a non-empty string');
    const options = resolveOptions(openOptions);
    const fs = openOptions?.fileSystem ?? defaultFileSystem;
    directory = directory.replace(/\/+$/, '') || '/';
    let exists = true;
    try {
      const stat = await fs.stat(directory);
      if (!stat.isDirectory) throw invalid(`${directory} is not a directory`);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw toIoError(error, `stat ${directory}`);
      exists = false;
    }
    if (!exists) {
      if (options.readOnly || !options.createIfMissing) {
        throw new SiltError(ErrorCode.NOT_FOUND, `${directory} does not exist`);
      }
      await fs.mkdir(directory).catch((error: unknown) => {
        throw toIoError(error, `creating ${directory}`);
      });
    }
    const lock = options.readOnly
      ? undefined
      : await DirectoryLock.acquire(fs, directory).catch((error: unknown) => {
          throw toIoError(error, `locking ${directory}`);
        });
    if (lock !== undefined) return Store.load(directory, options, fs, lock);
    // A read-only open takes no lock: a process writing the store may compact away a segment, or
    // collect a block, between the listing and the read of the file. Listing again sees the store
    // as it is now.
    for (let attempt = 1; ; attempt++) {
      try {
        return await Store.load(directory, options, fs, undefined);
      } catch (error) {
        const errno = ((error as { cause?: NodeJS.ErrnoException }).cause ?? (error as NodeJS.ErrnoException)).code;
        if (errno !== 'ENOENT' || attempt === READ_ONLY_OPEN_ATTEMPTS) throw error;
      }
    }
  }

  /** Recover the store in `directory` (locked unless read-only) and start it. */
  private static async load(directory: string, options: ResolvedOptions, fs: FileSystem, lock: DirectoryLock | undefined): Promise<Store> {
    let opened: Store | undefined;
    try {
      const recovered = await recover(fs, directory, options.readOnly, Date.now());
      const store = new Store(
        directory,
        options,
        fs,
        lock,
        recovered.index,
        recovered.maxRevision,
        recovered.report,
      );
      opened = store;
      for (const segment of recovered.segments) {
        store.segments.set(segment.segmentId, {
          segmentId: segment.segmentId,
          path: segment.path,
          sizeBytes: segment.sizeBytes,
          appliedBytes: segment.sizeBytes,
          sealed: segment.summary !== undefined,
          liveBytes: 0,
          liveBlockBytes: 0,
          summary: segment.summary,
        });
      }
      store.liveBytes = recovered.liveBytes;
      // Summed per segment first: each change of a segment's `liveBytes` updates the segment
      // table's totals (segment-table.ts), which done once per key took about 0.3 s of an open
      // of 1M keys.
      const liveBySegment = new Map<number, number>();
      store.index.forEach((key, location) => {
        liveBySegment.set(location.segmentId, (liveBySegment.get(location.segmentId) ?? 0) + liveLength(location));
        if (location.expiresAtMs !== undefined) store.expiries.push(location.expiresAtMs, key, location.revision);
      });
      for (const [segmentId, bytes] of liveBySegment) {
        const segment = store.segments.get(segmentId);
        if (segment !== undefined) segment.liveBytes += bytes;
      }
      for (const [hex, location] of recovered.logBlocks) store.logBlocks.set(hex, location);
      // The retains below count the live log blocks into their segments' live bytes.
      for (const key of recovered.referenceKeys) {
        const location = store.index.get(key);
        const held = location?.reference ?? location?.object;
        if (held !== undefined) store.retain(held);
      }
      const leftovers = await store.blocks.open(options.readOnly, directory);
      if (options.readOnly) {
        // Where the newest segment's bytes ended at open: its valid records, and past them the
        // damaged tail a read-only open leaves in place (not cut), which is not a writer's.
        const dropped = recovered.report.droppedSegmentId === recovered.activeSegment?.segmentId ? recovered.report.droppedBytes : 0;
        store.viewLogEndBytes = (recovered.activeSegment?.sizeBytes ?? 0) + dropped;
        store.blocks.viewIsStale = () => store.viewIsStale();
      }
      // Block files written under their final name can be incomplete after a crash, but only if
      // no durable record points at them: those are never trusted by a write of the same content.
      // A referenced block that is also carried in the log may have a file of its own that a
      // put was writing when the process died (the write, and the record it was for, did not
      // finish; the log's copy keeps the block referenced): not trusted either.
      store.blocks.distrust((hex) => store.referenceCounts.has(hex) && !store.logBlocks.has(hex));
      const hint = await fs.stat(`${directory}/${HINT_FILE_NAME}`).then(
        (stat) => stat.sizeBytes,
        (error: NodeJS.ErrnoException) => (error.code === 'ENOENT' ? undefined : 0),
      );
      store.checkpointBytes = hint ?? 0;
      const loaded = recovered.report.checkpointPosition;
      store.checkpointOnDisk = hint === undefined ? 'none' : loaded !== undefined ? { segmentId: loaded.segmentId } : 'unknown';
      store.checkpointEntriesOnDisk = recovered.report.checkpointEntries;
      // What this open replayed is log the checkpoint does not cover, as if written since it: a
      // store that crashes again and again does not replay more each time.
      store.logBytesAtCheckpoint = store.counters.logBytes - recovered.report.replayedBytes;
      if (!options.readOnly && !options.checkpoint && store.checkpointBytes > 0) {
        // A checkpoint an earlier open wrote would not be kept up to date from here on: stale, it
        // is refused at the next open only once compaction removed a segment it names (a failed
        // load first), and verify() reports it. Removed; the next open replays the log.
        await fs.unlink(`${directory}/${HINT_FILE_NAME}`);
        await fs.syncDirectory(directory);
        store.checkpointBytes = 0;
        store.checkpointOnDisk = 'none';
      }
      if (recovered.report.usedCheckpoint && recovered.report.replayedEntries === 0) {
        const last = recovered.activeSegment;
        if (last !== undefined) store.checkpointPosition = { segmentId: last.segmentId, offsetBytes: last.sizeBytes };
      }
      store.delayed = await DelayedList.open(fs, directory, options.readOnly);
      if (!options.readOnly) {
        await store.startWriting(recovered.activeSegment);
        await store.blocks.measure();
        await store.sweepOrphanBlocks(leftovers);
        store.armExpirySweep();
      } else {
        await store.blocks.measure();
      }
      return store;
    } catch (error) {
      // The block store lets go of its directory and staging files (it may hold both by now).
      await opened?.blocks.close().catch(() => undefined);
      await lock?.release();
      throw toIoError(error, `opening ${directory}`);
    }
  }

  /**
   * The orphan sweep at open. Temporary files of block writes that never finished are deleted at
   * once. Block files no live key references (left by aborted or crashed writes, and blocks whose
   * last reference went away before the last close) go on the delayed list, keeping the time they
   * were listed if they already were, and the first GC pass (run here unless `gc: false`) deletes
   * those that have waited `gc.minAgeMs`. This runs before any write or reader exists, and only
   * after the recovered log is durable, so the records that dropped the references cannot come
   * back after a power loss.
   */
  private async sweepOrphanBlocks(leftovers: string[]): Promise<void> {
    const orphans = [...this.blocks.presentHashes()].filter((hex) => !this.referenceCounts.has(hex));
    if (orphans.length === 0 && leftovers.length === 0 && (this.delayed as DelayedList).entries.size === 0) return;
    await (this.active as SegmentWriter).datasync();
    for (const name of leftovers) await this.blocks.removeLeftover(name);
    const delayed = this.delayed as DelayedList;
    this.gcCounters.listed += await delayed.add(orphans, Date.now());
    await delayed.sync();
    await this.blocks.syncDirectory();
    // Readers created from now on (epoch 1 and up) cannot see blocks listed at open.
    this.readerEpoch = Math.max(this.readerEpoch, 1);
    if (this.options.gc.enabled) {
      const result = await this.collectGarbage();
      this.orphanBlocksRemoved = result.deleted;
    }
  }

  /** How far ahead the active segment's file is extended (see segment-writer.ts). */
  private preallocateStep(): number {
    return Math.min(PREALLOCATE_STEP_BYTES, this.options.segmentBytes);
  }

  private async startWriting(activeSegment: { segmentId: number; path: string; sizeBytes: number; baseRevision: number } | undefined): Promise<void> {
    if (activeSegment !== undefined) {
      const handle = await this.fs.open(activeSegment.path, 'readwrite');
      this.active = SegmentWriter.resume(activeSegment.path, handle, activeSegment.segmentId, activeSegment.baseRevision, activeSegment.sizeBytes, this.preallocateStep());
      await this.active.preallocate();
    } else {
      const lastId = Math.max(0, ...this.segments.keys());
      this.active = await SegmentWriter.create(this.fs, this.directory, lastId + 1, this.revision, this.preallocateStep());
      this.addSegmentRecord(this.active);
    }
    const durability = this.options.durability;
    if (typeof durability === 'object') {
      this.intervalTimer = setInterval(() => this.syncOnInterval(), durability.intervalMs);
      this.intervalTimer.unref();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Reads

  /** The key as a latin1 string (one char per byte), validated. */
  private keyString(key: unknown): string {
    let keyString: string;
    if (typeof key === 'string') {
      // An ASCII string's UTF-8 bytes are its chars: no encoding needed.
      keyString = ASCII.test(key) ? key : latin1(Buffer.from(key, 'utf8'));
    } else if (key instanceof Uint8Array) {
      keyString = latin1(key);
    } else {
      throw invalid(`key must be a string or a Uint8Array, got ${key === null ? 'null' : typeof key}`);
    }
    if (keyString.length === 0) throw invalid('key must not be empty');
    if (keyString.length > this.options.maxKeySize) {
      throw new SiltError(ErrorCode.TOO_LARGE, `key of ${keyString.length} bytes exceeds maxKeySize ${this.options.maxKeySize}`);
    }
    return keyString;
  }

  /** The location of `key` in `view` (the live index or a snapshot), if it is there and live (not expired). */
  private findLive(key: string, view: OrderedIndex<EntryLocation> | IndexSnapshot<EntryLocation>): EntryLocation | undefined {
    const location = view.get(key);
    // Date.now() only for keys with an expiry: it is a measurable part of a get.
    return location !== undefined && (location.expiresAtMs === undefined || location.expiresAtMs > Date.now()) ? location : undefined;
  }

  private checkReadable(): void {
    if (this.state === 'closed' || this.state === 'closing') throw new SiltError(ErrorCode.CLOSED, 'the store is closed');
  }

  private isLive(location: EntryLocation | undefined, nowMs: number): location is EntryLocation {
    return location !== undefined && (location.expiresAtMs === undefined || location.expiresAtMs > nowMs);
  }

  /** A segment a reader may use: a live one, or a compacted one kept for the readers that pinned it. */
  private segmentForRead(segmentId: number): { path: string; sizeBytes: number } {
    const segment = this.segments.get(segmentId) ?? this.retired.find((retired) => retired.segmentId === segmentId);
    if (segment === undefined) throw new SiltError(ErrorCode.CORRUPTION, `index points at missing segment ${segmentId}`);
    return segment;
  }

  private readHandle(segmentId: number): FileHandle {
    if (this.active !== undefined && this.active.segmentId === segmentId) return this.active.handle;
    let handle = this.readHandles.get(segmentId);
    if (handle !== undefined) {
      // Most recently used last: Map iteration order is insertion order.
      this.readHandles.delete(segmentId);
      this.readHandles.set(segmentId, handle);
      return handle;
    }
    const segment = this.segmentForRead(segmentId);
    try {
      handle = this.fs.openSync(segment.path, 'read');
    } catch (error) {
      if (this.options.readOnly && (error as NodeJS.ErrnoException).code === 'ENOENT' && this.viewIsStale()) {
        throw new SiltError(ErrorCode.STALE, `segment ${segment.path} was compacted away since this read-only open (by a process writing the store): open it again`, { cause: error });
      }
      throw toIoError(error, `opening ${segment.path}`);
    }
    this.readHandles.set(segmentId, handle);
    this.evictReadHandles();
    return handle;
  }

  /**
   * Read-only: whether the log has gone on past this open's view, so that a file the view needs
   * may have been removed by the process writing the store (`STALE`), not lost (`CORRUPTION`).
   * A writer removes a segment or a block this view reads from only after writing a record the
   * view does not hold (a newer write of the keys it served, or compaction's copies; a segment it
   * reads nothing from can go without, see `segmentsNotNeeded`), and every record it writes
   * lands after the view's end: in the view's last segment (or a footer there at a roll), or in
   * a later segment once that one is sealed. Synchronous, for the synchronous read path.
   */
  private viewIsStale(): boolean {
    // Once gone past, the view stays so (the files that showed it may go later: compacted away).
    this.viewStale ||= this.viewGonePast();
    return this.viewStale;
  }

  private viewGonePast(): boolean {
    let last: SegmentRecord | undefined;
    for (const segment of this.segments.values()) if (last === undefined || segment.segmentId > last.segmentId) last = segment;
    if (last === undefined) return false;
    // A segment after the view's newest, once its header is written: the writer rolled past the
    // view. A file named like one without a valid header says nothing (a creation still writing
    // its header, one a crash cut short, or damage), so neither whether it was there at open nor
    // whether it is there now does. Any later one, not only the next: the writer may have rolled
    // on and compacted the next one away. Checked whether or not the view has its newest segment
    // sealed: an open that read it while the writer sealed it (its size taken before, its footer
    // read after) has it unsealed, ending after the footer, with nothing past that to find.
    if (this.segmentIdsAfter(last.segmentId).some((segmentId) => this.segmentHeaderIsValid(segmentId))) return true;
    if (last.sealed) return false;
    const handle = this.tryOpen(last.path);
    // Gone: compacted away (sealed first, at a roll).
    if (handle === undefined) return true;
    try {
      // Sealed since, the next segment not created yet (the writer is still syncing this one):
      // an open that read it meanwhile has it unsealed, ending with the footer and trailer.
      if (this.sealedOnDisk(handle, last.sizeBytes)) return true;
      // Bytes after the view's end that are not the preallocation's zeros: records, or a footer.
      const probe = Buffer.alloc(ENTRY_HEADER_BYTES);
      const read = handle.readSync(probe, 0, probe.length, Math.max(last.sizeBytes, this.viewLogEndBytes));
      if (probe.subarray(0, read).some((byte) => byte !== 0)) return true;
      // A whole record where the view's valid records end: the tail the open took for damage
      // was a write in progress (its bytes can land in any order), finished since.
      return this.wholeEntryAt(handle, last.sizeBytes);
    } finally {
      handle.closeSync();
    }
  }

  /** The ids of the segment files after `segmentId` in the directory (only the next one's, without a synchronous listing). */
  private segmentIdsAfter(segmentId: number): number[] {
    if (this.fs.readdirSync !== undefined) {
      try {
        return this.fs
          .readdirSync(this.directory)
          .map(parseSegmentFileName)
          .filter((id): id is number => id !== undefined && id > segmentId);
      } catch {
        // Listing failed: the next one, as without a listing.
      }
    }
    return [segmentId + 1];
  }

  /** Whether a segment file's first `endBytes` end with a footer (CRC holding) and the trailer naming it: sealed. */
  private sealedOnDisk(handle: FileHandle, endBytes: number): boolean {
    if (endBytes < SEGMENT_HEADER_BYTES + SEGMENT_TRAILER_BYTES) return false;
    const trailer = Buffer.alloc(SEGMENT_TRAILER_BYTES);
    if (readFullySync(handle, trailer, endBytes - SEGMENT_TRAILER_BYTES) < trailer.length) return false;
    const footerAt = decodeTrailer(trailer);
    // A footer holds two keys at most (each under 64 KiB): a longer one is no footer, and not read.
    if (footerAt === undefined || footerAt < SEGMENT_HEADER_BYTES || footerAt >= endBytes - SEGMENT_TRAILER_BYTES || endBytes - SEGMENT_TRAILER_BYTES - footerAt > 256 * 1024) return false;
    const footer = Buffer.alloc(endBytes - SEGMENT_TRAILER_BYTES - footerAt);
    if (readFullySync(handle, footer, footerAt) < footer.length) return false;
    const check = checkEntry(footer, 0);
    return check.ok && check.type === EntryType.FOOTER && check.lengthBytes === footer.length;
  }

  /** Whether a record (or batch frame) whose CRC holds starts at `offset` of a segment file. */
  private wholeEntryAt(handle: FileHandle, offset: number): boolean {
    const header = Buffer.alloc(ENTRY_HEADER_BYTES);
    if (handle.readSync(header, 0, header.length, offset) < header.length) return false;
    const length = header.readUInt32LE(4);
    // A length no record of this store has is damage, not a record: not read.
    if (length < ENTRY_HEADER_BYTES || length > Math.max(this.options.segmentBytes, WHOLE_ENTRY_PROBE_LIMIT_BYTES)) return false;
    const entry = Buffer.alloc(length);
    return readFullySync(handle, entry, offset) === length && checkEntry(entry, 0).ok;
  }

  private tryOpen(path: string): FileHandle | undefined {
    try {
      return this.fs.openSync(path, 'read');
    } catch {
      return undefined;
    }
  }

  /** Whether the file of segment `segmentId` is there with a valid header naming it. */
  private segmentHeaderIsValid(segmentId: number): boolean {
    const handle = this.tryOpen(`${this.directory}/${segmentFileName(segmentId)}`);
    if (handle === undefined) return false;
    try {
      const bytes = Buffer.alloc(SEGMENT_HEADER_BYTES);
      const header = decodeSegmentHeader(bytes.subarray(0, handle.readSync(bytes, 0, bytes.length, 0)));
      return typeof header !== 'string' && header.segmentId === segmentId;
    } finally {
      handle.closeSync();
    }
  }

  /** Close the least recently used read handles beyond `maxOpenFiles`. */
  private evictReadHandles(): void {
    while (this.readHandles.size > this.options.maxOpenFiles) {
      const [oldestId, oldest] = this.readHandles.entries().next().value as [number, FileHandle];
      this.readHandles.delete(oldestId);
      // Reads are synchronous, so no read is using the evicted handle now; closed at once, so
      // a loop of synchronous reads never holds more than maxOpenFiles.
      try {
        oldest.closeSync();
      } catch {
        // A failed close of a read-only descriptor loses nothing.
      }
    }
  }

  /** The bytes at `location`, through the read cache (see `ReadCache.view`). */
  private readView(location: EntryLocation): CacheView {
    const segment = this.segmentForRead(location.segmentId);
    // A cache hit needs no file handle: it leaves the handles' LRU order alone (and opens nothing).
    const cached = this.readCache.cachedView(location.segmentId, segment.sizeBytes, location.offsetBytes, location.lengthBytes);
    if (cached !== undefined) return cached;
    try {
      return this.readCache.view(this.readHandle(location.segmentId), location.segmentId, segment.sizeBytes, location.offsetBytes, location.lengthBytes);
    } catch (error) {
      throw toIoError(error, `reading segment ${location.segmentId}`);
    }
  }

  private corruptAt(location: EntryLocation, reason: string): SiltError {
    return new SiltError(ErrorCode.CORRUPTION, `segment ${segmentFileName(location.segmentId)} offset ${location.offsetBytes}: ${reason}`);
  }

  /**
   * Check the inline PUT at `location`, read as `view`: it must hold `key` (a latin1 key string) at
   * the location's revision and pass its CRC. Returns where its key starts in `view.bytes` (the
   * value follows the key to the entry's end).
   */
  private checkPut(key: string, location: EntryLocation, view: CacheView): number {
    const bytes = view.bytes;
    const start = view.start;
    // CRC once per entry per cached block: a cached block's bytes never change (it lies wholly
    // below the written size, appends only go past it, nothing writes into it, and no caller gets
    // a view of it: values are copied out), so an entry whose CRC passed in this very block object
    // needs no second check. A block evicted and read again is a new object with no marks.
    const checked = isChecked(view);
    const keyAt = checkPutEntry(bytes, start, location.lengthBytes, location.revision, key.length, checked);
    if (typeof keyAt === 'string') throw this.corruptAt(location, keyAt);
    if (!checked) markChecked(view);
    if (!keyAtMatches(bytes, keyAt, key)) throw this.corruptAt(location, 'entry does not hold the key the index expects');
    return keyAt;
  }

  /**
   * Read and check the entry at `location`; it must hold `key` at the location's revision.
   *
   * The full check decodes the entry's header and compares its key bytes, which in a random get
   * was the largest part of the time (about a sixth) after the index lookup. Its result is kept:
   * once the entry at `location` has passed it, `location.verifiedKey` is the index's own string
   * for the key it holds. A later read then skips it when (1) `key` equals `verifiedKey` (a
   * comparison of two strings already in the CPU cache: the lookup just compared the same
   * string), so the entry still holds exactly this key, type, length and revision, as the bytes
   * at a location never change (segments are append-only and their ids are never reused); and
   * (2) the entry's CRC passed in the cached block it is read from now (its mark; a block read
   * from disk again is checked again). A location reached under another key, as a misplaced
   * index entry would be, fails (1) and is checked in full, and throws. `storedKey`, when the
   * caller has it, is the index's own string for `key` (from its lookup, `lastFoundKey`, or its
   * iteration), kept as the memo without a second descent.
   */
  private readValue(key: string, location: EntryLocation, storedKey?: string): Buffer {
    if (location.reference !== undefined || location.object !== undefined) return this.readReferenceValue(key, location);
    const view = this.readView(location);
    const end = view.start + location.lengthBytes;
    const keyAt = view.start + (location.expiresAtMs === undefined ? ENTRY_HEADER_BYTES : ENTRY_HEADER_BYTES + EXPIRY_FIELD_BYTES);
    if (location.verifiedKey === key && isChecked(view)) return copyOut(view.bytes, keyAt + key.length, end);
    const checkedAt = this.checkPut(key, location, view);
    // Memoized only when the header size the fast path assumes is the entry's (it always is for
    // a location built from its entry; this keeps the fast path from trusting that).
    if (checkedAt === keyAt && view.markAt >= 0) location.verifiedKey = storedKey === key ? storedKey : this.index.storedKey(key);
    const valueAt = checkedAt + key.length;
    // A view into the cache must not escape: the caller could change the cached bytes.
    return view.markAt < 0 ? view.bytes.subarray(valueAt, end) : copyOut(view.bytes, valueAt, end);
  }

  /** `readValue` of a PUT_REFERENCE or PUT_OBJECT: check the entry, then read the value from its blocks. */
  private readReferenceValue(key: string, location: EntryLocation): Buffer {
    this.checkBlocksEntry(key, location);
    if (location.object !== undefined) return this.readObjectSync(location.object, 0, location.object.sizeBytes);
    return this.readReferenceSync(location.reference as ValueReference);
  }

  /** The PUT_REFERENCE or PUT_OBJECT entry at `location` is whole (CRC) and holds the key, revision and length the index expects. */
  private checkBlocksEntry(key: string, location: EntryLocation): void {
    const view = this.readView(location);
    const end = view.start + location.lengthBytes;
    const decoded = end <= view.bytes.length ? decodeEntry(view.bytes, view.start, end) : 'entry runs past the end of the file';
    if (typeof decoded === 'string') throw this.corruptAt(location, decoded);
    const expectedType = location.object === undefined ? EntryType.PUT_REFERENCE : location.chainBytes === undefined ? EntryType.PUT_OBJECT : EntryType.PUT_OBJECT_DELTA;
    if (decoded.type !== expectedType || decoded.value === undefined || decoded.lengthBytes !== location.lengthBytes) {
      throw this.corruptAt(location, `expected a put entry of ${location.lengthBytes} bytes`);
    }
    if (decoded.revision !== location.revision || decoded.key.length !== key.length || !keyAtMatches(decoded.key, 0, key)) {
      throw this.corruptAt(location, 'entry does not hold the key the index expects');
    }
  }

  /** The whole value held in blocks, each block verified against its hash. */
  private readReferenceSync(reference: ValueReference): Buffer {
    if (reference.sizeBytes > BUFFER_BYTES_MAX) {
      throw new SiltError(ErrorCode.TOO_LARGE, `a ${reference.sizeBytes}-byte value does not fit in one Buffer: use createReadStream`);
    }
    const value = Buffer.allocUnsafe(reference.sizeBytes);
    const count = referenceBlockCount(reference);
    for (let index = 0; index < count; index++) {
      // Straight into the value: each block's data is read into place and verified there.
      this.blocks.readSync(referenceBlockHash(reference, index), referenceBlockLength(reference, index), value, index * reference.blockBytes);
    }
    return value;
  }

  /**
   * A Readable of the key's value, or of bytes `start..end` (inclusive, as in
   * `fs.createReadStream`). Only the blocks the range touches are read: a block wholly inside the
   * range verified whole (its hash), one the range covers in part only in the pages it touches
   * (`BlockStore.readRange`). The stream reads the value as it is when this is called. A missing
   * key errors with NOT_FOUND.
   */
  createReadStream(key: Bytes, options?: ReadStreamOptions): Readable {
    this.checkReadable();
    const keyString = this.keyString(key);
    const start = options?.start ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) throw invalid(`start must be a non-negative integer, got ${String(start)}`);
    const end = options?.end ?? Infinity;
    if (end !== Infinity && (!Number.isSafeInteger(end) || end < 0)) throw invalid(`end must be a non-negative integer, got ${String(end)}`);
    const signal = options?.signal;
    const location = this.index.get(keyString);
    if (!this.isLive(location, Date.now())) throw new SiltError(ErrorCode.NOT_FOUND, 'key not found');
    const reference = location.reference;
    const object = location.object;
    const sizeBytes = this.valueSize(keyString, location);
    if (start > sizeBytes) throw invalid(`start ${start} is past the end of a ${sizeBytes}-byte value`);
    const last = Math.min(end, sizeBytes - 1);
    const store = this;
    // An inline value (at most `valueThreshold` bytes) is read now, so the stream needs no segment later.
    const inline = reference === undefined && object === undefined && last >= start ? this.readValue(keyString, location).subarray(start, last + 1) : undefined;
    async function* chunks(): AsyncGenerator<Buffer> {
      if (last < start) return;
      if (object !== undefined) {
        // A range shorter than a block: its pieces read alone, each only in the pages it touches
        // (the windows of `objectChunks` read every block they touch whole).
        if (last + 1 - start < store.options.blockBytes) {
          const target = Buffer.alloc(last + 1 - start);
          for (const part of store.objectRangeParts(object, start, last + 1, target)) {
            store.checkReadable();
            (await store.blocks.readRange(part.hash, part.blockBytes, part.from, part.to)).copy(target, part.at);
          }
          yield target;
        } else {
          yield* store.objectChunks(object, start, last + 1);
        }
        return;
      }
      if (reference === undefined) {
        yield inline as Buffer;
        return;
      }
      const firstBlock = Math.floor(start / reference.blockBytes);
      const lastBlock = Math.floor(last / reference.blockBytes);
      // The bytes of block `index` inside the range: the block whole, or the part in the range.
      const readBlock = (index: number): Promise<Buffer> => {
        const blockStart = index * reference.blockBytes;
        const blockBytes = referenceBlockLength(reference, index);
        const from = Math.max(start, blockStart) - blockStart;
        const to = Math.min(last + 1, blockStart + blockBytes) - blockStart;
        const hash = referenceBlockHash(reference, index);
        const read = from === 0 && to === blockBytes ? store.blocks.read(hash, blockBytes) : store.blocks.readRange(hash, blockBytes, from, to);
        // Awaited in turn; one read ahead of a stream destroyed meanwhile is dropped unhandled.
        read.catch(() => undefined);
        return read;
      };
      // One block read ahead: the next block's file is read in the thread pool while this one is
      // hashed and consumed (at most two blocks in memory besides the consumer's).
      let ahead: Promise<Buffer> | undefined;
      for (let index = firstBlock; index <= lastBlock; index++) {
        store.checkReadable();
        const current = ahead ?? readBlock(index);
        ahead = index < lastBlock ? readBlock(index + 1) : undefined;
        yield await current;
      }
    }
    const stream = Readable.from(chunks(), { objectMode: false });
    if (signal !== undefined) addAbortSignal(signal, stream);
    // The blocks of the value as of now stay on disk until the stream ends or is destroyed.
    if (reference !== undefined || object !== undefined) stream.once('close', this.pinReaders(stream));
    return stream;
  }

  /** Size, revision, SHA-256 digest (hex) and block count of the key's value, or undefined. */
  async stat(key: Bytes): Promise<ValueStat | undefined> {
    this.checkReadable();
    const keyString = this.keyString(key);
    const location = this.index.get(keyString);
    if (!this.isLive(location, Date.now())) return undefined;
    if (location.object !== undefined) {
      const object = location.object;
      const distinct = new Set<string>();
      forEachManifestBlock(object, (hash) => distinct.add(hash.toString('hex')));
      return { size: object.sizeBytes, revision: location.revision, digest: await this.objectDigest(keyString, location.revision, object), blocks: distinct.size };
    }
    if (location.reference !== undefined) {
      const reference = location.reference;
      return { size: reference.sizeBytes, revision: location.revision, digest: reference.digest.toString('hex'), blocks: referenceBlockCount(reference) };
    }
    const value = this.readValue(keyString, location);
    return { size: value.length, revision: location.revision, digest: sha256(value).toString('hex'), blocks: 0 };
  }

  /**
   * The SHA-256 of an object's bytes at `revision`. Computing it reads the whole object (holes
   * included), so it is kept per key for the revision it was computed at: slice compaction keeps
   * both the bytes and the revision, and every write takes a new revision. Concurrent stats of one
   * revision share one computation; a failed one (a damaged block) is not kept.
   */
  private objectDigest(keyString: string, revision: number, object: ObjectManifest): Promise<string> {
    const known = this.objectDigests.get(keyString);
    if (known !== undefined && known.revision === revision) {
      // Most recently used last: the first entry is the one evicted.
      this.objectDigests.delete(keyString);
      this.objectDigests.set(keyString, known);
      return known.digest;
    }
    const digest = (async () => {
      // The blocks of this version stay on disk while the digest is computed.
      const unpin = this.pinReaders(object);
      try {
        const hash = createHash('sha256');
        for await (const piece of this.objectChunks(object, 0, object.sizeBytes)) hash.update(piece);
        return hash.digest('hex');
      } finally {
        unpin();
      }
    })();
    const entry = { revision, digest };
    this.objectDigests.delete(keyString);
    this.objectDigests.set(keyString, entry);
    if (this.objectDigests.size > OBJECT_DIGESTS_KEPT) this.objectDigests.delete(this.objectDigests.keys().next().value as string);
    digest.catch(() => {
      if (this.objectDigests.get(keyString) === entry) this.objectDigests.delete(keyString);
    });
    return digest;
  }

  /** The value of `key`, or undefined when absent or expired. Verified; synchronous. */
  getSync(key: Bytes): Buffer | undefined {
    this.checkReadable();
    const keyString = this.keyString(key);
    const location = this.findLive(keyString, this.index);
    return location === undefined ? undefined : this.readValue(keyString, location, lastFoundKey());
  }

  /** The value of `key`, or undefined when absent or expired. */
  async get(key: Bytes): Promise<Buffer | undefined> {
    return this.getSync(key);
  }

  /**
   * Bytes `offset..offset + length` of the key's value: fewer where the value ends first, none
   * from its end on; undefined when the key is absent or expired. Verified as `get` is, reading
   * only what the range needs: of a block the range covers in part, just the pages it touches,
   * each checked against the block's page table, once one is kept (the first read of part of a
   * block reads it whole and checks its hash: `BlockStore.readRange`). Synchronous reads, as
   * `get`'s.
   */
  async readAt(key: Bytes, offset: number, length: number): Promise<Buffer | undefined> {
    return this.readAtSync(key, offset, length);
  }

  /** Synchronous `readAt`. */
  readAtSync(key: Bytes, offset: number, length: number): Buffer | undefined {
    this.checkReadable();
    const keyString = this.keyString(key);
    this.checkObjectNumber(offset, 'offset');
    this.checkObjectNumber(length, 'length');
    const location = this.findLive(keyString, this.index);
    return location === undefined ? undefined : this.readRangeOf(keyString, location, lastFoundKey(), offset, length);
  }

  /** `readAtSync` of the value at `location` (`foundKey`: the index's string for the key, as `readValue` takes it). */
  private readRangeOf(keyString: string, location: EntryLocation, foundKey: string | undefined, offset: number, length: number): Buffer {
    const size = this.valueSize(keyString, location);
    const start = Math.min(offset, size);
    const end = Math.min(size, offset + length);
    if (end - start > BUFFER_BYTES_MAX) {
      throw new SiltError(ErrorCode.TOO_LARGE, `a ${end - start}-byte range does not fit in one Buffer: use createReadStream`);
    }
    if (location.object === undefined && location.reference === undefined) return this.readValue(keyString, location, foundKey).subarray(start, end);
    // The value's record is checked in full once per location: its blocks are named in memory
    // (what is read comes from them, verified), and re-reading a record that names thousands of
    // blocks at every read of a few bytes cost more than the read (51 against 20 µs a 4 KiB
    // readAt of a 1 GiB value against an 8 MiB one). As for an inline value's memo (`readValue`),
    // a location reached under another key is checked again, and throws.
    if (location.verifiedKey !== keyString) {
      this.checkBlocksEntry(keyString, location);
      location.verifiedKey = foundKey === keyString ? foundKey : keyString;
    }
    if (location.reference !== undefined) return this.readReferenceRangeSync(location.reference, start, end);
    const object = location.object as ObjectManifest;
    if (end - start >= this.options.blockBytes) return this.readObjectSync(object, start, end);
    const target = Buffer.alloc(end - start);
    for (const part of this.objectRangeParts(object, start, end, target)) this.blocks.readRangeSync(part.hash, part.blockBytes, part.from, part.to, target, part.at);
    return target;
  }

  /** Bytes `start..end` of a value held in blocks: the blocks inside the range read whole, the others in part (`BlockStore.readRangeSync`). */
  private readReferenceRangeSync(reference: ValueReference, start: number, end: number): Buffer {
    const value = Buffer.allocUnsafe(end - start);
    for (let index = Math.floor(start / reference.blockBytes); index * reference.blockBytes < end; index++) {
      const blockStart = index * reference.blockBytes;
      const blockBytes = referenceBlockLength(reference, index);
      const from = Math.max(start, blockStart) - blockStart;
      const to = Math.min(end, blockStart + blockBytes) - blockStart;
      const hash = referenceBlockHash(reference, index);
      if (from === 0 && to === blockBytes) this.blocks.readSync(hash, blockBytes, value, blockStart - start);
      else this.blocks.readRangeSync(hash, blockBytes, from, to, value, blockStart + from - start);
    }
    return value;
  }

  /** The key's value and revision, or undefined. */
  async getEntry(key: Bytes): Promise<Entry | undefined> {
    this.checkReadable();
    const keyString = this.keyString(key);
    const location = this.findLive(keyString, this.index);
    if (location === undefined) return undefined;
    return { key: Buffer.from(keyString, 'latin1'), value: this.readValue(keyString, location, lastFoundKey()), revision: location.revision };
  }

  private toKeyRange(range: RangeOptions | undefined): KeyRange {
    if (range === undefined) return {};
    if (typeof range !== 'object' || range === null) throw invalid('range must be an object');
    const bound = (value: Bytes | undefined, what: string): string | undefined =>
      value === undefined ? undefined : toBytes(value, what).toString('latin1');
    const result: KeyRange = {};
    const gt = bound(range.gt, 'gt');
    const gte = bound(range.gte, 'gte');
    const lt = bound(range.lt, 'lt');
    const lte = bound(range.lte, 'lte');
    if (gt !== undefined) result.gt = gt;
    if (gte !== undefined) result.gte = gte;
    if (lt !== undefined) result.lt = lt;
    if (lte !== undefined) result.lte = lte;
    if (range.prefix !== undefined) {
      const prefix = bound(range.prefix, 'prefix') as string;
      if (result.gte === undefined || result.gte < prefix) result.gte = prefix;
      const upper = prefixUpperBound(prefix);
      if (upper !== undefined && (result.lt === undefined || upper < result.lt)) result.lt = upper;
    }
    if (range.reverse !== undefined) {
      if (typeof range.reverse !== 'boolean') throw invalid('reverse must be a boolean');
      result.reverse = range.reverse;
    }
    if (range.limit !== undefined) {
      if (typeof range.limit !== 'number' || !(Number.isSafeInteger(range.limit) || range.limit === Infinity) || range.limit < 0) {
        throw invalid(`limit must be a non-negative integer, got ${String(range.limit)}`);
      }
      if (range.limit !== Infinity) result.limit = range.limit;
    }
    return result;
  }

  /**
   * Iterate `range` over `view` (by default a snapshot taken now, at the call, not at the first
   * `next()`): later writes do not show up, and keys deleted later still do.
   */
  private iterate<T>(
    range: KeyRange,
    project: (key: string, location: EntryLocation) => T,
    view: IndexSnapshot<EntryLocation> = this.index.snapshot(),
    pinEpoch: number = this.readerEpoch,
  ): AsyncIterableIterator<T> {
    const limit = range.limit;
    delete range.limit;
    const reader = new RangeReader(view.range(range), limit ?? Infinity, project, () => this.checkReadable());
    // The segments this iterator may read stay on disk until it finishes, returns or is dropped.
    reader.unpin = this.pinReaders(reader, pinEpoch);
    return reader;
  }

  private entryOf(key: string, location: EntryLocation): Entry {
    if (location.reference !== undefined || location.object !== undefined) return { key: Buffer.from(key, 'latin1'), value: this.readReferenceValue(key, location), revision: location.revision };
    const view = this.readView(location);
    const bytes = view.bytes;
    const keyAt = this.checkPut(key, location, view);
    const valueAt = keyAt + key.length;
    const end = view.start + location.lengthBytes;
    // The key's bytes come from the entry (checked equal to `key`); views of the cache must not escape.
    if (view.markAt < 0) return { key: bytes.subarray(keyAt, valueAt), value: bytes.subarray(valueAt, end), revision: location.revision };
    return { key: copyOut(bytes, keyAt, valueAt), value: copyOut(bytes, valueAt, end), revision: location.revision };
  }

  /** Entries in key order (bytewise), as of the call; see `RangeOptions`. */
  entries(range?: RangeOptions): AsyncIterableIterator<Entry> {
    this.checkReadable();
    return this.iterate(this.toKeyRange(range), (key, location) => this.entryOf(key, location));
  }

  /** Keys in order; reads no values. */
  keys(range?: RangeOptions): AsyncIterableIterator<Buffer> {
    this.checkReadable();
    return this.iterate(this.toKeyRange(range), (key) => Buffer.from(key, 'latin1'));
  }

  /** Values in key order. */
  values(range?: RangeOptions): AsyncIterableIterator<Buffer> {
    this.checkReadable();
    // An iterated key is the index's own string.
    return this.iterate(this.toKeyRange(range), (key, location) => this.readValue(key, location, key));
  }

  /** Whether `key` is present (and not expired); reads no value. */
  has(key: Bytes): boolean {
    this.checkReadable();
    return this.findLive(this.keyString(key), this.index) !== undefined;
  }

  /**
   * A consistent read-only view of the whole store as of now, in O(1): every read and iterator
   * of the snapshot sees exactly the state at this call, whatever is written later. It holds no
   * file open; drop it when done (or call `release()`, which makes later reads throw CLOSED).
   */
  snapshot(): Snapshot {
    this.checkReadable();
    const view = this.index.snapshot();
    const store = this;
    let released = false;
    // Each iterator pins what the snapshot could read, on its own: it stays readable even when
    // the snapshot is released before the iterator is finished.
    const epoch = this.readerEpoch;
    const check = (): void => {
      if (released) throw new SiltError(ErrorCode.CLOSED, 'the snapshot was released');
      store.checkReadable();
    };
    const find = (key: Bytes): { keyString: string; location: EntryLocation } | undefined => {
      check();
      const keyString = store.keyString(key);
      const location = store.findLive(keyString, view);
      return location === undefined ? undefined : { keyString, location };
    };
    const snapshot: Snapshot = {
      revision: this.appliedRevision(),
      getSync: (key) => {
        const found = find(key);
        return found === undefined ? undefined : store.readValue(found.keyString, found.location, lastFoundKey());
      },
      get: async (key) => {
        const found = find(key);
        return found === undefined ? undefined : store.readValue(found.keyString, found.location, lastFoundKey());
      },
      getEntry: async (key) => {
        const found = find(key);
        return found === undefined ? undefined : store.entryOf(found.keyString, found.location);
      },
      has: (key) => find(key) !== undefined,
      readAtSync: (key, offset, length) => {
        check();
        store.checkObjectNumber(offset, 'offset');
        store.checkObjectNumber(length, 'length');
        const found = find(key);
        return found === undefined ? undefined : store.readRangeOf(found.keyString, found.location, lastFoundKey(), offset, length);
      },
      readAt: async (key, offset, length) => snapshot.readAtSync(key, offset, length),
      entries: (range) => {
        check();
        return store.iterate(store.toKeyRange(range), (key, location) => store.entryOf(key, location), view, epoch);
      },
      keys: (range) => {
        check();
        return store.iterate(store.toKeyRange(range), (key) => Buffer.from(key, 'latin1'), view, epoch);
      },
      values: (range) => {
        check();
        return store.iterate(store.toKeyRange(range), (key, location) => store.readValue(key, location, key), view, epoch);
      },
      release: () => {
        released = true;
        unpin();
      },
    };
    // Its segments stay on disk until it is released or dropped.
    const unpin = this.pinReaders(snapshot);
    return snapshot;
  }

  // ------------------------------------------------------------------------------------------
  // Writes

  private checkWritable(): void {
    if (this.state === 'closed' || this.state === 'closing') throw new SiltError(ErrorCode.CLOSED, 'the store is closed');
    if (this.options.readOnly) throw new SiltError(ErrorCode.READ_ONLY, 'the store was opened read-only');
    if (this.failure !== undefined) throw this.failedError();
  }

  /**
   * Note `call`, a write of `keys` that waits for compaction (past `stallRatio`) before it is
   * queued, until it settles: an object write of one of its keys waits for it before it reads the
   * key (`settleKey`), and `close()` waits for it. (Its keys' order is not used: it would hold
   * back later writes of the key until this one is durable, and let writes of other keys called
   * after it commit before them.)
   */
  private stallHeld<T>(keys: string[], call: Promise<T>): Promise<T> {
    const settled = call.then(
      () => undefined,
      () => undefined,
    );
    for (const key of keys) {
      let calls = this.heldByStall.get(key);
      if (calls === undefined) this.heldByStall.set(key, (calls = new Set()));
      calls.add(settled);
    }
    void settled.then(() => {
      for (const key of keys) {
        const calls = this.heldByStall.get(key);
        calls?.delete(settled);
        if (calls?.size === 0) this.heldByStall.delete(key);
      }
    });
    return call;
  }

  /** `checkWritable` for a new call: once `close()` was called, writes and maintenance are refused. */
  private checkAccepting(): void {
    this.checkWritable();
    if (this.closeRun !== undefined) throw new SiltError(ErrorCode.CLOSED, 'the store is closing');
  }

  private failedError(): SiltError {
    const cause = this.failure;
    return new SiltError(ErrorCode.FAILED, `the store stopped taking writes: ${cause?.message ?? 'unknown cause'}`, { cause });
  }

  /** The key's current revision, counting queued writes; 0 when absent. */
  private currentRevision(key: string): number {
    const queued = this.pending.get(key);
    if (queued !== undefined) return queued < 0 ? 0 : queued;
    const location = this.index.get(key);
    return this.isLive(location, Date.now()) ? location.revision : 0;
  }

  private valueBytes(value: unknown): Buffer {
    const bytes = toBytes(value, 'value');
    if (bytes.length > this.options.maxValueSize) {
      throw new SiltError(ErrorCode.TOO_LARGE, `value of ${bytes.length} bytes exceeds maxValueSize ${this.options.maxValueSize}`);
    }
    return bytes;
  }

  /** Validate `ifRevision`/`ifAbsent` and check them against the key's current state. */
  private checkConditions(keyString: string, options: PutOptions | undefined): void {
    const ifRevision = checkRevisionOption(options?.ifRevision, 'ifRevision');
    if (options?.ifAbsent !== undefined && typeof options.ifAbsent !== 'boolean') throw invalid('ifAbsent must be a boolean');
    if (ifRevision === undefined && options?.ifAbsent !== true) return;
    const current = this.currentRevision(keyString);
    if ((ifRevision !== undefined && current !== ifRevision) || (options?.ifAbsent === true && current !== 0)) {
      throw new SiltError(ErrorCode.CONFLICT, `condition failed: the key is at revision ${current}`, { currentRevision: current });
    }
  }

  /**
   * Store `value` under `key`. Resolves when durable per the store's durability mode. Values
   * larger than `valueThreshold` go to the block store (always fsynced before their record).
   */
  put(key: Bytes, value: Bytes, options?: PutOptions): Promise<WriteResult> {
    // Not an async function: the common put (small value, no stall) returns the promise of its
    // queued write itself, with no extra promise layers. Bad input still rejects, never throws.
    try {
      this.checkAccepting();
      const keyString = this.keyString(key);
      const valueBytes = this.valueBytes(value);
      const ttlMs = checkTtl(options?.ttlMs);
      if (valueBytes.length > this.options.valueThreshold || this.keyTails.has(keyString)) {
        return this.inKeyOrder([keyString], () => this.putInOrder(keyString, valueBytes, options, ttlMs));
      }
      if (this.mustWaitForCompaction()) return this.stallHeld([keyString], this.afterStall(() => this.commitInlinePut(keyString, valueBytes, options, ttlMs)));
      return this.commitInlinePut(keyString, valueBytes, options, ttlMs);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private async putInOrder(keyString: string, valueBytes: Buffer, options: PutOptions | undefined, ttlMs: number | undefined): Promise<WriteResult> {
    this.checkWritable();
    if (valueBytes.length <= this.options.valueThreshold) {
      return this.mustWaitForCompaction() ? this.afterStall(() => this.commitInlinePut(keyString, valueBytes, options, ttlMs)) : this.commitInlinePut(keyString, valueBytes, options, ttlMs);
    }
    await this.passStall();
    this.checkConditions(keyString, options);
    const reference = await this.writeBlocks([valueBytes], undefined);
    try {
      // The blocks took time: the store may have closed and the key changed meanwhile.
      this.checkWritable();
      this.checkConditions(keyString, options);
      return await this.commitPut(keyString, undefined, reference, ttlMs);
    } finally {
      this.unholdReference(reference);
    }
  }

  /** Check and queue an inline put, in one synchronous step. */
  private commitInlinePut(keyString: string, valueBytes: Buffer, options: PutOptions | undefined, ttlMs: number | undefined): Promise<WriteResult> {
    this.checkWritable();
    this.checkConditions(keyString, options);
    return this.commitPut(keyString, valueBytes, undefined, ttlMs);
  }

  /** Queue the record of one put (inline `value`, or a block `reference`); resolves with its revision once committed. */
  private commitPut(keyString: string, value: Buffer | undefined, reference: ValueReference | undefined, ttlMs: number | undefined): Promise<WriteResult> {
    const revision = ++this.revision;
    const expiresAtMs = ttlMs === undefined ? undefined : Date.now() + ttlMs;
    const type = reference === undefined ? EntryType.PUT : EntryType.PUT_REFERENCE;
    const payload = reference === undefined ? (value as Buffer) : encodeReference(reference);
    const length = entryLength(keyString, payload, expiresAtMs !== undefined);
    const bytes = Buffer.allocUnsafe(length);
    encodeEntry(bytes, 0, { type, key: keyString, value: payload, revision, expiresAtMs });
    this.counters.puts++;
    const userBytes = keyString.length + (reference === undefined ? payload.length : reference.sizeBytes);
    const result: WriteResult = { revision };
    return this.enqueue(revision, bytes, [{ key: keyString, type, relativeOffsetBytes: 0, lengthBytes: length, expiresAtMs, userBytes, reference }], result);
  }

  /**
   * Store a value read from `source` without holding it in memory: it is cut into blocks as it
   * arrives. Resolves with the revision, size and SHA-256 digest once the write is durable. An
   * aborted `signal`, or a source that throws, rejects and leaves the key as it was.
   */
  async putStream(key: Bytes, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options?: PutStreamOptions): Promise<PutStreamResult> {
    try {
      this.checkAccepting();
      const keyString = this.keyString(key);
      return await this.inKeyOrder([keyString], () => this.putStreamInOrder(keyString, source, options));
    } catch (error) {
      releaseSource(source);
      throw error;
    }
  }

  private async putStreamInOrder(keyString: string, source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, options: PutStreamOptions | undefined): Promise<PutStreamResult> {
    this.checkWritable();
    const ttlMs = checkTtl(options?.ttlMs);
    const signal = options?.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid('signal must be an AbortSignal');
    if (source === null || typeof source !== 'object' || (!(Symbol.asyncIterator in source) && !(Symbol.iterator in source))) {
      throw invalid('source must be a Readable or an (async) iterable of Uint8Array chunks');
    }
    await this.passStall();
    this.checkConditions(keyString, options);
    signal?.throwIfAborted();
    const onAbort = () => (source as { destroy?: (error: unknown) => void }).destroy?.(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      // Small values stay inline: read up to the threshold before deciding.
      const iterator = (Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : (source as Iterable<Uint8Array>)[Symbol.iterator]()) as
        | AsyncIterator<Uint8Array>
        | Iterator<Uint8Array>;
      const head: Buffer[] = [];
      let headBytes = 0;
      let done = false;
      while (headBytes <= this.options.valueThreshold) {
        const next = await this.nextChunk(iterator, source);
        signal?.throwIfAborted();
        if (next.done) {
          done = true;
          break;
        }
        const chunk = this.streamChunk(next.value);
        head.push(chunk);
        headBytes += chunk.length;
      }
      let revision: number;
      let sizeBytes: number;
      let digest: Buffer;
      if (done) {
        const value = this.valueBytes(Buffer.concat(head, headBytes));
        this.checkConditions(keyString, options);
        revision = (await this.commitPut(keyString, value, undefined, ttlMs)).revision;
        sizeBytes = value.length;
        digest = sha256(value);
      } else {
        const rest = {
          [Symbol.asyncIterator]: (): AsyncIterator<Uint8Array> => ({
            next: () => this.nextChunk(iterator, source),
            return: async () => (await iterator.return?.()) ?? { done: true, value: undefined },
          }),
        };
        const reference = await this.writeBlocks(concatIterables(head, rest), signal);
        try {
          this.checkWritable();
          this.checkConditions(keyString, options);
          revision = (await this.commitPut(keyString, undefined, reference, ttlMs)).revision;
        } finally {
          this.unholdReference(reference);
        }
        sizeBytes = reference.sizeBytes;
        digest = reference.digest;
      }
      return { revision, size: sizeBytes, digest: digest.toString('hex') };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The next chunk of a stream's source, unless `close()` is called first: then CLOSED at once,
   * without waiting for a chunk that may never come, and the source is destroyed (a Readable) or
   * returned (an iterator).
   */
  private async nextChunk(iterator: AsyncIterator<Uint8Array> | Iterator<Uint8Array>, source: object): Promise<IteratorResult<Uint8Array>> {
    try {
      if (this.closeRun !== undefined) throw new SiltError(ErrorCode.CLOSED, 'the store is closing');
      let giveUp: (error: SiltError) => void = () => undefined;
      const closing = new Promise<never>((_, reject) => (giveUp = reject));
      this.chunkWaits.add(giveUp);
      try {
        return await Promise.race([iterator.next(), closing]);
      } finally {
        this.chunkWaits.delete(giveUp);
      }
    } catch (error) {
      if (this.closeRun !== undefined && error instanceof SiltError && error.code === ErrorCode.CLOSED) {
        (source as { destroy?: (error: unknown) => void }).destroy?.(error);
        void Promise.resolve()
          .then(() => iterator.return?.())
          .catch(() => undefined);
      }
      throw error;
    }
  }

  private streamChunk(chunk: unknown): Buffer {
    if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    throw invalid(`stream chunks must be Uint8Array, got ${typeof chunk}`);
  }

  /**
   * Cut `chunks` into blocks of `blockBytes`, store each (deduplicated), and make their names
   * durable. Memory stays bounded: at most `BLOCK_WRITES_IN_FLIGHT` blocks are buffered.
   */
  private async writeBlocks(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, signal: AbortSignal | undefined): Promise<ValueReference> {
    const blockBytes = this.options.blockBytes;
    // The value's digest is fed block by block, except that the first block waits for a second:
    // a value of one block has that block's hash as its digest (SHA-256 of the same bytes), so
    // it is hashed once, not twice (0.6 ms per MiB here).
    const digest = createHash('sha256');
    let firstBlock: Buffer | undefined;
    const hashes: Buffer[] = [];
    const inFlight: Array<Promise<void>> = [];
    // Block buffers come from the block store (aligned memory its direct writes send without a
    // copy). Each goes back once its write has settled and its bytes are no longer needed for
    // the digest; every one still out goes back at the end, after every write has settled.
    const outstanding = new Set<BlockBuffer>();
    const settled = new Set<BlockBuffer>();
    let firstBuffer: BlockBuffer | undefined;
    const giveBack = (buffer: BlockBuffer) => {
      if (buffer !== firstBuffer && settled.has(buffer) && outstanding.delete(buffer)) this.blocks.releaseBuffer(buffer);
    };
    const allocate = () => {
      const buffer = this.blocks.allocateBuffer();
      outstanding.add(buffer);
      return buffer;
    };
    let current = allocate();
    let filled = 0;
    let sizeBytes = 0;
    const flushBlock = async () => {
      const buffer = current;
      const data = buffer.data.subarray(0, filled);
      // The block's bytes start going to a staging file now and are hashed while they do (when
      // the block store has one ready); `write` renames the file to the hash.
      const staged = this.blocks.stage(buffer, filled);
      const hash = sha256(data);
      if (hashes.length === 0) {
        firstBlock = data;
        firstBuffer = buffer;
      } else {
        if (firstBlock !== undefined) digest.update(firstBlock);
        firstBlock = undefined;
        const first = firstBuffer;
        firstBuffer = undefined;
        if (first !== undefined) giveBack(first);
        digest.update(data);
      }
      hashes.push(hash);
      // From here until the record is applied (or the write fails), GC leaves the block alone.
      this.hold(hash.toString('hex'));
      const write = this.blocks.write(hash, data, staged).finally(() => {
        settled.add(buffer);
        giveBack(buffer);
      });
      inFlight.push(write);
      // Awaited in order below; a later write that fails first must not count as an unhandled
      // rejection meanwhile (by default that ends the process).
      write.catch(() => undefined);
      // Each block has its own buffer until its write settles; wait when too many are in flight.
      if (inFlight.length >= BLOCK_WRITES_IN_FLIGHT) await inFlight.shift();
      current = allocate();
      filled = 0;
    };
    try {
      for await (const raw of chunks) {
        signal?.throwIfAborted();
        const chunk = this.streamChunk(raw);
        sizeBytes += chunk.length;
        if (sizeBytes > this.options.maxValueSize) {
          throw new SiltError(ErrorCode.TOO_LARGE, `value exceeds maxValueSize ${this.options.maxValueSize}`);
        }
        let offset = 0;
        while (offset < chunk.length) {
          const copied = chunk.copy(current.data, filled, offset, Math.min(chunk.length, offset + blockBytes - filled));
          filled += copied;
          offset += copied;
          if (filled === blockBytes) await flushBlock();
        }
      }
      if (filled > 0) await flushBlock();
      await Promise.all(inFlight);
      signal?.throwIfAborted();
      // Every block's data and name are durable once its write settles (before the record that
      // points at it is written); this makes any deletion in the directory durable too.
      await this.blocks.syncDirectory();
    } catch (error) {
      await Promise.allSettled(inFlight);
      for (const hash of hashes) this.unhold(hash.toString('hex'));
      throw error;
    } finally {
      // Every write has settled here (awaited above on both paths): no buffer is in use.
      for (const buffer of outstanding) this.blocks.releaseBuffer(buffer);
      outstanding.clear();
    }
    return { sizeBytes, blockBytes, digest: hashes.length === 1 ? (hashes[0] as Buffer) : digest.digest(), blockHashes: Buffer.concat(hashes) };
  }

  // ------------------------------------------------------------------------------------------
  // Objects: writeAt, append, truncate over chunks of slices (src/log/object.ts has the model)

  /** The key's location if it is present and not expired. */
  private liveLocation(keyString: string): EntryLocation | undefined {
    const location = this.index.get(keyString);
    return this.isLive(location, Date.now()) ? location : undefined;
  }

  /** Size in bytes of the value at `location`. */
  private valueSize(keyString: string, location: EntryLocation): number {
    if (location.object !== undefined) return location.object.sizeBytes;
    if (location.reference !== undefined) return location.reference.sizeBytes;
    return location.lengthBytes - ENTRY_HEADER_BYTES - keyString.length - (location.expiresAtMs === undefined ? 0 : 8);
  }

  /** Wait until no queued write of `keyString` is left unapplied (the index then holds its last version). */
  private async settleKey(keyString: string): Promise<void> {
    for (;;) {
      const held = this.heldByStall.get(keyString);
      if (held !== undefined) {
        // A write of the key called earlier, still waiting for compaction before it is queued.
        await Promise.all(held);
      } else if (this.pending.has(keyString)) {
        await this.drain();
      } else {
        return;
      }
      if (this.failure !== undefined) throw this.failedError();
    }
  }

  private checkObjectNumber(value: unknown, what: string): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw invalid(`${what} must be a non-negative safe integer, got ${String(value)}`);
    }
    return value;
  }

  private checkObjectSize(sizeBytes: number): void {
    if (sizeBytes > this.options.maxValueSize) {
      throw new SiltError(ErrorCode.TOO_LARGE, `a value of ${sizeBytes} bytes would exceed maxValueSize ${this.options.maxValueSize}`);
    }
  }

  /**
   * Write `data` at byte `offset` of the key's value, as a file's pwrite: a missing key is an
   * empty value, a write past the end leaves a hole that reads as zeros. Atomic and durable like
   * `put`. The value becomes an object (chunks of slices) once it is larger than `valueThreshold`
   * or already held in blocks; a block value's blocks are kept as its slices, not copied.
   */
  async writeAt(key: Bytes, offset: number, data: Bytes, options?: ObjectOptions): Promise<ObjectWriteResult> {
    this.checkAccepting();
    const keyString = this.keyString(key);
    this.checkObjectNumber(offset, 'offset');
    const bytes = toBytes(data, 'data');
    const ifRevision = checkRevisionOption(options?.ifRevision, 'ifRevision');
    this.checkObjectSize(offset + bytes.length);
    return this.inKeyOrder([keyString], () => this.objectWrite(keyString, ifRevision, { kind: 'write', offset, data: bytes }));
  }

  /** Append `data` to the key's value (a missing key is empty). See `writeAt`. */
  async append(key: Bytes, data: Bytes, options?: ObjectOptions): Promise<ObjectWriteResult> {
    this.checkAccepting();
    const keyString = this.keyString(key);
    const bytes = toBytes(data, 'data');
    const ifRevision = checkRevisionOption(options?.ifRevision, 'ifRevision');
    this.checkObjectSize(bytes.length);
    return this.inKeyOrder([keyString], () => this.objectWrite(keyString, ifRevision, { kind: 'append', offset: -1, data: bytes }));
  }

  /** Cut the key's value to `size` bytes, or extend it with zeros (a missing key is empty). See `writeAt`. */
  async truncate(key: Bytes, size: number, options?: ObjectOptions): Promise<WriteResult> {
    this.checkAccepting();
    const keyString = this.keyString(key);
    this.checkObjectNumber(size, 'size');
    const ifRevision = checkRevisionOption(options?.ifRevision, 'ifRevision');
    this.checkObjectSize(size);
    const result = await this.inKeyOrder([keyString], () => this.objectWrite(keyString, ifRevision, { kind: 'truncate', size }));
    return { revision: result.revision };
  }

  private async objectWrite(keyString: string, ifRevision: number | undefined, operation: ObjectOperation): Promise<ObjectWriteResult> {
    for (;;) {
      try {
        return await this.objectWriteOnce(keyString, ifRevision, operation);
      } catch (error) {
        // The value it built on expired meanwhile: build on the key as it is now (absent).
        if (error !== EXPIRED_WHILE_PREPARED) throw error;
        this.objectCounters.expiredRetries++;
      }
    }
  }

  private async objectWriteOnce(keyString: string, ifRevision: number | undefined, operation: ObjectOperation): Promise<ObjectWriteResult> {
    this.checkWritable();
    await this.passStall();
    await this.settleKey(keyString);
    this.checkWritable();
    let location = this.liveLocation(keyString);
    const current = location?.revision ?? 0;
    if (ifRevision !== undefined && current !== ifRevision) {
      throw new SiltError(ErrorCode.CONFLICT, `condition failed: the key is at revision ${current}`, { currentRevision: current });
    }
    const size = location === undefined ? 0 : this.valueSize(keyString, location);
    let offset = 0;
    let newSize: number;
    if (operation.kind === 'truncate') {
      newSize = operation.size;
    } else {
      offset = operation.kind === 'append' ? size : operation.offset;
      this.checkObjectSize(offset + operation.data.length);
      newSize = operation.data.length === 0 ? size : Math.max(size, offset + operation.data.length);
    }
    // Chunk indexes are below 2^31 (doc/format.md, object delta): 8 TiB with the smallest chunks.
    const chunkBytes = location?.object?.chunkBytes ?? this.options.objects.chunkBytes;
    if (newSize > chunkBytes * MAX_OBJECT_CHUNKS) {
      throw new SiltError(ErrorCode.TOO_LARGE, `an object of ${newSize} bytes would hold more than 2^31 chunks of ${chunkBytes} bytes`);
    }
    // A small value that is not in blocks stays inline: patched and put whole. Past
    // `keepInlineBytes` rewriting it whole would cost more than the slice a write adds (appends
    // would rewrite everything before them), so it becomes an object; a truncate may shrink it inline.
    const keepInline = operation.kind === 'truncate' ? this.options.valueThreshold : Math.min(this.options.valueThreshold, this.options.objects.keepInlineBytes);
    if (location?.object === undefined && location?.reference === undefined && newSize <= keepInline) {
      const old = location === undefined ? Buffer.alloc(0) : this.readValue(keyString, location);
      const value = Buffer.alloc(newSize);
      old.copy(value, 0, 0, Math.min(old.length, newSize));
      if (operation.kind !== 'truncate') operation.data.copy(value, offset);
      const { revision } = await this.commitPut(keyString, value, undefined, undefined);
      this.objectCounters.writes++;
      return { revision, size: newSize };
    }
    const touched: number[] = [];
    if (operation.kind !== 'truncate' && operation.data.length > 0) {
      const chunkBytes = location?.object?.chunkBytes ?? this.options.objects.chunkBytes;
      for (let index = Math.floor(offset / chunkBytes); index * chunkBytes < offset + operation.data.length; index++) touched.push(index);
    }
    // A write to a chunk with `syncCompactAt` slices compacts that chunk first (same revision).
    if (location?.object !== undefined) {
      let compacted = false;
      for (const index of touched) {
        if ((findChunk(location.object, index)?.slices.length ?? 0) < this.options.objects.syncCompactAt) continue;
        if ((await this.compactChunk(keyString, index, 'heavy', true)) === 'compacted') compacted = true;
      }
      if (compacted) {
        this.objectCounters.syncCompactions++;
        location = this.liveLocation(keyString);
      }
    }
    const held: ValueReference[] = [];
    const carried: CarriedBlock[] = [];
    // The slices this write appends: recorded as a delta on the key's record when it can be.
    const appended: DeltaItem[] = [];
    try {
      let manifest = location === undefined ? { sizeBytes: 0, chunkBytes: this.options.objects.chunkBytes, chunks: [] } : await this.toManifest(keyString, location, held, carried);
      const base = location?.object === manifest ? manifest : undefined;
      if (operation.kind === 'truncate') {
        manifest = truncateManifest(manifest, newSize);
      } else {
        manifest = { ...manifest, sizeBytes: newSize };
        for (const index of touched) {
          const chunkStart = index * manifest.chunkBytes;
          const from = Math.max(offset, chunkStart);
          const to = Math.min(offset + operation.data.length, chunkStart + manifest.chunkBytes);
          const part = operation.data.subarray(from - offset, to - offset);
          let slice: Slice;
          if (part.length <= this.options.objects.inlineBytes) {
            // A small slice's bytes go in the log, in a BLOCK entry ahead of the manifest's record:
            // one write and one fsync, no block file, no directory fsync.
            const hash = sha256(part);
            carried.push({ hash, hex: hash.toString('hex'), data: part });
            slice = { offsetBytes: from - chunkStart, lengthBytes: part.length, skipBytes: 0, blockBytes: this.options.blockBytes, dataBytes: part.length, blockHashes: hash };
          } else {
            const reference = await this.writeBlocks([part], undefined);
            held.push(reference);
            slice = this.sliceOf(reference, from - chunkStart);
          }
          const slices = findChunk(manifest, index)?.slices ?? [];
          manifest = withChunk(manifest, index, [...slices, slice]);
          appended.push({ index, slice });
        }
      }
      this.checkWritable();
      // Writes to the key wait for this one (inKeyOrder), so it cannot have changed: checked all
      // the same. It can have expired (a put with `ttlMs`), its record still indexed or dropped by
      // compaction: committed now, this write would bring back bytes that already read as absent.
      // (One clock reading for both checks: the expiry must not fall between them.)
      const indexed = this.index.get(keyString);
      const liveNow = this.isLive(indexed, Date.now()) ? indexed : undefined;
      if (location?.expiresAtMs !== undefined && liveNow === undefined && !this.pending.has(keyString) && (indexed === undefined || indexed.revision === location.revision)) {
        throw EXPIRED_WHILE_PREPARED;
      }
      if ((liveNow?.revision ?? 0) !== current || this.pending.has(keyString)) {
        throw new SiltError(ErrorCode.CONFLICT, 'the key changed while the write was being prepared', { currentRevision: this.currentRevision(keyString) });
      }
      const userBytes = keyString.length + (operation.kind === 'truncate' ? 0 : operation.data.length);
      const delta = base !== undefined && operation.kind !== 'truncate' ? { base, items: appended } : undefined;
      const revision = await this.commitObject(keyString, manifest, undefined, userBytes, carried, delta);
      this.objectCounters.writes++;
      this.payObjectCompaction(operation.kind === 'truncate' ? 0 : operation.data.length);
      this.scheduleObjectCompaction(keyString, manifest, touched);
      return { revision, size: newSize };
    } finally {
      for (const reference of held) this.unholdReference(reference);
    }
  }

  /** A slice covering `reference`'s bytes from `offsetBytes` of its chunk. */
  private sliceOf(reference: ValueReference, offsetBytes: number): Slice {
    return { offsetBytes, lengthBytes: reference.sizeBytes, skipBytes: 0, blockBytes: reference.blockBytes, dataBytes: reference.sizeBytes, blockHashes: reference.blockHashes };
  }

  /**
   * The value at `location` as a manifest: an object's own; a block value's blocks as one slice
   * per chunk (no bytes copied); an inline value as one slice per chunk, its block carried in the
   * log (added to `carried`) when the chunk's part fits `objects.inlineBytes`, else written to
   * block files (held in `held`).
   */
  private async toManifest(keyString: string, location: EntryLocation, held: ValueReference[], carried: CarriedBlock[]): Promise<ObjectManifest> {
    if (location.object !== undefined) return location.object;
    const chunkBytes = this.options.objects.chunkBytes;
    const chunks: ObjectManifest['chunks'] = [];
    if (location.reference !== undefined) {
      const reference = location.reference;
      const blockBytes = reference.blockBytes;
      for (let index = 0; index * chunkBytes < reference.sizeBytes; index++) {
        const start = index * chunkBytes;
        const end = Math.min(reference.sizeBytes, start + chunkBytes);
        const firstBlock = Math.floor(start / blockBytes);
        const endBlock = Math.ceil(end / blockBytes);
        const dataBytes = Math.min(reference.sizeBytes, endBlock * blockBytes) - firstBlock * blockBytes;
        chunks.push({
          index,
          slices: [{ offsetBytes: 0, lengthBytes: end - start, skipBytes: start - firstBlock * blockBytes, blockBytes, dataBytes, blockHashes: reference.blockHashes.subarray(firstBlock * 32, endBlock * 32) }],
        });
      }
      return { sizeBytes: reference.sizeBytes, chunkBytes, chunks };
    }
    const value = this.readValue(keyString, location);
    for (let index = 0; index * chunkBytes < value.length; index++) {
      const part = value.subarray(index * chunkBytes, Math.min(value.length, (index + 1) * chunkBytes));
      if (part.length <= this.options.objects.inlineBytes) {
        const hash = sha256(part);
        carried.push({ hash, hex: hash.toString('hex'), data: part });
        chunks.push({ index, slices: [{ offsetBytes: 0, lengthBytes: part.length, skipBytes: 0, blockBytes: this.options.blockBytes, dataBytes: part.length, blockHashes: hash }] });
        continue;
      }
      const reference = await this.writeBlocks([part], undefined);
      held.push(reference);
      chunks.push({ index, slices: [this.sliceOf(reference, 0)] });
    }
    return { sizeBytes: value.length, chunkBytes, chunks };
  }

  /**
   * Queue a PUT_OBJECT record: a new version (next revision), or with `replacesRevision` a slice
   * compaction's (same bytes, same revision, applied only while the key is still at it).
   */
  private async commitObject(
    keyString: string,
    manifest: ObjectManifest,
    replacesRevision: number | undefined,
    userBytes: number,
    carried: CarriedBlock[] = [],
    delta?: { base: ObjectManifest; items: DeltaItem[] },
  ): Promise<number> {
    // A write that only appends slices to the object of the key's record, or a slice compaction's
    // replacement of one chunk's slices, is recorded as a delta on that record when it is in the
    // active segment (a chain stays inside one segment). Decided in the same synchronous step as
    // the enqueue: nothing can move the record in between.
    const previous = delta === undefined ? undefined : this.index.get(keyString);
    const asDelta =
      delta !== undefined &&
      previous !== undefined &&
      previous.object === delta.base &&
      (replacesRevision === undefined || previous.revision === replacesRevision) &&
      previous.segmentId === (this.active as SegmentWriter).segmentId &&
      !this.pending.has(keyString);
    const payload = asDelta
      ? encodeDelta({ baseRevision: previous.revision, baseOffsetBytes: previous.offsetBytes, sizeBytes: manifest.sizeBytes, chunkBytes: manifest.chunkBytes, items: delta.items })
      : encodeManifest(manifest);
    const keyBytes = Buffer.from(keyString, 'latin1');
    const length = entryLength(keyBytes, payload, false);
    if (length > 0xffff_ffff) throw new SiltError(ErrorCode.TOO_LARGE, 'the object manifest exceeds 4 GiB: compact the object');
    const revision = replacesRevision ?? ++this.revision;
    // Content already stored under a live reference (in the log or a block file), or twice in
    // this write, is not stored again: the slice names the existing block. Decided in the same
    // synchronous step as the enqueue, and held until the record is applied, so that if the
    // block's last other reference goes first neither GC (a block file) nor segment compaction
    // (a copy in the log: copied forward and checkpointed while held) drops it.
    const deduplicated: string[] = [];
    if (carried.length > 0) {
      const seen = new Set<string>();
      carried = carried.filter((block) => {
        if (!seen.has(block.hex) && !this.referenceCounts.has(block.hex)) {
          seen.add(block.hex);
          return true;
        }
        this.hold(block.hex);
        deduplicated.push(block.hex);
        return false;
      });
    }
    // The BLOCK entries come first: a crash that keeps the manifest's record keeps them too (the
    // log is recovered as a prefix); one that cuts them cuts the record as well.
    let carriedBytes = 0;
    for (const block of carried) carriedBytes += blockEntryLength(block.data.length);
    const bytes = Buffer.allocUnsafe(carriedBytes + length);
    const operations: PendingOperation[] = [];
    let cursor = 0;
    for (const block of carried) {
      const blockLength = encodeBlockEntry(bytes, cursor, block.hash, block.data, revision);
      operations.push({ key: block.hex, type: EntryType.BLOCK, relativeOffsetBytes: cursor, lengthBytes: blockLength, expiresAtMs: undefined, userBytes: 0 });
      cursor += blockLength;
    }
    const type = asDelta ? EntryType.PUT_OBJECT_DELTA : EntryType.PUT_OBJECT;
    encodeEntry(bytes, cursor, { type, key: keyBytes, value: payload, revision });
    operations.push({
      key: keyString,
      type,
      relativeOffsetBytes: cursor,
      lengthBytes: length,
      expiresAtMs: undefined,
      userBytes,
      object: manifest,
      replacesRevision,
      deltaBase: asDelta ? { segmentId: previous.segmentId, offsetBytes: previous.offsetBytes, object: previous.object as ObjectManifest } : undefined,
    });
    if (asDelta) this.objectCounters.deltaRecords++;
    this.objectCounters.slicesDeduplicated += deduplicated.length;
    this.objectCounters.inlineSlices += carried.length;
    for (const block of carried) this.objectCounters.inlineBytes += block.data.length;
    try {
      await this.enqueue(revision, bytes, operations);
    } finally {
      for (const hex of deduplicated) this.unhold(hex);
    }
    return revision;
  }

  /** Read and verify one block of an object: from the log if it is carried there, else its block file. */
  private readObjectBlockSync(hash: Buffer, expectedBytes: number): Buffer {
    const location = this.logBlocks.size === 0 ? undefined : this.logBlocks.get(hash.toString('hex'));
    return location === undefined ? this.blocks.readSync(hash, expectedBytes) : this.readLogBlock(hash, location, expectedBytes);
  }

  private async readObjectBlock(hash: Buffer, expectedBytes: number): Promise<Buffer> {
    const location = this.logBlocks.size === 0 ? undefined : this.logBlocks.get(hash.toString('hex'));
    return location === undefined ? this.blocks.read(hash, expectedBytes) : this.readLogBlock(hash, location, expectedBytes);
  }

  /**
   * A block carried in the log: the BLOCK entry at `location` must pass its CRC (once per cached
   * block, as a get's entry), hold exactly `hash` as its key and `expectedBytes` of data. The CRC
   * is the checksum here, as for any entry; the hash is not recomputed on reads (`verify()` does).
   */
  private readLogBlock(hash: Buffer, location: LogBlockLocation, expectedBytes: number): Buffer {
    const found = this.logBlockBytes(hash, location, expectedBytes);
    // A view into the cache must not escape: the caller could change the cached bytes.
    return found.cached ? copyOut(found.bytes, found.start, found.start + expectedBytes) : found.bytes.subarray(found.start, found.start + expectedBytes);
  }

  /**
   * `readLogBlock` without the copy: the block's data is `bytes[start, start + expectedBytes)`;
   * when `cached`, `bytes` is the read cache's memory, to be copied from at once and not kept.
   */
  private logBlockBytes(hash: Buffer, location: LogBlockLocation, expectedBytes: number, scratch?: Buffer): { bytes: Buffer; start: number; cached: boolean } {
    const entry: EntryLocation = { segmentId: location.segmentId, offsetBytes: location.offsetBytes, lengthBytes: location.lengthBytes, revision: location.revision, expiresAtMs: undefined, verifiedKey: undefined };
    let view: CacheView;
    if (scratch !== undefined && location.lengthBytes <= scratch.length) {
      // Straight from the file into the caller's scratch memory (a stream over a fragmented
      // object): no cache blocks churned, nothing allocated; the CRC is checked every time.
      this.segmentForRead(location.segmentId);
      let read: number;
      try {
        read = readFullySync(this.readHandle(location.segmentId), scratch.subarray(0, location.lengthBytes), location.offsetBytes);
      } catch (error) {
        throw toIoError(error, `reading segment ${location.segmentId}`);
      }
      view = { bytes: scratch.subarray(0, read), start: 0, markAt: -1, mark: 0 };
    } else {
      view = this.readView(entry);
    }
    const bytes = view.bytes;
    const start = view.start;
    const end = start + location.lengthBytes;
    if (end > bytes.length || bytes.readUInt32LE(start + 4) !== location.lengthBytes) throw this.corruptAt(entry, 'block entry length differs from the expected');
    const checked = isChecked(view);
    if (!checked) {
      const check = checkEntry(bytes, start, end);
      if (!check.ok) throw this.corruptAt(entry, check.reason);
      markChecked(view);
    }
    const block = decodeBlockEntry(bytes, start, location.lengthBytes);
    if (typeof block === 'string') throw this.corruptAt(entry, block);
    if (!block.hash.equals(hash)) throw this.corruptAt(entry, `block entry holds block ${block.hash.toString('hex')}, expected ${hash.toString('hex')}`);
    if (block.data.length !== expectedBytes) throw this.corruptAt(entry, `block entry holds ${block.data.length} bytes, expected ${expectedBytes}`);
    return { bytes, start: end - block.data.length, cached: view.markAt >= 0 || bytes.buffer === scratch?.buffer };
  }

  /** Live log blocks (referenced by a live value) and their data bytes, for stats. */
  private liveLogBlockStats(): { logBlocks: number; logBlockBytes: number } {
    let logBlocks = 0;
    let logBlockBytes = 0;
    for (const [hex, location] of this.logBlocks) {
      if (!this.referenceCounts.has(hex)) continue;
      logBlocks++;
      logBlockBytes += location.lengthBytes - blockEntryLength(0);
    }
    return { logBlocks, logBlockBytes };
  }

  /** Bytes `[start, end)` of an object, every block verified; holes are zeros. */
  private readObjectSync(manifest: ObjectManifest, start: number, end: number): Buffer {
    if (end - start > BUFFER_BYTES_MAX) {
      throw new SiltError(ErrorCode.TOO_LARGE, `a ${end - start}-byte value does not fit in one Buffer: use createReadStream`);
    }
    const target = Buffer.alloc(end - start);
    const lastBlocks = new Map<Slice, { index: number; block: Buffer }>();
    for (const piece of this.objectPieces(manifest, start, end)) {
      if (piece.slice === undefined) continue;
      const slice = piece.slice;
      const dataStart = piece.dataStart;
      const dataEnd = dataStart + (piece.end - piece.start);
      for (let index = Math.floor(dataStart / slice.blockBytes); index * slice.blockBytes < dataEnd; index++) {
        let cached = lastBlocks.get(slice);
        if (cached === undefined || cached.index !== index) {
          cached = { index, block: this.readObjectBlockSync(sliceBlockHash(slice, index), sliceBlockLength(slice, index)) };
          lastBlocks.set(slice, cached);
        }
        const blockStart = index * slice.blockBytes;
        const from = Math.max(dataStart, blockStart);
        const to = Math.min(dataEnd, blockStart + cached.block.length);
        cached.block.copy(target, piece.start - start + (from - dataStart), from - blockStart, to - blockStart);
      }
    }
    return target;
  }

  /**
   * For a read of bytes `start..end` of an object into `target` (zeros where the range has holes):
   * copies the parts held in blocks carried in the log (each entry checked whole, as
   * `readLogBlock` does) and returns the parts of block files still to read, for
   * `BlockStore.readRange`, which reads only the pages a part touches. For ranges shorter than a
   * block (a long read of a fragmented object would read one block many times over, in parts).
   */
  private objectRangeParts(manifest: ObjectManifest, start: number, end: number, target: Buffer): BlockPart[] {
    const parts: BlockPart[] = [];
    for (const piece of this.objectPieces(manifest, start, end)) {
      const slice = piece.slice;
      if (slice === undefined) continue;
      const dataEnd = piece.dataStart + (piece.end - piece.start);
      for (let index = Math.floor(piece.dataStart / slice.blockBytes); index * slice.blockBytes < dataEnd; index++) {
        const blockStart = index * slice.blockBytes;
        const blockBytes = sliceBlockLength(slice, index);
        const from = Math.max(piece.dataStart, blockStart) - blockStart;
        const to = Math.min(dataEnd, blockStart + blockBytes) - blockStart;
        const at = piece.start - start + (blockStart + from - piece.dataStart);
        const hash = sliceBlockHash(slice, index);
        const logBlock = this.logBlocks.size === 0 ? undefined : this.logBlocks.get(hash.toString('hex'));
        if (logBlock === undefined) {
          parts.push({ hash, blockBytes, from, to, at });
          continue;
        }
        const found = this.logBlockBytes(hash, logBlock, blockBytes);
        found.bytes.copy(target, at, found.start + from, found.start + to);
      }
    }
    return parts;
  }

  /**
   * The pieces `[start, end)` of an object reads as, in order: absolute ranges, each from a slice
   * (`dataStart` is where it begins in the slice's block data) or a hole.
   */
  private *objectPieces(manifest: ObjectManifest, start: number, end: number): Generator<{ start: number; end: number; slice: Slice | undefined; dataStart: number }> {
    const chunkBytes = manifest.chunkBytes;
    let cursor = start;
    for (const chunk of manifest.chunks) {
      const chunkStart = chunk.index * chunkBytes;
      const chunkEnd = chunkStart + chunkLength(manifest, chunk.index);
      if (chunkEnd <= start) continue;
      if (chunkStart >= end) break;
      if (chunkStart > cursor) yield { start: cursor, end: chunkStart, slice: undefined, dataStart: 0 };
      const from = Math.max(start, chunkStart);
      const to = Math.min(end, chunkEnd);
      for (const piece of resolveChunk(chunk.slices, from - chunkStart, to - chunkStart)) {
        const slice = piece.slice;
        yield { start: chunkStart + piece.start, end: chunkStart + piece.end, slice, dataStart: slice === undefined ? 0 : slice.skipBytes + piece.start - slice.offsetBytes };
      }
      cursor = to;
    }
    if (cursor < end) yield { start: cursor, end, slice: undefined, dataStart: 0 };
  }

  /**
   * Bytes `[start, end)` of an object as buffers of at most the block size, in windows of the
   * block size aligned to the chunk (heavy compaction's grid); blocks read asynchronously, each
   * verified whole. A window that one
   * slice's block gives whole is yielded as a view of that block (no copy). A window mostly from
   * one block file of a slice that covers all of it (a chunk's base under small newer writes) is
   * built *in* that block's freshly read buffer: only the newer pieces are copied over it (the
   * bytes that slice does not give are exactly the newer slices' pieces), so a fragmented chunk
   * reads with one allocation per window, like a fresh value. Other windows are copied together.
   */
  private async *objectChunks(manifest: ObjectManifest, start: number, end: number): AsyncGenerator<Buffer> {
    const chunkBytes = manifest.chunkBytes;
    const windowBytes = this.options.blockBytes;
    // Blocks read for pieces and kept for the next piece of the same slice (they may be yielded
    // as views, so a kept block is never written into).
    const lastBlocks = new Map<Slice, { index: number; block: Buffer }>();
    // One block file read ahead, as createReadStream does for a value in blocks: while a window's
    // block of a slice is read (a view's, or a base's), the block of that slice the next window
    // reads first (`readAheadAfter`), taken by whichever read of the next window asks for it.
    let ahead: { slice: Slice; index: number; read: Promise<Buffer> } | undefined;
    const readAhead = (slice: Slice, index: number): Promise<Buffer> => {
      if (ahead?.slice !== slice || ahead.index !== index) return this.readObjectBlock(sliceBlockHash(slice, index), sliceBlockLength(slice, index));
      const taken = ahead.read;
      ahead = undefined;
      return taken;
    };
    const blockOf = async (slice: Slice, index: number): Promise<Buffer> => {
      let cached = lastBlocks.get(slice);
      if (cached === undefined || cached.index !== index) {
        cached = { index, block: await readAhead(slice, index) };
        lastBlocks.set(slice, cached);
      }
      return cached.block;
    };
    let scratch: Buffer | undefined;
    // Copy `[dataStart, dataEnd)` of `slice`'s data into `target` at `at`. A block carried in the
    // log is read straight into scratch memory and copied from there (checked as `readLogBlock`
    // does). Synchronous unless a block file must be read: a fragmented window's thousands of
    // small pieces allocate no promise each (they kept the window's buffer alive across minor
    // GCs, into the old generation).
    const copyPiece = (slice: Slice, dataStart: number, dataEnd: number, target: Buffer, at: number): Promise<void> | undefined => {
      for (let index = Math.floor(dataStart / slice.blockBytes); index * slice.blockBytes < dataEnd; index++) {
        const blockStart = index * slice.blockBytes;
        const from = Math.max(dataStart, blockStart);
        const to = Math.min(dataEnd, blockStart + sliceBlockLength(slice, index));
        const hash = sliceBlockHash(slice, index);
        const logBlock = this.logBlocks.size === 0 ? undefined : this.logBlocks.get(hash.toString('hex'));
        if (logBlock !== undefined) {
          scratch ??= Buffer.allocUnsafe(blockEntryLength(this.options.objects.inlineBytes));
          const found = this.logBlockBytes(hash, logBlock, sliceBlockLength(slice, index), scratch);
          found.bytes.copy(target, at + (from - dataStart), found.start + from - blockStart, found.start + to - blockStart);
          continue;
        }
        const cached = lastBlocks.get(slice);
        if (cached !== undefined && cached.index === index) {
          cached.block.copy(target, at + (from - dataStart), from - blockStart, to - blockStart);
          continue;
        }
        return (async () => {
          (await blockOf(slice, index)).copy(target, at + (from - dataStart), from - blockStart, to - blockStart);
          const rest = copyPiece(slice, to, dataEnd, target, at + (to - dataStart));
          if (rest !== undefined) await rest;
        })();
      }
      return undefined;
    };
    // Start reading block `index` of `slice` for the next window, unless it is carried in the log
    // (read from memory when needed). Awaited by that window; dropped unhandled if the stream ends first.
    const startReadAhead = (slice: Slice, index: number): void => {
      if (this.logBlocks.size > 0 && this.logBlocks.has(sliceBlockHash(slice, index).toString('hex'))) return;
      const read = this.readObjectBlock(sliceBlockHash(slice, index), sliceBlockLength(slice, index));
      read.catch(() => undefined);
      ahead = { slice, index, read };
    };
    // The last window of a chunk reads ahead too: the block the next chunk's first window reads
    // first (a view's, a base's, or its first piece's source). Without it every chunk boundary
    // waited for one block file's read, uncovered (sixteen per 256 MiB at the default sizes).
    const readAheadIntoNextChunk = (index: number, chunkEnd: number): void => {
      const nextStart = (index + 1) * chunkBytes;
      // Only where the chunk itself ends (not the stream), and the next one has slices.
      if (chunkEnd !== nextStart || nextStart >= end) return;
      const nextChunk = findChunk(manifest, index + 1);
      if (nextChunk === undefined) return;
      const first = resolveChunk(nextChunk.slices, 0, Math.min(windowBytes, end - nextStart))[0];
      const slice = first?.slice;
      if (first === undefined || slice === undefined) return;
      const blockIndex = Math.floor((slice.skipBytes + first.start - slice.offsetBytes) / slice.blockBytes);
      if (ahead?.slice !== slice || ahead.index !== blockIndex) startReadAhead(slice, blockIndex);
    };
    let position = start;
    while (position < end) {
      this.checkReadable();
      const index = Math.floor(position / chunkBytes);
      const chunkStart = index * chunkBytes;
      const chunkEnd = Math.min(end, chunkStart + chunkLength(manifest, index));
      const chunk = findChunk(manifest, index);
      if (chunk === undefined) {
        // A chunk with no slice reads as zeros.
        for (; position < chunkEnd; position += Math.min(windowBytes, chunkEnd - position)) yield Buffer.alloc(Math.min(windowBytes, chunkEnd - position));
        continue;
      }
      const pieces = resolveChunk(chunk.slices, position - chunkStart, chunkEnd - chunkStart);
      let next = 0;
      // Once a window's block `reading` of `slice` is being read: start reading the block of
      // `slice` that the next window reads first, if a piece of `slice` shows there (the pieces
      // from `next` on are those reaching past `to`). Any window reads the block holding the
      // start of each of its pieces (as a view, a base, or a piece's source), so this is never a
      // block no window needs; nor past the stream's end (the pieces stop there).
      const readAheadAfter = (slice: Slice, reading: number, to: number): void => {
        if (to >= chunkEnd - chunkStart) {
          readAheadIntoNextChunk(index, chunkEnd);
          return;
        }
        const nextTo = Math.min(chunkEnd - chunkStart, to + windowBytes);
        for (let at = next; at < pieces.length; at++) {
          const piece = pieces[at] as ChunkPiece;
          if (piece.start >= nextTo) return;
          if (piece.slice !== slice || piece.end <= to) continue;
          const index = Math.floor((slice.skipBytes + Math.max(to, piece.start) - slice.offsetBytes) / slice.blockBytes);
          if (index !== reading && (ahead?.slice !== slice || ahead.index !== index) && lastBlocks.get(slice)?.index !== index) startReadAhead(slice, index);
          return;
        }
      };
      while (position < chunkEnd) {
        this.checkReadable();
        // The window: chunk-relative [from, to), aligned to the block size within the chunk.
        const from = position - chunkStart;
        const to = Math.min(chunkEnd - chunkStart, (Math.floor(from / windowBytes) + 1) * windowBytes);
        const windowPieces: ChunkPiece[] = [];
        while (next < pieces.length) {
          const piece = pieces[next] as ChunkPiece;
          if (piece.start >= to) break;
          windowPieces.push({ start: Math.max(from, piece.start), end: Math.min(to, piece.end), slice: piece.slice });
          if (piece.end > to) break;
          next++;
        }
        position = chunkStart + to;
        const dataStartOf = (piece: ChunkPiece): number => (piece.slice as Slice).skipBytes + piece.start - (piece.slice as Slice).offsetBytes;
        const only = windowPieces.length === 1 ? windowPieces[0] : undefined;
        if (only !== undefined) {
          if (only.slice === undefined) {
            yield Buffer.alloc(to - from);
            continue;
          }
          const dataStart = dataStartOf(only);
          const blockIndex = Math.floor(dataStart / only.slice.blockBytes);
          if (dataStart + (to - from) <= blockIndex * only.slice.blockBytes + sliceBlockLength(only.slice, blockIndex)) {
            // One block gives the whole window: a view of it.
            const reading = blockOf(only.slice, blockIndex);
            readAheadAfter(only.slice, blockIndex, to);
            const block = await reading;
            const at = dataStart - blockIndex * only.slice.blockBytes;
            yield block.subarray(at, at + (to - from));
            continue;
          }
        }
        const host = this.windowHost(windowPieces, from, to);
        let target: Buffer;
        if (host !== undefined) {
          const slice = host.slice;
          const hostDataStart = slice.skipBytes + from - slice.offsetBytes;
          // Read fresh (never one kept in `lastBlocks`, which may have been yielded; one read
          // ahead is fresh too): it is written into.
          const reading = readAhead(slice, host.blockIndex);
          readAheadAfter(slice, host.blockIndex, to);
          const block = await reading;
          const at = hostDataStart - host.blockIndex * slice.blockBytes;
          target = block.subarray(at, at + (to - from));
          for (const piece of windowPieces) {
            if (piece.slice === slice) continue;
            // `slice` covers the whole window, so every other piece is a newer slice's (no holes).
            const pending = copyPiece(piece.slice as Slice, dataStartOf(piece), dataStartOf(piece) + (piece.end - piece.start), target, piece.start - from);
            if (pending !== undefined) await pending;
          }
        } else {
          target = Buffer.allocUnsafe(to - from);
          for (const piece of windowPieces) {
            if (piece.slice === undefined) target.fill(0, piece.start - from, piece.end - from);
            else {
              const pending = copyPiece(piece.slice, dataStartOf(piece), dataStartOf(piece) + (piece.end - piece.start), target, piece.start - from);
              if (pending !== undefined) await pending;
            }
          }
        }
        yield target;
      }
    }
  }

  /**
   * The slice a window `[from, to)` of a chunk can be built in (see `objectChunks`): the one
   * giving most of the window's bytes, if it covers the whole window with one block that is a
   * block file (a fresh buffer; a block carried in the log is read from the cache).
   */
  private windowHost(pieces: ChunkPiece[], from: number, to: number): { slice: Slice; blockIndex: number } | undefined {
    let best: Slice | undefined;
    let bestBytes = 0;
    const bytes = new Map<Slice, number>();
    for (const piece of pieces) {
      if (piece.slice === undefined) continue;
      const total = (bytes.get(piece.slice) ?? 0) + piece.end - piece.start;
      bytes.set(piece.slice, total);
      if (total > bestBytes) {
        best = piece.slice;
        bestBytes = total;
      }
    }
    if (best === undefined || best.offsetBytes > from || best.offsetBytes + best.lengthBytes < to) return undefined;
    const dataStart = best.skipBytes + from - best.offsetBytes;
    const blockIndex = Math.floor(dataStart / best.blockBytes);
    if (dataStart + (to - from) > blockIndex * best.blockBytes + sliceBlockLength(best, blockIndex)) return undefined;
    if (this.logBlocks.size > 0 && this.logBlocks.has(sliceBlockHash(best, blockIndex).toString('hex'))) return undefined;
    return { slice: best, blockIndex };
  }

  /** Fragmentation of the key's object per chunk, or undefined when the key is absent or not an object. */
  objectStats(key: Bytes): ObjectStats | undefined {
    this.checkReadable();
    const keyString = this.keyString(key);
    const location = this.liveLocation(keyString);
    if (location?.object === undefined) return undefined;
    const chunks: ChunkFragmentation[] = location.object.chunks.map(chunkFragmentation);
    return {
      size: location.object.sizeBytes,
      revision: location.revision,
      chunkBytes: location.object.chunkBytes,
      chunks,
      slices: chunks.reduce((sum, chunk) => sum + chunk.slices, 0),
      maxSlicesPerChunk: chunks.reduce((most, chunk) => Math.max(most, chunk.slices), 0),
      coveredTwiceBytes: chunks.reduce((sum, chunk) => sum + chunk.coveredTwiceBytes, 0),
    };
  }

  /**
   * Compact the key's object now, chunk by chunk: `'light'` drops slices wholly covered by newer
   * ones (metadata only); `'heavy'` (default) also rewrites every chunk left with more than one
   * slice as one slice of new blocks (the old ones go to the two-phase GC). Writes to the object
   * may go on meanwhile: a chunk they change is compacted again from the start (a few times) or
   * left as it is; no write is ever lost or hidden. The key keeps its revision.
   */
  async compactObject(key: Bytes, options?: { mode?: 'light' | 'heavy' }): Promise<ObjectCompactionResult> {
    this.checkAccepting();
    const keyString = this.keyString(key);
    const mode = options?.mode ?? 'heavy';
    if (mode !== 'light' && mode !== 'heavy') throw invalid(`mode must be 'light' or 'heavy', got ${String(mode)}`);
    await this.inKeyOrder([keyString], () => this.settleKey(keyString));
    const before = this.liveLocation(keyString)?.object;
    const result: ObjectCompactionResult = { chunksCompacted: 0, chunksGivenUp: 0, slicesBefore: 0, slicesAfter: 0 };
    if (before === undefined) return result;
    for (const chunk of before.chunks) result.slicesBefore += chunk.slices.length;
    for (const chunk of before.chunks) {
      let outcome = await this.compactChunk(keyString, chunk.index, 'light', false);
      if (mode === 'heavy' && outcome !== 'gave-up') {
        const heavy = await this.compactChunk(keyString, chunk.index, 'heavy', false);
        if (heavy !== 'unchanged') outcome = heavy;
      }
      if (outcome === 'compacted') result.chunksCompacted++;
      if (outcome === 'gave-up') result.chunksGivenUp++;
    }
    for (const chunk of this.liveLocation(keyString)?.object?.chunks ?? []) result.slicesAfter += chunk.slices.length;
    return result;
  }

  /**
   * Compact one chunk of the key's object. The chunk is read and (heavy) rewritten without holding
   * up writes to the key; then, in the key's write order, the commit checks that the chunk still
   * begins with exactly the slices that were read. Slices added meanwhile stay after the
   * compacted one, so they win where they overlap (commit order); any other change (a truncate,
   * another compaction) means start again, at most three times. `inOrder`: the caller already
   * holds the key's write order (a write compacting before it writes).
   */
  private async compactChunk(keyString: string, index: number, mode: 'light' | 'heavy', inOrder: boolean): Promise<'compacted' | 'unchanged' | 'gave-up'> {
    for (let attempt = 0; attempt < 3; attempt++) {
      this.checkWritable();
      const location = this.liveLocation(keyString);
      const chunk = location?.object === undefined ? undefined : findChunk(location.object, index);
      if (chunk === undefined || chunk.slices.length < 2) return 'unchanged';
      const readSlices = chunk.slices;
      let replacement: Slice[];
      let held: ValueReference | undefined;
      if (mode === 'light') {
        replacement = dropCoveredSlices(readSlices);
        if (replacement.length === readSlices.length) return 'unchanged';
      } else {
        let low = Infinity;
        let high = 0;
        for (const slice of readSlices) {
          low = Math.min(low, slice.offsetBytes);
          high = Math.max(high, slice.offsetBytes + slice.lengthBytes);
        }
        const object = location?.object as ObjectManifest;
        held = await this.rewriteChunk(object, index, readSlices, low, high);
        const gridStart = high - held.sizeBytes;
        replacement = [{ offsetBytes: low, lengthBytes: high - low, skipBytes: low - gridStart, blockBytes: held.blockBytes, dataBytes: held.sizeBytes, blockHashes: held.blockHashes }];
      }
      try {
        const commit = () => this.commitChunkCompaction(keyString, index, readSlices, replacement);
        const committed = inOrder ? await commit() : await this.inKeyOrder([keyString], commit);
        if (committed) {
          if (mode === 'light') this.objectCounters.lightCompactions++;
          else this.objectCounters.heavyCompactions++;
          return 'compacted';
        }
        this.objectCounters.conflicts++;
      } finally {
        if (held !== undefined) this.unholdReference(held);
      }
    }
    this.objectCounters.givenUp++;
    return 'gave-up';
  }

  /**
   * Heavy compaction's bytes: the visible bytes of `[low, high)` of chunk `index` (as `readSlices`
   * make it read) as full-size block files on a grid aligned to the chunk (block `j` holds chunk
   * bytes `[j × blockBytes, (j+1) × blockBytes)`; bytes before `low` in the first block are zeros,
   * as they read). A grid block whose visible bytes are exactly one whole block file of one slice
   * at the same alignment is kept as it is, neither read nor rewritten (a chunk grown by appends
   * rewrites only its new bytes). Returns the blocks as a reference over `[gridStart, high)`, its
   * blocks held until the caller unholds them; block names are durable on return.
   */
  private async rewriteChunk(object: ObjectManifest, index: number, readSlices: Slice[], low: number, high: number): Promise<ValueReference> {
    const blockBytes = this.options.blockBytes;
    const chunkStart = index * object.chunkBytes;
    const gridStart = Math.floor(low / blockBytes) * blockBytes;
    const view: ObjectManifest = { sizeBytes: object.sizeBytes, chunkBytes: object.chunkBytes, chunks: [{ index, slices: readSlices }] };
    const hashes: Buffer[] = [];
    const inFlight: Array<Promise<void>> = [];
    // The blocks read here stay on disk even if a write drops them meanwhile.
    const unpin = this.pinReaders(readSlices);
    try {
      for (let blockStart = gridStart; blockStart < high; blockStart += blockBytes) {
        const blockEnd = Math.min(high, blockStart + blockBytes);
        const pieces = resolveChunk(readSlices, blockStart, blockEnd);
        const only = pieces.length === 1 ? pieces[0] : undefined;
        const kept = only?.slice === undefined ? undefined : this.wholeBlockFile(only.slice, blockStart, blockEnd - blockStart);
        if (kept !== undefined) {
          hashes.push(kept);
          this.hold(kept.toString('hex'));
          this.objectCounters.blocksReused++;
          continue;
        }
        const parts: Buffer[] = [];
        for await (const part of this.objectChunks(view, chunkStart + blockStart, chunkStart + blockEnd)) parts.push(part);
        // One part is the block's own buffer (the generator is done with it): no copy needed.
        const data = parts.length === 1 && (parts[0] as Buffer).length === blockEnd - blockStart ? (parts[0] as Buffer) : Buffer.concat(parts, blockEnd - blockStart);
        const hash = sha256(data);
        hashes.push(hash);
        this.hold(hash.toString('hex'));
        const write = this.blocks.write(hash, data);
        // Awaited in order below: a later failure must not be an unhandled rejection meanwhile.
        write.catch(() => undefined);
        inFlight.push(write);
        this.objectCounters.bytesRewritten += data.length;
        if (inFlight.length >= BLOCK_WRITES_IN_FLIGHT) await inFlight.shift();
      }
      await Promise.all(inFlight);
      // Every block's data and name are durable once its write settles (before the record that
      // points at it is written); this makes any deletion in the directory durable too.
      await this.blocks.syncDirectory();
    } catch (error) {
      await Promise.allSettled(inFlight);
      for (const hash of hashes) this.unhold(hash.toString('hex'));
      throw error;
    } finally {
      unpin();
    }
    return { sizeBytes: high - gridStart, blockBytes, digest: Buffer.alloc(0), blockHashes: Buffer.concat(hashes) };
  }

  /**
   * The hash of `slice`'s block that is exactly chunk bytes `[start, start + length)`, if there is
   * one: same block size, aligned, the whole block, and a block file (a block carried in the log
   * is rewritten instead, so compaction moves small slices' bytes out of the log).
   */
  private wholeBlockFile(slice: Slice, start: number, length: number): Buffer | undefined {
    if (slice.blockBytes !== this.options.blockBytes) return undefined;
    const dataStart = slice.skipBytes + start - slice.offsetBytes;
    if (dataStart % slice.blockBytes !== 0) return undefined;
    const blockIndex = dataStart / slice.blockBytes;
    if (sliceBlockLength(slice, blockIndex) !== length) return undefined;
    const hash = sliceBlockHash(slice, blockIndex);
    if (this.logBlocks.has(hash.toString('hex'))) return undefined;
    return Buffer.from(hash);
  }

  /** The commit step of `compactChunk`, in the key's write order; false if the chunk changed. */
  private async commitChunkCompaction(keyString: string, index: number, readSlices: Slice[], replacement: Slice[]): Promise<boolean> {
    await this.settleKey(keyString);
    this.checkWritable();
    const location = this.liveLocation(keyString);
    if (location?.object === undefined) return false;
    const chunk = findChunk(location.object, index);
    if (chunk === undefined || !startsWithSlices(chunk.slices, readSlices)) return false;
    const manifest = withChunk(location.object, index, [...replacement, ...chunk.slices.slice(readSlices.length)]);
    // Recorded as what changed (one chunk's slices), not as the whole manifest, when it can be.
    const delta = { base: location.object, items: [{ index, replacedCount: readSlices.length, slices: replacement }] };
    await this.commitObject(keyString, manifest, location.revision, 0, [], delta);
    return true;
  }

  /** Queue background compaction of the chunks among `indexes` with more than `objects.compactAt` slices (unless append-shaped: see APPEND_SLICE_BYTES). */
  private scheduleObjectCompaction(keyString: string, manifest: ObjectManifest, indexes: number[]): void {
    if (!this.options.objects.compaction || this.options.readOnly) return;
    for (const index of indexes) {
      const slices = findChunk(manifest, index)?.slices;
      if (slices === undefined || slices.length <= this.options.objects.compactAt) continue;
      if (appendShaped(slices, Math.min(APPEND_SLICE_BYTES, this.options.blockBytes)) && manifestSlices(manifest) <= this.options.objects.appendSlicesMax) continue;
      let chunks = this.objectQueue.get(keyString);
      if (chunks === undefined) this.objectQueue.set(keyString, (chunks = new Set()));
      chunks.add(index);
    }
    if (this.objectQueue.size === 0 || this.objectCompacting !== undefined) return;
    this.objectCompacting = this.runObjectCompaction()
      .catch((error: unknown) => {
        if (this.state === 'open' && !(error instanceof SiltError && (error.code === ErrorCode.FAILED || error.code === ErrorCode.CLOSED))) {
          // A background failure stops the store from taking writes and says why (no retry loop).
          this.fail(toIoError(error, 'background slice compaction'));
        }
      })
      .finally(() => {
        this.objectCompacting = undefined;
        if (this.state !== 'open' || this.failure !== undefined) this.objectQueue.clear();
        else if (this.objectQueue.size > 0) this.scheduleObjectCompaction(keyString, manifest, []);
        // Segment compaction may have waited for this catch-up (see maybeScheduleCompaction).
        this.maybeScheduleCompaction();
      });
  }

  private async runObjectCompaction(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.objectQueue.size > 0 && this.state === 'open' && this.failure === undefined) {
      // During a burst of writes, a chunk is not worth the budget yet while it holds fewer than
      // half the slices pacing lets a chunk reach anyway (about chunkBytes / (budget × its writes'
      // mean size)): compacting it now would be paid again. A pause catches up on every chunk.
      const candidate = this.peekQueuedChunk();
      if (candidate !== undefined && candidate.slices.length > this.options.objects.compactAt && this.inObjectBurst() && candidate.slices.length < this.burstWorthSlices(candidate.chunkBytes, candidate.slices)) {
        await this.waitForObjectWrites(true);
        continue;
      }
      await this.paceObjectCompaction();
      if (this.state !== 'open' || this.failure !== undefined) break;
      const next = this.nextQueuedChunk();
      if (next === undefined) break;
      const [keyString, index] = next;
      const sliceCount = () => {
        const object = this.liveLocation(keyString)?.object;
        return object === undefined ? 0 : (findChunk(object, index)?.slices.length ?? 0);
      };
      if (sliceCount() <= this.options.objects.compactAt) continue;
      // Light first only when it is enough on its own: its record is a whole manifest, wasted
      // when heavy compaction follows anyway (heavy resolves the covered slices away too).
      const slices = findChunk(this.liveLocation(keyString)?.object as ObjectManifest, index)?.slices ?? [];
      if (dropCoveredSlices(slices).length <= this.options.objects.compactAt) await this.compactChunk(keyString, index, 'light', false);
      if (sliceCount() > this.options.objects.compactAt) {
        const before = this.objectCounters.bytesRewritten;
        await this.compactChunk(keyString, index, 'heavy', false);
        // Charged after the fact: what it rewrote is paid for by later object writes.
        if (this.options.objects.compactBudget > 0) this.objectCredit -= this.objectCounters.bytesRewritten - before;
      }
    }
    this.objectCatchUp = false;
  }

  /** The queued chunk with the most slices (left on the queue), with its slices and chunk size. */
  private peekQueuedChunk(): { slices: Slice[]; chunkBytes: number } | undefined {
    let best: { slices: Slice[]; chunkBytes: number } | undefined;
    for (const [keyString, chunks] of this.objectQueue) {
      const object = this.liveLocation(keyString)?.object;
      if (object === undefined) continue;
      for (const index of chunks) {
        const slices = findChunk(object, index)?.slices;
        if (slices !== undefined && (best === undefined || slices.length > best.slices.length)) best = { slices, chunkBytes: object.chunkBytes };
      }
    }
    return best;
  }

  /** Whether object writes are coming (paced compaction, no pause or `idle()` since the last one). */
  private inObjectBurst(): boolean {
    return this.options.objects.compactBudget > 0 && !this.objectCatchUp && performance.now() - this.lastObjectWriteMs < this.options.objects.compactQuietMs;
  }

  /**
   * Half the slices a chunk reaches between paced compactions in a steady burst: chunk bytes over
   * (budget × the mean length of its slices after the first, the ones written since it was last
   * compacted, roughly). 4 KiB writes into 16 MiB chunks at budget 2: 1024; 64 KiB appends: 64.
   */
  private burstWorthSlices(chunkBytes: number, slices: readonly Slice[]): number {
    let bytes = 0;
    for (let position = 1; position < slices.length; position++) bytes += (slices[position] as Slice).lengthBytes;
    const mean = bytes / Math.max(1, slices.length - 1);
    return Math.floor(chunkBytes / (this.options.objects.compactBudget * Math.max(1, mean)) / 2);
  }

  /** The queued chunk with the most slices (taken off the queue), or undefined when none is left. */
  private nextQueuedChunk(): [string, number] | undefined {
    let best: [string, number] | undefined;
    let bestSlices = -1;
    for (const [keyString, chunks] of this.objectQueue) {
      const object = this.liveLocation(keyString)?.object;
      for (const index of chunks) {
        const slices = object === undefined ? 0 : (findChunk(object, index)?.slices.length ?? 0);
        if (slices > bestSlices) {
          best = [keyString, index];
          bestSlices = slices;
        }
      }
    }
    if (best === undefined) return undefined;
    const chunks = this.objectQueue.get(best[0]) as Set<number>;
    chunks.delete(best[1]);
    if (chunks.size === 0) this.objectQueue.delete(best[0]);
    return best;
  }

  /**
   * An object write of `bytes` happened: it pays for `objects.compactBudget` times as many bytes of
   * background compaction (banked up to one chunk), and wakes a paced compaction it paid for.
   */
  private payObjectCompaction(bytes: number): void {
    this.lastObjectWriteMs = performance.now();
    const budget = this.options.objects.compactBudget;
    if (budget === 0) return;
    this.objectCredit = Math.min(this.objectCredit + bytes * budget, this.options.objects.chunkBytes);
    if (this.objectCredit >= 0 || this.objectWakeOnWrite) this.objectPaceWake?.();
  }

  /**
   * Before background compaction starts a chunk: while it is ahead of what object writes paid
   * for, wait for them to pay, or for them to pause (`objects.compactQuietMs` without one), `idle()`
   * or close. A pause forgives the debt: compaction then catches up on every queued chunk, as
   * fast as it can. Writes past `objects.syncCompactAt` do not wait for this: they compact first.
   */
  private async paceObjectCompaction(): Promise<void> {
    if (this.options.objects.compactBudget === 0) return;
    while (this.objectCredit < 0 && this.inObjectBurst() && this.state === 'open' && this.failure === undefined) await this.waitForObjectWrites(false);
    if (this.objectCredit < 0) this.objectCredit = 0;
  }

  /**
   * Wait until an object write pays the credit back to zero (or, with `anyWrite`, until any
   * object write), writes pause (`objects.compactQuietMs`), `idle()` asks to catch up, or close.
   */
  private async waitForObjectWrites(anyWrite: boolean): Promise<void> {
    const quietInMs = this.lastObjectWriteMs + this.options.objects.compactQuietMs - performance.now();
    if (quietInMs <= 0 || this.objectCatchUp || this.state !== 'open') return;
    this.objectCounters.pacedWaits++;
    this.objectWakeOnWrite = anyWrite;
    await new Promise<void>((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        if (this.objectPaceWake === wake) this.objectPaceWake = undefined;
        this.objectWakeOnWrite = false;
        resolve();
      };
      const timer = setTimeout(wake, Math.ceil(quietInMs));
      timer.unref();
      this.objectPaceWake = wake;
    });
  }

  /** Delete `key`. Writes nothing when the key is absent. */
  async delete(key: Bytes, options?: DeleteOptions): Promise<DeleteResult> {
    this.checkAccepting();
    const keyString = this.keyString(key);
    const ifRevision = checkRevisionOption(options?.ifRevision, 'ifRevision');
    if (this.keyTails.has(keyString)) return this.inKeyOrder([keyString], () => this.deleteInOrder(keyString, ifRevision));
    if (this.mustWaitForCompaction()) return this.stallHeld([keyString], this.afterStall(() => this.commitDelete(keyString, ifRevision)));
    return this.commitDelete(keyString, ifRevision);
  }

  private async deleteInOrder(keyString: string, ifRevision: number | undefined): Promise<DeleteResult> {
    return this.mustWaitForCompaction() ? this.afterStall(() => this.commitDelete(keyString, ifRevision)) : this.commitDelete(keyString, ifRevision);
  }

  /** Check and queue a delete, in one synchronous step (throws, rather than rejects, on a failed check). */
  private commitDelete(keyString: string, ifRevision: number | undefined): Promise<DeleteResult> | DeleteResult {
    this.checkWritable();
    const current = this.currentRevision(keyString);
    if (ifRevision !== undefined && current !== ifRevision) {
      throw new SiltError(ErrorCode.CONFLICT, `condition failed: the key is at revision ${current}`, { currentRevision: current });
    }
    // Absent and nothing queued for the key: there is nothing to make durable. Absent only
    // because of a queued delete: write a tombstone too, so that this delete is acknowledged only
    // once that earlier delete is durable.
    // The revision reported is the last applied one, not the last handed out: a revision given to
    // a write still in flight is not acknowledged, and a crash may lose it.
    if (current === 0 && !this.pending.has(keyString)) return { revision: this.appliedRevision(), existed: false };
    const revision = ++this.revision;
    const length = entryLength(keyString, undefined, false);
    const bytes = Buffer.allocUnsafe(length);
    encodeEntry(bytes, 0, { type: EntryType.DELETE, key: keyString, revision });
    this.counters.deletes++;
    const result: DeleteResult = { revision, existed: current !== 0 };
    return this.enqueue(revision, bytes, [{ key: keyString, type: EntryType.DELETE, relativeOffsetBytes: 0, lengthBytes: length, expiresAtMs: undefined, userBytes: keyString.length }], result);
  }

  /** Apply puts and deletes atomically, as one record with one revision. */
  async batch(operations: BatchOperation[]): Promise<WriteResult> {
    this.checkAccepting();
    if (!Array.isArray(operations)) throw invalid('batch takes an array of operations');
    if (operations.length > this.options.batchOperationsMax) {
      throw new SiltError(ErrorCode.TOO_LARGE, `batch of ${operations.length} operations exceeds batchOperationsMax ${this.options.batchOperationsMax}`);
    }
    if (operations.length === 0) return { revision: this.appliedRevision() };
    const nowMs = Date.now();
    const prepared = operations.map((operation, position) => {
      if (typeof operation !== 'object' || operation === null) throw invalid(`batch operation ${position} must be an object`);
      const key = Buffer.from(this.keyString(operation.key), 'latin1');
      if (operation.type === 'put') {
        const ttlMs = checkTtl(operation.ttlMs);
        const value: Buffer = this.valueBytes(operation.value);
        return {
          type: EntryType.PUT as KeyEntryType,
          key,
          value,
          expiresAtMs: ttlMs === undefined ? undefined : nowMs + ttlMs,
          reference: undefined as ValueReference | undefined,
          userBytes: key.length + value.length,
        };
      }
      if (operation.type === 'delete') {
        return { type: EntryType.DELETE as KeyEntryType, key, value: undefined as Buffer | undefined, expiresAtMs: undefined, reference: undefined, userBytes: key.length };
      }
      throw invalid(`batch operation ${position} has unknown type ${String((operation as { type: unknown }).type)}`);
    });
    const large = prepared.some((operation) => operation.value !== undefined && operation.value.length > this.options.valueThreshold);
    const keys = prepared.map((operation) => operation.key.toString('latin1'));
    if (large || (this.keyTails.size > 0 && keys.some((key) => this.keyTails.has(key)))) {
      return this.inKeyOrder(keys, () => this.batchInOrder(prepared));
    }
    if (this.mustWaitForCompaction()) return this.stallHeld(keys, this.batchInOrder(prepared));
    return this.batchInOrder(prepared);
  }

  private async batchInOrder(prepared: PreparedBatchOperation[]): Promise<WriteResult> {
    this.checkWritable();
    try {
      // A batch of inline values is queued in commitBatch's first synchronous step, so in its turn.
      return await (this.mustWaitForCompaction() ? this.afterStall(() => this.commitBatch(prepared)) : this.commitBatch(prepared));
    } finally {
      for (const operation of prepared) this.unholdReference(operation.reference);
    }
  }

  /**
   * Keep writes to a key in call order when one of them takes time before it gets its revision
   * (a large value's blocks are written first): `run` starts once the earlier writes to these
   * keys have settled, and later writes to them wait for this one. Writes to other keys, and
   * writes to keys with nothing in flight, are not held up.
   */
  private inKeyOrder<T>(keys: string[], run: () => Promise<T>): Promise<T> {
    const earlier = new Set<Promise<void>>();
    for (const key of keys) {
      const tail = this.keyTails.get(key);
      if (tail !== undefined) earlier.add(tail);
    }
    const result = earlier.size === 0 ? run() : Promise.all(earlier).then(run);
    const tail: Promise<void> = result.then(
      () => undefined,
      () => undefined,
    );
    for (const key of keys) this.keyTails.set(key, tail);
    void tail.then(() => {
      for (const key of keys) if (this.keyTails.get(key) === tail) this.keyTails.delete(key);
    });
    return result;
  }

  private async commitBatch(prepared: PreparedBatchOperation[]): Promise<WriteResult> {
    // Large values go to blocks first; the batch's one record then points at them.
    for (const operation of prepared) {
      if (operation.value !== undefined && operation.value.length > this.options.valueThreshold) {
        operation.reference = await this.writeBlocks([operation.value], undefined);
        operation.type = EntryType.PUT_REFERENCE;
        operation.value = encodeReference(operation.reference);
      }
    }
    this.checkWritable();
    let length = BATCH_HEADER_BYTES;
    for (const operation of prepared) length += entryLength(operation.key, operation.value, operation.expiresAtMs !== undefined);
    if (length > 0xffff_ffff) throw new SiltError(ErrorCode.TOO_LARGE, 'batch exceeds 4 GiB');
    const revision = ++this.revision;
    const bytes = Buffer.allocUnsafe(length);
    encodeBatchHeader(bytes, 0, length, revision, prepared.length);
    const pendingOperations: PendingOperation[] = [];
    let cursor = BATCH_HEADER_BYTES;
    for (const operation of prepared) {
      const entryBytes = encodeEntry(bytes, cursor, {
        type: operation.type,
        key: operation.key,
        value: operation.value,
        revision,
        expiresAtMs: operation.expiresAtMs,
      });
      pendingOperations.push({
        key: operation.key.toString('latin1'),
        type: operation.type,
        relativeOffsetBytes: cursor,
        lengthBytes: entryBytes,
        expiresAtMs: operation.expiresAtMs,
        userBytes: operation.userBytes,
        reference: operation.reference,
      });
      cursor += entryBytes;
    }
    sealBatch(bytes, 0, length);
    this.counters.batches++;
    const result: WriteResult = { revision };
    return this.enqueue(revision, bytes, pendingOperations, result);
  }

  private enqueue<T = void>(revision: number, bytes: Buffer, operations: PendingOperation[], result?: T): Promise<T> {
    for (const operation of operations) {
      if (operation.type !== EntryType.BLOCK) this.pending.set(operation.key, operation.type === EntryType.DELETE ? -revision : revision);
    }
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ revision, bytes, operations, result, resolve: resolve as (result: unknown) => void, reject });
      if (!this.flushScheduled && this.flushing === undefined) {
        this.flushScheduled = true;
        // Start on a microtask, so that writes issued together in this tick share a group.
        queueMicrotask(() => {
          this.flushScheduled = false;
          this.startFlushing();
        });
      }
    });
  }

  private startFlushing(): void {
    if (this.flushing !== undefined || (this.queue.length === 0 && this.rollWaiters.length === 0)) return;
    this.flushing = this.flushLoop().finally(() => {
      this.flushing = undefined;
      // Writes that arrived while the last group was being written.
      if (this.queue.length > 0 || this.rollWaiters.length > 0) this.startFlushing();
    });
  }

  /** Seal the active segment (if it holds any record) between two group commits. */
  private requestRoll(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.rollWaiters.push({ resolve, reject });
      this.startFlushing();
    });
  }

  private async flushLoop(): Promise<void> {
    while (this.queue.length > 0 || this.rollWaiters.length > 0) {
      if (this.failure !== undefined) {
        this.rejectQueued(this.failedError());
        for (const waiter of this.rollWaiters.splice(0)) waiter.reject(this.failedError());
        return;
      }
      if (this.rollWaiters.length > 0) {
        const waiters = this.rollWaiters.splice(0);
        try {
          if ((this.active as SegmentWriter).sizeBytes > SEGMENT_HEADER_BYTES) await this.roll();
          for (const waiter of waiters) waiter.resolve();
        } catch (error) {
          const cause = toIoError(error, 'sealing a segment');
          this.fail(cause);
          for (const waiter of waiters) waiter.reject(cause);
        }
        continue;
      }
      let bytes = 0;
      let count = 0;
      while (count < this.queue.length && (count === 0 || bytes + (this.queue[count] as PendingWrite).bytes.length <= this.options.groupBytesMax)) {
        bytes += (this.queue[count] as PendingWrite).bytes.length;
        count++;
      }
      const group = this.queue.splice(0, count);
      try {
        await this.commitGroup(group, bytes);
      } catch (error) {
        const cause = toIoError(error, 'writing the log');
        this.fail(cause);
        for (const write of group) write.reject(cause);
        for (const write of group) this.clearPending(write);
        this.rejectQueued(this.failedError());
        return;
      }
    }
  }

  private rejectQueued(error: SiltError): void {
    const queued = this.queue.splice(0);
    for (const write of queued) {
      this.clearPending(write);
      write.reject(error);
    }
  }

  private clearPending(write: PendingWrite): void {
    for (const operation of write.operations) {
      if (operation.type === EntryType.BLOCK) continue;
      const queued = this.pending.get(operation.key);
      if (queued === write.revision || queued === -write.revision) this.pending.delete(operation.key);
    }
  }

  /**
   * A delta whose base record is not in the segment it is about to be written to (the segment
   * rolled since it was encoded) is written as a full manifest instead: chains never span two
   * segments. Returns the bytes this adds to the group.
   */
  private unchainAcrossSegments(group: PendingWrite[], segmentId: number): number {
    let added = 0;
    for (const write of group) {
      const last = write.operations[write.operations.length - 1];
      if (last?.deltaBase === undefined || last.deltaBase.segmentId === segmentId) continue;
      // The delta is its write's last entry (after the write's BLOCK entries).
      const payload = encodeManifest(last.object as ObjectManifest);
      const length = entryLength(last.key, payload, false);
      const bytes = Buffer.allocUnsafe(last.relativeOffsetBytes + length);
      write.bytes.copy(bytes, 0, 0, last.relativeOffsetBytes);
      encodeEntry(bytes, last.relativeOffsetBytes, { type: EntryType.PUT_OBJECT, key: last.key, value: payload, revision: write.revision });
      added += bytes.length - write.bytes.length;
      write.bytes = bytes;
      last.type = EntryType.PUT_OBJECT;
      last.lengthBytes = length;
      last.deltaBase = undefined;
      this.objectCounters.deltaRecords--;
    }
    return added;
  }

  private async commitGroup(group: PendingWrite[], totalBytes: number): Promise<void> {
    let active = this.active as SegmentWriter;
    if (active.sizeBytes > SEGMENT_HEADER_BYTES && active.sizeBytes + totalBytes > this.options.segmentBytes) {
      active = await this.roll();
    }
    totalBytes += this.unchainAcrossSegments(group, active.segmentId);
    const buffer = group.length === 1 ? (group[0] as PendingWrite).bytes : Buffer.concat(group.map((write) => write.bytes), totalBytes);
    const offset = await active.append(buffer);
    // Without a per-group fdatasync the footer checksum is folded now (it holds no buffer for long).
    if (this.options.durability !== 'sync') active.foldChecksum();
    this.dirty = true;
    this.counters.groups++;
    this.counters.logBytes += totalBytes;
    const segmentRecord = this.segments.get(active.segmentId) as SegmentRecord;
    segmentRecord.sizeBytes = active.sizeBytes;
    if (this.options.durability === 'sync') {
      // The group's records are durable before any of its writes is acknowledged. A fast disk's
      // fdatasync is waited for on the main thread: the thread pool's round trip costs more than
      // the wait there. A slow one's goes to the thread pool, so that the event loop is not held.
      const inline = this.groupSyncMs <= this.options.inlineSyncMaxMs && this.options.inlineSyncMaxMs > 0 && active.canSyncInline;
      const started = performance.now();
      if (inline) active.datasyncSync();
      else await active.datasync();
      this.groupSyncMs += (performance.now() - started - this.groupSyncMs) / 8;
      if (inline) {
        this.counters.inlineFsyncs++;
        // Then a turn of the event loop before the writes are acknowledged, as the thread pool's
        // callback gives: a loop of awaited writes must not starve timers, I/O and background work.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      this.dirty = false;
      this.counters.fsyncs++;
    }
    let writeOffset = offset;
    for (const write of group) {
      for (const operation of write.operations) {
        const newOffset = writeOffset + operation.relativeOffsetBytes;
        if (operation.type === EntryType.BLOCK) {
          // A block carried in the log (not a key's record; the footer does not count it). A copy
          // made by segment compaction moves the block only if it still lives at the original.
          const from = operation.relocatedFrom;
          const current = this.logBlocks.get(operation.key);
          if (from === undefined || (current !== undefined && current.segmentId === from.segmentId && current.offsetBytes === from.offsetBytes)) {
            this.setLogBlock(operation.key, { segmentId: active.segmentId, offsetBytes: newOffset, lengthBytes: operation.lengthBytes, revision: from?.revision ?? write.revision });
          }
          continue;
        }
        active.note(operation.type, operation.key, operation.relocatedFrom?.revision ?? write.revision);
        this.counters.userBytes += operation.userBytes;
        // A plain put or delete finds the location it replaces in its own descent (below).
        const previous = operation.replacesRevision !== undefined || operation.relocatedFrom !== undefined || operation.deltaBase !== undefined ? this.index.get(operation.key) : undefined;
        if (operation.deltaBase !== undefined) {
          // A delta (a write's or a slice compaction's): the key's previous record stays live as the
          // earlier part of the chain.
          const base = operation.deltaBase;
          if (previous === undefined || previous.segmentId !== active.segmentId || previous.offsetBytes !== base.offsetBytes || previous.object !== base.object) {
            throw new Error(`internal: the record an object delta of ${JSON.stringify(operation.key)} applies to has moved`);
          }
          const location: EntryLocation = {
            segmentId: active.segmentId,
            offsetBytes: newOffset,
            lengthBytes: operation.lengthBytes,
            revision: write.revision,
            expiresAtMs: undefined,
            verifiedKey: undefined,
            object: operation.object as ObjectManifest,
            chainStartBytes: previous.chainStartBytes ?? previous.offsetBytes,
            chainBytes: liveLength(previous),
          };
          this.replaceHeld(operation.object, previous.object);
          this.index.set(operation.key, location);
          this.liveBytes += operation.lengthBytes;
          segmentRecord.liveBytes += operation.lengthBytes;
          continue;
        }
        if (operation.replacesRevision !== undefined) {
          // A slice compaction: the same bytes under the same revision, with another manifest.
          if (previous !== undefined && previous.revision === operation.replacesRevision && previous.object !== undefined && operation.object !== undefined) {
            const replaced: EntryLocation = { segmentId: active.segmentId, offsetBytes: newOffset, lengthBytes: operation.lengthBytes, revision: previous.revision, expiresAtMs: previous.expiresAtMs, verifiedKey: undefined, object: operation.object };
            this.index.set(operation.key, replaced);
            this.liveBytes += operation.lengthBytes - liveLength(previous);
            this.segmentLiveBytes(previous.segmentId, -liveLength(previous));
            segmentRecord.liveBytes += operation.lengthBytes;
            // Retained before released: blocks the two manifests share never look unreferenced.
            this.replaceHeld(operation.object, previous.object);
          }
          continue;
        }
        if (operation.relocatedFrom !== undefined) {
          if (operation.type === EntryType.DELETE) {
            // An expired put's tombstone (the index dropped the put when it was written): now in
            // the log, it lets go of the put's blocks, and checkpoints leave the put out.
            if (operation.heldUntilApplied !== undefined) {
              if (this.droppedUntilLogged.get(operation.key)?.revision === operation.relocatedFrom.revision) this.droppedUntilLogged.delete(operation.key);
              for (const hex of operation.heldUntilApplied) this.unhold(hex);
            }
            continue;
          }
          // A copy made by compaction: it replaces the key's location only if the key still
          // points at the original (guaranteed by the check at enqueue; checked again here).
          const from = operation.relocatedFrom;
          if (operation.rebase === true) {
            // A delta chain rewritten as one full manifest of the same object, same revision.
            if (previous !== undefined && previous.segmentId === from.segmentId && previous.offsetBytes === from.offsetBytes && previous.object === operation.object) {
              const rebased: EntryLocation = { segmentId: active.segmentId, offsetBytes: newOffset, lengthBytes: operation.lengthBytes, revision: previous.revision, expiresAtMs: previous.expiresAtMs, verifiedKey: undefined, object: previous.object };
              this.index.set(operation.key, rebased);
              this.liveBytes += operation.lengthBytes - liveLength(previous);
              this.segmentLiveBytes(from.segmentId, -liveLength(previous));
              segmentRecord.liveBytes += operation.lengthBytes;
            }
            continue;
          }
          if (previous !== undefined && previous.segmentId === from.segmentId && previous.offsetBytes === from.offsetBytes) {
            const moved: EntryLocation = { ...previous, segmentId: active.segmentId, offsetBytes: newOffset, verifiedKey: undefined };
            this.index.set(operation.key, moved);
            this.segmentLiveBytes(from.segmentId, -previous.lengthBytes);
            segmentRecord.liveBytes += previous.lengthBytes;
          } else {
            // An expired put the sweep dropped after this copy was queued: its tombstone, not yet
            // applied, comes after the copy in the log, so until then a checkpoint lists the put here.
            const dropped = this.droppedUntilLogged.get(operation.key);
            if (dropped !== undefined && dropped.segmentId === from.segmentId && dropped.offsetBytes === from.offsetBytes) {
              this.droppedUntilLogged.set(operation.key, { ...dropped, segmentId: active.segmentId, offsetBytes: newOffset, verifiedKey: undefined });
            }
          }
          continue;
        }
        let old: EntryLocation | undefined;
        if (operation.type === EntryType.DELETE) {
          old = this.index.delete(operation.key);
        } else {
          const location: EntryLocation = {
            segmentId: active.segmentId,
            offsetBytes: newOffset,
            lengthBytes: operation.lengthBytes,
            revision: write.revision,
            expiresAtMs: operation.expiresAtMs,
            verifiedKey: undefined,
          };
          if (operation.reference !== undefined) location.reference = operation.reference;
          if (operation.object !== undefined) location.object = operation.object;
          old = this.index.set(operation.key, location);
          this.liveBytes += operation.lengthBytes;
          segmentRecord.liveBytes += operation.lengthBytes;
          if (operation.expiresAtMs !== undefined) this.noteExpiry(operation.key, write.revision, operation.expiresAtMs);
        }
        if (old !== undefined) {
          this.liveBytes -= liveLength(old);
          this.segmentLiveBytes(old.segmentId, -liveLength(old));
        }
        const oldBlocks = old?.reference ?? old?.object;
        // Retained before released: blocks an object keeps from its previous version stay referenced throughout.
        if (operation.type !== EntryType.DELETE) this.replaceHeld(operation.reference ?? operation.object, oldBlocks);
        else if (oldBlocks !== undefined) this.release(oldBlocks);
      }
      this.clearPending(write);
      writeOffset += write.bytes.length;
      // Relocations (revision 0) keep their entries' own revisions and move no counter.
      if (write.revision > this.lastAppliedRevision) this.lastAppliedRevision = write.revision;
    }
    segmentRecord.appliedBytes = writeOffset;
    for (const write of group) write.resolve(write.result);
    this.maybeScheduleCompaction();
  }

  /**
   * Read-only: the view's segments that no value it can read is in, nor a block carried in the log
   * that one references (a value expired by `nowMs` cannot be read). A writer may compact those
   * away without writing a record the view lacks: their live records were copied forward before
   * this open, or were puts expired since (dropped without a tombstone when inline). So their
   * files going is no sign of damage, and none that a new open could see either.
   */
  private segmentsNotNeeded(snapshot: IndexSnapshot<EntryLocation>, nowMs: number): Set<number> {
    const needed = new Set<number>();
    for (const [, location] of snapshot.range()) {
      if (location.expiresAtMs !== undefined && location.expiresAtMs <= nowMs) continue;
      needed.add(location.segmentId);
      const held = location.reference ?? location.object;
      if (held === undefined) continue;
      for (const hex of this.heldBlocks(held)) {
        const carried = this.logBlocks.get(hex);
        if (carried !== undefined) needed.add(carried.segmentId);
      }
    }
    return new Set([...this.segments.keys()].filter((segmentId) => !needed.has(segmentId)));
  }

  /** Bytes of block files no live value references (GC candidates). */
  private unreferencedBlockBytes(): number {
    return this.blocks.unreferencedBytes(this.referenceCounts);
  }

  /** The block hashes (hex) a value reference or object points at; an object's block counts once per slice using it. */
  private heldBlocks(held: ValueReference | ObjectManifest): string[] {
    const hexes: string[] = [];
    if ('chunks' in held) {
      forEachManifestBlock(held, (hash) => hexes.push(hash.toString('hex')));
    } else {
      const count = referenceBlockCount(held);
      for (let index = 0; index < count; index++) hexes.push(referenceBlockHash(held, index).toString('hex'));
    }
    return hexes;
  }

  /**
   * `retain(next)` then `release(previous)` (either may be absent). Two manifests (an object's new
   * version and its old one) are counted by their difference: only the slices one holds and the
   * other does not, so a write costs the chunks it changed, not the whole object.
   */
  private replaceHeld(next: ValueReference | ObjectManifest | undefined, previous: ValueReference | ObjectManifest | undefined): void {
    if (next !== undefined && previous !== undefined && 'chunks' in next && 'chunks' in previous) {
      const { added, removed } = manifestDelta(next, previous);
      this.logicalBlockBytes += next.sizeBytes - previous.sizeBytes;
      this.retainHexes(sliceBlockHexes(added));
      this.releaseHexes(sliceBlockHexes(removed));
      return;
    }
    if (next !== undefined) this.retain(next);
    if (previous !== undefined) this.release(previous);
  }

  /** Count one more live version pointing at each block of `reference` (a value reference or an object's manifest). */
  private retain(reference: ValueReference | ObjectManifest): void {
    this.logicalBlockBytes += reference.sizeBytes;
    this.retainHexes(this.heldBlocks(reference));
  }

  private retainHexes(hexes: string[]): void {
    for (const hex of hexes) {
      const before = this.referenceCounts.get(hex) ?? 0;
      this.referenceCounts.set(hex, before + 1);
      // Referenced again: no longer a candidate (a listed one leaves the list at the next GC pass).
      if (before === 0) {
        this.candidates.delete(hex);
        this.logBlockBecameLive(hex);
      }
    }
  }

  /**
   * Count one live version less for each block of `reference`. A block reaching zero becomes a GC
   * candidate: the next GC pass lists it once the record that dropped the reference is durable,
   * and deletes it `gc.minAgeMs` later, when no reader created before this moment is still open.
   */
  private release(reference: ValueReference | ObjectManifest): void {
    this.logicalBlockBytes -= reference.sizeBytes;
    this.releaseHexes(this.heldBlocks(reference));
  }

  private releaseHexes(hexes: string[]): void {
    let dropped = false;
    for (const hex of hexes) {
      const remaining = (this.referenceCounts.get(hex) ?? 0) - 1;
      if (remaining > 0) {
        this.referenceCounts.set(hex, remaining);
      } else {
        this.referenceCounts.delete(hex);
        this.candidates.set(hex, this.readerEpoch);
        dropped = true;
        // A block carried in the log is now dead bytes in its segment (segment compaction drops it).
        const logBlock = this.logBlocks.get(hex);
        if (logBlock !== undefined) this.logBlockLive(logBlock, -1);
      }
    }
    // Readers created from now on cannot see the dropped blocks; older ones pin them.
    if (dropped) {
      this.readerEpoch++;
      this.scheduleGc();
    }
  }

  /** Count a log block's entry in (or out of) its segment's live bytes. */
  private logBlockLive(location: LogBlockLocation, sign: 1 | -1): void {
    this.liveBytes += sign * location.lengthBytes;
    this.segmentLiveBytes(location.segmentId, sign * location.lengthBytes);
    const segment = this.segments.get(location.segmentId);
    if (segment !== undefined) segment.liveBlockBytes += sign * location.lengthBytes;
  }

  /** A block's reference count rose from zero: its log copy (if any) is live again. */
  private logBlockBecameLive(hex: string): void {
    const logBlock = this.logBlocks.get(hex);
    if (logBlock === undefined) return;
    if (!this.segments.has(logBlock.segmentId)) {
      // Its segment is compacted away (the copy was dead then, so not carried forward): the
      // write reviving the block stored it anew (a block file), and reads go there from now on.
      this.logBlocks.delete(hex);
      return;
    }
    this.logBlockLive(logBlock, 1);
  }

  /** Point a log block at a new copy (a write carrying it, or segment compaction's copy). */
  private setLogBlock(hex: string, location: LogBlockLocation): void {
    const live = this.referenceCounts.has(hex);
    const previous = this.logBlocks.get(hex);
    if (live && previous !== undefined) this.logBlockLive(previous, -1);
    this.logBlocks.set(hex, location);
    if (live) this.logBlockLive(location, 1);
  }

  /** A write in flight relies on this block: GC leaves it alone until `unhold`. */
  private hold(hex: string): void {
    this.holds.set(hex, (this.holds.get(hex) ?? 0) + 1);
  }

  /** Drop the holds of a write on `reference`'s blocks (after its record is applied, or it failed). */
  private unholdReference(reference: ValueReference | undefined): void {
    if (reference === undefined) return;
    const count = referenceBlockCount(reference);
    for (let index = 0; index < count; index++) this.unhold(referenceBlockHash(reference, index).toString('hex'));
  }

  private unhold(hex: string): void {
    const remaining = (this.holds.get(hex) ?? 1) - 1;
    if (remaining > 0) {
      this.holds.set(hex, remaining);
      return;
    }
    this.holds.delete(hex);
    // Stored for a write that did not commit (aborted, failed, lost a race): garbage.
    if (!this.referenceCounts.has(hex) && !this.delayedHas(hex) && this.blocks.has(hex)) {
      this.candidates.set(hex, this.readerEpoch);
      this.scheduleGc();
    }
  }

  private delayedHas(hex: string): boolean {
    return this.delayed?.entries.has(hex) ?? false;
  }

  private addSegmentRecord(writer: SegmentWriter): void {
    this.segments.set(writer.segmentId, {
      segmentId: writer.segmentId,
      path: writer.path,
      sizeBytes: writer.sizeBytes,
      appliedBytes: writer.sizeBytes,
      sealed: false,
      liveBytes: 0,
      liveBlockBytes: 0,
      summary: undefined,
    });
  }

  /** Seal the active segment and start the next; schedules a checkpoint covering the sealed ones. */
  private async roll(): Promise<SegmentWriter> {
    const old = this.active as SegmentWriter;
    const summary = await old.seal();
    this.dirty = false;
    this.counters.fsyncs++;
    const sealed = this.segments.get(old.segmentId) as SegmentRecord;
    sealed.sizeBytes = old.sizeBytes;
    sealed.appliedBytes = old.sizeBytes;
    sealed.sealed = true;
    sealed.summary = summary;
    // The sealed segment's handle becomes a read handle; the file is complete.
    this.readHandles.set(old.segmentId, old.handle);
    this.evictReadHandles();
    // Named before its file exists, for verify(): the file may be listed before it is registered.
    this.creatingSegmentId = old.segmentId + 1;
    let next: SegmentWriter;
    try {
      next = await SegmentWriter.create(this.fs, this.directory, old.segmentId + 1, this.revision, this.preallocateStep());
    } finally {
      this.creatingSegmentId = undefined;
    }
    this.active = next;
    this.addSegmentRecord(next);
    // A checkpoint costs the whole index, a roll only a segment: past a few million keys one
    // checkpoint per roll wrote more than the log (see CHECKPOINT_LOG_GROWTH).
    if (this.options.checkpoint && this.counters.logBytes - this.logBytesAtCheckpoint >= CHECKPOINT_LOG_GROWTH * this.expectedCheckpointBytes()) {
      // Everything before the new segment is sealed and durable, and the index reflects exactly it.
      this.scheduleCheckpoint({ segmentId: next.segmentId, offsetBytes: next.sizeBytes, maxRevision: this.appliedRevision() }, this.index.snapshot());
    }
    return next;
  }

  /**
   * About what a checkpoint of the index as it is now would take: the bytes per entry of the one
   * on disk (written or loaded by this open) times the keys now, or (without one) 8 bytes a key,
   * the least an entry takes (flags, six one-byte varints, a one-byte key): an estimate on the low
   * side only makes checkpoints more frequent.
   */
  private expectedCheckpointBytes(): number {
    const lastEntries = this.checkpointEntriesOnDisk;
    const perEntry = this.checkpointBytes > 0 && lastEntries > 0 ? this.checkpointBytes / lastEntries : 8;
    return perEntry * this.index.size;
  }

  /** The highest revision whose write is in the index (queued and in-flight writes have higher ones). */
  private appliedRevision(): number {
    return this.lastAppliedRevision;
  }

  /** The live log blocks now: call in the same synchronous step as the index snapshot they go with. */
  private liveLogBlocks(): Array<[string, LogBlockLocation]> {
    const blocks: Array<[string, LogBlockLocation]> = [];
    // A held block (a write that reuses it is in flight) counts as live: its record may be applied after the checkpoint's position.
    for (const [hex, location] of this.logBlocks) if ((this.referenceCounts.has(hex) || this.holds.has(hex)) && this.segments.has(location.segmentId)) blocks.push([hex, location]);
    return blocks;
  }

  /**
   * The expired puts with blocks whose tombstones are not applied yet (see `droppedUntilLogged`):
   * call in the same synchronous step as the index snapshot they go with.
   */
  private unloggedDrops(): Array<[string, EntryLocation]> {
    return [...this.droppedUntilLogged];
  }

  private scheduleCheckpoint(
    position: HintPosition,
    snapshot: IndexSnapshot<EntryLocation>,
    blocks = this.liveLogBlocks(),
    dropped = this.unloggedDrops(),
    releases = this.releasedBy(dropped),
  ): void {
    // `blocks`, `dropped` and `releases`: the live log blocks, the unlogged drops and the retired
    // segments the checkpoint lets go, at the same instant as the index snapshot.
    this.checkpointNext = { position, snapshot, blocks, dropped, releases };
    this.logBytesAtCheckpoint = this.counters.logBytes;
    if (this.checkpointRunning !== undefined) return;
    this.checkpointRunning = (async () => {
      while (this.checkpointNext !== undefined) {
        const { position: next, snapshot: view, blocks, dropped, releases } = this.checkpointNext;
        this.checkpointNext = undefined;
        const started = performance.now();
        try {
          const written = await writeHint(this.fs, this.directory, next, withDropped(view, dropped), blocks);
          this.checkpointBytes = written.sizeBytes;
          this.checkpointBytesWritten += written.sizeBytes;
          this.checkpointPosition = { segmentId: next.segmentId, offsetBytes: next.offsetBytes };
          this.checkpointOnDisk = { segmentId: next.segmentId };
          this.checkpointCounters.written++;
          this.checkpointCounters.lastEntryCount = written.entryCount;
          this.checkpointEntriesOnDisk = written.entryCount;
          this.checkpointCounters.lastDurationMs = performance.now() - started;
          for (const retired of releases) retired.awaitsCheckpoint = false;
          if (releases.length > 0) this.deleteRetiredSoon();
        } catch (error) {
          // Open can replay the log without a checkpoint, so nothing is lost; but a file that cannot
          // be written is a disk in trouble: the store stops taking writes and says why (degraded
          // mode), rather than retrying at every roll.
          this.checkpointCounters.failures++;
          this.checkpointOnDisk = 'unknown';
          this.fail(toIoError(error, 'writing the index checkpoint'));
        }
      }
    })().finally(() => {
      this.checkpointRunning = undefined;
    });
  }

  private syncOnInterval(): void {
    if (!this.dirty || this.intervalSync !== undefined || this.failure !== undefined || this.active === undefined) return;
    const active = this.active;
    this.dirty = false;
    this.intervalSync = active
      .datasync()
      .then(() => {
        this.counters.fsyncs++;
      })
      .catch((error: unknown) => this.fail(toIoError(error, 'fsync of the log')))
      .finally(() => {
        this.intervalSync = undefined;
      });
  }

  private fail(error: SiltError): void {
    if (this.failure === undefined) {
      this.failure = error;
      if (this.state === 'open') this.state = 'failed';
      // Reported once, to whoever listens; no listener is not a crash (reads keep working).
      if (this.listenerCount('error') > 0) this.emit('error', this.failedError());
    }
  }

  /** Resolves once no background work (compaction, GC, checkpoint, interval fsync) is running. */
  async idle(): Promise<void> {
    while (this.compacting !== undefined || this.checkpointRunning !== undefined || this.intervalSync !== undefined || this.gcRunning !== undefined || this.objectCompacting !== undefined || this.expiryWrite !== undefined) {
      // Paced slice compaction catches up now instead of waiting for writes to pause.
      if (this.objectCompacting !== undefined) {
        this.objectCatchUp = true;
        this.objectPaceWake?.();
      }
      await this.objectCompacting;
      await this.compacting?.catch(() => undefined);
      await this.checkpointRunning;
      await this.intervalSync;
      await this.gcRunning?.catch(() => undefined);
      // The expiry sweep's tombstones (queued in order, so the last one written is the last to land).
      await this.expiryWrite;
    }
  }

  // ------------------------------------------------------------------------------------------
  // Block garbage collection, in two phases

  /**
   * Run a GC pass now (waiting for one in progress first): list the blocks whose last reference
   * went away (phase 1), then delete up to `gc.batch` listed blocks that have waited
   * `gc.minAgeMs` and are still unreferenced (phase 2). Works with `gc: false`.
   */
  async gc(): Promise<GcResult> {
    this.checkAccepting();
    // One pass at a time: wait until none runs (another caller may start one meanwhile). Two
    // passes at once appended to the delayed list at the same offset and damaged it.
    while (this.gcRunning !== undefined) await this.gcRunning.catch(() => undefined);
    this.checkWritable();
    return this.startGc();
  }

  private startGc(): Promise<GcResult> {
    const run = this.collectGarbage().catch((error: unknown) => {
      // A failed pass is reported and stops writes (degraded mode); it is not retried.
      const failure = toIoError(error, 'block garbage collection');
      this.fail(failure);
      throw failure;
    });
    const tracked = run.finally(() => {
      if (this.gcRunning === tracked) this.gcRunning = undefined;
      this.scheduleGc();
    });
    this.gcRunning = tracked;
    return tracked;
  }

  /**
   * Queue the expiry of a put just indexed. Stale entries (keys written again since) are dropped
   * once the queue is more than twice what the last such pass kept, plus EXPIRY_QUEUE_SLACK: memory
   * stays proportional to the live puts with `ttlMs`, at O(1) amortized per put.
   */
  private noteExpiry(key: string, revision: number, expiresAtMs: number): void {
    this.expiries.push(expiresAtMs, key, revision);
    if (this.expiries.size > 2 * this.expiriesKept + EXPIRY_QUEUE_SLACK) {
      this.expiries.compact((queuedKey, queuedRevision) => this.index.get(queuedKey)?.revision === queuedRevision);
      this.expiriesKept = this.expiries.size;
    }
    this.armExpirySweep();
  }

  /**
   * Arm the expiry sweep for the earliest queued expiry (no sooner than EXPIRY_SWEEP_INTERVAL_MS
   * after the last sweep, unless `atOnce`: the last one stopped at its batch limit). Writable
   * stores only: a read-only one starts no background work.
   */
  private armExpirySweep(atOnce = false): void {
    if (this.options.readOnly || this.state !== 'open' || this.failure !== undefined) return;
    const earliest = this.expiries.peekTime();
    if (earliest === undefined) return;
    const dueMs = Math.max(earliest, atOnce ? 0 : this.lastExpirySweepMs + EXPIRY_SWEEP_INTERVAL_MS);
    if (this.expiryTimer !== undefined) {
      if (this.expiryTimerDueMs <= dueMs) return;
      clearTimeout(this.expiryTimer);
    }
    this.expiryTimerDueMs = dueMs;
    // setTimeout takes at most 2^31 - 1 ms: a far expiry re-arms on the way.
    this.expiryTimer = setTimeout(() => {
      this.expiryTimer = undefined;
      this.armExpirySweep(this.sweepExpired(EXPIRY_SWEEP_BATCH, true));
    }, Math.min(Math.max(0, dueMs - Date.now()), EXPIRY_TIMER_MAX_MS));
    this.expiryTimer.unref();
  }

  /**
   * Drop up to `limit` expired puts from the index: their bytes become dead (so compaction can
   * reclaim them), as compaction does when it meets one. A put without blocks writes nothing:
   * replay reads an expired put as a delete. A put with blocks is followed by its tombstone in the
   * log, which releases the blocks once applied (see `dropExpired`).
   * Background compaction is started if that makes it due, when `startCompaction` is true.
   * Returns true when it stopped at `limit` (more may be due).
   */
  private sweepExpired(limit: number, startCompaction: boolean): boolean {
    if (this.state !== 'open' || this.failure !== undefined || this.options.readOnly) return false;
    const nowMs = Date.now();
    this.lastExpirySweepMs = nowMs;
    this.expiryCounters.sweeps++;
    let dropped = 0;
    let seen = 0;
    const tombstones: Buffer[] = [];
    const operations: PendingOperation[] = [];
    let tombstoneBytes = 0;
    const waiting: Array<{ key: string; revision: number; expiresAtMs: number }> = [];
    for (; seen < limit; seen++) {
      const earliest = this.expiries.peekTime();
      if (earliest === undefined || earliest > nowMs) break;
      const { key, revision } = this.expiries.pop() as { key: string; revision: number };
      const location = this.index.get(key);
      // Written again since (another revision), or already dropped: a stale entry.
      if (location === undefined || location.revision !== revision || location.expiresAtMs === undefined || location.expiresAtMs > nowMs) continue;
      if ((location.reference !== undefined || location.object !== undefined) && this.pending.has(key)) {
        // A write of the key is queued: a tombstone queued behind it would delete it at replay.
        // That write replaces the put (releasing its blocks once it is durable); should it leave
        // the put in place, a later pass looks again.
        waiting.push({ key, revision, expiresAtMs: location.expiresAtMs });
        continue;
      }
      const held = this.dropExpired(key, location);
      dropped++;
      if (held === undefined) continue;
      const tombstone = this.expiredTombstone(Buffer.from(key, 'latin1'), location.revision, location, tombstoneBytes, held);
      tombstones.push(tombstone.bytes);
      operations.push(tombstone.operation);
      tombstoneBytes += tombstone.bytes.length;
    }
    for (const entry of waiting) this.expiries.push(entry.expiresAtMs, entry.key, entry.revision);
    if (operations.length > 0) {
      this.expiryCounters.tombstones += operations.length;
      // A failure to write them fails the store (the flush loop records it); the blocks then stay
      // referenced until the next open, which recomputes every count. idle() waits for them.
      const written: Promise<void> = this.enqueueRelocation(Buffer.concat(tombstones, tombstoneBytes), operations)
        .catch(() => undefined)
        .finally(() => {
          if (this.expiryWrite === written) this.expiryWrite = undefined;
        });
      this.expiryWrite = written;
    }
    if (dropped > 0) {
      this.expiryCounters.swept += dropped;
      if (startCompaction) this.maybeScheduleCompaction();
    }
    return seen === limit;
  }

  /**
   * Drop an expired put from the index: its bytes are dead from now on, its blocks released. A put
   * with blocks has them held too: the caller queues its tombstone (see `expiredTombstone`), which
   * lets go of them once applied. Replay then reads the key as deleted whatever the clock says, so
   * GC never deletes blocks that a replayed put points at (with the clock set back before a
   * reopen, the put alone would read as live, its blocks gone).
   * Returns the held blocks (hex), for the tombstone; undefined for a put without blocks.
   */
  private dropExpired(key: string, location: EntryLocation): string[] | undefined {
    this.index.delete(key);
    this.liveBytes -= liveLength(location);
    this.segmentLiveBytes(location.segmentId, -liveLength(location));
    const blocks = location.reference ?? location.object;
    if (blocks === undefined) return undefined;
    // Held before released: the blocks never look collectable in between.
    const held = this.heldBlocks(blocks);
    for (const hex of held) this.hold(hex);
    this.release(blocks);
    this.droppedUntilLogged.set(key, location);
    return held;
  }

  /**
   * The tombstone of an expired put: a DELETE of its key with the put's revision (what replay
   * makes of the put anyway), written as a relocation (it moves no revision counter), placed
   * `relativeOffsetBytes` into its write; once applied it unholds `held`.
   */
  private expiredTombstone(
    key: Buffer,
    revision: number,
    from: { segmentId: number; offsetBytes: number },
    relativeOffsetBytes: number,
    held: string[] | undefined,
  ): { bytes: Buffer; operation: PendingOperation } {
    const length = entryLength(key, undefined, false);
    const bytes = Buffer.allocUnsafe(length);
    encodeEntry(bytes, 0, { type: EntryType.DELETE, key, revision });
    const operation: PendingOperation = {
      key: key.toString('latin1'),
      type: EntryType.DELETE,
      relativeOffsetBytes,
      lengthBytes: length,
      expiresAtMs: undefined,
      userBytes: 0,
      relocatedFrom: { segmentId: from.segmentId, offsetBytes: from.offsetBytes, revision },
      heldUntilApplied: held,
    };
    return { bytes, operation };
  }

  /** Arm the background GC timer while blocks wait to be listed or deleted. */
  private scheduleGc(): void {
    if (!this.options.gc.enabled || this.options.readOnly || this.state !== 'open' || this.failure !== undefined) return;
    if (this.gcTimer !== undefined || this.gcRunning !== undefined) return;
    if (this.candidates.size === 0 && (this.delayed?.entries.size ?? 0) === 0) return;
    this.gcTimer = setTimeout(() => {
      this.gcTimer = undefined;
      if (this.state !== 'open' || this.failure !== undefined || this.gcRunning !== undefined) return;
      // A background failure stops the store from taking writes and says why (no retry loop).
      this.startGc().catch(() => undefined);
    }, this.options.gc.intervalMs);
    this.gcTimer.unref();
  }

  /** True when an open reader may still read what was dropped at reader epoch `epoch`. */
  private pinnedAt(epoch: number): boolean {
    for (const [pinEpoch, count] of this.readerPins) if (pinEpoch <= epoch && count > 0) return true;
    return false;
  }

  private async collectGarbage(): Promise<GcResult> {
    const delayed = this.delayed as DelayedList;
    const result: GcResult = { listed: 0, deleted: 0, bytesDeleted: 0, revived: 0, waiting: 0 };
    this.gcCounters.runs++;
    // Phase 1. The records that dropped the references are made durable first: a block is
    // listed only when no crash can bring back a record pointing at it.
    const ready = (): string[] => {
      const hexes: string[] = [];
      for (const [hex] of this.candidates) {
        if (this.referenceCounts.has(hex) || !this.blocks.has(hex)) this.candidates.delete(hex);
        else if (!this.holds.has(hex)) hexes.push(hex);
      }
      return hexes;
    };
    const dropped = ready();
    if (dropped.length > 0) {
      // Only the candidates seen before the fsync: the records that dropped them are durable now.
      await this.syncApplied();
      const now = Date.now();
      const hexes = dropped.filter((hex) => this.candidates.has(hex) && !this.referenceCounts.has(hex) && !this.holds.has(hex) && this.blocks.has(hex));
      for (const hex of hexes) {
        this.listedEpochs.set(hex, this.candidates.get(hex) as number);
        this.candidates.delete(hex);
      }
      // Listed before, written again, dropped again: it waits its full age from now.
      await delayed.remove(hexes.filter((hex) => delayed.entries.has(hex)), now);
      result.listed = await delayed.add(hexes, now);
      await delayed.sync();
    }
    // Phase 2, reading the list in listing order and stopping at the batch limit or at the first
    // block too young: the checks and the start of each deletion happen in one synchronous step,
    // so no write can start relying on a block between its check and its deletion.
    const now = Date.now();
    const removed: string[] = [];
    const deletions: Array<Promise<boolean>> = [];
    const deleting: string[] = [];
    let examined = 0;
    for (const [hex, listedAtMs] of delayed.entries) {
      if (examined >= this.options.gc.batch) break;
      examined++;
      if (this.referenceCounts.has(hex)) {
        // Written again since it was listed: revived.
        removed.push(hex);
        this.listedEpochs.delete(hex);
        result.revived++;
        continue;
      }
      if (this.candidates.has(hex)) {
        // Written again since it was listed, then dropped again (after this pass's phase 1 took
        // its candidates): its listing is stale. The reader epoch it names predates readers that
        // may read the block, and the record that dropped it may not be durable yet. The next
        // phase 1 lists it anew, its age counting from then.
        continue;
      }
      if (now - listedAtMs < this.options.gc.minAgeMs) break;
      const epoch = this.listedEpochs.get(hex);
      const pinned = epoch !== undefined && this.pinnedAt(epoch);
      if (pinned) this.gcCounters.skippedPinned++;
      if (pinned || this.holds.has(hex) || this.blocks.isWriting(hex)) continue;
      if (!this.blocks.has(hex)) {
        // Already gone (deleted before a crash that lost the list's remove record): idempotent.
        removed.push(hex);
        this.listedEpochs.delete(hex);
        continue;
      }
      const bytes = this.blocks.sizeOf(hex);
      deleting.push(hex);
      deletions.push(
        this.blocks.remove(hex).then((done) => {
          if (done) {
            result.deleted++;
            result.bytesDeleted += bytes;
          }
          return done;
        }),
      );
    }
    const settled = await Promise.allSettled(deletions);
    let failure: unknown;
    settled.forEach((outcome, position) => {
      const hex = deleting[position] as string;
      if (outcome.status === 'fulfilled' && outcome.value) {
        removed.push(hex);
        this.listedEpochs.delete(hex);
      } else if (outcome.status === 'rejected') {
        failure ??= outcome.reason;
      }
    });
    await delayed.remove(removed, now);
    await delayed.sync();
    // Whatever is still listed waits for a later pass (too young, pinned, being written, past the batch).
    result.waiting = delayed.entries.size;
    this.gcCounters.listed += result.listed;
    this.gcCounters.deleted += result.deleted;
    this.gcCounters.bytesDeleted += result.bytesDeleted;
    this.gcCounters.revived += result.revived;
    if (failure !== undefined) throw failure;
    return result;
  }

  /** Wait for queued writes, then make everything acknowledged so far durable (any mode). */
  async flush(): Promise<void> {
    this.checkReadable();
    await this.syncLog();
  }

  /**
   * Make every record applied so far durable, without waiting for writes queued after this call
   * (so background work is never starved by a steady writer). In 'sync' mode applied records are
   * durable already; otherwise the active segment is fsynced (a segment sealed at a roll was
   * fsynced then).
   */
  private async syncApplied(): Promise<void> {
    if (this.options.readOnly) return;
    if (this.failure !== undefined) throw this.failedError();
    if (this.options.durability === 'sync') return;
    await this.intervalSync;
    await this.fsyncActiveIfDirty();
  }

  /**
   * fdatasync the active segment if anything was written since its last fsync; when another
   * caller's fsync is already under way (and nothing was written since it started), wait for
   * that one instead of returning before it is done.
   */
  private async fsyncActiveIfDirty(): Promise<void> {
    if (!this.dirty || this.active === undefined) {
      await this.logSyncing;
      return;
    }
    this.dirty = false;
    const syncing = this.active.datasync().then(
      () => {
        this.counters.fsyncs++;
      },
      (error: unknown) => {
        this.fail(toIoError(error, 'fsync of the log'));
        throw this.failedError();
      },
    );
    this.logSyncing = syncing.catch(() => undefined).finally(() => {
      if (this.logSyncing === tracked) this.logSyncing = undefined;
    });
    const tracked = this.logSyncing;
    await syncing;
  }

  /** `flush()` for work that may still run while the store is closing. */
  private async syncLog(): Promise<void> {
    if (this.options.readOnly) return;
    await this.drain();
    if (this.failure !== undefined) throw this.failedError();
    await this.intervalSync;
    await this.fsyncActiveIfDirty();
  }

  private async drain(): Promise<void> {
    while (this.flushing !== undefined || this.queue.length > 0 || this.flushScheduled) {
      if (this.flushing === undefined) this.startFlushing();
      await this.flushing;
      if (this.flushing === undefined && this.queue.length === 0) await Promise.resolve();
    }
  }

  // ------------------------------------------------------------------------------------------
  // Compaction: rewriting segments whose records are mostly dead

  private segmentLiveBytes(segmentId: number, delta: number): void {
    const segment = this.segments.get(segmentId);
    if (segment !== undefined) segment.liveBytes += delta;
  }

  /** Sealed segments whose dead fraction is at least `ratio` (all with any dead bytes when 0), most dead first. */
  private pickSegments(ratio: number): SegmentRecord[] {
    return [...this.segments.values()]
      .filter((segment) => segment.sealed && deadBytesOf(segment) > 0 && deadBytesOf(segment) >= ratio * segment.sizeBytes)
      .sort((left, right) => deadBytesOf(right) / right.sizeBytes - deadBytesOf(left) / left.sizeBytes);
  }

  /** Dead bytes over all log bytes (kept as the segments change: O(1)). */
  private deadFraction(): number {
    return this.segments.deadFraction();
  }

  /**
   * Whether the write stall applies: the log more than `stallRatio` dead, with a sealed segment
   * holding dead bytes (one compaction can rewrite).
   */
  private stallDue(): boolean {
    return this.deadFraction() > this.options.compaction.stallRatio && this.segments.sealedWithDead > 0;
  }

  /**
   * Whether a segment older than `segmentId` (one still on disk, retired or not) may hold a
   * record for `key`: then a tombstone for the key in `segmentId` must be kept, or the older
   * record would come back at the next replay (badger#2286).
   */
  private olderSegmentMayHold(segmentId: number, key: Buffer): boolean {
    const older = [...this.segments.values()].filter((segment) => segment.segmentId < segmentId).map((segment) => segment.summary);
    for (const retired of this.retired) if (retired.segmentId < segmentId) older.push(retired.summary);
    for (const summary of older) {
      if (summary === undefined) return true;
      if (summary.entryCount === 0 || summary.minKey === undefined || summary.maxKey === undefined) continue;
      if (Buffer.compare(key, summary.minKey) >= 0 && Buffer.compare(key, summary.maxKey) <= 0) return true;
    }
    return false;
  }

  /**
   * Rewrite now: seal the active segment if it holds dead records, then compact every sealed
   * segment with dead bytes. Resolves when the space is given back (files deleted once no reader
   * needs them).
   */
  async compact(): Promise<CompactionStats> {
    this.checkAccepting();
    // One compaction at a time: wait until none runs (another caller may start one meanwhile).
    while (this.compacting !== undefined) await this.compacting.catch(() => undefined);
    this.checkWritable();
    // Every put expired by now counts as dead bytes, so the segments holding them are compacted.
    // (Starting no background run: this one is about to start, and two at once would copy the
    // same segment twice.)
    this.sweepExpired(Number.POSITIVE_INFINITY, false);
    const run = this.runCompaction(0, true);
    const tracked: Promise<void> = run
      .catch(() => undefined)
      .finally(() => {
        if (this.compacting === tracked) this.compacting = undefined;
        this.maybeScheduleCompaction();
      });
    this.compacting = tracked;
    try {
      await run;
    } catch (error) {
      // Like a background failure: reported, and the store stops taking writes (degraded mode).
      const failure = toIoError(error, 'compaction');
      this.fail(failure);
      throw failure;
    }
    return { ...this.compactionCounters };
  }

  private maybeScheduleCompaction(): void {
    if (!this.options.compaction.enabled || this.state !== 'open' || this.failure !== undefined) return;
    this.stalled = this.stallDue();
    if (this.compacting !== undefined) return;
    // While slice compaction catches up (writes paused, or idle(): it is not paced), it is turning
    // blocks carried in the log dead chunk by chunk: copying them forward now would copy bytes that
    // die a moment later. Wait for it (it calls back here when done), unless writes are stalled.
    if (this.objectCompacting !== undefined && !this.inObjectBurst() && !this.stalled) return;
    if (this.futileSinceUserBytes !== undefined && this.counters.userBytes === this.futileSinceUserBytes) return;
    const active = this.segments.get((this.active as SegmentWriter).segmentId) as SegmentRecord;
    // The active segment is sealed early to be compacted on the same terms as a sealed one.
    const activeDead = deadBytesOf(active);
    const activeIsDead =
      active.sizeBytes >= this.options.segmentBytes / 2 &&
      activeDead >= this.options.compaction.deadRatio * active.sizeBytes &&
      (activeDead >= NEARLY_DEAD * active.sizeBytes || this.deadFraction() >= this.options.compaction.deadRatio);
    // What nextBackgroundSegment needs to pick anything, from the table's counts: only then is it
    // worth its pass over (and sort of) the segments.
    const mayPick = this.segments.sealedAtRatio > 0 && (this.segments.sealedNearlyDead > 0 || this.deadFraction() >= this.options.compaction.deadRatio);
    if (!activeIsDead && (!mayPick || this.nextBackgroundSegment(new Set()) === undefined)) return;
    const run = new Promise<void>((resolve) => setImmediate(resolve)).then(() => this.runCompaction(this.options.compaction.deadRatio, activeIsDead));
    this.compacting = run
      .catch((error: unknown) => {
        // A background failure stops the store from taking writes and says why (no retry loop).
        this.fail(toIoError(error, 'background compaction'));
      })
      .finally(() => {
        this.compacting = undefined;
      });
  }

  /**
   * Writes wait here while dead bytes are past `stallRatio` and compaction can reclaim them,
   * instead of growing the disk without bound. Below that threshold the write path never waits.
   */
  private async stallForCompaction(): Promise<void> {
    while (this.stalled && this.state === 'open' && this.failure === undefined) {
      if (this.compacting === undefined) this.maybeScheduleCompaction();
      if (this.compacting === undefined) break;
      const retiredBefore = this.compactionCounters.segmentsCompacted;
      await this.compacting;
      this.stalled = this.stallDue();
      // A run that retired nothing cannot help: stop waiting rather than spin.
      if (this.compactionCounters.segmentsCompacted === retiredBefore) break;
    }
  }

  /**
   * Whether a write called now waits for compaction: dead bytes are past `stallRatio`, or writes
   * called earlier still wait (it goes behind them, even once the stall is over).
   */
  private mustWaitForCompaction(): boolean {
    return this.stalled || this.stallWaiting > 0;
  }

  /**
   * Run `step` once compaction brought dead bytes under `stallRatio` and every write that waited
   * before this one took its turn: writes leave a stall in call order. The stall can end in the
   * middle of a compaction run (a retired segment lowers the dead fraction at the next commit),
   * while earlier writes still wait for the run: without the turns, a write called then was
   * queued ahead of them, and an earlier write of its key overwrote it. `step` should queue its
   * write synchronously; the next turn starts when it returns, not when its write commits.
   */
  private afterStall<T>(step: () => T | Promise<T>): Promise<T> {
    const started = performance.now();
    this.compactionCounters.stalls++;
    this.stallWaiting++;
    const take = () => {
      this.stallWaiting--;
      this.compactionCounters.stallMs += performance.now() - started;
      // Boxed, so that this turn ends when `step` returns, not when what it returns settles.
      return { value: step() };
    };
    const turn = this.stallTurn.then(() => this.stallForCompaction()).then(take, take);
    this.stallTurn = turn.then(
      () => undefined,
      () => undefined,
    );
    return turn.then((box) => box.value);
  }

  /** For writes with more to do before they are queued (blocks to write): wait for their turn, if any. */
  private async passStall(): Promise<void> {
    if (!this.mustWaitForCompaction()) return;
    await this.afterStall(() => undefined);
    this.checkWritable();
  }

  private async runCompaction(ratio: number, sealActive: boolean): Promise<void> {
    this.compactionCounters.runs++;
    const retiredBefore = this.compactionCounters.segmentsCompacted;
    const writesBefore = this.counters.userBytes;
    try {
      await this.runCompactionSteps(ratio, sealActive);
    } finally {
      // A background run that retired nothing is not started again until a user write changes
      // something: no busy loop of futile runs (their own copies would re-trigger them).
      this.futileSinceUserBytes = this.compactionCounters.segmentsCompacted === retiredBefore && ratio !== 0 ? writesBefore : undefined;
    }
  }

  private async runCompactionSteps(ratio: number, sealActive: boolean): Promise<void> {
    if (sealActive) {
      const active = this.segments.get((this.active as SegmentWriter).segmentId) as SegmentRecord;
      if (deadBytesOf(active) > 0) await this.requestRoll();
    }
    // Each compacted segment's file is deleted as soon as it is retired (unless a reader pins it),
    // not when the run ends: a run goes on while writes keep making segments dead, and on a fast
    // device (tmpfs here) one run retired a dozen segments and held their space, five times the
    // live bytes, until it ended.
    if (ratio === 0) {
      // compact(): every sealed segment with dead bytes.
      for (const segment of this.pickSegments(0)) {
        if (this.state !== 'open' || this.failure !== undefined) break;
        await this.compactSegment(segment);
        if (!(await this.releaseRetired(false))) return;
        await this.deleteRetired();
      }
      // compact() gives the space back before it resolves: one checkpoint for the segments left waiting.
      if (this.state === 'open' && this.failure === undefined && !(await this.releaseRetired(true))) return;
    } else {
      const tried = new Set<number>();
      for (let segment = this.nextBackgroundSegment(tried); segment !== undefined; segment = this.nextBackgroundSegment(tried)) {
        if (this.state !== 'open' || this.failure !== undefined) break;
        tried.add(segment.segmentId);
        await this.compactSegment(segment);
        if (!(await this.releaseRetired(false))) return;
        await this.deleteRetired();
      }
    }
    await this.deleteRetired();
  }

  /**
   * The next segment background compaction rewrites, deadest first, among sealed segments at or
   * above `deadRatio`: one that is nearly all dead (copying it costs at most a tenth of it, and
   * one live record must not pin a file forever), or any of them while the log as a whole is
   * more than `deadRatio` dead (the space bound). A segment that is dying fast (being overwritten
   * now) is thus left to die completely instead of having its soon-dead records copied, which
   * keeps write amplification low under overwrites.
   */
  private nextBackgroundSegment(tried: Set<number>): SegmentRecord | undefined {
    const deadRatio = this.options.compaction.deadRatio;
    const eligible = this.pickSegments(deadRatio).filter((segment) => !tried.has(segment.segmentId));
    const deadest = eligible[0];
    if (deadest === undefined) return undefined;
    if (deadBytesOf(deadest) >= NEARLY_DEAD * deadest.sizeBytes) return deadest;
    const deadFraction = this.deadFraction();
    if (deadFraction < deadRatio) return undefined;
    // While slice compaction has chunks queued (a burst of object writes), live blocks carried in
    // the log are mostly theirs and die when those chunks are compacted: a segment whose live
    // bytes are mostly such blocks waits for that, until the log is halfway from `deadRatio` to
    // `stallRatio` dead (so the wait costs at most that much more space).
    if (this.objectQueue.size === 0 || deadFraction >= (deadRatio + this.options.compaction.stallRatio) / 2) return deadest;
    return eligible.find((segment) => segment.liveBlockBytes < segment.liveBytes / 2);
  }

  private async compactSegment(segment: SegmentRecord): Promise<void> {
    // Two runs over one segment would both copy its live records: the second copies land after the
    // first, which the index took, and a replay would take them instead. Runs never overlap (one
    // `compacting` at a time); this makes a slip loud instead of silent.
    if (this.segmentsInCompaction.has(segment.segmentId)) throw new Error(`internal: segment ${segment.segmentId} is being compacted twice at once`);
    this.segmentsInCompaction.add(segment.segmentId);
    try {
      await this.compactSegmentOnce(segment);
    } finally {
      this.segmentsInCompaction.delete(segment.segmentId);
    }
  }

  private async compactSegmentOnce(segment: SegmentRecord): Promise<void> {
    const handle = await this.fs.open(segment.path, 'read');
    let bytes: Buffer;
    try {
      bytes = Buffer.allocUnsafe(segment.sizeBytes);
      await readFully(handle, bytes, 0);
    } finally {
      await handle.close();
    }
    this.compactionCounters.bytesRead += bytes.length;
    await this.throttle(bytes.length);
    // Decide and queue the copies without yielding: a write queued after this point lands after
    // the copies in the log, and one queued before made its key's original dead (not copied).
    const nowMs = Date.now();
    const parts: Buffer[] = [];
    const operations: PendingOperation[] = [];
    let copiedBytes = 0;
    /**
     * An expired put that must still hide older records of its key: written as a DELETE with its
     * revision (what replay makes of it anyway), so its value is not copied along.
     */
    const copyAsTombstone = (entry: { key: Buffer; revision: number; offsetBytes: number }, held?: string[]): void => {
      const tombstone = this.expiredTombstone(entry.key, entry.revision, { segmentId: segment.segmentId, offsetBytes: entry.offsetBytes }, copiedBytes, held);
      operations.push(tombstone.operation);
      parts.push(tombstone.bytes);
      copiedBytes += tombstone.bytes.length;
      this.compactionCounters.expiredAsTombstones++;
    };
    scanSegment(bytes, SEGMENT_HEADER_BYTES, (entry) => {
      const key = entry.key.toString('latin1');
      if (this.pending.has(key)) return;
      const location = this.index.get(key);
      if (entry.type === EntryType.DELETE) {
        if (location !== undefined || !this.olderSegmentMayHold(segment.segmentId, entry.key)) {
          this.compactionCounters.tombstonesDropped++;
          return;
        }
        this.compactionCounters.tombstonesKept++;
      } else if (location === undefined && entry.expiresAtMs !== undefined && entry.expiresAtMs <= nowMs) {
        // An expired put the index no longer holds (a reopen replayed it as a delete, or the
        // checkpoint left it out): like a tombstone, it may be all that hides an older record of
        // its key at the next replay. Kept as a tombstone while an older segment may hold the key.
        if (!this.olderSegmentMayHold(segment.segmentId, entry.key)) {
          this.compactionCounters.tombstonesDropped++;
          return;
        }
        this.compactionCounters.tombstonesKept++;
        copyAsTombstone(entry);
        return;
      } else {
        if (location === undefined || location.segmentId !== segment.segmentId || location.offsetBytes !== entry.offsetBytes) return;
        if (location.expiresAtMs !== undefined && location.expiresAtMs <= nowMs) {
          // Expired: dropped from the index instead of copied. While an older version of the key
          // may come back at replay, its record goes on as a tombstone; so it does while it has
          // blocks, which its tombstone releases once in the log: until this segment's file is
          // deleted, a replay with the clock set back would find the put live (see dropExpired).
          const held = this.dropExpired(key, location);
          if (held !== undefined || this.olderSegmentMayHold(segment.segmentId, entry.key)) {
            this.compactionCounters.tombstonesKept++;
            copyAsTombstone(entry, held);
          }
          return;
        }
      }
      if (entry.type === EntryType.PUT_OBJECT_DELTA && location !== undefined) {
        // The head of a delta chain (its earlier entries are in this segment and go with it): the
        // key's object as one full manifest, same revision.
        const payload = encodeManifest(location.object as ObjectManifest);
        const keyBytes = Buffer.from(entry.key);
        const length = entryLength(keyBytes, payload, false);
        const rebased = Buffer.allocUnsafe(length);
        encodeEntry(rebased, 0, { type: EntryType.PUT_OBJECT, key: keyBytes, value: payload, revision: entry.revision });
        operations.push({
          key,
          type: EntryType.PUT_OBJECT,
          relativeOffsetBytes: copiedBytes,
          lengthBytes: length,
          expiresAtMs: undefined,
          userBytes: 0,
          object: location.object,
          rebase: true,
          relocatedFrom: { segmentId: segment.segmentId, offsetBytes: entry.offsetBytes, revision: entry.revision },
        });
        parts.push(rebased);
        copiedBytes += length;
        return;
      }
      operations.push({
        key,
        type: entry.type,
        relativeOffsetBytes: copiedBytes,
        lengthBytes: entry.lengthBytes,
        expiresAtMs: entry.expiresAtMs,
        userBytes: 0,
        relocatedFrom: { segmentId: segment.segmentId, offsetBytes: entry.offsetBytes, revision: entry.revision },
      });
      // The entry's bytes are copied as they are: same CRC, same revision.
      parts.push(bytes.subarray(entry.offsetBytes, entry.offsetBytes + entry.lengthBytes));
      copiedBytes += entry.lengthBytes;
    }, 0, (block) => {
      // A block carried in the log is copied while a live value references it (or a write that
      // reuses it is in flight: it holds it) and this is its newest copy.
      const hex = block.hash.toString('hex');
      const location = this.logBlocks.get(hex);
      if ((!this.referenceCounts.has(hex) && !this.holds.has(hex)) || location === undefined || location.segmentId !== segment.segmentId || location.offsetBytes !== block.offsetBytes) return;
      operations.push({
        key: hex,
        type: EntryType.BLOCK,
        relativeOffsetBytes: copiedBytes,
        lengthBytes: block.lengthBytes,
        expiresAtMs: undefined,
        userBytes: 0,
        relocatedFrom: { segmentId: segment.segmentId, offsetBytes: block.offsetBytes, revision: block.revision },
      });
      parts.push(bytes.subarray(block.offsetBytes, block.offsetBytes + block.lengthBytes));
      copiedBytes += block.lengthBytes;
    });
    if (operations.length > 0) {
      await this.enqueueRelocation(Buffer.concat(parts, copiedBytes), operations);
      this.compactionCounters.bytesWritten += copiedBytes;
      await this.throttle(copiedBytes);
    }
    // The copies are durable before the original can go (in every durability mode): they were
    // applied when the relocation resolved. Later writes are not waited for.
    await this.syncApplied();
    if (segment.liveBytes !== 0) return;
    // A checkpoint that no longer names the segment is durable before the segment is deleted. The
    // one on disk may already be: one whose snapshot was taken before the segment existed (an
    // earlier segment active) names nothing in it; an open replays the segment instead, and every
    // record in it a replay still needs was copied past it. A checkpoint being written meanwhile
    // may name it: its outcome is waited for, and the check and the retirement happen in one
    // synchronous step, so any checkpoint taken later finds nothing in the segment. Otherwise the
    // file waits for one (`releaseRetired`).
    while (this.checkpointRunning !== undefined) await this.checkpointRunning;
    const awaitsCheckpoint = this.options.checkpoint && !this.checkpointNamesNothingIn(segment.segmentId);
    this.segments.delete(segment.segmentId);
    this.retired.push({ segmentId: segment.segmentId, path: segment.path, sizeBytes: segment.sizeBytes, summary: segment.summary, epoch: this.readerEpoch, awaitsCheckpoint });
    this.readerEpoch++;
    this.compactionCounters.segmentsCompacted++;
  }

  private enqueueRelocation(bytes: Buffer, operations: PendingOperation[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ revision: 0, bytes, operations, result: undefined, resolve: resolve as (result: unknown) => void, reject });
      this.startFlushing();
    });
  }

  private async throttle(bytes: number): Promise<void> {
    const rate = this.options.compaction.bytesPerSecond;
    if (rate === 0 || this.state !== 'open') return;
    await new Promise((resolve) => setTimeout(resolve, (bytes / rate) * 1000));
  }

  /**
   * The retired segments a checkpoint of the index as it is now lets go: those waiting for one,
   * but for any an unlogged drop (`dropped`, listed in the checkpoint) still points into.
   */
  private releasedBy(dropped: Array<[string, EntryLocation]>): RetiredSegment[] {
    const waiting = this.retired.filter((retired) => retired.awaitsCheckpoint);
    if (waiting.length === 0 || dropped.length === 0) return waiting;
    const named = new Set(dropped.map(([, location]) => location.segmentId));
    return waiting.filter((retired) => !named.has(retired.segmentId));
  }

  /**
   * Write a checkpoint for the retired segments waiting for one (see `RetiredSegment`), once they
   * hold at least what it costs (`always`: if any wait). A checkpoint per segment cost the whole
   * index each time: with 3M keys, 111 MB to delete a 64 MiB segment. This way compaction's
   * checkpoints write at most about what they give back, and a roll's checkpoint lets the
   * waiting segments go too; the space they hold meanwhile is at most about a checkpoint's size
   * plus a segment. False if the checkpoint failed.
   */
  private async releaseRetired(always: boolean): Promise<boolean> {
    let waitingBytes = 0;
    for (const retired of this.retired) if (retired.awaitsCheckpoint) waitingBytes += retired.sizeBytes;
    if (waitingBytes === 0 || (!always && waitingBytes < this.expectedCheckpointBytes())) return true;
    return this.checkpointNow();
  }

  /**
   * Whether the checkpoint an open would load names nothing in segment `segmentId`: there is none,
   * or its snapshot was taken while an earlier segment was the active one. Call with no checkpoint
   * being written (one in flight may be about to replace the file).
   */
  private checkpointNamesNothingIn(segmentId: number): boolean {
    const onDisk = this.checkpointOnDisk;
    return onDisk === 'none' || (onDisk !== 'unknown' && onDisk.segmentId < segmentId);
  }

  /**
   * Write a checkpoint of the index as it is now and wait for it; false if it failed. The index
   * and the log position it reflects are taken in one synchronous step; the log is then made
   * durable up to at least that position (in 'none' and interval modes applied records may not be
   * fsynced yet) before the checkpoint is written, so it never covers a record a crash could lose.
   */
  private async checkpointNow(): Promise<boolean> {
    const failuresBefore = this.checkpointCounters.failures;
    await this.checkpointRunning;
    const active = this.active as SegmentWriter;
    const record = this.segments.get(active.segmentId) as SegmentRecord;
    const position = { segmentId: active.segmentId, offsetBytes: record.appliedBytes, maxRevision: this.lastAppliedRevision };
    const snapshot = this.index.snapshot();
    const blocks = this.liveLogBlocks();
    const dropped = this.unloggedDrops();
    const releases = this.releasedBy(dropped);
    // Durable up to the position: the active segment is fsynced (or was sealed, with an fsync, at a roll).
    await this.syncApplied();
    await this.checkpointRunning;
    this.scheduleCheckpoint(position, snapshot, blocks, dropped, releases);
    await this.checkpointRunning;
    return this.checkpointCounters.failures === failuresBefore;
  }

  /** Delete retired segment files that no reader (iterator, snapshot) may still read. */
  private async deleteRetired(): Promise<void> {
    let deleted = false;
    for (const retired of [...this.retired]) {
      if (retired.awaitsCheckpoint) continue;
      let pinned = false;
      for (const [epoch, count] of this.readerPins) if (epoch <= retired.epoch && count > 0) pinned = true;
      if (pinned) continue;
      this.retired.splice(this.retired.indexOf(retired), 1);
      const handle = this.readHandles.get(retired.segmentId);
      this.readHandles.delete(retired.segmentId);
      await handle?.close().catch(() => undefined);
      this.readCache.dropSegment(retired.segmentId);
      // Log blocks still mapped to the file are dead copies no reader needs any more.
      for (const [hex, location] of this.logBlocks) if (location.segmentId === retired.segmentId) this.logBlocks.delete(hex);
      await this.fs.unlink(retired.path).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      });
      this.compactionCounters.segmentsDeleted++;
      deleted = true;
    }
    if (deleted) await this.fs.syncDirectory(this.directory);
  }

  /** Start deleting retired segments that may go, unless compaction runs (it deletes them itself). */
  private deleteRetiredSoon(): void {
    if (this.retired.length === 0 || this.state !== 'open' || this.compacting !== undefined) return;
    this.compacting = this.deleteRetired()
      .catch((error: unknown) => this.fail(toIoError(error, 'deleting a compacted segment')))
      .finally(() => {
        this.compacting = undefined;
      });
  }

  /**
   * Pin the segments and blocks a reader may read: those retired or dropped after `epoch` (by
   * default, now). Returns the unpin function (idempotent).
   */
  private pinReaders(holder: object, epoch = this.readerEpoch): () => void {
    this.readerPins.set(epoch, (this.readerPins.get(epoch) ?? 0) + 1);
    let released = false;
    const token = {};
    const unpin = () => {
      if (released) return;
      released = true;
      readerRegistry.unregister(token);
      const count = (this.readerPins.get(epoch) ?? 1) - 1;
      if (count > 0) this.readerPins.set(epoch, count);
      else this.readerPins.delete(epoch);
      this.deleteRetiredSoon();
    };
    // A reader dropped without being finished or released still unpins, when it is collected.
    readerRegistry.register(holder, unpin, token);
    return unpin;
  }

  // ------------------------------------------------------------------------------------------
  // Verify, stats and close

  /**
   * Check everything without trusting anything (see src/check/verify.ts): every record and
   * footer, the checkpoint and the index against the log, every block against its hash, and the
   * reference counts. Writes nothing; works on `readOnly` opens. Writes may go on meanwhile: the
   * check covers the state as of the call.
   */
  async verify(options?: { onProgress?: (progress: VerifyProgress) => void }): Promise<VerifyResult> {
    this.checkReadable();
    // One instant: the index, the reference counts, and the bytes of each segment it reflects.
    const nowMs = Date.now();
    const snapshot = this.index.snapshot();
    const referenceCounts = new Map(this.referenceCounts);
    // Compacted segments waiting for a checkpoint are still part of the log the checkpoint on disk
    // reflects (it may name records in them): replayed in their place.
    const awaiting = this.retired.filter((retired) => retired.awaitsCheckpoint);
    const segments = [
      ...[...this.segments.values()].map((segment) => ({ segmentId: segment.segmentId, path: segment.path, sizeBytes: segment.appliedBytes, sealed: segment.sealed })),
      ...awaiting.map((retired) => ({ segmentId: retired.segmentId, path: retired.path, sizeBytes: retired.sizeBytes, sealed: true })),
    ].sort((left, right) => left.segmentId - right.segmentId);
    // Pinned like a reader's: background compaction and GC, which go on meanwhile, keep the
    // segments and blocks of this instant on disk until verify is done. The pin reaches back to
    // the waiting segments' retirement, or a checkpoint landing meanwhile would let them go.
    const unpin = this.pinReaders(snapshot, Math.min(this.readerEpoch, ...awaiting.map((retired) => retired.epoch)));
    // Read-only beside a writer, whose files it cannot pin: a check that finds problems (or
    // fails) once the writer's log has gone past this open's view has checked a store that moved
    // under it (files removed, new ones nothing in the view owns), not a damaged one.
    const staleView = (): SiltError | undefined =>
      this.options.readOnly && this.viewIsStale()
        ? new SiltError(ErrorCode.STALE, 'the store changed while this read-only open checked it (a process writing the store went on): open it again, or check it with the writer stopped')
        : undefined;
    try {
      const result = await verifyStore({
        fs: this.fs,
        directory: this.directory,
        segments,
        snapshot,
        referenceCounts,
        blocks: this.blocks,
        logBlocks: new Map(this.logBlocks),
        retiredSegmentIds: this.retired.map((retired) => retired.segmentId),
        knownSegmentIds: () => [...this.segments.keys(), ...this.retired.map((retired) => retired.segmentId), ...(this.creatingSegmentId === undefined ? [] : [this.creatingSegmentId])],
        mayBeCompactedAway: this.options.readOnly ? this.segmentsNotNeeded(snapshot, nowMs) : undefined,
        nowMs,
        onProgress: options?.onProgress,
      }).catch((error: unknown) => {
        throw staleView() ?? error;
      });
      if (!result.ok) {
        const stale = staleView();
        if (stale !== undefined) throw stale;
      }
      return result;
    } finally {
      unpin();
    }
  }

  stats(): StoreStats {
    let segmentBytes = 0;
    for (const segment of this.segments.values()) segmentBytes += segment.sizeBytes;
    let retiredBytes = 0;
    for (const retired of this.retired) retiredBytes += retired.sizeBytes;
    const awaiting = this.retired.filter((retired) => retired.awaitsCheckpoint);
    const blockFileBytes = this.blocks.fileBytes;
    const delayedListBytes = this.delayed?.fileBytes ?? 0;
    const diskBytes = segmentBytes + retiredBytes + blockFileBytes + this.checkpointBytes + delayedListBytes;
    const liveTotal = this.liveBytes + this.blocks.storedBytes - this.unreferencedBlockBytes();
    return {
      state: this.state,
      failure: this.failure?.message,
      readOnly: this.options.readOnly,
      durability: this.options.durability,
      keys: this.index.size,
      revision: this.revision,
      segments: {
        count: this.segments.size,
        activeSegmentId: this.active?.segmentId,
        bytes: segmentBytes,
        // The same measure as each segment's (headers are not dead bytes): their sum, kept by the table.
        deadBytes: this.segments.deadBytes,
        retired: this.retired.length,
        awaitingCheckpoint: awaiting.length,
        awaitingCheckpointBytes: awaiting.reduce((sum, retired) => sum + retired.sizeBytes, 0),
        list: [...this.segments.values()]
          .sort((left, right) => left.segmentId - right.segmentId)
          .map((segment) => ({ segmentId: segment.segmentId, sizeBytes: segment.sizeBytes, liveBytes: segment.liveBytes, deadBytes: deadBytesOf(segment), sealed: segment.sealed })),
      },
      liveBytes: this.liveBytes,
      diskBytes,
      spaceAmplification: liveTotal === 0 ? 0 : diskBytes / liveTotal,
      writeAmplification:
        this.counters.userBytes === 0
          ? 0
          : (this.counters.logBytes + this.blocks.blockBytesWritten + this.checkpointBytesWritten + (this.delayed?.bytesWritten ?? 0)) / this.counters.userBytes,
      compaction: { ...this.compactionCounters, deadFraction: this.deadFraction() },
      recovery: { ...this.recoveryReport },
      writes: { ...this.counters, fsyncAverageMs: this.groupSyncMs },
      checkpoints: { ...this.checkpointCounters, bytesWritten: this.checkpointBytesWritten },
      readCache: { bytes: this.readCache.sizeBytes, hits: this.readCache.hits, misses: this.readCache.misses },
      blockCache: { bytes: this.blocks.cache.sizeBytes, hits: this.blocks.cache.hits, misses: this.blocks.cache.misses },
      blocks: {
        count: this.blocks.blockCount,
        storedBytes: this.blocks.storedBytes,
        logicalBytes: this.logicalBlockBytes,
        dedupRatio: this.blocks.storedBytes === 0 ? 1 : this.logicalBlockBytes / this.blocks.storedBytes,
        referenced: this.referenceCounts.size,
        candidates: Math.max(0, this.blocks.blockCount - this.referenceCounts.size),
        delayed: this.delayed?.entries.size ?? 0,
        written: this.blocks.blockWrites,
        staged: this.blocks.stagedWrites,
        stagedDiscarded: this.blocks.stagedDiscarded,
        bytesWritten: this.blocks.blockBytesWritten,
        orphansRemovedAtOpen: this.orphanBlocksRemoved,
        pageTables: this.blocks.pageTableCount,
        pageTableBytes: this.blocks.pageTableBytes,
        rangePageReads: this.blocks.pageReads,
        rangeWholeReads: this.blocks.wholeReadsForRange,
        rangeFilesOpen: this.blocks.rangeFilesOpen,
        rangeFileOpens: this.blocks.rangeFileOpens,
        readsHashed: this.blocks.hashChecks,
        readsByCrc: this.blocks.crcChecks,
      },
      objects: { ...this.objectCounters, ...this.liveLogBlockStats() },
      gc: { ...this.gcCounters, delayedListBytes },
      expiry: { queued: this.expiries.size, ...this.expiryCounters },
    };
  }

  /**
   * Refuse new writes, let the writes called before finish (a `putStream` still reading its
   * source gives up with CLOSED), make them durable, write a checkpoint, stop background work and
   * release the directory. Later calls reject with CLOSED. Calling it again returns the same run.
   */
  close(): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    this.closeRun ??= this.closeNow();
    return this.closeRun;
  }

  private async closeNow(): Promise<void> {
    for (const giveUp of this.chunkWaits) giveUp(new SiltError(ErrorCode.CLOSED, 'the store is closing'));
    this.chunkWaits.clear();
    // Writes called before close() finish first: those in a key's order (large values, streams,
    // objects, and the writes behind them) and those waiting for compaction. Writes called since
    // are refused, so this waits for a fixed set.
    await Promise.all([...this.keyTails.values(), ...[...this.heldByStall.values()].flatMap((calls) => [...calls])]);
    const wasFailed = this.failure !== undefined;
    this.state = 'closing';
    if (this.intervalTimer !== undefined) clearInterval(this.intervalTimer);
    if (this.gcTimer !== undefined) clearTimeout(this.gcTimer);
    this.gcTimer = undefined;
    if (this.expiryTimer !== undefined) clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    let closeError: unknown;
    if (!this.options.readOnly) {
      // Background compaction sees 'closing' and stops after the segment (or chunk) it is on
      // (a paced wait is woken to see it).
      this.objectPaceWake?.();
      await this.objectCompacting;
      await this.compacting?.catch(() => undefined);
      await this.gcRunning?.catch(() => undefined);
      await this.drain();
      await this.intervalSync;
      if (this.failure === undefined && !wasFailed && this.active !== undefined) {
        try {
          if (this.dirty) {
            await this.active.datasync();
            this.counters.fsyncs++;
            this.dirty = false;
          }
          await this.checkpointRunning;
          const position = { segmentId: this.active.segmentId, offsetBytes: this.active.sizeBytes };
          // Segments compaction retired may wait for a checkpoint even with no write since the
          // last one (a segment dead through and through is deleted without copying anything).
          const unchanged =
            this.checkpointPosition?.segmentId === position.segmentId &&
            this.checkpointPosition.offsetBytes === position.offsetBytes &&
            !this.retired.some((retired) => retired.awaitsCheckpoint);
          if (this.options.checkpoint && !unchanged) {
            this.scheduleCheckpoint({ ...position, maxRevision: this.revision }, this.index.snapshot());
          }
          // A cleanly closed segment holds exactly its bytes (the next open preallocates again).
          await this.active.trim();
        } catch (error) {
          closeError = toIoError(error, 'fsync on close');
        }
      }
      await this.checkpointRunning;
      // The segments the close's checkpoint let go are given back now, not left to the next open.
      if (this.failure === undefined && !wasFailed && closeError === undefined) {
        await this.deleteRetired().catch((error: unknown) => {
          closeError = toIoError(error, 'deleting a compacted segment');
        });
      }
    }
    // Spare staging files are closed and deleted (none exist in a read-only store).
    await this.blocks.close();
    for (const handle of this.readHandles.values()) await handle.close().catch(() => undefined);
    this.readHandles.clear();
    if (this.active !== undefined) await this.active.handle.close().catch(() => undefined);
    await this.delayed?.close();
    await this.lock?.release();
    this.state = 'closed';
    if (closeError !== undefined) throw closeError;
  }
}

/**
 * Open the store in `directory`, creating it unless `createIfMissing: false` or `readOnly`.
 * Recovery runs before the promise resolves; `stats().recovery` reports what it did.
 * Rejects with LOCKED when another open store holds the directory.
 */
export function open(directory: string, options?: OpenOptions): Promise<Store> {
  return Store.open(directory, options);
}


