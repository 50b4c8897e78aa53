// Plain ESM use of the installed packages: seed a data root through the packages.
import { readJson, writeJson } from '@dawn/atomic-json';
import { PeerRegistry } from '@dawn/peer-registry';
import { BaseAgent } from '@dawn/agent-state';
import * as backup from '@dawn/backup-cli';

const root = process.argv[2];
await writeJson(`${root}/notes/hello.json`, { hello: 'world' });
const registry = await PeerRegistry.open({ dataRoot: root });
for (let i = 0; i < 20; i++) {
  await registry.addPeer({ nodeId: `node-${i}`, address: `ws://127.0.0.1:${9000 + i}` });
}
await registry.close();
const agent = new BaseAgent('e2e_agent', { dataRoot: root, name: 'E2E' });
await agent.initialize();
agent.state = { ok: true };
await agent.stop();
console.log(
  JSON.stringify({
    peers: (await readJson(`${root}/mesh/peer_registry.json`)).peers.length,
    agent: (await readJson(`${root}/agents/e2e_agent/state.json`)).name,
    backupExports: Object.keys(backup).sort(),
  }),
);
