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
 * Operations on one key apply in call order (the store's contract), so the model applies each
 * step's operations in the order they were started. Two bugs this found: gc() passes started side
 * by side (a damaged delayed list), and verify() reporting files that background work had moved.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open, SiltError, type Durability, type OpenOptions, type Store } from '../../src/index.js';
import { random } from '../helpers.js';

export interface StressResult {
  steps: number;
  operations: number;
  rangeReads: number;
  reopens: number;
  /** Empty when every check held; otherwise what failed first (the run stops there). */
  failures: string[];
}

const KEYS = Array.from({ length: 8 }, (_, index) => `key-${index}`);

function sameValue(got: Buffer | undefined, want: Buffer | undefined): boolean {
  return got === undefined ? want === undefined : want !== undefined && got.equals(want);
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

/** Run `steps` steps from `seed` in a fresh directory (removed afterwards). */
export async function runConcurrentStress({ seed, steps, directory: parent = tmpdir() }: { seed: number; steps: number; directory?: string }): Promise<StressResult> {
  const next = random(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T;
  const durability = pick<Durability>(['sync', 'none', { intervalMs: 5 }]);
  const options: OpenOptions = {
    durability,
    valueThreshold: 512,
    blockBytes: 4096,
    segmentBytes: 16384 * (1 + Math.floor(next() * 8)),
    gc: { minAgeMs: 0, intervalMs: 5, batch: pick([3, 7, 1000]) },
    compaction: { deadRatio: 0.3 },
    objects: { chunkBytes: 16384, compactAt: 4, syncCompactAt: 8, inlineBytes: pick([0, 1024, 4096]), compactQuietMs: 1 },
  };
  const directory = mkdtempSync(join(parent, 'silt-stress-'));
  const result: StressResult = { steps: 0, operations: 0, rangeReads: 0, reopens: 0, failures: [] };
  const model = new Map<string, Buffer>();
  /** Bytes that compress to nothing or to little, or not at all, from the seed. */
  const bytes = (length: number): Buffer => {
    const value = Buffer.allocUnsafe(length);
    const base = Math.floor(next() * 256);
    if (next() < 0.3) return value.fill(base);
    for (let index = 0; index < length; index++) value[index] = (base + index * 7 + (index >> 9)) & 255;
    return value;
  };
  const fail = (message: string): never => {
    throw new Error(`${message} (seed ${seed}, durability ${JSON.stringify(durability)})`);
  };
  const checkAll = async (db: Store, when: string) => {
    for (const key of KEYS) {
      const got = await db.get(key);
      if (!sameValue(got, model.get(key))) fail(`${when}: ${key} reads ${got?.length} bytes, the model has ${model.get(key)?.length}`);
    }
  };
  const checkVerified = async (db: Store, when: string) => {
    const verified = await db.verify();
    if (!verified.ok) fail(`${when}: verify() found ${JSON.stringify(verified.problems.slice(0, 3))}`);
  };
  let db = await open(directory, options);
  try {
    for (let step = 0; step < steps; step++) {
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
      const closing = next() < 0.03;
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
        } else if (roll < 0.75) {
          // verify() alongside the step's writes and whatever background work they start.
          others.push(checkVerified(db, `step ${step}, alongside writes`));
        } else {
          toRead.push(key);
        }
      }
      result.operations += writes.length + others.length;
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
        const closed = db.close();
        // Settled together: a rejection must have its handler before the next tick.
        const [settled, othersSettled] = await Promise.all([Promise.allSettled(writes.map((entry) => entry.promise)), Promise.allSettled(others)]);
        settled.forEach((outcome, position) => {
          const entry = writes[position] as (typeof writes)[number];
          if (outcome.status === 'fulfilled') entry.apply(model);
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
      await Promise.all([...writes.map((entry) => entry.promise), ...others]);
      for (const entry of writes) entry.apply(model);
      const roll = next();
      if (roll < 0.04) {
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
    await db.close();
    db = await open(directory, options);
    await checkAll(db, 'after the last reopen');
  } catch (error) {
    result.failures.push((error as Error).message);
  } finally {
    await db.close().catch(() => undefined);
    rmSync(directory, { recursive: true, force: true });
  }
  return result;
}
