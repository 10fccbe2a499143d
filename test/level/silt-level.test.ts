/**
 * SiltLevel beyond abstract-level's shared suite: silt's options pass through, silt's errors map
 * onto LEVEL_* codes, data lands in (and persists in) a silt store, and the snapshots the adapter
 * maps onto silt's: each iterator's own (seek() included) and explicit ones (db.snapshot()).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { open } from '../../src/index.js';
import { LevelError, SiltLevel, SiltLevelSnapshot } from '../../src/level/index.js';
import { collect, movableClock, temporaryDirectory } from '../helpers.js';

function code(error: unknown): string | undefined {
  return (error as { code?: string } | undefined)?.code;
}

function causeCode(error: unknown): string | undefined {
  return code((error as { cause?: unknown } | undefined)?.cause);
}

test('a Level workload round-trips, with encodings and sublevels, and persists in a silt store', async (t) => {
  const location = join(temporaryDirectory(t), 'db');
  const db = new SiltLevel<string, { n: number }>(location, { valueEncoding: 'json' });
  await db.put('a', { n: 1 });
  await db.batch([
    { type: 'put', key: 'b', value: { n: 2 } },
    { type: 'put', key: 'c', value: { n: 3 } },
    { type: 'del', key: 'a' },
  ]);
  await db.batch().put('d', { n: 4 }).del('c').write();
  const users = db.sublevel<string, string>('users', { valueEncoding: 'utf8' });
  await users.put('ann', 'admin');
  assert.deepEqual(await db.get('b'), { n: 2 });
  assert.deepEqual(db.getSync('d'), { n: 4 });
  assert.deepEqual(await db.getMany(['a', 'b', 'd']), [undefined, { n: 2 }, { n: 4 }]);
  assert.deepEqual(await db.hasMany(['a', 'b']), [false, true]);
  assert.deepEqual(await db.iterator({ gte: 'b', lte: 'd' }).all(), [['b', { n: 2 }], ['d', { n: 4 }]]);
  assert.deepEqual(await users.iterator().all(), [['ann', 'admin']]);
  // The sublevel's keys are plain prefixed keys in the one silt store underneath.
  const store = db.store;
  assert.ok(store !== undefined);
  assert.deepEqual((await collect(store.keys())).map(String), ['!users!ann', 'b', 'd']);
  await db.close();
  assert.equal(db.store, undefined);

  const silt = await open(location);
  assert.equal((await silt.get('d'))?.toString(), '{"n":4}');
  assert.equal((await silt.get('!users!ann'))?.toString(), 'admin');
  await silt.close();

  const again = new SiltLevel(location, { valueEncoding: 'json' });
  assert.deepEqual(await again.values({ gte: 'a' }).all(), [{ n: 2 }, { n: 4 }]);
  assert.deepEqual(await again.keys({ gte: 'a' }).all(), ['b', 'd']);
  await again.close();
});

test("silt's open options pass through (durability, readOnly, limits)", async (t) => {
  const location = join(temporaryDirectory(t), 'db');
  const db = new SiltLevel(location, { durability: 'none', maxValueSize: 8 });
  await db.open();
  assert.equal(db.store?.stats().durability, 'none');
  const tooLarge = await db.put('k', '123456789').catch((error: unknown) => error);
  assert.equal(code(tooLarge), 'LEVEL_INVALID_VALUE');
  assert.equal(causeCode(tooLarge), 'TOO_LARGE');
  await db.put('k', 'v');
  await db.close();

  const reader = new SiltLevel(location, { readOnly: true });
  assert.equal(await reader.get('k'), 'v');
  const denied = await reader.put('k', 'w').catch((error: unknown) => error);
  assert.ok(denied instanceof LevelError);
  assert.equal(code(denied), 'LEVEL_READONLY');
  assert.equal(causeCode(denied), 'READ_ONLY');
  await reader.close();
});

test('open errors: LOCKED, missing directory, errorIfExists', async (t) => {
  const location = join(temporaryDirectory(t), 'db');
  const first = new SiltLevel(location);
  await first.open();
  const second = new SiltLevel(location);
  const locked = await second.open().catch((error: unknown) => error);
  assert.equal(code(locked), 'LEVEL_DATABASE_NOT_OPEN');
  assert.equal(causeCode(locked), 'LEVEL_LOCKED');
  assert.equal(code((locked as { cause: { cause: unknown } }).cause.cause), 'LOCKED');
  await first.close();

  const exists = await new SiltLevel(location, { errorIfExists: true }).open().catch((error: unknown) => error);
  assert.equal(code(exists), 'LEVEL_DATABASE_NOT_OPEN');
  assert.match((exists as { cause: Error }).cause.message, /exists/);

  const missing = await new SiltLevel(join(location, 'nope'), { createIfMissing: false }).open().catch((error: unknown) => error);
  assert.equal(code(missing), 'LEVEL_DATABASE_NOT_OPEN');
  assert.equal(causeCode(missing), 'LEVEL_DATABASE_NOT_OPEN');
  assert.equal(code((missing as { cause: { cause: unknown } }).cause.cause), 'NOT_FOUND');

  assert.throws(() => new SiltLevel(''), TypeError);
});

test('key errors map to LEVEL_INVALID_KEY, with the SiltError as cause', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'), { maxKeySize: 4 });
  for (const attempt of [() => db.put('', 'v'), () => db.put('12345', 'v'), () => db.get('12345'), () => db.batch([{ type: 'put', key: '12345', value: 'v' }])]) {
    const error = await attempt().catch((caught: unknown) => caught);
    assert.equal(code(error), 'LEVEL_INVALID_KEY');
    assert.ok(['INVALID_ARGUMENT', 'TOO_LARGE'].includes(causeCode(error) ?? ''));
  }
  await db.close();
});

test('an iterator reads the snapshot of its creation, also for values of overwritten and deleted keys', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'));
  await db.batch(['a', 'b', 'c', 'd'].map((key) => ({ type: 'put' as const, key, value: `${key}1` })));
  const entries = db.iterator();
  const keys = db.keys({ reverse: true });
  const values = db.values();
  await db.put('b', 'b2');
  await db.del('c');
  await db.put('bb', 'new');
  assert.deepEqual(await entries.all(), [['a', 'a1'], ['b', 'b1'], ['c', 'c1'], ['d', 'd1']]);
  assert.deepEqual(await keys.all(), ['d', 'c', 'b', 'a']);
  assert.deepEqual(await values.all(), ['a1', 'b1', 'c1', 'd1']);
  assert.deepEqual(await db.iterator().all(), [['a', 'a1'], ['b', 'b2'], ['bb', 'new'], ['d', 'd1']]);
  await db.close();
});

test('seek() is exact on the iterator\'s snapshot, forwards and backwards, whatever was written since', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'));
  await db.batch(['a', 'b', 'c', 'd', 'e'].map((key) => ({ type: 'put' as const, key, value: `${key}1` })));

  const forward = db.iterator();
  const reverse = db.keys({ reverse: true });
  const values = db.values({ gt: 'a', lt: 'e' });
  assert.deepEqual(await forward.nextv(3), [['a', 'a1'], ['b', 'b1'], ['c', 'c1']]);
  assert.deepEqual(await reverse.nextv(2), ['e', 'd']);
  await db.put('b', 'b2');
  await db.del('d');
  await db.put('bb', 'new');
  await db.put('0', 'before all');
  await db.store?.put('c', 'raw'); // writes through silt's own API too

  // Backwards after writes: still the snapshot of creation.
  forward.seek('b');
  assert.deepEqual(await forward.nextv(3), [['b', 'b1'], ['c', 'c1'], ['d', 'd1']]);
  forward.seek('');
  assert.deepEqual(await forward.next(), ['a', 'a1']);
  // Forwards, to a key that is not there, and past the end; then back after the end.
  forward.seek('c0');
  assert.deepEqual(await forward.next(), ['d', 'd1']);
  forward.seek('z');
  assert.deepEqual(await forward.next(), undefined);
  forward.seek('bz');
  assert.deepEqual(await forward.all(), [['c', 'c1'], ['d', 'd1'], ['e', 'e1']]);

  reverse.seek('z');
  assert.deepEqual(await reverse.nextv(2), ['e', 'd']);
  reverse.seek('bz');
  assert.deepEqual(await reverse.all(), ['b', 'a']);

  // Seeks outside the range stay inside it.
  values.seek('a');
  assert.deepEqual(await values.next(), 'b1');
  values.seek('d');
  assert.deepEqual(await values.all(), ['d1']);

  assert.deepEqual(await db.keys().all(), ['0', 'a', 'b', 'bb', 'c', 'e']);
  await db.close();
});

test('an iterator keeps its snapshot readable while open, also across compaction', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'), { segmentBytes: 4096, compaction: false });
  const keys = Array.from({ length: 200 }, (_, index) => `k${String(index).padStart(3, '0')}`);
  await db.batch(keys.map((key) => ({ type: 'put' as const, key, value: `old-${key}` })));
  const iterator = db.iterator();
  const snapshot = db.snapshot();
  assert.deepEqual(await iterator.next(), ['k000', 'old-k000']);
  for (const key of keys) await db.put(key, `new-${key}`);
  const store = db.store;
  assert.ok(store !== undefined);
  await store.compact();
  assert.ok(store.stats().compaction.segmentsCompacted > 0);
  iterator.seek('k100');
  assert.deepEqual(await iterator.next(), ['k100', 'old-k100']);
  iterator.seek('k001');
  assert.equal((await iterator.all()).length, 199);
  assert.equal(await db.get('k150', { snapshot }), 'old-k150');
  assert.equal((await db.values({ snapshot }).all()).filter((value) => value.startsWith('old-')).length, 200);
  assert.equal(await db.get('k150'), 'new-k150');
  await snapshot.close();
  await db.close();
});

test('explicit snapshots: every read method, sublevels, clear, close', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'));
  assert.equal(db.supports.explicitSnapshots, true);
  const users = db.sublevel<string, string>('users', { valueEncoding: 'utf8' });
  await db.batch(['a', 'b', 'c'].map((key) => ({ type: 'put' as const, key, value: `${key}1` })));
  await users.put('ann', 'admin');
  const snapshot = db.snapshot();
  const fromSublevel = users.snapshot();
  assert.ok(snapshot instanceof SiltLevelSnapshot);
  assert.equal(snapshot.revision, db.store?.stats().revision);
  await db.put('a', 'a2');
  await db.del('b');
  await db.put('d', 'd2');
  await users.put('ann', 'guest');
  await users.put('bob', 'user');

  assert.equal(await db.get('a', { snapshot }), 'a1');
  assert.equal(db.getSync('b', { snapshot }), 'b1');
  assert.equal(await db.get('d', { snapshot }), undefined);
  assert.deepEqual(await db.getMany(['a', 'b', 'd'], { snapshot }), ['a1', 'b1', undefined]);
  assert.equal(await db.has('b', { snapshot }), true);
  assert.deepEqual(await db.hasMany(['a', 'b', 'd'], { snapshot }), [true, true, false]);
  assert.deepEqual(await db.iterator({ snapshot, lt: 'a' }).all(), [['!users!ann', 'admin']]);
  assert.deepEqual(await db.keys({ snapshot, gte: 'a' }).all(), ['a', 'b', 'c']);
  assert.deepEqual(await db.values({ snapshot, reverse: true, gte: 'a' }).all(), ['c1', 'b1', 'a1']);
  // The current data is unaffected.
  assert.deepEqual(await db.getMany(['a', 'b', 'd']), ['a2', undefined, 'd2']);
  assert.deepEqual(await db.hasMany(['a', 'b', 'd']), [true, false, true]);

  // Sublevels read the root's snapshot, whichever took it.
  for (const taken of [snapshot, fromSublevel]) {
    assert.equal(await users.get('ann', { snapshot: taken }), 'admin');
    assert.equal(await users.has('bob', { snapshot: taken }), false);
    assert.deepEqual(await users.iterator({ snapshot: taken }).all(), [['ann', 'admin']]);
  }

  // seek() on an iterator of an explicit snapshot stays on it.
  const iterator = db.keys({ snapshot, gte: 'a' });
  assert.deepEqual(await iterator.nextv(3), ['a', 'b', 'c']);
  iterator.seek('b');
  assert.deepEqual(await iterator.all(), ['b', 'c']);

  // clear() deletes only what the snapshot holds.
  await db.clear({ snapshot, gte: 'a' });
  assert.deepEqual(await db.keys({ gte: 'a' }).all(), ['d']);
  assert.deepEqual(await db.keys({ snapshot, gte: 'a' }).all(), ['a', 'b', 'c']);

  // A snapshot of another database is refused.
  const other = new SiltLevel(join(temporaryDirectory(t), 'other'));
  await other.open();
  await assert.rejects(other.get('a', { snapshot }), TypeError);
  assert.throws(() => other.iterator({ snapshot }), TypeError);
  await other.close();

  await snapshot.close();
  await assert.rejects(db.get('a', { snapshot }), (error: unknown) => code(error) === 'LEVEL_SNAPSHOT_NOT_OPEN');
  await assert.rejects(db.keys({ snapshot }).all(), (error: unknown) => code(error) === 'LEVEL_SNAPSHOT_NOT_OPEN');
  // db.close() closes the snapshots left open.
  await db.close();
  assert.throws(() => fromSublevel.ref(), (error: unknown) => code(error) === 'LEVEL_SNAPSHOT_NOT_OPEN');
});

test('has() and hasMany() read no value: index only, TTL-aware', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'));
  await db.put('a', 'x');
  const store = db.store;
  assert.ok(store !== undefined);
  const clock = movableClock(t);
  await store.put('short', 'y', { ttlMs: 60_000 });
  const reads = (): never => {
    throw new Error('has() read a value');
  };
  Object.assign(store, { getSync: reads, get: reads, getEntry: reads });
  assert.equal(await db.has('a'), true);
  assert.deepEqual(await db.hasMany(['a', 'nope', 'short']), [true, false, true]);
  clock.aheadMs = 2 * 60_000;
  assert.equal(await db.has('short'), false);
  await db.close();
});

test('clear() with ranges, limit and reverse; large clears cross batch chunks', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'), { durability: 'none' });
  const keys = Array.from({ length: 10 }, (_, index) => String(index));
  await db.batch(keys.map((key) => ({ type: 'put' as const, key, value: key })));
  await db.clear({ gte: '2', lt: '5' });
  assert.deepEqual(await db.keys().all(), ['0', '1', '5', '6', '7', '8', '9']);
  await db.clear({ reverse: true, limit: 2 });
  assert.deepEqual(await db.keys().all(), ['0', '1', '5', '6', '7']);
  await db.clear({ gt: '5', lte: '6' });
  assert.deepEqual(await db.keys().all(), ['0', '1', '5', '7']);
  await db.clear();
  assert.deepEqual(await db.keys().all(), []);

  const many = Array.from({ length: 25_000 }, (_, index) => String(index).padStart(6, '0'));
  for (let start = 0; start < many.length; start += 5_000) {
    await db.batch(many.slice(start, start + 5_000).map((key) => ({ type: 'put' as const, key, value: 'x' })));
  }
  await db.put('zz', 'kept');
  await db.clear({ lt: 'z' });
  assert.deepEqual(await db.keys().all(), ['zz']);
  await db.close();
});

test('write events carry the public operations', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'));
  const seen: unknown[] = [];
  db.on('write', (operations: Array<{ type: string; key: unknown }>) => seen.push(...operations.map((operation) => [operation.type, operation.key])));
  await db.put('a', '1');
  await db.del('a');
  await db.batch([{ type: 'put', key: 'b', value: '2' }]);
  assert.deepEqual(seen, [['put', 'a'], ['del', 'a'], ['put', 'b']]);
  await db.close();
});
