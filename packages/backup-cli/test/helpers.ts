import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { existsSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, readlink, symlink, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, type ChildExit } from '@dawn/test-utils';

/** The real binary, as users run it (needs `dist/`: `npx tsup` or `pnpm build`). */
export const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../bin/dawn-backup.js');
if (!existsSync(resolve(dirname(BIN), '../dist/cli.js'))) {
  throw new Error('packages/backup-cli/dist/cli.js is missing: build the package first (`npx tsup` in packages/backup-cli, or `pnpm build`).');
}
export const FIXTURES = resolve(dirname(fileURLToPath(import.meta.url)), 'fixtures');

/** Run `dawn-backup ...args`; PROJECT_DAWN_DATA_ROOT unset unless given. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ChildExit> {
  return runNode(BIN, args, { env: { PROJECT_DAWN_DATA_ROOT: '', NO_COLOR: '1', ...env } });
}

/** Parse the one JSON document a `--json` run printed on stdout. */
export function json<T = any>(r: ChildExit): T {
  return JSON.parse(r.stdout) as T;
}

/** A stack trace line (`    at fn (file:1:2)`). */
export const STACK = /^\s+at .+[:(]/m;

/**
 * What a tree holds, comparable with toEqual: path -> `dir 0755` | `file 0644 <sha256>` | `link <target>`.
 * `skip` names top-level entries to leave out.
 */
export async function snapshot(root: string, skip: string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string) => {
    const names = (await readdir(join(root, rel))).sort();
    for (const n of names) {
      const r = rel ? `${rel}/${n}` : n;
      if (!rel && skip.includes(n)) continue;
      const p = join(root, r);
      const st = await lstat(p);
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      if (st.isSymbolicLink()) out[r] = `link ${await readlink(p)}`;
      else if (st.isDirectory()) {
        out[r] = `dir ${mode}`;
        await walk(r);
      } else out[r] = `file ${mode} ${createHash('sha256').update(await readFile(p)).digest('hex')}`;
    }
  };
  await walk('');
  return out;
}

/**
 * A tree with nested and empty directories, unicode names, symlinks (file, directory, dangling,
 * absolute), a 0600 file, an executable, and files the default excludes leave out.
 */
export async function makeRichTree(root: string): Promise<void> {
  const file = async (rel: string, content: string | Buffer, mode = 0o644) => {
    await mkdir(dirname(join(root, rel)), { recursive: true });
    await writeFile(join(root, rel), content);
    await chmod(join(root, rel), mode);
  };
  await mkdir(root, { recursive: true });
  await file('mesh/peer_registry.json', JSON.stringify({ version: 1, peers: [] }, null, 2));
  await file('agents/first_agent/state.json', JSON.stringify({ agent_id: 'first_agent', name: 'first_agent', state: { n: 1 } }, null, 2));
  await file('agents/données/state.json', JSON.stringify({ agent_id: 'données', name: 'données', state: {} }, null, 2));
  await file('keys/node.key', 'secret-key-material\n', 0o600);
  await file('tools/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  await file('deep/a/b/c/d/e/leaf.txt', 'leaf');
  await file('日本語/ファイル 🚀.json', '{"ok": true}');
  await file('empty.bin', '');
  await file('big.bin', Buffer.alloc(3 * 1024 * 1024 + 17, 7)); // above the small-file path
  await mkdir(join(root, 'empty/nested/dirs'), { recursive: true });
  await mkdir(join(root, 'private'), { mode: 0o700 });
  await chmod(join(root, 'private'), 0o700);
  await mkdir(join(root, 'group'), { mode: 0o750 });
  await chmod(join(root, 'group'), 0o750);
  await symlink('../mesh/peer_registry.json', join(root, 'agents/registry-link'));
  await symlink('deep/a', join(root, 'dir-link'));
  await symlink('does/not/exist', join(root, 'dangling'));
  await symlink('/etc/hostname', join(root, 'absolute-link'));
  // excluded by default
  await file('logs/dawn.log', 'log line\n');
  await file('tools/__pycache__/x.pyc', 'bytecode');
  await file('scratch.tmp', 'tmp');
  // A lock dir left by a node that died a minute ago (stale): excluded by the backup, which takes
  // it over at once to copy the registry. A fresh one would make every backup of this tree wait
  // for it to go stale (10 s), as it should for a live node: tests of that make their own.
  await mkdir(join(root, 'mesh/peer_registry.json.lock'));
  const old = new Date(Date.now() - 60_000);
  await utimes(join(root, 'mesh/peer_registry.json.lock'), old, old);
  await file('mesh/.0123456789ab-0123456789abcdef.ajtmp', 'half-written');
}

/** Entries of makeRichTree that the default excludes leave out. */
export const RICH_EXCLUDED = ['logs/dawn.log', 'tools/__pycache__', 'tools/__pycache__/x.pyc', 'scratch.tmp', 'mesh/peer_registry.json.lock', 'mesh/.0123456789ab-0123456789abcdef.ajtmp'];

/** A snapshot without some paths. */
export function without(snap: Record<string, string>, paths: string[]): Record<string, string> {
  const out = { ...snap };
  for (const p of paths) delete out[p];
  return out;
}

/** Many small files (for kill tests). */
export async function makeManyFiles(root: string, count: number, tag: string): Promise<void> {
  const perDir = 100;
  for (let d = 0; d * perDir < count; d++) {
    const dir = join(root, `d${String(d).padStart(3, '0')}`);
    await mkdir(dir, { recursive: true });
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < perDir && d * perDir + i < count; i++) {
      jobs.push(writeFile(join(dir, `f${i}.json`), JSON.stringify({ tag, d, i, pad: 'x'.repeat(1024 + ((d * 31 + i) % 2048)) })));
    }
    await Promise.all(jobs);
  }
}

/** Path bytes as readable, unambiguous text: printable ASCII as is (`\` doubled), other bytes as `\xNN`. */
export function showBytes(b: Buffer): string {
  let s = '';
  for (const c of b) s += c === 0x5c ? '\\\\' : c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  return s;
}

const SEP = Buffer.from('/');

/**
 * What a tree holds, with names as bytes (see {@link showBytes}): path -> `dir 0755` |
 * `file 0644 <sha256>` | `link <target bytes>` | `special`. `skip(relBytes, stats, entries)`
 * leaves an entry (and what it holds) out; `entries` lists a directory's names.
 */
export function snapshotBytes(
  root: string,
  skip: (rel: Buffer, st: import('node:fs').Stats, names: Buffer[] | undefined) => boolean = () => false,
): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: Buffer) => {
    const abs = rel.length === 0 ? Buffer.from(root) : Buffer.concat([Buffer.from(root), SEP, rel]);
    const names = (fs.readdirSync(abs, { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare);
    for (const n of names) {
      const r = rel.length === 0 ? n : Buffer.concat([rel, SEP, n]);
      const p = Buffer.concat([abs, SEP, n]);
      const st = fs.lstatSync(p);
      const kids = st.isDirectory() ? (fs.readdirSync(p, { encoding: 'buffer' }) as Buffer[]) : undefined;
      if (skip(r, st, kids)) continue;
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      const key = showBytes(r);
      if (st.isSymbolicLink()) out[key] = `link ${showBytes(fs.readlinkSync(p, { encoding: 'buffer' }))}`;
      else if (st.isDirectory()) {
        out[key] = `dir ${mode}`;
        walk(r);
      } else if (st.isFile()) out[key] = `file ${mode} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
      else out[key] = 'special';
    }
  };
  walk(Buffer.alloc(0));
  return out;
}

/** `root/relBytes` as a Buffer path. */
export const bpath = (root: string, ...parts: (string | Buffer)[]): Buffer =>
  Buffer.concat([Buffer.from(root), ...parts.flatMap((p) => [SEP, typeof p === 'string' ? Buffer.from(p) : p])]);

/** The files a backup holds besides the source's (its metadata and, since format 2, its manifest). */
export const OWN_FILES = ['.backup_metadata.json', '.backup_manifest.json'];

/** A backup's metadata as written, with its manifest (read from `.backup_manifest.json` in format 2). */
export function backupMeta(backupPath: string): any {
  const meta = JSON.parse(fs.readFileSync(join(backupPath, '.backup_metadata.json'), 'utf8'));
  if (meta.manifest_file) meta.manifest = JSON.parse(fs.readFileSync(join(backupPath, meta.manifest_file.name), 'utf8')).entries;
  return meta;
}

/**
 * Turn a backup made now into one as the previous release wrote it (format 1): the manifest
 * inline in `.backup_metadata.json` (last, as `metadataText` lays it out), no manifest file,
 * `name_escape: 1`. The backup must not hold a top-level `.backup_manifest.json*` of the source.
 */
export function toFormat1(backupPath: string): void {
  const meta = backupMeta(backupPath);
  const { manifest, manifest_file: _ref, ...head } = meta;
  const file = join(backupPath, '.backup_metadata.json');
  const top = JSON.stringify({ ...head, format_version: 1, name_escape: 1 }, null, 2).slice(0, -2);
  const entries = (manifest as unknown[]).map((e) => `    ${JSON.stringify(e)}`).join(',\n');
  fs.rmSync(join(backupPath, '.backup_manifest.json'));
  fs.rmSync(file);
  fs.writeFileSync(file, `${top},\n  "manifest": [${entries === '' ? ']' : `\n${entries}\n  ]`}\n}\n`, { mode: 0o600 });
}
