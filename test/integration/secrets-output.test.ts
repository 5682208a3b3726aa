// Secrets never reach output (docs/configuration.md, rule 4): an endpoint URL may carry a user name
// and password (`--endpoint-url http://user:pass@host`, STORAGE_EMULATOR_HOST), and the commands
// print that endpoint in -vv lines and doctor's report. Each case runs the real executables against
// a real server (moto, our GCS server) or a closed port, with -vv, and looks for the password in
// everything they print.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runBin, type BinResult } from '../helpers/run-bin.ts';
import { createS3Bucket, freePort, startGcs, startMoto, type ServerHandle } from '../helpers/servers.ts';
import { MOTO_ENV } from '../helpers/moto.ts';

const PASSWORD = 'Ep-Passw0rd-7f3a';
const BUCKET = 'secrets';

/** `url` with `user:PASSWORD@` before its host. */
function withUserinfo(url: string): string {
  return url.replace('://', `://bc-user:${PASSWORD}@`);
}

function printed(r: BinResult): string {
  return `${r.stdout}\n${r.stderr}`;
}

describe('endpoint URLs with a password', () => {
  let moto: ServerHandle;
  let gcs: ServerHandle;

  beforeAll(async () => {
    [moto, gcs] = await Promise.all([startMoto(), startGcs()]);
    await createS3Bucket(moto.url, BUCKET);
  });
  afterAll(async () => {
    await Promise.all([moto?.stop(), gcs?.stop()]);
  });

  it('S3 --endpoint-url: not in -vv lines nor doctor, whether the endpoint answers or not', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    for (const endpoint of [moto.url, closed]) {
      const args = ['--endpoint-url', withUserinfo(endpoint), `s3://${BUCKET}/pg`, 'srv'];
      // AWS_CA_BUNDLE is set on these machines and by CloudNativePG; -vv says why it is not read over http.
      const env = cleanEnv({ ...MOTO_ENV, AWS_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt' });
      const list = await runBin('barman-cloud-backup-list', ['-vv', ...args], { env });
      expect(list.code, list.stderr).toBe(endpoint === moto.url ? 0 : 4);
      expect(list.stderr).toMatch(/DEBUG: AWS_CA_BUNDLE: .* not needed for http:\/\/\*\*\*@127\.0\.0\.1:/);
      const doctor = await runBin('barman-cloud', ['doctor', '--no-postgres', '-vv', ...args], { env, timeoutMs: 60_000 });
      expect(doctor.stdout).toMatch(/^ok +configuration: aws-s3, bucket secrets, path pg, endpoint http:\/\/\*\*\*@127\.0\.0\.1:/m);
      for (const r of [list, doctor]) expect(printed(r)).not.toContain(PASSWORD);
    }
  });

  it('GCS STORAGE_EMULATOR_HOST: not in doctor nor -vv lines', async () => {
    const env = cleanEnv({ STORAGE_EMULATOR_HOST: withUserinfo(gcs.url) });
    const args = ['--cloud-provider', 'google-cloud-storage', 'gs://no-such-bucket/pg', 'srv'];
    const doctor = await runBin('barman-cloud', ['doctor', '--no-postgres', '-vv', ...args], { env, timeoutMs: 60_000 });
    expect(doctor.stdout).toMatch(/^ok +configuration: google-cloud-storage, bucket no-such-bucket, path pg, endpoint http:\/\/\*\*\*@127\.0\.0\.1:/m);
    const list = await runBin('barman-cloud-backup-list', ['-vv', ...args], { env });
    expect(list.code).not.toBe(0);
    for (const r of [list, doctor]) expect(printed(r)).not.toContain(PASSWORD);
  });
});
