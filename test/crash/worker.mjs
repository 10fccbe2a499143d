// The crash loop's worker: runs the seeded workload (in the durability mode the seed picks, see
// `storeOptions`) from a given step (with
// compaction and GC started alongside some steps) and appends
// every event to a journal file with synchronous writes, so a SIGKILL loses none of them:
//   I <step> <index> <ms>            operation issued (Date.now() before the call)
//   A <step> <index> <revision> <ms> acknowledged (Date.now() after it resolved)
//   C <step> <index> <revision>      conditional write refused (CONFLICT), nothing written
//   S <step>                         step done (every operation of it settled)
// Usage: node worker.mjs <dist/index.js> <dir> <journal> <seed> <first step> [<profile>]
import { closeSync, openSync, writeSync } from 'node:fs';
import { stepMaintenance, stepOperations, storeOptions, valueBytes } from './workload.mjs';

const [distribution, directory, journalPath, seedText, firstStepText, profile] = process.argv.slice(2);
const { open } = await import(distribution);
const seed = Number(seedText);
const journal = openSync(journalPath, 'a');
const log = (line) => writeSync(journal, `${line}\n`);
const db = await open(directory, storeOptions(seed, profile));
const bytes = (spec) => valueBytes(spec.seed, spec.length);

for (let step = Number(firstStepText); ; step++) {
  const operations = stepOperations(seed, step);
  const settled = [];
  for (const [index, operation] of operations.entries()) {
    let promise;
    if (operation.type === 'cas') {
      const current = await db.getEntry(operation.key);
      log(`I ${step} ${index} ${Date.now()}`);
      promise = db.put(operation.key, bytes(operation.value), { ifRevision: current?.revision ?? 0 }).then(
        (result) => log(`A ${step} ${index} ${result.revision} ${Date.now()}`),
        (error) => {
          if (error.code !== 'CONFLICT') throw error;
          log(`C ${step} ${index} ${error.currentRevision}`);
        },
      );
    } else {
      log(`I ${step} ${index} ${Date.now()}`);
      const ttl = operation.ttlMs === undefined ? undefined : { ttlMs: operation.ttlMs };
      if (operation.type === 'put' && operation.stream) {
        const value = bytes(operation.value);
        // In chunks that do not line up with blocks.
        const chunks = [];
        for (let offset = 0; offset < value.length; offset += 3000) chunks.push(value.subarray(offset, offset + 3000));
        promise = db.putStream(operation.key, chunks, ttl);
      } else if (operation.type === 'put') promise = db.put(operation.key, bytes(operation.value), ttl);
      else if (operation.type === 'writeAt') promise = db.writeAt(operation.key, operation.offset, bytes(operation.value));
      else if (operation.type === 'append') promise = db.append(operation.key, bytes(operation.value));
      else if (operation.type === 'truncate') promise = db.truncate(operation.key, operation.size);
      else if (operation.type === 'delete') promise = db.delete(operation.key);
      else promise = db.batch(operation.operations.map((inner) => (inner.type === 'put' ? { type: 'put', key: inner.key, value: bytes(inner.value), ttlMs: inner.ttlMs } : inner)));
      promise = promise.then((result) => log(`A ${step} ${index} ${result.revision} ${Date.now()}`));
    }
    settled.push(promise);
  }
  const maintenance = stepMaintenance(seed, step);
  if (maintenance === 'compact') settled.push(db.compact());
  else if (maintenance === 'gc') settled.push(db.gc());
  await Promise.all(settled);
  log(`S ${step}`);
}
closeSync(journal);
