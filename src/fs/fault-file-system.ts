/**
 * A file system wrapper that counts calls and fails chosen ones: the n-th call of a kind (or every
 * call from the n-th on) fails with a chosen errno, as SQLite's I/O-error tests do.
 *
 * Owns: `FaultFileSystem` and the handles it wraps; `FaultRule`, `FaultErrno`.
 *
 * Invariants:
 * - Every call of the wrapped file system and of the handles it returns is counted by kind, failed
 *   or not: `readSync` counts as 'read', `writeSync` as 'write', `datasyncSync` as 'datasync',
 *   `openSync` as 'open', and `readFile` as one 'open' followed by one 'read' (whatever reads the
 *   wrapped `readFile` makes).
 * - A failed call is decided before the wrapped call is made, so it has no effect: a failed write
 *   writes nothing, a failed sync leaves the data written but not synced, a failed rename renames
 *   nothing. The one exception is `close`: as on Linux, the handle is released even when close fails.
 * - A rule counts from when it is added, among the calls it matches (kind, and `pathIncludes` against
 *   the path, or either path of a rename). Every active rule sees every call; the first that fires
 *   decides the errno.
 * - Async methods reject; sync methods throw. The error is a Node-style errno error.
 */
import type { FileCallKind, FileHandle, FileStat, FileSystem, OpenMode, OpenOptions } from './types.js';

/** The errnos a fault can carry. */
export type FaultErrno = 'EIO' | 'ENOSPC' | 'EMFILE' | 'EACCES';

/** Which calls fail. */
export interface FaultRule {
  /** The kind of call the rule counts, or 'any' for every call. */
  kind: FileCallKind | 'any';
  /** 1-based: the n-th matching call, counted from when the rule is added, fails. */
  n: number;
  errno: FaultErrno;
  /** 'once': only the n-th matching call fails; 'forever': the n-th and every later one. */
  mode: 'once' | 'forever';
  /** Only calls whose path contains this string match. */
  pathIncludes?: string;
}

const ERRNO_DETAILS: Record<FaultErrno, { errno: number; description: string }> = {
  EIO: { errno: -5, description: 'i/o error' },
  ENOSPC: { errno: -28, description: 'no space left on device' },
  EMFILE: { errno: -24, description: 'too many open files' },
  EACCES: { errno: -13, description: 'permission denied' },
};

interface ActiveRule extends FaultRule {
  matchedCalls: number;
}

/** Counts one call and throws the injected error if a rule fires. */
type CallCheck = (kind: FileCallKind, path: string, destination?: string) => void;

function faultError(errno: FaultErrno, kind: FileCallKind, path: string, destination: string | undefined): NodeJS.ErrnoException {
  const { errno: number, description } = ERRNO_DETAILS[errno];
  const target = destination === undefined ? `'${path}'` : `'${path}' -> '${destination}'`;
  const error: NodeJS.ErrnoException = new Error(`${errno}: ${description} (injected), ${kind} ${target}`);
  error.code = errno;
  error.errno = number;
  error.syscall = kind;
  error.path = path;
  if (destination !== undefined) (error as NodeJS.ErrnoException & { dest: string }).dest = destination;
  return error;
}

class FaultFileHandle implements FileHandle {
  /** Present when the wrapped handle has it. */
  readonly datasyncSync?: () => void;

  constructor(
    private readonly inner: FileHandle,
    private readonly check: CallCheck,
  ) {
    const datasyncSync = inner.datasyncSync?.bind(inner);
    if (datasyncSync !== undefined) {
      this.datasyncSync = () => {
        this.check('datasync', this.path);
        datasyncSync();
      };
    }
  }

  get direct(): boolean | undefined {
    return this.inner.direct;
  }

  get path(): string {
    return this.inner.path;
  }

  async read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    this.check('read', this.path);
    return this.inner.read(buffer, offset, length, position);
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    this.check('read', this.path);
    return this.inner.readSync(buffer, offset, length, position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    this.check('write', this.path);
    return this.inner.write(buffer, offset, length, position);
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    this.check('write', this.path);
    this.inner.writeSync(buffer, offset, length, position);
  }

  async sync(): Promise<void> {
    this.check('sync', this.path);
    return this.inner.sync();
  }

  async datasync(): Promise<void> {
    this.check('datasync', this.path);
    return this.inner.datasync();
  }

  async truncate(sizeBytes: number): Promise<void> {
    this.check('truncate', this.path);
    return this.inner.truncate(sizeBytes);
  }

  async size(): Promise<number> {
    this.check('size', this.path);
    return this.inner.size();
  }

  async close(): Promise<void> {
    try {
      this.check('close', this.path);
    } catch (error) {
      await this.inner.close().catch(() => undefined);
      throw error;
    }
    return this.inner.close();
  }

  closeSync(): void {
    try {
      this.check('close', this.path);
    } catch (error) {
      try {
        this.inner.closeSync();
      } catch {
        // The injected error is the one reported.
      }
      throw error;
    }
    this.inner.closeSync();
  }
}

/** Wraps a file system (and every handle it opens), counting calls by kind and failing those the rules name. */
export class FaultFileSystem implements FileSystem {
  private readonly callCounts = new Map<FileCallKind, number>();
  private rules: ActiveRule[] = [];
  private failedCalls = 0;
  private readonly check: CallCheck = (kind, path, destination) => this.countAndCheck(kind, path, destination);

  constructor(private readonly inner: FileSystem) {}

  /** Calls seen so far of one kind, or of all kinds when `kind` is omitted (failed calls included). */
  calls(kind?: FileCallKind): number {
    if (kind !== undefined) return this.callCounts.get(kind) ?? 0;
    let total = 0;
    for (const count of this.callCounts.values()) total += count;
    return total;
  }

  /** How many calls have been failed so far. */
  get failures(): number {
    return this.failedCalls;
  }

  /** Add a rule; several may be active at once. Throws RangeError unless `n` is an integer >= 1. */
  failAt(rule: FaultRule): void {
    if (!Number.isInteger(rule.n) || rule.n < 1) throw new RangeError(`n must be an integer >= 1, got ${rule.n}`);
    this.rules.push({ ...rule, matchedCalls: 0 });
  }

  /** Remove every rule (counts of calls and failures are kept). */
  clearFaults(): void {
    this.rules = [];
  }

  private countAndCheck(kind: FileCallKind, path: string, destination?: string): void {
    this.callCounts.set(kind, (this.callCounts.get(kind) ?? 0) + 1);
    let fired: ActiveRule | undefined;
    for (const rule of this.rules) {
      if (rule.kind !== 'any' && rule.kind !== kind) continue;
      const pathIncludes = rule.pathIncludes;
      if (pathIncludes !== undefined && !path.includes(pathIncludes) && !(destination?.includes(pathIncludes) ?? false)) continue;
      rule.matchedCalls++;
      const fires = rule.matchedCalls === rule.n || (rule.mode === 'forever' && rule.matchedCalls > rule.n);
      if (fires && fired === undefined) fired = rule;
    }
    if (fired === undefined) return;
    this.failedCalls++;
    throw faultError(fired.errno, kind, path, destination);
  }

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
    this.check('open', path);
    return new FaultFileHandle(await this.inner.open(path, mode, options), this.check);
  }

  openSync(path: string, mode: OpenMode): FileHandle {
    this.check('open', path);
    return new FaultFileHandle(this.inner.openSync(path, mode), this.check);
  }

  async readdir(path: string): Promise<string[]> {
    this.check('readdir', path);
    return this.inner.readdir(path);
  }

  readdirSync(path: string): string[] {
    this.check('readdir', path);
    if (this.inner.readdirSync === undefined) throw new Error('the inner file system has no readdirSync');
    return this.inner.readdirSync(path);
  }

  async stat(path: string): Promise<FileStat> {
    this.check('stat', path);
    return this.inner.stat(path);
  }

  async rename(from: string, to: string): Promise<void> {
    this.check('rename', from, to);
    return this.inner.rename(from, to);
  }

  async unlink(path: string): Promise<void> {
    this.check('unlink', path);
    return this.inner.unlink(path);
  }

  async mkdir(path: string): Promise<void> {
    this.check('mkdir', path);
    return this.inner.mkdir(path);
  }

  async syncDirectory(path: string): Promise<void> {
    this.check('syncDirectory', path);
    return this.inner.syncDirectory(path);
  }

  // Holding a directory is no call of its own: its open is part of the first `syncDirectory`.
  holdDirectory(path: string): void {
    this.inner.holdDirectory?.(path);
  }

  async releaseDirectory(path: string): Promise<void> {
    await this.inner.releaseDirectory?.(path);
  }

  async readFile(path: string): Promise<Buffer> {
    this.check('open', path);
    this.check('read', path);
    return this.inner.readFile(path);
  }
}
