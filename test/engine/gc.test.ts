/**
 * Two-phase block garbage collection: the persisted delayed list, minimum age, batches, revival,
 * the race of a deletion with a write of the same content, readers that pin blocks, idempotence,
 * power loss during GC, knobs, timers after close, readOnly, and a seeded model with compaction.
 */
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { decodeDelayedList } from '../../src/blob/delayed-list.js';
import type { OpenOptions as FileOpenOptions } from '../../src/fs/types.js';
import { NodeFileSystem, open, type FileHandle, type FileSystem, type OpenMode, type Store } from '../../src/index.js';
import { collect, Gate, random, seededBytes as content, temporaryDirectory, testSeed } from '../helpers.js';

// Values above 1000 bytes go to blocks of 4 KiB.
const SMALL = { valueThreshold: 1000, blockBytes: 4096 };
const NOW = { ...SMALL, gc: { minAgeMs: 0 } };

function blockFiles(directory: string): string[] {
  return existsSync(join(directory, 'blocks')) ? readdirSync(join(directory, 'blocks')).filter((name) => name.endsWith('.blk')) : [];
}

async function assertVerified(db: Store, context: string): Promise<void> {
  const result = await db.verify();
  assert.ok(result.ok, `${context}: ${JSON.stringify(result.problems.slice(0, 3))}`);
}

test('phase 1 lists an unreferenced block durably; phase 2 deletes it only after gc.minAgeMs, also across a restart', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, { ...SMALL, gc: { minAgeMs: 3_600_000 } });
  await db.put('a', content(1, 8192));
  await db.put('keep', content(2, 4096));
  assert.equal(blockFiles(directory).length, 3);
  await db.delete('a');
  assert.equal(db.stats().blocks.candidates, 2);
  const first = await db.gc();
  assert.equal(first.listed, 2);
  assert.equal(first.deleted, 0, 'deleted before minAgeMs');
  assert.equal(db.stats().blocks.delayed, 2);
  assert.equal(blockFiles(directory).length, 3);
  assert.ok(statSync(join(directory, 'gc.list')).size > 16, 'the delayed list is on disk');
  await assertVerified(db, 'listed');
  assert.equal((await db.verify()).delayedBlocks, 2);
  await db.close();
  // The list and the listing times survive the restart: still too young.
  db = await open(directory, { ...SMALL, gc: { minAgeMs: 3_600_000 } });
  assert.equal(db.stats().blocks.delayed, 2);
  assert.equal((await db.gc()).deleted, 0);
  await db.close();
  // Old enough (minAgeMs 0): the pass at open deletes them; the live key's block stays.
  db = await open(directory, NOW);
  assert.equal(db.stats().blocks.orphansRemovedAtOpen, 2);
  assert.equal(db.stats().blocks.delayed, 0);
  assert.equal(blockFiles(directory).length, 1);
  assert.ok((await db.get('keep'))?.equals(content(2, 4096)));
  await assertVerified(db, 'after deletion');
  await db.close();
});

test('gc.minAgeMs counts from the listing time', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, gc: { minAgeMs: 150 } });
  await db.put('a', content(3, 4096));
  await db.delete('a');
  const listedAt = Date.now();
  assert.equal((await db.gc()).deleted, 0);
  // Waiting for the clock, not for another activity: the age is the thing under test.
  while (Date.now() - listedAt < 200) await new Promise((resolve) => setTimeout(resolve, 25));
  assert.equal((await db.gc()).deleted, 1);
  assert.equal(blockFiles(directory).length, 0);
  await db.close();
});

test('gc.batch bounds the entries one pass handles', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, gc: { minAgeMs: 0, batch: 3 } });
  for (let index = 0; index < 10; index++) await db.put(`k${index}`, content(100 + index, 4096));
  for (let index = 0; index < 10; index++) await db.delete(`k${index}`);
  const deleted: number[] = [];
  for (let pass = 0; pass < 5; pass++) deleted.push((await db.gc()).deleted);
  assert.deepEqual(deleted, [3, 3, 3, 1, 0]);
  assert.equal(blockFiles(directory).length, 0);
  await db.close();
});

test('gc.intervalMs runs passes in the background; gc: false runs none, but gc() still works', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, gc: { minAgeMs: 0, intervalMs: 5 } });
  await db.put('a', content(4, 4096));
  await db.delete('a');
  const deadline = Date.now() + 5000;
  while (blockFiles(directory).length > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(blockFiles(directory).length, 0, 'the background pass did not delete the block');
  assert.ok(db.stats().gc.runs >= 1);
  await db.close();

  const off = temporaryDirectory(t);
  const quiet = await open(off, { ...SMALL, gc: false });
  await quiet.put('a', content(4, 4096));
  await quiet.delete('a');
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(quiet.stats().gc.runs, 0);
  assert.equal(blockFiles(off).length, 1);
  // gc() with gc: false uses the default minimum age: listed, not deleted.
  assert.deepEqual({ ...(await quiet.gc()), waiting: 0 }, { listed: 1, deleted: 0, bytesDeleted: 0, revived: 0, waiting: 0 });
  await quiet.close();
});

test('content written again after it was listed is revived: taken off the list, never deleted', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, NOW);
  const value = content(5, 12_000);
  await db.put('a', value);
  await db.delete('a');
  // List without deleting: a long minimum age for this pass.
  await db.close();
  db = await open(directory, { ...SMALL, gc: { minAgeMs: 3_600_000 } });
  assert.equal(db.stats().blocks.delayed, 3);
  await db.put('b', value);
  await db.close();
  db = await open(directory, NOW);
  assert.equal(db.stats().blocks.delayed, 0);
  assert.equal(db.stats().gc.revived, 3);
  assert.equal(blockFiles(directory).length, 3);
  assert.ok((await db.get('b'))?.equals(value));
  await assertVerified(db, 'revived');
  await db.close();
});

test('a write of content GC is deleting, in either order, never loses the block', async (t) => {
  const seed = testSeed('gc write race');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  // Deletions that take a while, and a hook that starts a write of the same content in the
  // middle of one: the write must wait for the deletion and store the content again.
  const real = new NodeFileSystem();
  let duringUnlink: (() => void) | undefined;
  const slowUnlink: FileSystem = Object.assign(Object.create(real) as FileSystem, {
    unlink: async (path: string) => {
      const hook = duringUnlink;
      duringUnlink = undefined;
      hook?.();
      await new Promise((resolve) => setTimeout(resolve, 5));
      return real.unlink(path);
    },
  });
  const db = await open(directory, { ...NOW, fileSystem: slowUnlink });
  let racedInsideUnlink = 0;
  for (let round = 0; round < 40; round++) {
    const context = `seed ${seed} round ${round}`;
    const value = content(seed + (round % 4), 4096 * 2 + 10);
    await db.put('old', value);
    await db.delete('old');
    await db.flush();
    if (round % 2 === 0) {
      // The write starts while GC is unlinking the block.
      let racer: Promise<unknown> | undefined;
      duringUnlink = () => {
        racer = db.put('new', value);
      };
      await db.gc();
      assert.ok(racer !== undefined, `${context}: GC deleted nothing`);
      await racer;
      racedInsideUnlink++;
    } else {
      // GC and the write started in the same tick, in a random order: the write's hold wins.
      await Promise.all(next() < 0.5 ? [db.gc(), db.put('new', value)] : [db.put('new', value), db.gc()]);
    }
    await db.gc();
    assert.ok((await db.get('new'))?.equals(value), context);
    await assertVerified(db, context);
    await db.delete('new');
    await db.gc();
  }
  assert.equal(racedInsideUnlink, 20);
  await db.close();
});

test('open iterators, snapshots and read streams keep the blocks they may read', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, NOW);
  const value = content(6, 4096 * 3);
  await db.put('a', value);
  await db.put('b', 'small');
  const iterator = db.entries();
  const snapshot = db.snapshot();
  const stream = db.createReadStream('a', { start: 4000 });
  await db.put('a', 'replaced');
  const pinned = await db.gc();
  assert.equal(pinned.deleted, 0, 'deleted blocks an open reader may read');
  assert.ok(db.stats().gc.skippedPinned > 0);
  // Every reader still reads the old value.
  assert.ok(Buffer.concat(await collect(stream)).equals(value.subarray(4000)));
  assert.ok((await snapshot.get('a'))?.equals(value));
  const fromSnapshot = snapshot.entries();
  snapshot.release();
  // An iterator made from a snapshot keeps its own pin after the snapshot is released.
  assert.equal((await db.gc()).deleted, 0);
  const entries = await collect(iterator);
  assert.ok(entries[0]?.value.equals(value));
  const snapshotEntries = await collect(fromSnapshot);
  assert.ok(snapshotEntries[0]?.value.equals(value));
  // All readers done: the blocks go.
  const done = await db.gc();
  assert.equal(done.deleted, 3);
  assert.equal(blockFiles(directory).length, 0);
  await assertVerified(db, 'readers done');
  await db.close();
});

test('deleting a block already gone is not an error; a damaged list tail is cut at open', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, { ...SMALL, gc: { minAgeMs: 3_600_000 } });
  await db.put('a', content(7, 4096 * 2));
  await db.delete('a');
  await db.gc();
  await db.close();
  for (const name of blockFiles(directory)) rmSync(join(directory, 'blocks', name));
  // A torn append at the end of the list.
  const list = readFileSync(join(directory, 'gc.list'));
  const { appendFileSync } = await import('node:fs');
  appendFileSync(join(directory, 'gc.list'), list.subarray(16, 40));
  db = await open(directory, NOW);
  assert.equal(db.stats().blocks.delayed, 0);
  assert.equal(statSync(join(directory, 'gc.list')).size % 48, 16);
  await assertVerified(db, 'after idempotent deletes');
  await db.close();
});

test('power loss at every fsync point during GC: every live value reads back whole', async () => {
  const fileSystem = new CrashFileSystem();
  const db = await open('/db', { fileSystem, ...NOW, gc: { minAgeMs: 0, intervalMs: 2 ** 31 - 1 } });
  const expected = new Map<string, Buffer>();
  for (let index = 0; index < 12; index++) {
    const value = content(200 + (index % 5), 4096 + index * 100);
    await db.put(`k${index}`, value);
    expected.set(`k${index}`, value);
  }
  for (let index = 0; index < 12; index += 2) {
    await db.delete(`k${index}`);
    expected.delete(`k${index}`);
  }
  // A rewrite of content that was just dropped (revive), and one more drop.
  await db.put('again', content(200, 4096));
  expected.set('again', content(200, 4096));
  const crashes: CrashFileSystem[] = [];
  fileSystem.onSync = () => {
    crashes.push(fileSystem.crash({ unsynced: 'drop' }));
    crashes.push(fileSystem.crash({ unsynced: 'tear', seed: crashes.length }));
  };
  await db.gc();
  await db.gc();
  fileSystem.onSync = undefined;
  await db.close();
  assert.ok(crashes.length >= 4, `only ${crashes.length} crash states`);
  for (const [position, crashed] of crashes.entries()) {
    const reopened = await open('/db', { fileSystem: crashed, ...NOW });
    for (const [key, value] of expected) assert.ok((await reopened.get(key))?.equals(value), `crash state ${position}: ${key}`);
    await reopened.gc();
    const result = await reopened.verify();
    assert.ok(result.ok, `crash state ${position}: ${JSON.stringify(result.problems.slice(0, 3))}`);
    assert.equal(result.unreferencedBlocks, 0, `crash state ${position}: garbage left`);
    await reopened.close();
  }
  console.log(`# GC crash states tried: ${crashes.length}`);
});

test('close() leaves no timer behind, and readOnly opens run no GC and write nothing', async (t) => {
  const directory = temporaryDirectory(t);
  // Timers and immediates created while the store is open, until they are destroyed.
  const live = new Map<number, string>();
  let recording = false;
  const hook = createHook({
    init(id, type) {
      if (recording && (type === 'Timeout' || type === 'Immediate')) live.set(id, type);
    },
    destroy(id) {
      live.delete(id);
    },
  }).enable();
  try {
    recording = true;
    const db = await open(directory, { ...SMALL, durability: { intervalMs: 5 }, gc: { minAgeMs: 0, intervalMs: 50 }, compaction: { deadRatio: 0.1 } });
    await db.put('a', content(8, 4096));
    await db.delete('a');
    await db.put('b', content(9, 4096));
    assert.ok(live.size > 0, 'the store armed no timer: nothing to check');
    await db.close();
    recording = false;
    // Let the destroy hooks of cleared timers run.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual([...live.values()], [], 'timers or immediates left after close');
  } finally {
    hook.disable();
  }
  const before = readdirSync(directory).map((name) => [name, statSync(join(directory, name)).mtimeMs]);
  const reader = await open(directory, { readOnly: true, gc: { minAgeMs: 0, intervalMs: 1 } });
  await assert.rejects(reader.gc(), (error: { code?: string }) => error.code === 'READ_ONLY');
  assert.equal(reader.stats().blocks.candidates, 1);
  await reader.close();
  assert.deepEqual(readdirSync(directory).map((name) => [name, statSync(join(directory, name)).mtimeMs]), before);
  assert.equal(blockFiles(directory).length, 2);
});

test('gc() calls at once run one pass after another: the delayed list stays whole and the store keeps working', async (t) => {
  const directory = temporaryDirectory(t);
  const options = { ...SMALL, gc: { minAgeMs: 0, batch: 7, intervalMs: 3_600_000 } };
  const db = await open(directory, options);
  for (let round = 0; round < 10; round++) {
    // Blocks that lose their values before and while a pass runs, and passes asked for while it
    // runs: they wait for it and for each other (before, they all started when it ended, listed
    // and deleted side by side, appended to the list at the same offset, and renamed its
    // rewrite from under each other: a damaged list, or an IO_ERROR that failed the store).
    for (let index = 0; index < 12; index++) await db.put(`k${index}`, content(round * 100 + index, 5000));
    for (let index = 0; index < 6; index++) await db.delete(`k${index}`);
    const first = db.gc();
    for (let index = 6; index < 12; index++) await db.delete(`k${index}`);
    await Promise.all([first, db.gc(), db.gc(), db.gc()]);
    const list = readFileSync(join(directory, 'gc.list'));
    assert.equal((list.length - 16) % 48, 0, `round ${round}: a torn list`);
    const decoded = decodeDelayedList(list);
    assert.equal(decoded.problem, undefined, `round ${round}: ${decoded.problem}`);
    assert.equal(decoded.entries.size, db.stats().blocks.delayed, `round ${round}: the list on disk is not the one in memory`);
  }
  assert.equal(db.stats().state, 'open');
  await db.gc();
  await db.gc();
  assert.equal(blockFiles(directory).length, 0, 'every dropped block deleted');
  await assertVerified(db, 'after the passes');
  await db.close();
});

test('gc options are validated', async (t) => {
  const directory = temporaryDirectory(t);
  for (const gc of [{ minAgeMs: -1 }, { batch: 0 }, { intervalMs: 0 }, { batch: 1.5 }, 'yes']) {
    await assert.rejects(open(directory, { gc: gc as never }), (error: { code?: string }) => error.code === 'INVALID_ARGUMENT', JSON.stringify(gc));
  }
});

test('model: small and large values, compaction and GC at random points, reopen; then delete all and the directory is near empty', async (t) => {
  const seed = testSeed('gc model');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  const options = { ...NOW, segmentBytes: 8192, compaction: false as const };
  let db = await open(directory, options);
  const model = new Map<string, Buffer>();
  const contents = [content(seed, 9000), content(seed + 1, 4096), content(seed + 2, 2000)];
  for (let step = 0; step < 200; step++) {
    const context = `seed ${seed} step ${step}`;
    const key = `k${Math.floor(next() * 10)}`;
    const roll = next();
    if (roll < 0.4) {
      const value = next() < 0.5 ? (contents[Math.floor(next() * contents.length)] as Buffer) : content(seed * 7 + step, Math.floor(next() * 12_000));
      await db.put(key, value);
      model.set(key, value);
    } else if (roll < 0.6) {
      await db.delete(key);
      model.delete(key);
    } else if (roll < 0.7) {
      await db.compact();
    } else if (roll < 0.8) {
      await db.gc();
    } else if (roll < 0.85) {
      await db.close();
      db = await open(directory, options);
    } else {
      for (const [modelKey, value] of model) assert.ok((await db.get(modelKey))?.equals(value), `${context}: ${modelKey}`);
    }
    if (step % 10 === 9) await assertVerified(db, context);
  }
  for (const [key, value] of model) assert.ok((await db.get(key))?.equals(value), key);
  for (const key of model.keys()) await db.delete(key);
  await db.compact();
  await db.gc();
  const stats = db.stats();
  assert.equal(stats.blocks.count, 0);
  assert.ok(stats.diskBytes < 8 * 1024, `seed ${seed}: diskBytes ${stats.diskBytes} after deleting everything`);
  await assertVerified(db, 'empty');
  await db.close();
});

/** The real file system; once its gate is armed, the next fdatasync of a log segment waits for `release()`. */
class SegmentSyncGate extends NodeFileSystem {
  readonly gate = new Gate();

  override async open(path: string, mode: OpenMode, options?: FileOpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, mode, options);
    if (!path.endsWith('.log')) return handle;
    const datasync = handle.datasync.bind(handle);
    handle.datasync = async () => {
      await this.gate.pass(true);
      return datasync();
    };
    // A gate cannot hold a synchronous call: a store under one goes through the thread pool.
    handle.datasyncSync = () => {
      throw new Error('a gated log fdatasync on the main thread: open the store with inlineSyncMaxMs: 0');
    };
    return handle;
  }
}

test('a block listed, written again, then dropped again while a pass waits for the log is not deleted on its old listing', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new SegmentSyncGate();
  // 'none': a delete is applied without waiting for an fdatasync (so it can land inside GC's).
  const db = await open(directory, { ...SMALL, durability: 'none', gc: { minAgeMs: 0, intervalMs: 3_600_000 }, fileSystem });
  t.after(() => db.close());
  const value = content(7, 4096 * 2);
  await db.put('a', value);
  const first = db.snapshot();
  await db.delete('a');
  // Listed, not deleted: the first snapshot may read it.
  assert.equal((await db.gc()).deleted, 0);
  assert.equal(db.stats().blocks.delayed, 2);
  // Written again (still on the list), and read by a second snapshot.
  await db.put('b', value);
  const second = db.snapshot();
  first.release();
  // Another unreferenced block, so the next pass waits for the log before listing.
  await db.put('other', content(8, 4096));
  await db.delete('other');
  fileSystem.gate.arm();
  const pass = db.gc();
  await fileSystem.gate.reached;
  // Dropped again while phase 1 waits: the listing it still has names the first snapshot's epoch.
  await db.delete('b');
  fileSystem.gate.release();
  await pass;
  assert.ok((await second.get('b'))?.equals(value), 'a block the second snapshot may read was deleted');
  second.release();
  await db.gc();
  assert.deepEqual(blockFiles(directory), []);
  await assertVerified(db, 'after the readers');
});
