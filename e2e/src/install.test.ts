/**
 * Install like a user: pack every publishable package with `pnpm pack`, install the tarballs
 * with plain npm into a project outside the workspace, import them from ESM, type-check a
 * strict TypeScript consumer against the shipped .d.ts files, and run the installed
 * `dawn-backup` bin for real (backup, list, verify, restore).
 */
import { execFile } from 'node:child_process';
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, repoRoot } from '@dawn/test-utils';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const PACKAGES = ['atomic-json', 'peer-registry', 'agent-state', 'backup-cli'];
const PNPM = ['-y', 'pnpm@10.34.8'];

let tmp: string;
let app: string;
const report: Record<string, unknown> = {};

async function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  return run(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
}

beforeAll(async () => {
  tmp = await makeTempDir('dawn-e2e-');
  const tarballs = join(tmp, 'tarballs');
  await mkdir(tarballs);
  for (const name of PACKAGES) {
    await sh('npx', [...PNPM, 'pack', '--pack-destination', tarballs], join(repoRoot, 'packages', name));
  }
  const files = (await readdir(tarballs)).filter((f) => f.endsWith('.tgz')).sort();
  expect(files).toHaveLength(PACKAGES.length);
  const sizes: Record<string, number> = {};
  for (const f of files) sizes[f] = (await stat(join(tarballs, f))).size;
  report.packedBytes = sizes;

  app = join(tmp, 'app');
  await mkdir(app);
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'stranger-app', private: true, type: 'module' }, null, 2));
  const started = Date.now();
  await sh(
    'npm',
    ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files.map((f) => join(tarballs, f)), '@types/node@^20.19.0'],
    app,
  );
  report.installMs = Date.now() - started;
  for (const f of ['consumer.ts', 'tsconfig.json', 'use.mjs']) {
    await copyFile(join(repoRoot, 'e2e', 'consumer', f), join(app, f));
  }
});

afterAll(async () => {
  console.log(`e2e install report: ${JSON.stringify(report)}`);
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('installed from packed tarballs into a project outside the workspace', () => {
  it('the dependencies point at published versions, not the workspace protocol', async () => {
    for (const name of PACKAGES) {
      const manifest = JSON.parse(await readFile(join(app, 'node_modules', '@dawn', name, 'package.json'), 'utf8'));
      expect(JSON.stringify(manifest)).not.toContain('workspace:');
      expect(manifest.type).toBe('module');
    }
  });

  it('imports every package from plain ESM and seeds a data root through them', async () => {
    const root = join(tmp, 'data-esm');
    const { stdout } = await sh('node', ['use.mjs', root], app);
    const out = JSON.parse(stdout.trim().split('\n').pop()!);
    expect(out.peers).toBe(20);
    expect(out.agent).toBe('E2E');
    expect(out.backupExports).toEqual(expect.arrayContaining(['createBackup', 'listBackups', 'verifyBackup', 'restoreBackup', 'pruneBackups']));
  });

  it('type-checks a strict TypeScript consumer against the shipped declarations', async () => {
    const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = await sh('node', [tsc, '-p', 'tsconfig.json'], app).catch((e) => e);
    expect(`${result.stdout ?? ''}${result.stderr ?? ''}`).toBe('');
  });

  it('runs the installed dawn-backup bin: --help, backup, list, verify, restore', async () => {
    const help = await sh('npx', ['dawn-backup', '--help'], app);
    for (const verb of ['backup', 'list', 'verify', 'restore', 'prune']) expect(help.stdout).toContain(verb);

    const root = join(tmp, 'data-cli');
    await sh('node', ['use.mjs', root], app);
    const backups = join(tmp, 'backups-cli');
    const env = { PROJECT_DAWN_DATA_ROOT: root, NO_COLOR: '1' };
    const made = JSON.parse((await sh('npx', ['dawn-backup', 'backup', '--backup-dir', backups, '--name', 'e2e', '--json'], app, env)).stdout);
    expect(JSON.stringify(made)).toContain('e2e');
    const listed = JSON.parse((await sh('npx', ['dawn-backup', 'list', '--backup-dir', backups, '--json'], app, env)).stdout);
    expect(JSON.stringify(listed)).toContain('e2e');
    await sh('npx', ['dawn-backup', 'verify', 'e2e', '--backup-dir', backups], app, env);

    const before = await readFile(join(root, 'mesh', 'peer_registry.json'), 'utf8');
    await writeFile(join(root, 'mesh', 'peer_registry.json'), '{"version": 1, "peers": []}');
    await sh('npx', ['dawn-backup', 'restore', 'e2e', '--backup-dir', backups, '--target', root, '--overwrite'], app, env);
    expect(await readFile(join(root, 'mesh', 'peer_registry.json'), 'utf8')).toBe(before);
  });
});
