/**
 * Runs abstract-level's own shared test suite (`abstract-level/test`, tape-based) against
 * SiltLevel. Spawned by abstract-suite.test.ts, which checks the summary printed on the last
 * line: `ABSTRACT-LEVEL-SUMMARY {json}`. Run it alone with
 *   node --import tsx test/level/abstract-suite.tape.ts
 * Every failing assertion is printed as `not ok <test> :: <assertion>`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import suite from 'abstract-level/test';
import tape from 'tape';
import { SiltLevel } from '../../src/level/index.js';

interface Row {
  type: 'test' | 'assert' | 'end';
  id?: number;
  test?: number;
  name?: string;
  ok?: boolean;
  skip?: boolean | string;
  todo?: boolean | string;
  actual?: unknown;
  expected?: unknown;
  operator?: string;
  error?: { message?: string; stack?: string };
}

const root = mkdtempSync(join(tmpdir(), 'silt-abstract-level-'));
let databases = 0;

const names = new Map<number, string>();
const failedTests = new Set<string>();
const skippedTests = new Set<string>();
let testCount = 0;
let assertions = 0;
let failedAssertions = 0;
let skippedAssertions = 0;

const stream = tape.createStream({ objectMode: true });
stream.on('data', (row: Row) => {
  if (row.type === 'test') {
    testCount++;
    names.set(row.id as number, row.name ?? '');
    if (row.skip) skippedTests.add(row.name ?? '');
  } else if (row.type === 'assert') {
    assertions++;
    if (row.skip) {
      skippedAssertions++;
    } else if (!row.ok && !row.todo) {
      failedAssertions++;
      const name = names.get(row.test as number) ?? '?';
      failedTests.add(name);
      const detail = row.error?.message ?? `${row.operator}: expected ${JSON.stringify(row.expected)}, got ${JSON.stringify(row.actual)}`;
      console.log(`not ok ${name} :: ${row.name} :: ${detail}`);
    }
  }
});

tape.onFinish(() => {
  rmSync(root, { recursive: true, force: true });
  const failed = failedTests.size;
  const skipped = skippedTests.size;
  const ran = [...new Set(names.values())];
  const summary = { tests: testCount, passed: testCount - failed - skipped, failed, skipped, assertions, failedAssertions, skippedAssertions, failedTests: [...failedTests], ran };
  console.log(`# abstract-level suite: ${summary.passed} passed, ${failed} failed, ${skipped} skipped (${assertions} assertions, ${failedAssertions} failed)`);
  console.log(`ABSTRACT-LEVEL-SUMMARY ${JSON.stringify(summary)}`);
});

suite({
  test: tape,
  factory(options?: Record<string, unknown>) {
    return new SiltLevel(join(root, String(databases++)), options);
  },
});
