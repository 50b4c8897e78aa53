/**
 * A real full file system (a tiny tmpfs; root only, as in CI): every writer fails with a coded
 * `IO` error, the previous file is intact, and no temp file is left behind.
 */
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { canMountTmpfs, fillUp, tmpfsSkipReason, withTinyFs } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AtomicJsonError, JsonFile, updateJson, updateJsonSync, writeJson, writeJsonSync } from '../src/index.js';

if (!canMountTmpfs) console.log(`skipped: ${tmpfsSkipReason}`);

describe.skipIf(!canMountTmpfs)('on a real full disk', () => {
  const big = { blob: 'x'.repeat(200_000) };
  const writers: [string, (file: string) => Promise<unknown>][] = [
    ['writeJson', (f) => writeJson(f, big)],
    ['updateJson', (f) => updateJson(f, () => big)],
    ['writeJsonSync', async (f) => writeJsonSync(f, big)],
    ['updateJsonSync', async (f) => updateJsonSync(f, () => big)],
    ['JsonFile.write', (f) => new JsonFile(f).write(big)],
  ];
  it.each(writers)('%s fails with IO; the old file is intact; no temp file remains', async (_name, write) => {
    await withTinyFs('128k', async (dir) => {
      const file = join(dir, 'state.json');
      await writeJson(file, { previous: true });
      const before = await readFile(file, 'utf8');
      await fillUp(dir);
      const err = await write(file).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(AtomicJsonError.is(err) && err.code, String(err)).toBe('IO');
      expect((err as AtomicJsonError).message).toMatch(/disk space/);
      expect(await readFile(file, 'utf8')).toBe(before);
      expect((await readdir(dir)).filter((n) => !n.startsWith('.filler-'))).toEqual(['state.json']);
    });
  });

  it('a write that fits after space was freed succeeds (nothing stuck)', async () => {
    await withTinyFs('128k', async (dir) => {
      const file = join(dir, 'state.json');
      await fillUp(dir);
      await expect(writeJson(file, big)).rejects.toMatchObject({ code: 'IO' });
      for (const n of await readdir(dir)) if (n.startsWith('.filler-')) await writeFile(join(dir, n), '');
      await writeJson(file, { ok: true });
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ ok: true });
    });
  });
});
