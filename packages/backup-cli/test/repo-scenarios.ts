import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnNode } from '@dawn/test-utils';
import { expect, it } from 'vitest';
import { openBackend } from '../src/repo/backend.js';
import { idOfPackKey, INDEX_PREFIX, objectKey, packKey, PACKS_PREFIX } from '../src/repo/format.js';
import { hasBlob, loadCatalog, plainRepo } from '../src/repo/store.js';
import { backupMeta, BIN, cli, json, makeManyFiles, makeRichTree, RICH_EXCLUDED, snapshot, STACK, without } from './helpers.js';

/** How a suite reaches its repository: a fresh URL per test, and the environment (S3 settings). */
export interface RepoTarget {
  url(tag: string): string;
  env(): NodeJS.ProcessEnv;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The contents (blob names) a repository holds: loose objects and blobs of indexed packs that are there. */
export async function storedObjects(url: string, env: NodeJS.ProcessEnv): Promise<string[]> {
  const cat = await loadCatalog(plainRepo(await openBackend(url, { env }), 2, env), 8);
  return [...new Set([...cat.loose, ...cat.packed.keys()])].filter((n) => hasBlob(cat, n));
}

/** Packs in the store, and the packs its indexes name. */
export async function storedPacks(url: string, env: NodeJS.ProcessEnv): Promise<{ packs: string[]; indexed: Set<string>; indexes: number }> {
  const backend = await openBackend(url, { env });
  const cat = await loadCatalog(plainRepo(backend, 2, env), 8);
  const packs = (await backend.list(PACKS_PREFIX)).map(idOfPackKey).filter((id): id is string => id !== undefined);
  return { packs, indexed: new Set([...cat.packed.values()].map((l) => l.pack)), indexes: (await backend.list(INDEX_PREFIX)).length };
}

/**
 * Damage or delete a content in place, around the repository's own rules (a bit-rotted or
 * tampered store): a loose object, or the blob's bytes inside its pack (`delete`: the whole pack).
 */
export async function tamper(url: string, env: NodeJS.ProcessEnv, hash: string, how: 'damage' | 'delete'): Promise<'loose' | 'packed'> {
  const backend = await openBackend(url, { env });
  const cat = await loadCatalog(plainRepo(backend, 2, env), 8);
  const loc = cat.packed.get(hash);
  const key = cat.loose.has(hash) ? objectKey(hash) : packKey(loc!.pack);
  const kind = cat.loose.has(hash) ? 'loose' : 'packed';
  if (how === 'delete') {
    await backend.delete(key);
    return kind;
  }
  const body = Buffer.from((await backend.get(key))!);
  const at = kind === 'loose' ? body.length - 1 : loc!.offset + loc!.length - 1;
  body.writeUInt8(body.readUInt8(at) ^ 0xff, at);
  await backend.delete(key);
  expect(await backend.putIfAbsent(key, body)).toBe(true);
  return kind;
}

/**
 * The scenarios every repository kind passes: a whole round trip through the CLI, deduplication,
 * a damaged object, a deleted object, and SIGKILLs during push.
 */
export function repoScenarios(tempDir: () => Promise<string>, target: RepoTarget): void {
  const setup = async (tag: string) => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeRichTree(data);
    const env = { ...target.env(), PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups') };
    const repo = target.url(tag);
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
    expect((await run(['init', '--repo', repo])).code).toBe(0);
    return { root, data, env, repo, run };
  };
  /** Push b1, then damage or delete in the store the content of one of its files. */
  const pushAndTamper = async (s: Awaited<ReturnType<typeof setup>>, path: string, how: 'damage' | 'delete') => {
    expect((await s.run(['push', '--repo', s.repo])).code).toBe(0);
    const meta = backupMeta(join(s.root, 'backups', 'b1'));
    return { meta, kind: await tamper(s.repo, s.env, meta.manifest.find((m: any) => m.path === path).sha256, how) };
  };

  it('round trip: init, push (newest by default), push again uploads nothing, list, verify, pull, restore latest on an empty machine', async () => {
    const { root, data, repo, run } = await setup('roundtrip');
    const before = await snapshot(data);
    const p1 = await run(['push', '--repo', repo, '--json']);
    expect(p1.code, p1.stderr).toBe(0);
    const first = json(p1).pushed[0];
    expect(first).toMatchObject({ name: 'b1', snapshot: 'created' });
    expect(first.uploaded).toBe(first.objects);
    // unchanged: nothing uploaded; a second backup of the same files: no file content uploaded
    const p2 = json(await run(['push', 'b1', '--repo', repo, '--json'])).pushed[0];
    expect(p2).toMatchObject({ snapshot: 'exists', uploaded: 0 });
    expect((await run(['backup', '--name', 'b2', '--quiet'])).code).toBe(0);
    const p3 = json(await run(['push', 'b2', '--repo', repo, '--json'])).pushed[0];
    expect(p3).toMatchObject({ snapshot: 'created', uploaded: 0, uploadedBytes: 0 });
    // init again: idempotent
    expect((await run(['init', '--repo', repo])).code).toBe(0);

    const listed = json(await run(['list', '--repo', repo, '--json']));
    expect(listed.backups.map((b: any) => b.name).sort()).toEqual(['b1', 'b2']);
    expect((await run(['verify', 'b1', '--repo', repo])).code).toBe(0);
    const v = await run(['verify', 'b1', '--repo', repo, '--read-data', '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(json(v).checked).toBe(json(v).objects);

    // a brand-new machine: no local backups, an empty data root, DAWN_BACKUP_REPO only
    const fresh = join(root, 'new-machine');
    const env2 = { PROJECT_DAWN_DATA_ROOT: join(fresh, 'data'), DAWN_BACKUP_DIR: join(fresh, 'backups'), DAWN_BACKUP_REPO: repo };
    const pulled = await run(['pull', 'b1', '--json'], env2);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect((await run(['verify', 'b1'], env2)).code).toBe(0);
    // pulling again reuses the intact local copy
    expect(json(await run(['pull', 'b1', '--json'], env2)).reused).toBe(true);
    const r = await run(['restore', 'latest', '--repo', repo, '--target', join(fresh, 'restored'), '--json'], env2);
    expect(r.code, r.stderr).toBe(0);
    expect(await snapshot(join(fresh, 'restored'))).toEqual(without(before, RICH_EXCLUDED));
  });

  it('a damaged object: verify --read-data, pull and restore exit 3, nothing local changes', async () => {
    const s = await setup('damaged');
    const { root, data, repo, run } = s;
    expect((await pushAndTamper(s, 'keys/node.key', 'damage')).kind).toBe('packed'); // a blob inside a pack
    expect((await run(['verify', 'b1', '--repo', repo])).code).toBe(0); // present...
    const v = await run(['verify', 'b1', '--repo', repo, '--read-data', '--json']);
    expect(v.code).toBe(3); // ...but damaged
    expect(json(v).problems).toEqual([expect.objectContaining({ path: 'keys/node.key', kind: 'modified' })]);
    const localBefore = await snapshot(root);
    // A backup dir three levels deep that does not exist: every level the pull made is removed again.
    const pull = await run(['pull', 'b1', '--repo', repo, '--backup-dir', join(root, 'pulled', 'deeper', 'backups')]);
    expect(pull.code, pull.stderr).toBe(3);
    expect(pull.stderr).toContain('keys/node.key');
    const restore = await run(['restore', 'b1', '--repo', repo, '--backup-dir', join(root, 'pulled'), '--target', data], { DAWN_BACKUP_REPO: repo });
    expect(restore.code, restore.stderr).toBe(3);
    expect(await snapshot(root)).toEqual(localBefore);
  });

  it('a deleted object (a snapshot naming a missing object): verify exits 3, pull leaves nothing behind', async () => {
    const s = await setup('deleted');
    const { root, repo, run } = s;
    expect((await pushAndTamper(s, 'big.bin', 'delete')).kind).toBe('loose');
    const v = await run(['verify', 'b1', '--repo', repo, '--json']);
    expect(v.code).toBe(3);
    expect(json(v).problems).toEqual([expect.objectContaining({ path: 'big.bin', kind: 'missing' })]);
    expect((await run(['verify', 'b1', '--repo', repo, '--read-data'])).code).toBe(3);
    const pull = await run(['pull', 'b1', '--repo', repo, '--backup-dir', join(root, 'pulled')]);
    expect(pull.code).toBe(3);
    await expect(readdir(join(root, 'pulled'))).rejects.toThrow(/ENOENT/);
    // pushing the same backup again uploads the missing object back (a repair)
    const p = await run(['push', 'b1', '--repo', repo, '--json']);
    expect(json(p).pushed[0]).toMatchObject({ snapshot: 'exists', uploaded: 1 });
    expect((await run(['verify', 'b1', '--repo', repo, '--read-data'])).code).toBe(0);
  });

  it('packs: small contents packed and deduplicated across pushes, a large one streamed (multipart above the part size); far fewer requests than files', async () => {
    const { randomBytes } = await import('node:crypto');
    const { mkdir, writeFile: wf } = await import('node:fs/promises');
    const root = await tempDir();
    const data = join(root, 'data');
    await mkdir(join(data, 'small'), { recursive: true });
    await mkdir(join(data, 'big'), { recursive: true });
    for (let i = 0; i < 200; i++) await wf(join(data, 'small', `f${i}`), randomBytes(1024));
    await wf(join(data, 'big', 'huge.bin'), randomBytes(12 * 1024 * 1024 + 5)); // 3 parts of 5 MiB
    const env = {
      ...target.env(),
      PROJECT_DAWN_DATA_ROOT: data,
      DAWN_BACKUP_DIR: join(root, 'backups'),
      DAWN_BACKUP_INTERNAL_PACK_TARGET: '16384',
      DAWN_BACKUP_INTERNAL_PART_SIZE: String(5 * 1024 * 1024),
    };
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    const repo = target.url('packs');
    expect((await run(['backup', '--name', 'b1', '--quiet'])).code).toBe(0);
    const tree1 = await snapshot(data);
    expect((await run(['init', '--repo', repo])).code).toBe(0);
    const p1 = await run(['push', '--repo', repo, '--json']);
    expect(p1.code, p1.stderr).toBe(0);
    const first = json(p1).pushed[0];
    expect(first).toMatchObject({ files: 201, objects: 201, uploaded: 201 });
    expect(first.packs).toBeGreaterThanOrEqual(10);
    expect(first.requests).toBeLessThan(first.files / 2);
    const { packs, indexed } = await storedPacks(repo, env);
    expect(packs.length).toBe(first.packs);
    expect(new Set(packs)).toEqual(indexed);
    // the same contents in another backup: nothing uploaded, no pack written
    expect((await run(['backup', '--name', 'b2', '--quiet'])).code).toBe(0);
    expect(json(await run(['push', 'b2', '--repo', repo, '--json'])).pushed[0]).toMatchObject({ snapshot: 'created', uploaded: 0, packs: 0 });
    // one changed file: one content, one (small) pack
    await wf(join(data, 'small', 'f7'), 'changed');
    expect((await run(['backup', '--name', 'b3', '--quiet'])).code).toBe(0);
    expect(json(await run(['push', 'b3', '--repo', repo, '--json'])).pushed[0]).toMatchObject({ uploaded: 1, packs: 1 });
    const v = await run(['verify', 'b1', '--repo', repo, '--read-data', '--json']);
    expect(v.code, v.stderr).toBe(0);
    expect(json(v)).toMatchObject({ checked: 201, bytes: 200 * 1024 + 12 * 1024 * 1024 + 5 });
    const fresh = join(root, 'fresh');
    const r = await run(['restore', 'b1', '--repo', repo, '--target', join(fresh, 'data'), '--backup-dir', join(fresh, 'backups')]);
    expect(r.code, r.stderr).toBe(0);
    expect(await snapshot(join(fresh, 'data'))).toEqual(tree1);

    // a local backup whose large file no longer matches its manifest: no object, no snapshot
    await wf(join(data, 'big', 'other.bin'), randomBytes(6 * 1024 * 1024));
    expect((await run(['backup', '--name', 'b4', '--quiet'])).code).toBe(0);
    const meta4 = backupMeta(join(root, 'backups', 'b4'));
    const other = meta4.manifest.find((m: any) => m.path === 'big/other.bin');
    const { open } = await import('node:fs/promises');
    const h = await open(join(root, 'backups', 'b4', 'big', 'other.bin'), 'r+');
    await h.write(Buffer.from('X'), 0, 1, 6 * 1024 * 1024 - 1);
    await h.close();
    const bad = await run(['push', 'b4', '--repo', repo, '--json']);
    expect(bad.code, bad.stderr).toBe(3);
    expect(JSON.parse(bad.stderr).error.code).toBe('VERIFY_FAILED');
    expect(await storedObjects(repo, env)).not.toContain(other.sha256);
    expect(json(await run(['list', '--repo', repo, '--json'])).backups.map((b: any) => b.name).sort()).toEqual(['b1', 'b2', 'b3']);

    // the large object damaged in the store: verify --read-data and restore exit 3
    const huge = meta4.manifest.find((m: any) => m.path === 'big/huge.bin');
    expect(await tamper(repo, env, huge.sha256, 'damage')).toBe('loose');
    const dv = await run(['verify', 'b1', '--repo', repo, '--read-data', '--json']);
    expect(dv.code).toBe(3);
    expect(json(dv).problems).toEqual([expect.objectContaining({ path: 'big/huge.bin', kind: 'modified' })]);
    const fresh2 = join(root, 'fresh2');
    expect((await run(['restore', 'b1', '--repo', repo, '--target', join(fresh2, 'data'), '--backup-dir', join(fresh2, 'backups')])).code).toBe(3);
    expect(await readdir(fresh2).catch(() => [])).toEqual([]); // no backup, no data
  }, 180_000);

  it('a pack missing: verify names every file whose content was in it (exit 3), pull leaves nothing, a push puts them back', async () => {
    const s = await setup('pack-missing');
    const { root, repo, run } = s;
    const { meta, kind } = await pushAndTamper(s, 'keys/node.key', 'delete');
    expect(kind).toBe('packed');
    const small = meta.manifest.filter((m: any) => m.type === 'file' && m.size < 512 * 1024).map((m: any) => m.path).sort();
    const v = await run(['verify', 'b1', '--repo', repo, '--json']);
    expect(v.code).toBe(3);
    expect(json(v).problems.map((p: any) => p.path).sort()).toEqual(small);
    expect(json(v).problems.every((p: any) => p.kind === 'missing')).toBe(true);
    expect((await run(['verify', 'b1', '--repo', repo, '--read-data'])).code).toBe(3);
    const before = await snapshot(root);
    expect((await run(['pull', 'b1', '--repo', repo, '--backup-dir', join(root, 'pulled')])).code).toBe(3);
    expect(await snapshot(root)).toEqual(before);
    const p = json(await run(['push', 'b1', '--repo', repo, '--json'])).pushed[0];
    expect(p).toMatchObject({ snapshot: 'exists', packs: 1 });
    expect(p.uploaded).toBe(new Set(meta.manifest.filter((m: any) => m.type === 'file' && m.size < 512 * 1024).map((m: any) => m.sha256)).size);
    expect((await run(['verify', 'b1', '--repo', repo, '--read-data'])).code).toBe(0);
  });

  it('not a repository, a bad URL: clear coded errors', async () => {
    const { run } = await setup('errors');
    const none = await run(['list', '--repo', target.url('never-initialised'), '--json']);
    expect(none.code).toBe(1);
    expect(JSON.parse(none.stderr).error.code).toBe('REPO_INVALID');
    const bad = await run(['push', '--repo', 'ftp://x/y']);
    expect(bad.code).toBe(2);
    const noRepo = await run(['push'], { DAWN_BACKUP_REPO: '' });
    expect(noRepo.code).toBe(2);
    expect(noRepo.stderr).toContain('DAWN_BACKUP_REPO');
  });

  it('prune --repo: retention, then garbage collection of unreferenced objects; locks keep prune and push apart', async () => {
    const { data, env, repo, run } = await setup('prune');
    const { writeFile: wf } = await import('node:fs/promises');
    expect((await run(['push', 'b1', '--repo', repo])).code).toBe(0);
    await wf(join(data, 'keys/node.key'), 'rotated key 2\n');
    expect((await run(['backup', '--name', 'b2', '--quiet'])).code).toBe(0);
    expect((await run(['push', 'b2', '--repo', repo])).code).toBe(0);
    await wf(join(data, 'keys/node.key'), 'rotated key 3\n');
    expect((await run(['backup', '--name', 'b3', '--quiet'])).code).toBe(0);
    expect((await run(['push', 'b3', '--repo', repo])).code).toBe(0);
    const objectsBefore = (await storedObjects(repo, env)).length;

    const dry = json(await run(['prune', '--repo', repo, '--keep-last', '1', '--dry-run', '--json']));
    // node.key v1 sits in b1's pack beside live contents (kept), v2 alone in b2's pack (dead)
    expect(dry).toMatchObject({ dryRun: true, kept: ['b3'], garbage: 2, garbageDeleted: 0, packsDeleted: 1, packsPartlyLive: 1 });
    expect(dry.removed.sort()).toEqual(['b1', 'b2']);
    expect((await storedObjects(repo, env)).length).toBe(objectsBefore);

    // a push running elsewhere (a fresh lock of another host): prune refuses, removes nothing
    const backend = await openBackend(repo, { env });
    const lock = 'locks/push-otherhost-4242-abcd.json';
    await backend.putIfAbsent(lock, Buffer.from(JSON.stringify({ kind: 'push', host: 'otherhost', pid: 4242, created_at: Date.now() / 1000 })));
    const refused = await run(['prune', '--repo', repo, '--keep-last', '1', '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stderr).error.code).toBe('BUSY');
    expect(json(await run(['list', '--repo', repo, '--json'])).backups).toHaveLength(3);
    await backend.delete(lock);

    const pruned = await run(['prune', '--repo', repo, '--keep-last', '1', '--json']);
    expect(pruned.code, pruned.stderr).toBe(0);
    expect(json(pruned)).toMatchObject({ kept: ['b3'], garbage: 2, garbageDeleted: 1, packsDeleted: 1, packsPartlyLive: 1 });
    expect(json(pruned).deadBytesKept).toBeGreaterThan(0);
    expect(json(await run(['list', '--repo', repo, '--json'])).backups.map((b: any) => b.name)).toEqual(['b3']);
    expect((await storedObjects(repo, env)).length).toBe(objectsBefore - 1);
    const afterPrune = await storedPacks(repo, env);
    expect(afterPrune.packs.sort()).toEqual([...afterPrune.indexed].sort()); // every pack indexed, the dead one gone
    expect(afterPrune.indexes).toBe(1); // the indexes were merged into one
    expect((await run(['verify', 'b3', '--repo', repo, '--read-data'])).code).toBe(0);

    // a prune running elsewhere: push refuses (BUSY), nothing is written
    const plock = 'locks/prune-otherhost-4243-abcd.json';
    await backend.putIfAbsent(plock, Buffer.from(JSON.stringify({ kind: 'prune', host: 'otherhost', pid: 4243, created_at: Date.now() / 1000 })));
    const p = await run(['push', 'b1', '--repo', repo, '--json']);
    expect(p.code).toBe(1);
    expect(JSON.parse(p.stderr).error.code).toBe('BUSY');
    // a lock dated 7 h back by its writer's clock still counts: ages are measured on the store's clock
    await backend.delete(plock);
    await backend.putIfAbsent(plock, Buffer.from(JSON.stringify({ kind: 'prune', host: 'otherhost', pid: 4243, created_at: Date.now() / 1000 - 7 * 3600 })));
    expect(JSON.parse((await run(['push', 'b1', '--repo', repo, '--json'])).stderr).error.code).toBe('BUSY');
    // a stale lock (older than the stale timeout by the store's clock: here a test-only 0 s) does not count
    expect((await run(['push', 'b1', '--repo', repo], { DAWN_BACKUP_INTERNAL_LOCK_STALE_FOR_TESTS: '0' })).code).toBe(0);
    expect((await run(['verify', 'b1', '--repo', repo, '--read-data'])).code).toBe(0);
  });

  it('backup --push: backup then push in one step; a failed push exits 1 naming the local backup and the retry, and prunes nothing', async () => {
    const { root, data, repo, run } = await setup('backup-push');
    expect((await run(['push', 'b1', '--repo', repo])).code).toBe(0);
    await writeFile(join(data, 'keys/node.key'), 'rotated\n');
    const ok = await run(['backup', '--push', '--repo', repo, '--name', 'b2', '--keep-last', '1', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const res = json(ok);
    expect(res).toMatchObject({ name: 'b2', push: { pushed: [{ name: 'b2', snapshot: 'created', uploaded: 1 }] } });
    expect(res.pruned.removed.map((d: any) => d.name)).toEqual(['b1']); // pruned only after the push
    expect(json(await run(['list', '--repo', repo, '--json'])).backups.map((b: any) => b.name).sort()).toEqual(['b1', 'b2']);
    // DAWN_BACKUP_REPO is the default; text output says both
    const text = await run(['backup', '--push', '--name', 'b3'], { DAWN_BACKUP_REPO: repo });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('Created backup b3');
    expect(text.stdout).toMatch(/Pushed b3 to .*0 uploaded/);
    // the push fails (not a repository): the backup stays, nothing is pruned, the retry is named
    const bad = join(root, 'not-a-repo');
    const failed = await run(['backup', '--push', '--repo', bad, '--name', 'b4', '--keep-last', '1']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('backup b4 was created');
    expect(failed.stderr).toContain(`push b4 --repo ${bad}`);
    expect(failed.stderr).toContain('nothing was pruned');
    expect(failed.stderr).not.toMatch(STACK);
    const js = await run(['backup', '--push', '--repo', bad, '--name', 'b5', '--json']);
    expect(js.code).toBe(1);
    expect(json(js)).toMatchObject({ name: 'b5', push: { error: { code: 'REPO_INVALID' } } });
    expect(json(await run(['list', '--json'])).backups.map((b: any) => b.name).sort()).toEqual(['b2', 'b3', 'b4', 'b5']);
    // a malformed URL or --repo without --push: usage errors before any backup is made
    expect((await run(['backup', '--push', '--repo', 'ftp://x/y', '--name', 'b6'])).code).toBe(2);
    expect((await run(['backup', '--repo', repo, '--name', 'b6'])).code).toBe(2);
    expect(json(await run(['list', '--json'])).backups).toHaveLength(4);
  });

  it('show --repo and diff --repo read the snapshots (latest works); verify --read-data-subset reads a part', async () => {
    const { data, repo, run } = await setup('show-diff');
    expect((await run(['push', 'b1', '--repo', repo])).code).toBe(0);
    await writeFile(join(data, 'mesh/peer_registry.json'), JSON.stringify({ version: 1, peers: [{ node_id: 'peer-new' }] }));
    await writeFile(join(data, 'added.txt'), 'new file');
    expect((await run(['backup', '--push', '--repo', repo, '--name', 'b2', '--quiet'])).code).toBe(0);

    const local = json(await run(['show', 'b2', '--files', '--json']));
    const remote = json(await run(['show', 'latest', '--repo', repo, '--files', '--json']));
    const { path: _a, ...l } = local;
    const { path: _b, repo: r, pushedAt, pushedFrom, ...rest } = remote;
    expect(rest).toEqual(l);
    expect(r).toBeTruthy();
    expect(typeof pushedAt).toBe('number');
    const text = await run(['show', 'b1', '--repo', repo]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain('pushed:');
    expect((await run(['show', 'nope', '--repo', repo])).code).toBe(1);

    const ld = json(await run(['diff', 'b1', 'b2', '--json']));
    const rd = json(await run(['diff', 'b1', 'latest', '--repo', repo, '--json']));
    expect(rd.from).toMatchObject({ name: 'b1', repo: r });
    expect({ ...rd, from: ld.from, to: ld.to }).toEqual(ld);
    expect(rd.peers).toEqual({ added: ['peer-new'], removed: [] });
    expect(rd.added.map((e: any) => e.path)).toEqual(['added.txt']);
    // a snapshot against the live data root
    await writeFile(join(data, 'live-only.txt'), 'x');
    const live = json(await run(['diff', 'b2', '--repo', repo, '--json']));
    expect(live.to).toEqual({ kind: 'live', path: data });
    expect(live.added.map((e: any) => e.path)).toEqual(['live-only.txt']);

    const all = json(await run(['verify', 'b2', '--repo', repo, '--read-data-subset', '100%', '--json']));
    expect(all).toMatchObject({ ok: true, subset: '100%' });
    expect(all.checked).toBe(all.objects);
    let sum = 0;
    for (let n = 1; n <= 3; n++) {
      const v = await run(['verify', 'b2', '--repo', repo, '--read-data-subset', `${n}/3`, '--json']);
      expect(v.code, v.stderr).toBe(0);
      sum += json(v).checked;
    }
    expect(sum).toBe(all.objects);
    // the subset is over stored objects (packs and loose objects), not files: 1% is one of them
    const one = json(await run(['verify', 'b2', '--repo', repo, '--read-data-subset', '1%', '--json']));
    expect(one.storedRead).toBe(1);
    expect(one.checked).toBeGreaterThan(0);
    expect(all.storedRead).toBe(all.stored);
    expect((await run(['verify', 'b2', '--repo', repo, '--read-data-subset', '0%'])).code).toBe(2);
    expect((await run(['verify', 'b2', '--repo', repo, '--read-data-subset', '1/2', '--read-data'])).code).toBe(2);
  });

  it('two nodes (two data roots, two processes) push into one repository at once: both complete, shared content stored once, both restore', async () => {
    const root = await tempDir();
    const repo = target.url('two-nodes');
    const nodes = ['node-a', 'node-b'].map((n) => ({ name: n, data: join(root, n, 'data'), env: { ...target.env(), PROJECT_DAWN_DATA_ROOT: join(root, n, 'data'), DAWN_BACKUP_DIR: join(root, n, 'backups') } }));
    for (const n of nodes) {
      await makeManyFiles(n.data, 600, 'shared'); // the same 600 contents on both
      await writeFile(join(n.data, 'own.txt'), `only on ${n.name}`);
      expect((await cli(['backup', '--name', n.name, '--quiet'], n.env)).code).toBe(0);
    }
    expect((await cli(['init', '--repo', repo], nodes[0]!.env)).code).toBe(0);
    const pushes = await Promise.all(nodes.map((n) => cli(['push', '--repo', repo, '--json'], n.env)));
    for (const p of pushes) expect(p.code, p.stderr).toBe(0);
    const [a, b] = pushes.map((p) => json(p).pushed[0]);
    expect([a.snapshot, b.snapshot]).toEqual(['created', 'created']);
    // Each node's own file, and every shared content at least once: two pushes racing on the same
    // new small contents may both pack them (see the README: harmless, a reader takes any copy).
    expect(a.uploaded + b.uploaded).toBeGreaterThanOrEqual(602);
    expect(a.uploaded + b.uploaded).toBeLessThanOrEqual(1202);
    expect((await storedObjects(repo, target.env())).length).toBe(602);
    for (const n of nodes) {
      expect((await cli(['verify', n.name, '--repo', repo, '--read-data'], n.env)).code).toBe(0);
      const fresh = join(root, 'restored', n.name);
      const r = await cli(['restore', n.name, '--repo', repo, '--target', join(fresh, 'data'), '--backup-dir', join(fresh, 'backups'), '--json'], target.env());
      expect(r.code, r.stderr).toBe(0);
      expect(await snapshot(join(fresh, 'data'))).toEqual(await snapshot(n.data));
    }
  }, 120_000);

  it('prune --repo while a push is held mid-way (SIGSTOP after uploads, before its snapshot): refused while its lock is fresh; with a short stale timeout it collects, and the push re-uploads before it commits', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeManyFiles(data, 3000, 'held');
    // Packs of 4 KiB (some 30 blobs each, about 100 packs) so the push can be caught with some of
    // its packs and indexes written and others not yet.
    const env = { ...target.env(), PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), DAWN_BACKUP_INTERNAL_PACK_TARGET: '4096' };
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => cli(args, { ...env, ...extra });
    expect((await run(['backup', '--name', 'held', '--quiet'])).code).toBe(0);
    let held = false;
    for (let attempt = 0; attempt < 5 && !held; attempt++) {
      const repo = target.url(`held-${attempt}`);
      expect((await run(['init', '--repo', repo])).code).toBe(0);
      const child = spawnNode(BIN, ['push', '--repo', repo, '--json'], { env: { NO_COLOR: '1', ...env } });
      let done = false;
      const exited = child.exited.then((e) => ((done = true), e));
      while (!done && (await storedObjects(repo, env)).length < 100) await sleep(20);
      child.kill('SIGSTOP');
      const listed = json(await run(['list', '--repo', repo, '--json']));
      if (done || listed.backups.length > 0) {
        child.kill('SIGCONT');
        await exited;
        continue; // finished before it could be held: try again
      }
      held = true;
      const uploaded = await storedObjects(repo, env);
      // its lock is fresh: prune refuses and deletes nothing
      const refused = await run(['prune', '--repo', repo, '--keep-last', '1', '--json']);
      expect(refused.code).toBe(1);
      expect(JSON.parse(refused.stderr).error.code).toBe('BUSY');
      expect((await storedObjects(repo, env)).sort()).toEqual(uploaded.sort());
      // a prune that takes the held push for dead (stale timeout 0 s) collects its uncommitted objects...
      const pruned = await run(['prune', '--repo', repo, '--keep-last', '1', '--json'], { DAWN_BACKUP_INTERNAL_LOCK_STALE_FOR_TESTS: '0' });
      expect(pruned.code, pruned.stderr).toBe(0);
      expect(json(pruned).garbageDeleted).toBeGreaterThan(0);
      expect(json(pruned).packsDeleted).toBeGreaterThan(0); // its packs (and their indexes) went
      // ...and the push, resumed, finds them gone and uploads them again (in new packs, each with
      // its index) before its snapshot: it uploads more contents than the backup holds
      child.kill('SIGCONT');
      const exit = await exited;
      expect(exit.code, exit.stderr).toBe(0);
      const pushed = JSON.parse(exit.stdout).pushed[0];
      expect(pushed).toMatchObject({ name: 'held', snapshot: 'created' });
      expect(pushed.uploaded).toBeGreaterThan(pushed.objects);
      expect((await storedObjects(repo, env)).length).toBe(pushed.objects);
      const v = await run(['verify', 'held', '--repo', repo, '--read-data']);
      expect(v.code, v.stderr).toBe(0);
    }
    expect(held, 'the push was never caught mid-way in 5 attempts').toBe(true);
  }, 300_000);

  it('SIGKILL during push (at least 10 kills), then a rerun finishes without re-uploading what is there', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeManyFiles(data, 3000, 'k');
    // Packs of 512 B (a handful of small contents each, some 600 packs): kills land between a
    // pack and its index, and between packs.
    const env = { ...target.env(), PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups'), NO_COLOR: '1', DAWN_BACKUP_INTERNAL_PACK_TARGET: '512' };
    const run = (args: string[]) => cli(args, env);
    expect((await run(['backup', '--name', 'many', '--quiet'])).code).toBe(0);
    const repo = target.url('kill');
    expect((await run(['init', '--repo', repo])).code).toBe(0);
    const meta = backupMeta(join(root, 'backups', 'many'));
    const total = new Set(meta.manifest.filter((m: any) => m.type === 'file').map((m: any) => m.sha256)).size;
    let killed = 0;
    const delays: number[] = [];
    // One kill in four lands during start-up (a random moment in the first 300 ms); the others
    // once the run has committed a random part (at most a tenth) of what was left: always
    // mid-upload, whatever the machine's speed. Progress is counted in committed packs (index
    // objects: one listing), about 5 contents each.
    const backend = await openBackend(repo, { env });
    const committed = async () => (await backend.list(INDEX_PREFIX)).length;
    for (let k = 0; k < 20 && killed < 12; k++) {
      const present = await committed();
      const left = Math.max(1, Math.ceil(total / 5) - present);
      const goal = present + 1 + Math.floor(Math.random() * Math.max(1, left / 10));
      const child = spawnNode(BIN, ['push', '--repo', repo], { env });
      let done = false;
      const exited = child.exited.then((e) => ((done = true), e));
      if (k % 4 === 0) await sleep(Math.random() * 300);
      else while (!done && (await committed()) < goal) await sleep(20);
      delays.push(k % 4 === 0 ? -1 : goal - present);
      child.kill('SIGKILL');
      const exit = await exited;
      if (exit.signal === 'SIGKILL') killed++;
      // at every moment: a snapshot exists only when every object it names is there
      const listed = json(await run(['list', '--repo', repo, '--json']));
      expect(listed.damaged).toEqual([]);
      for (const b of listed.backups) expect((await run(['verify', b.name, '--repo', repo])).code, `delays ${delays}`).toBe(0);
      if (listed.backups.length > 0) break; // a run finished: the rest is the rerun below
    }
    expect(killed, `kills after n packs (-1: start-up) ${delays}`).toBeGreaterThanOrEqual(10);
    const present = new Set(await storedObjects(repo, env));
    const rerun = await run(['push', '--repo', repo, '--json']);
    expect(rerun.code, rerun.stderr).toBe(0);
    const r = json(rerun).pushed[0];
    if (r.snapshot === 'created') expect(r.uploaded).toBe(total - present.size);
    expect(new Set(await storedObjects(repo, env)).size).toBe(total);
    expect((await run(['verify', 'many', '--repo', repo, '--read-data'])).code).toBe(0);
    expect(json(await run(['push', '--repo', repo, '--json'])).pushed[0].uploaded).toBe(0);
    // packs a killed run uploaded without their index are garbage: prune removes exactly those
    const { packs, indexed } = await storedPacks(repo, env);
    const orphans = packs.filter((id) => !indexed.has(id)).length;
    const pr = json(await run(['prune', '--repo', repo, '--keep-last', '1', '--json']));
    expect(pr).toMatchObject({ packsDeleted: orphans, garbage: 0 });
    expect((await storedPacks(repo, env)).packs.length).toBe(packs.length - orphans);
    expect((await run(['verify', 'many', '--repo', repo, '--read-data'])).code).toBe(0);
  }, 300_000);
}
