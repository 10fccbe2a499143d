/**
 * The integrity checker, shared by `db.verify()`, `silt verify` and the tests. It trusts nothing:
 * it rereads every byte the store owns and recomputes what the store keeps in memory.
 *
 * What it checks:
 * - every segment: header, every entry's CRC, the footer's counts, revision range, key range and
 *   data checksum against the entries, and that only the newest segment is unsealed;
 * - the index against the log: replaying every segment from scratch must give exactly the live
 *   index (same keys, same locations), as of the position the index reflects;
 * - the checkpoint: decodes, every entry it holds is what the log says at its position, and it
 *   leaves out no key the log holds there but an expired put of an inline value;
 * - every block file against its hash, and every block carried in the log (BLOCK entry) too;
 *   reference counts against the references recomputed from the replayed log; every referenced
 *   block present (a file or a BLOCK entry); the checkpoint's and the store's log-block locations
 *   each name a BLOCK entry of that hash;
 * - the GC delayed list (`gc.list`): every record's CRC; a torn last record is only reported on
 *   a read-only open (a writable open cuts it); listed blocks that are missing are not a problem
 *   (a deletion whose remove record was lost), nor listed ones referenced again (revived);
 * - files in the directory that nothing owns, and block files nothing references or whose block
 *   is carried in the log too (whose content may be incomplete after a crash: counted, not a
 *   problem, see `incompleteBlocks`).
 *
 * Invariants: read-only (safe on a `readOnly` open); reports problems, never repairs.
 */
import type { BlockStore } from '../blob/block-store.js';
import { decodeDelayedList, DELAYED_LIST_FILE_NAME, DELAYED_RECORD_BYTES } from '../blob/delayed-list.js';
import type { FileSystem } from '../fs/types.js';
import { ErrorCode, SiltError } from '../errors.js';
import type { IndexSnapshot } from '../index/ordered-index.js';
import {
  checksum,
  EntryType,
  parseSegmentFileName,
  referenceBlockCount,
  referenceBlockHash,
  referenceBlockLength,
  SEGMENT_HEADER_BYTES,
  decodeReference,
  decodeSegmentHeader,
  type SegmentSummary,
  type ValueReference,
} from '../log/format.js';
import { decodeHint, deltaLocation, HINT_FILE_NAME, HINT_TEMPORARY_FILE_NAME, type EntryLocation, type LogBlockLocation } from '../log/hint.js';
import { sha256 } from '../blob/block-store.js';
import { readFully, scanSegment } from '../log/segment-reader.js';
import { decodeManifest, forEachManifestBlock, type ObjectManifest } from '../log/object.js';
import { emptySummary, noteEntry } from '../log/segment-writer.js';

export interface VerifyProblem {
  /** What kind of problem: a stable word, e.g. 'segment', 'footer', 'index', 'checkpoint', 'block', 'refcount', 'gc-list', 'file'. */
  kind: string;
  /** Where: a file path, with an offset or key when known. */
  where: string;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  problems: VerifyProblem[];
  checked: {
    segments: number;
    entries: number;
    bytes: number;
    keys: number;
    blocks: number;
    blockBytes: number;
    checkpointEntries: number;
  };
  /** Block files no live value references: GC candidates (listed, or about to be). */
  unreferencedBlocks: number;
  /** Of those, the ones on the persisted delayed list. */
  delayedBlocks: number;
  /**
   * Of the unreferenced ones, those whose content does not check out: block files are written
   * under their final name, so a crash can leave one incomplete, but only one no record points
   * at. Not a problem: nothing reads them, a write of the same content replaces them, and GC
   * deletes them (the orphan sweep lists them at the next writable open).
   */
  incompleteBlocks: number;
}

export interface VerifyProgress {
  phase: 'segments' | 'blocks';
  doneBytes: number;
  totalBytes: number;
}

/** What the store hands the checker: its files, and its in-memory state frozen at one instant. */
export interface VerifyInput {
  fs: FileSystem;
  directory: string;
  /** Segments and their written sizes at the instant of `snapshot`, oldest first. */
  segments: Array<{ segmentId: number; path: string; sizeBytes: number; sealed: boolean }>;
  /** The index as of the end of the segments above. */
  snapshot: IndexSnapshot<EntryLocation>;
  /** Live versions per block (hex), at the same instant. */
  referenceCounts: Map<string, number>;
  blocks: BlockStore;
  /** Where the store reads each block carried in the log (hex hash to BLOCK entry), at the same instant. */
  logBlocks?: Map<string, LogBlockLocation>;
  /** Compacted segments whose files wait for open readers (not checked, but not strangers). */
  retiredSegmentIds?: number[];
  /** The segments the store knows when the directory is listed (the log may have rolled since the instant checked). */
  knownSegmentIds?: () => Iterable<number>;
  /**
   * Read-only opens: segments of the view that hold nothing it can still read, which the process
   * writing the store may compact away at any time. One of those found gone is skipped, not a
   * problem (the records it held were copied forward into the view, or are expired).
   */
  mayBeCompactedAway?: ReadonlySet<number> | undefined;
  nowMs: number;
  onProgress?: ((progress: VerifyProgress) => void) | undefined;
}

const OWNED_FILES = new Set([HINT_FILE_NAME, HINT_TEMPORARY_FILE_NAME, 'LOCK', 'blocks', DELAYED_LIST_FILE_NAME, `${DELAYED_LIST_FILE_NAME}.tmp`]);

function sameSummary(left: SegmentSummary, right: SegmentSummary): string | undefined {
  for (const field of ['entryCount', 'putCount', 'deleteCount', 'minRevision', 'maxRevision'] as const) {
    if (left[field] !== right[field]) return `${field} is ${left[field]}, the entries say ${right[field]}`;
  }
  if ((left.dataChecksum >>> 0) !== (right.dataChecksum >>> 0)) return 'data checksum does not match the entries';
  const keysEqual = (a: Buffer | undefined, b: Buffer | undefined) => (a === undefined ? b === undefined : b !== undefined && a.equals(b));
  if (!keysEqual(left.minKey, right.minKey) || !keysEqual(left.maxKey, right.maxKey)) return 'key range does not match the entries';
  return undefined;
}

function sameLocation(left: EntryLocation, right: EntryLocation): boolean {
  return (
    left.segmentId === right.segmentId &&
    left.offsetBytes === right.offsetBytes &&
    left.lengthBytes === right.lengthBytes &&
    left.chainBytes === right.chainBytes &&
    left.chainStartBytes === right.chainStartBytes &&
    left.revision === right.revision &&
    left.expiresAtMs === right.expiresAtMs
  );
}

export async function verifyStore(input: VerifyInput): Promise<VerifyResult> {
  const { fs, directory, segments } = input;
  const problems: VerifyProblem[] = [];
  const problem = (kind: string, where: string, message: string) => problems.push({ kind, where, message });
  const checked = { segments: 0, entries: 0, bytes: 0, keys: 0, blocks: 0, blockBytes: 0, checkpointEntries: 0 };
  const totalBytes = segments.reduce((sum, segment) => sum + segment.sizeBytes, 0);

  // The checkpoint, decoded up front so the replay can compare at its position.
  let hint: ReturnType<typeof decodeHint> | undefined;
  try {
    hint = decodeHint(await fs.readFile(`${directory}/${HINT_FILE_NAME}`), Number.NEGATIVE_INFINITY);
    if (typeof hint === 'string') problem('checkpoint', `${directory}/${HINT_FILE_NAME}`, hint);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problem('checkpoint', `${directory}/${HINT_FILE_NAME}`, (error as Error).message);
  }

  // Replay every segment from scratch into a plain Map (key → location), checking as we go.
  const replayed = new Map<string, EntryLocation>();
  /** Blocks carried in the log: hex hash → data bytes; and every BLOCK entry's position with its hash. */
  const logBlockLengths = new Map<string, number>();
  const blockEntryAt = new Map<string, string>();
  let checkpointCompared = false;
  const compareCheckpoint = () => {
    if (hint === undefined || typeof hint === 'string' || checkpointCompared) return;
    checkpointCompared = true;
    checked.checkpointEntries = hint.keys.length;
    const where = `${directory}/${HINT_FILE_NAME}`;
    let differing = 0;
    hint.keys.forEach((key, position) => {
      const fromLog = replayed.get(key);
      if (fromLog === undefined || !sameLocation(fromLog, hint !== undefined && typeof hint !== 'string' ? (hint.locations[position] as EntryLocation) : fromLog)) differing++;
    });
    // Puts with an expiry may have been dropped from the index (and so the checkpoint) once
    // expired, but not one with blocks: it leaves the index with a tombstone the checkpoint
    // covers (before its position, where the replay has deleted it too), or the checkpoint keeps it.
    const inCheckpoint = new Set(hint.keys);
    let missing = 0;
    for (const [key, location] of replayed) if ((location.expiresAtMs === undefined || location.reference !== undefined) && !inCheckpoint.has(key)) missing++;
    if (differing > 0) problem('checkpoint', where, `${differing} entries differ from the log at the checkpoint's position`);
    if (missing > 0) problem('checkpoint', where, `${missing} keys live in the log at the checkpoint's position are missing from it`);
  };
  let doneBytes = 0;
  for (const [position, segment] of segments.entries()) {
    checked.segments++;
    const isLast = position === segments.length - 1;
    if (parseSegmentFileName(segment.path.slice(segment.path.lastIndexOf('/') + 1)) !== segment.segmentId) {
      problem('segment', segment.path, 'file name does not match the segment id');
    }
    let bytes: Buffer;
    try {
      const handle = await fs.open(segment.path, 'read');
      try {
        bytes = Buffer.allocUnsafe(segment.sizeBytes);
        const read = await readFully(handle, bytes, 0);
        if (read < segment.sizeBytes) problem('segment', segment.path, `file is ${read} bytes, the store wrote ${segment.sizeBytes}`);
        bytes = bytes.subarray(0, read);
      } finally {
        await handle.close();
      }
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' && input.mayBeCompactedAway?.has(segment.segmentId) === true) {
        checked.segments--;
        continue;
      }
      problem('segment', segment.path, `unreadable: ${(error as Error).message}`);
      continue;
    }
    const header = decodeSegmentHeader(bytes);
    if (typeof header === 'string') {
      problem('segment', `${segment.path}:0`, header);
      continue;
    }
    if (header.segmentId !== segment.segmentId) problem('segment', `${segment.path}:0`, `header names segment ${header.segmentId}`);
    const summary = emptySummary();
    const hintOffset = hint !== undefined && typeof hint !== 'string' && hint.position.segmentId === segment.segmentId ? hint.position.offsetBytes : undefined;
    const scan = scanSegment(bytes, SEGMENT_HEADER_BYTES, (entry) => {
      // The checkpoint reflects every record before its offset: compare before applying the first one after.
      if (hintOffset !== undefined && entry.offsetBytes >= hintOffset) compareCheckpoint();
      checked.entries++;
      noteEntry(summary, entry.type, entry.key, entry.revision);
      const key = entry.key.toString('latin1');
      if (entry.type === EntryType.DELETE) {
        replayed.delete(key);
        return;
      }
      const location: EntryLocation = {
        segmentId: segment.segmentId,
        offsetBytes: entry.offsetBytes,
        lengthBytes: entry.lengthBytes,
        revision: entry.revision,
        expiresAtMs: entry.expiresAtMs,
        verifiedKey: undefined,
      };
      if (entry.type === EntryType.PUT_REFERENCE) location.reference = decodeReference(entry.value as Buffer) as ValueReference;
      if (entry.type === EntryType.PUT_OBJECT) location.object = decodeManifest(entry.value as Buffer) as ObjectManifest;
      if (entry.type === EntryType.PUT_OBJECT_DELTA) {
        const chained = deltaLocation(replayed.get(key), location, entry.value as Buffer);
        if (typeof chained === 'string') {
          problem('segment', `${segment.path}:${entry.offsetBytes}`, chained);
          replayed.delete(key);
          return;
        }
        replayed.set(key, chained);
        return;
      }
      replayed.set(key, location);
    }, 0, (block) => {
      checked.entries++;
      const hex = block.hash.toString('hex');
      if (!sha256(block.data).equals(block.hash)) {
        problem('block', `${segment.path}:${block.offsetBytes}`, 'block entry data does not match its hash');
        return;
      }
      logBlockLengths.set(hex, block.data.length);
      blockEntryAt.set(`${segment.segmentId}:${block.offsetBytes}`, hex);
    });
    if (hintOffset !== undefined) compareCheckpoint();
    if (scan.damage !== undefined) problem('segment', `${segment.path}:${scan.damage.offsetBytes}`, scan.damage.reason);
    if (scan.footer !== undefined) {
      summary.dataChecksum = checksum(bytes.subarray(SEGMENT_HEADER_BYTES, scan.footer.offsetBytes));
      const mismatch = sameSummary(scan.footer.summary, summary);
      if (mismatch !== undefined) problem('footer', `${segment.path}:${scan.footer.offsetBytes}`, mismatch);
      if (isLast && !segment.sealed) problem('segment', segment.path, 'the active segment has a footer');
    } else if (!isLast) {
      problem('segment', segment.path, 'a segment other than the newest has no footer');
    }
    checked.bytes += bytes.length;
    doneBytes += segment.sizeBytes;
    input.onProgress?.({ phase: 'segments', doneBytes, totalBytes });
  }

  // The index against the replay (expired entries may linger in either; they read as absent).
  const live = (location: EntryLocation) => location.expiresAtMs === undefined || location.expiresAtMs > input.nowMs;
  let indexKeys = 0;
  for (const [key, location] of input.snapshot.range()) {
    if (!live(location)) continue;
    indexKeys++;
    const fromLog = replayed.get(key);
    const where = `key ${JSON.stringify(Buffer.from(key, 'latin1').toString())}`;
    if (fromLog === undefined) problem('index', where, 'in the index but deleted or absent in the log');
    else if (!sameLocation(fromLog, location)) problem('index', where, `index points at segment ${location.segmentId} offset ${location.offsetBytes}, the log at segment ${fromLog.segmentId} offset ${fromLog.offsetBytes}`);
  }
  let logKeys = 0;
  for (const [key, location] of replayed) {
    if (!live(location)) continue;
    logKeys++;
    if (input.snapshot.get(key) === undefined) problem('index', `key ${JSON.stringify(Buffer.from(key, 'latin1').toString())}`, 'live in the log but missing from the index');
  }
  checked.keys = logKeys;
  if (indexKeys !== logKeys && problems.every((item) => item.kind !== 'index')) problem('index', directory, `index has ${indexKeys} live keys, the log ${logKeys}`);

  // Reference counts from scratch, then every block. A value that expired still holds its blocks
  // while the store indexes its record (until the expiry sweep or compaction drops it; a reopen
  // keeps it indexed for the sweep): it counts if it is live, or if the index at this instant
  // still holds that record.
  const recounted = new Map<string, number>();
  const holds = (key: string, location: EntryLocation) => {
    if (live(location)) return true;
    const indexed = input.snapshot.get(key);
    return indexed !== undefined && sameLocation(indexed, location);
  };
  for (const [key, location] of replayed) {
    // Every block of every slice of an object counts once per slice referencing it.
    if (location.object !== undefined && holds(key, location)) {
      forEachManifestBlock(location.object, (hash) => {
        const hex = hash.toString('hex');
        recounted.set(hex, (recounted.get(hex) ?? 0) + 1);
      });
    }
    if (location.reference === undefined || !holds(key, location)) continue;
    const count = referenceBlockCount(location.reference);
    for (let index = 0; index < count; index++) {
      const hex = referenceBlockHash(location.reference, index).toString('hex');
      recounted.set(hex, (recounted.get(hex) ?? 0) + 1);
    }
  }
  for (const [hex, count] of recounted) {
    const kept = input.referenceCounts.get(hex) ?? 0;
    if (kept !== count) problem('refcount', `block ${hex}`, `reference count is ${kept}, the log says ${count}`);
  }
  for (const [hex, count] of input.referenceCounts) {
    if (!recounted.has(hex)) problem('refcount', `block ${hex}`, `reference count is ${count}, but no live or indexed value references it`);
  }
  const present = new Set(input.blocks.presentHashes());
  const blockLengths = new Map<string, number>();
  for (const location of replayed.values()) {
    if (location.object !== undefined) forEachManifestBlock(location.object, (hash, length) => blockLengths.set(hash.toString('hex'), length));
    if (location.reference === undefined) continue;
    const count = referenceBlockCount(location.reference);
    for (let index = 0; index < count; index++) {
      blockLengths.set(referenceBlockHash(location.reference, index).toString('hex'), referenceBlockLength(location.reference, index));
    }
  }
  for (const hex of recounted.keys()) {
    if (!present.has(hex) && !logBlockLengths.has(hex)) problem('block', `block ${hex}`, 'referenced but missing');
    const carried = logBlockLengths.get(hex);
    if (carried !== undefined && blockLengths.has(hex) && carried !== blockLengths.get(hex)) {
      problem('block', `block ${hex}`, `carried in the log with ${carried} bytes, referenced with ${blockLengths.get(hex) as number}`);
    }
  }
  const namesBlockEntry = (location: LogBlockLocation, hex: string) => blockEntryAt.get(`${location.segmentId}:${location.offsetBytes}`) === hex;
  if (hint !== undefined && typeof hint !== 'string') {
    for (const [hex, location] of hint.blocks) {
      if (!namesBlockEntry(location, hex)) problem('checkpoint', `${directory}/${HINT_FILE_NAME}`, `block ${hex} is not at segment ${location.segmentId} offset ${location.offsetBytes}`);
    }
  }
  for (const [hex, location] of input.logBlocks ?? []) {
    if (recounted.has(hex) && !namesBlockEntry(location, hex)) problem('block', `block ${hex}`, `the store reads it at segment ${location.segmentId} offset ${location.offsetBytes}, which holds no such block entry`);
  }
  let unreferencedBlocks = 0;
  let incompleteBlocks = 0;
  let blockBytesDone = 0;
  for (const hex of present) {
    const expected = blockLengths.get(hex);
    if (!recounted.has(hex)) unreferencedBlocks++;
    try {
      const data = await input.blocks.read(Buffer.from(hex, 'hex'), expected, true);
      checked.blocks++;
      checked.blockBytes += data.length;
      blockBytesDone += data.length;
    } catch (error) {
      // Unreferenced, or carried in the log too (reads use that copy, and the store does not
      // trust a file of such a block from before its open): possibly a write cut by a crash.
      const shadowed = input.logBlocks?.has(hex) === true;
      if ((!recounted.has(hex) || shadowed) && error instanceof SiltError && error.code === ErrorCode.CORRUPTION) incompleteBlocks++;
      else problem('block', `block ${hex}`, (error as Error).message);
    }
    input.onProgress?.({ phase: 'blocks', doneBytes: blockBytesDone, totalBytes: input.blocks.storedBytes });
  }

  // The delayed list.
  let delayedBlocks = 0;
  try {
    const file = await fs.readFile(`${directory}/${DELAYED_LIST_FILE_NAME}`);
    const decoded = decodeDelayedList(file);
    // Damage in the last record is a torn append (cut at the next writable open): harmless.
    const damagedBeforeTail = decoded.validBytes === 0 ? file.length > 0 : file.length - decoded.validBytes > DELAYED_RECORD_BYTES;
    if (decoded.problem !== undefined && damagedBeforeTail) problem('gc-list', `${directory}/${DELAYED_LIST_FILE_NAME}`, decoded.problem);
    for (const hex of decoded.entries.keys()) if (present.has(hex) && !recounted.has(hex)) delayedBlocks++;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') problem('gc-list', `${directory}/${DELAYED_LIST_FILE_NAME}`, `unreadable: ${(error as Error).message}`);
  }

  // Files nothing owns.
  try {
    for (const name of await fs.readdir(directory)) {
      if (OWNED_FILES.has(name) || parseSegmentFileName(name) !== undefined) continue;
      if (name.startsWith('LOCK.stale-')) continue;
      problem('file', `${directory}/${name}`, 'not a file silt owns');
    }
    // Compacted segments kept for readers still open are known too, and so are segments the log
    // rolled to while verify ran: the store knows them when the directory is listed.
    const segmentIds = new Set([...segments.map((segment) => segment.segmentId), ...(input.retiredSegmentIds ?? [])]);
    const names = await fs.readdir(directory);
    const knownNow = new Set(input.knownSegmentIds?.() ?? []);
    for (const name of names) {
      const id = parseSegmentFileName(name);
      if (id !== undefined && !segmentIds.has(id) && !knownNow.has(id)) problem('file', `${directory}/${name}`, 'a segment the store does not know');
    }
  } catch (error) {
    problem('file', directory, `unreadable: ${(error as Error).message}`);
  }
  return { ok: problems.length === 0, problems, checked, unreferencedBlocks, delayedBlocks, incompleteBlocks };
}
