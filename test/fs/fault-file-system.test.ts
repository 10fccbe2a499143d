/**
 * FaultFileSystem: counting by kind, failing the n-th matching call once or forever, path filters,
 * several rules, and what a failed call leaves behind (checked on a CrashFileSystem underneath).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import { FaultFileSystem } from '../../src/fs/fault-file-system.js';
import type { FileHandle } from '../../src/fs/types.js';

const BYTE = Buffer.from('x');

function setup(): { base: CrashFileSystem; fileSystem: FaultFileSystem } {
  const base = new CrashFileSystem();
  return { base, fileSystem: new FaultFileSystem(base) };
}

/** Write one byte at each position in turn; returns, per write, the error code or 'ok'. */
async function writeBytes(handle: FileHandle, count: number): Promise<string[]> {
  const outcomes: string[] = [];
  for (let position = 0; position < count; position++) {
    outcomes.push(
      await handle.write(BYTE, 0, 1, position).then(
        () => 'ok',
        (error: NodeJS.ErrnoException) => error.code ?? 'no code',
      ),
    );
  }
  return outcomes;
}

test('calls are counted by kind, sync variants and readFile included', async () => {
  const { fileSystem } = setup();
  await fileSystem.mkdir('/d');
  const handle = fileSystem.openSync('/d/f', 'create');
  await handle.write(BYTE, 0, 1, 0);
  handle.writeSync(BYTE, 0, 1, 1);
  handle.readSync(Buffer.alloc(1), 0, 1, 0);
  await handle.datasync();
  await handle.close();
  await fileSystem.readFile('/d/f');
  assert.equal(fileSystem.calls('mkdir'), 1);
  assert.equal(fileSystem.calls('open'), 2, 'openSync and readFile each count one open');
  assert.equal(fileSystem.calls('write'), 2, 'writeSync counts as write');
  assert.equal(fileSystem.calls('read'), 2, 'readSync and readFile each count one read');
  assert.equal(fileSystem.calls('datasync'), 1);
  assert.equal(fileSystem.calls('close'), 1);
  assert.equal(fileSystem.calls('sync'), 0);
  assert.equal(fileSystem.calls(), 9);
  assert.equal(fileSystem.failures, 0);
});

test('failing the n-th write once fails only that write, with a Node-style errno error, and it writes nothing', async () => {
  const { base, fileSystem } = setup();
  const handle = await fileSystem.open('/f', 'create');
  fileSystem.failAt({ kind: 'write', n: 3, errno: 'EIO', mode: 'once' });
  await assert.rejects(
    (async () => {
      await handle.write(BYTE, 0, 1, 0);
      await handle.write(BYTE, 0, 1, 1);
      await handle.write(Buffer.from('y'), 0, 1, 2);
    })(),
    (error: NodeJS.ErrnoException) => {
      assert.equal(error.code, 'EIO');
      assert.equal(error.errno, -5);
      assert.equal(error.syscall, 'write');
      assert.equal(error.path, '/f');
      return true;
    },
  );
  assert.deepEqual(await writeBytes(handle, 2), ['ok', 'ok'], 'later writes succeed');
  assert.equal(base.dump().get('/f')?.toString(), 'xx', 'the failed write wrote nothing');
  assert.equal(fileSystem.failures, 1);
  assert.equal(fileSystem.calls('write'), 5, 'failed calls are counted too');
});

test('failing the n-th write forever fails it and every later write until clearFaults', async () => {
  const { fileSystem } = setup();
  const handle = await fileSystem.open('/f', 'create');
  fileSystem.failAt({ kind: 'write', n: 2, errno: 'ENOSPC', mode: 'forever' });
  assert.deepEqual(await writeBytes(handle, 4), ['ok', 'ENOSPC', 'ENOSPC', 'ENOSPC']);
  assert.equal(fileSystem.failures, 3);
  fileSystem.clearFaults();
  assert.deepEqual(await writeBytes(handle, 1), ['ok']);
});

test('rules count from when they are added, not from the first call', async () => {
  const { fileSystem } = setup();
  const handle = await fileSystem.open('/f', 'create');
  assert.deepEqual(await writeBytes(handle, 3), ['ok', 'ok', 'ok']);
  fileSystem.failAt({ kind: 'write', n: 1, errno: 'EIO', mode: 'once' });
  assert.deepEqual(await writeBytes(handle, 2), ['EIO', 'ok']);
});

test('sync methods throw synchronously; async methods reject', async () => {
  const { fileSystem } = setup();
  fileSystem.failAt({ kind: 'open', n: 1, errno: 'EMFILE', mode: 'forever' });
  assert.throws(() => fileSystem.openSync('/f', 'create'), { code: 'EMFILE' });
  const opening = fileSystem.open('/f', 'create');
  assert.ok(opening instanceof Promise);
  await assert.rejects(opening, { code: 'EMFILE' });
  fileSystem.clearFaults();
  const handle = fileSystem.openSync('/f', 'create');
  fileSystem.failAt({ kind: 'read', n: 1, errno: 'EACCES', mode: 'once' });
  assert.throws(() => handle.readSync(Buffer.alloc(1), 0, 1, 0), { code: 'EACCES', errno: -13 });
});

test('pathIncludes restricts which calls a rule counts, and matches either path of a rename', async () => {
  const { fileSystem } = setup();
  const log = await fileSystem.open('/db.log', 'create');
  const hint = await fileSystem.open('/db.hint', 'create');
  fileSystem.failAt({ kind: 'any', n: 2, errno: 'EIO', mode: 'once', pathIncludes: '.hint' });
  assert.deepEqual(await writeBytes(log, 3), ['ok', 'ok', 'ok'], 'calls on other paths neither count nor fail');
  assert.deepEqual(await writeBytes(hint, 3), ['ok', 'EIO', 'ok']);
  fileSystem.failAt({ kind: 'rename', n: 1, errno: 'EIO', mode: 'once', pathIncludes: 'final' });
  await assert.rejects(fileSystem.rename('/db.hint', '/final.hint'), { code: 'EIO', path: '/db.hint', dest: '/final.hint' });
  assert.deepEqual((await fileSystem.readdir('/')).sort(), ['db.hint', 'db.log'], 'the failed rename renamed nothing');
});

test('several rules may be active; each counts its own matching calls', async () => {
  const { fileSystem } = setup();
  const handle = await fileSystem.open('/f', 'create');
  fileSystem.failAt({ kind: 'write', n: 1, errno: 'EIO', mode: 'once' });
  fileSystem.failAt({ kind: 'any', n: 3, errno: 'ENOSPC', mode: 'once' });
  assert.deepEqual(await writeBytes(handle, 4), ['EIO', 'ok', 'ENOSPC', 'ok']);
  assert.equal(fileSystem.failures, 2);
});

test('a failed sync leaves the data written but not synced', async () => {
  const { base, fileSystem } = setup();
  const handle = await fileSystem.open('/f', 'create');
  await fileSystem.syncDirectory('/');
  await handle.write(Buffer.from('data'), 0, 4, 0);
  fileSystem.failAt({ kind: 'sync', n: 1, errno: 'EIO', mode: 'once' });
  await assert.rejects(handle.sync(), { code: 'EIO' });
  assert.equal(base.dump().get('/f')?.toString(), 'data', 'written');
  assert.equal(base.crash().dump().get('/f')?.length, 0, 'not synced');
  assert.equal(base.syncCount, 1, 'only the directory sync reached the file system');
});

test('a failed close still releases the handle, as close(2) does', async () => {
  const { fileSystem } = setup();
  const handle = await fileSystem.open('/f', 'create');
  fileSystem.failAt({ kind: 'close', n: 1, errno: 'EIO', mode: 'once' });
  await assert.rejects(handle.close(), { code: 'EIO' });
  await assert.rejects(handle.size(), { code: 'EBADF' });
});

test('failAt rejects an n that is not a positive integer', () => {
  const { fileSystem } = setup();
  assert.throws(() => fileSystem.failAt({ kind: 'write', n: 0, errno: 'EIO', mode: 'once' }), RangeError);
  assert.throws(() => fileSystem.failAt({ kind: 'write', n: 1.5, errno: 'EIO', mode: 'once' }), RangeError);
});
