import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { AtomicJsonError, lockPathOf, readJson, TEMP_SUFFIX, writeJson } from '../src/index.js';
import { assertDistIsFresh, fixture } from './dist.js';

const tempDir = useTempDir('aj-lock-');
const holder = fixture('lock-holder.mjs');

beforeAll(assertDistIsFresh);

describe('cross-process lock', () => {
  it('another process holding the lock makes a write fail with LOCKED after timeoutMs; the file is untouched', async () => {
    const dir = await tempDir();
    const file = join(dir, 'registry.json');
    await writeJson(file, { v: 1 });
    const child = spawnNode(holder, [file, 'hold']);
    await child.waitFor((m) => m.held);

    const err = await writeJson(file, { v: 2 }, { lock: { timeoutMs: 300 } }).catch((e: unknown) => e);
    expect(AtomicJsonError.is(err)).toBe(true);
    expect((err as AtomicJsonError).code).toBe('LOCKED');
    expect((err as AtomicJsonError).path).toBe(file);
    expect((err as Error).message).toContain(lockPathOf(file));
    expect(await readJson(file)).toEqual({ v: 1 });

    // Released on a normal exit: the next write gets the lock at once.
    child.proc.stdin!.write('release\n');
    const exit = await child.exited;
    expect(exit.code).toBe(0);
    expect(exit.messages).toContainEqual({ released: true });
    expect(existsSync(lockPathOf(file))).toBe(false);
    await writeJson(file, { v: 3 }, { lock: { timeoutMs: 0 } });
    expect(await readJson(file)).toEqual({ v: 3 });
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`the lock is released when the holder is ended with ${signal}`, async () => {
      const dir = await tempDir();
      const file = join(dir, 'registry.json');
      const child = spawnNode(holder, [file, 'hold']);
      await child.waitFor((m) => m.held);
      expect(existsSync(lockPathOf(file))).toBe(true);
      child.kill(signal);
      const exit = await child.exited;
      expect(exit.signal).toBe(signal); // default behaviour kept: the process still dies of the signal
      expect(existsSync(lockPathOf(file))).toBe(false);
      await writeJson(file, { next: true }, { lock: { timeoutMs: 0 } });
    });
  }

  it('the lock is released when the holder calls process.exit() inside withLock', async () => {
    const dir = await tempDir();
    const file = join(dir, 'registry.json');
    const exit = await spawnNode(holder, [file, 'exit-inside']).exited;
    expect(exit.code).toBe(7);
    expect(existsSync(lockPathOf(file))).toBe(false);
  });
});

describe('compromised lock: the operation in flight rejects with LOCK_COMPROMISED and the process lives on', () => {
  it('lock directory deleted while withLock runs', async () => {
    const dir = await tempDir();
    const file = join(dir, 'registry.json');
    const after = join(dir, 'after.json');
    const child = spawnNode(holder, [file, 'compromise', after]);
    await child.waitFor((m) => m.held);
    rmSync(lockPathOf(file), { recursive: true });

    const exit = await child.exited;
    expect(exit.stderr).toBe('');
    expect(exit.code).toBe(0);
    const msgs = exit.messages as Record<string, any>[];
    expect(msgs.find((m) => m.outer)?.outer.code).toBe('LOCK_COMPROMISED');
    expect(msgs.find((m) => m.inner)?.inner.code).toBe('LOCK_COMPROMISED');
    expect(msgs).toContainEqual({ after: 'written' });
    // Only the write made while the lock was held is in the file; nothing else is left behind.
    expect(await readJson(file)).toEqual({ by: 'holder', step: 1 });
    expect(await readJson(after)).toEqual({ alive: true });
    expect((await readdir(dir)).sort()).toEqual(['after.json', 'registry.json']);
  });

  it('lock taken over by someone else while withLock runs: their lock is left alone', async () => {
    const dir = await tempDir();
    const file = join(dir, 'registry.json');
    const after = join(dir, 'after.json');
    const child = spawnNode(holder, [file, 'compromise', after]);
    await child.waitFor((m) => m.held);
    // Another owner replaces the lock directory (as a stale takeover does): new mtime, not the holder's.
    rmSync(lockPathOf(file), { recursive: true });
    mkdirSync(lockPathOf(file));

    const exit = await child.exited;
    expect(exit.code).toBe(0);
    const msgs = exit.messages as Record<string, any>[];
    expect(msgs.find((m) => m.outer)?.outer.code).toBe('LOCK_COMPROMISED');
    expect(msgs.find((m) => m.inner)?.inner.code).toBe('LOCK_COMPROMISED');
    expect(msgs).toContainEqual({ after: 'written' });
    expect(existsSync(lockPathOf(file))).toBe(true); // the new owner's lock survived the old holder's exit
    expect(await readJson(file)).toEqual({ by: 'holder', step: 1 });
  });

  it('lock lost during updateJson: the update rejects and the file is not replaced', async () => {
    const dir = await tempDir();
    const file = join(dir, 'registry.json');
    const after = join(dir, 'after.json');
    await writeJson(file, { v: 'before' });
    const before = await readFile(file, 'utf8');
    const child = spawnNode(holder, [file, 'compromise-update', after]);
    await child.waitFor((m) => m.held);
    rmSync(lockPathOf(file), { recursive: true });
    child.proc.stdin!.write('go\n');

    const exit = await child.exited;
    expect(exit.code).toBe(0);
    const msgs = exit.messages as Record<string, any>[];
    expect(msgs.find((m) => m.update)?.update.code).toBe('LOCK_COMPROMISED');
    expect(msgs).toContainEqual({ after: 'written' });
    expect(await readFile(file, 'utf8')).toBe(before);
    expect((await readdir(dir)).filter((n) => n.endsWith(TEMP_SUFFIX))).toEqual([]);
  });
});

describe('start-up cost', () => {
  it('proper-lockfile is loaded on the first lock, not by importing the package or reading', async () => {
    const dir = await tempDir();
    const file = join(dir, 'f.json');
    const script = `
      import { createRequire } from 'node:module';
      const require = createRequire(import.meta.url);
      const loaded = () => Object.keys(require.cache).some((k) => k.includes('proper-lockfile'));
      const aj = await import(${JSON.stringify(join(fixture('..'), '..', 'dist', 'index.js'))});
      const atImport = loaded();
      await aj.readJson(${JSON.stringify(file)}, { default: {} });
      const afterRead = loaded();
      await aj.writeJson(${JSON.stringify(file)}, { v: 1 });
      const afterLockedWrite = loaded();
      aj.writeJsonSync(${JSON.stringify(file)}, { v: 2 });
      console.log(JSON.stringify({ atImport, afterRead, afterLockedWrite, v: aj.readJsonSync(${JSON.stringify(file)}).v }));
    `;
    const { execFileSync } = await import('node:child_process');
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
    expect(out).toEqual({ atImport: false, afterRead: false, afterLockedWrite: true, v: 2 });
  });
});
