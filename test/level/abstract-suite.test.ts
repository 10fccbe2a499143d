/**
 * Runs abstract-level's shared test suite (`abstract-level/test`, tape) against SiltLevel in a
 * child process (abstract-suite.tape.ts), and fails on any failing test that is not a known,
 * documented limitation (doc/adapters.md, "not supported"), or when the suite's tests for a
 * feature SiltLevel declares (explicit snapshots, seek) did not run.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/**
 * Tests that cannot pass with silt's current core API, and why. Each is listed in doc/adapters.md.
 * They run anyway: once the core lifts the limitation they pass, and this test says so.
 */
const KNOWN_FAILURES: ReadonlyMap<string, string> = new Map([
  ['put(), get(), del() with empty Buffer key', 'silt rejects zero-length keys (INVALID_ARGUMENT → LEVEL_INVALID_KEY)'],
  ['empty keys in batch with utf8 keyEncoding', 'silt rejects zero-length keys'],
  ['empty keys in batch with buffer keyEncoding', 'silt rejects zero-length keys'],
  ['empty keys in batch with view keyEncoding', 'silt rejects zero-length keys'],
  ['iterator() sorts lexicographically', "writes the key '' (zero-length), which silt rejects"],
]);

/**
 * Tests the suite runs only for databases that declare the feature (`db.supports`): if one is
 * missing, SiltLevel stopped declaring it (or the suite renamed the test).
 */
const REQUIRED_TESTS: readonly string[] = [
  // explicitSnapshots (abstract-level/test/iterator-explicit-snapshot-test.js)
  'get() changed entry from snapshot',
  'getMany() entries from snapshot',
  'iterator(), keys(), values() with snapshot',
  'clear() entries from snapshot',
  'snapshot is closed along with iterator',
  // seek on the iterator's implicit snapshot (iterator-seek-test.js)
  'iterator().seek() respects snapshot (reverse: true, deferred: false)',
  // has (has-test.js)
  'has() on open db',
];

interface Summary {
  tests: number;
  passed: number;
  failed: number;
  skipped: number;
  assertions: number;
  failedAssertions: number;
  failedTests: string[];
  /** Names of the tests that ran. */
  ran: string[];
}

test('abstract-level shared suite passes against SiltLevel, except the documented limitations', (t) => {
  const environment: NodeJS.ProcessEnv = { ...process.env };
  delete environment.NODE_TEST_CONTEXT;
  const result = spawnSync(process.execPath, ['--import', 'tsx', 'test/level/abstract-suite.tape.ts'], {
    cwd: root,
    encoding: 'utf8',
    env: environment,
    timeout: 180_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${result.stdout}\n${result.stderr}`;
  const summaryLine = result.stdout.split('\n').find((line) => line.startsWith('ABSTRACT-LEVEL-SUMMARY '));
  assert.ok(summaryLine !== undefined, `the suite printed no summary (exit ${result.status}, signal ${result.signal}):\n${output.slice(-5000)}`);
  const summary = JSON.parse(summaryLine.slice('ABSTRACT-LEVEL-SUMMARY '.length)) as Summary;
  const line =
    `abstract-level suite: ${summary.passed} passed, ${summary.failed} failed, ${summary.skipped} skipped ` +
    `(${summary.tests} tests, ${summary.assertions} assertions); known limitations: ${KNOWN_FAILURES.size}`;
  t.diagnostic(line);
  for (const name of summary.failedTests) t.diagnostic(`known failure: ${name} (${KNOWN_FAILURES.get(name) ?? 'NOT KNOWN'})`);
  for (const name of KNOWN_FAILURES.keys()) {
    if (!summary.failedTests.includes(name)) t.diagnostic(`now passes, remove it from KNOWN_FAILURES and README.md: ${name}`);
  }
  const unexpected = summary.failedTests.filter((name) => !KNOWN_FAILURES.has(name));
  assert.deepEqual(unexpected, [], `unexpected failures:\n${result.stdout.split('\n').filter((l) => l.startsWith('not ok')).join('\n')}`);
  assert.ok(summary.tests > 1000, `expected the whole suite to run, ran ${summary.tests} tests`);
  const missing = REQUIRED_TESTS.filter((name) => !summary.ran.includes(name));
  assert.deepEqual(missing, [], 'tests of declared features did not run');
  assert.equal(summary.skipped, 0);
});
