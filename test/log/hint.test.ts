/**
 * The checkpoint file (`index.hint`): version 3 (varints, keys stored as what they share with the
 * key before) round-trips every kind of entry, takes far fewer bytes than version 2 did, and
 * files of version 2 (written by earlier silts) still load.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashFileSystem, mulberry32 as random } from '../../src/fs/crash-file-system.js';
import { decodeHint, HINT_VERSION, writeHint, type EntryLocation, type LogBlockLocation } from '../../src/log/hint.js';
import type { ObjectManifest } from '../../src/log/object.js';
import type { ValueReference } from '../../src/log/format.js';
import { testSeed } from '../helpers.js';

/** What decodeHint gives back of a location (reference and object are read from the log at open). */
function stored(location: EntryLocation): object {
  const { segmentId, offsetBytes, lengthBytes, revision, expiresAtMs, chainStartBytes, chainBytes } = location;
  return { segmentId, offsetBytes, lengthBytes, revision, expiresAtMs, chainStartBytes, chainBytes };
}

async function written(entries: Array<[string, EntryLocation]>, blocks: Array<[string, LogBlockLocation]>, position = { segmentId: 9, offsetBytes: 4096, maxRevision: 2 ** 40 }): Promise<Buffer> {
  const fileSystem = new CrashFileSystem();
  await fileSystem.mkdir('/d');
  await writeHint(fileSystem, '/d', position, entries, blocks);
  return fileSystem.readFile('/d/index.hint');
}

test('a checkpoint round-trips keys sharing prefixes or not, expiries, references, objects, chains and blocks, with numbers up to 2^53 - 1', async () => {
  const seed = testSeed('hint round trip');
  const next = random(seed);
  const keys = new Set<string>(['', 'a', 'ab', 'abc', 'abd', 'b', 'b\u00ff\u0000', 'user:000123', 'user:000124', 'user:0001240', 'z'.repeat(3000)]);
  while (keys.size < 2000) {
    const length = Math.floor(next() * 24);
    let key = next() < 0.5 ? 'key-' : '';
    // Mostly digits (long shared prefixes), sometimes any byte.
    for (let index = 0; index < length; index++) key += String.fromCharCode(next() < 0.8 ? 48 + Math.floor(next() * 10) : Math.floor(next() * 256));
    keys.add(key);
  }
  const big = () => (next() < 0.1 ? Number.MAX_SAFE_INTEGER - Math.floor(next() * 1000) : Math.floor(next() * 2 ** (1 + Math.floor(next() * 52))));
  const entries: Array<[string, EntryLocation]> = [...keys].sort().map((key) => {
    const kind = next();
    const location: EntryLocation = { segmentId: big(), offsetBytes: big(), lengthBytes: big(), revision: big(), expiresAtMs: next() < 0.3 ? 1 + Math.floor(next() * 2 ** 45) : undefined, verifiedKey: undefined };
    if (kind < 0.2) location.reference = {} as ValueReference;
    else if (kind < 0.4) location.object = {} as ObjectManifest;
    if (kind >= 0.3 && kind < 0.4) {
      location.offsetBytes = 1_000_000 + Math.floor(next() * 2 ** 40);
      location.chainStartBytes = Math.floor(next() * 500_000);
      location.chainBytes = 1 + Math.floor(next() * 400_000);
    }
    return [key, location];
  });
  const blocks: Array<[string, LogBlockLocation]> = Array.from({ length: 50 }, (_, index) => [
    Buffer.alloc(32, index).toString('hex'),
    { segmentId: big(), offsetBytes: big(), lengthBytes: big(), revision: big() },
  ]);
  const bytes = await written(entries, blocks);
  assert.equal(bytes.readUInt16LE(8), HINT_VERSION);
  const hint = decodeHint(bytes, 0);
  if (typeof hint === 'string') assert.fail(hint);
  assert.deepEqual(hint.keys, entries.map(([key]) => key));
  assert.deepEqual(hint.locations.map(stored), entries.map(([, location]) => stored(location)));
  assert.deepEqual(hint.referencePositions, entries.flatMap(([, location], index) => (location.reference !== undefined ? [index] : [])));
  assert.deepEqual(hint.objectPositions, entries.flatMap(([, location], index) => (location.object !== undefined ? [index] : [])));
  assert.deepEqual(hint.blocks, blocks);
  assert.deepEqual(hint.position, { segmentId: 9, offsetBytes: 4096, maxRevision: 2 ** 40 });
  // Entries that expired by the decoder's clock are left out (inline values only).
  const later = decodeHint(bytes, Number.MAX_SAFE_INTEGER);
  if (typeof later === 'string') assert.fail(later);
  assert.deepEqual(later.keys, entries.filter(([, location]) => location.expiresAtMs === undefined || location.reference !== undefined || location.object !== undefined).map(([key]) => key));
});

test('a checkpoint of sorted short keys takes under half the bytes per key that version 2 did (37 for a 14-byte key)', async () => {
  const entries: Array<[string, EntryLocation]> = [];
  for (let index = 0; index < 100_000; index++) {
    entries.push([`key-${String(index).padStart(10, '0')}`, { segmentId: 1 + Math.floor(index / 50_000), offsetBytes: 32 + (index % 50_000) * 54, lengthBytes: 54, revision: index + 1, expiresAtMs: undefined, verifiedKey: undefined }]);
  }
  const bytes = await written(entries, []);
  const perKey = (bytes.length - 44) / entries.length;
  assert.ok(perKey < 16, `${perKey} bytes per key`);
  const hint = decodeHint(bytes, 0);
  if (typeof hint === 'string') assert.fail(hint);
  assert.equal(hint.keys[99_999], 'key-0000099999');
  assert.equal(hint.locations[99_999]?.offsetBytes, 32 + 49_999 * 54);
});

test('a version 2 checkpoint (fixed fields, keys whole) written by an earlier silt still loads', () => {
  // Written by silt at 48136ed: four keys (an expiry, a reference, an object, a chain head) and two blocks.
  const bytes = Buffer.from(
    '53494c54484e54000200000002000000840300000000000009000000000000000600000027dbbea00500000100000020000000280000000100000000000000616c70686108000301000000480000002c010000020000000000000000d8c32cbb030000616c70686162657404000402000000200000005a00000007000000000000006265746105001402000000f40100003c00000009000000000000007a0000009600000067616d6d6120000801000000900100004c0400000300000000000000010101010101010101010101010101010101010101010101010101010101010120000802000000bc02000034080000080000000000000002020202020202020202020202020202020202020202020202020202020202028e0921a9',
    'hex',
  );
  const hint = decodeHint(bytes, 0);
  if (typeof hint === 'string') assert.fail(hint);
  assert.deepEqual(hint.keys, ['alpha', 'alphabet', 'beta', 'gamma']);
  assert.deepEqual(hint.locations.map(stored), [
    { segmentId: 1, offsetBytes: 32, lengthBytes: 40, revision: 1, expiresAtMs: undefined, chainStartBytes: undefined, chainBytes: undefined },
    { segmentId: 1, offsetBytes: 72, lengthBytes: 300, revision: 2, expiresAtMs: 4102444800000, chainStartBytes: undefined, chainBytes: undefined },
    { segmentId: 2, offsetBytes: 32, lengthBytes: 90, revision: 7, expiresAtMs: undefined, chainStartBytes: undefined, chainBytes: undefined },
    { segmentId: 2, offsetBytes: 500, lengthBytes: 60, revision: 9, expiresAtMs: undefined, chainStartBytes: 122, chainBytes: 150 },
  ]);
  assert.deepEqual(hint.referencePositions, [1]);
  assert.deepEqual(hint.objectPositions, [2, 3]);
  assert.deepEqual(hint.blocks, [
    [Buffer.alloc(32, 1).toString('hex'), { segmentId: 1, offsetBytes: 400, lengthBytes: 1100, revision: 3 }],
    [Buffer.alloc(32, 2).toString('hex'), { segmentId: 2, offsetBytes: 700, lengthBytes: 2100, revision: 8 }],
  ]);
  assert.deepEqual(hint.position, { segmentId: 2, offsetBytes: 900, maxRevision: 9 });
});
