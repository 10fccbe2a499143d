/**
 * One writer per directory: the `LOCK` file.
 *
 * Invariants:
 * - A writable open creates `LOCK` exclusively, holding the owner's pid, the process start time
 *   and a random token. A second open (this process or another) finds it and fails with LOCKED.
 * - A lock is stale when its pid is not alive, when the pid now belongs to a process that started
 *   at another time (pid reuse), or when it names this process but no open store here holds its
 *   token (a store abandoned without close). A stale lock is taken over: renamed aside (only one
 *   taker can win the rename), checked to be the lock judged stale, then removed and re-created.
 * - Read-only opens take no lock and write nothing.
 */
import { randomBytes } from 'node:crypto';
import { ErrorCode, SiltError, toIoError } from '../errors.js';
import { processIsAlive, processStartTime } from '../fs/node-file-system.js';
import type { FileSystem } from '../fs/types.js';

export const LOCK_FILE_NAME = 'LOCK';

interface LockContents {
  pid: number;
  startTime: string | undefined;
  token: string;
}

/** Tokens of the locks held by stores open in this process, per file system. */
const heldTokens = new WeakMap<FileSystem, Set<string>>();

function tokensOf(fs: FileSystem): Set<string> {
  let tokens = heldTokens.get(fs);
  if (tokens === undefined) {
    tokens = new Set();
    heldTokens.set(fs, tokens);
  }
  return tokens;
}

function parse(bytes: Buffer): LockContents | undefined {
  try {
    const value = JSON.parse(bytes.toString('utf8')) as Partial<LockContents>;
    if (typeof value.pid !== 'number' || typeof value.token !== 'string') return undefined;
    return { pid: value.pid, startTime: typeof value.startTime === 'string' ? value.startTime : undefined, token: value.token };
  } catch {
    return undefined;
  }
}

function isLive(fs: FileSystem, lock: LockContents | undefined): boolean {
  // An unreadable lock file is what a crash while writing it leaves: stale.
  if (lock === undefined) return false;
  if (lock.pid === process.pid) return tokensOf(fs).has(lock.token);
  if (!processIsAlive(lock.pid)) return false;
  const startTime = processStartTime(lock.pid);
  return lock.startTime === undefined || startTime === undefined || startTime === lock.startTime;
}

export class DirectoryLock {
  private constructor(
    private readonly fs: FileSystem,
    private readonly path: string,
    private readonly token: string,
  ) {}

  static async acquire(fs: FileSystem, directory: string): Promise<DirectoryLock> {
    const path = `${directory}/${LOCK_FILE_NAME}`;
    const contents: LockContents = {
      pid: process.pid,
      startTime: processStartTime(process.pid),
      token: randomBytes(12).toString('hex'),
    };
    const bytes = Buffer.from(JSON.stringify(contents));
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const handle = await fs.open(path, 'create');
        try {
          await handle.write(bytes, 0, bytes.length, 0);
        } finally {
          await handle.close();
        }
        tokensOf(fs).add(contents.token);
        return new DirectoryLock(fs, path, contents.token);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw toIoError(error, `creating ${path}`);
      }
      let existing: Buffer;
      try {
        existing = await fs.readFile(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw toIoError(error, `reading ${path}`);
      }
      const owner = parse(existing);
      if (isLive(fs, owner)) {
        throw new SiltError(ErrorCode.LOCKED, `${directory} is locked by process ${owner?.pid ?? '?'}`);
      }
      const asidePath = `${path}.stale-${contents.token}`;
      try {
        await fs.rename(path, asidePath);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw toIoError(error, `renaming stale ${path}`);
      }
      const moved = await fs.readFile(asidePath);
      if (!moved.equals(existing)) {
        // Another opener replaced the stale lock between our read and our rename: it is theirs.
        await fs.rename(asidePath, path).catch(() => undefined);
        throw new SiltError(ErrorCode.LOCKED, `${directory} was locked by another opener`);
      }
      await fs.unlink(asidePath);
    }
    throw new SiltError(ErrorCode.LOCKED, `${directory}: could not take the lock`);
  }

  /** Remove the lock file; the directory may be opened again. */
  async release(): Promise<void> {
    tokensOf(this.fs).delete(this.token);
    await this.fs.unlink(this.path).catch(() => undefined);
  }

  /** Forget the lock without touching the disk (the store failed hard; the file is now stale). */
  forget(): void {
    tokensOf(this.fs).delete(this.token);
  }
}
