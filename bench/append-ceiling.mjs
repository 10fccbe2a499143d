// The highest `objects-append` ratio any build of silt's format could reach on this machine: the
// plain file's durable 64 KiB append (its baseline: write + fdatasyncSync, the file growing) over
// the least a silt append must do. That least is the work the format requires of every appended
// record, SHA-256 (its block's name: issue 4) and CRC-32 (its log entry's checksum) over the
// record and its copy into the entry, plus a write + fdatasyncSync of the entry into space written
// and synced beforehand (cheaper than the plain file's growing region: what a log recycling its
// files would give). Nothing else is counted: no bookkeeping, no thread-pool round trip for the
// fdatasync (a blocking one, which silt does not do: it would stop the event loop), no footer
// checksum. A real build can only come out lower. Beside it, the plain file's append with its
// fdatasync through the thread pool (as silt's log syncs, leaving the event loop free): what the
// round trip costs here. The measurements take turns in rounds of `--count` records, `--runs`
// rounds, medians per record. No silt code runs.
//
//   node bench/append-ceiling.mjs [--count 500] [--runs 7] [--dir /tmp]
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fdatasync, fdatasyncSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { crc32 } from 'node:zlib';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '500' },
    runs: { type: 'string', default: '7' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const count = Number(values.count);
const runs = Number(values.runs);
const RECORD_BYTES = 64 * 1024;
// An entry's header and the slice's reference, about what silt's block entry adds to the record.
const ENTRY_HEADER_BYTES = 64;

function median(samples) {
  const sorted = [...samples].sort((left, right) => left - right);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds per call of `step(index)`, over `count` calls. */
function perCall(step) {
  const started = performance.now();
  for (let index = 0; index < count; index++) step(index);
  return (performance.now() - started) / count;
}

const directory = mkdtempSync(join(values.dir, 'silt-append-ceiling-'));
try {
  const record = randomBytes(RECORD_BYTES);
  const entry = Buffer.alloc(ENTRY_HEADER_BYTES + RECORD_BYTES);
  const samples = { plain: [], plainAsync: [], sha256: [], crc32: [], copy: [], writtenSpace: [] };
  for (let run = 0; run < runs; run++) {
    // The baseline, as bench/lib/objects.mjs `appendRun` does it: a file opened for append.
    const plain = openSync(join(directory, `plain-${run}`), 'a');
    samples.plain.push(perCall((index) => {
      record.writeUInt32LE(index, 0);
      writeSync(plain, record);
      fdatasyncSync(plain);
    }));
    closeSync(plain);
    const plainAsync = openSync(join(directory, `plain-async-${run}`), 'a');
    const started = performance.now();
    for (let index = 0; index < count; index++) {
      record.writeUInt32LE(index, 0);
      writeSync(plainAsync, record);
      await new Promise((resolve, reject) => fdatasync(plainAsync, (error) => (error ? reject(error) : resolve())));
    }
    samples.plainAsync.push((performance.now() - started) / count);
    closeSync(plainAsync);
    samples.sha256.push(perCall(() => createHash('sha256').update(record).digest()));
    samples.crc32.push(perCall(() => crc32(entry.subarray(4))));
    samples.copy.push(perCall(() => record.copy(entry, ENTRY_HEADER_BYTES)));
    // Written space: the file's region written with zeros and synced first, then overwritten.
    const written = openSync(join(directory, `written-${run}`), 'w');
    const zeros = Buffer.alloc(1 << 20);
    for (let offset = 0; offset < count * entry.length; offset += zeros.length) writeSync(written, zeros, 0, zeros.length, offset);
    fdatasyncSync(written);
    samples.writtenSpace.push(perCall((index) => {
      writeSync(written, entry, 0, entry.length, index * entry.length);
      fdatasyncSync(written);
    }));
    closeSync(written);
    rmSync(join(directory, `plain-${run}`));
    rmSync(join(directory, `plain-async-${run}`));
    rmSync(join(directory, `written-${run}`));
  }
  const ms = Object.fromEntries(Object.entries(samples).map(([name, values]) => [name, median(values)]));
  const least = ms.sha256 + ms.crc32 + ms.copy + ms.writtenSpace;
  const format = (value) => value.toFixed(3);
  console.log(`${runs} rounds of ${count} records of 64 KiB, medians, ms per record; directory ${directory}`);
  console.log('');
  console.log('| plain file: write + fdatasync, growing | the same, fdatasync in the thread pool | SHA-256 | CRC-32 | copy into the entry | entry write + fdatasync, written space | least a silt append takes | ceiling (plain / least) |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  console.log(`| ${format(ms.plain)} | ${format(ms.plainAsync)} | ${format(ms.sha256)} | ${format(ms.crc32)} | ${format(ms.copy)} | ${format(ms.writtenSpace)} | ${format(least)} | ${(ms.plain / least).toFixed(3)} |`);
  console.log('');
  console.log(`per round: plain ${samples.plain.map(format).join(', ')}; written space ${samples.writtenSpace.map(format).join(', ')}`);
} finally {
  rmSync(directory, { recursive: true, force: true });
}
