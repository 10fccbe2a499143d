/**
 * KeyvSilt: a Keyv (5.x) storage adapter backed by a silt store.
 *
 * ```ts
 * const keyv = new Keyv({ store: new KeyvSilt('./cache') })
 * await keyv.set('a', { x: 1 }, 60_000)
 * ```
 *
 * What this module owns: the mapping of Keyv's adapter calls onto the Store. Keyv hands the
 * adapter serialized strings and keys already prefixed with `${namespace}:`.
 *
 * Invariants:
 * - A TTL is silt's own `ttlMs`: an expired entry is never returned by get, getMany, has,
 *   hasMany or iterator (silt treats it as absent), whether or not Keyv re-checks the `expires`
 *   it serialized into the value. `has`/`hasMany` are silt's index-only `store.has()`.
 * - `clear()` deletes only the keys of `this.namespace` (all keys of the store when Keyv has no
 *   namespace), read from one silt snapshot and deleted in batches.
 * - The adapter keeps nothing but a reference to the store: no cache, no index.
 * - Given a directory, the adapter opens (and on `disconnect()` closes) its own store; given a
 *   Store, it never closes it, so several adapters (one per Keyv namespace) can share one.
 */
import { EventEmitter } from 'node:events';
import { open, type Store } from '../engine/store.js';
import type { OpenOptions } from '../options.js';

/** The most deletes `clear()` puts in one batch. */
const CLEAR_BATCH = 10_000;

/** What Keyv and its test suite read from `adapter.opts`. */
export interface KeyvSiltAdapterOptions extends OpenOptions {
  dialect: 'silt';
  /** `silt://<directory>`; Keyv 5 reads it to decide on iteration support. */
  url: string;
  [option: string]: unknown;
}

/** Keyv's storage-adapter shape for `setMany`. */
export interface KeyvSiltEntry {
  key: string;
  value: unknown;
  /** Milliseconds to live; none when undefined or not positive. */
  ttl?: number | undefined;
}

function ttlOption(ttl: unknown): { ttlMs: number } | undefined {
  return typeof ttl === 'number' && Number.isFinite(ttl) && ttl > 0 ? { ttlMs: ttl } : undefined;
}

function serialized(value: unknown): string | Uint8Array {
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  throw new TypeError(`KeyvSilt stores serialized values (strings); got ${value === null ? 'null' : typeof value}. Keep Keyv's serialize option on.`);
}

/**
 * A Keyv storage adapter over silt. `new KeyvSilt(directory, options?)` opens a store there
 * (silt's open options: durability, ...); `new KeyvSilt(store)` uses an open Store.
 */
export class KeyvSilt extends EventEmitter {
  /** Keyv reads `dialect` and `url`; the rest are the open options. */
  opts: KeyvSiltAdapterOptions;
  /** Set by Keyv; keys of this namespace start with `${namespace}:`. */
  namespace?: string | undefined;
  readonly #ownsStore: boolean;
  readonly #opening: Promise<Store> | undefined;
  #store: Store | undefined;

  constructor(storeOrDirectory: Store | string, options?: OpenOptions) {
    super();
    if (typeof storeOrDirectory === 'string') {
      this.#ownsStore = true;
      this.opts = { ...options, dialect: 'silt', url: `silt://${storeOrDirectory}` };
      const opening = open(storeOrDirectory, options);
      opening.then(
        (store) => {
          this.#store = store;
        },
        () => undefined, // every call awaiting `opening` rejects with the error
      );
      this.#opening = opening;
    } else {
      if (typeof storeOrDirectory !== 'object' || storeOrDirectory === null || typeof storeOrDirectory.getSync !== 'function') {
        throw new TypeError('KeyvSilt takes a directory or an open silt Store');
      }
      this.#ownsStore = false;
      this.#store = storeOrDirectory;
      this.opts = { dialect: 'silt', url: `silt://${storeOrDirectory.directory}` };
    }
  }

  /** The store, once open. */
  async getStore(): Promise<Store> {
    return this.#store ?? (this.#opening as Promise<Store>);
  }

  async get(key: string): Promise<string | undefined> {
    const store = await this.getStore();
    return store.getSync(key)?.toString('utf8');
  }

  async getMany(keys: string[]): Promise<Array<string | undefined>> {
    const store = await this.getStore();
    return keys.map((key) => store.getSync(key)?.toString('utf8'));
  }

  /** Index-only (`store.has()`): reads no value; false once the entry's TTL has passed. */
  async has(key: string): Promise<boolean> {
    const store = await this.getStore();
    return store.has(key);
  }

  async hasMany(keys: string[]): Promise<boolean[]> {
    const store = await this.getStore();
    return keys.map((key) => store.has(key));
  }

  /** Store `value` (Keyv's serialized string); `ttl` in milliseconds. Resolves when durable per the store's mode. */
  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    const store = await this.getStore();
    await store.put(key, serialized(value), ttlOption(ttl));
    return true;
  }

  /** All entries in one atomic silt batch (one revision, one fsync). */
  async setMany(entries: KeyvSiltEntry[]): Promise<boolean[]> {
    const store = await this.getStore();
    await store.batch(entries.map(({ key, value, ttl }) => ({ type: 'put' as const, key, value: serialized(value), ...ttlOption(ttl) })));
    return entries.map(() => true);
  }

  /** True when the key existed. */
  async delete(key: string): Promise<boolean> {
    const store = await this.getStore();
    return (await store.delete(key)).existed;
  }

  /** True when at least one of the keys existed. The deletes share one group commit. */
  async deleteMany(keys: string[]): Promise<boolean> {
    const store = await this.getStore();
    const results = await Promise.all(keys.map((key) => store.delete(key)));
    return results.some((result) => result.existed);
  }

  /** Delete the keys of this namespace (every key when there is no namespace). */
  async clear(): Promise<void> {
    const store = await this.getStore();
    let chunk: Array<{ type: 'delete'; key: Buffer }> = [];
    for await (const key of store.keys(this.#namespaceRange(this.namespace))) {
      chunk.push({ type: 'delete', key });
      if (chunk.length >= CLEAR_BATCH) {
        await store.batch(chunk);
        chunk = [];
      }
    }
    if (chunk.length > 0) await store.batch(chunk);
  }

  /** `[key, serialized value]` pairs of a namespace (all keys when none), in key order, from one snapshot. */
  async *iterator(namespace?: string): AsyncGenerator<[string, string], void> {
    const store = await this.getStore();
    for await (const entry of store.entries(this.#namespaceRange(namespace))) {
      yield [entry.key.toString('utf8'), entry.value.toString('utf8')];
    }
  }

  /** Close the store if this adapter opened it (a Store passed in is left open). */
  async disconnect(): Promise<void> {
    if (!this.#ownsStore) return;
    const store = await this.getStore();
    await store.close();
  }

  #namespaceRange(namespace: string | undefined): { prefix: string } | undefined {
    return namespace === undefined || namespace === '' ? undefined : { prefix: `${namespace}:` };
  }
}

/**
 * Keyv 5 wires `keyv.iterator()` only for its own SQL/Redis/Mongo/etcd adapters; this attaches
 * it for a KeyvSilt store: `const keyv = withIterator(new Keyv({ store: new KeyvSilt(dir) }))`.
 * Keyv 6 detects `iterator()` by itself and does not need this.
 */
export function withIterator<T extends KeyvLike>(keyv: T): T {
  const store = keyv.store;
  if (!(store instanceof KeyvSilt)) throw new TypeError('withIterator: the Keyv instance does not use a KeyvSilt store');
  if (typeof keyv.generateIterator !== 'function') throw new TypeError('withIterator: this Keyv version has no generateIterator()');
  keyv.iterator = keyv.generateIterator(store.iterator.bind(store));
  return keyv;
}

/** The part of a Keyv 5 instance that `withIterator` uses. */
export interface KeyvLike {
  readonly store: unknown;
  iterator?: unknown;
  // Method syntax: Keyv declares a narrower parameter type.
  generateIterator?(iterator: (namespace?: string) => AsyncGenerator<unknown, void>): unknown;
}
