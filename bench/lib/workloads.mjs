/**
 * The workloads, as the parent process sees them: what to run in which child, how often, and how
 * the samples become rows of the report. One function per workload; the measurements themselves
 * are in tasks.mjs.
 *
 * A workload function takes the run context and returns rows:
 *   { id, label, unit, lowerIsBetter, results: { [store]: { median, samples } | { error } } }
 */
import { cpSync } from 'node:fs';
import { flushPageCache, formatValue, makeTempDir, median, removeDir, runTask, sizeLabel } from './harness.mjs';

/** The sizes of a full run and of a --quick smoke run. */
export const SIZES = {
  full: {
    fillCount: 200_000,
    concurrency: 1000,
    syncSeconds: 3,
    readCount: 200_000,
    reads: 500_000,
    scanMinSeconds: 1,
    openCounts: [200_000, 1_000_000],
    ramCount: 1_000_000,
    largeCount: 256,
    largeReadSeconds: 1,
    dupCount: 256,
    overwriteLarge: { keyCount: 64, rounds: 5 },
    overwrite4k: { keyCount: 20_000, rounds: 10, batchSize: 100 },
    objects: { sizeMiB: 256, writes: { on: [10_000, 100_000], off: [10_000, 100_000] }, appends: 2000 },
    rangeRead: { mib: 256, reads: 4000 },
  },
  quick: {
    fillCount: 20_000,
    concurrency: 1000,
    syncSeconds: 0.5,
    readCount: 20_000,
    reads: 100_000,
    scanMinSeconds: 0.2,
    openCounts: [20_000, 100_000],
    ramCount: 100_000,
    largeCount: 32,
    largeReadSeconds: 0.2,
    dupCount: 16,
    overwriteLarge: { keyCount: 16, rounds: 3 },
    overwrite4k: { keyCount: 2_000, rounds: 10, batchSize: 100 },
    objects: { sizeMiB: 16, writes: { on: [200, 1000], off: [200, 1000] }, appends: 200 },
    rangeRead: { mib: 16, reads: 500 },
  },
};

/** The seed of the writeAt offsets (printed in every sample line; replay with bench/objects.mjs --seed). */
export const OBJECTS_SEED = 42;

/** The large values of large-write, large-read, dup and overwrite-1M: 1 MiB, random. */
export const LARGE_VALUE_BYTES = 2 ** 20;
/**
 * silt's options for those workloads. silt sends a value to the content-addressed block store only
 * when it is LARGER than `valueThreshold` (default 1 MiB), so a value of exactly 1 MiB would stay
 * inline in the log, without dedup; 512 KiB puts 1 MiB values in blocks. Everything else default.
 */
export const LARGE_SILT_OPTIONS = { valueThreshold: 512 * 1024 };
/**
 * silt's options for the overwrite workloads: block GC deletes a replaced block only once it has
 * waited `gc.minAgeMs` on the delayed list (default 60 s, a safety delay), longer than a sample
 * runs; 0 lets the `gc()` after `compact()` delete them, i.e. shows the space once the delay has
 * passed. (A build without GC ignores the option.)
 */
export const OVERWRITE_SILT_OPTIONS = { gc: { minAgeMs: 0 } };


/** Run one task in a child, logging the outcome; returns the result or { error }. */
async function measure(ctx, label, store, task, { unit, nodeFlags = [], timeoutMs }) {
  const flags = [...nodeFlags, ...(store === 'silt' ? ctx.siltNodeFlags : [])];
  flushPageCache();
  try {
    const result = await runTask({ ...task, store }, { nodeFlags: flags, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    ctx.log(`  ${label.padEnd(20)} ${store.padEnd(14)} ${formatValue(result.value, unit)}${details(result)}`);
    return result;
  } catch (error) {
    ctx.log(`  ${label.padEnd(20)} ${store.padEnd(14)} FAILED: ${error.message}`);
    return { error: error.message };
  }
}

function details(result) {
  const extra = Object.entries(result).filter(([key]) => !['value', 'probeKey'].includes(key));
  if (extra.length === 0) return '';
  const show = (value) => (typeof value === 'number' && !Number.isInteger(value) ? value.toFixed(3) : String(value));
  return `   (${extra.map(([key, value]) => `${key} ${show(value)}`).join(', ')})`;
}

/**
 * Per store: the median (or `aggregate`) of `pick(outcome)` over its samples (default: `value`),
 * or the first error.
 */
function summarize(samplesByStore, pick = (outcome) => outcome.value, aggregate = median) {
  const results = {};
  for (const [store, outcomes] of Object.entries(samplesByStore)) {
    const failed = outcomes.find((outcome) => outcome.error !== undefined);
    if (failed) {
      results[store] = { error: failed.error };
      continue;
    }
    const values = outcomes.map(pick);
    if (values.some((value) => value === undefined)) continue; // not reported by this store
    results[store] = { median: aggregate(values), samples: values };
  }
  return results;
}

/** The stores in round `run`'s order: rotated each round, so no store always goes first. */
function roundOrder(stores, run) {
  const shift = (run - 1) % stores.length;
  return [...stores.slice(shift), ...stores.slice(0, shift)];
}

/**
 * `ctx.runs` rounds over the stores (interleaved, so a noisy minute hits every store alike, and
 * rotated), one fresh child per sample; the median per store.
 */
async function throughput(ctx, { id, label, unit, task }) {
  const samples = await rounds(ctx, { label, unit, task });
  return [{ id, label, unit, lowerIsBetter: false, results: summarize(samples) }];
}

/**
 * The sampling of `throughput`, returning every store's outcomes. With `baseline` (a task that
 * needs no store), that task runs first and last in every round (bracketing the stores in time,
 * as the machine's rate drifts), in its own children, and its outcomes come back under
 * `baselineName`.
 */
async function rounds(ctx, { label, unit, task, baseline, baselineName = 'baseline' }) {
  const samples = Object.fromEntries(ctx.stores.map((store) => [store, []]));
  if (baseline) samples[baselineName] = [];
  for (let run = 1; run <= ctx.runs; run++) {
    if (baseline) samples[baselineName].push(await measure(ctx, `${label} ${run}/${ctx.runs}`, baselineName, baseline, { unit }));
    for (const store of roundOrder(ctx.stores, run)) {
      if (samples[store].some((outcome) => outcome.error)) continue;
      samples[store].push(await measure(ctx, `${label} ${run}/${ctx.runs}`, store, task, { unit }));
    }
    if (baseline) samples[baselineName].push(await measure(ctx, `${label} ${run}/${ctx.runs}`, baselineName, baseline, { unit }));
  }
  return samples;
}

/** The stores' samples only (drops a baseline). */
function storesOnly(ctx, samples) {
  return Object.fromEntries(ctx.stores.map((store) => [store, samples[store]]));
}

const BYTES_PER_BYTE = 'B/B';

/**
 * Run once per bench run (shared by the workloads that count device bytes): does the counter
 * measure a plain known-size file write as its size? Adds a note to the report.
 */
function ioCheck(ctx) {
  ctx.shared.ioCheck ??= (async () => {
    const result = await measure(ctx, 'device-bytes check', 'plain file', { name: 'ioCheck' }, { unit: BYTES_PER_BYTE });
    ctx.notes.push(
      result.error
        ? `device bytes: the check failed (${result.error})`
        : `device bytes counted with ${result.method}; check on plain files (bytes counted / bytes written): 1 MiB appends ${result.append1MiB.toFixed(3)}x, 4 KiB appends ${result.append4KiB.toFixed(3)}x, 4 KiB in-place writes ${result.inPlace4KiB.toFixed(3)}x${result.procIoInPlace4KiB === undefined ? '' : ` (/proc/self/io would say ${result.procIoAppend4KiB.toFixed(2)}x for the appends and ${result.procIoInPlace4KiB.toFixed(1)}x for the in-place writes)`}`,
    );
    return result;
  })();
  return ctx.shared.ioCheck;
}

/**
 * large-write and large-read share their children (each sample writes the values, then reads
 * them back), so selecting both runs them once. Every round starts with the file-system limit.
 */
function largeSamples(ctx) {
  ctx.shared.large ??= (async () => {
    const count = ctx.sizes.largeCount;
    const samples = await rounds(ctx, {
      label: `large-1M x${count}`,
      unit: 'MB/s',
      task: { name: 'largeValues', count, writers: 1, valueBytes: LARGE_VALUE_BYTES, readMinSeconds: ctx.sizes.largeReadSeconds, siltOptions: LARGE_SILT_OPTIONS },
      baseline: { name: 'fsWriteLimit', count, valueBytes: LARGE_VALUE_BYTES },
      baselineName: 'fs-limit',
    });
    const limit = summarize({ limit: samples['fs-limit'] }).limit;
    const pick = (field) => summarize({ it: samples['fs-limit'] }, (outcome) => outcome[field]).it;
    const describe = (field, what) => {
      const result = pick(field);
      return result?.median === undefined ? undefined : `${what} median ${result.median.toFixed(0)} (${result.samples.map((value) => value.toFixed(0)).join(', ')})`;
    };
    const parts = [
      describe('directMBps', 'dd oflag=direct,dsync'),
      describe('presizedMBps', 'pre-sized file, write + fdatasync'),
      describe('appendMBps', 'appending, write + fdatasync'),
    ].filter(Boolean);
    ctx.notes.push(
      limit.error
        ? `fs limit: failed (${limit.error})`
        : `fs limit for large-write: ${count} x 1 MiB to one file, each durable before the next, measured before and after the stores in every round; per sample the fastest of ${parts.join('; ')} MB/s; limit median ${limit.median.toFixed(0)} MB/s (${limit.samples.map((value) => value.toFixed(0)).join(', ')})`,
    );
    return { samples: storesOnly(ctx, samples), limit };
  })();
  return ctx.shared.large;
}

/** A write-rate row (`id`) and the same rates as fractions of the fs limit (`id`-limit). */
function writeRows(id, label, limitLabel, write, limit) {
  const fraction = {};
  for (const [store, result] of Object.entries(write)) {
    if (result.error || limit.error) fraction[store] = { error: result.error ?? limit.error };
    else fraction[store] = { median: result.median / limit.median, samples: [] };
  }
  return [
    { id, label, unit: 'MB/s', lowerIsBetter: false, results: write },
    { id: `${id}-limit`, label: `${limitLabel}${limit.error ? '' : ` (${limit.median.toFixed(0)} MB/s)`}`, unit: 'of limit', lowerIsBetter: false, results: fraction },
  ];
}

/**
 * Rows of an overwrite workload: measured WA/SA for every store, silt's own figures and stalls.
 * The device-byte rows (WA) report the LEAST of the runs, not the median: the device counter is
 * the whole device's, other processes' writes can only add to it, so the smallest sample is the
 * closest to the store's own bytes (the per-sample lines show every run).
 */
function overwriteRows(prefix, samples, { stalls }) {
  const row = (id, label, pick, { unit = BYTES_PER_BYTE, aggregate = median } = {}) => ({
    id: `${prefix}-${id}`,
    label: `${prefix} ${label}`,
    unit,
    lowerIsBetter: true,
    results: summarize(samples, pick, aggregate),
  });
  const least = (values) => Math.min(...values);
  return [
    row('wa-writes', 'WA (writes), min', (outcome) => outcome.waWrites, { aggregate: least }),
    row('wa', 'WA (+compact), min', (outcome) => outcome.waTotal, { aggregate: least }),
    row('sa-before', 'SA (before compact)', (outcome) => outcome.saBefore),
    row('sa', 'SA (after compact)', (outcome) => outcome.saAfter),
    row('silt-wa', 'WA, silt stats()', (outcome) => outcome.siltWA),
    row('silt-sa', 'SA, silt stats()', (outcome) => outcome.siltSA),
    ...(stalls
      ? [row('stalls', 'stalls (writes)', (outcome) => outcome.stalls, { unit: 'count' }), row('stall-ms', 'stall time', (outcome) => outcome.stallMs, { unit: 'ms' })]
      : []),
  ];
}

export const WORKLOADS = {
  'fill-random': (ctx) =>
    throughput(ctx, {
      id: 'fill-random',
      label: 'fill-random',
      unit: 'ops/s',
      task: { name: 'fillRandom', count: ctx.sizes.fillCount, concurrency: ctx.sizes.concurrency },
    }),

  'fill-sync-1': (ctx) =>
    throughput(ctx, { id: 'fill-sync-1', label: 'fill-sync-1', unit: 'ops/s', task: { name: 'fillSync', writers: 1, seconds: ctx.sizes.syncSeconds } }),

  'fill-sync-64': (ctx) =>
    throughput(ctx, { id: 'fill-sync-64', label: 'fill-sync-64', unit: 'ops/s', task: { name: 'fillSync', writers: 64, seconds: ctx.sizes.syncSeconds } }),

  'read-random': (ctx) =>
    throughput(ctx, {
      id: 'read-random',
      label: 'read-random',
      unit: 'ops/s',
      task: { name: 'readRandom', count: ctx.sizes.readCount, reads: ctx.sizes.reads },
    }),

  scan: (ctx) =>
    throughput(ctx, { id: 'scan', label: 'scan', unit: 'entries/s', task: { name: 'scan', count: ctx.sizes.readCount, minSeconds: ctx.sizes.scanMinSeconds } }),

  /**
   * Per size and store: one child bulk loads a store and closes it; then, `ctx.runs` times, a copy
   * of that directory (so every run opens a store exactly as the fill left it, whatever an earlier
   * open tidied up) is opened by a fresh child, timing open() + one get. Also reports the bulk
   * load's rate at the largest size.
   */
  async open(ctx) {
    const rows = [];
    const largest = Math.max(...ctx.sizes.openCounts);
    for (const count of ctx.sizes.openCounts) {
      const label = `open-${sizeLabel(count)}`;
      const opens = Object.fromEntries(ctx.stores.map((store) => [store, []]));
      const loads = {};
      for (const store of ctx.stores) {
        const dir = makeTempDir(`open-${store}`);
        try {
          const loaded = await measure(ctx, `load-${sizeLabel(count)}`, store, { name: 'load', dir, count }, { unit: 'ops/s' });
          loads[store] = [loaded];
          if (loaded.error) {
            opens[store].push(loaded);
            continue;
          }
          for (let run = 1; run <= ctx.runs; run++) {
            const copy = makeTempDir(`open-${store}-copy`);
            try {
              cpSync(dir, copy, { recursive: true });
              const opened = await measure(ctx, `${label} ${run}/${ctx.runs}`, store, { name: 'openTime', dir: copy, probeKey: loaded.probeKey }, { unit: 'ms' });
              opens[store].push(opened);
              if (opened.error) break;
            } finally {
              removeDir(copy);
            }
          }
        } finally {
          removeDir(dir);
        }
      }
      rows.push({ id: label, label, unit: 'ms', lowerIsBetter: true, results: summarize(opens) });
      if (count === largest) rows.push({ id: 'load', label: `load-${sizeLabel(count)} (batched, 1 run)`, unit: 'ops/s', lowerIsBetter: false, results: summarize(loads) });
    }
    return rows;
  },

  /** silt only: heap + external per key at ramCount keys, after the fill and after a reopen. */
  async ram(ctx) {
    if (!ctx.stores.includes('silt')) return [];
    const label = `ram-${sizeLabel(ctx.sizes.ramCount)}`;
    const result = await measure(ctx, label, 'silt', { name: 'ram', count: ctx.sizes.ramCount }, { unit: 'B/key', nodeFlags: ['--expose-gc'] });
    const row = (id, rowLabel, value) => ({
      id,
      label: rowLabel,
      unit: 'B/key',
      lowerIsBetter: true,
      results: { silt: result.error ? { error: result.error } : { median: value, samples: [value] } },
    });
    return [row('ram', `${label} after fill`, result.afterFill), row('ram-reopen', `${label} after reopen`, result.afterReopen)];
  },

  /** Durable puts of 1 MiB random values, one at a time: MB/s, and as a fraction of the fs limit. */
  async 'large-write'(ctx) {
    const { samples, limit } = await largeSamples(ctx);
    return writeRows('large-write', 'large-write-1M', 'large-write / fs limit', summarize(samples, (outcome) => outcome.writeMBps), limit);
  },

  /**
   * The same durable 1 MiB puts from four writers at once (four loops, each awaiting its put),
   * writes only: MB/s, and as a fraction of the fs limit (one sequential writer's, measured in
   * every round here too). Not a target row: it shows what concurrency gives each store (silt's
   * group commit shares the log's fsync, its staged block writes overlap).
   */
  async 'large-write-4'(ctx) {
    const count = ctx.sizes.largeCount;
    const samples = await rounds(ctx, {
      label: `large-1M x${count}, 4 writers`,
      unit: 'MB/s',
      task: { name: 'largeValues', count, writers: 4, writeOnly: true, valueBytes: LARGE_VALUE_BYTES, siltOptions: LARGE_SILT_OPTIONS },
      baseline: { name: 'fsWriteLimit', count, valueBytes: LARGE_VALUE_BYTES },
      baselineName: 'fs-limit',
    });
    const limit = summarize({ limit: samples['fs-limit'] }).limit;
    const write = summarize(storesOnly(ctx, samples), (outcome) => outcome.writeMBps);
    return writeRows('large-write-4', 'large-write-1M, 4 writers', 'large-write, 4 writers / fs limit', write, limit);
  },

  /** Whole-value gets of the 1 MiB values in random order, after a reopen: MB/s. */
  async 'large-read'(ctx) {
    const { samples } = await largeSamples(ctx);
    const results = summarize(samples, (outcome) => outcome.readMBps);
    // The same reads with silt's block cache sized to hold every value; the peers' figures are theirs from above.
    const sized = { ...results, ...(results.silt !== undefined && { silt: summarize({ silt: samples.silt }, (outcome) => outcome.readCachedMBps).silt }) };
    const hitRatio = summarize({ silt: samples.silt ?? [] }, (outcome) => outcome.blockCacheHitRatio).silt;
    if (hitRatio?.median !== undefined) ctx.notes.push(`large-read: silt's block cache at its default size (64 MiB, against ${ctx.sizes.largeCount} MiB of values) served ${(100 * hitRatio.median).toFixed(0)}% of block reads, warm-up passes included`);
    return [
      { id: 'large-read', label: 'large-read-1M', unit: 'MB/s', lowerIsBetter: false, results },
      { id: 'large-read-cached', label: 'large-read-1M, silt blockCacheBytes holds all', unit: 'MB/s', lowerIsBetter: false, results: sized },
    ];
  },

  /** Every 1 MiB value put under two keys: bytes on disk (du) per unique byte. */
  async dup(ctx) {
    const count = ctx.sizes.dupCount;
    const samples = await rounds(ctx, {
      label: `dup-1M x${count}x2`,
      unit: BYTES_PER_BYTE,
      task: { name: 'dup', count, valueBytes: LARGE_VALUE_BYTES, siltOptions: LARGE_SILT_OPTIONS },
    });
    return [{ id: 'dup', label: 'dup-1M disk / unique', unit: BYTES_PER_BYTE, lowerIsBetter: true, results: summarize(samples) }];
  },

  /** 1 MiB values overwritten for several rounds (single durable puts), then compaction. */
  async 'overwrite-large'(ctx) {
    await ioCheck(ctx);
    const { keyCount, rounds: passes } = ctx.sizes.overwriteLarge;
    const samples = await rounds(ctx, {
      label: `overwrite-1M ${keyCount}x${passes}`,
      unit: BYTES_PER_BYTE,
      task: { name: 'overwrite', keyCount, valueBytes: LARGE_VALUE_BYTES, rounds: passes, batchSize: 1, siltOptions: { ...LARGE_SILT_OPTIONS, ...OVERWRITE_SILT_OPTIONS } },
    });
    return overwriteRows('overwrite-1M', samples, { stalls: false });
  },

  /** 4 KiB values overwritten for 10 rounds in durable atomic batches of 100, then compaction. */
  async 'overwrite-4k'(ctx) {
    await ioCheck(ctx);
    const { keyCount, rounds: passes, batchSize } = ctx.sizes.overwrite4k;
    const samples = await rounds(ctx, {
      label: `overwrite-4k ${keyCount / 1000}k x${passes}`,
      unit: BYTES_PER_BYTE,
      task: { name: 'overwrite', keyCount, valueBytes: 4096, rounds: passes, batchSize, siltOptions: OVERWRITE_SILT_OPTIONS },
    });
    return overwriteRows('overwrite-4k', samples, { stalls: true });
  },
};

/**
 * objects-writeat: per round, one child with slice compaction on and one with it off (their order
 * alternating from round to round), each writing random 4 KiB pages into its own 256 MiB object
 * and reading it whole after each write count, beside a fresh value of the same size.
 */
async function objectsWriteAt(ctx) {
  if (!ctx.stores.includes('silt')) return [];
  const { sizeMiB, writes } = ctx.sizes.objects;
  const modes = Object.keys(writes);
  const samples = Object.fromEntries(modes.map((mode) => [mode, []]));
  for (let run = 1; run <= ctx.runs; run++) {
    for (const mode of run % 2 === 1 ? modes : [...modes].reverse()) {
      const task = { name: 'objectsWriteAt', sizeMiB, writeCounts: writes[mode], mode, seed: OBJECTS_SEED };
      samples[mode].push(await measure(ctx, `objects-writeat ${mode} ${run}/${ctx.runs}`, 'silt', task, { unit: 'ops/s', timeoutMs: 90 * 60_000 }));
    }
  }
  const silt = (outcomes, pick) => summarize({ silt: outcomes }, pick).silt;
  const row = (id, label, unit, results) => ({ id, label, unit, lowerIsBetter: false, results: results ? { silt: results } : {} });
  const rows = [];
  for (const mode of modes) {
    let previous = 0;
    for (const count of writes[mode]) {
      const at = sizeLabel(count);
      rows.push(
        row(`objects-writeat-${mode}-${at}`, `objects writeAt 4K, compaction ${mode}, writes ${sizeLabel(previous)}-${at}`, 'ops/s', silt(samples[mode], (outcome) => outcome[`ops${at}`])),
        row(`objects-read-${mode}-${at}`, `objects read ${sizeMiB} MiB after ${at} writes, compaction ${mode}`, 'MB/s', silt(samples[mode], (outcome) => outcome[`read${at}`])),
        row(`objects-fresh-${mode}-${at}`, `  beside it: fresh ${sizeMiB} MiB value read`, 'MB/s', silt(samples[mode], (outcome) => outcome[`fresh${at}`])),
        row(`objects-read-ratio-${mode}-${at}`, `  object read / fresh read, after ${at}, compaction ${mode}`, 'of fresh', silt(samples[mode], (outcome) => outcome[`ratio${at}`])),
      );
      previous = count;
    }
  }
  // Writes with compaction on over off: the two children of the same round, per round, median;
  // for the counts where both modes timed the same range of writes (their lists agree so far).
  for (let index = 0; index < (writes.on?.length ?? 0) && writes.on[index] === writes.off?.[index]; index++) {
    const at = sizeLabel(writes.on[index]);
    const from = sizeLabel(index === 0 ? 0 : writes.on[index - 1]);
    const ratios = samples.on.map((on, index) => {
      const off = samples.off[index];
      if (on?.error || off?.error || off === undefined) return { error: on?.error ?? off?.error ?? 'missing sample' };
      return { value: on[`ops${at}`] / off[`ops${at}`] };
    });
    rows.push(row(`objects-write-ratio-${at}`, `objects writeAt ops/s, compaction on / off, writes ${from}-${at}`, 'on/off', silt(ratios, (outcome) => outcome.value)));
  }
  return rows;
}

/** objects-append: 64 KiB durable appends, beside write + fdatasync of a plain file in the same child. */
async function objectsAppend(ctx) {
  if (!ctx.stores.includes('silt')) return [];
  const { appends } = ctx.sizes.objects;
  const samples = [];
  for (let run = 1; run <= ctx.runs; run++) {
    samples.push(await measure(ctx, `objects-append ${run}/${ctx.runs}`, 'silt', { name: 'objectsAppend', appends }, { unit: 'MB/s' }));
  }
  const silt = (pick) => summarize({ silt: samples }, pick).silt;
  return [
    { id: 'objects-append', label: `objects append 64K x${sizeLabel(appends)}`, unit: 'MB/s', lowerIsBetter: false, results: { silt: silt((outcome) => outcome.siltMBps) } },
    { id: 'objects-append-file', label: '  beside it: plain file write + fdatasync', unit: 'MB/s', lowerIsBetter: false, results: { silt: silt((outcome) => outcome.fileMBps) } },
    { id: 'objects-append-ratio', label: '  silt append / plain file', unit: 'of file', lowerIsBetter: false, results: { silt: silt((outcome) => outcome.ratio) } },
    { id: 'objects-append-read', label: '  then the appended object read / a fresh value', unit: 'of fresh', lowerIsBetter: false, results: { silt: silt((outcome) => outcome.readRatio) } },
  ];
}

/**
 * range-read: 4 KiB reads at random offsets of one large value by `readAt` and by a ranged
 * stream, beside readSync of a plain file holding the same bytes in the same child (silt only: no
 * peer reads part of a value; a plain file is what such a read is measured against).
 */
async function rangeRead(ctx) {
  if (!ctx.stores.includes('silt')) return [];
  const { mib, reads } = ctx.sizes.rangeRead;
  const samples = [];
  for (let run = 1; run <= ctx.runs; run++) {
    samples.push(await measure(ctx, `range-read ${run}/${ctx.runs}`, 'silt', { name: 'rangeRead', mib, reads }, { unit: 'µs' }));
  }
  const silt = (pick) => summarize({ silt: samples }, pick).silt;
  return [
    { id: 'range-read', label: `range-read 4K of ${mib} MiB, readAt`, unit: 'µs', lowerIsBetter: true, results: { silt: silt((outcome) => outcome.readAt) } },
    { id: 'range-read-stream', label: '  the same by a ranged stream', unit: 'µs', lowerIsBetter: true, results: { silt: silt((outcome) => outcome.stream) } },
    { id: 'range-read-file', label: '  beside it: readSync of a plain file', unit: 'µs', lowerIsBetter: true, results: { silt: silt((outcome) => outcome.plain) } },
    { id: 'range-read-first', label: '  readAt, first pass (every block read whole once)', unit: 'µs', lowerIsBetter: true, results: { silt: silt((outcome) => outcome.firstReadAt) } },
  ];
}

WORKLOADS['objects-writeat'] = objectsWriteAt;
WORKLOADS['objects-append'] = objectsAppend;
WORKLOADS['range-read'] = rangeRead;

export const WORKLOAD_NAMES = Object.keys(WORKLOADS);

/**
 * The issues' targets, on the row `id` (or every row whose id starts with `idPrefix`, named by
 * its label): the silt/lmdb ratio at least `min` (default), or, with `silt: true`, silt's own
 * figure at least `min` / at most `max`.
 */
export const TARGETS = [
  { id: 'fill-sync-64', min: 2, what: 'durable concurrent writes (fill-sync-64)' },
  { id: 'fill-random', min: 1, what: 'unsynced fill (fill-random)' },
  { id: 'read-random', min: 1, what: 'random reads (read-random)' },
  { id: 'scan', min: 1, what: 'scan' },
  { id: 'large-write-limit', silt: true, min: 0.9, what: 'large durable writes, fraction of the fs limit (large-write)' },
  { id: 'large-read', min: 0.9, what: 'large-value reads (large-read)' },
  { id: 'dup', silt: true, max: 1.05, what: 'bytes on disk per unique byte (dup), target about 1.0' },
  { id: 'overwrite-1M-wa-writes', silt: true, max: 1.1, what: 'write amplification, 1 MiB overwrites (overwrite-large, writes only)' },
  { id: 'overwrite-1M-wa', silt: true, max: 1.05, what: 'write amplification, 1 MiB overwrites incl. compaction (overwrite-large)' },
  { id: 'overwrite-4k-wa', silt: true, max: 1.3, what: 'write amplification, 4 KiB overwrites incl. compaction (overwrite-4k)' },
  { id: 'overwrite-4k-sa', silt: true, max: 1.3, what: 'space amplification after compaction (overwrite-4k)' },
  { id: 'overwrite-4k-stalls', silt: true, max: 0, what: 'write stalls in steady state (overwrite-4k)' },
  { idPrefix: 'objects-read-ratio-on-', silt: true, min: 0.9, what: 'objects-writeat: reads after slice compaction within 10% of a fresh value' },
  { idPrefix: 'objects-write-ratio-', silt: true, min: 0.8, what: 'objects-writeat: write throughput with compaction at least 0.8 of without' },
  { id: 'objects-append-ratio', silt: true, min: 0.7, what: 'durable 64 KiB appends over write + fdatasync of a plain file (objects-append)' },
];
