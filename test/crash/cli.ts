/**
 * `npm run crash -- --kills N --seed S [--seeds K] [--keep DIR] [--profile small|files|tiny|manual]`: the long
 * crash loop (soak). `--profile` picks the store's option set (`PROFILES` in workload.mjs).
 * Prints a summary line per loop. `--seeds K` runs K loops, seeds S, S+1, …, and stops at the first
 * that fails (a hunt for a rare failure); `--keep DIR` keeps that failure's evidence in DIR: the
 * store as the kill left it (`before-reopen/`), the store after the reopen (`db/`) and the journals.
 */
import { parseArgs } from 'node:util';
import { runCrashLoop } from './crash-loop.js';

const { values } = parseArgs({
  options: {
    kills: { type: 'string', default: '100' },
    seed: { type: 'string' },
    seeds: { type: 'string', default: '1' },
    keep: { type: 'string' },
    profile: { type: 'string', default: 'small' },
    quiet: { type: 'boolean', default: false },
  },
});
const firstSeed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const kills = Number(values.kills);
const loops = Number(values.seeds);
for (let seed = firstSeed; seed < firstSeed + loops; seed++) {
  console.log(`crash loop: ${kills} kills, seed ${seed}, profile ${values.profile} (replay with --seed ${seed} --profile ${values.profile})`);
  const started = Date.now();
  const result = await runCrashLoop({
    kills,
    seed,
    profile: values.profile,
    ...(values.keep === undefined ? {} : { keepFailure: values.keep }),
    log: (line) => {
      if (line.startsWith('kept')) console.log(line);
      else if (!values.quiet && Number(/kill (\d+)\//.exec(line)?.[1] ?? 1) % 50 === 0) console.log(line);
    },
  });
  console.log(
    `durability: ${result.durability}, profile: ${result.profile}, kills: ${result.kills}, steps: ${result.steps}, acknowledged writes checked: ${result.acknowledgedChecked}, ` +
      `in flight applied/lost: ${result.inFlightApplied}/${result.inFlightLost}, expired TTLs seen: ${result.expiredSeen}, failures: ${result.failures.length}, ` +
      `seconds: ${((Date.now() - started) / 1000).toFixed(0)}`,
  );
  for (const failure of result.failures) console.log(`FAILURE ${failure}`);
  if (result.failures.length > 0) {
    process.exitCode = 1;
    break;
  }
}
