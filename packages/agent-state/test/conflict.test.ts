// Conflicts without revisions (issue 9, A3): an agent notices ANY change of its state file
// since it loaded it — by identity and by content, not only by revision — with real other
// writers: the Python implementation's way of saving (in place, no lock, no revision) run by
// python3 when installed (else by node doing the same), and agents in other processes.
import { spawnSync } from 'node:child_process';
import { readFile, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { copyFixture, runNode, spawnNode, useTempDir, type Child } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AgentStateError, BaseAgent, readAgentRecord } from '../src/index.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
const AGENT_CHILD = fixture('agent-child.mjs');
const tempDir = useTempDir('as-conflict-');

const hasPython = spawnSync('python3', ['-c', 'import json'], { stdio: 'ignore' }).status === 0;

/** Rewrite a state file as the Python implementation does, in another process. */
type Writer = { name: string; write(path: string, doc: unknown): Promise<void> };
const WRITERS: Writer[] = [
  {
    name: 'node, in place',
    async write(path, doc) {
      const exit = await runNode(fixture('inplace-writer.mjs'), [path, JSON.stringify(doc)]);
      expect([exit.code, exit.stderr]).toEqual([0, '']);
    },
  },
  ...(hasPython
    ? [
        {
          name: 'python3 json.dump',
          async write(path: string, doc: unknown) {
            const r = spawnSync('python3', [fixture('python_writer.py'), path, JSON.stringify(doc)], { encoding: 'utf8' });
            expect([r.status, r.stderr]).toEqual([0, '']);
          },
        },
      ]
    : []),
];

async function pythonRoot(): Promise<string> {
  return copyFixture('data', join(await tempDir(), 'data'));
}

async function rejection(p: Promise<unknown>): Promise<AgentStateError> {
  try {
    await p;
  } catch (err) {
    if (AgentStateError.is(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

const pythonDoc = (state: unknown) => ({ agent_id: 'coordinator', name: 'CoordinationAgent', state });

let nextId = 1;
async function command(child: Child, cmd: Record<string, unknown>): Promise<Record<string, unknown>> {
  const id = nextId++;
  child.proc.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
  return child.waitFor((m: { id?: number }) => m.id === id);
}

describe.each(WRITERS)('another writer without revisions ($name)', (writer) => {
  it('an agent in another process that loaded a Python file and never saved gets CONFLICT, not a silent overwrite', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const agent = spawnNode(AGENT_CHILD, [root, 'coordinator']);
    try {
      expect(await agent.waitFor((m) => m.event === 'ready')).toMatchObject({ revision: 0 });
      // The Python node saves a newer state: still no revision (0 before and after).
      await writer.write(path, pythonDoc({ round: 13, tasks: {} }));
      await command(agent, { op: 'set', patch: { mine: true } });
      expect(await command(agent, { op: 'save' })).toMatchObject({ event: 'error', code: 'CONFLICT', expectedRevision: 0, actualRevision: 0 });
      expect(await command(agent, { op: 'stop' })).toMatchObject({ event: 'error', code: 'CONFLICT' });
      expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(pythonDoc({ round: 13, tasks: {} }));
      // Taking theirs, then saving, works.
      expect(await command(agent, { op: 'reload' })).toMatchObject({ revision: 0, state: { round: 13, tasks: {} } });
      await command(agent, { op: 'set', patch: { mine: true } });
      expect(await command(agent, { op: 'save' })).toMatchObject({ event: 'saved', revision: 1 });
      expect((await readAgentRecord(root, 'coordinator')).state).toEqual({ round: 13, tasks: {}, mine: true });
    } finally {
      agent.proc.stdin!.end(`${JSON.stringify({ op: 'exit' })}\n`);
    }
    expect((await agent.exited).code).toBe(0);
  });

  it('a same-size rewrite keeping the revision is caught by content; force overwrites deliberately', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    await agent.start();
    const before = await stat(path);
    const theirs = pythonDoc({ tasks: { t1: { status: 'done', score: 0.75 } }, round: 13 }); // 12 → 13
    await writer.write(path, theirs);
    const after = await stat(path);
    expect([after.ino, after.size]).toEqual([before.ino, before.size]); // in place, same size
    agent.setState({ round: 14 });
    const err = await rejection(agent.saveState());
    expect([err.code, err.expectedRevision, err.actualRevision]).toEqual(['CONFLICT', 0, 0]);
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual(theirs);
    await agent.saveState({ force: true });
    expect(await readAgentRecord(root, 'coordinator')).toMatchObject({ revision: 1, state: { round: 14 } });
  });

  it('after our own save too: a Python save on top of it is a CONFLICT', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    await agent.start();
    agent.setState({ round: 20 });
    await agent.saveState();
    await writer.write(path, pythonDoc({ round: 21 })); // drops our revision: reads as 0
    agent.setState({ round: 22 });
    const err = await rejection(agent.saveState());
    expect([err.code, err.expectedRevision, err.actualRevision]).toEqual(['CONFLICT', 1, 0]);
    expect((await readAgentRecord(root, 'coordinator')).state).toEqual({ round: 21 });
  });

  it('a rewrite with the very same document is not a conflict (overwriting it loses nothing)', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    await agent.start();
    await writer.write(path, JSON.parse(await readFile(path, 'utf8')));
    agent.setState({ round: 13 });
    await agent.saveState();
    expect(await readAgentRecord(root, 'coordinator')).toMatchObject({ revision: 1, state: { round: 13 } });
  });

  it('a file that appeared since the agent loaded "no file" is a CONFLICT', async () => {
    const root = await pythonRoot();
    const agent = new BaseAgent('newcomer', { dataRoot: root });
    await agent.start();
    expect(agent.revision).toBeUndefined();
    const other = new BaseAgent('newcomer', { dataRoot: root, persistState: false });
    const path = other.statePath;
    await (await import('node:fs/promises')).mkdir(join(root, 'agents', 'newcomer'));
    await writer.write(path, { agent_id: 'newcomer', name: 'Py', state: { from: 'python' } });
    agent.setState({ from: 'node' });
    const err = await rejection(agent.stop());
    expect([err.code, err.expectedRevision, err.actualRevision]).toEqual(['CONFLICT', null, 0]);
    expect((await readAgentRecord(root, 'newcomer')).state).toEqual({ from: 'python' });
  });
});

describe('a state file deleted since the agent loaded it', () => {
  it('is a CONFLICT (actualRevision null), never silently re-created; force re-creates it; reload starts afresh', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'first_agent', 'state.json');
    const agent = new BaseAgent<{ memory?: string[] }>('first_agent', { dataRoot: root, initialState: { memory: [] } });
    await agent.start();
    await unlink(path);
    agent.updateState((s) => {
      s.memory!.push('again');
    });
    const err = await rejection(agent.saveState());
    expect([err.code, err.expectedRevision, err.actualRevision]).toEqual(['CONFLICT', 0, null]);
    expect(err.message).toContain('deleted');
    await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });

    await agent.saveState({ force: true });
    expect(await readAgentRecord(root, 'first_agent')).toMatchObject({ revision: 1, state: { memory: ['hello', 'world', 'again'] } });

    await unlink(path);
    await agent.reload();
    expect([agent.revision, agent.state, agent.hasUnsavedChanges]).toEqual([undefined, { memory: [] }, false]);
  });

  it('by another agent process: the stale instance does not bring it back', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const child = spawnNode(AGENT_CHILD, [root, 'coordinator']);
    try {
      await child.waitFor((m) => m.event === 'ready');
      await unlink(path);
      await command(child, { op: 'set', patch: { round: 99 } });
      expect(await command(child, { op: 'stop' })).toMatchObject({ event: 'error', code: 'CONFLICT', actualRevision: null });
      await expect(stat(path)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      child.proc.stdin!.end(`${JSON.stringify({ op: 'exit' })}\n`);
    }
    await child.exited;
  });
});
