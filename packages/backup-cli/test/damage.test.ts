import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { cli, json, makeRichTree, snapshot, STACK } from './helpers.js';

const tempDir = useTempDir('dawn-backup-damage-');

/** A backup `b` of a rich tree, and a populated restore target. */
async function setup() {
  const root = await tempDir();
  const src = join(root, 'src');
  await makeRichTree(src);
  const backups = join(root, 'backups');
  const made = await cli(['backup', '--source', src, '--backup-dir', backups, '--name', 'b']);
  expect(made.code, made.stderr).toBe(0);
  const target = await copyFixture('data', join(root, 'target'));
  return { root, backups, backup: join(backups, 'b'), target };
}

const DAMAGE: [string, (backup: string) => Promise<void>, RegExp][] = [
  [
    'a flipped byte',
    async (b) => {
      const p = join(b, 'agents/first_agent/state.json');
      const buf = await readFile(p);
      buf[5] = buf[5]! ^ 0x01;
      await writeFile(p, buf);
    },
    /modified\s+agents\/first_agent\/state.json/,
  ],
  ['a flipped byte in a large file', async (b) => {
    const p = join(b, 'big.bin');
    const buf = await readFile(p);
    buf[buf.length - 3] = buf[buf.length - 3]! ^ 0x80;
    await writeFile(p, buf);
  }, /modified\s+big.bin/],
  ['a deleted file', (b) => rm(join(b, 'keys/node.key')), /missing\s+keys\/node.key/],
  ['an added file', (b) => writeFile(join(b, 'mesh/intruder.json'), '{}'), /extra\s+mesh\/intruder.json/],
  ['a deleted empty directory', (b) => rm(join(b, 'empty/nested/dirs'), { recursive: true }), /missing\s+empty\/nested\/dirs/],
  ['a file replaced by a symlink', async (b) => {
    await rm(join(b, 'tools/run.sh'));
    await symlink('/etc/passwd', join(b, 'tools/run.sh'));
  }, /type\s+tools\/run.sh/],
];

describe('a damaged backup: verify exits 3, restore refuses, the target is untouched', () => {
  it.each(DAMAGE.map((d, i) => [...d, i === 0] as const))('%s', async (_, damage, problem, thorough) => {
    const { root, backups, backup, target } = await setup();
    await damage(backup);

    const v = await cli(['verify', 'b', '--backup-dir', backups]);
    expect(v.code).toBe(3);
    expect(v.stderr).toMatch(/DAMAGED/);
    expect(v.stderr).toMatch(problem);
    if (thorough) {
      const vj = json(await cli(['verify', 'b', '--backup-dir', backups, '--json']));
      expect(vj).toMatchObject({ status: 'damaged', ok: false });
      expect(vj.problems.length).toBeGreaterThan(0);
    }

    const before = await snapshot(target);
    const r = await cli(['restore', 'b', '--backup-dir', backups, '--target', target, '--force']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/failed verification/);
    expect(r.stderr).not.toMatch(STACK);
    expect(await snapshot(target)).toEqual(before);
    // no temp dirs left, no pre_restore backup made
    expect((await readdir(root)).sort()).toEqual(['backups', 'src', 'target']);
    expect(await readdir(backups)).toEqual(['b']);

    if (thorough) {
      const lv = await cli(['list', '--verify', '--backup-dir', backups]);
      expect(lv.code).toBe(3);
      expect(lv.stdout).toMatch(/DAMAGED/);
    }
  });

  it('damaged metadata: verify and restore exit 3, list reports it', async () => {
    const { backups, backup, target } = await setup();
    await writeFile(join(backup, '.backup_metadata.json'), '{"backup_name": "b", ');
    const before = await snapshot(target);
    const v = await cli(['verify', 'b', '--backup-dir', backups, '--json']);
    expect(v.code).toBe(3);
    expect(JSON.parse(v.stderr).error.code).toBe('BACKUP_INVALID');
    expect((await cli(['restore', 'b', '--backup-dir', backups, '--target', target, '--force'])).code).toBe(3);
    expect(await snapshot(target)).toEqual(before);
    const l = json(await cli(['list', '--backup-dir', backups, '--json']));
    expect(l.backups).toEqual([]);
    expect(l.damaged.map((i: any) => i.name)).toEqual(['b']);
  });
});

describe('a hand-made malicious backup: restore refuses, nothing appears outside the target', () => {
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const META = (manifest: unknown[]) => ({
    backup_name: 'evil',
    timestamp: '2026-11-26T00:21:37.234654',
    source_dir: '/x',
    backup_dir: '/x',
    format: 'dawn-backup',
    format_version: 1,
    manifest,
  });

  const CASES: [string, (backup: string, outside: string) => Promise<unknown[]>][] = [
    [
      'a ../ path',
      async (b) => {
        await writeFile(join(b, '..', 'x'), 'escaped');
        return [{ path: '../x', type: 'file', size: 7, mode: '0644', sha256: sha('escaped') }];
      },
    ],
    [
      'a nested ../ path',
      async (b) => {
        await mkdir(join(b, 'a'));
        return [
          { path: 'a', type: 'dir', mode: '0755' },
          { path: 'a/../../../x', type: 'file', size: 7, mode: '0644', sha256: sha('escaped') },
        ];
      },
    ],
    ['an absolute path', async (_, outside) => [{ path: join(outside, 'abs'), type: 'file', size: 3, mode: '0644', sha256: sha('abs') }]],
    [
      'a symlinked directory followed by a file beneath it',
      async (b, outside) => {
        await symlink(outside, join(b, 'd'));
        await writeFile(join(outside, 'f'), 'pwned'); // so the copy could "succeed" through the link
        return [
          { path: 'd', type: 'symlink', target: outside },
          { path: 'd/f', type: 'file', size: 5, mode: '0644', sha256: sha('pwned') },
        ];
      },
    ],
    [
      'a directory that is really a symlink in the backup',
      async (b, outside) => {
        await symlink(outside, join(b, 'd'));
        await writeFile(join(outside, 'f'), 'pwned');
        return [
          { path: 'd', type: 'dir', mode: '0755' },
          { path: 'd/f', type: 'file', size: 5, mode: '0644', sha256: sha('pwned') },
        ];
      },
    ],
  ];

  it.each(CASES)('%s', async (_, make) => {
    const root = await tempDir();
    const backups = join(root, 'backups');
    const backup = join(backups, 'evil');
    const outside = join(root, 'outside');
    await mkdir(backup, { recursive: true });
    await mkdir(outside);
    const manifest = await make(backup, outside);
    await writeFile(join(backup, '.backup_metadata.json'), JSON.stringify(META(manifest), null, 2));
    const outsideBefore = await snapshot(outside);
    const rootBefore = (await readdir(root)).sort();
    const target = join(root, 'target');

    const r = await cli(['restore', 'evil', '--backup-dir', backups, '--target', target, '--json']);
    expect(r.code).toBe(3);
    expect(['UNSAFE_PATH', 'VERIFY_FAILED']).toContain(JSON.parse(r.stderr).error.code);
    expect(await snapshot(outside)).toEqual(outsideBefore);
    expect((await readdir(root)).sort()).toEqual(rootBefore); // no target, no temp dir, no x
    const v = await cli(['verify', 'evil', '--backup-dir', backups]);
    expect(v.code).toBe(3);
  });
});
