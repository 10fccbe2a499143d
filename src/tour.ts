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

// A large value, streamed in without holding it in memory, read back by range.
const megabytes = 8;
async function* generate(): AsyncGenerator<Buffer> {
  for (let index = 0; index < megabytes; index++) yield Buffer.alloc(1024 * 1024, index);
}
const stored = await db.putStream('video.bin', generate());
console.log(`streamed ${stored.size} bytes into blocks, sha256 ${stored.digest.slice(0, 16)}...`);
const chunks: Buffer[] = [];
for await (const chunk of db.createReadStream('video.bin', { start: 3 * 1024 * 1024 - 2, end: 3 * 1024 * 1024 + 1 })) chunks.push(chunk as Buffer);
console.log(`bytes around the 3 MiB mark: ${Buffer.concat(chunks).toString('hex')}`);
// Or in one Buffer: the first read of part of a block reads it whole, later ones just the pages they touch.
const page = await db.readAt('video.bin', 5 * 1024 * 1024 + 4096, 4);
console.log(`4 bytes at 5 MiB + 4 KiB: ${page?.toString('hex')}; then ${(await db.readAt('video.bin', 5 * 1024 * 1024 + 8192, 4))?.toString('hex')} (page tables kept: ${db.stats().blocks.pageTables})`);

await db.close();
db = await open(directory);
console.log(`reopened: ${db.stats().keys} keys, checkpoint used: ${db.stats().recovery.usedCheckpoint}, greeting = ${(await db.get('greeting'))?.toString()}`);
console.log(JSON.stringify(db.stats(), null, 2));
const verified = await db.verify();
console.log(`verify: ${verified.ok ? 'ok' : JSON.stringify(verified.problems)} (${verified.checked.entries} entries, ${verified.checked.blocks} blocks)`);
await db.close();
console.log(`done in ${(performance.now() - started).toFixed(0)} ms`);
