/**
 * The bounded crash loop (a real process, really killed with SIGKILL). `npm run crash` runs the
 * long version: `npm run crash -- --kills 1000 --seed 42`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { testSeed } from '../helpers.js';
import { runCrashLoop } from './crash-loop.js';

test('kill -9 at random moments: acknowledged writes survive whole, in-flight ones all or nothing', async () => {
  const seed = testSeed('crash loop');
  const kills = Number(process.env.CRASH_KILLS ?? 24);
  const result = await runCrashLoop({ kills, seed });
  console.log(`# crash loop: ${result.kills} kills, ${result.steps} steps, ${result.acknowledgedChecked} acknowledged writes checked, in flight: ${result.inFlightApplied} applied / ${result.inFlightLost} lost, ${result.expiredSeen} expired TTLs seen, failures: ${result.failures.length}`);
  assert.deepEqual(result.failures, []);
  assert.equal(result.kills, kills);
  assert.ok(result.acknowledgedChecked > kills);
});
