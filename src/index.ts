/**
 * silt's public API. Everything a user imports comes from here; nothing else is API.
 */
export { open, Store, type GcResult } from './engine/store.js';
export type {
  BatchOperation,
  Bytes,
  ObjectChunkStats,
  ObjectCompactionResult,
  ObjectOptions,
  ObjectStats,
  ObjectWriteResult,
  DeleteOptions,
  DeleteResult,
  Entry,
  PutOptions,
  PutStreamOptions,
  PutStreamResult,
  RangeOptions,
  ReadStreamOptions,
  Snapshot,
  ValueStat,
  CompactionStats,
  StoreState,
  StoreStats,
  WriteResult,
} from './engine/types.js';
export type { RecoveryReport } from './engine/recovery.js';
export { ErrorCode, SiltError, isSiltError } from './errors.js';
export { DEFAULTS, type Durability, type OpenOptions } from './options.js';
export type { FileSystem, FileHandle, FileStat, OpenMode } from './fs/types.js';
export { NodeFileSystem } from './fs/node-file-system.js';
export type { VerifyProblem, VerifyProgress, VerifyResult } from './check/verify.js';
