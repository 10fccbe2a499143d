/**
 * Reads of part of a large value, shared by the `range-read` workload (tasks.mjs) and
 * bench/range-read.mjs: `reads` reads of `readBytes` at random 4 KiB-aligned offsets of one
 * value of `mib` MiB (1 MiB blocks, the block cache off: it would serve whole blocks from memory),
 * by `readAt` and by a ranged `createReadStream`, beside `readSync` of the same bytes from a plain
 * file in the same directory. `passes` passes over fresh offsets (seeded): the first finds no page
 * table kept (each block's first range read reads it whole and hashes it) and the block files
 * not in the page cache (silt writes them with O_DIRECT; the plain file goes through the page
 * cache); the later ones are the steady state. Microseconds per read, per pass.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { mulberry32 } from './random.mjs';

function median(values) {
  const sorted = [...values].sort((left, right) => left - right);
  return sorted[sorted.length >> 1];
}

/**
 * One value, `passes` passes. Returns { passes: [{ readAt?, stream, plain }], readAt?, stream,
 * plain (medians of passes 2 on, or of the only pass), firstReadAt?, pageTables, rangePageReads,
 * rangeWholeReads }. `readAt` is left out for a build without it.
 */
export async function rangeReadRun(open, { dir, mib = 256, reads = 4000, readBytes = 4096, passes = 4, seed = 42 }) {
  const sizeBytes = mib * 1024 * 1024;
  const directory = mkdtempSync(join(dir, 'silt-range-read-'));
  try {
    const db = await open(join(directory, 'db'), { blockCacheBytes: 0, valueThreshold: 512 * 1024 });
    const descriptor = openSync(join(directory, 'plain'), 'w+');
    try {
      async function* source() {
        for (let done = 0; done < sizeBytes; done += 1 << 20) {
          const chunk = randomBytes(Math.min(1 << 20, sizeBytes - done));
          writeSync(descriptor, chunk, 0, chunk.length, done);
          yield chunk;
        }
      }
      await db.putStream('value', source());
      const hasReadAt = typeof db.readAt === 'function';
      const next = mulberry32(seed);
      const offsets = () => Array.from({ length: reads }, () => Math.floor(next() * ((sizeBytes - readBytes) / 4096)) * 4096);
      const scratch = Buffer.alloc(readBytes);
      const perPass = [];
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
        perPass.push(figures);
      }
      const steady = perPass.length > 1 ? perPass.slice(1) : perPass;
      const of = (name) => (steady[0]?.[name] === undefined ? undefined : median(steady.map((figures) => figures[name])));
      const stats = db.stats().blocks;
      await db.close();
      return {
        passes: perPass,
        readAt: of('readAt'),
        stream: of('stream'),
        plain: of('plain'),
        firstReadAt: perPass[0]?.readAt,
        pageTables: stats.pageTables,
        rangePageReads: stats.rangePageReads,
        rangeWholeReads: stats.rangeWholeReads,
      };
    } finally {
      closeSync(descriptor);
    }
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
