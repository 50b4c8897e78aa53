import { cp, mkdir, readdir, readFile, realpath, symlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, pruneBackups } from '../src/index.js';
import { cli, json, STACK } from './helpers.js';

/**
 * B16: retention that cannot eat real backups. Real backups in a real backup dir; prune per
 * source, pre_restore_* apart, never the newest of a source whatever the clocks say, never a
 * damaged backup.
 */

const tempDir = useTempDir('dawn-backup-prune-');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function source(root: string, name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(join(dir, 'mesh'), { recursive: true });
  await writeFile(join(dir, 'mesh/peer_registry.json'), `{"version":1,"peers":[],"who":"${name}"}`);
  return dir;
}

const remaining = async (dir: string) => (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();

async function editMetadata(backup: string, patch: Record<string, unknown>): Promise<void> {
  const file = join(backup, '.backup_metadata.json');
  const meta = JSON.parse(await readFile(file, 'utf8'));
  await writeFile(file, JSON.stringify({ ...meta, ...patch }, null, 2));
}

describe('prune', () => {
  it('clock skew: a backup made while the clock ran ahead never gets the one made after it deleted (--keep-last 1)', async () => {
    const root = await tempDir();
    const src = await source(root, 'src');
    const backupDir = join(root, 'backups');
    const now = Date.now();
    await createBackup({ source: src, backupDir, name: 'old', now: new Date(now - 2 * DAY), fsync: false });
    await createBackup({ source: src, backupDir, name: 'ahead', now: new Date(now + DAY), fsync: false }); // clock a day ahead
    await createBackup({ source: src, backupDir, name: 'made_last', now: new Date(now), fsync: false }); // clock fixed
    const r = await cli(['prune', '--keep-last', '1', '--backup-dir', backupDir, '--json']);
    expect(r.code).toBe(0);
    const res = json(r);
    expect(res.removed.map((d: any) => d.name)).toEqual(['old']);
    expect(res.kept.find((d: any) => d.name === 'ahead').reasons).toContain('future');
    expect(res.kept.find((d: any) => d.name === 'made_last').reasons).toContain('latest-on-disk');
    expect(await remaining(backupDir)).toEqual(['ahead', 'made_last']);
  });

  it('clock skew that is over: the backup that appeared on disk last is still kept', async () => {
    const root = await tempDir();
    const src = await source(root, 'src');
    const backupDir = join(root, 'backups');
    const now = Date.now();
    // recorded times say "first" is newer, but "second" was made after it
    await createBackup({ source: src, backupDir, name: 'first', now: new Date(now - HOUR), fsync: false });
    await createBackup({ source: src, backupDir, name: 'second', now: new Date(now - 2 * HOUR), fsync: false });
    const res = await pruneBackups({ backupDir, keepLast: 1 });
    expect(res.removed).toEqual([]);
    expect(await remaining(backupDir)).toEqual(['first', 'second']);
  });

  it('a backup dir shared by two sources and two hosts: --keep-last 1 keeps the newest of each', async () => {
    const root = await tempDir();
    const s1 = await source(root, 'node1');
    const s2 = await source(root, 'node2');
    const backupDir = join(root, 'backups');
    const t = Date.now() - 10 * DAY;
    for (let i = 0; i < 4; i++) {
      await createBackup({ source: s1, backupDir, name: `n1_${i}`, now: new Date(t + i * DAY), fsync: false });
      await createBackup({ source: s2, backupDir, name: `n2_${i}`, now: new Date(t + i * DAY + HOUR), fsync: false });
    }
    // two more of "node1"'s path, made by another host into the same (shared) backup dir
    for (let i = 0; i < 2; i++) {
      await createBackup({ source: s1, backupDir, name: `other_host_${i}`, now: new Date(t + i * DAY + 2 * HOUR), fsync: false });
      await editMetadata(join(backupDir, `other_host_${i}`), { hostname: `not-${hostname()}` });
    }
    const dry = json(await cli(['prune', '--keep-last', '1', '--dry-run', '--json', '--backup-dir', backupDir]));
    expect(dry.kept.map((d: any) => d.name).sort()).toEqual(['n1_3', 'n2_3', 'other_host_1']);
    expect(await remaining(backupDir)).toHaveLength(10); // dry run: nothing removed
    const r = await cli(['prune', '--keep-last', '1', '--backup-dir', backupDir]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/node1/);
    expect(await remaining(backupDir)).toEqual(['n1_3', 'n2_3', 'other_host_1']);
  });

  it('Python backups belong to their recorded source, compared by real path', async () => {
    const root = await tempDir();
    const backupDir = join(root, 'backups');
    const real = join(root, 'real-source');
    await mkdir(real);
    await symlink(real, join(root, 'link-to-source'));
    await copyFixture('backups/dawn_backup_20261125_101500', join(backupDir, 'py_old'));
    await copyFixture('backups/dawn_backup_20261125_101500', join(backupDir, 'py_new'));
    await editMetadata(join(backupDir, 'py_old'), { source_dir: `${real}/`, timestamp: '2026-11-20T10:00:00.000000' });
    await editMetadata(join(backupDir, 'py_new'), { source_dir: join(root, 'link-to-source'), timestamp: '2026-11-21T10:00:00.000000' });
    const res = await pruneBackups({ backupDir, keepLast: 1, dryRun: true });
    expect(res.removed.map((d) => d.name)).toEqual(['py_old']);
    expect(res.kept[0]!.source).toBe(`?:${await realpath(real)}`);
  });

  it('many pre_restore_* backups never push real backups out; they follow their own policy', async () => {
    const root = await tempDir();
    const src = await source(root, 'src');
    const backupDir = join(root, 'backups');
    const now = Date.now();
    await createBackup({ source: src, backupDir, name: 'real_1', now: new Date(now - 40 * DAY), fsync: false });
    await createBackup({ source: src, backupDir, name: 'real_2', now: new Date(now - 39 * DAY), fsync: false });
    // eight restores since, one every 3 days, the last one 2 days ago
    for (let i = 0; i < 8; i++) {
      await createBackup({ source: src, backupDir, name: `pre_restore_${i}`, now: new Date(now - (23 - 3 * i) * DAY), fsync: false });
    }
    const r = json(await cli(['prune', '--keep-last', '2', '--json', '--backup-dir', backupDir]));
    expect(r.removed.map((d: any) => d.name).sort()).toEqual(['pre_restore_0', 'pre_restore_1', 'pre_restore_2']);
    expect(await remaining(backupDir)).toEqual(['pre_restore_3', 'pre_restore_4', 'pre_restore_5', 'pre_restore_6', 'pre_restore_7', 'real_1', 'real_2']);

    // explicit policy: the newest pre_restore_* plus those of the last 6 days (ages 2 and 5 days)
    const t = json(await cli(['prune', '--keep-last', '2', '--keep-pre-restore', '1', '--keep-pre-restore-days', '6', '--json', '--backup-dir', backupDir]));
    expect(t.kept.filter((d: any) => d.preRestore).map((d: any) => d.name)).toEqual(['pre_restore_7', 'pre_restore_6']);
    expect(await remaining(backupDir)).toEqual(['pre_restore_6', 'pre_restore_7', 'real_1', 'real_2']);
  });

  it('a damaged backup is never removed and never blocks the policy for the others', async () => {
    const root = await tempDir();
    const src = await source(root, 'src');
    const backupDir = join(root, 'backups');
    const now = Date.now();
    for (let i = 0; i < 3; i++) await createBackup({ source: src, backupDir, name: `b${i}`, now: new Date(now - (5 - i) * DAY), fsync: false });
    await cp(join(backupDir, 'b0'), join(backupDir, 'broken_json'), { recursive: true });
    await writeFile(join(backupDir, 'broken_json', '.backup_metadata.json'), '{"backup_name": ');
    await cp(join(backupDir, 'b0'), join(backupDir, 'wrong_types'), { recursive: true });
    await editMetadata(join(backupDir, 'wrong_types'), { created_at: 'yesterday', summary: [[[]]] });
    await mkdir(join(backupDir, 'no_metadata'));
    const r = await cli(['prune', '--keep-last', '1', '--backup-dir', backupDir]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout).toMatch(/skip\s+broken_json/);
    expect(await remaining(backupDir)).toEqual(['b2', 'broken_json', 'no_metadata', 'wrong_types']);
    const j = json(await cli(['prune', '--keep-last', '1', '--json', '--backup-dir', backupDir]));
    expect(j.damaged.map((d: any) => d.name)).toEqual(['broken_json', 'no_metadata', 'wrong_types']);
  });
});
