/**
 * Runs Keyv's official adapter suite (@keyv/test-suite, written for vitest) against KeyvSilt in a
 * vitest child process, and fails unless every one of its tests passed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface VitestReport {
  numTotalTests: number;
  numPassedTests: number;
  numFailedTests: number;
  numPendingTests: number;
  numTodoTests: number;
}

test('@keyv/test-suite (API, values, namespaces, iterator) passes in full against KeyvSilt', (t) => {
  const directory = mkdtempSync(join(tmpdir(), 'silt-keyv-report-'));
  t.after(() => rmSync(directory, { recursive: true, force: true }));
  const reportPath = join(directory, 'report.json');
  const environment: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' };
  delete environment.NODE_TEST_CONTEXT;
  const result = spawnSync(
    process.execPath,
    [
      join(root, 'node_modules/vitest/vitest.mjs'),
      'run',
      '--config',
      join(root, 'test/keyv/vitest.config.ts'),
      '--reporter=default',
      '--reporter=json',
      `--outputFile.json=${reportPath}`,
    ],
    { cwd: root, encoding: 'utf8', env: environment, timeout: 120_000 },
  );
  const output = `${result.stdout}\n${result.stderr}`;
  let report: VitestReport;
  try {
    report = JSON.parse(readFileSync(reportPath, 'utf8')) as VitestReport;
  } catch {
    assert.fail(`vitest wrote no report (exit ${result.status}):\n${output}`);
  }
  const skipped = report.numPendingTests + report.numTodoTests;
  const line = `@keyv/test-suite: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`;
  t.diagnostic(line);
  assert.equal(report.numFailedTests, 0, output);
  assert.equal(skipped, 0, output);
  assert.ok(report.numPassedTests >= 42, `expected the whole suite to run (42 tests), ran ${report.numPassedTests}`);
  assert.equal(result.status, 0, output);
});
