// What index checkpoints cost a store with many keys: a fill of `--keys` new keys, then
// `--rounds` rounds overwriting all of them, in 'none' mode (the log's own bytes, not fsyncs, are
// the subject), 64 MiB segments. After the fill and after each round: write amplification (log,
// checkpoints and all, per byte of keys and values), checkpoints written and their bytes, and space
// amplification (the files' bytes per live byte: at the end, and the peak after any batch). Then
// the time to open the store after a clean close, and after a crash (a child that fills the same
// way exits without closing: what the page cache holds is what a kill leaves). One build per
// `--dist` (default dist/), run one after the other.
//
//   npm run build && node bench/checkpoint-cost.mjs [--keys 3000000] [--value-bytes 20] [--rounds 2]
//                                                   [--dist dist --dist /tmp/old/dist] [--dir /tmp]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    keys: { type: 'string', default: '3000000' },
    'value-bytes': { type: 'string', default: '20' },
    rounds: { type: 'string', default: '2' },
    dist: { type: 'string', multiple: true, default: ['dist'] },
    dir: { type: 'string', default: tmpdir() },
  },
});
const keys = Number(values.keys);
const valueBytes = Number(values['value-bytes']);
const rounds = Number(values.rounds);

/** The fill (and rounds), as a module's source: run here, or in a child that then exits unclosed. */
function workload(indexUrl, directory, roundCount, report) {
  return `
const { open } = await import(${JSON.stringify(indexUrl)});
const db = await open(${JSON.stringify(directory)}, { durability: 'none' });
const report = ${report};
let peakDiskBytes = 0;
for (let round = 0; round <= ${roundCount}; round++) {
  const value = Buffer.alloc(${valueBytes}, round + 1);
  for (let start = 0; start < ${keys}; start += 1000) {
    const operations = [];
    for (let index = start; index < Math.min(start + 1000, ${keys}); index++) operations.push({ type: 'put', key: 'key-' + String(index).padStart(10, '0'), value });
    await db.batch(operations);
    if (report) peakDiskBytes = Math.max(peakDiskBytes, db.stats().diskBytes);
  }
  await db.idle();
  if (report) {
    const stats = db.stats();
    console.log(\`  \${round === 0 ? 'fill  ' : 'round ' + round}: write amplification \${stats.writeAmplification.toFixed(3)}, log \${(stats.writes.logBytes / 1e6).toFixed(0)} MB, checkpoints \${stats.checkpoints.written} (\${(stats.checkpoints.bytesWritten / 1e6).toFixed(0)} MB), space amplification \${stats.spaceAmplification.toFixed(2)} (peak \${(peakDiskBytes / stats.liveBytes).toFixed(2)})\`);
    peakDiskBytes = 0;
  }
}
if (report) await db.close();
else process.exit(0);
`;
}

for (const dist of values.dist) {
  const indexUrl = pathToFileURL(resolve(dist, 'index.js')).href;
  const { open } = await import(indexUrl);
  console.log(`${dist}: ${keys} keys, ${valueBytes}-byte values, ${rounds} rounds of overwrites`);
  for (const crash of [false, true]) {
    const directory = mkdtempSync(join(values.dir, 'silt-checkpoint-cost-'));
    try {
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', workload(indexUrl, directory, crash ? 0 : rounds, !crash)], { stdio: 'inherit' });
      if (child.status !== 0) throw new Error(`the workload exited with ${child.status}`);
      const started = performance.now();
      const db = await open(directory);
      const seconds = (performance.now() - started) / 1000;
      const recovery = db.stats().recovery;
      console.log(`  open after ${crash ? 'a crash at the end of the fill' : 'a clean close'}: ${seconds.toFixed(2)} s (checkpoint used: ${recovery.usedCheckpoint}, log replayed: ${(recovery.replayedBytes / 1e6).toFixed(0)} MB)`);
      await db.close();
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }
}
