/**
 * `diff NAME [OTHER]`: what differs between a backup and another backup, or the live source.
 * Read-only: nothing is written, no lock is taken.
 */
import { parseJson } from '@dawn/atomic-json';
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { BackupError } from './errors.js';
import { createExcludeMatcher, DEFAULT_EXCLUDES } from './exclude.js';
import { modeToString } from './fsutil.js';
import { checkManifest, nameEscapeOf, type BackupMetadata, type ManifestEntry } from './metadata.js';
import { expandHome, resolveDataRoot } from './paths.js';
import { entryRel, entryTarget, joinRel, manifestPathFields, manifestTargetFields, relFromBytes, relKey, type Rel } from './relpath.js';
import { readlinkConfined } from './confine.js';
import { manifestFromTree, openBackup, storedPathOf } from './verify.js';
import { walkTree } from './walk.js';

/** Options of {@link diffBackup}. */
export interface DiffOptions {
  /** The backup to compare from. */
  name: string;
  /** Another backup to compare to; without it, the live source (see `source`). */
  other?: string | undefined;
  /** @default `$DAWN_BACKUP_DIR`, else `<data root>/../backups` */
  backupDir?: string | undefined;
  /**
   * The live directory to compare to when `other` is not given.
   * @default the backup's recorded source, else the data root
   */
  source?: string | undefined;
}

/** One path that differs. Sizes are in bytes; modes as 4-digit octal strings. */
export interface DiffEntry {
  path: string;
  /** Base64 of the exact path bytes, only when the name is not valid UTF-8. */
  path_b64?: string;
  change: 'added' | 'removed' | 'modified' | 'mode' | 'type';
  /** `file`, `dir` or `symlink` on each side (absent on the side that lacks the path). */
  from?: { type: ManifestEntry['type']; size?: number; mode?: string };
  to?: { type: ManifestEntry['type']; size?: number; mode?: string };
}

/** The differences, `from` → `to`. */
export interface DiffResult {
  /** `repo`: the backup is a snapshot of this repository (`diff --repo`). */
  from: { kind: 'backup'; name: string; repo?: string };
  to: { kind: 'backup'; name: string; repo?: string } | { kind: 'live'; path: string };
  added: DiffEntry[];
  removed: DiffEntry[];
  /** Content changed (sha256, or a symlink's target). */
  modified: DiffEntry[];
  /** Same content, another mode. */
  mode: DiffEntry[];
  /** A file became a directory, and so on. */
  type: DiffEntry[];
  /** Node ids of the peer registries, when both sides have one that parses. */
  peers: { added: string[]; removed: string[] } | null;
  /** Agent ids (`agents/<id>/state.json`), when both sides have agents. */
  agents: { added: string[]; removed: string[] } | null;
  /** What could not be compared, and why (a side's registry unreadable...). */
  notes: string[];
}

/** One side of a comparison: a backup (local or in a repository) or a live tree. */
export interface DiffSide {
  /** By relKey. */
  entries: Map<string, { rel: Rel; e: ManifestEntry }>;
  /** sha256 of a file by relKey, computed on demand for entries that carry none. */
  hash(key: string): Promise<string | undefined>;
  /**
   * The bytes of the regular file `rel` of this side (only the peer registry is ever read), or
   * `undefined` when the side has none. Throws when it cannot be read (the message goes into `notes`).
   */
  read(rel: string): Promise<Buffer | undefined>;
}
type Side = DiffSide;

/** The entries of a manifest, by relKey. */
export function entriesOf(manifest: readonly ManifestEntry[]): DiffSide['entries'] {
  const entries: DiffSide['entries'] = new Map();
  for (const e of manifest) {
    const rel = entryRel(e);
    if (rel !== undefined) entries.set(relKey(rel), { rel, e });
  }
  return entries;
}

/** A regular file's bytes, never through a symlink nor blocking on a FIFO; `undefined` when absent. */
async function readRegular(path: string | Buffer | undefined): Promise<Buffer | undefined> {
  if (path === undefined) return undefined;
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0));
    if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
    return await fh.readFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  } finally {
    await fh?.close().catch(() => {});
  }
}

async function sha256Of(path: string | Buffer): Promise<string | undefined> {
  let fh;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | (constants.O_NONBLOCK ?? 0));
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    const h = createHash('sha256');
    for await (const chunk of fh.createReadStream({ autoClose: false })) h.update(chunk as Buffer);
    return h.digest('hex');
  } catch {
    return undefined;
  } finally {
    await fh?.close().catch(() => {});
  }
}

function sideFromManifest(root: string, manifest: readonly ManifestEntry[], nameEscape: boolean): Side {
  const entries = entriesOf(manifest);
  return {
    entries,
    hash: async (key) => {
      const x = entries.get(key);
      if (!x || x.e.type !== 'file') return undefined;
      return x.e.sha256 !== '' ? x.e.sha256 : sha256Of(storedPathOf(root, x.e, nameEscape));
    },
    read: (rel) => {
      const x = entries.get(rel);
      return readRegular(x && x.e.type === 'file' ? storedPathOf(root, x.e, nameEscape) : undefined);
    },
  };
}

async function backupSide(name: string, backupDir: string | undefined): Promise<{ side: Side; meta: BackupMetadata }> {
  const b = await openBackup({ name, backupDir });
  const nameEscape = nameEscapeOf(b.meta);
  let manifest: ManifestEntry[];
  if (Array.isArray(b.meta.manifest)) {
    const problems = checkManifest(b.meta.manifest, { nameEscape });
    if (problems.length > 0) {
      throw new BackupError('BACKUP_INVALID', `Backup "${name}" has an unusable manifest (${problems[0]!.path}: ${problems[0]!.detail}). Run \`dawn-backup verify ${name}\`.`, {
        path: b.path,
        problems,
      });
    }
    manifest = b.meta.manifest as ManifestEntry[];
  } else {
    manifest = await manifestFromTree(b.path); // a Python backup: hashed on demand
  }
  return { side: sideFromManifest(b.path, manifest, nameEscape), meta: b.meta };
}

/** The live tree, as a backup of it with the same excludes would see it. */
export async function liveSide(root: string, meta: BackupMetadata): Promise<DiffSide> {
  const patterns = Array.isArray(meta.excludes) ? meta.excludes.filter((p): p is string => typeof p === 'string') : [...DEFAULT_EXCLUDES];
  let excluded: (rel: string, isDir: boolean, exact?: boolean) => boolean;
  try {
    excluded = createExcludeMatcher(patterns);
  } catch {
    excluded = createExcludeMatcher([...DEFAULT_EXCLUDES]);
  }
  const walked = await walkTree(root, { exclude: (rel, isDir, exact) => excluded(rel, isDir, exact), skipLockDirs: true, confined: true });
  const manifest: ManifestEntry[] = [];
  const { lstat } = await import('node:fs/promises');
  for (const e of walked.entries) {
    const p = manifestPathFields(e.rel);
    const full = joinRel(root, e.rel);
    if (e.kind === 'dir') manifest.push({ ...p, type: 'dir', mode: modeToString(e.mode ?? 0o755) });
    else if (e.kind === 'symlink') {
      manifest.push({ ...p, type: 'symlink', ...manifestTargetFields(relFromBytes(readlinkConfined(full))) });
    } else {
      const st = await lstat(full).catch(() => undefined);
      if (st?.isFile()) manifest.push({ ...p, type: 'file', size: st.size, mode: modeToString(st.mode), sha256: '' });
    }
  }
  const side = sideFromManifest(root, manifest, false);
  return {
    ...side,
    hash: async (key) => {
      const x = side.entries.get(key);
      return x && x.e.type === 'file' ? sha256Of(joinRel(root, x.rel)) : undefined;
    },
    read: (rel) => readRegular(joinRel(root, rel)),
  };
}

const brief = (e: ManifestEntry): NonNullable<DiffEntry['from']> => ({
  type: e.type,
  ...(e.type === 'file' ? { size: e.size } : {}),
  ...(e.type !== 'symlink' ? { mode: typeof e.mode === 'string' ? e.mode : modeToString(Number(e.mode) || 0) } : {}),
});

function entryOf(rel: Rel, change: DiffEntry['change'], from?: ManifestEntry, to?: ManifestEntry): DiffEntry {
  return {
    ...manifestPathFields(rel),
    change,
    ...(from ? { from: brief(from) } : {}),
    ...(to ? { to: brief(to) } : {}),
  };
}

async function idsOfRegistry(side: Side, notes: string[], label: string): Promise<Set<string> | undefined> {
  const rel = 'mesh/peer_registry.json';
  try {
    const bytes = await side.read(rel);
    if (bytes === undefined) return undefined;
    const doc = parseJson(bytes, `${label}: ${rel}`) as { peers?: unknown };
    const ids = new Set<string>();
    for (const p of Array.isArray(doc.peers) ? doc.peers : []) {
      const id = (p as { node_id?: unknown } | null)?.node_id;
      if (typeof id === 'string') ids.add(id);
    }
    return ids;
  } catch (err) {
    notes.push(`${label}: cannot read ${rel} (${err instanceof Error ? err.message : String(err)}); peers not compared`);
    return undefined;
  }
}

function agentIdsOf(side: Side): Set<string> {
  const ids = new Set<string>();
  for (const { rel, e } of side.entries.values()) {
    if (e.type !== 'file' || typeof rel !== 'string') continue;
    const m = /^agents\/([^/]+)\/state\.json$/.exec(rel);
    if (m) ids.add(m[1]!);
  }
  return ids;
}

const setDiff = (a: Set<string>, b: Set<string>) => [...b].filter((x) => !a.has(x)).sort();

/**
 * What differs between backup `name` and backup `other`, or (without `other`) the live source:
 * added, removed, modified (content: sha256, or a symlink's target), changed mode, changed type,
 * with sizes; and, when both sides have them, the peers (node ids added/removed) and agents.
 * The live side is read as a backup with the same excludes would read it (logs excluded by the
 * backup are not "added"). Read-only.
 *
 * @throws {BackupError} `BACKUP_NOT_FOUND`, `BACKUP_INVALID`, `SOURCE_NOT_FOUND`, `INVALID_NAME`.
 * @example
 * ```ts
 * const d = await diffBackup({ name: 'nightly', backupDir: 'backups', source: 'node' });
 * console.log(d.modified.map((e) => e.path), d.peers?.added);
 * ```
 */
export async function diffBackup(opts: DiffOptions): Promise<DiffResult> {
  const left = await backupSide(opts.name, opts.backupDir);
  if (opts.other !== undefined) {
    const right = (await backupSide(opts.other, opts.backupDir)).side;
    return diffSides(left.side, right, { kind: 'backup', name: opts.name }, { kind: 'backup', name: opts.other });
  }
  const root = await liveRootOf(left.meta, opts.source);
  return diffSides(left.side, await liveSide(root, left.meta), { kind: 'backup', name: opts.name }, { kind: 'live', path: root });
}

/**
 * The live directory a backup is compared with: `source`, else the backup's recorded source,
 * else the data root.
 *
 * @throws {BackupError} `SOURCE_NOT_FOUND` when it is not a directory.
 */
export async function liveRootOf(meta: BackupMetadata, source: string | undefined): Promise<string> {
  const recorded = typeof meta.source_dir === 'string' && meta.source_dir !== '' ? meta.source_dir : undefined;
  const root = resolve(expandHome(source ?? recorded ?? resolveDataRoot()));
  const { lstat } = await import('node:fs/promises');
  const st = await lstat(root).catch(() => undefined);
  if (!st?.isDirectory()) {
    throw new BackupError('SOURCE_NOT_FOUND', `Cannot compare with ${root}: it does not exist or is not a directory. Pass --source DIR, or another backup's name.`, { path: root });
  }
  return root;
}

/** What differs from side `left` to side `right` (see {@link diffBackup}). */
export async function diffSides(left: DiffSide, right: DiffSide, from: DiffResult['from'], to: DiffResult['to']): Promise<DiffResult> {
  const out: DiffResult = { from, to, added: [], removed: [], modified: [], mode: [], type: [], peers: null, agents: null, notes: [] };
  for (const [key, { rel, e }] of left.entries) {
    const other = right.entries.get(key);
    if (!other) {
      out.removed.push(entryOf(rel, 'removed', e));
      continue;
    }
    const o = other.e;
    if (o.type !== e.type) {
      out.type.push(entryOf(rel, 'type', e, o));
      continue;
    }
    if (e.type === 'symlink') {
      const a = entryTarget(e);
      const b = entryTarget(o as typeof e);
      if (Buffer.compare(Buffer.from(a ?? ''), Buffer.from(b ?? '')) !== 0) out.modified.push(entryOf(rel, 'modified', e, o));
      continue;
    }
    if (e.type === 'file' && o.type === 'file') {
      const same = e.size === o.size && (await left.hash(key)) === (await right.hash(key));
      if (!same) {
        out.modified.push(entryOf(rel, 'modified', e, o));
        continue;
      }
    }
    if (brief(e).mode !== brief(o).mode) out.mode.push(entryOf(rel, 'mode', e, o));
  }
  for (const [key, { rel, e }] of right.entries) if (!left.entries.has(key)) out.added.push(entryOf(rel, 'added', undefined, e));
  const [pa, pb] = [await idsOfRegistry(left, out.notes, from.name), await idsOfRegistry(right, out.notes, to.kind === 'live' ? to.path : to.name)];
  if (pa && pb) out.peers = { added: setDiff(pa, pb), removed: setDiff(pb, pa) };
  const [aa, ab] = [agentIdsOf(left), agentIdsOf(right)];
  if (aa.size > 0 || ab.size > 0) out.agents = { added: setDiff(aa, ab), removed: setDiff(ab, aa) };
  return out;
}
