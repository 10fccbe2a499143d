/**
 * An in-memory file system that simulates power loss (after LevelDB's fault_injection_test, Pebble's
 * CrashClone and SQLite's test6.c).
 *
 * Owns: `CrashFileSystem` (inodes, directories, handles) and the crash model.
 *
 * Invariants:
 * - Each file (inode) keeps its durable content, as of its last `sync`/`datasync`, apart from its
 *   current content, plus the writes and truncates made since, in order.
 * - Each directory keeps its durable entry table (name -> inode, as of its last `syncDirectory`) apart
 *   from its current table: creating, renaming and unlinking a file change only the current table.
 *   A rename across directories needs both directories synced to be whole.
 * - Directories themselves (`mkdir`) are durable at once and cannot be renamed or removed (a
 *   simplification: the engine creates its directories once).
 * - I/O is POSIX positional I/O: writing past the end zero-fills the gap, reading at or past EOF
 *   returns 0, truncate shrinks or zero-extends (sparsely: a hole costs no memory, as on ext4).
 *   A handle keeps its inode alive after unlink.
 * - `crash()` never changes `this`: it returns a new file system holding what a power loss at this
 *   instant leaves. Names revert to the durable tables and contents are, per `unsynced`:
 *   'drop' - the durable content only;
 *   'tear' - the durable content plus a seeded-random prefix of the unsynced operations replayed in
 *            order, the last replayed write possibly cut at any byte;
 *   'keep' - everything, names included: what a killed process (not a power loss) leaves.
 * - Paths are normalized with posix semantics against '/'. Errors are Node-style errno errors.
 */
import { posix } from 'node:path';
import type { FileHandle, FileStat, FileSystem, OpenMode, OpenOptions } from './types.js';

/** What survives of operations not yet synced when `crash()` is called. */
export type UnsyncedMode = 'drop' | 'keep' | 'tear';

/** Options of `CrashFileSystem.crash`. */
export interface CrashOptions {
  /** Default 'drop'. */
  unsynced?: UnsyncedMode;
  /** Seed of the PRNG that picks torn prefixes (only 'tear' uses it). Default 1. */
  seed?: number;
}

/** The calls that make something durable. */
export type SyncKind = 'sync' | 'datasync' | 'syncDirectory';

/** The mutating operations counted by `operationCount` ('create' is an open that creates a file). */
export type OperationKind = 'write' | 'truncate' | 'create' | 'rename' | 'unlink';

type PendingOperation = { kind: 'write'; positionBytes: number; bytes: Buffer } | { kind: 'truncate'; sizeBytes: number };

const ERRNO_DETAILS = {
  ENOENT: { errno: -2, description: 'no such file or directory' },
  EBADF: { errno: -9, description: 'bad file descriptor' },
  EEXIST: { errno: -17, description: 'file already exists' },
  ENOTDIR: { errno: -20, description: 'not a directory' },
  EISDIR: { errno: -21, description: 'illegal operation on a directory' },
  EINVAL: { errno: -22, description: 'invalid argument' },
  ENOTSUP: { errno: -95, description: 'operation not supported by CrashFileSystem' },
} satisfies Record<string, { errno: number; description: string }>;

function errnoError(code: keyof typeof ERRNO_DETAILS, syscall: string, path: string): NodeJS.ErrnoException {
  const { errno, description } = ERRNO_DETAILS[code];
  const error: NodeJS.ErrnoException = new Error(`${code}: ${description}, ${syscall} '${path}'`);
  error.code = code;
  error.errno = errno;
  error.syscall = syscall;
  error.path = path;
  return error;
}

/**
 * mulberry32: a small deterministic PRNG returning floats in [0, 1). Exported for the tests'
 * seeded workloads (test/helpers.ts), so that there is one copy in TypeScript.
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A file's bytes: `bytes`, then zeros up to `sizeBytes` (a file extended by truncate is sparse
 * here, so preallocated files cost no memory and no copying per sync).
 */
interface Extent {
  bytes: Buffer;
  sizeBytes: number;
}

class Inode {
  /** Capacity-managed storage of the materialized bytes; storage past `dataBytes` is always zero. */
  private storage: Buffer;
  /** Bytes materialized in `storage`; those from here to `sizeBytes` are zeros (a hole). */
  private dataBytes: number;
  sizeBytes: number;
  durable: Extent;
  pending: PendingOperation[] = [];
  mtimeMs = Date.now();

  constructor(content: Extent = { bytes: Buffer.alloc(0), sizeBytes: 0 }) {
    this.storage = Buffer.from(content.bytes);
    this.dataBytes = content.bytes.length;
    this.sizeBytes = content.sizeBytes;
    this.durable = { bytes: Buffer.from(content.bytes), sizeBytes: content.sizeBytes };
  }

  /** The current content, holes filled with zeros (a copy when there is a hole, else a view). */
  get content(): Buffer {
    if (this.dataBytes === this.sizeBytes) return this.storage.subarray(0, this.sizeBytes);
    const whole = Buffer.alloc(this.sizeBytes);
    this.storage.copy(whole, 0, 0, this.dataBytes);
    return whole;
  }

  /** Copy `length` bytes at `position` into `target` (zeros for the hole); returns the count. */
  read(target: Uint8Array, offset: number, length: number, position: number): number {
    const countBytes = Math.max(0, Math.min(length, this.sizeBytes - position));
    if (countBytes === 0) return 0;
    const materialized = Math.max(0, Math.min(countBytes, this.dataBytes - position));
    if (materialized > 0) target.set(this.storage.subarray(position, position + materialized), offset);
    if (materialized < countBytes) target.fill(0, offset + materialized, offset + countBytes);
    return countBytes;
  }

  write(bytes: Buffer, positionBytes: number): void {
    this.pending.push({ kind: 'write', positionBytes, bytes: Buffer.from(bytes) });
    this.applyWrite(bytes, positionBytes);
  }

  truncate(sizeBytes: number): void {
    this.pending.push({ kind: 'truncate', sizeBytes });
    this.applyTruncate(sizeBytes);
  }

  sync(): void {
    this.durable = this.extent();
    this.pending = [];
  }

  /** The content a crash leaves, per `mode`; `random` is consumed only when there is something to tear. */
  afterCrash(mode: UnsyncedMode, random: () => number): Extent {
    if (mode === 'keep') return this.extent();
    if (mode === 'drop' || this.pending.length === 0) return this.durable;
    const replayed = new Inode(this.durable);
    const replayCount = Math.floor(random() * (this.pending.length + 1));
    for (const [index, operation] of this.pending.slice(0, replayCount).entries()) {
      if (operation.kind === 'truncate') {
        replayed.applyTruncate(operation.sizeBytes);
        continue;
      }
      const isLast = index === replayCount - 1;
      const keptBytes = isLast ? Math.floor(random() * (operation.bytes.length + 1)) : operation.bytes.length;
      replayed.applyWrite(operation.bytes.subarray(0, keptBytes), operation.positionBytes);
    }
    return replayed.extent();
  }

  /** A copy of the current content in sparse form. */
  private extent(): Extent {
    return { bytes: Buffer.from(this.storage.subarray(0, this.dataBytes)), sizeBytes: this.sizeBytes };
  }

  private applyWrite(bytes: Uint8Array, positionBytes: number): void {
    this.mtimeMs = Date.now();
    // A zero-length write does not extend the file (POSIX pwrite).
    if (bytes.length === 0) return;
    const endBytes = positionBytes + bytes.length;
    this.reserve(endBytes);
    this.storage.set(bytes, positionBytes);
    this.dataBytes = Math.max(this.dataBytes, endBytes);
    this.sizeBytes = Math.max(this.sizeBytes, endBytes);
  }

  private applyTruncate(sizeBytes: number): void {
    this.mtimeMs = Date.now();
    // Shrinking drops materialized bytes (the storage past `dataBytes` stays zero); growing
    // only moves the size: the new bytes are a hole.
    if (sizeBytes < this.dataBytes) {
      this.storage.fill(0, sizeBytes, this.dataBytes);
      this.dataBytes = sizeBytes;
    }
    this.sizeBytes = sizeBytes;
  }

  /** Grow the storage (doubling, so appends are amortized O(1)); the new bytes are zero. */
  private reserve(capacityBytes: number): void {
    if (capacityBytes <= this.storage.length) return;
    const grown = Buffer.alloc(Math.max(capacityBytes, this.storage.length * 2));
    this.storage.copy(grown, 0, 0, this.dataBytes);
    this.storage = grown;
  }
}

class Directory {
  current = new Map<string, Inode>();
  durable = new Map<string, Inode>();
}

class CrashFileHandle implements FileHandle {
  private closed = false;

  constructor(
    private readonly owner: CrashFileSystem,
    readonly path: string,
    private readonly inode: Inode,
    private readonly writable: boolean,
  ) {}

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.readSync(buffer, offset, length, position);
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.checkOpen('read');
    return this.inode.read(buffer, offset, length, position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    this.writeSync(buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    this.checkWritable('write');
    if (offset < 0 || length < 0 || offset + length > buffer.length || position < 0) throw errnoError('EINVAL', 'write', this.path);
    this.owner.noteOperation('write', this.path);
    this.inode.write(Buffer.from(buffer.buffer, buffer.byteOffset + offset, length), position);
  }

  async sync(): Promise<void> {
    this.checkOpen('fsync');
    this.inode.sync();
    this.owner.noteSync('sync', this.path);
  }

  async datasync(): Promise<void> {
    this.syncData();
  }

  datasyncSync(): void {
    this.syncData();
  }

  private syncData(): void {
    this.checkOpen('fdatasync');
    this.inode.sync();
    this.owner.noteSync('datasync', this.path);
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.checkWritable('ftruncate');
    if (!Number.isInteger(sizeBytes) || sizeBytes < 0) throw errnoError('EINVAL', 'ftruncate', this.path);
    this.owner.noteOperation('truncate', this.path);
    this.inode.truncate(sizeBytes);
  }

  async size(): Promise<number> {
    this.checkOpen('fstat');
    return this.inode.sizeBytes;
  }

  async close(): Promise<void> {
    this.closeSync();
  }

  closeSync(): void {
    this.checkOpen('close');
    this.closed = true;
  }

  private checkOpen(syscall: string): void {
    if (this.closed) throw errnoError('EBADF', syscall, this.path);
  }

  private checkWritable(syscall: string): void {
    this.checkOpen(syscall);
    if (!this.writable) throw errnoError('EBADF', syscall, this.path);
  }
}

/** An in-memory file system that can produce, at any instant, the state a power loss would leave. */
export class CrashFileSystem implements FileSystem {
  /** Directories by normalized path; '/' always exists. */
  private readonly directories = new Map<string, Directory>([['/', new Directory()]]);
  /** Calls of sync, datasync and syncDirectory so far. */
  syncCount = 0;
  /** Mutating operations so far: write, truncate, rename, unlink, and opens that create a file. */
  operationCount = 0;
  /** Called after each sync, datasync or syncDirectory takes effect (so `crash()` in it captures the state right after). */
  onSync: ((kind: SyncKind, path: string) => void) | undefined;
  /** Called before each mutating operation takes effect (so `crash()` in it captures the state right before). */
  onOperation: ((kind: OperationKind, path: string) => void) | undefined;

  /** @internal Used by handles: counts a sync and calls `onSync`. */
  noteSync(kind: SyncKind, path: string): void {
    this.syncCount++;
    this.onSync?.(kind, path);
  }

  /** @internal Used by handles: counts a mutating operation and calls `onOperation`. */
  noteOperation(kind: OperationKind, path: string): void {
    this.operationCount++;
    this.onOperation?.(kind, path);
  }

  openSync(path: string, mode: OpenMode): FileHandle {
    const { parent, name, normalized } = this.locate(path, 'open');
    if (this.directories.has(normalized)) throw errnoError('EISDIR', 'open', path);
    let inode = parent.current.get(name);
    if (mode === 'create' && inode !== undefined) throw errnoError('EEXIST', 'open', path);
    if ((mode === 'read' || mode === 'readwrite') && inode === undefined) throw errnoError('ENOENT', 'open', path);
    if (inode === undefined) {
      this.noteOperation('create', normalized);
      inode = new Inode();
      parent.current.set(name, inode);
    } else if (mode === 'overwrite') {
      this.noteOperation('truncate', normalized);
      inode.truncate(0);
    }
    return new CrashFileHandle(this, normalized, inode, mode !== 'read');
  }

  /** `options.direct` is accepted and ignored: writes are kept as unsynced either way (`direct` stays false). */
  async open(path: string, mode: OpenMode, _options?: OpenOptions): Promise<FileHandle> {
    return this.openSync(path, mode);
  }

  async readdir(path: string): Promise<string[]> {
    return this.readdirSync(path);
  }

  readdirSync(path: string): string[] {
    const normalized = normalize(path);
    const directory = this.directories.get(normalized);
    if (directory === undefined) throw errnoError(this.isFile(normalized) ? 'ENOTDIR' : 'ENOENT', 'scandir', path);
    const subdirectories = [...this.directories.keys()].filter((candidate) => candidate !== '/' && posix.dirname(candidate) === normalized);
    return [...directory.current.keys(), ...subdirectories.map((candidate) => posix.basename(candidate))];
  }

  async stat(path: string): Promise<FileStat> {
    const normalized = normalize(path);
    if (this.directories.has(normalized)) return { sizeBytes: 0, isFile: false, isDirectory: true, mtimeMs: 0 };
    const { parent, name } = this.locate(path, 'stat');
    const inode = parent.current.get(name);
    if (inode === undefined) throw errnoError('ENOENT', 'stat', path);
    return { sizeBytes: inode.sizeBytes, isFile: true, isDirectory: false, mtimeMs: inode.mtimeMs };
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.locate(from, 'rename');
    const target = this.locate(to, 'rename');
    if (this.directories.has(source.normalized)) throw errnoError('ENOTSUP', 'rename', from);
    if (this.directories.has(target.normalized)) throw errnoError('EISDIR', 'rename', to);
    const inode = source.parent.current.get(source.name);
    if (inode === undefined) throw errnoError('ENOENT', 'rename', from);
    this.noteOperation('rename', source.normalized);
    source.parent.current.delete(source.name);
    target.parent.current.set(target.name, inode);
  }

  async unlink(path: string): Promise<void> {
    const { parent, name, normalized } = this.locate(path, 'unlink');
    if (this.directories.has(normalized)) throw errnoError('EISDIR', 'unlink', path);
    if (!parent.current.has(name)) throw errnoError('ENOENT', 'unlink', path);
    this.noteOperation('unlink', normalized);
    parent.current.delete(name);
  }

  async mkdir(path: string): Promise<void> {
    let current = '/';
    for (const part of normalize(path).split('/').filter(Boolean)) {
      current = posix.join(current, part);
      if (this.directories.has(current)) continue;
      if (this.isFile(current)) throw errnoError(current === normalize(path) ? 'EEXIST' : 'ENOTDIR', 'mkdir', path);
      this.directories.set(current, new Directory());
    }
  }

  async syncDirectory(path: string): Promise<void> {
    const directory = this.directories.get(normalize(path));
    if (directory === undefined) throw errnoError('ENOENT', 'fsync', path);
    directory.durable = new Map(directory.current);
    this.noteSync('syncDirectory', path);
  }

  async readFile(path: string): Promise<Buffer> {
    const handle = this.openSync(path, 'read');
    const content = Buffer.alloc(await handle.size());
    handle.readSync(content, 0, content.length, 0);
    await handle.close();
    return content;
  }

  /**
   * The state a power loss at this instant leaves, as a new file system with no open handles;
   * `this` is not changed. See the file header for what each `unsynced` mode keeps.
   */
  crash(options: CrashOptions = {}): CrashFileSystem {
    const mode = options.unsynced ?? 'drop';
    const random = mulberry32(options.seed ?? 1);
    const result = new CrashFileSystem();
    const survivors = new Map<Inode, Inode>();
    for (const [path, directory] of this.directories) {
      const copy = new Directory();
      for (const [name, inode] of mode === 'keep' ? directory.current : directory.durable) {
        let survivor = survivors.get(inode);
        if (survivor === undefined) {
          survivor = new Inode(inode.afterCrash(mode, random));
          survivors.set(inode, survivor);
        }
        copy.current.set(name, survivor);
      }
      copy.durable = new Map(copy.current);
      result.directories.set(path, copy);
    }
    return result;
  }

  /** Current contents of every file, by normalized path (copies). */
  dump(): Map<string, Buffer> {
    const files = new Map<string, Buffer>();
    for (const [path, directory] of this.directories) {
      for (const [name, inode] of directory.current) files.set(posix.join(path, name), Buffer.from(inode.content));
    }
    return files;
  }

  /** Sum of the current sizes of every file reachable by name. */
  totalBytes(): number {
    let totalBytes = 0;
    for (const directory of this.directories.values()) for (const inode of directory.current.values()) totalBytes += inode.sizeBytes;
    return totalBytes;
  }

  private locate(path: string, syscall: string): { parent: Directory; name: string; normalized: string } {
    const normalized = normalize(path);
    const parent = this.directories.get(posix.dirname(normalized));
    if (parent === undefined) throw errnoError('ENOENT', syscall, path);
    return { parent, name: posix.basename(normalized), normalized };
  }

  private isFile(normalized: string): boolean {
    return this.directories.get(posix.dirname(normalized))?.current.has(posix.basename(normalized)) ?? false;
  }
}

function normalize(path: string): string {
  return posix.resolve('/', path);
}
