import { randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { BackupError, ioError } from '../errors.js';
import type { Backend } from './backend.js';

const TMP_PREFIX = '.tmp-';
const errCode = (err: unknown) => (err as NodeJS.ErrnoException | undefined)?.code;

async function fsyncDir(dir: string): Promise<void> {
  const h = await open(dir, 'r').catch(() => undefined);
  if (!h) return;
  try {
    await h.sync().catch(() => undefined);
  } finally {
    await h.close();
  }
}

/**
 * A repository in a local or mounted directory. A write goes to a temporary file (`.tmp-*`,
 * fsynced) that is then hard-linked to its key: `link` fails when the key exists, so an object is
 * never overwritten and never seen half-written. Leftover `.tmp-*` files of killed runs are never
 * listed as keys.
 */
export class DirBackend implements Backend {
  readonly url: string;
  requests = 0;
  constructor(readonly root: string) {
    this.url = root;
  }

  private pathOf(key: string): string {
    if (key.split('/').some((p) => p === '' || p === '.' || p === '..' || p.startsWith(TMP_PREFIX))) {
      throw new BackupError('UNSAFE_PATH', `Refusing the repository key "${key}".`);
    }
    return join(this.root, ...key.split('/'));
  }

  putIfAbsent(key: string, body: Buffer): Promise<boolean> {
    return this.putStreamIfAbsent(key, [body]);
  }

  async putStreamIfAbsent(key: string, body: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<boolean> {
    const final = this.pathOf(key);
    const dir = dirname(final);
    if (await this.exists(key)) return false;
    try {
      await mkdir(dir, { recursive: true });
    } catch (err) {
      throw ioError(dir, 'create the repository directory', err);
    }
    const tmp = join(dir, `${TMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    let fromBody: { err: unknown } | undefined;
    try {
      const h = await open(tmp, 'wx', 0o644);
      this.requests++;
      try {
        const it = Symbol.asyncIterator in body ? body[Symbol.asyncIterator]() : body[Symbol.iterator]();
        for (;;) {
          let n: IteratorResult<Uint8Array>;
          try {
            n = await it.next();
          } catch (err) {
            fromBody = { err };
            throw err;
          }
          if (n.done) break;
          for (let off = 0; off < n.value.length; ) off += (await h.write(n.value, off, n.value.length - off)).bytesWritten;
        }
        await h.sync();
      } finally {
        await h.close();
      }
      try {
        await link(tmp, final);
      } catch (err) {
        if (errCode(err) !== 'EEXIST') throw err;
        // Only a regular file is an existing object: a directory or a FIFO in its place is damage
        // that must not pass for "already there" (a snapshot would name an object that is not).
        if ((await stat(final).catch(() => undefined))?.isFile()) return false;
        throw Object.assign(new Error('something that is not a regular file is in the way (remove it by hand)'), { code: 'EEXIST' });
      }
      await fsyncDir(dir);
      return true;
    } catch (err) {
      if (fromBody) throw fromBody.err;
      throw ioError(final, 'write', err, 'Nothing in the repository was overwritten.');
    } finally {
      await unlink(tmp).catch(() => undefined);
    }
  }

  async prepare(): Promise<void> {
    try {
      await mkdir(this.root, { recursive: true });
    } catch (err) {
      throw ioError(this.root, 'create the repository directory', err);
    }
  }

  /**
   * An open handle on the file of `key`; `undefined` when there is no such key. Opened without
   * blocking and checked to be a regular file: a FIFO put in a key's place (damage, or a hostile
   * store) must not hang the command.
   */
  private async openKey(key: string): Promise<{ p: string; h: FileHandle; size: number } | undefined> {
    const p = this.pathOf(key);
    this.requests++;
    let h: FileHandle;
    try {
      h = await open(p, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (err) {
      if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return undefined;
      throw ioError(p, 'read', err);
    }
    try {
      const st = await h.stat();
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
      return { p, h, size: st.size };
    } catch (err) {
      await h.close();
      throw ioError(p, 'read', err, 'The repository is damaged at this key.');
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer | undefined> {
    const opened = await this.openKey(key);
    if (!opened) return undefined;
    const { p, h, size } = opened;
    try {
      // Never more than the file holds: a damaged or hostile index may name any length.
      const buf = Buffer.alloc(Math.max(0, Math.min(length, size - offset)));
      length = buf.length;
      let got = 0;
      while (got < length) {
        const { bytesRead } = await h.read(buf, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return buf.subarray(0, got);
    } catch (err) {
      throw ioError(p, 'read', err);
    } finally {
      await h.close();
    }
  }

  async getStream(key: string): Promise<AsyncIterable<Buffer> | undefined> {
    const opened = await this.openKey(key);
    return opened && createReadStream('', { fd: opened.h, highWaterMark: 1024 * 1024 });
  }

  async get(key: string): Promise<Buffer | undefined> {
    const opened = await this.openKey(key);
    if (!opened) return undefined;
    const { p, h } = opened;
    try {
      return await h.readFile();
    } catch (err) {
      throw ioError(p, 'read', err);
    } finally {
      await h.close();
    }
  }

  async exists(key: string): Promise<boolean> {
    const p = this.pathOf(key);
    this.requests++;
    try {
      return (await stat(p)).isFile();
    } catch (err) {
      if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return false;
      throw ioError(p, 'read', err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    // The prefix is a directory path (`objects/`, `snapshots/`) or a key prefix inside one.
    const cut = prefix.lastIndexOf('/');
    const base = cut < 0 ? '' : prefix.slice(0, cut);
    const start = join(this.root, ...base.split('/').filter(Boolean));
    const out: string[] = [];
    const walk = async (dir: string, rel: string): Promise<void> => {
      this.requests++;
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        if (errCode(err) === 'ENOENT' || errCode(err) === 'ENOTDIR') return;
        throw ioError(dir, 'list', err);
      }
      for (const e of entries) {
        if (e.name.startsWith(TMP_PREFIX)) continue;
        const key = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) await walk(join(dir, e.name), key);
        else if (e.isFile() && key.startsWith(prefix)) out.push(key);
      }
    };
    await walk(start, base);
    return out;
  }

  async listModified(prefix: string): Promise<{ key: string; modified: number }[]> {
    const out: { key: string; modified: number }[] = [];
    // One request, as on S3 (a listing carries each key's time): counting the stats too made the
    // count depend on a lock removed while the listing runs.
    for (const key of await this.list(prefix)) {
      const p = this.pathOf(key);
      const st = await stat(p).catch((err: unknown) => {
        if (errCode(err) === 'ENOENT') return undefined; // removed meanwhile
        throw ioError(p, 'read', err);
      });
      // The mtime is set by the file system holding the repository (the NFS server's clock for a
      // mount), when the key was written.
      if (st?.isFile()) out.push({ key, modified: st.mtimeMs });
    }
    return out;
  }

  async delete(key: string): Promise<void> {
    const p = this.pathOf(key);
    this.requests++;
    try {
      await unlink(p);
    } catch (err) {
      if (errCode(err) !== 'ENOENT') throw ioError(p, 'delete', err);
    }
  }
}

