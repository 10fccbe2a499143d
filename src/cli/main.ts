#!/usr/bin/env node
/**
 * The `silt` command: a thin front end over the public API (no engine logic here).
 *
 * Invariants:
 * - Every command opens the store, does one thing, and closes it; errors print one line to stderr
 *   and exit non-zero (2 for usage errors, 1 for everything else).
 * - Read-only commands (get, ls, stats, verify) open the store `readOnly`, so they never write a
 *   byte. A process writing the store may remove a file such an open was about to read (`STALE`):
 *   the command opens the store again and goes on (up to STALE_ATTEMPTS opens), unless it has
 *   already printed part of a value (`get`), which it never splices with another open's bytes.
 * - Values go through in bounded memory: `put` streams standard input or `--file` into the store
 *   (`putStream`), `get` streams the value out (`createReadStream`).
 */
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import cliProgress from 'cli-progress';
import { Command, CommanderError } from 'commander';
import { isSiltError, open, SiltError, type RangeOptions, type Store } from '../index.js';

const program = new Command();
program
  .name('silt')
  .description('A durable key-value and blob store for Node.js')
  .option('-d, --dir <directory>', 'store directory', './silt-data')
  .showHelpAfterError()
  .exitOverride();

/** Opens of a read-only command that found its view of the store out of date, at most. */
const STALE_ATTEMPTS = 5;

async function withStore<T>(readOnly: boolean, action: (db: Store) => Promise<T>, mayRetry: () => boolean = () => true): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const db = await open(program.opts<{ dir: string }>().dir, { readOnly });
    try {
      return await action(db);
    } catch (error) {
      // Read-only beside a writer: a file this open's view needs was removed since it opened.
      // The action runs again on a new open (it must be safe to: see `ls` and `get`).
      if (!readOnly || !isSiltError(error, 'STALE') || attempt === STALE_ATTEMPTS || !mayRetry()) throw error;
    } finally {
      await db.close();
    }
  }
}

function parseInteger(value: string): number {
  const parsed = Number(value);
  if (!Number.isSafeInteger(parsed) || parsed < 0) throw new SiltError('INVALID_ARGUMENT', `not a non-negative integer: ${value}`);
  return parsed;
}

program
  .command('put')
  .description('store a value (read from standard input when not given)')
  .argument('<key>')
  .argument('[value]')
  .option('--if-revision <revision>', 'write only if the key is at this revision', parseInteger)
  .option('--if-absent', 'write only if the key is absent')
  .option('--ttl-ms <ms>', 'expire the entry after this many milliseconds', parseInteger)
  .option('--file <path>', 'store the contents of this file')
  .action(async (key: string, value: string | undefined, options: { ifRevision?: number; ifAbsent?: boolean; ttlMs?: number; file?: string }) => {
    const { file, ...writeOptions } = options;
    if (file !== undefined && value !== undefined) throw new SiltError('INVALID_ARGUMENT', 'give a value or --file, not both');
    const result = await withStore(false, (db) => {
      if (value !== undefined) return db.put(key, Buffer.from(value), writeOptions);
      // Streamed: a value of any size, in bounded memory (large ones straight into blocks).
      return db.putStream(key, file === undefined ? process.stdin : createReadStream(file), writeOptions);
    });
    console.log(`revision ${result.revision}`);
  });

program
  .command('get')
  .description('print a value (exit 1 when the key is absent)')
  .argument('<key>')
  .option('--revision', 'print the revision instead of the value')
  .option('--start <byte>', 'print from this byte on (0 is the first)', parseInteger)
  .option('--end <byte>', 'print up to this byte, included', parseInteger)
  .action(async (key: string, options: { revision?: boolean; start?: number; end?: number }) => {
    const notFound = () => {
      console.error(`silt: ${key}: not found`);
      process.exitCode = 1;
    };
    if (options.revision) {
      // An object's revision is in its manifest; `stat` would read the whole object for its
      // digest. Other values' `stat` reads no block (a small value is hashed in memory).
      const revision = await withStore(true, async (db) => db.objectStats(key)?.revision ?? (await db.stat(key))?.revision);
      if (revision === undefined) notFound();
      else console.log(revision);
      return;
    }
    // Streamed to standard output as it is read. An open found out of date before anything was
    // printed is followed by another; after, the command fails rather than finish the value
    // from another open, which may hold another revision of it.
    let printed = 0;
    const found = await withStore(
      true,
      async (db) => {
        const range = { ...(options.start === undefined ? {} : { start: options.start }), ...(options.end === undefined ? {} : { end: options.end }) };
        let stream: Readable;
        try {
          stream = db.createReadStream(key, range);
        } catch (error) {
          if (isSiltError(error, 'NOT_FOUND')) return false;
          throw error;
        }
        // A reader that went away (EPIPE: `silt get k | head -c 100`) stops the read.
        const stop = (error: Error) => stream.destroy(error);
        process.stdout.once('error', stop);
        try {
          for await (const chunk of stream) {
            printed += (chunk as Buffer).length;
            if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
          }
        } finally {
          process.stdout.off('error', stop);
        }
        return true;
      },
      () => printed === 0,
    );
    if (!found) notFound();
  });

program
  .command('delete')
  .description('delete a key')
  .argument('<key>')
  .option('--if-revision <revision>', 'delete only if the key is at this revision', parseInteger)
  .action(async (key: string, options: { ifRevision?: number }) => {
    const result = await withStore(false, (db) => db.delete(key, options));
    console.log(result.existed ? `deleted at revision ${result.revision}` : 'not found');
  });

program
  .command('ls')
  .description('list keys in order')
  .option('--prefix <prefix>')
  .option('--gt <key>')
  .option('--gte <key>')
  .option('--lt <key>')
  .option('--lte <key>')
  .option('--reverse')
  .option('--limit <count>', 'at most this many keys', parseInteger)
  .option('--values', 'print key<TAB>value')
  .action(async (options: RangeOptions & { values?: boolean }) => {
    const { values, ...range } = options;
    // Keys alone come from the index (no file is read). With values, an open found out of date
    // (STALE) is followed by another that goes on after the last key printed.
    let printed = 0;
    let last: Buffer | undefined;
    await withStore(true, async (db) => {
      const { gt, gte, lt, lte, ...rest } = range;
      const from = last === undefined || range.reverse ? { gt, gte } : { gt: last };
      const to = last !== undefined && range.reverse ? { lt: last } : { lt, lte };
      const resumed: RangeOptions = { ...rest, ...from, ...to, ...(range.limit === undefined ? {} : { limit: range.limit - printed }) };
      for (const [name, value] of Object.entries(resumed)) if (value === undefined) delete resumed[name as keyof RangeOptions];
      if (!values) {
        for await (const key of db.keys(resumed)) process.stdout.write(`${key.toString()}\n`);
        return;
      }
      for await (const entry of db.entries(resumed)) {
        process.stdout.write(`${entry.key.toString()}\t${entry.value.toString()}\n`);
        printed++;
        last = entry.key;
      }
    });
  });

program
  .command('compact')
  .description('compact every log segment holding dead records now, and print the compaction counters as JSON')
  .action(async () => {
    const counters = await withStore(false, (db) => db.compact());
    console.log(JSON.stringify(counters, null, 2));
  });

program
  .command('gc')
  .description('run one block garbage-collection pass now, and print what it did as JSON')
  .action(async () => {
    const result = await withStore(false, (db) => db.gc());
    console.log(JSON.stringify(result, null, 2));
  });

program
  .command('stats')
  .description('print the store statistics as JSON')
  .action(async () => {
    const stats = await withStore(true, async (db) => db.stats());
    console.log(JSON.stringify(stats, null, 2));
  });

program
  .command('verify')
  .description('check every record, checkpoint, index entry, block and reference count (exit 1 on any problem)')
  .option('--json', 'print the result as JSON')
  .action(async (options: { json?: boolean }) => {
    const showProgress = process.stderr.isTTY && !options.json;
    const bar = new cliProgress.SingleBar(
      { format: 'verify {phase} [{bar}] {percentage}% {value}/{total} MiB', stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    let phase = '';
    const result = await withStore(true, (db) =>
      db.verify({
        onProgress: (progress) => {
          if (!showProgress || progress.totalBytes < 64 * 1024 * 1024) return;
          const total = Math.ceil(progress.totalBytes / 1048576);
          if (progress.phase !== phase) {
            if (phase !== '') bar.stop();
            phase = progress.phase;
            bar.start(total, 0, { phase });
          }
          bar.update(Math.floor(progress.doneBytes / 1048576), { phase });
        },
      }),
    );
    if (phase !== '') bar.stop();
    if (options.json) {
      console.log(JSON.stringify(result, null, 2));
    } else {
      const checked = result.checked;
      console.log(
        `checked ${checked.segments} segments (${checked.entries} entries, ${checked.bytes} bytes), ${checked.keys} keys, ` +
          `${checked.blocks} blocks (${checked.blockBytes} bytes), checkpoint ${checked.checkpointEntries} entries`,
      );
      for (const item of result.problems) console.log(`problem [${item.kind}] ${item.where}: ${item.message}`);
      console.log(result.ok ? 'ok' : `${result.problems.length} problems`);
    }
    if (!result.ok) process.exitCode = 1;
  });

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if ((error as NodeJS.ErrnoException).code === 'EPIPE') {
    // What it printed went to a reader that stopped reading: nothing to report.
  } else {
    const code = error instanceof SiltError ? ` [${error.code}]` : '';
    console.error(`silt: ${(error as Error).message}${code}`);
    process.exitCode = 1;
  }
}
