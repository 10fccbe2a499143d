/**
 * The bounded, seeded runs of the concurrent-calls stress and of its I/O-fault variant
 * (test/stress/concurrent.ts) in `npm test`; `npm run stress` (with `--faults`) runs them long.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testSeed } from '../helpers.js';
import { runConcurrentStress, runFaultStress } from './concurrent.js';

test('concurrent calls on one store (values, streams, batches, objects, values with TTLs, compaction, GC, snapshots, verify, reopen) read back as a model says, in every durability mode', async () => {
  const seed = testSeed('concurrent stress');
  // Three runs from one printed seed: the seed picks each run's durability, segment and slice sizes.
  let expiredReads = 0;
  for (let run = 0; run < 3; run++) {
    const result = await runConcurrentStress({ seed: seed + run, steps: 150 });
    assert.deepEqual(result.failures, [], `run ${run} (replay with SEED=${seed}; run seed ${seed + run})`);
    assert.equal(result.steps, 150);
    assert.ok(result.operations > 300 && result.rangeReads > 10 && result.ttlWrites > 10, JSON.stringify(result));
    expiredReads += result.expiredReads;
  }
  // The TTL keys' values did expire under the checks (not only live ones were read).
  assert.ok(expiredReads > 0);
});

test('an I/O fault (EIO or ENOSPC, once or from then on, at a drawn call) under concurrent calls: no unhandled rejection, and after a reopen the store verifies clean and holds every acknowledged write', async () => {
  const seed = testSeed('fault stress');
  for (let run = 0; run < 4; run++) {
    const result = await runFaultStress({ seed: seed + run, steps: 150 });
    assert.deepEqual(result.failures, [], `run ${run} (replay with SEED=${seed}; run seed ${seed + run})`);
    // A run stops early once its failed writes leave too many possible states to follow.
    assert.ok(result.steps > 0 && result.operations > 0, JSON.stringify(result));
  }
});
