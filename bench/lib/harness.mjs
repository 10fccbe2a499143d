/**
 * The harness: running one measurement in a fresh child process, temp directories, data
 * generation, statistics and formatting. Nothing here knows about a particular store or workload.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, fsyncSync, lstatSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_DIR = path.resolve(BENCH_DIR, '..');
const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));
/**
 * Environment variable naming the directory the children import silt from (its `index.js`);
 * unset: the repository's `dist/`. run.mjs sets it to a snapshot of `dist/` taken at start.
 */
export const SILT_DIST_ENV = 'SILT_BENCH_DIST';

/**
 * Copy the repository's `dist/` to a fresh temp dir, so that every child of one run imports the
 * same build even if `dist/` is rebuilt meanwhile (silt's entry imports only node: modules, so the
 * copy needs no node_modules). Returns the copy's path and a function that removes it.
 */
export function snapshotDist() {
  const parent = makeTempDir('dist');
  const copy = path.join(parent, 'dist');
  cpSync(path.join(REPO_DIR, 'dist'), copy, { recursive: true });
  return { path: copy, builtAt: statSync(path.join(REPO_DIR, 'dist', 'index.js')).mtime, remove: () => removeDir(parent) };
}

/** The line prefix a worker prints its JSON result behind; everything else it prints is passed on. */
export const RESULT_MARK = '@@bench-result ';

// ---------------------------------------------------------------------------------------------
// Child processes

/**
 * Run `task` (a plain object; `task.name` picks the function in tasks.mjs) in a fresh Node
 * process and return its result. Each measurement gets its own process so that one store's heap,
 * threads and page-cache habits do not leak into another's numbers.
 */
export function runTask(task, { nodeFlags = [], timeoutMs = 15 * 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeFlags, WORKER, JSON.stringify(task)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let result;
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.startsWith(RESULT_MARK)) result = JSON.parse(line.slice(RESULT_MARK.length));
        else process.stdout.write(`    | ${line}\n`);
      }
    });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`timed out after ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0 && result !== undefined) resolve(result);
      else reject(new Error(`worker exited with ${signal ?? `code ${code}`}${result === undefined ? ' and no result' : ''}`));
    });
  });
}

/**
 * Write back every dirty page in the system (sync(1)), so that what an earlier sample left in the
 * page cache is not flushed on the next sample's fsyncs. Best effort: skipped where there is no
 * `sync` command.
 */
export function flushPageCache() {
  if (process.platform !== 'win32') spawnSync('sync', [], { stdio: 'ignore' });
}

// ---------------------------------------------------------------------------------------------
// Temp directories

/** A fresh empty directory under os.tmpdir(). */
export function makeTempDir(label) {
  return mkdtempSync(path.join(os.tmpdir(), `silt-bench-${label}-`));
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
}

/** Run `fn(dir)` with a fresh temp directory that is removed afterwards, whatever happens. */
export async function withTempDir(label, fn) {
  const dir = makeTempDir(label);
  try {
    return await fn(dir);
  } finally {
    removeDir(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Data

export const KEY_BYTES = 16;
export const VALUE_BYTES = 100;
const VALUE_POOL_COUNT = 4096;

/** `count` random 16-byte keys, as Buffers sharing one allocation. */
export function randomKeys(count) {
  const bytes = randomBytes(count * KEY_BYTES);
  const keys = new Array(count);
  for (let i = 0; i < count; i++) keys[i] = bytes.subarray(i * KEY_BYTES, (i + 1) * KEY_BYTES);
  return keys;
}

/** A source of 100-byte random (so incompressible) values; `value(i)` cycles through a pool. */
export function valuePool() {
  const bytes = randomBytes(VALUE_POOL_COUNT * VALUE_BYTES);
  const values = [];
  for (let i = 0; i < VALUE_POOL_COUNT; i++) values.push(bytes.subarray(i * VALUE_BYTES, (i + 1) * VALUE_BYTES));
  return (i) => values[i % VALUE_POOL_COUNT];
}

/** `count` indexes drawn uniformly from [0, range). */
export function randomIndexes(count, range) {
  const words = new Uint32Array(randomBytes(count * 4).buffer);
  const indexes = new Uint32Array(count);
  for (let i = 0; i < count; i++) indexes[i] = words[i] % range;
  return indexes;
}

/** A random permutation of [0, count) (Fisher-Yates). */
export function permutation(count) {
  const order = new Uint32Array(count);
  for (let i = 0; i < count; i++) order[i] = i;
  const words = new Uint32Array(randomBytes(count * 4).buffer);
  for (let i = count - 1; i > 0; i--) {
    const j = words[i] % (i + 1);
    const swap = order[i];
    order[i] = order[j];
    order[j] = swap;
  }
  return order;
}

/**
 * Random (incompressible) values of `size` bytes, each a slice of a shared random pool at a
 * random offset, so generating them inside a write loop costs nothing. Slices may overlap each
 * other, but never at the same offset in practice, and no store here dedups or compresses across
 * values at unaligned offsets (silt hashes whole values of up to `blockBytes`; LevelDB's snappy
 * works inside one block).
 */
export function randomValues(size, poolBytes = Math.max(64 * 2 ** 20, size * 8)) {
  const pool = randomBytes(poolBytes);
  const range = poolBytes - size + 1;
  return () => {
    const offset = randomBytes(4).readUInt32LE(0) % range;
    return pool.subarray(offset, offset + size);
  };
}

// ---------------------------------------------------------------------------------------------
// Bytes on disk and bytes sent to the device

/**
 * Bytes allocated on disk under `target`, recursively, the way `du` counts them: st_blocks * 512
 * per file and directory, each inode once (hard links), sparse holes not counted, symlinks not
 * followed. Equals `du -s -B1 target`. A file deleted during the walk (a store's background
 * compaction) counts 0, as it would for du.
 */
export function diskUsage(target, seen = new Set()) {
  try {
    const stats = lstatSync(target, { bigint: true });
    const inode = `${stats.dev}:${stats.ino}`;
    if (seen.has(inode)) return 0;
    seen.add(inode);
    let bytes = Number(stats.blocks) * 512;
    if (stats.isDirectory()) for (const name of readdirSync(target)) bytes += diskUsage(path.join(target, name), seen);
    return bytes;
  } catch (error) {
    if (error.code === 'ENOENT') return 0;
    throw error;
  }
}

function procIo() {
  const fields = {};
  for (const line of readFileSync('/proc/self/io', 'utf8').split('\n')) {
    const [name, value] = line.split(':');
    if (value !== undefined) fields[name.trim()] = Number(value);
  }
  return fields;
}

/** The /proc/diskstats line of the block device holding `directory` (matched by major:minor), or undefined. */
function diskstatsReader(directory) {
  try {
    const dev = statSync(directory).dev;
    const major = Math.floor(dev / 256) & 0xfff; // Linux new_encode_dev, as Node reports st_dev
    const minor = (dev & 0xff) | ((Math.floor(dev / 2 ** 12) & 0xfff00));
    const find = () => {
      for (const line of readFileSync('/proc/diskstats', 'utf8').split('\n')) {
        const fields = line.trim().split(/\s+/);
        if (Number(fields[0]) === major && Number(fields[1]) === minor) return fields;
      }
      return undefined;
    };
    const fields = find();
    if (fields === undefined) return undefined;
    return { device: fields[2], read: () => Number(find()[9]) * 512 }; // field 10: sectors written
  } catch {
    return undefined;
  }
}

/**
 * A counter of bytes written to the block device that holds `directory`.
 *
 * Preferred: /proc/diskstats, sectors written on that device (found by the directory's
 * major:minor). That is what reached the device, the file system's journal and metadata included;
 * but it is the whole device, so on a shared machine other processes' writes land in the window
 * too (`backgroundRate` estimates them).
 *
 * Not used unless diskstats is unusable: /proc/self/io `write_bytes - cancelled_write_bytes`
 * (per process, all threads). It counts a page when it is dirtied, and on kernels whose page cache
 * uses large folios (ext4 since Linux 6.16, xfs) dirtying 4 KiB inside a large folio is charged as
 * the whole folio: random in-place writes (LMDB's pages, SQLite's checkpoints) were over-counted
 * up to 150x here, while the device got only the 4 KiB. For appends it is exact. It is still
 * returned as `procIo`, for the per-sample details.
 */
export function deviceWriteCounter(directory) {
  const disk = diskstatsReader(directory);
  let procIoRead;
  try {
    if (Number.isFinite(procIo().write_bytes)) {
      procIoRead = () => {
        const io = procIo();
        return io.write_bytes - (io.cancelled_write_bytes || 0);
      };
    }
  } catch {
    procIoRead = undefined;
  }
  if (disk !== undefined) {
    return { method: `/proc/diskstats sectors written on ${disk.device} (whole device)`, read: disk.read, procIo: procIoRead };
  }
  if (procIoRead !== undefined) {
    return { method: '/proc/self/io write_bytes - cancelled_write_bytes (over-counts in-place writes where the page cache uses large folios)', read: procIoRead, procIo: procIoRead };
  }
  return undefined;
}

/**
 * fsync every file and directory under `target` (ours only, unlike sync(1), which would also push
 * other processes' dirty pages to the device inside a measurement window). Files deleted
 * meanwhile are skipped.
 */
export function fsyncTree(target) {
  let stats;
  try {
    stats = lstatSync(target);
  } catch (error) {
    if (error.code === 'ENOENT') return;
    throw error;
  }
  if (stats.isSymbolicLink()) return;
  if (stats.isDirectory()) {
    let names = [];
    try {
      names = readdirSync(target);
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
    }
    for (const name of names) fsyncTree(path.join(target, name));
  }
  let fd;
  try {
    fd = openSync(target, 'r');
    fsyncSync(fd);
  } catch (error) {
    if (error.code !== 'ENOENT') throw error;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Bytes per second other processes write to the device while this one is idle: sync(1), wait
 * `ms`, sync(1) again (so what they dirtied in the window is counted, not left for a write-back
 * 30 s later). An upper bound on the noise per second in a measurement window, which ends with an
 * fsync of our own files only.
 */
export async function backgroundRate(counter, ms = 1000) {
  flushPageCache();
  const before = counter.read();
  await new Promise((resolve) => setTimeout(resolve, ms));
  flushPageCache();
  return ((counter.read() - before) * 1000) / ms;
}

// ---------------------------------------------------------------------------------------------
// Concurrency and timing

/**
 * Run `concurrency` loops that each take the next operation number and perform `op(i)`, awaiting
 * it when it returns a promise, until `shouldStop(i)` says so. This is "keep up to `concurrency`
 * operations in flight". A synchronous `op` simply runs the whole loop in the first worker.
 * Returns the number of operations completed and the elapsed seconds.
 */
export async function runConcurrent(concurrency, shouldStop, op) {
  let next = 0;
  let completed = 0;
  const worker = async () => {
    for (;;) {
      const i = next;
      if (shouldStop(i)) return;
      next++;
      const pending = op(i);
      if (pending !== undefined) await pending;
      completed++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ops: completed, seconds: (performance.now() - started) / 1000 };
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

// ---------------------------------------------------------------------------------------------
// Formatting

/** 200000 -> '200k', 1000000 -> '1M'. */
export function sizeLabel(count) {
  if (count >= 1e6 && count % 1e6 === 0) return `${count / 1e6}M`;
  if (count >= 1e3 && count % 1e3 === 0) return `${count / 1e3}k`;
  return String(count);
}

/** 3 significant figures with a k/M suffix: 1234567 -> '1.23M'. */
export function formatCount(value) {
  if (!Number.isFinite(value)) return String(value);
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e3) return `${(value / 1e3).toPrecision(3)}k`;
  return value >= 100 ? value.toFixed(0) : value.toPrecision(3);
}

export function formatValue(value, unit) {
  if (value === undefined) return '-';
  if (typeof value === 'string') return value;
  if (unit === 'ms' || unit === 'µs') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  if (unit === 'B/key' || unit === 'count') return value.toFixed(0);
  return formatCount(value);
}

export function formatRatio(ratio) {
  if (ratio === undefined || !Number.isFinite(ratio)) return '-';
  return ratio >= 10 ? `${ratio.toFixed(0)}x` : `${ratio.toFixed(2)}x`;
}

/** Rows of cells as a space-aligned text table (first row is the header). */
export function textTable(rows) {
  const widths = rows[0].map((_, column) => Math.max(...rows.map((row) => String(row[column]).length)));
  const line = (row) => row.map((cell, column) => (column === 0 ? String(cell).padEnd(widths[column]) : String(cell).padStart(widths[column]))).join('  ');
  return [line(rows[0]), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

/** Rows of cells as a GitHub markdown table (first row is the header; columns after the first right-aligned). */
export function markdownTable(rows) {
  const line = (row) => `| ${row.join(' | ')} |`;
  return [line(rows[0]), line(rows[0].map((_, column) => (column === 0 ? '---' : '---:'))), ...rows.slice(1).map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Environment

function git(args) {
  const result = spawnSync('git', args, { cwd: REPO_DIR, encoding: 'utf8' });
  return result.status === 0 ? result.stdout.trim() : undefined;
}

/** The silt commit: short hash, '+dirty' when src/ has uncommitted changes. */
export function siltCommit() {
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head === undefined) return 'unknown (no git commit)';
  const dirty = git(['status', '--porcelain', '--', 'src']);
  return dirty ? `${head}+dirty` : head;
}

export function packageVersion(directory) {
  try {
    return JSON.parse(readFileSync(path.join(directory, 'package.json'), 'utf8')).version;
  } catch {
    return 'not installed';
  }
}

const FS_TYPES = { 0xef53: 'ext2/3/4', 0x01021994: 'tmpfs', 0x58465342: 'xfs', 0x9123683e: 'btrfs', 0x794c7630: 'overlayfs', 0x2fc12fc1: 'zfs' };

/** The file system type of `directory` (fsync is a no-op on tmpfs, which would flatter durable writes). */
export function fileSystemType(directory) {
  try {
    const type = statfsSync(directory).type;
    return FS_TYPES[type] ?? `0x${type.toString(16)}`;
  } catch {
    return 'unknown';
  }
}

export function hasDirectory(directory) {
  return existsSync(directory);
}
