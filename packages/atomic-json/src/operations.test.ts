import { existsSync, readFileSync } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import fc from 'fast-check';
import lockfile from 'proper-lockfile';
import { describe, expect, it } from 'vitest';
import { installLayer } from '../test/fault-layer.js';
import { AtomicJsonError, lockPathOf, readJson, TEMP_SUFFIX, updateJson, withLock, writeJson } from './index.js';

const tempDir = useTempDir('aj-ops-');
/** JSON.stringify's text, except that an integral number beyond 2^53 is written as its exact digits (as the writers do). */
const text = (v: unknown) =>
  JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && Number.isInteger(x) && !Number.isSafeInteger(x) && Math.abs(x) < 1e21 ? `\u0000big:${BigInt(x)}` : x), 2).replace(
    /"\\u0000big:(-?\d+)"/g,
    '$1',
  ) + '\n';

/**
 * What a value reads back as: JSON has no negative zero (`-0` is written as `0`, as JSON.stringify
 * does), and an integral number beyond 2^53 is written as its digits, which read back as a bigint
 * of the same value (the lossless rule).
 */
const noNegativeZero = (v: unknown): unknown =>
  Object.is(v, -0)
    ? 0
    : typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < 1e21
      ? BigInt(v)
      : Array.isArray(v)
      ? v.map(noNegativeZero)
      : v !== null && typeof v === 'object'
        ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, noNegativeZero(x)]))
        : v;

describe('round trip', () => {
  it('any JSON value, unicode included, reads back equal and is written as 2-space JSON', async () => {
    const dir = await tempDir();
    const file = join(dir, 'value.json');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.jsonValue({ stringUnit: 'binary', maxDepth: 4 }), fc.jsonValue({ stringUnit: 'grapheme', maxDepth: 4 })),
        async (value) => {
          await writeJson(file, value, { fsync: false });
          expect(await readJson(file)).toEqual(noNegativeZero(value));
          // Exactly JSON.stringify's text, but for integral numbers beyond 2^53, written with their exact digits.
          let unsafe = false;
          JSON.stringify(value, (_k, v: unknown) => ((unsafe ||= typeof v === 'number' && Number.isInteger(v) && !Number.isSafeInteger(v) && Math.abs(v) < 1e21), v));
          if (!unsafe) expect(await readFile(file, 'utf8')).toBe(text(value));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('strings with lone surrogates and control characters survive (escaped in the file)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'value.json');
    const anyUtf16 = fc
      .array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 40 })
      .map((units) => String.fromCharCode(...units));
    await fc.assert(
      fc.asyncProperty(fc.dictionary(anyUtf16, anyUtf16, { maxKeys: 4 }), async (value) => {
        await writeJson(file, value, { fsync: false });
        expect(await readJson(file)).toEqual(value);
      }),
      { numRuns: 30 },
    );
  });
});

describe('coalescing and batching in one process', () => {
  it('1,000 concurrent writeJson calls: all resolve, the last value wins, a handful of physical writes', async () => {
    const dir = await tempDir();
    const file = join(dir, 'burst.json');
    const layer = installLayer();
    const seenAtResolve: number[] = [];
    const calls = Array.from({ length: 1000 }, (_, i) =>
      writeJson(file, { i, pad: 'x'.repeat(100) }).then(() => {
        // When my promise resolves, the file holds my value or a newer one.
        seenAtResolve[i] = (JSON.parse(readFileSync(file, 'utf8')) as { i: number }).i;
      }),
    );
    await Promise.all(calls);
    expect(await readJson(file)).toEqual({ i: 999, pad: 'x'.repeat(100) });
    expect(seenAtResolve.every((seen, i) => seen >= i)).toBe(true);
    expect(layer.calls.rename).toBeLessThanOrEqual(5);
    expect(layer.calls.rename).toBeGreaterThanOrEqual(1);
    expect((await readdir(dir)).sort()).toEqual(['burst.json']);
  });

  it('writes issued while a write is in flight coalesce into the next one', async () => {
    const dir = await tempDir();
    const file = join(dir, 'burst.json');
    const layer = installLayer();
    const first = writeJson(file, { i: -1 });
    await new Promise((r) => setTimeout(r, 1)); // the first write is under way
    const rest = Array.from({ length: 500 }, (_, i) => writeJson(file, { i }));
    await Promise.all([first, ...rest]);
    expect(await readJson(file)).toEqual({ i: 499 });
    expect(layer.calls.rename).toBeLessThanOrEqual(5);
  });

  it('1,000 concurrent updateJson increments: none dropped, applied in call order', async () => {
    const dir = await tempDir();
    const file = join(dir, 'counter.json');
    await writeJson(file, { n: 5, order: [] });
    const layer = installLayer();
    const results = await Promise.all(
      Array.from({ length: 1000 }, (_, i) =>
        updateJson<{ n: number; order: number[] }>(file, (c) => ({ n: c!.n + 1, order: [...c!.order, i] })),
      ),
    );
    const final = await readJson<{ n: number; order: number[] }>(file);
    expect(final.n).toBe(1005);
    expect(final.order).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    // Each promise resolves with its own function's result.
    expect(results.map((r) => r.n)).toEqual(Array.from({ length: 1000 }, (_, i) => 6 + i));
    expect(layer.calls.rename).toBeLessThanOrEqual(5);
  });

  it('each update function gets a private copy: mutating it does not leak into the next one', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { list: [1] });
    const seen: unknown[] = [];
    await Promise.all([
      updateJson<{ list: number[] }>(file, (c) => {
        c!.list.push(2);
        return { list: [1, 2] };
      }),
      updateJson<{ list: number[] }>(file, (c) => {
        seen.push(structuredClone(c));
        c!.list.push(99); // thrown away: the function's return value is what counts
        return { list: [...c!.list.slice(0, 2), 3] };
      }),
    ]);
    expect(seen).toEqual([{ list: [1, 2] }]);
    expect(await readJson(file)).toEqual({ list: [1, 2, 3] });
  });

  it('an update function that throws rejects only itself', async () => {
    const dir = await tempDir();
    const file = join(dir, 'counter.json');
    await writeJson(file, { n: 0 });
    const boom = new Error('boom');
    const inc = (c: { n: number } | undefined) => ({ n: c!.n + 1 });
    const settled = await Promise.allSettled([
      updateJson(file, inc),
      updateJson(file, () => {
        throw boom;
      }),
      updateJson(file, inc),
      updateJson(file, async () => {
        throw boom;
      }),
      updateJson(file, () => ({ bad: Symbol('x') })), // not JSON: rejects itself only
      updateJson(file, inc),
    ]);
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
    expect((settled[1] as PromiseRejectedResult).reason).toBe(boom);
    expect((settled[4] as PromiseRejectedResult).reason).toMatchObject({ code: 'NOT_SERIALIZABLE' });
    expect(await readJson(file)).toEqual({ n: 3 });
  });

  it('writes and updates interleave in call order', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    const inc = (c: { n: number } | undefined) => ({ n: (c?.n ?? 0) + 1 });
    const [, a, , b] = await Promise.all([
      writeJson(file, { n: 10 }),
      updateJson(file, inc),
      writeJson(file, { n: 100 }),
      updateJson(file, inc),
    ]);
    expect(a).toEqual({ n: 11 });
    expect(b).toEqual({ n: 101 });
    expect(await readJson(file)).toEqual({ n: 101 });
  });

  it('an update returning the same document writes nothing', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { same: true });
    const layer = installLayer();
    await updateJson(file, (c) => c);
    expect(layer.calls.rename).toBe(0);
  });

  it('readJson sees the writes this process issued before it', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    void writeJson(file, { v: 1 });
    void updateJson<{ v: number }>(file, (c) => ({ v: c!.v + 1 }));
    expect(await readJson(file)).toEqual({ v: 2 });
  });

  it('the value is snapshotted at call time', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    const value = { v: 1 };
    const p = writeJson(file, value);
    value.v = 2;
    await p;
    expect(await readJson(file)).toEqual({ v: 1 });
  });

  it('relative paths are the same file as absolute ones', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(relative(process.cwd(), file), { rel: true });
    expect(await readJson(file)).toEqual({ rel: true });
  });
});

describe('withLock and nested calls', () => {
  it('inside withLock, read/write/update on the same path run directly (no deadlock)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    const result = await withLock(file, async () => {
      await writeJson(file, { n: 1 });
      const n = await updateJson<{ n: number }>(file, (c) => ({ n: c!.n + 1 }));
      const nested = await withLock(file, () => readJson<{ n: number }>(file));
      return [n, nested];
    });
    expect(result).toEqual([{ n: 2 }, { n: 2 }]);
    expect((await readdir(dir)).sort()).toEqual(['doc.json']); // lock released
  });

  it('inside an update function, reads and writes of the same path run directly', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { n: 1 });
    const out = await updateJson<{ n: number; seen?: number }>(file, async (c) => {
      const seen = (await readJson<{ n: number }>(file)).n;
      return { n: c!.n + 1, seen };
    });
    expect(out).toEqual({ n: 2, seen: 1 });
  });

  it('operations of this process wait while withLock runs, and withLock returns fn’s value', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    const events: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = withLock(file, async () => {
      events.push('locked');
      await gate;
      events.push('unlocking');
      return 42;
    });
    const write = writeJson(file, { after: true }).then(() => events.push('written'));
    await new Promise((r) => setTimeout(r, 30));
    expect(events).toEqual(['locked']);
    release();
    expect(await held).toBe(42);
    await write;
    expect(events).toEqual(['locked', 'unlocking', 'written']);
  });

  it('when a promise settles, its lock is already released (another process may take it at once)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    const lockDir = lockPathOf(file);
    await withLock(file, () => expect(existsSync(lockDir)).toBe(true));
    expect(existsSync(lockDir)).toBe(false);
    await writeJson(file, { v: 1 });
    expect(existsSync(lockDir)).toBe(false);
    await updateJson(file, () => ({ v: 2 }));
    expect(existsSync(lockDir)).toBe(false);
    await withLock(file, () => Promise.reject(new Error('x'))).catch(() => {});
    expect(existsSync(lockDir)).toBe(false);
    await updateJson(file, () => {
      throw new Error('x');
    }).catch(() => {});
    expect(existsSync(lockDir)).toBe(false);
  });

  it('withLock rejects with what fn throws and releases the lock', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await expect(withLock(file, () => Promise.reject(new Error('nope')))).rejects.toThrow('nope');
    await writeJson(file, { ok: true }, { lock: { timeoutMs: 0 } });
    expect(await readdir(dir)).toEqual(['doc.json']);
  });

  it('LOCKED after timeoutMs while another holder keeps the lock (in-process stand-in)', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { v: 1 });
    const release = await lockfile.lock(file, { realpath: false, stale: 10_000 });
    try {
      const err = await writeJson(file, { v: 2 }, { lock: { timeoutMs: 200 } }).catch((e: unknown) => e);
      expect(AtomicJsonError.is(err)).toBe(true);
      expect((err as AtomicJsonError).code).toBe('LOCKED');
      expect((err as AtomicJsonError).message).toContain(lockPathOf(file));
      await expect(withLock(file, () => 1, { timeoutMs: 50 })).rejects.toMatchObject({ code: 'LOCKED' });
      expect(await readJson(file)).toEqual({ v: 1 });
    } finally {
      await release();
    }
    await writeJson(file, { v: 3 });
    expect(await readJson(file)).toEqual({ v: 3 });
  });

  it('lock: false writes without a lock directory', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { v: 1 }, { lock: false, fsync: false });
    expect(await readJson(file)).toEqual({ v: 1 });
  });
});

describe('file attributes', () => {
  it('keeps the mode of an existing file (0600 stays 0600), through writeJson and updateJson', async () => {
    const dir = await tempDir();
    const file = join(dir, 'keys.json');
    await writeJson(file, { v: 1 });
    await chmod(file, 0o600);
    await writeJson(file, { v: 2 });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await updateJson<{ v: number }>(file, (c) => ({ v: c!.v + 1 }));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readJson(file)).toEqual({ v: 3 });
  });

  it('applies an explicit mode exactly, whatever the umask', async () => {
    const dir = await tempDir();
    const file = join(dir, 'a.json');
    await writeJson(file, { v: 1 }, { mode: 0o640 });
    expect((await stat(file)).mode & 0o777).toBe(0o640);
  });

  it('a new file gets 0644 less the umask', async () => {
    const dir = await tempDir();
    const file = join(dir, 'a.json');
    await writeJson(file, { v: 1 });
    const umask = process.umask();
    expect((await stat(file)).mode & 0o777).toBe(0o644 & ~umask);
  });

  it('writes through a symbolic link, keeping the link and the target’s mode', async () => {
    const dir = await tempDir();
    await mkdir(join(dir, 'real'));
    const real = join(dir, 'real', 'state.json');
    const link = join(dir, 'state.json');
    await writeJson(real, { v: 1 });
    await chmod(real, 0o600);
    await symlink(relative(dir, real), link);
    await writeJson(link, { v: 2 });
    await updateJson<{ v: number }>(link, (c) => ({ v: c!.v + 1 }));
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(await readlink(link)).toBe(join('real', 'state.json'));
    expect(await readJson(real)).toEqual({ v: 3 });
    expect((await stat(real)).mode & 0o777).toBe(0o600);
    expect((await readdir(join(dir, 'real'))).filter((n) => n.endsWith(TEMP_SUFFIX))).toEqual([]);
  });

  it('writes through a dangling symbolic link, creating its target', async () => {
    const dir = await tempDir();
    const link = join(dir, 'state.json');
    await symlink('target.json', link);
    await writeJson(link, { created: true });
    expect((await lstat(link)).isSymbolicLink()).toBe(true);
    expect(JSON.parse(await readFile(join(dir, 'target.json'), 'utf8'))).toEqual({ created: true });
  });

  it('a file that is replaced is a new inode: readers holding the old one see the old document whole', async () => {
    const dir = await tempDir();
    const file = join(dir, 'doc.json');
    await writeJson(file, { v: 'old' });
    const { open } = await import('node:fs/promises');
    const h = await open(file, 'r');
    await writeJson(file, { v: 'new' });
    expect(JSON.parse(await h.readFile('utf8'))).toEqual({ v: 'old' });
    await h.close();
    expect(await readJson(file)).toEqual({ v: 'new' });
    await writeFile(join(dir, 'unused'), ''); // keep the dir non-trivial for cleanup
  });
});
