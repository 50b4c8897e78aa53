import * as fs from 'node:fs';
import { readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { createBackup, planBackup } from '../src/index.js';
import { cli, json, makeRichTree } from './helpers.js';

/** Issue 11 §4: `backup --dry-run` says what would be written, linked and excluded, and changes nothing. */

const tempDir = useTempDir('dawn-backup-dryrun-');

/** Everything under `root` (and `root` itself): type, size, mode, inode, link count, mtime — any change shows. */
function stateOf(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    const abs = rel ? join(root, rel) : root;
    const st = fs.lstatSync(abs);
    out[rel || '.'] = `${st.mode.toString(8)} ${st.size} ${st.ino} ${st.nlink} ${st.mtimeMs}`;
    if (st.isDirectory()) for (const n of fs.readdirSync(abs).sort()) walk(rel ? `${rel}/${n}` : n);
  };
  walk('');
  return out;
}

async function setup() {
  const root = await tempDir();
  const source = join(root, 'src');
  await makeRichTree(source);
  return { root, source, backupDir: join(root, 'backups') };
}

describe('backup --dry-run', () => {
  it('lists new, linked and excluded files (with the pattern) exactly as the backup then does, and changes nothing', async () => {
    const { root, source, backupDir } = await setup();
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    await writeFile(join(source, 'agents/first_agent/state.json'), '{"agent_id":"first_agent","name":"first_agent","state":{"n":2}}');
    await writeFile(join(source, 'new.json'), '{"new": true}');
    await writeFile(join(source, 'notes.bak'), 'excluded by the user');

    const before = { backups: stateOf(backupDir), source: stateOf(source), parent: (await readdir(dirname(source))).sort() };
    const plan = await planBackup({ source, backupDir, name: 'b2', exclude: ['*.bak'] });
    expect({ backups: stateOf(backupDir), source: stateOf(source), parent: (await readdir(dirname(source))).sort() }).toEqual(before);

    expect(plan).toMatchObject({ dryRun: true, name: 'b2', path: join(backupDir, 'b2'), linkedFrom: 'b1' });
    expect(plan.backup.map((f) => f.path).sort()).toEqual(['agents/first_agent/state.json', 'new.json']);
    expect(plan.link.map((f) => f.path)).toContain('keys/node.key');
    expect(plan.link.map((f) => f.path)).not.toContain('agents/first_agent/state.json');
    const excluded = Object.fromEntries(plan.excluded.map((x) => [x.path, x.pattern]));
    expect(excluded).toMatchObject({
      'logs/dawn.log': '*.log',
      'scratch.tmp': '*.tmp',
      'tools/__pycache__/': '__pycache__',
      'notes.bak': '*.bak',
      'mesh/.0123456789ab-0123456789abcdef.ajtmp': '(atomic-json temp file)',
    });

    // The real backup does what the plan said.
    const made = await createBackup({ source, backupDir, name: 'b2', exclude: ['*.bak'], fsync: false });
    expect({ newFiles: made.newFiles, newBytes: made.newBytes, linkedFiles: made.linkedFiles, linkedBytes: made.linkedBytes, linkedFrom: made.linkedFrom }).toEqual({
      newFiles: plan.newFiles,
      newBytes: plan.newBytes,
      linkedFiles: plan.linkedFiles,
      linkedBytes: plan.linkedBytes,
      linkedFrom: plan.linkedFrom,
    });
    expect(made.excluded.sort()).toEqual(plan.excluded.map((x) => x.path).sort());
    expect(made.fileCount).toBe(plan.backup.length + plan.link.length);
  });

  it('CLI: --json gives counts and lists, the human output one line per file; no backup dir, temp dir or lock is left', async () => {
    const { root, source, backupDir } = await setup();
    const parentBefore = (await readdir(root)).sort();
    const r = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const plan = json(r);
    expect(plan).toMatchObject({ dryRun: true, linkedFrom: null, linkedFiles: 0, newFiles: plan.backup.length });
    expect(plan.backup.map((f: any) => f.path)).toContain('big.bin');
    expect(plan.excluded).toContainEqual({ path: 'logs/dawn.log', pattern: '*.log' });
    // Nothing created: not the backup dir, no temporary directory, no lock beside the source.
    expect((await readdir(root)).sort()).toEqual(parentBefore);

    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    const before = stateOf(backupDir);
    const h = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--dry-run', '--full']);
    expect(h.code, h.stderr).toBe(0);
    expect(h.stdout).toMatch(/^Dry run: backup dawn_backup_\d{8}_\d{6} of .+ would write \d+ file\(s\) .*Nothing was changed\.$/m);
    expect(h.stdout).toMatch(/^ {2}backup +\d+ B {2}keys\/node\.key$/m);
    expect(h.stdout).toMatch(/^ {2}exclude +logs\/dawn\.log {2}\(\*\.log\)$/m);
    const l = await cli(['backup', '--source', source, '--backup-dir', backupDir, '--dry-run']);
    expect(l.stdout).toMatch(/unchanged file\(s\) .* linked to b1/);
    expect(l.stdout).toMatch(/^ {2}link +\d+ B {2}keys\/node\.key$/m);
    expect(stateOf(backupDir)).toEqual(before);
    expect((await readdir(root)).sort()).toEqual([...parentBefore, 'backups'].sort());
  });

  it('refuses as the backup would: an existing name, a bad pattern, a missing source', async () => {
    const { root, source, backupDir } = await setup();
    await createBackup({ source, backupDir, name: 'b1', fsync: false });
    expect((await cli(['backup', '--source', source, '--backup-dir', backupDir, '--name', 'b1', '--dry-run'])).code).toBe(1);
    await expect(planBackup({ source, backupDir, name: 'b1' })).rejects.toMatchObject({ code: 'BACKUP_EXISTS' });
    expect((await cli(['backup', '--source', source, '--backup-dir', backupDir, '--exclude', '', '--dry-run'])).code).toBe(2);
    await expect(planBackup({ source: join(root, 'nope'), backupDir })).rejects.toMatchObject({ code: 'SOURCE_NOT_FOUND' });
  });
});
