/**
 * The persisted delayed list of block garbage collection (phase 1 of two): blocks no live value
 * references, each with the time it was listed. Phase 2 deletes a listed block once it has been on
 * the list for `gc.minAgeMs`, re-checking its reference count first.
 *
 * On disk (`gc.list`, see doc/format.md): a 16-byte header, then fixed 48-byte records appended in
 * time order, each `add` (hash, time) or `remove` (hash), each with its own CRC32. A torn or damaged
 * tail is cut at open (longest valid prefix); what it lost is harmless: a block missing from the
 * list is listed again at the next open, and a block listed twice or already deleted is skipped.
 *
 * Invariants:
 * - In memory, `entries` holds the listed blocks in listing order (Map insertion order), so a
 *   caller can stop at the first block too young, or at its batch limit, without reading the rest.
 * - The file is rewritten (temporary name, fsync, rename, directory fsync) when removed records
 *   outnumber the live ones, so it stays proportional to the list, not to its history.
 */
import { toIoError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import { checksumRange } from '../log/format.js';
import { readFully } from '../log/segment-reader.js';

export const DELAYED_LIST_FILE_NAME = 'gc.list';
export const DELAYED_LIST_MAGIC = Buffer.from('SILTGCL\0', 'latin1');
export const DELAYED_LIST_VERSION = 1;
export const DELAYED_LIST_HEADER_BYTES = 16;
export const DELAYED_RECORD_BYTES = 48;
const HASH_BYTES = 32;

export const enum DelayedRecordKind {
  ADD = 1,
  REMOVE = 2,
}

function encodeHeader(): Buffer {
  const header = Buffer.alloc(DELAYED_LIST_HEADER_BYTES);
  DELAYED_LIST_MAGIC.copy(header, 0);
  header.writeUInt16LE(DELAYED_LIST_VERSION, 8);
  return header;
}

function encodeRecord(target: Buffer, offset: number, kind: DelayedRecordKind, hex: string, timeMs: number): void {
  target.fill(0, offset, offset + DELAYED_RECORD_BYTES);
  target[offset] = kind;
  target.writeDoubleLE(timeMs, offset + 8);
  target.write(hex, offset + 16, HASH_BYTES, 'hex');
  target.writeUInt32LE((checksumRange(target, offset + 8, offset + DELAYED_RECORD_BYTES) ^ kind) >>> 0, offset + 4);
}

/** Decode the records of a whole file; returns the listed blocks and the length of the valid prefix. */
export function decodeDelayedList(file: Buffer): { entries: Map<string, number>; validBytes: number; records: number; problem: string | undefined } {
  const entries = new Map<string, number>();
  if (file.length < DELAYED_LIST_HEADER_BYTES) return { entries, validBytes: 0, records: 0, problem: file.length === 0 ? undefined : 'truncated header' };
  if (!file.subarray(0, 8).equals(DELAYED_LIST_MAGIC)) return { entries, validBytes: 0, records: 0, problem: 'bad magic' };
  if (file.readUInt16LE(8) !== DELAYED_LIST_VERSION) return { entries, validBytes: 0, records: 0, problem: `unsupported version ${file.readUInt16LE(8)}` };
  let offset = DELAYED_LIST_HEADER_BYTES;
  let records = 0;
  let problem: string | undefined;
  while (offset + DELAYED_RECORD_BYTES <= file.length) {
    const kind = file[offset] as number;
    const expected = (checksumRange(file, offset + 8, offset + DELAYED_RECORD_BYTES) ^ kind) >>> 0;
    if ((kind !== DelayedRecordKind.ADD && kind !== DelayedRecordKind.REMOVE) || file.readUInt32LE(offset + 4) !== expected) {
      problem = `bad record at offset ${offset}`;
      break;
    }
    const hex = file.toString('hex', offset + 16, offset + DELAYED_RECORD_BYTES);
    if (kind === DelayedRecordKind.ADD) {
      if (!entries.has(hex)) entries.set(hex, file.readDoubleLE(offset + 8));
    } else {
      entries.delete(hex);
    }
    records++;
    offset += DELAYED_RECORD_BYTES;
  }
  if (problem === undefined && offset !== file.length) problem = `torn record at offset ${offset}`;
  return { entries, validBytes: offset, records, problem };
}

export class DelayedList {
  /** Listed blocks (hex) and when they were listed (ms since the epoch), in listing order. */
  readonly entries: Map<string, number>;
  private records: number;
  private sizeBytes: number;
  /** Records appended but not yet fsynced. */
  private dirty = false;
  bytesWritten = 0;

  private constructor(
    private readonly fs: FileSystem,
    private readonly directory: string,
    private handle: FileHandle | undefined,
    entries: Map<string, number>,
    records: number,
    sizeBytes: number,
  ) {
    this.entries = entries;
    this.records = records;
    this.sizeBytes = sizeBytes;
  }

  get path(): string {
    return `${this.directory}/${DELAYED_LIST_FILE_NAME}`;
  }

  /**
   * Load the list. A writable open cuts a damaged tail; a read-only one only reads. A missing file
   * is an empty list (created at the first `add`).
   */
  static async open(fs: FileSystem, directory: string, readOnly: boolean): Promise<DelayedList> {
    const path = `${directory}/${DELAYED_LIST_FILE_NAME}`;
    let file: Buffer;
    try {
      file = await fs.readFile(path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw toIoError(error, `reading ${path}`);
      return new DelayedList(fs, directory, undefined, new Map(), 0, 0);
    }
    const decoded = decodeDelayedList(file);
    if (readOnly) return new DelayedList(fs, directory, undefined, decoded.entries, decoded.records, file.length);
    if (decoded.validBytes < DELAYED_LIST_HEADER_BYTES) {
      // Nothing usable (a crash while it was first created): start it again.
      const list = new DelayedList(fs, directory, undefined, new Map(), 0, 0);
      await list.rewrite();
      return list;
    }
    const handle = await fs.open(path, 'readwrite');
    if (decoded.validBytes !== file.length) {
      await handle.truncate(decoded.validBytes);
      await handle.datasync();
    }
    return new DelayedList(fs, directory, handle, decoded.entries, decoded.records, decoded.validBytes);
  }

  /** Append `add` records for blocks not yet listed. Not durable until `sync()`. */
  async add(hexes: Iterable<string>, timeMs: number): Promise<number> {
    const added = [...hexes].filter((hex) => !this.entries.has(hex));
    if (added.length === 0) return 0;
    const bytes = Buffer.allocUnsafe(added.length * DELAYED_RECORD_BYTES);
    added.forEach((hex, position) => encodeRecord(bytes, position * DELAYED_RECORD_BYTES, DelayedRecordKind.ADD, hex, timeMs));
    await this.append(bytes);
    for (const hex of added) this.entries.set(hex, timeMs);
    return added.length;
  }

  /** Append `remove` records (blocks deleted or revived). Not durable until `sync()`. */
  async remove(hexes: Iterable<string>, timeMs: number): Promise<void> {
    const removed = [...hexes].filter((hex) => this.entries.has(hex));
    if (removed.length === 0) return;
    for (const hex of removed) this.entries.delete(hex);
    if (this.records + removed.length > 2 * this.entries.size + 64) {
      // Mostly history: write the live entries afresh instead of appending more of it.
      await this.rewrite();
      return;
    }
    const bytes = Buffer.allocUnsafe(removed.length * DELAYED_RECORD_BYTES);
    removed.forEach((hex, position) => encodeRecord(bytes, position * DELAYED_RECORD_BYTES, DelayedRecordKind.REMOVE, hex, timeMs));
    await this.append(bytes);
  }

  private async append(bytes: Buffer): Promise<void> {
    if (this.handle === undefined) {
      await this.rewrite();
    }
    const handle = this.handle as FileHandle;
    try {
      await handle.write(bytes, 0, bytes.length, this.sizeBytes);
    } catch (error) {
      // A short write may have left part of a record: cut it so later appends stay readable.
      await handle.truncate(this.sizeBytes).catch(() => undefined);
      throw toIoError(error, `appending to ${this.path}`);
    }
    this.sizeBytes += bytes.length;
    this.records += bytes.length / DELAYED_RECORD_BYTES;
    this.bytesWritten += bytes.length;
    this.dirty = true;
  }

  /** Make the records appended so far durable. */
  async sync(): Promise<void> {
    if (!this.dirty || this.handle === undefined) return;
    try {
      await this.handle.datasync();
    } catch (error) {
      throw toIoError(error, `fsync of ${this.path}`);
    }
    this.dirty = false;
  }

  /** Write the live entries to a new file and put it in place of the old one, durably. */
  private async rewrite(): Promise<void> {
    const temporaryPath = `${this.path}.tmp`;
    const bytes = Buffer.allocUnsafe(DELAYED_LIST_HEADER_BYTES + this.entries.size * DELAYED_RECORD_BYTES);
    encodeHeader().copy(bytes, 0);
    let offset = DELAYED_LIST_HEADER_BYTES;
    for (const [hex, timeMs] of this.entries) {
      encodeRecord(bytes, offset, DelayedRecordKind.ADD, hex, timeMs);
      offset += DELAYED_RECORD_BYTES;
    }
    let handle: FileHandle | undefined;
    try {
      handle = await this.fs.open(temporaryPath, 'overwrite');
      await handle.write(bytes, 0, bytes.length, 0);
      await handle.sync();
      await this.fs.rename(temporaryPath, this.path);
      await this.fs.syncDirectory(this.directory);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      throw toIoError(error, `writing ${this.path}`);
    }
    await this.handle?.close().catch(() => undefined);
    this.handle = handle;
    this.sizeBytes = bytes.length;
    this.records = this.entries.size;
    this.bytesWritten += bytes.length;
    this.dirty = false;
  }

  /** Bytes of the file on disk. */
  get fileBytes(): number {
    return this.sizeBytes;
  }

  async close(): Promise<void> {
    await this.handle?.close().catch(() => undefined);
    this.handle = undefined;
  }
}
