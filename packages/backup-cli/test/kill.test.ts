import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { copyDir, spawnNode, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { BIN, cli, json, makeManyFiles, snapshot } from './helpers.js';

const tempDir = useTempDir('dawn-backup-kill-');
const KILLS = 8;
const FILES = 2000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run the binary and SIGKILL it after `delayMs` (if it is still running). */
async function runAndKill(args: string[], delayMs: number): Promise<{ killed: boolean; code: number | null }> {
  const child = spawnNode(BIN, args, { env: { PROJECT_DAWN_DATA_ROOT: '' } });
  const timer = sleep(delayMs).then(() => child.kill('SIGKILL'));
  const exit = await child.exited;
  await timer;
  return { killed: exit.signal === 'SIGKILL', code: exit.code };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

describe('SIGKILL at random moments', () => {
  it(`backup: never a complete-looking partial backup; the next run cleans up and may reuse the name (${KILLS} kills)`, async () => {
    const root = await tempDir();
    const src = join(root, 'src');
    await makeManyFiles(src, FILES, 'v1');
    const backups = join(root, 'backups');
    const base = ['backup', '--source', src, '--backup-dir', backups];
    const full = await timed(async () => expect((await cli([...base, '--name', 'calibration'])).code).toBe(0));
    const delays: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      const delay = Math.round(Math.random() * full * 1.1);
      delays.push(delay);
      const r = await runAndKill([...base, '--name', `k${k}`], delay);
      const listed = json(await cli(['list', '--backup-dir', backups, '--json']));
      const names = listed.backups.map((b: any) => b.name).sort();
      expect(listed.damaged, `delays ${delays}`).toEqual([]);
      // every directory that looks like a backup is a complete one
      const visible = (await readdir(backups)).filter((n) => !n.startsWith('.')).sort();
      expect(visible, `delays ${delays}`).toEqual(names);
      if (names.includes(`k${k}`)) {
        const v = await cli(['verify', `k${k}`, '--backup-dir', backups]);
        expect(v.code, `k${k} listed after kill at ${delay} ms: ${v.stderr}`).toBe(0);
      } else {
        expect(r.killed, `k${k} missing though the run was not killed (code ${r.code})`).toBe(true);
      }
    }
    // a killed name is never blocked, and the leftovers of killed runs are cleaned by the next run
    const again = await cli([...base, '--name', `k${KILLS - 1}`]);
    const exists = (await readdir(backups)).includes(`k${KILLS - 1}`);
    expect(again.code === 0 || (exists && again.code === 1)).toBe(true);
    expect((await cli([...base, '--name', 'final'])).code).toBe(0);
    expect((await readdir(backups)).filter((n) => n.startsWith('.'))).toEqual([]);
    // Every run after the calibration was incremental (hard links to it): killed runs never
    // changed the backups they linked to, and the last one still shares their files.
    expect((await cli(['verify', 'calibration', '--backup-dir', backups])).code).toBe(0);
    expect((await cli(['verify', 'final', '--backup-dir', backups])).code).toBe(0);
    const one = 'd000/f0.json';
    expect((await lstat(join(backups, 'final', one))).ino).toBe((await lstat(join(backups, 'calibration', one))).ino);
  }, 240_000);

  it(`restore: the target always holds the whole old data or the whole new data (${KILLS} kills)`, async () => {
    const root = await tempDir();
    const srcA = join(root, 'srcA');
    const srcB = join(root, 'srcB');
    await makeManyFiles(srcA, FILES, 'A');
    await makeManyFiles(srcB, FILES / 2, 'B');
    const backups = join(root, 'backups');
    for (const [name, src] of [['A', srcA], ['B', srcB]] as const) {
      expect((await cli(['backup', '--source', src, '--backup-dir', backups, '--name', name])).code).toBe(0);
    }
    const snapA = await snapshot(srcA);
    const snapB = await snapshot(srcB);
    const target = join(root, 'target');
    await copyDir(srcA, target);
    const full = await timed(async () =>
      expect((await cli(['restore', 'B', '--backup-dir', backups, '--target', join(root, 'scratch'), '--overwrite'])).code).toBe(0),
    );
    const delays: number[] = [];
    let windows = 0;
    for (let k = 0; k < KILLS; k++) {
      const delay = Math.round(Math.random() * full * 1.3);
      delays.push(delay);
      const args = ['restore', k % 2 === 0 ? 'B' : 'A', '--backup-dir', backups, '--target', target, '--force', ...(k % 4 === 3 ? ['--overwrite'] : [])];
      await runAndKill(args, delay);
      const present = (await readdir(root)).includes('target');
      if (!present) {
        // killed between the two renames of the swap: both halves are beside it, the next run completes it
        windows++;
        const beside = (await readdir(root)).filter((n) => n.startsWith('.dawn-restore-'));
        expect(beside.some((n) => n.endsWith('.old')) && beside.some((n) => n.endsWith('.new')), `delays ${delays}`).toBe(true);
        continue;
      }
      const state = await snapshot(target);
      expect([snapA, snapB], `after a kill at ${delay} ms (delays ${delays})`).toContainEqual(state);
    }
    // a complete run recovers whatever was left and ends with the new data
    const last = await cli(['restore', 'B', '--backup-dir', backups, '--target', target, '--force']);
    expect(last.code, last.stderr).toBe(0);
    expect(await snapshot(target)).toEqual(snapB);
    expect((await readdir(root)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect((await readdir(backups)).filter((n) => n.startsWith('.'))).toEqual([]);
    // every pre_restore backup that was completed is a whole, verifiable backup
    const listed = json(await cli(['list', '--backup-dir', backups, '--json']));
    expect(listed.damaged).toEqual([]);
    void windows;
  }, 240_000);
});
