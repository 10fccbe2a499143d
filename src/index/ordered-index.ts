/**
 * The in-memory ordered key index: a copy-on-write B+tree from binary-string keys to values.
 *
 * What this module owns:
 * - `OrderedIndex<V>`, the live tree the store writes to (`get`, `set`, `delete`, `range`,
 *   `first`, `last`, `fromSorted` for the bulk load at open).
 * - `IndexSnapshot<V>`, an immutable O(1) view of the tree as of one moment, which the store's
 *   iterators and checkpoints read while writes continue.
 * - Key order: keys are "binary strings", JS strings whose char codes are bytes 0..255 (made with
 *   `buffer.toString('latin1')`), so plain JS string comparison (`<`) is bytewise order. Nothing
 *   here checks that char codes stay below 256; any JS strings work, ordered by UTF-16 code units.
 * - Values are held by reference, never copied: a snapshot shares value objects with the live
 *   tree, so callers must not mutate a stored value in place (replace it with `set` instead).
 *
 * Performance notes (figures and the command in test/index/ordered-index.benchmark.ts):
 * - Each node keeps, beside its key strings, a parallel array of numeric key prefixes (the first
 *   6 bytes packed into a double, see `keyPrefix`). Binary search compares those unboxed numbers
 *   and dereferences a key string only when prefixes tie, which halves the cache misses of a
 *   lookup in a 1M-key tree. Keys that share long common prefixes fall back to string compares.
 * - Range scans are a hand-written iterator class holding the root-to-leaf path (measured ~1.7x
 *   faster than a generator); there are no sibling pointers, which path copying cannot keep.
 *
 * Invariants (checked by `checkInvariants()`, which the tests call):
 * 1. Every leaf is at depth `height`; the root is a leaf when `height` is 0, else a branch.
 * 2. Leaves hold parallel arrays `keys`, `prefixes` and `values`, keys strictly increasing. A
 *    branch with `c` children holds `c - 1` separator keys (and their prefixes), and for every
 *    `i`: all keys under `children[i]` are `< keys[i]`, all keys under `children[i + 1]` are
 *    `>= keys[i]`. Separators are not tightened when the smallest key of a subtree is deleted;
 *    the inequalities still hold. Always `prefixes[i] === keyPrefix(keys[i])`.
 * 3. Fill, with B = `branchFactor` (>= 4) and `minimum = floor(B / 2)`: a non-root leaf holds
 *    `minimum..B` keys, a non-root branch `minimum..B` children, a root branch `2..B` children, a
 *    root leaf `0..B` keys. So the height is at most about `log_minimum(size)`, whatever the mix
 *    of writes and deletes. Delete restores this when a node drops below `minimum`: if a sibling
 *    has more than `minimum`, entries move over until the two are even (so the next deletes there
 *    need no rebalancing); otherwise the two merge, which removes a separator from the parent
 *    and may cascade upwards; a root branch left with one child is replaced by that child.
 * 4. Epochs (copy-on-write, the "transient" trick): every node records the epoch it was created
 *    in. A node whose epoch equals the tree's current epoch is reachable only from the live tree
 *    and may be mutated in place; an older node may be shared with snapshots and is never
 *    mutated: a write first copies it, and the path above it, into the current epoch. A node of
 *    the current epoch therefore only has ancestors of the current epoch.
 * 5. `snapshot()` is O(1): it captures (root, height, size) and, if the root belongs to the
 *    current epoch, bumps the epoch, so that no node reachable from the snapshot is ever mutated
 *    again. With no snapshot taken since a node was created, writes mutate it in place; the
 *    only allocations are the nodes that splits create and the growth of node arrays. `range()` on the live tree takes such a
 *    snapshot. Old nodes are reclaimed by the GC once no snapshot or iterator references them;
 *    there is nothing to release (an iterator broken out of early drops its path at once).
 * 6. `size` is the number of keys in the live tree; a snapshot's `size` is the count at its creation.
 */

/** Bounds and direction for a range scan. All bounds are optional; keys compare bytewise. */
export interface KeyRange {
  /** Only keys strictly greater than this. If `gte` is also given, the stricter bound wins. */
  gt?: string;
  /** Only keys greater than or equal to this. */
  gte?: string;
  /** Only keys strictly less than this. If `lte` is also given, the stricter bound wins. */
  lt?: string;
  /** Only keys less than or equal to this. */
  lte?: string;
  /** Iterate from the high end down. */
  reverse?: boolean;
  /** At most this many entries; `undefined` or negative means no limit, 0 means none (fractions round down). */
  limit?: number;
}

/** An immutable view of an `OrderedIndex` as of the moment `snapshot()` was called. */
export interface IndexSnapshot<V> {
  /** The number of keys at the moment of the snapshot. */
  readonly size: number;
  /** The value of `key` at the moment of the snapshot, or `undefined`. */
  get(key: string): V | undefined;
  /** Entries of the snapshot in key order (or reverse), within the bounds of `options`. */
  range(options?: KeyRange): IterableIterator<[string, V]>;
}

/** Options for `new OrderedIndex()`. */
export interface OrderedIndexOptions {
  /**
   * The most keys a leaf holds and the most children a branch holds (default 64, at least 4).
   * Non-root nodes hold at least half of it.
   */
  branchFactor?: number;
}

/**
 * The default branch factor. Measured with 1M random 16-byte keys over 16..256: 64 used the least
 * heap per key and was within noise of the fastest get/set (larger factors get slightly faster
 * lookups but slower inserts and deletes, which shift longer arrays).
 */
const DEFAULT_BRANCH_FACTOR = 64;
const MINIMUM_BRANCH_FACTOR = 4;

class LeafNode<V> {
  epoch: number;
  keys: string[];
  /** `prefixes[i] === keyPrefix(keys[i])`: searches compare these first (see `keyPrefix`). */
  prefixes: number[];
  values: V[];

  constructor(epoch: number, keys: string[], prefixes: number[], values: V[]) {
    this.epoch = epoch;
    this.keys = keys;
    this.prefixes = prefixes;
    this.values = values;
  }
}

class BranchNode<V> {
  epoch: number;
  /** Separators: `keys.length === children.length - 1`. */
  keys: string[];
  /** `prefixes[i] === keyPrefix(keys[i])`. */
  prefixes: number[];
  children: TreeNode<V>[];

  constructor(epoch: number, keys: string[], prefixes: number[], children: TreeNode<V>[]) {
    this.epoch = epoch;
    this.keys = keys;
    this.prefixes = prefixes;
    this.children = children;
  }
}

type TreeNode<V> = LeafNode<V> | BranchNode<V>;

/** How many leading chars `keyPrefix` packs into a number, and the base it packs them in. */
const PREFIX_LENGTH = 6;
const PREFIX_BASE = 258;

/**
 * The first 6 chars of `key` packed into an integer below 2^53 that orders like the key:
 * `a < b` implies `keyPrefix(a) <= keyPrefix(b)`, and unequal prefixes decide the order. Each
 * char code 0..255 becomes a digit 1..256 (0 pads short keys, so "a" < "a\x00"); a char above
 * 255 (not a binary string) becomes 257 and ends the prefix, which keeps the order monotone.
 * Nodes keep these beside their keys: a search compares numbers held in the node's own array
 * and touches a key string (a pointer to chase, usually a cache miss) only on equal prefixes.
 */
function keyPrefix(key: string): number {
  const length = key.length < PREFIX_LENGTH ? key.length : PREFIX_LENGTH;
  let prefix = 0;
  let index = 0;
  while (index < length) {
    const code = key.charCodeAt(index++);
    if (code > 255) {
      prefix = prefix * PREFIX_BASE + 257;
      break;
    }
    prefix = prefix * PREFIX_BASE + code + 1;
  }
  for (; index < PREFIX_LENGTH; index++) prefix *= PREFIX_BASE;
  return prefix;
}

/** The first position whose key is `>= key` (`keys.length` when none); `prefix` is `keyPrefix(key)`. */
function lowerBound(keys: string[], prefixes: number[], key: string, prefix: number): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const middlePrefix = prefixes[middle] as number;
    if (middlePrefix < prefix || (middlePrefix === prefix && (keys[middle] as string) < key)) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The first position whose key is `> key` (`keys.length` when none); `prefix` is `keyPrefix(key)`. */
function upperBound(keys: string[], prefixes: number[], key: string, prefix: number): number {
  let low = 0;
  let high = keys.length;
  while (low < high) {
    const middle = (low + high) >>> 1;
    const middlePrefix = prefixes[middle] as number;
    if (middlePrefix < prefix || (middlePrefix === prefix && (keys[middle] as string) <= key)) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** Insert without `splice`, which allocates the (empty) array of removed items. */
function insertAt<T>(array: T[], position: number, item: T): void {
  let index = array.length;
  array.push(item);
  while (index > position) {
    array[index] = array[index - 1] as T;
    index--;
  }
  array[position] = item;
}

function removeAt<T>(array: T[], position: number): void {
  const last = array.length - 1;
  for (let index = position; index < last; index++) array[index] = array[index + 1] as T;
  array.pop();
}

/**
 * `insertAt` for the prefix arrays. A separate function on purpose: V8 generalizes the elements
 * kind of arrays stored to from a store site that also saw object arrays, so sharing `insertAt`
 * would turn the prefix arrays from unboxed doubles into arrays of pointers to boxed numbers.
 */
function insertNumberAt(array: number[], position: number, item: number): void {
  let index = array.length;
  array.push(item);
  while (index > position) {
    array[index] = array[index - 1] as number;
    index--;
  }
  array[position] = item;
}

/** Move the last `count` items of `source` to the front of `target`, in place. */
function moveTailToFront<T>(source: T[], target: T[], count: number): void {
  const sourceLength = source.length;
  const start = sourceLength - count;
  // Grow with items of the right kind (see `insertNumberAt`), then shift and fill.
  for (let index = start; index < sourceLength; index++) target.push(source[index] as T);
  for (let index = target.length - count - 1; index >= 0; index--) target[index + count] = target[index] as T;
  for (let index = 0; index < count; index++) target[index] = source[start + index] as T;
  source.length = start;
}

/** Move the first `count` items of `source` to the end of `target`, in place. */
function moveHeadToBack<T>(source: T[], target: T[], count: number): void {
  for (let index = 0; index < count; index++) target.push(source[index] as T);
  const remaining = source.length - count;
  for (let index = 0; index < remaining; index++) source[index] = source[index + count] as T;
  source.length = remaining;
}

/** `moveTailToFront` for the prefix arrays (see `insertNumberAt`). */
function moveNumberTailToFront(source: number[], target: number[], count: number): void {
  const sourceLength = source.length;
  const start = sourceLength - count;
  for (let index = start; index < sourceLength; index++) target.push(source[index] as number);
  for (let index = target.length - count - 1; index >= 0; index--) target[index + count] = target[index] as number;
  for (let index = 0; index < count; index++) target[index] = source[start + index] as number;
  source.length = start;
}

/** `moveHeadToBack` for the prefix arrays (see `insertNumberAt`). */
function moveNumberHeadToBack(source: number[], target: number[], count: number): void {
  for (let index = 0; index < count; index++) target.push(source[index] as number);
  const remaining = source.length - count;
  for (let index = 0; index < remaining; index++) source[index] = source[index + count] as number;
  source.length = remaining;
}

/** `removeAt` for the prefix arrays (see `insertNumberAt`). */
function removeNumberAt(array: number[], position: number): void {
  const last = array.length - 1;
  for (let index = position; index < last; index++) array[index] = array[index + 1] as number;
  array.pop();
}

/** The tree's own string for the key of the latest `get` (of any tree or snapshot); see `lastFoundKey`. */
let foundKey: string | undefined;

/**
 * The string the tree holds for the key that the latest `get` (of any `OrderedIndex` or snapshot)
 * found, or `undefined` if that `get` found nothing. Equal to the key asked for, but the tree's
 * own object: a caller that keeps the key for later can keep this one, which the tree holds
 * anyway, instead of a copy, and without a second descent (`storedKey`). Read it right after the
 * `get`: the next lookup replaces it.
 */
export function lastFoundKey(): string | undefined {
  return foundKey;
}

function lookup<V>(root: TreeNode<V>, height: number, key: string): V | undefined {
  const prefix = keyPrefix(key);
  let node = root;
  for (let depth = 0; depth < height; depth++) {
    const branch = node as BranchNode<V>;
    node = branch.children[upperBound(branch.keys, branch.prefixes, key, prefix)] as TreeNode<V>;
  }
  const leaf = node as LeafNode<V>;
  const keys = leaf.keys;
  const position = lowerBound(keys, leaf.prefixes, key, prefix);
  if (position < keys.length && leaf.prefixes[position] === prefix && keys[position] === key) {
    foundKey = keys[position];
    return leaf.values[position];
  }
  foundKey = undefined;
  return undefined;
}

function edgeEntry<V>(root: TreeNode<V>, height: number, fromEnd: boolean): [string, V] | undefined {
  let node = root;
  for (let depth = 0; depth < height; depth++) {
    const children = (node as BranchNode<V>).children;
    node = children[fromEnd ? children.length - 1 : 0] as TreeNode<V>;
  }
  const leaf = node as LeafNode<V>;
  if (leaf.keys.length === 0) return undefined;
  const position = fromEnd ? leaf.keys.length - 1 : 0;
  return [leaf.keys[position] as string, leaf.values[position] as V];
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined }) as IteratorReturnResult<undefined>;

/**
 * A range scan over a fixed root. It keeps the path from the root to the current leaf (no
 * sibling pointers exist: they cannot survive path copying), and only reads nodes, which the
 * epoch rule guarantees are never mutated while reachable from a snapshot.
 * A hand-written class: a full scan of 1M keys took ~110 ms against ~190 ms for a generator.
 */
class RangeIterator<V> implements IterableIterator<[string, V]> {
  private readonly height: number;
  private readonly reverse: boolean;
  /** The bound on the side the scan moves towards (upper when forward, lower when reverse). */
  private readonly endKey: string | undefined;
  private readonly endInclusive: boolean;
  private remaining: number;
  private readonly branches: BranchNode<V>[] = [];
  private readonly positions: number[] = [];
  /** The current leaf; `undefined` once the scan is over. */
  private leaf: LeafNode<V> | undefined;
  /** The position in `leaf` of the next entry to return (may be out of range: then move on). */
  private position = 0;

  constructor(root: TreeNode<V>, height: number, options: KeyRange | undefined) {
    this.height = height;
    let lower: string | undefined;
    let lowerInclusive = true;
    let upper: string | undefined;
    let upperInclusive = true;
    let limit = Infinity;
    let reverse = false;
    if (options !== undefined) {
      if (options.gte !== undefined) lower = options.gte;
      if (options.gt !== undefined && (lower === undefined || options.gt >= lower)) {
        lower = options.gt;
        lowerInclusive = false;
      }
      if (options.lte !== undefined) upper = options.lte;
      if (options.lt !== undefined && (upper === undefined || options.lt <= upper)) {
        upper = options.lt;
        upperInclusive = false;
      }
      reverse = options.reverse === true;
      const requested = options.limit;
      if (requested !== undefined && requested >= 0) limit = Math.floor(requested);
    }
    this.reverse = reverse;
    this.remaining = limit;
    this.endKey = reverse ? lower : upper;
    this.endInclusive = reverse ? lowerInclusive : upperInclusive;
    if (limit === 0) {
      this.leaf = undefined;
      return;
    }

    // Seek in O(height * log B): choose at each branch the only child that can hold the first
    // entry in scan order (see invariant 2), then the position inside the leaf.
    const lowerPrefix = lower === undefined ? 0 : keyPrefix(lower);
    const upperPrefix = upper === undefined ? 0 : keyPrefix(upper);
    let node = root;
    for (let depth = 0; depth < height; depth++) {
      const branch = node as BranchNode<V>;
      let child: number;
      if (!reverse) child = lower === undefined ? 0 : upperBound(branch.keys, branch.prefixes, lower, lowerPrefix);
      else if (upper === undefined) child = branch.children.length - 1;
      else if (upperInclusive) child = upperBound(branch.keys, branch.prefixes, upper, upperPrefix);
      else child = lowerBound(branch.keys, branch.prefixes, upper, upperPrefix);
      this.branches.push(branch);
      this.positions.push(child);
      node = branch.children[child] as TreeNode<V>;
    }
    const leaf = node as LeafNode<V>;
    this.leaf = leaf;
    if (!reverse) {
      if (lower === undefined) this.position = 0;
      else if (lowerInclusive) this.position = lowerBound(leaf.keys, leaf.prefixes, lower, lowerPrefix);
      else this.position = upperBound(leaf.keys, leaf.prefixes, lower, lowerPrefix);
    } else if (upper === undefined) {
      this.position = leaf.keys.length - 1;
    } else {
      const after = upperInclusive
        ? upperBound(leaf.keys, leaf.prefixes, upper, upperPrefix)
        : lowerBound(leaf.keys, leaf.prefixes, upper, upperPrefix);
      this.position = after - 1;
    }
  }

  [Symbol.iterator](): this {
    return this;
  }

  next(): IteratorResult<[string, V], undefined> {
    let leaf = this.leaf;
    if (leaf === undefined) return DONE;
    let position = this.position;
    let key: string;
    if (!this.reverse) {
      while (position >= leaf.keys.length) {
        const next = this.stepLeaf(false);
        if (next === undefined) return this.finish();
        leaf = next;
        position = 0;
      }
      key = leaf.keys[position] as string;
      const endKey = this.endKey;
      if (endKey !== undefined && (this.endInclusive ? key > endKey : key >= endKey)) return this.finish();
      this.position = position + 1;
    } else {
      while (position < 0) {
        const previous = this.stepLeaf(true);
        if (previous === undefined) return this.finish();
        leaf = previous;
        position = leaf.keys.length - 1;
      }
      key = leaf.keys[position] as string;
      const endKey = this.endKey;
      if (endKey !== undefined && (this.endInclusive ? key < endKey : key <= endKey)) return this.finish();
      this.position = position - 1;
    }
    if (--this.remaining <= 0) this.finish();
    return { done: false, value: [key, leaf.values[position] as V] };
  }

  /** Stop early (a `break` in `for...of`): drop the references to the nodes. */
  return(): IteratorResult<[string, V], undefined> {
    return this.finish();
  }

  private finish(): IteratorReturnResult<undefined> {
    this.leaf = undefined;
    this.branches.length = 0;
    return DONE;
  }

  /** Move to the next (or previous) leaf in key order; sets `leaf`; `undefined` past the end. */
  private stepLeaf(backwards: boolean): LeafNode<V> | undefined {
    const branches = this.branches;
    const positions = this.positions;
    let depth = this.height - 1;
    for (; depth >= 0; depth--) {
      const branch = branches[depth] as BranchNode<V>;
      const position = (positions[depth] as number) + (backwards ? -1 : 1);
      if (position >= 0 && position < branch.children.length) {
        positions[depth] = position;
        break;
      }
    }
    if (depth < 0) return undefined;
    let node = (branches[depth] as BranchNode<V>).children[positions[depth] as number] as TreeNode<V>;
    for (depth++; depth < this.height; depth++) {
      const branch = node as BranchNode<V>;
      const position = backwards ? branch.children.length - 1 : 0;
      branches[depth] = branch;
      positions[depth] = position;
      node = branch.children[position] as TreeNode<V>;
    }
    this.leaf = node as LeafNode<V>;
    return this.leaf;
  }
}

/** The immutable view returned by `OrderedIndex.snapshot()`. */
class TreeSnapshot<V> implements IndexSnapshot<V> {
  readonly size: number;
  private readonly root: TreeNode<V>;
  private readonly height: number;

  constructor(root: TreeNode<V>, height: number, size: number) {
    this.root = root;
    this.height = height;
    this.size = size;
  }

  get(key: string): V | undefined {
    return lookup(this.root, this.height, key);
  }

  range(options?: KeyRange): IterableIterator<[string, V]> {
    return new RangeIterator(this.root, this.height, options);
  }

  first(): [string, V] | undefined {
    return edgeEntry(this.root, this.height, false);
  }

  last(): [string, V] | undefined {
    return edgeEntry(this.root, this.height, true);
  }
}

/**
 * An ordered map from binary-string keys to values: a B+tree with O(1) copy-on-write snapshots.
 *
 * `get`, `set` and `delete` are O(log n); `range` seeks in O(log n) then steps in O(1) amortized;
 * `snapshot` is O(1). Writes after a snapshot copy each touched node once (per snapshot epoch).
 *
 * @typeParam V - the value type; values are stored by reference and never copied.
 */
export class OrderedIndex<V> {
  private root: TreeNode<V>;
  /** The number of branch levels above the leaves. */
  private height = 0;
  private count = 0;
  /** The current epoch: nodes of this epoch are private to the live tree (invariant 4). */
  private epoch = 0;
  private readonly branchFactor: number;
  private readonly minimumFill: number;
  /** The branches of the last descent, root first, and the child taken in each. Reused, so a write allocates nothing. */
  private readonly pathNodes: BranchNode<V>[] = [];
  private readonly pathPositions: number[] = [];

  /**
   * @param options.branchFactor - the most keys per leaf and children per branch (default 64, at least 4).
   * @throws RangeError if `branchFactor` is not an integer >= 4.
   */
  constructor(options?: OrderedIndexOptions) {
    const branchFactor = options?.branchFactor ?? DEFAULT_BRANCH_FACTOR;
    if (!Number.isInteger(branchFactor) || branchFactor < MINIMUM_BRANCH_FACTOR) {
      throw new RangeError(`branchFactor must be an integer >= ${MINIMUM_BRANCH_FACTOR}, got ${String(branchFactor)}`);
    }
    this.branchFactor = branchFactor;
    this.minimumFill = branchFactor >>> 1;
    this.root = new LeafNode<V>(0, [], [], []);
  }

  /**
   * Build an index from keys in strictly increasing order and their values, in O(n).
   * Nodes are filled evenly and as full as the branch factor allows (least memory; the first
   * insert into a full leaf splits it).
   *
   * @param keys - strictly increasing (bytewise) binary-string keys; the array is not retained.
   * @param values - `values[i]` is the value of `keys[i]`; the array is not retained.
   * @param options - as for the constructor.
   * @throws TypeError if the arrays differ in length, a key is not a string, or the keys are not strictly increasing.
   */
  static fromSorted<V>(keys: string[], values: V[], options?: OrderedIndexOptions): OrderedIndex<V> {
    if (keys.length !== values.length) {
      throw new TypeError(`fromSorted: ${keys.length} keys but ${values.length} values`);
    }
    const total = keys.length;
    // The prefixes are needed anyway; comparing them first also spares most string compares.
    const prefixes: number[] = [];
    let previousKey = '';
    let previousPrefix = -1;
    for (let index = 0; index < total; index++) {
      const key = keys[index];
      if (typeof key !== 'string') throw new TypeError(`fromSorted: key ${index} is not a string`);
      const prefix = keyPrefix(key);
      if (prefix < previousPrefix || (prefix === previousPrefix && !(previousKey < key))) {
        throw new TypeError(`fromSorted: keys are not strictly increasing at index ${index}`);
      }
      prefixes.push(prefix);
      previousKey = key;
      previousPrefix = prefix;
    }

    const index = new OrderedIndex<V>(options);
    if (total === 0) return index;
    const branchFactor = index.branchFactor;
    const epoch = index.epoch;

    // Leaves: ceil(total / B) of them, sizes differing by at most one (so each holds >= B/2).
    let level: TreeNode<V>[] = [];
    let firstKeys: string[] = [];
    let firstPrefixes: number[] = [];
    let nodeCount = Math.ceil(total / branchFactor);
    for (let node = 0; node < nodeCount; node++) {
      const start = Math.floor((node * total) / nodeCount);
      const end = Math.floor(((node + 1) * total) / nodeCount);
      level.push(new LeafNode<V>(epoch, keys.slice(start, end), prefixes.slice(start, end), values.slice(start, end)));
      firstKeys.push(keys[start] as string);
      firstPrefixes.push(prefixes[start] as number);
    }
    // Branch levels, the same way, until one node remains.
    let height = 0;
    while (level.length > 1) {
      const children = level;
      const childFirstKeys = firstKeys;
      const childFirstPrefixes = firstPrefixes;
      level = [];
      firstKeys = [];
      firstPrefixes = [];
      nodeCount = Math.ceil(children.length / branchFactor);
      for (let node = 0; node < nodeCount; node++) {
        const start = Math.floor((node * children.length) / nodeCount);
        const end = Math.floor(((node + 1) * children.length) / nodeCount);
        const separators = childFirstKeys.slice(start + 1, end);
        level.push(new BranchNode<V>(epoch, separators, childFirstPrefixes.slice(start + 1, end), children.slice(start, end)));
        firstKeys.push(childFirstKeys[start] as string);
        firstPrefixes.push(childFirstPrefixes[start] as number);
      }
      height++;
    }
    index.root = level[0] as TreeNode<V>;
    index.height = height;
    index.count = total;
    return index;
  }

  /** The number of keys. */
  get size(): number {
    return this.count;
  }

  /** The value stored under `key`, or `undefined`. */
  get(key: string): V | undefined {
    return lookup(this.root, this.height, key);
  }

  /**
   * The tree's own string for `key` (equal to `key`; the object the tree holds), or `undefined`
   * when absent. A caller that keeps a key for later comparison can keep this one, which the tree
   * holds anyway, rather than a copy.
   */
  storedKey(key: string): string | undefined {
    lookup(this.root, this.height, key);
    return foundKey;
  }

  /**
   * Insert `key` or replace its value.
   * @returns the previous value, or `undefined` if the key was absent.
   */
  set(key: string, value: V): V | undefined {
    const prefix = keyPrefix(key);
    let leaf = this.descend(key, prefix);
    const position = lowerBound(leaf.keys, leaf.prefixes, key, prefix);
    if (position < leaf.keys.length && leaf.prefixes[position] === prefix && leaf.keys[position] === key) {
      const previous = leaf.values[position];
      if (leaf.epoch !== this.epoch) leaf = this.makePathWritable();
      leaf.values[position] = value;
      return previous;
    }
    if (leaf.epoch !== this.epoch) leaf = this.makePathWritable();
    insertAt(leaf.keys, position, key);
    insertNumberAt(leaf.prefixes, position, prefix);
    insertAt(leaf.values, position, value);
    this.count++;
    if (leaf.keys.length > this.branchFactor) this.splitLeaf(leaf);
    return undefined;
  }

  /**
   * Remove `key`.
   * @returns the removed value, or `undefined` if the key was absent.
   */
  delete(key: string): V | undefined {
    const prefix = keyPrefix(key);
    let leaf = this.descend(key, prefix);
    const position = lowerBound(leaf.keys, leaf.prefixes, key, prefix);
    if (position >= leaf.keys.length || leaf.prefixes[position] !== prefix || leaf.keys[position] !== key) return undefined;
    const previous = leaf.values[position];
    if (leaf.epoch !== this.epoch) leaf = this.makePathWritable();
    removeAt(leaf.keys, position);
    removeNumberAt(leaf.prefixes, position);
    removeAt(leaf.values, position);
    this.count--;
    if (this.height > 0 && leaf.keys.length < this.minimumFill) this.rebalance();
    return previous;
  }

  /**
   * An immutable view of the index as it is now, in O(1). Later writes to the index never show
   * in it. Nothing needs releasing: the nodes it alone holds are garbage-collected with it.
   */
  snapshot(): IndexSnapshot<V> {
    return this.freeze();
  }

  /**
   * Entries in key order (or reverse) within `options`, as of this call: the scan reads a
   * snapshot, so writes made while iterating neither show up nor disturb it.
   */
  range(options?: KeyRange): IterableIterator<[string, V]> {
    return this.freeze().range(options);
  }

  /** The entry with the smallest key, or `undefined` when empty. */
  first(): [string, V] | undefined {
    return edgeEntry(this.root, this.height, false);
  }

  /** The entry with the largest key, or `undefined` when empty. */
  last(): [string, V] | undefined {
    return edgeEntry(this.root, this.height, true);
  }

  /**
   * Call `visit` with every entry in key order, leaf by leaf: no entry pair is allocated, as
   * `range` allocates one per entry (over 1M keys at open: 13-18 ms against 58-75 ms). `visit`
   * must not change the index.
   */
  forEach(visit: (key: string, value: V) => void): void {
    const walk = (node: TreeNode<V>, depth: number): void => {
      if (depth === this.height) {
        const leaf = node as LeafNode<V>;
        for (let position = 0; position < leaf.keys.length; position++) visit(leaf.keys[position] as string, leaf.values[position] as V);
        return;
      }
      for (const child of (node as BranchNode<V>).children) walk(child, depth + 1);
    };
    walk(this.root, 0);
  }

  /**
   * Verify invariants 1 to 4 of the module comment in O(n); throws an Error naming the first
   * violation. For tests and debugging.
   */
  checkInvariants(): void {
    const fail = (message: string): never => {
      throw new Error(`OrderedIndex invariant violated: ${message}`);
    };
    const checkPrefixes = (keys: string[], prefixes: number[]): void => {
      if (keys.length !== prefixes.length) fail('keys and prefixes differ in length');
      keys.forEach((key, index) => {
        if (prefixes[index] !== keyPrefix(key)) fail(`stale prefix for ${JSON.stringify(key)}`);
      });
    };
    let counted = 0;
    let previousKey: string | undefined;
    const visit = (node: TreeNode<V>, depth: number, low: string | undefined, high: string | undefined, parentIsCurrent: boolean): void => {
      const isRoot = depth === 0;
      if (node.epoch > this.epoch) fail(`node at depth ${depth} has a future epoch`);
      if (node.epoch === this.epoch && !parentIsCurrent) fail(`node at depth ${depth} is of the current epoch under an older parent`);
      const isCurrent = node.epoch === this.epoch;
      if (depth === this.height) {
        if (!(node instanceof LeafNode)) return fail(`depth ${depth} should hold leaves`);
        if (node.keys.length !== node.values.length) fail('leaf keys and values differ in length');
        checkPrefixes(node.keys, node.prefixes);
        const length = node.keys.length;
        if (length > this.branchFactor) fail(`leaf over-full (${length})`);
        if (!isRoot && length < this.minimumFill) fail(`leaf under-full (${length})`);
        for (const key of node.keys) {
          if (previousKey !== undefined && !(previousKey < key)) fail(`keys out of order at ${JSON.stringify(key)}`);
          if (low !== undefined && key < low) fail(`key below its separator at ${JSON.stringify(key)}`);
          if (high !== undefined && key >= high) fail(`key at or above its separator at ${JSON.stringify(key)}`);
          previousKey = key;
          counted++;
        }
        return;
      }
      if (!(node instanceof BranchNode)) return fail(`depth ${depth} should hold branches`);
      const children = node.children.length;
      if (node.keys.length !== children - 1) fail('branch separators are not children - 1');
      checkPrefixes(node.keys, node.prefixes);
      if (children > this.branchFactor) fail(`branch over-full (${children})`);
      if (isRoot ? children < 2 : children < this.minimumFill) fail(`branch under-full (${children})`);
      for (let index = 0; index < children; index++) {
        const childLow = index === 0 ? low : node.keys[index - 1];
        const childHigh = index === children - 1 ? high : node.keys[index];
        visit(node.children[index] as TreeNode<V>, depth + 1, childLow, childHigh, isCurrent);
      }
    };
    visit(this.root, 0, undefined, undefined, true);
    if (counted !== this.count) fail(`size is ${this.count} but the tree holds ${counted} keys`);
  }

  // ------------------------------------------------------------------------------------------
  // Internals

  private freeze(): TreeSnapshot<V> {
    // If the root is older than the epoch, so is every node (invariant 4): nothing to bump.
    if (this.root.epoch === this.epoch) this.epoch++;
    return new TreeSnapshot(this.root, this.height, this.count);
  }

  /** Walk from the root to the leaf that holds or would hold `key`, recording the path. */
  private descend(key: string, prefix: number): LeafNode<V> {
    const pathNodes = this.pathNodes;
    const pathPositions = this.pathPositions;
    let node = this.root;
    for (let depth = 0; depth < this.height; depth++) {
      const branch = node as BranchNode<V>;
      const position = upperBound(branch.keys, branch.prefixes, key, prefix);
      pathNodes[depth] = branch;
      pathPositions[depth] = position;
      node = branch.children[position] as TreeNode<V>;
    }
    return node as LeafNode<V>;
  }

  /**
   * Copy every node of the recorded path that is older than the current epoch (top-down, so
   * each copy is linked into an already writable parent); update the path; return the leaf.
   */
  private makePathWritable(): LeafNode<V> {
    const epoch = this.epoch;
    const height = this.height;
    const pathNodes = this.pathNodes;
    const pathPositions = this.pathPositions;
    if (height === 0) {
      let leaf = this.root as LeafNode<V>;
      if (leaf.epoch !== epoch) {
        leaf = copyLeaf(leaf, epoch);
        this.root = leaf;
      }
      return leaf;
    }
    let branch = this.root as BranchNode<V>;
    if (branch.epoch !== epoch) {
      branch = copyBranch(branch, epoch);
      this.root = branch;
    }
    pathNodes[0] = branch;
    for (let depth = 1; depth < height; depth++) {
      const position = pathPositions[depth - 1] as number;
      let child = branch.children[position] as BranchNode<V>;
      if (child.epoch !== epoch) {
        child = copyBranch(child, epoch);
        branch.children[position] = child;
      }
      pathNodes[depth] = child;
      branch = child;
    }
    const position = pathPositions[height - 1] as number;
    let leaf = branch.children[position] as LeafNode<V>;
    if (leaf.epoch !== epoch) {
      leaf = copyLeaf(leaf, epoch);
      branch.children[position] = leaf;
    }
    return leaf;
  }

  /** Split an over-full leaf at the end of the recorded (writable) path. */
  private splitLeaf(leaf: LeafNode<V>): void {
    const middle = leaf.keys.length >>> 1;
    const right = new LeafNode<V>(this.epoch, leaf.keys.splice(middle), leaf.prefixes.splice(middle), leaf.values.splice(middle));
    this.insertIntoParent(this.height - 1, right.keys[0] as string, right.prefixes[0] as number, right);
  }

  /** Link `right` (split off the node at `depth + 1` of the path) into its parent, splitting upwards. */
  private insertIntoParent(depth: number, separator: string, separatorPrefix: number, right: TreeNode<V>): void {
    const epoch = this.epoch;
    while (depth >= 0) {
      const parent = this.pathNodes[depth] as BranchNode<V>;
      const position = this.pathPositions[depth] as number;
      insertAt(parent.keys, position, separator);
      insertNumberAt(parent.prefixes, position, separatorPrefix);
      insertAt(parent.children, position + 1, right);
      if (parent.children.length <= this.branchFactor) return;
      // Children [0, middle) stay, separator keys[middle - 1] moves up, the rest go right.
      const middle = parent.children.length >>> 1;
      const rightKeys = parent.keys.splice(middle);
      const rightPrefixes = parent.prefixes.splice(middle);
      separator = parent.keys.pop() as string;
      separatorPrefix = parent.prefixes.pop() as number;
      right = new BranchNode<V>(epoch, rightKeys, rightPrefixes, parent.children.splice(middle));
      depth--;
    }
    this.root = new BranchNode<V>(epoch, [separator], [separatorPrefix], [this.root, right]);
    this.height++;
  }

  /** A child of a writable branch, copied into the current epoch first if it is older. */
  private writableChild(parent: BranchNode<V>, position: number): TreeNode<V> {
    const child = parent.children[position] as TreeNode<V>;
    if (child.epoch === this.epoch) return child;
    const copy = child instanceof LeafNode ? copyLeaf(child, this.epoch) : copyBranch(child, this.epoch);
    parent.children[position] = copy;
    return copy;
  }

  /**
   * Restore the fill invariant after a delete left the leaf of the recorded (writable) path
   * under-full: borrow one entry from a sibling that can spare it, else merge with a sibling,
   * which removes an entry from the parent, which may then be under-full in turn.
   */
  private rebalance(): void {
    const minimum = this.minimumFill;
    for (let depth = this.height; depth > 0; depth--) {
      const parent = this.pathNodes[depth - 1] as BranchNode<V>;
      const position = this.pathPositions[depth - 1] as number;
      const node = parent.children[position] as TreeNode<V>;
      const isLeaf = depth === this.height;
      if (fillOf(node) >= minimum) return;
      const leftSibling = position > 0 ? (parent.children[position - 1] as TreeNode<V>) : undefined;
      const rightSibling = position < parent.children.length - 1 ? (parent.children[position + 1] as TreeNode<V>) : undefined;

      // Borrow: even out with a sibling that can spare entries, so that the next deletes here
      // do not have to rebalance again at once.
      if (leftSibling !== undefined && fillOf(leftSibling) > minimum) {
        const left = this.writableChild(parent, position - 1);
        const moved = (fillOf(left) - fillOf(node)) >>> 1;
        if (isLeaf) {
          const leaf = node as LeafNode<V>;
          const from = left as LeafNode<V>;
          moveTailToFront(from.keys, leaf.keys, moved);
          moveNumberTailToFront(from.prefixes, leaf.prefixes, moved);
          moveTailToFront(from.values, leaf.values, moved);
          parent.keys[position - 1] = leaf.keys[0] as string;
          parent.prefixes[position - 1] = leaf.prefixes[0] as number;
        } else {
          // The moved children take the separators between them; the parent's separator comes
          // down in front of the node's own keys, and the left's last remaining key goes up.
          const branch = node as BranchNode<V>;
          const from = left as BranchNode<V>;
          const cut = from.children.length - moved;
          const movedChildren = from.children.splice(cut);
          const movedKeys = from.keys.splice(cut);
          const movedPrefixes = from.prefixes.splice(cut);
          branch.keys = movedKeys.concat([parent.keys[position - 1] as string], branch.keys);
          branch.prefixes = movedPrefixes.concat([parent.prefixes[position - 1] as number], branch.prefixes);
          branch.children = movedChildren.concat(branch.children);
          parent.keys[position - 1] = from.keys.pop() as string;
          parent.prefixes[position - 1] = from.prefixes.pop() as number;
        }
        return;
      }
      if (rightSibling !== undefined && fillOf(rightSibling) > minimum) {
        const right = this.writableChild(parent, position + 1);
        const moved = (fillOf(right) - fillOf(node)) >>> 1;
        if (isLeaf) {
          const leaf = node as LeafNode<V>;
          const from = right as LeafNode<V>;
          moveHeadToBack(from.keys, leaf.keys, moved);
          moveNumberHeadToBack(from.prefixes, leaf.prefixes, moved);
          moveHeadToBack(from.values, leaf.values, moved);
          parent.keys[position] = from.keys[0] as string;
          parent.prefixes[position] = from.prefixes[0] as number;
        } else {
          const branch = node as BranchNode<V>;
          const from = right as BranchNode<V>;
          branch.keys = branch.keys.concat([parent.keys[position] as string], from.keys.splice(0, moved - 1));
          branch.prefixes = branch.prefixes.concat([parent.prefixes[position] as number], from.prefixes.splice(0, moved - 1));
          branch.children = branch.children.concat(from.children.splice(0, moved));
          parent.keys[position] = from.keys[0] as string;
          parent.prefixes[position] = from.prefixes[0] as number;
          removeAt(from.keys, 0);
          removeNumberAt(from.prefixes, 0);
        }
        return;
      }

      // Merge the pair (node, right sibling) into its left member, which must be writable; the
      // right member is only read, so it is never copied.
      let leftPosition: number;
      let into: TreeNode<V>;
      let from: TreeNode<V>;
      if (rightSibling !== undefined) {
        leftPosition = position;
        into = node;
        from = rightSibling;
      } else {
        leftPosition = position - 1;
        into = this.writableChild(parent, leftPosition);
        from = node;
      }
      if (isLeaf) {
        const target = into as LeafNode<V>;
        const source = from as LeafNode<V>;
        for (let index = 0; index < source.keys.length; index++) {
          target.keys.push(source.keys[index] as string);
          target.prefixes.push(source.prefixes[index] as number);
          target.values.push(source.values[index] as V);
        }
      } else {
        const target = into as BranchNode<V>;
        const source = from as BranchNode<V>;
        target.keys.push(parent.keys[leftPosition] as string);
        target.prefixes.push(parent.prefixes[leftPosition] as number);
        for (let index = 0; index < source.keys.length; index++) {
          target.keys.push(source.keys[index] as string);
          target.prefixes.push(source.prefixes[index] as number);
        }
        for (let index = 0; index < source.children.length; index++) target.children.push(source.children[index] as TreeNode<V>);
      }
      removeAt(parent.keys, leftPosition);
      removeNumberAt(parent.prefixes, leftPosition);
      removeAt(parent.children, leftPosition + 1);
    }
    // The loop reached the root (depth 0) through merges: collapse a one-child root.
    const root = this.root as BranchNode<V>;
    if (root.children.length === 1) {
      this.root = root.children[0] as TreeNode<V>;
      this.height--;
      this.pathNodes.length = this.height;
      this.pathPositions.length = this.height;
    }
  }
}

function fillOf<V>(node: TreeNode<V>): number {
  return node instanceof LeafNode ? node.keys.length : node.children.length;
}

function copyLeaf<V>(leaf: LeafNode<V>, epoch: number): LeafNode<V> {
  return new LeafNode<V>(epoch, leaf.keys.slice(), leaf.prefixes.slice(), leaf.values.slice());
}

function copyBranch<V>(branch: BranchNode<V>, epoch: number): BranchNode<V> {
  return new BranchNode<V>(epoch, branch.keys.slice(), branch.prefixes.slice(), branch.children.slice());
}
