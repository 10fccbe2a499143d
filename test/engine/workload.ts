/**
 * A seeded workload shared by the model, crash and fault tests, and the model it is checked against.
 *
 * Every operation is issued in order (its revision is taken when it is called), so the model after
 * the first P issued operations is the state a recovery that kept a prefix of P must show.
 */
import assert from 'node:assert/strict';
import type { BatchOperation, Store } from '../../src/index.js';
import { random } from '../helpers.js';

export type ModelOperation =
  | { type: 'put'; key: string; value: string }
  | { type: 'delete'; key: string }
  | { type: 'batch'; operations: Array<{ type: 'put'; key: string; value: string } | { type: 'delete'; key: string }> };

export interface IssuedOperation {
  operation: ModelOperation;
  acknowledged: boolean;
}

export function applyToModel(model: Map<string, string>, operation: ModelOperation): void {
  if (operation.type === 'put') model.set(operation.key, operation.value);
  else if (operation.type === 'delete') model.delete(operation.key);
  else for (const inner of operation.operations) applyToModel(model, inner);
}

export interface WorkloadOptions {
  seed: number;
  steps: number;
  keySpace?: number;
  /** Largest number of operations issued together in one step. */
  concurrencyMax?: number;
  valueBytesMax?: number;
}

/** Generate the operations (deterministic from the seed), grouped into steps issued together. */
export function generateWorkload(options: WorkloadOptions): ModelOperation[][] {
  const next = random(options.seed);
  const keySpace = options.keySpace ?? 40;
  const concurrencyMax = options.concurrencyMax ?? 4;
  const valueBytesMax = options.valueBytesMax ?? 120;
  const key = () => `key-${Math.floor(next() * keySpace).toString().padStart(3, '0')}`;
  let counter = 0;
  const value = () => `${counter++}:${'v'.repeat(Math.floor(next() * valueBytesMax))}`;
  const steps: ModelOperation[][] = [];
  for (let step = 0; step < options.steps; step++) {
    const operations: ModelOperation[] = [];
    const count = 1 + Math.floor(next() * concurrencyMax);
    for (let index = 0; index < count; index++) {
      const roll = next();
      if (roll < 0.6) operations.push({ type: 'put', key: key(), value: value() });
      else if (roll < 0.8) operations.push({ type: 'delete', key: key() });
      else {
        const inner: Array<{ type: 'put'; key: string; value: string } | { type: 'delete'; key: string }> = [];
        const size = 1 + Math.floor(next() * 5);
        for (let position = 0; position < size; position++) {
          inner.push(next() < 0.75 ? { type: 'put', key: key(), value: value() } : { type: 'delete', key: key() });
        }
        operations.push({ type: 'batch', operations: inner });
      }
    }
    steps.push(operations);
  }
  return steps;
}

export function issue(db: Store, operation: ModelOperation): Promise<unknown> {
  if (operation.type === 'put') return db.put(operation.key, operation.value);
  if (operation.type === 'delete') return db.delete(operation.key);
  return db.batch(operation.operations as BatchOperation[]);
}

/**
 * Run the steps against `db`, recording every operation as issued and whether it was acknowledged.
 * Stops issuing at the first failed operation when `stopOnError` (the store is failed after one).
 */
export async function runWorkload(db: Store, steps: ModelOperation[][], issued: IssuedOperation[], stopOnError = true): Promise<unknown> {
  for (const step of steps) {
    const records: IssuedOperation[] = [];
    const promises: Array<Promise<unknown>> = [];
    for (const operation of step) {
      const record = { operation, acknowledged: false };
      let promise: Promise<unknown>;
      try {
        promise = issue(db, operation);
      } catch (error) {
        promise = Promise.reject(error);
      }
      issued.push(record);
      records.push(record);
      promises.push(promise.then(() => {
        record.acknowledged = true;
      }));
    }
    const results = await Promise.allSettled(promises);
    const failure = results.find((result) => result.status === 'rejected');
    if (failure !== undefined && stopOnError) return (failure as PromiseRejectedResult).reason;
  }
  return undefined;
}

export async function readAll(db: Store): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  for await (const entry of db.entries()) state.set(entry.key.toString(), entry.value.toString());
  return state;
}

function sameState(left: Map<string, string>, right: Map<string, string>): boolean {
  if (left.size !== right.size) return false;
  for (const [key, value] of left) if (right.get(key) !== value) return false;
  return true;
}

/**
 * Assert that `recovered` is the model after some prefix of the issued operations (no holes), and
 * that every acknowledged operation holds in it: it is inside the prefix, or it changes nothing
 * when applied to that state (a delete of a key absent there, which writes no record). Returns
 * the prefix length.
 */
export function assertPrefixState(recovered: Map<string, string>, issued: IssuedOperation[], context: string): number {
  const model = new Map<string, string>();
  const holds = (prefix: number): boolean => {
    for (let position = prefix; position < issued.length; position++) {
      const record = issued[position] as IssuedOperation;
      if (!record.acknowledged) continue;
      const after = new Map(model);
      applyToModel(after, record.operation);
      if (!sameState(after, model)) return false;
    }
    return true;
  };
  for (let prefix = 0; ; prefix++) {
    if (sameState(model, recovered) && holds(prefix)) return prefix;
    if (prefix === issued.length) break;
    applyToModel(model, (issued[prefix] as IssuedOperation).operation);
  }
  const acknowledged = issued.filter((record) => record.acknowledged).length;
  assert.fail(`${context}: recovered state (${recovered.size} keys) is not the model after any prefix in which every acknowledged write holds (${acknowledged} acknowledged of ${issued.length} issued)`);
}
