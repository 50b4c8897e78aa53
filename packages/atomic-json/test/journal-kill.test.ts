import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { beforeAll, expect, it } from 'vitest';
import { JournaledJson } from '../src/index.js';
import { assertDistIsFresh, fixture } from './dist.js';

const tempDir = useTempDir('aj-journal-kill-');

beforeAll(assertDistIsFresh);

const STALE_MS = 2000;
const LANES = 4;
const KILLS_PER_LANE = 6; // 24 kills in all

interface Counter {
  count: number;
  last: number;
}
const apply = (doc: Counter | undefined, ops: readonly number[]): Counter => {
  const d = doc ?? ({ count: 0, last: 0, pad: 'x'.repeat(16 * 1024) } as Counter);
  for (const n of ops) {
    d.count++;
    d.last = n;
  }
  return d;
};

/** Kill a journaled writer at random moments (appends, compactions); every acknowledged op survives exactly once. */
async function lane(dir: string): Promise<number> {
  const file = join(dir, 'counter.json');
  let lastAcked = 0;
  let kills = 0;
  for (let k = 0; k < KILLS_PER_LANE; k++) {
    const child = spawnNode(fixture('journal-writer.mjs'), [file, String(STALE_MS)]);
    const ready = await child.waitFor<{ from: number }>((m) => m.ready, 60_000);
    expect(ready.from).toBeGreaterThanOrEqual(lastAcked);
    // Kill while it appends: after its first acknowledged append (the previous child's lock, left
    // behind by the kill, is taken over only after staleMs; a kill before that kills no append).
    await child.waitFor((m) => m.acked !== undefined, 60_000);
    await new Promise((r) => setTimeout(r, 20 + Math.random() * 250));
    child.kill('SIGKILL');
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGKILL');
    kills++;
    for (const m of exit.messages as { acked?: number }[]) if (m.acked !== undefined) lastAcked = Math.max(lastAcked, m.acked);
    // The files load (waiting for the killed writer's abandoned lock when the journal needs it),
    // hold every acknowledged op, and never one twice (count === last: ops are 1, 2, 3, ...).
    const j = await JournaledJson.open<Counter, number>(file, { apply, lock: { staleMs: STALE_MS, timeoutMs: STALE_MS + 10_000 } });
    const doc = j.current();
    if (lastAcked > 0) {
      expect(doc!.last).toBeGreaterThanOrEqual(lastAcked);
      expect(doc!.count).toBe(doc!.last);
    }
  }
  // Finally fold it all: a plain snapshot.
  const j = await JournaledJson.open<Counter, number>(file, { apply, lock: { staleMs: STALE_MS, timeoutMs: STALE_MS + 10_000 } });
  await j.close();
  const plain = JSON.parse(await readFile(file, 'utf8')) as Counter;
  expect(plain.count).toBe(plain.last);
  expect(plain.last).toBeGreaterThanOrEqual(lastAcked);
  return kills;
}

it('SIGKILL during awaited appends and compactions: every acknowledged record is present after reopen, exactly once', async () => {
  const dirs = await Promise.all(Array.from({ length: LANES }, () => tempDir()));
  const kills = await Promise.all(dirs.map((d) => lane(d)));
  expect(kills.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(20);
}, 240_000);
