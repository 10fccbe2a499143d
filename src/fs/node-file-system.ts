/**
 * The real file layer on node:fs: the only module that imports node:fs.
 *
 * Invariants:
 * - fd-based callback calls wrapped in promises (cheaper per call than fs/promises FileHandle);
 *   synchronous variants for the engine's synchronous read path.
 * - `write` loops over short writes; `syncDirectory` fsyncs the directory itself.
 */
import * as fs from 'node:fs';
import type { FileHandle, FileStat, FileSystem, OpenMode } from './types.js';

const FLAGS: Record<OpenMode, string> = { read: 'r', readwrite: 'r+', create: 'wx+', overwrite: 'w+' };

function promise<T>(call: (done: (error: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => call((error, value) => (error ? reject(error) : resolve(value as T))));
}

class NodeFileHandle implements FileHandle {
  constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return promise<number>((done) => fs.read(this.fd, buffer, offset, length, position, (error, bytesRead) => done(error, bytesRead)));
  }

  readSync(buffer: Uint8Array, offset: number, length: number, position: number): number {
    return fs.readSync(this.fd, buffer, offset, length, position);
  }

  async write(buffer: Uint8Array, offset: number, length: number, position: number): Promise<void> {
    let written = 0;
    while (written < length) {
      const count = await promise<number>((done) =>
        fs.write(this.fd, buffer, offset + written, length - written, position + written, (error, bytes) => done(error, bytes)),
      );
      written += count;
    }
  }

  writeSync(buffer: Uint8Array, offset: number, length: number, position: number): void {
    let written = 0;
    while (written < length) written += fs.writeSync(this.fd, buffer, offset + written, length - written, position + written);
  }

  sync(): Promise<void> {
    return promise<void>((done) => fs.fsync(this.fd, (error) => done(error)));
  }

  datasync(): Promise<void> {
    return promise<void>((done) => fs.fdatasync(this.fd, (error) => done(error)));
  }

  truncate(sizeBytes: number): Promise<void> {
    return promise<void>((done) => fs.ftruncate(this.fd, sizeBytes, (error) => done(error)));
  }

  async size(): Promise<number> {
    const stat = await promise<fs.Stats>((done) => fs.fstat(this.fd, (error, stats) => done(error, stats)));
    return stat.size;
  }

  close(): Promise<void> {
    return promise<void>((done) => fs.close(this.fd, (error) => done(error)));
  }
}

/** The real file system. */
export class NodeFileSystem implements FileSystem {
  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const fd = await promise<number>((done) => fs.open(path, FLAGS[mode], 0o644, (error, descriptor) => done(error, descriptor)));
    return new NodeFileHandle(path, fd);
  }

  openSync(path: string, mode: OpenMode): FileHandle {
    return new NodeFileHandle(path, fs.openSync(path, FLAGS[mode], 0o644));
  }

  readdir(path: string): Promise<string[]> {
    return promise<string[]>((done) => fs.readdir(path, (error, names) => done(error, names)));
  }

  async stat(path: string): Promise<FileStat> {
    const stat = await promise<fs.Stats>((done) => fs.stat(path, (error, stats) => done(error, stats)));
    return { sizeBytes: stat.size, isFile: stat.isFile(), isDirectory: stat.isDirectory(), mtimeMs: stat.mtimeMs };
  }

  rename(from: string, to: string): Promise<void> {
    return promise<void>((done) => fs.rename(from, to, (error) => done(error)));
  }

  unlink(path: string): Promise<void> {
    return promise<void>((done) => fs.unlink(path, (error) => done(error)));
  }

  async mkdir(path: string): Promise<void> {
    await promise<string | undefined>((done) => fs.mkdir(path, { recursive: true }, (error, made) => done(error, made)));
  }

  async syncDirectory(path: string): Promise<void> {
    const fd = await promise<number>((done) => fs.open(path, 'r', (error, descriptor) => done(error, descriptor)));
    try {
      await promise<void>((done) => fs.fsync(fd, (error) => done(error)));
    } finally {
      await promise<void>((done) => fs.close(fd, (error) => done(error)));
    }
  }

  readFile(path: string): Promise<Buffer> {
    return promise<Buffer>((done) => fs.readFile(path, (error, data) => done(error, data)));
  }
}

/** True when a process with this pid exists (EPERM: it exists but is not ours). */
export function processIsAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The start time of a process (field 22 of /proc/<pid>/stat), where the platform has it. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19];
  } catch {
    return undefined;
  }
}
