import { describe, expect, it } from 'vitest';
import { decodePartsList, encodePartsList } from '../../src/catalog/parts-list.js';

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
  ])('rejects %s', (_what, text) => {
    expect(() => decodePartsList(text, 'B')).toThrow(/invalid parts\.json for backup B/);
  });
});
