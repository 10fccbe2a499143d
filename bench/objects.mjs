#!/usr/bin/env node
/**
 * Objects (issue 6): random 4 KiB writeAt into a large object, and append of 64 KiB records
 * against a plain file, in one run. Uses the built package (npm run build first).
 *
 *   node bench/objects.mjs [--size-mib 256] [--writes 10000,100000] [--appends 2000] [--durability sync|none]
 *                          [--modes on,off] [--compact-at N] [--sync-compact-at N] [--inline-bytes N]
 *                          [--dir /tmp] [--json]
 *
 * Reports, for compaction on and off: writeAt ops/s, and whole-object read MB/s after each
 * write count, beside the read MB/s of a freshly written value of the same size (the two read in
 * turn, three times each, medians reported). Appends to
 * silt and to the plain file alternate in rounds of 25 (the machine may be shared: both see the
 * same disk weather), and the ratio is of the totals. `--json` prints one JSON document at the
 * end ({ objects: [...rows], append: {...} }) for a harness to collect.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { open } from '../dist/index.js';

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
    json: { type: 'boolean', default: false },
    dir: { type: 'string', default: tmpdir() },
  },
});
const sizeBytes = Number(values['size-mib']) * 1024 * 1024;
const writeCounts = values.writes.split(',').map(Number).filter((count) => count > 0);
const appends = Number(values.appends);
const durability = values.durability;
const modes = values.modes.split(',');
const PAGE = 4096;
const tuning = {
  ...(values['compact-at'] !== undefined ? { compactAt: Number(values['compact-at']) } : {}),
  ...(values['sync-compact-at'] !== undefined ? { syncCompactAt: Number(values['sync-compact-at']) } : {}),
  ...(values['inline-bytes'] !== undefined ? { inlineBytes: Number(values['inline-bytes']) } : {}),
};

function seeded(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

async function readAll(db, key) {
  const started = performance.now();
  let bytes = 0;
  for await (const chunk of db.createReadStream(key)) bytes += chunk.length;
  return bytes / 1e6 / ((performance.now() - started) / 1000);
}

async function* source(total) {
  for (let done = 0; done < total; done += 1 << 20) yield randomBytes(Math.min(1 << 20, total - done));
}

const results = [];
for (const mode of modes) {
  const directory = mkdtempSync(join(values.dir, 'silt-objects-bench-'));
  try {
    const db = await open(directory, { durability, objects: { compaction: mode === 'on', ...tuning, ...(mode === 'off' ? { syncCompactAt: 1_000_000, compactAt: 1_000_000 } : {}) }, gc: { minAgeMs: 0, intervalMs: 1000 } });
    await db.putStream('fresh', source(sizeBytes));
    await db.putStream('obj', source(sizeBytes));
    const next = seeded(42);
    let done = 0;
    for (const target of writeCounts) {
      const page = randomBytes(PAGE);
      const started = performance.now();
      for (; done < target; done++) {
        page.writeUInt32LE(done, 0);
        await db.writeAt('obj', Math.floor(next() * (sizeBytes / PAGE)) * PAGE, page);
      }
      const writeMs = performance.now() - started;
      const opsPerSecond = (target - (results.filter((row) => row.mode === mode).at(-1)?.writes ?? 0)) / (writeMs / 1000);
      await db.idle();
      const objectStats = db.objectStats('obj');
      // Fresh and object reads alternate (3 each, medians): both see the same machine load.
      const freshReads = [];
      const objectReads = [];
      for (let round = 0; round < 3; round++) {
        freshReads.push(await readAll(db, 'fresh'));
        objectReads.push(await readAll(db, 'obj'));
      }
      const median = (list) => [...list].sort((left, right) => left - right)[1];
      const freshRead = median(freshReads);
      const objectRead = median(objectReads);
      results.push({ mode, writes: target, opsPerSecond, objectRead, freshRead, slices: objectStats?.slices, maxSlices: objectStats?.maxSlicesPerChunk, heavy: db.stats().objects.heavyCompactions, logMiB: db.stats().writes.logBytes / 2 ** 20 });
      console.log(JSON.stringify(results.at(-1)));
    }
    await db.close();
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

// Append 64 KiB records: silt object vs a plain file (fdatasync per record in 'sync' mode), in
// alternating rounds.
const record = randomBytes(64 * 1024);
let appendRow;
if (appends > 0) {
  const directory = mkdtempSync(join(values.dir, 'silt-append-bench-'));
  try {
    const db = await open(join(directory, 'db'), { durability, objects: tuning });
    const descriptor = openSync(join(directory, 'plain.log'), 'a');
    const ROUND = 25;
    let siltMs = 0;
    let fileMs = 0;
    for (let done = 0; done < appends; done += ROUND) {
      const count = Math.min(ROUND, appends - done);
      let started = performance.now();
      for (let index = 0; index < count; index++) await db.append('log', record);
      siltMs += performance.now() - started;
      started = performance.now();
      for (let index = 0; index < count; index++) {
        writeSync(descriptor, record);
        if (durability === 'sync') fdatasyncSync(descriptor);
      }
      fileMs += performance.now() - started;
    }
    closeSync(descriptor);
    const siltMBps = (appends * record.length) / 1e6 / (siltMs / 1000);
    const fileMBps = (appends * record.length) / 1e6 / (fileMs / 1000);
    await db.idle();
    const stats = db.objectStats('log');
    const counters = db.stats().objects;
    await db.close();
    appendRow = { siltMBps, fileMBps, ratio: siltMBps / fileMBps, maxSlices: stats?.maxSlicesPerChunk, inlineSlices: counters.inlineSlices, heavy: counters.heavyCompactions, blocksReused: counters.blocksReused };
    console.log(JSON.stringify({ append: appendRow }));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

console.log(`\n| compaction | writes | writeAt 4 KiB ops/s | object read MB/s | fresh value read MB/s | read ratio | max slices/chunk | log MiB |`);
console.log(`|---|---|---|---|---|---|---|---|`);
for (const row of results) {
  console.log(`| ${row.mode} | ${row.writes} | ${row.opsPerSecond.toFixed(0)} | ${row.objectRead.toFixed(0)} | ${row.freshRead.toFixed(0)} | ${(row.objectRead / row.freshRead).toFixed(2)} | ${row.maxSlices} | ${row.logMiB.toFixed(0)} |`);
}
if (appendRow) console.log(`\nappend 64 KiB × ${appends}: silt ${appendRow.siltMBps.toFixed(1)} MB/s, plain file ${appendRow.fileMBps.toFixed(1)} MB/s, ratio ${appendRow.ratio.toFixed(2)}`);
if (values.json) console.log(JSON.stringify({ objects: results, append: appendRow }));
