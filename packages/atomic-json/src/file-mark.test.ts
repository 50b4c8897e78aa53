import { chmod, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AtomicJsonError, fileMark, sameFileMark, updateJson, writeJson, type FileMark } from './index.js';

const tempDir = useTempDir('aj-mark-');

describe('fileMark / sameFileMark', () => {
  it('is undefined for a missing file', async () => {
    expect(await fileMark(join(await tempDir(), 'missing.json'))).toBeUndefined();
  });

  it('matches the same unchanged file and differs after any atomic-json write', async () => {
    const file = join(await tempDir(), 'a.json');
    await writeJson(file, { n: 1 });
    const first = (await fileMark(file))!;
    expect(first).toBeDefined();
    expect(sameFileMark(first, (await fileMark(file))!)).toBe(true);

    // Same content, same size: still a new file (rename gives it a new inode).
    await writeJson(file, { n: 2 });
    const second = (await fileMark(file))!;
    expect(sameFileMark(first, second)).toBe(false);

    await updateJson(file, (v) => ({ ...(v as object), m: 3 }));
    expect(sameFileMark(second, (await fileMark(file))!)).toBe(false);
  });

  it('detects a delete and re-create', async () => {
    const file = join(await tempDir(), 'b.json');
    await writeFile(file, '{"a":1}\n');
    const before = (await fileMark(file))!;
    await rm(file);
    await writeFile(file, '{"a":1}\n');
    const after = (await fileMark(file))!;
    // A recycled inode is possible, but then ctime moved; either way the marks must differ.
    expect(sameFileMark(before, after)).toBe(false);
  });

  it('reports the stat facts and never matches inode 0', async () => {
    const file = join(await tempDir(), 'c.json');
    await writeFile(file, 'hello');
    const mark = (await fileMark(file))!;
    const s = await stat(file, { bigint: true });
    expect(mark).toEqual({ dev: s.dev, ino: s.ino, size: 5n, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs });
    const noInode: FileMark = { ...mark, ino: 0n };
    expect(sameFileMark(noInode, { ...noInode })).toBe(false);
  });

  it.skipIf(process.platform === 'win32' || process.getuid?.() === 0)('throws IO when the file cannot be stat\'ed', async () => {
    const dir = join(await tempDir(), 'locked');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    await writeFile(join(dir, 'x.json'), '{}');
    await chmod(dir, 0o000);
    try {
      const err = await fileMark(join(dir, 'x.json')).catch((e: unknown) => e);
      expect(AtomicJsonError.is(err)).toBe(true);
      expect((err as AtomicJsonError).code).toBe('IO');
      expect((err as AtomicJsonError).path).toBe(join(dir, 'x.json'));
    } finally {
      await chmod(dir, 0o755);
    }
  });
});
