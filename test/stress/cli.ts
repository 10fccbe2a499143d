/**
 * `npm run stress -- --runs N --steps K --seed S [--faults] [--peeks P]`: the concurrent-calls
 * stress, long (soak); with `--faults`, its variant with an injected I/O fault per run. Run i uses
 * seed S + i. `--peeks` is the chance that a step opens a read-only store beside the writer
 * (default 0.06; higher soaks the read-only view's staleness checks).
 * Prints a summary line per failing run and one at the end.
 */
import { parseArgs } from 'node:util';
import { runConcurrentStress, runFaultStress } from './concurrent.js';

const { values } = parseArgs({
  options: { runs: { type: 'string', default: '50' }, steps: { type: 'string', default: '400' }, seed: { type: 'string' }, faults: { type: 'boolean', default: false }, peeks: { type: 'string', default: '0.06' } },
});
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const runs = Number(values.runs);
const peekRate = Number(values.peeks);
if (!(peekRate >= 0 && peekRate <= 1)) throw new Error(`--peeks takes a chance from 0 to 1, not ${values.peeks}`);
const steps = Number(values.steps);
console.log(`concurrent stress${values.faults ? ' with I/O faults' : ''}: ${runs} runs of ${steps} steps, seed ${seed} (replay with --seed ${seed}; run i with --seed <seed + i> --runs 1)`);
const started = Date.now();
let failed = 0;
let operations = 0;
let stalls = 0;
let peeks = 0;
let peekReadErrors = 0;
let ttlWrites = 0;
let expiredReads = 0;
for (let run = 0; run < runs; run++) {
  const result = values.faults ? await runFaultStress({ seed: seed + run, steps }) : await runConcurrentStress({ seed: seed + run, steps, peekRate });
  operations += result.operations;
  if ('stalls' in result) {
    stalls += result.stalls;
    peeks += result.peeks;
    peekReadErrors += result.peekReadErrors;
    ttlWrites += result.ttlWrites;
    expiredReads += result.expiredReads;
  }
  for (const failure of result.failures) {
    failed++;
    console.log(`FAILURE run ${run} (seed ${seed + run}): ${failure}`);
  }
}
console.log(`runs: ${runs}, operations: ${operations}${values.faults ? '' : `, stalled writes: ${stalls}, read-only opens beside the writer: ${peeks} (reads that found their view STALE: ${peekReadErrors}), puts with ttlMs: ${ttlWrites} (reads that found one expired: ${expiredReads})`}, failed runs: ${failed}, seconds: ${((Date.now() - started) / 1000).toFixed(0)}`);
process.exitCode = failed === 0 ? 0 : 1;
