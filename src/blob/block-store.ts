/**
 * The content-addressed block store: large values are split into blocks, each stored once in
 * `blocks/<sha256 hex>.blk`, shared by every value that contains it, and verified on every read.
 *
 * Invariants:
 * - A block file's name is the SHA-256 of its data. It is written under a temporary name, fsynced,
 *   renamed to its final name; `syncDirectory()` makes the names durable. The store calls it before
 *   writing any log record that points at the blocks (durability ordering).
 * - Writers of the same content share one write: the first writer's promise is reused (per-content
 *   lock), so two writers never race on one file and a writer never sees a half-written block.
 * - Reference counts are kept by the store (one per live version pointing at a block); a block
 *   whose count drops to zero becomes a GC candidate. Only the store's two-phase GC deletes
 *   blocks (`remove`), and a deletion and a write of the same content are ordered by the
 *   per-content lock: the write waits for the deletion, then stores the content again.
 * - A read that does not hash to the block's name is CORRUPTION, never bytes.
 */
import { createHash, randomBytes } from 'node:crypto';
import { ErrorCode, SiltError, toIoError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { readFully, readFullySync } from '../log/segment-reader.js';

export const BLOCK_DIRECTORY_NAME = 'blocks';
export const BLOCK_MAGIC = Buffer.from('SILTBLK\0', 'latin1');
export const BLOCK_VERSION = 1;
export const BLOCK_HEADER_BYTES = 16;
export const HASH_BYTES = 32;
const BLOCK_SUFFIX = '.blk';
const TEMPORARY_MARK = '.tmp-';

export function blockFileName(hash: Buffer): string {
  return `${hash.toString('hex')}${BLOCK_SUFFIX}`;
}

export function sha256(data: Uint8Array): Buffer {
  return createHash('sha256').update(data).digest();
}

function encodeBlockHeader(dataBytes: number): Buffer {
  const header = Buffer.alloc(BLOCK_HEADER_BYTES);
  BLOCK_MAGIC.copy(header, 0);
  header.writeUInt16LE(BLOCK_VERSION, 8);
  header.writeUInt16LE(0, 10);
  header.writeUInt32LE(dataBytes, 12);
  return header;
}

export class BlockStore {
  readonly directory: string;
  /** Hex hashes of the block files present (complete, final name). */
  private readonly present = new Set<string>();
  /** Writes in flight, by hex hash: the per-content lock. */
  private readonly writing = new Map<string, Promise<void>>();
  /** Deletions in flight, by hex hash: a write of the same content waits for them. */
  private readonly deleting = new Map<string, Promise<void>>();
  private directoryDirty = false;
  /** Bytes of block data in the files present. */
  storedBytes = 0;
  private readonly sizes = new Map<string, number>();
  blockWrites = 0;
  blockBytesWritten = 0;
  /** The header (and one byte past the data) of a synchronous read; reads never overlap. */
  private readonly headerScratch = Buffer.allocUnsafe(BLOCK_HEADER_BYTES + 1);

  constructor(
    private readonly fs: FileSystem,
    storeDirectory: string,
  ) {
    this.directory = `${storeDirectory}/${BLOCK_DIRECTORY_NAME}`;
  }

  /** List the block directory (creating it when writable). */
  async open(readOnly: boolean, storeDirectory: string): Promise<string[]> {
    let names: string[];
    try {
      names = await this.fs.readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw toIoError(error, `listing ${this.directory}`);
      if (!readOnly) {
        await this.fs.mkdir(this.directory);
        // The directory's own name is durable before a block in it is relied on.
        await this.fs.syncDirectory(storeDirectory);
      }
      return [];
    }
    const leftovers: string[] = [];
    for (const name of names) {
      if (name.endsWith(BLOCK_SUFFIX) && name.length === HASH_BYTES * 2 + BLOCK_SUFFIX.length) {
        this.present.add(name.slice(0, HASH_BYTES * 2));
      } else if (name.includes(TEMPORARY_MARK)) {
        leftovers.push(name);
      }
    }
    return leftovers;
  }

  /** Learn the data size of every present block (for stats); reads only headers. */
  async measure(): Promise<void> {
    for (const hex of this.present) {
      if (this.sizes.has(hex)) continue;
      const handle = await this.fs.open(`${this.directory}/${hex}${BLOCK_SUFFIX}`, 'read');
      try {
        const size = (await handle.size()) - BLOCK_HEADER_BYTES;
        this.sizes.set(hex, Math.max(0, size));
        this.storedBytes += Math.max(0, size);
      } finally {
        await handle.close();
      }
    }
  }

  /** Is the block (a hash, or its hex) present? */
  has(hash: Buffer | string): boolean {
    return this.present.has(typeof hash === 'string' ? hash : hash.toString('hex'));
  }

  /** Data bytes of a present block (0 when unknown). */
  sizeOf(hex: string): number {
    return this.sizes.get(hex) ?? 0;
  }

  get blockCount(): number {
    return this.present.size;
  }

  /**
   * Store `data` as a block named by `hash` (its SHA-256) unless it is already present or being
   * written. The file is fsynced on return; call `syncDirectory()` before relying on its name.
   */
  async write(hash: Buffer, data: Uint8Array): Promise<void> {
    const hex = hash.toString('hex');
    // Content being deleted by GC is written afresh once the deletion is done (per-content lock).
    const deleting = this.deleting.get(hex);
    if (deleting !== undefined) await deleting.catch(() => undefined);
    if (this.present.has(hex)) return;
    const inFlight = this.writing.get(hex);
    if (inFlight !== undefined) return inFlight;
    const promise = this.writeFile(hex, data).finally(() => this.writing.delete(hex));
    this.writing.set(hex, promise);
    return promise;
  }

  private async writeFile(hex: string, data: Uint8Array): Promise<void> {
    const finalPath = `${this.directory}/${hex}${BLOCK_SUFFIX}`;
    const temporaryPath = `${this.directory}/${hex}${TEMPORARY_MARK}${randomBytes(4).toString('hex')}`;
    let handle: FileHandle | undefined;
    try {
      handle = await this.fs.open(temporaryPath, 'create');
      const header = encodeBlockHeader(data.length);
      await handle.write(header, 0, header.length, 0);
      await handle.write(data, 0, data.length, BLOCK_HEADER_BYTES);
      // The block's bytes are durable before its final name exists.
      await handle.sync();
      await handle.close();
      handle = undefined;
      await this.fs.rename(temporaryPath, finalPath);
    } catch (error) {
      if (handle !== undefined) await handle.close().catch(() => undefined);
      await this.fs.unlink(temporaryPath).catch(() => undefined);
      throw toIoError(error, `writing block ${hex}`);
    }
    this.directoryDirty = true;
    this.present.add(hex);
    this.sizes.set(hex, data.length);
    this.storedBytes += data.length;
    this.blockWrites++;
    this.blockBytesWritten += data.length + BLOCK_HEADER_BYTES;
  }

  /** Make the names of blocks written so far durable (one directory fsync for all of them). */
  async syncDirectory(): Promise<void> {
    if (!this.directoryDirty) return;
    this.directoryDirty = false;
    try {
      await this.fs.syncDirectory(this.directory);
    } catch (error) {
      this.directoryDirty = true;
      throw toIoError(error, `fsync of ${this.directory}`);
    }
  }

  /**
   * Check a block file read as `header` (its first bytes, `headerRead` of them read), `data` (the
   * bytes after the header; `dataRead` of them read) and `extraRead` (bytes found past them: must
   * be 0), against `hash` and the expected data length.
   */
  private check(hash: Buffer, header: Buffer, headerRead: number, data: Buffer, dataRead: number, extraRead: number, expectedBytes: number | undefined): Buffer {
    const where = `block ${hash.toString('hex')}`;
    if (headerRead < BLOCK_HEADER_BYTES || header.compare(BLOCK_MAGIC, 0, 8, 0, 8) !== 0) {
      throw new SiltError(ErrorCode.CORRUPTION, `${where}: bad header`);
    }
    if (header.readUInt16LE(8) !== BLOCK_VERSION) throw new SiltError(ErrorCode.CORRUPTION, `${where}: unsupported version`);
    const dataBytes = header.readUInt32LE(12);
    const held = dataRead + extraRead;
    if (dataBytes !== held || (expectedBytes !== undefined && dataBytes !== expectedBytes)) {
      throw new SiltError(ErrorCode.CORRUPTION, `${where}: holds ${held}${extraRead > 0 ? '+' : ''} bytes, expected ${expectedBytes ?? dataBytes}`);
    }
    const view = data.subarray(0, dataRead);
    if (!sha256(view).equals(hash)) throw new SiltError(ErrorCode.CORRUPTION, `${where}: content does not match its hash`);
    return view;
  }

  private missing(hash: Buffer, error: unknown): SiltError {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return new SiltError(ErrorCode.CORRUPTION, `block ${hash.toString('hex')} is missing`, { cause: error });
    }
    return toIoError(error, `reading block ${hash.toString('hex')}`);
  }

  /** Read and verify a whole block of `expectedBytes` bytes (any size when undefined). */
  async read(hash: Buffer, expectedBytes: number | undefined): Promise<Buffer> {
    const path = `${this.directory}/${blockFileName(hash)}`;
    let file: Buffer;
    try {
      const handle = await this.fs.open(path, 'read');
      try {
        const sizeBytes = expectedBytes === undefined ? (await handle.size()) - BLOCK_HEADER_BYTES : expectedBytes;
        file = Buffer.allocUnsafe(BLOCK_HEADER_BYTES + Math.max(0, sizeBytes) + 1);
        const read = await readFully(handle, file, 0);
        file = file.subarray(0, read);
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw this.missing(hash, error);
    }
    const headerRead = Math.min(file.length, BLOCK_HEADER_BYTES);
    const dataBytes = headerRead === BLOCK_HEADER_BYTES ? file.readUInt32LE(12) : 0;
    const data = file.subarray(headerRead);
    const dataRead = Math.min(data.length, dataBytes);
    return this.check(hash, file, headerRead, data, dataRead, data.length - dataRead, expectedBytes);
  }

  /**
   * Synchronous `read` (for `getSync`) of a block of exactly `expectedBytes`, verified. The data
   * is read straight into `target` at `targetOffset` when given (no copy afterwards: the caller's
   * value buffer), else into fresh memory; returns the view of it that holds the block.
   */
  readSync(hash: Buffer, expectedBytes: number, target?: Buffer, targetOffset = 0): Buffer {
    const path = `${this.directory}/${blockFileName(hash)}`;
    const data = target === undefined ? Buffer.allocUnsafe(expectedBytes) : target.subarray(targetOffset, targetOffset + expectedBytes);
    const header = this.headerScratch;
    let headerRead: number;
    let dataRead: number;
    let extraRead: number;
    try {
      const handle = this.fs.openSync(path, 'read');
      try {
        // Three positional reads: the header, the data into place, and one byte past the end,
        // which must not exist. Reading the whole file into one buffer would need a copy after.
        headerRead = readFullySync(handle, header.subarray(0, BLOCK_HEADER_BYTES), 0);
        dataRead = headerRead < BLOCK_HEADER_BYTES ? 0 : readFullySync(handle, data, BLOCK_HEADER_BYTES);
        extraRead = dataRead < expectedBytes ? 0 : handle.readSync(header, BLOCK_HEADER_BYTES, 1, BLOCK_HEADER_BYTES + expectedBytes);
      } finally {
        // Closed before returning: a loop of synchronous reads must not pile up descriptors.
        handle.closeSync();
      }
    } catch (error) {
      throw this.missing(hash, error);
    }
    return this.check(hash, header, headerRead, data, dataRead, extraRead, expectedBytes);
  }

  /** Bytes of the present blocks that `referenceCounts` does not count. */
  unreferencedBytes(referenceCounts: Map<string, number>): number {
    let bytes = 0;
    for (const hex of this.present) if (!referenceCounts.has(hex)) bytes += this.sizes.get(hex) ?? 0;
    return bytes;
  }

  /** Hex hashes of every present block (for the orphan sweep and verification). */
  presentHashes(): IterableIterator<string> {
    return this.present.values();
  }

  /** True while a write of this content is in flight. */
  isWriting(hex: string): boolean {
    return this.writing.has(hex);
  }

  /**
   * Delete a block file (garbage collection). Deleting one already gone is not an error. From the
   * call on (synchronously), the block counts as absent: a write of the same content waits for
   * the deletion and then stores it again, so a caller that checked the block unreferenced in
   * the same synchronous step can never delete content a new write relies on. Returns false
   * (and does nothing) while a write of the content is in flight.
   */
  remove(hex: string): Promise<boolean> {
    if (this.writing.has(hex)) return Promise.resolve(false);
    const wasPresent = this.present.delete(hex);
    const size = this.sizes.get(hex);
    if (wasPresent) {
      this.storedBytes -= size ?? 0;
      this.sizes.delete(hex);
    }
    const deletion = this.fs.unlink(`${this.directory}/${hex}${BLOCK_SUFFIX}`).then(
      () => undefined,
      (error: unknown) => {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
        // Not deleted after all: it is still there (and still unreferenced) for the next pass.
        if (wasPresent && !this.present.has(hex)) {
          this.present.add(hex);
          if (size !== undefined) {
            this.sizes.set(hex, size);
            this.storedBytes += size;
          }
        }
        throw toIoError(error, `deleting block ${hex}`);
      },
    );
    const tracked = deletion.finally(() => {
      if (this.deleting.get(hex) === tracked) this.deleting.delete(hex);
    });
    this.deleting.set(hex, tracked);
    this.directoryDirty = true;
    return tracked.then(() => true);
  }

  /** Delete a leftover temporary file of a write that never finished. */
  async removeLeftover(name: string): Promise<void> {
    await this.fs.unlink(`${this.directory}/${name}`).catch(() => undefined);
    this.directoryDirty = true;
  }
}
