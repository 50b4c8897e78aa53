import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isTempFileName, withLock } from '@dawn/atomic-json';
import { copyFixture, spawnNode, useTempDir, type ChildExit } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { backupMeta, BIN, bpath, cli, json, showBytes, snapshotBytes, toFormat1 } from './helpers.js';

const tempDir = useTempDir('dawn-backup-hostile-');

/** `dawn-backup ...args`, killed (and failed) if it runs for more than 30 s: nothing may block. */
async function cliBounded(args: string[]): Promise<ChildExit> {
  const child = spawnNode(BIN, args, { env: { PROJECT_DAWN_DATA_ROOT: '', NO_COLOR: '1' } });
  child.proc.stdin!.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  try {
    const r = await child.exited;
    expect(r.signal, `dawn-backup ${args.join(' ')} blocked and was killed`).toBeNull();
    return r;
  } finally {
    clearTimeout(timer);
  }
}

/** A directory outside every tree, with a file and a FIFO, and a snapshot to check it is never changed. */
async function outsideDir(root: string) {
  const outside = join(root, 'outside');
  await mkdir(join(outside, 'dir'), { recursive: true });
  await writeFile(join(outside, 'precious.json'), '{"precious": true}\n');
  await writeFile(join(outside, 'dir', 'kept.txt'), 'kept\n');
  const before = snapshotBytes(outside);
  return { outside, precious: join(outside, 'precious.json'), unchanged: () => expect(snapshotBytes(outside)).toEqual(before) };
}

describe('B8: never write through a symlink', () => {
  it('symlinks named .backup_metadata.json (top and nested) are stored as links; backup, restore, pre_restore and undo never write through them', async () => {
    const root = await tempDir();
    const { precious, unchanged } = await outsideDir(root);
    const src = join(root, 'src');
    await mkdir(join(src, 'sub/deeper'), { recursive: true });
    await writeFile(join(src, 'data.json'), '{"a": 1}\n');
    await symlink(precious, join(src, '.backup_metadata.json'));
    await symlink(precious, join(src, 'sub/.backup_metadata.json'));
    await symlink('../../../outside/precious.json', join(src, 'sub/deeper/.backup_metadata.json'));
    const backups = join(root, 'backups');

    const b = await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'one', '--json']);
    expect(b.code, b.stderr).toBe(0);
    unchanged();
    // The backup's own metadata is a regular file; the source's link is kept, escaped, as a link.
    expect(fs.lstatSync(join(backups, 'one/.backup_metadata.json')).isFile()).toBe(true);
    expect(fs.readlinkSync(join(backups, 'one/.backup_metadata.json~'))).toBe(precious);
    expect(fs.readlinkSync(join(backups, 'one/sub/.backup_metadata.json'))).toBe(precious);
    expect((await cli(['verify', 'one', '--backup-dir', backups])).code).toBe(0);

    // A live target holding the same kind of links: the pre_restore backup made of it must not write through them.
    const live = join(root, 'live');
    await mkdir(join(live, 'x'), { recursive: true });
    await writeFile(join(live, 'live.json'), '{"live": true}\n');
    await symlink(precious, join(live, '.backup_metadata.json'));
    await symlink(precious, join(live, 'x/.backup_metadata.json'));
    const liveBefore = snapshotBytes(live);
    const r = await cli(['restore', 'one', '--backup-dir', backups, '--target', live, '--force', '--json']); // another source's backup: --force;
    expect(r.code, r.stderr).toBe(0);
    unchanged();
    expect(snapshotBytes(live)).toEqual(snapshotBytes(src));
    const pre = json(r).preRestoreBackup as string;
    expect((await cli(['verify', pre, '--backup-dir', backups])).code).toBe(0);

    // Undo: the previous live tree comes back exactly, links included.
    const undo = await cli(['restore', pre, '--backup-dir', backups, '--target', live, '--json']);
    expect(undo.code, undo.stderr).toBe(0);
    unchanged();
    expect(snapshotBytes(live)).toEqual(liveBefore);
  });
});

describe('B9: names are bytes', () => {
  it('backs up, verifies and restores names and link targets that are not UTF-8 exactly, over a different live tree', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await mkdir(src);
    const ff = Buffer.from([0xff]);
    const fe = Buffer.from([0xfe]); // shows as the same U+FFFD as 0xff
    const bad = Buffer.from([0xc3, 0x28]); // invalid 2-byte sequence
    const latin1 = Buffer.from('caf\xe9.json', 'latin1');
    const dir = Buffer.from([0x64, 0xfe, 0x64]);
    fs.writeFileSync(bpath(src, ff), 'ff\n');
    fs.writeFileSync(bpath(src, fe), 'fe\n');
    fs.writeFileSync(bpath(src, bad), 'c3 28\n');
    fs.writeFileSync(bpath(src, latin1), '{"latin1": true}\n');
    fs.writeFileSync(join(src, 'repl\uFFFD'), 'a valid name holding U+FFFD\n');
    fs.mkdirSync(bpath(src, dir), { mode: 0o750 });
    fs.chmodSync(bpath(src, dir), 0o750);
    fs.writeFileSync(bpath(src, dir, Buffer.from([0x80])), 'continuation byte\n');
    fs.mkdirSync(bpath(src, dir, 'ok'));
    fs.writeFileSync(bpath(src, dir, 'ok', 'deep.json'), '{"deep": 1}\n');
    fs.mkdirSync(bpath(src, Buffer.from([0xed, 0xa0, 0x80]))); // an encoded surrogate: not UTF-8
    fs.writeFileSync(bpath(src, Buffer.from('big-\xff.bin', 'latin1')), Buffer.alloc(600 * 1024, 3)); // the worker-thread path
    fs.symlinkSync(Buffer.concat([Buffer.from('target-'), ff]), bpath(src, 'link-to-bytes'));
    fs.symlinkSync('data.json', bpath(src, Buffer.from('link-\xfe', 'latin1')));
    fs.writeFileSync(join(src, 'data.json'), '{}\n');
    const expected = snapshotBytes(src);
    expect(Object.keys(expected)).toContain('d\\xfed/\\x80');
    const backups = join(root, 'backups');

    const b = await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'bytes', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(json(b).skipped).toEqual([]);
    expect(json(b).warnings).toEqual([]);
    const meta = backupMeta(join(backups, 'bytes'));
    const byB64 = (b: Buffer) => meta.manifest.find((m: any) => m.path_b64 === b.toString('base64'));
    expect(byB64(ff)).toMatchObject({ type: 'file', path: '\uFFFD' });
    expect(byB64(fe)).toMatchObject({ type: 'file', path: '\uFFFD' });
    expect(byB64(Buffer.concat([dir, Buffer.from('/ok/deep.json')]))).toMatchObject({ type: 'file', path: 'd\uFFFDd/ok/deep.json' });
    expect(meta.manifest.find((m: any) => m.path === 'link-to-bytes')).toMatchObject({ target_b64: Buffer.from('target-\xff', 'latin1').toString('base64') });
    // Valid names carry no extra field (and old manifests without it read as before).
    expect(meta.manifest.find((m: any) => m.path === 'data.json')).not.toHaveProperty('path_b64');
    expect(meta.manifest.find((m: any) => m.path === 'repl\uFFFD')).not.toHaveProperty('path_b64');
    expect(meta.file_count).toBe(9);

    const show = await cli(['show', 'bytes', '--backup-dir', backups, '--files', '--json']);
    expect(show.code, show.stderr).toBe(0);
    expect(json(show).manifest.filter((m: any) => m.path_b64 !== undefined)).toHaveLength(11);
    const shown = await cli(['show', 'bytes', '--backup-dir', backups, '--files']);
    expect(shown.code, shown.stderr).toBe(0);

    expect((await cli(['verify', 'bytes', '--backup-dir', backups])).code).toBe(0);

    // Restore over a different live tree: exactly the source's bytes and contents.
    const live = await copyFixture('data', join(root, 'live'));
    const r = await cli(['restore', 'bytes', '--backup-dir', backups, '--target', live, '--force', '--json']); // another source's backup: --force
    expect(r.code, r.stderr).toBe(0);
    // Exactly the source's bytes, plus what the backup's own excludes left out of the live tree (kept in place).
    const restored = snapshotBytes(live);
    const kept = Object.keys(restored).filter((k) => k === 'logs' || k.startsWith('logs/'));
    expect(kept.sort()).toEqual(['logs', 'logs/dawn.log']);
    for (const k of kept) delete restored[k];
    expect(restored).toEqual(expected);

    // Damage to a file with such a name is found and named exactly.
    fs.chmodSync(bpath(backups, 'bytes', dir), 0o700);
    fs.chmodSync(bpath(backups, 'bytes', dir, Buffer.from([0x80])), 0o600);
    fs.writeFileSync(bpath(backups, 'bytes', dir, Buffer.from([0x80])), 'changed\n');
    const v = await cli(['verify', 'bytes', '--backup-dir', backups, '--json']);
    expect(v.code).toBe(3);
    expect(json(v).problems).toEqual([
      expect.objectContaining({ kind: 'modified', path: 'd\uFFFDd/\uFFFD', pathB64: Buffer.from([0x64, 0xfe, 0x64, 0x2f, 0x80]).toString('base64') }),
    ]);
  });
});

describe('B10: exclude exactly what atomic-json creates', () => {
  it('keeps Cargo.lock, `.lock` agents and `*.ajtmp` user files; leaves out only lock directories and temp files', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await mkdir(join(src, 'agents/foo.lock'), { recursive: true });
    await mkdir(join(src, 'mesh'), { recursive: true });
    await writeFile(join(src, 'Cargo.lock'), '# cargo\n');
    await writeFile(join(src, 'agents/foo.lock/state.json'), '{"agent_id": "foo.lock"}\n');
    await writeFile(join(src, 'mesh/peer_registry.json'), '{"version": 1, "peers": []}\n');
    await writeFile(join(src, 'notes.ajtmp'), 'a user file\n');
    await mkdir(join(src, 'only-temp.lock'));
    const temp = '.0123456789ab-0123456789abcdef.ajtmp';
    expect(isTempFileName(temp)).toBe(true);
    await writeFile(join(src, 'only-temp.lock', temp), 'half-written'); // not empty: not a lock dir
    await writeFile(join(src, 'mesh', temp), 'half-written');
    await mkdir(join(src, 'mesh', 'stale.json.lock')); // a lock left by a killed process: empty
    await mkdir(join(src, temp)); // a directory is never a temp file
    const backups = join(root, 'backups');

    // A lock held for real by atomic-json (proper-lockfile's mkdir) while the backup runs.
    // (Not the registry's: a backup takes the registry's lock itself to copy it with its journal.)
    const r = await withLock(join(src, 'mesh/stats.json'), async () => {
      expect(fs.statSync(join(src, 'mesh/stats.json.lock')).isDirectory()).toBe(true);
      return cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'locks', '--json']);
    });
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).skipped).toEqual([]);
    const expected = snapshotBytes(src, (rel, st, kids) => {
      const name = showBytes(rel).split('/').pop()!;
      return (st.isDirectory() && kids!.length === 0 && name.length > 5 && name.endsWith('.lock')) || (!st.isDirectory() && isTempFileName(name));
    });
    expect(Object.keys(expected).sort()).toEqual(
      ['Cargo.lock', 'agents', 'agents/foo.lock', 'agents/foo.lock/state.json', 'mesh', 'mesh/peer_registry.json', 'notes.ajtmp', 'only-temp.lock', temp].sort(),
    );
    expect(json(r).excludes).toEqual(['*.log', '*.tmp', '__pycache__', '*.pyc']);

    const live = join(root, 'live');
    await mkdir(live);
    const restored = await cli(['restore', 'locks', '--backup-dir', backups, '--target', live]);
    expect(restored.code, restored.stderr).toBe(0);
    expect(snapshotBytes(live)).toEqual(expected);
  });
});

describe('B11: every backup that reports success can be restored', () => {
  it('a regular .backup_metadata.json, .backup_manifest.json (and their ~ names) at the top of the source: backup, verify, diff, restore and undo all succeed', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await mkdir(join(src, '.backup_metadata.json~'), { recursive: true });
    await writeFile(join(src, '.backup_metadata.json'), '{"backup_name": "not ours", "manifest": 7}\n');
    await writeFile(join(src, '.backup_metadata.json~/inner.json'), '{"inner": true}\n');
    await writeFile(join(src, '.backup_metadata.json~~'), 'two tildes\n');
    await writeFile(join(src, 'data.json'), '{"a": 1}\n');
    // the same for the manifest file's name (format 2)
    await mkdir(join(src, '.backup_manifest.json~'));
    await writeFile(join(src, '.backup_manifest.json'), '{"format":"dawn-backup-manifest","format_version":1,"entries":[]}\n');
    await writeFile(join(src, '.backup_manifest.json~/inner.json'), '{"inner": 2}\n');
    const backups = join(root, 'backups');
    const b = await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'meta', '--json']);
    expect(b.code, b.stderr).toBe(0);
    expect(json(b).skipped).toEqual([]);
    expect(json(b).fileCount).toBe(6);
    expect(fs.readFileSync(join(backups, 'meta/.backup_manifest.json~'), 'utf8')).toContain('"entries":[]');
    expect((await cli(['verify', 'meta', '--backup-dir', backups])).code).toBe(0);
    const d = json(await cli(['diff', 'meta', '--source', src, '--backup-dir', backups, '--json']));
    expect([d.added, d.removed, d.modified]).toEqual([[], [], []]);
    const again = await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'meta2', '--json']);
    expect(json(again)).toMatchObject({ linkedFrom: 'meta', linkedFiles: 6, newFiles: 0 });
    expect((await cli(['verify', 'meta2', '--backup-dir', backups])).code).toBe(0);
    expect((await cli(['list', '--backup-dir', backups, '--json'])).code).toBe(0);

    const live = join(root, 'live');
    await mkdir(live);
    await writeFile(join(live, '.backup_metadata.json'), 'the live one\n');
    await writeFile(join(live, '.backup_manifest.json'), 'the live manifest-named one\n');
    await writeFile(join(live, 'live.json'), '{}\n');
    const liveBefore = snapshotBytes(live);
    const r = await cli(['restore', 'meta', '--backup-dir', backups, '--target', live, '--force', '--json']); // another source's backup: --force;
    expect(r.code, r.stderr).toBe(0);
    expect(snapshotBytes(live)).toEqual(snapshotBytes(src));
    const pre = json(r).preRestoreBackup as string;
    expect((await cli(['verify', pre, '--backup-dir', backups])).code).toBe(0);
    const undo = await cli(['restore', pre, '--backup-dir', backups, '--target', live]);
    expect(undo.code, undo.stderr).toBe(0);
    expect(snapshotBytes(live)).toEqual(liveBefore);
  });
});

describe('C: symlinks and special files on the backup side', () => {
  it('links to a FIFO, /dev/zero and a directory outside are stored as links; FIFOs, sockets and devices are skipped with a warning; nothing blocks or changes outside', async () => {
    const root = await tempDir();
    const { outside } = await outsideDir(root);
    const outFifo = join(outside, 'fifo');
    execFileSync('mkfifo', [outFifo]);
    const before = snapshotBytes(outside);
    const src = join(root, 'src');
    await mkdir(join(src, 'sub'), { recursive: true });
    await writeFile(join(src, 'data.json'), '{}\n');
    await symlink(outFifo, join(src, 'to-fifo'));
    await symlink('/dev/zero', join(src, 'to-zero'));
    await symlink(join(outside, 'dir'), join(src, 'to-dir'));
    await symlink(join(outside, 'precious.json'), join(src, 'sub/to-file'));
    await symlink('../../outside/dir', join(src, 'sub/relative-out'));
    execFileSync('mkfifo', [join(src, 'fifo')]);
    execFileSync('mkfifo', [join(src, 'sub/mesh.json')]); // a FIFO named like data
    const expectSkipped = ['fifo', 'sub/mesh.json'];
    let server: Server | undefined;
    if (process.platform !== 'win32') {
      server = createServer();
      await new Promise<void>((res) => server!.listen(join(src, 'sock'), res));
      expectSkipped.push('sock');
    }
    try {
      fs.mkdirSync(join(src, 'dev'));
      execFileSync('mknod', [join(src, 'dev/null-dev'), 'c', '1', '3'], { stdio: 'ignore' });
      expectSkipped.push('dev/null-dev');
    } catch {
      // mknod needs CAP_MKNOD: the device case is skipped where it is not allowed
    }
    try {
      const backups = join(root, 'backups');
      const b = await cliBounded(['backup', '--source', src, '--backup-dir', backups, '--name', 'special', '--json']);
      expect(b.code, b.stderr).toBe(0);
      const made = json(b);
      expect(made.skipped.map((s: any) => s.rel).sort()).toEqual(expectSkipped.sort());
      for (const s of made.skipped) expect(s.reason).toMatch(/not a regular file, directory or symlink/);
      expect(made.warnings).toHaveLength(expectSkipped.length);
      const meta = backupMeta(join(backups, 'special'));
      const link = (p: string) => meta.manifest.find((m: any) => m.path === p);
      expect(link('to-fifo')).toEqual({ path: 'to-fifo', type: 'symlink', target: outFifo });
      expect(link('to-zero')).toEqual({ path: 'to-zero', type: 'symlink', target: '/dev/zero' });
      expect(link('to-dir')).toEqual({ path: 'to-dir', type: 'symlink', target: join(outside, 'dir') });
      expect(meta.manifest.some((m: any) => m.path.startsWith('to-dir/'))).toBe(false); // never followed

      expect((await cliBounded(['verify', 'special', '--backup-dir', backups])).code).toBe(0);
      const live = join(root, 'live');
      const r = await cliBounded(['restore', 'special', '--backup-dir', backups, '--target', live]);
      expect(r.code, r.stderr).toBe(0);
      expect(fs.readlinkSync(join(live, 'to-zero'))).toBe('/dev/zero');
      expect(fs.readdirSync(live).sort()).toEqual(['data.json', 'sub', 'to-dir', 'to-fifo', 'to-zero', 'dev'].sort());
      expect(snapshotBytes(outside)).toEqual(before);
    } finally {
      await new Promise<void>((res) => (server ? server.close(() => res()) : res()));
    }
  });
});

describe('C: special files where a backup holds files (reading side)', () => {
  it.each([
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p])],
    ['a symlink to /dev/zero', (p: string) => fs.symlinkSync('/dev/zero', p)],
    ['a symlink to a FIFO outside', (p: string) => fs.symlinkSync(join(p, '../../../../outside/fifo'), p)],
  ])('a backup file replaced by %s: verify and restore refuse (exit 3) without blocking, the target is untouched', async (_, replace) => {
    const root = await tempDir();
    const { outside } = await outsideDir(root);
    execFileSync('mkfifo', [join(outside, 'fifo')]);
    const outsideBefore = snapshotBytes(outside);
    const src = join(root, 'src');
    await mkdir(join(src, 'mesh'), { recursive: true });
    await writeFile(join(src, 'mesh/peer_registry.json'), '{"version": 1, "peers": []}\n');
    await writeFile(join(src, 'b.json'), '{}\n');
    const backups = join(root, 'backups');
    expect((await cliBounded(['backup', '--source', src, '--backup-dir', backups, '--name', 'x'])).code).toBe(0);
    const file = join(backups, 'x/mesh/peer_registry.json');
    fs.rmSync(file);
    replace(file);
    const v = await cliBounded(['verify', 'x', '--backup-dir', backups, '--json']);
    expect(v.code).toBe(3);
    expect(json(v).problems).toEqual([expect.objectContaining({ path: 'mesh/peer_registry.json', kind: 'type' })]);
    const live = join(root, 'live');
    await mkdir(live);
    await writeFile(join(live, 'live.json'), '{}\n');
    const before = snapshotBytes(live);
    const r = await cliBounded(['restore', 'x', '--backup-dir', backups, '--target', live]);
    expect(r.code).toBe(3);
    expect(snapshotBytes(live)).toEqual(before);
    expect(fs.readdirSync(root).sort()).toEqual(['backups', 'live', 'outside', 'src']);
    expect(snapshotBytes(outside)).toEqual(outsideBefore);
  });
});

describe('older backups (no name_escape, no path_b64) read as before', () => {
  it('a backup stored without escaping verifies and restores its `.backup_metadata.json~` entry', async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await mkdir(src);
    await writeFile(join(src, '.backup_metadata.json~'), 'editor backup of something\n');
    await writeFile(join(src, 'a.json'), '{}\n');
    const backups = join(root, 'backups');
    expect((await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'old'])).code).toBe(0);
    // Make it look like a backup of an older version: names stored as they are, no name_escape.
    toFormat1(join(backups, 'old'));
    const metaFile = join(backups, 'old/.backup_metadata.json');
    const meta = JSON.parse(await readFile(metaFile, 'utf8'));
    expect(meta.name_escape).toBe(1);
    delete meta.name_escape;
    fs.renameSync(join(backups, 'old/.backup_metadata.json~~'), join(backups, 'old/.backup_metadata.json~'));
    fs.chmodSync(metaFile, 0o600);
    await writeFile(metaFile, JSON.stringify(meta));
    expect((await cli(['verify', 'old', '--backup-dir', backups])).code).toBe(0);
    const live = join(root, 'live');
    const r = await cli(['restore', 'old', '--backup-dir', backups, '--target', live]);
    expect(r.code, r.stderr).toBe(0);
    expect(snapshotBytes(live)).toEqual(snapshotBytes(src));
  });
});
