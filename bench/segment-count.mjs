// Small puts against a log of many segments: what the per-commit work that grows with the
// segment count costs. Fills the store with unique 1,000-byte values (no dead bytes: compaction
// has nothing to do), then times 20,000 puts of new keys. 'none' mode, no checkpoint.
//
//   npm run build && node bench/segment-count.mjs [--segment-bytes 65536] [--fill-mib 256] [--dist dist/index.js ...]
//
// Several --dist builds run one after the other in this process (an A/B on a noisy machine: run it
// a few times and compare medians).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    'segment-bytes': { type: 'string', default: String(64 * 1024) },
    'fill-mib': { type: 'string', default: '256' },
    puts: { type: 'string', default: '20000' },
    dist: { type: 'string', multiple: true, default: [join(import.meta.dirname, '../dist/index.js')] },
  },
});
const segmentBytes = Number(values['segment-bytes']);
const fillBytes = Number(values['fill-mib']) * 1024 * 1024;
const puts = Number(values.puts);
const value = Buffer.alloc(1000, 1);
for (const dist of values.dist) {
  const { open } = await import(resolve(dist));
  const directory = mkdtempSync(join(tmpdir(), 'silt-segment-count-'));
  try {
    const db = await open(directory, { segmentBytes, durability: 'none', checkpoint: false });
    for (let index = 0; index < fillBytes / value.length; index++) await db.put(`fill-${index}`, value);
    await db.idle();
    const started = performance.now();
    for (let index = 0; index < puts; index++) await db.put(`new-${index}`, value);
    const microseconds = ((performance.now() - started) / puts) * 1000;
    const segments = Math.round(db.stats().diskBytes / segmentBytes);
    console.log(`${dist}: about ${segments} segments of ${segmentBytes} bytes: ${microseconds.toFixed(1)} µs per put`);
    await db.close();
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}
