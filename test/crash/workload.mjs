// The crash loop's seeded workload, shared by the worker (which runs it) and the parent (which
// checks what survived). Operations are generated per step from (seed, step), so a restarted
// worker continues exactly where the parent says.
import { createHash } from 'node:crypto';
// Plain JavaScript (the crash worker runs it without a TypeScript loader): the bench scripts' PRNG.
import { mulberry32 as random } from '../../bench/lib/random.mjs';

// Small segments and a low dead ratio so background compaction runs often; GC deletes at once
// (minAgeMs 0) and runs in the background every 20 ms, so kills land inside both.
export const STORE_OPTIONS = {
  segmentBytes: 16 * 1024,
  valueThreshold: 4096,
  blockBytes: 8192,
  // Full blocks are staged (written to a staging file while hashed, then renamed), a value's
  // shorter last block is written under its name: kills land in both paths.
  stagedBlockBytes: 8192,
  compaction: { deadRatio: 0.3 },
  gc: { minAgeMs: 0, intervalMs: 20 },
  // Small chunks and low thresholds: objects span chunks, and slice compaction (background and
  // synchronous) runs all the time.
  objects: { chunkBytes: 64 * 1024, compactAt: 4, syncCompactAt: 8 },
};

/**
 * The store's option sets (`--profile`), each with the same workload:
 * - `small` (the default; STORE_OPTIONS above).
 * - `files`: block files for everything an object writes (`inlineBytes` 0: no block carried in
 *   the log), big values of many 4 KiB blocks (more of them shared between values), no cache of
 *   verified blocks (every block read goes to its file), chunks of 32 KiB (an object write
 *   spans several), slice compaction from the second slice on, and a dead ratio of one half.
 * - `tiny`: the `small` options with 2 KiB segments. The index's checkpoint is then larger than a
 *   segment, so segments compaction empties wait, retired, for a checkpoint to share (kills land
 *   while one waits, and while it is written); and segments roll every few records.
 * - `manual`: the `small` sizes with no background work and no index checkpoint: segment
 *   compaction and GC run only when a step starts `compact()` or `gc()` (GC with the default
 *   minimum age, 60 s, so blocks wait on the delayed list across many kills), slice compaction
 *   only synchronously (a write to a chunk at `syncCompactAt`), and every open replays the log.
 */
export const PROFILES = {
  small: STORE_OPTIONS,
  files: {
    segmentBytes: 32 * 1024,
    valueThreshold: 512,
    blockBytes: 4096,
    stagedBlockBytes: 4096,
    blockCacheBytes: 0,
    compaction: { deadRatio: 0.5 },
    gc: { minAgeMs: 0, intervalMs: 20 },
    objects: { chunkBytes: 32 * 1024, compactAt: 2, syncCompactAt: 6, inlineBytes: 0 },
  },
  tiny: { ...STORE_OPTIONS, segmentBytes: 2048 },
  manual: {
    ...STORE_OPTIONS,
    checkpoint: false,
    compaction: false,
    gc: false,
    objects: { ...STORE_OPTIONS.objects, compaction: false },
  },
};

/**
 * The store's options for a seed and a profile: the durability mode varies with the seed ('sync'
 * for half the seeds, 'none' and `{ intervalMs: 5 }` for a quarter each). A kill -9 keeps every
 * byte the process wrote, fsynced or not, and every mode writes a group's records before
 * acknowledging it, so the checks hold in each; the modes differ in what the store fsyncs itself
 * before a checkpoint, a GC listing or a compacted segment's deletion.
 */
export function storeOptions(seed, profile = 'small') {
  const options = PROFILES[profile];
  if (options === undefined) throw new Error(`unknown crash-loop profile ${profile} (known: ${Object.keys(PROFILES).join(', ')})`);
  const mode = ((seed % 4) + 4) % 4;
  return { ...options, durability: mode === 2 ? 'none' : mode === 3 ? { intervalMs: 5 } : 'sync' };
}

/** The bytes of an object after `operation` (writeAt, append or truncate) applied to `bytes`. */
export function applyObject(bytes, operation) {
  if (operation.type === 'truncate') {
    const result = Buffer.alloc(operation.size);
    bytes.copy(result, 0, 0, Math.min(bytes.length, operation.size));
    return result;
  }
  const data = valueBytes(operation.value.seed, operation.value.length);
  const offset = operation.type === 'append' ? bytes.length : operation.offset;
  const result = Buffer.alloc(Math.max(bytes.length, offset + data.length));
  bytes.copy(result);
  data.copy(result, offset);
  return result;
}


export function valueBytes(seed, length) {
  const next = random(seed);
  const result = Buffer.allocUnsafe(Math.ceil(length / 4) * 4);
  for (let index = 0; index < result.length; index += 4) result.writeUInt32LE(Math.floor(next() * 2 ** 32), index);
  return result.subarray(0, length);
}

export function digest(bytes) {
  return createHash('sha256').update(bytes).digest('hex').slice(0, 16);
}

/** A value spec: { seed, length } so both sides can make the bytes; shared contents repeat. */
function valueSpec(next, step, index, large) {
  if (large && next() < 0.4) return { seed: 1000 + Math.floor(next() * 3), length: 20_000 };
  const length = large ? 5000 + Math.floor(next() * 30_000) : Math.floor(next() * 200);
  return { seed: step * 16 + index + 7, length };
}

/**
 * A TTL for a put, or undefined (most puts): a short one (up to 300 ms, so it often expires
 * across a kill, a reopen or a compaction) or a long one (10 minutes, never expires in a run).
 * Keys 'obj*' and 'cas*' never get one.
 */
function ttlFor(next) {
  const roll = next();
  if (roll < 0.2) return 1 + Math.floor(next() * 300);
  if (roll < 0.25) return 600_000;
  return undefined;
}

/** The operations of one step: issued together, awaited together. */
export function stepOperations(seed, step) {
  const next = random(seed * 1_000_003 + step);
  const count = 1 + Math.floor(next() * 4);
  const operations = [];
  const usedKeys = new Set();
  const freshKey = (prefix, space) => {
    for (;;) {
      const key = `${prefix}${Math.floor(next() * space)}`;
      if (!usedKeys.has(key)) {
        usedKeys.add(key);
        return key;
      }
    }
  };
  for (let index = 0; index < count; index++) {
    const roll = next();
    if (roll < 0.4) operations.push({ type: 'put', key: freshKey('k', 40), value: valueSpec(next, step, index, false), ttlMs: ttlFor(next) });
    else if (roll < 0.55) operations.push({ type: 'put', key: freshKey('big', 8), value: valueSpec(next, step, index, true), stream: next() < 0.5, ttlMs: ttlFor(next) });
    else if (roll < 0.7) operations.push({ type: 'delete', key: freshKey(next() < 0.7 ? 'k' : 'big', next() < 0.7 ? 40 : 8) });
    else if (roll < 0.78) {
      const inner = [];
      for (let position = 0; position < 2 + Math.floor(next() * 2); position++) {
        inner.push(next() < 0.75 ? { type: 'put', key: freshKey('k', 40), value: valueSpec(next, step, index * 4 + position, false), ttlMs: ttlFor(next) } : { type: 'delete', key: freshKey('k', 40) });
      }
      operations.push({ type: 'batch', operations: inner });
    } else if (roll < 0.9) {
      // Objects: writes into the middle (holes included), appends, truncates; keys 'obj*' only.
      const key = freshKey('obj', 4);
      const kind = next();
      // A quarter of them repeat one of three contents (4 or 8 KiB): slices of content already
      // stored name the existing block, so deduplication meets deletes, compaction and GC too.
      const value = next() < 0.25 ? { seed: 1 + Math.floor(next() * 3), length: 4096 * (1 + Math.floor(next() * 2)) } : { seed: step * 16 + index + 9, length: 1 + Math.floor(next() * 30_000) };
      if (kind < 0.5) operations.push({ type: 'writeAt', key, offset: Math.floor(next() * 200_000), value });
      else if (kind < 0.8) operations.push({ type: 'append', key, value });
      else operations.push({ type: 'truncate', key, size: Math.floor(next() * 200_000) });
    } else {
      operations.push({ type: 'cas', key: freshKey('cas', 4), value: valueSpec(next, step, index, false) });
    }
  }
  return operations;
}

/** Maintenance started alongside a step's writes (not journaled: it changes no value). */
export function stepMaintenance(seed, step) {
  const roll = random(seed * 7_919 + step)();
  if (roll < 0.06) return 'compact';
  if (roll < 0.12) return 'gc';
  return undefined;
}
