/**
 * Findings of an adversarial review of the repository commands (init, push, pull, list, verify,
 * restore, prune --repo) against a directory repository edited by hand: a malicious or damaged
 * store, and a careless operator. Each test names its finding; `it.fails` marks a finding that is
 * not fixed yet (the test states the behaviour we want).
 */
import { execFileSync } from 'node:child_process';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { canMountTmpfs, spawnNode, useTempDir, withTinyFs, type ChildExit } from '@dawn/test-utils';
import { describe, expect, it, vi } from 'vitest';
import { openBackend } from '../src/repo/backend.js';
import { encodeObject, indexKey, INDEX_FORMAT, INDEX_PREFIX, objectKey, sha256 } from '../src/repo/format.js';
import { pullBackup } from '../src/repo/repository.js';
import { loadCatalog, plainRepo } from '../src/repo/store.js';
import { backupMeta, BIN, cli, json, snapshot } from './helpers.js';
import { tamper } from './repo-scenarios.js';

const tempDir = useTempDir('dawn-backup-review-');

/** In-process tests: a hook run before every rename of node:fs/promises (none by default). */
const hooks = vi.hoisted(() => ({}) as { beforeRename?: ((from: string, to: string) => Promise<void>) | undefined });
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const rename: typeof real.rename = async (from, to) => {
    await hooks.beforeRename?.(String(from), String(to));
    return real.rename(from, to);
  };
  return { ...real, default: { ...real, rename }, rename };
});
const BUG = /looks like a bug/;

/** A data root with a few files, backup b1, an initialised directory repository. */
async function setup(opts: { encrypt?: boolean; env?: NodeJS.ProcessEnv } = {}) {
  const root = await tempDir();
  const data = join(root, 'data');
  await mkdir(join(data, 'mesh'), { recursive: true });
  await writeFile(join(data, 'a.txt'), 'hello\n');
  await writeFile(join(data, 'mesh', 'secret.txt'), 'TOP-SECRET-PLAINTEXT-0123456789\n');
  await writeFile(join(data, 'r.bin'), Buffer.alloc(3000, 7));
  const repo = join(root, 'repo');
  const env: NodeJS.ProcessEnv = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), ...(opts.encrypt ? { DAWN_BACKUP_PASSWORD: 'correct horse' } : {}), ...opts.env };
  const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
  expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
  const init = await run(['init', '--repo', repo, ...(opts.encrypt ? ['--encrypt'] : [])]);
  expect(init.code, init.stderr).toBe(0);
  return { root, data, repo, env, run };
}

/** Run the CLI, killing it if it has not exited after `ms` (then `code` is null: it hung). */
async function runWatched(args: string[], env: NodeJS.ProcessEnv, ms = 30_000): Promise<ChildExit> {
  const child = spawnNode(BIN, args, { env: { PROJECT_DAWN_DATA_ROOT: '', NO_COLOR: '1', ...env } });
  child.proc.stdin!.end('');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  try {
    return await child.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Every regular file under `dir`. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) out.push(join(e.parentPath, e.name));
  return out;
}

describe('review findings: a hostile or damaged directory repository', () => {
  // FINDING (confidentiality): config.json is not authenticated. Replacing an encrypted
  // repository's config by one with `"encryption": null` makes the next push (password set, as in
  // cron) upload every content in plaintext under names that are its sha256, with exit 0; a
  // restore then also accepts unauthenticated snapshots. Wanted: a push/pull given a password
  // into an unencrypted repository, or an unencrypted config over sealed snapshots, is refused.
  it('an encrypted repository whose config.json was swapped for a plain one is refused, never written in plaintext', async () => {
    const s = await setup({ encrypt: true });
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const cfgPath = join(s.repo, 'config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    cfg.encryption = null;
    await writeFile(cfgPath, JSON.stringify(cfg));
    await writeFile(join(s.data, 'mesh', 'secret.txt'), 'TOP-SECRET-PLAINTEXT-second\n');
    expect((await s.run(['backup', '--name', 'b2', '--quiet'])).code).toBe(0);
    const p = await s.run(['push', 'b2', '--repo', s.repo, '--json']);
    const leaked = [];
    for (const f of await filesUnder(s.repo)) if ((await readFile(f)).includes(Buffer.from('TOP-SECRET-PLAINTEXT'))) leaked.push(f);
    expect(leaked).toEqual([]);
    expect(p.code).toBe(1);
    expect(JSON.parse(p.stderr).error.code).toBe('REPO_INVALID');
  });

  // FINDING (hang / memory): the KDF settings are read from the unauthenticated config.json and
  // only N was bounded: p = 1000 made every command hang (scrypt for minutes to days), r = 2^20 made it try to
  // allocate terabytes. Fixed in crypto.ts: N ≤ 2^22, r ≤ 32, p ≤ 16, 128·N·r ≤ 4 GiB, else REPO_INVALID.
  it('an encrypted repository whose config asks for absurd scrypt costs is refused at once (REPO_INVALID)', async () => {
    const s = await setup({ encrypt: true });
    const cfgPath = join(s.repo, 'config.json');
    const cfg = JSON.parse(await readFile(cfgPath, 'utf8'));
    for (const [k, v] of [['p', 1000], ['r', 2 ** 20], ['N', 2 ** 30]] as const) {
      await writeFile(cfgPath, JSON.stringify({ ...cfg, encryption: { ...cfg.encryption, kdf: { ...cfg.encryption.kdf, [k]: v } } }));
      const r = await runWatched(['list', '--repo', s.repo, '--json'], s.env);
      expect(r.code, `${k}=${v}: ${r.stderr}`).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('REPO_INVALID');
    }
  });

  // FINDING (unclear error): an index naming a blob of 2^40 bytes (damaged or hostile) made the
  // directory backend allocate that much: verify --read-data / pull died with a RangeError
  // ("looks like a bug"). Fixed in dir-backend.ts: a ranged read is clamped to the file's size,
  // so the blob is reported damaged (exit 3).
  it('an index whose blob length runs far past its pack: verify --read-data and pull exit 3, no crash', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const backend = await openBackend(s.repo, { env: {} });
    const [key] = await backend.list(INDEX_PREFIX);
    const cat = await loadCatalog(plainRepo(backend, 2, {}), 4);
    const packs = structuredClone(cat.indexes.get(key!)!);
    packs[0]!.blobs[0]![2] = 2 ** 40;
    packs[0]!.size = 2 ** 41;
    const stored = await encodeObject(Buffer.from(JSON.stringify({ format: INDEX_FORMAT, format_version: 1, packs })));
    await backend.delete(key!);
    await backend.putIfAbsent(indexKey(sha256(stored)), stored);
    const v = await runWatched(['verify', 'b1', '--repo', s.repo, '--read-data'], s.env);
    expect(v.stderr).not.toMatch(BUG);
    expect(v.code, v.stderr).toBe(3);
    const p = await runWatched(['pull', 'b1', '--repo', s.repo, '--backup-dir', join(s.root, 'pulled')], s.env);
    expect(p.stderr).not.toMatch(BUG);
    expect(p.code, p.stderr).toBe(3);
  });

  // FINDING (hang): a FIFO in place of config.json (or any key) made every command block forever
  // in readFile. Fixed in dir-backend.ts: keys are opened non-blocking and must be regular files.
  it('config.json that is a FIFO: list --repo fails with a coded error instead of hanging', async () => {
    const s = await setup();
    const cfg = join(s.repo, 'config.json');
    await writeFile(cfg + '.keep', await readFile(cfg));
    execFileSync('rm', [cfg]);
    execFileSync('mkfifo', [cfg]);
    const r = await runWatched(['list', '--repo', s.repo, '--json'], s.env);
    expect(r.code, r.stderr).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('IO');
    expect(JSON.parse(r.stderr).error.message).toContain('config.json');
  });

  // FINDING (crash / memory): a 3 MB snapshot document that inflates to 2 GB (a "zip bomb":
  // deflate reaches 1000:1 on a run of one byte) was inflated whole: `list --repo` (and so prune
  // and `latest`) held 4 GiB for 33 s with a 6 MB one, and on a node with 1.5 GB of memory died
  // with std::bad_alloc. Fixed in format.ts: an object read whole inflates to at most
  // max(64 MiB, 32 × its stored size), beyond that it is damaged.
  it('a decompression bomb in place of a snapshot: list --repo reports it damaged, within 1.5 GB of memory', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const { createDeflateRaw } = await import('node:zlib');
    const d = createDeflateRaw({ level: 9 });
    const parts: Buffer[] = [Buffer.from('DAWNOBJ1\x01', 'latin1')];
    d.on('data', (c: Buffer) => parts.push(c));
    const ended = new Promise((resolve) => d.on('end', resolve));
    const chunk = Buffer.alloc(1 << 20, 0x20);
    for (let i = 0; i < 2000; i++) if (!d.write(chunk)) await new Promise((resolve) => d.once('drain', resolve));
    d.end();
    await ended;
    await writeFile(join(s.repo, 'snapshots', 'bomb.json'), Buffer.concat(parts));
    const out = execFileSync('bash', ['-c', `ulimit -v 1500000; "${process.execPath}" "${BIN}" list --repo "${s.repo}" --json; echo "exit=$?"`], { env: { ...process.env, ...s.env, NO_COLOR: '1' }, encoding: 'utf8' });
    expect(out).toContain('exit=3');
    const listed = JSON.parse(out.slice(0, out.lastIndexOf('exit=')));
    expect(listed.backups.map((b: any) => b.name)).toEqual(['b1']);
    expect(listed.damaged.map((b: any) => b.name)).toEqual(['bomb']);
  });

  // FINDING (wrong result): a directory (or FIFO) sitting where an object belongs made
  // putIfAbsent answer "already there": push exited 0 with a committed snapshot naming an object
  // that does not exist. Fixed in dir-backend.ts: only a regular file counts as an existing key.
  it('a directory in place of an object: push fails (IO) and writes no snapshot', async () => {
    const s = await setup({ env: { DAWN_BACKUP_INTERNAL_PACK_SMALL: '100' } }); // r.bin goes loose
    const meta = backupMeta(join(s.root, 'backups', 'b1'));
    const big = meta.manifest.find((m: any) => m.path === 'r.bin');
    await mkdir(join(s.repo, ...objectKey(big.sha256).split('/')), { recursive: true });
    const p = await s.run(['push', 'b1', '--repo', s.repo, '--json']);
    expect(p.code, p.stdout).toBe(1);
    expect(JSON.parse(p.stderr).error.code).toBe('IO');
    expect(await readdir(join(s.repo, 'snapshots')).catch(() => [])).toEqual([]);
  });

  // FINDING (unclear error, and one bad snapshot blinds the whole repository): a snapshot document
  // that decodes but whose manifest holds a non-object makes `list --repo` (and so `prune --repo`
  // and `latest`) die with a TypeError ("looks like a bug"). listRepo reads manifests without
  // checkManifest. Wanted: that snapshot listed as damaged (exit 3), the others listed.
  it('a snapshot whose manifest holds null: list --repo lists the others and reports it damaged', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const doc = { format: 'dawn-backup-snapshot', format_version: 1, pushed_at: 1, pushed_from: 'x', metadata: { manifest: [null] } };
    await writeFile(join(s.repo, 'snapshots', 'evil.json'), await encodeObject(Buffer.from(JSON.stringify(doc))));
    const r = await s.run(['list', '--repo', s.repo, '--json']);
    expect(r.stderr).not.toMatch(BUG);
    expect(r.code, r.stderr).toBe(3);
    expect(json(r).backups.map((b: any) => b.name)).toEqual(['b1']);
    expect(json(r).damaged.map((d: any) => d.name)).toEqual(['evil']);
  });

  // FINDING (wrong result, silent): while any snapshot document (or index) is unreadable, prune
  // --repo removes snapshots but collects no garbage at all (rightly: that snapshot may name
  // anything), yet prints "N backup(s) removed; 0 unreferenced object(s) deleted" and exits 0.
  // Every cron run repeats it; the repository grows forever unnoticed. Wanted: the output and
  // --json say garbage collection was skipped and why (naming the damaged snapshot), exit 3.
  it('prune --repo with a damaged snapshot says it collected nothing and why (exit 3)', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    await writeFile(join(s.repo, 'snapshots', 'zz.json'), 'garbage');
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1']);
    expect(r.code).toBe(3);
    expect(r.stdout + r.stderr).toContain('zz');
  });

  // FINDING (wrong result): a content damaged inside a pack can never be repaired by pushing
  // again: push sees the blob indexed and says "nothing uploaded", verify --read-data keeps
  // exiting 3, and every later backup with that content shares the damage. Only deleting the
  // whole pack by hand helps (and that hurts the pack's other contents until they are pushed).
  // Fixed with `push --repair` (not a plain push): a push cannot know that a stored content is
  // damaged without downloading it, and a plain push must stay cheap (no content read back). With
  // --repair it reads every stored content the backup needs, uploads the damaged ones again into
  // a new pack and index (nothing deleted or overwritten), and readers fall back to that copy.
  it('a damaged packed content is repaired by pushing the backup again (push --repair)', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const meta = backupMeta(join(s.root, 'backups', 'b1'));
    expect(await tamper(s.repo, {}, meta.manifest.find((m: any) => m.path === 'a.txt').sha256, 'damage')).toBe('packed');
    const v = await s.run(['verify', 'b1', '--repo', s.repo, '--read-data']);
    expect(v.code).toBe(3);
    expect(v.stderr).toContain('--repair');
    const p = await s.run(['push', 'b1', '--repo', s.repo, '--repair', '--json']);
    expect(p.code, p.stderr).toBe(0);
    expect(json(p).pushed[0].repaired).toBe(1);
    expect((await s.run(['verify', 'b1', '--repo', s.repo, '--read-data'])).code).toBe(0);
    // every reader finds the good copy; a second repair finds nothing to do
    const q = await s.run(['push', 'b1', '--repo', s.repo, '--repair', '--json']);
    expect(json(q).pushed[0]).toMatchObject({ repaired: 0, uploaded: 0 });
    const pulled = await s.run(['pull', 'b1', '--repo', s.repo, '--backup-dir', join(s.root, 'pulled'), '--json']);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(await readFile(join(s.root, 'pulled', 'b1', 'a.txt'), 'utf8')).toBe('hello\n');
    const r = await s.run(['restore', 'b1', '--repo', s.repo, '--target', join(s.root, 'restored'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(s.root, 'restored', 'a.txt'), 'utf8')).toBe('hello\n');
    // prune keeps both packs (the damaged one is still named by an index) and the data intact
    const pr = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(pr.code, pr.stderr).toBe(0);
    expect((await s.run(['verify', 'b1', '--repo', s.repo, '--read-data'])).code).toBe(0);
  });

  // FINDING (wrong result, possible data loss): a lock whose host name is this one is judged by
  // its pid alone. Hostnames are not unique (cloned images: "raspberrypi", "ubuntu", "localhost"):
  // a prune on node B takes a running push of node A (same hostname, a pid B does not have) for
  // dead and collects its uploaded, uncommitted packs; if A's re-check before its snapshot races
  // with that prune (A likewise takes B's prune lock for dead), A commits a snapshot naming
  // deleted packs. Wanted: locks carry a machine id (/etc/machine-id + boot id) and only a lock of
  // this very machine is judged by its pid.
  it("a fresh push lock of another machine with the same hostname stops prune (BUSY)", async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const host = hostname();
    const lock = { kind: 'push', host, pid: 999_999_999, created_at: Date.now() / 1000, machine_id: 'another-machine-0123456789abcdef' };
    await writeFile(join(s.repo, 'locks', `push-${host.replace(/[^A-Za-z0-9.-]/g, '_')}-999999999-aaaaaaaa.json`), JSON.stringify(lock));
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(r.code, r.stdout).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('BUSY');
  });

  // FINDING (possible data loss, skewed clocks): a lock's age is `now - created_at`, with
  // created_at from the writer's clock. A node whose clock is behind by more than the stale
  // timeout (a Raspberry Pi without RTC before NTP, a VM restored from a snapshot) writes locks
  // that every other node takes for stale at once: a prune elsewhere collects the packs its push
  // relies on (dedup against old snapshots the prune removes), and nothing stops the push's
  // commit either. Wanted: ages measured on the store's clock (S3 LastModified, the file's
  // mtime), e.g. the other lock's LastModified against that of the lock just written.
  it('a push lock written by a node whose clock is 7 h behind still stops prune (BUSY)', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const lock = { kind: 'push', host: 'node-with-a-slow-clock', pid: 4242, created_at: Date.now() / 1000 - 7 * 3600 };
    await writeFile(join(s.repo, 'locks', 'push-node-with-a-slow-clock-4242-bbbbbbbb.json'), JSON.stringify(lock)); // written now
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json']);
    expect(r.code, r.stdout).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('BUSY');
  });

  // FINDING (possible data loss, careless operator): DAWN_BACKUP_LOCK_STALE accepts 0 (or 5):
  // every lock is then stale at once, so a prune and a push run together with no protection (the
  // push's re-check before its snapshot relies on the other's lock being fresh). Wanted: a floor
  // (say 300 s: a push renews its lock right before committing), else INVALID_OPTION.
  it('DAWN_BACKUP_LOCK_STALE=0 is refused', async () => {
    const s = await setup();
    const r = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--json'], { DAWN_BACKUP_LOCK_STALE: '0' });
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr).error.code).toBe('INVALID_OPTION');
  });
});

describe('review findings: a careless operator', () => {
  // FINDING (writes elsewhere, silently): `--repo s3:bucket/prefix` (restic's spelling) or
  // `file:/mnt/nas` (a valid file URL) has no "://", so it was taken for a relative directory:
  // init and push "succeeded" into ./s3:bucket/prefix on the local disk, and the off-site copy
  // the operator believes in does not exist. A `~` from a crontab variable likewise. Fixed in
  // backend.ts: a scheme without "//" is read as a URL (file:) or refused (USAGE), and a leading
  // `~` is refused.
  it('--repo s3:bucket/x, file:/path and ~/x are never taken for a relative directory', async () => {
    const s = await setup();
    const cwd = join(s.root, 'cwd');
    await mkdir(cwd);
    for (const url of ['s3:bucket/prefix', 's3:http://127.0.0.1:9000/bucket', '~/backups']) {
      const child = spawnNode(BIN, ['init', '--repo', url, '--json'], { cwd, env: { PROJECT_DAWN_DATA_ROOT: '', NO_COLOR: '1', ...s.env } });
      child.proc.stdin!.end('');
      const r = await child.exited;
      expect(r.code, url).toBe(2);
      expect(JSON.parse(r.stderr).error.code).toBe('USAGE');
    }
    expect(await readdir(cwd)).toEqual([]);
    // file:/absolute (one slash) is the directory it names
    const target = join(s.root, 'via-file-url');
    const r = await s.run(['init', '--repo', `file:${target}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(await readdir(target)).toContain('config.json');
  });

  // FINDING (data loss): `restore NAME --repo URL` ignored --dry-run and --include: a dry run
  // replaced the whole data root for real, and `--include mesh/x.json` restored everything (with
  // --overwrite, no pre_restore copy: the current data was gone). Fixed: restore --repo is the local
  // restore with the repository as its source (restore-repo.ts), --include and --dry-run included.
  it('restore --repo honours --include, and its --dry-run changes nothing', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    await writeFile(join(s.data, 'a.txt'), 'changed since\n');
    await writeFile(join(s.data, 'mesh', 'secret.txt'), 'changed too\n');
    await writeFile(join(s.data, 'new.txt'), 'made since\n');
    const before = await snapshot(s.data);
    const d = await s.run(['restore', 'b1', '--repo', s.repo, '--dry-run', '--json']);
    expect(d.code, d.stderr).toBe(0);
    expect(await snapshot(s.data)).toEqual(before);
    expect(await readdir(join(s.root, 'backups'))).toEqual(['b1']);
    const r = await s.run(['restore', 'b1', '--repo', s.repo, '--include', 'mesh/secret.txt', '--overwrite', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(join(s.data, 'mesh', 'secret.txt'), 'utf8')).toBe('TOP-SECRET-PLAINTEXT-0123456789\n');
    expect(await readFile(join(s.data, 'a.txt'), 'utf8')).toBe('changed since\n');
    expect(await readFile(join(s.data, 'new.txt'), 'utf8')).toBe('made since\n');
  });

  // FINDING (data loss): `prune --repo` read only --keep-last/-daily/-weekly: --keep-monthly and
  // --keep-within were dropped silently (`--keep-daily 7 --keep-monthly 12` deleted every monthly
  // backup), and `--keep-monthly N` alone was a usage error. Fixed: one keepOptions (argv.ts) for
  // local prune, backup and prune --repo.
  it('prune --repo honours --keep-within and --keep-monthly like local prune', async () => {
    const s = await setup();
    for (const n of ['b2', 'b3']) {
      await writeFile(join(s.data, `${n}.txt`), n);
      expect((await s.run(['backup', '--name', n, '--quiet'])).code).toBe(0);
    }
    expect((await s.run(['push', 'b1', 'b2', 'b3', '--repo', s.repo])).code).toBe(0);
    const w = await s.run(['prune', '--repo', s.repo, '--keep-last', '1', '--keep-within', '1y', '--json']);
    expect(w.code, w.stderr).toBe(0);
    expect(json(w).removed).toEqual([]);
    const m = await s.run(['prune', '--repo', s.repo, '--keep-monthly', '1', '--dry-run', '--json']);
    expect(m.code, m.stderr).toBe(0);
    expect(json(m).kept).toHaveLength(1);
  });

  // FINDING (data loss): a directory repository inside the data root (`--repo $DATA/offsite`) is
  // copied into every backup, and `restore NAME --repo $DATA/offsite --overwrite` replaced the
  // data root and with it deleted the whole repository, every backup of every node in it, exit 0
  // (without --overwrite only the pre_restore backup still held a copy). Fixed in commands.ts:
  // init refuses a directory repository inside the data root (USAGE), restore --repo one inside
  // the target (TARGET_INVALID), before anything changes.
  it('a directory repository inside the data root (or the backup dir): init refuses it, restore --repo never deletes it', async () => {
    const s = await setup();
    const inner = join(s.data, 'offsite');
    const i = await s.run(['init', '--repo', inner, '--json']);
    expect(i.code).toBe(2);
    expect(JSON.parse(i.stderr).error.code).toBe('USAGE');
    expect(await readdir(s.data)).not.toContain('offsite');
    // nor in the backup dir (local list took its directories for damaged backups)
    const b = await s.run(['init', '--repo', join(s.root, 'backups'), '--json']);
    expect(b.code).toBe(2);
    expect(await readdir(join(s.root, 'backups'))).toEqual(['b1']);
    // one made anyway (by an older version, or by hand): a restore from it leaves it alone
    await mkdir(inner);
    for (const name of ['config.json']) await writeFile(join(inner, name), await readFile(join(s.repo, name)));
    expect((await s.run(['push', 'b1', '--repo', inner])).code).toBe(0);
    const before = await snapshot(s.data);
    const r = await s.run(['restore', 'b1', '--repo', inner, '--overwrite', '--json']);
    expect(r.code, r.stdout).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('TARGET_INVALID');
    expect(await snapshot(s.data)).toEqual(before);
    // through a symlink to it, and with --target naming the data root
    await execFileSync('ln', ['-s', inner, join(s.root, 'link-to-offsite')]);
    const r2 = await s.run(['restore', 'b1', '--repo', join(s.root, 'link-to-offsite'), '--target', s.data, '--overwrite', '--json']);
    expect(JSON.parse(r2.stderr).error.code).toBe('TARGET_INVALID');
    expect(await snapshot(s.data)).toEqual(before);
  });

  // FINDING (unclear error): two pulls (or restores --repo) of one name at once: the loser of the
  // race between the last "does it exist yet" check and rename() dies with a raw
  // "ENOTEMPTY: directory not empty, rename" (INTERNAL, "looks like a bug"), although an intact
  // identical copy is now there. Seen with 6 real pulls at once (they leave syncfs together: 2
  // of 18 failed so); reproduced here deterministically, in process, by letting "the other pull"
  // win just before our rename. Wanted: ENOTEMPTY/EEXIST from that rename handled like the check
  // before it (reused when the copy there is identical and intact, else BACKUP_EXISTS).
  it('a pull that loses the race to another pull of the same backup: reused or BACKUP_EXISTS, never a raw ENOTEMPTY', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const backupDir = join(s.root, 'pulled');
    hooks.beforeRename = async (from, to) => {
      if (!from.includes('.dawn-pull-')) return;
      hooks.beforeRename = undefined;
      execFileSync('cp', ['-a', from, to]); // the other pull's rename, an instant before ours
    };
    try {
      const res = await pullBackup({ repo: s.repo, name: 'b1', backupDir, env: {}, fsync: false }).catch((err: unknown) => err);
      if (res instanceof Error) expect((res as { code?: string }).code).toBe('BACKUP_EXISTS');
      else expect((res as { reused: boolean }).reused).toBe(true);
    } finally {
      hooks.beforeRename = undefined;
    }
  });

  // FINDING (hang; reads outside): push reads the local backup's files with readFileSync /
  // createReadStream, following symlinks and blocking on FIFOs (local verify/restore open them
  // O_NOFOLLOW|O_NONBLOCK through confine.ts). A FIFO in place of a backup file hangs the cron
  // push forever, holding its repository lock (another host's prune is BUSY for 6 h); a symlink
  // is followed (run as root, a backup dir writable by the node's user lets that user have any
  // file the manifest's sha256 matches uploaded, e.g. after editing the manifest). Wanted: push
  // opens each file O_RDONLY|O_NOFOLLOW|O_NONBLOCK (directories through confine.ts), fstat says
  // a regular file, else VERIFY_FAILED naming it, no snapshot.
  it('a FIFO or a symlink in place of a local backup file: push fails with VERIFY_FAILED, never hangs or follows', async () => {
    const s = await setup();
    const file = join(s.root, 'backups', 'b1', 'a.txt');
    execFileSync('rm', [file]);
    execFileSync('mkfifo', [file]);
    const p = await runWatched(['push', 'b1', '--repo', s.repo, '--json'], s.env, 20_000);
    // VERIFY_FAILED exits 3 (errors.ts: a damaged backup), not 1 as first written here.
    expect(p.code, 'push hung on a FIFO').toBe(3);
    expect(JSON.parse(p.stderr).error.code).toBe('VERIFY_FAILED');
    expect(JSON.parse(p.stderr).error.message).toContain(file);
    expect(await readdir(join(s.repo, 'snapshots')).catch(() => [])).toEqual([]);
    expect(await readdir(join(s.repo, 'locks')).catch(() => [])).toEqual([]);
    execFileSync('rm', [file]);
    await writeFile(join(s.root, 'elsewhere.txt'), 'hello\n'); // the very content the manifest names
    execFileSync('ln', ['-s', join(s.root, 'elsewhere.txt'), file]);
    const q = await s.run(['push', 'b1', '--repo', s.repo, '--json']);
    expect(q.code, q.stdout).toBe(3);
    expect(JSON.parse(q.stderr).error.code).toBe('VERIFY_FAILED');
    expect(JSON.parse(q.stderr).error.message).toContain(file);
    expect(await readdir(join(s.repo, 'snapshots')).catch(() => [])).toEqual([]);
  });

  // FINDING (wrong result): `latest` in a repository shared by several nodes (allowed: "each
  // under its own prefix or not") is the newest backup of ANY host whose data root has the same
  // path, and every node has the same default path: `restore latest --repo URL` on node A
  // restores node B's registry and keys. Wanted: prefer this host's backups; when only other
  // hosts have the path and there is more than one of them, refuse `latest` and name them (a
  // brand-new machine with one source in the repository keeps working).
  it("latest in a repository two nodes push into: this node's newest backup, never another node's", async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    // node B: same data-root path, its backup made later
    expect((await s.run(['backup', '--name', 'nodeb_1', '--quiet'])).code).toBe(0);
    const metaPath = join(s.root, 'backups', 'nodeb_1', '.backup_metadata.json');
    await writeFile(metaPath, JSON.stringify({ ...JSON.parse(await readFile(metaPath, 'utf8')), hostname: 'node-b' }, null, 2));
    expect((await s.run(['push', 'nodeb_1', '--repo', s.repo])).code).toBe(0);
    const r = await s.run(['pull', 'latest', '--repo', s.repo, '--backup-dir', join(s.root, 'fresh'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(json(r).name).toBe('b1');
  });

  // FINDING (wrong result): `init --encrypt` on an existing unencrypted repository exits 0,
  // "already exists; nothing changed", and --json reports `"encrypted": true` (what was asked,
  // not what is): the operator believes the repository is encrypted while every push stays
  // plaintext. Wanted: REPO_INVALID ("exists and is not encrypted; --encrypt cannot be applied").
  it('init --encrypt on an existing plain repository is an error, never "encrypted": true', async () => {
    const s = await setup();
    const r = await s.run(['init', '--repo', s.repo, '--encrypt', '--json'], { DAWN_BACKUP_PASSWORD: 'pw' });
    expect(r.code === 0 ? json(r).encrypted : false).toBe(false);
    expect(r.code).toBe(1);
  });

  // FINDING (wrong result, minor): `list --repo URL --verify` ignored --verify and printed the
  // plain listing with exit 0, as if every backup had been checked. Fixed in commands.ts: USAGE,
  // naming `verify NAME --repo URL --read-data`.
  it('list --repo --verify is a usage error, not a listing that looks checked', async () => {
    const s = await setup();
    const r = await s.run(['list', '--repo', s.repo, '--verify', '--json']);
    expect(r.code).toBe(2);
    expect(JSON.parse(r.stderr).error.message).toContain('--read-data');
  });

  // FINDING (unclear error): pull --backup-dir naming a regular file dies with a raw ENOTDIR
  // ("looks like a bug"). Wanted: a coded error naming the path.
  it('pull --backup-dir that is a regular file: a coded error naming it', async () => {
    const s = await setup();
    expect((await s.run(['push', 'b1', '--repo', s.repo])).code).toBe(0);
    const file = join(s.root, 'not-a-dir');
    await writeFile(file, 'x');
    const r = await s.run(['pull', 'b1', '--repo', s.repo, '--backup-dir', file, '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).not.toMatch(BUG);
    expect(JSON.parse(r.stderr).error.code).toBe('IO');
    expect(JSON.parse(r.stderr).error.message).toContain(file);
    expect(await readFile(file, 'utf8')).toBe('x');
  });
});

describe.skipIf(!canMountTmpfs)('review findings: a full disk (root: a real 1 MiB tmpfs)', () => {
  // FINDING (unclear error): pull / restore --repo onto a full disk dies with a raw
  // "ENOSPC: no space left on device, write" and "looks like a bug" (no path, no code NO_SPACE).
  // Nothing is left behind (that part holds). Wanted: NO_SPACE naming the backup directory.
  it('pull --repo onto a full disk: NO_SPACE naming the path, nothing left behind', async () => {
    const s = await setup();
    await writeFile(join(s.data, 'big.bin'), Buffer.alloc(400_000, 1).map((_, i) => (i * 7919) & 0xff));
    expect((await s.run(['backup', '--name', 'b2', '--quiet'])).code).toBe(0);
    expect((await s.run(['push', 'b2', '--repo', s.repo])).code).toBe(0);
    await withTinyFs('1m', async (dir) => {
      await writeFile(join(dir, 'filler'), Buffer.alloc(800_000));
      const before = await snapshot(dir);
      const r = await s.run(['pull', 'b2', '--repo', s.repo, '--backup-dir', join(dir, 'bk'), '--json']);
      expect(await snapshot(dir)).toEqual(before);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('NO_SPACE');
      expect(r.stderr).toContain(dir);
      // restore --repo onto that disk: the same (its staging beside the target is removed)
      const t = await s.run(['restore', 'b2', '--repo', s.repo, '--target', join(dir, 'restored'), '--backup-dir', join(dir, 'bk'), '--json']);
      expect(await snapshot(dir)).toEqual(before);
      expect(t.stderr).not.toMatch(BUG);
      expect(t.code, t.stderr).toBe(1);
      expect(JSON.parse(t.stderr).error.code).toBe('NO_SPACE');
      expect(t.stderr).toContain(dir);
    });
  });
});
