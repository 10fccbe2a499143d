/**
 * A file system wrapper that fails chosen calls: the N-th call of a kind (or every call from the
 * N-th on) fails with a chosen errno, as SQLite's I/O-error tests do.
 *
 * Invariants:
 * - Every call of the wrapped file system and of the handles it returns is counted by kind
 *   (`readSync` counts as 'read', `writeSync` as 'write', `openSync` and `readFile` as 'open').
 * - A failed call has no effect: a failed write writes nothing, a failed sync syncs nothing.
 * - Rules count from when they are added, among the calls they match (kind and path).
 */
import type { FileCallKind, FileHandle, FileStat, FileSystem, OpenMode } from './types.js';

export type FaultErrno = 'EIO' | 'ENOSPC' | 'EMFILE' | 'EACCES';

export interface FaultRule {
  kind: FileCallKind | 'any';
  /** 1-based: the n-th matching call fails. */
  n: number;
  errno: FaultErrno;
  /** 'once': only the n-th call; 'forever': the n-th and every later matching call. */
  mode: 'once' | 'forever';
  /** Only calls on paths containing this. */
  pathIncludes?: string;
}

const ERRNO_NUMBERS: Record<FaultErrno, number> = { EIO: -5, ENOSPC: -28, EMFILE: -24, EACCES: -13 };

interface ActiveRule extends FaultRule {
  seen: number;
}

class FaultFileHandle implements FileHandle {
  constructor(
    private readonly owner: FaultFileSystem,
    private readonly inner: FileHandle,
  ) {}

  get path(): string {
    return this.inner.path;
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.owner.run('read', this.path, () => this.inner.read(buffer, offset, length, position));
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.owner.check('read', this.path);
    return this.inner.readSync(buffer, offset, length, position);
  }

  write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    return this.owner.run('write', this.path, () => this.inner.write(buffer, offset, length, position));
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    this.owner.check('write', this.path);
    this.inner.writeSync(buffer, offset, length, position);
  }

  sync(): Promise<void> {
    return this.owner.run('sync', this.path, () => this.inner.sync());
  }

  datasync(): Promise<void> {
    return this.owner.run('datasync', this.path, () => this.inner.datasync());
  }

  truncate(sizeBytes: number): Promise<void> {
    return this.owner.run('truncate', this.path, () => this.inner.truncate(sizeBytes));
  }

  size(): Promise<number> {
    return this.owner.run('size', this.path, () => this.inner.size());
  }

  close(): Promise<void> {
    return this.owner.run('close', this.path, () => this.inner.close());
  }
}

export class FaultFileSystem implements FileSystem {
  private readonly counts = new Map<FileCallKind, number>();
  private rules: ActiveRule[] = [];
  /** Calls failed so far. */
  failures = 0;

  constructor(private readonly inner: FileSystem) {}

  /** Calls seen of a kind (all kinds when omitted). */
  calls(kind?: FileCallKind): number {
    if (kind !== undefined) return this.counts.get(kind) ?? 0;
    let total = 0;
    for (const count of this.counts.values()) total += count;
    return total;
  }

  failAt(rule: FaultRule): void {
    if (!Number.isInteger(rule.n) || rule.n < 1) throw new RangeError('n must be an integer >= 1');
    this.rules.push({ ...rule, seen: 0 });
  }

  clearFaults(): void {
    this.rules = [];
  }

  /** Count a call and throw if a rule says it fails. */
  check(kind: FileCallKind, path: string): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    for (const rule of this.rules) {
      if (rule.kind !== 'any' && rule.kind !== kind) continue;
      if (rule.pathIncludes !== undefined && !path.includes(rule.pathIncludes)) continue;
      rule.seen++;
      if (rule.seen === rule.n || (rule.mode === 'forever' && rule.seen > rule.n)) {
        this.failures++;
        const error = new Error(`${rule.errno}: injected fault, ${kind} '${path}'`) as NodeJS.ErrnoException;
        error.code = rule.errno;
        error.errno = ERRNO_NUMBERS[rule.errno];
        error.syscall = kind;
        error.path = path;
        throw error;
      }
    }
  }

  async run<T>(kind: FileCallKind, path: string, call: () => Promise<T>): Promise<T> {
    this.check(kind, path);
    return call();
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    return new FaultFileHandle(this, await this.run('open', path, () => this.inner.open(path, mode)));
  }

  openSync(path: string, mode: OpenMode): FileHandle {
    this.check('open', path);
    return new FaultFileHandle(this, this.inner.openSync(path, mode));
  }

  readdir(path: string): Promise<string[]> {
    return this.run('readdir', path, () => this.inner.readdir(path));
  }

  stat(path: string): Promise<FileStat> {
    return this.run('stat', path, () => this.inner.stat(path));
  }

  rename(from: string, to: string): Promise<void> {
    return this.run('rename', from, () => this.inner.rename(from, to));
  }

  unlink(path: string): Promise<void> {
    return this.run('unlink', path, () => this.inner.unlink(path));
  }

  mkdir(path: string): Promise<void> {
    return this.run('mkdir', path, () => this.inner.mkdir(path));
  }

  syncDirectory(path: string): Promise<void> {
    return this.run('syncDirectory', path, () => this.inner.syncDirectory(path));
  }

  readFile(path: string): Promise<Buffer> {
    return this.run('open', path, () => this.inner.readFile(path));
  }
}
