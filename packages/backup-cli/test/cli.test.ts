import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, makeTempDir, useTempDir } from '@dawn/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, json, STACK } from './helpers.js';

const tempDir = useTempDir('dawn-backup-cli-');

async function setup() {
  const root = await tempDir();
  const data = await copyFixture('data', join(root, 'data'));
  const backups = join(root, 'backups');
  return { root, data, backups, env: { PROJECT_DAWN_DATA_ROOT: data } };
}

// Usage errors write nothing: they share one data root and run concurrently (each is a process).
describe.concurrent('usage errors: exit 2, usage printed, never a stack trace', () => {
  let shared: { root: string; env: NodeJS.ProcessEnv };
  beforeAll(async () => {
    const root = await makeTempDir('dawn-backup-usage-');
    await copyFixture('data', join(root, 'data'));
    shared = { root, env: { PROJECT_DAWN_DATA_ROOT: join(root, 'data') } };
  });
  afterAll(async () => {
    await rm(shared.root, { recursive: true, force: true });
  });

  const cases: [string, string[]][] = [
    ['unknown command', ['frobnicate']],
    ['no command', []],
    ['unknown option', ['backup', '--bogus']],
    ['unknown global option', ['--bogus']],
    ['missing option value', ['backup', '--name']],
    ['missing argument', ['show']],
    ['extra argument', ['verify', 'a', 'b']],
    ['name with ..', ['backup', '--name', '../escape']],
    ['name with /', ['backup', '--name', 'a/b']],
    ['option given twice', ['backup', '--name', 'a', '--name', 'b']],
    ['prune without a keep option', ['prune']],
    ['prune with a bad count', ['prune', '--keep-last', 'many']],
    ['prune with a negative count', ['prune', '--keep-last', '-1']],
    ['bad exclude', ['backup', '--exclude', '/']],
    ['bad name to show', ['show', '../x']],
  ];
  it.each(cases)('%s', async (_, args) => {
    const { env, root } = shared;
    const r = await cli(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Usage:/);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stdout).toBe('');
    expect(await readdir(root)).toEqual(['data']); // nothing was written
  });

  it('--json: the usage error is one JSON document on stderr', async () => {
    const { env } = shared;
    const r = await cli(['backup', '--bogus', '--json'], env);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    const e = JSON.parse(r.stderr);
    expect(e.error).toMatchObject({ code: 'USAGE', exitCode: 2 });
    expect(e.error.message).toMatch(/--bogus/);
  });

  it('--help and --version exit 0 and show examples', async () => {
    const h = await cli(['backup', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Examples:[\s\S]*dawn-backup backup/);
    expect(h.stdout).toMatch(/--exclude <glob>/);
    const g = await cli(['--help']);
    expect(g.stdout).toMatch(/backup[\s\S]*list[\s\S]*show[\s\S]*verify[\s\S]*restore[\s\S]*prune/);
    const v = await cli(['--version']);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/dawn-backup\/\d+\.\d+\.\d+/);
  });
});

describe('failures: exit 1 with what to do', () => {
  it('an existing name is an error, never merged into', async () => {
    const { env, backups } = await setup();
    expect((await cli(['backup', '--name', '007'], env)).code).toBe(0);
    const again = await cli(['backup', '--name', '007', '--json'], env);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stderr).error).toMatchObject({ code: 'BACKUP_EXISTS', exitCode: 1 });
    expect(await readdir(backups)).toEqual(['007']);
  });

  it('a missing source is an error and creates nothing', async () => {
    const { root } = await setup();
    const r = await cli(['backup', '--source', join(root, 'nope'), '--backup-dir', join(root, 'b')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not exist/);
    expect(r.stderr).not.toMatch(STACK);
    expect(await readdir(root)).toEqual(['data']);
  });

  it('an unknown backup is an error for show, verify and restore', async () => {
    const { env, root } = await setup();
    for (const cmd of ['show', 'verify', 'restore']) {
      const r = await cli([cmd, 'nope', '--json'], env);
      expect(r.code).toBe(1);
      expect(JSON.parse(r.stderr).error.code).toBe('BACKUP_NOT_FOUND');
    }
    expect(await readdir(root)).toEqual(['data']);
  });

  it('refuses to restore into a target that holds the backup dir', async () => {
    const { env, data } = await setup();
    const inside = join(data, 'backups');
    expect((await cli(['backup', '--backup-dir', inside, '--name', 'n'], env)).code).toBe(0);
    const r = await cli(['restore', 'n', '--backup-dir', inside, '--json'], env);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stderr).error.code).toBe('TARGET_INVALID');
  });
});

describe('options and output', () => {
  it('--name 007 stays "007"; one --exclude and several both work', async () => {
    const { env, data, backups } = await setup();
    await mkdir(join(data, 'cache'));
    await writeFile(join(data, 'cache', 'c.bin'), 'c');
    await writeFile(join(data, 'notes.bak'), 'b');
    const one = json(await cli(['backup', '--name', '007', '--exclude', '*.bak', '--json'], env));
    expect(one.name).toBe('007');
    expect(one.excludes).toContain('*.bak');
    const two = json(await cli(['backup', '--name', '008', '--exclude', '*.bak', '--exclude', 'cache/', '--json'], env));
    expect(two.excludes.slice(-2)).toEqual(['*.bak', 'cache/']);
    expect((await readdir(join(backups, '007'))).sort()).toEqual(['.backup_manifest.json', '.backup_metadata.json', 'agents', 'cache', 'logs', 'mesh']);
    expect((await readdir(join(backups, '008'))).sort()).toEqual(['.backup_manifest.json', '.backup_metadata.json', 'agents', 'logs', 'mesh']);
    const shown = json(await cli(['show', '007', '--json'], env));
    expect(shown.name).toBe('007');
  });

  it('a backup dir inside the source is excluded automatically', async () => {
    const { env, data } = await setup();
    const inside = join(data, 'backups');
    expect((await cli(['backup', '--backup-dir', inside, '--name', 'a'], env)).code).toBe(0);
    const b = json(await cli(['backup', '--backup-dir', inside, '--name', 'b', '--json'], env));
    expect(b.fileCount).toBe(3);
    expect(await readdir(join(inside, 'b'))).not.toContain('backups');
  });

  it('--json output of every command parses; list is newest first; restore list is list', async () => {
    const { env, root } = await setup();
    const a = await cli(['backup', '--name', 'a', '--json'], env);
    await new Promise((r) => setTimeout(r, 20));
    const b = await cli(['backup', '--name', 'b', '--json'], env);
    for (const r of [a, b]) expect(r.code, r.stderr).toBe(0);
    const list = json(await cli(['list', '--json'], env));
    expect(list.backups.map((x: any) => x.name)).toEqual(['b', 'a']);
    const rlist = json(await cli(['restore', 'list', '--json'], env));
    expect(rlist.backups.map((x: any) => x.name)).toEqual(['b', 'a']);
    const lv = json(await cli(['list', '--verify', '--json'], env));
    expect(lv.backups.map((x: any) => x.verification.status)).toEqual(['ok', 'ok']);
    const show = json(await cli(['show', 'a', '--files', '--json'], env));
    expect(show.manifest.length).toBeGreaterThan(3);
    const verify = json(await cli(['verify', 'a', '--json'], env));
    expect(verify).toMatchObject({ status: 'ok', ok: true, files: 3, problems: [] });
    const restore = json(await cli(['restore', 'a', '--target', join(root, 't'), '--json'], env));
    expect(restore.files).toBe(3);
    const prune = json(await cli(['prune', '--keep-last', '1', '--dry-run', '--json'], env));
    expect(prune.removed.map((x: any) => x.name)).toEqual(['a']);
  });

  it('--quiet prints nothing on success; human output has no colors without a TTY', async () => {
    const { env } = await setup();
    const q = await cli(['backup', '--quiet'], env);
    expect(q.code).toBe(0);
    expect(q.stdout + q.stderr).toBe('');
    const h = await cli(['list'], { ...env, NO_COLOR: '' });
    expect(h.stdout).toMatch(/NAME\s+CREATED/);
    expect(h.stdout).not.toMatch(/\u001b\[/);
  });
});

describe('prune through the binary', () => {
  it('--dry-run deletes nothing; a real run keeps the newest', async () => {
    const { env, backups } = await setup();
    for (const n of ['p1', 'p2', 'p3']) {
      expect((await cli(['backup', '--name', n], env)).code).toBe(0);
      await new Promise((r) => setTimeout(r, 20));
    }
    const dry = json(await cli(['prune', '--keep-last', '1', '--dry-run', '--json'], env));
    expect(dry.dryRun).toBe(true);
    expect(dry.removed.map((d: any) => d.name)).toEqual(['p2', 'p1']);
    expect((await readdir(backups)).sort()).toEqual(['p1', 'p2', 'p3']);
    const real = await cli(['prune', '--keep-last', '0'], env);
    expect(real.code, real.stderr).toBe(0);
    expect(await readdir(backups)).toEqual(['p3']);
  });
});
