/**
 * The bounded crash loop (a real process, really killed with SIGKILL). `npm run crash` runs the
 * long version: `npm run crash -- --kills 1000 --seed 42`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testSeed } from '../helpers.js';
import { runCrashLoop } from './crash-loop.js';

test('kill -9 at random moments: acknowledged writes survive whole, in-flight ones all or nothing (one loop per durability mode, one with block files only, one with no background work, one with segments smaller than a checkpoint)', async () => {
  const seed = testSeed('crash loop');
  const kills = Number(process.env.CRASH_KILLS ?? 24);
  // The seed picks the mode (see storeOptions in workload.mjs): 'sync', 'none', every 5 ms.
  const base = seed - (seed % 4);
  // Then the 'files' option set (no block carried in the log, many small blocks, no block cache),
  // the 'tiny' one (segments smaller than a checkpoint: compacted ones wait to share one) and the
  // 'manual' one (no background work, no checkpoint), in the modes their seeds pick.
  const loops = [
    { seed: base, profile: 'small' },
    { seed: base + 2, profile: 'small' },
    { seed: base + 3, profile: 'small' },
    { seed, profile: 'files' },
    { seed: seed + 1, profile: 'manual' },
    { seed: seed + 2, profile: 'tiny' },
  ];
  for (const { seed: loopSeed, profile } of loops) {
    const loopKills = Math.ceil(kills / 3);
    const result = await runCrashLoop({ kills: loopKills, seed: loopSeed, profile });
    console.log(`# crash loop, seed ${loopSeed}, profile ${profile}, durability ${result.durability}: ${result.kills} kills, ${result.steps} steps, ${result.acknowledgedChecked} acknowledged writes checked, in flight: ${result.inFlightApplied} applied / ${result.inFlightLost} lost, ${result.expiredSeen} expired TTLs seen, failures: ${result.failures.length}`);
    assert.deepEqual(result.failures, [], `seed ${loopSeed}, profile ${profile}`);
    assert.equal(result.kills, loopKills);
    assert.ok(result.acknowledgedChecked > loopKills);
  }
});
