// `barman-cloud doctor`: the object-store checks. Each takes an open ObjectStore and returns one
// finding; the wording of failures (and their fixes) comes from the typed storage errors only.
import { randomBytes } from 'node:crypto';
import { AccessDeniedError, BucketNotFoundError, NetworkError } from '../../errors.js';
import { log } from '../../log.js';
import { BackupCatalog } from '../../catalog/catalog.js';
import { STATUS } from '../../catalog/backup-info.js';
import { joinKey, type ServerLayout } from '../../catalog/layout.js';
import type { ObjectStore } from '../../storage/types.js';
import type { ResolvedStore } from '../store.js';
import { fail, ok, warn, type CheckResult } from './report.js';

/** Why the store could not be used, as one of the cases a user fixes differently. */
export type StoreFailureKind = 'tls' | 'unreachable' | 'credentials' | 'bucket-missing' | 'other';

const TLS_HINT = /certificate|self[- ]signed|\bTLS\b|\bSSL\b|UNABLE_TO_(VERIFY|GET)|CERT_|ERR_TLS|ERR_SSL|EPROTO|wrong version number|handshake/i;

function errorTexts(e: unknown, depth = 0): string[] {
  if (!e || typeof e !== 'object' || depth > 6) return [];
  const err = e as { message?: unknown; code?: unknown; cause?: unknown };
  const own = [err.message, err.code].filter((x): x is string => typeof x === 'string');
  return [...own, ...(err.cause !== undefined && err.cause !== e ? errorTexts(err.cause, depth + 1) : [])];
}

export function classifyStoreError(e: unknown): StoreFailureKind {
  if (e instanceof BucketNotFoundError) return 'bucket-missing';
  if (e instanceof AccessDeniedError) return 'credentials';
  if (e instanceof NetworkError) return errorTexts(e).some((t) => TLS_HINT.test(t)) ? 'tls' : 'unreachable';
  return 'other';
}

const message = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Where the store is, in words: provider, bucket, path and endpoint (no credentials). */
export function describeStore({ provider, config, url }: ResolvedStore): string {
  return provider.describe(config, url.path.replace(/\/+$/, '') || '(bucket root)');
}

/** The fix for a store that cannot be used, in plain words. */
export function storeFailureAdvice(kind: StoreFailureKind, resolved: ResolvedStore, serverName: string, rawUrl: string): string {
  const { config, provider } = resolved;
  const bucketWord = provider.bucketWord;
  switch (kind) {
    case 'tls':
      return 'the TLS handshake with the endpoint failed: check https:// against http:// in the endpoint, that the host ' +
        'name matches its certificate, and, for a private CA, give its certificate with --endpoint-ca (or AWS_CA_BUNDLE / ' +
        'REQUESTS_CA_BUNDLE)';
    case 'unreachable':
      return 'the endpoint cannot be reached: check the URL' +
        `${provider.endpointHint ? ` and ${provider.endpointHint}` : ''}, DNS, firewalls and proxies, and that the service is up`;
    case 'credentials':
      return `the store refused the credentials (from ${resolved.credentialSource}): check that they are valid, not expired, ` +
        `and allowed to list and read ${bucketWord} ${config.bucket}`;
    case 'bucket-missing':
      // Not a cloud provider: the local directory store.
      return !resolved.declaration.cloudProvider
        ? `the directory ${config.bucket} does not exist: create it (mkdir -p ${config.bucket})`
        : `${bucketWord} ${config.bucket} does not exist: fix its name in the URL, or create it (barman-cloud ` +
          `check-wal-archive ${rawUrl} ${serverName} creates a missing ${bucketWord} before checking the archive)`;
    case 'other':
      return 'the store answered with an unexpected error';
  }
}

/**
 * What the S3 SDK's credential chain found, when the driver can tell (the SDK driver only; the lean
 * client has static keys). Throws AccessDeniedError when the chain finds nothing.
 */
export async function resolvedCredentialSource(store: ObjectStore): Promise<string | undefined> {
  const probe = (store as Partial<{ credentialSource(): Promise<string> }>).credentialSource;
  if (typeof probe !== 'function') return undefined;
  try {
    return await probe.call(store);
  } catch (e) {
    throw new AccessDeniedError(`no usable credentials: ${message(e)}`, { cause: e });
  }
}

/** A unique key for the probe object, directly under `<path>/<server_name>/`. */
export function probeKey(layout: ServerLayout, now: Date, random: string): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return joinKey(layout.root, `barman-cloud-doctor-${stamp}-${random}.probe`);
}

/**
 * Write, read back (bytes compared), list (found) and delete (then confirmed gone) one probe
 * object. The probe is deleted whatever happens once it may have been written.
 */
export async function probeRoundTrip(store: ObjectStore, layout: ServerLayout, now = new Date()): Promise<CheckResult> {
  const name = 'probe object';
  const key = probeKey(layout, now, randomBytes(6).toString('hex'));
  const body = Buffer.concat([Buffer.from(`barman-cloud doctor probe ${now.toISOString()}\n`), randomBytes(1024)]);
  let step = 'write';
  let written = false;
  let gone = false;
  const started = Date.now();
  try {
    written = true; // from here on the object may exist, even if put() fails half-way
    await store.put(key, body, { ifNoneMatch: true });
    step = 'read back';
    const back = await store.getBuffer(key);
    if (!back.equals(body)) {
      return fail(name, `read back ${back.length} bytes of ${key} that differ from the ${body.length} bytes written: ` +
        'something between here and the store changes objects (a proxy, a gateway, or client-side encryption)');
    }
    step = 'list';
    let listed = false;
    for await (const entry of store.list(key)) {
      if (entry.kind === 'object' && entry.key === key) listed = true;
    }
    if (!listed) {
      return fail(name, `the listing of ${key} does not show the object just written: barman-cloud finds WAL files and ` +
        'backups by listing, so they would look missing');
    }
    step = 'delete';
    await store.delete(key);
    gone = (await store.head(key)) === null;
    if (gone) for await (const entry of store.list(key)) if (entry.kind === 'object' && entry.key === key) gone = false;
    if (!gone) return fail(name, `${key} is still there after it was deleted: backup-delete could not free space`);
    return ok(name, `wrote, read back (${body.length} bytes, identical), listed and deleted ${key} in ${Date.now() - started} ms`);
  } catch (e) {
    const kind = classifyStoreError(e);
    const why = kind === 'credentials'
      ? `access denied (${message(e)}): the credentials may not ${step === 'read back' ? 'read' : step} objects, which ` +
        `${step === 'delete' ? 'backup-delete and retention' : 'wal-archive, backup and restore'} need`
      : message(e);
    return fail(name, `could not ${step} the probe object ${key}: ${why}`);
  } finally {
    if (written && !gone) await cleanUp(store, key);
  }
}

/** Best effort: delete the probe if it is there, and say so on stderr when it stays behind. */
async function cleanUp(store: ObjectStore, key: string): Promise<void> {
  try {
    if ((await store.head(key)) === null) return;
  } catch {
    // cannot tell: try the delete anyway
  }
  try {
    await store.delete(key);
    if ((await store.head(key)) === null) return;
  } catch {
    // reported below
  }
  log.warning(`the probe object ${key} may still be in the store: delete it by hand`);
}

/** How many objects the WAL count reads at most: one listing page. */
const WAL_COUNT_LIMIT = 1000;

/** What the catalog holds: backups (by status, the latest DONE one), unreadable backup.info, WAL objects. */
export async function catalogSummary(store: ObjectStore, layout: ServerLayout): Promise<CheckResult> {
  const name = 'catalog';
  const listing = await new BackupCatalog(store, layout).load();
  let walObjects = 0;
  for await (const entry of store.list(layout.walsPrefix, { pageSize: WAL_COUNT_LIMIT })) {
    if (entry.kind !== 'object') continue;
    if (++walObjects >= WAL_COUNT_LIMIT) break;
  }
  const backups = [...listing.backups.values()];
  const byStatus = new Map<string, number>();
  for (const b of backups) byStatus.set(b.status ?? 'unknown', (byStatus.get(b.status ?? 'unknown') ?? 0) + 1);
  const done = backups.filter((b) => b.status === STATUS.DONE);
  const latest = done.at(-1);
  const parts: string[] = [];
  if (backups.length === 0) parts.push('no backups yet');
  else {
    const statuses = [...byStatus].map(([s, n]) => `${n} ${s}`).join(', ');
    parts.push(`${backups.length} backup${backups.length === 1 ? '' : 's'} (${statuses})`);
    parts.push(latest ? `latest ${latest.backup_id}${latest.end_time ? ` ended ${latest.end_time}` : ''}` : 'none of them DONE');
  }
  parts.push(walObjects >= WAL_COUNT_LIMIT
    ? `${WAL_COUNT_LIMIT} or more WAL objects (counting stops at ${WAL_COUNT_LIMIT})`
    : `${walObjects} WAL object${walObjects === 1 ? '' : 's'}`);
  const bad = [
    ...listing.unreadable.map((u) => `${u.backupId} (${u.error.message})`),
    ...listing.unknownField.map((u) => `${u.backupId} (${u.error.message})`),
  ];
  if (bad.length) {
    return warn(name, `${parts.join('; ')}; backup.info cannot be read for ${bad.join(', ')}: ` +
      'backup-list and restore skip such backups (an unknown field means a newer barman wrote it)');
  }
  return ok(name, parts.join('; '));
}
