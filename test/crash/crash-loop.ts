/**
 * The kill -9 crash loop: a child process runs the seeded workload in 'sync' mode and journals
 * every issued and acknowledged operation; the parent kills it with SIGKILL at a random moment,
 * reopens the store, runs verify(), and checks:
 * - every acknowledged write is there with its exact value and revision;
 * - of the operations in flight when it died, each is there whole (a batch all or nothing) or not
 *   at all, and nothing else changed;
 * - revisions keep growing across restarts.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../../src/index.js';
import { random } from '../helpers.js';
// @ts-expect-error plain JS module shared with the worker
import { applyObject, digest, STORE_OPTIONS, stepOperations, valueBytes } from './workload.mjs';

interface ValueSpec {
  seed: number;
  length: number;
}
type Operation =
  | { type: 'put' | 'cas'; key: string; value: ValueSpec }
  | { type: 'writeAt'; key: string; offset: number; value: ValueSpec }
  | { type: 'append'; key: string; value: ValueSpec }
  | { type: 'truncate'; key: string; size: number }
  | { type: 'delete'; key: string }
  | { type: 'batch'; operations: Array<{ type: 'put'; key: string; value: ValueSpec } | { type: 'delete'; key: string }> };

interface ModelEntry {
  digest: string;
  /** The revision, when known (acknowledged, or read back after a crash). */
  revision: number;
  /** The whole value, for objects (their next write is computed from it). */
  bytes?: Buffer;
}

const isObjectOperation = (operation: Operation): operation is Extract<Operation, { type: 'writeAt' | 'append' | 'truncate' }> =>
  operation.type === 'writeAt' || operation.type === 'append' || operation.type === 'truncate';

export interface CrashLoopOptions {
  kills: number;
  seed: number;
  /** Where the store lives; a fresh temporary directory when omitted (removed afterwards). */
  directory?: string;
  log?: (line: string) => void;
}

export interface CrashLoopResult {
  kills: number;
  steps: number;
  acknowledgedChecked: number;
  inFlightApplied: number;
  inFlightLost: number;
  failures: string[];
}

const specDigest = (spec: ValueSpec): string => digest(valueBytes(spec.seed, spec.length)) as string;

/** The effects of one operation: key → digest (and bytes, for objects), or undefined for a delete. */
function effects(operation: Operation, current: (key: string) => ModelEntry | undefined): Map<string, { digest: string; bytes?: Buffer } | undefined> {
  const result = new Map<string, { digest: string; bytes?: Buffer } | undefined>();
  if (operation.type === 'batch') {
    for (const inner of operation.operations) result.set(inner.key, inner.type === 'put' ? { digest: specDigest(inner.value) } : undefined);
  } else if (operation.type === 'delete') {
    result.set(operation.key, undefined);
  } else if (isObjectOperation(operation)) {
    const bytes = applyObject(current(operation.key)?.bytes ?? Buffer.alloc(0), operation) as Buffer;
    result.set(operation.key, { digest: digest(bytes) as string, bytes });
  } else {
    result.set(operation.key, { digest: specDigest(operation.value) });
  }
  return result;
}

async function runChild(distribution: string, directory: string, journal: string, seed: number, firstStep: number, delayMs: number): Promise<void> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'worker.mjs'), distribution, directory, journal, String(seed), String(firstStep)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  // Kill once the worker has run for `delayMs` after it has journaled its first event.
  const started = Date.now();
  while (!existsSync(journal) || readFileSync(journal).length === 0) {
    if (child.exitCode !== null) break;
    if (Date.now() - started > 20_000) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  child.kill('SIGKILL');
  const result = await exited;
  if (result.signal !== 'SIGKILL') throw new Error(`worker exited on its own (${result.code}): ${stderr}`);
}

export async function runCrashLoop(options: CrashLoopOptions): Promise<CrashLoopResult> {
  const log = options.log ?? (() => undefined);
  const workRoot = mkdtempSync(join(tmpdir(), 'silt-crash-'));
  const directory = options.directory ?? join(workRoot, 'db');
  const distribution = join(import.meta.dirname, '../../dist/index.js');
  const next = random(options.seed);
  const model = new Map<string, ModelEntry>();
  const result: CrashLoopResult = { kills: 0, steps: 0, acknowledgedChecked: 0, inFlightApplied: 0, inFlightLost: 0, failures: [] };
  let step = 0;
  let maxRevision = 0;
  try {
    for (let kill = 0; kill < options.kills; kill++) {
      const journal = join(workRoot, `journal-${kill}`);
      await runChild(distribution, directory, journal, options.seed, step, 10 + Math.floor(next() * 150));
      result.kills++;
      const events = readFileSync(journal, 'utf8').split('\n').filter(Boolean).map((line) => line.split(' '));
      const acknowledged = new Map<string, number>();
      const refused = new Set<string>();
      const issued = new Set<string>();
      let lastDone = step - 1;
      for (const [kind, eventStep, index, revision] of events) {
        if (kind === 'S') lastDone = Number(eventStep);
        else if (kind === 'I') issued.add(`${eventStep} ${index}`);
        else if (kind === 'A') acknowledged.set(`${eventStep} ${index}`, Number(revision));
        else if (kind === 'C') refused.add(`${eventStep} ${index}`);
      }
      // Revisions keep growing across restarts: every write acknowledged in this run is above
      // every revision the previous recovery had (a delete of an absent key reports the current one).
      for (const [id, revision] of acknowledged) {
        const [eventStep, index] = id.split(' ').map(Number) as [number, number];
        const operation = (stepOperations(options.seed, eventStep) as Operation[])[index] as Operation;
        if (operation.type !== 'delete' && revision <= maxRevision) {
          result.failures.push(`kill ${kill}: ${id} acknowledged at revision ${revision}, not above ${maxRevision} from before the restart`);
        }
      }
      // Complete steps: every operation settled; apply them to the model.
      const expectedKnown = new Map<string, ModelEntry | undefined>();
      const current = (key: string): ModelEntry | undefined => (expectedKnown.has(key) ? expectedKnown.get(key) : model.get(key));
      for (let done = step; done <= lastDone; done++) {
        for (const [index, operation] of (stepOperations(options.seed, done) as Operation[]).entries()) {
          const id = `${done} ${index}`;
          if (refused.has(id)) continue;
          const revision = acknowledged.get(id) as number;
          for (const [key, value] of effects(operation, current)) expectedKnown.set(key, value === undefined ? undefined : { ...value, revision });
        }
      }
      // The step in flight: each operation applied whole or not at all (acknowledged ones applied).
      const openStep = lastDone + 1;
      const inFlight = (stepOperations(options.seed, openStep) as Operation[])
        .map((operation, index) => ({ operation, id: `${openStep} ${index}` }))
        .filter(({ id }) => issued.has(id) && !refused.has(id));
      const db = await open(directory, STORE_OPTIONS);
      const verified = await db.verify();
      if (!verified.ok) result.failures.push(`kill ${kill}: verify: ${JSON.stringify(verified.problems.slice(0, 3))}`);
      const read = async (key: string): Promise<ModelEntry | undefined> => {
        const entry = await db.getEntry(key);
        if (entry === undefined) return undefined;
        return { digest: digest(entry.value) as string, revision: entry.revision, ...(key.startsWith('obj') ? { bytes: entry.value } : {}) };
      };
      for (const [key, expected] of expectedKnown) model.set(key, expected as ModelEntry);
      for (const [key, expected] of expectedKnown) if (expected === undefined) model.delete(key);
      const inFlightKeys = new Set<string>();
      const before = (key: string): ModelEntry | undefined => model.get(key);
      for (const { operation } of inFlight) for (const key of effects(operation, before).keys()) inFlightKeys.add(key);
      // Keys untouched by the operations in flight must read exactly as the model says.
      for (const [key, expected] of model) {
        if (inFlightKeys.has(key)) continue;
        const actual = await read(key);
        result.acknowledgedChecked++;
        if (actual?.digest !== expected.digest || actual.revision !== expected.revision) {
          result.failures.push(`kill ${kill}: ${key} is ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)}`);
        }
      }
      const storeKeys = new Set<string>();
      for await (const key of db.keys()) storeKeys.add(key.toString());
      for (const key of storeKeys) {
        if (!model.has(key) && !inFlightKeys.has(key)) result.failures.push(`kill ${kill}: ${key} exists but the model has no write for it`);
      }
      for (const { operation, id } of inFlight) {
        const wanted = effects(operation, before);
        let appliedCount = 0;
        const states = new Map<string, ModelEntry | undefined>();
        for (const [key, value] of wanted) {
          const actual = await read(key);
          states.set(key, actual);
          if ((value === undefined && actual === undefined) || (value !== undefined && actual?.digest === value.digest && actual.revision > (model.get(key)?.revision ?? 0))) appliedCount++;
        }
        const unchangedCount = [...wanted.keys()].filter((key) => {
          const before = model.get(key);
          const actual = states.get(key);
          return before === undefined ? actual === undefined : actual?.digest === before.digest && actual.revision === before.revision;
        }).length;
        const ackedRevision = acknowledged.get(id);
        if (appliedCount === wanted.size) {
          result.inFlightApplied++;
          for (const [key, actual] of states) {
            if (ackedRevision !== undefined && actual !== undefined && actual.revision !== ackedRevision) {
              result.failures.push(`kill ${kill}: acknowledged ${id} has revision ${actual.revision}, acknowledged as ${ackedRevision}`);
            }
            if (actual === undefined) model.delete(key);
            else model.set(key, actual);
          }
          if (ackedRevision !== undefined) result.acknowledgedChecked++;
        } else if (unchangedCount === wanted.size && ackedRevision === undefined) {
          result.inFlightLost++;
        } else {
          result.failures.push(`kill ${kill}: operation ${id} (${operation.type}) is partly applied or an acknowledged write is missing`);
        }
      }
      const revision = db.stats().revision;
      const maxAcknowledged = Math.max(0, ...acknowledged.values());
      if (revision < maxAcknowledged || revision < maxRevision) {
        result.failures.push(`kill ${kill}: revision went back to ${revision} (acknowledged ${maxAcknowledged}, before ${maxRevision})`);
      }
      maxRevision = Math.max(maxRevision, revision);
      await db.close();
      result.steps += lastDone - step + 1;
      step = openStep + 1;
      log(`kill ${kill + 1}/${options.kills}: ${lastDone - step + 2} steps done, ${inFlight.length} in flight, ${result.failures.length} failures`);
      if (result.failures.length > 0) break;
    }
  } finally {
    rmSync(workRoot, { recursive: true, force: true });
  }
  return result;
}
