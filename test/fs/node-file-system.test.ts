/**
 * NodeFileSystem against a real temporary directory: the round trip of every call, the open modes'
 * errors, and the process probes the directory lock uses.
 */
import assert from 'node:assert/strict';
import fs, { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statfsSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { test } from 'node:test';
import { NodeFileSystem, processIsAlive, processStartTime } from '../../src/fs/node-file-system.js';
import { descriptorsOn, Gate, temporaryDirectory } from '../helpers.js';

const NO_SUCH_PID = 2 ** 30;

test('every call round-trips through a real directory', async (t) => {
  const root = temporaryDirectory(t, 'silt-fs-');
  const fileSystem = new NodeFileSystem();
  const directory = `${root}/a/b`;
  await fileSystem.mkdir(directory);
  await fileSystem.mkdir(directory); // exists: no error

  const handle = await fileSystem.open(`${directory}/file`, 'create');
  await handle.write(Buffer.from('hello world'), 0, 11, 0);
  handle.writeSync(Buffer.from('__WORLD__'), 2, 5, 6);
  await handle.datasync();
  await handle.sync();
  assert.equal(await handle.size(), 11);
  const buffer = Buffer.alloc(5);
  assert.equal(await handle.read(buffer, 0, 5, 6), 5);
  assert.equal(buffer.toString(), 'WORLD');
  assert.equal(handle.readSync(buffer, 0, 5, 0), 5);
  assert.equal(buffer.toString(), 'hello');
  assert.equal(await handle.read(buffer, 0, 5, 100), 0, 'read past EOF returns 0');
  await handle.truncate(5);
  assert.equal(await handle.size(), 5);
  await handle.close();
  await fileSystem.syncDirectory(directory);

  assert.equal((await fileSystem.readFile(`${directory}/file`)).toString(), 'hello');
  assert.deepEqual(await fileSystem.readdir(directory), ['file']);
  const stat = await fileSystem.stat(`${directory}/file`);
  assert.equal(stat.sizeBytes, 5);
  assert.ok(stat.isFile && !stat.isDirectory && stat.mtimeMs > 0);
  assert.ok((await fileSystem.stat(directory)).isDirectory);

  await fileSystem.rename(`${directory}/file`, `${directory}/renamed`);
  assert.deepEqual(await fileSystem.readdir(directory), ['renamed']);
  await fileSystem.unlink(`${directory}/renamed`);
  assert.deepEqual(await fileSystem.readdir(directory), []);
});

test('readFile reads a file larger than one read', async (t) => {
  const root = temporaryDirectory(t, 'silt-fs-');
  const fileSystem = new NodeFileSystem();
  const content = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a);
  const handle = fileSystem.openSync(`${root}/large`, 'overwrite');
  handle.writeSync(content, 0, content.length, 0);
  await handle.close();
  assert.ok((await fileSystem.readFile(`${root}/large`)).equals(content));
});

test('open modes fail with ENOENT and EEXIST, and overwrite truncates', async (t) => {
  const root = temporaryDirectory(t, 'silt-fs-');
  const fileSystem = new NodeFileSystem();
  await assert.rejects(fileSystem.open(`${root}/missing`, 'read'), { code: 'ENOENT' });
  await assert.rejects(fileSystem.open(`${root}/missing`, 'readwrite'), { code: 'ENOENT' });
  assert.throws(() => fileSystem.openSync(`${root}/missing`, 'read'), { code: 'ENOENT' });
  await assert.rejects(fileSystem.stat(`${root}/missing`), { code: 'ENOENT' });
  const handle = await fileSystem.open(`${root}/file`, 'create');
  await handle.write(Buffer.from('abc'), 0, 3, 0);
  await handle.close();
  await assert.rejects(fileSystem.open(`${root}/file`, 'create'), { code: 'EEXIST' });
  const overwritten = await fileSystem.open(`${root}/file`, 'overwrite');
  assert.equal(await overwritten.size(), 0);
  await overwritten.close();
});

/** statfs's f_type of btrfs and of tmpfs. */
const BTRFS_MAGIC = 0x9123683e;
const TMPFS_MAGIC = 0x01021994;

/** Page-aligned memory (a WebAssembly.Memory is mapped pages), as the block store uses for direct writes. */
function alignedBuffer(bytes: number): Buffer {
  const wasm = (globalThis as unknown as { WebAssembly: { Memory: new (d: { initial: number }) => { buffer: ArrayBuffer } } }).WebAssembly;
  return Buffer.from(new wasm.Memory({ initial: Math.ceil(bytes / 65536) }).buffer, 0, bytes);
}

test('direct opens: O_DIRECT where the file system has it (aligned writes only), a plain open where it has not', async (t) => {
  const fileSystem = new NodeFileSystem();
  const root = temporaryDirectory(t, 'silt-fs-');
  const handle = await fileSystem.open(`${root}/direct`, 'create', { direct: true });
  try {
    if (handle.direct === true) {
      const aligned = alignedBuffer(8192).fill(0x61);
      await handle.write(aligned, 0, 8192, 0);
      // Misaligned memory, length or position: ext4 and XFS refuse it with EINVAL, which shows the
      // open really is direct (the block store then writes the block through a plain open).
      // btrfs serves it through the page cache instead, and tmpfs (direct since Linux 6.6) has no
      // alignment rule: there the write must land as given.
      const servesMisaligned = [BTRFS_MAGIC, TMPFS_MAGIC].includes(statfsSync(root).type);
      aligned.fill(0x62, 0, 4096 + 16);
      const misaligned = async (offset: number, length: number): Promise<void> => {
        if (!servesMisaligned) {
          await assert.rejects(handle.write(aligned, offset, length, 0), (error: NodeJS.ErrnoException) => error.code === 'EINVAL');
          return;
        }
        await handle.write(aligned, offset, length, 0);
        assert.ok(readFileSync(`${root}/direct`).subarray(0, length).equals(aligned.subarray(offset, offset + length)));
      };
      await misaligned(16, 4096);
      await misaligned(0, 100);
      await handle.truncate(5000);
      await handle.datasync();
    } else {
      t.diagnostic(`no O_DIRECT in ${root}`);
    }
  } finally {
    await handle.close();
  }
  await assert.rejects(fileSystem.open(`${root}/direct`, 'create', { direct: true }), (error: NodeJS.ErrnoException) => error.code === 'EEXIST');
  if (handle.direct === true) assert.equal(readFileSync(`${root}/direct`).length, 5000);
  // tmpfs: no O_DIRECT before Linux 6.6 (the open falls back to a plain one: the exclusive create
  // still creates the file), and no alignment rule after. Either way a small write works.
  if (!existsSync('/dev/shm')) return;
  const shm = mkdtempSync('/dev/shm/silt-fs-');
  t.after(() => rmSync(shm, { recursive: true, force: true }));
  const plain = await fileSystem.open(`${shm}/file`, 'create', { direct: true });
  t.diagnostic(`tmpfs open with direct: ${String(plain.direct)}`);
  await plain.write(Buffer.from('abc'), 0, 3, 0);
  await plain.close();
  assert.equal(readFileSync(`${shm}/file`, 'latin1'), 'abc');
  await assert.rejects(fileSystem.open(`${shm}/file`, 'create', { direct: true }), (error: NodeJS.ErrnoException) => error.code === 'EEXIST');
});

test('processIsAlive is true for this process and false for a pid that cannot exist', () => {
  assert.equal(processIsAlive(process.pid), true);
  assert.equal(processIsAlive(NO_SUCH_PID), false);
});

test('processStartTime is the start of this process in clock ticks since boot on Linux, and undefined for a missing process', () => {
  assert.equal(processStartTime(NO_SUCH_PID), undefined);
  if (process.platform !== 'linux') return;
  const startTime = processStartTime(process.pid);
  assert.match(startTime ?? '', /^\d+$/);
  assert.equal(processStartTime(process.pid), startTime);
  // Boot time (seconds since the epoch) plus the start in ticks (USER_HZ, 100 per second on Linux) is when this process began.
  const bootSeconds = Number(/^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'latin1'))?.[1]);
  const startedMs = bootSeconds * 1000 + Number(startTime) * 10;
  const expectedMs = Date.now() - process.uptime() * 1000;
  assert.ok(Math.abs(startedMs - expectedMs) < 3000, `start ${startedMs} vs ${expectedMs}`);
});

test('a held directory is opened once for all its syncs and closed by the last release, after the syncs in flight', { skip: !existsSync('/proc/self/fd') && 'no /proc/self/fd' }, async (t) => {
  const directory = realpathSync(temporaryDirectory(t, 'silt-fs-'));
  const fileSystem = new NodeFileSystem();
  await fileSystem.syncDirectory(directory);
  assert.equal(descriptorsOn(directory), 0, 'not held: opened and closed per sync');
  fileSystem.holdDirectory(directory);
  fileSystem.holdDirectory(directory);
  assert.equal(descriptorsOn(directory), 0, 'opened at the first sync, not at the hold');
  await Promise.all([fileSystem.syncDirectory(directory), fileSystem.syncDirectory(directory)]);
  await fileSystem.syncDirectory(directory);
  assert.equal(descriptorsOn(directory), 1, 'one descriptor for every sync');
  await fileSystem.releaseDirectory(directory);
  await fileSystem.syncDirectory(directory);
  assert.equal(descriptorsOn(directory), 1, 'still held by the second hold');
  // The last release, with a sync in flight: the descriptor outlives the sync, then closes.
  // node:fs's fsync is held at a gate meanwhile (and its close watched).
  const events: string[] = [];
  const gate = new Gate();
  const { fsync, close } = fs;
  t.after(() => {
    Object.assign(fs, { fsync, close });
    syncBuiltinESMExports();
  });
  Object.assign(fs, {
    fsync: (descriptor: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      void gate.pass(true).then(() => fsync(descriptor, (error) => {
        events.push('fsync done');
        callback(error);
      }));
    },
    close: (descriptor: number, callback: (error: NodeJS.ErrnoException | null) => void) => {
      events.push('close');
      close(descriptor, callback);
    },
  });
  syncBuiltinESMExports();
  gate.arm();
  const inFlight = fileSystem.syncDirectory(directory);
  await gate.reached;
  const released = fileSystem.releaseDirectory(directory);
  // Turns of the event loop in which a release that did not wait would close the descriptor.
  for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(events, [], 'nothing closed while the sync is in flight');
  gate.release();
  await Promise.all([inFlight, released]);
  assert.deepEqual(events, ['fsync done', 'close']);
  assert.equal(descriptorsOn(directory), 0, 'closed by the last release');
  await fileSystem.syncDirectory(directory);
  assert.equal(descriptorsOn(directory), 0, 'released: opened and closed per sync again');
  await fileSystem.releaseDirectory(directory); // not held: nothing to do
});

test('a held directory whose open fails is opened again at the next sync', async (t) => {
  const root = temporaryDirectory(t, 'silt-fs-');
  const fileSystem = new NodeFileSystem();
  const directory = `${root}/later`;
  fileSystem.holdDirectory(directory);
  await assert.rejects(fileSystem.syncDirectory(directory), { code: 'ENOENT' });
  await fileSystem.mkdir(directory);
  await fileSystem.syncDirectory(directory);
  await fileSystem.releaseDirectory(directory);
});
