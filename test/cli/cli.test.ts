/**
 * The `silt` CLI, run as a user would (the built dist/cli/main.js), and the package as installed.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { open } from '../../src/index.js';
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
  // A block that vanishes once get has printed part of the value (the second block, read ahead
  // while the first is printed): get fails with STALE rather than finish the value from another
  // open, which may hold another revision of it. What it printed is the start of the value.
  const partial = vanishing(blocks + 2, 'get', 'k1');
  assert.match(partial.stderr, /vanish-block: open 11 /);
  assert.equal(partial.status, 1);
  assert.match(partial.stderr, /STALE/);
  assert.ok((values[1] as string).startsWith(partial.stdout) && partial.stdout.length > 0, `printed ${partial.stdout.length} bytes`);
  const listed = vanishing(blocks + 5, 'ls', '--values');
  assert.match(listed.stderr, /vanish-block: open 14 /);
  assert.equal(listed.status, 0, listed.stderr);
  assert.equal(listed.stdout, values.map((value, index) => `k${index}\t${value}\n`).join(''));
  const reversed = vanishing(blocks + 5, 'ls', '--values', '--reverse', '--limit', '2');
  assert.equal(reversed.status, 0, reversed.stderr);
  assert.equal(reversed.stdout, [2, 1].map((index) => `k${index}\t${values[index]}\n`).join(''));
});

/**
 * Preloaded into a CLI process: its peak resident size (KiB) on stderr at exit. VmHWM, not
 * `resourceUsage().maxRSS`: the rusage peak carries over from the parent across fork and exec
 * (a child of a test process holding 200 MB reports at least 200 MB), the memory map's does not.
 */
const REPORT_MAX_RSS = `data:text/javascript,${encodeURIComponent(
  "import { readFileSync } from 'node:fs'; process.on('exit', () => process.stderr.write(`maxrss ${/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]}\\n`));",
)}`;

/** Runs the CLI with the given standard input and output (file descriptors); its peak resident size in MiB. */
function siltMeasured(directory: string, stdin: number | 'ignore', stdout: number | 'pipe', ...args: string[]): { status: number | null; stderr: string; maxRssMb: number } {
  const result = spawnSync(process.execPath, ['--import', REPORT_MAX_RSS, CLI, '--dir', directory, ...args], { stdio: [stdin, stdout, 'pipe'], encoding: 'utf8' });
  const maxRss = /maxrss (\d+)/.exec(result.stderr)?.[1];
  assert.ok(maxRss !== undefined, result.stderr);
  return { status: result.status, stderr: result.stderr, maxRssMb: Number(maxRss) / 1024 };
}

test('silt put and get stream a value larger than they may hold: standard input and --file in, standard output out, in bounded memory; byte ranges; a reader that stops early', async (t) => {
  const root = temporaryDirectory(t);
  const directory = join(root, 'data');
  const megabytes = 192;
  const value = Buffer.allocUnsafe(megabytes * 1024 * 1024);
  randomFillSync(value);
  const input = join(root, 'input');
  writeFileSync(input, value);
  const digest = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
  // Peak resident size of each command, in MiB: about 100 here (the runtime, the block buffers
  // and staging, and the block cache is not filled by a single read), where holding the value
  // whole takes twice its size for put (the chunks, then one Buffer) and its size for get.
  const bound = megabytes;
  const fromFile = siltMeasured(directory, 'ignore', 'pipe', 'put', 'file', '--file', input);
  assert.equal(fromFile.status, 0, fromFile.stderr);
  assert.ok(fromFile.maxRssMb < bound, `put --file of ${megabytes} MiB peaked at ${fromFile.maxRssMb.toFixed(0)} MiB`);
  const inputFd = openSync(input, 'r');
  const fromStdin = siltMeasured(directory, inputFd, 'pipe', 'put', 'stdin');
  closeSync(inputFd);
  assert.equal(fromStdin.status, 0, fromStdin.stderr);
  assert.ok(fromStdin.maxRssMb < bound, `put from standard input of ${megabytes} MiB peaked at ${fromStdin.maxRssMb.toFixed(0)} MiB`);
  for (const key of ['file', 'stdin']) {
    const output = join(root, `output-${key}`);
    const outputFd = openSync(output, 'w');
    const read = siltMeasured(directory, 'ignore', outputFd, 'get', key);
    closeSync(outputFd);
    assert.equal(read.status, 0, read.stderr);
    assert.ok(read.maxRssMb < bound, `get of ${megabytes} MiB peaked at ${read.maxRssMb.toFixed(0)} MiB`);
    assert.equal(digest(readFileSync(output)), digest(value), `${key}: the bytes read back differ`);
  }
  // Byte ranges, `end` included as in fs.createReadStream; one past the end is INVALID_ARGUMENT.
  const range = spawnSync(process.execPath, [CLI, '--dir', directory, 'get', 'file', '--start', '3000000', '--end', '3000099']);
  assert.equal(range.status, 0, String(range.stderr));
  assert.ok(range.stdout.equals(value.subarray(3_000_000, 3_000_100)));
  const tail = spawnSync(process.execPath, [CLI, '--dir', directory, 'get', 'file', '--start', String(value.length - 10)]);
  assert.ok(tail.stdout.equals(value.subarray(value.length - 10)));
  const past = silt(directory, 'get', 'file', '--start', String(value.length + 1));
  assert.equal(past.status, 1);
  assert.match(past.stderr, /INVALID_ARGUMENT/);
  // A reader that stops early (`silt get k | head -c 100`): the command stops, quietly.
  const early = spawn(process.execPath, [CLI, '--dir', directory, 'get', 'file'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  early.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const first = await new Promise<Buffer>((resolve) => early.stdout.once('data', resolve));
  early.stdout.destroy();
  const code = await new Promise<number | null>((resolve) => early.once('close', (exitCode) => resolve(exitCode)));
  assert.ok(first.equals(value.subarray(0, first.length)));
  assert.equal(code, 0, stderr);
  assert.equal(stderr, '');
});

test('silt compact and gc run one pass and print what it did as JSON', (t) => {
  const directory = join(temporaryDirectory(t), 'data');
  for (let index = 0; index < 20; index++) assert.equal(silt(directory, 'put', `k${index % 4}`, `value-${index}`).status, 0);
  const big = spawnSync(process.execPath, [CLI, '--dir', directory, 'put', 'big'], { input: Buffer.alloc(3 * 1024 * 1024, 7) });
  assert.equal(big.status, 0, String(big.stderr));
  assert.equal(silt(directory, 'delete', 'big').status, 0);
  const compacted = silt(directory, 'compact');
  assert.equal(compacted.status, 0, compacted.stderr);
  const counters = JSON.parse(compacted.stdout) as { runs: number; segmentsCompacted: number };
  assert.equal(counters.runs, 1);
  assert.ok(counters.segmentsCompacted >= 1, compacted.stdout);
  const collected = silt(directory, 'gc');
  assert.equal(collected.status, 0, collected.stderr);
  const result = JSON.parse(collected.stdout) as { listed: number; deleted: number; waiting: number };
  // The deleted value's block is on the delayed list (listed by this pass or an earlier one, at
  // close), deleted once the minimum age (60 s) has passed.
  assert.equal(result.deleted, 0, collected.stdout);
  assert.equal(result.waiting, 1, collected.stdout);
  assert.equal(silt(directory, 'get', 'k3').stdout, 'value-19');
  assert.equal(silt(directory, 'verify').status, 0);
});

test('silt get --revision prints an object\'s revision without reading its bytes', async (t) => {
  const directory = join(temporaryDirectory(t), 'data');
  const db = await open(directory, { objects: { inlineBytes: 0 } });
  // Random bytes: no two blocks alike.
  await db.append('obj', randomFillSync(Buffer.alloc(3 * 1024 * 1024)));
  const { revision } = await db.writeAt('obj', 1024 * 1024, randomFillSync(Buffer.alloc(1024 * 1024)));
  await db.put('small', 'v');
  await db.close();
  // Every block file damaged: a read of the object's bytes (stat's digest, or get) fails.
  const blockDirectory = join(directory, 'blocks');
  const blockFiles = readdirSync(blockDirectory, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.blk'));
  assert.ok(blockFiles.length >= 4, String(blockFiles));
  for (const name of blockFiles) {
    const path = join(blockDirectory, name);
    const bytes = readFileSync(path);
    bytes[0] = (bytes[0] as number) ^ 0xff;
    writeFileSync(path, bytes);
  }
  assert.match(silt(directory, 'get', 'obj').stderr, /CORRUPTION/);
  const printed = silt(directory, 'get', 'obj', '--revision');
  assert.equal(printed.status, 0, printed.stderr);
  assert.equal(printed.stdout, `${revision}\n`);
  assert.equal(silt(directory, 'get', 'small', '--revision').stdout, `${revision + 1}\n`);
  assert.equal(silt(directory, 'get', 'missing', '--revision').status, 1);
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
