/**
 * `show --repo` and `diff --repo`: read-only views of pushed backups, from their snapshot
 * documents (which carry the whole metadata, manifest and summary included). No file content is
 * downloaded, except each repository side's `mesh/peer_registry.json` when `diff` compares peers.
 */
import { diffSides, entriesOf, liveRootOf, liveSide, type DiffResult, type DiffSide } from '../diff.js';
import { infoFromMetadata } from '../info.js';
import { detailsOf, type BackupDetails } from '../list.js';
import { createdAtOf } from '../metadata.js';
import { openRepoSnapshot, type RepoOptions, type RepoSnapshotView } from './repository.js';
import { snapshotKey } from './format.js';

/** A pushed backup as `show --repo` describes it: what local `show` says, and where and when it was pushed. */
export interface RepoBackupDetails extends BackupDetails {
  repo: string;
  /** Unix seconds. */
  pushedAt: number;
  pushedFrom: string | null;
}

/**
 * The details of a pushed backup (`latest`: the newest of the data root), as local `show` gives
 * them; `path` is the snapshot document's place in the repository.
 *
 * @throws {BackupError} `BACKUP_NOT_FOUND`, `BACKUP_INVALID`, `UNSAFE_PATH`, `REPO_INVALID`, `WRONG_PASSWORD`, `IO`.
 * @example
 * ```ts
 * const d = await showRepoBackup({ repo: 's3://backups/node-a', name: 'latest' });
 * console.log(d.name, d.summary?.peerCount, d.pushedFrom);
 * ```
 */
export async function showRepoBackup(opts: RepoOptions & { name: string; manifest?: boolean }): Promise<RepoBackupDetails> {
  const v = await openRepoSnapshot(opts);
  const meta = v.doc.metadata;
  const path = `${v.repo}/${snapshotKey(v.name)}`;
  const info = await infoFromMetadata(v.name, path, meta, { light: true });
  return {
    ...detailsOf({ ...info, path, createdAt: createdAtOf(meta, v.doc.pushed_at) }, meta, opts.manifest === true),
    repo: v.repo,
    pushedAt: v.doc.pushed_at,
    pushedFrom: typeof v.doc.pushed_from === 'string' ? v.doc.pushed_from : null,
  };
}

/** A snapshot as one side of a diff: hashes from its manifest; a file's bytes downloaded (and checked) only when read. */
function snapshotSide(v: RepoSnapshotView): DiffSide {
  const entries = entriesOf(v.manifest);
  return {
    entries,
    hash: async (key) => {
      const x = entries.get(key);
      return x && x.e.type === 'file' ? x.e.sha256 : undefined;
    },
    read: async (rel) => {
      const x = entries.get(rel);
      return x && x.e.type === 'file' ? v.readFile(x.e) : undefined;
    },
  };
}

/**
 * What differs between pushed backup `name` and pushed backup `other` of the same repository,
 * or (without `other`) the live source (`source`, else the backup's recorded source, else the
 * data root). Same result as local `diff`; read-only.
 *
 * @throws {BackupError} `BACKUP_NOT_FOUND`, `BACKUP_INVALID`, `SOURCE_NOT_FOUND`, `REPO_INVALID`, `WRONG_PASSWORD`, `IO`.
 * @example
 * ```ts
 * const d = await diffRepo({ repo: '/mnt/nas/dawn', name: 'nightly', other: 'latest' });
 * console.log(d.modified.length, d.agents);
 * ```
 */
export async function diffRepo(opts: RepoOptions & { name: string; other?: string | undefined; source?: string | undefined }): Promise<DiffResult> {
  const left = await openRepoSnapshot(opts);
  const from = { kind: 'backup' as const, name: left.name, repo: left.repo };
  if (opts.other !== undefined) {
    const right = await openRepoSnapshot({ ...opts, name: opts.other });
    return diffSides(snapshotSide(left), snapshotSide(right), from, { kind: 'backup', name: right.name, repo: right.repo });
  }
  const root = await liveRootOf(left.doc.metadata, opts.source);
  return diffSides(snapshotSide(left), await liveSide(root, left.doc.metadata), from, { kind: 'live', path: root });
}
