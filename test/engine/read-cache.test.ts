/**
 * The read cache against an in-memory "file": every view returns exactly the file's bytes, through
 * hits, misses, evictions (tiny capacities), reads spanning two blocks, uncacheable tails,
 * dropSegment and short files; CRC marks are exact and die with the block.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { FileHandle } from '../../src/fs/types.js';
import { isChecked, markChecked, READ_CACHE_BLOCK_BYTES, ReadCache, type CacheView } from '../../src/log/read-cache.js';
import { random, testSeed } from '../helpers.js';

const BLOCK = READ_CACHE_BLOCK_BYTES;

/** A read-only handle over `contents`, counting reads. */
function memoryHandle(contents: Buffer): FileHandle & { reads: number } {
  const handle = {
    path: 'memory',
    reads: 0,
    readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
      handle.reads++;
      const end = Math.min(contents.length, position + length);
      if (position >= end) return 0;
      contents.copy(buffer, offset, position, end);
      return end - position;
    },
  };
  return handle as unknown as FileHandle & { reads: number };
}

function viewBytes(view: CacheView, length: number): Buffer {
  return Buffer.from(view.bytes.subarray(view.start, view.start + length));
}

function fileOf(seed: number, size: number): Buffer {
  const next = random(seed);
  const file = Buffer.alloc(size);
  for (let index = 0; index < size; index++) file[index] = Math.floor(next() * 256);
  return file;
}

test('views hold exactly the file bytes through hits, misses, evictions and two-block reads', () => {
  const seed = testSeed('read cache views');
  const next = random(seed);
  for (const capacityBlocks of [0, 1, 2, 3, 17, 64]) {
    const files = [fileOf(seed + 1, 40 * BLOCK + 123), fileOf(seed + 2, 5 * BLOCK)];
    const handles = files.map(memoryHandle);
    const cache = new ReadCache(capacityBlocks * BLOCK);
    for (let step = 0; step < 3000; step++) {
      const segment = Math.floor(next() * 2);
      const file = files[segment] as Buffer;
      const length = 1 + Math.floor(next() * (next() < 0.1 ? 3 * BLOCK : 300));
      const offset = Math.floor(next() * (file.length - length));
      const view = cache.view(handles[segment] as FileHandle, segment, file.length, offset, length);
      assert.ok(viewBytes(view, length).equals(file.subarray(offset, offset + length)), `capacity ${capacityBlocks}, step ${step}`);
      const hit = cache.cachedView(segment, file.length, offset, length);
      if (hit !== undefined) assert.ok(viewBytes(hit, length).equals(file.subarray(offset, offset + length)));
      if (step % 500 === 499) cache.dropSegment(segment);
    }
    assert.ok(cache.sizeBytes <= capacityBlocks * BLOCK);
  }
});

test('a cached block is read once; the unfinished last block is never cached', () => {
  const file = fileOf(7, 3 * BLOCK + 100);
  const handle = memoryHandle(file);
  const cache = new ReadCache(16 * BLOCK);
  for (let round = 0; round < 3; round++) cache.view(handle, 1, file.length, 10, 50);
  assert.equal(handle.reads, 1);
  assert.ok(cache.cachedView(1, file.length, 10, 50) !== undefined);
  // The block holding the file's end is not whole: read from the file every time.
  for (let round = 0; round < 3; round++) {
    const view = cache.view(handle, 1, file.length, 3 * BLOCK + 10, 20);
    assert.equal(view.markAt, -1);
    assert.ok(viewBytes(view, 20).equals(file.subarray(3 * BLOCK + 10, 3 * BLOCK + 30)));
  }
  assert.equal(handle.reads, 4);
  assert.equal(cache.cachedView(1, file.length, 3 * BLOCK + 10, 20), undefined);
});

test('CRC marks are exact, per block, and gone once the block is evicted or dropped', () => {
  const file = fileOf(9, 8 * BLOCK);
  const handle = memoryHandle(file);
  const cache = new ReadCache(2 * BLOCK);
  const at = (offset: number, length = 40): CacheView => cache.view(handle, 3, file.length, offset, length);
  assert.equal(isChecked(at(100)), false);
  markChecked(at(100));
  assert.equal(isChecked(at(100)), true);
  // Same granule, other offsets: not vouched for.
  assert.equal(isChecked(at(101)), false);
  assert.equal(isChecked(at(96)), false);
  // The same offset in another block, or another segment, is not marked.
  assert.equal(isChecked(at(BLOCK + 100)), false);
  assert.equal(isChecked(cache.view(handle, 4, file.length, 100, 40)), false);
  // Evicted (capacity 1) and read again: the marks do not survive.
  const small = new ReadCache(BLOCK);
  markChecked(small.view(handle, 3, file.length, 100, 40));
  assert.equal(isChecked(small.view(handle, 3, file.length, 100, 40)), true);
  small.view(handle, 3, file.length, 2 * BLOCK + 100, 40);
  assert.equal(isChecked(small.view(handle, 3, file.length, 100, 40)), false);
  assert.equal(isChecked(at(100)), true);
  cache.dropSegment(3);
  assert.equal(cache.cachedView(3, file.length, 100, 40), undefined);
  assert.equal(isChecked(at(100)), false);
  // Views that are not into the cache are never marked.
  const spanning = at(BLOCK - 10, 40);
  assert.equal(spanning.markAt, -1);
  markChecked(spanning);
  assert.equal(isChecked(spanning), false);
});

test('a file shorter than its recorded size leaves zeros, not stale bytes of an evicted block', () => {
  const full = fileOf(11, 4 * BLOCK);
  const cache = new ReadCache(1 * BLOCK);
  cache.view(memoryHandle(full), 1, full.length, 0, 100);
  // Segment 2's file is cut to half a block but claims two blocks: its block 0 reuses the slot.
  const cut = full.subarray(0, BLOCK / 2);
  const view = cache.view(memoryHandle(Buffer.from(cut)), 2, 2 * BLOCK, BLOCK / 2 - 10, 100);
  const bytes = viewBytes(view, 100);
  assert.ok(bytes.subarray(0, 10).equals(cut.subarray(BLOCK / 2 - 10)));
  assert.ok(bytes.subarray(10).equals(Buffer.alloc(90)));
});
