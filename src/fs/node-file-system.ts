/**
 * The real file layer on node:fs, and the process probes the directory lock needs.
 *
 * Owns: `NodeFileSystem` (and its handles), `processIsAlive`, `processStartTime`.
 *
 * Invariants:
 * - This is the only module in the project that imports node:fs.
 * - Calls are fd-based: the callback API wrapped in promises for the async methods (cheaper per call
 *   than fs/promises FileHandle), readSync/writeSync for the synchronous ones.
 * - `write` and `writeSync` loop until every byte is written (short writes are retried, never
 *   returned); `readFile` is built on open/read like every other implementation's.
 * - `syncDirectory` fsyncs the directory itself (opened read-only), which is what makes creations,
 *   renames and unlinks in it durable. A held directory (`holdDirectory`) stays open between syncs;
 *   its descriptor is closed only after every fsync that uses it has settled, so an fsync never
 *   meets a descriptor number the process has since reused for another file.
 */
import * as fs from 'node:fs';
import type { FileHandle, FileStat, FileSystem, OpenMode, OpenOptions } from './types.js';

const OPEN_FLAGS: Record<OpenMode, string> = { read: 'r', readwrite: 'r+', create: 'wx+', overwrite: 'w+' };
const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL, O_TRUNC } = fs.constants;
/** The same modes as numbers, for opens that add O_DIRECT. */
const OPEN_BITS: Record<OpenMode, number> = { read: O_RDONLY, readwrite: O_RDWR, create: O_RDWR | O_CREAT | O_EXCL, overwrite: O_RDWR | O_CREAT | O_TRUNC };
/** 0 where the platform has no O_DIRECT (then no open is direct). */
const O_DIRECT = (fs.constants as { O_DIRECT?: number }).O_DIRECT ?? 0;
const CREATE_PERMISSIONS = 0o644;

type Callback<T> = (error: NodeJS.ErrnoException | null, value?: T) => void;

/** Run one node:fs callback call as a promise. */
function callbackToPromise<T>(call: (done: Callback<T>) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => call((error, value) => (error ? reject(error) : resolve(value as T))));
}

/** A write that made no progress would loop forever; node:fs never reports one for a regular file. */
function noProgressError(path: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`EIO: write made no progress, write '${path}'`);
  error.code = 'EIO';
  error.syscall = 'write';
  error.path = path;
  return error;
}

class NodeFileHandle implements FileHandle {
  constructor(
    readonly path: string,
    private readonly descriptor: number,
    readonly direct = false,
  ) {}

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return callbackToPromise<number>((done) => fs.read(this.descriptor, buffer, offset, length, position, done));
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.descriptor, buffer, offset, length, position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    for (let writtenBytes = 0; writtenBytes < length; ) {
      const countBytes = await callbackToPromise<number>((done) =>
        fs.write(this.descriptor, buffer, offset + writtenBytes, length - writtenBytes, position + writtenBytes, done),
      );
      if (countBytes <= 0) throw noProgressError(this.path);
      writtenBytes += countBytes;
    }
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    for (let writtenBytes = 0; writtenBytes < length; ) {
      const countBytes = fs.writeSync(this.descriptor, buffer, offset + writtenBytes, length - writtenBytes, position + writtenBytes);
      if (countBytes <= 0) throw noProgressError(this.path);
      writtenBytes += countBytes;
    }
  }

  sync(): Promise<void> {
    return callbackToPromise<void>((done) => fs.fsync(this.descriptor, done));
  }

  datasync(): Promise<void> {
    return callbackToPromise<void>((done) => fs.fdatasync(this.descriptor, done));
  }

  datasyncSync(): void {
    fs.fdatasyncSync(this.descriptor);
  }

  truncate(sizeBytes: number): Promise<void> {
    return callbackToPromise<void>((done) => fs.ftruncate(this.descriptor, sizeBytes, done));
  }

  async size(): Promise<number> {
    const stats = await callbackToPromise<fs.Stats>((done) => fs.fstat(this.descriptor, done));
    return stats.size;
  }

  closeSync(): void {
    fs.closeSync(this.descriptor);
  }

  close(): Promise<void> {
    return callbackToPromise<void>((done) => fs.close(this.descriptor, done));
  }
}

/** A directory kept open for its fsyncs (`holdDirectory`). */
interface HeldDirectory {
  holders: number;
  /** Opened at the first sync. */
  descriptor: Promise<number> | undefined;
  /** fsyncs through `descriptor` not yet settled. */
  syncs: Set<Promise<void>>;
}

/** The real file system: every call goes to node:fs. Paths are passed through unchanged. */
export class NodeFileSystem implements FileSystem {
  /** Directories held open for `syncDirectory`, by the exact path given to `holdDirectory`. */
  private readonly heldDirectories = new Map<string, HeldDirectory>();

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
    if (options?.direct === true && O_DIRECT !== 0) {
      try {
        const descriptor = await callbackToPromise<number>((done) => fs.open(path, OPEN_BITS[mode] | O_DIRECT, CREATE_PERMISSIONS, done));
        return new NodeFileHandle(path, descriptor, true);
      } catch (error) {
        // EINVAL: this file system has no direct I/O (tmpfs, some FUSE and network file systems).
        if ((error as NodeJS.ErrnoException).code !== 'EINVAL') throw error;
        // An exclusive create that got this far created the file before the open failed (an
        // existing file fails with EEXIST first): open the file it created, without O_DIRECT.
        if (mode === 'create') mode = 'overwrite';
      }
    }
    const descriptor = await callbackToPromise<number>((done) => fs.open(path, OPEN_FLAGS[mode], CREATE_PERMISSIONS, done));
    return new NodeFileHandle(path, descriptor);
  }

  openSync(path: string, mode: OpenMode): FileHandle {
    return new NodeFileHandle(path, fs.openSync(path, OPEN_FLAGS[mode], CREATE_PERMISSIONS));
  }

  readdir(path: string): Promise<string[]> {
    return callbackToPromise<string[]>((done) => fs.readdir(path, done));
  }

  readdirSync(path: string): string[] {
    return fs.readdirSync(path);
  }

  async stat(path: string): Promise<FileStat> {
    const stats = await callbackToPromise<fs.Stats>((done) => fs.stat(path, done));
    return { sizeBytes: stats.size, isFile: stats.isFile(), isDirectory: stats.isDirectory(), mtimeMs: stats.mtimeMs };
  }

  rename(from: string, to: string): Promise<void> {
    return callbackToPromise<void>((done) => fs.rename(from, to, done));
  }

  unlink(path: string): Promise<void> {
    return callbackToPromise<void>((done) => fs.unlink(path, done));
  }

  async mkdir(path: string): Promise<void> {
    await callbackToPromise<string | undefined>((done) => fs.mkdir(path, { recursive: true }, done));
  }

  async syncDirectory(path: string): Promise<void> {
    const held = this.heldDirectories.get(path);
    if (held !== undefined) {
      const sync = this.syncHeld(held, path);
      held.syncs.add(sync);
      try {
        return await sync;
      } finally {
        held.syncs.delete(sync);
      }
    }
    const descriptor = await callbackToPromise<number>((done) => fs.open(path, 'r', done));
    try {
      await callbackToPromise<void>((done) => fs.fsync(descriptor, done));
    } finally {
      await callbackToPromise<void>((done) => fs.close(descriptor, done));
    }
  }

  /** fsync through a held directory's descriptor, opening it at the first sync (a failed open is tried again at the next). */
  private async syncHeld(held: HeldDirectory, path: string): Promise<void> {
    const opening = (held.descriptor ??= callbackToPromise<number>((done) => fs.open(path, 'r', done)));
    let descriptor: number;
    try {
      descriptor = await opening;
    } catch (error) {
      if (held.descriptor === opening) held.descriptor = undefined;
      throw error;
    }
    await callbackToPromise<void>((done) => fs.fsync(descriptor, done));
  }

  holdDirectory(path: string): void {
    const held = this.heldDirectories.get(path);
    if (held !== undefined) held.holders++;
    else this.heldDirectories.set(path, { holders: 1, descriptor: undefined, syncs: new Set() });
  }

  async releaseDirectory(path: string): Promise<void> {
    const held = this.heldDirectories.get(path);
    if (held === undefined || --held.holders > 0) return;
    this.heldDirectories.delete(path);
    // Syncs started from now on open the directory themselves; those in flight keep the descriptor.
    while (held.syncs.size > 0) await Promise.allSettled([...held.syncs]);
    const descriptor = await held.descriptor?.catch(() => undefined);
    if (descriptor !== undefined) await callbackToPromise<void>((done) => fs.close(descriptor, done));
  }

  async readFile(path: string): Promise<Buffer> {
    const handle = await this.open(path, 'read');
    try {
      let content = Buffer.alloc(await handle.size());
      let filledBytes = 0;
      for (;;) {
        // The file may have grown since size(): keep reading until EOF.
        if (filledBytes === content.length) content = Buffer.concat([content, Buffer.alloc(Math.max(4096, content.length))]);
        const countBytes = await handle.read(content, filledBytes, content.length - filledBytes, filledBytes);
        if (countBytes === 0) return content.subarray(0, filledBytes);
        filledBytes += countBytes;
      }
    } finally {
      await handle.close();
    }
  }
}

/** True when a process with this pid exists; EPERM (it exists but belongs to another user) counts as alive. */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The start time of a process in clock ticks since boot (field 22 of /proc/<pid>/stat), as a string;
 * undefined where the platform has no /proc or the process is gone. Together with the pid it names
 * one process even after the pid is reused.
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Field 2 (the command name) is parenthesised and may hold spaces: split after its closing ')'.
    // What follows starts at field 3, so field 22 is at index 19.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}
