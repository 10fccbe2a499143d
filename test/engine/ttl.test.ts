/**
 * Time to live, against a model that knows only what the clock allows it to know: a put with
 * `ttlMs` T, called at t0 and acknowledged at t1 (`Date.now()`), expires at some instant in
 * [t0 + T, t1 + T]; a read between r0 and r1 must show the value if it cannot have expired yet
 * (t0 + T > r1), must show nothing if it must have (t1 + T <= r0), and may show either between.
 * Each key is a set of states it may be in; a read keeps those it agrees with. So the checks hold
 * however slow the machine is, and short TTLs (1 to 40 ms) expire during the run: while values
 * are overwritten by values without TTL, made into objects, deleted, compacted away (an expired
 * put must never let an older value of its key come back), checkpointed and replayed at reopen.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { NodeFileSystem, open, SiltError, type FileHandle, type OpenMode, type Store } from '../../src/index.js';
import type { OpenOptions as FileOpenOptions } from '../../src/fs/types.js';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { decodeHint, HINT_FILE_NAME, writeHint, type EntryLocation } from '../../src/log/hint.js';
import type { ValueReference } from '../../src/log/format.js';
import { EntryType, SEGMENT_HEADER_BYTES, segmentFileName } from '../../src/log/format.js';
import { scanSegment } from '../../src/log/segment-reader.js';
import { BlockOpenGate, collect, expiryAllows, Gate, movableClock, random, seededBytes, temporaryDirectory, testSeed, type ExpiryWindow } from '../helpers.js';

interface State {
  /** undefined: absent. */
  value: Buffer | undefined;
  /** The window in which the value expires, for a put with `ttlMs`. */
  expires?: ExpiryWindow;
}

const KEYS = ['a', 'b', 'c', 'd', 'e', 'f'];
const OPTIONS = {
  segmentBytes: 8192,
  valueThreshold: 1000,
  blockBytes: 4096,
  compaction: { deadRatio: 0.3 },
  gc: { minAgeMs: 0, intervalMs: 5 },
  objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 8, keepInlineBytes: 512 },
};

/** What a read between `r0` and `r1` may return in `state`. */
function possibleReads(state: State, r0: number, r1: number): Array<Buffer | undefined> {
  if (state.value === undefined) return [undefined];
  const allows = expiryAllows(state.expires, r0, r1);
  return [...(allows.live ? [state.value] : []), ...(allows.expired ? [undefined] : [])];
}

function same(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}

function describe(value: Buffer | undefined): string {
  return value === undefined ? 'absent' : `${value.length} bytes ${createHash('sha256').update(value).digest('hex').slice(0, 8)}`;
}

/** The states after a write made between t0 and t1 turned each possible current value into `next`. */
function afterObjectWrite(states: State[], t0: number, t1: number, next: (base: Buffer) => Buffer): State[] {
  const result: State[] = [];
  for (const state of states) {
    for (const base of possibleReads(state, t0, t1)) {
      const value = next(base ?? Buffer.alloc(0));
      if (!result.some((known) => same(known.value, value))) result.push({ value });
    }
  }
  return result;
}

async function runTtlModel(seed: number, steps: number, directory: string): Promise<{ expiredReads: number; liveReads: number; reopens: number }> {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const bytes = (length: number): Buffer => {
    const value = Buffer.allocUnsafe(length);
    const base = Math.floor(next() * 256);
    for (let index = 0; index < length; index++) value[index] = (base + index * 13 + (index >> 8)) & 255;
    return value;
  };
  // Short TTLs expire during the run; long ones never do; none is the common case.
  const drawTtl = (): number | undefined => {
    const roll = next();
    if (roll < 0.45) return 1 + Math.floor(next() * 40);
    if (roll < 0.55) return 60_000;
    return undefined;
  };
  const drawValue = (): Buffer => bytes(next() < 0.3 ? 1001 + Math.floor(next() * 9000) : Math.floor(next() * 600));
  const states = new Map<string, State[]>(KEYS.map((key) => [key, [{ value: undefined }]]));
  const counts = { expiredReads: 0, liveReads: 0, reopens: 0 };
  const context = (step: number, what: string) => `seed ${seed} step ${step}: ${what}`;

  /** Keep the states of `key` that agree with `got`, read between r0 and r1. */
  const observe = (step: number, key: string, got: Buffer | undefined, r0: number, r1: number, what: string) => {
    const before = states.get(key) as State[];
    const kept: State[] = [];
    for (const state of before) {
      if (!possibleReads(state, r0, r1).some((value) => same(value, got))) continue;
      // Seen expired: it stays so (no state of a later read can bring it back).
      kept.push(got === undefined && state.value !== undefined ? { value: undefined } : state);
    }
    if (kept.length === 0) {
      assert.fail(context(step, `${what} of ${key} returned ${describe(got)}; it may be ${before.map((state) => `${describe(state.value)}${state.expires ? ` expiring in [${state.expires.from - r1}, ${state.expires.to - r0}] ms` : ''}`).join(' or ')}`));
    }
    if (got === undefined && before.some((state) => state.value !== undefined && state.expires !== undefined)) counts.expiredReads++;
    if (got !== undefined && before.some((state) => state.expires !== undefined)) counts.liveReads++;
    states.set(key, kept.filter((state, index) => kept.findIndex((other) => same(other.value, state.value) && other.expires === state.expires) === index));
  };

  const checkAll = async (db: Store, step: number, what: string) => {
    for (const key of KEYS) {
      const r0 = Date.now();
      const got = await db.get(key);
      observe(step, key, got, r0, Date.now(), what);
    }
  };

  let db = await open(directory, OPTIONS);
  try {
    for (let step = 0; step < steps; step++) {
      const key = pick(KEYS);
      const roll = next();
      const t0 = Date.now();
      if (roll < 0.25) {
        const value = drawValue();
        const ttlMs = drawTtl();
        await db.put(key, value, ttlMs === undefined ? undefined : { ttlMs });
        const t1 = Date.now();
        states.set(key, [ttlMs === undefined ? { value } : { value, expires: { from: t0 + ttlMs, to: t1 + ttlMs } }]);
      } else if (roll < 0.32) {
        // The lock pattern: take the key if it is absent or expired.
        const value = drawValue();
        const ttlMs = 1 + Math.floor(next() * 40);
        const outcome = await db.put(key, value, { ifAbsent: true, ttlMs }).then(
          () => 'taken',
          (error: unknown) => {
            if (error instanceof SiltError && error.code === 'CONFLICT') return 'held';
            throw error;
          },
        );
        const t1 = Date.now();
        if (outcome === 'taken') {
          observe(step, key, undefined, t0, t1, 'a put with ifAbsent that succeeded');
          states.set(key, [{ value, expires: { from: t0 + ttlMs, to: t1 + ttlMs } }]);
        } else {
          const live = (states.get(key) as State[]).filter((state) => possibleReads(state, t0, t1).some((read) => read !== undefined));
          if (live.length === 0) assert.fail(context(step, `a put with ifAbsent of ${key} found it held, but it cannot be live`));
          states.set(key, live);
        }
      } else if (roll < 0.42) {
        const other = pick(KEYS);
        const value = drawValue();
        const ttlMs = drawTtl();
        const operations = [{ type: 'put' as const, key, value, ...(ttlMs === undefined ? {} : { ttlMs }) }];
        if (other !== key) await db.batch([...operations, { type: 'delete', key: other }]);
        else await db.batch(operations);
        const t1 = Date.now();
        states.set(key, [ttlMs === undefined ? { value } : { value, expires: { from: t0 + ttlMs, to: t1 + ttlMs } }]);
        if (other !== key) states.set(other, [{ value: undefined }]);
      } else if (roll < 0.47) {
        const value = bytes(Math.floor(next() * 12000));
        const ttlMs = drawTtl();
        const pieces = [value.subarray(0, value.length >> 1), value.subarray(value.length >> 1)];
        await db.putStream(key, pieces, ttlMs === undefined ? undefined : { ttlMs });
        const t1 = Date.now();
        states.set(key, [ttlMs === undefined ? { value } : { value, expires: { from: t0 + ttlMs, to: t1 + ttlMs } }]);
      } else if (roll < 0.52) {
        await db.delete(key);
        states.set(key, [{ value: undefined }]);
      } else if (roll < 0.62) {
        // Object writes take no TTL, and a key they write keeps none: they build on the value if
        // it is live when they run, on nothing if it expired.
        const data = bytes(1 + Math.floor(next() * 3000));
        const offset = Math.floor(next() * 6000);
        const { size } = await db.writeAt(key, offset, data);
        const t1 = Date.now();
        const after = afterObjectWrite(states.get(key) as State[], t0, t1, (base) => {
          const grown = Buffer.alloc(Math.max(base.length, offset + data.length));
          base.copy(grown);
          data.copy(grown, offset);
          return grown;
        }).filter((state) => state.value?.length === size);
        if (after.length === 0) assert.fail(context(step, `writeAt of ${key} returned size ${size}, which no state allows`));
        states.set(key, after);
      } else if (roll < 0.69) {
        const data = bytes(1 + Math.floor(next() * 2000));
        const { size } = await db.append(key, data);
        const t1 = Date.now();
        const after = afterObjectWrite(states.get(key) as State[], t0, t1, (base) => Buffer.concat([base, data])).filter((state) => state.value?.length === size);
        if (after.length === 0) assert.fail(context(step, `append to ${key} returned size ${size}, which no state allows`));
        states.set(key, after);
      } else if (roll < 0.72) {
        const size = Math.floor(next() * 8000);
        await db.truncate(key, size);
        const t1 = Date.now();
        states.set(
          key,
          afterObjectWrite(states.get(key) as State[], t0, t1, (base) => {
            const resized = Buffer.alloc(size);
            base.copy(resized, 0, 0, Math.min(size, base.length));
            return resized;
          }),
        );
      } else if (roll < 0.76) {
        await db.compact();
      } else if (roll < 0.78) {
        await db.gc();
      } else if (roll < 0.8) {
        await db.compactObject(key, { mode: next() < 0.5 ? 'light' : 'heavy' });
      } else if (roll < 0.84) {
        // Reopen, from the checkpoint or (without it) by replaying the log: expiry instants are
        // absolute, so the same states hold.
        await db.close();
        db = await open(directory, { ...OPTIONS, checkpoint: next() < 0.5 });
        counts.reopens++;
        await checkAll(db, step, 'a read after reopen');
      } else if (roll < 0.88) {
        // A scan shows every key as a read would.
        const r0 = Date.now();
        const entries = await collect(db.entries());
        const r1 = Date.now();
        const seen = new Map(entries.map((entry) => [entry.key.toString(), entry.value]));
        for (const name of KEYS) observe(step, name, seen.get(name), r0, r1, 'a scan');
      } else if (roll < 0.9) {
        const result = await db.verify();
        assert.ok(result.ok, context(step, `verify(): ${JSON.stringify(result.problems.slice(0, 3))}`));
      } else {
        const r0 = Date.now();
        const got = await db.get(key);
        observe(step, key, got, r0, Date.now(), 'a read');
        const stat = await db.stat(key);
        if (stat !== undefined) {
          const r1 = Date.now();
          const digests = (states.get(key) as State[]).flatMap((state) => possibleReads(state, r0, r1)).map((value) => (value === undefined ? undefined : createHash('sha256').update(value).digest('hex')));
          assert.ok(digests.includes(stat.digest), context(step, `stat of ${key} has a digest no state allows`));
        }
      }
    }
    await db.idle();
    await checkAll(db, steps, 'a read at the end');
    const result = await db.verify();
    assert.ok(result.ok, `seed ${seed}: verify() at the end: ${JSON.stringify(result.problems.slice(0, 3))}`);
    await db.close();
    db = await open(directory, OPTIONS);
    await checkAll(db, steps, 'a read after the last reopen');
  } finally {
    await db.close().catch(() => undefined);
  }
  return counts;
}

test('TTL against a clock-aware model: puts, batches and streams with short and long TTLs, ifAbsent locks, object writes, deletes, compaction, GC, scans, stat, verify() and reopen (from the checkpoint and by replay); an expired value never reads, nor lets an older one come back', async (t) => {
  const seed = testSeed('ttl model');
  let expiredReads = 0;
  let liveReads = 0;
  for (let run = 0; run < 3; run++) {
    const counts = await runTtlModel(seed + run, 400, temporaryDirectory(t));
    expiredReads += counts.expiredReads;
    liveReads += counts.liveReads;
  }
  // The short TTLs did expire under reads, and unexpired ones were read.
  assert.ok(expiredReads > 10 && liveReads > 10, JSON.stringify({ expiredReads, liveReads }));
});

test('an object write whose value expires while it writes its blocks builds on the key as absent: no spurious CONFLICT, and the expired bytes do not come back', async (t) => {
  const fileSystem = new BlockOpenGate();
  const db = await open(temporaryDirectory(t), { fileSystem, valueThreshold: 1000, blockBytes: 4096, objects: { inlineBytes: 0, keepInlineBytes: 0 } });
  for (const kind of ['inline', 'blocks'] as const) {
    const key = `k-${kind}`;
    await db.put(key, Buffer.alloc(kind === 'inline' ? 600 : 3000, 7), { ttlMs: 30 });
    // The write reads the key (live), then waits at its first block file.
    fileSystem.gate.arm();
    // (Bytes of its own per round: content already stored opens no block file.)
    const fill = kind === 'inline' ? 1 : 2;
    const writing = db.writeAt(key, 100, Buffer.alloc(2000, fill));
    await fileSystem.gate.reached;
    // Until the store itself reads the key as expired.
    while ((await db.get(key)) !== undefined) await new Promise((resolve) => setTimeout(resolve, 2));
    const retriesBefore = db.stats().objects.expiredRetries;
    fileSystem.gate.release();
    const { size } = await writing;
    const expected = Buffer.alloc(2100);
    expected.fill(fill, 100);
    assert.equal(size, 2100, kind);
    assert.deepEqual(await db.get(key), expected, kind);
    assert.equal(db.stats().objects.expiredRetries, retriesBefore + 1, kind);
  }
  const verified = await db.verify();
  assert.ok(verified.ok, JSON.stringify(verified.problems.slice(0, 3)));
  await db.close();
});

/** Wait (on the clock, which is what is under test) until `condition` holds; fails after `limitMs`. */
async function until(condition: () => boolean, limitMs: number, what: string): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

test('expired puts stop counting as live without a reopen: the sweep drops them from the index, compaction reclaims their segments, GC their blocks', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { segmentBytes: 16 * 1024, valueThreshold: 2000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } });
  t.after(() => db.close());
  for (let index = 0; index < 20; index++) await db.put(`stable-${index}`, Buffer.alloc(100, index));
  // A cache's worth of entries that nobody touches again, inline values and values in blocks, in
  // one batch (one record: the stats below see them all before any can expire).
  // Long enough for the batch to be acknowledged well before it expires on a loaded machine.
  const ttlMs = 1500;
  const calledMs = Date.now();
  await db.batch([
    ...Array.from({ length: 300 }, (_, index) => ({ type: 'put' as const, key: `cache-${index}`, value: Buffer.alloc(500, index), ttlMs })),
    ...Array.from({ length: 20 }, (_, index) => ({ type: 'put' as const, key: `large-${index}`, value: Buffer.alloc(10_000, index), ttlMs })),
  ]);
  const full = db.stats();
  assert.ok(Date.now() < calledMs + ttlMs, 'the batch took longer than its TTL');
  const expiresBy = Date.now() + ttlMs;
  assert.equal(full.keys, 340);
  assert.ok(full.blocks.referenced > 0);
  // The background sweep, with no read, write or reopen to prompt it.
  await until(() => Date.now() > expiresBy && db.stats().expiry.swept === 320, 5000, 'the sweep');
  // The 20 values with blocks release them once their tombstones are in the log.
  await db.idle();
  const swept = db.stats();
  assert.equal(swept.expiry.tombstones, 20);
  assert.equal(swept.keys, 20);
  assert.equal(swept.blocks.referenced, 0, 'the expired values\' blocks are still referenced');
  assert.ok(swept.liveBytes < full.liveBytes / 10, `live bytes ${swept.liveBytes} of ${full.liveBytes}`);
  await db.compact();
  await db.gc();
  const compacted = db.stats();
  assert.equal(compacted.blocks.count, 0);
  assert.ok(compacted.diskBytes < full.diskBytes / 10, `${compacted.diskBytes} bytes on disk, ${full.diskBytes} before`);
  for (let index = 0; index < 20; index++) assert.deepEqual(await db.get(`stable-${index}`), Buffer.alloc(100, index));
  assert.equal(await db.get('cache-0'), undefined);
  assert.ok((await db.verify()).ok);
});

test('compact() first drops the puts expired by then, so their segments count as dead; the expiry queue stays bounded when keys are written again and again', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { segmentBytes: 16 * 1024, compaction: false });
  t.after(() => db.close());
  for (let index = 0; index < 100; index++) await db.put(`cache-${index}`, Buffer.alloc(500, index), { ttlMs: 5 });
  const expiresBy = Date.now() + 5;
  await db.put('stable', 'stays');
  await until(() => Date.now() > expiresBy, 1000, 'the expiry');
  const before = db.stats().diskBytes;
  await db.compact();
  const after = db.stats();
  assert.ok(after.diskBytes < before / 4, `${after.diskBytes} bytes on disk, ${before} before`);
  assert.equal(after.keys, 1);
  // Keys without TTL, and one key refreshed with a long TTL many times: its stale queue entries
  // are dropped in time (the queue is bounded by the live puts with a TTL, not by the keys).
  await db.batch(Array.from({ length: 3000 }, (_, index) => ({ type: 'put' as const, key: `plain-${index}`, value: 'v' })));
  let most = 0;
  for (let round = 0; round < 3000; round++) {
    await db.put('session', `round ${round}`, { ttlMs: 60 * 60 * 1000 });
    most = Math.max(most, db.stats().expiry.queued);
  }
  assert.ok(most <= 1024 + 3, `the expiry queue held ${most} entries for one key with a TTL`);
  assert.equal((await db.get('session'))?.toString(), 'round 2999');
});

test('compact() that finds puts expired since the last sweep runs alone: no background run copies the same segments beside it', async (t) => {
  // The clock moved forward by hand: the puts expire with the sweep timer (armed for their expiry,
  // an hour out in real time) not yet run, so compact() is the first to see them expired.
  const clock = movableClock(t);
  const directory = temporaryDirectory(t);
  const db = await open(directory, { segmentBytes: 4096, compaction: { deadRatio: 0.3 } });
  t.after(() => db.close());
  for (let index = 0; index < 10; index++) await db.put(`stable-${index}`, Buffer.alloc(100, index));
  for (let index = 0; index < 60; index++) await db.put(`cache-${index}`, Buffer.alloc(200, index), { ttlMs: 60 * 60 * 1000 });
  await db.idle();
  clock.aheadMs = 2 * 60 * 60 * 1000;
  // A write since the last background run (one that found nothing to do is not repeated until then).
  await db.put('stable-last', 'x');
  await db.compact();
  await db.idle();
  assert.equal(db.stats().expiry.swept, 60);
  const verified = await db.verify();
  assert.ok(verified.ok, JSON.stringify(verified.problems.slice(0, 3)));
  for (let index = 0; index < 10; index++) assert.deepEqual(await db.get(`stable-${index}`), Buffer.alloc(100, index));
});

test('a read stream opened before its value expired reads it whole after the sweep dropped it and GC ran', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } });
  t.after(() => db.close());
  const value = Buffer.alloc(5 * 4096);
  for (let index = 0; index < value.length; index++) value[index] = (index * 31 + (index >> 12)) & 255;
  await db.put('large', value, { ttlMs: 50 });
  // Opened while live, one block read; then the value expires, the sweep drops it, GC passes.
  const stream = db.createReadStream('large');
  const iterator = stream[Symbol.asyncIterator]();
  const first = (await iterator.next()).value as Buffer;
  await until(() => db.stats().expiry.swept === 1, 5000, 'the sweep');
  // Its tombstone applied (idle() waits for the sweep's write): only the reader keeps the blocks now.
  await db.idle();
  await db.gc();
  const parts = [first];
  for (let step = await iterator.next(); !step.done; step = await iterator.next()) parts.push(step.value as Buffer);
  assert.ok(Buffer.concat(parts).equals(value), 'the stream lost blocks GC collected under it');
  assert.equal(await db.get('large'), undefined);
  // Its reader gone, the blocks go.
  await db.gc();
  assert.equal(db.stats().blocks.count, 0);
});

/**
 * The tail of the clock-set-back tests: wait for the sweep to drop the one expired value (by the
 * timer: no compaction runs, so its record stays in the log) and write its tombstone, GC until
 * its blocks are gone (one block left: the kept value's), close, remove the checkpoint so the
 * next open replays the log, set the clock back an hour, and open again.
 */
async function sweepCollectAndReopenBehind(db: Store, directory: string, options: Parameters<typeof open>[1], clock: { aheadMs: number }): Promise<Store> {
  await until(() => db.stats().expiry.swept === 1, 5000, 'the sweep');
  await db.idle();
  assert.equal(db.stats().compaction.segmentsCompacted, 0);
  assert.equal(db.stats().expiry.tombstones, 1);
  for (let pass = 0; pass < 100 && db.stats().blocks.count > 1; pass++) await db.gc();
  assert.equal(db.stats().blocks.count, 1, 'GC did not delete the expired value\'s blocks');
  await db.close();
  rmSync(join(directory, HINT_FILE_NAME), { force: true });
  clock.aheadMs = -60 * 60 * 1000;
  return open(directory, options);
}

test('a value whose blocks GC deleted after the sweep stays gone when the clock is set back before a reopen: its removal is a record in the log, not only a reading of the clock', async (t) => {
  // The store is opened again without its checkpoint, so the log is replayed, with the clock set
  // back an hour by hand (as after a restart on a machine whose clock was wrong): the put looks live.
  const clock = movableClock(t);
  const directory = temporaryDirectory(t);
  const options = { valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } };
  let db = await open(directory, options);
  const kept = Buffer.alloc(3 * 4096, 9);
  await db.put('kept', kept);
  await db.put('large', Buffer.alloc(5 * 4096, 7), { ttlMs: 50 });
  db = await sweepCollectAndReopenBehind(db, directory, options, clock);
  t.after(() => db.close());
  assert.equal(await db.get('large'), undefined);
  assert.deepEqual(await db.get('kept'), kept);
  const verified = await db.verify();
  assert.ok(verified.ok, JSON.stringify(verified.problems.slice(0, 3)));
});

/** The real file system; once armed, the unlink of a file whose name ends with `name` waits for `release()`. */
class UnlinkGate extends NodeFileSystem {
  readonly gate = new Gate();
  name = '';

  override async unlink(path: string): Promise<void> {
    await this.gate.pass(this.name !== '' && path.endsWith(this.name));
    return super.unlink(path);
  }
}

test('compaction that meets an expired value with blocks writes its tombstone before GC may delete them: the old segment coming back at a replay (its unlink not yet durable) with the clock set back does not revive it', async (t) => {
  // The clock moved by hand: forward past the expiry (the sweep timer, armed an hour out in real
  // time, has not run, so background compaction is the first to meet the expired put), then back.
  const clock = movableClock(t);
  const directory = temporaryDirectory(t);
  const fileSystem = new UnlinkGate();
  const options = { segmentBytes: 4096, valueThreshold: 1000, blockBytes: 4096, compaction: { deadRatio: 0.3 }, gc: { minAgeMs: 0, intervalMs: 5 } };
  let db = await open(directory, { ...options, fileSystem });
  await db.put('large', Buffer.alloc(2 * 4096, 7), { ttlMs: 60 * 60 * 1000 });
  for (let index = 0; index < 8; index++) await db.put(`filler-${index}`, Buffer.alloc(300, index));
  // More until the first segment is sealed (it comes back below, as a sealed segment).
  for (let index = 0; readdirSync(directory).filter((name) => name.endsWith('.log')).length < 2; index++) await db.put(`stable-${index}`, Buffer.alloc(300, index));
  await db.idle();
  const firstSegment = readdirSync(directory).filter((name) => name.endsWith('.log')).sort()[0] as string;
  // Compaction retires the first segment, then stops at its unlink: the crash state taken there
  // is one where the unlink is not yet durable and the segment comes back at the next open.
  fileSystem.name = firstSegment;
  fileSystem.gate.arm();
  clock.aheadMs = 2 * 60 * 60 * 1000;
  // Overwrites make the first segment dead enough for background compaction.
  for (let round = 0; round < 3; round++) for (let index = 0; index < 8; index++) await db.put(`filler-${index}`, Buffer.alloc(300, 100 + round));
  // (Background work finishing first would mean the first segment was never deleted.)
  const first = await Promise.race([fileSystem.gate.reached.then(() => 'unlink'), db.idle().then(() => 'idle')]);
  assert.equal(first, 'unlink', 'the first segment was not compacted');
  assert.equal(db.stats().expiry.swept, 0, 'the sweep ran first');
  assert.ok(db.stats().compaction.expiredAsTombstones >= 1);
  // GC may delete the expired value's blocks meanwhile: its tombstone is durable.
  for (let pass = 0; pass < 100 && db.stats().blocks.count > 0; pass++) await db.gc();
  assert.equal(db.stats().blocks.count, 0, 'GC did not delete the expired value\'s blocks');
  const crashed = `${directory}-crashed`;
  t.after(() => rmSync(crashed, { recursive: true, force: true }));
  cpSync(directory, crashed, { recursive: true });
  fileSystem.gate.release();
  await db.idle();
  assert.ok(!existsSync(join(directory, firstSegment)), 'the first segment was not deleted');
  await db.close();
  // The crash state: the first segment on disk, the blocks gone, no checkpoint (a replay).
  rmSync(join(crashed, HINT_FILE_NAME), { force: true });
  clock.aheadMs = -60 * 60 * 1000;
  db = await open(crashed, options);
  t.after(() => db.close());
  assert.ok(db.stats().segments.list.some((segment) => segmentFileName(segment.segmentId) === firstSegment), 'the first segment did not come back');
  assert.equal(await db.get('large'), undefined);
  for (let index = 0; index < 8; index++) assert.deepEqual(await db.get(`filler-${index}`), Buffer.alloc(300, 102));
});

test('a value with blocks that expired while the store was closed stays gone when the clock is set back before a later reopen: open leaves it to the sweep, which writes its tombstone before GC may delete the blocks', async (t) => {
  const clock = movableClock(t);
  const options = { valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } };
  // Reopened after the expiry from the checkpoint, then (another store) by replay.
  for (const replay of [false, true]) {
    clock.aheadMs = 0;
    const directory = temporaryDirectory(t);
    let db = await open(directory, options);
    const kept = Buffer.alloc(3 * 4096, 9);
    await db.put('kept', kept);
    await db.put('large', Buffer.alloc(5 * 4096, 7), { ttlMs: 60 * 60 * 1000 });
    await db.close();
    clock.aheadMs = 2 * 60 * 60 * 1000;
    if (replay) rmSync(join(directory, HINT_FILE_NAME), { force: true });
    db = await open(directory, options);
    assert.equal(await db.get('large'), undefined);
    db = await sweepCollectAndReopenBehind(db, directory, options, clock);
    assert.equal(await db.get('large'), undefined, replay ? 'by replay' : 'from the checkpoint');
    assert.deepEqual(await db.get('kept'), kept);
    const verified = await db.verify();
    assert.ok(verified.ok, JSON.stringify(verified.problems.slice(0, 3)));
    await db.close();
  }
});

test('power loss at every fsync point of the expiry sweep and GC of values with blocks, then a reopen by replay with the clock set back: every value reads whole or (expired) absent, none points at a deleted block', async (t) => {
  const clock = movableClock(t);
  const fileSystem = new CrashFileSystem();
  // No checkpoint: every reopen replays the log. GC runs only when called.
  const options = { fileSystem, checkpoint: false, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 2 ** 31 - 1 } };
  const db = await open('/db', options);
  const kept = new Map<string, Buffer>();
  const expiring = new Map<string, Buffer>();
  for (let index = 0; index < 4; index++) {
    kept.set(`kept-${index}`, seededBytes(100 + index, 3 * 4096 + index));
    await db.put(`kept-${index}`, kept.get(`kept-${index}`) as Buffer);
  }
  const keptBlocks = db.stats().blocks.count;
  const ttlMs = 300;
  for (let index = 0; index < 4; index++) {
    expiring.set(`ttl-${index}`, seededBytes(200 + index, 2 * 4096 + index));
    // One with content another key keeps: its block must survive the expiry.
    await db.put(`ttl-${index}`, index === 0 ? (kept.get('kept-0') as Buffer) : (expiring.get(`ttl-${index}`) as Buffer), { ttlMs });
  }
  expiring.set('ttl-0', kept.get('kept-0') as Buffer);
  await db.put('inline-ttl', 'small', { ttlMs });
  const crashes: CrashFileSystem[] = [];
  // 'keep' too: block deletions are not followed by a directory fsync (a block coming back is
  // garbage, collected again), so only a state where the OS wrote them back shows them gone.
  const capture = (): void => {
    crashes.push(fileSystem.crash({ unsynced: 'drop' }));
    crashes.push(fileSystem.crash({ unsynced: 'tear', seed: crashes.length }));
    crashes.push(fileSystem.crash({ unsynced: 'keep' }));
  };
  fileSystem.onSync = capture;
  await until(() => db.stats().expiry.swept === 5, 5000, 'the sweep');
  await db.idle();
  assert.equal(db.stats().expiry.tombstones, 4);
  assert.ok(db.stats().blocks.count > keptBlocks);
  await db.gc();
  await db.gc();
  fileSystem.onSync = undefined;
  capture();
  assert.equal(db.stats().blocks.count, keptBlocks, 'GC left the expired values\' own blocks');
  await db.close();
  assert.ok(crashes.length >= 9, `only ${crashes.length} crash states`);
  // Set back: every put with a TTL would read as live if the log alone said nothing more.
  clock.aheadMs = -60 * 60 * 1000;
  for (const [position, crashed] of crashes.entries()) {
    const reopened = await open('/db', { ...options, fileSystem: crashed });
    for (const [key, value] of kept) assert.ok((await reopened.get(key))?.equals(value), `crash state ${position}: ${key}`);
    for (const [key, value] of expiring) {
      const got = await reopened.get(key);
      assert.ok(got === undefined || got.equals(value), `crash state ${position}: ${key} read other bytes`);
    }
    const result = await reopened.verify();
    assert.ok(result.ok, `crash state ${position}: ${JSON.stringify(result.problems.slice(0, 3))}`);
    await reopened.close();
  }
  console.log(`# expiry sweep crash states tried: ${crashes.length}`);
});

/**
 * The real file system; once `arm(matches)`ed, the next fdatasync of a log segment whose path
 * `matches` waits at the gate for `release()` (its group's records written, not yet durable).
 */
class LogSyncGate extends NodeFileSystem {
  readonly gate = new Gate();
  private matches: (path: string) => boolean = () => true;

  arm(matches: (path: string) => boolean): void {
    this.matches = matches;
    this.gate.arm();
  }

  override async open(path: string, mode: OpenMode, options?: FileOpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, mode, options);
    if (!path.endsWith('.log') || mode === 'read') return handle;
    const gated: FileHandle = Object.create(handle);
    gated.datasync = async () => {
      await this.gate.pass(this.matches(path));
      return handle.datasync();
    };
    // A gate cannot hold a synchronous call: a store under one goes through the thread pool.
    gated.datasyncSync = () => {
      throw new Error('a gated log fdatasync on the main thread: open the store with inlineSyncMaxMs: 0');
    };
    return gated;
  }
}

/**
 * The store in `directory` as a power loss now would leave it, the checkpoint durable and the
 * tombstone of `key` (in the newest segment, its fdatasync held at the gate) lost: a copy, with
 * that record and everything after it zeroed. Removed when the test ends.
 */
function copyWithoutTombstone(t: TestContext, directory: string, key: string): string {
  const crashed = `${directory}-crashed`;
  t.after(() => rmSync(crashed, { recursive: true, force: true }));
  cpSync(directory, crashed, { recursive: true });
  rmSync(join(crashed, 'LOCK'), { force: true });
  const newest = readdirSync(crashed).filter((name) => name.endsWith('.log')).sort().at(-1) as string;
  const segment = readFileSync(join(crashed, newest));
  let tombstoneAt: number | undefined;
  scanSegment(segment, SEGMENT_HEADER_BYTES, (entry) => {
    if (entry.type === EntryType.DELETE && entry.key.toString() === key) tombstoneAt = entry.offsetBytes;
  });
  assert.ok(tombstoneAt !== undefined, `no tombstone of ${key} in the newest segment`);
  segment.fill(0, tombstoneAt);
  writeFileSync(join(crashed, newest), segment);
  return crashed;
}

/**
 * Open `crashed` from its checkpoint (whose open GC pass deletes the blocks no indexed record
 * references), close it, then open it again by replay with the clock put back (where values
 * with a TTL of an hour are live): it must verify clean. Closed when the test ends.
 */
async function reopenFromCheckpointThenByReplay(t: TestContext, crashed: string, options: Parameters<typeof open>[1], clock: { aheadMs: number }): Promise<Store> {
  const fromCheckpoint = await open(crashed, options);
  assert.equal(fromCheckpoint.stats().recovery.usedCheckpoint, true);
  await fromCheckpoint.close();
  rmSync(join(crashed, HINT_FILE_NAME));
  clock.aheadMs = 0;
  const byReplay = await open(crashed, options);
  t.after(() => byReplay.close());
  const verified = await byReplay.verify();
  assert.ok(verified.ok, JSON.stringify(verified.problems.slice(0, 3)));
  return byReplay;
}

test('a checkpoint taken between the expiry sweep dropping a value with blocks and its tombstone becoming durable keeps the value: a power loss then (the tombstone lost) does not let the next open delete blocks a replay finds referenced', async (t) => {
  // Found by the kill -9 crash loop (verify: "referenced but missing" after a full replay). The
  // sweep drops an expired put from the index at once and holds its blocks until its tombstone is
  // applied; a segment roll in between checkpointed the index without the put, the log without
  // the tombstone. Here compact() does both: it sweeps (queuing the tombstone behind a write held
  // at the gate), and its seal of the active segment is served first, checkpointing the index.
  const clock = movableClock(t);
  const fileSystem = new LogSyncGate();
  // A gate holds only a thread-pool fdatasync (inlineSyncMaxMs: 0).
  const options = { fileSystem, inlineSyncMaxMs: 0, compaction: false as const, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } };
  const directory = temporaryDirectory(t);
  const db = await open(directory, options);
  const kept = seededBytes(1, 3 * 4096);
  const expiring = seededBytes(2, 2 * 4096);
  await db.put('kept', kept);
  await db.put('expiring', expiring, { ttlMs: 60 * 60 * 1000 });
  clock.aheadMs = 2 * 60 * 60 * 1000;
  fileSystem.arm(() => true);
  const held = db.put('other', 'x');
  await fileSystem.gate.reached;
  const compacted = db.compact();
  assert.equal(db.stats().expiry.swept, 1, 'compact() did not sweep the expired value at once');
  const written = db.stats().checkpoints.written;
  // The tombstone's group: the first in the second segment, after the seal. (Armed again once
  // the held write is let go: its waiter resumes only after this step.)
  const second = segmentFileName(2);
  fileSystem.gate.release();
  fileSystem.arm((path) => path.endsWith(second));
  await fileSystem.gate.reached;
  await until(() => db.stats().checkpoints.written > written, 5000, 'the checkpoint at the seal');
  const crashed = copyWithoutTombstone(t, directory, 'expiring');
  fileSystem.gate.release();
  await Promise.all([held, compacted]);
  await db.close();
  const reopened = await reopenFromCheckpointThenByReplay(t, crashed, { compaction: false, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } }, clock);
  // The clock back where the value is live: it reads whole, never a missing block.
  assert.deepEqual(await reopened.get('expiring'), expiring);
  assert.deepEqual(await reopened.get('kept'), kept);
});

test('verify() reports a checkpoint that leaves out an expired put with blocks the log still holds at its position: one taken before the tombstone was (an inline expired put may be left out)', async (t) => {
  const clock = movableClock(t);
  const directory = temporaryDirectory(t);
  const options = { compaction: false as const, valueThreshold: 1000, blockBytes: 4096, gc: false as const };
  const db = await open(directory, options);
  await db.put('kept', seededBytes(1, 3 * 4096));
  await db.put('expiring', seededBytes(2, 2 * 4096), { ttlMs: 60 * 60 * 1000 });
  await db.put('inline', 'small', { ttlMs: 60 * 60 * 1000 });
  await db.close();
  clock.aheadMs = 2 * 60 * 60 * 1000;
  // The checkpoint written at close, rewritten without one expired key (as a checkpoint taken
  // after the sweep dropped it would be, the tombstone not written by its position).
  const hint = decodeHint(readFileSync(join(directory, HINT_FILE_NAME)), Number.NEGATIVE_INFINITY);
  assert.ok(typeof hint !== 'string');
  // Decoded entries name no blocks (open reads them from the log); writeHint only asks whether they do.
  for (const position of hint.referencePositions) (hint.locations[position] as EntryLocation).reference = {} as ValueReference;
  const rewrite = async (leaveOut: string) => {
    const entries = hint.keys.map((key, position) => [key, hint.locations[position] as EntryLocation] as [string, EntryLocation]).filter(([key]) => key !== leaveOut);
    await writeHint(new NodeFileSystem(), directory, hint.position, entries, hint.blocks);
  };
  await rewrite('inline');
  let reopened = await open(directory, { ...options, readOnly: true });
  let verified = await reopened.verify();
  await reopened.close();
  assert.ok(verified.ok, `an expired inline put left out: ${JSON.stringify(verified.problems.slice(0, 3))}`);
  await rewrite('expiring');
  reopened = await open(directory, { ...options, readOnly: true });
  verified = await reopened.verify();
  await reopened.close();
  assert.ok(
    verified.problems.some((problem) => problem.kind === 'checkpoint' && problem.message.includes('missing from it')),
    `expected a checkpoint problem: ${JSON.stringify(verified.problems.slice(0, 3))}`,
  );
});

test('a compaction copy of a put that the sweep then drops moves the checkpoint\'s entry for it: a checkpoint between the copy and the tombstone lists the put where the log has it', async (t) => {
  // Compaction copies the put while it is live; the sweep drops it (expired meanwhile) before the
  // copy is applied and queues its tombstone behind the copy. The copy is then not indexed, but a
  // replay finds the put there, until the tombstone: a checkpoint taken in between (compaction's
  // own, before it deletes the compacted segment) must name the copy, not the compacted original.
  const clock = movableClock(t);
  const fileSystem = new LogSyncGate();
  // A gate holds only a thread-pool fdatasync (inlineSyncMaxMs: 0).
  const options = { fileSystem, inlineSyncMaxMs: 0, segmentBytes: 16 * 1024, compaction: false as const, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } };
  const directory = temporaryDirectory(t);
  const db = await open(directory, options);
  const expiring = seededBytes(2, 2 * 4096);
  await db.put('expiring', expiring, { ttlMs: 60 * 60 * 1000 });
  for (let index = 0; index < 20; index++) await db.put(`filler-${index}`, Buffer.alloc(300, index));
  for (let index = 0; index < 20; index++) await db.put(`filler-${index}`, Buffer.alloc(300, 100 + index));
  // Expires in real time (the sweep's timer is armed for it), after compact() has copied the put.
  await db.put('tick', 'x', { ttlMs: 1000 });
  fileSystem.arm(() => true);
  const compacted = db.compact();
  await fileSystem.gate.reached;
  const copiesHeld = db.stats().compaction;
  assert.ok(copiesHeld.bytesRead > 0, 'compaction has not read the first segment');
  clock.aheadMs = 2 * 60 * 60 * 1000;
  await until(() => db.stats().expiry.swept >= 2, 5000, 'the sweep');
  const written = db.stats().checkpoints.written;
  // The tombstone's group: the next fdatasync of the log, after the copies'.
  fileSystem.gate.release();
  fileSystem.arm(() => true);
  await fileSystem.gate.reached;
  await until(() => db.stats().checkpoints.written > written, 5000, "compaction's checkpoint");
  const crashed = copyWithoutTombstone(t, directory, 'expiring');
  fileSystem.gate.release();
  await compacted;
  await db.close();
  const plain = { segmentBytes: 16 * 1024, compaction: false as const, valueThreshold: 1000, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 5 } };
  const readOnly = await open(crashed, { ...plain, readOnly: true });
  const verified = await readOnly.verify();
  await readOnly.close();
  assert.ok(verified.ok, `the checkpoint against the log: ${JSON.stringify(verified.problems.slice(0, 3))}`);
  const reopened = await reopenFromCheckpointThenByReplay(t, crashed, plain, clock);
  assert.deepEqual(await reopened.get('expiring'), expiring);
});
