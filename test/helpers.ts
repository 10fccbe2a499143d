/**
 * Shared test helpers: temporary directories, seeded randomness, collecting iterators.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { OpenOptions as FileOpenOptions } from '../src/fs/types.js';
import { NodeFileSystem, type FileHandle, type OpenMode, type Store } from '../src/index.js';

export function temporaryDirectory(t: TestContext, prefix = 'silt-test-'): string {
  const directory = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  return directory;
}

/** A small deterministic PRNG (mulberry32; the crash file system's, for one copy). */
import { mulberry32 as random } from '../src/fs/crash-file-system.js';

export { random };

/** `length` deterministic pseudo-random bytes from `seed` (incompressible, reproducible). */
export function seededBytes(seed: number, length: number): Buffer {
  const next = random(seed);
  const result = Buffer.allocUnsafe(length);
  for (let index = 0; index < length; index++) result[index] = Math.floor(next() * 256);
  return result;
}

/** The seed for a seeded test: $SEED when set (to replay), else a fresh one; printed either way. */
export function testSeed(name: string): number {
  const fromEnvironment = process.env.SEED;
  const seed = fromEnvironment !== undefined ? Number(fromEnvironment) : Math.floor(Math.random() * 2 ** 31);
  console.log(`# ${name}: seed ${seed} (replay with SEED=${seed})`);
  return seed;
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const result: T[] = [];
  for await (const item of iterable) result.push(item);
  return result;
}

/**
 * A one-shot gate for fault-free file-system wrappers in tests: once `arm()`ed, the first call
 * that `pass()`es signals `reached` and waits there until `release()`.
 */
export class Gate {
  private armed = false;
  private signalReached: (() => void) | undefined;
  private opened: Promise<void> = Promise.resolve();
  private open: (() => void) | undefined;
  reached: Promise<void> = Promise.resolve();

  arm(): void {
    this.armed = true;
    this.reached = new Promise((resolve) => (this.signalReached = resolve));
    this.opened = new Promise((resolve) => (this.open = resolve));
  }

  release(): void {
    this.open?.();
  }

  /** Wait here if armed and `applies` (then disarmed); return at once otherwise. */
  async pass(applies: boolean): Promise<void> {
    if (!this.armed || !applies) return;
    this.armed = false;
    this.signalReached?.();
    await this.opened;
  }
}

/** The real file system; once armed, the next block file opened for writing waits for `release()`. */
export class BlockOpenGate extends NodeFileSystem {
  readonly gate = new Gate();

  override async open(path: string, mode: OpenMode, options?: FileOpenOptions): Promise<FileHandle> {
    await this.gate.pass(path.includes('/blocks/') && mode !== 'read');
    return super.open(path, mode, options);
  }
}

/**
 * The real file system; once armed, the next open of a log segment for reading (after `skip` more)
 * waits for `release()`: background compaction held at the segment it is about to read. An open
 * waits at the gate current when it is called.
 */
export class SegmentOpenGate extends NodeFileSystem {
  gate = new Gate();
  skip = 0;

  override async open(path: string, mode: OpenMode, options?: FileOpenOptions): Promise<FileHandle> {
    const applies = mode === 'read' && path.endsWith('.log');
    if (applies && this.skip > 0) this.skip--;
    else await this.gate.pass(applies);
    return super.open(path, mode, options);
  }
}

/** The window an expiry time is known to lie in (ms since the epoch), for a put with `ttlMs`: [from, to]. */
export interface ExpiryWindow {
  from: number;
  to: number;
}

/**
 * What a read whose "now" lay between `beforeMs` and `afterMs` may have found of a value expiring
 * in `window` (none: it never expires): live exactly while its expiry time is after now.
 */
export function expiryAllows(window: ExpiryWindow | undefined, beforeMs: number, afterMs: number): { live: boolean; expired: boolean } {
  if (window === undefined) return { live: true, expired: false };
  return { live: window.to > beforeMs, expired: window.from <= afterMs };
}

/**
 * A store reopened after a crash while `values` were written as `a<i>` and `b<i>`: each of those
 * reads its value whole or not at all and `verify()` passes; the same contents put again as
 * `c<i>` read back whole and leave no incomplete block file. Returns the incomplete block files
 * `verify()` counted before the rewrite.
 */
export async function checkLargeValuesAfterCrash(db: Store, values: Buffer[], context: string): Promise<number> {
  for (const [index, value] of values.entries()) {
    for (const key of [`a${index}`, `b${index}`]) {
      const found = db.getSync(key);
      assert.ok(found === undefined || found.equals(value), `${context}: ${key} reads wrong`);
    }
  }
  const before = await db.verify();
  assert.ok(before.ok, `${context}: ${JSON.stringify(before.problems.slice(0, 3))}`);
  // Writing the same contents again must store them whole, whatever the crash left.
  for (const [index, value] of values.entries()) await db.put(`c${index}`, value);
  for (const [index, value] of values.entries()) assert.ok(db.getSync(`c${index}`)?.equals(value), `${context}: c${index} reads wrong`);
  const after = await db.verify();
  assert.ok(after.ok && after.incompleteBlocks === 0, `${context}: ${JSON.stringify(after)}`);
  return before.incompleteBlocks;
}

/** Descriptors of this process open on `path` (Linux: /proc/self/fd). */
export function descriptorsOn(path: string): number {
  let count = 0;
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === path) count++;
    } catch {
      // Closed since the listing (the listing's own descriptor among them).
    }
  }
  return count;
}

/**
 * `Date.now()` moved by hand for one test (`aheadMs`, negative to set it back), as a machine's
 * clock can be; put back when the test ends.
 */
export function movableClock(t: TestContext): { aheadMs: number } {
  const realNow = Date.now;
  const clock = { aheadMs: 0 };
  Date.now = () => realNow() + clock.aheadMs;
  t.after(() => {
    Date.now = realNow;
  });
  return clock;
}
