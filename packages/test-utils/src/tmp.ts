import { existsSync } from 'node:fs';
import { cp, mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

function findRepoRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`No pnpm-workspace.yaml above ${start}`);
    dir = parent;
  }
}

/** The monorepo's root directory. */
export const repoRoot = findRepoRoot(dirname(fileURLToPath(import.meta.url)));

/**
 * The Python implementation's real files (read-only), vendored byte-identical in
 * `packages/test-utils/fixtures/python-dawn` (see the README there), or `$DAWN_FIXTURES` when set.
 */
export const fixturesDir = process.env.DAWN_FIXTURES
  ? resolve(process.env.DAWN_FIXTURES)
  : resolve(repoRoot, 'packages/test-utils/fixtures/python-dawn');

/** A fresh directory under the OS temp dir (realpath'd, so macOS /private/var paths compare equal). */
export async function makeTempDir(prefix = 'dawn-test-'): Promise<string> {
  return realpath(await mkdtemp(join(tmpdir(), prefix)));
}

/**
 * Call at the top of a `describe` or test file: returns a function giving a new temp dir,
 * and removes every dir it gave after each test.
 */
export function useTempDir(prefix?: string): () => Promise<string> {
  const made: string[] = [];
  afterEach(async () => {
    await Promise.all(made.splice(0).map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await makeTempDir(prefix);
    made.push(dir);
    return dir;
  };
}

/** Copy a directory tree (writable copy; read-only bits of the source are dropped for files we own). */
export async function copyDir(from: string, to: string): Promise<void> {
  await cp(from, to, { recursive: true, verbatimSymlinks: true });
}

/**
 * Copy a fixture (`data` or `backups`, or a path inside them) to `dest` so a test may modify it.
 * Files copied from the read-only fixture are made writable.
 */
export async function copyFixture(name: string, dest: string): Promise<string> {
  await copyDir(join(fixturesDir, name), dest);
  const { chmod, readdir, stat } = await import('node:fs/promises');
  const walk = async (p: string): Promise<void> => {
    const st = await stat(p);
    await chmod(p, st.isDirectory() ? 0o755 : 0o644);
    if (st.isDirectory()) for (const e of await readdir(p)) await walk(join(p, e));
  };
  await walk(dest);
  return dest;
}
