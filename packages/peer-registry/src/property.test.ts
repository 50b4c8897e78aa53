import fc from 'fast-check';
import { useTempDir } from '@dawn/test-utils';
import { expect, it } from 'vitest';
import { Peer, type PeerInit, type PeerPatch } from './peer.js';
import { PeerRegistry } from './registry.js';

const tempDir = useTempDir('peer-registry-prop-');

const nodeId = fc.constantFrom('a', 'b', 'c', 'd', 'e');
const address = fc.constantFrom('ws://10.0.0.1:8000', 'wss://node.example.org', '/ip4/127.0.0.1/tcp/9000', '/ip6/::1/tcp/4001/ws');
const health = fc.constantFrom(0, 0.25, 0.5, 1);
const time = fc.integer({ min: 1_700_000_000, max: 1_800_000_000 }).map((s) => s + 0.5);
const metadata = fc.dictionary(fc.constantFrom('region', 'version', 'ünï'), fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.boolean()), {
  maxKeys: 2,
});

const patch: fc.Arbitrary<PeerPatch> = fc.record(
  { address, healthScore: health, connected: fc.boolean(), metadata, agents: fc.array(fc.string({ maxLength: 4 }), { maxLength: 2 }), lastSeen: time },
  { requiredKeys: [] },
);

type Cmd =
  | { op: 'add'; init: PeerInit; asPeer: boolean; await: boolean }
  | { op: 'update'; id: string; patch: PeerPatch; await: boolean }
  | { op: 'remove'; id: string; await: boolean }
  | { op: 'clear'; await: boolean };

const cmd: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      op: fc.constant('add' as const),
      init: fc.record({ nodeId, address, lastSeen: time, firstSeen: time }).chain((base) => patch.map((p) => ({ ...p, ...base }))),
      asPeer: fc.boolean(),
      await: fc.boolean(),
    }),
  },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('update' as const), id: nodeId, patch, await: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('remove' as const), id: nodeId, await: fc.boolean() }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear' as const), await: fc.boolean() }) },
);

/** The model: plain records in a Map, with the documented upsert rules. */
function applyToModel(model: Map<string, Record<string, unknown>>, c: Cmd): void {
  switch (c.op) {
    case 'add': {
      const full = new Peer(c.init).toDict();
      const existing = model.get(c.init.nodeId);
      if (!existing || c.asPeer) model.set(c.init.nodeId, full);
      else model.set(c.init.nodeId, new Peer({ ...fieldsOf(existing), ...c.init }).toDict());
      break;
    }
    case 'update': {
      const existing = model.get(c.id);
      if (existing) model.set(c.id, new Peer({ ...fieldsOf(existing), ...c.patch }).toDict());
      break;
    }
    case 'remove':
      model.delete(c.id);
      break;
    case 'clear':
      model.clear();
      break;
  }
}

function fieldsOf(rec: Record<string, unknown>): PeerInit {
  const p = Peer.fromDict(rec);
  return {
    nodeId: p.nodeId,
    address: p.address,
    healthScore: p.healthScore,
    connected: p.connected,
    metadata: p.metadata,
    agents: p.agents,
    lastSeen: p.lastSeen,
    firstSeen: p.firstSeen,
  };
}

const snapshot = (reg: PeerRegistry) => reg.listPeers().map((p) => p.toDict());

it('any sequence of add/update/remove/clear matches a Map model, in memory and after reopening', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(cmd, { maxLength: 25 }), async (cmds) => {
      const root = await tempDir();
      const reg = await PeerRegistry.open({ dataRoot: root });
      const model = new Map<string, Record<string, unknown>>();
      for (const c of cmds) {
        let p: Promise<unknown>;
        switch (c.op) {
          case 'add':
            p = reg.addPeer(c.asPeer ? new Peer(c.init) : c.init);
            break;
          case 'update':
            p = reg.updatePeer(c.id, c.patch).catch((err: { code?: string }) => {
              if (err.code !== 'NOT_FOUND' || model.has(c.id)) throw err;
            });
            break;
          case 'remove':
            p = reg.removePeer(c.id);
            break;
          case 'clear':
            p = reg.clear();
            break;
        }
        const unknownBefore = c.op === 'update' && !model.has(c.id);
        applyToModel(model, c);
        if (c.await || unknownBefore) await p;
        expect(snapshot(reg)).toEqual([...model.values()]);
      }
      await reg.close();
      const reopened = await PeerRegistry.open({ dataRoot: root });
      expect(snapshot(reopened)).toEqual([...model.values()]);
    }),
    { numRuns: 30 },
  );
});
