/**
 * The README's "Operating" guide, run: the crontab entry, the systemd service's commands and the
 * `cp` recipe execute against a real data root (paths replaced by temporary ones), and the units
 * have the sections systemd needs.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFixture, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';

const pkg = dirname(dirname(fileURLToPath(import.meta.url)));
const readme = await readFile(join(pkg, 'README.md'), 'utf8');
const guide = readme.slice(readme.indexOf('\n## Operating'), readme.indexOf('\n## FAQ'));
const tempDir = useTempDir('dawn-backup-ops-');

function blocks(lang: string): string[] {
  return [...guide.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

/** A temp machine: a data root, a backup dir, and `dawn-backup` on the PATH. */
async function machine() {
  const root = await tempDir();
  const data = await copyFixture('data', join(root, 'var/lib/dawn'));
  const backups = join(root, 'var/backups/dawn');
  const bin = join(root, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'dawn-backup'), `#!/bin/sh\nexec "${process.execPath}" "${join(pkg, 'bin', 'dawn-backup.js')}" "$@"\n`);
  await chmod(join(bin, 'dawn-backup'), 0o755);
  const local = (text: string) => text.replaceAll('/var/lib/dawn', data).replaceAll('/var/backups/dawn', backups);
  const sh = (command: string, env: Record<string, string>) =>
    execFileSync('sh', ['-c', command], { env: { PATH: `${bin}:${process.env.PATH}`, HOME: root, ...env }, encoding: 'utf8' });
  return { root, data, backups, local, sh };
}

describe('the Operating guide runs as written', () => {
  it('the crontab entry backs up and prunes', async () => {
    const m = await machine();
    const [crontab] = blocks('crontab');
    const env: Record<string, string> = {};
    const jobs: string[] = [];
    for (const line of m.local(crontab!).split('\n').filter((l) => l.trim() && !l.startsWith('#'))) {
      const assign = /^([A-Z_]+)=(.*)$/.exec(line);
      if (assign) env[assign[1]!] = assign[2]!;
      else {
        const fields = line.trim().split(/\s+/);
        expect(fields.slice(0, 5).join(' ')).toMatch(/^[\d*,/-]+( [\d*,/-]+){4}$/); // five time fields
        expect(fields[5]).toBe('dawn'); // the user field of /etc/cron.d
        jobs.push(fields.slice(6).join(' '));
      }
    }
    expect(jobs).toHaveLength(1);
    for (let i = 0; i < 2; i++) {
      expect(m.sh(jobs[0]!, env)).toBe(''); // --quiet: nothing on success
      await new Promise((r) => setTimeout(r, 1100)); // a new default name each second
    }
    expect((await readdir(m.backups)).filter((n) => n.startsWith('dawn_backup_'))).toHaveLength(2);
  });

  it('the systemd service\'s commands back up and prune; the units have what systemd needs', async () => {
    const m = await machine();
    const [service, timer] = blocks('ini').map((b) => m.local(b));
    expect(service).toMatch(/^\[Service\]$/m);
    expect(service).toMatch(/^Type=oneshot$/m);
    expect(timer).toMatch(/^\[Timer\]\nOnCalendar=\S+/m);
    expect(timer).toMatch(/^\[Install\]\nWantedBy=timers\.target$/m);
    const env = Object.fromEntries([...service!.matchAll(/^Environment=([A-Z_]+)=(.*)$/gm)].map((x) => [x[1]!, x[2]!]));
    const exec = [...service!.matchAll(/^ExecStart(?:Post)?=(.*)$/gm)].map((x) => x[1]!);
    expect(exec).toHaveLength(2);
    for (const command of exec) expect(m.sh(command, env)).toBe('');
    expect((await readdir(m.backups)).filter((n) => n.startsWith('dawn_backup_'))).toHaveLength(1);
  });

  it('one file back with cp', async () => {
    const m = await machine();
    const [recipe] = blocks('sh');
    const name = /verify (\S+)/.exec(recipe!)![1]!;
    const env = { PROJECT_DAWN_DATA_ROOT: m.data, DAWN_BACKUP_DIR: m.backups };
    m.sh(`dawn-backup backup --name ${name} --quiet`, env);
    const file = join(m.data, 'agents/first_agent/state.json');
    const original = await readFile(file, 'utf8');
    await writeFile(file, '{"damaged": true}\n');
    m.sh(m.local(recipe!), env);
    expect(await readFile(file, 'utf8')).toBe(original);
  });
});
