import { execFileSync } from 'node:child_process';
import { readdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AtomicJsonError, readJsonSync, updateJsonSync, withLock, writeJson, writeJsonSync } from './index.js';

const tempDir = useTempDir('aj-sync-');

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
    return undefined;
  } catch (err) {
    return AtomicJsonError.is(err) ? err.code : `not coded: ${String(err)}`;
  }
};

describe('readJsonSync / writeJsonSync / updateJsonSync', () => {
  it('write, read and update with the same format, losslessly, leaving no temp or lock behind', async () => {
    const dir = await tempDir();
    const file = join(dir, 'config.json');
    writeJsonSync(file, { port: 8000, ns: 2n ** 63n });
    expect(await readFile(file, 'utf8')).toBe('{\n  "port": 8000,\n  "ns": 9223372036854775808\n}\n');
    expect(readJsonSync(file)).toEqual({ port: 8000, ns: 2n ** 63n });
    const next = updateJsonSync<{ port: number; ns: bigint }>(file, (c) => ({ ...c!, port: c!.port + 1 }));
    expect(next.port).toBe(8001);
    expect(readJsonSync(file)).toEqual({ port: 8001, ns: 2n ** 63n });
    expect(await readdir(dir)).toEqual(['config.json']);
  });

  it('missing file: NOT_FOUND, or the default; a corrupt file is PARSE and never overwritten', async () => {
    const dir = await tempDir();
    const file = join(dir, 'x.json');
    expect(codeOf(() => readJsonSync(file))).toBe('NOT_FOUND');
    expect(readJsonSync(file, { default: { a: 1 } })).toEqual({ a: 1 });
    await writeFile(file, '{"a": ');
    expect(codeOf(() => readJsonSync(file))).toBe('PARSE');
    expect(codeOf(() => updateJsonSync(file, () => ({ a: 2 })))).toBe('PARSE');
    expect(await readFile(file, 'utf8')).toBe('{"a": ');
  });

  it('a value that is not JSON is NOT_SERIALIZABLE and nothing is touched', async () => {
    const dir = await tempDir();
    const file = join(dir, 'x.json');
    writeJsonSync(file, { ok: true });
    expect(codeOf(() => writeJsonSync(file, { f: () => 1 }))).toBe('NOT_SERIALIZABLE');
    expect(codeOf(() => updateJsonSync(file, () => ({ s: Symbol('x') })))).toBe('NOT_SERIALIZABLE');
    expect(readJsonSync(file)).toEqual({ ok: true });
    expect(await readdir(dir)).toEqual(['x.json']);
  });

  it('a FIFO behind a symlink is refused with IO, never waited on', async () => {
    const dir = await tempDir();
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    await symlink(join(dir, 'fifo'), join(dir, 'x.json'));
    expect(codeOf(() => readJsonSync(join(dir, 'x.json')))).toBe('IO');
    expect(codeOf(() => updateJsonSync(join(dir, 'x.json'), () => ({})))).toBe('IO');
  });

  it('refuses to wait for an async operation of this process on the same path (it would deadlock)', async () => {
    const file = join(await tempDir(), 'x.json');
    let release!: () => void;
    const held = withLock(file, () => new Promise<void>((r) => (release = r)));
    await new Promise((r) => setTimeout(r, 50));
    expect(codeOf(() => writeJsonSync(file, { a: 1 }))).toBe('LOCKED');
    release();
    await held;
    writeJsonSync(file, { a: 2 });
    expect(readJsonSync(file)).toEqual({ a: 2 });
  });

  it('inside withLock of the same path, sync calls run under the held lock', async () => {
    const file = join(await tempDir(), 'x.json');
    await writeJson(file, { n: 1 });
    await withLock(file, () => {
      updateJsonSync<{ n: number }>(file, (c) => ({ n: c!.n + 1 }));
    });
    expect(readJsonSync(file)).toEqual({ n: 2 });
  });
});
