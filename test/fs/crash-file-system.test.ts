/**
 * CrashFileSystem: POSIX positional I/O and open modes, and the power-loss model - what survives of
 * file contents (synced or not, dropped, kept or torn) and of names (created, renamed, unlinked,
 * with or without a directory sync) - plus the hooks that enumerate crash points.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CrashFileSystem } from '../../src/fs/crash-file-system.js';
import type { FileHandle } from '../../src/fs/types.js';

async function writeText(handle: FileHandle, text: string, position: number): Promise<void> {
  await handle.write(Buffer.from(text), 0, text.length, position);
}

/** A file at `path` holding `text`, synced and with its name synced. */
async function durableFile(fileSystem: CrashFileSystem, path: string, text: string): Promise<FileHandle> {
  const handle = await fileSystem.open(path, 'create');
  await writeText(handle, text, 0);
  await handle.sync();
  await fileSystem.syncDirectory('/');
  return handle;
}

function contentOf(fileSystem: CrashFileSystem, path: string): string | undefined {
  return fileSystem.dump().get(path)?.toString();
}

// Contents.

test('unsynced writes are dropped by a power loss', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'synced');
  await writeText(handle, '+unsynced', 6);
  assert.equal(contentOf(fileSystem, '/f'), 'synced+unsynced');
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'synced');
  assert.equal(contentOf(fileSystem.crash({ unsynced: 'drop' }), '/f'), 'synced');
});

test('synced writes survive a power loss, by sync and by datasync', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'one');
  await writeText(handle, 'two', 3);
  await handle.datasync();
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'onetwo');
});

test('an unsynced truncate is undone by a power loss', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'abcdef');
  await handle.truncate(2);
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'abcdef');
});

test('keep mode leaves everything written, names included (a killed process)', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'never synced', 0);
  assert.equal(contentOf(fileSystem.crash({ unsynced: 'keep' }), '/f'), 'never synced');
});

test('crash() does not change the file system it is called on, and its result starts fully durable', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'a');
  await writeText(handle, 'b', 1);
  const crashed = fileSystem.crash({ unsynced: 'tear', seed: 7 });
  assert.equal(contentOf(fileSystem, '/f'), 'ab');
  await handle.sync();
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'ab', 'the original still syncs its pending write');
  const content = contentOf(crashed, '/f');
  assert.equal(contentOf(crashed.crash(), '/f'), content, 'a crashed file system has nothing unsynced');
});

// Tearing.

test('tear mode yields only replayed prefixes of the unsynced writes, and every one of them over many seeds', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'AAAA');
  const pending = [
    { text: 'BBBB', position: 4 },
    { text: 'CCC', position: 8 },
    { text: 'DD', position: 1 },
  ];
  for (const { text, position } of pending) await writeText(handle, text, position);
  // Every allowed outcome: the first k writes replayed, the k-th cut after any of its bytes.
  const allowed = new Set<string>(['AAAA']);
  for (let count = 1; count <= pending.length; count++) {
    const last = pending[count - 1] as (typeof pending)[number];
    for (let cut = 0; cut <= last.text.length; cut++) {
      let state = 'AAAA';
      for (const [index, operation] of pending.slice(0, count).entries()) {
        const text = index === count - 1 ? operation.text.slice(0, cut) : operation.text;
        state = state.padEnd(operation.position, '\0');
        state = state.slice(0, operation.position) + text + state.slice(operation.position + text.length);
      }
      allowed.add(state);
    }
  }
  const seen = new Set<string>();
  for (let seed = 0; seed < 2000; seed++) {
    const torn = contentOf(fileSystem.crash({ unsynced: 'tear', seed }), '/f') ?? 'missing';
    assert.ok(allowed.has(torn), `seed ${seed}: ${JSON.stringify(torn)} is not a replayed prefix`);
    assert.ok(torn.length >= 4 && torn.startsWith('A') && torn.endsWith('A', 4), `seed ${seed}: the durable content is always there`);
    assert.ok(!torn.includes('\0'), `seed ${seed}: never a byte that was not written`);
    seen.add(torn);
  }
  assert.deepEqual([...seen].sort(), [...allowed].sort(), 'every prefix is reachable');
  assert.equal(contentOf(fileSystem.crash({ unsynced: 'tear', seed: 42 }), '/f'), contentOf(fileSystem.crash({ unsynced: 'tear', seed: 42 }), '/f'), 'a seed replays');
});

test('tear mode replays an unsynced truncate in order with the writes around it', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'abcdef');
  await handle.truncate(2);
  await writeText(handle, 'Z', 4);
  const seen = new Set<string>();
  for (let seed = 0; seed < 300; seed++) seen.add(contentOf(fileSystem.crash({ unsynced: 'tear', seed }), '/f') ?? 'missing');
  assert.deepEqual([...seen].sort(), ['ab', 'ab\0\0Z', 'abcdef'].sort());
});

// Names.

test('a file created without a directory sync vanishes, even when its data was synced', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'data', 0);
  await handle.sync();
  assert.equal(fileSystem.crash().dump().has('/f'), false);
  await fileSystem.syncDirectory('/');
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'data');
});

test('a rename not followed by a directory sync is undone, the replaced file coming back', async () => {
  const fileSystem = new CrashFileSystem();
  await durableFile(fileSystem, '/current', 'old');
  await durableFile(fileSystem, '/temporary', 'new');
  await fileSystem.rename('/temporary', '/current');
  assert.deepEqual(await fileSystem.readdir('/'), ['current']);
  const crashed = fileSystem.crash();
  assert.equal(contentOf(crashed, '/current'), 'old');
  assert.equal(contentOf(crashed, '/temporary'), 'new');
});

test('a rename followed by a directory sync survives a power loss', async () => {
  const fileSystem = new CrashFileSystem();
  await durableFile(fileSystem, '/current', 'old');
  await durableFile(fileSystem, '/temporary', 'new');
  await fileSystem.rename('/temporary', '/current');
  await fileSystem.syncDirectory('/');
  assert.deepEqual(fileSystem.crash().dump(), new Map([['/current', Buffer.from('new')]]));
});

test('an unlink is undone by a power loss unless the directory was synced', async () => {
  const fileSystem = new CrashFileSystem();
  await durableFile(fileSystem, '/f', 'data');
  await fileSystem.unlink('/f');
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'data');
  await fileSystem.syncDirectory('/');
  assert.equal(fileSystem.crash().dump().has('/f'), false);
});

test('a directory sync makes durable only the names of that directory', async () => {
  const fileSystem = new CrashFileSystem();
  await fileSystem.mkdir('/a/b');
  for (const path of ['/a/f', '/a/b/f']) await (await fileSystem.open(path, 'create')).sync();
  await fileSystem.syncDirectory('/a/b');
  assert.deepEqual([...fileSystem.crash().dump().keys()], ['/a/b/f']);
  assert.deepEqual((await fileSystem.crash().readdir('/a')).sort(), ['b'], 'directories are durable at once');
});

test('a handle to an unlinked file keeps reading and writing its inode', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await durableFile(fileSystem, '/f', 'still here');
  await fileSystem.unlink('/f');
  assert.deepEqual(await fileSystem.readdir('/'), []);
  await assert.rejects(fileSystem.open('/f', 'read'), { code: 'ENOENT' });
  const buffer = Buffer.alloc(10);
  assert.equal(await handle.read(buffer, 0, 10, 0), 10);
  assert.equal(buffer.toString(), 'still here');
  await writeText(handle, '!', 10);
  assert.equal(await handle.size(), 11);
  await handle.close();
});

// POSIX I/O.

test('a write past the end zero-fills the gap', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'ab', 0);
  await writeText(handle, 'z', 5);
  assert.deepEqual(fileSystem.dump().get('/f'), Buffer.from('ab\0\0\0z'));
});

test('a read at or past EOF returns 0 and a read across EOF returns the bytes there are', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'abc', 0);
  const buffer = Buffer.alloc(8, 0xff);
  assert.equal(await handle.read(buffer, 0, 8, 3), 0);
  assert.equal(handle.readSync(buffer, 0, 8, 100), 0);
  assert.equal(handle.readSync(buffer, 2, 8 - 2, 1), 2);
  assert.deepEqual(buffer.subarray(0, 5), Buffer.from([0xff, 0xff, 0x62, 0x63, 0xff]));
});

test('truncate shrinks, then extends with zeros (never the bytes cut off before)', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'abcdef', 0);
  await handle.truncate(2);
  assert.equal(await handle.size(), 2);
  await handle.truncate(5);
  assert.deepEqual(fileSystem.dump().get('/f'), Buffer.from('ab\0\0\0'));
  await writeText(handle, 'Z', 7);
  assert.deepEqual(fileSystem.dump().get('/f'), Buffer.from('ab\0\0\0\0\0Z'));
});

test('an extension by truncate is a hole: it reads as zeros, survives a power loss once synced, and costs no memory', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'abc', 0);
  // 1 GiB: were the hole materialized, each sync and crash below would copy it.
  const holeEnd = 1 << 30;
  await handle.truncate(holeEnd);
  await handle.sync();
  await fileSystem.syncDirectory('/');
  await writeText(handle, 'XY', 5);
  const window = Buffer.alloc(9, 0x2e);
  assert.equal(handle.readSync(window, 0, 9, 0), 9);
  assert.deepEqual(window, Buffer.from('abc\0\0XY\0\0'));
  const tail = Buffer.alloc(4, 0x2e);
  assert.equal(handle.readSync(tail, 0, 4, holeEnd - 2), 2, 'reads stop at the end of the file');
  assert.deepEqual(tail, Buffer.from('\0\0..'));
  const heapBefore = process.memoryUsage().arrayBuffers;
  const crashed = fileSystem.crash({ unsynced: 'drop' });
  const kept = fileSystem.crash({ unsynced: 'keep' });
  assert.ok(process.memoryUsage().arrayBuffers - heapBefore < 1 << 20, 'a crash copied the hole');
  assert.equal((await crashed.stat('/f')).sizeBytes, holeEnd, 'the synced extension survives');
  const reopened = await crashed.open('/f', 'read');
  const start = Buffer.alloc(8, 0x2e);
  reopened.readSync(start, 0, 8, 0);
  assert.deepEqual(start, Buffer.from('abc\0\0\0\0\0'), 'the unsynced write is dropped, the hole stays zeros');
  assert.equal((await kept.stat('/f')).sizeBytes, holeEnd);
  // Shrinking into the written bytes and growing again never brings the cut bytes back.
  await handle.truncate(4);
  await handle.truncate(8);
  const again = Buffer.alloc(8, 0x2e);
  handle.readSync(again, 0, 8, 0);
  assert.deepEqual(again, Buffer.from('abc\0\0\0\0\0'));
});

test('a zero-length write past the end does not extend the file', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  await handle.write(Buffer.alloc(4), 0, 0, 100);
  assert.equal(await handle.size(), 0);
});

test('a write copies from buffer[offset..offset+length] and later changes to the buffer do not leak in', async () => {
  const fileSystem = new CrashFileSystem();
  const handle = await fileSystem.open('/f', 'create');
  const buffer = Buffer.from('0123456789');
  handle.writeSync(buffer.subarray(2), 3, 2, 0);
  buffer.fill(0x78);
  assert.equal(contentOf(fileSystem, '/f'), '56');
  assert.equal(contentOf(fileSystem.crash({ unsynced: 'keep' }), '/f'), '56');
});

// Open modes and errors.

test('open modes: read and readwrite need the file, create refuses it, overwrite truncates it', async () => {
  const fileSystem = new CrashFileSystem();
  await assert.rejects(fileSystem.open('/f', 'read'), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/f' });
  await assert.rejects(fileSystem.open('/f', 'readwrite'), { code: 'ENOENT' });
  await assert.rejects(fileSystem.open('/missing/f', 'create'), { code: 'ENOENT' });
  await durableFile(fileSystem, '/f', 'abc');
  await assert.rejects(fileSystem.open('/f', 'create'), { code: 'EEXIST' });
  assert.equal(await (await fileSystem.open('/f', 'readwrite')).size(), 3);
  const overwritten = fileSystem.openSync('/f', 'overwrite');
  assert.equal(await overwritten.size(), 0);
  assert.equal(contentOf(fileSystem.crash(), '/f'), 'abc', 'the truncate of overwrite is unsynced');
});

test('a read-only or closed handle refuses writes with EBADF', async () => {
  const fileSystem = new CrashFileSystem();
  const writer = await durableFile(fileSystem, '/f', 'abc');
  const reader = await fileSystem.open('/f', 'read');
  await assert.rejects(writeText(reader, 'x', 0), { code: 'EBADF' });
  await assert.rejects(reader.truncate(0), { code: 'EBADF' });
  await writer.close();
  await assert.rejects(writer.size(), { code: 'EBADF' });
  await assert.rejects(writer.close(), { code: 'EBADF' });
});

test('directories: opening one is EISDIR, readdir of a missing one is ENOENT, of a file ENOTDIR', async () => {
  const fileSystem = new CrashFileSystem();
  await fileSystem.mkdir('/a/b');
  await fileSystem.mkdir('/a/b');
  await (await fileSystem.open('/a/f', 'create')).close();
  await assert.rejects(fileSystem.open('/a/b', 'read'), { code: 'EISDIR' });
  await assert.rejects(fileSystem.readdir('/nope'), { code: 'ENOENT' });
  await assert.rejects(fileSystem.readdir('/a/f'), { code: 'ENOTDIR' });
  await assert.rejects(fileSystem.unlink('/a/b'), { code: 'EISDIR' });
  await assert.rejects(fileSystem.mkdir('/a/f'), { code: 'EEXIST' });
  await assert.rejects(fileSystem.stat('/a/missing'), { code: 'ENOENT' });
  assert.deepEqual((await fileSystem.readdir('/a')).sort(), ['b', 'f']);
  assert.deepEqual(await fileSystem.stat('/a/b'), { sizeBytes: 0, isFile: false, isDirectory: true, mtimeMs: 0 });
  assert.equal((await fileSystem.stat('/a/f')).isFile, true);
});

test('paths are normalized with posix semantics', async () => {
  const fileSystem = new CrashFileSystem();
  await fileSystem.mkdir('db//sub/');
  const handle = await fileSystem.open('/db/other/../sub/./f', 'create');
  assert.equal(handle.path, '/db/sub/f');
  await writeText(handle, 'x', 0);
  assert.equal((await fileSystem.readFile('db/sub/f')).toString(), 'x');
});

// Hooks and helpers.

test('onSync runs after each sync takes effect, so a crash inside it keeps what was just synced', async () => {
  const fileSystem = new CrashFileSystem();
  const captured: Array<{ kind: string; path: string; files: Map<string, Buffer> }> = [];
  fileSystem.onSync = (kind, path) => captured.push({ kind, path, files: fileSystem.crash().dump() });
  const handle = await fileSystem.open('/f', 'create');
  await fileSystem.syncDirectory('/');
  await writeText(handle, 'a', 0);
  await handle.sync();
  await writeText(handle, 'b', 1);
  await handle.datasync();
  assert.equal(fileSystem.syncCount, 3);
  assert.deepEqual(
    captured.map(({ kind, path, files }) => [kind, path, files.get('/f')?.toString()]),
    [
      ['syncDirectory', '/', ''],
      ['sync', '/f', 'a'],
      ['datasync', '/f', 'ab'],
    ],
  );
});

test('onOperation runs before each mutating operation, so a crash inside it misses that operation', async () => {
  const fileSystem = new CrashFileSystem();
  const captured: Array<[string, string, string | undefined]> = [];
  fileSystem.onOperation = (kind, path) => captured.push([kind, path, contentOf(fileSystem.crash({ unsynced: 'keep' }), '/f')]);
  const handle = await fileSystem.open('/f', 'create');
  await writeText(handle, 'abc', 0);
  await handle.truncate(1);
  await handle.sync(); // not an operation
  await fileSystem.rename('/f', '/g');
  await fileSystem.unlink('/g');
  assert.equal(fileSystem.operationCount, 5);
  assert.deepEqual(captured, [
    ['create', '/f', undefined],
    ['write', '/f', ''],
    ['truncate', '/f', 'abc'],
    ['rename', '/f', 'a'],
    ['unlink', '/g', undefined],
  ]);
});

test('dump and totalBytes report the current files, not the durable ones', async () => {
  const fileSystem = new CrashFileSystem();
  await fileSystem.mkdir('/d');
  await writeText(await fileSystem.open('/d/a', 'create'), 'abc', 0);
  await writeText(await fileSystem.open('/b', 'create'), 'de', 0);
  assert.deepEqual(fileSystem.dump(), new Map([['/b', Buffer.from('de')], ['/d/a', Buffer.from('abc')]]));
  assert.equal(fileSystem.totalBytes(), 5);
  assert.equal(fileSystem.crash().totalBytes(), 0);
});
