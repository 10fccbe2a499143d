/**
 * `npm run crash -- --kills N --seed S`: the long crash loop (soak). Prints a summary line.
 */
import { parseArgs } from 'node:util';
import { runCrashLoop } from './crash-loop.js';

const { values } = parseArgs({ options: { kills: { type: 'string', default: '100' }, seed: { type: 'string' }, quiet: { type: 'boolean', default: false } } });
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const kills = Number(values.kills);
console.log(`crash loop: ${kills} kills, seed ${seed} (replay with --seed ${seed})`);
const started = Date.now();
const result = await runCrashLoop({
  kills,
  seed,
  log: values.quiet ? undefined : (line) => {
    if (/kill (\d+)\//.exec(line)?.[1] !== undefined && Number(/kill (\d+)\//.exec(line)?.[1]) % 50 === 0) console.log(line);
  },
});
console.log(
  `kills: ${result.kills}, steps: ${result.steps}, acknowledged writes checked: ${result.acknowledgedChecked}, ` +
    `in flight applied/lost: ${result.inFlightApplied}/${result.inFlightLost}, expired TTLs seen: ${result.expiredSeen}, failures: ${result.failures.length}, ` +
    `seconds: ${((Date.now() - started) / 1000).toFixed(0)}`,
);
for (const failure of result.failures) console.log(`FAILURE ${failure}`);
process.exitCode = result.failures.length === 0 ? 0 : 1;
