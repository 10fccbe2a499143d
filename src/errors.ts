/**
 * Error classes and their stable codes.
 *
 * Invariants:
 * - Every error silt raises on purpose is a `SiltError` with a `code` from `ErrorCode`.
 *   Codes are API (listed in README.md); messages may change between versions.
 * - `cause` carries the underlying error (for example the errno error of a failed fsync).
 * - A missing key is `undefined`, never an error.
 */

/** The stable error codes. */
export const ErrorCode = {
  /** Bad input: wrong types, empty keys, non-finite options, unknown option values. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** A key or value is larger than the configured limit. */
  TOO_LARGE: 'TOO_LARGE',
  /** A conditional write (`ifRevision`, `ifAbsent`) did not hold; nothing was written. */
  CONFLICT: 'CONFLICT',
  /** Another open store (in this process or another) holds the directory. */
  LOCKED: 'LOCKED',
  /** A write was attempted on a store opened with `readOnly: true`. */
  READ_ONLY: 'READ_ONLY',
  /** The store is closed (or closing). */
  CLOSED: 'CLOSED',
  /** Stored bytes fail their checksum, or a file is not what it claims to be. */
  CORRUPTION: 'CORRUPTION',
  /** An I/O call failed; `cause` is the errno error. */
  IO_ERROR: 'IO_ERROR',
  /** The store stopped taking writes after an unrecoverable error (for example a failed fsync). */
  FAILED: 'FAILED',
  /** The directory does not hold a store and `createIfMissing` is false. */
  NOT_FOUND: 'NOT_FOUND',
  /**
   * A `readOnly` store went to read a file that was there when it opened and is gone: a process
   * writing the store removed it since (a segment it compacted away, a block it collected). The
   * store is fine; this open's view of it is out of date. Open it again to read it as it is now.
   */
  STALE: 'STALE',
} as const;

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface SiltErrorOptions {
  cause?: unknown;
  /** For CONFLICT: the key's current revision (0 when absent). */
  currentRevision?: number;
}

/** The one error class silt throws on purpose; switch on `code`, not on the message. */
export class SiltError extends Error {
  readonly code: ErrorCode;
  /** For `CONFLICT`: the revision the key holds now (0 when it is absent). */
  readonly currentRevision?: number;

  constructor(code: ErrorCode, message: string, options: SiltErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SiltError';
    this.code = code;
    if (options.currentRevision !== undefined) this.currentRevision = options.currentRevision;
  }
}

/** True when `error` is a SiltError, optionally with the given code. */
export function isSiltError(error: unknown, code?: ErrorCode): error is SiltError {
  return error instanceof SiltError && (code === undefined || error.code === code);
}

/** Wrap an errno error from the file layer as IO_ERROR, keeping SiltErrors as they are. */
export function toIoError(error: unknown, what: string): SiltError {
  if (error instanceof SiltError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  return new SiltError(ErrorCode.IO_ERROR, `${what} failed${errno ? ` (${errno})` : ''}`, { cause: error });
}
