#!/usr/bin/env node
/**
 * The same Level-API workload against SiltLevel (silt/level) and classic-level (LevelDB), both
 * driven through the one abstract-level interface, in one run.
 *
 *   npm run build && node bench/level/run.mjs [--quick] [--runs N] [--n ENTRIES]
 *
 * Workloads (keys: 16-char strings in random order; values: 100 random bytes, valueEncoding 'buffer'):
 *   fill          db.batch() of 1,000 puts at a time, N entries, no fsync per write
 *                 (silt durability 'none', classic-level's default sync: false)
 *   fill-sync     1,000 sequential db.put(), each durable before it resolves
 *                 (silt durability 'sync', classic-level { sync: true })
 *   get           N awaited db.get() of random existing keys
 *   get-sync      N db.getSync() of random existing keys
 *   iterate       a full scan with iterator().nextv(1000)
 *   for-await     a full scan with for await (const [key, value] of db.iterator())
 *
 * Every store and run is a fresh child process and a fresh directory; runs alternate the order
 * of the stores; each figure is the median of the runs. classic-level is bench/'s dependency
 * (bench/package.json): run `npm ci` in bench/ if it is missing.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { mulberry32 } from '../lib/random.mjs';

const HERE = fileURLToPath(import.meta.url);
const REPO = path.resolve(path.dirname(HERE), '../..');
const STORES = ['silt', 'classic-level'];
const WORKLOADS = ['fill', 'fill-sync', 'get', 'get-sync', 'iterate', 'for-await'];
const VALUE_BYTES = 100;
const BATCH = 1_000;
const SYNC_PUTS = 1_000;

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    runs: { type: 'string' },
    n: { type: 'string' },
    child: { type: 'string' },
    dir: { type: 'string' },
  },
});

function dataset(count) {
  const next = mulberry32(42); // the same keys and values in every child
  const keys = new Set();
  while (keys.size < count) {
    let key = '';
    for (let i = 0; i < 16; i++) key += 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(next() * 36)];
    keys.add(key);
  }
  const entries = [...keys].map((key) => {
    const value = Buffer.allocUnsafe(VALUE_BYTES);
    for (let i = 0; i < VALUE_BYTES; i++) value[i] = Math.floor(next() * 256);
    return [key, value];
  });
  const order = entries.map(([key]) => key);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return { entries, reads: order };
}

async function openStore(name, directory, durable) {
  const options = { valueEncoding: 'buffer' };
  if (name === 'silt') {
    const { SiltLevel } = await import(new URL('../../dist/level/index.js', import.meta.url).href);
    const db = new SiltLevel(path.join(directory, 'silt'), { ...options, durability: durable ? 'sync' : 'none' });
    await db.open();
    return { db, putOptions: undefined };
  }
  const require = createRequire(path.join(REPO, 'bench/package.json'));
  const { ClassicLevel } = require('classic-level');
  const db = new ClassicLevel(path.join(directory, 'classic'), options);
  await db.open();
  return { db, putOptions: durable ? { sync: true } : undefined };
}

/** One child: every workload against one store; prints ops/s per workload as JSON. */
async function child(name, directory, count) {
  const { entries, reads } = dataset(count);
  const result = {};
  const time = async (workload, operations, body) => {
    const started = process.hrtime.bigint();
    await body();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    result[workload] = operations / seconds;
  };

  // fill-sync on its own directory (and durability mode).
  {
    const { db, putOptions } = await openStore(name, path.join(directory, 'sync'), true);
    await time('fill-sync', SYNC_PUTS, async () => {
      for (let i = 0; i < SYNC_PUTS; i++) await db.put(entries[i][0], entries[i][1], putOptions);
    });
    await db.close();
  }

  const { db } = await openStore(name, directory, false);
  await time('fill', entries.length, async () => {
    for (let i = 0; i < entries.length; i += BATCH) {
      await db.batch(entries.slice(i, i + BATCH).map(([key, value]) => ({ type: 'put', key, value })));
    }
  });
  let missing = 0;
  await time('get', reads.length, async () => {
    for (const key of reads) if ((await db.get(key)) === undefined) missing++;
  });
  await time('get-sync', reads.length, async () => {
    for (const key of reads) if (db.getSync(key) === undefined) missing++;
  });
  let scanned = 0;
  await time('iterate', entries.length, async () => {
    const iterator = db.iterator();
    for (let batch = await iterator.nextv(1000); batch.length > 0; batch = await iterator.nextv(1000)) scanned += batch.length;
    await iterator.close();
  });
  await time('for-await', entries.length, async () => {
    for await (const entry of db.iterator()) if (entry[1].length === VALUE_BYTES) scanned++;
  });
  await db.close();
  if (missing !== 0 || scanned !== 2 * entries.length) throw new Error(`${name}: ${missing} reads missed, ${scanned} of ${2 * entries.length} scanned`);
  console.log(JSON.stringify(result));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

function format(opsPerSecond) {
  if (opsPerSecond >= 1e6) return `${(opsPerSecond / 1e6).toFixed(2)} M/s`;
  if (opsPerSecond >= 1e3) return `${(opsPerSecond / 1e3).toFixed(1)} k/s`;
  return `${opsPerSecond.toFixed(0)} /s`;
}

function packageVersion(from, name) {
  try {
    return createRequire(from)(`${name}/package.json`).version;
  } catch {
    return 'missing';
  }
}

async function main() {
  if (args.child !== undefined) {
    await child(args.child, args.dir, Number(args.n));
    return;
  }
  const count = Number(args.n ?? (args.quick ? 20_000 : 200_000));
  const runs = Number(args.runs ?? (args.quick ? 1 : 3));
  const samples = Object.fromEntries(STORES.map((store) => [store, Object.fromEntries(WORKLOADS.map((w) => [w, []]))]));
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? STORES : [...STORES].reverse();
    for (const store of order) {
      const directory = mkdtempSync(path.join(os.tmpdir(), 'silt-bench-level-'));
      try {
        const result = spawnSync(process.execPath, [HERE, `--child=${store}`, `--dir=${directory}`, `--n=${count}`], { encoding: 'utf8' });
        if (result.status !== 0) throw new Error(`${store} run ${run + 1} failed:\n${result.stdout}\n${result.stderr}`);
        const figures = JSON.parse(result.stdout.trim().split('\n').pop());
        for (const workload of WORKLOADS) samples[store][workload].push(figures[workload]);
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
      process.stderr.write(`run ${run + 1}/${runs}: ${store} done\n`);
    }
  }
  const siltVersion = packageVersion(path.join(REPO, 'package.json'), 'abstract-level');
  const classicVersion = packageVersion(path.join(REPO, 'bench/package.json'), 'classic-level');
  console.log(`\nLevel API: SiltLevel vs classic-level ${classicVersion} (abstract-level ${siltVersion}), Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`);
  console.log(`${count.toLocaleString('en-US')} entries (16-char keys, ${VALUE_BYTES}-byte values), median of ${runs} run(s); ratio = silt ÷ classic-level (> 1: silt faster)\n`);
  console.log('| workload | SiltLevel | classic-level | ratio |');
  console.log('|---|---:|---:|---:|');
  for (const workload of WORKLOADS) {
    const silt = median(samples.silt[workload]);
    const classic = median(samples['classic-level'][workload]);
    console.log(`| ${workload} | ${format(silt)} | ${format(classic)} | ${(silt / classic).toFixed(2)}× |`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
