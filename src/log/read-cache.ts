/**
 * A cache of fixed-size, aligned blocks of segment files, so that hot small reads are memory
 * copies instead of system calls.
 *
 * Invariants:
 * - A cached block holds exactly the file's bytes at that range as of when it was read; a block
 *   is only cached when it lies wholly below the segment's written size, so later appends (which
 *   only ever write past the end) never change a cached block.
 * - Callers get copies (or views of fresh buffers), never views into cached blocks.
 * - A block may remember which entries in it passed their CRC check (`isChecked`/`markChecked`):
 *   its bytes never change while it is cached, so an entry checked once in it stays checked. The
 *   marks live and die with the block (a re-read block starts with none); they cost 256 bytes per
 *   block (3%), outside `capacityBytes`.
 * - Eviction is SIEVE (one "visited" bit per block and a hand that sweeps from the oldest):
 *   scan-resistant and cheaper than LRU on hits (a hit sets one bit, no reordering).
 * - The cache never exceeds `capacityBytes`; a capacity of 0 disables it.
 */
import type { FileHandle } from '../fs/types.js';
import { readFullySync } from './segment-reader.js';

export const READ_CACHE_BLOCK_BYTES = 8192;
const BLOCK_SHIFT = 13;
// Offsets are below 2^32, so `offset >>> BLOCK_SHIFT` is exact; block starts are computed by
// multiplication, since `<<` would wrap past 2^31.

/**
 * Marks are per 32-byte granule of the block: the granule of an entry's first byte holds that
 * byte's position in the granule plus one (0: none). Distinct valid entries start at least
 * ENTRY_HEADER_BYTES (20) apart, so two rarely share a granule; when they do, the later mark
 * replaces the earlier, which only costs that entry another CRC check. A mark names an exact
 * start, so it never vouches for any other offset.
 */
const CHECK_GRANULE_SHIFT = 5;
const CHECK_GRANULE_MASK = (1 << CHECK_GRANULE_SHIFT) - 1;

const CHECK_MARK_BYTES = READ_CACHE_BLOCK_BYTES >>> CHECK_GRANULE_SHIFT;

export class CachedBlock {
  visited = false;
  /** The block's bytes: exactly the file's bytes at its range. */
  readonly bytes: Buffer;
  /**
   * The CRC marks, in the same allocation as `bytes`, right after them: a separate small array
   * measured as an extra cache miss or two per read.
   */
  private readonly checked: Buffer;

  constructor(
    readonly key: number,
    memory: Buffer,
  ) {
    this.bytes = memory.subarray(0, READ_CACHE_BLOCK_BYTES);
    this.checked = memory.subarray(READ_CACHE_BLOCK_BYTES, READ_CACHE_BLOCK_BYTES + CHECK_MARK_BYTES).fill(0);
  }

  /** Whether the entry starting at `start` (in this block) passed its CRC check while cached. */
  isChecked(start: number): boolean {
    return this.checked[start >>> CHECK_GRANULE_SHIFT] === (start & CHECK_GRANULE_MASK) + 1;
  }

  /** Record that the entry starting at `start` passed its CRC check in this block's bytes. */
  markChecked(start: number): void {
    this.checked[start >>> CHECK_GRANULE_SHIFT] = (start & CHECK_GRANULE_MASK) + 1;
  }
}

export class ReadCache {
  private readonly blocks = new Map<number, CachedBlock>();
  /** Insertion order (oldest first); the SIEVE hand walks it. */
  private queue: CachedBlock[] = [];
  private hand = 0;
  private readonly capacityBlocks: number;
  hits = 0;
  misses = 0;

  constructor(capacityBytes: number) {
    this.capacityBlocks = Math.floor(capacityBytes / READ_CACHE_BLOCK_BYTES);
  }

  get sizeBytes(): number {
    return this.blocks.size * READ_CACHE_BLOCK_BYTES;
  }

  /**
   * The `length` bytes at `offset` of segment `segmentId` (of which `fileSizeBytes` are written),
   * as a view: `bytes[start .. start + length]`. When `block` is set the view is into that cached
   * block's bytes, which the caller must not modify or keep (copy what it returns); otherwise
   * `bytes` is a fresh buffer the caller owns. Fewer bytes are available only if the file is
   * shorter than asked (`bytes.length - start < length`).
   */
  view(handle: FileHandle, segmentId: number, fileSizeBytes: number, offset: number, length: number): { bytes: Buffer; start: number; block: CachedBlock | undefined } {
    const firstBlock = offset >>> BLOCK_SHIFT;
    const lastBlock = (offset + length - 1) >>> BLOCK_SHIFT;
    // Large reads, and reads reaching into the unfinished last block, go straight to the file.
    if (this.capacityBlocks === 0 || lastBlock - firstBlock > 1 || (lastBlock + 1) * READ_CACHE_BLOCK_BYTES > fileSizeBytes) {
      this.misses++;
      const result = Buffer.allocUnsafe(length);
      const read = readFullySync(handle, result, offset);
      return { bytes: read === length ? result : result.subarray(0, read), start: 0, block: undefined };
    }
    if (firstBlock === lastBlock) {
      const block = this.block(handle, segmentId, firstBlock);
      return { bytes: block.bytes, start: offset - firstBlock * READ_CACHE_BLOCK_BYTES, block };
    }
    const result = Buffer.allocUnsafe(length);
    const split = lastBlock * READ_CACHE_BLOCK_BYTES;
    const head = this.block(handle, segmentId, firstBlock).bytes.copy(result, 0, offset - firstBlock * READ_CACHE_BLOCK_BYTES);
    this.block(handle, segmentId, lastBlock).bytes.copy(result, head, 0, offset + length - split);
    return { bytes: result, start: 0, block: undefined };
  }

  private block(handle: FileHandle, segmentId: number, block: number): CachedBlock {
    const key = segmentId * 0x8_0000 + block;
    const cached = this.blocks.get(key);
    if (cached !== undefined) {
      this.hits++;
      cached.visited = true;
      return cached;
    }
    this.misses++;
    const entry = new CachedBlock(key, Buffer.allocUnsafe(READ_CACHE_BLOCK_BYTES + CHECK_MARK_BYTES));
    readFullySync(handle, entry.bytes, block * READ_CACHE_BLOCK_BYTES);
    if (this.blocks.size >= this.capacityBlocks) this.evict();
    this.blocks.set(key, entry);
    this.queue.push(entry);
    return entry;
  }

  private evict(): void {
    for (;;) {
      if (this.hand >= this.queue.length) this.hand = 0;
      const candidate = this.queue[this.hand] as CachedBlock;
      if (candidate.visited) {
        candidate.visited = false;
        this.hand++;
        continue;
      }
      this.blocks.delete(candidate.key);
      this.queue.splice(this.hand, 1);
      return;
    }
  }

  /** Forget every block of a segment (its file is going away or being replaced). */
  dropSegment(segmentId: number): void {
    this.queue = this.queue.filter((entry) => {
      if (Math.floor(entry.key / 0x8_0000) !== segmentId) return true;
      this.blocks.delete(entry.key);
      return false;
    });
    this.hand = 0;
  }
}
