import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { OpenOptions as FileOpenOptions } from '../../src/fs/types.js';
import { NodeFileSystem, open, type FileHandle, type OpenMode } from '../../src/index.js';
import { temporaryDirectory } from '../helpers.js';

/** Hold the thread for `ms`: a disk that slow (the store times the call; a timer could fire early). */
function busyWait(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/**
 * The real file system, counting the log's fdatasyncs by the path they take (the main thread or
 * the thread pool), and making each take at least `slowMs` while that is set.
 */
class LogSyncCounting extends NodeFileSystem {
  inline = 0;
  pooled = 0;
  slowMs = 0;

  override async open(path: string, mode: OpenMode, options?: FileOpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, mode, options);
    if (!path.endsWith('.log')) return handle;
    const datasync = handle.datasync.bind(handle);
    const datasyncSync = (handle.datasyncSync as () => void).bind(handle);
    handle.datasync = async () => {
      this.pooled++;
      busyWait(this.slowMs);
      await datasync();
    };
    handle.datasyncSync = () => {
      this.inline++;
      busyWait(this.slowMs);
      datasyncSync();
    };
    return handle;
  }
}

/** A file system written before `datasyncSync` existed: its handles have only `datasync`, counted. */
class WithoutDatasyncSync extends NodeFileSystem {
  datasyncs = 0;

  override async open(path: string, mode: OpenMode, options?: FileOpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, mode, options);
    const bare: FileHandle = Object.create(handle);
    Object.defineProperty(bare, 'datasyncSync', { value: undefined });
    bare.datasync = async () => {
      this.datasyncs++;
      await handle.datasync();
    };
    return bare;
  }
}

test('a lone durable write waits for its fdatasync on the main thread; inlineSyncMaxMs: 0 sends every one to the thread pool', async (t) => {
  const fileSystem = new LogSyncCounting();
  // A limit no fdatasync of this disk reaches, however busy the machine: the path is the point here.
  const db = await open(temporaryDirectory(t), { fileSystem, inlineSyncMaxMs: 1000 });
  for (let index = 0; index < 20; index++) await db.put(`k${index}`, 'v');
  assert.equal(fileSystem.inline, 20, 'one fdatasync on the main thread per put');
  assert.equal(fileSystem.pooled, 0);
  assert.equal(db.stats().writes.inlineFsyncs, 20);
  assert.equal(db.stats().writes.fsyncs, 20);
  await db.close();

  const pooledOnly = new LogSyncCounting();
  const other = await open(temporaryDirectory(t), { fileSystem: pooledOnly, inlineSyncMaxMs: 0 });
  for (let index = 0; index < 20; index++) await other.put(`k${index}`, 'v');
  assert.equal(pooledOnly.inline, 0);
  assert.equal(pooledOnly.pooled, 20);
  assert.equal(other.stats().writes.inlineFsyncs, 0);
  await other.close();

  // A file system without datasyncSync keeps working, through the thread pool.
  const older = new WithoutDatasyncSync();
  const third = await open(temporaryDirectory(t), { fileSystem: older, inlineSyncMaxMs: 1000 });
  for (let index = 0; index < 20; index++) await third.put(`k${index}`, 'v');
  assert.equal(third.stats().writes.inlineFsyncs, 0);
  assert.ok(older.datasyncs >= 20, `${older.datasyncs} fdatasyncs`);
  assert.equal((await third.get('k19'))?.toString(), 'v');
  await third.close();
  await assert.rejects(open(temporaryDirectory(t), { inlineSyncMaxMs: -1 }), /inlineSyncMaxMs/);
  await assert.rejects(open(temporaryDirectory(t), { inlineSyncMaxMs: Number.NaN }), /inlineSyncMaxMs/);
});

test('fdatasyncs slower than inlineSyncMaxMs on average go to the thread pool, and come back to the main thread once they are fast again', async (t) => {
  const fileSystem = new LogSyncCounting();
  const db = await open(temporaryDirectory(t), { fileSystem, inlineSyncMaxMs: 1 });
  await db.put('warm', 'v');
  assert.equal(fileSystem.inline, 1);
  // 5 ms each: the average (1/8 for the newest) passes 1 ms after two of them.
  fileSystem.slowMs = 5;
  const before = { inline: fileSystem.inline, pooled: fileSystem.pooled };
  for (let index = 0; index < 10; index++) await db.put(`slow${index}`, 'v');
  assert.ok(fileSystem.inline - before.inline <= 2, `${fileSystem.inline - before.inline} slow fdatasyncs held the event loop`);
  assert.ok(fileSystem.pooled - before.pooled >= 8, `${fileSystem.pooled - before.pooled} went to the thread pool`);
  assert.ok(db.stats().writes.fsyncAverageMs > 1, `average ${db.stats().writes.fsyncAverageMs} ms`);
  fileSystem.slowMs = 0;
  const fastFrom = fileSystem.inline;
  let puts = 0;
  while (fileSystem.inline === fastFrom && puts < 200) await db.put(`fast${puts++}`, 'v');
  assert.ok(fileSystem.inline > fastFrom, 'fast fdatasyncs came back to the main thread');
  await db.close();
});

test('a loop of awaited durable writes synced on the main thread still lets the event loop turn once per write', async (t) => {
  const fileSystem = new LogSyncCounting();
  const db = await open(temporaryDirectory(t), { fileSystem, inlineSyncMaxMs: 1000 });
  let turns = 0;
  let running = true;
  const turn = (): void => {
    turns++;
    if (running) setImmediate(turn);
  };
  setImmediate(turn);
  for (let index = 0; index < 100; index++) await db.put(`k${index}`, 'v');
  running = false;
  assert.equal(fileSystem.inline, 100);
  // Without a turn per write, the loop would run on microtasks alone and a timer, an I/O callback or
  // background compaction would wait for the whole loop.
  assert.ok(turns >= 90, `${turns} turns of the event loop during 100 writes`);
  await db.close();
});
