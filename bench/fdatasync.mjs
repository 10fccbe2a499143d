// What a durable append costs by the state of the file region it lands in, on this machine's
// disk: a file that grows with each append (what the plain-file baseline of `objects-append`
// does), one extended ahead by ftruncate (a hole: what silt's active log segment does, see
// src/log/segment-writer.ts), and one whose region was written (zeros) and synced beforehand
// (what a recycled or zero-filled log segment would give). Each sample is `--count` appends of one
// record size, each a pwrite + fdatasync, in a fresh file; the three states take turns, `--runs`
// rounds, medians. No silt code runs: this measures the file system, to say what a log that
// writes into written space could gain.
//
//   node bench/fdatasync.mjs [--sizes 128,4096,65536] [--count 1000] [--runs 3] [--dir /tmp]
import { randomBytes } from 'node:crypto';
import { closeSync, fdatasyncSync, fsyncSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '128,4096,65536' },
    count: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: tmpdir() },
  },
});
const sizes = values.sizes.split(',').map(Number);
const count = Number(values.count);
const runs = Number(values.runs);
const STATES = ['grown', 'hole', 'written'];

function median(samples) {
  const sorted = [...samples].sort((left, right) => left - right);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds per append of `size` bytes + fdatasync into a fresh file prepared as `state`. */
function sample(directory, state, size) {
  const path = join(directory, `${state}-${size}`);
  const descriptor = openSync(path, 'w');
  try {
    const span = size * count;
    if (state === 'hole') {
      ftruncateSync(descriptor, span);
      fsyncSync(descriptor);
    } else if (state === 'written') {
      const zeros = Buffer.alloc(1 << 20);
      for (let at = 0; at < span; at += zeros.length) writeSync(descriptor, zeros, 0, Math.min(zeros.length, span - at), at);
      fsyncSync(descriptor);
    }
    const record = randomBytes(size);
    const started = performance.now();
    for (let index = 0; index < count; index++) {
      record.writeUInt32LE(index, 0);
      writeSync(descriptor, record, 0, size, index * size);
      fdatasyncSync(descriptor);
    }
    return (performance.now() - started) / count;
  } finally {
    closeSync(descriptor);
    rmSync(path, { force: true });
  }
}

const directory = mkdtempSync(join(values.dir, 'silt-fdatasync-'));
try {
  const rows = [];
  for (const size of sizes) {
    const samples = Object.fromEntries(STATES.map((state) => [state, []]));
    for (let run = 0; run < runs; run++) {
      // Rotate which state goes first, so that none always meets the disk right after another.
      for (let turn = 0; turn < STATES.length; turn++) {
        const state = STATES[(run + turn) % STATES.length];
        samples[state].push(sample(directory, state, size));
      }
    }
    const medians = Object.fromEntries(STATES.map((state) => [state, median(samples[state])]));
    rows.push({ size, ...medians, samples });
  }
  console.log(`${count} appends per sample, ${runs} runs, medians; directory ${directory}\n`);
  console.log('| record bytes | grown ms | hole ms | written ms | grown / written | hole / written |');
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const row of rows) {
    console.log(`| ${row.size} | ${row.grown.toFixed(3)} | ${row.hole.toFixed(3)} | ${row.written.toFixed(3)} | ${(row.grown / row.written).toFixed(2)} | ${(row.hole / row.written).toFixed(2)} |`);
  }
} finally {
  rmSync(directory, { recursive: true, force: true });
}
