import * as fs from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, restoreBackup, verifyBackup } from '../src/index.js';
import { linkConfined, lstatConfined, openDirConfined, PathChangedError, readDirConfined, readlinkConfined } from '../src/confine.js';
import { linkInto } from '../src/restore.js';

const tempDir = useTempDir('dawn-backup-confine-');

const SECRET = 'TOP SECRET: root-only\n';
const BIG = 300 * 1024; // above the synchronous copy path: read by the hash pool

/** Every file's bytes and every symlink's target under `dir`, concatenated: to prove no secret got in. */
function allBytes(dir: string): string {
  let out = '';
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isSymbolicLink()) out += `${fs.readlinkSync(p)}\n`;
    else if (e.isDirectory()) out += allBytes(p);
    else if (e.isFile()) out += fs.readFileSync(p, 'latin1');
  }
  return out;
}

/**
 * `<root>/outside` holds what an attacker points a swapped directory at: the same names as
 * `src/agents`, holding a secret (a small file, a big one, a symlink).
 */
async function scene(root: string) {
  const src = join(root, 'src');
  const outside = join(root, 'outside');
  for (const base of [join(src, 'agents'), outside]) {
    await mkdir(join(base, 'a'), { recursive: true });
  }
  await writeFile(join(src, 'top.json'), '{"top": 1}\n');
  await writeFile(join(src, 'agents/a/state.json'), '{"mine": true}\n');
  await writeFile(join(src, 'agents/a/big.bin'), Buffer.alloc(BIG, 'm'));
  fs.symlinkSync('state.json', join(src, 'agents/a/link'));
  await writeFile(join(outside, 'a/state.json'), SECRET);
  await writeFile(join(outside, 'a/big.bin'), Buffer.concat([Buffer.from(SECRET), Buffer.alloc(BIG, 's')]));
  fs.symlinkSync('/SECRET-TARGET', join(outside, 'a/link'));
  return { src, outside, backups: join(root, 'backups') };
}

/** `mv <dir> <dir>.orig; ln -s <to> <dir>` */
function swap(dir: string, to: string): void {
  fs.renameSync(dir, `${dir}.orig`);
  fs.symlinkSync(to, dir);
}

describe('nothing outside the tree is read when a directory on the way is swapped for a symlink', () => {
  it('backup: a directory swapped between the walk and the copy is skipped with a warning, never copied from outside', async () => {
    const root = await tempDir();
    const { src, outside, backups } = await scene(root);
    let swapped = false;
    const b = await createBackup({
      source: src,
      backupDir: backups,
      name: 'raced',
      fsync: false,
      // Called after the walk, before the first copy: a deterministic stand-in for the race.
      onProgress: (e) => {
        if (e.phase === 'copy' && e.files === 0 && !swapped) {
          swapped = true;
          swap(join(src, 'agents'), outside);
        }
      },
    });
    expect(swapped).toBe(true);
    const text = allBytes(join(backups, 'raced'));
    expect(text).not.toContain('TOP SECRET');
    expect(text).not.toContain('SECRET-TARGET');
    const skipped = b.skipped.map((s) => s.rel).sort();
    expect(skipped).toEqual(['agents/a/big.bin', 'agents/a/link', 'agents/a/state.json']);
    expect(b.warnings.join('\n')).toMatch(/agents\/a\/state\.json: a directory on its path was replaced/);
    // The rest is there, and the backup verifies.
    expect(await readFile(join(backups, 'raced/top.json'), 'utf8')).toBe('{"top": 1}\n');
    expect((await verifyBackup({ name: 'raced', backupDir: backups })).status).toBe('ok');
  });

  it('verify and restore refuse a backup whose directory was swapped for a symlink to an identical outside copy', async () => {
    const root = await tempDir();
    const { src, backups } = await scene(root);
    await createBackup({ source: src, backupDir: backups, name: 'b', fsync: false });
    // An outside copy identical to the backup's agents/: without the check, verify would pass reading it.
    const decoy = join(root, 'decoy');
    fs.cpSync(join(backups, 'b/agents'), decoy, { recursive: true, verbatimSymlinks: true });
    const agents = join(backups, 'b/agents');

    let swapped = false;
    const v = await verifyBackup({
      name: 'b',
      backupDir: backups,
      onProgress: (e) => {
        if (e.phase === 'verify' && e.files === 0 && !swapped) {
          swapped = true;
          swap(agents, decoy); // after the tree was compared, before the files are hashed
        }
      },
    });
    expect(swapped).toBe(true);
    expect(v.status).toBe('damaged');
    expect(v.problems.map((p) => p.path).sort()).toEqual(['agents/a/big.bin', 'agents/a/state.json']);
    expect(v.problems[0]!.detail).toMatch(/refused to read outside the backup/);

    // Swapped before verify even starts: the tree comparison refuses to list through the link.
    const again = await verifyBackup({ name: 'b', backupDir: backups });
    expect(again.status).toBe('damaged');

    // Restore: swapped back to the real directory before it starts, swapped again during the copy.
    fs.unlinkSync(agents);
    fs.renameSync(`${agents}.orig`, agents);
    const target = join(root, 'target');
    swapped = false;
    await expect(
      restoreBackup({
        name: 'b',
        backupDir: backups,
        target,
        fsync: false,
        onProgress: (e) => {
          if (e.phase === 'restore' && e.files === 0 && !swapped) {
            swapped = true;
            swap(agents, decoy);
          }
        },
      }),
    ).rejects.toMatchObject({ code: 'VERIFY_FAILED' });
    expect(swapped).toBe(true);
    expect(fs.existsSync(target)).toBe(false);
  });

  it('restore keeps excluded entries only from inside the target: a swapped parent is never linked or copied from', async () => {
    const root = await tempDir();
    const target = join(root, 'target');
    const outside = join(root, 'outside');
    await mkdir(join(target, 'logs'), { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(target, 'logs/dawn.log'), 'my log\n');
    await writeFile(join(outside, 'dawn.log'), SECRET);
    fs.symlinkSync('/SECRET-TARGET', join(outside, 'link.log'));
    fs.symlinkSync('mine', join(target, 'logs/link.log'));
    const newDir = join(root, 'new');
    await mkdir(newDir);

    // The walk of the target saw logs/ as a directory; then logs/ is swapped for a symlink.
    swap(join(target, 'logs'), outside);
    const skipped: Buffer[] = [];
    await expect(linkInto(Buffer.from(join(target, 'logs/dawn.log')), Buffer.from(join(newDir, 'dawn.log')), skipped)).rejects.toBeInstanceOf(PathChangedError);
    await expect(linkInto(Buffer.from(join(target, 'logs/link.log')), Buffer.from(join(newDir, 'link.log')), skipped)).rejects.toBeInstanceOf(PathChangedError);
    expect(fs.readdirSync(newDir)).toEqual([]);
    // logs/ itself, now a symlink, is kept as a link (never followed).
    await linkInto(Buffer.from(join(target, 'logs')), Buffer.from(join(newDir, 'swapped')), skipped);
    expect(fs.readlinkSync(join(newDir, 'swapped'))).toBe(outside);

    // Unswapped, the same calls keep the entries (a hard link to the same inode).
    fs.unlinkSync(join(target, 'logs'));
    fs.renameSync(join(target, 'logs.orig'), join(target, 'logs'));
    await linkInto(Buffer.from(join(target, 'logs')), Buffer.from(join(newDir, 'logs')), skipped);
    expect(fs.statSync(join(newDir, 'logs/dawn.log')).ino).toBe(fs.statSync(join(target, 'logs/dawn.log')).ino);
    expect(fs.readlinkSync(join(newDir, 'logs/link.log'))).toBe('mine');
    expect(skipped).toEqual([]);
  });

  it('the confined readers refuse a path with a symlink on the way and accept the real one', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'real/sub'), { recursive: true });
    fs.symlinkSync('x', join(root, 'real/sub/l'));
    fs.symlinkSync('real', join(root, 'alias'));
    const real = fs.realpathSync(root);
    expect((await readDirConfined(join(real, 'real/sub'))).map((d) => d.name)).toEqual(['l']);
    expect(readlinkConfined(join(real, 'real/sub/l')).toString()).toBe('x');
    await expect(readDirConfined(join(real, 'alias/sub'))).rejects.toBeInstanceOf(PathChangedError);
    expect(() => readlinkConfined(join(real, 'alias/sub/l'))).toThrow(PathChangedError);
    expect(() => openDirConfined(join(real, 'alias'))).toThrow(PathChangedError); // the last component: O_NOFOLLOW
    expect(lstatConfined(join(real, 'real/sub/l'))?.isSymbolicLink()).toBe(true);
    expect(lstatConfined(join(real, 'alias/sub/l'))).toBeUndefined();
    // Linking a file (restore's fallback for a file it may not read) goes through the checked parent too.
    await writeFile(join(real, 'real/sub/f'), 'f');
    await expect(linkConfined(join(real, 'alias/sub/f'), join(real, 'g'), new Error('no /proc'))).rejects.toBeInstanceOf(PathChangedError);
    expect(fs.existsSync(join(real, 'g'))).toBe(false);
    await linkConfined(join(real, 'real/sub/f'), join(real, 'g'), new Error('no /proc'));
    expect(fs.statSync(join(real, 'g')).ino).toBe(fs.statSync(join(real, 'real/sub/f')).ino);
  });
});
