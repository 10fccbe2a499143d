/**
 * A seeded stress of one open store under concurrent calls: each step starts a few random
 * operations at once (puts small and large, putStream, batch, delete, writeAt, append, truncate,
 * compactObject, gc, compact, idle, verify) and range reads beside them, then checks reads against
 * a model: a read stream of a key the step writes must show one of the states the key goes
 * through. Now and then: close() with a whole step in flight (every write called before it
 * completes, but a stream still reading its source, which gives up with CLOSED), a snapshot whose scan must still show its instant
 * after more writes and a compaction, verify() while background work runs, a reopen (with or
 * without the checkpoint). Durability, segment size and the size of slices carried in
 * the log are drawn from the seed; segments and chunks are tiny, so the log rolls, compacts and
 * collects blocks all the time.
 *
 * Three more keys get puts with short `ttlMs` (besides puts without, streams, batches and deletes;
 * never object writes), drawn from a source of their own: each read of them must agree with a
 * state the key may be in, given the window the clock allows for its expiry ([called + T,
 * settled + T]), and a value read as expired stays absent until written again.
 *
 * Operations on one key apply in call order (the store's contract), so the model applies each
 * step's operations in the order they were started. Two bugs this found: gc() passes started side
 * by side (a damaged delayed list), and verify() reporting files that background work had moved.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FaultFileSystem, type FaultErrno } from '../../src/fs/fault-file-system.js';
import { NodeFileSystem, open, SiltError, type Durability, type OpenOptions, type Store } from '../../src/index.js';
import type { SegmentTable } from '../../src/engine/segment-table.js';
import { expiryAllows, random, type ExpiryWindow } from '../helpers.js';

export interface StressResult {
  steps: number;
  operations: number;
  rangeReads: number;
  reopens: number;
  /** Writes that waited for compaction (dead bytes past `stallRatio`), summed over the run's opens. */
  stalls: number;
  /** Read-only opens of the store beside the writer (as another process's CLI would). */
  peeks: number;
  /** Their reads that failed: a value whose files the writer removed after the peek opened (GC runs with `minAgeMs` 0 here). */
  peekReadErrors: number;
  /** Writes with `ttlMs` to the TTL keys, and reads of those keys that found the value expired (as its window allowed). */
  ttlWrites: number;
  expiredReads: number;
  /** Empty when every check held; otherwise what failed first (the run stops there). */
  failures: string[];
}

const KEYS = Array.from({ length: 8 }, (_, index) => `key-${index}`);
/**
 * Keys that get puts with `ttlMs` (short ones: they expire during the run, beside compaction,
 * GC, reopens and close()), puts without, streams, batches and deletes, never object writes:
 * their model is a value and the window its expiry time lies in.
 */
const TTL_KEYS = Array.from({ length: 3 }, (_, index) => `ttl-${index}`);

/** A TTL key's state: its value, and for a put with `ttlMs` T called at t0 and settled at t1, the window [t0 + T, t1 + T] of its expiry time. */
interface TtlState {
  value: Buffer;
  expires?: ExpiryWindow;
}

/**
 * Whether a read of a TTL key agrees with a state, given the clock before and after it (the
 * read's now was in between): present as that value while it may be live, absent if it may
 * have expired (live exactly while its expiry time is after now).
 */
function agreesTtl(state: TtlState | undefined, got: Buffer | undefined, beforeMs: number, afterMs: number): boolean {
  if (state === undefined) return got === undefined;
  const allows = expiryAllows(state.expires, beforeMs, afterMs);
  return got === undefined ? allows.expired : allows.live && got.equals(state.value);
}

/** A write to a TTL key: the state it leaves (undefined: deleted), filled in when it settles. */
interface TtlWrite {
  promise: Promise<unknown>;
  key: string;
  /** A batch's second key, deleted. */
  alsoDeletes?: string;
  value?: Buffer;
  ttlMs?: number;
  calledMs: number;
  settledMs?: number;
  stream: boolean;
}

/** Start 0-2 writes to the TTL keys (nothing awaited), drawn from their own random source. */
function startTtlWrites(db: Store, next: () => number, bytes: (length: number) => Buffer): TtlWrite[] {
  const writes: TtlWrite[] = [];
  const count = Math.floor(next() * 3);
  for (let position = 0; position < count; position++) {
    const key = TTL_KEYS[Math.floor(next() * TTL_KEYS.length)] as string;
    const roll = next();
    // Most of them short (a few ms: they expire within this step or the next few), some none.
    const ttlMs = next() < 0.8 ? 1 + Math.floor(next() * 40) : undefined;
    const calledMs = Date.now();
    let write: TtlWrite;
    if (roll < 0.45) {
      const value = bytes(Math.floor(next() * 3000));
      write = { promise: db.put(key, value, ttlMs === undefined ? undefined : { ttlMs }), key, value, ttlMs, calledMs, stream: false };
    } else if (roll < 0.65) {
      // Large enough for blocks (valueThreshold is 512 here): GC meets expired values' blocks.
      const value = bytes(600 + Math.floor(next() * 12000));
      const pieces = [value.subarray(0, 300), value.subarray(300)];
      write = { promise: db.putStream(key, pieces, ttlMs === undefined ? undefined : { ttlMs }), key, value, ttlMs, calledMs, stream: true };
    } else if (roll < 0.85) {
      const other = TTL_KEYS[Math.floor(next() * TTL_KEYS.length)] as string;
      const value = bytes(Math.floor(next() * 2000));
      const put = { type: 'put' as const, key, value, ...(ttlMs === undefined ? {} : { ttlMs }) };
      write = { promise: db.batch(other === key ? [put] : [put, { type: 'delete', key: other }]), key, ...(other === key ? {} : { alsoDeletes: other }), value, ttlMs, calledMs, stream: false };
    } else {
      write = { promise: db.delete(key), key, calledMs, stream: false };
    }
    const settled = write;
    write.promise = write.promise.then((result) => {
      settled.settledMs = Date.now();
      return result;
    });
    writes.push(write);
  }
  return writes;
}

/** Apply a settled TTL write to the model. */
function applyTtl(model: Map<string, TtlState>, write: TtlWrite): void {
  if (write.alsoDeletes !== undefined) model.delete(write.alsoDeletes);
  if (write.value === undefined) {
    model.delete(write.key);
    return;
  }
  const state: TtlState = { value: write.value };
  if (write.ttlMs !== undefined) state.expires = { from: write.calledMs + write.ttlMs, to: (write.settledMs as number) + write.ttlMs };
  model.set(write.key, state);
}

function sameValue(got: Buffer | undefined, want: Buffer | undefined): boolean {
  return got === undefined ? want === undefined : want !== undefined && got.equals(want);
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** What a step started: its writes (each with its effect on a model), other calls, keys to read. */
interface StepPlan {
  writes: Array<{ promise: Promise<unknown>; apply: (state: Map<string, Buffer>) => void; stream: boolean }>;
  others: Array<Promise<unknown>>;
  toRead: string[];
  /** The states each key the step writes goes through (before, then after each write of it). */
  versions: Map<string, Array<Buffer | undefined>>;
}

interface Draw {
  next: () => number;
  pick: <T>(items: readonly T[]) => T;
  bytes: (length: number) => Buffer;
}

/**
 * Start up to eight random calls at once on `db` (nothing awaited): writes, maintenance, and
 * `verify()` when `verifying` is given. `model` is the state before the step (not changed).
 */
function startStep(db: Store, model: Map<string, Buffer>, { next, pick, bytes }: Draw, verifying: ((db: Store) => Promise<void>) | undefined): StepPlan {
  // Each write's effect on the model, applied after the step in call order if the write
  // succeeded (a write may be refused with CLOSED when the step closes the store under it).
  const writes: Array<{ promise: Promise<unknown>; apply: (state: Map<string, Buffer>) => void; stream: boolean }> = [];
  const others: Array<Promise<unknown>> = [];
  // The states each key goes through in this step (before, then after each write of it).
  const versions = new Map<string, Array<Buffer | undefined>>();
  const planned = new Map([...model]);
  const write = (promise: Promise<unknown>, apply: (state: Map<string, Buffer>) => void, stream = false) => {
    writes.push({ promise, apply, stream });
    const before = new Set(planned.keys());
    const snapshotOf = new Map(planned);
    apply(planned);
    for (const key of KEYS) {
      if (planned.get(key) === snapshotOf.get(key) && before.has(key) === planned.has(key)) continue;
      if (!versions.has(key)) versions.set(key, [snapshotOf.get(key)]);
      versions.get(key)?.push(planned.get(key));
    }
  };
  const toRead: string[] = [];
  const count = 1 + Math.floor(next() * 8);
  for (let position = 0; position < count; position++) {
    const key = pick(KEYS);
    const roll = next();
    if (roll < 0.15) {
      const value = bytes(Math.floor(next() * 9000));
      write(db.put(key, value), (state) => state.set(key, value));
    } else if (roll < 0.25) {
      const value = bytes(Math.floor(next() * 40000));
      const pieces: Buffer[] = [];
      for (let at = 0; at < value.length; at += 5000) pieces.push(value.subarray(at, at + 1 + Math.floor(next() * 5000)));
      // The pieces may overlap or leave gaps: the model is what the stream yields.
      const streamed = Buffer.concat(pieces);
      write(db.putStream(key, pieces), (state) => state.set(key, streamed), true);
    } else if (roll < 0.33) {
      const other = pick(KEYS);
      const value = bytes(Math.floor(next() * 3000));
      write(db.batch(other === key ? [{ type: 'put', key, value }] : [{ type: 'put', key, value }, { type: 'delete', key: other }]), (state) => {
        state.set(key, value);
        if (other !== key) state.delete(other);
      });
    } else if (roll < 0.38) {
      write(db.delete(key), (state) => state.delete(key));
    } else if (roll < 0.5) {
      const data = bytes(1 + Math.floor(next() * 3000));
      const offset = Math.floor(next() * 50000);
      write(db.writeAt(key, offset, data), (state) => {
        const current = state.get(key) ?? Buffer.alloc(0);
        const grown = Buffer.alloc(Math.max(current.length, offset + data.length));
        current.copy(grown);
        data.copy(grown, offset);
        state.set(key, grown);
      });
    } else if (roll < 0.58) {
      const data = bytes(1 + Math.floor(next() * 6000));
      write(db.append(key, data), (state) => state.set(key, Buffer.concat([state.get(key) ?? Buffer.alloc(0), data])));
    } else if (roll < 0.61) {
      const size = Math.floor(next() * 60000);
      write(db.truncate(key, size), (state) => {
        const current = state.get(key) ?? Buffer.alloc(0);
        const resized = Buffer.alloc(size);
        current.copy(resized, 0, 0, Math.min(size, current.length));
        state.set(key, resized);
      });
    } else if (roll < 0.66) {
      others.push(db.compactObject(key, { mode: next() < 0.5 ? 'light' : 'heavy' }));
    } else if (roll < 0.68) {
      // Passes asked for together wait for each other.
      others.push(db.gc(), db.gc());
    } else if (roll < 0.7) {
      others.push(db.compact());
    } else if (roll < 0.72) {
      others.push(db.idle());
    } else if (roll < 0.75 && verifying !== undefined) {
      // verify() alongside the step's writes and whatever background work they start.
      others.push(verifying(db));
    } else {
      toRead.push(key);
    }
  }
  return { writes, others, toRead, versions };
}

/** A run's random source from `seed`, and what it draws first: durability and store options. */
function drawRun(seed: number): Draw & { durability: Durability; options: OpenOptions } {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const durability = pick<Durability>(['sync', 'none', { intervalMs: 5 }]);
  const options: OpenOptions = {
    durability,
    valueThreshold: 512,
    blockBytes: 4096,
    segmentBytes: 16384 * (1 + Math.floor(next() * 8)),
    gc: { minAgeMs: 0, intervalMs: 5, batch: pick([3, 7, 1000]) },
    // Half the runs stall writes often (they wait for compaction, and leave the stall in call order).
    compaction: { deadRatio: 0.3, stallRatio: pick([0.35, 0.8]) },
    objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 8, inlineBytes: pick([0, 1024, 4096]), compactQuietMs: 1 },
    // Blocks staged (hashed while written to a staging file, then renamed): all, full ones only, none.
    stagedBlockBytes: pick([0, 4096, 1 << 20]),
  };
  /** Bytes that compress to nothing or to little, or not at all. */
  const bytes = (length: number): Buffer => {
    const value = Buffer.allocUnsafe(length);
    const base = Math.floor(next() * 256);
    if (next() < 0.3) return value.fill(base);
    for (let index = 0; index < length; index++) value[index] = (base + index * 7 + (index >> 9)) & 255;
    return value;
  };
  return { next, pick, bytes, durability, options };
}

/** A run's failure: a check's says what it saw (and the run); an error from the store says where it came from too. */
function failureOf(error: unknown, step: number, run: string): string {
  return error instanceof SiltError ? `step ${step} (${run}): ${String(error.stack)}` : (error as Error).message;
}

/** Run `steps` steps from `seed` in a fresh directory (removed afterwards). */
export async function runConcurrentStress({
  seed,
  steps,
  directory: parent = tmpdir(),
  peekRate = 0.06,
}: {
  seed: number;
  steps: number;
  directory?: string;
  /** The chance that a step opens a read-only store beside the writer (the same draw whatever the rate: a seed's run is otherwise the same). */
  peekRate?: number;
}): Promise<StressResult> {
  const { next, pick, bytes, durability, options } = drawRun(seed);
  // The TTL keys' writes draw from their own source: the rest of a seed's run stays as it was.
  const ttlDraw = drawRun(seed ^ 0x5bd1e995);
  const directory = mkdtempSync(join(parent, 'silt-stress-'));
  const result: StressResult = { steps: 0, operations: 0, rangeReads: 0, reopens: 0, stalls: 0, peeks: 0, peekReadErrors: 0, ttlWrites: 0, expiredReads: 0, failures: [] };
  const model = new Map<string, Buffer>();
  const ttlModel = new Map<string, TtlState>();
  // Every value each key held or may hold, by digest: a read-only store opened beside the writer
  // sees some earlier state (what the writer had written to its files), never other bytes.
  const held = new Map<string, Set<string>>([...KEYS, ...TTL_KEYS].map((key) => [key, new Set()]));
  const digestOf = (value: Buffer) => createHash('sha256').update(value).digest('hex');
  // The model's values as held: when a write of a step fails (a stream cut off by close()), the
  // writes after it build on another state than the step planned.
  const noteModel = () => {
    for (const [key, value] of model) held.get(key)?.add(digestOf(value));
  };
  const fail = (message: string): never => {
    throw new Error(`${message} (seed ${seed}, durability ${JSON.stringify(durability)})`);
  };
  /** Read a TTL key and check it against its states (any of them); an expired state is absent for good. */
  const checkTtlKey = async (db: Store, key: string, states: Array<TtlState | undefined>, when: string) => {
    const beforeMs = Date.now();
    const got = await db.get(key);
    const afterMs = Date.now();
    if (!states.some((state) => agreesTtl(state, got, beforeMs, afterMs))) {
      const shown = states.map((state) => (state === undefined ? 'absent' : `${state.value.length} bytes${state.expires === undefined ? '' : ` expiring in [${state.expires.from}, ${state.expires.to}]`}`));
      fail(`${when}: ${key} reads ${got === undefined ? 'absent' : `${got.length} bytes`} between ${beforeMs} and ${afterMs}, its states: ${shown.join(' / ')}`);
    }
    if (got === undefined && states.some((state) => state !== undefined)) result.expiredReads++;
    return got;
  };
  const checkAll = async (db: Store, when: string) => {
    for (const key of KEYS) {
      const got = await db.get(key);
      if (!sameValue(got, model.get(key))) fail(`${when}: ${key} reads ${got?.length} bytes, the model has ${model.get(key)?.length}`);
    }
    for (const key of TTL_KEYS) {
      // Read absent, it stays so (until written again): the model says so from here on.
      if ((await checkTtlKey(db, key, [ttlModel.get(key)], when)) === undefined) ttlModel.delete(key);
    }
  };
  const checkVerified = async (db: Store, when: string) => {
    const verified = await db.verify();
    if (!verified.ok) fail(`${when}: verify() found ${JSON.stringify(verified.problems.slice(0, 3))}`);
    // The compaction scheduler's running totals (private: no API shows them) against the segments.
    const drift = (db as unknown as { segments: SegmentTable }).segments.recount();
    if (drift !== undefined) fail(`${when}: the segment table's totals drifted: ${drift}`);
  };
  const peek = async (step: number) => {
    result.peeks++;
    const reader = await open(directory, { readOnly: true }).catch((error: unknown) => fail(`step ${step}: a read-only open beside the writer failed: ${String(error)}`));
    try {
      for (const key of [...KEYS, ...TTL_KEYS]) {
        // STALE: the writer removed a file this open's view needs since it opened (the store is
        // fine). Anything else (CORRUPTION above all) fails the run.
        const got = await reader.get(key).catch((error: unknown) => {
          if (!(error instanceof SiltError && error.code === 'STALE')) throw error;
          result.peekReadErrors++;
          return undefined;
        });
        if (got !== undefined && !held.get(key)?.has(digestOf(got))) fail(`step ${step}: a read-only store beside the writer read ${key} as ${got.length} bytes it never held`);
      }
      // Its own draws (a seed's run is the same with more or fewer peeks): a scan of every entry,
      // and a check of the whole view, each of which may also find the view STALE.
      const draw = random(seed * 1000 + step);
      if (draw() < 0.5) {
        try {
          for await (const entry of reader.entries()) {
            const key = entry.key.toString();
            if (!held.get(key)?.has(digestOf(entry.value))) fail(`step ${step}: a read-only scan beside the writer read ${key} as ${entry.value.length} bytes it never held`);
          }
        } catch (error) {
          if (!(error instanceof SiltError && error.code === 'STALE')) throw error;
          result.peekReadErrors++;
        }
      }
      if (draw() < 0.2) {
        const verified = await reader.verify().catch((error: unknown) => {
          if (!(error instanceof SiltError && error.code === 'STALE')) throw error;
          result.peekReadErrors++;
          return undefined;
        });
        if (verified !== undefined && !verified.ok) fail(`step ${step}: verify() of a read-only open beside the writer found ${JSON.stringify(verified.problems.slice(0, 3))}`);
      }
    } finally {
      await reader.close();
    }
  };
  let db = await open(directory, options);
  try {
    for (let step = 0; step < steps; step++) {
      const closing = next() < 0.03;
      const { writes, others, toRead, versions } = startStep(db, model, { next, pick, bytes }, (store) => checkVerified(store, `step ${step}, alongside writes`));
      for (const [key, states] of versions) for (const state of states) if (state !== undefined) held.get(key)?.add(digestOf(state));
      const ttlWrites = startTtlWrites(db, ttlDraw.next, ttlDraw.bytes);
      // The states each TTL key may show during the step: before, then after each write of it
      // (in call order), with the windows as wide as the step (settled by its end at the latest).
      const ttlStates = new Map<string, Array<TtlState | undefined>>(TTL_KEYS.map((key) => [key, [ttlModel.get(key)]]));
      for (const write of ttlWrites) {
        result.ttlWrites += write.ttlMs === undefined ? 0 : 1;
        if (write.value !== undefined) held.get(write.key)?.add(digestOf(write.value));
        ttlStates.get(write.key)?.push(write.value === undefined ? undefined : { value: write.value, ...(write.ttlMs === undefined ? {} : { expires: { from: write.calledMs + write.ttlMs, to: Number.POSITIVE_INFINITY } }) });
        if (write.alsoDeletes !== undefined) ttlStates.get(write.alsoDeletes)?.push(undefined);
      }
      // Reads of TTL keys beside the writes: one of the states the step takes them through.
      if (!closing && ttlDraw.next() < 0.5) {
        const key = TTL_KEYS[Math.floor(ttlDraw.next() * TTL_KEYS.length)] as string;
        others.push(checkTtlKey(db, key, ttlStates.get(key) ?? [], `step ${step}, beside writes`));
      }
      if (!closing && next() < peekRate) others.push(peek(step));
      result.operations += writes.length + others.length + ttlWrites.length;
      // Reads alongside the writes: a key the step writes reads as one of the states it goes
      // through (a read stream sees one version), any other key as the model has it.
      if (!closing) {
        for (const key of toRead) {
          const states = versions.get(key) ?? [model.get(key)];
          const longest = states.reduce((most, state) => Math.max(most, state?.length ?? 0), 0);
          if (longest === 0) {
            others.push(db.get(key).then((got) => states.some((state) => sameValue(got, state)) || fail(`step ${step}: ${key} reads ${got?.length} bytes, no state of the step`)));
            continue;
          }
          const start = Math.floor(next() * longest);
          const end = start + Math.floor(next() * (longest - start));
          result.rangeReads++;
          // The same range by readAtSync, now: the state the key is in at this instant (fewer
          // bytes where that state ends first, none past its end).
          const at = db.readAtSync(key, start, end + 1 - start);
          if (!states.some((state) => (state === undefined ? at === undefined : at !== undefined && at.equals(state.subarray(start, end + 1))))) {
            fail(`step ${step}: readAt ${start}-${end} of ${key} read as no state of the step`);
          }
          // createReadStream throws at once for a missing key or a start past the end.
          const read = (async () => readAll(db.createReadStream(key, { start, end })))();
          others.push(
            read.then(
              // A start at a state's very end reads nothing (past it, INVALID_ARGUMENT below).
              (got) => states.some((state) => state !== undefined && state.length >= start && got.equals(state.subarray(start, end + 1))) || fail(`step ${step}: bytes ${start}-${end} of ${key} read as no state of the step`),
              (error: unknown) => {
                // A range past the end of the state the stream opened, or a key absent then.
                const code = error instanceof SiltError ? error.code : undefined;
                if ((code === 'NOT_FOUND' && states.includes(undefined)) || (code === 'INVALID_ARGUMENT' && states.some((state) => state !== undefined && state.length < start))) return;
                throw error;
              },
            ),
          );
        }
      }
      if (closing) {
        // close() with all of it in flight: writes called before it complete, except a stream
        // still reading its source, which gives up with CLOSED (then not applied); maintenance
        // calls may end with CLOSED.
        result.stalls += db.stats().compaction.stalls;
        const closed = db.close();
        // Settled together: a rejection must have its handler before the next tick.
        const [settled, othersSettled, ttlSettled] = await Promise.all([Promise.allSettled(writes.map((entry) => entry.promise)), Promise.allSettled(others), Promise.allSettled(ttlWrites.map((entry) => entry.promise))]);
        ttlSettled.forEach((outcome, position) => {
          const write = ttlWrites[position] as TtlWrite;
          if (outcome.status === 'fulfilled') applyTtl(ttlModel, write);
          else if (!(write.stream && outcome.reason instanceof SiltError && outcome.reason.code === 'CLOSED')) fail(`step ${step}: a TTL write called before close() failed: ${String(outcome.reason)}`);
        });
        settled.forEach((outcome, position) => {
          const entry = writes[position] as (typeof writes)[number];
          if (outcome.status === 'fulfilled') {
            entry.apply(model);
            noteModel();
          }
          else if (!(entry.stream && outcome.reason instanceof SiltError && outcome.reason.code === 'CLOSED')) fail(`step ${step}: a write called before close() failed: ${String(outcome.reason)}`);
        });
        for (const outcome of othersSettled) {
          if (outcome.status === 'rejected' && !(outcome.reason instanceof SiltError && outcome.reason.code === 'CLOSED')) fail(`step ${step}: in flight at close(): ${String(outcome.reason)}`);
        }
        await closed;
        db = await open(directory, options);
        result.reopens++;
        await checkAll(db, `after close() under load at step ${step}`);
        result.steps++;
        continue;
      }
      await Promise.all([...writes.map((entry) => entry.promise), ...others, ...ttlWrites.map((entry) => entry.promise)]);
      for (const entry of writes) entry.apply(model);
      for (const write of ttlWrites) applyTtl(ttlModel, write);
      const roll = next();
      if (roll < 0.04) {
        result.stalls += db.stats().compaction.stalls;
        await db.close();
        if (next() < 0.3) rmSync(join(directory, 'index.hint'), { force: true });
        db = await open(directory, options);
        result.reopens++;
        await checkAll(db, `after reopen at step ${step}`);
      } else if (roll < 0.1) {
        // A snapshot's scan shows its instant after more writes and a compaction.
        const snapshot = db.snapshot();
        const atSnapshot = new Map([...model].map(([key, value]) => [key, Buffer.from(value)]));
        const key = pick(KEYS);
        const value = bytes(2000);
        held.get(key)?.add(digestOf(value));
        await db.put(key, value);
        model.set(key, value);
        await db.compact();
        const seen = new Map<string, Buffer>();
        for await (const entry of snapshot.entries()) seen.set(entry.key.toString(), entry.value);
        snapshot.release();
        for (const name of KEYS) {
          if (!sameValue(seen.get(name), atSnapshot.get(name))) fail(`step ${step}: the snapshot scan shows ${seen.get(name)?.length} bytes of ${name}, it was ${atSnapshot.get(name)?.length}`);
        }
      } else if (roll < 0.13) {
        // verify() while background compaction and GC may run.
        await checkVerified(db, `step ${step}`);
      }
      if (step % 25 === 0) await checkAll(db, `step ${step}`);
      result.steps++;
    }
    await db.idle();
    await checkAll(db, 'at the end');
    await checkVerified(db, 'at the end');
    result.stalls += db.stats().compaction.stalls;
    await db.close();
    db = await open(directory, options);
    await checkAll(db, 'after the last reopen');
  } catch (error) {
    result.failures.push(failureOf(error, result.steps, `seed ${seed}, durability ${JSON.stringify(durability)}`));
  } finally {
    await db.close().catch(() => undefined);
    rmSync(directory, { recursive: true, force: true });
  }
  return result;
}

/** The store's whole state: every key's value, or its absence. */
type World = Map<string, Buffer>;

function worldKey(world: World): string {
  return KEYS.map((key) => {
    const value = world.get(key);
    return value === undefined ? '-' : `${value.length}:${value.toString('base64').slice(0, 24)}:${crcOf(value)}`;
  }).join('|');
}

function crcOf(value: Buffer): number {
  let hash = 0x811c9dc5;
  for (let index = 0; index < value.length; index++) hash = Math.imul(hash ^ (value[index] as number), 0x01000193) >>> 0;
  return hash;
}

export interface FaultStressResult {
  steps: number;
  operations: number;
  failedCalls: number;
  /** Writes refused or failed (not acknowledged): each may or may not have been applied. */
  uncertainWrites: number;
  failures: string[];
}

/**
 * The concurrent stress with an injected I/O fault: from a step drawn from the seed, one call of a
 * drawn kind fails (EIO or ENOSPC, once or from then on). Writes go on; an acknowledged write must
 * be there after a reopen on the real file system, one that failed may or may not be (so the
 * model is a set of possible whole-store states). Then the store must reopen and verify clean,
 * and hold exactly one of those states. No reads are checked while the fault is active.
 */
export async function runFaultStress({ seed, steps, directory: parent = tmpdir() }: { seed: number; steps: number; directory?: string }): Promise<FaultStressResult> {
  const { next, pick, bytes, durability, options } = drawRun(seed);
  const faults = new FaultFileSystem(new NodeFileSystem());
  const faultStep = Math.floor(next() * steps);
  const rule = {
    kind: pick(['write', 'sync', 'open', 'rename', 'unlink', 'any'] as const),
    n: 1 + Math.floor(next() * 30),
    errno: pick<FaultErrno>(['EIO', 'ENOSPC']),
    mode: pick(['once', 'forever'] as const),
  };
  const directory = mkdtempSync(join(parent, 'silt-fault-stress-'));
  const result: FaultStressResult = { steps: 0, operations: 0, failedCalls: 0, uncertainWrites: 0, failures: [] };
  const describe = `seed ${seed}, durability ${JSON.stringify(durability)}, fault ${JSON.stringify(rule)} from step ${faultStep}`;
  const fail = (message: string): never => {
    throw new Error(`${message} (${describe})`);
  };
  let worlds: World[] = [new Map()];
  let db = await open(directory, { ...options, fileSystem: faults });
  try {
    for (let step = 0; step < steps; step++) {
      if (step === faultStep) faults.failAt({ ...rule });
      const { writes, others } = startStep(db, worlds[0] as World, { next, pick, bytes }, undefined);
      result.operations += writes.length + others.length;
      const [outcomes] = await Promise.all([Promise.allSettled(writes.map((entry) => entry.promise)), Promise.allSettled(others)]);
      // Every possible state, each acknowledged write applied to it, each other one applied or not.
      outcomes.forEach((outcome, position) => {
        const { apply } = writes[position] as StepPlan['writes'][number];
        const applied = (world: World) => {
          const copy = new Map(world);
          apply(copy);
          return copy;
        };
        if (outcome.status === 'fulfilled') {
          worlds = worlds.map(applied);
        } else {
          if (!(outcome.reason instanceof SiltError)) fail(`step ${step}: a write failed with something not a SiltError: ${String(outcome.reason)}`);
          result.uncertainWrites++;
          worlds = [...worlds, ...worlds.map(applied)];
        }
        const seen = new Set<string>();
        worlds = worlds.filter((world) => {
          const key = worldKey(world);
          if (seen.has(key)) return false;
          seen.add(key);
          return true;
        });
      });
      result.steps++;
      // Past a few uncertain writes the possible states multiply: stop there and check.
      if (worlds.length > 64) break;
    }
    result.failedCalls = faults.failures;
    faults.clearFaults();
    await db.close().catch((error: unknown) => {
      if (!(error instanceof SiltError)) throw error;
    });
    // Reopened on the real file system: it recovers, verifies clean, and holds one possible state.
    db = await open(directory, options);
    const verified = await db.verify();
    if (!verified.ok) fail(`verify() after the fault found ${JSON.stringify(verified.problems.slice(0, 3))}`);
    const found: World = new Map();
    for (const key of KEYS) {
      const value = await db.get(key);
      if (value !== undefined) found.set(key, value);
    }
    const foundKey = worldKey(found);
    if (!worlds.some((world) => worldKey(world) === foundKey)) {
      const lengths = (world: World) => KEYS.map((key) => world.get(key)?.length ?? '-').join(',');
      fail(`after reopen the store holds no possible state: [${lengths(found)}], possible ${worlds.length}: ${worlds.slice(0, 4).map(lengths).join(' / ')}`);
    }
  } catch (error) {
    result.failures.push(failureOf(error, result.steps, describe));
  } finally {
    faults.clearFaults();
    await db.close().catch(() => undefined);
    rmSync(directory, { recursive: true, force: true });
  }
  return result;
}
