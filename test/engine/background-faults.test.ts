/**
 * Faults in background work and in recovery: degraded mode (an 'error' event, stats(), the error of
 * the next write, reads still served), a fault campaign over a workload of large values with
 * compaction and GC, ENOSPC and recovery after space is freed, power loss during recovery, and the
 * bound on open file descriptors.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { FaultFileSystem } from '../../src/fs/fault-file-system.js';
import { open, SiltError, type Store } from '../../src/index.js';
import { random, temporaryDirectory, testSeed } from '../helpers.js';
import { assertPrefixState, generateWorkload, readAll, runWorkload, type IssuedOperation, type ModelOperation } from './workload.js';

// Values of the workload are up to ~125 bytes: above 60 they go to blocks.
const OPTIONS = { segmentBytes: 2048, valueThreshold: 60, blockBytes: 4096, gc: { minAgeMs: 0, intervalMs: 2 ** 31 - 1 }, compaction: false as const };

function failedWith(error: unknown, code: string, cause: RegExp): boolean {
  return error instanceof SiltError && error.code === code && cause.test(error.message);
}

for (const work of ['gc', 'compaction', 'checkpoint'] as const) {
  test(`a failure in background ${work} puts the store in degraded mode: an 'error' event, stats(), FAILED writes, reads served`, async () => {
    const fileSystem = new FaultFileSystem(new CrashFileSystem());
    const rule =
      work === 'gc'
        ? { kind: 'unlink' as const, pathIncludes: '.blk' }
        : work === 'compaction'
          ? { kind: 'unlink' as const, pathIncludes: '.log' }
          : { kind: 'open' as const, pathIncludes: 'index.hint' };
    const db = await open('/db', {
      ...OPTIONS,
      fileSystem,
      gc: { minAgeMs: 0, intervalMs: 1 },
      compaction: { deadRatio: 0.3 },
      segmentBytes: 1024,
    });
    await db.put('keep', 'kept value');
    await db.put('large', Buffer.alloc(5000, 1));
    const failed = once(db, 'error');
    fileSystem.failAt({ ...rule, n: 1, errno: 'EIO', mode: 'forever' });
    // Work for the background: garbage blocks, dead segments, segment rolls.
    await db.delete('large');
    for (let round = 0; round < 30 && db.stats().state === 'open'; round++) {
      await db.put('hot', Buffer.alloc(200, round)).catch(() => undefined);
    }
    const [error] = (await failed) as [SiltError];
    assert.ok(failedWith(error, 'FAILED', /EIO/), String(error));
    const stats = db.stats();
    assert.equal(stats.state, 'failed');
    assert.match(stats.failure ?? '', /EIO/);
    await assert.rejects(db.put('after', 'x'), (rejection: unknown) => failedWith(rejection, 'FAILED', /EIO/));
    assert.equal((await db.get('keep'))?.toString(), 'kept value');
    // Exactly one event: no retry loop reporting the same failure again.
    let more = 0;
    db.on('error', () => more++);
    await db.put('again', 'x').catch(() => undefined);
    await db.close().catch(() => undefined);
    assert.equal(more, 0);
    fileSystem.clearFaults();
    const reopened = await open('/db', { ...OPTIONS, fileSystem });
    assert.equal((await reopened.get('keep'))?.toString(), 'kept value');
    await reopened.put('after', 'works');
    assert.ok((await reopened.verify()).ok);
    await reopened.close();
  });
}

/** The workload, with compact() and gc() between some steps; stops at the first error. */
async function runWithMaintenance(db: Store, steps: ModelOperation[][], issued: IssuedOperation[]): Promise<unknown> {
  for (const [position, step] of steps.entries()) {
    const error = await runWorkload(db, [step], issued);
    if (error !== undefined) return error;
    try {
      if (position % 3 === 2) await db.compact();
      if (position % 4 === 3) await db.gc();
    } catch (maintenanceError) {
      return maintenanceError;
    }
  }
  return undefined;
}

test('a fault at every call N of a large-value workload with compaction and GC (EIO, ENOSPC, EMFILE; once and forever) loses nothing acknowledged', async () => {
  const seed = testSeed('background fault campaign');
  // One operation at a time: a large value takes its revision when its blocks are stored, so
  // concurrent writes to different keys commit in that order, not in call order (the prefix
  // check below follows call order). Concurrency under faults is covered by fault.test.ts.
  const steps = generateWorkload({ seed, steps: 24, concurrencyMax: 1, keySpace: 12 });
  const run = async (fault: { n: number; errno: 'EIO' | 'ENOSPC' | 'EMFILE'; mode: 'once' | 'forever' } | undefined) => {
    const base = new CrashFileSystem();
    const fileSystem = new FaultFileSystem(base);
    if (fault !== undefined) fileSystem.failAt({ kind: 'any', ...fault });
    const label = `seed ${seed} ${fault === undefined ? 'no fault' : `${fault.errno} ${fault.mode} at call ${fault.n}`}`;
    const issued: IssuedOperation[] = [];
    let db: Store | undefined;
    try {
      db = await open('/db', { ...OPTIONS, fileSystem });
    } catch (error) {
      assert.ok(error instanceof SiltError, `${label}: open threw ${String(error)}`);
    }
    if (db !== undefined) {
      db.on('error', () => undefined);
      const error = await runWithMaintenance(db, steps, issued);
      if (error !== undefined) assert.ok(error instanceof SiltError && ['IO_ERROR', 'FAILED', 'CORRUPTION'].includes(error.code), `${label}: ${String(error)}`);
      await db.close().catch((closeError: unknown) => assert.ok(closeError instanceof SiltError, `${label}: close threw ${String(closeError)}`));
    }
    const calls = fileSystem.calls();
    fileSystem.clearFaults();
    for (const [what, files] of [
      ['restart', fileSystem],
      ['power loss', base.crash({ unsynced: 'drop' })],
    ] as const) {
      const reopened = await open('/db', { ...OPTIONS, fileSystem: files });
      assertPrefixState(await readAll(reopened), issued, `${label}, ${what}`);
      await reopened.gc();
      const verified = await reopened.verify();
      assert.ok(verified.ok, `${label}, ${what}: ${JSON.stringify(verified.problems.slice(0, 3))}`);
      assert.equal(verified.unreferencedBlocks, 0, `${label}, ${what}: garbage blocks left`);
      await reopened.close();
    }
    return calls;
  };
  const calls = await run(undefined);
  assert.ok(calls > 100, `only ${calls} calls`);
  let points = 0;
  for (const errno of ['EIO', 'ENOSPC', 'EMFILE'] as const) {
    for (const mode of ['once', 'forever'] as const) {
      for (let n = 1; n <= calls; n++) {
        await run({ n, errno, mode });
        points++;
      }
    }
  }
  console.log(`# background fault points tried: ${points} (${calls} calls x 3 errnos x 2 modes)`);
});

test('ENOSPC: writes fail with a clear error, nothing acknowledged is lost, and after space is freed the store reopens and takes writes', async () => {
  const fileSystem = new FaultFileSystem(new CrashFileSystem());
  const db = await open('/db', { fileSystem, segmentBytes: 4096 });
  const acknowledged = new Map<string, string>();
  for (let index = 0; index < 20; index++) {
    await db.put(`k${index}`, `value ${index}`);
    acknowledged.set(`k${index}`, `value ${index}`);
  }
  // The disk fills up: every write call from now on fails.
  fileSystem.failAt({ kind: 'write', n: 1, errno: 'ENOSPC', mode: 'forever' });
  let refused = 0;
  for (let index = 20; index < 60; index++) {
    try {
      await db.put(`k${index}`, `value ${index}`);
      acknowledged.set(`k${index}`, `value ${index}`);
    } catch (error) {
      assert.ok(error instanceof SiltError && ['IO_ERROR', 'FAILED'].includes(error.code), String(error));
      assert.match(error.message, /ENOSPC|no space/);
      refused++;
    }
  }
  assert.ok(refused > 0);
  for (const [key, value] of acknowledged) assert.equal((await db.get(key))?.toString(), value, key);
  await db.close().catch(() => undefined);
  // Space is freed.
  fileSystem.clearFaults();
  const reopened = await open('/db', { fileSystem });
  for (const [key, value] of acknowledged) assert.equal((await reopened.get(key))?.toString(), value, key);
  await reopened.put('after', 'space freed');
  assert.equal((await reopened.get('after'))?.toString(), 'space freed');
  assert.ok((await reopened.verify()).ok);
  await reopened.close();
});

test('power loss at every fsync point of recovery itself: a second recovery still finds every acknowledged write', async () => {
  const seed = testSeed('crash during recovery');
  const steps = generateWorkload({ seed, steps: 40, concurrencyMax: 4 });
  const fileSystem = new CrashFileSystem();
  const db = await open('/db', { fileSystem, segmentBytes: 2048 });
  const issued: IssuedOperation[] = [];
  assert.equal(await runWorkload(db, steps, issued), undefined);
  // Power loss with torn unsynced bytes: recovery has a tail to cut and a checkpoint to redo.
  const states = [fileSystem.crash({ unsynced: 'tear', seed }), fileSystem.crash({ unsynced: 'drop' })];
  await db.close();
  let tried = 0;
  for (const [position, crashed] of states.entries()) {
    const during: CrashFileSystem[] = [];
    crashed.onSync = () => {
      during.push(crashed.crash({ unsynced: 'drop' }), crashed.crash({ unsynced: 'tear', seed: seed + during.length }));
    };
    const recovering = await open('/db', { fileSystem: crashed, segmentBytes: 2048 });
    const expected = await readAll(recovering);
    assertPrefixState(expected, issued, `seed ${seed} state ${position}`);
    await recovering.close();
    crashed.onSync = undefined;
    for (const [index, again] of during.entries()) {
      const reopened = await open('/db', { fileSystem: again, segmentBytes: 2048 });
      assert.deepEqual(await readAll(reopened), expected, `seed ${seed} state ${position}, crash ${index} during recovery`);
      assert.ok((await reopened.verify()).ok);
      await reopened.close();
      tried++;
    }
  }
  assert.ok(tried > 0);
  console.log(`# crash states during recovery tried: ${tried}`);
});

test('open file descriptors stay bounded by maxOpenFiles, whatever the number of segments and of blocks read by their pages (under ulimit -n 64)', (t) => {
  const directory = temporaryDirectory(t);
  const script = `
    const { open } = await import(${JSON.stringify(new URL('../../dist/index.js', import.meta.url).href)});
    const { readdirSync } = await import('node:fs');
    const fds = () => readdirSync('/proc/self/fd').length;
    const baseline = fds();
    const db = await open(${JSON.stringify(directory)}, { segmentBytes: 1024, maxOpenFiles: 8, compaction: false, valueThreshold: 500, blockBytes: 16384, blockCacheBytes: 0 });
    for (let index = 0; index < 3000; index++) await db.put('key-' + index, Buffer.alloc(index % 10 === 0 ? 600 : 100, index % 251));
    // Values of one block of four 4 KiB pages, read by their pages (readAt): block files kept
    // open for that.
    for (let index = 0; index < 100; index++) await db.put('paged-' + index, Buffer.alloc(16384, index));
    let peak = 0;
    for (let round = 0; round < 3; round++) {
      for (let index = 0; index < 100; index++) {
        const part = db.readAtSync('paged-' + index, 5000, 100);
        if (part === undefined || part.length !== 100 || part[0] !== index) throw new Error('wrong bytes of paged-' + index);
        peak = Math.max(peak, fds() - baseline);
      }
    }
    if (db.stats().blocks.rangePageReads < 200) throw new Error('too few page reads: ' + db.stats().blocks.rangePageReads);
    for (let round = 0; round < 2; round++) {
      for (let index = 0; index < 3000; index += 7) {
        const value = db.getSync('key-' + index);
        if (value === undefined || value.length !== (index % 10 === 0 ? 600 : 100)) throw new Error('wrong value for key-' + index);
        peak = Math.max(peak, fds() - baseline);
      }
      for await (const entry of db.entries()) peak = Math.max(peak, fds() - baseline);
    }
    console.log(JSON.stringify({ segments: db.stats().segments.count, blocks: db.stats().blocks.count, peak }));
    await db.close();
  `;
  const result = spawnSync('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" --input-type=module -e "$SCRIPT"`], {
    env: { ...process.env, SCRIPT: script },
    encoding: 'utf8',
  });
  assert.equal(result.status, 0, result.stderr);
  const { segments, blocks, peak } = JSON.parse(result.stdout.trim().split('\n').at(-1) as string) as { segments: number; blocks: number; peak: number };
  assert.ok(segments > 100, `only ${segments} segments`);
  assert.ok(blocks > 100, `only ${blocks} blocks`);
  // maxOpenFiles read handles, a quarter as many block files kept for page reads, the active
  // segment, the lock, the GC list: a small constant.
  assert.ok(peak <= 8 + 2 + 4, `peak of ${peak} descriptors with maxOpenFiles 8`);
});

test('a fault at every call N of an object workload with slice compaction and GC (EIO, ENOSPC, EMFILE; once and forever) loses nothing acknowledged', async () => {
  const seed = testSeed('object fault campaign');
  const next = random(seed);
  type ObjectStep = { type: 'writeAt'; key: string; offset: number; data: Buffer } | { type: 'append'; key: string; data: Buffer } | { type: 'truncate'; key: string; size: number } | { type: 'compact'; key: string };
  const steps: ObjectStep[] = [];
  for (let index = 0; index < 16; index++) {
    const key = `obj${Math.floor(next() * 2)}`;
    const roll = next();
    const data = Buffer.alloc(1 + Math.floor(next() * 6000), index + 1);
    if (roll < 0.45) steps.push({ type: 'writeAt', key, offset: Math.floor(next() * 20_000), data });
    else if (roll < 0.7) steps.push({ type: 'append', key, data });
    else if (roll < 0.85) steps.push({ type: 'truncate', key, size: Math.floor(next() * 20_000) });
    else steps.push({ type: 'compact', key });
  }
  // The state after each prefix of the steps (compaction changes no bytes).
  const states: Array<Map<string, Buffer>> = [new Map()];
  for (const step of steps) {
    const state = new Map(states.at(-1));
    const bytes = state.get(step.key) ?? Buffer.alloc(0);
    if (step.type === 'truncate') {
      const result = Buffer.alloc(step.size);
      bytes.copy(result, 0, 0, Math.min(bytes.length, step.size));
      state.set(step.key, result);
    } else if (step.type !== 'compact') {
      const offset = step.type === 'append' ? bytes.length : step.offset;
      const result = Buffer.alloc(Math.max(bytes.length, offset + step.data.length));
      bytes.copy(result);
      step.data.copy(result, offset);
      state.set(step.key, result);
    }
    states.push(state);
  }
  const options = { ...OPTIONS, objects: { chunkBytes: 8192, compactAt: 3, syncCompactAt: 5 } };
  const run = async (fault: { n: number; errno: 'EIO' | 'ENOSPC' | 'EMFILE'; mode: 'once' | 'forever' } | undefined) => {
    const base = new CrashFileSystem();
    const fileSystem = new FaultFileSystem(base);
    if (fault !== undefined) fileSystem.failAt({ kind: 'any', ...fault });
    const label = `seed ${seed} ${fault === undefined ? 'no fault' : `${fault.errno} ${fault.mode} at call ${fault.n}`}`;
    let acknowledged = 0;
    let db: Store | undefined;
    try {
      db = await open('/db', { ...options, fileSystem });
    } catch (error) {
      assert.ok(error instanceof SiltError, `${label}: open threw ${String(error)}`);
    }
    if (db !== undefined) {
      db.on('error', () => undefined);
      try {
        for (const step of steps) {
          if (step.type === 'writeAt') await db.writeAt(step.key, step.offset, step.data);
          else if (step.type === 'append') await db.append(step.key, step.data);
          else if (step.type === 'truncate') await db.truncate(step.key, step.size);
          else if (db.objectStats(step.key) !== undefined) await db.compactObject(step.key, { mode: 'heavy' });
          acknowledged++;
          if (acknowledged % 5 === 0) await db.gc();
        }
      } catch (error) {
        assert.ok(error instanceof SiltError && ['IO_ERROR', 'FAILED', 'CORRUPTION'].includes(error.code), `${label}: ${String(error)}`);
      }
      await db.close().catch((closeError: unknown) => assert.ok(closeError instanceof SiltError, `${label}: close threw ${String(closeError)}`));
    }
    const calls = fileSystem.calls();
    fileSystem.clearFaults();
    for (const [what, files] of [
      ['restart', fileSystem],
      ['power loss', base.crash({ unsynced: 'drop' })],
    ] as const) {
      const reopened = await open('/db', { ...options, fileSystem: files });
      const found = new Map<string, Buffer>();
      for await (const entry of reopened.entries()) found.set(entry.key.toString(), entry.value);
      // Sequential calls: the acknowledged ones are a prefix, and the failed one may have landed.
      const matches = [acknowledged, acknowledged + 1].filter((prefix) => {
        const state = states[Math.min(prefix, steps.length)] as Map<string, Buffer>;
        return state.size === found.size && [...state].every(([key, bytes]) => found.get(key)?.equals(bytes));
      });
      assert.ok(matches.length > 0, `${label}, ${what}: the objects are not the state after ${acknowledged} or ${acknowledged + 1} steps`);
      await reopened.gc();
      const verified = await reopened.verify();
      assert.ok(verified.ok, `${label}, ${what}: ${JSON.stringify(verified.problems.slice(0, 3))}`);
      assert.equal(verified.unreferencedBlocks, 0, `${label}, ${what}: garbage blocks left`);
      await reopened.close();
    }
    return { calls, acknowledged };
  };
  const clean = await run(undefined);
  assert.equal(clean.acknowledged, steps.length);
  let points = 0;
  for (const errno of ['EIO', 'ENOSPC', 'EMFILE'] as const) {
    for (const mode of ['once', 'forever'] as const) {
      for (let n = 1; n <= clean.calls; n++) {
        await run({ n, errno, mode });
        points++;
      }
    }
  }
  console.log(`# object fault points tried: ${points} (${clean.calls} calls x 3 errnos x 2 modes)`);
});

test('a fault at every call N of recovery itself (EIO, ENOSPC, EMFILE; once and forever): open fails cleanly or recovers, and the next open finds every acknowledged write', async () => {
  const seed = testSeed('recovery fault campaign');
  const steps = generateWorkload({ seed, steps: 30, concurrencyMax: 3 });
  const source = new CrashFileSystem();
  const db = await open('/db', { fileSystem: source, segmentBytes: 2048, valueThreshold: 60, blockBytes: 4096 });
  const issued: IssuedOperation[] = [];
  assert.equal(await runWorkload(db, steps, issued), undefined);
  // A power loss with torn unsynced bytes, and no checkpoint: recovery has a tail to cut, a log to
  // replay, blocks to sweep, a checkpoint and a GC list to write.
  const crashed = source.crash({ unsynced: 'tear', seed });
  await db.close();
  await crashed.unlink('/db/index.hint').catch(() => undefined);
  const countCalls = new FaultFileSystem(crashed.crash({ unsynced: 'drop' }));
  const counted = await open('/db', { fileSystem: countCalls, segmentBytes: 2048, valueThreshold: 60, blockBytes: 4096 });
  const expected = await readAll(counted);
  assertPrefixState(expected, issued, `seed ${seed}: clean recovery`);
  await counted.close();
  const calls = countCalls.calls();
  let points = 0;
  for (const errno of ['EIO', 'ENOSPC', 'EMFILE'] as const) {
    for (const mode of ['once', 'forever'] as const) {
      for (let n = 1; n <= calls; n++) {
        const label = `seed ${seed} ${errno} ${mode} at call ${n}`;
        const files = crashed.crash({ unsynced: 'drop' });
        const faulty = new FaultFileSystem(files);
        faulty.failAt({ kind: 'any', n, errno, mode });
        try {
          const store = await open('/db', { fileSystem: faulty, segmentBytes: 2048, valueThreshold: 60, blockBytes: 4096 });
          store.on('error', () => undefined);
          assert.deepEqual(await readAll(store).catch(() => expected), expected, `${label}: recovered a different state`);
          await store.close().catch(() => undefined);
        } catch (error) {
          assert.ok(error instanceof SiltError, `${label}: open threw ${String(error)}`);
        }
        faulty.clearFaults();
        const again = await open('/db', { fileSystem: faulty, segmentBytes: 2048, valueThreshold: 60, blockBytes: 4096 });
        assert.deepEqual(await readAll(again), expected, `${label}: the next open differs`);
        const verified = await again.verify();
        assert.ok(verified.ok, `${label}: ${JSON.stringify(verified.problems.slice(0, 3))}`);
        await again.close();
        points++;
      }
    }
  }
  console.log(`# recovery fault points tried: ${points} (${calls} calls x 3 errnos x 2 modes)`);
});
