/**
 * An in-memory file system that simulates power loss (after LevelDB's fault_injection_test, Pebble's
 * CrashClone and SQLite's test6.c).
 *
 * Invariants:
 * - Each file (inode) keeps its durable content, as of its last `sync`/`datasync`, apart from its
 *   current content, plus the writes and truncates made since, in order.
 * - Each directory keeps its durable entry table, as of its last `syncDirectory`, apart from its
 *   current table: creating, renaming and unlinking change only the current table until then.
 * - Directories themselves (`mkdir`) are durable at once (a simplification: the engine creates
 *   its directories once and fsyncs their parent).
 * - `crash()` never changes `this`: it returns a new file system holding what a power loss at this
 *   instant leaves ('drop': only synced data; 'tear': synced data plus a seeded-random prefix of
 *   the unsynced operations, the last write possibly cut at any byte; 'keep': everything written,
 *   which is what a killed process, not a power loss, leaves).
 */
import { posix } from 'node:path';
import type { FileHandle, FileStat, FileSystem, OpenMode } from './types.js';

type PendingOperation = { kind: 'write'; position: number; bytes: Buffer } | { kind: 'truncate'; sizeBytes: number };

class Inode {
  content: Buffer<ArrayBufferLike>;
  durable: Buffer<ArrayBufferLike>;
  pending: PendingOperation[] = [];
  mtimeMs = Date.now();

  constructor(content: Buffer<ArrayBufferLike> = Buffer.alloc(0), durable: Buffer<ArrayBufferLike> = Buffer.alloc(0)) {
    this.content = content;
    this.durable = durable;
  }

  write(bytes: Buffer, position: number): void {
    const end = position + bytes.length;
    if (end > this.content.length) {
      const grown = Buffer.alloc(end);
      this.content.copy(grown);
      this.content = grown;
    }
    bytes.copy(this.content, position);
    this.pending.push({ kind: 'write', position, bytes: Buffer.from(bytes) });
    this.mtimeMs = Date.now();
  }

  truncate(sizeBytes: number): void {
    const resized = Buffer.alloc(sizeBytes);
    this.content.copy(resized, 0, 0, Math.min(sizeBytes, this.content.length));
    this.content = resized;
    this.pending.push({ kind: 'truncate', sizeBytes });
    this.mtimeMs = Date.now();
  }

  sync(): void {
    this.durable = Buffer.from(this.content);
    this.pending = [];
  }

  /** The content after a power loss. */
  afterCrash(mode: 'drop' | 'keep' | 'tear', next: () => number): Buffer<ArrayBufferLike> {
    if (mode === 'keep') return Buffer.from(this.content);
    if (mode === 'drop' || this.pending.length === 0) return Buffer.from(this.durable);
    const replayed = new Inode(Buffer.from(this.durable));
    const count = Math.floor(next() * (this.pending.length + 1));
    for (let index = 0; index < count; index++) {
      const operation = this.pending[index] as PendingOperation;
      if (operation.kind === 'truncate') {
        replayed.truncate(operation.sizeBytes);
        continue;
      }
      const isLast = index === count - 1;
      const bytes = isLast ? operation.bytes.subarray(0, Math.floor(next() * (operation.bytes.length + 1))) : operation.bytes;
      replayed.write(bytes, operation.position);
    }
    return replayed.content;
  }
}

class Directory {
  current = new Map<string, Inode>();
  durable = new Map<string, Inode>();
}

function errno(code: string, syscall: string, path: string): NodeJS.ErrnoException {
  const error = new Error(`${code}: ${syscall} '${path}'`) as NodeJS.ErrnoException;
  error.code = code;
  error.syscall = syscall;
  error.path = path;
  return error;
}

function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

class CrashFileHandle implements FileHandle {
  private closed = false;

  constructor(
    private readonly owner: CrashFileSystem,
    readonly path: string,
    private readonly inode: Inode,
  ) {}

  private check(syscall: string): void {
    if (this.closed) throw errno('EBADF', syscall, this.path);
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.check('read');
    const available = Math.max(0, Math.min(length, this.inode.content.length - position));
    this.inode.content.copy(buffer, offset, position, position + available);
    return available;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.readSync(buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    this.check('write');
    this.owner.noteOperation('write', this.path);
    this.inode.write(Buffer.from(buffer.buffer, buffer.byteOffset + offset, length), position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    this.writeSync(buffer, offset, length, position);
  }

  async sync(): Promise<void> {
    this.check('fsync');
    this.inode.sync();
    this.owner.noteSync('sync', this.path);
  }

  async datasync(): Promise<void> {
    this.check('fdatasync');
    this.inode.sync();
    this.owner.noteSync('datasync', this.path);
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.check('ftruncate');
    this.owner.noteOperation('truncate', this.path);
    this.inode.truncate(sizeBytes);
  }

  async size(): Promise<number> {
    this.check('fstat');
    return this.inode.content.length;
  }

  async close(): Promise<void> {
    this.check('close');
    this.closed = true;
  }
}

/** An in-memory file system that can produce the state a power loss would leave. */
export class CrashFileSystem implements FileSystem {
  private readonly directories = new Map<string, Directory>();
  /** Calls of sync, datasync and syncDirectory so far. */
  syncCount = 0;
  /** Mutating operations so far (write, truncate, create, rename, unlink). */
  operationCount = 0;
  /** Called after each sync takes effect (so `crash()` inside it captures the state at that point). */
  onSync: ((kind: 'sync' | 'datasync' | 'syncDirectory', path: string) => void) | undefined;
  /** Called before each mutating operation. */
  onOperation: ((kind: string, path: string) => void) | undefined;

  constructor() {
    this.directories.set('/', new Directory());
  }

  noteSync(kind: 'sync' | 'datasync' | 'syncDirectory', path: string): void {
    this.syncCount++;
    this.onSync?.(kind, path);
  }

  noteOperation(kind: string, path: string): void {
    this.operationCount++;
    this.onOperation?.(kind, path);
  }

  private split(path: string): { parent: Directory; name: string; normalized: string } {
    const normalized = posix.resolve('/', path);
    const parentPath = posix.dirname(normalized);
    const parent = this.directories.get(parentPath);
    if (parent === undefined) throw errno('ENOENT', 'open', path);
    return { parent, name: posix.basename(normalized), normalized };
  }

  openSync(path: string, mode: OpenMode): FileHandle {
    const { parent, name, normalized } = this.split(path);
    if (this.directories.has(normalized)) throw errno('EISDIR', 'open', path);
    let inode = parent.current.get(name);
    if (mode === 'create' && inode !== undefined) throw errno('EEXIST', 'open', path);
    if ((mode === 'read' || mode === 'readwrite') && inode === undefined) throw errno('ENOENT', 'open', path);
    if (inode === undefined) {
      this.noteOperation('create', path);
      inode = new Inode();
      parent.current.set(name, inode);
    } else if (mode === 'overwrite') {
      this.noteOperation('truncate', path);
      inode.truncate(0);
    }
    return new CrashFileHandle(this, normalized, inode);
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    return this.openSync(path, mode);
  }

  async readdir(path: string): Promise<string[]> {
    const directory = this.directories.get(posix.resolve('/', path));
    if (directory === undefined) throw errno('ENOENT', 'scandir', path);
    const normalized = posix.resolve('/', path);
    const subdirectories = [...this.directories.keys()].filter((candidate) => candidate !== '/' && posix.dirname(candidate) === normalized);
    return [...directory.current.keys(), ...subdirectories.map((candidate) => posix.basename(candidate))];
  }

  async stat(path: string): Promise<FileStat> {
    const normalized = posix.resolve('/', path);
    if (this.directories.has(normalized)) return { sizeBytes: 0, isFile: false, isDirectory: true, mtimeMs: 0 };
    const { parent, name } = this.split(path);
    const inode = parent.current.get(name);
    if (inode === undefined) throw errno('ENOENT', 'stat', path);
    return { sizeBytes: inode.content.length, isFile: true, isDirectory: false, mtimeMs: inode.mtimeMs };
  }

  async rename(from: string, to: string): Promise<void> {
    const source = this.split(from);
    const target = this.split(to);
    const inode = source.parent.current.get(source.name);
    if (inode === undefined) throw errno('ENOENT', 'rename', from);
    this.noteOperation('rename', from);
    source.parent.current.delete(source.name);
    target.parent.current.set(target.name, inode);
  }

  async unlink(path: string): Promise<void> {
    const { parent, name } = this.split(path);
    if (!parent.current.has(name)) throw errno('ENOENT', 'unlink', path);
    this.noteOperation('unlink', path);
    parent.current.delete(name);
  }

  async mkdir(path: string): Promise<void> {
    let current = '/';
    for (const part of posix.resolve('/', path).split('/').filter(Boolean)) {
      current = posix.join(current, part);
      if (!this.directories.has(current)) this.directories.set(current, new Directory());
    }
  }

  async syncDirectory(path: string): Promise<void> {
    const directory = this.directories.get(posix.resolve('/', path));
    if (directory === undefined) throw errno('ENOENT', 'fsync', path);
    directory.durable = new Map(directory.current);
    this.noteSync('syncDirectory', path);
  }

  async readFile(path: string): Promise<Buffer> {
    const handle = this.openSync(path, 'read');
    const bytes = Buffer.alloc(await handle.size());
    handle.readSync(bytes, 0, bytes.length, 0);
    await handle.close();
    return bytes;
  }

  /** The state a power loss at this instant leaves, as a new file system. */
  crash(options?: { unsynced?: 'drop' | 'keep' | 'tear'; seed?: number }): CrashFileSystem {
    const mode = options?.unsynced ?? 'drop';
    const next = mulberry32(options?.seed ?? 1);
    const result = new CrashFileSystem();
    const copies = new Map<Inode, Inode>();
    for (const [path, directory] of this.directories) {
      const copy = new Directory();
      // A killed process loses nothing the kernel has; a power loss loses unsynced names.
      const entries = mode === 'keep' ? directory.current : directory.durable;
      for (const [name, inode] of entries) {
        let survivor = copies.get(inode);
        if (survivor === undefined) {
          const content = inode.afterCrash(mode, next);
          survivor = new Inode(content, Buffer.from(content));
          copies.set(inode, survivor);
        }
        copy.current.set(name, survivor);
        copy.durable.set(name, survivor);
      }
      result.directories.set(path, copy);
    }
    return result;
  }

  /** Current contents of every file, by path. */
  dump(): Map<string, Buffer> {
    const files = new Map<string, Buffer>();
    for (const [path, directory] of this.directories) {
      for (const [name, inode] of directory.current) files.set(posix.join(path, name), Buffer.from(inode.content));
    }
    return files;
  }

  totalBytes(): number {
    let total = 0;
    for (const directory of this.directories.values()) for (const inode of directory.current.values()) total += inode.content.length;
    return total;
  }
}
