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
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { extractExamples, forbiddenPaths, readmes, type Example } from './readme-blocks.js';

const run = promisify(execFile);
const PACKAGES = ['atomic-json', 'peer-registry', 'agent-state', 'backup-cli'];
const PNPM = ['-y', 'pnpm@10.34.8'];

let tmp: string;
let app: string;
/** A second install with no `@types/node` at all: the consumer's types must not need it. */
let bare: string;
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
  bare = join(tmp, 'bare');
  const started = Date.now();
  // zod: a real Standard Schema library, for the README example of JsonFile's validate.
  for (const [dir, extra] of [[app, ['@types/node@^20.19.0', 'zod@^3.25.0']], [bare, []]] as const) {
    await mkdir(dir);
    await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'stranger-app', private: true, type: 'module' }, null, 2));
    await sh('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error', ...files.map((f) => join(tarballs, f)), ...extra], dir);
  }
  report.installMs = Date.now() - started;
  for (const f of ['consumer.ts', 'use.mjs']) await copyFile(join(repoRoot, 'e2e', 'consumer', f), join(app, f));
  await copyFile(join(repoRoot, 'e2e', 'consumer', 'consumer.ts'), join(bare, 'consumer.ts'));
  await copyFile(join(repoRoot, 'e2e', 'consumer', 'tsconfig.json'), join(bare, 'tsconfig.json'));
});

const tsc = () => join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

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

  it('type-checks a strict TypeScript consumer against the shipped declarations, with no @types/node installed', async () => {
    await expect(stat(join(bare, 'node_modules', '@types', 'node'))).rejects.toMatchObject({ code: 'ENOENT' });
    const result = await sh('node', [tsc(), '-p', 'tsconfig.json'], bare).catch((e) => e);
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

describe('every TypeScript/JavaScript block of every README is a tested example', () => {
  const examples: Example[] = readmes(repoRoot, PACKAGES).flatMap((f) => extractExamples(repoRoot, f));
  const checked = examples.filter((e) => e.mode !== 'fragment');

  it('the READMEs have examples, few of them fragments', () => {
    expect(checked.length).toBeGreaterThan(10);
    report.readmeExamples = {
      run: examples.filter((e) => e.mode === 'run').length,
      typecheckOnly: examples.filter((e) => e.mode === 'typecheck-only').length,
      fragments: examples.filter((e) => e.mode === 'fragment').map((e) => `${e.readme}:${e.line}`),
    };
  });

  it('they type-check (strict) against the packed packages', async () => {
    const dir = join(app, 'examples');
    await mkdir(dir, { recursive: true });
    const names: string[] = [];
    for (const e of checked) {
      if (e.lang !== 'ts' && e.lang !== 'typescript') continue;
      names.push(`${e.id}.mts`);
      await writeFile(join(dir, `${e.id}.mts`), `${e.code}\nexport {};\n`);
    }
    await writeFile(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noUncheckedIndexedAccess: true,
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          types: ['node'],
          noEmit: true,
          skipLibCheck: true,
          noUnusedLocals: false,
        },
        files: names,
      }),
    );
    const result = await sh('node', [tsc(), '-p', 'tsconfig.json', '--pretty', 'false'], dir).catch((e) => e);
    // Name each failing example by its README and line.
    const out = `${result.stdout ?? ''}${result.stderr ?? ''}`.replace(/([\w-]+)-L(\d+)\.mts\((\d+),/g, (_m, pkg: string, line: string, at: string) => {
      const readme = pkg === 'root' ? 'README.md' : `packages/${pkg}/README.md`;
      return `${readme}:${Number(line) + Number(at)} (`;
    });
    expect(out).toBe('');
  });

  it('the runnable ones run, each in a fresh directory, and touch no absolute path outside it', async () => {
    const failures: string[] = [];
    for (const e of checked.filter((x) => x.mode === 'run')) {
      const where = `${e.readme}:${e.line}`;
      const bad = forbiddenPaths(e.code);
      if (bad.length > 0) {
        failures.push(`${where}: uses absolute paths ${bad.join(', ')}; use relative paths (examples run in a temp dir) or mark it <!-- example: typecheck-only -->`);
        continue;
      }
      const js = e.lang === 'ts' || e.lang === 'typescript'
        ? ts.transpileModule(e.code, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText
        : e.code;
      const file = join(app, 'examples', `${e.id}.mjs`);
      await mkdir(join(app, 'examples'), { recursive: true });
      await writeFile(file, js);
      const cwd = await makeTempDir('dawn-example-');
      try {
        await mkdir(join(cwd, 'home'));
        await run('node', [file], {
          cwd,
          timeout: 60_000,
          env: { ...process.env, HOME: join(cwd, 'home'), PROJECT_DAWN_DATA_ROOT: join(cwd, 'data'), DAWN_BACKUP_DIR: '', NO_COLOR: '1' },
        });
      } catch (err) {
        const e2 = err as { stderr?: string; code?: unknown; signal?: unknown };
        failures.push(`${where}: exited ${String(e2.code ?? e2.signal)}: ${(e2.stderr ?? String(err)).trim().split('\n').slice(0, 6).join(' | ')}`);
      } finally {
        await rm(cwd, { recursive: true, force: true });
      }
    }
    expect(failures).toEqual([]);
  });
});
