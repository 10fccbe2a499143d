// Random reads of part of a large value, standalone (the `range-read` workload of run.mjs runs
// the same measurement, bench/lib/range-read.mjs, in a child per run): `--reads` reads of
// `--bytes` (4 KiB) at random 4 KiB-aligned offsets of one `--mib` MiB value (1 MiB blocks), by
// `readAt` and by a ranged `createReadStream`, beside `readSync` of the same bytes from a plain
// file in the same directory, `--passes` passes. The first pass finds no page table kept (each
// block's first range read reads it whole and hashes it) and block files not yet in the page
// cache (they are written with O_DIRECT; the plain file through the page cache); later passes
// show the steady state. Prints microseconds per read per pass, and medians of passes 2 on.
//
//   npm run build && node bench/range-read.mjs [--mib 256] [--reads 4000] [--passes 4] [--dist dist] [--dir /tmp]
//   (--dist: a built dist/ directory, e.g. an older build's, to compare; a build without `readAt`
//   is measured by its streams only)
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { rangeReadRun } from './lib/range-read.mjs';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '256' },
    reads: { type: 'string', default: '4000' },
    bytes: { type: 'string', default: '4096' },
    passes: { type: 'string', default: '4' },
    dist: { type: 'string', default: 'dist' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const { open } = await import(pathToFileURL(join(resolve(values.dist), 'index.js')).href);
const result = await rangeReadRun(open, { dir: values.dir, mib: Number(values.mib), reads: Number(values.reads), readBytes: Number(values.bytes), passes: Number(values.passes) });
result.passes.forEach((figures, pass) => {
  console.log(`pass ${pass + 1}: µs per ${values.bytes}-byte read: ${Object.entries(figures).map(([name, micros]) => `${name} ${micros.toFixed(1)}`).join(', ')}`);
});
const summary = ['readAt', 'stream', 'plain'].filter((name) => result[name] !== undefined).map((name) => `${name} ${result[name].toFixed(1)}`).join(', ');
console.log(`${values.mib} MiB value, ${values.reads} reads a pass; passes 2-${values.passes}, median µs per read: ${summary}`);
if (result.pageTables !== undefined) console.log(`page tables kept: ${result.pageTables}; range reads by pages ${result.rangePageReads}, whole ${result.rangeWholeReads}`);
