/**
 * The cache of verified blocks: against a model of what was offered (copies exact, capacity
 * never passed, admission on the second read, none of an oversized block), and in a store: hot
 * values served from memory as copies, `verify()` still reading the disk, deleted blocks leaving
 * the cache.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BlockCache } from '../../src/blob/block-cache.js';
import { BlockStore, sha256 } from '../../src/blob/block-store.js';
import type { FileHandle, OpenMode, OpenOptions } from '../../src/fs/types.js';
import { NodeFileSystem, open } from '../../src/index.js';
import { collect, random, seededBytes as bytes, temporaryDirectory, testSeed } from '../helpers.js';

const SMALL = { valueThreshold: 1000, blockBytes: 4096 };

test('the cache returns exact copies, stays within capacity and admits a block on its second read', () => {
  const seed = testSeed('block cache model');
  const next = random(seed);
  const blocks = Array.from({ length: 40 }, (_, index) => bytes(seed + index, 1 + Math.floor(next() * 5000)));
  for (const capacityBytes of [0, 8 * 5000, 64 * 1024, 1 << 20]) {
    const cache = new BlockCache(capacityBytes);
    const context = `seed ${seed}, capacity ${capacityBytes}`;
    for (let step = 0; step < 5000; step++) {
      const index = Math.floor((next() < 0.5 ? next() * next() : next()) * blocks.length);
      const block = blocks[index] as Buffer;
      const hex = `b${index}`;
      const roll = next();
      if (roll < 0.02) {
        cache.delete(hex);
        assert.equal(cache.copyOf(hex, undefined), undefined, `${context}: deleted ${hex} still read`);
        continue;
      }
      const target = Buffer.alloc(block.length + 10, 0xee);
      const hit = roll < 0.5 ? cache.copyTo(hex, block.length, target, 10) : (cache.copyOf(hex, block.length)?.copy(target, 10) ?? 0) > 0;
      if (hit) {
        assert.ok(target.subarray(10).equals(block), `${context}: step ${step} read wrong bytes of ${hex}`);
        assert.equal(target[9], 0xee, `${context}: a copy wrote before its offset`);
      } else {
        cache.offer(hex, block);
      }
      assert.ok(cache.sizeBytes <= capacityBytes, `${context}: ${cache.sizeBytes} bytes held`);
      // A cached block is never handed out under another length.
      assert.equal(cache.copyOf(hex, block.length + 1), undefined);
    }
    if (capacityBytes === 0) assert.equal(cache.hits, 0, context);
    else assert.ok(cache.hits > 0, `${context}: no hits`);
  }
});

test('a block comes in on its second read, not its first; one over an eighth of the capacity never', () => {
  const cache = new BlockCache(80_000);
  const block = bytes(1, 9000);
  cache.offer('a', block);
  assert.equal(cache.copyOf('a', undefined), undefined, 'admitted on its first read');
  cache.offer('a', block);
  assert.ok(cache.copyOf('a', undefined)?.equals(block));
  const large = bytes(2, 10_001);
  cache.offer('large', large);
  cache.offer('large', large);
  assert.equal(cache.copyOf('large', undefined), undefined, 'a block over an eighth of the capacity was cached');
  // The cached bytes are the cache's own: changing the buffer offered, or a copy handed out, changes nothing.
  block.fill(0);
  (cache.copyOf('a', undefined) as Buffer).fill(1);
  assert.ok(cache.copyOf('a', undefined)?.equals(bytes(1, 9000)));
});

test('while full, a block read many times still comes in, and blocks read since the hand passed stay', () => {
  const cache = new BlockCache(8 * 1000);
  const blocks = Array.from({ length: 30 }, (_, index) => bytes(100 + index, 1000));
  // Fill it: blocks 0-7, each read twice.
  for (let index = 0; index < 8; index++) for (let read = 0; read < 2; read++) cache.offer(`b${index}`, blocks[index] as Buffer);
  assert.equal(cache.sizeBytes, 8000);
  // Blocks 0-3 are read again (visited).
  for (let index = 0; index < 4; index++) assert.ok(cache.copyOf(`b${index}`, 1000));
  // A hot block read over and over while the cache is full: in after at most 8 reads from disk past its first.
  let reads = 0;
  while (cache.copyOf('hot', 1000) === undefined) {
    cache.offer('hot', blocks[29] as Buffer);
    reads++;
    assert.ok(reads <= 9, 'a block read over and over never came in while the cache was full');
  }
  // SIEVE: the first unvisited block from the oldest (b4) went, the visited ones stayed.
  for (let index = 0; index < 4; index++) assert.ok(cache.copyOf(`b${index}`, 1000), `b${index} was read since it came in, yet evicted`);
  assert.equal(cache.copyOf('b4', 1000), undefined);
});

test('in a store: a value read again is served from the cache as a copy; streams too', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, SMALL);
  const value = bytes(3, 4096 * 3 + 100);
  await db.put('big', value);
  assert.ok(db.getSync('big')?.equals(value));
  assert.ok((await db.get('big'))?.equals(value));
  assert.equal(db.stats().blockCache.hits, 0);
  // Third read: every block from memory.
  const third = db.getSync('big') as Buffer;
  assert.ok(third.equals(value));
  assert.equal(db.stats().blockCache.hits, 4);
  assert.equal(db.stats().blockCache.bytes, value.length);
  third.fill(0);
  assert.ok((await db.get('big'))?.equals(value), 'changing a value a read returned changed the cache');
  const chunks = await collect(db.createReadStream('big', { start: 4000, end: 9000 }));
  assert.ok(Buffer.concat(chunks).equals(value.subarray(4000, 9001)));
  for (const chunk of chunks) chunk.fill(0);
  assert.ok(Buffer.concat(await collect(db.createReadStream('big'))).equals(value), 'changing a streamed chunk changed the cache');
  await db.close();

  // blockCacheBytes: 0 reads the disk every time.
  const uncached = await open(directory, { ...SMALL, blockCacheBytes: 0 });
  for (let read = 0; read < 3; read++) assert.ok(uncached.getSync('big')?.equals(value));
  assert.deepEqual(uncached.stats().blockCache, { bytes: 0, hits: 0, misses: 0 });
  await uncached.close();
});

test('verify() reads the blocks on disk, not the cached copies', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, SMALL);
  const value = bytes(4, 4096 * 2);
  await db.put('big', value);
  for (let read = 0; read < 3; read++) assert.ok(db.getSync('big')?.equals(value));
  assert.equal(db.stats().blockCache.bytes, value.length);
  const blockName = `${createHash('sha256').update(value.subarray(4096)).digest('hex')}.blk`;
  const blockPath = join(directory, 'blocks', blockName);
  const file = readFileSync(blockPath);
  file[100] = (file[100] as number) ^ 1;
  writeFileSync(blockPath, file);
  // The cached copy was verified when it was read: reads still return the stored value, never the damaged bytes.
  assert.ok(db.getSync('big')?.equals(value));
  const result = await db.verify();
  assert.equal(result.ok, false, 'verify() trusted the cache over the damaged file');
  assert.ok(result.problems.some((problem) => problem.kind === 'block' && problem.where.includes(blockName.slice(0, 16))));
  await db.close();
});

test('a block whose file garbage collection deletes leaves the cache', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, gc: { minAgeMs: 0, intervalMs: 3_600_000 } });
  const kept = bytes(5, 4096);
  const dropped = bytes(6, 4096 * 2);
  await db.put('kept', kept);
  await db.put('dropped', dropped);
  for (let read = 0; read < 2; read++) {
    db.getSync('kept');
    db.getSync('dropped');
  }
  assert.equal(db.stats().blockCache.bytes, kept.length + dropped.length);
  await db.delete('dropped');
  for (let pass = 0; pass < 5 && db.stats().blocks.count > 1; pass++) await db.gc();
  assert.equal(db.stats().blocks.count, 1, 'gc did not delete the dropped blocks');
  assert.equal(db.stats().blockCache.bytes, kept.length, 'a deleted block stayed in the cache');
  assert.ok(db.getSync('kept')?.equals(kept));
  await db.close();
});

test('a value of small blocks as large as the cache, read whole twice, is read from memory the third time', () => {
  const capacityBytes = 4 << 20;
  const cache = new BlockCache(capacityBytes);
  const block = bytes(9, 4096);
  const count = capacityBytes / block.length;
  // Every name read once must still be remembered when the second read of the value reaches it.
  for (let pass = 0; pass < 2; pass++) for (let index = 0; index < count; index++) cache.offer(`b${index}`, block);
  let hits = 0;
  for (let index = 0; index < count; index++) if (cache.copyOf(`b${index}`, block.length) !== undefined) hits++;
  assert.equal(hits, count, `${hits} of ${count} blocks served from memory`);
});

/** Node's file system whose opens of block files for reading stop, once `gate` is set, after the file is open. */
class GatedBlockOpens extends NodeFileSystem {
  gate: Promise<void> | undefined;
  reached: (() => void) | undefined;

  override async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, mode, options);
    if (this.gate !== undefined && mode === 'read' && path.endsWith('.blk')) {
      this.reached?.();
      await this.gate;
    }
    return handle;
  }
}

test('a block removed while a read of it is in flight does not come into the cache', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new GatedBlockOpens();
  const blocks = new BlockStore(fileSystem, directory, 4096, 1 << 20);
  await blocks.open(false, directory);
  const data = bytes(11, 4096);
  const hash = sha256(data);
  const hex = hash.toString('hex');
  await blocks.write(hash, data);
  // Two reads in flight: the first to finish would be remembered, the second would bring the
  // block in.
  let release = (): void => {};
  fileSystem.gate = new Promise((resolve) => (release = resolve));
  let opened = 0;
  const bothOpen = new Promise<void>((resolve) => (fileSystem.reached = () => ++opened === 2 && resolve()));
  const reads = [blocks.read(hash, data.length), blocks.read(hash, data.length)];
  await bothOpen;
  // GC removes the block while the reads hold the file open.
  const removing = blocks.remove(hex);
  release();
  for (const read of await Promise.all(reads)) assert.ok(read.equals(data), 'a read of the open file returned other bytes');
  assert.equal(await removing, true);
  assert.equal(blocks.cache.copyOf(hex, undefined), undefined, 'a removed block came into the cache');
  assert.equal(blocks.cache.sizeBytes, 0);
});
