/**
 * SiltLevel: an `abstract-level` (3.x) database backed by a silt store, so that code written
 * against `level` / `classic-level` can switch to silt by changing its constructor.
 *
 * What this module owns: the mapping between abstract-level's private API (`_open`, `_get`,
 * `_iterator`, ...) and silt's Store, and the mapping of silt's error codes onto LEVEL_* codes.
 * Everything else (encodings, sublevels, deferred open, events, hooks, chained batches, limits)
 * is abstract-level's own code; every key and value goes straight to silt, no second index.
 *
 * Invariants:
 * - The private API declares the `buffer`, `view` and `utf8` formats; silt takes strings and
 *   bytes alike and returns Buffers, which are converted to strings only for the `utf8` format.
 * - Implicit snapshots: each iterator takes one silt snapshot (`store.snapshot()`, O(1)) when it
 *   is created, reads only from it and releases it on close; `seek()` opens a new range iterator
 *   on that same snapshot, so it is exact in both directions whatever was written since.
 *   `get()`/`has()` are synchronous underneath, so they trivially read the state at the call.
 * - Explicit snapshots (`db.snapshot()`) are a silt snapshot in abstract-level's token
 *   (`SiltLevelSnapshot`); `get`/`getSync`/`getMany`/`has`/`hasMany`/`iterator`/`keys`/`values`/
 *   `clear` given `{ snapshot }` read from it. abstract-level closes them on `db.close()` and
 *   never while a read on them is in flight.
 * - Errors are abstract-level's codes (LEVEL_*), with silt's `SiltError` as `cause`.
 */
import {
  AbstractIterator,
  AbstractKeyIterator,
  AbstractLevel,
  AbstractSnapshot,
  AbstractValueIterator,
  type AbstractDatabaseOptions,
} from 'abstract-level';
import { open, Store } from '../engine/store.js';
import type { Entry, RangeOptions, Snapshot } from '../engine/types.js';
import { SiltError } from '../errors.js';
import { NodeFileSystem } from '../fs/node-file-system.js';
import { DEFAULTS, type OpenOptions } from '../options.js';

/** The formats of keys and values in abstract-level's private API. */
type Format = 'buffer' | 'view' | 'utf8';
type Encoded = string | Uint8Array;

/** Options for `new SiltLevel()`: abstract-level's (encodings, createIfMissing, errorIfExists) and silt's. */
export type SiltLevelOptions<K = string, V = string> = AbstractDatabaseOptions<K, V> & Omit<OpenOptions, 'createIfMissing'>;

/** The options abstract-level hands to `_open()`: the constructor's options merged with open()'s. */
interface PrivateOpenOptions extends Omit<OpenOptions, 'createIfMissing'> {
  createIfMissing: boolean;
  errorIfExists: boolean;
  passive?: boolean;
}

interface PrivateReadOptions {
  keyEncoding: Format;
  valueEncoding?: Format;
  /** An explicit snapshot (abstract-level holds a reference on it during the call). */
  snapshot?: unknown;
}

interface PrivateRangeOptions {
  gt?: Encoded;
  gte?: Encoded;
  lt?: Encoded;
  lte?: Encoded;
  reverse: boolean;
  /** -1 when unlimited. */
  limit: number;
  keys?: boolean;
  values?: boolean;
  keyEncoding: Format;
  valueEncoding?: Format;
  snapshot?: unknown;
}

interface PrivateBatchOperation {
  type: 'put' | 'del';
  key: Encoded;
  value?: Encoded;
}

/** The errors SiltLevel throws: abstract-level's `code`s, with silt's error as `cause`. */
export class LevelError extends Error {
  readonly code: string;

  constructor(message: string, code: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'LevelError';
    this.code = code;
  }
}

/**
 * silt's error code → abstract-level's. `argument` is the code for silt's INVALID_ARGUMENT and
 * TOO_LARGE, which only a key or a value can cause once abstract-level has checked its input.
 * CONFLICT cannot happen (SiltLevel makes no conditional writes).
 */
function levelCode(code: SiltError['code'], argument: string): string | undefined {
  switch (code) {
    case 'LOCKED':
      return 'LEVEL_LOCKED';
    case 'CORRUPTION':
      return 'LEVEL_CORRUPTION';
    case 'IO_ERROR':
    case 'FAILED':
      return 'LEVEL_IO_ERROR';
    case 'READ_ONLY':
      return 'LEVEL_READONLY';
    case 'CLOSED':
    case 'NOT_FOUND':
      return 'LEVEL_DATABASE_NOT_OPEN';
    case 'INVALID_ARGUMENT':
    case 'TOO_LARGE':
      return argument;
    default:
      return undefined;
  }
}

function toLevelError(error: unknown, argument = 'LEVEL_INVALID_KEY'): unknown {
  if (!(error instanceof SiltError)) return error;
  const code = levelCode(error.code, argument);
  return code === undefined ? error : new LevelError(error.message, code, error);
}

function toBuffer(bytes: Encoded): Buffer {
  if (typeof bytes === 'string') return Buffer.from(bytes, 'utf8');
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function formatted(bytes: Buffer, format: Format | undefined): Buffer | string {
  return format === 'utf8' ? bytes.toString('utf8') : bytes;
}

function noop(): void {}

/** Level range options → silt's. Level gives `gte` precedence over `gt` and `lte` over `lt`. */
function toSiltRange(options: PrivateRangeOptions): RangeOptions {
  const range: RangeOptions = { reverse: options.reverse };
  if (options.gte !== undefined) range.gte = toBuffer(options.gte);
  else if (options.gt !== undefined) range.gt = toBuffer(options.gt);
  if (options.lte !== undefined) range.lte = toBuffer(options.lte);
  else if (options.lt !== undefined) range.lt = toBuffer(options.lt);
  return range;
}

/** What abstract-level's private API declares (`getSync` and `has` are newer than level-supports' types). */
const MANIFEST = {
  encodings: { buffer: true, view: true, utf8: true },
  implicitSnapshots: true,
  explicitSnapshots: true,
  has: true,
  getSync: true,
  seek: true,
  createIfMissing: true,
  errorIfExists: true,
  permanence: true,
  additionalMethods: {},
};
const kStore = Symbol('store');
const kView = Symbol('view');
const kReader = Symbol('reader');

/** What reads go to: the store (its current state) or one silt snapshot. */
type Reader = Pick<Store, 'getSync' | 'has' | 'entries' | 'keys' | 'values'>;

// abstract-level's types declare no constructor for AbstractSnapshot; its code takes `{ owner }`.
const SnapshotBase = AbstractSnapshot as unknown as new (options: { owner: unknown }) => AbstractSnapshot;

/**
 * An explicit snapshot (`db.snapshot()`): abstract-level's token around one silt snapshot, which
 * it releases when closed (by `snapshot.close()`, or by `db.close()`).
 */
export class SiltLevelSnapshot extends SnapshotBase {
  /** @internal */
  readonly [kView]: Snapshot;
  /** @internal The store the snapshot was taken of. */
  readonly [kStore]: Store;

  /** @internal Made by `db.snapshot()`. */
  constructor(options: { owner: unknown }, store: Store, view: Snapshot) {
    super(options);
    this[kStore] = store;
    this[kView] = view;
  }

  /** The highest silt revision the snapshot reflects. */
  get revision(): number {
    return this[kView].revision;
  }

  async _close(): Promise<void> {
    this[kView].release();
  }
}

/**
 * An `abstract-level` database stored in a silt directory.
 *
 * ```ts
 * const db = new SiltLevel('./data', { valueEncoding: 'json', durability: 'sync' })
 * await db.put('a', { x: 1 })
 * ```
 */
export class SiltLevel<KDefault = string, VDefault = string> extends AbstractLevel<string | Buffer | Uint8Array, KDefault, VDefault> {
  readonly #location: string;
  #store: Store | undefined;
  #batchChunk = 10_000;
  #maxKeySize = DEFAULTS.maxKeySize;

  constructor(location: string, options?: SiltLevelOptions<KDefault, VDefault>) {
    if (typeof location !== 'string' || location === '') {
      throw new TypeError("The first argument 'location' must be a non-empty string");
    }
    super({ ...MANIFEST, encodings: { ...MANIFEST.encodings } }, options);
    this.#location = location;
  }

  /** The directory passed to the constructor. */
  get location(): string {
    return this.#location;
  }

  /** The silt store underneath, while the database is open: silt's own API (`stats()`, TTLs, revisions). */
  get store(): Store | undefined {
    return this.#store;
  }

  /** @internal For iterators. */
  get [kStore](): Store {
    const store = this.#store;
    if (store === undefined) throw new LevelError('Database is not open', 'LEVEL_DATABASE_NOT_OPEN');
    return store;
  }

  /** @internal The explicit snapshot of a read's options, or the store. */
  [kReader](options: { snapshot?: unknown }): Reader {
    const snapshot = options.snapshot;
    if (snapshot === undefined || snapshot === null) return this[kStore];
    if (!(snapshot instanceof SiltLevelSnapshot) || snapshot[kStore] !== this.#store) {
      throw new TypeError('The snapshot option must be a snapshot of this database (db.snapshot())');
    }
    return snapshot[kView];
  }

  _snapshot(options: { owner: unknown }): SiltLevelSnapshot {
    const store = this[kStore];
    let view: Snapshot;
    try {
      view = store.snapshot();
    } catch (error) {
      throw toLevelError(error);
    }
    return new SiltLevelSnapshot(options, store, view);
  }

  async _open(options: PrivateOpenOptions): Promise<void> {
    const { createIfMissing, errorIfExists, passive: _passive, ...siltOptions } = options;
    if (errorIfExists) {
      const fileSystem = siltOptions.fileSystem ?? new NodeFileSystem();
      const names = await fileSystem.readdir(this.#location).catch(() => [] as string[]);
      if (names.length > 0) {
        throw new LevelError(`${this.#location} already exists (errorIfExists is set)`, 'LEVEL_DATABASE_NOT_OPEN');
      }
    }
    this.#batchChunk = Math.min(10_000, siltOptions.batchOperationsMax ?? DEFAULTS.batchOperationsMax);
    this.#maxKeySize = siltOptions.maxKeySize ?? DEFAULTS.maxKeySize;
    try {
      this.#store = await open(this.#location, { ...siltOptions, createIfMissing });
    } catch (error) {
      throw toLevelError(error, 'LEVEL_DATABASE_NOT_OPEN');
    }
  }

  async _close(): Promise<void> {
    const store = this.#store;
    if (store === undefined) return;
    try {
      await store.close();
    } catch (error) {
      throw toLevelError(error);
    } finally {
      this.#store = undefined;
    }
  }

  _getSync(key: Encoded, options: PrivateReadOptions): Buffer | string | undefined {
    const reader = this[kReader](options);
    let value: Buffer | undefined;
    try {
      value = reader.getSync(key);
    } catch (error) {
      throw toLevelError(error);
    }
    return value === undefined ? undefined : formatted(value, options.valueEncoding);
  }

  async _get(key: Encoded, options: PrivateReadOptions): Promise<Buffer | string | undefined> {
    return this._getSync(key, options);
  }

  async _getMany(keys: Encoded[], options: PrivateReadOptions): Promise<Array<Buffer | string | undefined>> {
    return keys.map((key) => this._getSync(key, options));
  }

  /** Index-only: reads no value. */
  async _has(key: Encoded, options: PrivateReadOptions): Promise<boolean> {
    return this.#has(this[kReader](options), key);
  }

  async _hasMany(keys: Encoded[], options: PrivateReadOptions): Promise<boolean[]> {
    const reader = this[kReader](options);
    return keys.map((key) => this.#has(reader, key));
  }

  #has(reader: Reader, key: Encoded): boolean {
    try {
      return reader.has(key);
    } catch (error) {
      throw toLevelError(error);
    }
  }

  async _put(key: Encoded, value: Encoded): Promise<void> {
    try {
      await this[kStore].put(key, value);
    } catch (error) {
      throw toLevelError(error, this.#argumentCode([key]));
    }
  }

  async _del(key: Encoded): Promise<void> {
    try {
      await this[kStore].delete(key);
    } catch (error) {
      throw toLevelError(error);
    }
  }

  async _batch(operations: PrivateBatchOperation[]): Promise<void> {
    const siltOperations = operations.map((operation) =>
      operation.type === 'put'
        ? { type: 'put' as const, key: operation.key, value: operation.value as Encoded }
        : { type: 'delete' as const, key: operation.key },
    );
    try {
      await this[kStore].batch(siltOperations);
    } catch (error) {
      throw toLevelError(error, this.#argumentCode(operations.map((operation) => operation.key)));
    }
  }

  /** Which LEVEL code a rejected key-or-value write gets: INVALID_KEY when a key is at fault. */
  #argumentCode(keys: Encoded[]): string {
    const maxKeySize = this.#maxKeySize;
    return keys.some((key) => {
      const length = typeof key === 'string' ? Buffer.byteLength(key) : key.byteLength;
      return length === 0 || length > maxKeySize;
    })
      ? 'LEVEL_INVALID_KEY'
      : 'LEVEL_INVALID_VALUE';
  }

  /**
   * Delete a range: the keys are read from one snapshot (the explicit one given, else one taken
   * now), and deleted in batches of at most 10,000 (not atomic, which abstract-level allows).
   */
  async _clear(options: PrivateRangeOptions): Promise<void> {
    const store = this[kStore];
    const reader = this[kReader](options);
    const range = toSiltRange(options);
    if (options.limit >= 0) range.limit = options.limit;
    try {
      let chunk: Array<{ type: 'delete'; key: Buffer }> = [];
      for await (const key of reader.keys(range)) {
        chunk.push({ type: 'delete', key });
        if (chunk.length >= this.#batchChunk) {
          await store.batch(chunk);
          chunk = [];
        }
      }
      if (chunk.length > 0) await store.batch(chunk);
    } catch (error) {
      throw toLevelError(error);
    }
  }

  _iterator(options: PrivateRangeOptions): SiltIterator {
    return new SiltIterator(this, options);
  }

  _keys(options: PrivateRangeOptions): SiltKeyIterator {
    return new SiltKeyIterator(this, options);
  }

  _values(options: PrivateRangeOptions): SiltValueIterator {
    return new SiltValueIterator(this, options);
  }
}

// ---------------------------------------------------------------------------------------------
// Iterators

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- an iterator serves any key and value types
type AnySiltLevel = SiltLevel<any, any>;

/** What a cursor reads: whole entries, or keys only (no value is read from disk). */
type Source = AsyncIterator<Entry> | AsyncIterator<Buffer>;
type Item = Entry | Buffer;

function keyOf(item: Item): Buffer {
  return Buffer.isBuffer(item) ? item : item.key;
}

/**
 * A position in one silt snapshot, with seek. The snapshot is the iterator's own (taken at
 * creation, released on close) or an explicit one (released by its owner). The silt iterator
 * over it is opened at the first read; `seek(target)` drops it, and the next read opens a new
 * one on the same snapshot over the range narrowed to the target (O(log n), exact in either
 * direction, whatever was written since the snapshot).
 */
class Cursor {
  readonly #view: Snapshot;
  /** True when the snapshot is this cursor's own, to release on close. */
  readonly #owned: boolean;
  readonly #range: RangeOptions;
  readonly #withValues: boolean;
  /** The range the next silt iterator reads: `#range`, narrowed by the last seek. */
  #from: RangeOptions;
  #source: Source | undefined;

  constructor(db: AnySiltLevel, options: PrivateRangeOptions, withValues: boolean) {
    const explicit = options.snapshot !== undefined && options.snapshot !== null;
    let view: Snapshot;
    try {
      // An explicit snapshot is not read here: it may be closed already, which abstract-level
      // reports at the first read (LEVEL_SNAPSHOT_NOT_OPEN).
      view = explicit ? (db[kReader](options) as Snapshot) : db[kStore].snapshot();
    } catch (error) {
      throw toLevelError(error);
    }
    this.#view = view;
    this.#owned = !explicit;
    this.#range = toSiltRange(options);
    this.#from = this.#range;
    this.#withValues = withValues;
  }

  /** Up to `size` items; fewer only at the end. */
  async nextv(size: number): Promise<Item[]> {
    const items: Item[] = [];
    try {
      const source = (this.#source ??= this.#withValues ? this.#view.entries(this.#from) : this.#view.keys(this.#from));
      while (items.length < size) {
        const result = (await source.next()) as IteratorResult<Item>;
        if (result.done === true) break;
        items.push(result.value);
      }
    } catch (error) {
      throw toLevelError(error);
    }
    return items;
  }

  seek(target: Buffer): void {
    const range: RangeOptions = { ...this.#range };
    // Both bounds stay: silt applies the stricter of gt/gte (lt/lte).
    if (range.reverse === true) {
      if (range.lte === undefined || Buffer.compare(target, range.lte as Buffer) < 0) range.lte = target;
    } else if (range.gte === undefined || Buffer.compare(target, range.gte as Buffer) > 0) {
      range.gte = target;
    }
    this.#from = range;
    const old = this.#source;
    this.#source = undefined;
    void old?.return?.(undefined)?.catch(noop);
  }

  async close(): Promise<void> {
    try {
      await this.#source?.return?.(undefined);
    } finally {
      if (this.#owned) this.#view.release();
    }
  }
}

/** Yields `[key, value]` entries (either side `undefined` when the `keys`/`values` option is false). */
export class SiltIterator extends AbstractIterator<AnySiltLevel, unknown, unknown> {
  readonly #cursor: Cursor;
  readonly #keyFormat: Format;
  readonly #valueFormat: Format | undefined;
  readonly #keys: boolean;
  readonly #values: boolean;

  constructor(db: AnySiltLevel, options: PrivateRangeOptions) {
    // Before super(), which registers the iterator with the database: a bad snapshot option throws here.
    const cursor = new Cursor(db, options, options.values !== false);
    super(db, options as never);
    this.#cursor = cursor;
    this.#keys = options.keys !== false;
    this.#values = options.values !== false;
    this.#keyFormat = options.keyEncoding;
    this.#valueFormat = options.valueEncoding;
  }

  async _next(): Promise<[unknown, unknown] | undefined> {
    return (await this._nextv(1))[0];
  }

  async _nextv(size: number): Promise<Array<[unknown, unknown]>> {
    const items = await this.#cursor.nextv(size);
    const keys = this.#keys;
    const values = this.#values;
    return items.map((item) => [
      keys ? formatted(keyOf(item), this.#keyFormat) : undefined,
      values ? formatted((item as Entry).value, this.#valueFormat) : undefined,
    ]);
  }

  async _all(): Promise<Array<[unknown, unknown]>> {
    return this._nextv(this.limit === Infinity ? Infinity : this.limit - this.count);
  }

  _seek(target: Encoded): void {
    this.#cursor.seek(toBuffer(target));
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}

/** Yields keys; reads no values. */
export class SiltKeyIterator extends AbstractKeyIterator<AnySiltLevel, unknown> {
  readonly #cursor: Cursor;
  readonly #keyFormat: Format;

  constructor(db: AnySiltLevel, options: PrivateRangeOptions) {
    const cursor = new Cursor(db, options, false);
    super(db, options as never);
    this.#cursor = cursor;
    this.#keyFormat = options.keyEncoding;
  }

  async _next(): Promise<unknown> {
    return (await this._nextv(1))[0];
  }

  async _nextv(size: number): Promise<unknown[]> {
    const format = this.#keyFormat;
    return (await this.#cursor.nextv(size)).map((item) => formatted(keyOf(item), format));
  }

  async _all(): Promise<unknown[]> {
    return this._nextv(this.limit === Infinity ? Infinity : this.limit - this.count);
  }

  _seek(target: Encoded): void {
    this.#cursor.seek(toBuffer(target));
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}

/** Yields values. */
export class SiltValueIterator extends AbstractValueIterator<AnySiltLevel, unknown, unknown> {
  readonly #cursor: Cursor;
  readonly #valueFormat: Format | undefined;

  constructor(db: AnySiltLevel, options: PrivateRangeOptions) {
    const cursor = new Cursor(db, options, true);
    super(db, options as never);
    this.#cursor = cursor;
    this.#valueFormat = options.valueEncoding;
  }

  async _next(): Promise<unknown> {
    return (await this._nextv(1))[0];
  }

  async _nextv(size: number): Promise<unknown[]> {
    const format = this.#valueFormat;
    return (await this.#cursor.nextv(size)).map((item) => formatted((item as Entry).value, format));
  }

  async _all(): Promise<unknown[]> {
    return this._nextv(this.limit === Infinity ? Infinity : this.limit - this.count);
  }

  _seek(target: Encoded): void {
    this.#cursor.seek(toBuffer(target));
  }

  async _close(): Promise<void> {
    await this.#cursor.close();
  }
}
