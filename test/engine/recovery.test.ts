/**
 * Damage at every byte: a torn tail at every offset of the last segment, and a bit flip at every
 * byte of every file of a small store. Never a wrong value; tail damage is dropped and reported;
 * damage elsewhere is CORRUPTION.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { open, SiltError } from '../../src/index.js';
import { checkEntry, checksum, decodeTrailer, encodeEntry, entryLength, EntryType, FORMAT_VERSION, SEGMENT_HEADER_BYTES, SEGMENT_TRAILER_BYTES } from '../../src/log/format.js';
import { endOfNonZero } from '../../src/log/segment-reader.js';
import { PREALLOCATE_STEP_BYTES } from '../../src/log/segment-writer.js';
import { applyToModel, issue, type ModelOperation } from './workload.js';

async function writeFile(fileSystem: CrashFileSystem, path: string, bytes: Buffer): Promise<void> {
  const handle = await fileSystem.open(path, 'overwrite');
  await handle.write(bytes, 0, bytes.length, 0);
  await handle.close();
}

/** Operations that each write exactly one record (no delete of an absent key). */
function operations(count: number): ModelOperation[] {
  const result: ModelOperation[] = [];
  for (let index = 0; index < count; index++) {
    // Deletes name keys the puts before them wrote (index - 2 and index - 3 are puts).
    if (index % 5 === 4) result.push({ type: 'delete', key: `k${(index - 2) % 7}` });
    else if (index % 5 === 3) result.push({ type: 'batch', operations: [{ type: 'put', key: `b${index}`, value: `batch-${index}` }, { type: 'delete', key: `k${(index - 3) % 7}` }] });
    else result.push({ type: 'put', key: `k${index % 7}`, value: `value-${index}` });
  }
  return result;
}

function modelAfter(list: ModelOperation[], count: number): Map<string, string> {
  const model = new Map<string, string>();
  for (const operation of list.slice(0, count)) applyToModel(model, operation);
  return model;
}

async function build(list: ModelOperation[], segmentBytes: number): Promise<CrashFileSystem> {
  const fileSystem = new CrashFileSystem();
  // No background compaction: the files are the log as written, every segment of it.
  const db = await open('/db', { fileSystem, segmentBytes, compaction: false });
  for (const operation of list) await issue(db, operation);
  await db.close();
  return fileSystem;
}

test('a torn tail at every byte offset of the last segment keeps exactly the complete records', async () => {
  const list = operations(30);
  const original = await build(list, 1 << 20);
  const files = original.dump();
  const segmentPath = [...files.keys()].find((path) => path.endsWith('.log')) as string;
  const segment = files.get(segmentPath) as Buffer;
  const recordEnds: number[] = [];
  for (let cursor = SEGMENT_HEADER_BYTES; cursor < segment.length; ) {
    const check = checkEntry(segment, cursor);
    assert.ok(check.ok);
    cursor += check.lengthBytes;
    recordEnds.push(cursor);
  }
  assert.equal(recordEnds.length, list.length);
  let cuts = 0;
  for (let cut = 0; cut <= segment.length; cut++) {
    for (const keepCheckpoint of [false, true]) {
      const fileSystem = original.crash({ unsynced: 'keep' });
      await writeFile(fileSystem, segmentPath, segment.subarray(0, cut));
      if (!keepCheckpoint) await fileSystem.unlink('/db/index.hint');
      const db = await open('/db', { fileSystem });
      const complete = recordEnds.filter((end) => end <= cut).length;
      const validEnd = cut < SEGMENT_HEADER_BYTES ? 0 : complete === 0 ? SEGMENT_HEADER_BYTES : (recordEnds[complete - 1] as number);
      const state = new Map<string, string>();
      for await (const entry of db.entries()) state.set(entry.key.toString(), entry.value.toString());
      assert.deepEqual(state, modelAfter(list, complete), `cut at ${cut}`);
      // Dropped: the bytes past the valid end up to the last non-zero one (trailing zeros are
      // a preallocated segment's, not data).
      assert.equal(db.stats().recovery.droppedBytes, endOfNonZero(segment.subarray(0, cut), validEnd) - validEnd, `cut at ${cut}`);
      // The store goes on from the cut: a new write lands and reads back after reopen.
      await db.put('after', `cut-${cut}`);
      await db.close();
      const again = await open('/db', { fileSystem });
      assert.equal((await again.get('after'))?.toString(), `cut-${cut}`);
      await again.close();
      cuts++;
    }
  }
  console.log(`# torn tails tried: ${cuts}`);
});

test('a bit flip at every byte of every file never yields a wrong value', async () => {
  const list = operations(60);
  const original = await build(list, 1024);
  const files = original.dump();
  const finalModel = modelAfter(list, list.length);
  const prefixModels = list.map((_, count) => modelAfter(list, count)).concat([finalModel]);
  const keys = new Set<string>();
  for (const operation of list) {
    if (operation.type === 'batch') for (const inner of operation.operations) keys.add(inner.key);
    else keys.add(operation.key);
  }
  let flips = 0;
  let detected = 0;
  const paths = [...files.keys()].filter((path) => !path.endsWith('LOCK'));
  assert.ok(paths.filter((path) => path.endsWith('.log')).length >= 3, 'want sealed segments too');
  for (const path of paths) {
    const bytes = files.get(path) as Buffer;
    for (let position = 0; position < bytes.length; position++) {
      flips++;
      const damaged = Buffer.from(bytes);
      damaged[position] = (damaged[position] as number) ^ 0x20;
      const fileSystem = original.crash({ unsynced: 'keep' });
      await writeFile(fileSystem, path, damaged);
      const context = `flip at ${path}:${position}`;
      let db;
      try {
        db = await open('/db', { fileSystem, readOnly: true });
      } catch (error) {
        assert.ok(error instanceof SiltError && error.code === 'CORRUPTION', `${context}: open threw ${String(error)}`);
        detected++;
        continue;
      }
      const seen = new Map<string, string | undefined>();
      let corruptReads = 0;
      for (const key of keys) {
        try {
          seen.set(key, (await db.get(key))?.toString());
        } catch (error) {
          assert.ok(error instanceof SiltError && error.code === 'CORRUPTION', `${context}: get threw ${String(error)}`);
          corruptReads++;
        }
      }
      const stats = db.stats();
      const verified = await db.verify();
      await db.close();
      // Every value read must belong to one state of the history (the whole of it unless the
      // tail was dropped); keys whose read reported CORRUPTION are not compared.
      const candidates = stats.recovery.droppedBytes > 0 ? prefixModels : [finalModel];
      const consistent = candidates.some((model) => [...seen].every(([key, value]) => model.get(key) === value));
      assert.ok(consistent, `${context}: a read returned a value from no state of the history`);
      // And verify() finds every flip, live data or not.
      assert.equal(verified.ok, false, `${context}: verify() missed it`);
      if (corruptReads > 0 || stats.recovery.droppedBytes > 0 || stats.recovery.checkpointProblem !== undefined) detected++;
    }
  }
  console.log(`# bit flips tried: ${flips}; noticed by open or a read: ${detected}; all found by verify()`);
});

/** The byte offsets where the records of a segment end (it must hold only whole records). */
function recordEndsOf(segment: Buffer): number[] {
  const ends: number[] = [];
  for (let cursor = SEGMENT_HEADER_BYTES; cursor < segment.length; ) {
    const check = checkEntry(segment, cursor);
    if (!check.ok) break;
    cursor += check.lengthBytes;
    ends.push(cursor);
  }
  return ends;
}

test('the active segment is preallocated while written, exact once closed, and a crash in its zeros drops nothing', async () => {
  const fileSystem = new CrashFileSystem();
  const db = await open('/db', { fileSystem });
  for (let index = 0; index < 20; index++) await db.put(`k${index}`, `v${index}`);
  const segmentPath = [...fileSystem.dump().keys()].find((path) => path.endsWith('.log')) as string;
  const written = fileSystem.dump().get(segmentPath) as Buffer;
  const dataEnd = recordEndsOf(written).at(-1) as number;
  // Extended ahead of its end (a hole), so an fdatasync does not commit a new size each time.
  assert.equal((await fileSystem.stat(segmentPath)).sizeBytes, SEGMENT_HEADER_BYTES + PREALLOCATE_STEP_BYTES);
  assert.equal(endOfNonZero(written, 0), dataEnd);

  // Power loss now: every acknowledged record is back, the zeros are not reported as dropped,
  // and the segment is preallocated again for the writes that follow.
  const crashed = fileSystem.crash({ unsynced: 'drop' });
  const reopened = await open('/db', { fileSystem: crashed });
  assert.equal(reopened.stats().recovery.droppedBytes, 0);
  for (let index = 0; index < 20; index++) assert.equal((await reopened.get(`k${index}`))?.toString(), `v${index}`);
  assert.equal((await crashed.stat(segmentPath)).sizeBytes, dataEnd + PREALLOCATE_STEP_BYTES);
  await reopened.put('after', 'crash');
  await reopened.close();
  // A clean close cuts the zeros: the file holds exactly its records.
  const closed = crashed.dump().get(segmentPath) as Buffer;
  assert.equal(closed.length, recordEndsOf(closed).at(-1));

  // A segment larger than one step grows by steps and is sealed at exactly its bytes.
  const small = new CrashFileSystem();
  const rolled = await open('/db', { fileSystem: small, segmentBytes: 64 * 1024 });
  for (let index = 0; index < 40; index++) await rolled.put(`big${index}`, Buffer.alloc(4000, index));
  const logs = [...small.dump()].filter(([path]) => path.endsWith('.log'));
  assert.ok(logs.length >= 2, 'the log rolled');
  for (const [path, bytes] of logs.slice(0, -1)) {
    // Sealed: records, then the footer and its trailer as the file's last bytes (no preallocation after them).
    const footerAt = decodeTrailer(bytes.subarray(bytes.length - SEGMENT_TRAILER_BYTES)) as number;
    const footer = checkEntry(bytes, footerAt);
    assert.ok(footer.ok && footer.type === EntryType.FOOTER, path);
    assert.equal(footerAt + footer.lengthBytes + SEGMENT_TRAILER_BYTES, bytes.length, path);
  }
  await rolled.close();
});

/** A store without checkpoints holding a = 1 and b = 2, cleanly closed, and its one segment's path. */
async function closedStore(): Promise<{ fileSystem: CrashFileSystem; segmentPath: string }> {
  const fileSystem = new CrashFileSystem();
  const db = await open('/db', { fileSystem, checkpoint: false });
  await db.put('a', '1');
  await db.put('b', '2');
  await db.close();
  const segmentPath = [...fileSystem.dump().keys()].find((path) => path.endsWith('.log')) as string;
  return { fileSystem, segmentPath };
}

test('a stale record after a hole in the preallocated tail is dropped, reported, and never read back once new records reach it', async () => {
  // No checkpoints: one covering 'b' would vouch for it (a checkpoint only ever covers durable records).
  const { fileSystem, segmentPath } = await closedStore();
  const segment = fileSystem.dump().get(segmentPath) as Buffer;
  const [endA, endB] = recordEndsOf(segment) as [number, number];
  const recordB = segment.subarray(endA, endB);
  // What a power loss can leave when the pages of a write reach the disk out of order: the page
  // holding 'b' persisted, the one before it did not (a hole of zeros), past the valid end.
  const gapBytes = 4096;
  const torn = Buffer.alloc(endA + gapBytes + recordB.length);
  segment.copy(torn, 0, 0, endA);
  recordB.copy(torn, endA + gapBytes);
  await writeFile(fileSystem, segmentPath, torn);
  const reopened = await open('/db', { fileSystem, checkpoint: false });
  assert.equal(reopened.stats().recovery.droppedBytes, gapBytes + recordB.length);
  assert.equal(await reopened.get('b'), undefined);
  // One record that ends exactly where the stale 'b' starts, then a power loss: were the stale
  // bytes still there, 'b' would now be the next valid record of the log.
  const overheadBytes = recordB.length - 2;
  await reopened.put('c', Buffer.alloc(gapBytes - overheadBytes - 1, 'c'));
  const crashed = fileSystem.crash({ unsynced: 'drop' });
  const again = await open('/db', { fileSystem: crashed, checkpoint: false });
  assert.equal((await again.get('c'))?.length, gapBytes - overheadBytes - 1);
  assert.equal(await again.get('b'), undefined, 'a record the log had dropped came back');
  assert.equal((await again.get('a'))?.toString(), '1');
  await again.close();
  await reopened.close();
});

/** A record of `type` for `key` whose CRC holds (as a silt that knows the type would write it). */
function wholeRecord(type: number, key: string, value: Buffer, flags = 0): Buffer {
  const bytes = Buffer.alloc(entryLength(key, value, false));
  encodeEntry(bytes, 0, { type: EntryType.PUT, key, value, revision: 1000 });
  bytes[8] = type;
  bytes[9] = flags;
  bytes.writeUInt32LE(checksum(bytes.subarray(4)), 0);
  return bytes;
}

test('a whole record this silt cannot read at the end of the log (a newer silt wrote it) makes open refuse with CORRUPTION and leaves the file as it is; a torn one is cut as before', async () => {
  const cases: Array<[string, Buffer]> = [
    ['an unknown type', wholeRecord(12, 'x', Buffer.from('newer'))],
    ['unknown flags', wholeRecord(EntryType.PUT, 'x', Buffer.from('newer'), 0x80)],
    ['a value reference this silt cannot decode', wholeRecord(EntryType.PUT_REFERENCE, 'x', Buffer.from('not a reference'))],
  ];
  for (const [what, record] of cases) {
    const { fileSystem, segmentPath } = await closedStore();
    const segment = Buffer.concat([fileSystem.dump().get(segmentPath) as Buffer, record]);
    await writeFile(fileSystem, segmentPath, segment);
    for (const readOnly of [false, true]) {
      await assert.rejects(
        open('/db', { fileSystem, checkpoint: false, readOnly }),
        (error: unknown) => error instanceof SiltError && error.code === 'CORRUPTION' && /cannot read/.test(error.message),
        `${what}, readOnly ${readOnly}`,
      );
    }
    assert.ok((fileSystem.dump().get(segmentPath) as Buffer).equals(segment), `${what}: the segment was changed`);
    // The same record torn (one byte of it lost to a power loss: its CRC fails) is a damaged tail.
    const torn = Buffer.from(segment);
    torn[torn.length - 1] = (torn[torn.length - 1] as number) ^ 0xff;
    await writeFile(fileSystem, segmentPath, torn);
    const reopened = await open('/db', { fileSystem, checkpoint: false });
    assert.equal(reopened.stats().recovery.droppedBytes, record.length, what);
    assert.equal((await reopened.get('b'))?.toString(), '2');
    await reopened.close();
  }
});

test('a last segment whose whole header is of another format version is refused with CORRUPTION, not removed as a creation cut short', async () => {
  const { fileSystem, segmentPath } = await closedStore();
  const segment = Buffer.from(fileSystem.dump().get(segmentPath) as Buffer);
  segment.writeUInt16LE(FORMAT_VERSION + 1, 8);
  segment.writeUInt32LE(checksum(segment.subarray(0, 28)), 28);
  await writeFile(fileSystem, segmentPath, segment);
  await assert.rejects(open('/db', { fileSystem, checkpoint: false }), (error: unknown) => error instanceof SiltError && error.code === 'CORRUPTION' && /format version 2/.test(error.message));
  assert.ok(fileSystem.dump().get(segmentPath)?.equals(segment), 'the segment was changed or removed');
  // A header a crash cut short (zeros: the name reached the disk before the header) is still removed.
  await writeFile(fileSystem, segmentPath, Buffer.alloc(SEGMENT_HEADER_BYTES));
  const reopened = await open('/db', { fileSystem, checkpoint: false });
  assert.equal(await reopened.get('a'), undefined);
  await reopened.close();
});

test('a segment roll writes a checkpoint only once the log has grown by twice what one would take: many keys in small segments cost checkpoints of at most about half the log, and a crash replays at most about twice a checkpoint', async () => {
  const fileSystem = new CrashFileSystem();
  const segmentBytes = 8 * 1024;
  const keys = 1000;
  const db = await open('/db', { fileSystem, segmentBytes, compaction: false });
  // A checkpoint of these keys (about 15 bytes each) spans a few segments of their records; the
  // rounds of overwrites grow the log, not the index.
  for (let round = 0; round < 8; round++) {
    for (let start = 0; start < keys; start += 50) {
      await db.batch(Array.from({ length: 50 }, (_, index) => ({ type: 'put' as const, key: `key-${String(start + index).padStart(8, '0')}`, value: `${round}`.repeat(10) })));
    }
  }
  const stats = db.stats();
  assert.ok(stats.segments.count >= 30, `${stats.segments.count} segments`);
  // Checkpoints still come, once the log has grown enough since the last.
  assert.ok(stats.checkpoints.written >= 2, JSON.stringify(stats.checkpoints));
  // One per roll would have written about nine times the log here.
  assert.ok(stats.checkpoints.bytesWritten <= 0.75 * stats.writes.logBytes, `checkpoints ${stats.checkpoints.bytesWritten} bytes, log ${stats.writes.logBytes}`);
  // A crash now (every write was acknowledged in 'sync' mode): everything is back, from the last
  // checkpoint and a replay of no more than about twice its size.
  const crashed = fileSystem.crash({ unsynced: 'drop' });
  const checkpointBytes = (await crashed.stat('/db/index.hint')).sizeBytes;
  // Reopened as it was written: background compaction would write checkpoints of its own.
  const reopened = await open('/db', { fileSystem: crashed, segmentBytes, compaction: false });
  const recovery = reopened.stats().recovery;
  assert.ok(recovery.usedCheckpoint);
  const perEntry = checkpointBytes / stats.checkpoints.lastEntryCount;
  assert.ok(recovery.replayedBytes <= 2 * perEntry * keys + 2 * segmentBytes, `replayed ${recovery.replayedBytes} bytes; checkpoint ${checkpointBytes} bytes`);
  assert.equal(reopened.stats().keys, keys);
  for (const index of [0, 567, keys - 1]) assert.equal((await reopened.get(`key-${String(index).padStart(8, '0')}`))?.toString(), '7'.repeat(10));
  assert.ok((await reopened.verify()).ok);
  // What the reopen replayed counts as log written since the checkpoint: writes after it bring
  // the next checkpoint sooner, so a second crash does not replay the first one's share again.
  // (About as much again as the reopen replayed: together, more than the bound.)
  for (let start = 0; start < 1.5 * keys; start += 50) {
    await reopened.batch(Array.from({ length: 50 }, (_, index) => ({ type: 'put' as const, key: `key-${String((start + index) % keys).padStart(8, '0')}`, value: 'x'.repeat(10) })));
  }
  assert.ok(recovery.replayedBytes + reopened.stats().writes.logBytes > 2 * perEntry * keys + 2 * segmentBytes);
  const again = await open('/db', { fileSystem: crashed.crash({ unsynced: 'drop' }), segmentBytes, compaction: false });
  assert.ok(again.stats().recovery.replayedBytes <= 2 * perEntry * keys + 2 * segmentBytes, `replayed ${again.stats().recovery.replayedBytes} bytes after the second crash`);
  assert.equal((await again.get('key-00000999'))?.toString(), 'x'.repeat(10));
  await again.close();
  await reopened.close();
});
