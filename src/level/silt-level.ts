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
 * - Implicit snapshots: an iterator reads from the state of the store at the moment it was
 *   created. silt's iterators take their snapshot on their first `next()`, so a cursor calls
 *   `next()` once, synchronously, when it is created (and again whenever it starts a new silt
 *   iterator); `get()` is synchronous underneath, so it trivially reads the state at the call.
 * - `seek()` keeps the iterator's snapshot (see `Cursor` for how, and for the one case where it
 *   cannot without a core snapshot API: a backward seek after writes made since the iterator was
 *   created).
 * - Errors are abstract-level's codes (LEVEL_*), with silt's `SiltError` as `cause`.
 */
import {
  AbstractIterator,
  AbstractKeyIterator,
  AbstractLevel,
  AbstractValueIterator,
  type AbstractDatabaseOptions,
} from 'abstract-level';
import { open, Store } from '../engine/store.js';
import type { Entry, RangeOptions } from '../engine/types.js';
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
  valueEncoding: Format;
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

const kWrites = Symbol('completedWrites');

/** What abstract-level's private API declares (`getSync` and `has` are newer than level-supports' types). */
const MANIFEST = {
  encodings: { buffer: true, view: true, utf8: true },
  implicitSnapshots: true,
  explicitSnapshots: false,
  has: true,
  getSync: true,
  seek: true,
  createIfMissing: true,
  errorIfExists: true,
  permanence: true,
  additionalMethods: {},
};
const kStore = Symbol('store');
const kVersion = Symbol('version');

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
  /** Writes completed through this database; iterators compare it to know if their snapshot is still current. */
  [kWrites] = 0;

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

  /**
   * @internal For iterators: changes whenever a write completed through this database or any
   * write was queued on the store (both counters only grow, so their sum is unchanged only when
   * both are).
   */
  get [kVersion](): number {
    return this[kWrites] + this[kStore].stats().revision;
  }

  /** @internal For iterators. */
  get [kStore](): Store {
    const store = this.#store;
    if (store === undefined) throw new LevelError('Database is not open', 'LEVEL_DATABASE_NOT_OPEN');
    return store;
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
    let value: Buffer | undefined;
    try {
      value = this[kStore].getSync(key);
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

  async _has(key: Encoded): Promise<boolean> {
    return this.#hasSync(key);
  }

  async _hasMany(keys: Encoded[]): Promise<boolean[]> {
    return keys.map((key) => this.#hasSync(key));
  }

  #hasSync(key: Encoded): boolean {
    try {
      return this[kStore].getSync(key) !== undefined;
    } catch (error) {
      throw toLevelError(error);
    }
  }

  async _put(key: Encoded, value: Encoded): Promise<void> {
    try {
      await this[kStore].put(key, value);
    } catch (error) {
      throw toLevelError(error, this.#argumentCode([key]));
    } finally {
      this[kWrites]++;
    }
  }

  async _del(key: Encoded): Promise<void> {
    try {
      await this[kStore].delete(key);
    } catch (error) {
      throw toLevelError(error);
    } finally {
      this[kWrites]++;
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
    } finally {
      this[kWrites]++;
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
   * Delete a range: the keys are read from one snapshot taken now, and deleted in batches of at
   * most 10,000 (not atomic, which abstract-level allows).
   */
  async _clear(options: PrivateRangeOptions): Promise<void> {
    const store = this[kStore];
    const range = toSiltRange(options);
    if (options.limit >= 0) range.limit = options.limit;
    try {
      let chunk: Array<{ type: 'delete'; key: Buffer }> = [];
      for await (const key of store.keys(range)) {
        chunk.push({ type: 'delete', key });
        if (chunk.length >= this.#batchChunk) {
          await this.#deleteChunk(store, chunk);
          chunk = [];
        }
      }
      if (chunk.length > 0) await this.#deleteChunk(store, chunk);
    } catch (error) {
      throw toLevelError(error);
    }
  }

  async #deleteChunk(store: Store, chunk: Array<{ type: 'delete'; key: Buffer }>): Promise<void> {
    try {
      await store.batch(chunk);
    } finally {
      this[kWrites]++;
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
 * A position in a silt iterator, with seek. silt's iterators read one snapshot each, taken on
 * their first `next()`, and cannot seek; so:
 * - a cursor calls `next()` once as soon as it creates a silt iterator (pinning its snapshot)
 *   and keeps the result as `buffered`;
 * - `seek(target)` starts a new silt iterator over the narrowed range (O(log n)) when nothing
 *   was written since the cursor's snapshot (`db[kVersion]` unchanged: the new iterator sees the
 *   same data); after writes it skips forward within the current silt iterator (same snapshot,
 *   O(distance)), which is exact for targets ahead of the position. A target behind the
 *   position after writes has no snapshot to go back to: the cursor restarts on the current
 *   data. A core snapshot API (one snapshot, many range iterators) would make every seek exact.
 */
class Cursor {
  readonly #db: AnySiltLevel;
  readonly #range: RangeOptions;
  readonly #reverse: boolean;
  readonly #withValues: boolean;
  #source: Source;
  #buffered: Promise<IteratorResult<Item>> | undefined;
  /** The last key taken out of the source (returned or skipped), not counting `buffered`. */
  #position: Buffer | undefined;
  #skipTo: Buffer | undefined;
  /** `db[kVersion]` when the snapshot of the source was taken. */
  #version: number;

  constructor(db: AnySiltLevel, options: PrivateRangeOptions, withValues: boolean) {
    this.#db = db;
    this.#range = toSiltRange(options);
    this.#reverse = options.reverse;
    this.#withValues = withValues;
    this.#version = db[kVersion];
    this.#source = this.#start(this.#range);
  }

  #start(range: RangeOptions): Source {
    let source: Source;
    try {
      const store = this.#db[kStore];
      source = this.#withValues ? store.entries(range) : store.keys(range);
    } catch (error) {
      throw toLevelError(error);
    }
    // The first next() takes the silt iterator's snapshot, synchronously.
    this.#buffered = (source.next() as Promise<IteratorResult<Item>>);
    this.#buffered.catch(noop);
    this.#position = undefined;
    return source;
  }

  /** True when `key` comes before `target` in this cursor's direction. */
  #before(key: Buffer, target: Buffer): boolean {
    const order = Buffer.compare(key, target);
    return this.#reverse ? order > 0 : order < 0;
  }

  #take(): Promise<IteratorResult<Item>> {
    const buffered = this.#buffered;
    if (buffered !== undefined) {
      this.#buffered = undefined;
      return buffered;
    }
    return this.#source.next() as Promise<IteratorResult<Item>>;
  }

  /** Up to `size` items; fewer only at the end. */
  async nextv(size: number): Promise<Item[]> {
    const items: Item[] = [];
    try {
      if (this.#skipTo !== undefined) await this.#skip(this.#skipTo);
      while (items.length < size) {
        const result = await this.#take();
        if (result.done === true) {
          this.#buffered = Promise.resolve(result);
          break;
        }
        items.push(result.value);
      }
    } catch (error) {
      throw toLevelError(error);
    }
    const last = items[items.length - 1];
    if (last !== undefined) this.#position = keyOf(last);
    return items;
  }

  async #skip(target: Buffer): Promise<void> {
    this.#skipTo = undefined;
    for (;;) {
      const result = await this.#take();
      if (result.done === true || !this.#before(keyOf(result.value), target)) {
        this.#buffered = Promise.resolve(result);
        return;
      }
      this.#position = keyOf(result.value);
    }
  }

  seek(target: Buffer): void {
    const ahead = this.#position === undefined || this.#before(this.#position, target);
    if (this.#db[kVersion] !== this.#version && ahead) {
      this.#skipTo = target;
      return;
    }
    // Nothing was written since the snapshot (a new silt iterator sees the same data), or the
    // target is behind the position after writes (no way back to the snapshot: a new one).
    this.#skipTo = undefined;
    const range: RangeOptions = { ...this.#range };
    if (this.#reverse) {
      if (range.lte === undefined || Buffer.compare(target, range.lte as Buffer) < 0) range.lte = target;
    } else if (range.gte === undefined || Buffer.compare(target, range.gte as Buffer) > 0) {
      range.gte = target;
    }
    const old = this.#source;
    this.#version = this.#db[kVersion];
    this.#source = this.#start(range);
    void old.return?.(undefined)?.catch(noop);
  }

  async close(): Promise<void> {
    await this.#source.return?.(undefined);
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
    super(db, options as never);
    this.#keys = options.keys !== false;
    this.#values = options.values !== false;
    this.#keyFormat = options.keyEncoding;
    this.#valueFormat = options.valueEncoding;
    this.#cursor = new Cursor(db, options, this.#values);
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
    super(db, options as never);
    this.#keyFormat = options.keyEncoding;
    this.#cursor = new Cursor(db, options, false);
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
    super(db, options as never);
    this.#valueFormat = options.valueEncoding;
    this.#cursor = new Cursor(db, options, true);
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
