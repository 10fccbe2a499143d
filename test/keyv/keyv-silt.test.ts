/**
 * KeyvSilt beyond Keyv's official suite: silt enforces the TTL itself (expired entries never come
 * back, whatever Keyv checks), namespaces clear independently over one shared store, setMany is
 * one atomic batch, and the adapter owns (or not) its store.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import Keyv from 'keyv';
import { open, SiltError } from '../../src/index.js';
import { KeyvSilt, withIterator } from '../../src/keyv/index.js';
import { collect, movableClock, temporaryDirectory } from '../helpers.js';

test('Keyv over a directory: set/get/has/delete, persisted, and disconnect closes the store it opened', async (t) => {
  const directory = join(temporaryDirectory(t), 'cache');
  const adapter = new KeyvSilt(directory, { durability: 'sync' });
  const keyv = new Keyv({ store: adapter });
  assert.equal(await keyv.set('user', { name: 'ann' }), true);
  assert.deepEqual(await keyv.get('user'), { name: 'ann' });
  assert.equal(await keyv.has('user'), true);
  assert.equal(await keyv.delete('user'), true);
  assert.equal(await keyv.delete('user'), false);
  await keyv.set('kept', [1, 2]);
  const store = await adapter.getStore();
  assert.equal(store.stats().durability, 'sync');
  await keyv.disconnect();
  assert.equal(store.stats().state, 'closed');

  const again = new Keyv({ store: new KeyvSilt(directory) });
  assert.deepEqual(await again.get('kept'), [1, 2]);
  await again.disconnect();
});

test('an expired entry is never returned: silt expires it, not only Keyv', async (t) => {
  const store = await open(temporaryDirectory(t));
  t.after(() => store.close());
  const adapter = new KeyvSilt(store);
  const keyv = withIterator(new Keyv({ store: adapter }));
  // The clock moved by hand past the short TTLs (a minute), not slept through: a loaded machine
  // cannot let them expire early either.
  const clock = movableClock(t);
  await keyv.set('short', 'x', 60_000);
  await keyv.set('long', 'y', 60 * 60_000);
  await keyv.setMany([{ key: 'many', value: 'z', ttl: 60_000 }]);
  assert.equal(await keyv.get('short'), 'x');
  clock.aheadMs = 2 * 60_000;
  // The adapter itself (what any Keyv version sees) no longer has them.
  assert.equal(await adapter.get('keyv:short'), undefined);
  assert.equal(await adapter.get('keyv:many'), undefined);
  assert.equal(await adapter.has('keyv:short'), false);
  assert.deepEqual(await adapter.getMany(['keyv:short', 'keyv:long']), [undefined, (await adapter.get('keyv:long')) as string]);
  assert.equal(store.getSync('keyv:short'), undefined);
  assert.deepEqual((await collect(adapter.iterator('keyv'))).map(([key]) => key), ['keyv:long']);
  assert.deepEqual(await collect(keyv.iterator?.('keyv') as AsyncGenerator<unknown>), [['long', 'y']]);
  assert.equal(await keyv.get('long'), 'y');
});

test('clear() is namespace-aware over one shared store; no namespace clears everything', async (t) => {
  const store = await open(temporaryDirectory(t));
  t.after(() => store.close());
  const first = new Keyv({ store: new KeyvSilt(store), namespace: 'first' });
  const second = new Keyv({ store: new KeyvSilt(store), namespace: 'second' });
  const bare = new Keyv({ store: new KeyvSilt(store), namespace: undefined as unknown as string });
  await first.set('a', 1);
  await first.set('b', 2);
  await second.set('a', 3);
  await store.put('firstly', 'not a keyv key');
  await first.clear();
  assert.equal(await first.get('a'), undefined);
  assert.equal(await second.get('a'), 3);
  assert.equal((await store.get('firstly'))?.toString(), 'not a keyv key');
  await bare.clear();
  assert.deepEqual(await collect(store.keys()), []);
});

test('setMany is one atomic batch; getMany, hasMany and deleteMany', async (t) => {
  const store = await open(temporaryDirectory(t));
  t.after(() => store.close());
  const adapter = new KeyvSilt(store);
  const keyv = new Keyv({ store: adapter });
  const before = store.stats().revision;
  assert.deepEqual(await keyv.setMany([{ key: 'a', value: 1 }, { key: 'b', value: 2, ttl: 60_000 }, { key: 'c', value: 3 }]), [true, true, true]);
  assert.equal(store.stats().revision, before + 1);
  assert.deepEqual(await keyv.get(['a', 'x', 'c']), [1, undefined, 3]);
  assert.deepEqual(await keyv.hasMany(['a', 'x']), [true, false]);
  assert.equal(await keyv.deleteMany(['a', 'x']), true);
  assert.equal(await keyv.deleteMany(['a', 'x']), false);
  assert.deepEqual(await keyv.get(['a', 'b']), [undefined, 2]);
});

test('values must be serialized; a Store passed in is not closed; open errors reach every call', async (t) => {
  const directory = temporaryDirectory(t);
  const store = await open(directory);
  const adapter = new KeyvSilt(store);
  await assert.rejects(adapter.set('k', { not: 'serialized' }), TypeError);
  await adapter.disconnect();
  assert.equal(store.stats().state, 'open');

  const locked = new KeyvSilt(directory);
  await assert.rejects(locked.get('k'), (error: unknown) => error instanceof SiltError && error.code === 'LOCKED');
  await assert.rejects(locked.set('k', 'v'), (error: unknown) => error instanceof SiltError && error.code === 'LOCKED');
  await store.close();
  assert.throws(() => new KeyvSilt(42 as unknown as string), TypeError);
  assert.throws(() => withIterator(new Keyv()), TypeError);
});

test('has() and hasMany() read no value: silt index only, TTL-aware', async (t) => {
  const store = await open(temporaryDirectory(t));
  t.after(() => store.close());
  const adapter = new KeyvSilt(store);
  const keyv = new Keyv({ store: adapter });
  const clock = movableClock(t);
  await keyv.set('a', 1);
  await keyv.set('short', 2, 60_000);
  const reads = (): never => {
    throw new Error('has() read a value');
  };
  Object.assign(store, { getSync: reads, get: reads, getEntry: reads });
  assert.equal(await adapter.has('keyv:a'), true);
  assert.equal(await keyv.has('a'), true);
  assert.deepEqual(await adapter.hasMany(['keyv:a', 'keyv:nope', 'keyv:short']), [true, false, true]);
  clock.aheadMs = 2 * 60_000;
  assert.equal(await adapter.has('keyv:short'), false);
  assert.deepEqual(await keyv.hasMany(['a', 'short']), [true, false]);
});
