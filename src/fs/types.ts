/**
 * The file layer: the one seam between the engine and the operating system's file system.
 *
 * Invariants:
 * - Nothing above `src/fs` imports `node:fs`; the engine takes a `FileSystem`, which is what makes
 *   fault-injection (`FaultFileSystem`) and power-loss simulation (`CrashFileSystem`) possible.
 * - Errors are thrown as Node errno errors (`err.code` = 'ENOENT', 'EIO', 'ENOSPC', ...); the engine
 *   maps them to SiltErrors.
 * - Writes are positional. Nothing is durable until `sync()`/`datasync()` on the file returns, and a
 *   newly created or renamed file's name is not durable until `syncDirectory()` of its parent returns.
 * - Paths are plain strings joined with '/'.
 */

/** How a file is opened. */
export type OpenMode =
  /** read only; the file must exist */
  | 'read'
  /** read and write; the file must exist */
  | 'readwrite'
  /** read and write; the file must NOT exist (exclusive create) */
  | 'create'
  /** read and write; created if missing, truncated to zero if present */
  | 'overwrite';

/** Options of `FileSystem.open`. */
export interface OpenOptions {
  /**
   * Ask for direct I/O (O_DIRECT): writes go to the device without a copy into the page cache.
   * Only a hint: where the file system does not support it the file opens as usual, and the
   * handle's `direct` says which one happened. Durability is the same either way: nothing is
   * durable until `sync()`/`datasync()` returns.
   */
  direct?: boolean;
}

/**
 * Writes through a handle whose `direct` is true must be aligned to this many bytes: the memory
 * address of the bytes, their file position and their length (else the write fails with EINVAL).
 */
export const DIRECT_IO_ALIGNMENT = 4096;

export interface FileStat {
  sizeBytes: number;
  isFile: boolean;
  isDirectory: boolean;
  mtimeMs: number;
}

/** An open file. All offsets and lengths are in bytes. */
export interface FileHandle {
  readonly path: string;
  /** True when opened for direct I/O (see `OpenOptions.direct`): writes must be aligned. */
  readonly direct?: boolean;
  /** Read up to `length` bytes at `position` into `buffer[offset..]`; returns the count read (0 at EOF). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Synchronous `read`, for the engine's synchronous get path. */
  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number;
  /** Write all of `buffer[offset..offset+length]` at `position` (loops over short writes). */
  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void>;
  /** Synchronous `write`. */
  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void;
  /** fsync: data and metadata durable. */
  sync(): Promise<void>;
  /** fdatasync: data (and the size) durable. */
  datasync(): Promise<void>;
  /**
   * Synchronous `datasync`: the calling thread waits for the disk. The log's group commit uses it
   * while recent fdatasyncs were fast (`inlineSyncMaxMs`), where libuv's thread-pool round trip
   * would cost more than the wait. Optional: a file system without it gets `datasync` always.
   */
  datasyncSync?(): void;
  truncate(sizeBytes: number): Promise<void>;
  /** Current size of the file. */
  size(): Promise<number>;
  close(): Promise<void>;
  /** Synchronous `close`, for the synchronous read path (a descriptor is released before it returns). */
  closeSync(): void;
}

/** The operations the engine needs from a file system. */
export interface FileSystem {
  open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle>;
  /** Synchronous open, for paths that must not yield (rare: the engine prefers `open`). */
  openSync(path: string, mode: OpenMode): FileHandle;
  /** Names (not paths) of the entries of a directory, in no particular order. */
  readdir(path: string): Promise<string[]>;
  /**
   * Synchronous `readdir`, for a read-only store's check of whether a writer went on past its
   * view (on a read's synchronous path). Optional: without it, that check looks only at the
   * segment right after the view's newest.
   */
  readdirSync?(path: string): string[];
  /** Throws ENOENT when missing. */
  stat(path: string): Promise<FileStat>;
  /** Atomically replace `to` with `from` (POSIX rename). */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Create a directory (and its parents); no error when it exists. */
  mkdir(path: string): Promise<void>;
  /** fsync a directory, making creations, renames and unlinks in it durable. */
  syncDirectory(path: string): Promise<void>;
  /**
   * Optional: keep the directory open for `syncDirectory` of this exact path until as many
   * `releaseDirectory` calls (an implementation without it opens the directory for each sync).
   * For a directory synced on a write's path, where an open and a close per sync cost latency.
   */
  holdDirectory?(path: string): void;
  /** Optional: undo one `holdDirectory`; the last one closes the directory once its syncs in flight have settled. */
  releaseDirectory?(path: string): Promise<void>;
  /** Whole-file convenience read (built on open/read in every implementation). */
  readFile(path: string): Promise<Buffer>;
}

/** The kinds of call, as counted and failed by `FaultFileSystem`. */
export type FileCallKind =
  | 'open'
  | 'read'
  | 'write'
  | 'sync'
  | 'datasync'
  | 'truncate'
  | 'size'
  | 'close'
  | 'readdir'
  | 'stat'
  | 'rename'
  | 'unlink'
  | 'mkdir'
  | 'syncDirectory';
