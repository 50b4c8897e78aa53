/**
 * What a repository command trusts (directory repository): a password against a plain config,
 * locks (machine identity, the store's clock), `latest` among several hosts, a prune that cannot
 * collect. The review's reproductions are in review-findings.test.ts; these cover the rest.
 */
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { machineIdentity } from '../src/repo/machine.js';
import { cli, json } from './helpers.js';

const tempDir = useTempDir('dawn-backup-repo-trust-');

async function setup(opts: { encrypt?: boolean } = {}) {
  const root = await tempDir();
  const data = join(root, 'data');
  await mkdir(data, { recursive: true });
  await writeFile(join(data, 'a.txt'), 'hello\n');
  const repo = join(root, 'repo');
  const env: NodeJS.ProcessEnv = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), ...(opts.encrypt ? { DAWN_BACKUP_PASSWORD: 'pw one' } : {}) };
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
  expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
  expect((await run(['init', '--repo', repo, ...(opts.encrypt ? ['--encrypt'] : [])])).code).toBe(0);
  return { root, data, repo, env, run };
}

/** Make local backup `name` look made by another host (metadata edited before it is pushed). */
async function asOtherHost(s: Awaited<ReturnType<typeof setup>>, name: string, host: string): Promise<void> {
  expect((await s.run(['backup', '--name', name, '--quiet'])).code).toBe(0);
  const metaPath = join(s.root, 'backups', name, '.backup_metadata.json');
  const meta = JSON.parse(await readFile(metaPath, 'utf8'));
  await writeFile(metaPath, JSON.stringify({ ...meta, hostname: host, machine_id: `${host}-0123456789abcdef` }, null, 2));
  expect((await s.run(['push', name, '--repo', s.repo])).code).toBe(0);
}

describe('a password against an unencrypted repository', () => {
  it('is refused (REPO_INVALID) for every command, and init without --encrypt but with a password is a usage error', async () => {
    const s = await setup();
    const pwFile = join(s.root, 'pw');
    await writeFile(pwFile, 'secret\n');
    for (const args of [['push', 'b1'], ['list'], ['pull', 'b1', '--backup-dir', join(s.root, 'p')]]) {
      const r = await s.run([...args, '--repo', s.repo, '--password-file', pwFile, '--json']);
      expect(r.code, args.join(' ')).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('REPO_INVALID');
    }
    // init --encrypt of this plain repository: it says why (not just "a password was given")
    const e = await s.run(['init', '--repo', s.repo, '--encrypt', '--json'], { DAWN_BACKUP_PASSWORD: 'secret' });
    expect(e.code).toBe(1);
    expect(JSON.parse(e.stderr).error).toMatchObject({ code: 'REPO_INVALID', message: expect.stringContaining('--encrypt cannot be applied') });
    const i = await s.run(['init', '--repo', join(s.root, 'new'), '--json'], { DAWN_BACKUP_PASSWORD: 'secret' });
    expect(i.code).toBe(2);
    expect(JSON.parse(i.stderr).error.code).toBe('USAGE');
    // without a password the plain repository works
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
  });

  it('a plain config over sealed snapshots is refused without a password too (REPO_INVALID naming the object)', async () => {
    const s = await setup({ encrypt: true });
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const cfgPath = join(s.repo, 'config.json');
    await writeFile(cfgPath, JSON.stringify({ ...JSON.parse(await readFile(cfgPath, 'utf8')), encryption: null }));
    const noPw = { DAWN_BACKUP_PASSWORD: '' };
    for (const args of [['list'], ['pull', 'b1', '--backup-dir', join(s.root, 'p')]]) {
      const r = await s.run([...args, '--repo', s.repo, '--json'], noPw);
      expect(r.code, args.join(' ')).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('REPO_INVALID');
      expect(JSON.parse(r.stderr).error.message).toContain('encrypted');
    }
    // a push reads the indexes before it uploads: refused, nothing written in plaintext
    await writeFile(join(s.data, 'b.txt'), 'SECOND-PLAINTEXT\n');
    expect((await s.run(['backup', '--name', 'b2', '--quiet'])).code).toBe(0);
    const p = await s.run(['push', 'b2', '--repo', s.repo, '--json'], noPw);
    expect(JSON.parse(p.stderr).error.code).toBe('REPO_INVALID');
  });

  it('init --json on an existing encrypted repository reports it encrypted (what it is, not what was asked)', async () => {
    const s = await setup({ encrypt: true });
    const r = await s.run(['init', '--repo', s.repo, '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r)).toMatchObject({ created: false, encrypted: true });
  });
});

describe('repository locks', () => {
  const lockOf = (extra: object) => JSON.stringify({ kind: 'push', pid: 999_999_999, created_at: Date.now() / 1000, ...extra });

  it("a lock of this very machine whose process is gone is ignored; the same host name without a machine id is another machine's", async () => {
    const s = await setup();
    await mkdir(join(s.repo, 'locks'), { recursive: true });
    const dead = join(s.repo, 'locks', 'push-here-999999999-aaaaaaaa.json');
    await writeFile(dead, lockOf(machineIdentity()));
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(r.code, r.stderr).toBe(0);
    await writeFile(join(s.repo, 'locks', 'push-here-999999999-bbbbbbbb.json'), lockOf({ host: hostname() }));
    const b = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(JSON.parse(b.stderr).error.code).toBe('BUSY');
  });

  it("a lock the store wrote longer ago than the stale timeout does not count, whatever its created_at says", async () => {
    const s = await setup();
    await mkdir(join(s.repo, 'locks'), { recursive: true });
    const lock = join(s.repo, 'locks', 'push-elsewhere-42-cccccccc.json');
    await writeFile(lock, lockOf({ host: 'elsewhere', created_at: Date.now() / 1000 + 3600 })); // dated in the future by its writer
    const old = new Date(Date.now() - 2 * 3600 * 1000);
    await utimes(lock, old, old); // written 2 h ago by the store's clock
    const busy = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(JSON.parse(busy.stderr).error.code).toBe('BUSY');
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json'], { DAWN_BACKUP_LOCK_STALE: '3600' });
    expect(r.code, r.stderr).toBe(0);
    for (const v of ['299', '-1', 'x']) {
      const bad = await s.run(['push', 'b1', '--repo', s.repo, '--json'], { DAWN_BACKUP_LOCK_STALE: v });
      expect(bad.code, v).toBe(2);
      expect(JSON.parse(bad.stderr).error.code).toBe('INVALID_OPTION');
    }
  });
});

describe('latest in a repository several hosts push into', () => {
  it("this host's newest; none of this host's: the one other host's with a warning; several other hosts: refused, naming them", async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    await asOtherHost(s, 'nodeb_1', 'node-b');
    const mine = await s.run(['verify', 'latest', '--repo', s.repo, '--json']);
    expect(json(mine).name).toBe('b1');
    // a host of the same name but another machine id is not this host
    const other = await tempDir();
    const meta = JSON.parse(await readFile(join(s.root, 'backups', 'b1', '.backup_metadata.json'), 'utf8'));
    expect(meta.machine_id).toBe(machineIdentity().machine_id);
    // a new machine (no backup of its own in the repository): the single other host, with a warning
    const fresh = join(other, 'fresh');
    const { rm } = await import('node:fs/promises');
    await rm(join(s.repo, 'snapshots', 'b1.json')); // this host's backup gone from the repository
    const pulled = await s.run(['pull', 'latest', '--repo', s.repo, '--backup-dir', fresh, '--json']);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(json(pulled).name).toBe('nodeb_1');
    expect(pulled.stderr).toMatch(/warning: .*node-b/);
    await asOtherHost(s, 'nodec_1', 'node-c');
    const amb = await s.run(['pull', 'latest', '--repo', s.repo, '--backup-dir', join(other, 'x'), '--json']);
    expect(amb.code).toBe(1);
    const err = JSON.parse(amb.stderr).error;
    expect(err.code).toBe('BACKUP_NOT_FOUND');
    expect(err.message).toContain('node-b');
    expect(err.message).toContain('node-c');
  });
});

describe('prune --repo that cannot collect', () => {
  it('a damaged index: gcSkipped names it in --json, exit 3', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    await writeFile(join(s.repo, 'index', 'f'.repeat(64)), 'not an index');
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(r.code).toBe(3);
    expect(json(r).gcSkipped.damaged).toEqual([`index/${'f'.repeat(64)}`]);
  });
});
