import { createHash } from 'node:crypto';
import { chmod, lstat, mkdir, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, listBackups, pruneBackups, restoreBackup, showBackup, verifyBackup } from '../src/index.js';
import { backupMeta, cli, json, makeManyFiles, makeRichTree, OWN_FILES, snapshot, toFormat1 } from './helpers.js';

/**
 * Issue 11, sections 1, 2 and 5: incremental backups (hard links to the newest backup of the
 * same source), the list summary read apart from the manifest, and retention after a backup.
 */

const tempDir = useTempDir('dawn-backup-incr-');

async function inodes(root: string): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const walk = async (rel: string) => {
    for (const n of (await readdir(join(root, rel))).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      if (!rel && OWN_FILES.includes(n)) continue;
      const st = await lstat(join(root, r));
      if (st.isDirectory()) await walk(r);
      else if (st.isFile()) out.set(r, st.ino);
    }
  };
  await walk('');
  return out;
}

async function setup() {
  const root = await tempDir();
  const source = join(root, 'src');
  await makeRichTree(source);
  await mkdir(join(source, 'agents/a1'), { recursive: true });
  await writeFile(join(source, 'agents/a1/state.json'), '{"agent_id":"a1","name":"a1","state":{"n":1}}');
  return { root, source, backupDir: join(root, 'backups') };
}

describe('incremental backups: unchanged files are hard links to the previous backup', () => {
  it('shares the inode of every unchanged file; a changed file is copied; --full copies everything', async () => {
    const { source, backupDir } = await setup();
    const first = await createBackup({ source, backupDir, name: 'b1', fsync: false });
    expect(first.linkedFrom).toBeNull();
    expect(first.linkedFiles).toBe(0);
    expect(first.newFiles).toBe(first.fileCount);
    expect(first.newBytes).toBe(first.totalBytes);

    const second = await createBackup({ source, backupDir, name: 'b2', fsync: false });
    expect(second.linkedFrom).toBe('b1');
    expect(second.linkedFiles).toBe(second.fileCount);
    expect(second.newFiles).toBe(0);
    expect(second.linkedBytes).toBe(second.totalBytes);
    const i1 = await inodes(join(backupDir, 'b1'));
    const i2 = await inodes(join(backupDir, 'b2'));
    expect([...i2.keys()]).toEqual([...i1.keys()]);
    for (const [p, ino] of i2) expect(ino, p).toBe(i1.get(p));

    await writeFile(join(source, 'agents/a1/state.json'), '{"agent_id":"a1","name":"a1","state":{"n":2}}');
    const third = await createBackup({ source, backupDir, name: 'b3', fsync: false });
    expect(third.linkedFrom).toBe('b2');
    expect(third.newFiles).toBe(1);
    expect(third.linkedFiles).toBe(third.fileCount! - 1);
    const i3 = await inodes(join(backupDir, 'b3'));
    for (const [p, ino] of i3) {
      if (p === 'agents/a1/state.json') expect(ino).not.toBe(i2.get(p));
      else expect(ino, p).toBe(i2.get(p));
    }

    const full = await createBackup({ source, backupDir, name: 'b4', fsync: false, full: true });
    expect(full.linkedFrom).toBeNull();
    expect(full.linkedFiles).toBe(0);
    const i4 = await inodes(join(backupDir, 'b4'));
    for (const [p, ino] of i4) expect(ino, p).not.toBe(i3.get(p));

    for (const n of ['b1', 'b2', 'b3', 'b4']) expect((await verifyBackup({ backupDir, name: n })).status).toBe('ok');
  });

  it('a file modified in place within the same second (same size, same mtime) is copied, never linked', async () => {
    const { source, backupDir } = await setup();
    const f = join(source, 'agents/a1/state.json');
    await writeFile(f, 'AAAA-version-1');
    const t = new Date('2026-11-20T10:00:00.000Z');
    await utimes(f, t, t);
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    await writeFile(f, 'BBBB-version-2'); // same size
    await utimes(f, t, t); // and the same mtime, as a write within the same second would leave it
    expect((await stat(f)).mtimeMs).toBe(t.getTime());
    const b2 = await createBackup({ source, backupDir, name: 'b2', fsync: false });
    expect(b2.newFiles).toBe(1);
    const [a, b] = await Promise.all([lstat(join(backupDir, 'b1/agents/a1/state.json')), lstat(join(backupDir, 'b2/agents/a1/state.json'))]);
    expect(b.ino).not.toBe(a.ino);
    expect(await readFile(join(backupDir, 'b1/agents/a1/state.json'), 'utf8')).toBe('AAAA-version-1');
    expect(await readFile(join(backupDir, 'b2/agents/a1/state.json'), 'utf8')).toBe('BBBB-version-2');
    expect((await verifyBackup({ backupDir, name: 'b1' })).ok).toBe(true);
    expect((await verifyBackup({ backupDir, name: 'b2' })).ok).toBe(true);

    // a mode change is a change too
    await chmod(f, 0o600);
    const b3 = await createBackup({ source, backupDir, name: 'b3', fsync: false });
    expect(b3.newFiles).toBe(1);
    expect((await lstat(join(backupDir, 'b3/agents/a1/state.json'))).ino).not.toBe(b.ino);
  });

  it('never links to a previous file that no longer matches its manifest entry; verify names every backup sharing a damaged file', async () => {
    const { source, backupDir } = await setup();
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    await createBackup({ source, backupDir, name: 'b2', fsync: false });
    // Damage the shared file (through b2; b1 holds the same inode)
    const shared = join(backupDir, 'b2/agents/a1/state.json');
    await chmod(shared, 0o644);
    await writeFile(shared, '{"damaged": true, "longer": "than before ......................."}');
    const v1 = await verifyBackup({ backupDir, name: 'b1' });
    const v2 = await verifyBackup({ backupDir, name: 'b2' });
    expect(v1.status).toBe('damaged');
    expect(v2.status).toBe('damaged');
    expect(v1.problems).toEqual([expect.objectContaining({ path: 'agents/a1/state.json', kind: 'modified', sharedWith: ['b2'] })]);
    expect(v2.problems).toEqual([expect.objectContaining({ path: 'agents/a1/state.json', kind: 'modified', sharedWith: ['b1'] })]);
    const cv = await cli(['verify', 'b1', '--backup-dir', backupDir]);
    expect(cv.code).toBe(3);
    expect(cv.stdout + cv.stderr).toMatch(/in 1 other backup\(s\): b2/);

    // The next backup copies that file from the source instead of linking to the damaged one.
    const b3 = await createBackup({ source, backupDir, name: 'b3', fsync: false });
    expect(b3.newFiles).toBe(1);
    expect((await verifyBackup({ backupDir, name: 'b3' })).ok).toBe(true);
  });

  it('deleting any backup never affects another: verify and restore of the rest still pass (prune or rm -rf, any order)', async () => {
    const { root, source, backupDir } = await setup();
    for (let i = 1; i <= 5; i++) {
      if (i > 1) await writeFile(join(source, `agents/a1/step${i}.json`), `{"i": ${i}}`);
      if (i === 4) await rm(join(source, 'agents/a1/step2.json'));
      await createBackup({ source, backupDir, name: `b${i}`, fsync: false, now: new Date(Date.now() - (10 - i) * 60_000) });
    }
    const before = join(root, 'before');
    await restoreBackup({ backupDir, name: 'b5', target: before, overwrite: true, fsync: false });
    // rm -rf of a middle backup, then of the oldest
    await rm(join(backupDir, 'b3'), { recursive: true, force: true });
    await rm(join(backupDir, 'b1'), { recursive: true, force: true });
    for (const n of ['b2', 'b4', 'b5']) expect((await verifyBackup({ backupDir, name: n })).ok, n).toBe(true);
    // prune of everything but the newest
    const p = await pruneBackups({ backupDir, keepLast: 1 });
    expect(p.removed.map((d) => d.name).sort()).toEqual(['b2', 'b4']);
    expect((await verifyBackup({ backupDir, name: 'b5' })).ok).toBe(true);
    const target = join(root, 'restored');
    await restoreBackup({ backupDir, name: 'b5', target, overwrite: true, fsync: false });
    expect(await snapshot(target)).toEqual(await snapshot(before));
  });

  it('links only to a backup of the same source', async () => {
    const { root, source, backupDir } = await setup();
    const other = join(root, 'other');
    await makeRichTree(other); // identical content, another source
    await createBackup({ source: other, backupDir, name: 'o1', fsync: false });
    const b1 = await createBackup({ source, backupDir, name: 'b1', fsync: false });
    expect(b1.linkedFrom).toBeNull();
    const o2 = await createBackup({ source: other, backupDir, name: 'o2', fsync: false });
    expect(o2.linkedFrom).toBe('o1');
  });

  it('CLI: --json reports written and linked counts; the human output says it in one line', async () => {
    const { source, backupDir } = await setup();
    const base = ['backup', '--source', source, '--backup-dir', backupDir];
    expect((await cli([...base, '--name', 'c1'])).code).toBe(0);
    const r = json(await cli([...base, '--name', 'c2', '--json']));
    expect(r).toMatchObject({ linkedFrom: 'c1', newFiles: 0, newBytes: 0 });
    expect(r.linkedFiles).toBe(r.fileCount);
    const h = await cli([...base, '--name', 'c3']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^ {2}0 files \(0 B\) written, \d+ unchanged files \(.+\) linked to c2$/m);
    const f = await cli([...base, '--name', 'c4', '--full']);
    expect(f.stdout).toMatch(/written, none linked \(--full\)$/m);
  });
});

describe('the manifest in its own file (.backup_manifest.json), shared like any unchanged file', () => {
  const MF = '.backup_manifest.json';
  const ino = async (backupDir: string, name: string) => (await lstat(join(backupDir, name, MF))).ino;

  it('is a hard link between backups of an unchanged tree, a new file when one file changes; the metadata is small and names it by sha256', async () => {
    const { source, backupDir } = await setup();
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    await createBackup({ source, backupDir, name: 'b2', fsync: false });
    expect(await ino(backupDir, 'b2')).toBe(await ino(backupDir, 'b1'));
    const meta = JSON.parse(await readFile(join(backupDir, 'b2/.backup_metadata.json'), 'utf8'));
    expect(meta).not.toHaveProperty('manifest');
    expect(meta).toMatchObject({ format_version: 2, name_escape: 2, manifest_file: { name: MF, entries: backupMeta(join(backupDir, 'b2')).manifest.length } });
    const bytes = await readFile(join(backupDir, 'b2', MF));
    expect(meta.manifest_file.size).toBe(bytes.length);
    expect(meta.manifest_file.sha256).toBe(createHash('sha256').update(bytes).digest('hex'));
    // nothing backup-specific in the manifest: no name, no time
    expect(Object.keys(JSON.parse(bytes.toString())).sort()).toEqual(['entries', 'format', 'format_version']);
    await writeFile(join(source, 'agents/a1/state.json'), '{"agent_id":"a1","name":"a1","state":{"n":3}}');
    await createBackup({ source, backupDir, name: 'b3', fsync: false });
    expect(await ino(backupDir, 'b3')).not.toBe(await ino(backupDir, 'b2'));
    for (const n of ['b1', 'b2', 'b3']) expect((await verifyBackup({ backupDir, name: n })).status, n).toBe('ok');
    // the restored tree never holds the backup's manifest file
    const target = join(backupDir, '..', 'restored');
    await restoreBackup({ backupDir, name: 'b2', target });
    expect(await readdir(target)).not.toContain(MF);
    // --full writes its own manifest file
    await createBackup({ source, backupDir, name: 'b4', fsync: false, full: true });
    expect(await ino(backupDir, 'b4')).not.toBe(await ino(backupDir, 'b3'));
  });

  it('pruning the older backup leaves the newer one (sharing its manifest) whole', async () => {
    const { source, backupDir } = await setup();
    const hour = 3_600_000;
    await createBackup({ source, backupDir, name: 'b1', fsync: false, now: new Date(Date.now() - 2 * hour) });
    await createBackup({ source, backupDir, name: 'b2', fsync: false, now: new Date(Date.now() - hour) });
    expect(await ino(backupDir, 'b2')).toBe(await ino(backupDir, 'b1'));
    const r = await pruneBackups({ backupDir, keepLast: 1 });
    expect(r.removed.map((d) => d.name)).toEqual(['b1']);
    expect((await verifyBackup({ backupDir, name: 'b2' })).status).toBe('ok');
    expect((await listBackups({ backupDir })).backups.map((b) => b.name)).toEqual(['b2']);
  });

  it('a damaged shared manifest: verify reports it (exit 3) in every backup linking it and names the others; list still lists; show and restore refuse', async () => {
    const { root, source, backupDir } = await setup();
    for (const n of ['b1', 'b2', 'b3']) await createBackup({ source, backupDir, name: n, fsync: false });
    const file = join(backupDir, 'b2', MF);
    const text = await readFile(file, 'utf8');
    await writeFile(file, text.replace('"type":"file"', '"type":"fil3"')); // same size, in place: damages all three
    for (const n of ['b1', 'b2', 'b3']) {
      const v = await verifyBackup({ backupDir, name: n });
      expect(v.status, n).toBe('damaged');
      expect(v.problems).toEqual([expect.objectContaining({ path: MF, kind: 'modified', sharedWith: ['b1', 'b2', 'b3'].filter((x) => x !== n) })]);
      const c = await cli(['verify', n, '--backup-dir', backupDir, '--json']);
      expect(c.code).toBe(3);
      expect(JSON.parse(c.stdout).problems[0].path).toBe(MF);
    }
    expect((await listBackups({ backupDir })).backups.map((b) => b.name).sort()).toEqual(['b1', 'b2', 'b3']);
    await expect(showBackup({ backupDir, name: 'b2' })).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    const target = join(root, 'never');
    const rr = await cli(['restore', 'b2', '--backup-dir', backupDir, '--target', target]);
    expect(rr.code).toBe(3);
    await expect(lstat(target)).rejects.toMatchObject({ code: 'ENOENT' });
    // the next backup never links to the damaged manifest: it writes its own
    const b4 = await createBackup({ source, backupDir, name: 'b4', fsync: false });
    expect(await ino(backupDir, 'b4')).not.toBe(await ino(backupDir, 'b3'));
    expect((await verifyBackup({ backupDir, name: b4.name })).status).toBe('ok');
  });

  it('a missing manifest file, or one replaced by a symlink: verify exits 3 naming it; nothing is followed', async () => {
    const { root, source, backupDir } = await setup();
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    await createBackup({ source, backupDir, name: 'b2', full: true, fsync: false });
    await rm(join(backupDir, 'b1', MF));
    const v1 = json(await cli(['verify', 'b1', '--backup-dir', backupDir, '--json']));
    expect(v1).toMatchObject({ status: 'damaged', problems: [{ path: MF, kind: 'missing' }] });
    const outside = join(root, 'outside.json');
    await writeFile(outside, await readFile(join(backupDir, 'b2', MF)));
    await rm(join(backupDir, 'b2', MF));
    await symlink(outside, join(backupDir, 'b2', MF));
    const v2 = await cli(['verify', 'b2', '--backup-dir', backupDir, '--json']);
    expect(v2.code).toBe(3);
    expect(JSON.parse(v2.stdout)).toMatchObject({ status: 'damaged', problems: [{ path: MF, kind: 'type' }] });
    const l = json(await cli(['list', '--verify', '--backup-dir', backupDir, '--json']));
    expect(l.backups.map((b: any) => b.verification.status)).toEqual(['damaged', 'damaged']);
  });

  it('a backup of the previous release (manifest inline) still lists, shows, verifies, diffs, restores, restores in part, and is linked to by the next backup', async () => {
    const { root, source, backupDir } = await setup();
    const old = await createBackup({ source, backupDir, name: 'old', fsync: false, now: new Date(Date.now() - 60_000) });
    toFormat1(join(backupDir, 'old'));
    expect(await readdir(join(backupDir, 'old'))).not.toContain(MF);
    expect((await listBackups({ backupDir })).backups).toEqual([expect.objectContaining({ name: 'old', checksums: true, formatVersion: 1, fileCount: old.fileCount })]);
    expect((await showBackup({ backupDir, name: 'old', manifest: true })).manifest).toHaveLength(backupMeta(join(backupDir, 'old')).manifest.length);
    expect((await verifyBackup({ backupDir, name: 'old' })).status).toBe('ok');
    const d = json(await cli(['diff', 'old', '--source', source, '--backup-dir', backupDir, '--json']));
    expect([d.added, d.removed, d.modified]).toEqual([[], [], []]);
    const target = join(root, 'restored');
    await restoreBackup({ backupDir, name: 'old', target });
    expect(await readdir(target)).not.toContain('.backup_metadata.json');
    await writeFile(join(target, 'agents/a1/state.json'), '{"broken": true}');
    expect((await cli(['restore', 'old', '--backup-dir', backupDir, '--target', target, '--include', 'agents/a1/**', '--force'])).code).toBe(0);
    expect(await readFile(join(target, 'agents/a1/state.json'), 'utf8')).toContain('"n":1');
    const next = await createBackup({ source, backupDir, name: 'next', fsync: false });
    expect(next.linkedFrom).toBe('old');
    expect(next.linkedFiles).toBe(next.fileCount);
    expect((await verifyBackup({ backupDir, name: 'next' })).status).toBe('ok');
  });
});

describe('list reads the summary apart from the manifest (format 1 backups: manifest inline, only the head is parsed)', () => {
  it('a backup whose manifest cannot be parsed is still listed from its head; show and verify still read the manifest', async () => {
    const { source, backupDir } = await setup();
    const b = await createBackup({ source, backupDir, name: 'b1', fsync: false });
    toFormat1(join(backupDir, 'b1')); // as the previous release wrote it: manifest inline
    const file = join(backupDir, 'b1/.backup_metadata.json');
    const text = await readFile(file, 'utf8');
    const at = text.indexOf('"manifest": [');
    // Break the manifest (not JSON any more); the head and the end of the file stay as written.
    const open = at + '"manifest": ['.length;
    await writeFile(file, `${text.slice(0, open)}@@not json@@${text.slice(open)}`);
    expect(() => JSON.parse(text.slice(0, open) + '@@' + text.slice(open))).toThrow();
    const l = await listBackups({ backupDir });
    expect(l.damaged).toEqual([]);
    expect(l.backups).toEqual([expect.objectContaining({ name: 'b1', fileCount: b.fileCount, totalBytes: b.totalBytes, checksums: true })]);
    expect(l.backups[0]!.summary?.agentIds).toEqual(b.summary?.agentIds);
    await expect(showBackup({ backupDir, name: 'b1' })).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    await expect(verifyBackup({ backupDir, name: 'b1' })).rejects.toMatchObject({ code: 'BACKUP_INVALID' });
    const lv = await cli(['list', '--verify', '--backup-dir', backupDir]);
    expect(lv.code).toBe(3);
  });

  it('falls back to the whole file when the head cannot be used (manifest not last, truncated file)', async () => {
    const { source, backupDir } = await setup();
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    toFormat1(join(backupDir, 'b1'));
    const file = join(backupDir, 'b1/.backup_metadata.json');
    const meta = JSON.parse(await readFile(file, 'utf8'));
    const { manifest, ...rest } = meta;
    await writeFile(file, JSON.stringify({ manifest, ...rest }, null, 2)); // manifest first: no head
    expect((await listBackups({ backupDir })).backups.map((b) => b.name)).toEqual(['b1']);
    const text = JSON.stringify(meta, null, 2);
    await writeFile(file, text.slice(0, text.length - 40)); // truncated: damaged, as before
    const l = await listBackups({ backupDir });
    expect(l.backups).toEqual([]);
    expect(l.damaged.map((d) => d.name)).toEqual(['b1']);
  });

  it('a huge manifest is never parsed by list (it lists as fast as a small one would, and a NUL inside it changes nothing)', async () => {
    const { root, backupDir } = await setup();
    const source = join(root, 'many');
    await makeManyFiles(source, 3000, 'x');
    await createBackup({ source, backupDir, name: 'big', fsync: false });
    toFormat1(join(backupDir, 'big'));
    const file = join(backupDir, 'big/.backup_metadata.json');
    const text = await readFile(file, 'utf8');
    expect(text.length).toBeGreaterThan(400_000);
    // Make every manifest entry unparsable: list must not need them.
    const at = text.indexOf('"manifest": [');
    await writeFile(file, text.slice(0, at) + text.slice(at).replaceAll('"sha256"', '\u0000sha256"'));
    const l = await listBackups({ backupDir });
    expect(l.backups.map((b) => [b.name, b.fileCount])).toEqual([['big', 3000]]);
  });
});

describe('backup --keep-*: retention of the same source, after a successful backup only', () => {
  it('prunes only the backups of the backed-up source, after the backup; never when the backup failed', async () => {
    const { root, source, backupDir } = await setup();
    const other = join(root, 'other');
    await makeRichTree(other);
    const hour = 3_600_000;
    for (let i = 1; i <= 3; i++) {
      await createBackup({ source, backupDir, name: `s${i}`, fsync: false, now: new Date(Date.now() - (10 - i) * hour) });
      await createBackup({ source: other, backupDir, name: `o${i}`, fsync: false, now: new Date(Date.now() - (10 - i) * hour) });
    }
    const names = async () => (await readdir(backupDir)).filter((n) => !n.startsWith('.')).sort();

    // A failing backup (the name exists) prunes nothing
    const failed = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--name', 's3', '--keep-last', '1']);
    expect(failed.code).toBe(1);
    expect(await names()).toEqual(['o1', 'o2', 'o3', 's1', 's2', 's3']);
    // A missing source prunes nothing either
    const missing = await cli(['backup', '--source', join(root, 'nope'), '--backup-dir', backupDir, '--keep-last', '1']);
    expect(missing.code).toBe(1);
    expect(await names()).toEqual(['o1', 'o2', 'o3', 's1', 's2', 's3']);
    // A bad rule is a usage error before anything is written
    const bad = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--name', 's9', '--keep-within', '7 days']);
    expect(bad.code).toBe(2);
    expect(await names()).toEqual(['o1', 'o2', 'o3', 's1', 's2', 's3']);

    const ok = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--name', 's4', '--keep-last', '2', '--json']);
    expect(ok.code).toBe(0);
    const r = json(ok);
    expect(r.pruned.removed.map((d: any) => d.name).sort()).toEqual(['s1', 's2']);
    expect(r.pruned.kept.map((d: any) => d.name)).toEqual(['s4', 's3']);
    expect(await names()).toEqual(['o1', 'o2', 'o3', 's3', 's4']);
    for (const n of ['s3', 's4', 'o1']) expect((await cli(['verify', n, '--backup-dir', backupDir])).code, n).toBe(0);

    const api = await createBackup({ source: other, backupDir, name: 'o4', fsync: false, keep: { keepMonthly: 1 } });
    expect(api.pruned?.removed.map((d) => d.name).sort()).toEqual(['o1', 'o2', 'o3']);
    expect(await names()).toEqual(['o4', 's3', 's4']);
    const human = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--name', 's5', '--keep-within', '1h']);
    expect(human.stdout).toMatch(/^Pruned 1 backup\(s\) of this source: s3; 2 kept\.$/m); // s3 is 7 hours older than s5
  });
});

describe('prune --keep-monthly, --keep-within (CLI)', () => {
  it('keeps by month and within a duration before the newest backup; a malformed duration is a usage error', async () => {
    const { source, backupDir } = await setup();
    const day = 86_400_000;
    const base = Date.now() - 400 * day;
    // Two backups a month apart, then three on consecutive days (the newest 400 days ago: time has passed since)
    const times = [base - 62 * day, base - 31 * day, base - 2 * day, base - day, base];
    for (const [i, t] of times.entries()) await createBackup({ source, backupDir, name: `m${i}`, fsync: false, now: new Date(t) });
    const bad = await cli(['prune', '--keep-within', '7x', '--backup-dir', backupDir]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--keep-within needs a duration/);
    const within = json(await cli(['prune', '--keep-within', '36h', '--dry-run', '--json', '--backup-dir', backupDir]));
    expect(within.kept.map((d: any) => d.name)).toEqual(['m4', 'm3']); // counted from m4, not from now
    expect(within.kept[1].reasons).toEqual(['within']);
    const monthly = json(await cli(['prune', '--keep-monthly', '12', '--dry-run', '--json', '--backup-dir', backupDir]));
    const months = new Set(times.map((t) => new Date(t).getMonth()));
    expect(monthly.kept.length).toBe(months.size);
    expect(monthly.kept.every((d: any) => d.reasons.includes('monthly'))).toBe(true);
    const h = await cli(['prune', '--keep-last', '1', '--keep-within', '1d', '--backup-dir', backupDir]);
    expect(h.code).toBe(0);
    expect((await listBackups({ backupDir })).backups.map((b) => b.name)).toEqual(['m4', 'm3']);
    for (const n of ['m4', 'm3']) expect((await verifyBackup({ backupDir, name: n })).ok).toBe(true);
  });
});
