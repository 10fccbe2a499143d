/**
 * Model test: seeded random put/delete/batch/CAS/reopen against a plain Map, checking every get
 * and random iterator ranges (bounds, prefix, reverse, limit).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { open, SiltError, type FileSystem, type RangeOptions, type Store } from '../../src/index.js';
import { collect, random, temporaryDirectory, testSeed } from '../helpers.js';

interface ModelEntry {
  value: string;
  revision: number;
}

function expectedRange(model: Map<string, ModelEntry>, range: RangeOptions & { gt?: string; gte?: string; lt?: string; lte?: string; prefix?: string }): string[] {
  let keys = [...model.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  const compare = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  if (range.gt !== undefined) keys = keys.filter((key) => compare(key, range.gt as string) > 0);
  if (range.gte !== undefined) keys = keys.filter((key) => compare(key, range.gte as string) >= 0);
  if (range.lt !== undefined) keys = keys.filter((key) => compare(key, range.lt as string) < 0);
  if (range.lte !== undefined) keys = keys.filter((key) => compare(key, range.lte as string) <= 0);
  if (range.prefix !== undefined) keys = keys.filter((key) => key.startsWith(range.prefix as string));
  if (range.reverse) keys.reverse();
  if (range.limit !== undefined) keys = keys.slice(0, range.limit);
  return keys;
}

async function runModel(seed: number, operationCount: number, directory: string, fileSystem: FileSystem | undefined): Promise<void> {
  const next = random(seed);
  const options = { segmentBytes: 8192, ...(fileSystem ? { fileSystem } : {}) };
  let db: Store = await open(directory, options);
  const model = new Map<string, ModelEntry>();
  const alphabet = ['a', 'b', 'c', 'é', '\u0000', 'z'];
  const key = () => {
    const length = 1 + Math.floor(next() * 3);
    let result = '';
    for (let index = 0; index < length; index++) result += alphabet[Math.floor(next() * alphabet.length)];
    return result;
  };
  const bound = () => (next() < 0.5 ? undefined : key());
  for (let step = 0; step < operationCount; step++) {
    const roll = next();
    const context = `seed ${seed} step ${step}`;
    if (roll < 0.35) {
      const k = key();
      const value = `v${step}`;
      const { revision } = await db.put(k, value);
      model.set(k, { value, revision });
    } else if (roll < 0.45) {
      const k = key();
      const result = await db.delete(k);
      assert.equal(result.existed, model.has(k), context);
      model.delete(k);
    } else if (roll < 0.55) {
      const operations = Array.from({ length: 1 + Math.floor(next() * 4) }, () =>
        next() < 0.7 ? { type: 'put' as const, key: key(), value: `b${step}` } : { type: 'delete' as const, key: key() },
      );
      const { revision } = await db.batch(operations);
      for (const operation of operations) {
        if (operation.type === 'put') model.set(operation.key, { value: operation.value, revision });
        else model.delete(operation.key);
      }
    } else if (roll < 0.65) {
      const k = key();
      const current = model.get(k)?.revision ?? 0;
      const guess = next() < 0.5 ? current : current + 1;
      const value = `cas${step}`;
      try {
        const { revision } = await db.put(k, value, { ifRevision: guess });
        assert.equal(guess, current, `${context}: CAS with a stale revision succeeded`);
        model.set(k, { value, revision });
      } catch (error) {
        assert.ok(error instanceof SiltError && error.code === 'CONFLICT', context);
        assert.notEqual(guess, current, `${context}: CAS with the right revision failed`);
        assert.equal(error.currentRevision, current, context);
      }
    } else if (roll < 0.8) {
      const k = key();
      const entry = await db.getEntry(k);
      const expected = model.get(k);
      assert.equal(entry?.value.toString(), expected?.value, context);
      assert.equal(entry?.revision, expected?.revision, context);
    } else if (roll < 0.97) {
      const range: Record<string, unknown> = {};
      for (const name of ['gt', 'gte', 'lt', 'lte']) {
        const value = next() < 0.3 ? bound() : undefined;
        if (value !== undefined) range[name] = value;
      }
      if (next() < 0.2) range.prefix = key().slice(0, 1);
      if (next() < 0.5) range.reverse = true;
      if (next() < 0.3) range.limit = Math.floor(next() * 5);
      const entries = await collect(db.entries(range));
      const expected = expectedRange(model, range);
      assert.deepEqual(entries.map((entry) => entry.key.toString()), expected, `${context}: range ${JSON.stringify(range)}`);
      for (const entry of entries) assert.equal(entry.value.toString(), model.get(entry.key.toString())?.value, context);
    } else {
      await db.close();
      db = await open(directory, options);
    }
  }
  // Everything, once more, after a final reopen.
  await db.close();
  db = await open(directory, options);
  for (const [k, expected] of model) {
    const entry = await db.getEntry(k);
    assert.equal(entry?.value.toString(), expected.value);
    assert.equal(entry?.revision, expected.revision);
  }
  assert.equal((await collect(db.keys())).length, model.size);
  await db.close();
}

test('model: random operations and reopens match a Map (in-memory file layer)', async () => {
  const seed = testSeed('model in memory');
  await runModel(seed, 3000, '/db', new CrashFileSystem());
});

test('model: random operations and reopens match a Map (real files)', async (t) => {
  const seed = testSeed('model on disk');
  await runModel(seed, 600, temporaryDirectory(t), undefined);
});
