// Which members of a tablespace archive restore writes (docs/format.md#restore-tablespace-members):
// only version directories PG_<major>_<catalog version> and what is in them. The rule on the path
// components extraction resolves (src/backup/extract.ts memberPathComponents) and the tar type.
import { describe, expect, it } from 'vitest';
import { outsideVersionDirectory } from '../../src/backup/archive-identity.ts';
import { memberPathComponents } from '../../src/backup/extract.ts';

const why = (name: string, type = 'file') => outsideVersionDirectory(memberPathComponents(name), type);

describe('tablespace archive members', () => {
  it.each([
    ['PG_15_202209061', 'directory'],
    ['PG_15_202209061/', 'directory'],
    ['./PG_15_202209061/5/16385', 'file'],
    ['PG_15_202209061/5/16385', 'file'],
    ['PG_15_202209061/5/lnk', 'symlink'],
    ['PG_9.6_201608131/16384/1', 'file'],
    // an older cluster's directory, as barman's walk stores it after pg_upgrade
    ['PG_14_202107181/16384/1', 'file'],
  ])('%s (%s) is in a version directory', (name, type) => {
    expect(why(name, type)).toBeUndefined();
  });

  it.each([
    ['.', 'directory', 'it names the tablespace location itself'],
    ['./', 'directory', 'it names the tablespace location itself'],
    ['evil', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['.ssh/authorized_keys', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['PG_15_x/evil', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['PG_15_/evil', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['PG__202209061/evil', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['PG_15.6.1_202209061/evil', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['pg_15_202209061/evil', 'file', 'it is not in a version directory PG_<major>_<catalog version>'],
    ['PG_15_202209061', 'symlink', 'its version directory is stored as a symlink, not a directory'],
    ['PG_15_202209061', 'file', 'its version directory is stored as a file, not a directory'],
    ['PG_15_202209061', 'link', 'its version directory is stored as a link, not a directory'],
  ])('%s (%s) is refused: %s', (name, type, expected) => {
    expect(why(name, type)).toBe(expected);
  });
});
