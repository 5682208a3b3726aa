// Which proxy an endpoint is reached through (src/storage/proxy.ts), as Python's urllib decides it
// for boto3: the variable for the endpoint's scheme, lower case first, and no_proxy's host rules.
import { describe, expect, it } from 'vitest';
import { proxyFor } from '../../src/storage/proxy.ts';
import { GeneralError } from '../../src/errors.ts';

describe('proxyFor', () => {
  it('takes the variable of the endpoint\'s scheme, the lower-case name first', () => {
    const env = { HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128', HTTP_PROXY: 'http://plain:8080' };
    expect(proxyFor('https://s3.eu-west-1.amazonaws.com', env)?.shown).toBe('http://lower:3128');
    expect(proxyFor('https://s3.eu-west-1.amazonaws.com', { HTTPS_PROXY: 'http://upper:3128' })?.shown).toBe('http://upper:3128');
    expect(proxyFor('http://minio.svc:9000', env)?.shown).toBe('http://plain:8080');
    expect(proxyFor('http://minio.svc:9000', { HTTPS_PROXY: 'http://upper:3128' })).toBeUndefined();
    expect(proxyFor('https://s3.amazonaws.com', { https_proxy: '' })).toBeUndefined();
  });

  it('reads host:port as an http:// proxy and keeps credentials out of what it shows', () => {
    expect(proxyFor('https://x.example', { https_proxy: 'proxy.corp:3128' })).toEqual({ url: 'http://proxy.corp:3128/', shown: 'http://proxy.corp:3128' });
    const p = proxyFor('https://x.example', { https_proxy: 'http://me:s%40cret@proxy.corp:3128' })!;
    expect(p.url).toContain('me:s%40cret@');
    expect(p.shown).toBe('http://proxy.corp:3128');
  });

  it('refuses schemes it cannot speak', () => {
    expect(() => proxyFor('https://x.example', { https_proxy: 'socks5://proxy:1080' })).toThrow(GeneralError);
    expect(() => proxyFor('https://x.example', { https_proxy: 'http://[bad' })).toThrow(GeneralError);
  });

  it('no_proxy: a host and the hosts under it, with or without a leading dot, an optional port, * for all', () => {
    const via = (endpoint: string, noProxy: string, name: 'no_proxy' | 'NO_PROXY' = 'no_proxy') =>
      proxyFor(endpoint, { https_proxy: 'http://p:1', http_proxy: 'http://p:1', [name]: noProxy }) !== undefined;
    expect(via('https://s3.example.com', 'example.com')).toBe(false);
    expect(via('https://s3.example.com', '.example.com')).toBe(false);
    expect(via('https://example.com', '.example.com')).toBe(false);
    expect(via('https://badexample.com', 'example.com')).toBe(true);
    expect(via('https://S3.Example.COM', 'example.com')).toBe(false);
    expect(via('https://s3.example.com', 'other.org, example.com')).toBe(false);
    expect(via('https://s3.example.com', 'example.com:443')).toBe(false);
    expect(via('https://s3.example.com', 'example.com:9000')).toBe(true);
    expect(via('http://minio:9000', 'minio:9000')).toBe(false);
    expect(via('http://10.0.0.5:9000', '10.0.0.5')).toBe(false);
    expect(via('https://s3.example.com', '*')).toBe(false);
    expect(via('https://s3.example.com', 'NO_PROXY.org', 'NO_PROXY')).toBe(true);
    expect(via('https://s3.example.com', 'example.com', 'NO_PROXY')).toBe(false);
    expect(via('https://[::1]:9000', '::1')).toBe(false);
    expect(via('https://s3.example.com', ' , ')).toBe(true);
  });
});
