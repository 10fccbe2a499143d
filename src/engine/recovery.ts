/**
 * Open-time recovery: rebuild the index from the checkpoint and the log, and repair the tail.
 *
 * Steps (ARCHITECTURE.md has the prose):
 *  1. List segments; read each one's header and, if sealed, its footer (no scan).
 *  2. Load the checkpoint (`index.hint`) if it passes every check and matches the segments.
 *  3. Replay the log after the checkpoint's position, in segment order.
 *  4. The last segment keeps its longest valid prefix; the rest is truncated (when writable) and
 *     reported. Damage anywhere else is CORRUPTION: a sealed segment was complete and durable.
 *
 * Invariants:
 * - Read-only recovery writes nothing; it ignores a damaged tail instead of truncating it.
 * - The revision counter resumes above every revision any file mentions (entries, segment
 *   headers, the checkpoint), so revisions are never reused.
 */
import { ErrorCode, SiltError, toIoError } from '../errors.js';
import type { FileHandle, FileSystem } from '../fs/types.js';
import {
  decodeEntry,
  decodeReference,
  EntryType,
  FORMAT_VERSION,
  parseSegmentFileName,
  SEGMENT_HEADER_BYTES,
  type SegmentSummary,
} from '../log/format.js';
import type { ValueReference } from '../log/format.js';
import { decodeHint, deltaLocation, HINT_FILE_NAME, liveLength, type EntryLocation, type LogBlockLocation } from '../log/hint.js';
import { decodeDelta, decodeManifest, type ObjectDelta, type ObjectManifest } from '../log/object.js';
import { endOfNonZero, readFully, readFullySync, readSegmentInfo, scanSegment } from '../log/segment-reader.js';
import { OrderedIndex } from '../index/ordered-index.js';

export interface RecoveredSegment {
  segmentId: number;
  path: string;
  sizeBytes: number;
  baseRevision: number;
  /** The footer's summary, for a sealed segment. */
  summary: SegmentSummary | undefined;
}

export interface RecoveryReport {
  /** True when the checkpoint was loaded; otherwise `checkpointProblem` may say why not. */
  usedCheckpoint: boolean;
  checkpointProblem: string | undefined;
  /** Where the loaded checkpoint's snapshot ends in the log (undefined when none was loaded). */
  checkpointPosition: { segmentId: number; offsetBytes: number } | undefined;
  checkpointEntries: number;
  /** PUT/DELETE entries replayed from the log after the checkpoint. */
  replayedEntries: number;
  replayedBytes: number;
  /** Bytes cut from the end of the last segment because they were not a valid entry. */
  droppedBytes: number;
  droppedReason: string | undefined;
  /** Segment (id) whose tail was dropped, or whose torn header made it be removed. */
  droppedSegmentId: number | undefined;
  durationMs: number;
}

export interface RecoveryResult {
  index: OrderedIndex<EntryLocation>;
  segments: RecoveredSegment[];
  /** The last segment when it is unsealed, to keep appending to (its valid end is `sizeBytes`). */
  activeSegment: RecoveredSegment | undefined;
  maxRevision: number;
  /** Sum of the lengths of the entries the index points at. */
  liveBytes: number;
  /** Keys whose live values are held in the block store (value references and objects). */
  referenceKeys: Set<string>;
  /**
   * Blocks carried in the log (BLOCK entries), by hex hash: the last one in log order of each hash
   * (from the checkpoint, then the replay). Which of them are live is decided by the reference counts.
   */
  logBlocks: Map<string, LogBlockLocation>;
  report: RecoveryReport;
}

function corruption(message: string): SiltError {
  return new SiltError(ErrorCode.CORRUPTION, message);
}

export async function recover(fs: FileSystem, directory: string, readOnly: boolean, nowMs: number): Promise<RecoveryResult> {
  const started = performance.now();
  const report: RecoveryReport = {
    usedCheckpoint: false,
    checkpointProblem: undefined,
    checkpointPosition: undefined,
    checkpointEntries: 0,
    replayedEntries: 0,
    replayedBytes: 0,
    droppedBytes: 0,
    droppedReason: undefined,
    droppedSegmentId: undefined,
    durationMs: 0,
  };
  let names: string[];
  try {
    names = await fs.readdir(directory);
  } catch (error) {
    throw toIoError(error, `listing ${directory}`);
  }
  const segmentIds = names
    .map(parseSegmentFileName)
    .filter((id): id is number => id !== undefined)
    .sort((a, b) => a - b);

  // 1. Headers and footers.
  const segments: RecoveredSegment[] = [];
  let maxRevision = 0;
  for (const [position, segmentId] of segmentIds.entries()) {
    const path = `${directory}/${segmentId.toString(16).padStart(16, '0')}.log`;
    const isLast = position === segmentIds.length - 1;
    const handle = await fs.open(path, readOnly ? 'read' : 'readwrite').catch((error: unknown) => {
      throw toIoError(error, `opening ${path}`);
    });
    try {
      const info = await readSegmentInfo(handle);
      if (typeof info.header === 'string' || info.header.segmentId !== segmentId) {
        const reason = typeof info.header === 'string' ? info.header : `header names segment ${info.header.segmentId}`;
        if (!isLast) throw corruption(`segment ${path}: ${reason}`);
        // A whole header of another format version is not a creation cut short: removing the
        // segment would lose what a newer silt wrote there.
        if (info.foreignVersion !== undefined) throw corruption(`segment ${path} is format version ${info.foreignVersion}, and this silt reads version ${FORMAT_VERSION}: written by another silt version? It is left as it is`);
        // A last segment without a valid header holds no acknowledged write: its header is synced
        // before its name, so this is a creation that a crash cut short. Its preallocated zeros
        // are not counted as dropped.
        const whole = Buffer.allocUnsafe(info.sizeBytes);
        const read = await readFully(handle, whole, 0);
        report.droppedBytes += endOfNonZero(whole.subarray(0, read), 0);
        report.droppedReason = `segment header: ${reason}`;
        report.droppedSegmentId = segmentId;
        if (!readOnly) {
          await handle.close();
          await fs.unlink(path);
          await fs.syncDirectory(directory);
        }
        continue;
      }
      maxRevision = Math.max(maxRevision, info.header.baseRevision, info.footer?.summary.maxRevision ?? 0);
      segments.push({
        segmentId,
        path,
        sizeBytes: info.sizeBytes,
        baseRevision: info.header.baseRevision,
        summary: info.footer?.summary,
      });
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  // 2. The checkpoint.
  let index = new OrderedIndex<EntryLocation>();
  let liveBytes = 0;
  /** Keys whose values are held in blocks. */
  const referenceKeys = new Set<string>();
  const logBlocks = new Map<string, LogBlockLocation>();
  let replayFrom = { segmentId: segments[0]?.segmentId ?? 0, offsetBytes: SEGMENT_HEADER_BYTES };
  if (names.includes(HINT_FILE_NAME)) {
    const problem = await loadCheckpoint();
    if (problem !== undefined) report.checkpointProblem = problem;
  }

  async function loadCheckpoint(): Promise<string | undefined> {
    let bytes: Buffer;
    try {
      bytes = await fs.readFile(`${directory}/${HINT_FILE_NAME}`);
    } catch (error) {
      return `unreadable: ${(error as Error).message}`;
    }
    const hint = decodeHint(bytes, nowMs);
    if (typeof hint === 'string') return hint;
    const covered = segments.find((segment) => segment.segmentId === hint.position.segmentId);
    if (covered === undefined) return `covers segment ${hint.position.segmentId}, which is missing`;
    if (hint.position.offsetBytes < SEGMENT_HEADER_BYTES || hint.position.offsetBytes > covered.sizeBytes) {
      return `covers offset ${hint.position.offsetBytes} of a ${covered.sizeBytes}-byte segment`;
    }
    const segmentIdSet = new Set(segments.map((segment) => segment.segmentId));
    for (const segmentId of hint.segmentIds) {
      if (!segmentIdSet.has(segmentId)) return `points into missing segment ${segmentId}`;
    }
    // Values held in blocks (references and objects): read their records to learn the blocks
    // (for reference counts) and, for objects, the manifest reads need.
    const positions = [...hint.referencePositions.map((position) => ({ position, type: EntryType.PUT_REFERENCE })), ...hint.objectPositions.map((position) => ({ position, type: EntryType.PUT_OBJECT }))];
    // An object whose record is a delta chain: its manifest is rebuilt from the chain (below).
    const chained: number[] = [];
    // One handle per segment and synchronous reads: a thread-pool round trip for each of an
    // open, a read and a close per record made opening a store with 20k large values take about
    // 4 s here.
    const handles = new Map<number, FileHandle>();
    try {
      for (const { position, type } of positions) {
        const location = hint.locations[position] as EntryLocation;
        if (location.chainBytes !== undefined) {
          chained.push(position);
          continue;
        }
        const segment = segments.find((candidate) => candidate.segmentId === location.segmentId) as RecoveredSegment;
        let handle = handles.get(segment.segmentId);
        if (handle === undefined) handles.set(segment.segmentId, (handle = await fs.open(segment.path, 'read')));
        const bytes = Buffer.alloc(location.lengthBytes);
        readFullySync(handle, bytes, location.offsetBytes);
        const entry = decodeEntry(bytes);
        if (typeof entry === 'string' || entry.type !== type || entry.revision !== location.revision) {
          throw corruption(`segment ${segment.path} offset ${location.offsetBytes}: ${typeof entry === 'string' ? entry : 'not the record the checkpoint names'}`);
        }
        if (type === EntryType.PUT_OBJECT) location.object = decodeManifest(entry.value as Buffer) as ObjectManifest;
        else location.reference = decodeReference(entry.value as Buffer) as ValueReference;
        referenceKeys.add(hint.keys[position] as string);
      }
    } finally {
      for (const handle of handles.values()) await handle.close().catch(() => undefined);
    }
    await loadChains(hint.keys, hint.locations, chained);
    try {
      index = OrderedIndex.fromSorted(hint.keys, hint.locations);
    } catch (error) {
      return (error as Error).message;
    }
    for (const [hex, location] of hint.blocks) logBlocks.set(hex, location);
    report.usedCheckpoint = true;
    report.checkpointPosition = { segmentId: hint.position.segmentId, offsetBytes: hint.position.offsetBytes };
    report.checkpointEntries = hint.keys.length;
    liveBytes = hint.liveBytes;
    maxRevision = Math.max(maxRevision, hint.position.maxRevision);
    replayFrom = { segmentId: hint.position.segmentId, offsetBytes: hint.position.offsetBytes };
    return undefined;
  }

  /**
   * Rebuild the manifests of objects whose checkpointed record is the head of a delta chain: per
   * segment, one read from the earliest chain start to the last head; per key, the chain's entries
   * found by following each delta's base offset back to the full manifest at the chain start
   * (each entry checked: CRC, key, type; no other entry of the range is looked at), then applied
   * forwards.
   */
  async function loadChains(keys: string[], locations: EntryLocation[], chained: number[]): Promise<void> {
    const bySegment = new Map<number, number[]>();
    for (const position of chained) {
      const segmentId = (locations[position] as EntryLocation).segmentId;
      const list = bySegment.get(segmentId);
      if (list === undefined) bySegment.set(segmentId, [position]);
      else list.push(position);
    }
    for (const [segmentId, positions] of bySegment) {
      const segment = segments.find((candidate) => candidate.segmentId === segmentId) as RecoveredSegment;
      let start = Infinity;
      let end = 0;
      for (const position of positions) {
        const head = locations[position] as EntryLocation;
        start = Math.min(start, head.chainStartBytes as number);
        end = Math.max(end, head.offsetBytes + head.lengthBytes);
      }
      const bytes = Buffer.alloc(end - start);
      const handle = await fs.open(segment.path, 'read');
      try {
        await readFully(handle, bytes, start);
      } finally {
        await handle.close();
      }
      for (const position of positions) {
        const key = keys[position] as string;
        const head = locations[position] as EntryLocation;
        const fail = (offsetBytes: number, reason: string) => corruption(`segment ${segment.path} offset ${offsetBytes}: ${reason} (the object chain of ${JSON.stringify(key)} the checkpoint names)`);
        /** The entry of `key` at `offsetBytes`, checked; its length from its header when not known. */
        const entryAt = (offsetBytes: number, lengthBytes: number | undefined) => {
          const at = offsetBytes - start;
          if (at < 0 || at + 8 > bytes.length) throw fail(offsetBytes, 'outside the chain');
          const length = lengthBytes ?? bytes.readUInt32LE(at + 4);
          const entry = at + length <= bytes.length ? decodeEntry(bytes, at, at + length) : 'entry runs past the chain';
          if (typeof entry === 'string') throw fail(offsetBytes, entry);
          if (entry.lengthBytes !== length) throw fail(offsetBytes, `entry of ${entry.lengthBytes} bytes, expected ${length}`);
          if (entry.key.toString('latin1') !== key) throw fail(offsetBytes, 'entry of another key');
          return entry;
        };
        // Back from the head to the chain's start.
        const deltas: Array<{ location: EntryLocation; value: Buffer }> = [];
        let offsetBytes = head.offsetBytes;
        let lengthBytes: number | undefined = head.lengthBytes;
        let entry = entryAt(offsetBytes, lengthBytes);
        while (entry.type === EntryType.PUT_OBJECT_DELTA) {
          deltas.push({ location: { segmentId, offsetBytes, lengthBytes: entry.lengthBytes, revision: entry.revision, expiresAtMs: undefined, verifiedKey: undefined }, value: entry.value as Buffer });
          const delta = decodeDelta(entry.value as Buffer) as ObjectDelta;
          if (delta.baseOffsetBytes >= offsetBytes || delta.baseOffsetBytes < (head.chainStartBytes as number)) throw fail(offsetBytes, 'a delta whose base is not in the chain');
          offsetBytes = delta.baseOffsetBytes;
          lengthBytes = undefined;
          entry = entryAt(offsetBytes, lengthBytes);
        }
        if (entry.type !== EntryType.PUT_OBJECT || offsetBytes !== head.chainStartBytes) throw fail(offsetBytes, 'the chain does not start with a full manifest where the checkpoint says');
        let built: EntryLocation = { segmentId, offsetBytes, lengthBytes: entry.lengthBytes, revision: entry.revision, expiresAtMs: undefined, verifiedKey: undefined, object: decodeManifest(entry.value as Buffer) as ObjectManifest };
        for (const { location, value } of deltas.reverse()) {
          const next = deltaLocation(built, location, value);
          if (typeof next === 'string') throw fail(location.offsetBytes, next);
          built = next;
        }
        if (built.revision !== head.revision || built.chainBytes !== head.chainBytes) throw fail(head.offsetBytes, 'not the record the checkpoint names');
        head.object = built.object as ObjectManifest;
        referenceKeys.add(key);
      }
    }
  }

  // 3 and 4. Replay.
  let activeSegment: RecoveredSegment | undefined;
  for (const [position, segment] of segments.entries()) {
    if (segment.segmentId < replayFrom.segmentId) continue;
    const isLast = position === segments.length - 1;
    const startOffset = segment.segmentId === replayFrom.segmentId ? replayFrom.offsetBytes : SEGMENT_HEADER_BYTES;
    if (segment.summary === undefined && !isLast) {
      throw corruption(`segment ${segment.path} is not sealed but a newer segment exists`);
    }
    if (startOffset >= segment.sizeBytes) {
      if (isLast && segment.summary === undefined) activeSegment = segment;
      continue;
    }
    const handle: FileHandle = await fs.open(segment.path, readOnly ? 'read' : 'readwrite');
    try {
      const bytes = Buffer.allocUnsafe(segment.sizeBytes - startOffset);
      const read = await readFully(handle, bytes, startOffset);
      const scan = scanSegment(bytes.subarray(0, read), 0, (entry) => {
        report.replayedEntries++;
        if (entry.revision > maxRevision) maxRevision = entry.revision;
        const key = entry.key.toString('latin1');
        // An expired inline put is replayed as a delete. One with blocks stays indexed (reads see
        // it as absent) for the expiry sweep, which removes it with a tombstone in the log before
        // GC may delete the blocks: dropped here on the clock's word alone, its blocks would go
        // while its record stays, to read as live again should a later open's clock be behind.
        const expired = entry.expiresAtMs !== undefined && entry.expiresAtMs <= nowMs && entry.type === EntryType.PUT;
        referenceKeys.delete(key);
        if (entry.type === EntryType.DELETE || expired) {
          const removed = index.delete(key);
          if (removed !== undefined) liveBytes -= liveLength(removed);
        } else if (entry.type === EntryType.PUT_OBJECT_DELTA) {
          // A delta on the key's record just before it in this segment: the chain grows.
          const here: EntryLocation = { segmentId: segment.segmentId, offsetBytes: startOffset + entry.offsetBytes, lengthBytes: entry.lengthBytes, revision: entry.revision, expiresAtMs: undefined, verifiedKey: undefined };
          const next = deltaLocation(index.get(key), here, entry.value as Buffer);
          if (typeof next === 'string') throw corruption(`segment ${segment.path} offset ${here.offsetBytes}: ${next}`);
          index.set(key, next);
          referenceKeys.add(key);
          liveBytes += entry.lengthBytes;
        } else {
          liveBytes += entry.lengthBytes;
          const location: EntryLocation = {
            segmentId: segment.segmentId,
            offsetBytes: startOffset + entry.offsetBytes,
            lengthBytes: entry.lengthBytes,
            revision: entry.revision,
            expiresAtMs: entry.expiresAtMs,
            verifiedKey: undefined,
          };
          if (entry.type === EntryType.PUT_REFERENCE) {
            location.reference = decodeReference(entry.value as Buffer) as ValueReference;
            referenceKeys.add(key);
          } else if (entry.type === EntryType.PUT_OBJECT) {
            location.object = decodeManifest(entry.value as Buffer) as ObjectManifest;
            referenceKeys.add(key);
          }
          const replaced = index.set(key, location);
          if (replaced !== undefined) liveBytes -= liveLength(replaced);
        }
      }, startOffset, (block) => {
        if (block.revision > maxRevision) maxRevision = block.revision;
        logBlocks.set(block.hash.toString('hex'), { segmentId: segment.segmentId, offsetBytes: startOffset + block.offsetBytes, lengthBytes: block.lengthBytes, revision: block.revision });
      });
      report.replayedBytes += scan.endOffset;
      if (segment.summary !== undefined) {
        if (scan.damage !== undefined || scan.footer === undefined) {
          const where = startOffset + (scan.damage?.offsetBytes ?? scan.endOffset);
          throw corruption(`sealed segment ${segment.path} damaged at offset ${where}: ${scan.damage?.reason ?? 'no footer'}`);
        }
        continue;
      }
      // The unsealed last segment: keep the longest valid prefix. Zeros after it are the
      // preallocation of a segment that was being written (not dropped data); anything else
      // after it is damage, reported. When writable, the file is cut at the valid end either way,
      // so that no stale record past it can ever be read as one after new records reach it.
      const validEnd = startOffset + scan.endOffset;
      if (scan.damage?.checked === true) {
        // A record written whole (its CRC holds) that this silt cannot read is not a torn tail:
        // cutting it would silently drop what a newer silt wrote (and whatever follows it).
        throw corruption(
          `segment ${segment.path} offset ${validEnd} holds a whole record this silt cannot read (${scan.damage.reason}): written by a newer silt? The segment is left as it is`,
        );
      }
      const dataEnd = startOffset + endOfNonZero(bytes.subarray(0, read), scan.endOffset);
      if (dataEnd > validEnd || (read < segment.sizeBytes - startOffset && scan.damage === undefined)) {
        report.droppedBytes += dataEnd - validEnd;
        report.droppedReason = scan.damage?.reason ?? 'short read';
        report.droppedSegmentId = segment.segmentId;
      }
      if (validEnd < segment.sizeBytes) {
        if (!readOnly) {
          await handle.truncate(validEnd);
          // The cut is durable before new records are appended after it.
          await handle.datasync();
        }
        segment.sizeBytes = validEnd;
      }
      activeSegment = segment;
    } catch (error) {
      if (error instanceof SiltError) throw error;
      throw toIoError(error, `replaying ${segment.path}`);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }
  if (activeSegment === undefined) {
    const last = segments[segments.length - 1];
    if (last !== undefined && last.summary === undefined) activeSegment = last;
  }
  report.durationMs = performance.now() - started;
  return { index, segments, activeSegment, maxRevision, liveBytes, referenceKeys, logBlocks, report };
}
