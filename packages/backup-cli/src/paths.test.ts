import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  defaultBackupDir,
  defaultBackupName,
  isoLocal,
  parseIsoLocal,
  preRestoreName,
  resolveDataRoot,
  validateBackupName,
} from './paths.js';

describe('validateBackupName', () => {
  it.each(['dawn_backup_20261125_101500', '007', 'nightly-1', 'données', 'a.b', 'x'.repeat(200)])('accepts %j', (name) => {
    expect(() => validateBackupName(name)).not.toThrow();
  });
  it.each(['', '../x', 'a/b', 'a\\b', '..', 'a..b', '.hidden', 'x'.repeat(201), 'a\u0000b', 'a\nb', 'list'])('rejects %j with INVALID_NAME', (name) => {
    expect(() => validateBackupName(name)).toThrow(expect.objectContaining({ code: 'INVALID_NAME' }));
  });
});

describe('names and timestamps', () => {
  const d = new Date(2026, 10, 25, 10, 15, 0, 234);
  it('default names are local time', () => {
    expect(defaultBackupName(d)).toBe('dawn_backup_20261125_101500');
    expect(preRestoreName(d)).toBe('pre_restore_20261125_101500');
  });
  it('isoLocal writes what Python isoformat() writes, and parses back', () => {
    expect(isoLocal(d)).toBe('2026-11-25T10:15:00.234000');
    expect(parseIsoLocal(isoLocal(d))).toBeCloseTo(d.getTime() / 1000, 3);
    // the fixture's timestamp (microseconds, local)
    expect(parseIsoLocal('2026-11-26T00:21:37.234654')).toBeCloseTo(new Date(2026, 10, 26, 0, 21, 37).getTime() / 1000 + 0.234654, 5);
    expect(parseIsoLocal('2026-11-26T00:21:37+00:00')).toBe(Date.UTC(2026, 10, 26, 0, 21, 37) / 1000);
    expect(parseIsoLocal('yesterday')).toBeUndefined();
  });
});

describe('resolveDataRoot / defaultBackupDir', () => {
  it('explicit, then PROJECT_DAWN_DATA_ROOT (~ expanded), then ~/.project-dawn', () => {
    expect(resolveDataRoot('/srv/dawn', { PROJECT_DAWN_DATA_ROOT: '/other' })).toBe('/srv/dawn');
    expect(resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '~/dawn' })).toBe(join(homedir(), 'dawn'));
    expect(resolveDataRoot(undefined, {})).toBe(join(homedir(), '.project-dawn'));
  });
  it('backups live beside the data root', () => {
    expect(defaultBackupDir('/home/dawn/.project-dawn')).toBe('/home/dawn/backups');
  });
});
