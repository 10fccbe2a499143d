// Random reads of part of a large value: `--reads` reads of `--bytes` (4 KiB) at random 4 KiB-aligned
// offsets of one `--mib` MiB value (1 MiB blocks), by `readAt` and by a ranged `createReadStream`,
// beside `readSync` of the same bytes from a plain file in the same directory. Passes one after
// the other over the same offsets' distribution: the first finds no page table kept (each block's
// first range read reads it whole and hashes it) and block files not yet in the page cache (they
// are written with O_DIRECT; the plain file through the page cache); later passes show the steady
// state. The block cache is off (`blockCacheBytes: 0`): it would serve whole blocks from memory.
// Prints microseconds per read, medians over `--passes` passes after the first.
//
//   npm run build && node bench/range-read.mjs [--mib 256] [--reads 4000] [--passes 4] [--dist dist] [--dir /tmp]
//   (--dist: a built dist/ directory, e.g. an older build's, to compare; a build without `readAt`
//   is measured by its streams only)
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32 } from './lib/random.mjs';

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
const sizeBytes = Number(values.mib) * 1024 * 1024;
const reads = Number(values.reads);
const readBytes = Number(values.bytes);
const passes = Number(values.passes);
const { open } = await import(pathToFileURL(join(resolve(values.dist), 'index.js')).href);

function median(samples) {
  const sorted = [...samples].sort((left, right) => left - right);
  return sorted[sorted.length >> 1];
}

const directory = mkdtempSync(join(values.dir, 'silt-range-read-'));
try {
  const db = await open(join(directory, 'db'), { blockCacheBytes: 0, valueThreshold: 512 * 1024 });
  const descriptor = openSync(join(directory, 'plain'), 'w+');
  async function* source() {
    for (let done = 0; done < sizeBytes; done += 1 << 20) {
      const chunk = randomBytes(Math.min(1 << 20, sizeBytes - done));
      writeSync(descriptor, chunk, 0, chunk.length, done);
      yield chunk;
    }
  }
  await db.putStream('value', source());
  const hasReadAt = typeof db.readAt === 'function';
  const next = mulberry32(42);
  const offsets = () => Array.from({ length: reads }, () => Math.floor(next() * ((sizeBytes - readBytes) / 4096)) * 4096);
  const rows = { readAt: [], stream: [], plain: [] };
  const scratch = Buffer.alloc(readBytes);
  for (let pass = 0; pass < passes; pass++) {
    const figures = {};
    if (hasReadAt) {
      const started = performance.now();
      for (const offset of offsets()) {
        const bytes = await db.readAt('value', offset, readBytes);
        if (bytes.length !== readBytes) throw new Error(`readAt gave ${bytes.length} bytes`);
      }
      figures.readAt = ((performance.now() - started) * 1000) / reads;
    }
    let started = performance.now();
    for (const offset of offsets()) {
      let length = 0;
      for await (const chunk of db.createReadStream('value', { start: offset, end: offset + readBytes - 1 })) length += chunk.length;
      if (length !== readBytes) throw new Error(`a ranged stream gave ${length} bytes`);
    }
    figures.stream = ((performance.now() - started) * 1000) / reads;
    started = performance.now();
    for (const offset of offsets()) readSync(descriptor, scratch, 0, readBytes, offset);
    figures.plain = ((performance.now() - started) * 1000) / reads;
    console.log(`pass ${pass + 1}: µs per ${readBytes}-byte read: ${Object.entries(figures).map(([name, micros]) => `${name} ${micros.toFixed(1)}`).join(', ')}`);
    if (pass > 0) for (const [name, micros] of Object.entries(figures)) rows[name].push(micros);
  }
  closeSync(descriptor);
  const stats = db.stats().blocks;
  await db.close();
  const summary = Object.entries(rows)
    .filter(([, samples]) => samples.length > 0)
    .map(([name, samples]) => `${name} ${median(samples).toFixed(1)}`)
    .join(', ');
  console.log(`${values.mib} MiB value, ${reads} reads a pass; passes 2-${passes}, median µs per read: ${summary}`);
  if (stats.pageTables !== undefined) console.log(`page tables kept: ${stats.pageTables} (${stats.pageTableBytes} bytes); range reads by pages ${stats.rangePageReads}, whole ${stats.rangeWholeReads}`);
} finally {
  rmSync(directory, { recursive: true, force: true });
}
