/**
 * Throughput and memory figures for OrderedIndex. Not part of the test run (no `.test.ts`).
 *
 * Run from the repository root:
 *   node --expose-gc --import tsx test/index/ordered-index.benchmark.ts speed  [keyCount] [rounds] [branchFactor ...]
 *   node --expose-gc --import tsx test/index/ordered-index.benchmark.ts memory [keyCount] [branchFactor ...]
 * Keys are 16 random bytes as latin1 strings; values are small objects shaped like the store's
 * entry locations. `speed` prints the median of the rounds for each operation; `memory` prints
 * heap bytes per key: the tree's own structure (keys and values already exist) and the total
 * (key string + value object + tree) for an index built from scratch.
 */
import { randomBytes } from 'node:crypto';
import { OrderedIndex } from '../../src/index/ordered-index.js';

interface Location {
  segmentId: number;
  offsetBytes: number;
  lengthBytes: number;
  revision: number;
  expiresAtMs: number | undefined;
}

const mode = process.argv[2] ?? 'speed';
const keyCount = Number(process.argv[3] ?? 1_000_000);
const collectGarbage = (globalThis as { gc?: () => void }).gc;
if (collectGarbage === undefined) throw new Error('run with --expose-gc');
let sink = 0;

function makeKeys(count: number): string[] {
  const bytes = randomBytes(count * 16);
  const keys: string[] = [];
  for (let index = 0; index < count; index++) keys.push(bytes.toString('latin1', index * 16, index * 16 + 16));
  return keys;
}

function makeValue(index: number): Location {
  return { segmentId: 1, offsetBytes: index * 100, lengthBytes: 100, revision: index + 1, expiresAtMs: undefined };
}

function heapUsed(): number {
  collectGarbage?.();
  collectGarbage?.();
  return process.memoryUsage().heapUsed;
}

function compareKeys(left: string, right: string): number {
  return left < right ? -1 : left > right ? 1 : 0;
}

function speed(rounds: number, branchFactors: number[]): void {
  const keys = makeKeys(keyCount);
  const values = keys.map((_, index) => makeValue(index));
  const sortedOrder = keys.map((_, index) => index).sort((left, right) => compareKeys(keys[left] as string, keys[right] as string));
  // Fresh strings allocated in key order, as the checkpoint loader makes them at open.
  const sortedKeys = sortedOrder.map((index) => Buffer.from(keys[index] as string, 'latin1').toString('latin1'));
  const sortedValues = sortedOrder.map((index) => values[index] as Location);
  const seekCount = Math.min(keyCount, 200_000);

  for (const branchFactor of branchFactors) {
    const timings = new Map<string, number[]>();
    const time = (label: string, body: () => void): void => {
      collectGarbage?.();
      const started = performance.now();
      body();
      const elapsed = performance.now() - started;
      const list = timings.get(label) ?? [];
      list.push(elapsed);
      timings.set(label, list);
    };
    for (let round = 0; round < rounds; round++) {
      const index = new OrderedIndex<Location>({ branchFactor });
      time('random set, insert', () => {
        for (let position = 0; position < keyCount; position++) index.set(keys[position] as string, values[position] as Location);
      });
      time('random set, replace', () => {
        for (let position = 0; position < keyCount; position++) index.set(keys[position] as string, values[position] as Location);
      });
      time('random get', () => {
        for (let position = 0; position < keyCount; position++) if (index.get(keys[position] as string) !== undefined) sink++;
      });
      time('full range scan', () => {
        for (const [, value] of index.range()) sink += value.lengthBytes;
      });
      time('full reverse range scan', () => {
        for (const [, value] of index.range({ reverse: true })) sink += value.lengthBytes;
      });
      time('range gte + limit 10 (per range)', () => {
        for (let position = 0; position < seekCount; position++) {
          for (const [, value] of index.range({ gte: keys[position] as string, limit: 10 })) sink += value.lengthBytes;
        }
      });
      const snapshot = index.snapshot();
      time('random set, replace, 1st after snapshot', () => {
        for (let position = 0; position < keyCount; position++) index.set(keys[position] as string, values[position] as Location);
      });
      sink += snapshot.size;
      time('random delete down to empty', () => {
        for (let position = 0; position < keyCount; position++) index.delete(keys[position] as string);
      });
      let loaded: OrderedIndex<Location> | undefined;
      time('fromSorted', () => {
        loaded = OrderedIndex.fromSorted(sortedKeys, sortedValues, { branchFactor });
      });
      time('random get after fromSorted', () => {
        for (let position = 0; position < keyCount; position++) if (loaded?.get(keys[position] as string) !== undefined) sink++;
      });
    }
    console.log(`branchFactor ${branchFactor}, ${keyCount} keys of 16 random bytes, median of ${rounds} rounds`);
    for (const [label, list] of timings) {
      const sorted = [...list].sort((left, right) => left - right);
      const median = sorted[sorted.length >> 1] as number;
      const operations = label.startsWith('range gte') ? seekCount : keyCount;
      const perSecond = (operations / median) * 1000;
      console.log(`  ${label.padEnd(42)} ${median.toFixed(0).padStart(6)} ms  ${(perSecond / 1e6).toFixed(2).padStart(6)} M/s`);
    }
  }
}

function memory(branchFactors: number[]): void {
  for (const branchFactor of branchFactors) {
    let keys: string[] | undefined = makeKeys(keyCount);
    let values: Location[] | undefined = keys.map((_, index) => makeValue(index));
    let index: OrderedIndex<Location> | undefined;

    const beforeRandom = heapUsed();
    index = new OrderedIndex<Location>({ branchFactor });
    for (let position = 0; position < keyCount; position++) index.set(keys[position] as string, values[position] as Location);
    const afterRandom = heapUsed();
    // Use what was measured after measuring it: V8 may free objects that only dead variables hold.
    sink += index.size + keys.length + values.length;
    index = undefined;

    const order = keys.map((_, position) => position).sort((left, right) => compareKeys(keys?.[left] as string, keys?.[right] as string));
    const sortedKeys = order.map((position) => keys?.[position] as string);
    const sortedValues = order.map((position) => values?.[position] as Location);
    const beforeLoad = heapUsed();
    index = OrderedIndex.fromSorted(sortedKeys, sortedValues, { branchFactor });
    const afterLoad = heapUsed();
    sink += index.size + sortedKeys.length + sortedValues.length;
    index = undefined;
    keys = undefined;
    values = undefined;
    sortedKeys.length = 0;
    sortedValues.length = 0;

    const beforeFresh = heapUsed();
    let fresh: OrderedIndex<Location> | undefined = new OrderedIndex<Location>({ branchFactor });
    const bytes = randomBytes(16 * keyCount);
    for (let position = 0; position < keyCount; position++) {
      fresh.set(bytes.toString('latin1', position * 16, position * 16 + 16), makeValue(position));
    }
    const afterFresh = heapUsed();
    sink += fresh.size;
    fresh = undefined;

    console.log(`branchFactor ${branchFactor}, ${keyCount} keys of 16 random bytes, heap bytes per key:`);
    console.log(`  tree structure only, built by random set: ${((afterRandom - beforeRandom) / keyCount).toFixed(1)}`);
    console.log(`  tree structure only, built by fromSorted: ${((afterLoad - beforeLoad) / keyCount).toFixed(1)}`);
    console.log(`  total (key string + value object + tree), random set: ${((afterFresh - beforeFresh) / keyCount).toFixed(1)}`);
  }
}

if (mode === 'speed') {
  const rounds = Number(process.argv[4] ?? 3);
  const branchFactors = process.argv.length > 5 ? process.argv.slice(5).map(Number) : [64];
  speed(rounds, branchFactors);
} else if (mode === 'memory') {
  memory(process.argv.length > 4 ? process.argv.slice(4).map(Number) : [64]);
} else {
  throw new Error(`unknown mode ${mode}: use speed or memory`);
}
if (sink === 42) console.log('');
