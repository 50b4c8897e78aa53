import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from './tmp.ts';

/** Whether a real small file system can be mounted here (root, with `mount`): CI runs as root. */
export const canMountTmpfs: boolean =
  process.platform === 'linux' && process.getuid?.() === 0 && spawnSync('mount', ['--version']).status === 0;

/** Why full-disk tests are skipped, for the one line a skipped suite prints. */
export const tmpfsSkipReason = canMountTmpfs ? '' : 'real full-disk tests need root and mount (a tmpfs); CI runs them as root';

/**
 * Run `fn` with a directory on a fresh tmpfs of `size` (e.g. `'256k'`), unmounted afterwards
 * (also on failure). The file system really fills up: writes fail with ENOSPC.
 */
export async function withTinyFs<R>(size: string, fn: (dir: string) => Promise<R>): Promise<R> {
  const base = await makeTempDir('dawn-tinyfs-');
  const dir = join(base, 'fs');
  await mkdir(dir);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0755`, 'tmpfs', dir]);
  try {
    return await fn(dir);
  } finally {
    try {
      execFileSync('umount', ['-l', dir]);
    } catch {
      // already gone
    }
    await rm(base, { recursive: true, force: true });
  }
}

/** Fill the file system holding `dir` until a write fails, leaving `spare` bytes free (about). */
export async function fillUp(dir: string, spare = 0): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  let i = 0;
  for (let chunk = 64 * 1024; chunk >= 512; ) {
    try {
      await writeFile(join(dir, `.filler-${i++}`), Buffer.alloc(chunk));
    } catch {
      chunk >>= 1;
    }
  }
  if (spare > 0) {
    const fillers = (await readdir(dir)).filter((n) => n.startsWith('.filler-'));
    let freed = 0;
    for (const f of fillers) {
      if (freed >= spare) break;
      await rm(join(dir, f));
      freed += 512;
    }
  }
}
