import * as fs from 'node:fs';
import { chmod, mkdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, diffBackup } from '../src/index.js';
import { cli, json, snapshot, STACK } from './helpers.js';

const tempDir = useTempDir('dawn-backup-diff-');

const paths = (list: { path: string }[]) => list.map((e) => e.path).sort();

describe('diff against hand-made trees', () => {
  it('backup -> live: exactly the added, removed, modified, mode and type changes; excluded files are not "added"; nothing is written', async () => {
    const root = await tempDir();
    const data = await copyFixture('data', join(root, 'data'));
    await writeFile(join(data, 'same-size.txt'), 'aaaa');
    await symlink('same-size.txt', join(data, 'link'));
    await writeFile(join(data, 'becomes-dir'), 'x');
    await createBackup({ source: data, backupDir: join(root, 'bk'), name: 'b', fsync: false });
    const backupsBefore = await snapshot(join(root, 'bk'));

    await writeFile(join(data, 'new.json'), '{}\n'); // added
    await mkdir(join(data, 'newdir'));
    fs.writeFileSync(Buffer.concat([Buffer.from(join(data, 'bytes-')), Buffer.from([0xff])]), 'b'); // added, not UTF-8
    await unlink(join(data, 'agents/first_agent/state.json')); // removed
    await writeFile(join(data, 'same-size.txt'), 'bbbb'); // modified, same size
    await chmod(join(data, 'agents/coordinator/state.json'), 0o600); // mode
    await rm(join(data, 'becomes-dir'));
    await mkdir(join(data, 'becomes-dir')); // type
    await rm(join(data, 'link'));
    await symlink('elsewhere', join(data, 'link')); // modified (target)
    await writeFile(join(data, 'logs/new.log'), 'excluded by the backup\n');

    const d = await diffBackup({ name: 'b', backupDir: join(root, 'bk') });
    expect(d.to).toEqual({ kind: 'live', path: data });
    expect(paths(d.added)).toEqual(['bytes-\uFFFD', 'new.json', 'newdir']);
    expect(d.added.find((e) => e.path === 'bytes-\uFFFD')?.path_b64).toBe(Buffer.concat([Buffer.from('bytes-'), Buffer.from([0xff])]).toString('base64'));
    expect(paths(d.removed)).toEqual(['agents/first_agent/state.json']);
    expect(paths(d.modified)).toEqual(['link', 'same-size.txt']);
    expect(d.mode).toEqual([expect.objectContaining({ path: 'agents/coordinator/state.json', from: expect.objectContaining({ mode: '0644' }), to: expect.objectContaining({ mode: '0600' }) })]);
    expect(d.type).toEqual([expect.objectContaining({ path: 'becomes-dir', from: expect.objectContaining({ type: 'file' }), to: expect.objectContaining({ type: 'dir' }) })]);
    expect(d.agents).toEqual({ added: [], removed: ['first_agent'] });
    expect(d.peers).toEqual({ added: [], removed: [] });
    expect(await snapshot(join(root, 'bk'))).toEqual(backupsBefore);
  });

  it('backup -> backup, through the CLI: --json lists and the peers added and removed', async () => {
    const root = await tempDir();
    const data = await copyFixture('data', join(root, 'data'));
    const env = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'bk') };
    expect((await cli(['backup', '--name', 'one', '--quiet'], env)).code).toBe(0);
    const file = join(data, 'mesh/peer_registry.json');
    const doc = JSON.parse(fs.readFileSync(file, 'utf8')) as { peers: { node_id: string }[] };
    const gone = doc.peers[0]!.node_id;
    doc.peers[0] = { ...doc.peers[0]!, node_id: 'arrived' };
    await writeFile(file, JSON.stringify(doc, null, 2));
    await mkdir(join(data, 'agents/newcomer'));
    await writeFile(join(data, 'agents/newcomer/state.json'), JSON.stringify({ agent_id: 'newcomer', name: 'n', state: {} }));
    expect((await cli(['backup', '--name', 'two', '--quiet'], env)).code).toBe(0);
    const r = await cli(['diff', 'one', 'two', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const d = json(r);
    expect(d.to).toEqual({ kind: 'backup', name: 'two' });
    expect(d.peers).toEqual({ added: ['arrived'], removed: [gone] });
    expect(d.agents).toEqual({ added: ['newcomer'], removed: [] });
    expect(paths(d.modified)).toEqual(['mesh/peer_registry.json']);
    const human = await cli(['diff', 'one', 'two'], env);
    expect(human.stdout).toMatch(/\+ agents\/newcomer\/state\.json/);
    expect(human.stdout).toMatch(/Peers: 1 added \(arrived\), 1 removed/);
  });

  it('a Python backup (no checksums) is compared by hashing its files', async () => {
    const root = await tempDir();
    const backups = await copyFixture('backups', join(root, 'bk'));
    const data = await copyFixture('data', join(root, 'data'));
    await writeFile(join(data, 'agents/coordinator/state.json'), '{"agent_id": "coordinator", "name": "x", "state": {}}\n');
    const d = await diffBackup({ name: 'dawn_backup_20261125_101500', backupDir: backups, source: data });
    expect(paths(d.modified)).toEqual(['agents/coordinator/state.json']);
    expect(d.removed).toEqual([]);
  });

  it('usage and missing backups: coded errors, never a stack trace', async () => {
    const root = await tempDir();
    const env = { PROJECT_DAWN_DATA_ROOT: join(root, 'data'), DAWN_BACKUP_DIR: join(root, 'bk') };
    const missing = await cli(['diff', 'nope'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/No backup named "nope"/);
    const both = await cli(['diff', 'a', 'b', '--source', root], env);
    expect(both.code).toBe(2);
    for (const r of [missing, both]) expect(r.stderr).not.toMatch(STACK);
  });
});
