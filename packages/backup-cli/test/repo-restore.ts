import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canMountTmpfs, copyDir, spawnNode, tmpfsSkipReason, withTinyFs } from '@dawn/test-utils';
import { expect, it } from 'vitest';
import { backupMeta, BIN, cli, json, makeManyFiles, makeRichTree, RICH_EXCLUDED, snapshot, without } from './helpers.js';
import { tamper, type RepoTarget } from './repo-scenarios.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const leftovers = async (dir: string) => (await readdir(dir).catch(() => [] as string[])).filter((n) => n.startsWith('.dawn-restore-') || n.startsWith('.dawn-pull-'));

/**
 * `restore --repo`: the restored tree is built straight from the repository's objects (each file
 * written once, no local copy of the backup), with every guarantee of a local restore.
 */
export function repoRestoreScenarios(tempDir: () => Promise<string>, target: RepoTarget): void {
  /** A rich data root backed up as b1 and pushed. */
  const setup = async (tag: string) => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeRichTree(data);
    const backups = join(root, 'backups');
    const env = { ...target.env(), PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: backups };
    const repo = target.url(tag);
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
    expect((await run(['init', '--repo', repo])).code).toBe(0);
    expect((await run(['push', '--repo', repo])).code).toBe(0);
    return { root, data, backups, env, repo, run, before: await snapshot(data) };
  };

  it('restore --repo on an empty machine: the tree as backed up, no local copy of the backup kept (the output says how to keep one)', async () => {
    const { root, repo, run, before } = await setup('rr-empty');
    const fresh = join(root, 'new-machine');
    const env2 = { PROJECT_DAWN_DATA_ROOT: join(fresh, 'data'), DAWN_BACKUP_DIR: join(fresh, 'backups') };
    const r = await run(['restore', 'latest', '--repo', repo], env2);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`Restored b1 from`);
    expect(r.stdout).toContain(`no local copy of the backup was kept; to keep one: dawn-backup pull b1 --repo`);
    expect(await snapshot(join(fresh, 'data'))).toEqual(without(before, RICH_EXCLUDED));
    // written once: no backup dir, no pulled backup, no staging left
    expect(await readdir(fresh)).toEqual(['data']);
    const j = json(await run(['restore', 'b1', '--repo', repo, '--target', join(fresh, 'again'), '--json'], env2));
    expect(j).toMatchObject({ name: 'b1', verified: true, preRestoreBackup: null, files: expect.any(Number) });
    expect(j.repo).toBeTruthy();
    expect(j.pulled).toBeUndefined();
  });

  it('restore --repo into an existing data root: the current data saved as pre_restore_*, the contents replaced', async () => {
    const { data, backups, repo, run, before } = await setup('rr-existing');
    await writeFile(join(data, 'keys/node.key'), 'changed since the backup\n');
    await writeFile(join(data, 'new-file.txt'), 'not in the backup');
    const changed = await snapshot(data);
    const r = await run(['restore', 'b1', '--repo', repo, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = json(r);
    expect(res.preRestoreBackup).toMatch(/^pre_restore_/);
    expect(without(await snapshot(data), RICH_EXCLUDED)).toEqual(without(before, RICH_EXCLUDED));
    // the pre_restore backup is whole and holds what was there
    expect((await run(['verify', res.preRestoreBackup])).code).toBe(0);
    const saved = await snapshot(join(backups, res.preRestoreBackup), ['.backup_metadata.json', '.backup_manifest.json']);
    expect(saved['keys/node.key']).toBe(changed['keys/node.key']);
    expect(saved['new-file.txt']).toBe(changed['new-file.txt']);
    expect((await readdir(backups)).sort()).toEqual(['b1', res.preRestoreBackup]);
    expect(await leftovers(join(data, '..'))).toEqual([]);
  });

  for (const [path, how] of [
    ['keys/node.key', 'damage'], // a blob inside a pack
    ['big.bin', 'damage'], // a large loose object, streamed into the staging tree before its hash is known
    ['big.bin', 'delete'],
  ] as const) {
    it(`a ${how === 'damage' ? 'damaged' : 'missing'} object (${path}): restore --repo exits 3 before anything local changes (target byte for byte, no pre_restore, no staging left)`, async () => {
      const s = await setup(`rr-${how}-${path.length}`);
      const { root, data, repo, run } = s;
      await writeFile(join(data, 'keys/node.key'), 'current data\n');
      const meta = backupMeta(join(root, 'backups', 'b1'));
      await tamper(repo, s.env, meta.manifest.find((m: any) => m.path === path).sha256, how);
      const whole = await snapshot(root);
      const r = await run(['restore', 'b1', '--repo', repo, '--json']);
      expect(r.code, r.stderr).toBe(3);
      const err = JSON.parse(r.stderr).error;
      expect(err.code).toBe('VERIFY_FAILED');
      expect(err.message).toContain(path);
      expect(await snapshot(root)).toEqual(whole); // the data root, the backups (no pre_restore), nothing beside
      expect(await leftovers(root)).toEqual([]);
      // on an empty machine too: nothing is left behind
      const fresh = join(root, 'fresh');
      expect((await run(['restore', 'b1', '--repo', repo, '--target', join(fresh, 'data'), '--backup-dir', join(fresh, 'backups')])).code).toBe(3);
      expect(await readdir(fresh).catch(() => [])).toEqual([]);
    });
  }

  it('restore --repo --include: only the contents it restores are read (a missing object elsewhere does not matter); --dry-run changes nothing', async () => {
    const s = await setup('rr-include');
    const { root, data, backups, repo, run, before } = s;
    const meta = backupMeta(join(backups, 'b1'));
    // the only copy of big.bin's content is gone: a restore that needed it would fail
    expect(await tamper(repo, s.env, meta.manifest.find((m: any) => m.path === 'big.bin').sha256, 'delete')).toBe('loose');
    await writeFile(join(data, 'keys/node.key'), 'changed\n');
    await writeFile(join(data, 'keys/extra'), 'not in the backup\n');
    await writeFile(join(data, 'tools/run.sh'), 'changed too, out of scope\n');
    const current = await snapshot(data);
    const plan = await run(['restore', 'b1', '--repo', repo, '--include', 'keys', '--dry-run', '--json']);
    expect(plan.code, plan.stderr).toBe(0);
    expect(json(plan)).toMatchObject({ include: ['keys'], replace: [expect.objectContaining({ path: 'keys/node.key' })], remove: [expect.objectContaining({ path: 'keys/extra' })], preRestore: true });
    expect(await snapshot(data)).toEqual(current);
    const r = await run(['restore', 'b1', '--repo', repo, '--include', 'keys', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ include: ['keys'], files: 1, removed: ['keys/extra'] });
    const after = await snapshot(data);
    expect(after['keys/node.key']).toBe(before['keys/node.key']);
    expect(after['keys/extra']).toBeUndefined();
    expect(after['tools/run.sh']).toBe(current['tools/run.sh']); // out of scope: untouched
    expect(after['big.bin']).toBe(current['big.bin']);
    expect(await leftovers(root)).toEqual([]);
    // the pre_restore backup holds the in-scope paths only
    const pre = json(r).preRestoreBackup;
    expect(Object.keys(await snapshot(join(backups, pre), ['.backup_metadata.json', '.backup_manifest.json'])).sort()).toEqual(['keys', 'keys/extra', 'keys/node.key']);
    // a full restore needs big.bin: exit 3, nothing changed
    const full = await run(['restore', 'b1', '--repo', repo]);
    expect(full.code).toBe(3);
    expect(await snapshot(data)).toEqual(after);
  });

  it.skipIf(!canMountTmpfs)(`a full disk while restore --repo writes (a large content streamed): NO_SPACE, exit 1, nothing left behind, no descriptor left to the GC ${tmpfsSkipReason}`, async () => {
    const { repo, run } = await setup('rr-full');
    await withTinyFs('2m', async (fs) => {
      // big.bin (3 MiB) does not fit
      const r = await run(['restore', 'b1', '--repo', repo, '--target', join(fs, 'data'), '--backup-dir', join(fs, 'backups'), '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('NO_SPACE');
      expect(r.stderr).not.toMatch(/garbage collection|Warning/);
      expect(await readdir(fs)).toEqual([]); // no target, no staging dir, no lock
    });
  });

  it('SIGKILL during restore --repo (6 kills): the target holds the old or the new data; the next run recovers and cleans as a local restore does', async () => {
    const root = await tempDir();
    const srcA = join(root, 'srcA');
    const srcB = join(root, 'srcB');
    await makeManyFiles(srcA, 1500, 'A');
    await makeManyFiles(srcB, 1000, 'B');
    const backups = join(root, 'backups');
    const repo = target.url('rr-kill');
    const env = { ...target.env(), DAWN_BACKUP_DIR: backups, PROJECT_DAWN_DATA_ROOT: '' };
    expect((await cli(['backup', '--source', srcB, '--name', 'B', '--quiet'], env)).code).toBe(0);
    expect((await cli(['init', '--repo', repo], env)).code).toBe(0);
    expect((await cli(['push', 'B', '--repo', repo], env)).code).toBe(0);
    const snapA = await snapshot(srcA);
    const snapB = await snapshot(srcB);
    const tgt = join(root, 'target');
    await copyDir(srcA, tgt);
    const t0 = performance.now();
    expect((await cli(['restore', 'B', '--repo', repo, '--target', join(root, 'scratch'), '--overwrite'], env)).code).toBe(0);
    const full = performance.now() - t0;
    const delays: number[] = [];
    for (let k = 0; k < 6; k++) {
      // from the start of the process to past its end (the work itself is the later part)
      const delay = Math.round(full * (0.3 + Math.random() * 0.9));
      delays.push(delay);
      const child = spawnNode(BIN, ['restore', 'B', '--repo', repo, '--target', tgt, '--force', ...(k % 3 === 2 ? ['--overwrite'] : [])], { env });
      const timer = sleep(delay).then(() => child.kill('SIGKILL'));
      await child.exited;
      await timer;
      const present = (await readdir(root)).includes('target');
      if (!present) {
        // killed between the two renames of the swap: both halves are beside it
        const beside = await leftovers(root);
        expect(beside.some((n) => n.endsWith('.old')) && beside.some((n) => n.endsWith('.new')), `delays ${delays}`).toBe(true);
        continue;
      }
      expect([snapA, snapB], `after a kill at ${delay} ms (delays ${delays})`).toContainEqual(await snapshot(tgt));
    }
    const last = await cli(['restore', 'B', '--repo', repo, '--target', tgt, '--force'], env);
    expect(last.code, last.stderr).toBe(0);
    expect(await snapshot(tgt)).toEqual(snapB);
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await readdir(backups)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(json(await cli(['list', '--backup-dir', backups, '--json'], env)).damaged).toEqual([]);
  }, 240_000);
}
