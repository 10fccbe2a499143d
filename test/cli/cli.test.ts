/**
 * The `silt` CLI, run as a user would (the built dist/cli/main.js), and the package as installed.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { temporaryDirectory } from '../helpers.js';

const CLI = join(process.cwd(), 'dist/cli/main.js');

function silt(directory: string, ...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, '--dir', directory, ...args], { encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('silt put, get, ls, delete, stats and verify work on a --dir', (t) => {
  const directory = join(temporaryDirectory(t), 'data');
  assert.equal(silt(directory, 'put', 'user:1', 'ada').status, 0);
  assert.equal(silt(directory, 'put', 'user:2', 'grace').status, 0);
  assert.equal(silt(directory, 'put', 'other', 'x').status, 0);
  assert.equal(silt(directory, 'get', 'user:2').stdout, 'grace');
  assert.equal(silt(directory, 'ls', '--prefix', 'user:').stdout, 'user:1\nuser:2\n');
  assert.equal(silt(directory, 'ls', '--reverse', '--limit', '1', '--values').stdout, 'user:2\tgrace\n');
  assert.match(silt(directory, 'delete', 'user:1').stdout, /deleted at revision 4/);
  const missing = silt(directory, 'get', 'user:1');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /not found/);
  const stats = JSON.parse(silt(directory, 'stats').stdout) as { keys: number; revision: number };
  assert.equal(stats.keys, 2);
  assert.equal(stats.revision, 4);
  const verify = silt(directory, 'verify');
  assert.equal(verify.status, 0, verify.stdout);
  assert.match(verify.stdout, /^ok$/m);
});

test('read-only commands open the store again when a block they read was collected since their open (STALE): get reads the value, ls --values goes on after the last key it printed', (t) => {
  const directory = join(temporaryDirectory(t), 'data');
  // Values over the default threshold, of three 1 MiB blocks each, no two blocks alike (no dedup).
  const values = ['a', 'b', 'c'].map((letter) => [0, 1, 2].map((block) => `${letter}${block}`.padEnd(1024 * 1024, letter)).join(''));
  for (const [index, value] of values.entries()) {
    const result = spawnSync(process.execPath, [CLI, '--dir', directory, 'put', `k${index}`], { input: value });
    assert.equal(result.status, 0, String(result.stderr));
  }
  const blocks = 3 * 3;
  const vanishing = (vanishAt: number, ...args: string[]) =>
    spawnSync(process.execPath, ['--import', join(process.cwd(), 'test/cli/vanish-block.mjs'), CLI, '--dir', directory, ...args], {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, VANISH_AT: String(vanishAt) },
    });
  // Opens 1..9 measure the block files at open; 10 is the first block read.
  const get = vanishing(blocks + 1, 'get', 'k1');
  assert.match(get.stderr, /vanish-block: open 10 /);
  assert.equal(get.status, 0, get.stderr);
  assert.equal(get.stdout, values[1]);
  // The fifth block read is in the second value: the first was printed, then the open went stale.
  const listed = vanishing(blocks + 5, 'ls', '--values');
  assert.match(listed.stderr, /vanish-block: open 14 /);
  assert.equal(listed.status, 0, listed.stderr);
  assert.equal(listed.stdout, values.map((value, index) => `k${index}\t${value}\n`).join(''));
  const reversed = vanishing(blocks + 5, 'ls', '--values', '--reverse', '--limit', '2');
  assert.equal(reversed.status, 0, reversed.stderr);
  assert.equal(reversed.stdout, [2, 1].map((index) => `k${index}\t${values[index]}\n`).join(''));
});

test('silt exits non-zero with a one-line message on errors and bad usage', (t) => {
  const directory = join(temporaryDirectory(t), 'data');
  const missingStore = silt(directory, 'get', 'k');
  assert.equal(missingStore.status, 1);
  assert.equal(missingStore.stderr.trim().split('\n').length, 1);
  assert.match(missingStore.stderr, /NOT_FOUND/);
  assert.equal(silt(directory, 'put', 'k', 'v', '--if-revision', '7').status, 1);
  assert.match(silt(directory, 'put', 'k', 'v', '--if-revision', '7').stderr, /CONFLICT/);
  assert.equal(silt(directory, 'frobnicate').status, 2);
  assert.equal(silt(directory, 'put').status, 2);
});

test('silt verify exits 1 and names the problem when a segment is damaged', (t) => {
  const directory = join(temporaryDirectory(t), 'data');
  for (let index = 0; index < 5; index++) silt(directory, 'put', `k${index}`, `value-${index}`);
  const segment = join(directory, '0000000000000001.log');
  const bytes = execFileSync('cat', [segment]);
  bytes[60] = (bytes[60] as number) ^ 0xff;
  writeFileSync(segment, bytes);
  const result = silt(directory, 'verify');
  assert.equal(result.status, 1);
  assert.match(result.stdout, /problem \[(segment|checkpoint)\]/);
});

test("import { open, SiltError } from 'silt' works inside the repo and from an installed copy", (t) => {
  const script = "import('silt').then(({ open, SiltError }) => console.log(typeof open, typeof SiltError))";
  assert.equal(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }).trim(), 'function function');
  const consumer = temporaryDirectory(t);
  const tarball = execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', consumer, '--silent'], { encoding: 'utf8' }).trim().split('\n').pop() as string;
  const installed = join(consumer, 'node_modules', 'silt');
  mkdirSync(installed, { recursive: true });
  execFileSync('tar', ['-xzf', join(consumer, tarball), '-C', installed, '--strip-components=1']);
  writeFileSync(
    join(consumer, 'check.mjs'),
    "import { open, SiltError } from 'silt';\nconst db = await open(process.argv[2]);\nawait db.put('k', 'v');\nconsole.log((await db.get('k')).toString(), new SiltError('CLOSED', 'x').code);\nawait db.close();\n",
  );
  // The installed copy has no node_modules of its own: only the core (no runtime dependency) loads.
  const output = execFileSync(process.execPath, [join(consumer, 'check.mjs'), join(consumer, 'db')], { encoding: 'utf8', cwd: consumer });
  assert.equal(output.trim(), 'v CLOSED');
});
