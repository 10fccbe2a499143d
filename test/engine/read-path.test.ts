/**
 * The get path and the iterators: every read of a damaged entry fails its CRC check, also when
 * its block is cached and other entries of that block were read (and checked) before; values and
 * keys handed out are the caller's own memory, never views of the read cache; iterators keep their
 * snapshot and generator-like behaviour.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { open, SiltError } from '../../src/index.js';
import type { OrderedIndex } from '../../src/index/ordered-index.js';
import type { EntryLocation } from '../../src/log/hint.js';
import type { ReadCache } from '../../src/log/read-cache.js';
import { collect, temporaryDirectory } from '../helpers.js';

function code(error: unknown): string | undefined {
  return error instanceof SiltError ? error.code : undefined;
}

function key(index: number): Buffer {
  const bytes = Buffer.alloc(16);
  bytes.writeUInt32BE(index, 12);
  return bytes;
}

function value(index: number): Buffer {
  return Buffer.alloc(100, index % 251);
}

/** Flip one byte of the first occurrence of `needle` in the (only) segment file of `directory`. */
function flipByteOf(directory: string, needle: Buffer): void {
  const segments = readdirSync(directory).filter((name) => name.endsWith('.log'));
  assert.equal(segments.length, 1);
  const path = join(directory, segments[0] as string);
  const file = readFileSync(path);
  const at = file.indexOf(needle);
  assert.ok(at > 0, 'the needle is in the segment');
  file[at + 50] = (file[at + 50] as number) ^ 0x40;
  writeFileSync(path, file);
}

test('a damaged entry fails its CRC on every read, even in a cached block whose other entries were checked', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { durability: 'none' });
  const count = 400;
  await db.batch(Array.from({ length: count }, (_, index) => ({ type: 'put' as const, key: key(index), value: value(index) })));
  const damaged = 200;
  // A distinctive value, so the byte to flip is easy to find in the file.
  const marker = Buffer.alloc(100, 0xab);
  marker.write('damaged-entry', 0);
  await db.put(key(damaged), marker);
  await db.batch(Array.from({ length: count }, (_, index) => ({ type: 'put' as const, key: key(count + index), value: value(index) })));
  // Damage it on disk before anything is cached, then read everything else: its neighbours'
  // blocks (its own included) are cached with the damaged bytes, and their entries checked.
  flipByteOf(directory, marker);
  for (let index = 0; index < 2 * count; index++) {
    if (index !== damaged) assert.ok(db.getSync(key(index))?.equals(value(index % count)));
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    assert.throws(() => db.getSync(key(damaged)), (error) => code(error) === 'CORRUPTION', `attempt ${attempt}`);
    await assert.rejects(db.get(key(damaged)), (error) => code(error) === 'CORRUPTION');
    await assert.rejects(db.getEntry(key(damaged)), (error) => code(error) === 'CORRUPTION');
  }
  await assert.rejects(collect(db.entries()), (error) => code(error) === 'CORRUPTION');
  await assert.rejects(collect(db.values()), (error) => code(error) === 'CORRUPTION');
  // Keys only read the index: they do not touch the damaged bytes.
  assert.equal((await collect(db.keys())).length, 2 * count);
  // Every other entry still reads, again and again.
  for (let pass = 0; pass < 2; pass++) {
    for (let index = 0; index < 2 * count; index++) {
      if (index !== damaged) assert.ok(db.getSync(key(index))?.equals(value(index % count)), `key ${index}, pass ${pass}`);
    }
  }
  await db.close();
});

test('a damaged entry read for the first time from an already cached block fails its CRC', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { durability: 'none' });
  const marker = Buffer.alloc(100, 0xcd);
  marker.write('never-read-yet', 0);
  await db.put(key(1), value(1));
  await db.put(key(2), marker);
  await db.put(key(3), value(3));
  // Fill past the first block, so the block holding the three entries is cacheable.
  await db.batch(Array.from({ length: 200 }, (_, index) => ({ type: 'put' as const, key: key(100 + index), value: value(index) })));
  flipByteOf(directory, marker);
  // Caches the block (read after the damage), checking only key 1's entry.
  assert.ok(db.getSync(key(1))?.equals(value(1)));
  assert.throws(() => db.getSync(key(2)), (error) => code(error) === 'CORRUPTION');
  assert.throws(() => db.getSync(key(2)), (error) => code(error) === 'CORRUPTION');
  assert.ok(db.getSync(key(3))?.equals(value(3)));
  await db.close();
});

/** The store's internals these tests reach into. */
function internals(db: unknown): { index: OrderedIndex<EntryLocation>; readCache: ReadCache } {
  return db as { index: OrderedIndex<EntryLocation>; readCache: ReadCache };
}

/** Three keys written, then enough after them that their block is cacheable; each read twice. */
async function readTwice(t: TestContext) {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { durability: 'none' });
  const marker = Buffer.alloc(100, 0xe7);
  marker.write('remembered-entry', 0);
  await db.put(key(1), value(1));
  await db.put(key(2), marker);
  await db.put(key(3), value(3));
  await db.batch(Array.from({ length: 200 }, (_, index) => ({ type: 'put' as const, key: key(100 + index), value: value(index) })));
  for (let pass = 0; pass < 2; pass++) {
    assert.ok(db.getSync(key(1))?.equals(value(1)));
    assert.ok(db.getSync(key(2))?.equals(marker));
    assert.ok(db.getSync(key(3))?.equals(value(3)));
  }
  return { directory, db, marker };
}

test('a checked entry is remembered for its own key only: a location reached under another key is checked in full', async (t) => {
  const { db, marker } = await readTwice(t);
  const { index } = internals(db);
  const one = key(1).toString('latin1');
  const two = key(2).toString('latin1');
  // The memo is in place (so the reads below would take the short path if it let them).
  assert.equal(index.get(one)?.verifiedKey, one);
  assert.equal(index.get(two)?.verifiedKey, two);
  // A misplaced index entry, as a bug would leave it: key 1 pointing at key 2's entry, location
  // object, memo and all. The read must not hand out key 2's value as key 1's.
  index.set(one, index.get(two) as EntryLocation);
  assert.throws(() => db.getSync(key(1)), (error) => code(error) === 'CORRUPTION');
  await assert.rejects(db.getEntry(key(1)), (error) => code(error) === 'CORRUPTION');
  assert.ok(db.getSync(key(2))?.equals(marker));
  await db.close();
});

test('a checked entry whose block is read from disk again has its CRC checked again', async (t) => {
  const { directory, db, marker } = await readTwice(t);
  const { index, readCache } = internals(db);
  const location = index.get(key(2).toString('latin1')) as EntryLocation;
  assert.notEqual(location.verifiedKey, undefined);
  // The bytes on disk go bad after the entry was checked; while its block stays cached, the
  // cached copy (checked) is what is read. Once the block is read again, the damage is found.
  flipByteOf(directory, marker);
  assert.ok(db.getSync(key(2))?.equals(marker));
  readCache.dropSegment(location.segmentId);
  assert.ok(db.getSync(key(1))?.equals(value(1)));
  assert.throws(() => db.getSync(key(2)), (error) => code(error) === 'CORRUPTION');
  assert.throws(() => db.getSync(key(2)), (error) => code(error) === 'CORRUPTION');
  assert.ok(db.getSync(key(3))?.equals(value(3)));
  await db.close();
});

test('an entry moved by compaction is checked again at its new place', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { durability: 'none', segmentBytes: 16 * 1024, compaction: false });
  const { index } = internals(db);
  // Written first and never again, at the start of the first segment (a whole, cacheable block):
  // the rest of that segment is overwritten below, so compaction moves this entry.
  await db.put(key(1000), value(9));
  for (let round = 0; round < 4; round++) {
    await db.batch(Array.from({ length: 100 }, (_, index) => ({ type: 'put' as const, key: key(index), value: value(index + round) })));
  }
  const kept = key(1000).toString('latin1');
  for (let pass = 0; pass < 2; pass++) assert.ok(db.getSync(key(1000))?.equals(value(9)));
  const before = index.get(kept) as EntryLocation;
  assert.equal(before.verifiedKey, kept);
  await db.compact();
  const after = index.get(kept) as EntryLocation;
  assert.notDeepEqual([after.segmentId, after.offsetBytes], [before.segmentId, before.offsetBytes], 'compaction moved the entry');
  assert.equal(after.verifiedKey, undefined);
  assert.ok(db.getSync(key(1000))?.equals(value(9)));
  await db.close();
});

test('values and keys handed out are copies: changing them changes no later read', async (t) => {
  const db = await open(temporaryDirectory(t), { durability: 'none' });
  await db.batch(Array.from({ length: 300 }, (_, index) => ({ type: 'put' as const, key: key(index), value: value(index) })));
  for (let round = 0; round < 2; round++) {
    const got = db.getSync(key(7)) as Buffer;
    assert.ok(got.equals(value(7)));
    got.fill(0xee);
    assert.ok((await db.get(key(7)))?.equals(value(7)));
    const entry = (await db.getEntry(key(8)))!;
    entry.key.fill(0xee);
    entry.value.fill(0xee);
    assert.ok((await db.getEntry(key(8)))?.value.equals(value(8)));
    for await (const item of db.entries({ limit: 20 })) {
      item.key.fill(0xee);
      item.value.fill(0xee);
    }
    for await (const item of db.values({ limit: 20 })) item.fill(0xee);
    const snapshot = db.snapshot();
    (snapshot.getSync(key(9)) as Buffer).fill(0xee);
    snapshot.release();
    const entries = await collect(db.entries());
    assert.equal(entries.length, 300);
    entries.forEach((item, index) => {
      assert.ok(item.key.equals(key(index)), `key ${index}`);
      assert.ok(item.value.equals(value(index)), `value ${index}`);
    });
  }
  await db.close();
});

test('iterators: snapshot at the call, limit, early return, done after the end, and after an error', async (t) => {
  const db = await open(temporaryDirectory(t), { durability: 'none' });
  await db.batch(Array.from({ length: 50 }, (_, index) => ({ type: 'put' as const, key: key(index), value: value(index) })));
  const iterator = db.entries();
  await db.delete(key(0));
  await db.put(key(1), 'changed');
  await db.put(key(1000), 'added');
  const seen = await collect(iterator);
  assert.equal(seen.length, 50);
  assert.ok(seen[0]?.key.equals(key(0)));
  assert.ok(seen[1]?.value.equals(value(1)));
  assert.deepEqual(await iterator.next(), { done: true, value: undefined });

  assert.equal((await collect(db.keys({ limit: 5 }))).length, 5);
  assert.equal((await collect(db.keys({ limit: 0 }))).length, 0);
  const reversed = await collect(db.keys({ reverse: true, limit: 2 }));
  assert.ok(reversed[0]?.equals(key(1000)) && reversed[1]?.equals(key(49)));

  const early = db.values();
  assert.equal((await early.next()).done, false);
  assert.deepEqual(await early.return?.(), { done: true, value: undefined });
  assert.deepEqual(await early.next(), { done: true, value: undefined });

  let broken = 0;
  for await (const entry of db.entries()) {
    assert.ok(entry.key.length > 0);
    if (++broken === 3) break;
  }
  assert.equal(broken, 3);

  // Concurrent next() calls resolve in order.
  const concurrent = db.keys();
  const results = await Promise.all([concurrent.next(), concurrent.next(), concurrent.next()]);
  assert.deepEqual(
    results.map((result) => (result.value as Buffer).readUInt32BE(12)),
    [1, 2, 3],
  );
  await concurrent.return?.();

  // A closed store makes a live iterator fail, and the iterator is done afterwards.
  const pending = db.entries();
  assert.equal((await pending.next()).done, false);
  await db.close();
  await assert.rejects(pending.next(), (error) => code(error) === 'CLOSED');
  assert.deepEqual(await pending.next(), { done: true, value: undefined });
});
