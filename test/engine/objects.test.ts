/**
 * Objects: writeAt, append and truncate over chunks of slices, with slice compaction (light,
 * heavy, background, synchronous). A seeded model against a growable Buffer with compaction, GC
 * and reopen at random points; the phantom-insert race; the commit-order merge; power loss at
 * every fsync point; bad input.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { NodeFileSystem, open, SiltError, type FileHandle, type OpenMode, type Store } from '../../src/index.js';
import { collect, Gate, random, seededBytes as bytes, temporaryDirectory, testSeed } from '../helpers.js';

// Values above 1000 bytes go to blocks of 4 KiB; objects are chunks of 16 KiB.
const SMALL = { valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0 }, objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 8 } };

function code(error: unknown): string | undefined {
  return error instanceof SiltError ? error.code : undefined;
}

async function assertVerified(db: Store, context: string): Promise<void> {
  const result = await db.verify();
  assert.ok(result.ok, `${context}: ${JSON.stringify(result.problems.slice(0, 5))}`);
}

/** The real file system, counting the bytes read from block files. */
class BlockReadCounting extends NodeFileSystem {
  blockBytesRead = 0;

  private count(path: string, handle: FileHandle): FileHandle {
    if (!path.includes('blocks')) return handle;
    const { read, readSync } = handle;
    handle.read = async (buffer, offset, length, position) => {
      const got = await read.call(handle, buffer, offset, length, position);
      this.blockBytesRead += got;
      return got;
    };
    handle.readSync = (buffer, offset, length, position) => {
      const got = readSync.call(handle, buffer, offset, length, position);
      this.blockBytesRead += got;
      return got;
    };
    return handle;
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    return this.count(path, await super.open(path, mode));
  }

  override openSync(path: string, mode: OpenMode): FileHandle {
    return this.count(path, super.openSync(path, mode));
  }
}

test('stat() of an object reads it once per revision: a second stat, and one after slice compaction, reuse the digest; a write computes it again', async (t) => {
  const fileSystem = new BlockReadCounting();
  const db = await open(temporaryDirectory(t), { ...SMALL, fileSystem, objects: { ...SMALL.objects, inlineBytes: 0, compaction: false } });
  const model = new Model();
  for (let index = 0; index < 6; index++) {
    const data = bytes(index, 5000);
    await db.writeAt('o', index * 3000, data);
    model.writeAt(index * 3000, data);
  }
  const sha = (value: Buffer) => createHash('sha256').update(value).digest('hex');
  // What one whole read of the object reads from block files (its slices' whole blocks).
  let before = fileSystem.blockBytesRead;
  assert.deepEqual(await db.get('o'), model.bytes);
  const wholeRead = fileSystem.blockBytesRead - before;
  assert.ok(wholeRead >= model.bytes.length, `${wholeRead} block bytes read`);
  before = fileSystem.blockBytesRead;
  const [first, concurrent] = await Promise.all([db.stat('o'), db.stat('o')]);
  assert.equal(first?.digest, sha(model.bytes));
  assert.deepEqual(concurrent, first);
  assert.equal(fileSystem.blockBytesRead - before, wholeRead, 'two concurrent stats read the object other than once');
  before = fileSystem.blockBytesRead;
  assert.deepEqual(await db.stat('o'), first);
  assert.equal(fileSystem.blockBytesRead, before, 'a second stat read blocks');
  // Heavy compaction rewrites the slices: same bytes, same revision, the digest kept.
  const compacted = await db.compactObject('o', { mode: 'heavy' });
  assert.ok(compacted.chunksCompacted > 0, JSON.stringify(compacted));
  before = fileSystem.blockBytesRead;
  const afterCompaction = await db.stat('o');
  assert.equal(afterCompaction?.revision, first?.revision);
  assert.equal(afterCompaction?.digest, first?.digest);
  assert.equal(fileSystem.blockBytesRead, before, 'a stat after compaction read blocks');
  // A write is a new revision: its digest is computed from the new bytes.
  await db.writeAt('o', 100, 'changed');
  model.writeAt(100, Buffer.from('changed'));
  const changed = await db.stat('o');
  assert.equal(changed?.digest, sha(model.bytes));
  assert.ok(fileSystem.blockBytesRead > before);
  await db.close();
});

/** A Buffer that grows like a file: writes past the end leave zeros. */
class Model {
  bytes = Buffer.alloc(0);
  writeAt(offset: number, data: Buffer): void {
    if (data.length === 0) return;
    if (offset + data.length > this.bytes.length) {
      const grown = Buffer.alloc(offset + data.length);
      this.bytes.copy(grown);
      this.bytes = grown;
    }
    data.copy(this.bytes, offset);
  }
  truncate(size: number): void {
    const resized = Buffer.alloc(size);
    this.bytes.copy(resized, 0, 0, Math.min(size, this.bytes.length));
    this.bytes = resized;
  }
}

async function readRange(db: Store, key: string, start: number, end: number): Promise<Buffer> {
  return Buffer.concat(await collect(db.createReadStream(key, { start, end })));
}

test('writeAt, append and truncate on a missing key, an inline value and a block value; holes read as zeros; stat and ranges', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, SMALL);
  // Missing key, small: stays inline.
  let result = await db.writeAt('a', 10, 'hello');
  assert.equal(result.size, 15);
  assert.deepEqual(await db.get('a'), Buffer.concat([Buffer.alloc(10), Buffer.from('hello')]));
  assert.equal(db.objectStats('a'), undefined, 'a small value stays inline');
  // Outgrows the threshold: becomes an object.
  result = await db.append('a', bytes(1, 3000));
  assert.equal(result.size, 3015);
  assert.ok(db.objectStats('a') !== undefined);
  const expectedA = Buffer.concat([Buffer.alloc(10), Buffer.from('hello'), bytes(1, 3000)]);
  assert.deepEqual(await db.get('a'), expectedA);
  // A write far past the end: a hole across chunks.
  await db.writeAt('a', 40_000, 'tail');
  const withHole = Buffer.alloc(40_004);
  expectedA.copy(withHole);
  withHole.write('tail', 40_000);
  assert.deepEqual(await db.get('a'), withHole);
  assert.deepEqual(await readRange(db, 'a', 3000, 40_001), withHole.subarray(3000, 40_002));
  const stat = await db.stat('a');
  assert.equal(stat?.size, 40_004);
  assert.equal(stat?.digest, createHash('sha256').update(withHole).digest('hex'));
  // Truncate cuts; growing again shows zeros, not the old bytes.
  await db.truncate('a', 12);
  await db.truncate('a', 5000);
  const regrown = Buffer.alloc(5000);
  withHole.copy(regrown, 0, 0, 12);
  assert.deepEqual(await db.get('a'), regrown);
  // A block value becomes an object without copying its blocks.
  const large = bytes(2, 4096 * 5 + 100);
  await db.put('b', large);
  const writtenBefore = db.stats().blocks.written;
  const inlineBefore = db.stats().objects.inlineSlices;
  await db.writeAt('b', 4096 * 2 + 5, 'xyz');
  assert.equal(db.stats().blocks.written - writtenBefore, 0, 'no block file: the 3 new bytes are carried in the log');
  assert.equal(db.stats().objects.inlineSlices - inlineBefore, 1, 'only the new data was written, as one slice');
  large.write('xyz', 4096 * 2 + 5);
  assert.deepEqual(await db.get('b'), large);
  const entries = await collect(db.entries());
  assert.deepEqual(entries.find((entry) => entry.key.toString() === 'b')?.value, large);
  // truncate of a missing key: zeros.
  assert.ok((await db.truncate('c', 2000)).revision > 0);
  assert.deepEqual(await db.get('c'), Buffer.alloc(2000));
  await assertVerified(db, 'before reopen');
  await db.close();
  db = await open(directory, SMALL);
  assert.deepEqual(await db.get('a'), regrown);
  assert.deepEqual(await db.get('b'), large);
  await assertVerified(db, 'after reopen (checkpoint)');
  await db.close();
  // Without the checkpoint: the log is replayed.
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, SMALL);
  assert.equal(db.stats().recovery.usedCheckpoint, false);
  assert.deepEqual(await db.get('b'), large);
  assert.deepEqual(await db.get('a'), regrown);
  // A put replaces an object; delete drops it; its blocks become garbage that GC collects.
  await db.put('b', 'small');
  await db.delete('a');
  await db.delete('c');
  await db.gc();
  await db.gc();
  await assertVerified(db, 'after replacing objects');
  assert.equal((await db.verify()).unreferencedBlocks, 0);
  await db.close();
});

/**
 * Blocks of 4 pages (4 KiB each), chunks of 4 blocks, and slices over 2 KiB written to block
 * files: reads of part of a block go by its pages once its page table is kept. No block cache,
 * which would serve blocks read twice from memory.
 */
const PAGED = { valueThreshold: 1000, blockBytes: 16384, blockCacheBytes: 0, gc: { minAgeMs: 0 }, objects: { chunkBytes: 65536, compactAt: 4, syncCompactAt: 8, inlineBytes: 2048 } };

for (const [name, options] of [['4 KiB blocks', SMALL], ['16 KiB blocks of 4 KiB pages', PAGED]] as const) {
test(`model (${name}): random writeAt/append/truncate/put/delete with light, heavy, background and sync compaction, gc() and reopen at random points; whole reads, ranged streams and readAt`, async (t) => {
  const seed = testSeed(`objects model, ${name}`);
  const next = random(seed);
  const int = (limit: number) => Math.floor(next() * limit);
  const directory = temporaryDirectory(t);
  let db = await open(directory, options);
  const keys = ['o1', 'o2', 'o3'];
  const models = new Map<string, Model | undefined>(keys.map((key) => [key, undefined]));
  let maxSlices = 0;
  let heavyBefore = 0;
  let lightBefore = 0;
  let inlineBefore = 0;
  let pageReadsBefore = 0;
  const check = async (context: string) => {
    for (const key of keys) {
      const model = models.get(key);
      const value = await db.get(key);
      if (model === undefined) {
        assert.equal(value, undefined, `${context}: ${key} should be absent`);
        continue;
      }
      assert.ok(value !== undefined && value.equals(model.bytes), `${context}: ${key} differs (${value?.length} vs ${model.bytes.length} bytes)`);
      if (model.bytes.length > 0) {
        const start = int(model.bytes.length);
        const end = start + int(model.bytes.length - start);
        assert.ok((await readRange(db, key, start, end)).equals(model.bytes.subarray(start, end + 1)), `${context}: ${key} range ${start}..${end}`);
        // Mostly shorter than a block (read piece by piece, by pages), sometimes longer, sometimes past the end.
        const offset = int(model.bytes.length + 100);
        const length = next() < 0.8 ? int(options.blockBytes) : int(model.bytes.length);
        const expected = model.bytes.subarray(Math.min(offset, model.bytes.length), Math.min(model.bytes.length, offset + length));
        assert.ok(db.readAtSync(key, offset, length)?.equals(expected), `${context}: ${key} readAt ${offset}+${length}`);
      }
      maxSlices = Math.max(maxSlices, db.objectStats(key)?.maxSlicesPerChunk ?? 0);
    }
  };
  const steps = 400;
  for (let step = 0; step < steps; step++) {
    const key = keys[int(keys.length)] as string;
    const model = models.get(key);
    const size = model?.bytes.length ?? 0;
    const choice = next();
    const context = `seed ${seed} step ${step}`;
    if (choice < 0.4) {
      // Mostly within or near the object, sometimes far past its end, sometimes across chunks.
      const offset = next() < 0.1 ? size + int(40_000) : int(size + 2000);
      const data = bytes(seed + step, next() < 0.2 ? int(20_000) : 1 + int(3000));
      await db.writeAt(key, offset, data);
      const updated = model ?? new Model();
      updated.writeAt(offset, data);
      models.set(key, updated);
    } else if (choice < 0.55) {
      const data = bytes(seed + step, int(6000));
      const result = await db.append(key, data);
      const updated = model ?? new Model();
      updated.writeAt(updated.bytes.length, data);
      models.set(key, updated);
      assert.equal(result.size, updated.bytes.length, context);
    } else if (choice < 0.65) {
      const newSize = next() < 0.5 ? int(size + 1) : size + int(30_000);
      await db.truncate(key, newSize);
      const updated = model ?? new Model();
      updated.truncate(newSize);
      models.set(key, updated);
    } else if (choice < 0.7) {
      const value = bytes(seed + step, next() < 0.5 ? int(900) : 1000 + int(30_000));
      await db.put(key, value);
      const updated = new Model();
      updated.writeAt(0, value);
      updated.truncate(value.length);
      models.set(key, updated);
    } else if (choice < 0.74) {
      await db.delete(key);
      models.set(key, undefined);
    } else if (choice < 0.8) {
      await db.compactObject(key, { mode: next() < 0.5 ? 'light' : 'heavy' });
    } else if (choice < 0.83) {
      await db.gc();
    } else if (choice < 0.85) {
      await db.idle();
      await assertVerified(db, `${context} before reopen`);
      heavyBefore += db.stats().objects.heavyCompactions;
      lightBefore += db.stats().objects.lightCompactions;
      inlineBefore += db.stats().objects.inlineSlices;
      pageReadsBefore += db.stats().blocks.rangePageReads;
      await db.close();
      db = await open(directory, options);
    } else if (choice < 0.86) {
      await db.compact();
    } else {
      // Concurrent writes to one key, issued together: they apply in call order.
      const offsets = [int(size + 100), int(size + 100), int(size + 100)];
      const datas = offsets.map((_, position) => bytes(seed + step * 7 + position, 1 + int(4000)));
      await Promise.all(offsets.map((offset, position) => db.writeAt(key, offset, datas[position] as Buffer)));
      const updated = model ?? new Model();
      offsets.forEach((offset, position) => updated.writeAt(offset, datas[position] as Buffer));
      models.set(key, updated);
    }
    await check(context);
  }
  await db.idle();
  await check('end');
  await assertVerified(db, 'end');
  const stats = db.stats().objects;
  // Counters restart at each open: add those of earlier opens.
  assert.ok(stats.heavyCompactions + heavyBefore > 0 && stats.lightCompactions + lightBefore > 0, JSON.stringify({ ...stats, heavyBefore, lightBefore }));
  assert.ok(stats.inlineSlices + inlineBefore > 0, 'small slices were carried in the log');
  assert.ok(maxSlices <= options.objects.syncCompactAt + 1, `a chunk reached ${maxSlices} slices`);
  if (options === PAGED) assert.ok(db.stats().blocks.rangePageReads + pageReadsBefore > 0, 'reads of part of a block went by its pages');
  await db.gc();
  await db.gc();
  assert.equal((await db.verify()).unreferencedBlocks, 0, 'GC collected the blocks compaction replaced');
  await db.close();
});
}

/** Holds the first block file created after `arm()` until `release()`. */
class GateFileSystem extends NodeFileSystem {
  private readonly gate = new Gate();

  get reached(): Promise<void> {
    return this.gate.reached;
  }

  arm(): void {
    this.gate.arm();
  }

  release(): void {
    this.gate.release();
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    await this.gate.pass(path.includes('/blocks/') && mode !== 'read');
    return super.open(path, mode);
  }
}

test('phantom insert: a write that lands while its chunk is being compacted is neither lost nor hidden', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new GateFileSystem();
  const options = { ...SMALL, fileSystem, objects: { ...SMALL.objects, compaction: false } };
  let db = await open(directory, options);
  const base = bytes(10, 8000);
  await db.writeAt('k', 0, base);
  await db.writeAt('k', 100, Buffer.alloc(50, 0x42));
  await db.writeAt('k', 200, Buffer.alloc(50, 0x43));
  const expected = Buffer.from(base);
  expected.fill(0x42, 100, 150);
  expected.fill(0x43, 200, 250);
  assert.equal(db.objectStats('k')?.slices, 3);
  // Compaction reads the chunk, then stops while it stores the rewritten bytes.
  fileSystem.arm();
  const compaction = db.compactObject('k', { mode: 'heavy' });
  await fileSystem.reached;
  // Meanwhile a write lands in that chunk, and it is acknowledged.
  await db.writeAt('k', 120, 'PHANTOM');
  expected.write('PHANTOM', 120);
  assert.deepEqual(await db.get('k'), expected);
  fileSystem.release();
  const result = await compaction;
  assert.equal(result.chunksCompacted, 1);
  // The compacted slice went under the write, which still wins where they overlap.
  assert.deepEqual(await db.get('k'), expected, 'the write that landed during compaction was lost or hidden');
  assert.equal(db.objectStats('k')?.slices, 2);
  await assertVerified(db, 'after compaction');
  await db.close();
  db = await open(directory, options);
  assert.deepEqual(await db.get('k'), expected);
  // A truncate during compaction changes the chunk's slices: compaction starts again and the
  // result reads as the truncate left it.
  await db.writeAt('k', 3000, Buffer.alloc(100, 0x44));
  expected.fill(0x44, 3000, 3100);
  fileSystem.arm();
  const second = db.compactObject('k', { mode: 'heavy' });
  await fileSystem.reached;
  await db.truncate('k', 3050);
  fileSystem.release();
  await second;
  assert.deepEqual(await db.get('k'), expected.subarray(0, 3050));
  assert.ok(db.stats().objects.conflicts >= 1, 'the changed chunk was noticed');
  await assertVerified(db, 'after the truncate race');
  await db.close();
});

test('commit order decides overlapping slices, before and after light and heavy compaction', async (t) => {
  const seed = testSeed('commit order');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, objects: { chunkBytes: 16384, compactAt: 1000, syncCompactAt: 1000, compaction: false } });
  await db.truncate('k', 16384);
  const model = new Model();
  model.truncate(16384);
  // Writes issued together (not awaited one by one), overlapping: the later call wins, whatever
  // the sizes or contents (a larger write takes longer to store its blocks).
  for (let round = 0; round < 5; round++) {
    const writes = Array.from({ length: 8 }, (_, position) => ({ offset: Math.floor(next() * 12000), data: bytes(seed + round * 10 + position, 1 + Math.floor(next() * (position % 2 === 0 ? 4000 : 300))) }));
    await Promise.all(writes.map((write) => db.writeAt('k', write.offset, write.data)));
    for (const write of writes) model.writeAt(write.offset, write.data);
    assert.deepEqual(await db.get('k'), model.bytes, `round ${round}`);
  }
  // An old slice covering everything, then a small newer one inside it, then a newer one over
  // everything but that: light compaction must keep the small newer slice (it is visible).
  await db.writeAt('k', 0, Buffer.alloc(16384, 1));
  await db.writeAt('k', 5000, Buffer.alloc(10, 2));
  await db.writeAt('k', 0, Buffer.alloc(5000, 3));
  model.writeAt(0, Buffer.alloc(16384, 1));
  model.writeAt(5000, Buffer.alloc(10, 2));
  model.writeAt(0, Buffer.alloc(5000, 3));
  const slicesBefore = db.objectStats('k')?.slices ?? 0;
  const light = await db.compactObject('k', { mode: 'light' });
  assert.ok(light.slicesAfter < slicesBefore, 'light compaction dropped the covered slices');
  assert.equal(light.slicesAfter, 3);
  assert.deepEqual(await db.get('k'), model.bytes, 'light compaction changed what a read returns');
  const heavy = await db.compactObject('k', { mode: 'heavy' });
  assert.equal(heavy.slicesAfter, 1);
  assert.deepEqual(await db.get('k'), model.bytes, 'heavy compaction changed what a read returns');
  const fragmentation = db.objectStats('k');
  assert.equal(fragmentation?.coveredTwiceBytes, 0);
  await assertVerified(db, 'end');
  await db.close();
});

test('background compaction keeps chunks near compactAt; past syncCompactAt a write compacts its chunk first', async (t) => {
  const directory = temporaryDirectory(t);
  // Background only.
  let db = await open(directory, { ...SMALL, objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 1000 } });
  const model = new Model();
  for (let index = 0; index < 40; index++) {
    const data = bytes(100 + index, 700);
    await db.writeAt('bg', (index * 997) % 15000, data);
    model.writeAt((index * 997) % 15000, data);
  }
  await db.idle();
  assert.ok((db.objectStats('bg')?.maxSlicesPerChunk ?? 99) <= 4, JSON.stringify(db.objectStats('bg')));
  assert.ok(db.stats().objects.heavyCompactions > 0);
  assert.deepEqual(await db.get('bg'), model.bytes);
  await db.close();
  // Synchronous only (no background): a chunk never holds more than syncCompactAt slices.
  db = await open(directory, { ...SMALL, objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 6, compaction: false } });
  for (let index = 0; index < 40; index++) {
    const data = bytes(200 + index, 500);
    await db.writeAt('bg', (index * 1231) % 15000, data);
    model.writeAt((index * 1231) % 15000, data);
    assert.ok((db.objectStats('bg')?.maxSlicesPerChunk ?? 99) <= 6, `write ${index}: ${db.objectStats('bg')?.maxSlicesPerChunk} slices`);
  }
  assert.ok(db.stats().objects.syncCompactions > 0);
  assert.deepEqual(await db.get('bg'), model.bytes);
  await assertVerified(db, 'sync compaction');
  await db.close();
});

test('bad input: SiltError with a clear code, nothing written', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, maxValueSize: 100_000 });
  await db.writeAt('k', 0, bytes(1, 2000));
  const before = { revision: db.stats().revision, blocks: db.stats().blocks.written, log: db.stats().writes.logBytes };
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['negative offset', () => db.writeAt('k', -1, 'x'), 'INVALID_ARGUMENT'],
    ['fractional offset', () => db.writeAt('k', 1.5, 'x'), 'INVALID_ARGUMENT'],
    ['unsafe offset', () => db.writeAt('k', 2 ** 53, 'x'), 'INVALID_ARGUMENT'],
    ['NaN offset', () => db.writeAt('k', Number.NaN, 'x'), 'INVALID_ARGUMENT'],
    ['string offset', () => db.writeAt('k', '3' as unknown as number, 'x'), 'INVALID_ARGUMENT'],
    ['data of the wrong type', () => db.writeAt('k', 0, 42 as unknown as string), 'INVALID_ARGUMENT'],
    ['empty key', () => db.append('', 'x'), 'INVALID_ARGUMENT'],
    ['negative size', () => db.truncate('k', -5), 'INVALID_ARGUMENT'],
    ['fractional size', () => db.truncate('k', 0.5), 'INVALID_ARGUMENT'],
    ['write past maxValueSize', () => db.writeAt('k', 99_999, 'xy'), 'TOO_LARGE'],
    ['truncate past maxValueSize', () => db.truncate('k', 100_001), 'TOO_LARGE'],
    ['append past maxValueSize', () => db.append('k', Buffer.alloc(98_001)), 'TOO_LARGE'],
    ['ifRevision that does not hold', () => db.writeAt('k', 0, 'x', { ifRevision: 999 }), 'CONFLICT'],
    ['ifRevision on append', () => db.append('k', 'x', { ifRevision: 0 }), 'CONFLICT'],
    ['ifRevision on truncate', () => db.truncate('k', 0, { ifRevision: 12345 }), 'CONFLICT'],
    ['bad ifRevision', () => db.truncate('k', 0, { ifRevision: -1 }), 'INVALID_ARGUMENT'],
    ['bad compaction mode', () => db.compactObject('k', { mode: 'medium' as 'light' }), 'INVALID_ARGUMENT'],
  ];
  for (const [name, call, expected] of cases) {
    await assert.rejects(call(), (error: unknown) => code(error) === expected, name);
  }
  assert.deepEqual({ revision: db.stats().revision, blocks: db.stats().blocks.written, log: db.stats().writes.logBytes }, before, 'something was written');
  assert.deepEqual(await db.get('k'), bytes(1, 2000));
  // A condition that holds.
  const revision = (await db.stat('k'))?.revision as number;
  const result = await db.append('k', 'ok', { ifRevision: revision });
  assert.ok(result.revision > revision);
  await db.close();
  await assert.rejects(db.writeAt('k', 0, 'x'), (error: unknown) => code(error) === 'CLOSED');
  for (const objects of [{ chunkBytes: 100 }, { compactAt: 0 }, { compactAt: 10, syncCompactAt: 5 }, { compaction: 'yes' }, { chunkBytes: 2 ** 31 }]) {
    await assert.rejects(open(directory, { objects: objects as never }), (error: unknown) => code(error) === 'INVALID_ARGUMENT', JSON.stringify(objects));
  }
  const readOnly = await open(directory, { readOnly: true });
  await assert.rejects(readOnly.append('k', 'x'), (error: unknown) => code(error) === 'READ_ONLY');
  assert.deepEqual(await readOnly.get('k'), Buffer.concat([bytes(1, 2000), Buffer.from('ok')]));
  await readOnly.close();
  // An object holds fewer than 2^31 chunks, whatever maxValueSize allows: with 4 KiB chunks a
  // write ending past 8 TiB is TOO_LARGE (a hole up to just below it is fine), nothing written.
  const huge = await open(join(directory, 'huge'), { ...SMALL, maxValueSize: Number.MAX_SAFE_INTEGER, objects: { ...SMALL.objects, chunkBytes: 4096 } });
  await huge.writeAt('h', 2 ** 43 - 2, 'ab');
  assert.equal(huge.objectStats('h')?.size, 2 ** 43);
  const hugeBefore = { revision: huge.stats().revision, log: huge.stats().writes.logBytes };
  await assert.rejects(huge.writeAt('h', 2 ** 43 - 1, 'ab'), (error: unknown) => code(error) === 'TOO_LARGE', 'a write past 2^31 chunks');
  await assert.rejects(huge.truncate('h', 2 ** 43 + 1), (error: unknown) => code(error) === 'TOO_LARGE', 'a truncate past 2^31 chunks');
  await assert.rejects(huge.writeAt('new', 2 ** 45, 'x'), (error: unknown) => code(error) === 'TOO_LARGE', 'a new object past 2^31 chunks');
  assert.deepEqual({ revision: huge.stats().revision, log: huge.stats().writes.logBytes }, hugeBefore, 'something was written');
  const tail = Buffer.concat(await collect(huge.createReadStream('h', { start: 2 ** 43 - 4 })));
  assert.deepEqual(tail, Buffer.from([0, 0, 0x61, 0x62]));
  await huge.close();
});

test('power loss at every fsync point of an object workload, including heavy compaction and GC: every object reads as before or after the step in flight', async () => {
  const fileSystem = new CrashFileSystem();
  const options = { ...SMALL, objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 5, compaction: false }, gc: { minAgeMs: 0, intervalMs: 2 ** 31 - 1 } };
  const db = await open('/db', { fileSystem, ...options });
  const states: Array<Map<string, Buffer | undefined>> = [new Map()];
  const current = new Map<string, Buffer | undefined>();
  const crashes: Array<{ step: number; fs: CrashFileSystem }> = [];
  let step = 0;
  fileSystem.onSync = () => {
    crashes.push({ step, fs: fileSystem.crash({ unsynced: 'drop' }) });
    crashes.push({ step, fs: fileSystem.crash({ unsynced: 'tear', seed: crashes.length }) });
  };
  const model = new Model();
  const run = async (action: () => Promise<unknown>, apply: () => void) => {
    step++;
    await action();
    apply();
    current.set('obj', Buffer.from(model.bytes));
    states.push(new Map(current));
  };
  await run(() => db.writeAt('obj', 0, bytes(1, 5000)), () => model.writeAt(0, bytes(1, 5000)));
  await run(() => db.append('obj', bytes(2, 3000)), () => model.writeAt(model.bytes.length, bytes(2, 3000)));
  for (let index = 0; index < 6; index++) {
    // The later of these pass syncCompactAt: the write compacts its chunk first.
    await run(() => db.writeAt('obj', index * 700, bytes(10 + index, 300)), () => model.writeAt(index * 700, bytes(10 + index, 300)));
  }
  await run(() => db.writeAt('obj', 20_000, bytes(3, 100)), () => model.writeAt(20_000, bytes(3, 100)));
  await run(() => db.compactObject('obj', { mode: 'heavy' }), () => undefined);
  await run(() => db.truncate('obj', 6000), () => model.truncate(6000));
  await run(() => db.gc(), () => undefined);
  await run(() => db.gc(), () => undefined);
  fileSystem.onSync = undefined;
  await db.close();
  assert.ok(db.stats().objects.syncCompactions > 0 && db.stats().objects.heavyCompactions > 1);
  assert.ok(crashes.length >= 20, `only ${crashes.length} crash states`);
  for (const [position, crash] of crashes.entries()) {
    const reopened = await open('/db', { fileSystem: crash.fs, ...options });
    const value = await reopened.get('obj');
    const before = states[crash.step - 1]?.get('obj');
    const after = states[crash.step]?.get('obj');
    const matches = (expected: Buffer | undefined) => (expected === undefined ? value === undefined : value !== undefined && value.equals(expected));
    assert.ok(matches(before) || matches(after), `crash state ${position} (step ${crash.step}): ${value?.length} bytes, expected ${before?.length} or ${after?.length}`);
    await reopened.gc();
    const result = await reopened.verify();
    assert.ok(result.ok, `crash state ${position}: ${JSON.stringify(result.problems.slice(0, 3))}`);
    assert.equal(result.unreferencedBlocks, 0, `crash state ${position}: garbage left`);
    await reopened.close();
  }
  console.log(`# object crash states tried: ${crashes.length}`);
});

/** Counts fsyncs of files and directories, by kind of path. */
class SyncCountingFileSystem extends NodeFileSystem {
  fileSyncs = 0;
  blockFileSyncs = 0;
  directorySyncs = 0;
  blockFileOpens = 0;

  private counted(handle: FileHandle, path: string): FileHandle {
    const isBlock = path.includes('/blocks/');
    const sync = handle.sync.bind(handle);
    const datasync = handle.datasync.bind(handle);
    handle.sync = async () => {
      if (isBlock) this.blockFileSyncs++;
      else this.fileSyncs++;
      await sync();
    };
    const datasyncSync = (handle.datasyncSync as () => void).bind(handle);
    handle.datasync = async () => {
      if (isBlock) this.blockFileSyncs++;
      else this.fileSyncs++;
      await datasync();
    };
    handle.datasyncSync = () => {
      if (isBlock) this.blockFileSyncs++;
      else this.fileSyncs++;
      datasyncSync();
    };
    return handle;
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    if (path.endsWith('.blk')) this.blockFileOpens++;
    return this.counted(await super.open(path, mode), path);
  }

  override openSync(path: string, mode: OpenMode): FileHandle {
    if (path.endsWith('.blk')) this.blockFileOpens++;
    return this.counted(super.openSync(path, mode), path);
  }

  override async syncDirectory(path: string): Promise<void> {
    this.directorySyncs++;
    await super.syncDirectory(path);
  }

  reset(): void {
    this.fileSyncs = 0;
    this.blockFileSyncs = 0;
    this.directorySyncs = 0;
    this.blockFileOpens = 0;
  }
}

test('small slices are carried in the log: one fsync per append, no block file; larger ones go to block files', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new SyncCountingFileSystem();
  const options = { fileSystem, valueThreshold: 1000, blockBytes: 65536, gc: { minAgeMs: 0 }, objects: { chunkBytes: 1 << 20, compaction: false, inlineBytes: 8192 } };
  const db = await open(directory, options);
  await db.append('log', bytes(1, 2000));
  const model = new Model();
  model.writeAt(0, bytes(1, 2000));
  fileSystem.reset();
  for (let index = 0; index < 10; index++) {
    await db.append('log', bytes(100 + index, 8192));
    model.writeAt(model.bytes.length, bytes(100 + index, 8192));
  }
  assert.equal(fileSystem.fileSyncs, 10, 'one log fsync per append');
  assert.equal(fileSystem.blockFileSyncs + fileSystem.directorySyncs, 0, 'no block file, no directory fsync');
  // The first append (2000 bytes) was carried too.
  assert.equal(db.stats().objects.inlineSlices, 11);
  assert.equal(db.stats().objects.logBlocks, 11);
  // Past inlineBytes: a block file (its fsync and the blocks/ directory's) as before.
  fileSystem.reset();
  await db.append('log', bytes(200, 8193));
  model.writeAt(model.bytes.length, bytes(200, 8193));
  assert.equal(fileSystem.blockFileSyncs, 1);
  assert.equal(fileSystem.directorySyncs, 1);
  assert.ok((await db.get('log'))?.equals(model.bytes));
  await assertVerified(db, 'inline appends');
  await db.close();
  // inlineBytes 0: every slice in a block file.
  const other = await open(`${directory}-none`, { ...options, objects: { ...options.objects, inlineBytes: 0 } });
  t.after(() => rmSync(`${directory}-none`, { recursive: true, force: true }));
  await other.append('log', bytes(1, 2000));
  fileSystem.reset();
  await other.append('log', bytes(2, 100));
  assert.equal(fileSystem.blockFileSyncs, 1);
  assert.equal(other.stats().objects.inlineSlices, 0);
  await other.close();
  await assert.rejects(open(`${directory}-bad`, { blockBytes: 65536, objects: { inlineBytes: 65537 } }), /inlineBytes/);
});

test('blocks carried in the log: read after reopen from the checkpoint and from a replay, moved by segment compaction, moved out by heavy compaction', async (t) => {
  const directory = temporaryDirectory(t);
  // Segment compaction only when asked (db.compact()), so live-byte counts are not healed behind the test's back.
  const options = { valueThreshold: 1000, blockBytes: 4096, segmentBytes: 64 * 1024, compaction: false as const, gc: { minAgeMs: 0 }, objects: { chunkBytes: 65536, compaction: false, inlineBytes: 4096 } };
  let db = await open(directory, options);
  const model = new Model();
  // Small writes (log blocks), then puts to another key that fill segments and die.
  for (let index = 0; index < 40; index++) {
    const offset = (index * 3001) % 60000;
    await db.writeAt('obj', offset, bytes(index, 1500));
    model.writeAt(offset, bytes(index, 1500));
    await db.put('filler', bytes(1000 + index, 900));
  }
  await db.idle();
  assert.ok((await db.get('obj'))?.equals(model.bytes));
  const carried = db.stats().objects.logBlocks;
  assert.ok(carried > 0, 'some slices are carried in the log');
  await assertVerified(db, 'before reopen');
  await db.close();
  // The checkpoint written at close covers the whole log: the blocks' places come from it alone.
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, true);
  assert.equal(db.stats().recovery.replayedEntries, 0);
  assert.ok((await db.get('obj'))?.equals(model.bytes), 'read after reopen from the checkpoint');
  assert.equal(db.stats().objects.logBlocks, carried);
  await db.close();
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, false);
  assert.ok((await db.get('obj'))?.equals(model.bytes), 'read after a full replay');
  // Segment compaction copies the live log blocks forward and deletes the old segments.
  await db.put('filler', 'x');
  const segmentsBefore = db.stats().segments.list.map((segment) => segment.segmentId);
  await db.compact();
  const segmentsAfter = db.stats().segments.list.map((segment) => segment.segmentId);
  assert.ok(segmentsBefore.some((id) => !segmentsAfter.includes(id)), `compaction deleted no segment (${segmentsBefore} -> ${segmentsAfter})`);
  assert.ok((await db.get('obj'))?.equals(model.bytes), 'read after segment compaction');
  await assertVerified(db, 'after segment compaction');
  // Seal the segment holding the copies, then: live bytes per sealed segment, kept as the store
  // runs, equal those open recomputes from scratch.
  for (let index = 0; index < 80; index++) await db.put('filler', bytes(2000 + index, 900));
  let kept = liveBySegment(db);
  await db.close();
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, options);
  assertSameLive(db, kept, 'after segment compaction');
  assert.ok((await db.get('obj'))?.equals(model.bytes), 'read after segment compaction and a full replay');
  // Heavy compaction moves the bytes into full-size block files: no log block stays live.
  await db.compactObject('obj', { mode: 'heavy' });
  assert.equal(db.stats().objects.logBlocks, 0);
  assert.ok((await db.get('obj'))?.equals(model.bytes));
  kept = liveBySegment(db);
  await db.close();
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, { ...options, checkpoint: false });
  assertSameLive(db, kept, 'after heavy compaction');
  // The dead log blocks are reclaimed: no sealed segment keeps live bytes but the object's records.
  await db.compact();
  await assertVerified(db, 'after heavy compaction');
  const sealed = db.stats().segments.list.filter((segment) => segment.sealed);
  assert.ok(sealed.every((segment) => segment.liveBytes < 4096), `dead log blocks still count as live: ${JSON.stringify(sealed)}`);
  await db.close();
  db = await open(directory, options);
  assert.ok((await db.get('obj'))?.equals(model.bytes));
  await db.close();
});

/** Live bytes of each sealed segment. */
function liveBySegment(db: Store): Record<number, number> {
  const live: Record<number, number> = {};
  for (const segment of db.stats().segments.list) if (segment.sealed) live[segment.segmentId] = segment.liveBytes;
  return live;
}

/** `kept` (before a close) and the live bytes open recomputed agree on every segment sealed in both (the active one is sealed at close; an empty one may be compacted away at open). */
function assertSameLive(db: Store, kept: Record<number, number>, context: string): void {
  const now = liveBySegment(db);
  const shared = Object.keys(kept).filter((id) => id in now);
  assert.ok(shared.length > 0, `${context}: no segment to compare`);
  assert.deepEqual(
    shared.map((id) => [id, now[Number(id)]]),
    shared.map((id) => [id, kept[Number(id)]]),
    `${context}: live bytes per sealed segment drifted`,
  );
}

test('a damaged block carried in the log reads as CORRUPTION, never as other bytes; verify() finds it', async (t) => {
  const directory = temporaryDirectory(t);
  const options = { valueThreshold: 100, blockBytes: 4096, objects: { compaction: false, inlineBytes: 4096 } };
  let db = await open(directory, options);
  const data = Buffer.alloc(3000, 0x61);
  await db.writeAt('obj', 0, Buffer.alloc(200, 0x62));
  await db.writeAt('obj', 100, data);
  await db.close();
  // Flip one byte inside the run of 0x61 bytes in the log.
  const { readdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const segment = join(directory, readdirSync(directory).filter((name) => name.endsWith('.log')).sort().at(-1) as string);
  const file = readFileSync(segment);
  const at = file.indexOf(Buffer.alloc(64, 0x61)) + 10;
  assert.ok(at > 10);
  file[at] = 0x7a;
  writeFileSync(segment, file);
  // The checkpoint covers the whole log, so open scans no entry: the read itself must catch it.
  db = await open(directory, { ...options, readOnly: true });
  assert.equal(db.stats().recovery.replayedEntries, 0);
  const value = await db.get('obj').catch((error: unknown) => error);
  assert.equal(code(value), 'CORRUPTION', `damaged bytes were returned: ${value instanceof Buffer ? value.includes(0x7a) : String(value)}`);
  await assert.rejects(collect(db.createReadStream('obj')), (error: unknown) => code(error) === 'CORRUPTION');
  const result = await db.verify();
  assert.ok(!result.ok && result.problems.some((problem) => problem.kind === 'segment'), JSON.stringify(result.problems));
  await db.close();
});

test('heavy compaction writes full-size blocks and keeps whole blocks that are already in place', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new SyncCountingFileSystem();
  const options = { fileSystem, valueThreshold: 100, blockBytes: 4096, gc: { minAgeMs: 0 }, objects: { chunkBytes: 65536, compaction: false, inlineBytes: 4096 } };
  const db = await open(directory, options);
  const model = new Model();
  for (let index = 0; index < 20; index++) {
    await db.append('log', bytes(index, 1000));
    model.writeAt(model.bytes.length, bytes(index, 1000));
  }
  await db.compactObject('log', { mode: 'heavy' });
  let stats = db.stats().objects;
  assert.equal(db.objectStats('log')?.slices, 1);
  assert.equal(stats.bytesRewritten, 20_000, 'the chunk was rewritten once');
  assert.equal(stats.blocksReused, 0);
  for (let index = 20; index < 30; index++) {
    await db.append('log', bytes(index, 1000));
    model.writeAt(model.bytes.length, bytes(index, 1000));
  }
  await db.compactObject('log', { mode: 'heavy' });
  stats = db.stats().objects;
  // Blocks 0-3 (16 KiB) are whole and aligned: kept; only [16384, 30000) is read and rewritten.
  assert.equal(stats.blocksReused, 4);
  assert.equal(stats.bytesRewritten, 20_000 + (30_000 - 16_384));
  assert.ok((await db.get('log'))?.equals(model.bytes));
  // A read opens each block file once: ceil(30000 / 4096) = 8.
  fileSystem.reset();
  assert.ok((await db.get('log'))?.equals(model.bytes));
  assert.equal(fileSystem.blockFileOpens, 8);
  await assertVerified(db, 'after compactions');
  await db.gc();
  await db.close();
});

test('a write records only the slices it adds (a delta on the key record): chains rebuilt from the checkpoint and by replay, rebased by segment compaction, never across segments', async (t) => {
  const seed = testSeed('objects deltas');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  const options = { valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0 }, objects: { chunkBytes: 16384, compaction: false, inlineBytes: 4096 } };
  let db = await open(directory, options);
  const model = new Model();
  model.writeAt(0, bytes(1, 200_000));
  await db.put('obj', model.bytes);
  const write = async (count: number) => {
    for (let index = 0; index < count; index++) {
      const data = bytes(Math.floor(next() * 1e9), 100);
      const offset = Math.floor(next() * 210_000);
      await db.writeAt('obj', offset, data);
      model.writeAt(offset, data);
    }
  };
  const same = async (context: string) => assert.ok((await db.get('obj'))?.equals(model.bytes), `${context}: the object differs from the model (seed ${seed})`);
  // The first write turns the block value into an object (a full manifest); the rest are deltas,
  // each about its 100 bytes, not a manifest that grows by a slice per write.
  const before = db.stats();
  await write(300);
  const after = db.stats();
  assert.equal(after.objects.deltaRecords - before.objects.deltaRecords, 299);
  const perWrite = (after.writes.logBytes - before.writes.logBytes) / 300;
  assert.ok(perWrite < 500, `${perWrite.toFixed(0)} log bytes per 100-byte write`);
  assert.ok(db.objectStats('obj')!.slices >= 300, 'compaction is off: every write is a slice');
  await same('after the writes');
  await assertVerified(db, 'after the writes');
  // The checkpoint at close names the chain's head: open rebuilds the manifest from the chain.
  // Live bytes per segment (the whole chain is live) as the store kept them, as open computes
  // them from the checkpoint, and from a replay.
  const live = () => JSON.stringify({ total: db.stats().liveBytes, segments: db.stats().segments.list.map((segment) => [segment.segmentId, segment.liveBytes]) });
  const liveBefore = live();
  await db.close();
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, true);
  assert.equal(db.stats().recovery.replayedEntries, 0);
  assert.equal(live(), liveBefore, 'live bytes from the checkpoint');
  await same('after reopen from the checkpoint');
  await db.close();
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, false);
  assert.equal(live(), liveBefore, 'live bytes from a replay');
  await same('after a full replay');
  await write(50);
  await same('after more writes');
  const liveAfter = live();
  await db.close();
  // Without the checkpoint: every chain is replayed (a chain the last checkpoint did not cover).
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, false);
  assert.equal(live(), liveAfter, 'live bytes from a replay, after more writes');
  await same('after a full replay');
  await assertVerified(db, 'after a full replay');
  // Segment compaction of the segment holding the chain writes the object as one full manifest.
  await db.put('filler', 'x');
  await db.put('filler', 'y');
  const segmentsBefore = db.stats().segments.list.map((segment) => segment.segmentId);
  await db.compact();
  const segmentsAfter = db.stats().segments.list.map((segment) => segment.segmentId);
  assert.ok(segmentsBefore.some((id) => !segmentsAfter.includes(id)), `compaction deleted no segment (${segmentsBefore} -> ${segmentsAfter})`);
  await same('after segment compaction');
  await assertVerified(db, 'after segment compaction');
  await write(20);
  const liveCompacted = live();
  await db.close();
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, options);
  assert.equal(live(), liveCompacted, 'live bytes after segment compaction, from a replay');
  await same('after segment compaction and a replay');
  await db.close();

  // Tiny segments: the log rolls between a delta's encoding and its commit, and the write goes
  // out as a full manifest instead (a chain never spans two segments).
  const small = { ...options, segmentBytes: 8192 };
  const second = join(directory, 'small');
  db = await open(second, small);
  const appended = new Model();
  for (let index = 0; index < 60; index++) {
    const data = bytes(5000 + index, 1500);
    await db.append('log', data);
    appended.writeAt(appended.bytes.length, data);
  }
  const deltas = db.stats().objects.deltaRecords;
  assert.ok(deltas > 0 && deltas < 59, `${deltas} deltas of 59 appends that could be`);
  assert.ok((await db.get('log'))?.equals(appended.bytes));
  await assertVerified(db, 'tiny segments');
  // Each full manifest replaced a whole chain: its live bytes all went dead.
  const liveSmall = live();
  await db.close();
  db = await open(second, small);
  assert.ok((await db.get('log'))?.equals(appended.bytes), 'tiny segments, from the checkpoint');
  assert.equal(live(), liveSmall, 'tiny segments: live bytes from the checkpoint');
  await db.close();
  rmSync(join(second, 'index.hint'));
  db = await open(second, small);
  assert.ok((await db.get('log'))?.equals(appended.bytes), 'tiny segments, replayed');
  assert.equal(live(), liveSmall, 'tiny segments: live bytes from a replay');
  await db.close();
});

test('a slice compaction records only the chunk it replaced (a delta), not the whole manifest: rebuilt from the checkpoint and by replay, a write that landed meanwhile kept', async (t) => {
  const seed = testSeed('objects compaction deltas');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  const fileSystem = new GateFileSystem();
  const options = { valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0 }, fileSystem, objects: { chunkBytes: 16384, compaction: false, inlineBytes: 4096 } };
  let db = await open(directory, options);
  // 64 chunks of 16 KiB, 4 blocks each: a full manifest of at least 64 × (8 + 24 + 4 × 32) bytes.
  const chunks = 64;
  const fullManifestBytes = chunks * (8 + 24 + 4 * 32);
  const model = new Model();
  model.writeAt(0, bytes(seed, chunks * 16384));
  await db.put('obj', model.bytes);
  const writeInto = async (chunk: number, count: number) => {
    for (let index = 0; index < count; index++) {
      const data = bytes(Math.floor(next() * 1e9), 1 + Math.floor(next() * 300));
      const offset = chunk * 16384 + Math.floor(next() * (16384 - data.length));
      await db.writeAt('obj', offset, data);
      model.writeAt(offset, data);
    }
  };
  // The first write makes the block value an object (one slice per chunk); 30 more fragment chunk 5.
  await writeInto(5, 31);
  assert.equal(db.objectStats('obj')!.chunks.find((chunk) => chunk.index === 5)!.slices, 32);
  const same = async (context: string) => assert.ok((await db.get('obj'))?.equals(model.bytes), `${context}: the object differs from the model (seed ${seed})`);

  // A heavy commit for chunk 5, after a light one if some slice is wholly covered by newer ones
  // (the other chunks hold one slice: nothing to do).
  const before = db.stats();
  const result = await db.compactObject('obj', { mode: 'heavy' });
  const after = db.stats();
  assert.equal(result.chunksCompacted, 1);
  assert.equal(after.objects.heavyCompactions - before.objects.heavyCompactions, 1);
  const commits = after.objects.lightCompactions - before.objects.lightCompactions + 1;
  assert.equal(after.objects.deltaRecords - before.objects.deltaRecords, commits, 'every commit was a delta on the key record');
  const commitBytes = (after.writes.logBytes - before.writes.logBytes) / commits;
  assert.ok(commitBytes < fullManifestBytes / 8, `${commitBytes.toFixed(0)} log bytes per compaction commit against a full manifest of ${fullManifestBytes}+`);
  assert.equal(db.objectStats('obj')!.chunks.find((chunk) => chunk.index === 5)!.slices, 1);
  await same('after compaction');

  // A write that lands in the chunk while it is compacted stays after the compacted slice.
  await writeInto(5, 10);
  fileSystem.arm();
  const compaction = db.compactObject('obj', { mode: 'heavy' });
  await fileSystem.reached;
  await writeInto(5, 1);
  fileSystem.release();
  assert.equal((await compaction).chunksCompacted, 1);
  assert.equal(db.objectStats('obj')!.chunks.find((chunk) => chunk.index === 5)!.slices, 2, 'the compacted slice and the write that landed meanwhile');
  await same('after a write during compaction');
  await assertVerified(db, 'after compaction');

  // Open rebuilds the chain, compactions included, from the checkpoint and from a replay.
  const live = () => JSON.stringify({ total: db.stats().liveBytes, segments: db.stats().segments.list.map((segment) => [segment.segmentId, segment.liveBytes]) });
  const liveBefore = live();
  const slicesBefore = JSON.stringify(db.objectStats('obj'));
  await db.close();
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, true);
  assert.equal(live(), liveBefore, 'live bytes from the checkpoint');
  assert.equal(JSON.stringify(db.objectStats('obj')), slicesBefore, 'slices from the checkpoint');
  await same('after reopen from the checkpoint');
  await db.close();
  rmSync(join(directory, 'index.hint'));
  db = await open(directory, options);
  assert.equal(db.stats().recovery.usedCheckpoint, false);
  assert.equal(live(), liveBefore, 'live bytes from a replay');
  assert.equal(JSON.stringify(db.objectStats('obj')), slicesBefore, 'slices from a replay');
  await same('after a full replay');
  await assertVerified(db, 'after a full replay');
  await db.close();
});

test('read streams of fragmented chunks: windows built in their base block match a model, never change bytes already yielded, and survive a smaller block size after reopen', async (t) => {
  const seed = testSeed('objects fragmented stream');
  const next = random(seed);
  const int = (limit: number) => Math.floor(next() * limit);
  const directory = temporaryDirectory(t);
  const options = (blockBytes: number) => ({ valueThreshold: 1000, blockBytes, gc: { minAgeMs: 0 }, objects: { chunkBytes: 32768, compaction: false, compactAt: 100_000, syncCompactAt: 100_000 } });
  let db = await open(directory, options(8192));
  // A block value whose 8 KiB blocks repeat (one block file shared by many windows), then small
  // writes (carried in the log), bigger unaligned ones (block files) and a hole past a truncate.
  const block = bytes(seed, 8192);
  const model = new Model();
  model.writeAt(0, Buffer.concat(Array.from({ length: 12 }, () => block)));
  await db.put('obj', model.bytes);
  const write = async (offset: number, data: Buffer) => {
    await db.writeAt('obj', offset, data);
    model.writeAt(offset, data);
  };
  const check = async (context: string) => {
    // Every part is kept until the end: a window built in a block must not change a part
    // yielded before it (a view of the same block).
    const parts = await collect(db.createReadStream('obj'));
    assert.ok(Buffer.concat(parts).equals(model.bytes), `${context}: whole stream differs (seed ${seed})`);
    for (let range = 0; range < 8; range++) {
      const start = int(model.bytes.length);
      const end = Math.min(model.bytes.length - 1, start + int(40_000));
      assert.ok((await readRange(db, 'obj', start, end)).equals(model.bytes.subarray(start, end + 1)), `${context}: range ${start}..${end} (seed ${seed})`);
    }
    assert.deepEqual(await db.get('obj'), model.bytes, `${context}: get (seed ${seed})`);
  };
  for (let index = 0; index < 60; index++) await write(int(model.bytes.length - 600), bytes(seed + index, 1 + int(600)));
  for (let index = 0; index < 6; index++) await write(int(model.bytes.length - 12_000), bytes(seed + 100 + index, 5000 + int(6000)));
  await check('8 KiB blocks');
  await db.truncate('obj', 70_000);
  model.truncate(70_000);
  await write(90_000, bytes(seed + 200, 300));
  await check('after a truncate and a write past the end');
  assert.ok((db.objectStats('obj')?.maxSlicesPerChunk ?? 0) > 10, 'the chunks are fragmented');
  await db.close();
  // Windows of 4 KiB over slices of 8 KiB blocks: two windows per block, each built in its own copy.
  db = await open(directory, options(4096));
  for (let index = 0; index < 30; index++) await write(int(model.bytes.length - 600), bytes(seed + 300 + index, 1 + int(600)));
  await check('4 KiB windows over 8 KiB blocks');
  await assertVerified(db, 'fragmented stream');
  await db.close();
});

test('paced background compaction: rewrites at most compactBudget bytes per byte written while writes flow, catches up on idle(), syncCompactAt still bounds every chunk, close() does not wait for a pause', async (t) => {
  const seed = testSeed('objects paced compaction');
  const next = random(seed);
  const chunkBytes = 16384;
  const budget = 1;
  const directory = temporaryDirectory(t);
  // A pause never comes by itself here (an hour): only idle() or close() ends a paced wait.
  const objects = { chunkBytes, compactAt: 4, syncCompactAt: 40, compactBudget: budget, compactQuietMs: 3_600_000 };
  let db = await open(directory, { ...SMALL, objects });
  const model = new Model();
  model.writeAt(0, bytes(seed, 8 * chunkBytes));
  await db.writeAt('paced', 0, model.bytes);
  await db.idle();
  let written = 0;
  const rewrittenBefore = db.stats().objects.bytesRewritten;
  for (let index = 0; index < 300; index++) {
    const data = bytes(seed + 1 + index, 1 + Math.floor(next() * 700));
    const offset = Math.floor(next() * (model.bytes.length - data.length));
    await db.writeAt('paced', offset, data);
    model.writeAt(offset, data);
    written += data.length;
    const stats = db.stats().objects;
    // Compaction starts a chunk only once what it rewrote is paid for, so it runs at most one
    // chunk ahead, plus at most one chunk's worth banked before the loop (the first write).
    const rewritten = stats.bytesRewritten - rewrittenBefore;
    assert.ok(rewritten <= budget * written + 2 * chunkBytes, `write ${index}: ${rewritten} bytes rewritten for ${written} written (seed ${seed})`);
    const maxSlices = db.objectStats('paced')?.maxSlicesPerChunk ?? 0;
    assert.ok(maxSlices <= objects.syncCompactAt, `write ${index}: a chunk holds ${maxSlices} slices, past syncCompactAt (seed ${seed})`);
  }
  const paced = db.stats().objects;
  assert.ok(paced.pacedWaits > 0, 'compaction waited for writes to pay');
  assert.ok((db.objectStats('paced')?.maxSlicesPerChunk ?? 0) > objects.compactAt, 'chunks were left past compactAt while paced');
  await db.idle();
  assert.ok((db.objectStats('paced')?.maxSlicesPerChunk ?? 99) <= objects.compactAt, `idle() catches up: ${JSON.stringify(db.objectStats('paced')?.chunks.map((chunk) => chunk.slices))}`);
  assert.deepEqual(await db.get('paced'), model.bytes);
  await assertVerified(db, 'paced compaction');
  // A paced wait in progress does not hold up close().
  for (let index = 0; index < 200; index++) {
    const data = bytes(seed + 1000 + index, 600);
    const offset = Math.floor(next() * (model.bytes.length - data.length));
    await db.writeAt('paced', offset, data);
    model.writeAt(offset, data);
  }
  assert.ok(db.stats().objects.pacedWaits > paced.pacedWaits, 'a paced wait is in progress at close');
  await db.close();
  db = await open(directory, { ...SMALL, objects });
  assert.deepEqual(await db.get('paced'), model.bytes);
  await db.close();
});

/** The real file system, listing block files opened for reading; `gate` holds the open of the one whose name holds `held`. */
class BlockReadOpens extends NodeFileSystem {
  readonly opened: string[] = [];
  readonly gate = new Gate();
  held = '';

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    if (path.endsWith('.blk') && mode === 'read') {
      this.opened.push(path);
      await this.gate.pass(path.includes(this.held));
    }
    return super.open(path, mode);
  }
}

test('an object stream reads the next chunk\'s first block ahead while it waits for the last block of a chunk', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new BlockReadOpens();
  // Two chunks of two 4 KiB block files each (inlineBytes 0: none carried in the log), no cache.
  const db = await open(directory, { fileSystem, valueThreshold: 100, blockBytes: 4096, blockCacheBytes: 0, objects: { chunkBytes: 8192, compaction: false, inlineBytes: 0 } });
  const value = bytes(7, 16_384);
  await db.append('obj', value);
  const hex = (block: number): string => createHash('sha256').update(value.subarray(block * 4096, (block + 1) * 4096)).digest('hex');
  // Hold the read of chunk 0's last block (read ahead while the first window is served).
  fileSystem.held = hex(1);
  fileSystem.gate.arm();
  const stream = db.createReadStream('obj');
  const parts: Buffer[] = [];
  const firstData = new Promise<void>((resolve) => stream.once('data', () => resolve()));
  stream.on('data', (part: Buffer) => parts.push(part));
  const ended = new Promise<void>((resolve, reject) => {
    stream.once('end', resolve);
    stream.once('error', reject);
  });
  await fileSystem.gate.reached;
  await firstData;
  // The stream then asks for the second window, whose block is held: everything up to that wait
  // is synchronous or microtasks, so one turn of the event loop lets it get there.
  await new Promise((resolve) => setImmediate(resolve));
  const aheadIntoChunk1 = fileSystem.opened.some((path) => path.includes(hex(2)));
  fileSystem.gate.release();
  await ended;
  assert.ok(Buffer.concat(parts).equals(value));
  assert.ok(aheadIntoChunk1, `chunk 1's first block was not opened while chunk 0's last one was held; opened: ${fileSystem.opened.map((path) => path.slice(-20)).join(', ')}`);
  await db.close();
});

test('paced background compaction leaves a chunk alone during a burst until it holds half the slices pacing lets it reach; idle() catches up', async (t) => {
  const seed = testSeed('objects burst worth');
  const next = random(seed);
  const chunkBytes = 16384;
  const directory = temporaryDirectory(t);
  // Budget 1 and 512-byte writes: a chunk reaches about 16384 / 512 = 32 slices between paced
  // compactions, so during the burst none is compacted below 16, though all pass compactAt and
  // the first write banked credit for one.
  const objects = { chunkBytes, compactAt: 4, syncCompactAt: 1000, compactBudget: 1, compactQuietMs: 3_600_000 };
  const db = await open(directory, { ...SMALL, objects });
  const model = new Model();
  model.writeAt(0, bytes(seed, 8 * chunkBytes));
  await db.writeAt('burst', 0, model.bytes);
  await db.idle();
  const heavyBefore = db.stats().objects.heavyCompactions;
  for (let round = 0; round < 12; round++) {
    for (let chunk = 0; chunk < 8; chunk++) {
      const offset = chunk * chunkBytes + Math.floor(next() * (chunkBytes - 512));
      const data = bytes(seed + 1 + round * 8 + chunk, 512);
      await db.writeAt('burst', offset, data);
      model.writeAt(offset, data);
    }
  }
  const stats = db.objectStats('burst');
  assert.ok((stats?.chunks.every((chunk) => chunk.slices > objects.compactAt) ?? false), `every chunk is past compactAt: ${JSON.stringify(stats?.chunks.map((chunk) => chunk.slices))}`);
  assert.equal(db.stats().objects.heavyCompactions - heavyBefore, 0, `no chunk of 13 slices was compacted during the burst (seed ${seed})`);
  await db.idle();
  assert.ok((db.objectStats('burst')?.maxSlicesPerChunk ?? 99) <= objects.compactAt, 'idle() catches up');
  assert.ok(db.stats().objects.heavyCompactions - heavyBefore >= 8);
  assert.deepEqual(await db.get('burst'), model.bytes);
  await db.close();
});

test('background compaction leaves append-shaped chunks of large enough slices alone (their reads need no rewrite); smaller or overlapping slices are compacted; syncCompactAt still bounds them', async (t) => {
  const directory = temporaryDirectory(t);
  // 4 KiB blocks: appends averaging at least 4 KiB are left alone.
  const options = { ...SMALL, objects: { chunkBytes: 65536, compactAt: 4, syncCompactAt: 1000 } };
  const db = await open(directory, options);
  const models = new Map<string, Model>();
  const write = async (key: string, offset: number, data: Buffer): Promise<void> => {
    const model = models.get(key) ?? new Model();
    models.set(key, model);
    await db.writeAt(key, offset, data);
    model.writeAt(offset, data);
  };
  // 12 appends of 4-5 KiB (varying sizes) into one 64 KiB chunk: left as 12 slices.
  for (let index = 0; index < 12; index++) await write('log', models.get('log')?.bytes.length ?? 0, bytes(300 + index, 4096 + index * 50));
  // The same shape with a gap between slices (writes past the end leave holes): still append-shaped.
  for (let index = 0; index < 8; index++) await write('gaps', index * 6000, bytes(400 + index, 4500));
  // Appends of 1 KiB: too small, compacted.
  for (let index = 0; index < 12; index++) await write('small', index * 1024, bytes(500 + index, 1024));
  // Large slices that overlap (each starts before the previous ends): compacted.
  for (let index = 0; index < 8; index++) await write('overlap', index * 4000, bytes(600 + index, 4500));
  await db.idle();
  assert.equal(db.objectStats('log')?.maxSlicesPerChunk, 12, JSON.stringify(db.objectStats('log')));
  assert.equal(db.objectStats('gaps')?.maxSlicesPerChunk, 8, JSON.stringify(db.objectStats('gaps')));
  assert.ok((db.objectStats('small')?.maxSlicesPerChunk ?? 99) <= 4, JSON.stringify(db.objectStats('small')));
  assert.ok((db.objectStats('overlap')?.maxSlicesPerChunk ?? 99) <= 4, JSON.stringify(db.objectStats('overlap')));
  for (const [key, model] of models) assert.deepEqual(await db.get(key), model.bytes, key);
  await assertVerified(db, 'append-shaped chunks');
  await db.close();
  // syncCompactAt is still the hard bound for an append-shaped chunk.
  const bounded = await open(`${directory}-bounded`, { ...options, objects: { ...options.objects, syncCompactAt: 6 } });
  t.after(() => rmSync(`${directory}-bounded`, { recursive: true, force: true }));
  const model = new Model();
  for (let index = 0; index < 12; index++) {
    const data = bytes(700 + index, 4096);
    await bounded.append('log', data);
    model.writeAt(model.bytes.length, data);
    assert.ok((bounded.objectStats('log')?.maxSlicesPerChunk ?? 99) <= 6);
  }
  assert.ok(bounded.stats().objects.syncCompactions > 0);
  assert.deepEqual(await bounded.get('log'), model.bytes);
  await bounded.close();
  // Past objects.appendSlicesMax slices in the object, append-shaped chunks are compacted too.
  for (const appendSlicesMax of [16_384, 10]) {
    const path = `${directory}-max-${appendSlicesMax}`;
    const store = await open(path, { ...options, durability: 'none', objects: { ...options.objects, appendSlicesMax } });
    t.after(() => rmSync(path, { recursive: true, force: true }));
    const appended = new Model();
    for (let index = 0; index < 40; index++) {
      const data = bytes(800 + index, 4096);
      await store.append('log', data);
      appended.writeAt(appended.bytes.length, data);
    }
    await store.idle();
    const slices = store.objectStats('log')?.slices ?? 0;
    const heavy = store.stats().objects.heavyCompactions;
    if (appendSlicesMax === 10) assert.ok(heavy > 0 && slices < 40, `bounded: ${heavy} heavy compactions, ${slices} slices`);
    else assert.ok(heavy === 0 && slices === 40, `unbounded: ${heavy} heavy compactions, ${slices} slices`);
    assert.deepEqual(await store.get('log'), appended.bytes);
    await store.close();
  }
  await assert.rejects(open(`${directory}-bad`, { objects: { appendSlicesMax: -1 } }), /appendSlicesMax/);
});

test('an object write keeps a value inline only up to objects.keepInlineBytes (a truncate up to valueThreshold); past it the value becomes an object, its bytes carried in the log when small', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new SyncCountingFileSystem();
  const db = await open(directory, { fileSystem, valueThreshold: 65536, blockBytes: 65536, gc: { minAgeMs: 0 }, objects: { keepInlineBytes: 2048, inlineBytes: 16384, compaction: false } });
  const model = new Model();
  // Within keepInlineBytes: inline, rewritten whole.
  await db.append('k', bytes(1, 1000));
  model.writeAt(0, bytes(1, 1000));
  await db.writeAt('k', 500, bytes(2, 1548));
  model.writeAt(500, bytes(2, 1548));
  assert.equal(db.objectStats('k'), undefined, 'at 2048 bytes the value is still inline');
  // Past it (though far below valueThreshold): an object, the old bytes carried in the log with
  // the new slice, in one write: one fsync, no block file.
  fileSystem.reset();
  await db.append('k', bytes(3, 10));
  model.writeAt(model.bytes.length, bytes(3, 10));
  assert.equal(db.objectStats('k')?.slices, 2);
  assert.equal(fileSystem.fileSyncs, 1);
  assert.equal(fileSystem.blockFileSyncs + fileSystem.directorySyncs, 0);
  assert.deepEqual(await db.get('k'), model.bytes);
  // A missing key written past keepInlineBytes is an object from its first write.
  await db.append('log', bytes(4, 3000));
  assert.equal(db.objectStats('log')?.slices, 1);
  // A value put inline and larger than inlineBytes becomes an object in block files.
  await db.put('big', bytes(5, 40_000));
  fileSystem.reset();
  await db.writeAt('big', 0, 'x');
  assert.equal(fileSystem.blockFileSyncs, 1, 'the 40,000 bytes went to a block file');
  const big = bytes(5, 40_000);
  big.write('x', 0);
  assert.deepEqual(await db.get('big'), big);
  // A truncate keeps a value inline up to valueThreshold.
  await db.put('t', bytes(6, 30_000));
  await db.truncate('t', 20_000);
  assert.equal(db.objectStats('t'), undefined);
  assert.deepEqual(await db.get('t'), bytes(6, 30_000).subarray(0, 20_000));
  await assertVerified(db, 'keepInlineBytes');
  await db.close();
  await assert.rejects(open(`${directory}-bad`, { objects: { keepInlineBytes: -1 } }), /keepInlineBytes/);
});

/**
 * Holds the next log fdatasync after `arm()` until released; with `newFilesOnly`, the next one of
 * a log file opened after `arm()` (so a roll's seal of the old segment passes).
 */
class DatasyncGate {
  private armed: { reached: () => void; wait: Promise<void>; since: number | undefined } | undefined;
  private opened = 0;

  arm(newFilesOnly = false): { reached: Promise<void>; release: () => void } {
    let release = (): void => {};
    let reached = (): void => {};
    const wait = new Promise<void>((resolve) => (release = resolve));
    const reachedPromise = new Promise<void>((resolve) => (reached = resolve));
    this.armed = { reached, wait, since: newFilesOnly ? this.opened : undefined };
    return { reached: reachedPromise, release };
  }

  wrap(handle: FileHandle, path: string): FileHandle {
    if (!path.endsWith('.log')) return handle;
    const order = ++this.opened;
    const datasync = handle.datasync.bind(handle);
    handle.datasync = async () => {
      const armed = this.armed;
      if (armed !== undefined && (armed.since === undefined || order > armed.since)) {
        this.armed = undefined;
        armed.reached();
        await armed.wait;
      }
      await datasync();
    };
    // A gate cannot hold a synchronous call: a store under one goes through the thread pool.
    handle.datasyncSync = () => {
      throw new Error('a gated log fdatasync on the main thread: open the store with inlineSyncMaxMs: 0');
    };
    return handle;
  }
}

/** The real file system with a `DatasyncGate`. */
class GatedFileSystem extends NodeFileSystem {
  readonly gate = new DatasyncGate();

  arm(newFilesOnly = false): { reached: Promise<void>; release: () => void } {
    return this.gate.arm(newFilesOnly);
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    return this.gate.wrap(await super.open(path, mode), path);
  }

  override openSync(path: string, mode: OpenMode): FileHandle {
    return this.gate.wrap(super.openSync(path, mode), path);
  }
}

/** The crash-simulating file system with a `DatasyncGate` (its `open` goes through `openSync`). */
class GatedCrashFileSystem extends CrashFileSystem {
  readonly gate = new DatasyncGate();

  override openSync(path: string, mode: OpenMode): FileHandle {
    return this.gate.wrap(super.openSync(path, mode), path);
  }
}

/** Wait (a macrotask turn at a time) until `condition` holds, or `limitMs` passed; returns whether it holds. */
async function until(condition: () => boolean, limitMs: number): Promise<boolean> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > limitMs) return false;
    await new Promise((resolve) => setImmediate(resolve));
  }
  return true;
}

test('a small slice whose bytes are already stored names the existing block instead of storing them again; the block survives its last other owner going while the write is in flight, through segment compaction, and reopen', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new GatedFileSystem();
  // Tiny segments: every write rolls the log, so each write's entries sit in a segment of their own.
  // 8 KiB chunks: a write of the same 8 KiB twice carries two identical slices.
  // A gate holds only a thread-pool fdatasync (inlineSyncMaxMs: 0).
  const options = { fileSystem, inlineSyncMaxMs: 0, segmentBytes: 1024, valueThreshold: 1000, blockBytes: 65536, gc: { minAgeMs: 0 }, objects: { chunkBytes: 8192, compaction: false, inlineBytes: 16384, keepInlineBytes: 0 } };
  let db = await open(directory, options);
  const record = bytes(1, 8192);
  await db.append('a', record);
  const logBlocks = db.stats().objects.logBlocks;
  await db.append('b', record);
  await db.append('a', record);
  // Twice in one write: stored once.
  const twice = Buffer.concat([bytes(2, 8192), bytes(2, 8192)]);
  await db.writeAt('c', 0, twice);
  let stats = db.stats().objects;
  assert.equal(stats.slicesDeduplicated, 3);
  assert.equal(stats.logBlocks, logBlocks + 1, 'one new block: the one written twice in one write');
  assert.deepEqual(await db.get('a'), Buffer.concat([record, record]));
  assert.deepEqual(await db.get('b'), record);
  assert.deepEqual(await db.get('c'), twice);

  // The race: 'y' reuses the block of 'x' while a write dropping 'x' is ahead of it in the log;
  // that write is applied first (the block has no reference left), and the segment holding the
  // block's only copy is compacted while 'y''s record is still in flight.
  const shared = bytes(3, 8192);
  await db.append('x', shared);
  // Nothing dead left for background compaction but what the race makes dead.
  await db.compact();
  await db.idle();
  const bytesRead = db.stats().compaction.bytesRead;
  const compacted = db.stats().compaction.segmentsCompacted;
  const first = fileSystem.arm();
  const dropping = db.put('x', 'small');
  await first.reached;
  const deduplicated = db.stats().objects.slicesDeduplicated;
  const reusing = db.append('y', shared);
  assert.ok(await until(() => db.stats().objects.slicesDeduplicated > deduplicated, 10_000), 'the write reusing the block was queued');
  const second = fileSystem.arm();
  first.release();
  await dropping;
  await second.reached;
  // Background segment compaction takes the dead segment now.
  assert.ok(await until(() => db.stats().compaction.bytesRead > bytesRead, 10_000), 'background compaction read the dead segment');
  // Without the hold it would delete the block's only copy now; give it the chance to.
  await until(() => db.stats().compaction.segmentsCompacted > compacted, 300);
  second.release();
  await reusing;
  await db.idle();
  assert.deepEqual(await db.get('y'), shared);
  await assertVerified(db, 'after the race');
  await db.close();
  for (const replay of [false, true]) {
    if (replay) rmSync(join(directory, 'index.hint'));
    db = await open(directory, { ...options, fileSystem: new NodeFileSystem() });
    assert.deepEqual(await db.get('y'), shared, replay ? 'replayed' : 'from the checkpoint');
    assert.deepEqual(await db.get('b'), record);
    assert.deepEqual(await db.get('c'), twice);
    await db.compact();
    await db.gc();
    assert.deepEqual(await db.get('y'), shared, 'after compaction and GC');
    await assertVerified(db, 'reopened');
    await db.close();
  }
});

test('segment compaction waits while slice compaction catches up, instead of copying forward blocks carried in the log that the catch-up is about to make dead', async (t) => {
  const seed = testSeed('objects catch-up');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  // A budget so small that no chunk is compacted during the burst: all of it happens in idle()'s catch-up.
  // Stalls (the space bound, which overrides the wait) set far away: this is about the wait itself.
  const db = await open(directory, { durability: 'none', segmentBytes: 65536, compaction: { stallRatio: 0.95 }, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0 }, objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 1000, compactBudget: 0.01, compactQuietMs: 600_000 } });
  const model = new Model();
  const base = bytes(1, 262_144);
  await db.put('obj', base);
  model.writeAt(0, base);
  for (let index = 0; index < 400; index++) {
    const offset = Math.floor(next() * (262_144 - 512));
    const data = bytes(10 + index, 512);
    await db.writeAt('obj', offset, data);
    model.writeAt(offset, data);
  }
  const before = db.stats();
  assert.equal(before.objects.heavyCompactions, 0, 'nothing compacted during the burst');
  await db.idle();
  const after = db.stats();
  assert.ok(after.objects.heavyCompactions >= 16, `${after.objects.heavyCompactions} heavy compactions`);
  const carried = after.objects.inlineBytes;
  const copied = after.compaction.bytesWritten - before.compaction.bytesWritten;
  // Only what stays live is copied (records and manifests), not the carried bytes the catch-up killed.
  assert.ok(copied < carried / 10, `segment compaction copied ${copied} bytes, ${carried} bytes were carried in the log`);
  assert.ok(after.compaction.segmentsCompacted > 0, 'the dead segments were compacted after the catch-up');
  assert.deepEqual(await db.get('obj'), model.bytes);
  await assertVerified(db, 'after the catch-up');
  await db.close();
});

test('during a burst of object writes, segment compaction leaves segments whose live bytes are mostly blocks of queued chunks (they die when those are compacted), but still compacts other segments', async (t) => {
  const seed = testSeed('objects burst segments');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  // No pause ever ends the burst (compactQuietMs): slice compaction runs paced, chunks stay queued.
  // Durable writes: background work runs while their fsyncs are in flight, as in a real burst.
  const db = await open(directory, { segmentBytes: 65536, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0 }, objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 1000, compactQuietMs: 600_000 } });
  const model = new Model();
  const base = bytes(1, 262_144);
  await db.put('obj', base);
  model.writeAt(0, base);
  const values = new Map<string, Buffer>();
  for (let index = 0; index < 1200; index++) {
    const offset = Math.floor(next() * (262_144 - 512));
    const data = bytes(10 + index, 512);
    await db.writeAt('obj', offset, data);
    model.writeAt(offset, data);
    // Small values overwritten again and again: segments of dead records, live bytes not blocks.
    const key = `k${index % 50}`;
    const value = bytes(100_000 + index, 200);
    await db.put(key, value);
    values.set(key, value);
  }
  const stats = db.stats();
  assert.ok(stats.objects.heavyCompactions > 0, 'slice compaction ran during the burst');
  const copied = stats.compaction.bytesWritten;
  assert.ok(stats.compaction.segmentsCompacted > 0, 'segments were compacted during the burst');
  // Without the wait it copied more than the carried bytes themselves (1.4 times them, seed 1).
  assert.ok(copied < stats.objects.inlineBytes * 0.75, `segment compaction copied ${copied} bytes during the burst, ${stats.objects.inlineBytes} bytes were carried in the log`);
  await db.idle();
  assert.deepEqual(await db.get('obj'), model.bytes);
  for (const [key, value] of values) assert.deepEqual(await db.get(key), value, key);
  await assertVerified(db, 'after the burst');
  await db.close();
});

test('a checkpoint taken while a write that reuses a carried block is in flight lists the block, even with its last other owner gone: a crash right after the write is durable recovers it from that checkpoint', async () => {
  const fileSystem = new GatedCrashFileSystem();
  // Tiny segments (every write rolls the log, and each roll writes a checkpoint); no background
  // compaction or GC, which would write later checkpoints of their own. A gate holds only a
  // thread-pool fdatasync (inlineSyncMaxMs: 0).
  const options = { inlineSyncMaxMs: 0, segmentBytes: 1024, valueThreshold: 1000, blockBytes: 65536, compaction: false as const, gc: false as const, objects: { chunkBytes: 8192, compaction: false, inlineBytes: 16384, keepInlineBytes: 0 } };
  const db = await open('/db', { fileSystem, ...options });
  const shared = bytes(3, 8192);
  await db.append('x', shared);
  const first = fileSystem.gate.arm();
  // Large enough that the reusing write (a small record: its block is not stored again) rolls the log.
  const dropping = db.put('x', bytes(9, 900));
  await first.reached;
  const deduplicated = db.stats().objects.slicesDeduplicated;
  const reusing = db.append('y', shared);
  assert.ok(await until(() => db.stats().objects.slicesDeduplicated > deduplicated, 10_000), 'the write reusing the block was queued');
  const written = db.stats().checkpoints.written;
  // The write's own fdatasync, in the segment the roll before it creates (the roll's seal passes).
  const second = fileSystem.gate.arm(true);
  first.release();
  await dropping;
  await second.reached;
  // The roll's checkpoint: taken with 'x' dropping the block and the reusing write not applied.
  assert.ok(await until(() => db.stats().checkpoints.written > written, 10_000), 'the roll wrote its checkpoint');
  second.release();
  await reusing;
  // Power loss now: the write is durable, the checkpoint before it is the newest.
  const crashed = fileSystem.crash({ unsynced: 'drop' });
  const reopened = await open('/db', { fileSystem: crashed, ...options });
  assert.ok(reopened.stats().recovery.usedCheckpoint, 'recovered from the checkpoint');
  assert.deepEqual(await reopened.get('y'), shared);
  await assertVerified(reopened, 'recovered');
  await reopened.close();
  await db.close();
});
