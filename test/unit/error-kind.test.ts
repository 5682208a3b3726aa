// An --async worker's failure crosses to PostgreSQL's call as {kind, message} (src/wal/async.ts):
// the call must get an error the CLI maps exactly as it would the worker's own.
import { describe, expect, it } from 'vitest';
import {
  AccessDeniedError, BarmanCloudError, CliError, EncryptedDataError, EncryptionKeyError, NetworkError, NotFoundError,
  OperationError, PreconditionFailedError, StorageError, errorKind, errorOfKind,
} from '../../src/errors.ts';

describe('errorKind / errorOfKind', () => {
  it('recreate the class (or the nearest recreatable one above it) with the same exit code and message', () => {
    const cases: [Error, new (...a: never[]) => Error][] = [
      [new OperationError('op'), OperationError],
      [new CliError('cli'), CliError],
      [new NetworkError('net'), NetworkError],
      [new AccessDeniedError('denied'), AccessDeniedError],
      [new EncryptionKeyError('no key'), EncryptionKeyError],
      [new EncryptedDataError('bad chunk'), EncryptedDataError],
      // Constructors that take more than a message: recreated as the class above them.
      [new NotFoundError('k'), StorageError],
      [new PreconditionFailedError('k'), StorageError],
    ];
    for (const [e, cls] of cases) {
      const back = errorOfKind(JSON.parse(JSON.stringify(errorKind(e))), e.message);
      expect(back, e.name).toBeInstanceOf(cls);
      expect((back as BarmanCloudError).exitCode, e.name).toBe((e as BarmanCloudError).exitCode);
      expect(back.message).toBe(e.message);
    }
  });

  it('an error from outside the hierarchy, or an unknown kind, comes back as a plain Error', () => {
    expect(errorKind(new TypeError('x'))).toBeUndefined();
    for (const kind of [undefined, 'TypeError', 'constructor', '__proto__', 4]) {
      const back = errorOfKind(kind, 'm');
      expect(back).not.toBeInstanceOf(BarmanCloudError);
      expect(back.message).toBe('m');
    }
  });
});
