#!/usr/bin/env node
/**
 * Objects (issue 6), standalone: random 4 KiB writeAt into a large object, and append of 64 KiB
 * records against a plain file, in one process. Uses the built package (npm run build first).
 * `npm run bench` runs the same measurements (bench/lib/objects.mjs) as the workloads
 * `objects-writeat` and `objects-append`, one child per sample, with medians and targets.
 *
 *   node bench/objects.mjs [--size-mib 256] [--writes 10000,100000] [--appends 2000] [--durability sync|none]
 *                          [--modes on,off] [--compact-at N] [--sync-compact-at N] [--inline-bytes N] [--chunk-mib N] [--compact-budget N] [--during-burst]
 *                          [--seed 42] [--dir /tmp] [--json] [--block-cache-bytes 0]
 *
 * Reports, for compaction on and off: writeAt ops/s, and whole-object read MB/s after each
 * write count, beside the read MB/s of a freshly written value of the same size (the two read in
 * turn, three times each, medians reported). Appends to silt and to the plain file alternate in
 * rounds of 25, and the ratio is of the totals. `--json` prints one JSON document at the end
 * ({ objects: [...rows], append: {...} }). `--during-burst` reads right after the writes (no idle(),
 * no gc(), and paced compaction never given its pause): the object as a burst of writes leaves it.
 */
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { open } from '../dist/index.js';
import { appendRun, writeAtRun } from './lib/objects.mjs';

const { values } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '256' },
    writes: { type: 'string', default: '10000,100000' },
    appends: { type: 'string', default: '2000' },
    durability: { type: 'string', default: 'sync' },
    modes: { type: 'string', default: 'on,off' },
    'compact-at': { type: 'string' },
    'sync-compact-at': { type: 'string' },
    'inline-bytes': { type: 'string' },
    'chunk-mib': { type: 'string' },
    'compact-budget': { type: 'string' },
    'during-burst': { type: 'boolean', default: false },
    'block-cache-bytes': { type: 'string', default: '0' },
    seed: { type: 'string', default: '42' },
    json: { type: 'boolean', default: false },
    dir: { type: 'string', default: tmpdir() },
  },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const writeCounts = values.writes.split(',').map(Number).filter((count) => count > 0);
const appends = Number(values.appends);
const durability = values.durability;
const tuning = {
  ...(values['compact-at'] !== undefined ? { compactAt: Number(values['compact-at']) } : {}),
  ...(values['sync-compact-at'] !== undefined ? { syncCompactAt: Number(values['sync-compact-at']) } : {}),
  ...(values['inline-bytes'] !== undefined ? { inlineBytes: Number(values['inline-bytes']) } : {}),
  ...(values['chunk-mib'] !== undefined ? { chunkBytes: Number(values['chunk-mib']) * 1024 * 1024 } : {}),
  ...(values['compact-budget'] !== undefined ? { compactBudget: Number(values['compact-budget']) } : {}),
};
const seed = Number(values.seed);
console.log(`seed ${seed}`);

const results = [];
for (const mode of values.modes.split(',').filter(Boolean)) {
  results.push(...(await writeAtRun(open, { dir: values.dir, sizeBytes, writeCounts, mode, durability, tuning, seed, duringBurst: values['during-burst'], blockCacheBytes: Number(values['block-cache-bytes']), log: (row) => console.log(JSON.stringify(row)) })));
}
let appendRow;
if (appends > 0) {
  appendRow = await appendRun(open, { dir: values.dir, appends, durability, tuning, blockCacheBytes: Number(values['block-cache-bytes']) });
  console.log(JSON.stringify({ append: appendRow }));
}

console.log(`\n| compaction | writes | writeAt 4 KiB ops/s | object read MB/s | fresh value read MB/s | read ratio | max slices/chunk | log MiB |`);
console.log(`|---|---|---|---|---|---|---|---|`);
for (const row of results) {
  console.log(`| ${row.mode} | ${row.writes} | ${row.opsPerSecond.toFixed(0)} | ${row.objectRead.toFixed(0)} | ${row.freshRead.toFixed(0)} | ${row.readRatio.toFixed(2)} | ${row.maxSlices} | ${row.logMiB.toFixed(0)} |`);
}
if (appendRow) console.log(`\nappend 64 KiB × ${appends}: silt ${appendRow.siltMBps.toFixed(1)} MB/s, plain file ${appendRow.fileMBps.toFixed(1)} MB/s, ratio ${appendRow.ratio.toFixed(2)}; then read whole ${appendRow.objectRead.toFixed(0)} MB/s, a fresh value ${appendRow.freshRead.toFixed(0)} MB/s, ratio ${appendRow.readRatio.toFixed(2)}`);
if (values.json) console.log(JSON.stringify({ objects: results, append: appendRow }));
