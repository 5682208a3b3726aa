// Credentials from a container credentials endpoint: EKS Pod Identity
// (AWS_CONTAINER_CREDENTIALS_FULL_URI + AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE) and ECS task roles.
// The AWS SDK's own provider sits behind ~200 ms of module loading; this one is node:http and a
// file read, so the lean S3 client can sign with these credentials on the WAL hot path. The same
// provider is handed to the SDK driver, so every command asks the endpoint the same way.
import { readFileSync } from 'node:fs';
import { AccessDeniedError, StorageError } from '../../errors.js';
import { log, registerSecret } from '../../log.js';
import type { RetryPolicy } from '../config.js';
import { pauseBeforeRetry } from '../retry.js';

export interface ContainerCredentialsSource {
  /** The endpoint, already resolved from FULL_URI or RELATIVE_URI. */
  url: string;
  /** AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: read again at every refresh (the kubelet rotates it). */
  authorizationTokenFile?: string;
  /** AWS_CONTAINER_AUTHORIZATION_TOKEN, used when no token file is named. */
  authorizationToken?: string;
}

export interface TemporaryCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  expiration?: Date;
}

/** Plain-http endpoints the SDKs accept: loopback, the ECS and the EKS Pod Identity agent addresses. */
const ALLOWED_HTTP_HOSTS = new Set(['169.254.170.2', '169.254.170.23', '[fd00:ec2::23]', 'localhost', '[::1]']);

function checkContainerEndpoint(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `not a URL: ${url}`;
  }
  if (u.protocol === 'https:') return undefined;
  if (u.protocol !== 'http:') return `unsupported scheme ${u.protocol} in ${url}`;
  if (ALLOWED_HTTP_HOSTS.has(u.hostname) || /^127\.\d+\.\d+\.\d+$/.test(u.hostname)) return undefined;
  return `${u.hostname} is not a loopback, ECS or EKS Pod Identity address; plain http is refused there`;
}

/** Renew this long before the expiration, as the SDK does. */
const REFRESH_MARGIN_MS = 5 * 60 * 1000;
/**
 * One request's limit, not the store's --read-timeout (60 s by default): the endpoint is on the node
 * or in the task and answers at once, so one that hangs is cut off early and asked again per the policy.
 */
const TIMEOUT_MS = 5_000;

export class ContainerCredentialsProvider {
  private cached?: TemporaryCredentials;
  private pending?: Promise<TemporaryCredentials>;

  /** `retry`: the store's one retry policy (docs/architecture.md), so an endpoint that fails 5xx or not at all is retried with the same back-off as the store. */
  constructor(
    private readonly source: ContainerCredentialsSource,
    private readonly retry: Pick<RetryPolicy, 'maxAttempts' | 'baseDelayMs' | 'maxDelayMs'>,
  ) {}

  /** Cached credentials, fetched again when they are about to expire. */
  get(): Promise<TemporaryCredentials> {
    const c = this.cached;
    if (c && (!c.expiration || c.expiration.getTime() - Date.now() > REFRESH_MARGIN_MS)) return Promise.resolve(c);
    this.pending ??= this.fetch().finally(() => (this.pending = undefined));
    return this.pending;
  }

  /** For the SDK: an identity provider with the same cache. */
  readonly provider = (): Promise<TemporaryCredentials> => this.get();

  private token(): string | undefined {
    const file = this.source.authorizationTokenFile;
    if (file === undefined) return this.source.authorizationToken;
    try {
      const value = readFileSync(file, 'utf8').trim();
      registerSecret(value);
      return value;
    } catch (e) {
      throw new AccessDeniedError(
        `container credentials: cannot read the authorization token file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      );
    }
  }

  private async fetch(): Promise<TemporaryCredentials> {
    const refused = checkContainerEndpoint(this.source.url);
    if (refused) throw new AccessDeniedError(`container credentials endpoint: ${refused}`);
    const token = this.token();
    let last: Error | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        const { status, body } = await this.request(token);
        if (status === 200) return (this.cached = this.parse(body));
        const detail = body.replace(/\s+/g, ' ').trim().slice(0, 200);
        const error = new AccessDeniedError(
          `container credentials endpoint ${this.source.url} refused the request (HTTP ${status}${detail ? `: ${detail}` : ''})`,
        );
        if (status < 500) throw error;
        last = error;
      } catch (e) {
        if (e instanceof AccessDeniedError) throw e;
        last = e as Error;
      }
      log.debug(`container credentials: attempt ${attempt} failed: ${last.message}`);
      if (!(await pauseBeforeRetry(this.retry, attempt))) break;
    }
    throw last instanceof StorageError
      ? last
      : new AccessDeniedError(`container credentials endpoint ${this.source.url} unreachable: ${last?.message ?? 'no answer'}`);
  }

  private async request(token: string | undefined): Promise<{ status: number; body: string }> {
    const url = new URL(this.source.url);
    // Loaded on use: a WAL call with static credentials loads no node:http at all.
    const { request: requestFn } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    return new Promise((resolve, reject) => {
      const req = requestFn(url, { method: 'GET', headers: token ? { Authorization: token } : {}, timeout: TIMEOUT_MS }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
      req.on('error', reject);
      req.end();
    });
  }

  private parse(body: string): TemporaryCredentials {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(body) as Record<string, unknown>;
    } catch {
      throw new AccessDeniedError(`container credentials endpoint ${this.source.url} answered something that is not JSON`);
    }
    const { AccessKeyId, SecretAccessKey, Token, Expiration } = doc;
    if (typeof AccessKeyId !== 'string' || typeof SecretAccessKey !== 'string') {
      throw new AccessDeniedError(`container credentials endpoint ${this.source.url} answered without AccessKeyId / SecretAccessKey`);
    }
    registerSecret(SecretAccessKey);
    if (typeof Token === 'string') registerSecret(Token);
    const expiration = typeof Expiration === 'string' ? new Date(Expiration) : undefined;
    log.debug(`container credentials from ${this.source.url}${expiration ? `, valid until ${expiration.toISOString()}` : ''}`);
    return {
      accessKeyId: AccessKeyId,
      secretAccessKey: SecretAccessKey,
      sessionToken: typeof Token === 'string' ? Token : undefined,
      expiration: expiration && !Number.isNaN(expiration.getTime()) ? expiration : undefined,
    };
  }
}
