import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { randomTag } from '../fsutil.js';
import { sha256 } from './format.js';

/** Where the local cache lives (else `$XDG_CACHE_HOME/dawn-backup`, else `~/.cache/dawn-backup`). */
export const CACHE_DIR_ENV = 'DAWN_BACKUP_CACHE_DIR';
/** Set to `1` (or anything but `0` and empty) to use no cache at all. */
export const NO_CACHE_ENV = 'DAWN_BACKUP_NO_CACHE';

type Env = Readonly<Record<string, string | undefined>>;

/**
 * A local cache of a repository's index objects (like restic's cache). Index objects are sealed
 * and never rewritten: each is named by the sha256 of its stored bytes, so a cached copy is
 * checked against its name before it is used, then decoded (and, in an encrypted repository,
 * authenticated) exactly like the bytes of a GET. The store's listing stays authoritative: only
 * listed indexes are looked up here, and cached ones no longer listed are removed. The cache is
 * never needed: any failure to read, write or list it only means the index is fetched from the
 * store, silently.
 */
export class IndexCache {
  private constructor(readonly dir: string) {}

  /**
   * The cache of one repository, or `undefined` when caching is off. A repository is named by
   * the sha256 of its `config.json` (written once, never rewritten; it differs between
   * repositories), whatever URL reaches it: `<cache dir>/<32 hex>/index/<index id>`.
   */
  static for(configBytes: Uint8Array, env: Env): IndexCache | undefined {
    const off = env[NO_CACHE_ENV];
    if (off !== undefined && off !== '' && off !== '0') return undefined;
    try {
      const base = env[CACHE_DIR_ENV] || (env.XDG_CACHE_HOME ? join(env.XDG_CACHE_HOME, 'dawn-backup') : join(env.HOME || homedir(), '.cache', 'dawn-backup'));
      return new IndexCache(join(base, sha256(Buffer.from(configBytes)).slice(0, 32), 'index'));
    } catch {
      return undefined; // no home directory: no cache
    }
  }

  /** The stored bytes of index `hash` (64 hex), when cached and intact; a damaged copy is removed. */
  get(hash: string): Buffer | undefined {
    let bytes: Buffer;
    try {
      bytes = readFileSync(join(this.dir, hash));
    } catch {
      return undefined;
    }
    if (sha256(bytes) === hash) return bytes;
    this.remove(hash);
    return undefined;
  }

  /** Keep a copy (written to a temporary name, then renamed: never seen half-written). */
  put(hash: string, bytes: Uint8Array): void {
    const tmp = join(this.dir, `.tmp-${process.pid}-${randomTag()}`);
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      writeFileSync(tmp, bytes, { mode: 0o600, flag: 'wx' });
      renameSync(tmp, join(this.dir, hash));
    } catch {
      try {
        unlinkSync(tmp);
      } catch {
        // never written
      }
    }
  }

  /** Remove every cached index not in `listed` (a prune merged or deleted it). */
  keepOnly(listed: ReadonlySet<string>): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) if (/^[0-9a-f]{64}$/.test(n) && !listed.has(n)) this.remove(n);
  }

  private remove(hash: string): void {
    try {
      unlinkSync(join(this.dir, hash));
    } catch {
      // gone already, or not ours to remove: it is checked again before any use
    }
  }
}
