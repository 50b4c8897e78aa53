import { lstat, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { backupMeta, cli, json, makeRichTree, OWN_FILES, RICH_EXCLUDED, snapshot, without } from './helpers.js';

const tempDir = useTempDir('dawn-backup-rt-');

describe('round trip through the binary', () => {
  it('backs up the Python fixture data root and restores it identically (minus default excludes)', async () => {
    const root = await tempDir();
    const data = await copyFixture('data', join(root, '.project-dawn'));
    const env = { PROJECT_DAWN_DATA_ROOT: data };
    const b = await cli(['backup', '--json'], env);
    expect(b.code, b.stderr).toBe(0);
    const made = json(b);
    expect(made.name).toMatch(/^dawn_backup_\d{8}_\d{6}$/);
    expect(made.path).toBe(join(root, 'backups', made.name)); // <source>/../backups
    expect(made.summary).toEqual({ peerCount: 3, agentIds: ['coordinator', 'first_agent'], notes: [] });
    expect(made.fileCount).toBe(3); // logs/dawn.log excluded
    expect((await stat(join(root, 'backups'))).mode & 0o777).toBe(0o700);
    expect((await stat(made.path)).mode & 0o777).toBe(0o700);

    // metadata keeps the Python fields
    const meta = backupMeta(made.path);
    expect(meta).toMatchObject({ backup_name: made.name, source_dir: data, backup_dir: made.path, format_version: 2, file_count: 3 });
    expect(meta.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
    expect(meta.manifest.find((m: any) => m.path === 'mesh/peer_registry.json')).toMatchObject({ type: 'file', size: 1871, mode: '0644' });

    const v = await cli(['verify', made.name], env);
    expect(v.code, v.stderr).toBe(0);

    const target = join(root, 'restored');
    const r = await cli(['restore', made.name, '--target', target, '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ target, files: 3, verified: true, preRestoreBackup: null });
    expect(await snapshot(target)).toEqual(without(await snapshot(data), ['logs/dawn.log']));
    expect(await readdir(root)).toEqual(expect.arrayContaining(['.project-dawn', 'backups', 'restored']));
    expect((await readdir(root)).filter((n) => n.startsWith('.dawn-restore'))).toEqual([]);
  });

  it('lists and restores a Python backup after a warning that it has no checksums', async () => {
    const root = await tempDir();
    await copyFixture('backups', join(root, 'backups'));
    const name = 'dawn_backup_20261125_101500';
    const l = await cli(['list', '--backup-dir', join(root, 'backups'), '--json']);
    expect(l.code, l.stderr).toBe(0);
    const listed = json(l).backups;
    expect(listed).toHaveLength(1);
    expect(listed[0]).toMatchObject({ name, origin: 'python', checksums: false, sourceDir: '/home/dawn/.project-dawn', fileCount: 3 });
    expect(listed[0].summary.peerCount).toBe(3);

    const v = await cli(['verify', name, '--backup-dir', join(root, 'backups')]);
    expect(v.code).toBe(3);
    expect(v.stderr).toMatch(/no checksums/);

    const target = join(root, 'target');
    const r = await cli(['restore', name, '--backup-dir', join(root, 'backups'), '--target', target]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/warning: .*no checksums/);
    expect(await snapshot(target)).toEqual(without(await snapshot(join(root, 'backups', name)), OWN_FILES));
  });

  it('round-trips nested and empty dirs, unicode names, symlinks, modes (0600, 0755, 0700 dirs) and mtimes', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await makeRichTree(src);
    const backups = join(root, 'backups');
    const b = await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'rich', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(json(b).warnings).toEqual([]);
    // nothing in the backup is followed or excluded wrongly; symlinks stay links
    expect((await lstat(join(backups, 'rich', 'dir-link'))).isSymbolicLink()).toBe(true);
    expect((await readdir(join(backups, 'rich', 'mesh'))).sort()).toEqual(['peer_registry.json']);

    const target = join(root, 'restored');
    const r = await cli(['restore', 'rich', '--backup-dir', backups, '--target', target]);
    expect(r.code, r.stderr).toBe(0);
    const expected = without(await snapshot(src), RICH_EXCLUDED);
    expect(await snapshot(target)).toEqual(expected);
    expect(expected['keys/node.key']).toMatch(/^file 0600 /);
    expect(expected['private']).toBe('dir 0700');
    expect(expected['empty/nested/dirs']).toBe('dir 0755');
    expect(expected['dangling']).toBe('link does/not/exist');
    const [a, c] = await Promise.all([stat(join(src, 'tools/run.sh')), stat(join(target, 'tools/run.sh'))]);
    expect(Math.abs(a.mtimeMs - c.mtimeMs)).toBeLessThan(2);
    expect(await readdir(target)).not.toContain('.backup_metadata.json');
  });

  it('restoring over an existing target first saves it as pre_restore_*, which restores it back', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await makeRichTree(src);
    const backups = join(root, 'backups');
    expect((await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'one'])).code).toBe(0);
    const target = join(root, 'live');
    await copyFixture('data', target);
    const before = await snapshot(target);

    const r = await cli(['restore', 'one', '--backup-dir', backups, '--target', target, '--json', '--force']);
    expect(r.code, r.stderr).toBe(0);
    const saved = json(r).preRestoreBackup;
    expect(saved).toMatch(/^pre_restore_\d{8}_\d{6}$/);
    const l = json(await cli(['list', '--backup-dir', backups, '--json']));
    expect(l.backups.map((b: any) => b.name)).toContain(saved);

    // the safety backup keeps everything, logs included, and undoes the restore
    const undo = await cli(['restore', saved, '--backup-dir', backups, '--target', target, '--overwrite']);
    expect(undo.code, undo.stderr).toBe(0);
    expect(await snapshot(target)).toEqual(before);
  });
});
