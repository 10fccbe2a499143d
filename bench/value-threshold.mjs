// Measures where large values should leave the log for the block store: durable ('sync') put
// throughput and bytes written per byte stored, for values kept inline vs sent to blocks, at
// several sizes. Run: npm run build && node bench/value-threshold.mjs
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../dist/index.js';

const sizes = [64, 256, 512, 1024, 4096].map((kib) => kib * 1024);
const totalBytes = 64 * 1024 * 1024;
const rows = [];
for (const size of sizes) {
  for (const mode of ['inline', 'blocks']) {
    const results = [];
    for (let run = 0; run < 3; run++) {
      const directory = mkdtempSync(join(tmpdir(), 'silt-threshold-'));
      const db = await open(directory, { valueThreshold: mode === 'inline' ? 64 * 1024 * 1024 : 0, maxValueSize: 2 ** 40 });
      const count = Math.max(8, Math.floor(totalBytes / size));
      const values = Array.from({ length: 4 }, () => randomBytes(size));
      const started = performance.now();
      // 4 concurrent writers, each awaiting its durable put.
      let next = 0;
      await Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < count) {
            const index = next++;
            const value = Buffer.from(values[index % 4]);
            value.writeUInt32LE(index, 0);
            await db.put(`key-${index}`, value);
          }
        }),
      );
      const seconds = (performance.now() - started) / 1000;
      const stats = db.stats();
      await db.close();
      rmSync(directory, { recursive: true, force: true });
      results.push({ mbPerSecond: (count * size) / 1048576 / seconds, writtenPerByte: (stats.writes.logBytes + stats.blocks.bytesWritten) / (count * size) });
    }
    results.sort((a, b) => a.mbPerSecond - b.mbPerSecond);
    const median = results[1];
    rows.push({ sizeKiB: size / 1024, mode, mbPerSecond: median.mbPerSecond.toFixed(0), writtenPerByte: median.writtenPerByte.toFixed(3) });
  }
}
console.table(rows);
