/**
 * Child processes import `@dawn/atomic-json` from its built `dist`. Fail early, with the fix,
 * when `dist` is missing or older than the sources (a test would otherwise run old code).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const pkgDir = dirname(dirname(fileURLToPath(import.meta.url)));

/** Absolute path of a child script in `test/fixtures/`. */
export function fixture(name: string): string {
  return join(pkgDir, 'test', 'fixtures', name);
}

export function assertDistIsFresh(): void {
  const built = join(pkgDir, 'dist', 'index.js');
  const hint = 'Run `npx tsup` in packages/atomic-json (or `pnpm build`) first.';
  if (!existsSync(built)) throw new Error(`${built} is missing. ${hint}`);
  const builtAt = statSync(built).mtimeMs;
  const src = join(pkgDir, 'src');
  for (const name of readdirSync(src)) {
    if (name.endsWith('.ts') && !name.endsWith('.test.ts') && statSync(join(src, name)).mtimeMs > builtAt) {
      throw new Error(`${built} is older than src/${name}. ${hint}`);
    }
  }
}
