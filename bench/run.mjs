#!/usr/bin/env node
/**
 * silt's benchmark suite: silt beside lmdb-js, classic-level and better-sqlite3.
 *
 *   npm run bench                        (from the repository root: build, then this file)
 *   node bench/run.mjs [--quick] [--runs N] [--only w1,w2] [--stores s1,s2] [--cpu-prof]
 *
 * Installs bench/'s own dependencies (the peers) on first use. See bench/README.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import {
  BENCH_DIR,
  REPO_DIR,
  SILT_DIST_ENV,
  fileSystemType,
  formatRatio,
  formatValue,
  markdownTable,
  packageVersion,
  siltCommit,
  snapshotDist,
  textTable,
} from './lib/harness.mjs';
import { PEER_PACKAGES, STORE_NAMES } from './lib/stores.mjs';
import { SIZES, TARGETS, WORKLOADS, WORKLOAD_NAMES } from './lib/workloads.mjs';

const USAGE = `usage: node bench/run.mjs [options]

  --quick             small sizes and 1 run per workload (a smoke run, under a minute)
  --runs N            samples per throughput figure, reported as the median (default 3; 1 with --quick)
  --only LIST         comma-separated workloads: ${WORKLOAD_NAMES.join(', ')}
  --stores LIST       comma-separated stores: ${STORE_NAMES.join(', ')}
  --cpu-prof          write a V8 CPU profile of every silt child process (to a temp dir, printed)
  -h, --help          this text`;

function fail(message) {
  console.error(`bench: ${message}\n\n${USAGE}`);
  process.exit(2);
}

function parseList(value, known, what) {
  const names = value.split(',').map((name) => name.trim()).filter(Boolean);
  for (const name of names) if (!known.includes(name)) fail(`unknown ${what} '${name}'`);
  return names;
}

function parseCli() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        quick: { type: 'boolean', default: false },
        runs: { type: 'string' },
        only: { type: 'string' },
        stores: { type: 'string' },
        'cpu-prof': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (error) {
    fail(error.message);
  }
  if (parsed.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const runs = parsed.runs === undefined ? (parsed.quick ? 1 : 3) : Number(parsed.runs);
  if (!Number.isInteger(runs) || runs < 1) fail(`--runs takes a positive integer, got '${parsed.runs}'`);
  return {
    quick: parsed.quick,
    runs,
    workloads: parsed.only === undefined ? WORKLOAD_NAMES : parseList(parsed.only, WORKLOAD_NAMES, 'workload'),
    // Keep the canonical order whatever order the user listed them in.
    stores: parsed.stores === undefined ? STORE_NAMES : STORE_NAMES.filter((name) => parseList(parsed.stores, STORE_NAMES, 'store').includes(name)),
    cpuProf: parsed['cpu-prof'],
  };
}

/** The peers are bench/'s own dependencies: install them on a fresh clone. */
function ensureDependencies() {
  if (existsSync(path.join(BENCH_DIR, 'node_modules'))) return;
  console.log('bench/node_modules is missing: installing the peers in bench/ (better-sqlite3 may compile from source; a minute or two)');
  const npm = (args) => spawnSync('npm', args, { cwd: BENCH_DIR, stdio: 'inherit', shell: process.platform === 'win32' });
  let result = npm(['ci', '--no-audit', '--no-fund']);
  if (result.status !== 0) {
    console.log('npm ci failed; trying npm install');
    result = npm(['install', '--no-audit', '--no-fund']);
  }
  if (result.status !== 0) {
    console.error('bench: could not install the bench dependencies (see npm output above)');
    process.exit(1);
  }
}

function printHeader(options) {
  const siltVersion = JSON.parse(readFileSync(path.join(REPO_DIR, 'package.json'), 'utf8')).version;
  const peers = Object.entries(PEER_PACKAGES)
    .map(([, pkg]) => `${pkg} ${packageVersion(path.join(BENCH_DIR, 'node_modules', pkg))}`)
    .join(', ');
  const cpus = os.cpus();
  const lines = [
    `silt ${siltVersion} @ ${siltCommit()}${options.siltBuiltAt ? ` (dist/ built ${options.siltBuiltAt.toISOString()}, copied at start)` : ''}, node ${process.version}, ${new Date().toISOString()}`,
    `machine: ${cpus[0]?.model.trim() ?? 'unknown cpu'} x${cpus.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
    `temp dir: ${os.tmpdir()} (${fileSystemType(os.tmpdir())})`,
    `peers: ${peers}`,
    `mode: ${options.quick ? 'quick' : 'full'}, median of ${options.runs} run(s) per throughput figure`,
  ];
  console.log(lines.join('\n'));
  if (fileSystemType(os.tmpdir()) === 'tmpfs') console.log('WARNING: the temp dir is tmpfs, where fsync does nothing: durable-write figures are meaningless (set TMPDIR)');
  return lines;
}

function cell(results, store, unit) {
  const result = results[store];
  if (result === undefined) return '-';
  return result.error !== undefined ? 'error' : formatValue(result.median, unit);
}

function ratio(results, peer) {
  const silt = results.silt?.median;
  const other = results[peer]?.median;
  return silt === undefined || other === undefined ? undefined : silt / other;
}

function reportRows(rows, stores) {
  const peers = stores.filter((store) => store !== 'silt');
  const header = ['workload', 'unit', ...stores, ...(stores.includes('silt') ? peers.map((peer) => `silt/${peer}`) : [])];
  const body = rows.map((row) => [
    row.label,
    `${row.unit} ${row.lowerIsBetter ? '↓' : '↑'}`,
    ...stores.map((store) => cell(row.results, store, row.unit)),
    ...(stores.includes('silt') ? peers.map((peer) => formatRatio(ratio(row.results, peer))) : []),
  ]);
  return [header, ...body];
}

function targetLines(rows) {
  const lines = [];
  for (const target of TARGETS) {
    const matched = target.idPrefix === undefined ? rows.filter((row) => row.id === target.id) : rows.filter((row) => row.id.startsWith(target.idPrefix));
    for (const row of matched) {
      const what = target.idPrefix === undefined ? target.what : `${row.label.trim()} (${target.what})`;
      if (target.silt) {
        const value = row.results.silt?.median;
        if (value === undefined) continue;
        const met = (target.min === undefined || value >= target.min) && (target.max === undefined || value <= target.max);
        const bound = target.min !== undefined ? `>= ${target.min}` : `<= ${target.max}`;
        const shown = row.unit === 'count' || Math.abs(value) >= 10 ? formatValue(value, row.unit) : value.toFixed(3);
        lines.push(`- ${what}: silt ${shown} (target ${bound}): ${met ? 'met' : 'NOT met'}`);
        continue;
      }
      const value = ratio(row.results, 'lmdb');
      if (value === undefined) continue;
      lines.push(`- ${what}: silt/lmdb ${formatRatio(value)} (target >= ${target.min}x): ${value >= target.min ? 'met' : 'NOT met'}`);
    }
  }
  return lines;
}

async function main() {
  const options = parseCli();
  ensureDependencies();
  if (options.stores.includes('silt') && !existsSync(path.join(REPO_DIR, 'dist', 'index.js'))) {
    console.error('bench: dist/index.js is missing: build silt first (`npm run bench` builds, then runs this)');
    process.exit(1);
  }
  // One build for the whole run: children import a copy of dist/ taken now, so a rebuild while
  // the run goes on (someone editing src/) changes nothing halfway.
  if (options.stores.includes('silt') && process.env[SILT_DIST_ENV] === undefined) {
    const snapshot = snapshotDist();
    process.env[SILT_DIST_ENV] = snapshot.path; // inherited by every child
    process.on('exit', snapshot.remove);
    for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));
    options.siltBuiltAt = snapshot.builtAt;
  }
  const header = printHeader(options);
  const siltNodeFlags = [];
  if (options.cpuProf) {
    const profileDir = path.join(os.tmpdir(), `silt-bench-profiles-${Date.now()}`);
    mkdirSync(profileDir, { recursive: true });
    siltNodeFlags.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`);
    console.log(`CPU profiles of silt's children go to ${profileDir}`);
  }
  const ctx = {
    sizes: options.quick ? SIZES.quick : SIZES.full,
    runs: options.runs,
    stores: options.stores,
    siltNodeFlags,
    log: (line) => console.log(line),
    /** Results shared between workloads within this run (e.g. large-write and large-read). */
    shared: {},
    /** Lines for the report below the targets (baselines, how a figure was measured). */
    notes: [],
  };

  const started = performance.now();
  const rows = [];
  for (const name of options.workloads) {
    console.log(`\n${name}`);
    rows.push(...(await WORKLOADS[name](ctx)));
  }
  const minutes = (performance.now() - started) / 60_000;

  const table = reportRows(rows, options.stores);
  const targets = targetLines(rows);
  const legend =
    'Medians (rows marked "min": the least of the runs, for whole-device byte counts that other processes can only inflate); ratio = silt/peer (↑ higher is better, ↓ lower is better). See bench/README.md for what each workload does.';
  console.log(`\nResults (${minutes.toFixed(1)} min)\n\n${textTable(table)}\n`);
  if (targets.length > 0) console.log(`Targets:\n${targets.join('\n')}\n`);
  const notes = ctx.notes.map((note) => `- ${note}`);
  if (notes.length > 0) console.log(`Notes:\n${notes.join('\n')}\n`);
  console.log('--- markdown ---\n');
  console.log(
    [...header.map((line) => `${line}  `), '', markdownTable(table), '', legend, ...(targets.length ? ['', ...targets] : []), ...(notes.length ? ['', ...notes] : [])].join('\n'),
  );
}

await main();
