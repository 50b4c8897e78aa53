// The main job: seed a sample data root through the packages (with Python's big integers and a
// "__proto__" key kept exactly), back it up with dawn-backup (then incrementally: unchanged files
// hard-linked), list and verify it, damage the live data and diff it against the backup, see a
// restore refused while a node holds its locks, restore it, roll back one agent with a partial
// restore, damage the backup and watch verify catch it (in both backups sharing the file), then
// prune per source and mistype an option; finally restore the off-site copy (pushed to a
// repository in step 2) on a "new machine". Everything happens in a fresh temp directory.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readJson, updateJson, withLock, writeJson } from '@dawn/atomic-json';
import { BaseAgent, listAgentIds } from '@dawn/agent-state';
import { PeerRegistry } from '@dawn/peer-registry';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(repo, 'packages', 'backup-cli', 'bin', 'dawn-backup.js');
const color = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s) => (color ? `\x1b[1m${s}\x1b[22m` : s);
const dim = (s) => (color ? `\x1b[2m${s}\x1b[22m` : s);
const step = (n, s) => console.log(`\n${bold(`${n}. ${s}`)}`);

const work = await mkdtemp(join(tmpdir(), 'dawn-demo-'));
const dataRoot = join(work, '.project-dawn');
const backupDir = join(work, 'backups');

/** Run dawn-backup like an operator would, echoing the command and its output. */
function dawnBackup(...args) {
  return dawnBackupOn({ root: dataRoot, backups: backupDir }, ...args);
}

/** The same on a given machine (its data root and backup dir). */
function dawnBackupOn(machine, ...args) {
  console.log(dim(`$ dawn-backup ${args.join(' ')}`));
  const r = spawnSync(process.execPath, [bin, ...args, '--backup-dir', machine.backups], {
    encoding: 'utf8',
    env: { ...process.env, PROJECT_DAWN_DATA_ROOT: machine.root, NO_COLOR: color ? '' : '1' },
  });
  const out = `${r.stdout}${r.stderr}`.trimEnd();
  if (out) console.log(out.replace(/^/gm, '  '));
  console.log(dim(`  (exit ${r.status})`));
  return r.status;
}

class Coordinator extends BaseAgent {}

async function describeData() {
  const registry = await PeerRegistry.open({ dataRoot });
  const stats = registry.getPeerStats();
  await registry.close();
  const agents = await listAgentIds(dataRoot);
  console.log(`  peers: ${stats.totalPeers} (${stats.connectedPeers} connected), agents: ${agents.join(', ')}`);
  return { peers: stats.totalPeers, agents };
}

try {
  step(1, `Seed a data root at ${dataRoot} through @dawn/peer-registry and @dawn/agent-state`);
  const registry = await PeerRegistry.open({ dataRoot });
  const pending = [];
  for (let i = 0; i < 300; i++) {
    const address = i % 3 === 0 ? `/ip4/10.0.${i >> 8}.${i & 255}/tcp/9000` : `ws://10.0.${i >> 8}.${i & 255}:8000`;
    pending.push(registry.addPeer({ nodeId: `node-${String(i).padStart(4, '0')}`, address, agents: ['coordinator'], metadata: { region: i % 2 ? 'eu-west' : 'us-east' } }));
  }
  await Promise.all(pending);
  for (let i = 0; i < 40; i++) await registry.recordConnectionSuccess(`node-${String(i).padStart(4, '0')}`);
  await registry.close();
  for (const [id, name, state] of [
    ['coordinator', 'CoordinationAgent', { round: 12, tasks: { t1: { status: 'done', score: 0.75 } } }],
    ['first_agent', 'FirstAgent', { greeting_count: 3, memory: ['hello', 'world'] }],
    ['watcher', 'Watcher', { watched: 300 }],
  ]) {
    const agent = new Coordinator(id, { dataRoot, name });
    await agent.start();
    agent.state = state;
    await agent.stop();
  }
  await writeJson(join(dataRoot, 'config.json'), { listen: 'ws://0.0.0.0:8000' });
  await writeFile(join(dataRoot, 'dawn.log'), 'INFO started\n');
  const before = await describeData();

  step('1b', 'Values round-trip exactly: a Python-written 2**63 counter and a "__proto__" key survive a rewrite');
  const nodeFile = join(dataRoot, 'node.json');
  await writeFile(nodeFile, '{\n  "boot_ns": 9223372036854775808,\n  "__proto__": {"admin": true}\n}\n');
  await updateJson(nodeFile, (doc) => ({ ...doc, restarts: 1 }));
  const node = await readJson(nodeFile);
  console.log(`  rewritten file:\n${(await readFile(nodeFile, 'utf8')).trimEnd().replace(/^/gm, '    ')}`);
  console.log(`  boot_ns is ${typeof node.boot_ns} ${node.boot_ns}; ({}).admin = ${({}).admin} (no prototype pollution)`);
  const lossless = node.boot_ns === 9223372036854775808n && ({}).admin === undefined;

  step(2, 'Back it up, list and verify; back up again (incremental) and push off-site');
  dawnBackup('backup', '--source', dataRoot, '--name', 'demo_backup');
  dawnBackup('list');
  dawnBackup('verify', 'demo_backup');
  await writeJson(join(dataRoot, 'config.json'), { listen: 'ws://0.0.0.0:8001' });
  console.log(dim('  (off-site: a repository, a directory here; s3://bucket/prefix works the same)'));
  const repo = join(work, 'offsite-repo');
  dawnBackup('init', '--repo', repo);
  console.log(dim('  (config.json changed; the next backup is incremental: unchanged files are hard links. --dry-run shows what it would do, changing nothing)'));
  dawnBackup('backup', '--source', dataRoot, '--name', 'demo_backup_2', '--dry-run');
  console.log(dim('  (--push sends the new backup off-site in the same step, as cron would)'));
  dawnBackup('backup', '--source', dataRoot, '--name', 'demo_backup_2', '--push', '--repo', repo);
  dawnBackup('push', 'demo_backup_2', '--repo', repo); // unchanged: no file content uploaded

  step(3, 'Damage the live data: corrupt the peer registry, delete an agent; diff shows what changed since the backup');
  const registryFile = join(dataRoot, 'mesh', 'peer_registry.json');
  const text = await readFile(registryFile, 'utf8');
  await writeFile(registryFile, text.slice(0, Math.floor(text.length / 2)));
  await unlink(join(dataRoot, 'agents', 'watcher', 'state.json'));
  dawnBackup('diff', 'demo_backup');
  try {
    await PeerRegistry.open({ dataRoot });
    console.log('  (the registry opened?!)');
  } catch (err) {
    console.log(`  PeerRegistry.open refuses the damaged file: [${err.code}] ${err.message}`);
  }

  step(4, 'Restore: refused while a node holds its locks; then done (the damaged data is first saved as a pre_restore backup)');
  let liveExit;
  await withLock(registryFile, async () => {
    console.log(dim('  (a running node holds mesh/peer_registry.json.lock)'));
    liveExit = dawnBackup('restore', 'demo_backup');
  });
  dawnBackup('restore', 'demo_backup');
  const after = await describeData();
  const ok = after.peers === before.peers && after.agents.join() === before.agents.join();
  console.log(`  data back: ${ok ? 'yes' : 'NO'}; coordinator round = ${(await readJson(join(dataRoot, 'agents', 'coordinator', 'state.json'))).state.round}`);
  dawnBackup('list');

  step('4b', 'Partial restore: one agent damaged, only that agent rolled back (everything else untouched)');
  const coordinatorFile = join(dataRoot, 'agents', 'coordinator', 'state.json');
  await writeFile(coordinatorFile, '{"agent_id": "coordinator", "name": "CoordinationAgent", "state": {"round": -1}}\n');
  dawnBackup('restore', 'demo_backup', '--include', 'agents/coordinator/**', '--dry-run');
  dawnBackup('restore', 'demo_backup', '--include', 'agents/coordinator/**');
  const partialOk = (await readJson(coordinatorFile)).state.round === 12;
  console.log(`  coordinator round back to 12: ${partialOk ? 'yes' : 'NO'}`);

  step(5, 'Damage the backup itself: verify catches it, restore refuses');
  const victim = join(backupDir, 'demo_backup', 'agents', 'coordinator', 'state.json');
  const bytes = await readFile(victim);
  bytes[10] ^= 0x20;
  await writeFile(victim, bytes);
  const verifyExit = dawnBackup('verify', 'demo_backup');
  const restoreExit = dawnBackup('restore', 'demo_backup');
  console.log(`  verify exit ${verifyExit} (3 = verification failed), restore exit ${restoreExit}; live data untouched:`);
  await describeData();

  step(6, 'Retention per source that cannot eat real backups, and a CLI that helps');
  const typoExit = dawnBackup('prune', '--keep-lst', '1');
  dawnBackup('prune', '--keep-last', '1', '--dry-run');

  step(7, 'The machine is lost: restore the off-site copy on a new machine');
  console.log(dim('  (the local backups were damaged in step 5; the off-site copy pushed in step 2 is intact)'));
  dawnBackup('verify', 'demo_backup_2', '--repo', repo, '--read-data');
  const newMachine = { root: join(work, 'new-machine', '.project-dawn'), backups: join(work, 'new-machine', 'backups') };
  const offsiteExit = dawnBackupOn(newMachine, 'restore', 'demo_backup_2', '--repo', repo, '--target', newMachine.root);
  const moved = offsiteExit === 0 && (await readJson(join(newMachine.root, 'agents', 'coordinator', 'state.json'))).state.round === 12;
  console.log(`  the new machine has the node's data: ${moved ? 'yes' : 'NO'}`);

  if (!ok || !lossless || !partialOk || !moved || liveExit !== 1 || typoExit !== 2 || verifyExit !== 3 || restoreExit === 0) {
    console.error('\nDemo FAILED');
    process.exitCode = 1;
  } else {
    console.log(`\n${bold('Demo complete.')} Everything above happened in ${work} (removed now).`);
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
