import { describe, expect, it } from 'vitest';
import { decodePartsList, encodePartsList, MAX_HEARTBEAT_SECONDS } from '../../src/catalog/parts-list.js';
import { ArgumentTypeError, parseHeartbeatSeconds } from '../../src/cli/types.js';
import { interruptedBackupInfo } from '../../src/backup/heartbeat.js';
import { newBackupInfo, parseBackupInfo, serializeBackupInfo } from '../../src/catalog/backup-info.js';

const sha = 'ab'.repeat(32);

describe('parts list', () => {
  it('round-trips', () => {
    const parts = [{ name: '16384.tar.lz4', size: 10, sha256: sha }, { name: 'data.tar.lz4', size: 0, sha256: sha }];
    const text = encodePartsList({ backupId: '20261203T010203', parts });
    expect(decodePartsList(text, '20261203T010203').parts).toEqual(parts);
  });

  it.each([
    ['not json', '{'],
    ['wrong version', JSON.stringify({ version: 2, backup_id: 'B', parts: [] })],
    ['other backup', JSON.stringify({ version: 1, backup_id: 'C', parts: [] })],
    ['path in name', JSON.stringify({ version: 1, backup_id: 'B', parts: [{ name: '../x.tar', size: 1, sha256: sha }] })],
    ['slash in name', JSON.stringify({ version: 1, backup_id: 'B', parts: [{ name: 'a/b.tar', size: 1, sha256: sha }] })],
    ['negative size', JSON.stringify({ version: 1, backup_id: 'B', parts: [{ name: 'data.tar', size: -1, sha256: sha }] })],
    ['short hash', JSON.stringify({ version: 1, backup_id: 'B', parts: [{ name: 'data.tar', size: 1, sha256: 'ab' }] })],
    ['duplicate', JSON.stringify({ version: 1, backup_id: 'B', parts: [{ name: 'data.tar', size: 1, sha256: sha }, { name: 'data.tar', size: 1, sha256: sha }] })],
    ['run record not an object', JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: 'x' })],
    ['heartbeat of zero seconds', JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: { heartbeat_seconds: 0, backup_info: '' } })],
    ['heartbeat over a day', JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: { heartbeat_seconds: 86_401, backup_info: '' } })],
    ['fractional heartbeat', JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: { heartbeat_seconds: 1.5, backup_info: '' } })],
    ['backup_info not text', JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: { heartbeat_seconds: 60, backup_info: 1 } })],
    ['backup_info over 1 MiB', JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: { heartbeat_seconds: 60, backup_info: 'x'.repeat((1 << 20) + 1) } })],
  ])('rejects %s', (_what, text) => {
    expect(() => decodePartsList(text, 'B')).toThrow(/invalid parts\.json for backup B/);
  });

  it('carries the run record of a running backup (docs/format.md#backup-heartbeat), which older readers ignore', () => {
    const run = { heartbeatSeconds: 300, backupInfo: 'status=STARTED\n' };
    const text = encodePartsList({ backupId: 'B', parts: [], run });
    expect(JSON.parse(text).run).toEqual({ heartbeat_seconds: 300, backup_info: 'status=STARTED\n' });
    expect(decodePartsList(text, 'B').run).toEqual(run);
    expect(decodePartsList(encodePartsList({ backupId: 'B', parts: [] }), 'B').run).toBeUndefined();
  });

  it('--heartbeat-interval accepts exactly what a run record may hold', () => {
    expect(parseHeartbeatSeconds(String(MAX_HEARTBEAT_SECONDS))).toBe(MAX_HEARTBEAT_SECONDS);
    expect(() => parseHeartbeatSeconds(String(MAX_HEARTBEAT_SECONDS + 1))).toThrow(ArgumentTypeError);
    expect(() => parseHeartbeatSeconds('0')).toThrow(ArgumentTypeError);
    const at = (s: number) => JSON.stringify({ version: 1, backup_id: 'B', parts: [], run: { heartbeat_seconds: s, backup_info: '' } });
    expect(decodePartsList(at(MAX_HEARTBEAT_SECONDS), 'B').run?.heartbeatSeconds).toBe(MAX_HEARTBEAT_SECONDS);
    expect(() => decodePartsList(at(MAX_HEARTBEAT_SECONDS + 1), 'B')).toThrow(/invalid run record/);
  });
});

describe('the backup.info of a run that died', () => {
  it('is the recorded one with status FAILED, the time of its last sign, and none of its end', () => {
    const recorded = serializeBackupInfo(newBackupInfo('B', {
      status: 'STARTED', server_name: 'cloud', begin_wal: '000000010000000000000003', begin_time: '2026-12-05 14:00:00.000000+00:00', timeline: 1,
      end_time: '2026-12-05 14:10:00.000000+00:00', end_wal: '000000010000000000000009', end_xlog: '0/9000100', end_offset: 256,
      backup_label: 'START WAL LOCATION: 0/3000028', systemid: '7000000000000000001',
    }));
    const info = parseBackupInfo(serializeBackupInfo(interruptedBackupInfo({ backupInfo: recorded }, new Date('2026-12-05T14:05:00Z'))));
    expect(info).toMatchObject({
      status: 'FAILED', error: 'failure uploading data (interrupted: no sign of life since 2026-12-05T14:05:00.000Z)',
      server_name: 'cloud', begin_wal: '000000010000000000000003', timeline: 1, systemid: '7000000000000000001',
      end_time: null, end_wal: null, end_xlog: null, end_offset: null, backup_label: null, copy_stats: null,
    });
    expect(info.begin_time).toMatch(/^2026-12-05 14:00:00/);
  });
});
