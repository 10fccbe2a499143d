// Where the time of one durable 64 KiB `append` goes, phase by phase: from the call to the log's
// pwrite (the CPU before it: hashing, CRC, encoding, bookkeeping), from the pwrite to the start of
// the fdatasync (the pwrite itself and the hop to libuv's thread pool), the fdatasync, and from its
// end to the append's promise settling. node:fs is wrapped to take the timestamps, so the figures
// include that small cost. Medians over the appends after the first 100.
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
fs.writeSync = function (descriptor, buffer, ...rest) {
  // The log's pwrite of an append (the record and its headers): larger than the record.
  if (typeof rest[1] === 'number' && rest[1] >= RECORD_BYTES) writeAt = performance.now();
  return originalWriteSync.call(this, descriptor, buffer, ...rest);
};
const other = []; let inSync = false;
for (const name of ['fsync','write','writeFile','open','rename','ftruncate','fsyncSync','writeFileSync','renameSync','openSync','ftruncateSync','unlink','unlinkSync','read','readSync','close']) { const o = fs[name]; fs[name] = function (...a) { other.push([performance.now(), name]); return o.apply(this, a); }; }
globalThis.__other = other;
fs.fdatasync = function (descriptor, callback) {
  syncStartedAt = performance.now();
  return originalFdatasync.call(this, descriptor, (error) => {
    syncEndedAt = performance.now();
    callback(error);
  });
};
// silt imports node:fs as a namespace: the wrappers must reach it (before it is loaded).
syncBuiltinESMExports();
const { open } = await import('../dist/index.js');

function median(samples) {
  const sorted = [...samples].sort((left, right) => left - right);
  return sorted[sorted.length >> 1];
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
    phases.sync.push(syncEndedAt - syncStartedAt); (globalThis.__w ??= []).push([syncStartedAt, syncEndedAt]);
    phases.afterSync.push(settled - syncEndedAt);
    phases.total.push(settled - called);
  }
  const slow=phases.sync.map((v,i)=>[i+100,v]).filter(([i,v])=>v>1.5);
  const names = new Map(); for (const [t,n] of other) names.set(n,(names.get(n)??0)+1); console.log('other calls', JSON.stringify([...names])); const w=globalThis.__w; let k=0; for (const [a,b] of w) { if (b-a<=1.5) continue; const o=other.filter(([t])=>t>=a-2&&t<=b); if (k++<15) console.log((b-a).toFixed(1), JSON.stringify(o.map(([t,n])=>n+'@'+(t-a).toFixed(2)))); } console.log(slow.length, JSON.stringify(slow.slice(0,40).map(([i,v])=>i+':'+v.toFixed(1))));
  await db.close();
  const mean=(a)=>a.reduce((x,y)=>x+y,0)/a.length; const p=(a,q)=>[...a].sort((x,y)=>x-y)[Math.floor(a.length*q)];
  const row = Object.fromEntries(Object.entries(phases).map(([name, samples]) => [name, [median(samples), mean(samples), p(samples,0.9), p(samples,0.99)].map(v=>Number(v.toFixed(3)))]));
  console.log(`64 KiB appends: ${appends}, compaction ${values.compaction}; medians in ms`);
  console.log(JSON.stringify(row));
} finally {
  fs.rmSync(directory, { recursive: true, force: true });
}
