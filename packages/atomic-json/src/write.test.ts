import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { errno, firstN, installLayer, type LayerState } from '../test/fault-layer.js';
import { realFs, type FsLayer } from './fs-layer.js';
import { AtomicJsonError, isTempFileName, lockPathOf, readJson, TEMP_SUFFIX, writeJson, type WriteOptions } from './index.js';
import { tempPathFor } from './write.js';

const tempDir = useTempDir('aj-write-');

const OLD = { version: 1, peers: ['old'], note: 'the previous document' };
const NEW = { version: 2, peers: ['new', 'ünïcødé ✓'], pad: 'x'.repeat(5000) };
const text = (v: unknown) => JSON.stringify(v, null, 2) + '\n';

/** Names in `dir` that are atomic-json temp files. */
async function temps(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith(TEMP_SUFFIX));
}

/** One injected fault: which step, how, and what the target must hold afterwards. */
interface FaultCase {
  name: string;
  /** Overrides of the fs layer; `fired()` tells the harness the fault really happened. */
  layer: (state: LayerState, fired: () => void) => Partial<FsLayer>;
  /** `undefined`: the write must succeed. */
  error?: string;
  /** What the target holds afterwards (besides "old or new, nothing else"). */
  expect: 'old' | 'new';
  opts?: WriteOptions;
}

const cases: FaultCase[] = [
  {
    name: 'open of the temp file fails (EACCES)',
    layer: (_s, fired) => ({
      open: async (p, f, m) => {
        if (p.endsWith(TEMP_SUFFIX)) {
          fired();
          throw errno('EACCES', 'open');
        }
        return realFs.open(p, f, m);
      },
    }),
    error: 'IO',
    expect: 'old',
  },
  {
    name: 'every write is short (7 bytes at a time)',
    layer: (_s, fired) => ({
      write: (fd, buf, off, len) => {
        if (len > 7) fired();
        return realFs.write(fd, buf, off, Math.min(len, 7));
      },
    }),
    expect: 'new',
  },
  {
    name: 'write makes no progress (returns 0)',
    layer: (_s, fired) => ({
      write: async () => {
        fired();
        return 0;
      },
    }),
    error: 'IO',
    expect: 'old',
  },
  {
    name: 'write fails with ENOSPC after a partial write',
    layer: (_s, fired) => {
      let n = 0;
      return {
        write: async (fd, buf, off, len) => {
          if (n++ === 0) return realFs.write(fd, buf, off, Math.min(len, 1000));
          fired();
          throw errno('ENOSPC', 'write');
        },
      };
    },
    error: 'IO',
    expect: 'old',
  },
  {
    name: 'fsync of the temp file fails (EIO)',
    layer: (_s, fired) => ({
      fsync: async () => {
        fired();
        throw errno('EIO', 'fsync');
      },
    }),
    error: 'IO',
    expect: 'old',
  },
  {
    name: 'fchmod fails (EPERM)',
    layer: (_s, fired) => ({
      fchmod: async () => {
        fired();
        throw errno('EPERM', 'fchmod');
      },
    }),
    error: 'IO',
    expect: 'old',
    opts: { mode: 0o600 }, // so that a new file is chmodded too
  },
  {
    name: 'close of the temp file fails (EIO, e.g. a deferred NFS write error)',
    layer: (s, fired) => ({
      close: async (fd) => {
        const isTemp = s.tempFds.has(fd);
        await realFs.close(fd);
        if (isTemp) {
          fired();
          throw errno('EIO', 'close');
        }
      },
    }),
    error: 'IO',
    expect: 'old',
  },
  {
    name: 'rename fails (EXDEV)',
    layer: (_s, fired) => ({
      rename: async () => {
        fired();
        throw errno('EXDEV', 'rename');
      },
    }),
    error: 'IO',
    expect: 'old',
  },
  {
    name: 'fsync of the directory fails (EIO) after the rename',
    layer: (_s, fired) => ({
      fsyncDir: async () => {
        fired();
        throw errno('EIO', 'fsync');
      },
    }),
    error: 'IO',
    expect: 'new',
  },
];

describe('fault injection: every step of the write protocol fails in turn', () => {
  for (const c of cases) {
    for (const existing of [true, false]) {
      it(`${c.name} (${existing ? 'file exists' : 'new file'})`, async () => {
        const dir = await tempDir();
        const file = join(dir, 'doc.json');
        if (existing) await writeJson(file, OLD);
        let fired = 0;
        installLayer((s) => c.layer(s, () => fired++));

        const outcome = await writeJson(file, NEW, c.opts).then(
          () => undefined,
          (err: unknown) => err,
        );

        expect(fired, 'the fault was injected').toBeGreaterThan(0);
        if (c.error === undefined) {
          expect(outcome).toBeUndefined();
        } else {
          expect(AtomicJsonError.is(outcome)).toBe(true);
          expect((outcome as AtomicJsonError).code).toBe(c.error);
          expect((outcome as AtomicJsonError).path).toBe(file);
          expect((outcome as Error).message).toContain(file);
        }
        // The target holds the old or the new document exactly, never anything else.
        const after = existsSync(file) ? await readFile(file, 'utf8') : undefined;
        const old = existing ? text(OLD) : undefined;
        expect([old, text(NEW)]).toContain(after);
        expect(after).toBe(c.expect === 'old' ? old : text(NEW));
        // No temp file remains, and the lock was released.
        expect(await temps(dir)).toEqual([]);
        expect(existsSync(lockPathOf(file))).toBe(false);
        // Once the fault is gone, the next write goes through.
        installLayer();
        await writeJson(file, { after: 'recovery' });
        expect(await readJson(file)).toEqual({ after: 'recovery' });
        expect(await temps(dir)).toEqual([]);
      });
    }
  }

  it('ENOSPC says what to do', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    installLayer(() => ({
      write: async () => {
        throw errno('ENOSPC', 'write');
      },
    }));
    const err = await writeJson(file, NEW).catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('IO');
    expect((err as Error).message).toMatch(/disk space/);
    expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
  });

  it('a failed updateJson leaves the old document and no temp file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { n: 1 });
    installLayer(() => ({
      fsync: async () => {
        throw errno('EIO', 'fsync');
      },
    }));
    const { updateJson } = await import('./index.js');
    const err = await updateJson<{ n: number }>(file, (c) => ({ n: c!.n + 1 })).catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('IO');
    expect(await readFile(file, 'utf8')).toBe(text({ n: 1 }));
    expect(await temps(dir)).toEqual([]);
  });
});

describe('Windows rename retry', () => {
  for (const code of ['EPERM', 'EBUSY', 'EACCES']) {
    it(`retries a rename failing with ${code} and succeeds`, async () => {
      const dir = await tempDir();
      const file = join(dir, 'doc.json');
      await writeJson(file, OLD);
      const fail = firstN(3);
      const state = installLayer(() => ({
        platform: 'win32',
        rename: async (from, to) => {
          if (fail()) throw errno(code, 'rename');
          return realFs.rename(from, to);
        },
      }));
      await writeJson(file, NEW);
      expect(state.calls.rename).toBe(4);
      expect(await readFile(file, 'utf8')).toBe(text(NEW));
      expect(await temps(dir)).toEqual([]);
    });
  }

  it('gives up on a permanent failure with IO; the old file is intact and no temp file remains', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, OLD);
    const state = installLayer(() => ({
      platform: 'win32',
      rename: async () => {
        throw errno('EPERM', 'rename');
      },
    }));
    const err = await writeJson(file, NEW).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err)).toBe(true);
    expect((err as AtomicJsonError).code).toBe('IO');
    expect(state.calls.rename).toBeGreaterThan(3); // it did retry
    expect(await readFile(file, 'utf8')).toBe(text(OLD));
    expect(await temps(dir)).toEqual([]);
  });

  it('does not retry EPERM on other platforms', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, OLD);
    const state = installLayer(() => ({
      platform: 'linux',
      rename: async () => {
        throw errno('EPERM', 'rename');
      },
    }));
    const err = await writeJson(file, NEW).catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('IO');
    expect(state.calls.rename).toBe(1);
    expect(await readFile(file, 'utf8')).toBe(text(OLD));
  });
});

describe('temp files', () => {
  it('have a fixed-length unique name in the target directory', async () => {
    const dir = await tempDir();
    const long = join(dir, `${'n'.repeat(240)}.json`);
    const a = tempPathFor(long);
    const b = tempPathFor(long);
    expect(a).not.toBe(b);
    for (const p of [a, b, tempPathFor(join(dir, 'x.json'))]) {
      const name = p.slice(dir.length + 1);
      expect(name).toHaveLength(36);
      expect(isTempFileName(name)).toBe(true);
    }
    expect(isTempFileName('doc.json')).toBe(false);
    expect(isTempFileName('.tmp.ajtmp')).toBe(false);
    // Same length and shape, but not hex: a user's file, never ours.
    expect(isTempFileName('.zzzzzzzzzzzz-zzzzzzzzzzzzzzzz.ajtmp')).toBe(false);
    expect(isTempFileName('.0123456789AB-0123456789abcdef.ajtmp')).toBe(false);
    await writeJson(long, { ok: true }); // a 245-character name still leaves room for the temp name
    expect(await readJson(long)).toEqual({ ok: true });
  });

  it('left by a killed writer are removed by the next writer holding the lock, and only those of that file', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    const other = join(dir, 'other.json');
    const mine = tempPathFor(file);
    const theirs = tempPathFor(other);
    await writeFile(mine, '{"half": ');
    await writeFile(theirs, '{"half": ');
    await writeFile(join(dir, 'notes.ajtmp'), 'not ours');

    await writeJson(file, { v: 1 }, { lock: false }); // without the lock nothing may be assumed dead
    expect(existsSync(mine)).toBe(true);

    await writeJson(file, { v: 2 });
    expect(existsSync(mine)).toBe(false);
    expect(existsSync(theirs)).toBe(true);
    expect(existsSync(join(dir, 'notes.ajtmp'))).toBe(true);
    expect(await readJson(file)).toEqual({ v: 2 });
  });

  it('are removed next to the real file when the target is a symbolic link', async () => {
    const dir = await tempDir();
    const { mkdir, symlink } = await import('node:fs/promises');
    await mkdir(join(dir, 'real'));
    const real = join(dir, 'real', 'state.json');
    const link = join(dir, 'link.json');
    await writeJson(real, { v: 1 });
    await symlink(real, link);
    const stale = tempPathFor(real); // what a writer killed while writing through the link leaves
    await writeFile(stale, '{');
    await writeJson(link, { v: 2 });
    expect(existsSync(stale)).toBe(false);
    expect(await readJson(real)).toEqual({ v: 2 });
    expect((await stat(link)).isFile()).toBe(true);
  });
});
