import { cp, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { cli, FIXTURES, json, makeRichTree } from './helpers.js';

const tempDir = useTempDir('dawn-backup-repo-format-');

/** What test/fixtures/repo-v1 holds (see its README). */
async function expectFixtureTree(root: string): Promise<void> {
  expect(await readFile(join(root, 'a.txt'), 'utf8')).toBe('hello v1\n');
  expect(await readFile(join(root, 'sub/b.txt'), 'utf8')).toBe('second file\n');
  expect(await readFile(join(root, 'sub/c.txt'), 'utf8')).toBe('z'.repeat(2000));
  expect(await readlink(join(root, 'link'))).toBe('a.txt');
}

describe('repositories of format version 1 (loose objects, written by the previous release)', () => {
  for (const kind of ['plain', 'encrypted'] as const) {
    it(`${kind}: list, verify --read-data and restore on an empty machine still work`, async () => {
      const root = await tempDir();
      const repo = join(root, 'repo');
      await cp(join(FIXTURES, 'repo-v1', kind), repo, { recursive: true });
      const env = { PROJECT_DAWN_DATA_ROOT: join(root, 'data'), DAWN_BACKUP_DIR: join(root, 'backups'), ...(kind === 'encrypted' ? { DAWN_BACKUP_PASSWORD: 'fixture-password' } : {}) };
      const l = await cli(['list', '--repo', repo, '--json'], env);
      expect(l.code, l.stderr).toBe(0);
      expect(json(l).backups.map((b: any) => b.name)).toEqual(['v1']);
      const v = await cli(['verify', 'v1', '--repo', repo, '--read-data', '--json'], env);
      expect(v.code, v.stderr).toBe(0);
      expect(json(v)).toMatchObject({ objects: 3, checked: 3 });
      const r = await cli(['restore', 'v1', '--repo', repo, '--target', join(root, 'restored'), '--force'], env);
      expect(r.code, r.stderr).toBe(0);
      await expectFixtureTree(join(root, 'restored'));
    }, 60_000);
  }

  it('a push into a version 1 repository writes loose objects only (its older readers keep working)', async () => {
    const root = await tempDir();
    const repo = join(root, 'repo');
    await cp(join(FIXTURES, 'repo-v1', 'plain'), repo, { recursive: true });
    const data = join(root, 'data');
    await makeRichTree(data);
    const env = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups') };
    expect((await cli(['backup', '--name', 'new', '--quiet'], env)).code).toBe(0);
    const p = await cli(['push', 'new', '--repo', repo, '--json'], env);
    expect(p.code, p.stderr).toBe(0);
    expect(json(p).pushed[0]).toMatchObject({ snapshot: 'created', packs: 0 });
    expect(JSON.parse(await readFile(join(repo, 'config.json'), 'utf8')).format_version).toBe(1);
    expect((await readdir(repo)).filter((e) => e !== 'locks').sort()).toEqual(['config.json', 'objects', 'snapshots']);
    expect((await cli(['verify', 'new', '--repo', repo, '--read-data'], env)).code).toBe(0);
    // prune reads it too (each source keeps its newest backup: nothing to collect)
    const pr = await cli(['prune', '--repo', repo, '--keep-last', '1', '--json'], env);
    expect(pr.code, pr.stderr).toBe(0);
    expect(json(pr)).toMatchObject({ removed: [], garbage: 0, packsDeleted: 0 });
    expect((await cli(['verify', 'v1', '--repo', repo, '--read-data'], env)).code).toBe(0);
  }, 60_000);

  it('a new repository is version 2; a repository of a future version is refused with REPO_INVALID', async () => {
    const root = await tempDir();
    const repo = join(root, 'repo');
    expect((await cli(['init', '--repo', repo], {})).code).toBe(0);
    expect(JSON.parse(await readFile(join(repo, 'config.json'), 'utf8')).format_version).toBe(2);
    const future = join(root, 'future');
    await cp(join(FIXTURES, 'repo-v1', 'plain'), future, { recursive: true });
    const { writeFile } = await import('node:fs/promises');
    const cfg = JSON.parse(await readFile(join(future, 'config.json'), 'utf8'));
    await writeFile(join(future, 'config.json'), JSON.stringify({ ...cfg, format_version: 3 }));
    const r = await cli(['list', '--repo', future, '--json'], {});
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr).error).toMatchObject({ code: 'REPO_INVALID' });
    expect(JSON.parse(r.stderr).error.message).toContain('newer dawn-backup');
  });
});
