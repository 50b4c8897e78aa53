import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { readFile, rm } from 'node:fs/promises';
import { makeTempDir, repoRoot, useTempDir } from '@dawn/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBackend } from '../src/repo/backend.js';
import { backupMeta, cli, json, RICH_EXCLUDED, snapshot, STACK, without } from './helpers.js';
import { repoScenarios } from './repo-scenarios.js';
import { repoRestoreScenarios } from './repo-restore.js';

const run = promisify(execFile);
const SCRIPT = resolve(repoRoot, 'scripts/s3-server.sh');
const NEEDED = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'uuidgen', 'curl'];
const missing = NEEDED.filter((b) => !(process.env.PATH ?? '').split(':').some((d) => existsSync(join(d, b))));
const mustRun = process.env.CI === 'true';
const skip = missing.length > 0 && !mustRun;
if (skip) {
  console.warn(
    `[repo-s3] skipped: no Ceph (${missing.join(', ')} missing); to run the S3 tests: apt-get install -y --no-install-recommends ceph-mon ceph-osd radosgw uuid-runtime curl (Debian, root), or CI=true to make this a failure`,
  );
}

const tempDir = useTempDir('dawn-backup-repo-s3-');
const server = { dir: '', env: {} as NodeJS.ProcessEnv, endpoint: '' };

describe.skipIf(skip)('S3 repository (a real Ceph RGW on 127.0.0.1, started by this suite)', () => {
  beforeAll(async () => {
    // Not a useTempDir dir: those are removed after each test, and the daemons' pid files live here.
    server.dir = await makeTempDir('dawn-backup-s3-server-');
    // Own ports, own directory: never the server of another suite or of a developer.
    let lastErr: unknown;
    for (let attempt = 0; attempt < 3; attempt++) {
      const base = 20000 + Math.floor(Math.random() * 20000);
      const env = { ...process.env, CEPH_S3_DIR: join(server.dir, 'ceph'), CEPH_MON_PORT: String(base), CEPH_RGW_PORT: String(base + 2) };
      try {
        const { stdout } = await run('bash', [SCRIPT, 'start'], { env, timeout: 120_000 });
        const vars = Object.fromEntries(stdout.trim().split('\n').map((l) => l.split('=') as [string, string]));
        server.endpoint = vars.S3_ENDPOINT!;
        server.env = {
          CEPH_S3_DIR: env.CEPH_S3_DIR,
          AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY,
          AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY,
          AWS_REGION: vars.S3_REGION,
          AWS_ENDPOINT_URL_S3: vars.S3_ENDPOINT,
        };
        return;
      } catch (err) {
        lastErr = err;
        await run('bash', [SCRIPT, 'stop'], { env }).catch(() => undefined);
      }
    }
    throw lastErr;
  }, 400_000);

  afterAll(async () => {
    if (!server.dir) return;
    await run('bash', [SCRIPT, 'stop'], { env: { ...process.env, CEPH_S3_DIR: join(server.dir, 'ceph') }, timeout: 60_000 });
    await rm(server.dir, { recursive: true, force: true });
  }, 90_000);

  let n = 0;
  const s3Target = {
    url: (tag: string) => `s3://dawn-test/${tag}-${process.pid}-${n++}`,
    env: () => server.env,
  };
  repoScenarios(tempDir, s3Target);
  repoRestoreScenarios(tempDir, s3Target);

  it('an unreachable endpoint: a clear IO error, exit 1, nothing local changed', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const env = { ...server.env, AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9', PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups') };
    const { makeRichTree } = await import('./helpers.js');
    await makeRichTree(data);
    expect((await cli(['backup', '--name', 'b1', '--quiet'], env)).code).toBe(0);
    const before = await snapshot(root);
    const u = 's3://dawn-test/unreachable';
    for (const args of [
      ['init', '--repo', u],
      ['push', '--repo', u],
      ['list', '--repo', u],
      ['show', 'latest', '--repo', u],
      ['diff', 'b1', '--repo', u],
      ['verify', 'b1', '--repo', u, '--read-data-subset', '10%'],
      ['pull', 'b1', '--repo', u],
      ['prune', '--repo', u, '--keep-last', '1'],
      ['restore', 'latest', '--repo', u, '--target', data],
    ]) {
      const r = await cli([...args, '--json'], env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(1);
      const e = JSON.parse(r.stderr).error;
      expect(e.code).toBe('IO');
      expect(e.message).toContain('cannot be reached');
      expect(e.message).toContain('127.0.0.1:9');
      const text = await cli(args, env);
      expect(text.code).toBe(1);
      expect(text.stderr).toContain('cannot be reached');
      expect(text.stderr).not.toMatch(STACK);
      expect(text.stderr).not.toContain('This looks like a bug');
    }
    // --s3-endpoint wins over the environment
    const wrong = await cli(['list', '--repo', 's3://dawn-test/unreachable', '--s3-endpoint', 'http://127.0.0.1:9', '--json'], { ...env, AWS_ENDPOINT_URL_S3: server.env.AWS_ENDPOINT_URL_S3 });
    expect(wrong.code).toBe(1);
    expect(await snapshot(root)).toEqual(before);
    // backup --push: the backup is made and kept, the push fails with the same clear error
    const bp = await cli(['backup', '--push', '--repo', u, '--name', 'b2', '--keep-last', '1'], env);
    expect(bp.code).toBe(1);
    expect(bp.stderr).toContain('cannot be reached');
    expect(bp.stderr).toContain(`push b2 --repo ${u}`);
    expect(bp.stderr).not.toMatch(STACK);
    expect(json(await cli(['list', '--json'], env)).backups.map((b: any) => b.name).sort()).toEqual(['b1', 'b2']);
  }, 240_000);

  it('an encrypted repository on S3: init --encrypt, push, restore on a new machine; names reveal no content hash; a wrong password is WRONG_PASSWORD, exit 1, nothing changed', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const { makeRichTree } = await import('./helpers.js');
    await makeRichTree(data);
    const repo = `s3://dawn-test/encrypted-${process.pid}`;
    const env = { ...server.env, PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), DAWN_BACKUP_PASSWORD: 'correct horse battery staple' };
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
    expect((await run(['init', '--repo', repo, '--encrypt'])).code).toBe(0);
    const p = await run(['push', '--repo', repo, '--json']);
    expect(p.code, p.stderr).toBe(0);
    // Nothing on stderr of a successful run (cron mails it): not even the SDK's Node-version notice.
    expect(p.stderr).toBe('');
    expect(json(p).pushed[0].uploaded).toBe(json(p).pushed[0].objects);
    const meta = backupMeta(join(root, 'backups', 'b1'));
    const files = meta.manifest.filter((m: any) => m.type === 'file');
    const hashes = new Set(files.map((m: any) => m.sha256));
    const backend = await openBackend(repo, { env: server.env });
    // large contents are loose objects, small ones in packs described by (sealed) indexes
    const loose = await backend.list('objects/');
    expect(loose.length).toBe(new Set(files.filter((m: any) => m.size >= 512 * 1024).map((m: any) => m.sha256)).size);
    const packs = await backend.list('packs/');
    const indexes = await backend.list('index/');
    expect(packs.length).toBeGreaterThan(0);
    expect(indexes.length).toBeGreaterThan(0);
    for (const k of [...loose, ...packs, ...indexes]) expect(hashes.has(k.split('/').pop())).toBe(false);
    for (const k of ['snapshots/b1.json', ...indexes, ...packs]) {
      const body = Buffer.from((await backend.get(k))!);
      expect(body.includes(Buffer.from('node.key'))).toBe(false);
      expect(body.includes(Buffer.from('secret-key-material'))).toBe(false);
      for (const h of hashes) expect(body.includes(Buffer.from(h as string))).toBe(false);
    }
    expect((await run(['verify', 'b1', '--repo', repo, '--read-data'])).code).toBe(0);

    const before = await snapshot(root);
    for (const args of [['list', '--repo', repo], ['show', 'b1', '--repo', repo], ['pull', 'b1', '--repo', repo, '--backup-dir', join(root, 'pulled')], ['restore', 'b1', '--repo', repo, '--target', data]]) {
      const r = await run([...args, '--json'], { DAWN_BACKUP_PASSWORD: 'wrong' });
      expect(r.code, args.join(' ')).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('WRONG_PASSWORD');
    }
    expect(await snapshot(root)).toEqual(before);

    const fresh = join(root, 'fresh');
    const r = await run(['restore', 'latest', '--repo', repo, '--target', join(fresh, 'data'), '--backup-dir', join(fresh, 'backups')]);
    expect(r.code, r.stderr).toBe(0);
    expect(await snapshot(join(fresh, 'data'))).toEqual(without(await snapshot(data), RICH_EXCLUDED));
  }, 180_000);

  it('a push of a new backup of the unchanged tree reads the indexes from the local cache; a re-push of a backup there whole takes no lock (a running prune does not stop it)', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    const { makeManyFiles } = await import('./helpers.js');
    await makeManyFiles(data, 300, 'c');
    const repo = `s3://dawn-test/cache-${process.pid}`;
    const cache = join(root, 'cache');
    const env = { ...server.env, PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), DAWN_BACKUP_CACHE_DIR: cache };
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    expect((await run(['init', '--repo', repo])).code).toBe(0);
    const push = async (name: string, extra: NodeJS.ProcessEnv = {}) => {
      expect((await run(['backup', '--name', name, '--quiet'], extra)).code).toBe(0);
      const r = await run(['push', name, '--repo', repo, '--json'], extra);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toBe('');
      return json(r).pushed[0];
    };
    await push('b1');
    const backend = await openBackend(repo, { env: server.env });
    const indexes = await backend.list('index/');
    expect(indexes.length).toBeGreaterThan(0);
    const cached = await push('b2');
    const uncached = await push('b3', { DAWN_BACKUP_NO_CACHE: '1' });
    expect(cached.uploaded + uncached.uploaded).toBe(0);
    expect(uncached.requests - cached.requests).toBe(indexes.length);
    // another host's prune holds its lock: a push that needs none goes through, one that needs it waits
    expect(await backend.putIfAbsent('locks/prune-elsewhere-1-abcd1234.json', Buffer.from(JSON.stringify({ kind: 'prune', host: 'elsewhere', pid: 1, created_at: Date.now() / 1000 })))).toBe(true);
    const again = await run(['push', 'b1', '--repo', repo, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(json(again).pushed[0]).toMatchObject({ snapshot: 'exists', uploaded: 0, requests: 5 });
    expect((await backend.list('locks/')).length).toBe(1);
    expect((await run(['backup', '--name', 'b4', '--quiet'])).code).toBe(0);
    const busy = await run(['push', 'b4', '--repo', repo, '--json']);
    expect(busy.code).toBe(1);
    expect(JSON.parse(busy.stderr).error.code).toBe('BUSY');
  }, 120_000);
});
