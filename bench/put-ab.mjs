// Sequential durable puts of `--bytes` (default 1 MiB: one block each, `valueThreshold` being
// 512 KiB; smaller values go in the log), two or more builds of silt in one process, round by
// round: each round opens a fresh store per build (the order alternating between rounds), puts
// `--warm` values to warm it up, then times `--puts` puts awaited one at a time. Prints each build's median ms per put over `--rounds` rounds, and every round's
// figure. One process and alternating rounds, because this machine's disk speed drifts by more
// than the differences looked for between separate runs.
//
//   node bench/put-ab.mjs [--rounds 11] [--puts 60] [--bytes 1048576] [--warm 1] [--dir /tmp] BUILD_DIR...
//   (each BUILD_DIR a checkout with dist/ built, e.g. a clone of an older commit and this one)
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: 'string', default: '11' },
    puts: { type: 'string', default: '60' },
    bytes: { type: 'string', default: String(1024 * 1024) },
    warm: { type: 'string', default: '1' },
    dir: { type: 'string', default: tmpdir() },
  },
});
if (positionals.length === 0) {
  console.error('usage: node bench/put-ab.mjs [--rounds N] [--puts N] [--bytes N] [--warm N] [--dir D] BUILD_DIR...');
  process.exit(2);
}
const rounds = Number(values.rounds);
const puts = Number(values.puts);
const valueBytes = Number(values.bytes);
const warmUps = Number(values.warm);
const builds = positionals.map((build) => resolve(build));
const modules = await Promise.all(builds.map((build) => import(pathToFileURL(join(build, 'dist/index.js')).href)));
const data = Array.from({ length: puts + 1 }, () => randomBytes(valueBytes));
const samples = builds.map(() => []);

for (let round = 0; round < rounds; round++) {
  for (let turn = 0; turn < builds.length; turn++) {
    const index = round % 2 === 0 ? turn : builds.length - 1 - turn;
    const directory = mkdtempSync(join(values.dir, 'silt-put-ab-'));
    try {
      const db = await modules[index].open(directory, { valueThreshold: 512 * 1024 });
      for (let put = 0; put < warmUps; put++) await db.put(`warm${put}`, data[puts]);
      const started = performance.now();
      for (let put = 0; put < puts; put++) await db.put(`k${put}`, data[put]);
      samples[index].push((performance.now() - started) / puts);
      await db.close();
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  }
}

const median = (list) => [...list].sort((left, right) => left - right)[list.length >> 1];
for (const [index, build] of builds.entries()) {
  const perPut = median(samples[index]);
  console.log(`${build}: median ${perPut.toFixed(3)} ms per put (${(valueBytes / 1e6 / perPut * 1000).toFixed(1)} MB/s); rounds: ${samples[index].map((ms) => ms.toFixed(3)).join(' ')}`);
}
