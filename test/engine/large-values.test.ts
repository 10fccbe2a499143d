/**
 * Large values in the block store: model test with refcounts checked from scratch after every
 * step, corruption, putStream abort and error paths, bad input, dedup, bounded memory.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { NodeFileSystem, open, SiltError, type Store } from '../../src/index.js';
import type { FileHandle, OpenMode, OpenOptions } from '../../src/fs/types.js';
import { checkLargeValuesAfterCrash, collect, Gate, random, seededBytes as bytes, temporaryDirectory, testSeed } from '../helpers.js';

const SMALL = { valueThreshold: 1000, blockBytes: 4096 };

function code(error: unknown): string | undefined {
  return error instanceof SiltError ? error.code : undefined;
}

async function assertVerified(db: Store, context: string): Promise<void> {
  const result = await db.verify();
  assert.ok(result.ok, `${context}: ${JSON.stringify(result.problems.slice(0, 5))}`);
}

test('model: small and large values, duplicates, overwrites, deletes, reopen; refcounts match a recount after every step', async (t) => {
  const seed = testSeed('large values model');
  const next = random(seed);
  const directory = temporaryDirectory(t);
  // The block cache off, small enough to evict all the time, or the default, by seed.
  const options = { ...SMALL, blockCacheBytes: [0, 40_000, 64 * 1024 * 1024][seed % 3] };
  let db = await open(directory, options);
  const model = new Map<string, Buffer>();
  // A few contents shared between keys, so that blocks are deduplicated and shared.
  const contents = [bytes(seed, 10_000), bytes(seed + 1, 4096 * 3), bytes(seed + 2, 500), bytes(seed + 3, 5000)];
  for (let step = 0; step < 150; step++) {
    const key = `k${Math.floor(next() * 12)}`;
    const roll = next();
    const context = `seed ${seed} step ${step}`;
    if (roll < 0.45) {
      const value = next() < 0.6 ? (contents[Math.floor(next() * contents.length)] as Buffer) : bytes(seed * 31 + step, Math.floor(next() * 20_000));
      await db.put(key, value);
      model.set(key, value);
    } else if (roll < 0.6) {
      const value = bytes(seed * 17 + step, Math.floor(next() * 15_000));
      const result = await db.putStream(key, Readable.from([value.subarray(0, 100), value.subarray(100)]));
      assert.equal(result.size, value.length, context);
      assert.equal(result.digest, createHash('sha256').update(value).digest('hex'), context);
      model.set(key, value);
    } else if (roll < 0.75) {
      await db.delete(key);
      model.delete(key);
    } else if (roll < 0.85) {
      const value = contents[Math.floor(next() * contents.length)] as Buffer;
      await db.batch([
        { type: 'put', key, value },
        { type: 'put', key: `${key}-copy`, value },
      ]);
      model.set(key, value);
      model.set(`${key}-copy`, value);
    } else if (roll < 0.95) {
      const expected = model.get(key);
      const actual = await db.get(key);
      assert.equal(actual?.toString('hex'), expected?.toString('hex'), context);
      if (expected !== undefined && expected.length > 0) {
        const start = Math.floor(next() * expected.length);
        const end = start + Math.floor(next() * (expected.length - start));
        const ranged = Buffer.concat(await collect(db.createReadStream(key, { start, end })));
        assert.ok(ranged.equals(expected.subarray(start, end + 1)), `${context}: range ${start}-${end}`);
      }
    } else {
      await db.close();
      db = await open(directory, options);
    }
    await assertVerified(db, context);
  }
  for (const [key, value] of model) assert.ok((await db.get(key))?.equals(value), key);
  // Shared content is stored once: writing it under one more key adds no block.
  const storedBefore = db.stats().blocks.storedBytes;
  await db.put('one-more-copy', contents[0] as Buffer);
  await db.put('and-another', contents[0] as Buffer);
  assert.ok(db.stats().blocks.storedBytes - storedBefore <= (contents[0] as Buffer).length, 'a second copy stored its blocks again');
  await db.close();
});

test('content written twice under different keys is stored once', async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, SMALL);
  const value = bytes(7, 4096 * 10);
  await Promise.all(Array.from({ length: 8 }, (_, index) => db.put(`copy-${index}`, value)));
  const stats = db.stats().blocks;
  assert.equal(stats.count, 10);
  assert.equal(stats.storedBytes, value.length);
  assert.equal(stats.logicalBytes, value.length * 8);
  assert.equal(readdirSync(join(directory, 'blocks')).length, 10);
  await assertVerified(db, 'after concurrent identical writes');
  await db.close();
});

test('a flipped byte in a block makes reads of that value fail with CORRUPTION; other keys still read', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, SMALL);
  const damagedValue = bytes(1, 9000);
  const healthyValue = bytes(2, 9000);
  await db.put('damaged', damagedValue);
  await db.put('healthy', healthyValue);
  await db.put('small', 'inline');
  await db.close();
  const blockName = `${createHash('sha256').update(damagedValue.subarray(4096, 8192)).digest('hex')}.blk`;
  const blockPath = join(directory, 'blocks', blockName);
  const file = readFileSync(blockPath);
  file[100] = (file[100] as number) ^ 1;
  writeFileSync(blockPath, file);
  db = await open(directory, SMALL);
  await assert.rejects(db.get('damaged'), (error) => code(error) === 'CORRUPTION');
  assert.throws(() => db.getSync('damaged'), (error) => code(error) === 'CORRUPTION');
  await assert.rejects(collect(db.createReadStream('damaged', { start: 5000, end: 5001 })), (error) => code(error) === 'CORRUPTION');
  // A range that does not touch the damaged block still reads.
  assert.ok(Buffer.concat(await collect(db.createReadStream('damaged', { start: 0, end: 4095 }))).equals(damagedValue.subarray(0, 4096)));
  assert.ok((await db.get('healthy'))?.equals(healthyValue));
  assert.equal((await db.get('small'))?.toString(), 'inline');
  const result = await db.verify();
  assert.equal(result.ok, false);
  assert.ok(result.problems.some((problem) => problem.kind === 'block' && problem.where.includes(blockName.slice(0, 16))));
  await db.close();
});

test('a block file cut short, grown by a byte, with a wrong length field or dirty padding reads as CORRUPTION, never as bytes; version 1 files still read', async (t) => {
  const directory = temporaryDirectory(t);
  const value = bytes(3, 9000);
  let db = await open(directory, SMALL);
  await db.put('k', value);
  await db.close();
  // The second of the value's three blocks (4096 bytes of data after a 16-byte header).
  const blockPath = join(directory, 'blocks', `${createHash('sha256').update(value.subarray(4096, 8192)).digest('hex')}.blk`);
  const original = readFileSync(blockPath);
  const lengthField = Buffer.from(original);
  lengthField.writeUInt32LE(4095, 12);
  // Version 2: header, 4096 bytes of data, zeros up to 8192.
  assert.equal(original.readUInt16LE(8), 2);
  assert.equal(original.length, 8192);
  const dirtyPadding = Buffer.from(original);
  dirtyPadding[16 + 4096 + 5] = 1;
  const damages: Array<[string, Buffer]> = [
    ['cut by a byte', original.subarray(0, original.length - 1)],
    ['cut inside the header', original.subarray(0, 10)],
    ['cut inside the data', original.subarray(0, 16 + 4000)],
    ['without its padding', original.subarray(0, 16 + 4096)],
    ['grown by a byte', Buffer.concat([original, Buffer.from([0])])],
    ['length field off by one', lengthField],
    ['a padding byte not zero', dirtyPadding],
  ];
  for (const [what, damaged] of damages) {
    writeFileSync(blockPath, damaged);
    db = await open(directory, SMALL);
    assert.throws(() => db.getSync('k'), (error) => code(error) === 'CORRUPTION', `getSync, ${what}`);
    await assert.rejects(collect(db.createReadStream('k', { start: 5000, end: 5001 })), (error) => code(error) === 'CORRUPTION', `stream, ${what}`);
    assert.equal((await db.verify()).ok, false, `verify, ${what}`);
    await db.close();
  }
  writeFileSync(blockPath, original);
  db = await open(directory, SMALL);
  assert.ok(db.getSync('k')?.equals(value));
  await db.close();
  // A version 1 file (no padding: what earlier builds wrote) of the same block reads, and checks.
  const versionOne = Buffer.from(original.subarray(0, 16 + 4096));
  versionOne.writeUInt16LE(1, 8);
  writeFileSync(blockPath, versionOne);
  db = await open(directory, SMALL);
  assert.ok(db.getSync('k')?.equals(value));
  assert.ok(Buffer.concat(await collect(db.createReadStream('k'))).equals(value));
  assert.ok((await db.verify()).ok);
  await db.close();
  writeFileSync(blockPath, Buffer.concat([versionOne, Buffer.alloc(1)]));
  db = await open(directory, SMALL);
  assert.throws(() => db.getSync('k'), (error) => code(error) === 'CORRUPTION', 'a version 1 file grown by a byte');
  await db.close();
});

test('a block file left incomplete under its final name (a crash mid-write) is never trusted: a write of its content writes it again', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, SMALL);
  await db.put('other', bytes(8, 5000));
  await db.close();
  // What a power loss during the block's write can leave: its name durable, half its data.
  const value = bytes(9, 4096);
  const hex = createHash('sha256').update(value).digest('hex');
  const header = Buffer.alloc(16);
  header.write('SILTBLK\0', 0, 'latin1');
  header.writeUInt16LE(1, 8);
  header.writeUInt32LE(value.length, 12);
  writeFileSync(join(directory, 'blocks', `${hex}.blk`), Buffer.concat([header, value.subarray(0, 2000)]));
  db = await open(directory, SMALL);
  // Nothing points at it: counted as incomplete, not a problem.
  const before = await db.verify();
  assert.ok(before.ok, JSON.stringify(before.problems));
  assert.equal(before.incompleteBlocks, 1);
  assert.equal(before.unreferencedBlocks, 1);
  // The same content written now must be written again, not deduplicated against the torn file.
  await db.put('k', value);
  assert.ok(db.getSync('k')?.equals(value));
  await db.close();
  db = await open(directory, SMALL);
  assert.ok((await db.get('k'))?.equals(value));
  const after = await db.verify();
  assert.ok(after.ok, JSON.stringify(after.problems));
  assert.equal(after.incompleteBlocks, 0);
  // A complete unreferenced file is distrusted all the same (it cannot be told apart without
  // reading it): rewritten, and still read back whole.
  await db.delete('k');
  await db.close();
  db = await open(directory, SMALL);
  await db.put('k2', value);
  assert.ok((await db.get('k2'))?.equals(value));
  assert.equal(db.stats().blocks.written, 1);
  await db.close();
});

test('a block carried in the log whose own file a crash left empty: referenced, yet not trusted (verify counts it incomplete; a write of its content writes it again)', async (t) => {
  // Found by the kill -9 soak: an object carries a block in the log, a put of the same content
  // is writing its file when the process dies, and at open the block is referenced (the log's
  // copy), so the empty file under its name passed as complete.
  const directory = temporaryDirectory(t);
  const options = { valueThreshold: 4096, blockBytes: 8192 };
  const content = bytes(31, 8192);
  const hex = createHash('sha256').update(content).digest('hex');
  let db = await open(directory, options);
  await db.writeAt('obj', 0, content);
  assert.equal(db.stats().objects.inlineSlices, 1, 'the slice is carried in the log');
  await db.close();
  writeFileSync(join(directory, 'blocks', `${hex}.blk`), Buffer.alloc(0));
  db = await open(directory, options);
  const before = await db.verify();
  assert.ok(before.ok, JSON.stringify(before.problems));
  assert.equal(before.incompleteBlocks, 1);
  assert.ok((await db.get('obj'))?.equals(content));
  await db.put('v', content);
  assert.equal(readFileSync(join(directory, 'blocks', `${hex}.blk`)).length, 16 + 8192 + 4080, 'the file is written again, whole');
  assert.equal(db.stats().blocks.written, 1);
  await db.delete('obj');
  await db.close();
  db = await open(directory, options);
  assert.ok((await db.get('v'))?.equals(content));
  const after = await db.verify();
  assert.ok(after.ok && after.incompleteBlocks === 0, JSON.stringify(after));
  await db.close();
});

/** Claims direct I/O on every open that asks for it, and fails every write through such a handle with EINVAL. */
class RefusingDirectWrites extends NodeFileSystem {
  directOpens = 0;
  refusedWrites = 0;

  override async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
    const handle = await super.open(path, mode);
    if (options?.direct !== true) return handle;
    this.directOpens++;
    const refusing = Object.create(handle) as FileHandle & { direct: boolean };
    Object.defineProperty(refusing, 'direct', { value: true });
    refusing.write = async () => {
      this.refusedWrites++;
      throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
    };
    return refusing;
  }
}

test('a direct block write refused with EINVAL falls back to buffered writes, for good, and loses nothing', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new RefusingDirectWrites();
  let db = await open(directory, { ...SMALL, fileSystem });
  const values = [bytes(21, 9000), bytes(22, 5000), bytes(23, 4096)];
  await db.put('k0', values[0] as Buffer);
  // The first value's blocks are written at once: each was refused once, then written buffered.
  const directOpens = fileSystem.directOpens;
  assert.ok(directOpens >= 1 && directOpens <= 3);
  assert.equal(fileSystem.refusedWrites, directOpens);
  await db.put('k1', values[1] as Buffer);
  await db.put('k2', values[2] as Buffer);
  assert.equal(fileSystem.directOpens, directOpens, 'a refusal turns direct writes off for good');
  for (const [index, value] of values.entries()) assert.ok(db.getSync(`k${index}`)?.equals(value));
  assert.equal(db.stats().blocks.written, 3 + 2 + 1);
  await db.close();
  db = await open(directory, SMALL);
  for (const [index, value] of values.entries()) assert.ok((await db.get(`k${index}`))?.equals(value));
  const verified = await db.verify();
  assert.ok(verified.ok && verified.incompleteBlocks === 0, JSON.stringify(verified));
  await db.close();
});

test('power loss while large values are written at once: a block file whose name became durable before its data is never trusted after', async () => {
  const seed = testSeed('large values concurrent power loss');
  // Many blocks beside one: the one-block write syncs the directory while the others' files are being written.
  const values = [bytes(seed, 4096 * 8), bytes(seed + 1, 2000), bytes(seed + 2, 4096 * 5 + 10)];
  const fileSystem = new CrashFileSystem();
  // Orphans stay (minimum age) so that writes after the crash meet them.
  const options = { ...SMALL, fileSystem, gc: { minAgeMs: 3_600_000 } };
  const db = await open('/db', options);
  const points: CrashFileSystem[] = [];
  fileSystem.onSync = () => {
    points.push(fileSystem.crash({ unsynced: 'drop' }));
    points.push(fileSystem.crash({ unsynced: 'tear', seed: seed + points.length }));
  };
  // Each write's blocks are written while the others' are: one write's directory fsync makes
  // the names of another's unsynced files durable.
  await Promise.all(values.map((value, index) => db.put(`a${index}`, value)));
  await Promise.all(values.map((value, index) => db.putStream(`b${index}`, Readable.from([value.subarray(0, 3000), value.subarray(3000)]))));
  fileSystem.onSync = undefined;
  await db.close();
  let incomplete = 0;
  for (const [position, point] of points.entries()) {
    const context = `seed ${seed} crash state ${position}`;
    const reopened = await open('/db', { ...options, fileSystem: point });
    incomplete += await checkLargeValuesAfterCrash(reopened, values, context);
    await reopened.close();
  }
  assert.ok(incomplete > 0, 'no crash state left an incomplete block file under its name: the test lost its point');
  console.log(`# concurrent large-value crash states tried: ${points.length}, incomplete block files met: ${incomplete}`);
});

test('putStream: an aborted signal or a throwing source leaves the key as it was; partial blocks are swept at open', async (t) => {
  const directory = temporaryDirectory(t);
  let db = await open(directory, SMALL);
  await db.put('k', 'previous');
  const controller = new AbortController();
  let produced = 0;
  const endless = async function* () {
    for (;;) {
      produced++;
      if (produced === 10) controller.abort(new Error('stop'));
      yield bytes(produced, 4096);
    }
  };
  await assert.rejects(db.putStream('k', endless(), { signal: controller.signal }), /stop/);
  const failing = async function* () {
    yield bytes(50, 4096);
    yield bytes(51, 4096);
    throw new Error('source broke');
  };
  await assert.rejects(db.putStream('k', failing()), /source broke/);
  const text = Readable.from(['text chunk']);
  await assert.rejects(db.putStream('k', text), (error) => code(error) === 'INVALID_ARGUMENT');
  // A source given up on is not left open (a file's descriptor, a socket): a Readable is
  // destroyed, whether the failure came before its first chunk, while the first ones were read
  // to decide inline or blocks, or after.
  assert.equal(text.destroyed, true, 'a putStream refusing a chunk left its Readable open');
  const file = join(temporaryDirectory(t), 'source');
  writeFileSync(file, bytes(60, 100_000));
  const refused = createReadStream(file);
  await assert.rejects(db.putStream('k', refused, { ifRevision: 999 }), (error) => code(error) === 'CONFLICT');
  assert.equal(refused.destroyed, true, 'a refused putStream left its file stream open');
  const late = Readable.from([bytes(61, 100), 'text after a chunk']);
  await assert.rejects(db.putStream('k', late), (error) => code(error) === 'INVALID_ARGUMENT');
  assert.equal(late.destroyed, true);
  assert.equal((await db.get('k'))?.toString(), 'previous');
  assert.ok(db.stats().blocks.count > 0, 'the aborted streams left blocks behind');
  await db.close();
  // With the default gc.minAgeMs the reopened store lists them and keeps them for now...
  db = await open(directory, SMALL);
  assert.ok(db.stats().blocks.count > 0);
  assert.equal(db.stats().blocks.delayed, db.stats().blocks.count);
  assert.equal(db.stats().blocks.orphansRemovedAtOpen, 0);
  await db.close();
  // ...and once they have waited long enough, the GC pass at open deletes them.
  db = await open(directory, { ...SMALL, gc: { minAgeMs: 0 } });
  assert.equal(db.stats().blocks.count, 0);
  assert.equal(db.stats().blocks.delayed, 0);
  assert.ok(db.stats().blocks.orphansRemovedAtOpen > 0);
  assert.equal(readdirSync(join(directory, 'blocks')).length, 0);
  assert.equal((await db.get('k'))?.toString(), 'previous');
  await assertVerified(db, 'after the sweep');
  await db.close();
});

test('bad input to large-value calls is rejected with a clear code, nothing written', async (t) => {
  const db = await open(temporaryDirectory(t), { ...SMALL, maxValueSize: 10_000 });
  await db.put('k', bytes(3, 5000));
  await assert.rejects(db.put('k', bytes(4, 10_001)), (error) => code(error) === 'TOO_LARGE');
  await assert.rejects(db.putStream('k', [bytes(5, 6000), bytes(6, 6000)]), (error) => code(error) === 'TOO_LARGE');
  await assert.rejects(db.putStream('k', 'not a stream' as unknown as Iterable<Uint8Array>), (error) => code(error) === 'INVALID_ARGUMENT');
  assert.throws(() => db.createReadStream('k', { start: -1 }), (error) => code(error) === 'INVALID_ARGUMENT');
  assert.throws(() => db.createReadStream('k', { start: 1.5 }), (error) => code(error) === 'INVALID_ARGUMENT');
  assert.throws(() => db.createReadStream('k', { start: 5001 }), (error) => code(error) === 'INVALID_ARGUMENT');
  assert.throws(() => db.createReadStream('missing'), (error) => code(error) === 'NOT_FOUND');
  await assert.rejects(db.putStream('k', [bytes(7, 100)], { ifRevision: 999 }), (error) => code(error) === 'CONFLICT');
  assert.equal((await db.get('k'))?.length, 5000);
  assert.equal((await db.stat('k'))?.blocks, 2);
  assert.deepEqual(Buffer.concat(await collect(db.createReadStream('k', { start: 5000 }))), Buffer.alloc(0));
  await db.close();
});

test('putStream and createReadStream work in bounded memory (a value larger than the heap limit)', async (t) => {
  const directory = temporaryDirectory(t);
  const distribution = join(process.cwd(), 'dist/index.js');
  const script = `
    const { open } = await import(${JSON.stringify(distribution)});
    const { createHash } = await import('node:crypto');
    const db = await open(process.argv[1]);
    const megabytes = 160;
    const written = createHash('sha256');
    async function* source() {
      for (let index = 0; index < megabytes * 4; index++) {
        const chunk = Buffer.alloc(256 * 1024, index % 251);
        written.update(chunk);
        yield chunk;
      }
    }
    const result = await db.putStream('huge', source());
    const read = createHash('sha256');
    let size = 0;
    for await (const chunk of db.createReadStream('huge')) { read.update(chunk); size += chunk.length; }
    const expected = written.digest('hex');
    // Peak resident memory of this process (KiB), the source's chunks and the blocks included
    // (VmHWM: resourceUsage().maxRSS would carry over the test process's peak from the fork).
    const { readFileSync } = await import('node:fs');
    const peakKib = Number(/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
    console.log(JSON.stringify({ size, ok: result.digest === expected && read.digest('hex') === expected, maxRssMb: Math.round(peakKib / 1024) }));
    await db.close();
  `;
  const child = spawnSync(process.execPath, ['--max-old-space-size=64', '--input-type=module', '-e', script, directory], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  const report = JSON.parse(child.stdout.trim()) as { size: number; ok: boolean; maxRssMb: number };
  assert.equal(report.size, 160 * 1024 * 1024);
  assert.ok(report.ok, 'digests differ');
  // The heap limit bounds the JavaScript heap only, not the Buffers holding the bytes: the peak
  // resident size is what shows a value held whole (about 100 MiB here streaming 160 MiB or
  // 1 GiB; 250 MiB when putStream kept every chunk it read reachable until close).
  assert.ok(report.maxRssMb < 160, `peak resident memory ${report.maxRssMb} MiB while streaming a 160 MiB value in and out`);
});

test('power loss at every fsync point while large values are written and overwritten: acknowledged values read back whole, no record points at a missing block', async () => {
  const seed = testSeed('large values power loss');
  const next = random(seed);
  type Step = { key: string; value: Buffer | undefined; stream: boolean };
  const shared = [bytes(seed, 9000), bytes(seed + 1, 4096 * 2)];
  const steps: Step[] = [];
  for (let index = 0; index < 14; index++) {
    const key = `k${Math.floor(next() * 4)}`;
    const roll = next();
    if (roll < 0.15) steps.push({ key, value: undefined, stream: false });
    else steps.push({ key, value: roll < 0.45 ? (shared[Math.floor(next() * 2)] as Buffer) : bytes(seed * 13 + index, 1500 + Math.floor(next() * 12_000)), stream: next() < 0.4 });
  }
  const states: Array<Map<string, Buffer>> = [new Map()];
  for (const step of steps) {
    const state = new Map(states.at(-1));
    if (step.value === undefined) state.delete(step.key);
    else state.set(step.key, step.value);
    states.push(state);
  }
  const fileSystem = new CrashFileSystem();
  const options = { ...SMALL, fileSystem, gc: { minAgeMs: 0 } };
  const db = await open('/db', options);
  const points: Array<{ fileSystem: CrashFileSystem; acknowledged: number }> = [];
  let acknowledged = 0;
  fileSystem.onSync = () => {
    points.push({ fileSystem: fileSystem.crash({ unsynced: 'drop' }), acknowledged });
    points.push({ fileSystem: fileSystem.crash({ unsynced: 'tear', seed: seed + points.length }), acknowledged });
  };
  for (const [index, step] of steps.entries()) {
    if (step.value === undefined) await db.delete(step.key);
    else if (step.stream) await db.putStream(step.key, Readable.from([step.value.subarray(0, 700), step.value.subarray(700)]));
    else await db.put(step.key, step.value);
    acknowledged = index + 1;
    if (index % 5 === 4) await db.gc();
  }
  fileSystem.onSync = undefined;
  await db.close();
  assert.ok(points.length > 40, `only ${points.length} crash states`);
  for (const [position, point] of points.entries()) {
    const context = `seed ${seed} crash state ${position} (${point.acknowledged} acknowledged)`;
    const reopened = await open('/db', { ...options, fileSystem: point.fileSystem });
    const found = new Map<string, Buffer>();
    for await (const entry of reopened.entries()) found.set(entry.key.toString(), entry.value);
    // One write at a time: the acknowledged ones are a prefix, and the one in flight may have landed.
    const matches = [point.acknowledged, point.acknowledged + 1].some((prefix) => {
      const state = states[Math.min(prefix, steps.length)] as Map<string, Buffer>;
      return state.size === found.size && [...state].every(([key, value]) => found.get(key)?.equals(value));
    });
    assert.ok(matches, `${context}: not the state after the acknowledged writes (or one more)`);
    const verified = await reopened.verify();
    assert.ok(verified.ok, `${context}: ${JSON.stringify(verified.problems.slice(0, 3))}`);
    await reopened.close();
  }
  console.log(`# large-value crash states tried: ${points.length}`);
});

test('open does not pay a file open per large value: one per segment for the checkpointed references, none per block file', async (t) => {
  const directory = temporaryDirectory(t);
  const count = 300;
  const db = await open(directory, { valueThreshold: 64, durability: 'none' });
  await Promise.all(Array.from({ length: count }, (_, index) => db.put(`k${index}`, bytes(index, 200))));
  await db.close();
  // Asynchronous opens cost a thread-pool round trip each: 20k large values took about 11 s to
  // open when recovery opened the segment once per reference and measured every block file with
  // open, fstat, read and close.
  class OpenCounting extends NodeFileSystem {
    opens = 0;
    override open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
      this.opens++;
      return super.open(path, mode, options);
    }
  }
  const fileSystem = new OpenCounting();
  const reopened = await open(directory, { fileSystem, valueThreshold: 64 });
  assert.ok(reopened.stats().recovery.usedCheckpoint);
  assert.equal(reopened.stats().blocks.count, count);
  assert.ok(fileSystem.opens < 20, `${fileSystem.opens} asynchronous opens for ${count} large values`);
  for (let index = 0; index < count; index += 37) assert.ok((await reopened.get(`k${index}`))?.equals(bytes(index, 200)));
  await reopened.close();
});

/** Watches the block files opened for reading: their paths in order, and how many are open at once; the first waits at `gate` when armed. */
class BlockReadWatch extends NodeFileSystem {
  readonly gate = new Gate();
  readonly opened: string[] = [];
  openNow = 0;
  mostOpen = 0;

  override async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<FileHandle> {
    if (mode !== 'read' || !path.includes('/blocks/')) return super.open(path, mode, options);
    this.opened.push(path);
    this.mostOpen = Math.max(this.mostOpen, ++this.openNow);
    await this.gate.pass(true);
    const handle = await super.open(path, mode, options);
    const close = handle.close.bind(handle);
    handle.close = async () => {
      this.openNow--;
      await close();
    };
    return handle;
  }
}

test('createReadStream reads one block ahead: the next block file is read while the one before is still being read, never more', async (t) => {
  const directory = temporaryDirectory(t);
  const fileSystem = new BlockReadWatch();
  const db = await open(directory, { ...SMALL, fileSystem, blockCacheBytes: 0 });
  const value = bytes(61, 4096 * 5 + 100);
  await db.put('k', value);
  const hexes = Array.from({ length: 6 }, (_, index) => createHash('sha256').update(value.subarray(index * 4096, (index + 1) * 4096)).digest('hex'));
  fileSystem.gate.arm();
  const reading = collect(db.createReadStream('k'));
  await fileSystem.gate.reached;
  // The first block's read is held at its open: the second one's has started all the same.
  assert.deepEqual(
    fileSystem.opened.map((path) => path.slice(path.lastIndexOf('/') + 1, -'.blk'.length)),
    hexes.slice(0, 2),
  );
  fileSystem.gate.release();
  assert.ok(Buffer.concat(await reading).equals(value));
  assert.equal(fileSystem.opened.length, 6);
  assert.ok(fileSystem.mostOpen <= 2, `${fileSystem.mostOpen} block files open at once`);
  // A range of one block reads that block alone.
  fileSystem.opened.length = 0;
  assert.ok(Buffer.concat(await collect(db.createReadStream('k', { start: 4096 * 2 + 10, end: 4096 * 2 + 20 }))).equals(value.subarray(4096 * 2 + 10, 4096 * 2 + 21)));
  assert.equal(fileSystem.opened.length, 1);
  await db.close();
});

test("an object's stream reads one block ahead where a slice runs on into the next window, and never a block no window needs", async (t) => {
  const fileSystem = new BlockReadWatch();
  const db = await open(temporaryDirectory(t), { ...SMALL, fileSystem, blockCacheBytes: 0, objects: { chunkBytes: 65536, inlineBytes: 0, compaction: false } });
  // One slice of five blocks, then a newer slice over the middle of the fourth block.
  const value = bytes(71, 4096 * 5);
  await db.writeAt('o', 0, value);
  const patch = bytes(72, 1000);
  await db.writeAt('o', 4096 * 3 + 1000, patch);
  const expected = Buffer.from(value);
  patch.copy(expected, 4096 * 3 + 1000);
  const name = (path: string) => path.slice(path.lastIndexOf('/') + 1, -'.blk'.length);
  const first = createHash('sha256').update(value.subarray(0, 4096)).digest('hex');
  const second = createHash('sha256').update(value.subarray(4096, 8192)).digest('hex');
  fileSystem.gate.arm();
  const reading = collect(db.createReadStream('o'));
  await fileSystem.gate.reached;
  // The first block's read is held at its open: the second one's has started all the same.
  assert.deepEqual(fileSystem.opened.map(name), [first, second]);
  fileSystem.gate.release();
  assert.ok(Buffer.concat(await reading).equals(expected));
  // Five blocks of the old slice and the patch's one: each read once, none more.
  assert.equal(fileSystem.opened.length, 6, fileSystem.opened.map(name).join(' '));
  assert.equal(new Set(fileSystem.opened).size, 6);
  assert.ok(fileSystem.mostOpen <= 2, `${fileSystem.mostOpen} block files open at once`);
  await db.close();
});

test("a block read whole a third time is checked against the CRC-32 its second read (hashed) remembered; a byte changed since fails it; GC forgets it", async (t) => {
  const directory = temporaryDirectory(t);
  const db = await open(directory, { ...SMALL, blockCacheBytes: 0, gc: { minAgeMs: 0 } });
  const value = bytes(71, 4096 * 3);
  await db.put('k', value);
  const reads = () => [db.stats().blocks.readsHashed, db.stats().blocks.readsByCrc];
  // Three blocks: each read twice by its hash (the second remembers a CRC), then by the CRC.
  assert.ok(db.getSync('k')?.equals(value));
  assert.deepEqual(reads(), [3, 0]);
  assert.ok((await db.get('k'))?.equals(value));
  assert.deepEqual(reads(), [6, 0]);
  assert.ok(Buffer.concat(await collect(db.createReadStream('k'))).equals(value));
  assert.ok(db.getSync('k')?.equals(value));
  assert.deepEqual(reads(), [6, 6]);
  // A byte of the second block changed on disk: its CRC no longer matches.
  const blockPath = join(directory, 'blocks', `${createHash('sha256').update(value.subarray(4096, 8192)).digest('hex')}.blk`);
  const original = readFileSync(blockPath);
  const damaged = Buffer.from(original);
  damaged[16 + 10] = (damaged[16 + 10] as number) ^ 0x20;
  writeFileSync(blockPath, damaged);
  assert.throws(() => db.getSync('k'), (error) => code(error) === 'CORRUPTION' && /read and hashed before/.test((error as Error).message));
  await assert.rejects(collect(db.createReadStream('k')), (error) => code(error) === 'CORRUPTION');
  assert.equal((await db.verify()).ok, false, 'verify hashes what the disk holds');
  writeFileSync(blockPath, original);
  assert.ok(db.getSync('k')?.equals(value));
  // Deleted and collected, then put again: its blocks are hashed twice again before a CRC counts.
  await db.delete('k');
  await db.gc();
  await db.gc();
  assert.equal(db.stats().blocks.count, 0);
  await db.put('k', value);
  const [hashed, byCrc] = reads() as [number, number];
  assert.ok(db.getSync('k')?.equals(value));
  assert.ok(db.getSync('k')?.equals(value));
  assert.deepEqual(reads(), [hashed + 6, byCrc]);
  await db.close();
});
