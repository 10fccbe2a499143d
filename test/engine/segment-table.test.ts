/**
 * The segment table's running totals (what the compaction scheduler checks after every commit)
 * against the definitions, recomputed from scratch after every change of a seeded sequence of
 * adds, removals, replacements, and changes of size, live bytes and sealing.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SEGMENT_HEADER_BYTES } from '../../src/log/format.js';
import { SegmentTable, type SegmentRecord } from '../../src/engine/segment-table.js';
import { random, testSeed } from '../helpers.js';

const DEAD_RATIO = 0.5;
const NEARLY_DEAD = 0.9;

function expected(records: SegmentRecord[]): Record<string, number> {
  const dead = (record: SegmentRecord) => Math.max(0, record.sizeBytes - SEGMENT_HEADER_BYTES - record.liveBytes);
  const sealedDead = records.filter((record) => record.sealed && dead(record) > 0);
  return {
    totalBytes: records.reduce((sum, record) => sum + record.sizeBytes, 0),
    deadBytes: records.reduce((sum, record) => sum + dead(record), 0),
    sealedWithDead: sealedDead.length,
    sealedAtRatio: sealedDead.filter((record) => dead(record) >= DEAD_RATIO * record.sizeBytes).length,
    sealedNearlyDead: sealedDead.filter((record) => dead(record) >= NEARLY_DEAD * record.sizeBytes).length,
  };
}

test('the segment table keeps its totals and counts equal to a recount after every change', () => {
  const seed = testSeed('segment table');
  const next = random(seed);
  const table = new SegmentTable(DEAD_RATIO, NEARLY_DEAD);
  const removed: SegmentRecord[] = [];
  const record = (segmentId: number): SegmentRecord => ({
    segmentId,
    path: `${segmentId}.log`,
    sizeBytes: SEGMENT_HEADER_BYTES + Math.floor(next() * 1000),
    appliedBytes: 0,
    sealed: next() < 0.5,
    liveBytes: Math.floor(next() * 1000),
    liveBlockBytes: 0,
    summary: undefined,
  });
  for (let step = 0; step < 3000; step++) {
    const ids = [...table.keys()];
    const id = ids[Math.floor(next() * ids.length)];
    const roll = next();
    if (roll < 0.15 || id === undefined) table.set(step, record(step));
    else if (roll < 0.22) {
      removed.push(table.get(id) as SegmentRecord);
      table.delete(id);
    } else if (roll < 0.27) table.set(id, record(id));
    else if (roll < 0.5) (table.get(id) as SegmentRecord).liveBytes += Math.floor(next() * 400) - 200;
    else if (roll < 0.7) (table.get(id) as SegmentRecord).sizeBytes += Math.floor(next() * 300);
    else if (roll < 0.8) (table.get(id) as SegmentRecord).sealed = next() < 0.7;
    else if (removed.length > 0) {
      // A record no longer in the table changes: the totals do not.
      (removed[Math.floor(next() * removed.length)] as SegmentRecord).liveBytes -= 50;
    }
    const want = expected([...table.values()]);
    const have = { totalBytes: table.totalBytes, deadBytes: table.deadBytes, sealedWithDead: table.sealedWithDead, sealedAtRatio: table.sealedAtRatio, sealedNearlyDead: table.sealedNearlyDead };
    assert.deepEqual(have, want, `seed ${seed}, step ${step}`);
    assert.equal(table.recount(), undefined);
    assert.equal(table.deadFraction(), want.totalBytes === 0 ? 0 : (want.deadBytes as number) / (want.totalBytes as number));
  }
});
