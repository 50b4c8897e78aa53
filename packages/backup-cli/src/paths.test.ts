import { mkdir, symlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import {
  defaultBackupDir,
  isPathInside,
  realPathOf,
  relatePaths,
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

describe('realPathOf / relatePaths: containment by real paths', () => {
  const tempDir = useTempDir('dawn-paths-');

  it('resolves the deepest existing ancestor and re-appends the rest', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'real/backups'), { recursive: true });
    await symlink(join(root, 'real'), join(root, 'link'));
    expect(await realPathOf(join(root, 'link/backups/not/yet'))).toBe(join(root, 'real/backups/not/yet'));
    expect(await realPathOf(join(root, 'link'))).toBe(join(root, 'real'));
    expect(await realPathOf(join(root, 'missing/../real'))).toBe(join(root, 'real'));
  });

  it('classifies same / inside / contains / apart, through symlinked parents and grandparents', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'bk/sub'), { recursive: true });
    await mkdir(join(root, 'other'), { recursive: true });
    await symlink(join(root, 'bk'), join(root, 'to-bk'));
    await symlink(join(root, 'bk/sub'), join(root, 'other/to-sub'));
    await symlink(join(root, 'other'), join(root, 'to-other'));
    const bk = join(root, 'bk');
    expect((await relatePaths(join(root, 'to-bk'), bk)).relation).toBe('same');
    expect((await relatePaths(join(root, 'to-bk/t'), bk)).relation).toBe('inside');
    expect((await relatePaths(join(root, 'to-other/to-sub/new/t'), bk)).relation).toBe('inside'); // grandparent link
    expect((await relatePaths(root, join(root, 'to-bk'))).relation).toBe('contains');
    expect((await relatePaths(join(root, 'other'), bk)).relation).toBe('apart');
    expect((await relatePaths(join(root, 'bk-sibling'), bk)).relation).toBe('apart'); // a name prefix is not containment
  });

  it('isPathInside is not fooled by names starting with ".."', () => {
    expect(isPathInside('/a/..b', '/a')).toBe(true);
    expect(isPathInside('/b', '/a')).toBe(false);
    expect(isPathInside('/a', '/a')).toBe(true);
  });
});
