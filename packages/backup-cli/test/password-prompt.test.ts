import { execFile, execFileSync } from 'node:child_process';
import { lstat, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { BIN, cli, makeRichTree, snapshot, STACK } from './helpers.js';

const run = promisify(execFile);
const HARNESS = join(dirname(fileURLToPath(import.meta.url)), 'pty-run.py');
const python = (() => {
  try {
    execFileSync('python3', ['-c', 'import pty, os; os.waitstatus_to_exitcode'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const mustRun = process.env.CI === 'true';
if (!python && !mustRun) console.warn('[password-prompt] skipped: python3 (3.9+, with its pty module) is needed as the pseudo-terminal harness; install python3, or CI=true to make this a failure');

const tempDir = useTempDir('dawn-backup-prompt-');

/** Run dawn-backup on a real pseudo-terminal, typing `answers` at its questions. */
async function onTty(args: string[], answers: string[], env: NodeJS.ProcessEnv): Promise<{ output: string; code: number; prompts: number }> {
  const { stdout } = await run('python3', [HARNESS, JSON.stringify(answers), process.execPath, BIN, ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...env },
    timeout: 150_000,
  });
  return JSON.parse(stdout);
}

describe.skipIf(!python && !mustRun)('password prompt on a terminal (a real pseudo-terminal, python3 pty)', () => {
  it('init --encrypt asks twice without echo; a mismatch creates nothing; each command asks once; a wrong one is WRONG_PASSWORD; no TTY and no password is a coded error', async () => {
    const root = await tempDir();
    const data = join(root, 'data');
    await makeRichTree(data);
    const env = { PROJECT_DAWN_DATA_ROOT: data, DAWN_BACKUP_DIR: join(root, 'backups') };
    const repo = join(root, 'repo');
    const secret = 'tty secret ünïcode';
    expect((await cli(['backup', '--name', 'b1', '--quiet'], env)).code).toBe(0);

    const mismatch = await onTty(['init', '--repo', repo, '--encrypt'], ['one thing', 'another'], env);
    expect(mismatch.code).toBe(1);
    expect(mismatch.prompts).toBe(2);
    expect(mismatch.output).toContain('differ');
    expect(mismatch.output).not.toMatch(STACK);
    await expect(readFile(join(repo, 'config.json'))).rejects.toThrow(/ENOENT/);
    await expect(lstat(repo)).rejects.toThrow(/ENOENT/); // not even the directory

    const init = await onTty(['init', '--repo', repo, '--encrypt'], [secret, secret], env);
    expect(init.code, init.output).toBe(0);
    expect(init.prompts).toBe(2);
    expect(init.output).not.toContain(secret.slice(0, 6)); // never echoed
    expect(JSON.parse(await readFile(join(repo, 'config.json'), 'utf8')).encryption.algorithm).toBe('aes-256-gcm');

    const push = await onTty(['push', '--repo', repo], [secret], env);
    expect(push.code, push.output).toBe(0);
    expect(push.prompts).toBe(1);
    expect(push.output).toContain('Pushed');
    expect(push.output).not.toContain(secret.slice(0, 6));

    // restore latest opens the repository several times: still one question
    const fresh = join(root, 'fresh');
    const restore = await onTty(['restore', 'latest', '--repo', repo, '--target', join(fresh, 'data'), '--backup-dir', join(fresh, 'backups')], [secret, secret, secret], env);
    expect(restore.code, restore.output).toBe(0);
    expect(restore.prompts).toBe(1);

    const before = await snapshot(root);
    const wrong = await onTty(['list', '--repo', repo], ['not it'], env);
    expect(wrong.code).toBe(1);
    expect(wrong.output).toContain('Wrong password');
    expect(wrong.output).not.toMatch(STACK);
    // the environment's password wins: no question at all
    const envPw = await onTty(['list', '--repo', repo], [], { ...env, DAWN_BACKUP_PASSWORD: secret });
    expect(envPw.code, envPw.output).toBe(0);
    expect(envPw.prompts).toBe(0);
    // an unencrypted repository never asks
    const plain = join(root, 'plain');
    expect((await cli(['init', '--repo', plain], env)).code).toBe(0);
    expect((await onTty(['list', '--repo', plain], ['x'], env)).prompts).toBe(0);
    // no terminal, no password: a clear coded error, nothing read
    const noTty = await cli(['list', '--repo', repo, '--json'], env);
    expect(noTty.code).toBe(1);
    expect(JSON.parse(noTty.stderr).error).toMatchObject({ code: 'WRONG_PASSWORD', message: expect.stringContaining('DAWN_BACKUP_PASSWORD') });
    expect(await snapshot(root, ['plain'])).toEqual(before);
  }, 200_000);
});
