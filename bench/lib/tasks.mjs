/**
 * The measurements, one function per workload, each run inside a fresh worker process (see
 * worker.mjs) against one store. Each takes a plain task object and returns a plain result; the
 * parent (workloads.mjs) repeats them and takes medians.
 *
 * Setup (generating keys, bulk loading, reopening) is never inside the timed region.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { KEY_BYTES, VALUE_BYTES, randomIndexes, randomKeys, runConcurrent, valuePool, withTempDir } from './harness.mjs';
import { LOAD_CHUNK, STORES } from './stores.mjs';

function adapter(name) {
  const store = STORES[name];
  if (store === undefined) throw new Error(`unknown store ${name}`);
  return store;
}

function randomEntries(count) {
  const keys = randomKeys(count);
  const value = valuePool();
  return keys.map((key, i) => [key, value(i)]);
}

/** Keys for open-ended write loops, generated in blocks so key generation stays cheap. */
function keyStream() {
  let block = [];
  let position = 0;
  return () => {
    if (position === block.length) {
      block = randomKeys(65_536);
      position = 0;
    }
    return block[position++];
  };
}

/** A store in a fresh temp dir, bulk loaded with `count` random entries, closed and reopened. */
async function withLoadedStore(store, count, fn) {
  return withTempDir(store, async (dir) => {
    const entries = randomEntries(count);
    let db = await adapter(store).open(dir, { durable: false });
    await db.load(entries);
    await db.close();
    db = await adapter(store).open(dir, { durable: false });
    try {
      return await fn(db, entries);
    } finally {
      await db.close();
    }
  });
}

export const tasks = {
  /** `count` unsynced puts of random keys with up to `concurrency` in flight. */
  async fillRandom({ store, count, concurrency }) {
    return withTempDir(store, async (dir) => {
      const keys = randomKeys(count);
      const value = valuePool();
      const db = await adapter(store).open(dir, { durable: false });
      try {
        const { ops, seconds } = await runConcurrent(concurrency, (i) => i >= count, (i) => db.put(keys[i], value(i)));
        return { value: ops / seconds, ops, seconds };
      } finally {
        await db.close();
      }
    });
  },

  /** `writers` loops of durable puts, each awaited, for `seconds`. */
  async fillSync({ store, writers, seconds: duration }) {
    return withTempDir(store, async (dir) => {
      const nextKey = keyStream();
      const value = valuePool();
      const db = await adapter(store).open(dir, { durable: true });
      try {
        const deadline = performance.now() + duration * 1000;
        const { ops, seconds } = await runConcurrent(writers, () => performance.now() >= deadline, (i) => db.put(nextKey(), value(i)));
        const stats = store === 'silt' ? db.raw.stats().writes : undefined;
        return { value: ops / seconds, ops, seconds, ...(stats && { fsyncs: stats.fsyncs, groups: stats.groups }) };
      } finally {
        await db.close();
      }
    });
  },

  /** `reads` synchronous gets of keys drawn at random from `count` loaded ones. */
  async readRandom({ store, count, reads }) {
    return withLoadedStore(store, count, async (db, entries) => {
      const order = randomIndexes(reads, count);
      const readAll = (limit) => {
        let bytes = 0;
        for (let i = 0; i < limit; i++) {
          const value = db.get(entries[order[i]][0]);
          if (value === undefined) throw new Error(`${store}: a loaded key is missing`);
          bytes += value.length;
        }
        return bytes;
      };
      readAll(Math.min(reads, 20_000)); // warm-up: JIT and caches, same for every store
      const started = performance.now();
      const bytes = readAll(reads);
      const seconds = (performance.now() - started) / 1000;
      if (bytes !== reads * VALUE_BYTES) throw new Error(`${store}: read ${bytes} bytes, expected ${reads * VALUE_BYTES}`);
      return { value: reads / seconds, ops: reads, seconds };
    });
  },

  /** Full ordered scans of `count` loaded entries: one warm-up pass, then passes for at least `minSeconds`. */
  async scan({ store, count, minSeconds }) {
    return withLoadedStore(store, count, async (db) => {
      const expectedBytes = count * (KEY_BYTES + VALUE_BYTES);
      const pass = async () => {
        const { count: seen, bytes } = await db.scan();
        if (seen !== count || bytes !== expectedBytes) throw new Error(`${store}: scan saw ${seen} entries / ${bytes} bytes, expected ${count} / ${expectedBytes}`);
      };
      await pass();
      let passes = 0;
      const started = performance.now();
      do {
        await pass();
        passes++;
      } while (performance.now() - started < minSeconds * 1000);
      const seconds = (performance.now() - started) / 1000;
      return { value: (passes * count) / seconds, ops: passes * count, seconds };
    });
  },

  /** Setup for the open-time workload: bulk load `count` entries into `dir` and close. */
  async load({ store, dir, count }) {
    const entries = randomEntries(count);
    const db = await adapter(store).open(dir, { durable: true });
    const started = performance.now();
    await db.load(entries);
    await db.close();
    const seconds = (performance.now() - started) / 1000;
    return { value: count / seconds, seconds, probeKey: entries[count >> 1][0].toString('hex') };
  },

  /** Time from open() until the store has answered one get of an existing key. */
  async openTime({ store, dir, probeKey }) {
    const key = Buffer.from(probeKey, 'hex');
    await adapter(store).library();
    const started = performance.now();
    const db = await adapter(store).open(dir, { durable: true });
    const value = db.get(key);
    const ms = performance.now() - started;
    // For silt, say how it recovered (checkpoint or log replay), to explain the figure.
    const recovery = store === 'silt' ? db.raw.stats().recovery : undefined;
    await db.close();
    if (value === undefined || value.length !== VALUE_BYTES) throw new Error(`${store}: probe key missing after reopen`);
    return {
      value: ms,
      ...(recovery && { usedCheckpoint: recovery.usedCheckpoint, replayedEntries: recovery.replayedEntries, recoveryMs: recovery.durationMs }),
    };
  },

  /**
   * silt's memory per key: heapUsed + external after gc, minus a baseline taken before open,
   * divided by `count`; once after the fill and once after close + reopen (index from checkpoint).
   * Needs --expose-gc. Keys and values are generated per batch and dropped, so only the store
   * holds them.
   */
  async ram({ count }) {
    if (typeof globalThis.gc !== 'function') throw new Error('the ram task needs node --expose-gc');
    const { open } = await STORES.silt.library();
    const used = () => {
      globalThis.gc();
      globalThis.gc();
      const { heapUsed, external, arrayBuffers } = process.memoryUsage();
      return { total: heapUsed + external, heapUsed, external, arrayBuffers };
    };
    return withTempDir('ram', async (dir) => {
      const directory = path.join(dir, 'silt');
      const value = valuePool();
      const baseline = used();
      let store = await open(directory, { durability: 'none' });
      for (let done = 0; done < count; done += LOAD_CHUNK) {
        const n = Math.min(LOAD_CHUNK, count - done);
        const keys = randomBytes(n * KEY_BYTES);
        const batch = [];
        for (let i = 0; i < n; i++) batch.push({ type: 'put', key: keys.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES), value: value(done + i) });
        await store.batch(batch);
      }
      if (store.stats().keys !== count) throw new Error(`silt holds ${store.stats().keys} keys, expected ${count}`);
      const afterFill = used();
      await store.close();
      store = undefined;
      const closed = used();
      store = await open(directory, { durability: 'none' });
      const afterReopen = used();
      const usedCheckpoint = store.stats().recovery.usedCheckpoint;
      await store.close();
      const perKey = (sample) => (sample.total - baseline.total) / count;
      return {
        value: perKey(afterFill),
        afterFill: perKey(afterFill),
        afterReopen: perKey(afterReopen),
        closedResidue: perKey(closed),
        heapPerKey: (afterFill.heapUsed - baseline.heapUsed) / count,
        externalPerKey: (afterFill.external - baseline.external) / count,
        usedCheckpoint,
      };
    });
  },
};
