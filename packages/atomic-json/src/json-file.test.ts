import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { AtomicJsonError, JsonFile, readJson, writeJson, type StandardSchemaV1 } from './index.js';

const tempDir = useTempDir('aj-jsonfile-');

interface Settings {
  version: number;
  theme: string;
  extra?: unknown;
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (err) {
    if (!AtomicJsonError.is(err)) throw err;
    return err.code;
  }
}

describe('JsonFile', () => {
  it('default: read of a missing file gives a fresh default and writes nothing; no default is NOT_FOUND', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    let made = 0;
    const withDefault = new JsonFile<{ list: number[] }>(file, { default: () => (made++, { list: [] }) });
    const a = await withDefault.read();
    a.list.push(1);
    expect(await withDefault.read()).toEqual({ list: [] });
    expect(made).toBe(2);
    expect(await readdir(dir)).toEqual([]);
    expect(await codeOf(new JsonFile(file).read())).toBe('NOT_FOUND');
    expect(await codeOf(new JsonFile(file).update((x) => x))).toBe('NOT_FOUND');
  });

  it('update starts from the default and persists', async () => {
    const dir = await tempDir();
    const file = join(dir, 'counter.json');
    const f = new JsonFile(file, { default: { n: 0 } });
    await Promise.all([f.update((c) => ({ n: c.n + 1 })), f.update((c) => ({ n: c.n + 1 }))]);
    expect(await f.read()).toEqual({ n: 2 });
    expect(await readJson(file)).toEqual({ n: 2 });
  });

  it('validate: an invalid value is refused with INVALID before anything is written', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    const f = new JsonFile<Settings>(file, {
      validate: (v) => typeof (v as Settings).theme === 'string' || 'theme must be a string',
    });
    await f.write({ version: 1, theme: 'dark' });
    const before = await readFile(file, 'utf8');

    const err = await f.write({ version: 1, theme: 7 as unknown as string }).catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('INVALID');
    expect((err as Error).message).toContain('theme must be a string');
    expect((err as Error).message).toContain(file);
    expect(await codeOf(f.update((s) => ({ ...s, theme: null as unknown as string })))).toBe('INVALID');
    expect(await readFile(file, 'utf8')).toBe(before);

    // A file on disk that fails validation is reported, not used, and left alone.
    await writeFile(file, '{"version": 1, "theme": false}');
    expect(await codeOf(f.read())).toBe('INVALID');
    expect(await codeOf(f.update((s) => s))).toBe('INVALID');
    expect(await readFile(file, 'utf8')).toBe('{"version": 1, "theme": false}');
  });

  it('validate returning false or throwing also rejects', async () => {
    const dir = await tempDir();
    const file = join(dir, 'x.json');
    expect(await codeOf(new JsonFile(file, { validate: () => false }).write({}))).toBe('INVALID');
    const thrower = new JsonFile(file, {
      validate: () => {
        throw new RangeError('custom');
      },
    });
    await expect(thrower.write({})).rejects.toThrow('custom');
    expect(await readdir(dir)).toEqual([]);
  });

  it('version/migrate: older documents are migrated on read and on update; unknown fields are kept', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    await writeJson(file, { version: 1, colour: 'blue', extra: { keep: true } });
    const migrations: number[] = [];
    const f = new JsonFile<Settings>(file, {
      version: 2,
      migrate: (old: { colour?: string }, from) => {
        migrations.push(from);
        const { colour, ...rest } = old as Record<string, unknown>;
        return { ...rest, version: 2, theme: (colour as string | undefined) ?? 'dark' } as Settings;
      },
    });
    expect(await f.read()).toEqual({ version: 2, theme: 'blue', extra: { keep: true } });
    expect(await readJson(file)).toEqual({ version: 1, colour: 'blue', extra: { keep: true } }); // read writes nothing
    await f.update((s) => ({ ...s, theme: `${s.theme}!` }));
    expect(await readJson(file)).toEqual({ version: 2, theme: 'blue!', extra: { keep: true } });
    expect(migrations).toEqual([1, 1]);

    // A document without the version field is version 0.
    await writeJson(file, { colour: 'red' });
    expect(await f.read()).toEqual({ version: 2, theme: 'red' });
    expect(migrations.at(-1)).toBe(0);
  });

  it('a document with a newer version is refused with INVALID and left untouched', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    await writeJson(file, { version: 3, theme: 'future' });
    const before = await readFile(file, 'utf8');
    const f = new JsonFile<Settings>(file, { version: 2, default: { version: 2, theme: 'dark' }, migrate: (v) => v });
    const err = await f.read().catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('INVALID');
    expect((err as Error).message).toMatch(/newer/);
    expect(await codeOf(f.update((s) => s))).toBe('INVALID');
    expect(await readFile(file, 'utf8')).toBe(before);
  });

  it('an older version without migrate is INVALID', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    await writeJson(file, { version: 1 });
    expect(await codeOf(new JsonFile(file, { version: 2 }).read())).toBe('INVALID');
  });

  it('a corrupt file is PARSE and untouched unless onCorrupt is "quarantine"', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    await writeFile(file, '{"theme": "da');
    const plain = new JsonFile(file, { default: { theme: 'dark' } });
    expect(await codeOf(plain.read())).toBe('PARSE');
    expect(await codeOf(plain.update((s) => s))).toBe('PARSE');
    expect(await codeOf(plain.write({ theme: 'x' }).then(() => plain.read()))).toBeUndefined(); // an explicit write replaces it
    await writeFile(file, '{"theme": "da');
    expect(await codeOf(new JsonFile(file, { default: { theme: 'dark' }, onCorrupt: 'throw' }).read())).toBe('PARSE');
    expect(await readdir(dir)).toEqual(['settings.json']);
  });

  it('onCorrupt "quarantine" moves the file aside (bytes kept) and continues with the default', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    await writeFile(file, '{"theme": "da');
    const f = new JsonFile(file, { default: { theme: 'dark' }, onCorrupt: 'quarantine' });
    expect(await f.read()).toEqual({ theme: 'dark' });
    const names = await readdir(dir);
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^settings\.json\.corrupt-\d+$/);
    expect(await readFile(join(dir, names[0]!), 'utf8')).toBe('{"theme": "da');

    // update over a corrupt file: moved aside, then the update applies to the default.
    await writeFile(file, 'garbage');
    expect(await f.update((s) => ({ theme: `${s.theme}-2` }))).toEqual({ theme: 'dark-2' });
    expect(await readJson(file)).toEqual({ theme: 'dark-2' });
    expect((await readdir(dir)).filter((n) => n.includes('.corrupt-'))).toHaveLength(2);
  });

  it('quarantine without a default: NOT_FOUND naming where the file went', async () => {
    const dir = await tempDir();
    const file = join(dir, 'settings.json');
    await writeFile(file, '[');
    const err = await new JsonFile(file, { onCorrupt: 'quarantine' }).read().catch((e: unknown) => e);
    expect((err as AtomicJsonError).code).toBe('NOT_FOUND');
    expect((err as Error).message).toMatch(/settings\.json\.corrupt-\d+/);
  });
});

describe('a Standard Schema as validator', () => {
  /** A minimal Standard Schema v1 (what zod, valibot and arktype implement): a settings object with a default theme. */
  const settingsSchema: StandardSchemaV1<unknown, { theme: string; size: number }> = {
    '~standard': {
      version: 1,
      vendor: 'test',
      validate: async (v) => {
        const o = v as { theme?: unknown; size?: unknown } | null;
        if (typeof o !== 'object' || o === null) return { issues: [{ message: 'expected an object' }] };
        if (typeof o.size !== 'number') return { issues: [{ message: 'expected a number', path: [{ key: 'size' }] }] };
        return { value: { theme: typeof o.theme === 'string' ? o.theme : 'dark', size: o.size } };
      },
    },
  };

  it('infers the document type, applies the output value, and rejects with INVALID naming the path', async () => {
    const dir = await tempDir();
    const file = new JsonFile(join(dir, 'settings.json'), { validate: settingsSchema });
    expectTypeOf(file).toEqualTypeOf<JsonFile<{ theme: string; size: number }>>();
    await file.write({ size: 3 } as { theme: string; size: number });
    expect(await file.read()).toEqual({ theme: 'dark', size: 3 }); // the schema's default was written
    const err = await file.write({ theme: 'x', size: 'big' } as never).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID', keyPath: '$.size' });
    expect((err as Error).message).toContain('$.size: expected a number');
    expect(await file.read()).toEqual({ theme: 'dark', size: 3 });
    const updated = await file.update((s) => ({ ...s, size: s.size + 1 }));
    expect(updated).toEqual({ theme: 'dark', size: 4 });
  });
});
