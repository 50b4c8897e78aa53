import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnNode, useTempDir } from '@dawn/test-utils';
import { expect, it } from 'vitest';
import { PeerRegistry } from '../src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, 'fixtures', 'add-peers.mjs');
const tempDir = useTempDir('peer-registry-mp-');

it('three processes adding 150 peers each to one data root lose nothing', async () => {
  const root = await tempDir();
  const prefixes = ['alpha', 'bravo', 'charlie'];
  // cwd inside the package: the child imports @dawn/peer-registry through the package's self-reference.
  const children = prefixes.map((p) => spawnNode(script, [root, p, '150'], { cwd: join(here, '..') }));
  await Promise.all(children.map((c) => c.waitFor((m) => m.ready === true, 30_000)));
  for (const c of children) c.proc.stdin!.write('go\n');
  const exits = await Promise.all(children.map((c) => c.exited));
  for (const x of exits) expect(x.code, x.stderr).toBe(0);

  const doc = JSON.parse(await readFile(join(root, 'mesh', 'peer_registry.json'), 'utf8'));
  expect(doc.version).toBe(1);
  expect(doc.peers).toHaveLength(450);
  const ids = new Set(doc.peers.map((r: { node_id: string }) => r.node_id));
  for (const p of prefixes) for (let i = 0; i < 150; i++) expect(ids.has(`${p}-${i}`)).toBe(true);
  for (const rec of doc.peers) {
    expect(rec).toMatchObject({ connection_attempts: 1, successful_connections: 1, failed_connections: 0 });
    expect(rec.health_score).toBeCloseTo(0.6, 10);
  }
  // Every child's view after its last write holds the peers the others had written by then.
  for (const x of exits) {
    const done = x.messages.find((m) => (m as { done?: boolean }).done) as { seen: number };
    expect(done.seen).toBeGreaterThanOrEqual(150);
  }
  const reg = await PeerRegistry.open({ dataRoot: root });
  expect(reg.getPeerCount()).toBe(450);
});
