/**
 * Options, their defaults, and their validation. Every knob is documented once, here; README.md
 * lists the same defaults.
 *
 * Invariants:
 * - `resolveOptions` rejects bad input (wrong types, non-finite or out-of-range numbers, unknown
 *   durability modes) with INVALID_ARGUMENT before anything touches the disk.
 * - Every option in `ResolvedOptions` is read by the engine; none is accepted and ignored.
 */
import { ErrorCode, SiltError } from './errors.js';
import type { FileSystem } from './fs/types.js';
import { KEY_BYTES_MAX } from './log/format.js';

/**
 * - `'sync'` (default): a write's promise resolves after its record is on disk (fdatasync, and a
 *   directory fsync when it created a segment file). Concurrent writes share one fsync.
 * - `{ intervalMs }`: a write resolves once the OS has it; the log is fsynced every `intervalMs`.
 * - `'none'`: writes resolve once the OS has them; fsync only at segment roll, `flush()` and `close()`.
 */
export type Durability = 'sync' | 'none' | { intervalMs: number };

export interface OpenOptions {
  /** See `Durability`. Default `'sync'`. */
  durability?: Durability;
  /** Open without writing a byte: no lock file, no checkpoint, no tail repair. Default false. */
  readOnly?: boolean;
  /** Create the directory when it is missing. Default true (ignored when `readOnly`). */
  createIfMissing?: boolean;
  /** Largest key in bytes. Default 4096; at most 65535. */
  maxKeySize?: number;
  /** Largest value in bytes. Default 1 TiB. */
  maxValueSize?: number;
  /**
   * Values larger than this many bytes go to the block store; smaller ones stay in the log.
   * Default 1 MiB: measured with bench/value-threshold.mjs, below 1 MiB the block path's extra file
   * and fsyncs cost 25-70% of durable put throughput; from 1 MiB up it is within noise, and blocks
   * add dedup, verified range reads, and values that compaction never moves.
   */
  valueThreshold?: number;
  /** Size of the blocks large values are cut into. Default 1 MiB. */
  blockBytes?: number;
  /** A segment is sealed and a new one started once it reaches this size. Default 64 MiB. */
  segmentBytes?: number;
  /** Largest number of bytes written (and fsynced) as one group commit. Default 4 MiB. */
  groupBytesMax?: number;
  /**
   * In `'sync'` durability, how long (milliseconds, on average over recent commits) the log's
   * fdatasync may take and still be called on the main thread, which then waits for the disk
   * instead of handing the call to libuv's thread pool. The thread pool's round trip (waking a
   * pool thread, then the event loop) cost 0.08-0.12 ms here beside a 0.1-0.2 ms fdatasync of a
   * small record, so a single writer's small durable puts ran 1.05-1.36x as fast
   * (doc/measurements.md, "Group commit: the fdatasync on the main thread"). While it waits the
   * event loop serves nothing else (it turns once before the writes resolve), so a disk whose
   * fdatasyncs average more than this (a spinning disk, network storage) gets them in the thread
   * pool. Default 1; 0 always uses the thread pool.
   */
  inlineSyncMaxMs?: number;
  /** Largest number of operations in one `batch()`. Default 100,000. */
  batchOperationsMax?: number;
  /**
   * Segment files kept open for reads, besides the active one; a quarter as many block files are
   * kept open for reads of their pages (`readAt`, ranged streams). Default 64.
   */
  maxOpenFiles?: number;
  /** Write an index checkpoint on close, at segment rolls (as often as the log's growth pays for it: doc/format.md), and before compaction deletes a segment. Default true. */
  checkpoint?: boolean;
  /** Bytes of segment blocks cached in memory for reads (0 disables). Default 32 MiB. */
  cacheBytes?: number;
  /**
   * Bytes of verified blocks of large values held in memory for reads (0 disables). A block comes
   * in on its second read from disk in the recent past. Default 64 MiB.
   */
  blockCacheBytes?: number;
  /**
   * Blocks of at least this many bytes are staged: their bytes start going to a staging file
   * before their hash is known and are hashed meanwhile, then the file is renamed to the hash.
   * Below it hashing takes too little time for the overlap to pay for the rename (measured per
   * write, hash-then-write against staged: 64 KiB 0.95 against 1.01 ms, 128 KiB 1.32 against
   * 1.25, 256 KiB 1.91 against 1.63, 1 MiB 3.2 against 2.1). A value above `blockBytes` turns
   * staging off. Default 256 KiB.
   */
  stagedBlockBytes?: number;
  /**
   * Segment compaction, or `false` for none in the background (`compact()` still works).
   * - `deadRatio` (default 0.5): a sealed segment whose dead fraction passes this is rewritten.
   * - `stallRatio` (default 0.8): when dead bytes pass this fraction of all log bytes, writes wait
   *   for compaction (the time is counted in `stats().compaction.stallMs`).
   * - `bytesPerSecond` (default 0 = unlimited): the most compaction reads and writes per second.
   */
  compaction?: false | { deadRatio?: number; stallRatio?: number; bytesPerSecond?: number };
  /**
   * Two-phase garbage collection of blocks no live value references, or `false` for none in the
   * background (`gc()` still works).
   * - `minAgeMs` (default 60,000): a block is deleted only after it has been on the persisted
   *   delayed list this long (and is still unreferenced, not being rewritten, and not readable by
   *   any open iterator, stream or snapshot).
   * - `batch` (default 1,000): the most list entries one GC pass deletes or takes off the list.
   * - `intervalMs` (default 10,000): how often the background pass runs while blocks wait.
   */
  gc?: false | { minAgeMs?: number; batch?: number; intervalMs?: number };
  /**
   * Objects (`writeAt`, `append`, `truncate`): values made of fixed-size chunks of slices.
   * - `chunkBytes` (default 16 MiB): the chunk size of objects created from now on (an object
   *   keeps the one it was created with). doc/format.md says why.
   * - `compactAt` (default 64; measured, see doc/measurements.md): a chunk with more slices than this is compacted in the background
   *   (light first, then heavy if still past it).
   * - `syncCompactAt` (default 4096, at least `compactAt`): a write to a chunk holding this many
   *   slices compacts that chunk first, so reads never face more slices than this per chunk.
   * - `compaction` (default true): `false` turns background slice compaction off (`syncCompactAt`
   *   and `db.compactObject()` still apply).
   * - `inlineBytes` (default 256 KiB, at most `blockBytes`; 0 for none): a write's slice of at most
   *   this many bytes is carried in the log record itself (one fsync) instead of a block file;
   *   heavy compaction later moves such bytes into full-size block files (except in a chunk laid
   *   down like appends of 64 KiB or more, which reads as fast as it is; doc/format.md).
   * - `appendSlicesMax` (default 16,384; 0 for none): background compaction leaves such
   *   append-shaped chunks alone only while their object holds at most this many slices in all:
   *   past it, its chunks are compacted like any other, which bounds the object's manifest
   *   (about 56 bytes a slice, written whole at each segment roll) and its memory.
   * - `keepInlineBytes` (default 4 KiB; 0 for never): an object write to a value stored inline
   *   in the log keeps it inline (rewritten whole) while its new size is at most this and
   *   `valueThreshold`; past it (or when a truncate makes it larger than `valueThreshold`) the
   *   value becomes an object, and later writes add slices instead of rewriting it.
   * - `compactBudget` (default 2; 0 for no pacing): while object writes keep coming, background
   *   slice compaction rewrites at most about this many bytes per byte they write (it starts a
   *   chunk only when the bytes it rewrote so far are paid for); once writes pause
   *   (`compactQuietMs`), or on `idle()`, it catches up on every queued chunk. `syncCompactAt`
   *   stays the hard bound.
   * - `compactQuietMs` (default 50): how long object writes must pause before paced compaction
   *   catches up.
   */
  objects?: { chunkBytes?: number; compactAt?: number; syncCompactAt?: number; compaction?: boolean; inlineBytes?: number; keepInlineBytes?: number; appendSlicesMax?: number; compactBudget?: number; compactQuietMs?: number };
  /** The file layer; default the real file system. Tests pass fault-injecting or crash-simulating ones. */
  fileSystem?: FileSystem;
}

export interface ResolvedOptions {
  durability: Durability;
  readOnly: boolean;
  createIfMissing: boolean;
  maxKeySize: number;
  maxValueSize: number;
  valueThreshold: number;
  blockBytes: number;
  segmentBytes: number;
  groupBytesMax: number;
  inlineSyncMaxMs: number;
  batchOperationsMax: number;
  maxOpenFiles: number;
  checkpoint: boolean;
  cacheBytes: number;
  blockCacheBytes: number;
  stagedBlockBytes: number;
  compaction: { enabled: boolean; deadRatio: number; stallRatio: number; bytesPerSecond: number };
  gc: { enabled: boolean; minAgeMs: number; batch: number; intervalMs: number };
  objects: { chunkBytes: number; compactAt: number; syncCompactAt: number; compaction: boolean; inlineBytes: number; keepInlineBytes: number; appendSlicesMax: number; compactBudget: number; compactQuietMs: number };
}

export const DEFAULTS: Readonly<ResolvedOptions> = Object.freeze({
  durability: 'sync',
  readOnly: false,
  createIfMissing: true,
  maxKeySize: 4096,
  maxValueSize: 2 ** 40,
  valueThreshold: 1024 * 1024,
  blockBytes: 1024 * 1024,
  segmentBytes: 64 * 1024 * 1024,
  groupBytesMax: 4 * 1024 * 1024,
  inlineSyncMaxMs: 1,
  batchOperationsMax: 100_000,
  maxOpenFiles: 64,
  checkpoint: true,
  cacheBytes: 32 * 1024 * 1024,
  blockCacheBytes: 64 * 1024 * 1024,
  stagedBlockBytes: 256 * 1024,
  compaction: Object.freeze({ enabled: true, deadRatio: 0.5, stallRatio: 0.8, bytesPerSecond: 0 }),
  gc: Object.freeze({ enabled: true, minAgeMs: 60_000, batch: 1000, intervalMs: 10_000 }),
  objects: Object.freeze({ chunkBytes: 16 * 1024 * 1024, compactAt: 64, syncCompactAt: 4096, compaction: true, inlineBytes: 256 * 1024, keepInlineBytes: 4096, appendSlicesMax: 16_384, compactBudget: 2, compactQuietMs: 50 }),
});

function invalid(message: string): SiltError {
  return new SiltError(ErrorCode.INVALID_ARGUMENT, message);
}

function integerOption(options: OpenOptions, name: keyof OpenOptions, minimum: number, maximum: number): number {
  const value = options[name] ?? DEFAULTS[name as keyof ResolvedOptions];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < minimum || value > maximum) {
    throw invalid(`option ${name} must be an integer from ${minimum} to ${maximum}, got ${String(value)}`);
  }
  return value;
}

function booleanOption(options: OpenOptions, name: keyof OpenOptions): boolean {
  const value = options[name] ?? DEFAULTS[name as keyof ResolvedOptions];
  if (typeof value !== 'boolean') throw invalid(`option ${name} must be a boolean, got ${String(value)}`);
  return value;
}

function millisecondsOption(options: OpenOptions, name: keyof OpenOptions, maximum: number): number {
  const value = options[name] ?? DEFAULTS[name as keyof ResolvedOptions];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > maximum) {
    throw invalid(`option ${name} must be a number of milliseconds from 0 to ${maximum}, got ${String(value)}`);
  }
  return value;
}

function durabilityOption(value: unknown): Durability {
  if (value === undefined) return DEFAULTS.durability;
  if (value === 'sync' || value === 'none') return value;
  if (typeof value === 'object' && value !== null && 'intervalMs' in value) {
    const intervalMs = (value as { intervalMs: unknown }).intervalMs;
    if (typeof intervalMs === 'number' && Number.isFinite(intervalMs) && intervalMs >= 1 && intervalMs <= 3_600_000) {
      return { intervalMs };
    }
    throw invalid(`durability.intervalMs must be a finite number from 1 to 3600000, got ${String(intervalMs)}`);
  }
  throw invalid(`durability must be 'sync', 'none' or { intervalMs }, got ${JSON.stringify(value)}`);
}

function ratio(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > 1) {
    throw invalid(`${name} must be a number in (0, 1], got ${String(value)}`);
  }
  return value;
}

function compactionOption(value: unknown): ResolvedOptions['compaction'] {
  const defaults = DEFAULTS.compaction;
  if (value === undefined) return { ...defaults };
  if (value === false) return { ...defaults, enabled: false };
  if (typeof value !== 'object' || value === null) throw invalid('compaction must be false or an object');
  const given = value as { deadRatio?: unknown; stallRatio?: unknown; bytesPerSecond?: unknown };
  const deadRatio = ratio(given.deadRatio, 'compaction.deadRatio', defaults.deadRatio);
  const stallRatio = ratio(given.stallRatio, 'compaction.stallRatio', Math.max(defaults.stallRatio, deadRatio));
  if (stallRatio < deadRatio) throw invalid('compaction.stallRatio must not be below compaction.deadRatio');
  const bytesPerSecond = given.bytesPerSecond ?? 0;
  if (typeof bytesPerSecond !== 'number' || !Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) {
    throw invalid(`compaction.bytesPerSecond must be a non-negative number, got ${String(bytesPerSecond)}`);
  }
  return { enabled: true, deadRatio, stallRatio, bytesPerSecond };
}

function gcOption(value: unknown): ResolvedOptions['gc'] {
  const defaults = DEFAULTS.gc;
  if (value === undefined) return { ...defaults };
  if (value === false) return { ...defaults, enabled: false };
  if (typeof value !== 'object' || value === null) throw invalid('gc must be false or an object');
  const given = value as { minAgeMs?: unknown; batch?: unknown; intervalMs?: unknown };
  const integer = (field: 'minAgeMs' | 'batch' | 'intervalMs', minimum: number, maximum: number): number => {
    const number = given[field] ?? defaults[field];
    if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < minimum || number > maximum) {
      throw invalid(`gc.${field} must be an integer from ${minimum} to ${maximum}, got ${String(number)}`);
    }
    return number;
  };
  return { enabled: true, minAgeMs: integer('minAgeMs', 0, 2 ** 31), batch: integer('batch', 1, 10_000_000), intervalMs: integer('intervalMs', 1, 2 ** 31 - 1) };
}

function objectsOption(value: unknown, blockBytes: number): ResolvedOptions['objects'] {
  const defaults = { ...DEFAULTS.objects, inlineBytes: Math.min(DEFAULTS.objects.inlineBytes, blockBytes) };
  if (value === undefined) return defaults;
  if (typeof value !== 'object' || value === null) throw invalid('objects must be an object');
  const given = value as { chunkBytes?: unknown; compactAt?: unknown; syncCompactAt?: unknown; compaction?: unknown; inlineBytes?: unknown; keepInlineBytes?: unknown; appendSlicesMax?: unknown; compactBudget?: unknown; compactQuietMs?: unknown };
  const integer = (field: 'chunkBytes' | 'compactAt' | 'syncCompactAt' | 'inlineBytes' | 'keepInlineBytes' | 'appendSlicesMax' | 'compactQuietMs', fallback: number, minimum: number, maximum: number): number => {
    const number = given[field] ?? fallback;
    if (typeof number !== 'number' || !Number.isSafeInteger(number) || number < minimum || number > maximum) {
      throw invalid(`objects.${field} must be an integer from ${minimum} to ${maximum}, got ${String(number)}`);
    }
    return number;
  };
  const chunkBytes = integer('chunkBytes', defaults.chunkBytes, 4096, 1 << 30);
  const compactAt = integer('compactAt', defaults.compactAt, 1, 1_000_000);
  const syncCompactAt = integer('syncCompactAt', Math.max(defaults.syncCompactAt, compactAt), 2, 1_000_000);
  if (syncCompactAt < compactAt) throw invalid('objects.syncCompactAt must not be below objects.compactAt');
  const compaction = given.compaction ?? true;
  if (typeof compaction !== 'boolean') throw invalid(`objects.compaction must be a boolean, got ${String(compaction)}`);
  const inlineBytes = integer('inlineBytes', defaults.inlineBytes, 0, blockBytes);
  const keepInlineBytes = integer('keepInlineBytes', defaults.keepInlineBytes, 0, 64 * 1024 * 1024);
  const appendSlicesMax = integer('appendSlicesMax', defaults.appendSlicesMax, 0, 1 << 30);
  const compactBudget = given.compactBudget ?? defaults.compactBudget;
  if (typeof compactBudget !== 'number' || !Number.isFinite(compactBudget) || compactBudget < 0) {
    throw invalid(`objects.compactBudget must be a finite number of at least 0, got ${String(compactBudget)}`);
  }
  const compactQuietMs = integer('compactQuietMs', defaults.compactQuietMs, 0, 2 ** 31 - 1);
  return { chunkBytes, compactAt, syncCompactAt, compaction, inlineBytes, keepInlineBytes, appendSlicesMax, compactBudget, compactQuietMs };
}

export function resolveOptions(options: OpenOptions | undefined): ResolvedOptions {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) throw invalid('options must be an object');
  const blockBytes = integerOption(options, 'blockBytes', 4096, 256 * 1024 * 1024);
  return {
    durability: durabilityOption(options.durability),
    readOnly: booleanOption(options, 'readOnly'),
    createIfMissing: booleanOption(options, 'createIfMissing'),
    maxKeySize: integerOption(options, 'maxKeySize', 1, KEY_BYTES_MAX),
    maxValueSize: integerOption(options, 'maxValueSize', 0, Number.MAX_SAFE_INTEGER),
    valueThreshold: integerOption(options, 'valueThreshold', 0, 64 * 1024 * 1024),
    blockBytes,
    segmentBytes: integerOption(options, 'segmentBytes', 1024, 0xffff_ffff),
    groupBytesMax: integerOption(options, 'groupBytesMax', 4096, 1 << 30),
    inlineSyncMaxMs: millisecondsOption(options, 'inlineSyncMaxMs', 1000),
    batchOperationsMax: integerOption(options, 'batchOperationsMax', 1, 10_000_000),
    maxOpenFiles: integerOption(options, 'maxOpenFiles', 1, 100_000),
    checkpoint: booleanOption(options, 'checkpoint'),
    cacheBytes: integerOption(options, 'cacheBytes', 0, 2 ** 40),
    blockCacheBytes: integerOption(options, 'blockCacheBytes', 0, 2 ** 40),
    stagedBlockBytes: integerOption(options, 'stagedBlockBytes', 0, 2 ** 40),
    compaction: compactionOption(options.compaction),
    gc: gcOption(options.gc),
    objects: objectsOption(options.objects, blockBytes),
  };
}
