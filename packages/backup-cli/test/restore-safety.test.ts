import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, chown, lstat, mkdir, readdir, readFile, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { copyDir, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { BackupError, createBackup, restoreBackup } from '../src/index.js';
import { cli, json, makeRichTree, snapshot, STACK } from './helpers.js';

const tempDir = useTempDir('dawn-backup-safety-');
const isRoot = process.getuid?.() === 0;

const errorOf = (r: { stderr: string }): { code: string; message: string; exitCode: number } => JSON.parse(r.stderr).error;

/** A data root, its backup `b`, and a backup dir. */
async function setup() {
  const root = await tempDir();
  const data = join(root, 'data');
  await makeRichTree(data);
  await ageLocks(data);
  const backups = join(root, 'backups');
  const made = await cli(['backup', '--source', data, '--backup-dir', backups, '--name', 'b']);
  expect(made.code, made.stderr).toBe(0);
  return { root, data, backups };
}

/** makeRichTree's lock dir looks like a running node's for 10 s: make it an old one. */
async function ageLocks(data: string): Promise<void> {
  const old = new Date(Date.now() - 60_000);
  await utimes(join(data, 'mesh/peer_registry.json.lock'), old, old);
}

/** What a tree holds, directory modes aside (a backup keeps its directories 0700; their modes are in the manifest). */
async function contents(root: string): Promise<Record<string, string>> {
  const snap = await snapshot(root, ['.backup_metadata.json']);
  for (const k of Object.keys(snap)) if (snap[k]!.startsWith('dir ')) snap[k] = 'dir';
  return snap;
}

/** The pid of a process that has exited. */
async function deadPid(): Promise<number> {
  return spawnSync(process.execPath, ['-e', '']).pid;
}

async function mountTmpfs(dir: string, size: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir]);
}
const umount = (dir: string) => {
  try {
    execFileSync('umount', [dir]);
  } catch {
    // not mounted
  }
};

describe('B12 containment by real paths', () => {
  it('refuses a target that is the backup dir, inside it, or contains it, however it is reached', async () => {
    const { root, backups } = await setup();
    await mkdir(join(root, 'elsewhere/deeper'), { recursive: true });
    await symlink(backups, join(root, 'to-backups'));
    await symlink(join(root, 'to-backups'), join(root, 'elsewhere/deeper/to-to-backups'));
    await symlink(join(root, 'elsewhere'), join(root, 'to-elsewhere'));
    await symlink('loop', join(root, 'loop'));
    const before = await snapshot(backups);
    const targets = [
      backups,
      join(backups, 'b'),
      join(backups, 'new-dir'),
      join(root, 'to-backups'),
      join(root, 'to-backups/b'), // symlinked parent
      join(root, 'to-backups/fresh/t'), // symlinked grandparent, not existing yet
      join(root, 'to-elsewhere/deeper/to-to-backups/b'), // a chain of links
      root, // contains the backup dir
      join(root, 'loop/x'), // cannot be resolved
    ];
    for (const t of targets) {
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', t, '--json', '--force', '--overwrite']);
      expect(r.code, t).toBe(1);
      expect(errorOf(r).code, t).toBe('TARGET_INVALID');
    }
    expect(await snapshot(backups)).toEqual(before);
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('backup: a backup dir reached through a symlink into the source is never copied into itself; the source itself is refused', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeRichTree(data);
    await mkdir(join(data, 'bk'));
    await symlink(join(data, 'bk'), join(root, 'bk-link'));
    const r = await cli(['backup', '--source', data, '--backup-dir', join(root, 'bk-link'), '--name', 'x', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const names = (await readdir(join(data, 'bk', 'x'))).sort();
    expect(names).not.toContain('bk');
    await symlink(data, join(root, 'data-link'));
    const same = await cli(['backup', '--source', data, '--backup-dir', join(root, 'data-link'), '--json']);
    expect(same.code).toBe(2);
    expect(errorOf(same).code).toBe('INVALID_OPTION');
    // a source inside the backup dir: the backup is made beside it, never inside it
    const inner = join(root, 'store', 'src');
    await makeRichTree(inner);
    const b2 = await cli(['backup', '--source', inner, '--backup-dir', join(root, 'store'), '--name', 'y']);
    expect(b2.code, b2.stderr).toBe(0);
    expect((await readdir(inner)).sort()).not.toContain('y');
    const v = await cli(['verify', 'y', '--backup-dir', join(root, 'store')]);
    expect(v.code, v.stderr).toBe(0);
  });
});

describe('B18 restore says what it is about to destroy', () => {
  it('refuses a backup of another source over a non-empty target (SOURCE_MISMATCH) unless --force; empty or absent targets are fine', async () => {
    const { root, backups } = await setup();
    const other = join(root, 'other');
    await makeRichTree(other);
    await writeFile(join(other, 'mine.json'), '{"other": true}');
    const before = await snapshot(other);
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', other, '--json']);
    expect(r.code).toBe(1);
    expect(errorOf(r).code).toBe('SOURCE_MISMATCH');
    expect(errorOf(r).message).toMatch(/--force/);
    expect(await snapshot(other)).toEqual(before);
    expect((await readdir(backups)).filter((n) => n.startsWith('pre_restore'))).toEqual([]);

    const forced = await cli(['restore', 'b', '--backup-dir', backups, '--target', other, '--json', '--force']);
    expect(forced.code, forced.stderr).toBe(0);
    expect(json(forced).preRestoreBackup).toMatch(/^pre_restore_/);

    await mkdir(join(root, 'empty'));
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', join(root, 'empty')])).code).toBe(0);
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', join(root, 'absent/deep')])).code).toBe(0);
  });

  it('the same source reached through a symlink is the same source', async () => {
    const { root, data, backups } = await setup();
    await symlink(root, join(root, 'root-link'));
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', join(root, 'root-link', basename(data))]);
    expect(r.code, r.stderr).toBe(0);
  });

  it('refuses a target with fresh atomic-json locks (a live node) unless --force; stale locks do not count', async () => {
    const { data, backups } = await setup();
    await mkdir(join(data, 'agents/first_agent/state.json.lock'));
    const before = await snapshot(data);
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--json']);
    expect(r.code).toBe(1);
    expect(errorOf(r).code).toBe('TARGET_IN_USE');
    expect(errorOf(r).message).toMatch(/agents\/first_agent\/state.json.lock/);
    expect(await snapshot(data)).toEqual(before);
    // makeRichTree's stale mesh/peer_registry.json.lock was taken over and released by the backup
    // (which copies the registry under its lock): make one again, and age both.
    await mkdir(join(data, 'mesh/peer_registry.json.lock'), { recursive: true });
    const old = new Date(Date.now() - 60_000);
    await utimes(join(data, 'agents/first_agent/state.json.lock'), old, old);
    await utimes(join(data, 'mesh/peer_registry.json.lock'), old, old);
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', data])).code).toBe(0);
    await mkdir(join(data, 'mesh/peer_registry.json.lock'), { recursive: true });
    await utimes(join(data, 'mesh/peer_registry.json.lock'), new Date(), new Date());
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', data])).code).toBe(1);
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--force'])).code).toBe(0);
    // A fresh directory named like a lock but holding data is data, not a lock (proper-lockfile's are empty).
    await rm(join(data, 'mesh/peer_registry.json.lock'), { recursive: true, force: true });
    await mkdir(join(data, 'agents/worker.lock'), { recursive: true });
    await writeFile(join(data, 'agents/worker.lock/state.json'), '{}\n');
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', data])).code).toBe(0);
  });

  it('keeps what the backup deliberately excluded (logs, --exclude dirs) in the restored target', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeRichTree(data);
    await mkdir(join(data, 'cache/deep'), { recursive: true });
    await writeFile(join(data, 'cache/deep/blob'), 'cached');
    await writeFile(join(data, 'out'), 'a file in the backup');
    const backups = join(root, 'backups');
    const old = new Date(Date.now() - 60_000);
    await utimes(join(data, 'mesh/peer_registry.json.lock'), old, old);
    expect((await cli(['backup', '--source', data, '--backup-dir', backups, '--name', 'b', '--exclude', 'cache/'])).code).toBe(0);
    // the node runs on: more log lines, a new log, a change to real data; and "out" becomes a dir with a log
    await writeFile(join(data, 'logs/dawn.log'), 'log line\nmore lines after the backup\n');
    await writeFile(join(data, 'logs/new.log'), 'new log');
    await writeFile(join(data, 'mesh/peer_registry.json'), '{"changed": true}');
    await rm(join(data, 'out'));
    await mkdir(join(data, 'out'));
    await writeFile(join(data, 'out/x.log'), 'cannot be kept: the backup has a file "out"');
    const weird = Buffer.concat([Buffer.from(`${data}/logs/`), Buffer.from([0xff, 0x2e]), Buffer.from('log')]); // not UTF-8
    await writeFile(weird, 'bytes');
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--json']);
    expect(r.code, r.stderr).toBe(0);
    const res = json(r);
    expect(res.kept).toEqual(expect.arrayContaining(['logs/dawn.log', 'logs/new.log', 'cache', 'scratch.tmp']));
    expect(res.warnings.join('\n')).toMatch(/removed 1 entry .*out\/x.log/);
    expect(await readFile(join(data, 'logs/dawn.log'), 'utf8')).toBe('log line\nmore lines after the backup\n');
    expect(await readFile(join(data, 'logs/new.log'), 'utf8')).toBe('new log');
    expect(await readFile(join(data, 'cache/deep/blob'), 'utf8')).toBe('cached');
    expect(await readFile(weird, 'utf8')).toBe('bytes');
    expect(await readFile(join(data, 'out'), 'utf8')).toBe('a file in the backup');
    expect(JSON.parse(await readFile(join(data, 'mesh/peer_registry.json'), 'utf8'))).toEqual({ version: 1, peers: [] });
    // lock dirs and temp files are never carried over
    expect(await readdir(join(data, 'mesh'))).toEqual(['peer_registry.json']);
    // and what could not be kept is in the pre_restore backup
    const saved = join(backups, res.preRestoreBackup);
    expect(await readFile(join(saved, 'out/x.log'), 'utf8')).toMatch(/cannot be kept/);
  });
});

describe('B15 one operation per data root at a time', () => {
  async function holdLock(file: string, pid: number, op = 'restore') {
    await writeFile(file, `${JSON.stringify({ pid, hostname: hostname(), op, path: 'x', since: new Date().toISOString() })}\n`);
  }

  it('a held data-root lock makes backup and restore fail fast with BUSY, naming the pid; a dead holder is taken over', async () => {
    const { root, data, backups } = await setup();
    const lock = join(root, '.data.dawn-backup.lock');
    await holdLock(lock, process.pid);
    const before = await snapshot(data);
    for (const args of [
      ['backup', '--source', data, '--backup-dir', backups, '--json'],
      ['restore', 'b', '--backup-dir', backups, '--target', data, '--json'],
    ]) {
      const r = await cli(args);
      expect(r.code).toBe(1);
      const e = errorOf(r);
      expect(e.code).toBe('BUSY');
      expect(e.message).toContain(`pid ${process.pid}`);
      expect(r.stderr).not.toMatch(STACK);
    }
    expect(await snapshot(data)).toEqual(before);
    expect((await readdir(backups)).sort()).toEqual(['b']);
    // through a symlinked path to the same root: the same lock
    await symlink(data, join(root, 'data-link'));
    expect(errorOf(await cli(['backup', '--source', join(root, 'data-link'), '--backup-dir', backups, '--json'])).code).toBe('BUSY');

    await holdLock(lock, await deadPid());
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data]);
    expect(r.code, r.stderr).toBe(0);
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a held prune lock makes prune fail fast with BUSY', async () => {
    const { backups } = await setup();
    await holdLock(join(backups, '.dawn-backup-prune.lock'), process.pid, 'prune');
    const r = await cli(['prune', '--keep-last', '1', '--backup-dir', backups, '--json']);
    expect(r.code).toBe(1);
    expect(errorOf(r).code).toBe('BUSY');
  });

  it('in one process, independent calls exclude each other too (BUSY), and the lock is gone afterwards', async () => {
    const { root, data, backups } = await setup();
    const results = await Promise.allSettled([
      createBackup({ source: data, backupDir: backups, name: 'p1', fsync: false }),
      createBackup({ source: data, backupDir: backups, name: 'p2', fsync: false }),
      restoreBackup({ name: 'b', backupDir: backups, target: data, fsync: false }),
    ]);
    let busy = 0;
    for (const r of results) {
      if (r.status === 'rejected') {
        expect(BackupError.is(r.reason) && r.reason.code, String(r.reason)).toBe('BUSY');
        busy++;
      }
    }
    expect(busy).toBeGreaterThan(0); // the first takes the lock before the others get to it
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('concurrent pairs (backup/restore, restore/restore, prune/prune): each succeeds or is BUSY, and every pre_restore_ backup is complete', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const { makeManyFiles } = await import('./helpers.js');
    await makeManyFiles(join(root, 'A'), 1500, 'A');
    await makeManyFiles(join(root, 'B'), 1500, 'B');
    const backups = join(root, 'backups');
    for (const n of ['A', 'B']) {
      await copyDir(join(root, n), data);
      expect((await cli(['backup', '--source', data, '--backup-dir', backups, '--name', n])).code).toBe(0);
      await rm(data, { recursive: true });
    }
    const snaps = [await contents(join(root, 'A')), await contents(join(root, 'B'))];
    await copyDir(join(root, 'A'), data);
    const ok = (r: { code: number | null; stderr: string }) => r.code === 0 || (r.code === 1 && errorOf(r).code === 'BUSY');
    const restore = (n: string) => cli(['restore', n, '--backup-dir', backups, '--target', data, '--json', '--no-fsync']);
    const preRestores: string[] = [];
    for (let round = 0; round < 2; round++) {
      const [r1, r2] = await Promise.all([restore('B'), restore('A')]);
      for (const r of [r1, r2]) {
        expect(ok(r), r.stderr).toBe(true);
        if (r.code === 0) preRestores.push(json(r).preRestoreBackup);
      }
      expect(snaps).toContainEqual(await contents(data));
      const [b1, r3] = await Promise.all([cli(['backup', '--source', data, '--backup-dir', backups, '--json', '--name', `c${round}`, '--no-fsync']), restore(round ? 'A' : 'B')]);
      expect(ok(b1), b1.stderr).toBe(true);
      expect(ok(r3), r3.stderr).toBe(true);
      if (r3.code === 0) preRestores.push(json(r3).preRestoreBackup);
      if (b1.code === 0) expect(snaps).toContainEqual(await contents(join(backups, `c${round}`)));
      expect(snaps).toContainEqual(await contents(data));
    }
    // every pre_restore backup holds one whole state, never a fraction
    for (const p of preRestores) {
      expect((await cli(['verify', p, '--backup-dir', backups])).code).toBe(0);
      expect(snaps).toContainEqual(await contents(join(backups, p)));
    }
    const [p1, p2] = await Promise.all([
      cli(['prune', '--keep-last', '3', '--backup-dir', backups, '--json']),
      cli(['prune', '--keep-last', '3', '--backup-dir', backups, '--json']),
    ]);
    expect(ok(p1), p1.stderr).toBe(true);
    expect(ok(p2), p2.stderr).toBe(true);
    expect((await readdir(backups)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
  }, 180_000);
});

describe.skipIf(!isRoot)('as root: ownership, mount points, full disks', () => {
  it('B17: restored entries keep the owner they had in the target; new ones get the target owner', async () => {
    const { data, backups } = await setup();
    await writeFile(join(data, 'tools/new-after-backup.txt'), 'x');
    execFileSync('chown', ['-R', '-h', '12345:23456', data]);
    await chown(join(data, 'keys/node.key'), 54321, 54321);
    await rm(join(data, 'empty.bin')); // comes back from the backup: a new entry
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data]);
    expect(r.code, r.stderr).toBe(0);
    const owners: Record<string, string> = {};
    const walk = async (rel: string) => {
      for (const n of await readdir(join(data, rel))) {
        const r2 = rel ? `${rel}/${n}` : n;
        const st = await lstat(join(data, r2));
        owners[r2] = `${st.uid}:${st.gid}`;
        if (st.isDirectory()) await walk(r2);
      }
    };
    await walk('');
    const st = await lstat(data);
    expect(`${st.uid}:${st.gid}`).toBe('12345:23456');
    expect(owners['keys/node.key']).toBe('54321:54321');
    expect(owners['empty.bin']).toBe('12345:23456');
    delete owners['keys/node.key'];
    expect(new Set(Object.values(owners))).toEqual(new Set(['12345:23456']));
  });

  it('B14: a mount point inside the old tree: the restore succeeds, says what is left, and later runs work', async () => {
    const { root, data, backups } = await setup();
    const mnt = join(data, 'mnt');
    await mountTmpfs(mnt, '1m');
    let parked: string | undefined;
    try {
      await writeFile(join(mnt, 'on-the-mount'), 'x');
      await writeFile(Buffer.concat([Buffer.from(`${data}/tools/`), Buffer.from([0xfe])]), 'a name that is not UTF-8 is removed too');
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--json']);
      expect(r.code, r.stderr).toBe(0);
      const res = json(r);
      expect(res.leftover.path).toMatch(/data\.restore-leftover-\d{8}_\d{6}$/);
      parked = res.leftover.path as string;
      expect(res.leftover.left).toEqual([`${join(parked, 'mnt')} (a mount point)`]);
      expect(res.warnings.join('\n')).toMatch(/restored, but .*could not be fully removed/);
      expect(await readFile(join(parked, 'mnt/on-the-mount'), 'utf8')).toBe('x'); // the mount was never emptied
      expect(await readFile(join(data, 'keys/node.key'), 'utf8')).toBe('secret-key-material\n');
      expect(await readdir(data)).not.toContain('mnt');
      expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
      expect((await cli(['backup', '--source', data, '--backup-dir', backups])).code).toBe(0);
      expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', data])).code).toBe(0);
    } finally {
      umount(parked ? join(parked, 'mnt') : mnt);
      umount(mnt);
    }
  });

  it('a target that is itself a mount point is refused (TARGET_INVALID), its data intact, no litter', async () => {
    const { root, data, backups } = await setup();
    const mnt = join(root, 'mounted');
    await mountTmpfs(mnt, '1m');
    try {
      await writeFile(join(mnt, 'state.json'), '{"mounted": true}');
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', mnt, '--json', '--force']);
      expect(r.code, r.stderr).toBe(1);
      expect(errorOf(r).code).toBe('TARGET_INVALID');
      expect(errorOf(r).message).toMatch(/mount point/);
      expect(await readdir(mnt)).toEqual(['state.json']);
      expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
      expect(await readdir(backups)).toEqual(['b']); // refused before anything was made
      void data;
    } finally {
      umount(mnt);
    }
  });

  it('B14: an immutable file in the old tree: success with the leftover named (skipped where chattr is unsupported)', async () => {
    const { root, data, backups } = await setup();
    const file = join(data, 'tools/run.sh');
    try {
      execFileSync('chattr', ['+i', file], { stdio: 'ignore' });
    } catch {
      return; // the file system has no immutable flag
    }
    let parked: string | undefined;
    try {
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--json']);
      expect(r.code, r.stderr).toBe(0);
      parked = json(r).leftover.path;
      expect(json(r).leftover.left.join(' ')).toMatch(/run\.sh \(EPERM\)/);
      expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
      expect((await cli(['backup', '--source', data, '--backup-dir', backups])).code).toBe(0);
    } finally {
      execFileSync('chattr', ['-i', parked ? join(parked, 'tools/run.sh') : file], { stdio: 'ignore' });
    }
  });

  it('B14: a leftover of a dead restore that cannot be removed never blocks backup or restore', async () => {
    const { root, data, backups } = await setup();
    const id = createHash('sha256').update('data').digest('hex').slice(0, 12);
    const old = join(root, `.dawn-restore-${id}-${await deadPid()}-0123abcd.old`);
    await mkdir(join(old, 'mnt'), { recursive: true });
    await mountTmpfs(join(old, 'mnt'), '1m');
    let parked: string | undefined;
    try {
      const b = await cli(['backup', '--source', data, '--backup-dir', backups, '--json']);
      expect(b.code, b.stderr).toBe(0);
      expect(json(b).warnings.join('\n')).toMatch(/could not be fully removed.*restore-leftover/);
      parked = (await readdir(root)).find((n) => n.includes('restore-leftover'));
      expect(parked).toBeDefined();
      expect((await readdir(root)).filter((n) => n.startsWith('.dawn-restore'))).toEqual([]);
      expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', data])).code).toBe(0);
    } finally {
      umount(parked ? join(root, parked, 'mnt') : join(old, 'mnt'));
    }
  });

  it('B14: leftovers of a restore on another host (shared parent over NFS) are reported, never finished or removed; a restore of that target refuses', async () => {
    const { root, data, backups } = await setup();
    const id = createHash('sha256').update('data').digest('hex').slice(0, 12);
    const pid = await deadPid(); // dead here; says nothing about the other host
    const foreignNew = join(root, `.dawn-restore-${id}-h0badc0de-${pid}-0123abcd.new`);
    const foreignOld = join(root, `.dawn-restore-${id}-h0badc0de-${pid}-0123abcd.old`);
    await mkdir(foreignNew);
    await writeFile(join(foreignNew, 'theirs'), 'being built over there');
    await mkdir(foreignOld);
    await writeFile(join(foreignOld, 'theirs'), 'their previous data');
    const ownNew = join(root, `.dawn-restore-${id}-${pid}-4567cdef.new`); // an older version's name: judged by pid
    await mkdir(ownNew);
    const b = await cli(['backup', '--source', data, '--backup-dir', backups, '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(json(b).warnings.join('\n')).toMatch(/another host \(tag h0badc0de\).*left in place/);
    expect(await readFile(join(foreignNew, 'theirs'), 'utf8')).toBe('being built over there');
    expect(await readFile(join(foreignOld, 'theirs'), 'utf8')).toBe('their previous data');
    await expect(lstat(ownNew)).rejects.toMatchObject({ code: 'ENOENT' });
    // A restore of the same target while another host's restore may be running is refused, and changes nothing.
    const before = await snapshot(data);
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--json']);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stderr).error).toMatchObject({ code: 'TARGET_INVALID', message: expect.stringMatching(/another host/) });
    expect(await snapshot(data)).toEqual(before);
    expect(await readFile(join(foreignNew, 'theirs'), 'utf8')).toBe('being built over there');
  });

  it('B14: a partial backup of a dead run that cannot be removed never blocks backup or prune', async () => {
    const { backups, data } = await setup();
    const partial = join(backups, `.x.partial-${await deadPid()}-0123abcd`);
    await mkdir(join(partial, 'mnt'), { recursive: true });
    await mountTmpfs(join(partial, 'mnt'), '1m');
    try {
      await writeFile(join(partial, 'mnt/f'), 'on the mount');
      expect((await cli(['backup', '--source', data, '--backup-dir', backups])).code).toBe(0);
      expect((await cli(['prune', '--keep-last', '5', '--backup-dir', backups])).code).toBe(0);
      expect(await readFile(join(partial, 'mnt/f'), 'utf8')).toBe('on the mount');
    } finally {
      umount(join(partial, 'mnt'));
    }
  });

  it('backup of a data root on read-only media works (no lock can be made there)', async () => {
    const root = await tempDir();
    const mnt = join(root, 'ro');
    await mountTmpfs(mnt, '8m');
    try {
      await makeRichTree(join(mnt, 'data'));
      execFileSync('mount', ['-o', 'remount,ro', mnt]);
      const r = await cli(['backup', '--source', join(mnt, 'data'), '--backup-dir', join(root, 'bk'), '--name', 'x']);
      expect(r.code, r.stderr).toBe(0);
      expect((await cli(['verify', 'x', '--backup-dir', join(root, 'bk')])).code).toBe(0);
    } finally {
      umount(mnt);
    }
  });

  it('C: a full disk under restore is NO_SPACE (exit 1, the backup is fine), the target intact, no litter', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await mkdir(src);
    await writeFile(join(src, 'big.bin'), Buffer.alloc(1536 * 1024, 1));
    await writeFile(join(src, 'small.json'), '{"new": true}');
    const backups = join(root, 'backups');
    expect((await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'b'])).code).toBe(0);
    const mnt = join(root, 'mnt');
    await mountTmpfs(mnt, '1m');
    try {
      const target = join(mnt, 'data');
      await mkdir(target);
      await writeFile(join(target, 'small.json'), '{"old": true}');
      const before = await snapshot(target);
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', target, '--json', '--force']);
      expect(r.code, r.stderr).toBe(1);
      const e = errorOf(r);
      expect(e.code).toBe('NO_SPACE');
      expect(e.message).toMatch(/the backup itself is fine/);
      expect(await snapshot(target)).toEqual(before);
      expect(await readdir(mnt)).toEqual(['data']);
      expect((await readdir(backups)).sort()).toEqual(['b']);
      expect((await cli(['verify', 'b', '--backup-dir', backups])).code).toBe(0);
    } finally {
      umount(mnt);
    }
  });

  it('C: a full disk under backup is NO_SPACE (exit 1), the source intact, no partial backup left', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await makeRichTree(src); // holds a 3 MiB file
    const before = await snapshot(src);
    const mnt = join(root, 'mnt');
    await mountTmpfs(mnt, '1m');
    try {
      const r = await cli(['backup', '--source', src, '--backup-dir', mnt, '--name', 'x', '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(errorOf(r).code).toBe('NO_SPACE');
      expect(await snapshot(src)).toEqual(before);
      expect(await readdir(mnt)).toEqual([]);
      expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
    } finally {
      umount(mnt);
    }
  });

  it('C: the pre_restore_ backup hitting a full backup dir is NO_SPACE and changes nothing', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    await mkdir(data);
    await writeFile(join(data, 'state.json'), '{"v": 1}');
    const backups = join(root, 'mnt');
    await mountTmpfs(backups, '1m');
    try {
      expect((await cli(['backup', '--source', data, '--backup-dir', backups, '--name', 'b'])).code).toBe(0);
      await writeFile(join(data, 'big.bin'), Buffer.alloc(1536 * 1024, 2));
      await chmod(join(data, 'big.bin'), 0o600);
      const before = await snapshot(data);
      const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', data, '--json']);
      expect(r.code, r.stderr).toBe(1);
      expect(errorOf(r).code).toBe('NO_SPACE');
      expect(errorOf(r).message).toMatch(/nothing was changed/);
      expect(await snapshot(data)).toEqual(before);
      expect(await readdir(backups)).toEqual(['b']);
      expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
    } finally {
      umount(backups);
    }
  });
});
