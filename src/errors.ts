// One error hierarchy for the whole tool. Each class carries the barman exit code it maps to
// (docs/format.md#exit-codes); the CLI layer is the only place that turns an error into an exit code.

export const EXIT = {
  OK: 0,
  /** OperationErrorExit: the cloud was reachable but the operation failed (incl. "not found"). */
  OPERATION: 1,
  /** NetworkErrorExit: connectivity test failed (only under -t, and in check-wal-archive). */
  NETWORK: 2,
  /** CLIErrorExit: bad arguments or input. */
  CLI: 3,
  /** GeneralErrorExit: anything else. */
  GENERAL: 4,
} as const;

export class BarmanCloudError extends Error {
  readonly exitCode: number = EXIT.GENERAL;
  /**
   * Lines of our own text printed under the message without a log prefix, as barman prints a
   * two-line message; names from the store stay in the message, whose newlines the logger escapes.
   */
  readonly continuation: readonly string[];
  constructor(message: string, options?: { cause?: unknown; continuation?: readonly string[] }) {
    super(message, options);
    this.name = new.target.name;
    this.continuation = options?.continuation ?? [];
  }
}

/** Usage and input errors: exit 3. */
export class CliError extends BarmanCloudError {
  override readonly exitCode: number = EXIT.CLI;
}

/** The operation failed although the store was reachable: exit 1. */
export class OperationError extends BarmanCloudError {
  override readonly exitCode: number = EXIT.OPERATION;
}

/** Any other failure: exit 4. */
export class GeneralError extends BarmanCloudError {}

// ---- storage errors: thrown by every driver with the same meaning --------------------------------

/** Base of errors raised by an object-store driver (exit 4 unless a command maps them otherwise). */
export class StorageError extends BarmanCloudError {}

/** The object does not exist. */
export class NotFoundError extends StorageError {
  constructor(readonly key: string, options?: { cause?: unknown }) {
    super(`object not found: ${key}`, options);
  }
}

/** The bucket / container / root directory does not exist. */
export class BucketNotFoundError extends StorageError {
  constructor(readonly bucket: string, options?: { cause?: unknown }) {
    super(`Bucket ${bucket} does not exist`, options);
  }
}

/** The endpoint cannot be reached (refused, reset, DNS, TLS, timeout). */
export class NetworkError extends StorageError {}

/** A conditional write found the object already there. */
export class PreconditionFailedError extends StorageError {
  constructor(readonly key: string, options?: { cause?: unknown }) {
    super(`object already exists: ${key}`, options);
  }
}

/** An object read whole is larger than its kind may be (docs/format.md#metadata-limits). */
export class ObjectTooLargeError extends StorageError {
  constructor(readonly key: string, readonly maxBytes: number) {
    super(`refusing ${key}: it is larger than ${maxBytes} bytes, the most such a file may take`);
  }
}

/** Credentials refused or missing permission. */
export class AccessDeniedError extends StorageError {}

// ---- client-side encryption ------------------------------------------------------------------------

/**
 * An encryption key is missing, unreadable or does not fit the object (no identity given, none of
 * them matches, a malformed key file): exit 1, the message names what is missing, never a key.
 */
export class EncryptionKeyError extends OperationError {}

/** An encrypted object is damaged (header, authentication of a chunk, truncation): exit 4. */
export class EncryptedDataError extends GeneralError {}

/**
 * An object encrypted with a customer-provided key (S3 SSE-C, Azure CPK, GCS CSEK) read without
 * that key, or with another: exit 4 as any failed read. Not an AccessDeniedError, which some paths tolerate.
 */
export class SseCustomerKeyError extends StorageError {}

// ---- errors carried between processes ---------------------------------------------------------------

/** The classes an error is recreated as from its kind and message alone (their constructors take a message). */
const KINDS: Record<string, new (message: string) => BarmanCloudError> = {
  BarmanCloudError, CliError, OperationError, GeneralError, StorageError, NetworkError, AccessDeniedError,
  EncryptionKeyError, EncryptedDataError, SseCustomerKeyError,
};

/**
 * The kind to record for `e` (an --async worker's failure handed to another process): its own class
 * or the nearest one above it that KINDS can recreate; undefined for an error from outside the hierarchy.
 */
export function errorKind(e: unknown): string | undefined {
  // Compared by prototype, not constructor.name: a bundler may rename classes.
  for (let p: unknown = e instanceof BarmanCloudError ? Object.getPrototypeOf(e) : null; p; p = Object.getPrototypeOf(p)) {
    const found = Object.entries(KINDS).find(([, cls]) => cls.prototype === p);
    if (found) return found[0];
  }
  return undefined;
}

/** An error of the recorded kind, so that the CLI maps it as it would the original; a plain Error for any other kind. */
export function errorOfKind(kind: unknown, message: string): Error {
  const cls = typeof kind === 'string' && Object.hasOwn(KINDS, kind) ? KINDS[kind]! : undefined;
  return cls ? new cls(message) : new Error(message);
}
