import * as fs from 'node:fs';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withLock } from '@dawn/atomic-json';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, restoreBackup } from '../src/index.js';
import { isAtomicJsonLockDir, LOCK_FRESH_MS, lockDirVerdict } from '../src/lockdir.js';
import { backupMeta } from './helpers.js';

const tempDir = useTempDir('dawn-backup-lockdirs-');

/** Make `path`'s mtime an hour old. */
const age = (path: string) => utimes(path, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));

const paths = (b: { path: string }) =>
  (backupMeta(b.path) as { manifest: { path: string }[] }).manifest.map((m) => m.path);

describe('only real atomic-json lock directories are left out; every other *.lock directory is data', () => {
  it('the rule: empty, and beside its file or fresh', () => {
    const now = 1_000_000_000;
    expect(lockDirVerdict({ empty: true, siblingIsFile: true, mtimeMs: now - 3_600_000 }, now)).toBe(true);
    expect(lockDirVerdict({ empty: true, siblingIsFile: false, mtimeMs: now - 1000 }, now)).toBe(true);
    expect(lockDirVerdict({ empty: true, siblingIsFile: false, mtimeMs: now - LOCK_FRESH_MS - 1 }, now)).toBe(false);
    expect(lockDirVerdict({ empty: false, siblingIsFile: true, mtimeMs: now }, now)).toBe(false);
  });

  it('an old empty empty.lock/ with no sibling survives backup -> restore and is saved by pre_restore; a stale state.json.lock/ beside state.json and a held lock are left out', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    const backups = join(root, 'backups');
    await mkdir(join(src, 'empty.lock'), { recursive: true });
    await mkdir(join(src, 'mesh/state.json.lock'), { recursive: true });
    await mkdir(join(src, 'Cargo.lock'), { recursive: true });
    await writeFile(join(src, 'Cargo.lock/x'), 'x');
    await writeFile(join(src, 'mesh/state.json'), '{}\n');
    await writeFile(join(src, 'agents.json'), '[]\n');
    await age(join(src, 'empty.lock'));
    await age(join(src, 'mesh/state.json.lock'));
    expect(await isAtomicJsonLockDir(join(src, 'empty.lock'))).toBe(false);
    expect(await isAtomicJsonLockDir(join(src, 'mesh/state.json.lock'))).toBe(true);

    // A real lock, held (in-process withLock of @dawn/atomic-json) while the backup runs.
    const b = await withLock(join(src, 'agents.json'), async () => {
      expect(fs.statSync(join(src, 'agents.json.lock')).isDirectory()).toBe(true);
      return createBackup({ source: src, backupDir: backups, name: 'one', fsync: false });
    });
    const inBackup = paths(b);
    expect(inBackup).toContain('empty.lock');
    expect(inBackup).toContain('Cargo.lock/x');
    expect(inBackup).not.toContain('mesh/state.json.lock');
    expect(inBackup).not.toContain('agents.json.lock');
    expect(b.warnings).toEqual([]);

    // Restore into a fresh target: empty.lock/ is back.
    const target = join(root, 'target');
    await restoreBackup({ name: 'one', backupDir: backups, target, fsync: false, force: true });
    expect(fs.statSync(join(target, 'empty.lock')).isDirectory()).toBe(true);
    expect(fs.readdirSync(join(target, 'empty.lock'))).toEqual([]);
    expect(fs.existsSync(join(target, 'mesh/state.json.lock'))).toBe(false);

    // The target's own old empty foo.lock/ (not in the backup) is saved by pre_restore, not lost silently.
    await mkdir(join(target, 'foo.lock'));
    await age(join(target, 'foo.lock'));
    const r = await restoreBackup({ name: 'one', backupDir: backups, target, fsync: false, force: true });
    expect(r.preRestoreBackup).not.toBeNull();
    expect(paths({ path: join(backups, r.preRestoreBackup!) })).toContain('foo.lock');
  });

  it('restore keeps an excluded *.lock directory that is data (an old backup\'s `*.lock` pattern), never a real lock', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    const backups = join(root, 'backups');
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'data.json'), '{}\n');
    await createBackup({ source: src, backupDir: backups, name: 'old', fsync: false, exclude: '*.lock' });
    const target = src;
    await mkdir(join(target, 'user.lock'));
    await writeFile(join(target, 'user.lock/notes.txt'), 'mine\n');
    await mkdir(join(target, 'data.json.lock'));
    await age(join(target, 'data.json.lock'));
    const r = await restoreBackup({ name: 'old', backupDir: backups, target, fsync: false, overwrite: true });
    expect(r.kept).toEqual(['user.lock']);
    expect(fs.readFileSync(join(target, 'user.lock/notes.txt'), 'utf8')).toBe('mine\n');
    expect(fs.existsSync(join(target, 'data.json.lock'))).toBe(false);
  });

  it('a held lock makes restore refuse (TARGET_IN_USE); a stale one beside its file does not', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    const backups = join(root, 'backups');
    await mkdir(join(src, 'mesh'), { recursive: true });
    await writeFile(join(src, 'mesh/peer_registry.json'), '{}\n');
    await createBackup({ source: src, backupDir: backups, name: 'b', fsync: false });
    await withLock(join(src, 'mesh/peer_registry.json'), async () => {
      await expect(restoreBackup({ name: 'b', backupDir: backups, target: src, fsync: false })).rejects.toMatchObject({ code: 'TARGET_IN_USE' });
    });
    await mkdir(join(src, 'mesh/peer_registry.json.lock'));
    await age(join(src, 'mesh/peer_registry.json.lock'));
    const r = await restoreBackup({ name: 'b', backupDir: backups, target: src, fsync: false });
    expect(r.files).toBe(1);
    expect(fs.existsSync(join(src, 'mesh/peer_registry.json.lock'))).toBe(false);
  });
});

describe('a lock released and taken again back to back while the walk looks at it', () => {
  it('is never taken for data (a real child process churns `x.lock` with rmdir/mkdir; 300 walks)', async () => {
    const { walkTree } = await import('../src/walk.js');
    const { spawn } = await import('node:child_process');
    const dir = await tempDir();
    await writeFile(join(dir, 'x'), '{}');
    const lock = join(dir, 'x.lock');
    // A writer's lock cycle with no pause: the directory is gone for an instant, then back.
    const churn = spawn(process.execPath, ['-e', `const fs=require('fs');for(;;){try{fs.mkdirSync(${JSON.stringify(lock)})}catch{}try{fs.rmdirSync(${JSON.stringify(lock)})}catch{}}`], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 100));
      let kept = 0;
      for (let i = 0; i < 300; i++) {
        const w = await walkTree(dir, { skipLockDirs: true, confined: true });
        if (w.entries.some((e) => String(e.rel) === 'x.lock' || (Buffer.isBuffer(e.rel) && e.rel.toString() === 'x.lock'))) kept++;
      }
      expect(kept).toBe(0);
    } finally {
      churn.kill('SIGKILL');
    }
  }, 60_000);
});
