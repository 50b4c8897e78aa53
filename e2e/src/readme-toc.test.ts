import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@dawn/test-utils';
import { expect, it } from 'vitest';

it('every README over 20 KB has an up-to-date table of contents (node scripts/readme-toc.mjs writes them)', () => {
  expect(() => execFileSync('node', [join(repoRoot, 'scripts', 'readme-toc.mjs'), '--check'], { stdio: 'pipe' })).not.toThrow();
  const big = ['atomic-json', 'peer-registry', 'agent-state', 'backup-cli'].map((p) => join(repoRoot, 'packages', p, 'README.md'));
  for (const f of big) {
    const text = readFileSync(f, 'utf8');
    if (Buffer.byteLength(text) > 20 * 1024) expect(text, f).toContain('<!-- toc -->');
  }
});
