import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig } from 'tsup';
import { baseConfig } from '../../tsup.config.base.ts';

// Two entries: the library (`index`) and the CLI (`cli`, imported by bin/dawn-backup.js).
// The AWS SDK (`@aws-sdk/client-s3`, `@aws-sdk/lib-storage`: pinned devDependencies) is bundled
// with what it needs: Node then loads a few files instead of resolving hundreds through its
// CommonJS loader (an S3 command starts faster), and `npx @dawn/backup-cli` installs nothing else.
// Code splitting keeps it in chunks of its own, loaded only for an `s3://` repository. The
// licenses of the bundled packages go into dist/THIRD_PARTY_LICENSES.md.
export default defineConfig({
  ...baseConfig,
  entry: ['src/index.ts', 'src/cli.ts'],
  splitting: true,
  noExternal: [/^@aws-sdk\//],
  metafile: true,
  esbuildOptions(options) {
    // The SDK's ES module builds: smaller than its CommonJS ones, and what an ESM bundle should hold.
    options.mainFields = ['module', 'main'];
  },
  onSuccess: async () => writeThirdPartyLicenses('dist'),
});

/** List every package bundled into `dist` (from esbuild's metafile) with its license text. */
function writeThirdPartyLicenses(dist: string): void {
  const metafile = join(dist, 'metafile-esm.json');
  const inputs = Object.keys((JSON.parse(readFileSync(metafile, 'utf8')) as { inputs: Record<string, unknown> }).inputs);
  rmSync(metafile);
  const dirs = new Set<string>();
  for (const input of inputs) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) dirs.add(m[1]!);
  }
  // One copy of each distinct license (and notice) text, after the packages it covers.
  const byText = new Map<string, string[]>();
  for (const dir of [...dirs].sort()) {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version: string; license?: string };
    const texts = readdirSync(dir)
      .filter((f) => /^(licen[cs]e|copying|notice)(\.(md|txt))?$/i.test(f))
      .sort()
      .map((f) => readFileSync(join(dir, f), 'utf8').trim());
    const key = texts.length > 0 ? texts.join('\n\n') : `(no license file shipped; package.json says ${pkg.license ?? 'nothing'})`;
    byText.set(key, [...(byText.get(key) ?? []), `${pkg.name}@${pkg.version} (${pkg.license ?? '?'})`]);
  }
  const parts = [...byText].map(([text, pkgs]) => `${pkgs.map((p) => `- ${p}`).join('\n')}\n\n\`\`\`\n${text}\n\`\`\`\n`);
  const head = '# Third-party software bundled in @dawn/backup-cli\n\nThe dist files of this package include the following packages (the AWS SDK for JavaScript v3 and what it needs), each under its own license:\n\n';
  writeFileSync(join(dist, 'THIRD_PARTY_LICENSES.md'), head + parts.join('\n'));
}
