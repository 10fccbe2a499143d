#!/usr/bin/env node
/**
 * Fixed-size blocks against content-defined chunking (FastCDC-style gear hash with normalized
 * chunking) for large values that are stored again after an edit (issue 4: "fixed size, or
 * content-defined chunking if you can show it dedups edited values better at an acceptable cost:
 * measure both"). Standalone: plain Node ESM, Node built-ins only, nothing from silt.
 *
 *   node bench/chunking.mjs [--seed N] [--size-mib 64] [--runs 5] [--data random,text]
 *                           [--workloads overwrite,insert-start,...] [--chunkers fixed-1M,cdc-1M,...]
 *                           [--json]
 *
 * For every data kind, workload and chunker: the original value and its edited version are cut
 * into chunks, each chunk named by its SHA-256 as silt names blocks; a chunk stored once is not
 * stored again. Reported (medians over the runs, each run with its own edit positions drawn from
 * the seed):
 *   - stored / logical: unique bytes stored for original + edited, per logical byte (0.5 = the edit
 *     cost nothing, 1.0 = nothing shared);
 *   - new / edited: bytes the edited version adds to the store, per byte of the edited value;
 *   - the chunk counts and the mean chunk size.
 * Cost (medians over the runs, the chunkers interleaved within each run), as MB per CPU-second
 * (user + system: the machine may be shared) with wall-clock beside it: MB/s of finding the
 * boundaries alone (the gear hash; fixed-size boundaries cost nothing), of boundaries + SHA-256 of
 * every chunk (what a writer pays), and of SHA-256 alone, for scale.
 *
 * Everything derives from --seed (printed; a run is replayed by passing it again). The gear table
 * is part of the chunker's definition and does not depend on the seed. A self-check runs first:
 * concatenated chunks equal the input, sizes within [min, max], boundaries deterministic and
 * content-defined (chunking again from any boundary gives the same later boundaries).
 */
import { createCipheriv, createHash } from 'node:crypto';
import os from 'node:os';
import { parseArgs } from 'node:util';

const KiB = 1024;
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Options

const { values: opts } = parseArgs({
  options: {
    seed: { type: 'string' },
    'size-mib': { type: 'string', default: '64' },
    runs: { type: 'string', default: '5' },
    data: { type: 'string', default: 'random,text' },
    workloads: { type: 'string' },
    chunkers: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const ALL_WORKLOADS = ['overwrite', 'insert-start', 'insert-middle', 'delete', 'append', 'unrelated'];
const ALL_DATA = ['random', 'text'];

if (opts.help) {
  console.log(`usage: node bench/chunking.mjs [options]
  --seed N          seed for values and edits (default: from the clock; printed)
  --size-mib N      size of the original value in MiB, plus a seeded tail < 1 MiB (default 64)
  --runs N          runs; each draws new edit positions; figures are medians (default 5)
  --data LIST       ${ALL_DATA.join(',')} (default both)
  --workloads LIST  ${ALL_WORKLOADS.join(',')} (default all)
  --chunkers LIST   ${CHUNKER_NAMES().join(',')} (default all)
  --json            print one JSON document (options, per-run figures, medians) instead of tables`);
  process.exit(0);
}

function positiveInteger(name, text) {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
    process.exit(2);
  }
  return value;
}
function list(name, text, allowed) {
  const items = text.split(',').map((item) => item.trim()).filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item)) {
      console.error(`--${name}: unknown ${JSON.stringify(item)} (known: ${allowed.join(', ')})`);
      process.exit(2);
    }
  }
  return items;
}

let seed;
if (opts.seed === undefined) seed = (Date.now() ^ (process.pid << 16)) >>> 0;
else {
  seed = Number(opts.seed);
  if (!Number.isSafeInteger(seed) || seed < 0 || seed > 0xffffffff) {
    console.error(`--seed must be an integer in [0, 2^32), got ${JSON.stringify(opts.seed)}`);
    process.exit(2);
  }
}
const sizeMiB = positiveInteger('size-mib', opts['size-mib']);
const runs = positiveInteger('runs', opts.runs);
const dataKinds = list('data', opts.data, ALL_DATA);
const workloads = opts.workloads ? list('workloads', opts.workloads, ALL_WORKLOADS) : ALL_WORKLOADS;

// ---------------------------------------------------------------------------------------------
// Seeded randomness

/** mulberry32: a uint32 stream from a 32-bit seed. */
function prng(seedValue) {
  let state = seedValue >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return (value ^ (value >>> 14)) >>> 0;
  };
  return {
    u32: next,
    /** An integer in [0, n). */
    int: (n) => Math.floor((next() / 4294967296) * n),
    /** An integer in [lo, hi]. */
    range: (lo, hi) => lo + Math.floor((next() / 4294967296) * (hi - lo + 1)),
    float: () => next() / 4294967296,
  };
}

/** A 32-bit seed for one purpose, derived from the run's seed and labels. */
function derive(...labels) {
  return createHash('sha256').update(`silt-chunking|${seed}|${labels.join('|')}`).digest().readUInt32LE(0);
}

/** Incompressible bytes (media, archives, encrypted data): AES-128-CTR keystream keyed by the labels. */
function randomBytes(n, ...labels) {
  const key = createHash('sha256').update(`silt-chunking-bytes|${seed}|${labels.join('|')}`).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), Buffer.alloc(16));
  return cipher.update(Buffer.alloc(n));
}

/** Text (a JSON-lines log): seeded vocabulary with a skewed word distribution. */
function textBytes(n, ...labels) {
  const rng = prng(derive('text', ...labels));
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const vocabulary = Array.from({ length: 4096 }, () => {
    let word = '';
    for (let length = rng.range(2, 10); length > 0; length--) word += letters[rng.int(26)];
    return word;
  });
  const levels = ['debug', 'info', 'info', 'info', 'warn', 'error'];
  const out = Buffer.allocUnsafe(n);
  let offset = 0;
  let ts = 1_700_000_000_000 + rng.int(1e9);
  let id = rng.int(1e6);
  while (offset < n) {
    let piece = '';
    while (piece.length < MiB) {
      ts += rng.int(2000);
      let message = '';
      for (let words = rng.range(3, 24); words > 0; words--) {
        const r = rng.float();
        message += (message ? ' ' : '') + vocabulary[Math.floor(r * r * r * vocabulary.length)];
      }
      piece += `{"ts":${ts},"id":${id++},"level":"${levels[rng.int(levels.length)]}","user":"u${rng.int(5000)}","msg":"${message}"}\n`;
    }
    offset += out.write(piece, offset, 'latin1');
  }
  return out;
}

function makeValue(kind, n, ...labels) {
  return kind === 'random' ? randomBytes(n, kind, ...labels) : textBytes(n, kind, ...labels);
}

/** Bytes to write into a value by an edit, of the value's kind. */
function editBytes(kind, n, rng) {
  if (kind === 'random') return randomBytes(n, 'edit', rng.u32());
  const text = textBytes(n + 4096, 'edit', rng.u32());
  return text.subarray(rng.int(4096), undefined).subarray(0, n);
}

// ---------------------------------------------------------------------------------------------
// Chunkers. Each returns the end offsets of its chunks (strictly increasing, the last = length).

/** The gear table: 256 fixed pseudo-random 32-bit words, part of the chunker's definition. */
const GEAR = (() => {
  const rng = prng(0x5eed6ea2);
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i++) table[i] = rng.u32() | 0;
  return table;
})();

/** The top `bits` bits of a 32-bit word: with a gear hash (h = 2h + G[byte]) bit k depends on the
 *  last k + 1 bytes, so the top bits give the widest window (32 bytes). */
function topMask(bits) {
  return bits >= 32 ? -1 : (-1 << (32 - bits)) | 0;
}

/**
 * FastCDC (Xia et al., USENIX ATC 2016) cut point with normalized chunking: skip the first `min`
 * bytes, then look for h & maskS == 0 (harder, avg·2^-level expected) until `avg` bytes, then for
 * h & maskL == 0 (easier) until `max` bytes, where the chunk is cut regardless.
 */
function cutPoint(buf, start, n, min, avg, max, maskS, maskL) {
  const remaining = n - start;
  if (remaining <= min) return n;
  const end = remaining > max ? start + max : n;
  const normal = remaining > avg ? start + avg : end;
  const gear = GEAR;
  let h = 0;
  let i = start + min;
  for (; i < normal; i++) {
    h = ((h << 1) + gear[buf[i]]) | 0;
    if ((h & maskS) === 0) return i + 1;
  }
  for (; i < end; i++) {
    h = ((h << 1) + gear[buf[i]]) | 0;
    if ((h & maskL) === 0) return i + 1;
  }
  return end;
}

function cdcChunker(name, min, avg, max, level = 2) {
  const bits = Math.log2(avg);
  if (!Number.isInteger(bits) || !(min < avg && avg < max)) throw new Error(`bad CDC config ${name}`);
  const maskS = topMask(bits + level);
  const maskL = topMask(bits - level);
  return {
    name,
    kind: 'cdc',
    min,
    avg,
    max,
    describe: `FastCDC gear, NC level ${level}, min ${min / KiB} KiB / avg ${avg / KiB} KiB / max ${max / KiB} KiB`,
    boundaries(buf) {
      const n = buf.length;
      const ends = [];
      let start = 0;
      while (start < n) {
        start = cutPoint(buf, start, n, min, avg, max, maskS, maskL);
        ends.push(start);
      }
      return ends;
    },
  };
}

function fixedChunker(name, size) {
  return {
    name,
    kind: 'fixed',
    min: size,
    avg: size,
    max: size,
    describe: `fixed ${size >= MiB ? `${size / MiB} MiB` : `${size / KiB} KiB`} blocks`,
    boundaries(buf) {
      const n = buf.length;
      const ends = [];
      for (let end = size; end < n; end += size) ends.push(end);
      if (n > 0) ends.push(n);
      return ends;
    },
  };
}

function CHUNKER_NAMES() {
  return ['fixed-1M', 'cdc-1M', 'fixed-64K', 'cdc-64K'];
}
const ALL_CHUNKERS = [
  fixedChunker('fixed-1M', MiB), // silt's default block size
  cdcChunker('cdc-1M', 256 * KiB, MiB, 4 * MiB),
  fixedChunker('fixed-64K', 64 * KiB),
  cdcChunker('cdc-64K', 16 * KiB, 64 * KiB, 256 * KiB),
];
const chunkers = opts.chunkers
  ? list('chunkers', opts.chunkers, CHUNKER_NAMES()).map((name) => ALL_CHUNKERS.find((c) => c.name === name))
  : ALL_CHUNKERS;

// ---------------------------------------------------------------------------------------------
// Self-check

function fail(message) {
  console.error(`SELF-CHECK FAILED: ${message}`);
  process.exit(1);
}

function checkChunks(chunker, buf, ends, label) {
  const n = buf.length;
  if (n === 0) {
    if (ends.length !== 0) fail(`${chunker.name} ${label}: chunks for an empty input`);
    return;
  }
  let previous = 0;
  for (let k = 0; k < ends.length; k++) {
    const length = ends[k] - previous;
    if (!(length > 0)) fail(`${chunker.name} ${label}: empty or backwards chunk ${k}`);
    if (length > chunker.max) fail(`${chunker.name} ${label}: chunk ${k} of ${length} > max ${chunker.max}`);
    if (k < ends.length - 1 && length < chunker.min) fail(`${chunker.name} ${label}: chunk ${k} of ${length} < min`);
    previous = ends[k];
  }
  if (previous !== n) fail(`${chunker.name} ${label}: chunks end at ${previous}, input is ${n}`);
  const parts = [];
  let start = 0;
  for (const end of ends) {
    parts.push(Buffer.from(buf.subarray(start, end))); // copies: the check must not be a view identity
    start = end;
  }
  if (!Buffer.concat(parts).equals(buf)) fail(`${chunker.name} ${label}: concatenated chunks differ from the input`);
  const again = chunker.boundaries(Buffer.from(buf));
  if (again.length !== ends.length || again.some((end, k) => end !== ends[k])) {
    fail(`${chunker.name} ${label}: boundaries not deterministic`);
  }
}

function selfCheck() {
  for (const chunker of ALL_CHUNKERS) {
    const { min, avg, max } = chunker;
    const sizes = [0, 1, 2, min - 1, min, min + 1, avg - 1, avg, avg + 1, max - 1, max, max + 1, 3 * max + 17, 9 * avg + 5];
    for (const kind of ALL_DATA) {
      for (const n of sizes) {
        if (n < 0) continue;
        const buf = makeValue(kind, n, 'self-check', n);
        const ends = chunker.boundaries(buf);
        checkChunks(chunker, buf, ends, `${kind} n=${n}`);
        if (chunker.kind === 'cdc') {
          // Content-defined: restarting at any boundary yields the same later boundaries.
          for (const k of [0, Math.floor(ends.length / 2), ends.length - 2]) {
            if (k < 0 || k >= ends.length - 1) continue;
            const from = ends[k];
            const rest = chunker.boundaries(buf.subarray(from)).map((end) => end + from);
            const expected = ends.slice(k + 1);
            if (rest.length !== expected.length || rest.some((end, j) => end !== expected[j])) {
              fail(`${chunker.name} ${kind} n=${n}: boundaries after ${from} depend on what precedes it`);
            }
          }
        }
      }
    }
    // Degenerate input (all zeros): the gear hash settles to a constant; the same checks apply.
    const zeros = Buffer.alloc(3 * max + 1);
    checkChunks(chunker, zeros, chunker.boundaries(zeros), 'zeros');
  }
}

// ---------------------------------------------------------------------------------------------
// Workloads: an original value and its edited version.

function edit(workload, kind, original, rng, run) {
  const n = original.length;
  switch (workload) {
    case 'overwrite': {
      // A few ranges rewritten in place; size unchanged.
      const edited = Buffer.from(original);
      for (let r = 0; r < 3; r++) {
        const length = rng.range(KiB, 64 * KiB);
        const at = rng.int(n - length);
        editBytes(kind, length, rng).copy(edited, at);
      }
      return edited;
    }
    case 'insert-start':
    case 'insert-middle': {
      // A few bytes inserted near the start (first 64 KiB) or near the middle (±10 %).
      const length = rng.range(1, 100);
      const at = workload === 'insert-start' ? rng.int(64 * KiB) : Math.floor(n / 2 + (rng.float() - 0.5) * 0.2 * n);
      return Buffer.concat([original.subarray(0, at), editBytes(kind, length, rng), original.subarray(at)]);
    }
    case 'delete': {
      // One range (1 to 64 KiB) removed somewhere in the middle 80 %.
      const length = rng.range(KiB, 64 * KiB);
      const at = Math.floor(0.1 * n) + rng.int(Math.floor(0.8 * n) - length);
      return Buffer.concat([original.subarray(0, at), original.subarray(at + length)]);
    }
    case 'append': {
      // 64 KiB to 2 MiB appended.
      return Buffer.concat([original, editBytes(kind, rng.range(64 * KiB, 2 * MiB), rng)]);
    }
    case 'unrelated':
      // Another value of the same kind and size: nothing should be shared.
      return makeValue(kind, n, 'unrelated', run);
    default:
      throw new Error(workload);
  }
}

function digests(buf, ends) {
  const out = new Array(ends.length);
  let start = 0;
  for (let k = 0; k < ends.length; k++) {
    out[k] = createHash('sha256').update(buf.subarray(start, ends[k])).digest('base64');
    start = ends[k];
  }
  return out;
}

function dedup(original, edited, chunker, check) {
  const endsO = chunker.boundaries(original);
  const endsE = chunker.boundaries(edited);
  if (check) {
    checkChunks(chunker, original, endsO, 'original');
    checkChunks(chunker, edited, endsE, 'edited');
  }
  const store = new Map();
  const add = (buf, ends) => {
    const names = digests(buf, ends);
    let start = 0;
    for (let k = 0; k < ends.length; k++) {
      if (!store.has(names[k])) store.set(names[k], ends[k] - start);
      start = ends[k];
    }
  };
  const storedBytes = () => {
    let total = 0;
    for (const size of store.values()) total += size;
    return total;
  };
  add(original, endsO);
  const storedOriginal = storedBytes();
  add(edited, endsE);
  const stored = storedBytes();
  return {
    chunksOriginal: endsO.length,
    chunksEdited: endsE.length,
    meanChunkBytes: original.length / endsO.length,
    logicalBytes: original.length + edited.length,
    storedBytes: stored,
    newBytes: stored - storedOriginal,
    editedBytes: edited.length,
    storedPerLogical: stored / (original.length + edited.length),
    newPerEdited: (stored - storedOriginal) / edited.length,
  };
}

// ---------------------------------------------------------------------------------------------
// Cost

function now() {
  return process.hrtime.bigint();
}
/** CPU seconds (user + system) of this process: less sensitive than wall time to other processes
 *  sharing the cores; the work measured is synchronous on this thread. */
function cpu() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/** One timing sample for one chunker: boundaries alone, then SHA-256 of each chunk. */
function timeChunker(chunker, buf) {
  const w0 = now();
  const c0 = cpu();
  const ends = chunker.boundaries(buf);
  const c1 = cpu();
  const w1 = now();
  let start = 0;
  let sink = 0;
  for (const end of ends) {
    sink ^= createHash('sha256').update(buf.subarray(start, end)).digest()[0];
    start = end;
  }
  const c2 = cpu();
  const w2 = now();
  return {
    bytes: buf.length,
    boundaryCpuSeconds: c1 - c0,
    hashCpuSeconds: c2 - c1,
    boundaryWallSeconds: Number(w1 - w0) / 1e9,
    hashWallSeconds: Number(w2 - w1) / 1e9,
    sink,
  };
}

function timeWholeSha(buf) {
  const w0 = now();
  const c0 = cpu();
  createHash('sha256').update(buf).digest();
  const c1 = cpu();
  return { cpuMBps: buf.length / 1e6 / (c1 - c0), wallMBps: buf.length / 1e6 / (Number(now() - w0) / 1e9) };
}

function median(values) {
  const sorted = values.filter((v) => v !== null && v !== undefined).sort((a, b) => a - b);
  if (sorted.length === 0) return null;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// ---------------------------------------------------------------------------------------------
// Run

const cpus = os.cpus();
const header = {
  seed,
  sizeMiB,
  runs,
  node: process.version,
  machine: `${cpus[0]?.model ?? 'unknown'} x${cpus.length}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}`,
  date: new Date().toISOString(),
  loadavgStart: os.loadavg().map((l) => Number(l.toFixed(2))),
  chunkers: chunkers.map((c) => ({ name: c.name, describe: c.describe })),
  dataKinds,
  workloads,
};
const log = opts.json ? () => {} : (...args) => console.log(...args);

log(`bench/chunking.mjs seed=${seed} size=${sizeMiB} MiB (+ seeded tail) runs=${runs}`);
log(`node ${header.node}, ${header.machine}, load average ${header.loadavgStart.join(' ')}, ${header.date}`);
log(`replay: node bench/chunking.mjs --seed ${seed} --size-mib ${sizeMiB} --runs ${runs}${opts.data !== 'random,text' ? ` --data ${dataKinds.join(',')}` : ''}${opts.workloads ? ` --workloads ${workloads.join(',')}` : ''}${opts.chunkers ? ` --chunkers ${chunkers.map((c) => c.name).join(',')}` : ''}`);

selfCheck();
log('self-check: passed (chunk concatenation, sizes, determinism, content-defined restarts)');

const dedupSamples = []; // { data, workload, chunker, run, ...figures }
const costSamples = []; // { data, chunker, run, ...timings }
const shaSamples = []; // { data, run, MBps }

for (const kind of dataKinds) {
  const tail = prng(derive('tail', kind)).int(MiB);
  const size = sizeMiB * MiB + tail;
  const original = makeValue(kind, size, 'original');
  log(`\n${kind}: original value ${size} bytes (${(size / MiB).toFixed(2)} MiB)`);

  // Warm-up (JIT) before any timing.
  for (const chunker of chunkers) timeChunker(chunker, original.subarray(0, Math.min(original.length, 16 * MiB)));

  for (let run = 0; run < runs; run++) {
    // Cost: chunkers interleaved, rotated so none always goes first.
    for (let j = 0; j < chunkers.length; j++) {
      const chunker = chunkers[(run + j) % chunkers.length];
      const t = timeChunker(chunker, original);
      costSamples.push({ data: kind, chunker: chunker.name, run, ...t });
    }
    shaSamples.push({ data: kind, run, ...timeWholeSha(original) });

    // Dedup: each run draws its own edit positions.
    for (const workload of workloads) {
      const rng = prng(derive('edit', kind, workload, run));
      const edited = edit(workload, kind, original, rng, run);
      for (const chunker of chunkers) {
        const figures = dedup(original, edited, chunker, run === 0);
        dedupSamples.push({ data: kind, workload, chunker: chunker.name, run, ...figures });
      }
    }
    log(`  run ${run + 1}/${runs} done`);
  }
}
header.loadavgEnd = os.loadavg().map((l) => Number(l.toFixed(2)));

// Medians.
const dedupRows = [];
for (const kind of dataKinds) {
  for (const workload of workloads) {
    for (const chunker of chunkers) {
      const samples = dedupSamples.filter((s) => s.data === kind && s.workload === workload && s.chunker === chunker.name);
      const pick = (key) => median(samples.map((s) => s[key]));
      dedupRows.push({
        data: kind,
        workload,
        chunker: chunker.name,
        chunksOriginal: pick('chunksOriginal'),
        chunksEdited: pick('chunksEdited'),
        meanChunkKiB: pick('meanChunkBytes') / KiB,
        storedPerLogical: pick('storedPerLogical'),
        newBytes: pick('newBytes'),
        newPerEdited: pick('newPerEdited'),
        newPerEditedMin: Math.min(...samples.map((s) => s.newPerEdited)),
        newPerEditedMax: Math.max(...samples.map((s) => s.newPerEdited)),
      });
    }
  }
}
const costRows = [];
const baseline = chunkers.find((c) => c.name === 'fixed-1M') ?? chunkers.find((c) => c.kind === 'fixed');
for (const kind of dataKinds) {
  for (const chunker of chunkers) {
    const samples = costSamples.filter((s) => s.data === kind && s.chunker === chunker.name);
    const mb = (s) => s.bytes / 1e6;
    const pipeline = samples.map((s) => mb(s) / (s.boundaryCpuSeconds + s.hashCpuSeconds));
    // CPU per byte relative to the baseline chunker measured in the same run.
    const relative = baseline
      ? samples.map((s) => {
          const b = costSamples.find((x) => x.data === kind && x.chunker === baseline.name && x.run === s.run);
          return (s.boundaryCpuSeconds + s.hashCpuSeconds) / (b.boundaryCpuSeconds + b.hashCpuSeconds);
        })
      : [];
    costRows.push({
      data: kind,
      chunker: chunker.name,
      // fixed-size boundaries are offsets: no scan, nothing to time
      boundaryMBps: chunker.kind === 'fixed' ? null : median(samples.map((s) => mb(s) / s.boundaryCpuSeconds)),
      pipelineMBps: median(pipeline),
      pipelineMBpsMin: Math.min(...pipeline),
      pipelineMBpsMax: Math.max(...pipeline),
      chunkHashMBps: median(samples.map((s) => mb(s) / s.hashCpuSeconds)),
      cpuPerByteVsBaseline: baseline ? median(relative) : null,
      pipelineWallMBps: median(samples.map((s) => mb(s) / (s.boundaryWallSeconds + s.hashWallSeconds))),
    });
  }
  const sha = shaSamples.filter((s) => s.data === kind);
  costRows.push({
    data: kind,
    chunker: 'sha256-whole',
    boundaryMBps: null,
    pipelineMBps: median(sha.map((s) => s.cpuMBps)),
    chunkHashMBps: null,
    cpuPerByteVsBaseline: null,
    pipelineWallMBps: median(sha.map((s) => s.wallMBps)),
  });
}

if (opts.json) {
  console.log(JSON.stringify({ header, dedup: dedupRows, cost: costRows, samples: { dedup: dedupSamples, cost: costSamples.map(({ sink, ...rest }) => rest), sha256: shaSamples } }, null, 2));
  process.exit(0);
}

const f3 = (x) => (x === null ? '-' : x.toFixed(3));
const fMB = (x) => (x === null ? '-' : x >= 100 ? x.toFixed(0) : x.toFixed(1));
const fMiB = (bytes) => (bytes / MiB).toFixed(2);

console.log(`\n### Dedup of an edited value stored beside the original (medians of ${runs} runs)\n`);
console.log(`seed ${seed}, original ${sizeMiB} MiB + seeded tail, node ${header.node}, ${header.machine}\n`);
console.log('| data | workload | chunker | chunks orig → edited | mean chunk KiB | stored / logical | new MiB for the edit | new / edited (min–max) |');
console.log('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of dedupRows) {
  console.log(
    `| ${r.data} | ${r.workload} | ${r.chunker} | ${r.chunksOriginal} → ${r.chunksEdited} | ${r.meanChunkKiB.toFixed(0)} | ${f3(r.storedPerLogical)} | ${fMiB(r.newBytes)} | ${f3(r.newPerEdited)} (${f3(r.newPerEditedMin)}–${f3(r.newPerEditedMax)}) |`,
  );
}
console.log(`\n### Cost: MB/s of CPU time over the original value, one thread (medians of ${runs} runs, chunkers interleaved)\n`);
console.log(`| data | chunker | boundaries alone | boundaries + SHA-256 per chunk (min–max) | SHA-256 per chunk | CPU per byte vs ${baseline?.name ?? '-'} | wall-clock, boundaries + SHA-256 |`);
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const r of costRows) {
  if (r.chunker === 'sha256-whole') {
    console.log(`| ${r.data} | SHA-256 of the whole value, one call | - | ${fMB(r.pipelineMBps)} | - | - | ${fMB(r.pipelineWallMBps)} |`);
  } else {
    console.log(
      `| ${r.data} | ${r.chunker} | ${r.boundaryMBps === null ? 'none (offsets)' : fMB(r.boundaryMBps)} | ${fMB(r.pipelineMBps)} (${fMB(r.pipelineMBpsMin)}–${fMB(r.pipelineMBpsMax)}) | ${fMB(r.chunkHashMBps)} | ${r.cpuPerByteVsBaseline === null ? '-' : `${r.cpuPerByteVsBaseline.toFixed(2)}x`} | ${fMB(r.pipelineWallMBps)} |`,
    );
  }
}
console.log(`\nload average at start ${header.loadavgStart.join(' ')}, at end ${header.loadavgEnd.join(' ')} (2 = both cores busy)`);
console.log('chunkers:');
for (const c of chunkers) console.log(`- ${c.name}: ${c.describe}`);
