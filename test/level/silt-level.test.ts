/**
 * SiltLevel beyond abstract-level's shared suite: silt's options pass through, silt's errors map
 * onto LEVEL_* codes, data lands in (and persists in) a silt store, and the snapshot behaviour
 * of iterators and seek() that the adapter implements on top of silt's iterators.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { open } from '../../src/index.js';
import { LevelError, SiltLevel } from '../../src/level/index.js';
import { collect, temporaryDirectory } from '../helpers.js';

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

test('seek() stays on the snapshot: forward seeks after writes, and any seek without writes', async (t) => {
  const db = new SiltLevel(join(temporaryDirectory(t), 'db'));
  await db.batch(['a', 'b', 'c', 'd', 'e'].map((key) => ({ type: 'put' as const, key, value: `${key}1` })));

  // No writes since creation: seek anywhere, backwards included.
  const quiet = db.iterator();
  assert.deepEqual(await quiet.nextv(3), [['a', 'a1'], ['b', 'b1'], ['c', 'c1']]);
  quiet.seek('b');
  assert.deepEqual(await quiet.next(), ['b', 'b1']);
  quiet.seek('e');
  assert.deepEqual(await quiet.all(), [['e', 'e1']]);

  // Writes after creation: forward seeks skip within the iterator's own snapshot.
  const forward = db.iterator();
  const reverse = db.keys({ reverse: true });
  await db.put('c', 'c2');
  await db.del('d');
  await db.put('cc', 'new');
  assert.deepEqual(await forward.next(), ['a', 'a1']);
  forward.seek('c');
  assert.deepEqual(await forward.next(), ['c', 'c1']);
  forward.seek('c0');
  forward.seek('cz');
  assert.deepEqual(await forward.all(), [['d', 'd1'], ['e', 'e1']]);
  reverse.seek('d');
  assert.deepEqual(await reverse.all(), ['d', 'c', 'b', 'a']);

  // Writes through silt's own API count too.
  const raw = db.iterator();
  await db.store?.put('c', 'raw');
  raw.seek('c');
  assert.deepEqual(await raw.next(), ['c', 'c2']);
  await raw.close();

  // Writes after creation and a seek backwards: documented limitation, it restarts on the current data.
  const back = db.iterator();
  assert.deepEqual(await back.nextv(2), [['a', 'a1'], ['b', 'b1']]);
  await db.put('b', 'b2');
  back.seek('a');
  assert.deepEqual(await back.nextv(2), [['a', 'a1'], ['b', 'b2']]);
  await back.close();
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
