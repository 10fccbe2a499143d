/**
 * The public shapes of the store's API (arguments and results). The Store class is in store.ts.
 */
import type { Durability } from '../options.js';
import type { RecoveryReport } from './recovery.js';

/** A key or value: bytes, or a string taken as UTF-8. Keys order bytewise. */
export type Bytes = Uint8Array | string;

export interface PutOptions {
  /** Write only if the key's current revision is exactly this (0 = absent); else CONFLICT. */
  ifRevision?: number;
  /** Write only if the key is absent; else CONFLICT. */
  ifAbsent?: boolean;
  /** The entry expires (reads as absent) this many milliseconds after the write is queued. */
  ttlMs?: number;
}

export interface PutStreamOptions extends PutOptions {
  /** Aborting rejects the write and leaves the key as it was. */
  signal?: AbortSignal;
}

export interface PutStreamResult {
  revision: number;
  /** Bytes stored. */
  size: number;
  /** SHA-256 of the value, hex. */
  digest: string;
}

export interface ReadStreamOptions {
  /** First byte (default 0). */
  start?: number;
  /** Last byte, inclusive (default: the end), as in `fs.createReadStream`. */
  end?: number;
  signal?: AbortSignal;
}

export interface ValueStat {
  size: number;
  revision: number;
  /** SHA-256 of the value, hex. */
  digest: string;
  /** Blocks holding the value (0 for a value stored inline in the log). */
  blocks: number;
}

export interface ObjectOptions {
  /** Write only if the key's current revision is exactly this (0 = absent); else CONFLICT. */
  ifRevision?: number;
}

export interface ObjectWriteResult {
  /** The revision this write was given; the key now carries it. */
  revision: number;
  /** The value's size in bytes after the write. */
  size: number;
}

/** Fragmentation of one chunk of an object. */
export interface ObjectChunkStats {
  /** Chunk number (chunk `i` holds bytes `[i × chunkBytes, (i+1) × chunkBytes)`). */
  index: number;
  slices: number;
  /** Bytes of the chunk some slice covers (the rest are holes, read as zeros). */
  coveredBytes: number;
  /** Sum of the slices' lengths less `coveredBytes`: bytes stored that reads never return. */
  coveredTwiceBytes: number;
  /** coveredTwiceBytes over the sum of the slices' lengths. */
  overlapRatio: number;
}

export interface ObjectStats {
  size: number;
  revision: number;
  chunkBytes: number;
  /** Chunks holding at least one slice (others read as zeros). */
  chunks: ObjectChunkStats[];
  slices: number;
  /** The most slices in one chunk. */
  maxSlicesPerChunk: number;
  coveredTwiceBytes: number;
}

export interface ObjectCompactionResult {
  /** Chunks whose slices were replaced. */
  chunksCompacted: number;
  /** Chunks left as they were because writes kept changing them (after retries). */
  chunksGivenUp: number;
  slicesBefore: number;
  slicesAfter: number;
}

export interface DeleteOptions {
  /** Delete only if the key's current revision is exactly this; else CONFLICT. */
  ifRevision?: number;
}

export interface WriteResult {
  /** The revision this write was given; the key now carries it. */
  revision: number;
}

export interface DeleteResult {
  /** The revision of the delete, or, when the key was absent, the last revision applied (acknowledged in 'sync' mode). */
  revision: number;
  existed: boolean;
}

export type BatchOperation =
  | { type: 'put'; key: Bytes; value: Bytes; ttlMs?: number }
  | { type: 'delete'; key: Bytes };

export interface Entry {
  key: Buffer;
  value: Buffer;
  revision: number;
}

export interface RangeOptions {
  gt?: Bytes;
  gte?: Bytes;
  lt?: Bytes;
  lte?: Bytes;
  /** Only keys starting with these bytes (combined with the bounds above: the stricter wins). */
  prefix?: Bytes;
  /** Descending key order. */
  reverse?: boolean;
  /** At most this many entries (a non-negative integer). */
  limit?: number;
}

/** A read-only view of the store as of `Store.snapshot()`; see there. */
export interface Snapshot {
  /** The highest revision the snapshot reflects. */
  readonly revision: number;
  getSync(key: Bytes): Buffer | undefined;
  get(key: Bytes): Promise<Buffer | undefined>;
  getEntry(key: Bytes): Promise<Entry | undefined>;
  has(key: Bytes): boolean;
  /** Bytes `offset..offset + length` of the key's value as of the snapshot (see `Store.readAt`). */
  readAt(key: Bytes, offset: number, length: number): Promise<Buffer | undefined>;
  readAtSync(key: Bytes, offset: number, length: number): Buffer | undefined;
  entries(range?: RangeOptions): AsyncIterableIterator<Entry>;
  keys(range?: RangeOptions): AsyncIterableIterator<Buffer>;
  values(range?: RangeOptions): AsyncIterableIterator<Buffer>;
  /** Later reads of this snapshot throw CLOSED. */
  release(): void;
}

export interface CompactionStats {
  runs: number;
  segmentsCompacted: number;
  /** Compacted segment files deleted (after the readers that could use them finished). */
  segmentsDeleted: number;
  bytesRead: number;
  /** Bytes of live entries copied forward. */
  bytesWritten: number;
  /** Tombstones copied forward (DELETEs, and expired puts written as DELETEs) because an older segment may hold their key. */
  tombstonesKept: number;
  tombstonesDropped: number;
  /** Expired puts compaction wrote as DELETEs (of `tombstonesKept`): their values were not copied. */
  expiredAsTombstones: number;
  /** Writes that waited for compaction (dead bytes past `stallRatio`), and the time they waited. */
  stalls: number;
  stallMs: number;
}

export type StoreState = 'open' | 'failed' | 'closing' | 'closed';

export interface StoreStats {
  state: StoreState;
  /** Why the store stopped taking writes (state 'failed'). */
  failure: string | undefined;
  readOnly: boolean;
  durability: Durability;
  /**
   * Keys in the index. A put whose TTL has passed reads as absent at once but counts here until
   * the expiry sweep drops it (within about 100 ms in a writable store; a `readOnly` store does
   * not sweep, so it counts them for as long as it is open).
   */
  keys: number;
  /** The store-wide revision counter: the last revision handed out. */
  revision: number;
  segments: {
    count: number;
    activeSegmentId: number | undefined;
    bytes: number;
    /** Bytes of segments not holding live entries (overwritten, deleted, tombstones, frame headers, footers; not the segment headers): the sum of `list[].deadBytes`. */
    deadBytes: number;
    /** Compacted segments whose files wait for readers that may still use them, or for a checkpoint. */
    retired: number;
    /**
     * Of `retired`, those whose files wait for a checkpoint: the one on disk may name records in
     * them. Compaction writes one once they hold about what it costs (or a roll's, or close's,
     * lets them go first); `compact()` writes one before it resolves.
     */
    awaitingCheckpoint: number;
    /** Their bytes. */
    awaitingCheckpointBytes: number;
    list: Array<{ segmentId: number; sizeBytes: number; liveBytes: number; deadBytes: number; sealed: boolean }>;
  };
  /** Bytes of the log entries that hold the live keys. */
  liveBytes: number;
  /** Bytes of the files the store owns: segments (and compacted ones not yet deleted), blocks, checkpoint. */
  diskBytes: number;
  /** diskBytes per live byte (live log entries plus referenced block data). */
  spaceAmplification: number;
  /** Bytes written to files (log, blocks, checkpoints) per byte of keys and values written by the user. */
  writeAmplification: number;
  compaction: CompactionStats & { deadFraction: number };
  recovery: RecoveryReport;
  writes: {
    puts: number;
    deletes: number;
    batches: number;
    /** Group commits: one write (and in 'sync' mode one fsync) each. */
    groups: number;
    fsyncs: number;
    /**
     * Of the group commits' fdatasyncs, those called on the main thread (`inlineSyncMaxMs`); the
     * rest went through libuv's thread pool.
     */
    inlineFsyncs: number;
    /** The running average of a group commit's fdatasync, in ms (weight 1/8 for the newest): what `inlineSyncMaxMs` is compared with. */
    fsyncAverageMs: number;
    /** Bytes appended to segment files. */
    logBytes: number;
    /** Bytes of keys and values the user asked to store. */
    userBytes: number;
  };
  /** Index checkpoints written by this open: how many, their bytes in all, the last one's entries and time, failures. */
  checkpoints: { written: number; bytesWritten: number; lastEntryCount: number; lastDurationMs: number; failures: number };
  /** The block cache of segment reads: bytes held, and block hits and misses. */
  readCache: { bytes: number; hits: number; misses: number };
  /**
   * Verified blocks of large values held in memory (`blockCacheBytes`): bytes held, and block
   * reads served from it (hits) or from disk (misses; `verify()` reads are not counted).
   */
  blockCache: { bytes: number; hits: number; misses: number };
  /** The block store of large values. */
  blocks: {
    /** Block files present. */
    count: number;
    /** Bytes of block data on disk. */
    storedBytes: number;
    /** Bytes of the live large values (each value counted once per key holding it). */
    logicalBytes: number;
    /** logicalBytes / storedBytes (1 when empty). */
    dedupRatio: number;
    /** Blocks some live value points at. */
    referenced: number;
    /** Blocks present that no live value points at (listed, or waiting to be listed, by GC). */
    candidates: number;
    /** Blocks on the persisted delayed list (phase 1 of GC), waiting for `gc.minAgeMs`. */
    delayed: number;
    /** Block files written by this open, and their bytes. */
    written: number;
    bytesWritten: number;
    /** Of `written`, the blocks hashed while their bytes went to a staging file, then renamed to their name. */
    staged: number;
    /** Staged writes whose content was already stored: their staging file deleted, its bytes written for nothing. */
    stagedDiscarded: number;
    /** Blocks deleted by the GC pass at open (orphans and listed blocks old enough). */
    orphansRemovedAtOpen: number;
    /**
     * Page tables kept (a CRC-32 per 4 KiB of a block, learned when part of the block was first
     * read: it was read whole and hashed then), and their bytes (at most 4 MiB, least recently
     * used dropped first).
     */
    pageTables: number;
    pageTableBytes: number;
    /**
     * Reads of part of a block (`readAt`, ranged streams), since open: served by the pages they
     * touch, checked against the block's page table, and served by reading the block whole (no
     * table kept for it yet).
     */
    rangePageReads: number;
    rangeWholeReads: number;
    /**
     * Block files kept open for page reads now (at most a quarter of `maxOpenFiles`, least
     * recently used closed first), and block files opened for page reads since open.
     */
    rangeFilesOpen: number;
    rangeFileOpens: number;
    /**
     * Whole blocks read from disk (not `verify()`'s), since open: checked against their hash, and
     * checked against a CRC-32 remembered from their second such read (which hashed them).
     */
    readsHashed: number;
    readsByCrc: number;
  };
  /** Objects (writeAt/append/truncate) and their slice compaction, since open. */
  objects: {
    /** writeAt, append and truncate calls committed. */
    writes: number;
    /** Chunk compactions committed: light (slices dropped, metadata only) and heavy (bytes rewritten). */
    lightCompactions: number;
    heavyCompactions: number;
    /** Heavy compactions done by a write before it touched its chunk (past `objects.syncCompactAt`). */
    syncCompactions: number;
    /** Bytes read and rewritten by heavy compactions. */
    bytesRewritten: number;
    /** Compaction commits that found their chunk changed since it was read (then retried). */
    conflicts: number;
    /** Chunk compactions abandoned after retries. */
    givenUp: number;
    /** Slices whose bytes were carried in the log (BLOCK entries, at most `objects.inlineBytes` each) instead of block files, and their bytes. */
    inlineSlices: number;
    inlineBytes: number;
    /** Small slices whose bytes were already stored (a block a live value references, or the same bytes twice in one write): no BLOCK entry written, the slice names the existing block. */
    slicesDeduplicated: number;
    /** Heavy-compaction blocks kept as they were (a whole block visible from one slice): not read nor rewritten. */
    blocksReused: number;
    /** Writes and slice compactions recorded as a delta on the key's previous record (the slices they add, or the chunk's slices a compaction replaced, not the whole manifest). */
    deltaRecords: number;
    /** Times background compaction waited for object writes to pay for what it rewrote (`objects.compactBudget`). */
    pacedWaits: number;
    /** Object writes started again because the value they built on expired (`ttlMs`) while they were prepared: they build on the key as absent. */
    expiredRetries: number;
    /** Blocks carried in the log that live objects reference now, and their data bytes. */
    logBlocks: number;
    logBlockBytes: number;
  };
  /** Two-phase block garbage collection, since open. */
  gc: {
    runs: number;
    /** Blocks put on the delayed list. */
    listed: number;
    /** Blocks deleted, and their bytes. */
    deleted: number;
    bytesDeleted: number;
    /** Listed blocks written again and taken off the list. */
    revived: number;
    /** Times a listed block was kept because an open reader may still read it. */
    skippedPinned: number;
    delayedListBytes: number;
  };
  /**
   * Puts with `ttlMs`: once expired, a background sweep (at most every 100 ms; `compact()` runs
   * one first) drops them from the index, so their bytes count as dead and their blocks are
   * released. Since open.
   */
  expiry: {
    /** Expiry times queued (live puts with `ttlMs`, and entries of keys written again since, dropped in time). */
    queued: number;
    /** Expired puts dropped from the index by the sweep. */
    swept: number;
    /**
     * Tombstones the sweep wrote: one per swept put with blocks, which it releases once in the
     * log (replay then never finds the put live, whatever the clock says, with its blocks gone).
     */
    tombstones: number;
    /** Sweep passes run. */
    sweeps: number;
  };
}
