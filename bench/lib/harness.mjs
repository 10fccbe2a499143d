/**
 * The harness: running one measurement in a fresh child process, temp directories, data
 * generation, statistics and formatting. Nothing here knows about a particular store or workload.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const BENCH_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_DIR = path.resolve(BENCH_DIR, '..');
const WORKER = fileURLToPath(new URL('./worker.mjs', import.meta.url));
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
  if (unit === 'ms') return value >= 100 ? value.toFixed(0) : value.toFixed(1);
  if (unit === 'B/key') return value.toFixed(0);
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
