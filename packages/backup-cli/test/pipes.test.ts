import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from '@dawn/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackup } from '../src/index.js';
import { BIN, STACK } from './helpers.js';

/**
 * B19: a reader that closes early (`| head -1`) ends the command quietly: no EPIPE error, no
 * stack trace, the exit code the command would have had. Real processes, real pipes; the
 * outputs are far larger than a pipe buffer, so the writes really hit a closed pipe.
 */

let root: string;
let backups: string;

beforeAll(async () => {
  root = await makeTempDir('dawn-backup-pipes-');
  const src = join(root, 'src');
  // 3000 agents: `show --files` prints ~6000 lines, `list --json` ~3000 agent ids.
  for (let i = 0; i < 3000; i++) {
    const id = `agent_${String(i).padStart(5, '0')}_${'x'.repeat(40)}`;
    await mkdir(join(src, 'agents', id), { recursive: true });
    await writeFile(join(src, 'agents', id, 'state.json'), `{"agent_id":"${id}","name":"${id}","state":{}}`);
  }
  backups = join(root, 'backups');
  await createBackup({ source: src, backupDir: backups, name: 'big', fsync: false });
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** Run the binary with stdout read by `reader` (a shell pipeline), e.g. `head -1`. */
function piped(args: string[], reader: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    // the exit code of dawn-backup itself, not of the reader; its stderr goes to ours
    const p = spawn('bash', ['-c', `${quoted} | ${reader}; exit "\${PIPESTATUS[0]}"`], {
      env: { ...process.env, NO_COLOR: '1', PROJECT_DAWN_DATA_ROOT: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c) => (stdout += c));
    p.stderr.on('data', (c) => (stderr += c));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Run the binary and close our end of its stdout after the first chunk. */
function closedEarly(args: string[]): Promise<{ code: number | null; stderr: string; chunks: number }> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', PROJECT_DAWN_DATA_ROOT: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let chunks = 0;
    p.stdout.once('data', () => {
      chunks++;
      p.stdout.destroy();
    });
    p.stderr.on('data', (c) => (stderr += c));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stderr, chunks }));
  });
}

describe('a closed stdout ends every command quietly', () => {
  it('`show NAME --files | head -1`: the first line, exit 0, nothing on stderr', async () => {
    const r = await piped(['show', 'big', '--files', '--backup-dir', backups], 'head -1');
    expect(r.stdout).toBe('big\n');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it.each([
    [['show', 'big', '--files']],
    [['show', 'big', '--files', '--json']],
    [['list', '--json']],
    [['list', '--verify', '--json']],
    [['prune', '--keep-last', '1', '--dry-run', '--json']],
  ])('%j with the reader gone after the first chunk: exit 0, no error text', async (args) => {
    const r = await closedEarly([...args, '--backup-dir', backups]);
    expect(r.chunks).toBe(1);
    expect(r.stderr).not.toMatch(/EPIPE|error/i);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });

  it('a failing command still exits as it would, its error on stderr', async () => {
    const r = await piped(['verify', 'nope', '--backup-dir', backups], 'head -c 0');
    expect(r.code).toBe(1); // BACKUP_NOT_FOUND, reported on stderr as usual
    expect(r.stderr).toMatch(/No backup named "nope"/);
    expect(r.stderr).not.toMatch(STACK);
  });
});
