/**
 * Tests for the ordered index: a seeded model test against a Map plus bytewise-sorted arrays
 * (with snapshots checked long after they were taken), and one test per edge case it pins.
 * Replay a seeded run with SEED=<seed> (the seed is printed).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lastFoundKey, OrderedIndex, type IndexSnapshot, type KeyRange } from '../../src/index/ordered-index.js';
import { random, testSeed } from '../helpers.js';

type Entry = [string, number];

/** Bytewise order computed from bytes, independent of the JS string comparison the index uses. */
function compareBytes(left: string, right: string): number {
  return Buffer.compare(Buffer.from(left, 'latin1'), Buffer.from(right, 'latin1'));
}

function sortedEntries(model: Map<string, number>): Entry[] {
  return [...model.entries()].sort(([left], [right]) => compareBytes(left, right));
}

function modelRange(entries: Entry[], range: KeyRange): Entry[] {
  let result = entries.filter(
    ([key]) =>
      (range.gt === undefined || compareBytes(key, range.gt) > 0) &&
      (range.gte === undefined || compareBytes(key, range.gte) >= 0) &&
      (range.lt === undefined || compareBytes(key, range.lt) < 0) &&
      (range.lte === undefined || compareBytes(key, range.lte) <= 0),
  );
  if (range.reverse === true) result = result.reverse();
  if (range.limit !== undefined && range.limit >= 0) result = result.slice(0, range.limit);
  return result;
}

function rangeOf<V>(source: { range(options?: KeyRange): IterableIterator<[string, V]> }, options?: KeyRange): [string, V][] {
  return [...source.range(options)];
}

function bytes(...codes: number[]): string {
  return String.fromCharCode(...codes);
}

/** The tree's height, read from the private field: only to check the O(log n) bound. */
function heightOf(index: OrderedIndex<unknown>): number {
  return (index as unknown as { height: number }).height;
}

/** The tree's root node, read from the private field: only to observe copy-on-write. */
function rootOf(index: OrderedIndex<unknown>): object {
  return (index as unknown as { root: object }).root;
}

/** The most levels a tree of `size` keys may have under the fill invariant. */
function maximumHeight(size: number, branchFactor: number): number {
  const minimum = Math.floor(branchFactor / 2);
  // Root: >= 2 children; other branches: >= minimum children; leaves: >= minimum keys.
  let height = 0;
  let capacityBelow = 2 * minimum;
  while (capacityBelow <= size) {
    height++;
    capacityBelow *= minimum;
  }
  return height;
}

describe('OrderedIndex seeded model', () => {
  for (const branchFactor of [4, 5, 8, 64]) {
    test(`random set/delete/get/range and snapshots match a model (branchFactor ${branchFactor})`, () => {
      const seed = testSeed(`ordered-index model, branchFactor ${branchFactor}`);
      const next = random(seed + branchFactor);
      const integer = (below: number): number => Math.floor(next() * below);
      const alphabet = [0x00, 0x01, 0x61, 0x62, 0x7f, 0x80, 0xfe, 0xff];
      const sharedPrefixes = [bytes(0xff, 0x00, 0xff, 0x61, 0x62, 0x00), bytes(0x61, 0x61, 0x61, 0x61, 0x61, 0x61), ''];
      const randomKey = (): string => {
        const shape = integer(3);
        const length = shape === 0 ? integer(4) : shape === 1 ? 4 + integer(5) : integer(5);
        let key = shape === 2 ? (sharedPrefixes[integer(sharedPrefixes.length)] as string) : '';
        for (let index = 0; index < length; index++) key += String.fromCharCode(alphabet[integer(alphabet.length)] as number);
        return key;
      };
      const pool = Array.from({ length: 700 }, randomKey);
      const pickKey = (): string => (next() < 0.9 ? (pool[integer(pool.length)] as string) : randomKey());
      const randomBound = (): string => (next() < 0.7 ? pickKey() : randomKey());
      const randomRange = (): KeyRange => {
        const range: KeyRange = {};
        if (next() < 0.4) range.gt = randomBound();
        if (next() < 0.4) range.gte = randomBound();
        if (next() < 0.4) range.lt = randomBound();
        if (next() < 0.4) range.lte = randomBound();
        if (next() < 0.5) range.reverse = true;
        const limitChoice = integer(6);
        if (limitChoice === 1) range.limit = 0;
        else if (limitChoice === 2) range.limit = -1;
        else if (limitChoice >= 3) range.limit = 1 + integer(limitChoice === 5 ? 500 : 5);
        return range;
      };

      const index = new OrderedIndex<number>({ branchFactor });
      const model = new Map<string, number>();
      const snapshots: { snapshot: IndexSnapshot<number>; entries: Entry[]; takenAt: number }[] = [];
      const liveIterators: { iterator: Iterator<[string, number]>; expected: Entry[]; position: number }[] = [];
      let snapshotsChecked = 0;
      let emptiedAt: number | undefined;

      const checkSnapshot = (snapshot: IndexSnapshot<number>, entries: Entry[], context: string): void => {
        assert.equal(snapshot.size, entries.length, `${context}: size`);
        assert.deepEqual(rangeOf(snapshot), entries, `${context}: full range`);
        for (let probe = 0; probe < 10; probe++) {
          const range = randomRange();
          assert.deepEqual(rangeOf(snapshot, range), modelRange(entries, range), `${context}: range ${JSON.stringify(range)}`);
        }
        const byKey = new Map(entries);
        for (let probe = 0; probe < 20; probe++) {
          const key = pickKey();
          assert.equal(snapshot.get(key), byKey.get(key), `${context}: get ${JSON.stringify(key)}`);
        }
      };

      const operations = 12_000;
      for (let step = 0; step < operations; step++) {
        const action = next();
        const context = `seed ${seed}, step ${step}`;
        // Phases: mostly inserting, then deleting down to empty, then mixed.
        const draining = step >= 4000 && step < 7000;
        const deleteShare = step < 4000 ? 0.25 : draining ? 0.97 : 0.45;
        if (action < 0.55) {
          let key = pickKey();
          if (draining && model.size > 0 && next() < 0.5) key = [...model.keys()][integer(model.size)] as string;
          if (next() < deleteShare) {
            assert.equal(index.delete(key), model.get(key), `${context}: delete ${JSON.stringify(key)}`);
            model.delete(key);
          } else {
            assert.equal(index.set(key, step), model.get(key), `${context}: set ${JSON.stringify(key)}`);
            model.set(key, step);
          }
        } else if (action < 0.75) {
          const key = pickKey();
          assert.equal(index.get(key), model.get(key), `${context}: get ${JSON.stringify(key)}`);
          assert.equal(lastFoundKey(), model.has(key) ? key : undefined, `${context}: lastFoundKey after get ${JSON.stringify(key)}`);
          assert.equal(index.storedKey(key), model.has(key) ? key : undefined, `${context}: storedKey ${JSON.stringify(key)}`);
        } else if (action < 0.8) {
          const range = randomRange();
          assert.deepEqual(rangeOf(index, range), modelRange(sortedEntries(model), range), `${context}: range ${JSON.stringify(range)}`);
        } else if (action < 0.81) {
          snapshots.push({ snapshot: index.snapshot(), entries: sortedEntries(model), takenAt: step });
        } else if (action < 0.815 && snapshots.length > 0) {
          // Check a snapshot long after it was taken, then drop it.
          const [taken] = snapshots.splice(integer(snapshots.length), 1);
          if (taken !== undefined) {
            checkSnapshot(taken.snapshot, taken.entries, `${context}: snapshot taken at step ${taken.takenAt}`);
            snapshotsChecked++;
          }
        } else if (action < 0.82) {
          // A live range iterator, consumed bit by bit while writes continue.
          const range = randomRange();
          liveIterators.push({ iterator: index.range(range), expected: modelRange(sortedEntries(model), range), position: 0 });
        } else if (action < 0.86 && liveIterators.length > 0) {
          const which = integer(liveIterators.length);
          const live = liveIterators[which];
          if (live !== undefined) {
            for (let count = 1 + integer(5); count > 0; count--) {
              const result = live.iterator.next();
              const expected: Entry | undefined = live.expected[live.position];
              if (expected === undefined) {
                assert.equal(result.done, true, `${context}: live iterator should be done`);
                liveIterators.splice(which, 1);
                break;
              }
              assert.deepEqual(result.value, expected, `${context}: live iterator entry ${live.position}`);
              live.position++;
            }
          }
        } else if (action < 0.87 || (draining && index.size === 0 && emptiedAt === undefined)) {
          if (draining && index.size === 0) emptiedAt ??= step;
          assert.equal(index.size, model.size, `${context}: size`);
          index.checkInvariants();
          assert.ok(heightOf(index) <= maximumHeight(index.size, branchFactor), `${context}: height ${heightOf(index)} for ${index.size} keys`);
          const entries = sortedEntries(model);
          assert.deepEqual(index.first(), entries[0], `${context}: first`);
          assert.deepEqual(index.last(), entries[entries.length - 1], `${context}: last`);
          const visited: Entry[] = [];
          index.forEach((key, value) => visited.push([key, value]));
          assert.deepEqual(visited, entries, `${context}: forEach`);
        }
      }
      index.checkInvariants();
      assert.deepEqual(rangeOf(index), sortedEntries(model));
      for (const taken of snapshots) {
        checkSnapshot(taken.snapshot, taken.entries, `seed ${seed}, end: snapshot taken at step ${taken.takenAt}`);
        snapshotsChecked++;
      }
      for (const live of liveIterators) {
        const rest: Entry[] = [];
        for (let result = live.iterator.next(); result.done !== true; result = live.iterator.next()) rest.push(result.value);
        assert.deepEqual(rest, live.expected.slice(live.position), `seed ${seed}, end: rest of a live iterator`);
      }
      assert.ok(snapshotsChecked > 20, `only ${snapshotsChecked} snapshots checked`);
      assert.ok(emptiedAt !== undefined, 'the draining phase should have emptied the index');
    });
  }
});

describe('OrderedIndex edge cases', () => {
  test('empty tree: size 0, get/delete miss, every range empty, first/last undefined', () => {
    const index = new OrderedIndex<number>();
    assert.equal(index.size, 0);
    assert.equal(index.get(''), undefined);
    assert.equal(index.get('a'), undefined);
    assert.equal(index.delete('a'), undefined);
    assert.equal(index.first(), undefined);
    assert.equal(index.last(), undefined);
    for (const range of [undefined, {}, { reverse: true }, { gte: 'a' }, { lt: 'a', reverse: true }, { limit: 5 }]) {
      assert.deepEqual(rangeOf(index, range), []);
    }
    const snapshot = index.snapshot();
    assert.equal(snapshot.size, 0);
    assert.deepEqual(rangeOf(snapshot), []);
    index.checkInvariants();
  });

  test('single key: found, bounded in and out, deleted back to empty', () => {
    const index = new OrderedIndex<string>();
    assert.equal(index.set('k', 'one'), undefined);
    assert.equal(index.size, 1);
    assert.equal(index.get('k'), 'one');
    assert.equal(index.get('j'), undefined);
    assert.deepEqual(rangeOf(index), [['k', 'one']]);
    assert.deepEqual(rangeOf(index, { reverse: true }), [['k', 'one']]);
    assert.deepEqual(rangeOf(index, { gte: 'k', lte: 'k' }), [['k', 'one']]);
    assert.deepEqual(rangeOf(index, { gt: 'k' }), []);
    assert.deepEqual(rangeOf(index, { lt: 'k', reverse: true }), []);
    assert.deepEqual(index.first(), ['k', 'one']);
    assert.deepEqual(index.last(), ['k', 'one']);
    assert.equal(index.set('k', 'two'), 'one');
    assert.equal(index.size, 1);
    assert.equal(index.delete('k'), 'two');
    assert.equal(index.size, 0);
    assert.equal(index.delete('k'), undefined);
    assert.deepEqual(rangeOf(index), []);
  });

  test('bytes 0x00 and 0xff and the empty key sort bytewise', () => {
    const keys = ['', bytes(0x00), bytes(0x00, 0x00), bytes(0x00, 0xff), bytes(0x01), 'a', bytes(0x61, 0xff), bytes(0x7f), bytes(0x80), bytes(0xff), bytes(0xff, 0x00), bytes(0xff, 0xff)];
    for (const branchFactor of [4, 64]) {
      const index = new OrderedIndex<number>({ branchFactor });
      // Insert in a scrambled order.
      for (const [position, key] of keys.entries()) if (position % 2 === 1) index.set(key, position);
      for (const [position, key] of keys.entries()) if (position % 2 === 0) index.set(key, position);
      assert.deepEqual(rangeOf(index).map(([key]) => key), keys);
      assert.deepEqual(rangeOf(index, { reverse: true }).map(([key]) => key), [...keys].reverse());
      assert.deepEqual(rangeOf(index, { gt: bytes(0x00), lt: bytes(0xff) }).map(([key]) => key), keys.slice(2, 9));
      assert.deepEqual(rangeOf(index, { gte: bytes(0xff) }).map(([key]) => key), keys.slice(9));
      assert.equal(index.get(''), 0);
      assert.equal(index.get(bytes(0xff, 0xff)), keys.length - 1);
      assert.deepEqual(index.first(), ['', 0]);
      assert.deepEqual(index.last(), [bytes(0xff, 0xff), keys.length - 1]);
      index.checkInvariants();
    }
  });

  test('prefix keys: "a" < "a\\x00" < "ab", and bounds between them', () => {
    const index = new OrderedIndex<number>({ branchFactor: 4 });
    for (const [position, key] of ['ab', 'a\x00', 'a', 'a\x00\x00', 'b', ''].entries()) index.set(key, position);
    assert.deepEqual(rangeOf(index).map(([key]) => key), ['', 'a', 'a\x00', 'a\x00\x00', 'ab', 'b']);
    assert.deepEqual(rangeOf(index, { gt: 'a', lt: 'ab' }).map(([key]) => key), ['a\x00', 'a\x00\x00']);
    assert.deepEqual(rangeOf(index, { gte: 'a', lte: 'a\x00' }).map(([key]) => key), ['a', 'a\x00']);
    assert.deepEqual(rangeOf(index, { gt: 'a\x00', reverse: true }).map(([key]) => key), ['b', 'ab', 'a\x00\x00']);
    assert.equal(index.get('a\x00'), 1);
  });

  test('keys sharing their first 6 bytes or more still order and match exactly', () => {
    // Nodes compare a 6-byte numeric prefix first; these keys tie on it.
    const stem = bytes(0xff, 0xff, 0x00, 0x00, 0x61, 0x7f);
    const keys = [stem.slice(0, 5), stem, stem + bytes(0x00), stem + bytes(0x00, 0x00), stem + bytes(0x00, 0x01), stem + 'a', stem + bytes(0xff), stem + bytes(0xff, 0xff, 0xff)];
    const index = new OrderedIndex<number>({ branchFactor: 4 });
    for (let position = keys.length - 1; position >= 0; position--) index.set(keys[position] as string, position);
    assert.deepEqual(rangeOf(index).map(([key]) => key), keys);
    for (const [position, key] of keys.entries()) assert.equal(index.get(key), position);
    for (const absent of [stem + bytes(0x01), stem + bytes(0x00, 0x02), stem + bytes(0x00, 0x00, 0x00), stem + 'b', stem + bytes(0xfe), stem + bytes(0xff, 0xff)]) {
      assert.equal(index.get(absent), undefined, `get ${JSON.stringify(absent)}`);
      assert.equal(index.delete(absent), undefined, `delete ${JSON.stringify(absent)}`);
    }
    assert.equal(index.size, keys.length);
    assert.deepEqual(rangeOf(index, { gt: stem + bytes(0x00), lte: stem + 'a' }).map(([key]) => key), keys.slice(3, 6));
    index.checkInvariants();
  });

  test('strings with chars above 0xff still order like JS strings', () => {
    const keys = ['a', 'a\u00ff\uffff', 'a\u0100', 'a\u0100\u0000', 'a\u0101', 'a\u4e00', 'a\u4e00b', 'ab', 'b', '\u00ff', '\u0100', '\u0100\u00ff', '\u0101', '\ud800', '\uffff'];
    const index = new OrderedIndex<number>({ branchFactor: 4 });
    for (let position = keys.length - 1; position >= 0; position--) index.set(keys[position] as string, position);
    assert.deepEqual(rangeOf(index).map(([key]) => key), [...keys].sort());
    for (const [position, key] of keys.entries()) assert.equal(index.get(key), position);
    index.checkInvariants();
  });

  test('set returns the previous value and delete the removed one', () => {
    const index = new OrderedIndex<{ version: number }>();
    const first = { version: 1 };
    const second = { version: 2 };
    assert.equal(index.set('key', first), undefined);
    assert.equal(index.set('key', second), first);
    assert.equal(index.delete('key'), second);
    assert.equal(index.delete('key'), undefined);
    assert.equal(index.size, 0);
  });

  test('gt with gte and lt with lte: the stricter bound wins', () => {
    const index = OrderedIndex.fromSorted(['a', 'b', 'c', 'd', 'e'], [1, 2, 3, 4, 5], { branchFactor: 4 });
    const keysOf = (range: KeyRange): string[] => rangeOf(index, range).map(([key]) => key);
    assert.deepEqual(keysOf({ gt: 'b', gte: 'b' }), ['c', 'd', 'e']);
    assert.deepEqual(keysOf({ gt: 'a', gte: 'c' }), ['c', 'd', 'e']);
    assert.deepEqual(keysOf({ gt: 'c', gte: 'a' }), ['d', 'e']);
    assert.deepEqual(keysOf({ lt: 'd', lte: 'd' }), ['a', 'b', 'c']);
    assert.deepEqual(keysOf({ lt: 'e', lte: 'c' }), ['a', 'b', 'c']);
    assert.deepEqual(keysOf({ lt: 'c', lte: 'e', reverse: true }), ['b', 'a']);
    assert.deepEqual(keysOf({ gt: 'b', gte: 'b', lt: 'd', lte: 'd', reverse: true }), ['c']);
  });

  test('inverted and empty bounds yield nothing', () => {
    const index = OrderedIndex.fromSorted(['a', 'b', 'c'], [1, 2, 3]);
    assert.deepEqual(rangeOf(index, { gte: 'c', lte: 'a' }), []);
    assert.deepEqual(rangeOf(index, { gte: 'c', lte: 'a', reverse: true }), []);
    assert.deepEqual(rangeOf(index, { gt: 'b', lt: 'b' }), []);
    assert.deepEqual(rangeOf(index, { gte: 'b', lt: 'b', reverse: true }), []);
    assert.deepEqual(rangeOf(index, { gt: 'c' }), []);
    assert.deepEqual(rangeOf(index, { lt: 'a', reverse: true }), []);
  });

  test('limit: undefined or negative is unlimited, 0 is nothing, n caps from the scan start', () => {
    const keys = Array.from({ length: 100 }, (_, position) => `k${String(position).padStart(3, '0')}`);
    const index = OrderedIndex.fromSorted(keys, keys.map((_, position) => position), { branchFactor: 4 });
    assert.equal(rangeOf(index, { limit: undefined }).length, 100);
    assert.equal(rangeOf(index, { limit: -1 }).length, 100);
    assert.deepEqual(rangeOf(index, { limit: 0 }), []);
    assert.deepEqual(rangeOf(index, { limit: 0, reverse: true }), []);
    assert.deepEqual(rangeOf(index, { limit: 3 }).map(([key]) => key), keys.slice(0, 3));
    assert.deepEqual(rangeOf(index, { limit: 3, reverse: true }).map(([key]) => key), keys.slice(97).reverse());
    assert.deepEqual(rangeOf(index, { gt: 'k050', limit: 2 }).map(([key]) => key), ['k051', 'k052']);
    assert.deepEqual(rangeOf(index, { lt: 'k050', limit: 2, reverse: true }).map(([key]) => key), ['k049', 'k048']);
    assert.equal(rangeOf(index, { limit: 1000 }).length, 100);
  });

  test('reverse ranges cross leaf boundaries in descending order', () => {
    const keys = Array.from({ length: 300 }, (_, position) => `key${String(position).padStart(4, '0')}`);
    const index = new OrderedIndex<number>({ branchFactor: 4 });
    for (const [position, key] of keys.entries()) index.set(key, position);
    assert.deepEqual(rangeOf(index, { reverse: true }).map(([key]) => key), [...keys].reverse());
    assert.deepEqual(rangeOf(index, { gte: 'key0100', lt: 'key0200', reverse: true }).map(([, value]) => value), Array.from({ length: 100 }, (_, offset) => 199 - offset));
    assert.deepEqual(rangeOf(index, { gt: 'key0100', lte: 'key0200', reverse: true }).map(([, value]) => value), Array.from({ length: 100 }, (_, offset) => 200 - offset));
  });

  test('range seeks to its start bound instead of scanning from the first key', () => {
    const keyCount = 100_000;
    const keys = Array.from({ length: keyCount }, (_, position) => `key${String(position).padStart(6, '0')}`);
    const index = OrderedIndex.fromSorted(keys, keys.map((_, position) => position));
    const seeks = 2_000;
    const started = performance.now();
    for (let seek = 0; seek < seeks; seek++) {
      const target = keys[keyCount - 1 - ((seek * 37) % 1000)] as string;
      const [forward] = [...index.range({ gte: target, limit: 1 })];
      assert.equal(forward?.[0], target);
      const [backward] = [...index.range({ lte: keys[(seek * 37) % 1000] as string, reverse: true, limit: 1 })];
      assert.equal(backward?.[0], keys[(seek * 37) % 1000]);
    }
    const elapsed = performance.now() - started;
    // Seeking: ~2 µs per range. Scanning from the far end: ~99,000 steps per range, > 10 s in all.
    assert.ok(elapsed < 2_000, `${2 * seeks} bounded ranges took ${elapsed.toFixed(0)} ms`);
  });

  test('a live range iterator keeps the state of its creation while the index changes', () => {
    const index = new OrderedIndex<number>({ branchFactor: 4 });
    for (let position = 0; position < 200; position += 2) index.set(`k${String(position).padStart(3, '0')}`, position);
    const expected = rangeOf(index.snapshot());
    const iterator = index.range();
    const seen: Entry[] = [];
    let step = 0;
    for (const entry of iterator) {
      seen.push(entry);
      // Mutate heavily mid-iteration: inserts between keys, deletes ahead, replaces behind.
      index.set(`k${String(step * 2 + 1).padStart(3, '0')}`, -1);
      index.delete(`k${String(198 - step * 2).padStart(3, '0')}`);
      index.set(`k${String(step * 2).padStart(3, '0')}`, -2);
      step++;
    }
    assert.deepEqual(seen, expected);
    index.checkInvariants();
  });

  test('snapshots are unchanged by later sets, deletes down to empty and refills', () => {
    const index = new OrderedIndex<number>({ branchFactor: 4 });
    const keys = Array.from({ length: 500 }, (_, position) => `key${String((position * 7919) % 500).padStart(4, '0')}`);
    for (const [position, key] of keys.entries()) index.set(key, position);
    const before = index.snapshot();
    const beforeEntries = rangeOf(before);
    for (const key of keys) index.set(key, -1);
    const replaced = index.snapshot();
    for (const key of keys) index.delete(key);
    assert.equal(index.size, 0);
    const empty = index.snapshot();
    for (const [position, key] of keys.entries()) if (position % 3 === 0) index.set(key + 'x', position);
    index.checkInvariants();

    assert.equal(before.size, 500);
    assert.deepEqual(rangeOf(before), beforeEntries);
    for (const [position, key] of keys.entries()) assert.equal(before.get(key), position);
    assert.ok(rangeOf(replaced).every(([, value]) => value === -1));
    assert.equal(replaced.size, 500);
    assert.equal(empty.size, 0);
    assert.deepEqual(rangeOf(empty), []);
    assert.equal(empty.get(keys[0] as string), undefined);
  });

  test('writes with no snapshot outstanding mutate in place; the first write after a snapshot copies the path', () => {
    const keys = Array.from({ length: 1000 }, (_, position) => `key${String(position).padStart(4, '0')}`);
    const index = OrderedIndex.fromSorted(keys, keys.map((_, position) => position), { branchFactor: 8 });
    const root = rootOf(index);
    for (const key of keys) index.set(key, 0);
    assert.equal(rootOf(index), root, 'replacing values without a snapshot copied the root');
    index.snapshot();
    index.set('key0500', 1);
    const copiedRoot = rootOf(index);
    assert.notEqual(copiedRoot, root, 'the first write after a snapshot did not copy the root');
    for (const key of keys) index.set(key, 2);
    assert.equal(rootOf(index), copiedRoot, 'later writes in the same epoch copied the root again');
    // A snapshot with no write since the last one needs no new epoch: writes stay in place.
    index.snapshot();
    const rootAfterSecondSnapshot = rootOf(index);
    index.set('key0001', 3);
    assert.notEqual(rootOf(index), rootAfterSecondSnapshot);
  });

  test('heavy deletes down to empty and refilling keep invariants and O(log n) height', () => {
    for (const branchFactor of [4, 5, 6, 7, 16]) {
      const index = new OrderedIndex<number>({ branchFactor });
      const count = 3000;
      const order = Array.from({ length: count }, (_, position) => (position * 1237) % count);
      for (const value of order) index.set(`key${String(value).padStart(5, '0')}`, value);
      index.checkInvariants();
      const grownHeight = heightOf(index);
      assert.ok(grownHeight <= maximumHeight(count, branchFactor), `height ${grownHeight} after ${count} inserts`);
      // Delete 99% in a different order, checking the height bound as the tree shrinks.
      const deleteOrder = Array.from({ length: count }, (_, position) => (position * 2111 + 5) % count);
      for (const [step, value] of deleteOrder.entries()) {
        assert.equal(index.delete(`key${String(value).padStart(5, '0')}`), value);
        if (step % 97 === 0) {
          index.checkInvariants();
          assert.ok(heightOf(index) <= maximumHeight(index.size, branchFactor), `height ${heightOf(index)} for ${index.size} keys (branchFactor ${branchFactor})`);
        }
      }
      assert.equal(index.size, 0);
      assert.equal(heightOf(index), 0);
      assert.deepEqual(rangeOf(index), []);
      index.checkInvariants();
      for (const value of order) index.set(`key${String(value).padStart(5, '0')}`, value + 1);
      index.checkInvariants();
      assert.equal(index.size, count);
      assert.deepEqual(rangeOf(index).map(([, value]) => value), Array.from({ length: count }, (_, value) => value + 1));
    }
  });

  test('deleting in ascending and descending order merges through every level', () => {
    for (const direction of ['ascending', 'descending'] as const) {
      const count = 2000;
      const keys = Array.from({ length: count }, (_, position) => `k${String(position).padStart(5, '0')}`);
      const index = OrderedIndex.fromSorted(keys, keys.map((_, position) => position), { branchFactor: 4 });
      const order = direction === 'ascending' ? keys : [...keys].reverse();
      for (const [step, key] of order.entries()) {
        index.delete(key);
        if (step % 50 === 0) index.checkInvariants();
      }
      assert.equal(index.size, 0);
      index.checkInvariants();
    }
  });

  test('fromSorted builds a valid tree for every size around node boundaries, then takes mutations', () => {
    for (const branchFactor of [4, 5, 64]) {
      for (let count = 0; count <= 150; count++) {
        const keys = Array.from({ length: count }, (_, position) => `k${String(position * 2).padStart(4, '0')}`);
        const index = OrderedIndex.fromSorted(keys, keys.map((_, position) => position), { branchFactor });
        index.checkInvariants();
        assert.equal(index.size, count);
        assert.deepEqual(rangeOf(index).map(([key]) => key), keys);
        // Mutate: insert between every pair, delete every third original key.
        for (let position = 0; position < count; position++) index.set(`k${String(position * 2 + 1).padStart(4, '0')}`, -position);
        for (let position = 0; position < count; position += 3) index.delete(keys[position] as string);
        index.checkInvariants();
        assert.equal(index.size, count * 2 - Math.ceil(count / 3));
      }
    }
  });

  test('fromSorted of 1M keys is fast and fully searchable', () => {
    const count = 1_000_000;
    const keys: string[] = [];
    const values: number[] = [];
    for (let position = 0; position < count; position++) {
      keys.push(`k${String(position).padStart(7, '0')}`);
      values.push(position);
    }
    const started = performance.now();
    const index = OrderedIndex.fromSorted(keys, values);
    const elapsed = performance.now() - started;
    assert.equal(index.size, count);
    for (let position = 0; position < count; position += 9973) assert.equal(index.get(keys[position] as string), position);
    assert.deepEqual(index.first(), ['k0000000', 0]);
    assert.deepEqual(index.last(), ['k0999999', 999_999]);
    // The target is < 100 ms on the development machine; leave room for slow CI machines.
    assert.ok(elapsed < 1_000, `fromSorted of 1M keys took ${elapsed.toFixed(0)} ms`);
  });

  test('fromSorted rejects unsorted, duplicate and non-string keys and mismatched lengths with a TypeError', () => {
    assert.throws(() => OrderedIndex.fromSorted(['a', 'c', 'b'], [1, 2, 3]), TypeError);
    assert.throws(() => OrderedIndex.fromSorted(['a', 'b', 'b'], [1, 2, 3]), TypeError);
    assert.throws(() => OrderedIndex.fromSorted(['a', 'a\x00\x00\x00\x00\x00\x01', 'a\x00\x00\x00\x00\x00\x00'], [1, 2, 3]), TypeError);
    assert.throws(() => OrderedIndex.fromSorted([bytes(0xff), bytes(0x00)], [1, 2]), TypeError);
    assert.throws(() => OrderedIndex.fromSorted(['a', 'b'], [1]), TypeError);
    assert.throws(() => OrderedIndex.fromSorted(['a', 7 as unknown as string], [1, 2]), TypeError);
    assert.equal(OrderedIndex.fromSorted([], []).size, 0);
    assert.equal(OrderedIndex.fromSorted([''], [1]).get(''), 1);
  });

  test('constructor rejects a branch factor below 4 or not an integer', () => {
    assert.throws(() => new OrderedIndex({ branchFactor: 3 }), RangeError);
    assert.throws(() => new OrderedIndex({ branchFactor: 8.5 }), RangeError);
    assert.throws(() => new OrderedIndex({ branchFactor: Number.NaN }), RangeError);
    assert.equal(new OrderedIndex({ branchFactor: 4 }).size, 0);
  });

  test('breaking out of a range ends the iterator', () => {
    const index = OrderedIndex.fromSorted(['a', 'b', 'c'], [1, 2, 3]);
    const iterator = index.range();
    for (const [key] of iterator) if (key === 'a') break;
    assert.equal(iterator.next().done, true);
    const exhausted = index.range({ limit: 1 });
    assert.deepEqual(exhausted.next().value, ['a', 1]);
    assert.equal(exhausted.next().done, true);
    assert.equal(exhausted.next().done, true);
  });

  test('first and last follow deletes at both ends', () => {
    const keys = Array.from({ length: 50 }, (_, position) => `k${String(position).padStart(2, '0')}`);
    const index = OrderedIndex.fromSorted(keys, keys.map((_, position) => position), { branchFactor: 4 });
    for (let position = 0; position < 25; position++) {
      assert.deepEqual(index.first(), [keys[position], position]);
      assert.deepEqual(index.last(), [keys[49 - position], 49 - position]);
      index.delete(keys[position] as string);
      index.delete(keys[49 - position] as string);
    }
    assert.equal(index.first(), undefined);
    assert.equal(index.last(), undefined);
  });
});
