import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import {
  BackupError,
  createBackup,
  listBackups,
  pruneBackups,
  recoverInterruptedRestores,
  restoreBackup,
  showBackup,
  verifyBackup,
  type ProgressEvent,
} from '../src/index.js';
import { restoreTempPaths } from '../src/recover.js';
import { makeRichTree, snapshot } from './helpers.js';

const tempDir = useTempDir('dawn-backup-api-');
const DEAD_PID = 99_999_999; // above any pid_max: kill(pid, 0) says ESRCH

/** Temp dir names of a restore of `target` as a dead process would have left them. */
function deadTemps(target: string) {
  const { newDir, oldDir } = restoreTempPaths(target);
  const dead = (p: string) => p.replace(`-${process.pid}-`, `-${DEAD_PID}-`);
  return { newDir: dead(newDir), oldDir: dead(oldDir) };
}

describe('the functions, as the benchmark and other programs use them', () => {
  it('createBackup / verifyBackup / restoreBackup / listBackups / showBackup / pruneBackups', async () => {
    const root = await tempDir();
    const source = join(root, 'src');
    await makeRichTree(source);
    const backupDir = join(root, 'backups');
    const events: ProgressEvent[] = [];
    const b = await createBackup({ source, backupDir, name: 'api', exclude: 'deep', onProgress: (e) => events.push(e) });
    expect(b.path).toBe(join(backupDir, 'api'));
    expect(b.excludes).toContain('deep');
    expect(b.checksums).toBe(true);
    expect(events.filter((e) => e.phase === 'copy').at(-1)).toMatchObject({ files: b.fileCount, totalFiles: b.fileCount });
    expect(events.at(-1)?.phase).toBe('sync'); // then the tree is flushed to disk

    expect(await verifyBackup({ backupDir, name: 'api' })).toMatchObject({ status: 'ok', ok: true, files: b.fileCount });
    expect((await showBackup({ backupDir, name: 'api', manifest: true })).manifest?.length).toBeGreaterThan(b.fileCount!);
    expect((await listBackups({ backupDir })).backups.map((x) => x.name)).toEqual(['api']);

    const target = join(root, 'restored');
    const r = await restoreBackup({ backupDir, name: 'api', target, overwrite: true });
    expect(r).toMatchObject({ target, files: b.fileCount, verified: true, preRestoreBackup: null });
    expect((await snapshot(target))['deep']).toBeUndefined();

    const p = await pruneBackups({ backupDir, keepLast: 0, dryRun: true });
    expect(p.kept.map((d) => d.name)).toEqual(['api']);
    await expect(pruneBackups({ backupDir })).rejects.toSatisfy((e) => BackupError.is(e) && e.code === 'INVALID_OPTION');
  });

  it('the next backup removes the leftovers of dead runs, never those of live ones', async () => {
    const root = await tempDir();
    const source = await copyFixture('data', join(root, 'data'));
    const backupDir = join(root, 'backups');
    await mkdir(join(backupDir, `.x.partial-${DEAD_PID}-deadbeef`), { recursive: true });
    await writeFile(join(backupDir, `.x.partial-${DEAD_PID}-deadbeef`, 'half'), 'x');
    await mkdir(join(backupDir, `.y.partial-${process.pid}-cafebabe`));
    const b = await createBackup({ source, backupDir, name: 'x' }); // the dead run's name is free
    expect(b.cleanedLeftovers).toEqual([`.x.partial-${DEAD_PID}-deadbeef`]);
    expect((await readdir(backupDir)).sort()).toEqual([`.y.partial-${process.pid}-cafebabe`, 'x']);
  });
});

describe('recoverInterruptedRestores: every state a killed restore can leave', () => {
  async function setup() {
    const root = await tempDir();
    const target = join(root, 'data');
    const { newDir, oldDir } = deadTemps(target);
    const tree = async (dir: string, tag: string) => {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'tag'), tag);
    };
    return { root, target, newDir, oldDir, tree };
  }

  it('.new only (killed while building): removed, target untouched', async () => {
    const { root, target, newDir, tree } = await setup();
    await tree(target, 'old');
    await tree(newDir, 'new');
    const r = await recoverInterruptedRestores(target);
    expect(r.actions).toHaveLength(1);
    expect(await readdir(root)).toEqual(['data']);
    expect(await snapshot(target)).toEqual({ tag: expect.stringMatching(/^file/) });
  });

  it('.old + .new, no target (killed between the renames): the restored tree is moved in', async () => {
    const { root, target, newDir, oldDir, tree } = await setup();
    await tree(oldDir, 'old');
    await tree(newDir, 'new');
    await recoverInterruptedRestores(target);
    expect(await readdir(root)).toEqual(['data']);
    expect(await readFile(join(target, 'tag'), 'utf8')).toBe('new');
  });

  it('.old next to a target (killed while deleting the old data): .old removed', async () => {
    const { root, target, oldDir, tree } = await setup();
    await tree(target, 'new');
    await tree(oldDir, 'old');
    await recoverInterruptedRestores(target);
    expect(await readdir(root)).toEqual(['data']);
  });

  it('.old alone, no target: moved back', async () => {
    const { root, target, oldDir, tree } = await setup();
    await tree(oldDir, 'old');
    await recoverInterruptedRestores(target);
    expect(await readdir(root)).toEqual(['data']);
  });

  it('.old + .new + a new target: nothing touched, a warning', async () => {
    const { root, target, newDir, oldDir, tree } = await setup();
    await tree(target, 'other');
    await tree(oldDir, 'old');
    await tree(newDir, 'new');
    const r = await recoverInterruptedRestores(target);
    expect(r.warnings).toHaveLength(1);
    expect((await readdir(root)).length).toBe(3);
  });

  it('a backup of a data root caught between the two renames completes the swap first', async () => {
    const { root, target, newDir, oldDir, tree } = await setup();
    await tree(oldDir, 'old');
    await tree(newDir, 'new');
    const b = await createBackup({ source: target, backupDir: join(root, 'backups'), name: 'after' });
    expect(b.warnings.join()).toMatch(/recovered/);
    expect(await readFile(join(b.path, 'tag'), 'utf8')).toBe('new');
    expect((await readdir(root)).sort()).toEqual(['backups', 'data']);
  });

  it('leftovers of a live process are left alone', async () => {
    const { root, target, tree } = await setup();
    const live = restoreTempPaths(target);
    await tree(target, 'old');
    await tree(live.newDir, 'new');
    expect(await recoverInterruptedRestores(target)).toEqual({ actions: [], warnings: [] });
    expect((await readdir(root)).length).toBe(2);
  });
});
