/**
 * The CRC-32 of log entries: short ranges are computed in JavaScript (slicing-by-8), longer ones
 * by zlib. Both must give zlib's result for every length, offset and starting value, or a store
 * written by one would not open with the other.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { crc32 } from 'node:zlib';
import { mulberry32 as random } from '../../src/fs/crash-file-system.js';
import { checksum, checksumCombine, checksumEntries, checksumRange, encodeEntry, entryLength, EntryType } from '../../src/log/format.js';
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

test("checksumCombine gives zlib's crc32 of two pieces from theirs, for any lengths and starting value", () => {
  const seed = testSeed('checksum combine');
  const next = random(seed);
  const bytes = Buffer.alloc(300_000);
  for (let index = 0; index < bytes.length; index++) bytes[index] = Math.floor(next() * 256);
  for (let trial = 0; trial < 400; trial++) {
    const lengthA = 1 + Math.floor(next() * 300);
    // Up to past 2^17, so every bit of a length up to there is used; 0 too.
    const lengthB = trial % 50 === 0 ? 0 : Math.floor(next() * (bytes.length - lengthA));
    const initial = trial % 2 === 0 ? 0 : Math.floor(next() * 2 ** 32);
    const a = bytes.subarray(0, lengthA);
    const b = bytes.subarray(lengthA, lengthA + lengthB);
    assert.equal(checksumCombine(checksum(a, initial), checksum(b), lengthB), crc32(bytes.subarray(0, lengthA + lengthB), initial), `lengths ${lengthA} and ${lengthB}, initial ${initial} (seed ${seed})`);
  }
});

test('checksumEntries of whole entries, large (combined from their own CRCs) and small (read), is the CRC of their bytes; bytes that do not parse as entries are read', () => {
  const seed = testSeed('checksum entries');
  const next = random(seed);
  for (let trial = 0; trial < 60; trial++) {
    const sizes = Array.from({ length: 1 + Math.floor(next() * 8) }, () => (next() < 0.5 ? Math.floor(next() * 900) : 900 + Math.floor(next() * 70_000)));
    const entries = sizes.map((size, index) => {
      const value = Buffer.alloc(size);
      for (let at = 0; at < size; at++) value[at] = Math.floor(next() * 256);
      const key = `key-${trial}-${index}`;
      const entry = Buffer.alloc(entryLength(key, value, false));
      encodeEntry(entry, 0, { type: EntryType.PUT, key, value, revision: trial * 10 + index + 1 });
      return entry;
    });
    const bytes = Buffer.concat(entries);
    const initial = trial % 2 === 0 ? 0 : Math.floor(next() * 2 ** 32);
    assert.equal(checksumEntries(bytes, initial), crc32(bytes, initial), `sizes ${sizes.join(',')} (seed ${seed})`);
    // A tail cut short, or one whose length field points past the end, is read as bytes.
    const cut = bytes.subarray(0, bytes.length - 1 - Math.floor(next() * Math.min(100, bytes.length - 1)));
    assert.equal(checksumEntries(cut, initial), crc32(cut, initial), `cut to ${cut.length} (seed ${seed})`);
  }
  // The combining path is the one taken for a large entry: a wrong CRC field shows in the result.
  const value = Buffer.alloc(8192, 7);
  const entry = Buffer.alloc(entryLength('k', value, false));
  encodeEntry(entry, 0, { type: EntryType.PUT, key: 'k', value, revision: 1 });
  assert.equal(checksumEntries(entry), crc32(entry));
  const lying = Buffer.from(entry);
  lying.writeUInt32LE((lying.readUInt32LE(0) ^ 1) >>> 0, 0);
  lying[100] = (lying[100] as number) ^ 0xff;
  assert.notEqual(checksumEntries(lying), crc32(lying), 'a large entry is combined from its CRC field, not read');
});
