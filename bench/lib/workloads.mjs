/**
 * The workloads, as the parent process sees them: what to run in which child, how often, and how
 * the samples become rows of the report. One function per workload; the measurements themselves
 * are in tasks.mjs.
 *
 * A workload function takes the run context and returns rows:
 *   { id, label, unit, lowerIsBetter, results: { [store]: { median, samples } | { error } } }
 */
import { cpSync } from 'node:fs';
import { flushPageCache, formatValue, makeTempDir, median, removeDir, runTask } from './harness.mjs';

/** The sizes of a full run and of a --quick smoke run. */
export const SIZES = {
  full: { fillCount: 200_000, concurrency: 1000, syncSeconds: 3, readCount: 200_000, reads: 500_000, scanMinSeconds: 1, openCounts: [200_000, 1_000_000], ramCount: 1_000_000 },
  quick: { fillCount: 20_000, concurrency: 1000, syncSeconds: 0.5, readCount: 20_000, reads: 100_000, scanMinSeconds: 0.2, openCounts: [20_000, 100_000], ramCount: 100_000 },
};

/** 200000 -> '200k', 1000000 -> '1M'. */
export function sizeLabel(count) {
  if (count >= 1e6 && count % 1e6 === 0) return `${count / 1e6}M`;
  if (count >= 1e3 && count % 1e3 === 0) return `${count / 1e3}k`;
  return String(count);
}

/** Run one task in a child, logging the outcome; returns the result or { error }. */
async function measure(ctx, label, store, task, { unit, nodeFlags = [] }) {
  const flags = [...nodeFlags, ...(store === 'silt' ? ctx.siltNodeFlags : [])];
  flushPageCache();
  try {
    const result = await runTask({ ...task, store }, { nodeFlags: flags });
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

function summarize(samplesByStore) {
  const results = {};
  for (const [store, outcomes] of Object.entries(samplesByStore)) {
    const failed = outcomes.find((outcome) => outcome.error !== undefined);
    results[store] = failed ? { error: failed.error } : { median: median(outcomes.map((outcome) => outcome.value)), samples: outcomes.map((outcome) => outcome.value) };
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
  const samples = Object.fromEntries(ctx.stores.map((store) => [store, []]));
  for (let run = 1; run <= ctx.runs; run++) {
    for (const store of roundOrder(ctx.stores, run)) {
      if (samples[store].some((outcome) => outcome.error)) continue;
      samples[store].push(await measure(ctx, `${label} ${run}/${ctx.runs}`, store, task, { unit }));
    }
  }
  return [{ id, label, unit, lowerIsBetter: false, results: summarize(samples) }];
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
};

export const WORKLOAD_NAMES = Object.keys(WORKLOADS);

/** The issue's targets: silt/lmdb ratio at least `min` on the row `id`. */
export const TARGETS = [
  { id: 'fill-sync-64', min: 2, what: 'durable concurrent writes (fill-sync-64)' },
  { id: 'fill-random', min: 1, what: 'unsynced fill (fill-random)' },
  { id: 'read-random', min: 1, what: 'random reads (read-random)' },
  { id: 'scan', min: 1, what: 'scan' },
];
