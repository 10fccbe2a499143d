#!/usr/bin/env node
/**
 * The hottest functions of V8 CPU profiles (as written by `node bench/run.mjs --cpu-prof`), by
 * self time, summed over every file given.
 *
 *   node bench/profile-top.mjs /tmp/silt-bench-profiles-123/*.cpuprofile [--top 25]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const args = process.argv.slice(2);
const topIndex = args.indexOf('--top');
const top = topIndex === -1 ? 25 : Number(args.splice(topIndex, 2)[1]);
if (args.length === 0) {
  console.error('usage: node bench/profile-top.mjs FILE.cpuprofile... [--top N]');
  process.exit(2);
}

const selfMicros = new Map();
let totalMicros = 0;
for (const file of args) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  // timeDeltas[i] is the time before samples[i]; charge it to that sample's node.
  profile.samples.forEach((id, i) => {
    const { functionName, url, lineNumber } = nodes.get(id).callFrame;
    const where = url ? `${path.basename(url)}:${lineNumber + 1}` : '';
    const name = `${functionName || '(anonymous)'} ${where}`.trim();
    const delta = Math.max(0, profile.timeDeltas[i] ?? 0);
    selfMicros.set(name, (selfMicros.get(name) ?? 0) + delta);
    totalMicros += delta;
  });
}

console.log(`${args.length} profile(s), ${(totalMicros / 1e6).toFixed(2)} s sampled; top ${top} by self time:`);
for (const [name, micros] of [...selfMicros].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${((100 * micros) / totalMicros).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(7)} ms  ${name}`);
}
