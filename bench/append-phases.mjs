// Where the time of one durable 64 KiB `append` goes, phase by phase: from the call to the log's
// pwrite (the CPU before it: hashing, CRC, encoding, bookkeeping), from the pwrite to the start of
// the fdatasync (the pwrite itself, and the hop to libuv's thread pool or, for an fdatasync on
// the main thread (`inlineSyncMaxMs`), the footer CRC's fold), the fdatasync, and from its end to
// the append's promise settling (inline, that includes the event loop's turn before the write is
// acknowledged). node:fs is wrapped to take the timestamps, so the figures include that small
// cost. Medians, means and 99th percentiles over the appends after the first 100: a throughput
// (the bench's `objects-append` row) follows the means, which a few slow fdatasyncs move well
// above the medians on this VM.
//
//   npm run build && node bench/append-phases.mjs [--appends 2000] [--compaction on|off] [--dir /tmp]
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    appends: { type: 'string', default: '2000' },
    compaction: { type: 'string', default: 'on' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const appends = Number(values.appends);
const RECORD_BYTES = 64 * 1024;

let writeAt = 0;
let syncStartedAt = 0;
let syncEndedAt = 0;
const originalWriteSync = fs.writeSync;
const originalFdatasync = fs.fdatasync;
const originalFdatasyncSync = fs.fdatasyncSync;
fs.writeSync = function (descriptor, buffer, ...rest) {
  // The log's pwrite of an append (the record and its headers): larger than the record.
  if (typeof rest[1] === 'number' && rest[1] >= RECORD_BYTES) writeAt = performance.now();
  return originalWriteSync.call(this, descriptor, buffer, ...rest);
};
fs.fdatasync = function (descriptor, callback) {
  syncStartedAt = performance.now();
  return originalFdatasync.call(this, descriptor, (error) => {
    syncEndedAt = performance.now();
    callback(error);
  });
};
// The group commit's fdatasync on the main thread (`inlineSyncMaxMs`): its "sync" phase is the call.
fs.fdatasyncSync = function (descriptor) {
  syncStartedAt = performance.now();
  try {
    return originalFdatasyncSync.call(this, descriptor);
  } finally {
    syncEndedAt = performance.now();
  }
};
// silt imports node:fs as a namespace: the wrappers must reach it (before it is loaded).
syncBuiltinESMExports();
const { open } = await import('../dist/index.js');

function percentile(samples, fraction) {
  const sorted = [...samples].sort((left, right) => left - right);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))];
}

function mean(samples) {
  return samples.reduce((sum, sample) => sum + sample, 0) / samples.length;
}

const directory = fs.mkdtempSync(join(values.dir, 'silt-append-phases-'));
try {
  const db = await open(directory, { objects: { compaction: values.compaction === 'on' } });
  const record = randomBytes(RECORD_BYTES);
  const phases = { beforeWrite: [], writeToSync: [], sync: [], afterSync: [], total: [] };
  for (let index = 0; index < appends; index++) {
    record.writeUInt32LE(index, 0);
    const called = performance.now();
    await db.append('log', record);
    const settled = performance.now();
    if (index < 100) continue;
    phases.beforeWrite.push(writeAt - called);
    phases.writeToSync.push(syncStartedAt - writeAt);
    phases.sync.push(syncEndedAt - syncStartedAt);
    phases.afterSync.push(settled - syncEndedAt);
    phases.total.push(settled - called);
  }
  await db.close();
  const row = (statistic) => JSON.stringify(Object.fromEntries(Object.entries(phases).map(([name, samples]) => [name, Number(statistic(samples).toFixed(3))])));
  console.log(`64 KiB appends: ${appends}, compaction ${values.compaction}; ms`);
  console.log(`median ${row((samples) => percentile(samples, 0.5))}`);
  console.log(`mean   ${row(mean)}`);
  console.log(`p99    ${row((samples) => percentile(samples, 0.99))}`);
} finally {
  fs.rmSync(directory, { recursive: true, force: true });
}
