/**
 * The kill -9 crash loop: a child process runs the seeded workload (in the durability mode the
 * seed picks: 'sync', 'none' or every 5 ms; a kill loses no byte written either way) and journals
 * every issued and acknowledged operation; the parent kills it with SIGKILL at a random moment,
 * reopens the store, runs verify(), and checks:
 * - every acknowledged write is there with its exact value and revision;
 * - of the operations in flight when it died, each is there whole (a batch all or nothing) or not
 *   at all, and nothing else changed;
 * - revisions keep growing across restarts (a third of the reopens replay the whole log, with the
 *   index checkpoint removed first);
 * - a put with `ttlMs` T, issued at t0 and acknowledged at t1 (or, in flight, by the kill), expires
 *   somewhere in [t0 + T, t1 + T]: each read of it is checked against that window (present, the
 *   value and revision it was given, while it may be live; absent once it may have expired), and
 *   once expired it stays absent: never an older value of its key.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from '../../src/index.js';
import { expiryAllows, random, type ExpiryWindow } from '../helpers.js';
// @ts-expect-error plain JS module shared with the worker
import { applyObject, digest, stepOperations, storeOptions, valueBytes } from './workload.mjs';

interface ValueSpec {
  seed: number;
  length: number;
}
type Operation =
  | { type: 'put' | 'cas'; key: string; value: ValueSpec; ttlMs?: number }
  | { type: 'writeAt'; key: string; offset: number; value: ValueSpec }
  | { type: 'append'; key: string; value: ValueSpec }
  | { type: 'truncate'; key: string; size: number }
  | { type: 'delete'; key: string }
  | { type: 'batch'; operations: Array<{ type: 'put'; key: string; value: ValueSpec; ttlMs?: number } | { type: 'delete'; key: string }> };

interface ModelEntry {
  digest: string;
  /** The revision, when known (acknowledged, or read back after a crash). */
  revision: number;
  /** The whole value, for objects (their next write is computed from it). */
  bytes?: Buffer;
  /** For a put with `ttlMs`: the window its expiry time lies in. */
  expires?: ExpiryWindow;
}

/** What one operation does to one key: a value (with its TTL), or undefined for a delete. */
interface Effect {
  digest: string;
  bytes?: Buffer;
  ttlMs?: number;
}

const isObjectOperation = (operation: Operation): operation is Extract<Operation, { type: 'writeAt' | 'append' | 'truncate' }> =>
  operation.type === 'writeAt' || operation.type === 'append' || operation.type === 'truncate';

export interface CrashLoopOptions {
  kills: number;
  seed: number;
  /** The store's option set (`PROFILES` in workload.mjs); 'small' when omitted. */
  profile?: string;
  /** Where the store lives; a fresh temporary directory when omitted (removed afterwards). */
  directory?: string;
  /**
   * Where to keep the evidence of a failure: the store as the kill left it (before the reopen
   * that failed), the store after it, and the worker's journals. Costs a copy of the store per kill.
   */
  keepFailure?: string;
  log?: (line: string) => void;
}

export interface CrashLoopResult {
  /** The durability mode the seed picked. */
  durability: string;
  /** The option set the loop ran with. */
  profile: string;
  kills: number;
  steps: number;
  acknowledgedChecked: number;
  inFlightApplied: number;
  inFlightLost: number;
  /** Reads that found a put with `ttlMs` expired (and so absent), which the model allowed. */
  expiredSeen: number;
  failures: string[];
}

const specDigest = (spec: ValueSpec): string => digest(valueBytes(spec.seed, spec.length)) as string;

/** The effects of one operation: key → digest (and bytes, for objects; TTL, for puts), or undefined for a delete. */
function effects(operation: Operation, current: (key: string) => ModelEntry | undefined): Map<string, Effect | undefined> {
  const result = new Map<string, Effect | undefined>();
  const ttl = (ttlMs: number | undefined) => (ttlMs === undefined ? {} : { ttlMs });
  if (operation.type === 'batch') {
    for (const inner of operation.operations) result.set(inner.key, inner.type === 'put' ? { digest: specDigest(inner.value), ...ttl(inner.ttlMs) } : undefined);
  } else if (operation.type === 'delete') {
    result.set(operation.key, undefined);
  } else if (isObjectOperation(operation)) {
    const bytes = applyObject(current(operation.key)?.bytes ?? Buffer.alloc(0), operation) as Buffer;
    result.set(operation.key, { digest: digest(bytes) as string, bytes });
  } else {
    result.set(operation.key, { digest: specDigest(operation.value), ...ttl(operation.ttlMs) });
  }
  return result;
}

/** The model's entry for an effect written at a revision, issued at `issuedMs`, durable by `doneMs`. */
function modelEntry(effect: Effect, revision: number, issuedMs: number, doneMs: number): ModelEntry {
  const entry: ModelEntry = { digest: effect.digest, revision, ...(effect.bytes === undefined ? {} : { bytes: effect.bytes }) };
  if (effect.ttlMs !== undefined) entry.expires = { from: issuedMs + effect.ttlMs, to: doneMs + effect.ttlMs };
  return entry;
}

/** A read of a key, with the clock before and after it: its "now" was in [beforeMs, afterMs]. */
interface Read {
  entry: ModelEntry | undefined;
  beforeMs: number;
  afterMs: number;
}

/** Whether a read agrees with the model's entry, allowing for a TTL that may (not must) have expired. */
function agrees(expected: ModelEntry | undefined, read: Read): boolean {
  const actual = read.entry;
  if (expected === undefined) return actual === undefined;
  const allows = expiryAllows(expected.expires, read.beforeMs, read.afterMs);
  if (actual === undefined) return allows.expired;
  return allows.live && actual.digest === expected.digest && actual.revision === expected.revision;
}

/** Runs the worker until killed; resolves with Date.now() once it is dead (nothing it does is later). */
async function runChild(distribution: string, directory: string, journal: string, seed: number, profile: string, firstStep: number, delayMs: number): Promise<number> {
  const child = spawn(process.execPath, [join(import.meta.dirname, 'worker.mjs'), distribution, directory, journal, String(seed), String(firstStep), profile], {
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
  return Date.now();
}

const describe = (read: Read): string =>
  `${read.entry === undefined ? 'absent' : JSON.stringify({ digest: read.entry.digest, revision: read.entry.revision })} (read between ${read.beforeMs} and ${read.afterMs})`;

export async function runCrashLoop(options: CrashLoopOptions): Promise<CrashLoopResult> {
  const log = options.log ?? (() => undefined);
  const workRoot = mkdtempSync(join(tmpdir(), 'silt-crash-'));
  const directory = options.directory ?? join(workRoot, 'db');
  const distribution = join(import.meta.dirname, '../../dist/index.js');
  const next = random(options.seed);
  const model = new Map<string, ModelEntry>();
  const profile = options.profile ?? 'small';
  const storeOptionsOfLoop = storeOptions(options.seed, profile);
  const result: CrashLoopResult = { durability: JSON.stringify(storeOptionsOfLoop.durability), profile, kills: 0, steps: 0, acknowledgedChecked: 0, inFlightApplied: 0, inFlightLost: 0, expiredSeen: 0, failures: [] };
  let step = 0;
  let maxRevision = 0;
  try {
    for (let kill = 0; kill < options.kills; kill++) {
      const journal = join(workRoot, `journal-${kill}`);
      const killedMs = await runChild(distribution, directory, journal, options.seed, profile, step, 10 + Math.floor(next() * 150));
      result.kills++;
      // No journal: killed before it wrote one (it took longer than runChild waits to start).
      const events = (existsSync(journal) ? readFileSync(journal, 'utf8') : '').split('\n').filter(Boolean).map((line) => line.split(' '));
      const acknowledged = new Map<string, number>();
      const acknowledgedMs = new Map<string, number>();
      const refused = new Set<string>();
      /** Operation id → Date.now() just before it was called. */
      const issued = new Map<string, number>();
      let lastDone = step - 1;
      for (const [kind, eventStep, index, third, fourth] of events) {
        if (kind === 'S') lastDone = Number(eventStep);
        else if (kind === 'I') issued.set(`${eventStep} ${index}`, Number(third));
        else if (kind === 'A') {
          acknowledged.set(`${eventStep} ${index}`, Number(third));
          acknowledgedMs.set(`${eventStep} ${index}`, Number(fourth));
        } else if (kind === 'C') refused.add(`${eventStep} ${index}`);
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
          const issuedMs = issued.get(id) as number;
          const doneMs = acknowledgedMs.get(id) as number;
          for (const [key, value] of effects(operation, current)) expectedKnown.set(key, value === undefined ? undefined : modelEntry(value, revision, issuedMs, doneMs));
        }
      }
      // The step in flight: each operation applied whole or not at all (acknowledged ones applied).
      const openStep = lastDone + 1;
      const inFlight = (stepOperations(options.seed, openStep) as Operation[])
        .map((operation, index) => ({ operation, id: `${openStep} ${index}` }))
        .filter(({ id }) => issued.has(id) && !refused.has(id));
      // A third of the reopens without the index checkpoint (a cache: the store must read the
      // same from the log alone), so the full replay meets every state a kill leaves, too.
      const replayAll = next() < 1 / 3;
      if (replayAll) rmSync(join(directory, 'index.hint'), { force: true });
      const snapshot = join(workRoot, 'before-reopen');
      if (options.keepFailure !== undefined) {
        rmSync(snapshot, { recursive: true, force: true });
        cpSync(directory, snapshot, { recursive: true });
      }
      const db = await open(directory, storeOptionsOfLoop);
      const verified = await db.verify();
      if (!verified.ok) result.failures.push(`kill ${kill}: verify: ${JSON.stringify(verified.problems.slice(0, 3))}`);
      const read = async (key: string): Promise<Read> => {
        const beforeMs = Date.now();
        const entry = await db.getEntry(key);
        const afterMs = Date.now();
        if (entry === undefined) return { entry: undefined, beforeMs, afterMs };
        return { entry: { digest: digest(entry.value) as string, revision: entry.revision, ...(key.startsWith('obj') ? { bytes: entry.value } : {}) }, beforeMs, afterMs };
      };
      for (const [key, expected] of expectedKnown) model.set(key, expected as ModelEntry);
      for (const [key, expected] of expectedKnown) if (expected === undefined) model.delete(key);
      const inFlightKeys = new Set<string>();
      const before = (key: string): ModelEntry | undefined => model.get(key);
      for (const { operation } of inFlight) for (const key of effects(operation, before).keys()) inFlightKeys.add(key);
      // Keys untouched by the operations in flight must read as the model says (a put with a TTL
      // present or expired, as the clock allows; once read expired, it stays absent).
      for (const [key, expected] of [...model]) {
        if (inFlightKeys.has(key)) continue;
        const actual = await read(key);
        result.acknowledgedChecked++;
        if (!agrees(expected, actual)) {
          result.failures.push(`kill ${kill}: ${key} is ${describe(actual)}, expected ${JSON.stringify(expected)}`);
        } else if (actual.entry === undefined) {
          result.expiredSeen++;
          model.delete(key);
        }
      }
      const storeKeys = new Set<string>();
      for await (const key of db.keys()) storeKeys.add(key.toString());
      for (const key of storeKeys) {
        if (!model.has(key) && !inFlightKeys.has(key)) result.failures.push(`kill ${kill}: ${key} exists but the model has no write for it`);
      }
      for (const { operation, id } of inFlight) {
        const wanted = effects(operation, before);
        const issuedMs = issued.get(id) as number;
        // Its expiry, if applied, was fixed by the kill at the latest (acknowledged: by then).
        const doneMs = acknowledgedMs.get(id) ?? killedMs;
        let appliedCount = 0;
        let unchangedCount = 0;
        const states = new Map<string, Read>();
        for (const [key, value] of wanted) {
          const actual = await read(key);
          states.set(key, actual);
          // Applied: the new value (with a revision above the one it replaced), or absent when
          // it is a delete, or a put whose TTL may have expired by the read.
          const allows = expiryAllows(value?.ttlMs === undefined ? undefined : { from: issuedMs + value.ttlMs, to: doneMs + value.ttlMs }, actual.beforeMs, actual.afterMs);
          const applied =
            value === undefined
              ? actual.entry === undefined
              : actual.entry === undefined
                ? allows.expired
                : allows.live && actual.entry.digest === value.digest && actual.entry.revision > (model.get(key)?.revision ?? 0);
          if (applied) appliedCount++;
          if (agrees(model.get(key), actual)) unchangedCount++;
        }
        const ackedRevision = acknowledged.get(id);
        if (appliedCount === wanted.size) {
          result.inFlightApplied++;
          for (const [key, actual] of states) {
            if (ackedRevision !== undefined && actual.entry !== undefined && actual.entry.revision !== ackedRevision) {
              result.failures.push(`kill ${kill}: acknowledged ${id} has revision ${actual.entry.revision}, acknowledged as ${ackedRevision}`);
            }
            // Absent now: a delete, or an expired put (it stays absent either way).
            if (actual.entry === undefined) model.delete(key);
            else model.set(key, modelEntry(wanted.get(key) as Effect, actual.entry.revision, issuedMs, doneMs));
          }
          if (ackedRevision !== undefined) result.acknowledgedChecked++;
        } else if (unchangedCount === wanted.size && ackedRevision === undefined) {
          result.inFlightLost++;
          for (const [key, actual] of states) if (actual.entry === undefined) model.delete(key);
        } else {
          const seen = [...states].map(([key, actual]) => `${key}: ${describe(actual)}`).join('; ');
          result.failures.push(`kill ${kill}: operation ${id} (${operation.type}) is partly applied or an acknowledged write is missing (${seen})`);
        }
      }
      const revision = db.stats().revision;
      const maxAcknowledged = Math.max(0, ...acknowledged.values());
      if (revision < maxAcknowledged || revision < maxRevision) {
        result.failures.push(`kill ${kill}: revision went back to ${revision} (acknowledged ${maxAcknowledged}, before ${maxRevision})`);
      }
      maxRevision = Math.max(maxRevision, revision);
      await db.close();
      const stepsDone = lastDone - step + 1;
      result.steps += stepsDone;
      step = openStep + 1;
      log(`kill ${kill + 1}/${options.kills}: ${stepsDone} steps done, ${inFlight.length} in flight, ${result.failures.length} failures`);
      if (result.failures.length > 0) {
        if (options.keepFailure !== undefined) {
          cpSync(workRoot, options.keepFailure, { recursive: true });
          if (options.directory !== undefined) cpSync(directory, join(options.keepFailure, 'after-reopen'), { recursive: true });
          log(`kept the failure's evidence in ${options.keepFailure} (before-reopen/, journal-${kill}, and the store after it)`);
        }
        break;
      }
    }
  } finally {
    rmSync(workRoot, { recursive: true, force: true });
  }
  return result;
}
