/**
 * Verified blocks kept in memory, so that a large value read again and again is a memory copy
 * instead of a file read and a SHA-256 of every byte.
 *
 * Invariants:
 * - It holds only bytes that hashed to their block's name when they were read from disk. A
 *   block's name is the hash of its content, so a cached block can never go stale: whatever
 *   record points at the name wants exactly these bytes. The disk is what the per-read check
 *   guards against; bytes held here are checked once, when they come in, as the log's read cache
 *   checks an entry's CRC once per cached block.
 * - Callers get copies, never views into cached buffers (`copyTo`, `copyOf`).
 * - A block comes in on its second read within the recent past, not its first (`offer`): a value
 *   read once (a scan, a stream of a cold object, an export) costs no copy and evicts nothing.
 *   "Recent" is a bounded record of the names read once (`ghostLimit` of them, oldest forgotten
 *   first).
 * - While the cache is full, only every `FULL_ADMIT_EVERY`th such block comes in. When the blocks
 *   read are many times the capacity, every read would otherwise pay a copy in and an eviction,
 *   to keep a block that is as likely to be read next as the one it pushed out; a hot block
 *   still comes in after a few more reads.
 * - Eviction is SIEVE (a "visited" bit per block and a hand that sweeps from the oldest), by
 *   bytes: the cache never holds more than `capacityBytes`. A block larger than an eighth of the
 *   capacity is never cached. A capacity of 0 disables the cache.
 * - The block store drops a block here when it deletes its file, so memory follows the store.
 */
const FULL_ADMIT_EVERY = 8;

interface Entry {
  hex: string;
  data: Buffer;
  visited: boolean;
  /** Towards the newest. */
  newer: Entry | undefined;
  /** Towards the oldest. */
  older: Entry | undefined;
}

export class BlockCache {
  private readonly entries = new Map<string, Entry>();
  private newest: Entry | undefined;
  private oldest: Entry | undefined;
  private hand: Entry | undefined;
  /** Names read once recently, oldest first (a Map keeps insertion order). */
  private readonly ghosts = new Map<string, true>();
  private readonly ghostLimit: number;
  /** Admissions passed over while full, since the last one made while full. */
  private passedOver = 0;
  sizeBytes = 0;
  hits = 0;
  misses = 0;

  constructor(readonly capacityBytes: number) {
    // Enough names to remember a working set of 4 KiB blocks as large as the cache itself (a
    // value read whole twice must find its first block's name still there): 16,384 names, about
    // 2 MB, at the default 64 MiB.
    this.ghostLimit = capacityBytes === 0 ? 0 : Math.min(65_536, Math.max(256, Math.ceil(capacityBytes / 4096)));
  }

  /**
   * Copy the cached block `hex` of `expectedBytes` into `target` at `offset`; false (a miss) when
   * it is not cached (or is cached with another length, which a read from disk then reports).
   */
  copyTo(hex: string, expectedBytes: number, target: Buffer, offset: number): boolean {
    const entry = this.hit(hex, expectedBytes);
    if (entry === undefined) return false;
    entry.data.copy(target, offset);
    return true;
  }

  /**
   * Copy bytes `from..to` of the cached block `hex` of `expectedBytes` into `target` at `offset`;
   * false (a miss) as for `copyTo`.
   */
  copyRangeTo(hex: string, expectedBytes: number, from: number, to: number, target: Buffer, offset: number): boolean {
    const entry = this.hit(hex, expectedBytes);
    if (entry === undefined) return false;
    entry.data.copy(target, offset, from, to);
    return true;
  }

  /** A fresh copy of the cached block `hex` (of `expectedBytes`, when given), or undefined (a miss). */
  copyOf(hex: string, expectedBytes: number | undefined): Buffer | undefined {
    const entry = this.hit(hex, expectedBytes);
    if (entry === undefined) return undefined;
    const copy = Buffer.allocUnsafe(entry.data.length);
    entry.data.copy(copy, 0);
    return copy;
  }

  private hit(hex: string, expectedBytes: number | undefined): Entry | undefined {
    if (this.capacityBytes === 0) return undefined;
    const entry = this.entries.get(hex);
    if (entry === undefined || (expectedBytes !== undefined && entry.data.length !== expectedBytes)) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    entry.visited = true;
    return entry;
  }

  /**
   * `data` was just read from disk for block `hex` and verified against its hash. Keep a copy if
   * the block was read once before, recently; otherwise remember that it was read.
   */
  offer(hex: string, data: Buffer): void {
    if (this.capacityBytes === 0 || data.length * 8 > this.capacityBytes || this.entries.has(hex)) return;
    if (!this.ghosts.delete(hex)) {
      this.remember(hex);
      return;
    }
    if (this.sizeBytes + data.length > this.capacityBytes) {
      if (++this.passedOver < FULL_ADMIT_EVERY) {
        // Still remembered as read: the next read of it is another chance.
        this.remember(hex);
        return;
      }
      this.passedOver = 0;
    }
    while (this.sizeBytes + data.length > this.capacityBytes && this.oldest !== undefined) this.evictOne();
    const copy = Buffer.allocUnsafe(data.length);
    data.copy(copy, 0);
    const entry: Entry = { hex, data: copy, visited: false, newer: undefined, older: this.newest };
    if (this.newest !== undefined) this.newest.newer = entry;
    this.newest = entry;
    this.oldest ??= entry;
    this.entries.set(hex, entry);
    this.sizeBytes += copy.length;
  }

  private remember(hex: string): void {
    this.ghosts.set(hex, true);
    if (this.ghosts.size > this.ghostLimit) this.ghosts.delete(this.ghosts.keys().next().value as string);
  }

  /** Forget block `hex` (its file is being deleted). */
  delete(hex: string): void {
    this.ghosts.delete(hex);
    const entry = this.entries.get(hex);
    if (entry !== undefined) this.unlink(entry);
  }

  /** The SIEVE step: from the hand towards the newest, clear visited bits until an unvisited block. */
  private evictOne(): void {
    let candidate = this.hand ?? this.oldest;
    while (candidate !== undefined && candidate.visited) {
      candidate.visited = false;
      candidate = candidate.newer ?? this.oldest;
    }
    if (candidate === undefined) return;
    this.hand = candidate.newer;
    this.unlink(candidate);
  }

  private unlink(entry: Entry): void {
    if (this.hand === entry) this.hand = entry.newer;
    if (entry.newer !== undefined) entry.newer.older = entry.older;
    else this.newest = entry.older;
    if (entry.older !== undefined) entry.older.newer = entry.newer;
    else this.oldest = entry.newer;
    entry.newer = undefined;
    entry.older = undefined;
    this.entries.delete(entry.hex);
    this.sizeBytes -= entry.data.length;
  }
}
