/**
 * The object measurements (issue 6), shared by the standalone `bench/objects.mjs` and the harness's
 * `objects-writeat` / `objects-append` workloads (tasks.mjs runs them in a child per sample). Each
 * takes silt's `open` function, so the caller decides which build is measured.
 *
 * - writeAtRun: a `size` object and a `size` value written fresh (putStream); random page-aligned
 *   4 KiB `writeAt`s into the object (offsets from a seeded PRNG: the seed is in the result), and
 *   after each count of `writeCounts` the whole object read with createReadStream, in turn with
 *   the fresh value (three reads of each, alternating which goes first, medians), after `idle()`
 *   and `gc()` passes until none is waiting (background compaction and block GC done).
 * - appendRun: `appends` records of 64 KiB (each distinct: a counter in its first bytes) appended
 *   to an object, alternating in rounds of 25 with `writeSync` + `fdatasyncSync` of the same
 *   records to a plain file in the same directory (the machine may be shared: both see the same
 *   disk weather); MB/s of each from the totals. Before that, untimed, `warmUpAppends` appends of
 *   other records to another object and another file (steady state: silt's code compiled by the
 *   JIT, as in a process that has run a while; 2,000 appends from a cold start measured about
 *   20% slower per append). Then, after `idle()`, the object read whole against a fresh value of
 *   the same size (readRatio).
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from './random.mjs';

export const PAGE_BYTES = 4096;
export const RECORD_BYTES = 64 * 1024;

function median(values) {
  const sorted = [...values].sort((left, right) => left - right);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

async function readAll(db, key, expectedBytes) {
  const started = performance.now();
  let bytes = 0;
  for await (const chunk of db.createReadStream(key)) bytes += chunk.length;
  if (bytes !== expectedBytes) throw new Error(`read ${bytes} bytes of ${key}, expected ${expectedBytes}`);
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

/**
 * Two untimed reads of each value before the timed ones. silt hashes a block read whole from disk
 * on its first two reads and checks later ones against a CRC-32 remembered then (three times
 * cheaper): without this, a value already read at an earlier count (the fresh one) would read
 * faster than one rewritten since (the object) for that alone, not for how it lies on disk.
 */
async function warmUpReads(db, keys, expectedBytes) {
  for (let pass = 0; pass < 2; pass++) for (const key of keys) await readAll(db, key, expectedBytes);
}

async function* source(total) {
  for (let done = 0; done < total; done += 1 << 20) yield randomBytes(Math.min(1 << 20, total - done));
}

/** silt's object options for compaction 'on' (the defaults, plus `tuning`) or 'off'. */
export function objectOptions(mode, tuning = {}) {
  return mode === 'on' ? { compaction: true, ...tuning } : { ...tuning, compaction: false, compactAt: 1_000_000, syncCompactAt: 1_000_000 };
}

/**
 * One object, `writeCounts` (ascending) random 4 KiB writeAts in total, measured after each count.
 * Returns one row per count: { mode, writes, opsPerSecond (of the writes since the previous count),
 * objectRead, freshRead, readRatio (MB/s, medians of 3), slices, maxSlices, heavy, logMiB, seed }.
 */
export async function writeAtRun(open, { dir, sizeBytes, writeCounts, mode, durability = 'sync', tuning = {}, seed = 42, log = () => {}, duringBurst = false, blockCacheBytes = 0 }) {
  const directory = mkdtempSync(join(dir, 'silt-objects-bench-'));
  try {
    // duringBurst: read as a burst of writes leaves the object (no idle(), no gc() passes, and paced
    // compaction given no pause to catch up in), not after background work is done.
    const objects = duringBurst ? { ...objectOptions(mode, tuning), compactQuietMs: 2 ** 31 - 1 } : objectOptions(mode, tuning);
    // The block cache off by default: the reads compare how the two values lie on disk, and a
    // cache holding more of one of them than of the other would decide the ratio instead.
    const db = await open(directory, { durability, objects, gc: { minAgeMs: 0, intervalMs: 1000 }, blockCacheBytes });
    const rows = [];
    try {
      await db.putStream('fresh', source(sizeBytes));
      await db.putStream('obj', source(sizeBytes));
      const next = mulberry32(seed);
      const page = randomBytes(PAGE_BYTES);
      let done = 0;
      for (const target of writeCounts) {
        const from = done;
        const started = performance.now();
        for (; done < target; done++) {
          page.writeUInt32LE(done, 0);
          await db.writeAt('obj', Math.floor(next() * (sizeBytes / PAGE_BYTES)) * PAGE_BYTES, page);
        }
        const writeSeconds = (performance.now() - started) / 1000;
        // Background work done before reading (compaction, then GC of the replaced blocks, which
        // would otherwise unlink files during whichever read comes first), and the two reads in
        // alternating order.
        if (!duringBurst) {
          await db.idle();
          for (let pass = 0; pass < 100 && (await db.gc()).waiting > 0; pass++);
        }
        const objectStats = db.objectStats('obj');
        await warmUpReads(db, ['fresh', 'obj'], sizeBytes);
        const freshReads = [];
        const objectReads = [];
        for (let round = 0; round < 3; round++) {
          if (round % 2 === 0) {
            freshReads.push(await readAll(db, 'fresh', sizeBytes));
            objectReads.push(await readAll(db, 'obj', sizeBytes));
          } else {
            objectReads.push(await readAll(db, 'obj', sizeBytes));
            freshReads.push(await readAll(db, 'fresh', sizeBytes));
          }
        }
        const stats = db.stats();
        const row = {
          mode,
          writes: target,
          opsPerSecond: (target - from) / writeSeconds,
          objectRead: median(objectReads),
          freshRead: median(freshReads),
          slices: objectStats?.slices,
          maxSlices: objectStats?.maxSlicesPerChunk,
          heavy: stats.objects.heavyCompactions,
          meanSlices: objectStats === undefined ? undefined : objectStats.slices / Math.max(1, objectStats.chunks.length),
          logMiB: stats.writes.logBytes / 2 ** 20,
          seed,
        };
        row.readRatio = row.objectRead / row.freshRead;
        rows.push(row);
        log(row);
      }
    } finally {
      await db.close();
    }
    return rows;
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/**
 * `appends` 64 KiB appends to one object against write + fdatasync (in 'sync' mode) of the same
 * record to a plain file, alternating in rounds of `round`. Returns { siltMBps, fileMBps, ratio, ... }.
 */
export async function appendRun(open, { dir, appends, durability = 'sync', tuning = {}, round = 25, blockCacheBytes = 0, warmUpAppends = 1000 }) {
  const record = randomBytes(RECORD_BYTES);
  const directory = mkdtempSync(join(dir, 'silt-append-bench-'));
  try {
    // The block cache off, as in writeAtRun: the read after compares layouts on disk.
    const db = await open(join(directory, 'db'), { durability, objects: tuning, blockCacheBytes });
    const descriptor = openSync(join(directory, 'plain.log'), 'a');
    let siltMs = 0;
    let fileMs = 0;
    let before;
    try {
      // The warm-up's records are not the timed ones: those would then be stored content.
      const warmUpRecord = randomBytes(RECORD_BYTES);
      const warmUpDescriptor = openSync(join(directory, 'warm-up.log'), 'a');
      try {
        for (let index = 0; index < warmUpAppends; index++) {
          warmUpRecord.writeUInt32LE(index, 0);
          await db.append('warm-up', warmUpRecord);
          writeSync(warmUpDescriptor, warmUpRecord);
          if (durability === 'sync') fdatasyncSync(warmUpDescriptor);
        }
      } finally {
        closeSync(warmUpDescriptor);
      }
      await db.idle();
      before = { objects: db.stats().objects, fsyncs: db.stats().writes.fsyncs };
      for (let done = 0; done < appends; done += round) {
        const count = Math.min(round, appends - done);
        let started = performance.now();
        for (let index = 0; index < count; index++) {
          // Each record distinct, as a log's are: identical records would make every appended
          // block after the first a duplicate of stored content (dead on arrival in silt's log).
          record.writeUInt32LE(done + index, 0);
          await db.append('log', record);
        }
        siltMs += performance.now() - started;
        started = performance.now();
        for (let index = 0; index < count; index++) {
          record.writeUInt32LE(done + index, 0);
          writeSync(descriptor, record);
          if (durability === 'sync') fdatasyncSync(descriptor);
        }
        fileMs += performance.now() - started;
      }
    } finally {
      closeSync(descriptor);
    }
    try {
      const siltMBps = (appends * RECORD_BYTES) / 1e6 / (siltMs / 1000);
      const fileMBps = (appends * RECORD_BYTES) / 1e6 / (fileMs / 1000);
      await db.idle();
      const size = db.objectStats('log')?.size;
      if (size !== appends * RECORD_BYTES) throw new Error(`the appended object holds ${size} bytes, expected ${appends * RECORD_BYTES}`);
      const stats = db.objectStats('log');
      const counters = db.stats().objects;
      // Then the appended object read whole, against a fresh value of the same size (three reads
      // of each, alternating which goes first, medians).
      const totalBytes = appends * RECORD_BYTES;
      await db.putStream('fresh', source(totalBytes));
      await warmUpReads(db, ['log', 'fresh'], totalBytes);
      const objectReads = [];
      const freshReads = [];
      for (let round = 0; round < 3; round++) {
        if (round % 2 === 0) objectReads.push(await readAll(db, 'log', totalBytes));
        freshReads.push(await readAll(db, 'fresh', totalBytes));
        if (round % 2 === 1) objectReads.push(await readAll(db, 'log', totalBytes));
      }
      const objectRead = median(objectReads);
      const freshRead = median(freshReads);
      // Counters of the timed appends only (the warm-up's subtracted).
      return {
        siltMBps,
        fileMBps,
        ratio: siltMBps / fileMBps,
        objectRead,
        freshRead,
        readRatio: objectRead / freshRead,
        maxSlices: stats?.maxSlicesPerChunk,
        inlineSlices: counters.inlineSlices - before.objects.inlineSlices,
        heavy: counters.heavyCompactions - before.objects.heavyCompactions,
        blocksReused: counters.blocksReused - before.objects.blocksReused,
        fsyncs: db.stats().writes.fsyncs - before.fsyncs,
      };
    } finally {
      await db.close();
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
