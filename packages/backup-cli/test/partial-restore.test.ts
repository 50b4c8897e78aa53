import { chmod, lstat, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { canMountTmpfs, copyDir, spawnNode, tmpfsSkipReason, useTempDir, withTinyFs } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { BackupError, createBackup, listBackups, planRestore, restoreBackup, verifyBackup } from '../src/index.js';
import { BIN, cli, json, makeManyFiles, OWN_FILES, snapshot } from './helpers.js';

const tempDir = useTempDir('dawn-backup-partial-');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function file(root: string, rel: string, content: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(join(root, rel)), { recursive: true });
  await writeFile(join(root, rel), content);
  await chmod(join(root, rel), mode);
}

/** A node: two agents, a registry, logs; backed up as `v1`, then changed (the live state). */
async function setup() {
  const root = await tempDir();
  const data = join(root, 'data');
  const backups = join(root, 'backups');
  await file(data, 'mesh/peer_registry.json', '{"version": 1, "peers": ["n1"]}');
  await file(data, 'agents/first_agent/state.json', '{"n": 1}');
  await file(data, 'agents/first_agent/memory/m1.json', '{"m": 1}');
  await file(data, 'agents/first_agent/gone_later.json', 'was there', 0o600);
  await file(data, 'agents/second/state.json', '{"s": 1}');
  await file(data, 'agents/first_agent/agent.log', 'log v1');
  await createBackup({ source: data, backupDir: backups, name: 'v1', fsync: false });
  const v1 = await snapshot(data);
  // the live node moves on
  await file(data, 'mesh/peer_registry.json', '{"version": 1, "peers": ["n1", "n2"]}');
  await file(data, 'agents/first_agent/state.json', '{"n": 2}', 0o600);
  await file(data, 'agents/first_agent/memory/m2.json', '{"m": 2}');
  await rm(join(data, 'agents/first_agent/gone_later.json'));
  await file(data, 'agents/second/state.json', '{"s": 2}');
  await file(data, 'agents/first_agent/agent.log', 'log v2');
  await file(data, 'agents/third/state.json', '{"t": 1}');
  const v2 = await snapshot(data);
  return { root, data, backups, v1, v2 };
}

/** Entries of a snapshot whose path `pick` selects. */
const part = (snap: Record<string, string>, pick: (p: string) => boolean) => Object.fromEntries(Object.entries(snap).filter(([p]) => pick(p)));
const inAgent = (p: string) => p === 'agents/first_agent' || p.startsWith('agents/first_agent/');
const isLog = (p: string) => p.endsWith('.log');

describe('restore --include (partial restore)', () => {
  it("restores one agent: its paths equal the backup's (logs kept), everything else untouched; the pre_restore_ backup holds exactly its old paths and undoes it", async () => {
    const { data, backups, v1, v2 } = await setup();
    const r = await restoreBackup({ name: 'v1', backupDir: backups, target: data, include: ['agents/first_agent/**'], fsync: false });
    expect(r.include).toEqual(['agents/first_agent/**']);
    expect(r.removed).toEqual(['agents/first_agent/memory/m2.json']);
    expect(r.kept).toEqual(['agents/first_agent/agent.log']);
    const now = await snapshot(data);
    expect(part(now, (p) => inAgent(p) && !isLog(p))).toEqual(part(v1, (p) => inAgent(p) && !isLog(p)));
    expect(part(now, (p) => !inAgent(p) || isLog(p))).toEqual(part(v2, (p) => !inAgent(p) || isLog(p)));
    expect(await readFile(join(data, 'agents/first_agent/agent.log'), 'utf8')).toBe('log v2');

    // the safety backup: a normal, verifiable backup of exactly the replaced/removed paths
    expect(r.preRestoreBackup).toMatch(/^pre_restore_/);
    const pre = r.preRestoreBackup!;
    expect((await verifyBackup({ name: pre, backupDir: backups })).ok).toBe(true);
    const saved = await snapshot(join(backups, pre), OWN_FILES);
    expect(Object.keys(saved).sort()).toEqual(['agents', 'agents/first_agent', 'agents/first_agent/memory', 'agents/first_agent/memory/m1.json', 'agents/first_agent/memory/m2.json', 'agents/first_agent/state.json']);
    const listed = await listBackups({ backupDir: backups });
    expect(listed.damaged).toEqual([]);
    expect(listed.backups.map((b) => b.name)).toContain(pre);

    // restoring it undoes the partial restore, and only that
    const undo = await restoreBackup({ name: pre, backupDir: backups, target: data, fsync: false });
    expect(undo.include).toEqual(['agents/first_agent/**']);
    expect(await snapshot(data)).toEqual(v2);
  });

  it('--include of one file through the CLI; a pattern without "/" matches a name at any depth', async () => {
    const { data, backups, v1, v2 } = await setup();
    const r = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'mesh/peer_registry.json', '--no-fsync', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).files).toBe(1);
    const now = await snapshot(data);
    expect(now['mesh/peer_registry.json']).toBe(v1['mesh/peer_registry.json']);
    expect(part(now, (p) => p !== 'mesh/peer_registry.json')).toEqual(part(v2, (p) => p !== 'mesh/peer_registry.json'));

    // state.json at any depth (two --include: one array); third has no state in the backup: removed
    const r2 = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'state.json', '--include', 'm1.json', '--no-fsync', '--json']);
    expect(r2.code, r2.stderr).toBe(0);
    expect(json(r2).removed).toEqual(['agents/third/state.json']);
    const after = await snapshot(data);
    for (const p of ['agents/first_agent/state.json', 'agents/second/state.json', 'agents/first_agent/memory/m1.json']) expect(after[p]).toBe(v1[p]);
    expect(after['agents/third/state.json']).toBeUndefined();
    expect(after['agents/third']).toBe(v2['agents/third']); // the directory is not selected: it stays
    expect(after['agents/first_agent/memory/m2.json']).toBe(v2['agents/first_agent/memory/m2.json']);
  });

  it('an include that selects nothing in the backup: exit 2 before anything changes (no pre_restore_ backup)', async () => {
    const { data, backups, v2 } = await setup();
    const before = await readdir(backups);
    const r = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'agents/nobody/**', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr).error.code).toBe('INVALID_OPTION');
    expect(JSON.parse(r.stderr).error.message).toMatch(/match nothing in backup "v1"/);
    expect(await snapshot(data)).toEqual(v2);
    expect(await readdir(backups)).toEqual(before);
    await expect(restoreBackup({ name: 'v1', backupDir: backups, target: data, include: [] })).rejects.toMatchObject({ code: 'INVALID_OPTION' });
  });

  it('verifies the selected files first: a damaged one refuses the restore (exit 3), target untouched; damage elsewhere in the backup does not matter', async () => {
    const { data, backups, v2 } = await setup();
    await chmod(join(backups, 'v1/agents/second/state.json'), 0o644);
    await writeFile(join(backups, 'v1/agents/second/state.json'), '{"s": 9}');
    const bad = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'agents/second/**', '--json']);
    expect(bad.code).toBe(3);
    expect(JSON.parse(bad.stderr).error.code).toBe('VERIFY_FAILED');
    expect(await snapshot(data)).toEqual(v2);
    expect((await readdir(backups)).filter((n) => n !== 'v1')).toEqual([]);
    expect((await readdir(dirname(data))).filter((n) => n.startsWith('.dawn-restore-'))).toEqual([]);
    const ok = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'mesh/', '--no-fsync']);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('never writes through a symlink: a directory on the way that is a symlink in the target is refused (TARGET_INVALID), nothing written outside', async () => {
    const { root, data, backups } = await setup();
    const outside = join(root, 'outside');
    await mkdir(outside);
    await rm(join(data, 'agents/second'), { recursive: true });
    await symlink(outside, join(data, 'agents/second'));
    const r = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'agents/second/state.json', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('TARGET_INVALID');
    expect(await readdir(outside)).toEqual([]);
    // selecting the link itself replaces the link (never what it points to)
    const r2 = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'agents/second', '--no-fsync']);
    expect(r2.code, r2.stderr).toBe(0);
    expect((await lstat(join(data, 'agents/second'))).isDirectory()).toBe(true);
    expect(await readFile(join(data, 'agents/second/state.json'), 'utf8')).toBe('{"s": 1}');
    expect(await readdir(outside)).toEqual([]);
  });

  it('type changes: a file where the backup has a directory, a directory where it has a file', async () => {
    const { data, backups, v1 } = await setup();
    await rm(join(data, 'agents/first_agent/memory'), { recursive: true });
    await writeFile(join(data, 'agents/first_agent/memory'), 'now a file');
    await rm(join(data, 'agents/first_agent/state.json'));
    await file(data, 'agents/first_agent/state.json/inner.json', '{}');
    const r = await restoreBackup({ name: 'v1', backupDir: backups, target: data, include: ['agents/first_agent'], fsync: false });
    expect(part(await snapshot(data), (p) => inAgent(p) && !isLog(p))).toEqual(part(v1, (p) => inAgent(p) && !isLog(p)));
    const saved = await snapshot(join(backups, r.preRestoreBackup!), OWN_FILES);
    expect(saved['agents/first_agent/memory']).toMatch(/^file /);
    expect(saved['agents/first_agent/state.json/inner.json']).toMatch(/^file /);
  });

  it('refuses another source and a live node unless --force, like a full restore; --overwrite makes no pre_restore_ backup', async () => {
    const { root, data, backups } = await setup();
    const other = join(root, 'other');
    await file(other, 'x.json', '{}');
    const mismatch = await cli(['restore', 'v1', '--backup-dir', backups, '--target', other, '--include', 'mesh/**', '--json']);
    expect(JSON.parse(mismatch.stderr).error.code).toBe('SOURCE_MISMATCH');
    await mkdir(join(data, 'mesh/peer_registry.json.lock'));
    const live = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'mesh/**', '--json']);
    expect(JSON.parse(live.stderr).error.code).toBe('TARGET_IN_USE');
    const old = new Date(Date.now() - 120_000);
    await utimes(join(data, 'mesh/peer_registry.json.lock'), old, old);
    await rm(join(data, 'mesh/peer_registry.json.lock'), { recursive: true });
    const forced = await cli(['restore', 'v1', '--backup-dir', backups, '--target', other, '--include', 'mesh/**', '--force', '--overwrite', '--no-fsync', '--json']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(json(forced).preRestoreBackup).toBeNull();
    expect(await readFile(join(other, 'mesh/peer_registry.json'), 'utf8')).toBe('{"version": 1, "peers": ["n1"]}');
    expect(await readFile(join(other, 'x.json'), 'utf8')).toBe('{}');
    expect(await readdir(backups)).toEqual(['v1']);
  });

  it.skipIf(process.getuid?.() !== 0)("run as root: a replaced file keeps its owner, a new one gets the target's owner", async () => {
    const { data, backups } = await setup();
    const { chown } = await import('node:fs/promises');
    await chown(data, 4321, 4321);
    await chown(join(data, 'agents/first_agent/state.json'), 1234, 1234);
    await restoreBackup({ name: 'v1', backupDir: backups, target: data, include: ['agents/first_agent/**'], fsync: false });
    expect((await lstat(join(data, 'agents/first_agent/state.json'))).uid).toBe(1234);
    expect((await lstat(join(data, 'agents/first_agent/gone_later.json'))).uid).toBe(4321);
    expect((await lstat(join(data, 'agents/first_agent/gone_later.json'))).mode & 0o777).toBe(0o600);
  });

  it.skipIf(!canMountTmpfs)(`a full disk while staging is NO_SPACE (exit 1): the target unchanged, no litter ${tmpfsSkipReason}`, async () => {
    const root = await tempDir();
    const backups = join(root, 'backups');
    await withTinyFs('1m', async (fs) => {
      const data = join(fs, 'data');
      await file(data, 'agents/a/state.json', '{"v": 1}');
      await file(data, 'agents/a/big.bin', 'x'.repeat(600 * 1024));
      await createBackup({ source: data, backupDir: backups, name: 'b', fsync: false });
      await file(data, 'agents/a/state.json', '{"v": 2}');
      await file(data, 'agents/a/big.bin', 'y'.repeat(600 * 1024)); // 1.2 MB with the staged copy: does not fit
      const before = await snapshot(data);
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--include', 'agents/a/**', '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('NO_SPACE');
      expect(await snapshot(data)).toEqual(before);
      expect(await readdir(fs)).toEqual(['data']); // no staging dir, no lock left
      expect((await readdir(backups)).filter((n) => n !== 'b')).toEqual([]);
    });
  });

  it('restores names that are not UTF-8, by their bytes', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const backups = join(root, 'backups');
    await file(data, 'agents/a/state.json', '1');
    const odd = Buffer.concat([Buffer.from(`${data}/agents/a/`), Buffer.from([0x66, 0xff, 0x2e, 0x6a])]);
    await writeFile(odd, 'odd v1');
    await createBackup({ source: data, backupDir: backups, name: 'b', fsync: false });
    await writeFile(odd, 'odd v2');
    await restoreBackup({ name: 'b', backupDir: backups, target: data, include: ['agents/a/**'], fsync: false });
    expect(await readFile(odd, 'utf8')).toBe('odd v1');
  });
});

describe('restore --dry-run', () => {
  it('lists what would be replaced, added, removed and kept, and changes nothing (no pre_restore_, no lock left)', async () => {
    const { root, data, backups, v2 } = await setup();
    const beside = await readdir(root);
    const plan = await planRestore({ name: 'v1', backupDir: backups, target: data, include: ['agents/first_agent/**'] });
    expect(plan.replace.map((e) => e.path)).toEqual(['agents/first_agent/memory/m1.json', 'agents/first_agent/state.json']); // every file is replaced, equal or not
    expect(plan.add.map((e) => e.path)).toEqual(['agents/first_agent/gone_later.json']);
    expect(plan.remove.map((e) => e.path)).toEqual(['agents/first_agent/memory/m2.json']);
    expect(plan.keep).toEqual(['agents/first_agent/agent.log']);
    expect(plan.preRestore).toBe(true);
    expect(plan.add[0]).toMatchObject({ type: 'file', size: 9 });

    const r = await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--dry-run']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/would replace 4, add 1, remove 3 and keep 1 entry/);
    expect(r.stdout).toMatch(/remove +file .* agents\/first_agent\/memory\/m2\.json/);
    expect(r.stdout).toMatch(/remove +dir .* agents\/third\n/);
    const full = json(await cli(['restore', 'v1', '--backup-dir', backups, '--target', data, '--dry-run', '--json']));
    expect(full.include).toBeNull();
    expect(full.remove.map((e: any) => e.path)).toEqual(['agents/first_agent/memory/m2.json', 'agents/third', 'agents/third/state.json']);
    expect(full.add.map((e: any) => e.path)).toEqual(['agents/first_agent/gone_later.json']);
    expect(full.replace.map((e: any) => e.path)).toEqual(['agents/first_agent/memory/m1.json', 'agents/first_agent/state.json', 'agents/second/state.json', 'mesh/peer_registry.json']);
    expect(full.keep).toEqual(['agents/first_agent/agent.log']);

    expect(await snapshot(data)).toEqual(v2);
    expect(await readdir(backups)).toEqual(['v1']);
    expect(await readdir(root)).toEqual(beside);

    // what the dry run said is what the restore does
    const done = await restoreBackup({ name: 'v1', backupDir: backups, target: data, fsync: false });
    expect(done.kept).toEqual(full.keep);
    const after = await snapshot(data);
    for (const p of full.remove.map((e: any) => e.path)) expect(after[p]).toBeUndefined();
  });

  it('refuses as the restore would (another source), and plans a restore into an absent target', async () => {
    const { root, backups } = await setup();
    const other = join(root, 'other');
    await file(other, 'x.json', '{}');
    const r = await cli(['restore', 'v1', '--backup-dir', backups, '--target', other, '--dry-run', '--json']);
    expect(JSON.parse(r.stderr).error.code).toBe('SOURCE_MISMATCH');
    const plan = await planRestore({ name: 'v1', backupDir: backups, target: join(root, 'new/place'), include: 'mesh/**' });
    expect(plan.add.map((e) => e.path)).toEqual(['mesh', 'mesh/peer_registry.json']);
    expect(plan.preRestore).toBe(false);
    expect(await readdir(root)).not.toContain('new');
    await expect(planRestore({ name: 'v1', backupDir: backups, include: ['nope'] , target: other, force: true })).rejects.toSatisfy((e: unknown) => BackupError.is(e) && e.code === 'INVALID_OPTION');
  });
});

describe('restore --include: SIGKILL at random moments', () => {
  const KILLS = 8;
  it(`each selected path is whole (old or restored) after every kill, nothing else changes, and the next run completes (${KILLS} kills)`, async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const backups = join(root, 'backups');
    await makeManyFiles(join(data, 'agents/first_agent'), 1500, 'v1');
    await makeManyFiles(join(data, 'agents/other'), 300, 'v1');
    await file(data, 'mesh/peer_registry.json', '{"peers": 1}');
    expect((await cli(['backup', '--source', data, '--backup-dir', backups, '--name', 'v1', '--no-fsync'])).code).toBe(0);
    const v1 = await snapshot(data);
    await makeManyFiles(join(data, 'agents/first_agent'), 1700, 'v2'); // every file changed, 200 new ones
    await makeManyFiles(join(data, 'agents/other'), 300, 'v2');
    await file(data, 'mesh/peer_registry.json', '{"peers": 2}');
    const v2 = await snapshot(data);
    const args = ['restore', 'v1', '--backup-dir', backups, '--target', data, '--include', 'agents/first_agent/**'];

    // calibrate on a copy
    const scratch = join(root, 'scratch');
    await copyDir(data, scratch);
    const t0 = performance.now();
    expect((await cli(['restore', 'v1', '--backup-dir', backups, '--target', scratch, '--include', 'agents/first_agent/**', '--force'])).code).toBe(0);
    const full = performance.now() - t0;
    await rm(scratch, { recursive: true });

    const paths = new Set([...Object.keys(v1), ...Object.keys(v2)]);
    const delays: number[] = [];
    let killed = 0;
    for (let k = 0; k < KILLS; k++) {
      const delay = Math.round(Math.random() * full * 1.2);
      delays.push(delay);
      const child = spawnNode(BIN, args, { env: { PROJECT_DAWN_DATA_ROOT: '' } });
      const timer = sleep(delay).then(() => child.kill('SIGKILL'));
      const exit = await child.exited;
      await timer;
      if (exit.signal === 'SIGKILL') killed++;
      const now = await snapshot(data);
      for (const p of new Set([...paths, ...Object.keys(now)])) {
        const ok = inAgent(p) ? now[p] === v1[p] || now[p] === v2[p] : now[p] === v2[p];
        expect(ok, `${p} after a kill at ${delay} ms (delays ${delays}): ${now[p]}`).toBe(true);
      }
    }
    const last = await cli(args);
    expect(last.code, last.stderr).toBe(0);
    const now = await snapshot(data);
    expect(part(now, inAgent)).toEqual(part(v1, inAgent));
    expect(part(now, (p) => !inAgent(p))).toEqual(part(v2, (p) => !inAgent(p)));
    expect((await readdir(root)).filter((n) => n.startsWith('.dawn-restore-'))).toEqual([]);
    expect((await readdir(backups)).filter((n) => n.startsWith('.'))).toEqual([]);
    const listed = json(await cli(['list', '--backup-dir', backups, '--json']));
    expect(listed.damaged).toEqual([]);
    void killed;
  }, 300_000);
});
