import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { cli, json, makeManyFiles, STACK } from './helpers.js';

const tmp = useTempDir('dawn-backup-repo-cache-');
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/**
 * A data root of small files (packed), a directory repository, and a cache dir of its own. The
 * cache is backend-independent (store.ts reads through it): a directory repository shows it; the
 * S3 suite checks it on RGW.
 */
async function setup(extra: NodeJS.ProcessEnv = {}) {
  const root = await tmp();
  const data = join(root, 'data');
  await makeManyFiles(data, 300, 'a');
  const cache = join(root, 'cache');
  const env = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), DAWN_BACKUP_CACHE_DIR: cache, ...extra };
  const repo = join(root, 'repo');
  const run = (args: string[], more: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...more });
  expect((await run(['init', '--repo', repo, '--quiet'], { DAWN_BACKUP_PASSWORD: '' })).code).toBe(0); // unencrypted: no password
  let n = 0;
  /** A new backup of the data root, pushed: the push's JSON result. */
  const backupAndPush = async (more: NodeJS.ProcessEnv = {}) => {
    const name = `b${++n}`;
    expect((await run(['backup', '--name', name, '--quiet'], more)).code).toBe(0);
    const r = await run(['push', name, '--repo', repo, '--json'], more);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return json(r).pushed[0];
  };
  /** The cached index files: name -> bytes. */
  const cached = async () => {
    const [id] = existsSync(cache) ? await readdir(cache) : [];
    if (id === undefined) return new Map<string, Buffer>();
    const dir = join(cache, id, 'index');
    return new Map(await Promise.all((await readdir(dir)).map(async (f) => [f, await readFile(join(dir, f))] as const)));
  };
  const indexes = async () => (await readdir(join(repo, 'index'))).filter((f) => /^[0-9a-f]{64}$/.test(f)).sort();
  return { root, data, cache, repo, run, backupAndPush, cached, indexes };
}

describe('the local index cache', () => {
  it('holds the sealed index objects, each named by the sha256 of its bytes; a later push reads none from the store; DAWN_BACKUP_NO_CACHE=1 uses none', async () => {
    const s = await setup();
    const first = await s.backupAndPush();
    expect(first.uploaded).toBe(300);
    const cached = await s.cached();
    expect([...cached.keys()].sort()).toEqual(await s.indexes());
    for (const [name, bytes] of cached) {
      expect(sha(bytes)).toBe(name);
      expect(bytes.equals(await readFile(join(s.repo, 'index', name)))).toBe(true);
    }
    const cachedRun = await s.backupAndPush();
    const uncached = await s.backupAndPush({ DAWN_BACKUP_NO_CACHE: '1' });
    expect(cachedRun.uploaded + uncached.uploaded).toBe(0);
    // the same push, less one read per index
    expect(uncached.requests - cachedRun.requests).toBe(cached.size);
    // no cache at all: nothing is created
    const other = join(s.root, 'other-cache');
    await s.backupAndPush({ DAWN_BACKUP_NO_CACHE: '1', DAWN_BACKUP_CACHE_DIR: other });
    expect(existsSync(other)).toBe(false);
    // every repository command reads through it
    expect((await s.run(['verify', 'b1', '--repo', s.repo, '--read-data'])).code).toBe(0);
  });

  it('the listing stays authoritative: a cached index no longer in the store is not used (its contents are uploaded again) and is removed', async () => {
    const s = await setup();
    await s.backupAndPush();
    const [index] = await s.indexes();
    const entry = (await s.cached()).get(index!)!;
    expect(entry).toBeDefined();
    // the store loses the index (as when a prune drops it), the pack stays: its blobs no longer count
    await rm(join(s.repo, 'index', index!));
    // any command that lists the store drops the stale entry...
    expect((await s.run(['verify', 'b1', '--repo', s.repo])).code).toBe(3);
    expect((await s.cached()).has(index!)).toBe(false);
    // ...and one put back by hand (intact, named right) is not used: the contents are stored again
    await writeFile(join(s.cache, (await readdir(s.cache))[0]!, 'index', index!), entry);
    const again = json(await s.run(['push', 'b1', '--repo', s.repo, '--json'])).pushed[0];
    expect(again).toMatchObject({ snapshot: 'exists', uploaded: 300 });
    expect([...(await s.cached()).keys()].sort()).toEqual(await s.indexes());
    expect((await s.run(['verify', 'b1', '--repo', s.repo, '--read-data'])).code).toBe(0);
  });

  it('a damaged cache file is never trusted: it is fetched again from the store (and replaced), whatever it holds', async () => {
    const s = await setup();
    await s.backupAndPush();
    const [id] = await readdir(s.cache);
    const dir = join(s.cache, id!, 'index');
    const [name] = [...(await s.cached()).keys()];
    const good = await readFile(join(dir, name!));
    // garbage, then the right bytes with one bit flipped (as well-formed as the original)
    for (const bad of [Buffer.from('not an index'), Buffer.concat([good.subarray(0, good.length - 1), Buffer.from([good[good.length - 1]! ^ 1])])]) {
      await writeFile(join(dir, name!), bad);
      const r = await s.backupAndPush();
      expect(r.uploaded).toBe(0);
      expect((await readFile(join(dir, name!))).equals(good)).toBe(true);
    }
    // a directory where a cache file should be: read fails, the store answers
    await rm(join(dir, name!));
    await mkdir(join(dir, name!));
    expect((await s.backupAndPush()).uploaded).toBe(0);
    expect((await s.run(['verify', 'b1', '--repo', s.repo, '--read-data'])).code).toBe(0);
  });

  it('an unusable cache directory is never fatal and prints nothing', async () => {
    const s = await setup();
    const file = join(s.root, 'a-file');
    await writeFile(file, 'x');
    for (const dir of [join(file, 'cache'), file]) {
      const r = await s.backupAndPush({ DAWN_BACKUP_CACHE_DIR: dir });
      expect(r.snapshot).toBe('created');
      const v = await s.run(['verify', 'b1', '--repo', s.repo], { DAWN_BACKUP_CACHE_DIR: dir });
      expect(v.code).toBe(0);
      expect(v.stderr).not.toMatch(STACK);
    }
    expect((await stat(file)).isFile()).toBe(true);
  });

  it('an encrypted repository: the cache holds the sealed bytes only (no plaintext hash in them), is authenticated on use, and needs the password', async () => {
    const password = 'correct horse battery staple';
    const s = await setup({ DAWN_BACKUP_PASSWORD: password });
    await rm(s.repo, { recursive: true, force: true });
    expect((await s.run(['init', '--repo', s.repo, '--encrypt', '--quiet'])).code).toBe(0);
    await s.backupAndPush();
    const cached = await s.cached();
    expect(cached.size).toBeGreaterThan(0);
    const manifest = (await readFile(join(s.root, 'backups', 'b1', '.backup_manifest.json'), 'utf8')).match(/[0-9a-f]{64}/g)!;
    for (const bytes of cached.values()) {
      expect(bytes.subarray(0, 8).toString()).toBe('DAWNENC1');
      for (const h of manifest.slice(0, 20)) expect(bytes.includes(Buffer.from(h))).toBe(false);
    }
    expect((await s.backupAndPush()).uploaded).toBe(0);
    const wrong = await s.run(['push', 'b1', '--repo', s.repo, '--json'], { DAWN_BACKUP_PASSWORD: 'wrong' });
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stderr).error.code).toBe('WRONG_PASSWORD');
  });
});

describe('push of a backup the repository already holds whole', () => {
  it('takes no lock and writes nothing (a running prune does not stop it); a new backup still waits for the prune', async () => {
    const s = await setup();
    await s.backupAndPush();
    // another host's prune, running now
    await mkdir(join(s.repo, 'locks'), { recursive: true });
    await writeFile(join(s.repo, 'locks', 'prune-elsewhere-1-abcd1234.json'), JSON.stringify({ kind: 'prune', host: 'elsewhere', pid: 1, created_at: Date.now() / 1000 }));
    const dirs = async () => {
      const out: Record<string, number> = {};
      const walk = async (d: string): Promise<void> => {
        const st = await stat(d);
        out[d] = st.mtimeMs;
        for (const e of await readdir(d, { withFileTypes: true })) if (e.isDirectory()) await walk(join(d, e.name));
      };
      await walk(s.repo);
      return out;
    };
    const before = await dirs();
    const again = await s.run(['push', 'b1', '--repo', s.repo, '--json']);
    expect(again.code).toBe(0);
    expect(json(again).pushed[0]).toMatchObject({ snapshot: 'exists', uploaded: 0 });
    expect(await dirs()).toEqual(before); // no file created or removed anywhere (a lock would touch locks/)
    expect((await s.run(['backup', '--name', 'b9', '--quiet'])).code).toBe(0);
    const busy = await s.run(['push', 'b9', '--repo', s.repo, '--json']);
    expect(busy.code).toBe(1);
    expect(JSON.parse(busy.stderr).error.code).toBe('BUSY');
  });
});
