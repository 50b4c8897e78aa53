import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertDistIsFresh, fixture } from '../test/dist.js';
import { readJson, updateJson, withLock, writeJson } from './index.js';

const tempDir = useTempDir('aj-abort-');
beforeAll(assertDistIsFresh);

/** A child process holding the file's lock until it is killed. */
async function holdLock(file: string) {
  const child = spawnNode(fixture('lock-holder.mjs'), [file, 'hold']);
  await child.waitFor((m) => m.held === true);
  return child;
}

describe('AbortSignal on lock waits, withLock and updateJson', () => {
  it('aborting while another process holds the lock rejects with ABORTED at once; nothing is written', async () => {
    const file = join(await tempDir(), 'doc.json');
    await writeJson(file, { n: 1 });
    const holder = await holdLock(file);
    try {
      for (const op of [
        (signal: AbortSignal) => updateJson(file, () => ({ n: 2 }), { signal }),
        (signal: AbortSignal) => withLock(file, () => writeJson(file, { n: 3 }), { signal }),
        (signal: AbortSignal) => writeJson(file, { n: 4 }, { lock: { signal, timeoutMs: 60_000 } }),
      ]) {
        const ac = new AbortController();
        const p = op(ac.signal);
        setTimeout(() => ac.abort(new Error('shutting down')), 100);
        await expect(p).rejects.toMatchObject({ code: 'ABORTED', cause: new Error('shutting down') });
      }
      expect(await readFile(file, 'utf8')).toBe('{\n  "n": 1\n}\n');
    } finally {
      holder.proc.kill('SIGKILL');
      await holder.exited;
    }
  });

  it('an already aborted signal rejects before anything happens; an abort while queued behind this process\'s own work removes just that call', async () => {
    const file = join(await tempDir(), 'doc.json');
    await expect(updateJson(file, () => ({ a: 1 }), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
    let release!: () => void;
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const busy = withLock(file, () => new Promise<void>((r) => ((release = r), started())));
    await running;
    const ac = new AbortController();
    const aborted = updateJson(file, () => ({ a: 'aborted' }), { signal: ac.signal });
    const kept = updateJson<{ a: number }>(file, (c) => ({ a: (c?.a ?? 0) + 1 }));
    ac.abort();
    await expect(aborted).rejects.toMatchObject({ code: 'ABORTED' });
    release();
    await busy;
    await kept;
    expect(await readJson(file)).toEqual({ a: 1 });
  });
});
