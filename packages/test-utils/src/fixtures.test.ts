import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { expect, test } from 'vitest';
import { fixturesDir, repoRoot } from './tmp.ts';

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) out.push(relative(dir, join(e.parentPath, e.name)));
  }
  return out.sort();
}

test('the vendored Python fixtures are present (a clone tests itself)', async () => {
  const list = await files(fixturesDir);
  expect(list).toContain(join('data', 'mesh', 'peer_registry.json'));
  expect(list).toContain(join('backups', 'dawn_backup_20261125_101500', '.backup_metadata.json'));
});

const shared = resolve(repoRoot, '../shared/fixtures/python-dawn');
test.skipIf(!existsSync(shared))('the vendored fixtures are byte-identical to the shared ones', async () => {
  const ours = await files(fixturesDir);
  expect(ours).toEqual(await files(shared));
  for (const f of ours) {
    expect((await readFile(join(fixturesDir, f))).equals(await readFile(join(shared, f))), f).toBe(true);
  }
});
