import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { repoScenarios } from './repo-scenarios.js';
import { repoRestoreScenarios } from './repo-restore.js';

const tempDir = useTempDir('dawn-backup-repo-dir-');
let base: string | undefined;

describe('directory repository', () => {
  const dirs = async () => {
    const d = await tempDir();
    base ??= await tempDir();
    return d;
  };
  const dirTarget = {
    // alternate the two spellings: a path and a file:// URL
    url: (tag: string) => (tag.length % 2 === 0 ? join(base!, tag) : pathToFileURL(join(base!, tag)).href),
    env: () => ({}),
  };
  repoScenarios(dirs, dirTarget);
  repoRestoreScenarios(dirs, dirTarget);
});

describe('encrypted repository (init --encrypt)', () => {
  const tmp = useTempDir('dawn-backup-repo-enc-');

  it('objects and snapshots are sealed, names reveal no content hash, the right password reads it all, a wrong one is WRONG_PASSWORD', async () => {
    const { readdir, readFile, writeFile } = await import('node:fs/promises');
    const { backupMeta, cli, json, makeRichTree, snapshot, without, RICH_EXCLUDED } = await import('./helpers.js');
    const root = await tmp();
    const data = join(root, 'data');
    await makeRichTree(data);
    const repo = join(root, 'repo');
    const env = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), DAWN_BACKUP_PASSWORD: 'correct horse battery staple' };
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
    const noPw = await run(['init', '--repo', repo, '--encrypt', '--json'], { DAWN_BACKUP_PASSWORD: '' });
    expect(noPw.code).toBe(1);
    expect(JSON.parse(noPw.stderr).error.code).toBe('WRONG_PASSWORD');
    expect((await run(['init', '--repo', repo, '--encrypt'])).code).toBe(0);
    const config = JSON.parse(await readFile(join(repo, 'config.json'), 'utf8'));
    expect(config.encryption).toMatchObject({ algorithm: 'aes-256-gcm', names: 'hmac-sha256', kdf: { name: 'scrypt', N: 131072, r: 8, p: 1 } });
    const p = await run(['push', '--repo', repo, '--json']);
    expect(p.code, p.stderr).toBe(0);

    const meta = backupMeta(join(root, 'backups', 'b1'));
    const hashes = new Set<string>(meta.manifest.filter((m: any) => m.type === 'file').map((m: any) => m.sha256));
    // loose objects, packs and indexes: no name and no byte reveals a content hash or a content
    const stored: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true })) (e.isDirectory() ? await walk(join(dir, e.name)) : stored.push(join(dir, e.name)));
    };
    for (const d of ['objects', 'packs', 'index']) await walk(join(repo, d));
    expect(stored.filter((f) => f.includes('/packs/')).length).toBeGreaterThan(0);
    expect(stored.filter((f) => f.includes('/index/')).length).toBeGreaterThan(0);
    const keyFile = await readFile(join(data, 'keys/node.key'));
    for (const f of stored) {
      expect(hashes.has(f.slice(f.lastIndexOf('/') + 1))).toBe(false);
      const bytes = await readFile(f);
      expect(bytes.includes(keyFile.subarray(0, 12))).toBe(false);
      for (const h of hashes) expect(bytes.includes(Buffer.from(h))).toBe(false);
    }
    expect((await readFile(join(repo, 'snapshots', 'b1.json'))).includes(Buffer.from('node.key'))).toBe(false);

    // the password from a file works as well as from the environment
    const pwFile = join(root, 'pw');
    await writeFile(pwFile, 'correct horse battery staple\n');
    const v = await run(['verify', 'b1', '--repo', repo, '--read-data', '--password-file', pwFile], { DAWN_BACKUP_PASSWORD: '' });
    expect(v.code, v.stderr).toBe(0);
    expect(json(await run(['push', '--repo', repo, '--json'])).pushed[0].uploaded).toBe(0);

    const before = await snapshot(root);
    for (const args of [['list', '--repo', repo], ['pull', 'b1', '--repo', repo, '--backup-dir', join(root, 'pulled')], ['restore', 'b1', '--repo', repo, '--target', data]]) {
      const r = await run([...args, '--json'], { DAWN_BACKUP_PASSWORD: 'wrong' });
      expect(r.code, args.join(' ')).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('WRONG_PASSWORD');
    }
    expect(await snapshot(root)).toEqual(before);

    const fresh = join(root, 'fresh');
    const r = await run(['restore', 'latest', '--repo', repo, '--target', join(fresh, 'data'), '--backup-dir', join(fresh, 'backups')]);
    expect(r.code, r.stderr).toBe(0);
    expect(await snapshot(join(fresh, 'data'))).toEqual(without(await snapshot(data), RICH_EXCLUDED));
  }, 120_000);
});
