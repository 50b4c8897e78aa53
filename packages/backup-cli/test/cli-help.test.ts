import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { cli, json, STACK } from './helpers.js';

const tempDir = useTempDir('dawn-backup-help-');

async function setup() {
  const root = await tempDir();
  const data = await copyFixture('data', join(root, 'data'));
  return { root, data, env: { PROJECT_DAWN_DATA_ROOT: data } };
}

describe('usage errors speak the user\'s spelling and suggest the fix', () => {
  const cases: [string[], RegExp][] = [
    [['prune', '--keep-lst', '2'], /Unknown option --keep-lst for "prune"\. Did you mean --keep-last\?/],
    [['prune', '--keep-last', '-1'], /--keep-last needs a whole number ≥ 0, got "-1"/],
    [['prune', '--keep-daily=-3'], /--keep-daily needs a whole number ≥ 0, got "-3"/],
    [['list', '--dry-run'], /Unknown option --dry-run for "list"\. --dry-run is an option of [a-z, ]*\bprune\b[a-z, ]*\./],
    [['bakup'], /Unknown command "bakup"\. Did you mean "backup"\?/],
    [['restore', 'x', '--trget', '/tmp/y'], /Did you mean --target\?/],
    [['backup', '--name'], /--name needs a value/],
    [['backup', '--json=yes'], /--json takes no value/],
  ];
  it.each(cases)('%j', async (args, message) => {
    const { env } = await setup();
    const r = await cli(args, env);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/keepLst|keepLast|`-1`|dryRun/); // never cac's camelCase or a value taken for an option
    expect(r.stderr).not.toMatch(STACK);
  });
});

describe('help', () => {
  it('shows exit codes and the environment, never "(default: true)" for a --no-* flag, and the real backup dir rule', async () => {
    for (const args of [['--help'], ['backup', '--help'], ['restore', '--help']]) {
      const r = await cli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/Exit codes:[\s\S]*3 verification failed/);
      expect(r.stdout).toMatch(/DAWN_BACKUP_DIR/);
      expect(r.stdout).not.toMatch(/default: true/);
    }
    expect((await cli(['backup', '--help'])).stdout).toMatch(/for backup: <source>\/\.\.\/backups/);
  });

  it('--help --json and --version --json print JSON', async () => {
    const h = json((await cli(['--help', '--json'])));
    expect(h.name).toBe('dawn-backup');
    expect(h.commands.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['backup', 'list', 'show', 'verify', 'restore', 'prune']));
    expect(h.exitCodes['3']).toMatch(/verification/);
    const v = json(await cli(['--version', '--json']));
    expect(v).toEqual({ name: 'dawn-backup', version: expect.any(String) });
  });
});

describe('DAWN_BACKUP_DIR and --verbose', () => {
  it('every command finds the backups of `backup --source X` through DAWN_BACKUP_DIR', async () => {
    const { root, data } = await setup();
    const env = { PROJECT_DAWN_DATA_ROOT: join(root, 'elsewhere'), DAWN_BACKUP_DIR: join(root, 'bk') };
    expect((await cli(['backup', '--source', data, '--name', 'one'], env)).code).toBe(0);
    const list = json(await cli(['list', '--json'], env));
    expect(list.backupDir).toBe(join(root, 'bk'));
    expect(list.backups.map((b: { name: string }) => b.name)).toEqual(['one']);
    expect((await cli(['verify', 'one'], env)).code).toBe(0);
    // --backup-dir still wins.
    expect(json(await cli(['list', '--json', '--backup-dir', join(root, 'other')], env)).backups).toEqual([]);
  });

  it('--verbose says what was excluded and kept', async () => {
    const { data, env } = await setup();
    const b = await cli(['backup', '--name', 'v', '--verbose'], env);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toMatch(/excluded: logs\/dawn\.log/);
    const r = await cli(['restore', 'v', '--verbose'], env);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/kept \(excluded by the backup\): logs\/dawn\.log/);
    void data;
  });
});

describe('terminal escape sequences in names are shown escaped', () => {
  it('a file named with OSC/CSI sequences and a bidi override never reaches the terminal raw', async () => {
    const { data, env } = await setup();
    const evil = 'x\u001b]0;pwned\u0007\u001b[2J\u202eexe.txt';
    await mkdir(join(data, 'notes'), { recursive: true });
    await writeFile(join(data, 'notes', evil), 'hi');
    await writeFile(join(data, 'notes', 'y.sock'), 'plain');
    expect((await cli(['backup', '--name', 'esc'], env)).code).toBe(0);
    const shown = await cli(['show', 'esc', '--files'], env);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('x\\x1b]0;pwned\\x07\\x1b[2J\\u202eexe.txt');
    expect(shown.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f\u202e]/); // eslint-disable-line no-control-regex
    // --json carries the exact name (JSON escapes it).
    const j = json(await cli(['show', 'esc', '--files', '--json'], env));
    expect(j.manifest.some((m: { path: string }) => m.path === `notes/${evil}`)).toBe(true);
  });
});
