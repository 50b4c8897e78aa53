import { join } from 'node:path';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { beforeAll, expect, it } from 'vitest';
import { readJson } from '../src/index.js';
import { assertDistIsFresh, fixture } from './dist.js';

const tempDir = useTempDir('aj-multi-');

beforeAll(assertDistIsFresh);

it.each([
  ['updateJson', ['async', 'async', 'async', 'async']],
  ['updateJson and updateJsonSync mixed', ['sync', 'async', 'sync', 'async']],
])('4 processes × 250 %s increments of one counter end at exactly 1000', async (_name, modes) => {
  const dir = await tempDir();
  const file = join(dir, 'counter.json');
  const children = modes.map((mode) => spawnNode(fixture('counter.mjs'), [file, '250', mode]));
  await Promise.all(children.map((c) => c.waitFor((m) => m.ready)));
  for (const c of children) c.proc.stdin!.write('go\n'); // all contend from the start
  const exits = await Promise.all(children.map((c) => c.exited));
  for (const exit of exits) {
    expect(exit.stderr).toBe('');
    expect(exit.code).toBe(0);
    expect(exit.messages).toContainEqual({ done: 250 });
  }
  expect(await readJson(file)).toEqual({ count: 1000 });
});
