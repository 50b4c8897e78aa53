// A strict TypeScript consumer of the four packages, type-checked against the shipped .d.ts files.
import { AtomicJsonError, JsonFile, readJson, updateJson, withLock, writeJson, type WriteOptions } from '@dawn/atomic-json';
import { Peer, PeerRegistry } from '@dawn/peer-registry';
import { BaseAgent } from '@dawn/agent-state';
import { createBackup, listBackups, restoreBackup, verifyBackup } from '@dawn/backup-cli';

interface Counter {
  n: number;
}

export async function main(dir: string): Promise<number> {
  const opts: WriteOptions = { fsync: true, spaces: 2 };
  await writeJson(`${dir}/c.json`, { n: 0 } satisfies Counter, opts);
  const next: Counter = await updateJson<Counter>(`${dir}/c.json`, (c) => ({ n: (c?.n ?? 0) + 1 }));
  const again = await readJson<Counter>(`${dir}/c.json`);
  await withLock(`${dir}/c.json`, () => undefined, { timeoutMs: 1000 });
  const file = new JsonFile<Counter>(`${dir}/f.json`, { default: { n: 1 } });
  const f: Counter = await file.read();
  try {
    await readJson(`${dir}/missing.json`);
  } catch (err) {
    if (AtomicJsonError.is(err) && err.code === 'NOT_FOUND') console.log('missing, as expected');
  }

  const registry = await PeerRegistry.open({ dataRoot: dir });
  const added: boolean = await registry.addPeer({ nodeId: 'n1', address: 'ws://127.0.0.1:8000' });
  const peer: Peer | undefined = registry.getPeer('n1');
  const alive: number = registry.getAlivePeerCount();
  await registry.close();

  class Greeter extends BaseAgent<{ greetings: number }> {}
  const agent = new Greeter('greeter', { dataRoot: dir });
  await agent.initialize();
  agent.state = { greetings: 1 };
  await agent.saveState();
  const name: string = agent.getState().name;

  const meta = await createBackup({ source: dir, backupDir: `${dir}-backups` });
  const list = await listBackups({ backupDir: `${dir}-backups` });
  await verifyBackup({ backupDir: `${dir}-backups`, name: meta.name });
  void restoreBackup;
  return next.n + again.n + f.n + (added ? 1 : 0) + (peer ? 1 : 0) + alive + name.length + list.backups.length;
}
