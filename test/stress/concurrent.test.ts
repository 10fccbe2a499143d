/**
 * The bounded, seeded run of the concurrent-calls stress (test/stress/concurrent.ts) in `npm test`;
 * `npm run stress` runs it long.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testSeed } from '../helpers.js';
import { runConcurrentStress } from './concurrent.js';

test('concurrent calls on one store (values, streams, batches, objects, compaction, GC, snapshots, verify, reopen) read back as a model says, in every durability mode', async () => {
  const seed = testSeed('concurrent stress');
  // Three runs from one printed seed: the seed picks each run's durability, segment and slice sizes.
  for (let run = 0; run < 3; run++) {
    const result = await runConcurrentStress({ seed: seed + run, steps: 150 });
    assert.deepEqual(result.failures, [], `run ${run} (replay with SEED=${seed}; run seed ${seed + run})`);
    assert.equal(result.steps, 150);
    assert.ok(result.operations > 300 && result.rangeReads > 10, JSON.stringify(result));
  }
});
