/**
 * One adapter per store, all with the same interface, so each workload is written once.
 *
 *   await adapter.library()                           // import the store's module (outside any timing)
 *   const db = await adapter.open(dir, { durable, siltOptions })
 *                                                     // durable: every acknowledged put survives a crash;
 *                                                     // siltOptions: extra open() options, silt only
 *   db.put(key, value)   -> Promise | undefined       // the store's natural per-operation write
 *   await db.batch(entries)                           // [key, value] pairs as one atomic write (durable when `durable`)
 *   db.get(key)          -> Buffer | undefined        // synchronous point read
 *   await db.load(entries)                            // bulk load [key, value] pairs (setup only)
 *   await db.scan()      -> { count, bytes }          // full iteration in key order
 *   await db.compact()   -> string                    // give space back as the store offers it; says what it did
 *   await db.close()
 *
 * Keys and values are Buffers; keys compare bytewise in every store. Peers are imported lazily, so
 * a peer that failed to install only fails its own rows.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { SILT_DIST_ENV } from './harness.mjs';

/** silt's built entry: the run's snapshot of dist/ (see snapshotDist), else the repository's dist/. */
const SILT_ENTRY = process.env[SILT_DIST_ENV] ? pathToFileURL(path.join(process.env[SILT_DIST_ENV], 'index.js')) : new URL('../../dist/index.js', import.meta.url);
/** Bulk loads go in chunks of this many entries (one batch / transaction each). */
export const LOAD_CHUNK = 10_000;

function chunks(entries, size = LOAD_CHUNK) {
  const result = [];
  for (let i = 0; i < entries.length; i += size) result.push(entries.slice(i, i + size));
  return result;
}

/** silt: 'sync' durability when durable, else 'none'. Reads with getSync, scans with entries(). */
const silt = {
  name: 'silt',
  library: () => import(SILT_ENTRY.href),
  async open(dir, { durable, siltOptions = {} }) {
    const { open } = await this.library();
    const store = await open(path.join(dir, 'silt'), { durability: durable ? 'sync' : 'none', ...siltOptions });
    return {
      raw: store,
      put: (key, value) => store.put(key, value),
      batch: (entries) => store.batch(entries.map(([key, value]) => ({ type: 'put', key, value }))),
      get: (key) => store.getSync(key),
      /** Segment compaction, then block GC when this build has it (it is being added). */
      async compact() {
        await store.idle();
        await store.compact();
        if (typeof store.gc !== 'function') return 'compact() (this build has no gc())';
        await store.gc();
        return 'compact() + gc()';
      },
      async load(entries) {
        for (const chunk of chunks(entries)) await store.batch(chunk.map(([key, value]) => ({ type: 'put', key, value })));
      },
      async scan() {
        let count = 0;
        let bytes = 0;
        for await (const entry of store.entries()) {
          count++;
          bytes += entry.key.length + entry.value.length;
        }
        return { count, bytes };
      },
      close: () => store.close(),
    };
  },
};

/**
 * lmdb-js: raw binary keys and values. Durable = the default open (overlappingSync on Linux),
 * where a put's promise resolves at commit and its `flushed` promise once the commit is synced;
 * we await `flushed`. Not durable = `noSync: true`.
 */
const lmdb = {
  name: 'lmdb',
  library: () => import('lmdb'),
  async open(dir, { durable }) {
    const { open } = await this.library();
    const db = open({
      path: path.join(dir, 'lmdb'),
      keyEncoding: 'binary',
      encoding: 'binary',
      ...(durable ? { separateFlushed: true } : { noSync: true }),
    });
    return {
      raw: db,
      put: durable ? (key, value) => db.put(key, value).flushed : (key, value) => db.put(key, value),
      async batch(entries) {
        await db.transaction(() => {
          for (const [key, value] of entries) db.put(key, value);
        });
        if (durable) await db.flushed;
      },
      get: (key) => db.get(key),
      /** LMDB reuses freed pages in place and never shrinks its file; it has no in-place compaction. */
      async compact() {
        await db.flushed;
        return 'nothing (no in-place compaction; freed pages are reused)';
      },
      async load(entries) {
        for (const chunk of chunks(entries)) {
          await db.transaction(() => {
            for (const [key, value] of chunk) db.put(key, value);
          });
        }
        if (durable) await db.flushed;
      },
      async scan() {
        let count = 0;
        let bytes = 0;
        for (const { key, value } of db.getRange()) {
          count++;
          bytes += key.length + value.length;
        }
        return { count, bytes };
      },
      close: () => db.close(),
    };
  },
};

/** classic-level (LevelDB): default options (snappy, 4 MiB write buffer); durable = `{ sync: true }`. */
const classicLevel = {
  name: 'classic-level',
  library: () => import('classic-level'),
  async open(dir, { durable }) {
    const { ClassicLevel } = await this.library();
    const db = new ClassicLevel(path.join(dir, 'leveldb'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    const putOptions = { sync: durable };
    return {
      raw: db,
      put: (key, value) => db.put(key, value, putOptions),
      batch: (entries) => db.batch(entries.map(([key, value]) => ({ type: 'put', key, value })), putOptions),
      get: (key) => db.getSync(key),
      /** A manual compaction of the whole key space (memtable flushed, every level compacted). */
      async compact() {
        await db.compactRange(Buffer.alloc(0), Buffer.alloc(256, 0xff));
        return 'compactRange over all keys';
      },
      async load(entries) {
        for (const chunk of chunks(entries)) await db.batch(chunk.map(([key, value]) => ({ type: 'put', key, value })), putOptions);
      },
      async scan() {
        let count = 0;
        let bytes = 0;
        for await (const [key, value] of db.iterator()) {
          count++;
          bytes += key.length + value.length;
        }
        return { count, bytes };
      },
      close: () => db.close(),
    };
  },
};

/**
 * better-sqlite3: a WITHOUT ROWID table (k BLOB PRIMARY KEY, v BLOB) in WAL mode; each put is its
 * own autocommit transaction. durable = `synchronous=FULL`, else `synchronous=OFF`. Synchronous
 * API: puts never overlap.
 */
const sqlite = {
  name: 'sqlite',
  library: () => import('better-sqlite3'),
  async open(dir, { durable }) {
    const { default: Database } = await this.library();
    mkdirSync(dir, { recursive: true });
    const db = new Database(path.join(dir, 'kv.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${durable ? 'FULL' : 'OFF'}`);
    db.exec('CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID');
    const insert = db.prepare('INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)');
    const select = db.prepare('SELECT v FROM kv WHERE k = ?').pluck();
    const all = db.prepare('SELECT k, v FROM kv ORDER BY k').raw();
    const loadChunk = db.transaction((chunk) => {
      for (const [key, value] of chunk) insert.run(key, value);
    });
    return {
      raw: db,
      put: (key, value) => {
        insert.run(key, value);
      },
      batch: async (entries) => loadChunk(entries),
      get: (key) => select.get(key),
      /** VACUUM rewrites the database without free pages; the checkpoint moves it from the WAL and truncates the WAL. */
      async compact() {
        db.exec('VACUUM');
        db.pragma('wal_checkpoint(TRUNCATE)');
        return 'VACUUM + wal_checkpoint(TRUNCATE)';
      },
      async load(entries) {
        for (const chunk of chunks(entries)) loadChunk(chunk);
      },
      async scan() {
        let count = 0;
        let bytes = 0;
        for (const [key, value] of all.iterate()) {
          count++;
          bytes += key.length + value.length;
        }
        return { count, bytes };
      },
      close: async () => db.close(),
    };
  },
};

export const STORES = { silt, lmdb, 'classic-level': classicLevel, sqlite };
export const STORE_NAMES = Object.keys(STORES);
/** npm package of each peer (for versions in the report). */
export const PEER_PACKAGES = { lmdb: 'lmdb', 'classic-level': 'classic-level', sqlite: 'better-sqlite3' };
