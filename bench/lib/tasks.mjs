/**
 * The measurements, one function per workload, each run inside a fresh worker process (see
 * worker.mjs) against one store. Each takes a plain task object and returns a plain result; the
 * parent (workloads.mjs) repeats them and takes medians.
 *
 * Setup (generating keys, bulk loading, reopening) is never inside the timed region.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import {
  KEY_BYTES,
  VALUE_BYTES,
  backgroundRate,
  deviceWriteCounter,
  diskUsage,
  flushPageCache,
  fsyncTree,
  permutation,
  randomIndexes,
  randomKeys,
  randomValues,
  runConcurrent,
  sizeLabel,
  valuePool,
  withTempDir,
} from './harness.mjs';
import { appendRun, writeAtRun } from './objects.mjs';
import { rangeReadRun } from './range-read.mjs';
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

  // -------------------------------------------------------------------------------------------
  // Large values, dedup, write and space amplification

  /**
   * The machine's sequential durable write rate at silt's cadence: `count` writes of `valueBytes`
   * (random data) to one file, each durable before the next, one at a time, three ways, each into
   * a new file:
   * - `dd bs=1M oflag=direct,dsync` (O_DIRECT: no page cache; O_DSYNC: each write durable before
   *   the next), from a source file of the values (untimed; read from the page cache): the device;
   * - writeSync + fdatasyncSync into a file pre-sized with ftruncate (as LMDB does with its map):
   *   a page-cache writer with no file-size change for fdatasync to commit;
   * - the same appending to a new file (each fdatasync also commits the new size).
   * Both loops start after a 4 KiB header page (written untimed), as a store's file would: on the
   * 6.18 VM this was developed on, buffered 1 MiB writes at 1 MiB-ALIGNED offsets spent ~2 ms per
   * MiB in write() (allocating large page-cache folios) against 0.3 ms at page-aligned offsets,
   * with fdatasync a steady 0.7-0.9 ms either way. The limit reported is the fastest of the three.
   */
  async fsWriteLimit({ count, valueBytes }) {
    const HEADER_PAGE = 4096;
    const values = Array.from({ length: count }, () => randomBytes(valueBytes));
    const loop = (file, presize) => {
      const fd = openSync(file, 'w');
      try {
        writeSync(fd, Buffer.alloc(HEADER_PAGE), 0, HEADER_PAGE, 0);
        if (presize) ftruncateSync(fd, HEADER_PAGE + count * valueBytes);
        fdatasyncSync(fd);
        const started = performance.now();
        let position = HEADER_PAGE;
        let syncMs = 0;
        for (const value of values) {
          let written = 0;
          while (written < value.length) written += writeSync(fd, value, written, value.length - written, position + written);
          position += value.length;
          const syncStarted = performance.now();
          fdatasyncSync(fd);
          syncMs += performance.now() - syncStarted;
        }
        const totalMs = performance.now() - started;
        return { mbps: (count * valueBytes) / 1e6 / (totalMs / 1000), writeMs: (totalMs - syncMs) / count, syncMs: syncMs / count };
      } finally {
        closeSync(fd);
      }
    };
    /** dd with O_DIRECT + O_DSYNC; undefined where dd or O_DIRECT is unavailable. */
    const direct = (dir) => {
      const source = path.join(dir, 'source');
      const fd = openSync(source, 'w');
      try {
        for (const value of values) writeSync(fd, value);
      } finally {
        closeSync(fd);
      }
      flushPageCache();
      if (valueBytes % 4096 !== 0) return undefined;
      const result = spawnSync('dd', [`if=${source}`, `of=${path.join(dir, 'direct')}`, `bs=${valueBytes}`, `count=${count}`, 'oflag=direct,dsync'], {
        encoding: 'utf8',
        env: { ...process.env, LC_ALL: 'C' },
      });
      const seconds = / copied, ([0-9.e+-]+) s/.exec(result.stderr ?? '')?.[1];
      return result.status === 0 && seconds !== undefined ? (count * valueBytes) / 1e6 / Number(seconds) : undefined;
    };
    return withTempDir('fs-limit', async (dir) => {
      const dd = direct(dir);
      flushPageCache();
      const presized = loop(path.join(dir, 'presized'), true);
      flushPageCache();
      const append = loop(path.join(dir, 'append'), false);
      return {
        value: Math.max(dd ?? 0, presized.mbps, append.mbps),
        ...(dd !== undefined && { directMBps: dd }),
        presizedMBps: presized.mbps,
        appendMBps: append.mbps,
        // Per 1 MiB, pre-sized file: time in write() (the page-cache copy) and in fdatasync.
        writeMsPerOp: presized.writeMs,
        syncMsPerOp: presized.syncMs,
      };
    });
  },

  /**
   * Large values: `count` durable puts of `valueBytes` random values (fresh random keys), with
   * `writers` loops each awaiting its put before the next (1: one at a time), timed; then close, reopen, one untimed pass of gets, and
   * timed passes of whole-value gets in a fresh random order each pass for at least `readMinSeconds`.
   */
  async largeValues({ store, count, writers = 1, valueBytes, readMinSeconds, siltOptions, writeOnly = false }) {
    const keys = randomKeys(count);
    const values = Array.from({ length: count }, () => randomBytes(valueBytes));
    return withTempDir(store, async (dir) => {
      let db = await adapter(store).open(dir, { durable: true, siltOptions });
      let write;
      let silt;
      try {
        write = await runConcurrent(writers, (i) => i >= count, (i) => db.put(keys[i], values[i]));
        if (store === 'silt') {
          const stats = db.raw.stats();
          silt = { blocksWritten: stats.blocks.written, blocksStaged: stats.blocks.staged, fsyncs: stats.writes.fsyncs };
        }
      } finally {
        await db.close();
      }
      if (writeOnly) return { value: (count * valueBytes) / 1e6 / write.seconds, writeMBps: (count * valueBytes) / 1e6 / write.seconds, writeSeconds: write.seconds, ...silt };
      db = await adapter(store).open(dir, { durable: true, siltOptions });
      try {
        const pass = () => {
          const order = permutation(count);
          for (const i of order) {
            const value = db.get(keys[i]);
            // Length plus the first and last 16 bytes: the right value, whole.
            if (value === undefined || value.length !== valueBytes || Buffer.compare(value.subarray(0, 16), values[i].subarray(0, 16)) !== 0 || Buffer.compare(value.subarray(-16), values[i].subarray(-16)) !== 0) {
              throw new Error(`${store}: a large value read back wrong`);
            }
          }
        };
        const bytes = count * valueBytes;
        const timedReads = (warmUpPasses = 1) => {
          for (let warm = 0; warm < warmUpPasses; warm++) pass(); // warm-up, the same for every store
          let passes = 0;
          const started = performance.now();
          do {
            pass();
            passes++;
          } while (performance.now() - started < readMinSeconds * 1000);
          return { passes, mbps: (passes * bytes) / 1e6 / ((performance.now() - started) / 1000) };
        };
        const reads = timedReads();
        let cached = {};
        if (store === 'silt') {
          // Again with silt's cache of verified blocks big enough for every value (the default,
          // 64 MiB, holds a quarter of them): the peers read from the page cache, which holds all.
          const { hits, misses } = db.raw.stats().blockCache;
          await db.close();
          db = await adapter(store).open(dir, { durable: true, siltOptions: { ...siltOptions, blockCacheBytes: 2 * bytes } });
          // Two warm-up passes: a block comes into the cache on its second read from disk.
          const again = timedReads(2);
          const sized = db.raw.stats().blockCache;
          cached = { readCachedMBps: again.mbps, blockCacheHitRatio: hits / (hits + misses), blockCacheHitRatioSized: sized.hits / (sized.hits + sized.misses) };
        }
        return {
          value: bytes / 1e6 / write.seconds,
          writeMBps: bytes / 1e6 / write.seconds,
          readMBps: reads.mbps,
          writeSeconds: write.seconds,
          readPasses: reads.passes,
          ...silt,
          ...cached,
        };
      } finally {
        await db.close();
      }
    });
  },

  /**
   * Duplicates: `count` random values, each put (durable, one at a time) under two keys: first
   * every value once, then every value again in another random order. Bytes on disk (du-style,
   * after close) per unique value byte. Spot-checks a few keys after a reopen.
   */
  async dup({ store, count, valueBytes, siltOptions }) {
    const keys = randomKeys(2 * count);
    const values = Array.from({ length: count }, () => randomBytes(valueBytes));
    const second = permutation(count);
    return withTempDir(store, async (dir) => {
      let db = await adapter(store).open(dir, { durable: true, siltOptions });
      let write;
      let silt;
      try {
        write = await runConcurrent(1, (i) => i >= 2 * count, (i) => (i < count ? db.put(keys[i], values[i]) : db.put(keys[count + second[i - count]], values[second[i - count]])));
        if (store === 'silt') {
          const stats = db.raw.stats();
          silt = { siltBlocks: stats.blocks.count, siltDedupRatio: stats.blocks.dedupRatio, siltSpaceAmp: stats.spaceAmplification };
        }
      } finally {
        await db.close();
      }
      const diskBytes = diskUsage(dir);
      db = await adapter(store).open(dir, { durable: true, siltOptions });
      try {
        for (const i of permutation(count).subarray(0, Math.min(count, 8))) {
          for (const key of [keys[i], keys[count + i]]) {
            const value = db.get(key);
            if (value === undefined || Buffer.compare(value, values[i]) !== 0) throw new Error(`${store}: a duplicated value read back wrong`);
          }
        }
      } finally {
        await db.close();
      }
      return {
        value: diskBytes / (count * valueBytes),
        diskMiB: diskBytes / 2 ** 20,
        writeMBps: (2 * count * valueBytes) / 1e6 / write.seconds,
        ...silt,
      };
    });
  },

  /**
   * Overwrites: `keyCount` random keys, `rounds` passes each writing every key with a fresh random
   * `valueBytes` value (the first pass fills the store), keys in a new random order each pass, as
   * durable writes one at a time: single puts when `batchSize` is 1, else atomic batches of
   * `batchSize`. Then the store's own compaction (`db.compact()`), then close.
   *
   * Device bytes (deviceWriteCounter) are read before open (after sync(1), which empties the
   * system's backlog of dirty pages before the window opens), after the writes, and after
   * compaction + close, each time after an fsync of every file and directory of the store (only
   * ours: a sync(1) here would pull other processes' dirty pages into the window); bytes on disk
   * (du-style) after the writes (store open) and after close. User bytes = rounds * keyCount *
   * (key + value); live bytes = keyCount * (key + value). Before open, other processes' write rate
   * is sampled for 1 s (see backgroundRate).
   */
  async overwrite({ store, keyCount, valueBytes, rounds, batchSize, siltOptions }) {
    const keys = randomKeys(keyCount);
    const nextValue = randomValues(valueBytes);
    const liveBytes = keyCount * (KEY_BYTES + valueBytes);
    const userBytes = rounds * liveBytes;
    return withTempDir(store, async (dir) => {
      const counter = deviceWriteCounter(dir);
      if (counter === undefined) throw new Error('no way to count device bytes here (/proc/diskstats and /proc/self/io unusable)');
      const background = await backgroundRate(counter); // ends with sync(1): no backlog in the window
      const atStart = counter.read();
      const procIoAtStart = counter.procIo?.();
      const started = performance.now();
      const db = await adapter(store).open(dir, { durable: true, siltOptions });
      let afterWrites;
      let diskAfterWrites;
      let writeSeconds;
      let compaction;
      let compactSeconds;
      let silt;
      try {
        const writesStarted = performance.now();
        for (let round = 0; round < rounds; round++) {
          const order = permutation(keyCount);
          for (let first = 0; first < keyCount; first += batchSize) {
            if (batchSize === 1) {
              await db.put(keys[order[first]], nextValue());
            } else {
              const entries = [];
              for (let i = first; i < Math.min(keyCount, first + batchSize); i++) entries.push([keys[order[i]], nextValue()]);
              await db.batch(entries);
            }
          }
        }
        writeSeconds = (performance.now() - writesStarted) / 1000;
        fsyncTree(dir);
        afterWrites = counter.read();
        diskAfterWrites = diskUsage(dir);
        const beforeCompaction = store === 'silt' ? db.raw.stats() : undefined;
        const compactStarted = performance.now();
        compaction = await db.compact();
        compactSeconds = (performance.now() - compactStarted) / 1000;
        if (store === 'silt') {
          const stats = db.raw.stats();
          silt = {
            siltWA: stats.writeAmplification,
            siltSA: stats.spaceAmplification,
            siltWABeforeCompaction: beforeCompaction.writeAmplification,
            siltSABeforeCompaction: beforeCompaction.spaceAmplification,
            stalls: beforeCompaction.compaction.stalls,
            stallMs: beforeCompaction.compaction.stallMs,
            compactionRuns: beforeCompaction.compaction.runs,
            stallsAfterCompact: stats.compaction.stalls,
            blockCandidates: stats.blocks.candidates,
            blocksOnDisk: stats.blocks.count,
          };
        }
      } finally {
        await db.close();
      }
      fsyncTree(dir); // everything the store dirtied has reached the device
      const atEnd = counter.read();
      const elapsedSeconds = (performance.now() - started) / 1000;
      const diskAfter = diskUsage(dir);
      const deviceBytes = atEnd - atStart;
      return {
        value: deviceBytes / userBytes,
        waTotal: deviceBytes / userBytes,
        waWrites: (afterWrites - atStart) / userBytes,
        saBefore: diskAfterWrites / liveBytes,
        saAfter: diskAfter / liveBytes,
        writeMBps: userBytes / 1e6 / writeSeconds,
        compactSeconds,
        compaction,
        // Others' writes at the idle rate over this sample's time, per user byte: at most the noise to expect.
        backgroundPerByte: (background * elapsedSeconds) / userBytes,
        ...(counter.procIo && { procIoPerByte: (counter.procIo() - procIoAtStart) / userBytes }),
        ...silt,
      };
    });
  },

  /**
   * Is the device-byte counter sane here? Plain files of known size (each window opened after
   * sync(1) and closed after an fsync of the file): 64 MiB as 1 MiB writes, each fdatasynced; 16 MiB as 4 KiB appends, fdatasynced every
   * 100 (like a batch of 100); and 16 MiB of 4 KiB writes at random places in a 64 MiB file that
   * was written in one go, fdatasynced every 100 (in-place updates, as a B-tree does). Each should
   * measure about 1.00x; /proc/self/io's figure for the last one shows why it is not used.
   */
  async ioCheck() {
    return withTempDir('io-check', async (dir) => {
      const counter = deviceWriteCounter(dir);
      if (counter === undefined) return { value: Number.NaN, method: 'none' };
      const measureWrites = (name, fill, write, bytes) => {
        const fd = openSync(path.join(dir, name), 'w+');
        try {
          fill(fd);
          fdatasyncSync(fd);
          flushPageCache(); // the system's backlog goes out before the window opens
          const before = counter.read();
          const procBefore = counter.procIo?.();
          write(fd);
          fsyncSync(fd); // ours only: a sync(1) here would count other processes' dirty pages
          return { device: (counter.read() - before) / bytes, procIo: counter.procIo ? (counter.procIo() - procBefore) / bytes : undefined };
        } finally {
          closeSync(fd);
        }
      };
      const mib = randomBytes(2 ** 20);
      const page = randomBytes(4096);
      const large = measureWrites('large', () => {}, (fd) => {
        for (let i = 0; i < 64; i++) {
          writeSync(fd, mib);
          fdatasyncSync(fd);
        }
      }, 64 * 2 ** 20);
      const small = measureWrites('small', () => {}, (fd) => {
        for (let i = 0; i < 4096; i++) {
          writeSync(fd, page);
          if ((i + 1) % 100 === 0) fdatasyncSync(fd);
        }
      }, 16 * 2 ** 20);
      const pages = (64 * 2 ** 20) / 4096;
      const places = randomIndexes(4096, pages);
      const inPlace = measureWrites('in-place', (fd) => writeSync(fd, randomBytes(64 * 2 ** 20)), (fd) => {
        for (let i = 0; i < 4096; i++) {
          writeSync(fd, page, 0, 4096, places[i] * 4096);
          if ((i + 1) % 100 === 0) fdatasyncSync(fd);
        }
      }, 16 * 2 ** 20);
      return {
        value: large.device,
        append1MiB: large.device,
        append4KiB: small.device,
        inPlace4KiB: inPlace.device,
        ...(inPlace.procIo !== undefined && { procIoInPlace4KiB: inPlace.procIo, procIoAppend4KiB: small.procIo }),
        method: counter.method,
      };
    });
  },

  /**
   * silt only (objects, issue 6): random 4 KiB writeAts into a `sizeMiB` object with slice
   * compaction `mode` ('on' | 'off'), measured after each of `writeCounts` (bench/lib/objects.mjs).
   * Flat fields per count (`ops10k`, `read10k`, `fresh10k`, `ratio10k`, `slices10k`, ...) so the
   * per-sample line shows them; `value` is the ops/s of the first count.
   */
  async objectsWriteAt({ store, sizeMiB, writeCounts, mode, seed }) {
    if (store !== 'silt') throw new Error('objectsWriteAt measures silt only');
    const { open } = await adapter('silt').library();
    return withTempDir('objects', async (dir) => {
      const rows = await writeAtRun(open, { dir, sizeBytes: sizeMiB * 2 ** 20, writeCounts, mode, seed });
      const result = { value: rows[0].opsPerSecond, seed };
      for (const row of rows) {
        const at = sizeLabel(row.writes);
        Object.assign(result, {
          [`ops${at}`]: row.opsPerSecond,
          [`read${at}`]: row.objectRead,
          [`fresh${at}`]: row.freshRead,
          [`ratio${at}`]: row.readRatio,
          [`maxSlices${at}`]: row.maxSlices,
          [`heavy${at}`]: row.heavy,
          [`logMiB${at}`]: row.logMiB,
        });
      }
      return result;
    });
  },

  /** silt only: 4 KiB reads at random offsets of one `mib` MiB value, by readAt and a ranged stream, beside a plain file (lib/range-read.mjs). */
  async rangeRead({ store, mib, reads }) {
    if (store !== 'silt') throw new Error('rangeRead measures silt only');
    const { open } = await adapter('silt').library();
    return withTempDir('range-read', async (dir) => {
      const result = await rangeReadRun(open, { dir, mib, reads });
      return { value: result.readAt, readAt: result.readAt, stream: result.stream, plain: result.plain, firstReadAt: result.firstReadAt };
    });
  },

  /** silt only: `appends` durable 64 KiB appends against write + fdatasync of a plain file, alternating. */
  async objectsAppend({ store, appends }) {
    if (store !== 'silt') throw new Error('objectsAppend measures silt only');
    const { open } = await adapter('silt').library();
    return withTempDir('objects-append', async (dir) => {
      const row = await appendRun(open, { dir, appends });
      return { value: row.siltMBps, ...row };
    });
  },
};

