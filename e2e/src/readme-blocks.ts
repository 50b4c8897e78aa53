/**
 * README code blocks as tested examples.
 *
 * Every fenced block whose language is `ts`, `typescript`, `js`, `javascript` or `mjs` in the
 * root README and in each published package's README is an example. By default an example is
 * type-checked (strict) against the installed packages' declarations and then run with Node in
 * a fresh temporary directory. A directive in an HTML comment on the line right above the fence
 * says otherwise:
 *
 * - `<!-- example: typecheck-only -->` — type-checked, not run (it needs a server, a TTY, a
 *   package we do not install, or runs forever).
 * - `<!-- example: fragment -->` — deliberately a fragment (a signature, a few lines out of
 *   context): neither checked nor run. Keep these rare.
 *
 * A runnable example must not touch absolute paths outside the temporary directory: string
 * literals that start with `/` (other than `/tmp/` and libp2p multiaddrs) are refused, so a
 * README never teaches `/data/...` paths that fail (or, as root, write into `/`).
 */
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export type ExampleMode = 'run' | 'typecheck-only' | 'fragment';

export interface Example {
  /** The README, relative to the repository root. */
  readme: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  mode: ExampleMode;
  code: string;
  /** A file name for it: `<package>-L<line>`. */
  id: string;
}

const LANGS = new Set(['ts', 'typescript', 'js', 'javascript', 'mjs']);
const DIRECTIVE = /^<!--\s*example:\s*(typecheck-only|fragment)\s*-->\s*$/;

/** Extract the examples of one README. */
export function extractExamples(repoRoot: string, file: string): Example[] {
  const readme = relative(repoRoot, file);
  const pkg = readme === 'README.md' ? 'root' : readme.split('/')[1]!;
  const lines = readFileSync(file, 'utf8').split('\n');
  const out: Example[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    const lang = open[1]!;
    if (LANGS.has(lang)) {
      const directive = DIRECTIVE.exec(lines[i - 1] ?? '');
      out.push({
        readme,
        line: i + 1,
        lang,
        mode: (directive?.[1] as ExampleMode | undefined) ?? 'run',
        code: lines.slice(i + 1, end).join('\n') + '\n',
        id: `${pkg}-L${i + 1}`,
      });
    }
    i = end;
  }
  return out;
}

/** Every README that ships or greets a new user. */
export function readmes(repoRoot: string, packages: readonly string[]): string[] {
  return [join(repoRoot, 'README.md'), ...packages.map((p) => join(repoRoot, 'packages', p, 'README.md'))];
}

/** Absolute paths a runnable example must not use (see the module comment). */
export function forbiddenPaths(code: string): string[] {
  const found: string[] = [];
  for (const m of code.matchAll(/(['"`])(\/[^'"`\s]*)/g)) {
    const p = m[2]!;
    if (p.startsWith('/tmp/') || /^\/(ip4|ip6|dns|dns4|dns6|dnsaddr)\//.test(p)) continue;
    found.push(p);
  }
  return found;
}
