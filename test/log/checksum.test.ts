/**
 * The CRC-32 of log entries: short ranges are computed in JavaScript (slicing-by-8), longer ones
 * by zlib. Both must give zlib's result for every length, offset and starting value, or a store
 * written by one would not open with the other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { mulberry32 as random } from '../../src/fs/crash-file-system.js';
import { checksum, checksumRange } from '../../src/log/format.js';
import { testSeed } from '../helpers.js';

test("checksumRange and checksum give zlib's crc32 for every length up to past the switch to zlib, any offset, any starting value", () => {
  const seed = testSeed('checksum');
  const next = random(seed);
  const bytes = Buffer.alloc(4096);
  for (let index = 0; index < bytes.length; index++) bytes[index] = Math.floor(next() * 256);
  for (let length = 0; length <= 300; length++) {
    for (let trial = 0; trial < 8; trial++) {
      const start = Math.floor(next() * (bytes.length - length));
      // Starting values across the whole unsigned range (zlib's are unsigned; above 2^31 too).
      const initial = trial === 0 ? 0 : Math.floor(next() * 2 ** 32);
      const expected = crc32(bytes.subarray(start, start + length), initial);
      assert.equal(checksumRange(bytes, start, start + length, initial), expected, `length ${length}, offset ${start}, initial ${initial}`);
      assert.equal(checksum(bytes.subarray(start, start + length), initial), expected, `length ${length}, offset ${start}, initial ${initial}`);
    }
  }
  // Continuing a CRC across pieces of a range, short pieces and long, gives the whole range's.
  let running = 0;
  for (let start = 0; start < bytes.length; ) {
    const end = Math.min(bytes.length, start + 1 + Math.floor(next() * 200));
    running = checksumRange(bytes, start, end, running);
    start = end;
  }
  assert.equal(running, crc32(bytes));
  // Known values: the CRC-32 check value, and a single bit's change shows.
  assert.equal(checksum(Buffer.from('123456789')), 0xcbf43926);
  const flipped = Buffer.from(bytes.subarray(0, 60));
  flipped[17] = (flipped[17] as number) ^ 0x10;
  assert.notEqual(checksum(flipped), checksum(bytes.subarray(0, 60)));
});
