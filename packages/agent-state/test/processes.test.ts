import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { copyFixture, spawnNode, useTempDir, type Child } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { readAgentRecord } from '../src/index.js';

const CHILD = fileURLToPath(new URL('./fixtures/agent-child.mjs', import.meta.url));
const tempDir = useTempDir('as-proc-');

let nextId = 1;
/** Send a command to a child and wait for its answer. */
async function command(child: Child, cmd: Record<string, unknown>): Promise<{ event: string; code?: string; revision?: number }> {
  const id = nextId++;
  child.proc.stdin!.write(`${JSON.stringify({ ...cmd, id })}\n`);
  return child.waitFor((m: { id?: number }) => m.id === id);
}

function start(root: string, agentId: string, ...flags: string[]): Child {
  return spawnNode(CHILD, [root, agentId, ...flags]);
}

describe('two processes on one agent', () => {
  it('the second save fails with CONFLICT, the first one\'s data stays; force wins deliberately', async () => {
    const root = await copyFixture('data', join(await tempDir(), 'data'));
    const a = start(root, 'coordinator');
    const b = start(root, 'coordinator');
    try {
      const [readyA, readyB] = await Promise.all([a.waitFor((m) => m.event === 'ready'), b.waitFor((m) => m.event === 'ready')]);
      expect([readyA.revision, readyB.revision]).toEqual([0, 0]);
      expect(readyA.pid).not.toBe(readyB.pid);

      await command(a, { op: 'set', patch: { round: 100, by: 'a' } });
      expect(await command(a, { op: 'save' })).toMatchObject({ event: 'saved', revision: 1 });

      await command(b, { op: 'set', patch: { round: 200, by: 'b' } });
      expect(await command(b, { op: 'save' })).toMatchObject({ event: 'error', code: 'CONFLICT' });
      expect(await readAgentRecord(root, 'coordinator')).toMatchObject({ revision: 1, state: { round: 100, by: 'a' } });

      expect(await command(b, { op: 'save', force: true })).toMatchObject({ event: 'saved', revision: 2 });
      expect(await readAgentRecord(root, 'coordinator')).toMatchObject({
        revision: 2,
        name: 'CoordinationAgent',
        state: { round: 200, by: 'b', tasks: { t1: { status: 'done' } } },
      });
      // Now a is the stale one.
      expect(await command(a, { op: 'save' })).toMatchObject({ event: 'error', code: 'CONFLICT' });
      expect((await readAgentRecord(root, 'coordinator')).state).toMatchObject({ by: 'b' });
    } finally {
      a.proc.stdin!.end(`${JSON.stringify({ op: 'exit' })}\n`);
      b.proc.stdin!.end(`${JSON.stringify({ op: 'exit' })}\n`);
    }
    expect((await a.exited).code).toBe(0);
    expect((await b.exited).code).toBe(0);
  });
});

describe('shutdown hooks in a real process', () => {
  it('SIGTERM saves the unsaved state, then the process ends by the signal', async () => {
    const root = await tempDir();
    const child = start(root, 'worker', '--hooks', '--autosave');
    await child.waitFor((m) => m.event === 'ready');
    await command(child, { op: 'set', patch: { done: 42, note: 'saved on SIGTERM' } });
    child.kill('SIGTERM');
    const exit = await child.exited;
    expect(exit.signal).toBe('SIGTERM');
    expect(exit.stderr).toBe('');
    expect(await readAgentRecord(root, 'worker')).toMatchObject({ revision: 1, state: { done: 42, note: 'saved on SIGTERM' } });
  });

  it('without installShutdownHooks() the library leaves signals alone (nothing saved)', async () => {
    const root = await tempDir();
    const child = start(root, 'worker', '--autosave');
    await child.waitFor((m) => m.event === 'ready');
    await command(child, { op: 'set', patch: { done: 1 } });
    child.kill('SIGTERM');
    expect((await child.exited).signal).toBe('SIGTERM');
    await expect(readAgentRecord(root, 'worker')).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('beforeExit saves a running agent when the process ends normally', async () => {
    const root = await tempDir();
    const child = start(root, 'worker', '--hooks');
    await child.waitFor((m) => m.event === 'ready');
    await command(child, { op: 'set', patch: { done: 7 } });
    child.proc.stdin!.end();
    const exit = await child.exited;
    expect([exit.code, exit.stderr]).toEqual([0, '']);
    expect((await readAgentRecord(root, 'worker')).state).toEqual({ done: 7 });
  });
});
