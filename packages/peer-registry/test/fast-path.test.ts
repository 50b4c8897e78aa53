import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runNode, useTempDir } from '@dawn/test-utils';
import { afterEach, expect, it, vi } from 'vitest';
import { PeerRegistry } from '../src/index.js';
import { durableDoc } from './durable.js';

const here = dirname(fileURLToPath(import.meta.url));
const script = join(here, 'fixtures', 'add-one-peer.mjs');
const tempDir = useTempDir('peer-registry-fast-');

afterEach(() => {
  vi.restoreAllMocks();
});

it('a flush (one journal append) does not re-read the registry file, but does after another process replaced it', async () => {
  const root = await tempDir();
  const file = join(root, 'mesh', 'peer_registry.json');
  const reg = await PeerRegistry.open({ dataRoot: root });
  await reg.addPeer({ nodeId: 'mine', address: 'ws://10.0.0.1:1', healthScore: 0.5 }); // creates the file

  // Count parses of the registry file's text (both the registry's own read and atomic-json's).
  const parse = vi.spyOn(JSON, 'parse');
  const registryParses = () => parse.mock.calls.filter(([text]) => typeof text === 'string' && text.includes('"peers"')).length;

  // Unchanged since our last write: no read, no parse.
  await reg.recordConnectionSuccess('mine');
  await reg.updatePeer('mine', { connected: true });
  expect(registryParses()).toBe(0);
  let doc = await durableDoc(file);
  expect(doc.peers).toHaveLength(1);
  expect(doc.peers[0]).toMatchObject({ node_id: 'mine', connected: true, connection_attempts: 1, successful_connections: 1 });
  parse.mockClear();

  // Another process writes the file: the next flush must read it and keep that process's peer.
  const child = await runNode(script, [root, 'theirs'], { cwd: join(here, '..') });
  expect(child.code, child.stderr).toBe(0);
  const seen: string[] = [];
  reg.on('peer:added', (p, { origin }) => seen.push(`${p.nodeId} ${origin}`));
  await reg.recordConnectionSuccess('mine');
  expect(registryParses()).toBeGreaterThan(0);
  expect(seen).toEqual(['theirs file']);
  expect(reg.hasPeer('theirs')).toBe(true);
  doc = await durableDoc(file);
  expect(doc.peers.map((r: { node_id: string }) => r.node_id)).toEqual(['mine', 'theirs']);
  expect(doc.peers[0]).toMatchObject({ connection_attempts: 2, successful_connections: 2 });
  parse.mockClear();

  // ...and after that write, it is ours again: the fast path is back.
  await reg.recordConnectionFailure('mine');
  expect(registryParses()).toBe(0);
  await reg.close();
  doc = await durableDoc(file);
  expect(doc.peers[0]).toMatchObject({ connection_attempts: 3, failed_connections: 1 });
  expect(doc.peers[1]).toMatchObject({ node_id: 'theirs' });
});

it('a registry opened on an existing file takes the fast path from its first flush', async () => {
  const root = await tempDir();
  const first = await PeerRegistry.open({ dataRoot: root });
  await first.addPeer({ nodeId: 'a', address: 'ws://10.0.0.1:1' });
  await first.close();
  const reg = await PeerRegistry.open({ dataRoot: root });
  const parse = vi.spyOn(JSON, 'parse');
  await reg.addPeer({ nodeId: 'b', address: 'ws://10.0.0.2:1' });
  expect(parse.mock.calls.filter(([text]) => typeof text === 'string' && text.includes('"peers"'))).toHaveLength(0);
  const doc = await durableDoc(join(root, 'mesh', 'peer_registry.json'));
  expect(doc.peers.map((r: { node_id: string }) => r.node_id)).toEqual(['a', 'b']);
});
