/**
 * Reads of part of a value: `readAt` and ranged streams. The first read of part of a block reads
 * it whole and checks its hash, and keeps its page table (a CRC-32 per 4 KiB page); later reads of
 * part of it read only the pages they touch and check each against that table.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlockStore } from '../../src/blob/block-store.js';
import { NodeFileSystem, open, SiltError, type Store } from '../../src/index.js';
import type { FileHandle, OpenMode, OpenOptions } from '../../src/fs/types.js';
import { collect, random, seededBytes as bytes, temporaryDirectory, testSeed } from '../helpers.js';

/** 64 KiB blocks: 16 pages of 4 KiB each, a page table of 68 bytes. */
const PAGED = { valueThreshold: 1000, blockBytes: 65536, blockCacheBytes: 0 };
const PAGE = 4096;

function code(error: unknown): string | undefined {
  return error instanceof SiltError ? error.code : undefined;
}

function blockPath(directory: string, data: Buffer): string {
  return join(directory, 'blocks', `${createHash('sha256').update(data).digest('hex')}.blk`);
}

async function rangeOf(db: Store, key: string, start: number, end: number): Promise<Buffer> {
  return Buffer.concat(await collect(db.createReadStream(key, { start, end: end - 1 })));
}

/** Counts the bytes read from block files, by the synchronous and the asynchronous read paths. */
class BlockReadCounter extends NodeFileSystem {
  bytesRead = 0;

  private count(handle: FileHandle, path: string): FileHandle {
    if (!path.includes('/blocks/')) return handle;
    const read = handle.read.bind(handle);
    const readSync = handle.readSync.bind(handle);
    handle.read = async (buffer, offset, length, position) => {
      const count = await read(buffer, offset, length, position);
      this.bytesRead += count;
      return count;
    };
    handle.readSync = (buffer, offset, length, position) => {
      const count = readSync(buffer, offset, length, position);
      this.bytesRead += count;
      return count;
    };
    return handle;
  }

  override async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
    return this.count(await super.open(path, mode, options), path);
  }

  override openSync(path: string, mode: OpenMode): FileHandle {
    return this.count(super.openSync(path, mode), path);
  }
}

test('the first read of part of a block reads it whole; later ones read only the pages they touch, synchronous or not; a range over a whole block reads it whole', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new BlockReadCounter();
  const db = await open(directory, { ...PAGED, fileSystem });
  const value = bytes(3, 65536 * 3);
  await db.put('k', value);
  // A block file of 64 KiB of data: header, data, padding to a multiple of 4096 bytes.
  const wholeBlock = 16 + 65536 + 4080;
  fileSystem.bytesRead = 0;
  // 100 bytes inside page 5 of block 1: the block whole (and one byte more, that must not exist).
  let start = 65536 + 5 * PAGE + 300;
  assert.ok((await db.readAt('k', start, 100))?.equals(value.subarray(start, start + 100)));
  assert.equal(fileSystem.bytesRead, wholeBlock);
  assert.equal(db.stats().blocks.pageTables, 1);
  assert.equal(db.stats().blocks.pageTableBytes, 16 * 4);
  // Elsewhere in the same block: one page; across pages 6 and 7: two.
  fileSystem.bytesRead = 0;
  start = 65536 + 9 * PAGE + 7;
  assert.ok(db.readAtSync('k', start, 1)?.equals(value.subarray(start, start + 1)));
  assert.equal(fileSystem.bytesRead, PAGE);
  fileSystem.bytesRead = 0;
  start = 65536 + 7 * PAGE - 10;
  assert.ok((await db.readAt('k', start, 20))?.equals(value.subarray(start, start + 20)));
  assert.equal(fileSystem.bytesRead, 2 * PAGE);
  // A ranged stream (the asynchronous reads) over block 2: whole the first time, then one page.
  fileSystem.bytesRead = 0;
  start = 2 * 65536 + 9 * PAGE;
  assert.ok((await rangeOf(db, 'k', start, start + PAGE)).equals(value.subarray(start, start + PAGE)));
  assert.equal(fileSystem.bytesRead, wholeBlock);
  fileSystem.bytesRead = 0;
  start = 2 * 65536 + 2 * PAGE + 1;
  assert.ok((await rangeOf(db, 'k', start, start + 10)).equals(value.subarray(start, start + 10)));
  assert.equal(fileSystem.bytesRead, PAGE);
  assert.equal(db.stats().blocks.rangeWholeReads, 2);
  assert.equal(db.stats().blocks.rangePageReads, 3);
  // Block 0 whole and 10 bytes of block 1: block 0 read whole (its hash checked), one page of block 1.
  fileSystem.bytesRead = 0;
  assert.ok((await db.readAt('k', 0, 65536 + 10))?.equals(value.subarray(0, 65536 + 10)));
  assert.equal(fileSystem.bytesRead, wholeBlock + PAGE);
  // Block files are as they were: nothing is written for a table.
  await db.close();
});

test('page tables are dropped with their block (GC) and past their memory budget, least recently used first', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...PAGED, gc: { minAgeMs: 0 } });
  const value = bytes(6, 65536 * 2);
  await db.put('k', value);
  assert.ok(db.readAtSync('k', 100, 10)?.equals(value.subarray(100, 110)));
  assert.ok(db.readAtSync('k', 65536 + 100, 10)?.equals(value.subarray(65636, 65646)));
  assert.equal(db.stats().blocks.pageTables, 2);
  await db.delete('k');
  await db.gc();
  await db.gc();
  assert.equal(db.stats().blocks.count, 0);
  assert.equal(db.stats().blocks.pageTables, 0);
  assert.equal(db.stats().blocks.pageTableBytes, 0);
  await db.close();
  // The budget, on a block store of its own: room for two tables of 16 pages.
  const storeDirectory = temporaryDirectory(t);
  const blocks = new BlockStore(new NodeFileSystem(), storeDirectory, 65536, 0, Number.POSITIVE_INFINITY, 2 * 64);
  await blocks.open(false, storeDirectory);
  const datas = [7, 8, 9].map((seed) => bytes(seed, 65536));
  const hashes = datas.map((data) => createHash('sha256').update(data).digest());
  for (const [index, data] of datas.entries()) await blocks.write(hashes[index] as Buffer, data);
  await blocks.syncDirectory();
  const reads = () => [blocks.pageReads, blocks.wholeReadsForRange];
  blocks.readRangeSync(hashes[0] as Buffer, 65536, 0, 10);
  blocks.readRangeSync(hashes[1] as Buffer, 65536, 0, 10);
  // Table 0 used last: table 1 is the one dropped for table 2.
  blocks.readRangeSync(hashes[0] as Buffer, 65536, 10, 20);
  blocks.readRangeSync(hashes[2] as Buffer, 65536, 0, 10);
  assert.equal(blocks.pageTableCount, 2);
  assert.deepEqual(reads(), [1, 3]);
  assert.ok(blocks.readRangeSync(hashes[0] as Buffer, 65536, PAGE, PAGE + 5).equals((datas[0] as Buffer).subarray(PAGE, PAGE + 5)));
  assert.ok(blocks.readRangeSync(hashes[2] as Buffer, 65536, PAGE, PAGE + 5).equals((datas[2] as Buffer).subarray(PAGE, PAGE + 5)));
  assert.deepEqual(reads(), [3, 3]);
  assert.ok(blocks.readRangeSync(hashes[1] as Buffer, 65536, 5, 9).equals((datas[1] as Buffer).subarray(5, 9)));
  assert.deepEqual(reads(), [3, 4], 'table 1 was dropped: read whole again');
  await blocks.close();
});

test('readAt returns the bytes of any range of inline values, block values and objects; past the end fewer or none; absent keys undefined; bad input refused', async (t) => {
  const seed = testSeed('readAt ranges');
  const next = random(seed);
  const int = (limit: number) => Math.floor(next() * limit);
  const directory = temporaryDirectory(t);
  let db = await open(directory, { ...PAGED, objects: { chunkBytes: 131072, inlineBytes: 2048, compactAt: 4, syncCompactAt: 8 } });
  const values = new Map<string, Buffer>([
    ['inline', bytes(seed, 900)],
    ['blocks', bytes(seed + 1, 65536 * 2 + 12345)],
  ]);
  for (const [key, value] of values) await db.put(key, value);
  // An object: a block value changed in place by writes carried in the log and in block files.
  let model = Buffer.from(bytes(seed + 2, 65536 * 3 + 777));
  await db.put('object', model);
  for (let write = 0; write < 12; write++) {
    const offset = int(model.length + 5000);
    const data = bytes(seed + 10 + write, next() < 0.5 ? 1 + int(2000) : 3000 + int(70000));
    await db.writeAt('object', offset, data);
    if (offset + data.length > model.length) {
      const grown = Buffer.alloc(offset + data.length);
      model.copy(grown);
      model = grown;
    }
    data.copy(model, offset);
  }
  values.set('object', model);
  const check = async (context: string) => {
    for (const [key, value] of values) {
      assert.ok((await db.get(key))?.equals(value), `${context}: ${key} whole`);
      for (let round = 0; round < 40; round++) {
        const offset = int(value.length + 100);
        const length = next() < 0.7 ? int(PAGE * 3) : int(value.length);
        const expected = value.subarray(Math.min(offset, value.length), Math.min(value.length, offset + length));
        const found = next() < 0.5 ? db.readAtSync(key, offset, length) : await db.readAt(key, offset, length);
        assert.ok(found?.equals(expected), `${context} (seed ${seed}): ${key} readAt ${offset}+${length}`);
        if (offset < value.length && length > 0) {
          assert.ok((await rangeOf(db, key, offset, Math.min(value.length, offset + length))).equals(expected), `${context} (seed ${seed}): ${key} stream ${offset}+${length}`);
        }
      }
    }
  };
  await check('after the writes');
  await db.compactObject('object');
  await check('after heavy compaction');
  await db.close();
  db = await open(directory, { ...PAGED, objects: { chunkBytes: 131072, inlineBytes: 2048 } });
  await check('after reopen');
  assert.equal(await db.readAt('missing', 0, 10), undefined);
  assert.equal((await db.readAt('blocks', 10, 0))?.length, 0);
  assert.equal((await db.readAt('blocks', 10 ** 9, 10))?.length, 0);
  for (const [offset, length] of [[-1, 1], [1.5, 1], [0, -1], [0, 2 ** 53], [Number.NaN, 1]] as Array<[number, number]>) {
    await assert.rejects(db.readAt('blocks', offset, length), (error) => code(error) === 'INVALID_ARGUMENT', `${offset}+${length}`);
  }
  await db.close();
  await assert.rejects(db.readAt('blocks', 0, 1), (error) => code(error) === 'CLOSED');
  assert.throws(() => db.readAtSync('blocks', 0, 1), (error) => code(error) === 'CLOSED');
});

test('a page damaged after its table was kept fails the reads that touch it, and only those; a file cut short too; after a reopen the whole block fails, by its hash', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, PAGED);
  const value = bytes(4, 65536 * 2);
  await db.put('k', value);
  // The table of block 0 kept: read part of it once.
  assert.ok(db.readAtSync('k', 10, 10)?.equals(value.subarray(10, 20)));
  const path = blockPath(directory, value.subarray(0, 65536));
  const original = readFileSync(path);
  // One flipped bit in page 3 of block 0.
  const damaged = Buffer.from(original);
  damaged[16 + 3 * PAGE + 100] = (damaged[16 + 3 * PAGE + 100] as number) ^ 4;
  writeFileSync(path, damaged);
  assert.ok(db.readAtSync('k', 5 * PAGE, 100)?.equals(value.subarray(5 * PAGE, 5 * PAGE + 100)), 'another page still reads');
  assert.ok(db.readAtSync('k', 65536 + 10, 100)?.equals(value.subarray(65536 + 10, 65536 + 110)), 'another block still reads');
  assert.throws(() => db.readAtSync('k', 3 * PAGE + 50, 100), (error) => code(error) === 'CORRUPTION');
  await assert.rejects(db.readAt('k', 2 * PAGE, PAGE + 1), (error) => code(error) === 'CORRUPTION', 'a range reaching into the page');
  await assert.rejects(rangeOf(db, 'k', 3 * PAGE, 3 * PAGE + 10), (error) => code(error) === 'CORRUPTION');
  assert.throws(() => db.getSync('k'), (error) => code(error) === 'CORRUPTION');
  assert.equal((await db.verify()).ok, false);
  // Cut short inside page 9: pages before it read, pages from it on do not.
  writeFileSync(path, original.subarray(0, 16 + 9 * PAGE + 10));
  assert.ok(db.readAtSync('k', 8 * PAGE, 100)?.equals(value.subarray(8 * PAGE, 8 * PAGE + 100)));
  assert.throws(() => db.readAtSync('k', 12 * PAGE, 100), (error) => code(error) === 'CORRUPTION');
  await assert.rejects(rangeOf(db, 'k', 9 * PAGE, 9 * PAGE + 10), (error) => code(error) === 'CORRUPTION');
  await db.close();
  // A new open knows no table: the first read of part of the block reads it whole, and fails.
  writeFileSync(path, damaged);
  db = await open(directory, PAGED);
  assert.throws(() => db.readAtSync('k', 5 * PAGE, 100), (error) => code(error) === 'CORRUPTION');
  assert.equal(db.stats().blocks.pageTables, 0, 'no table kept for a block that failed its hash');
  await db.close();
  writeFileSync(path, original);
  db = await open(directory, PAGED);
  assert.ok((await db.verify()).ok);
  assert.ok(db.readAtSync('k', 3 * PAGE, 100)?.equals(value.subarray(3 * PAGE, 3 * PAGE + 100)));
  await db.close();
});

test('a snapshot reads ranges of the values it saw: overwritten since, collected by GC meanwhile or not; CLOSED once released', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...PAGED, gc: { minAgeMs: 0 } });
  const before = bytes(11, 65536 * 2 + 500);
  const after = bytes(12, 65536 * 2 + 500);
  await db.put('k', before);
  await db.put('small', 'inline value');
  const snapshot = db.snapshot();
  await db.put('k', after);
  await db.delete('small');
  await db.gc();
  await db.gc();
  for (const [offset, length] of [[70000, 100], [5, 65536 * 2], [65536 * 2 + 400, 1000]] as Array<[number, number]>) {
    assert.ok(snapshot.readAtSync('k', offset, length)?.equals(before.subarray(offset, offset + length)), `snapshot ${offset}+${length}`);
    assert.ok((await snapshot.readAt('k', offset, length))?.equals(before.subarray(offset, offset + length)));
    assert.ok((await db.readAt('k', offset, length))?.equals(after.subarray(offset, offset + length)), `store ${offset}+${length}`);
  }
  assert.equal(snapshot.readAtSync('small', 7, 100)?.toString(), 'value');
  assert.equal(await db.readAt('small', 0, 1), undefined);
  assert.equal(snapshot.readAtSync('missing', 0, 1), undefined);
  assert.throws(() => snapshot.readAtSync('k', -1, 1), (error) => code(error) === 'INVALID_ARGUMENT');
  snapshot.release();
  assert.throws(() => snapshot.readAtSync('k', 0, 1), (error) => code(error) === 'CLOSED');
  await assert.rejects(snapshot.readAt('k', 0, 1), (error) => code(error) === 'CLOSED');
  await db.close();
});

test("readAt checks a value's record once per location, not at every read: again once compaction moved it", async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...PAGED, segmentBytes: 64 * 1024 });
  const value = bytes(13, 65536 * 3);
  await db.put('k', value);
  const prototype = Object.getPrototypeOf(db) as { checkBlocksEntry: (...args: unknown[]) => void };
  const original = prototype.checkBlocksEntry;
  let checks = 0;
  prototype.checkBlocksEntry = function (this: unknown, ...args: unknown[]) {
    checks++;
    return original.apply(this, args);
  };
  t.after(() => {
    prototype.checkBlocksEntry = original;
  });
  for (let read = 0; read < 10; read++) assert.ok(db.readAtSync('k', read * 1000, 100)?.equals(value.subarray(read * 1000, read * 1000 + 100)));
  assert.equal(checks, 1);
  // get() checks the record at every read, as before.
  assert.ok(db.getSync('k')?.equals(value));
  assert.equal(checks, 2);
  // Segment compaction copies the record forward: a new location, checked again once.
  for (let filler = 0; filler < 40; filler++) await db.put(`filler${filler % 4}`, bytes(100 + filler, 900));
  await db.compact();
  for (let read = 0; read < 5; read++) assert.ok((await db.readAt('k', 7, 9))?.equals(value.subarray(7, 16)));
  assert.equal(checks, 3, 'the moved record was checked once');
  await db.close();
});

/** Descriptors this process holds on block files of `directory`, deleted ones included. */
function blockDescriptors(directory: string): number {
  let count = 0;
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`).startsWith(join(directory, 'blocks') + '/')) count++;
    } catch {
      // Closed since the listing (the listing's own descriptor among them).
    }
  }
  return count;
}

test('page reads keep a block file open (a quarter of maxOpenFiles of them, least recently used closed first, synchronous loops included); a block collected or the store closed closes its file', async (t) => {
  const directory = temporaryDirectory(t);
  // maxOpenFiles 8: two block files kept open for page reads.
  const db = await open(directory, { ...PAGED, maxOpenFiles: 8, gc: { minAgeMs: 0, intervalMs: 3_600_000 } });
  const values = Array.from({ length: 5 }, (_, index) => bytes(700 + index, 65536));
  for (const [index, value] of values.entries()) await db.put(`v${index}`, value);
  // The first read of each reads the block whole and keeps its page table; it opens no kept file.
  for (let index = 0; index < values.length; index++) db.readAtSync(`v${index}`, 0, 10);
  const learned = db.stats().blocks;
  assert.equal(learned.rangeFileOpens, 0);
  // Page reads of one block: its file opened once, then reused, synchronous or not.
  for (let round = 0; round < 50; round++) {
    const offset = (round * 997) % 60_000;
    assert.deepEqual(db.readAtSync('v0', offset, 500), values[0]?.subarray(offset, offset + 500));
    assert.deepEqual(await rangeOf(db, 'v0', offset, offset + 700), values[0]?.subarray(offset, offset + 700));
  }
  assert.equal(db.stats().blocks.rangeFileOpens, 1, 'one open for 100 page reads of one block');
  assert.equal(db.stats().blocks.rangeFilesOpen, 1);
  assert.equal(blockDescriptors(directory), 1);
  // A synchronous loop over five blocks, two kept: the others are closed as they go, before the
  // loop ever yields to the event loop.
  for (let round = 0; round < 20; round++) {
    for (const [index, value] of values.entries()) assert.deepEqual(db.readAtSync(`v${index}`, 8192, 100), value.subarray(8192, 8292));
  }
  assert.equal(db.stats().blocks.rangeFilesOpen, 2);
  assert.equal(blockDescriptors(directory), 2, 'two block files open after a synchronous loop over five');
  // Used most recently: v3 and v4. Reading v4 again opens nothing.
  const opens = db.stats().blocks.rangeFileOpens;
  db.readAtSync('v4', 4096, 10);
  assert.equal(db.stats().blocks.rangeFileOpens, opens);
  // GC of v4's block closes its file: the space goes back, no descriptor holds the deleted file.
  await db.delete('v4');
  await db.gc();
  assert.equal(db.stats().blocks.rangeFilesOpen, 1);
  assert.equal(blockDescriptors(directory), 1);
  assert.equal(await db.get('v4'), undefined);
  assert.deepEqual(db.readAtSync('v3', 100, 10), values[3]?.subarray(100, 110));
  await db.close();
  assert.equal(blockDescriptors(directory), 0, 'close closes the kept files');
});
