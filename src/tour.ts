/**
 * `npm start`: a short tour of silt against an embedded store in ./silt-data. It writes, reads,
 * iterates, reopens and prints stats: the main job until the server and CLI grow.
 */
import { open } from './index.js';

const directory = process.argv[2] ?? './silt-data';
const started = performance.now();
let db = await open(directory);
console.log(`opened ${directory} (recovery: ${db.stats().recovery.durationMs.toFixed(1)} ms, ${db.stats().keys} keys)`);

const count = 10_000;
const writes = [];
for (let index = 0; index < count; index++) {
  writes.push(db.put(`user:${String(index).padStart(5, '0')}`, JSON.stringify({ id: index, name: `user ${index}` })));
}
await Promise.all(writes);
const stats = db.stats();
console.log(`wrote ${count} durable puts in ${stats.writes.groups} group commits (${stats.writes.fsyncs} fsyncs)`);

const { revision } = await db.put('greeting', 'hello, silt');
console.log(`put greeting at revision ${revision}: ${(await db.get('greeting'))?.toString()}`);
try {
  await db.put('greeting', 'stale write', { ifRevision: revision - 1 });
} catch (error) {
  console.log(`a write with a stale revision is refused: ${(error as { code: string }).code}`);
}

const firstThree = [];
for await (const entry of db.entries({ prefix: 'user:', limit: 3 })) firstThree.push(entry.key.toString());
console.log(`first keys with prefix user: ${firstThree.join(', ')}`);

await db.close();
db = await open(directory);
console.log(`reopened: ${db.stats().keys} keys, checkpoint used: ${db.stats().recovery.usedCheckpoint}, greeting = ${(await db.get('greeting'))?.toString()}`);
console.log(JSON.stringify(db.stats(), null, 2));
await db.close();
console.log(`done in ${(performance.now() - started).toFixed(0)} ms`);
