import { setImmediate as tick } from 'node:timers/promises';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it, vi } from 'vitest';
import { AgentStateError, BaseAgent, readAgentRecord } from './index.js';

const tempDir = useTempDir('as-auto-');

describe('autosave', () => {
  it('coalesces 1,000 rapid setState calls into a handful of writes, the last state included', async () => {
    const root = await tempDir();
    const agent = new BaseAgent<{ n: number; log: number[] }>('busy', {
      dataRoot: root,
      initialState: { n: -1, log: [] },
      autosave: { delayMs: 100 },
    });
    await agent.start();
    const YIELDS = 10;
    for (let i = 0; i < 1000; i++) {
      agent.setState({ n: i, log: [...agent.state.log.slice(-9), i] });
      // Let the event loop run now and then: a timer can only fire here.
      if (i % (1000 / YIELDS) === 0) await tick();
    }
    expect(agent.hasUnsavedChanges).toBe(true);
    // Wait (without flush(), which would save by itself) until the debounced save has landed.
    await vi.waitFor(
      async () => {
        expect(agent.hasUnsavedChanges).toBe(false);
        expect((await readAgentRecord(root, 'busy')).state).toMatchObject({ n: 999 });
      },
      { timeout: 20_000, interval: 50 },
    );
    const rec = await readAgentRecord(root, 'busy');
    // Every save increments the revision: it counts the writes. The timer can fire only while
    // the loop yields, so at most YIELDS + 1 writes, whatever the machine's speed.
    expect(rec.revision).toBeGreaterThanOrEqual(1);
    expect(rec.revision).toBeLessThanOrEqual(YIELDS + 1);
    expect(agent.revision).toBe(rec.revision);
    expect(rec.state).toEqual({ n: 999, log: [990, 991, 992, 993, 994, 995, 996, 997, 998, 999] });
    await agent.stop();
  });

  it('updateState and markChanged schedule it too; stop() cancels the timer and saves at once', async () => {
    const root = await tempDir();
    const agent = new BaseAgent<{ list: string[] }>('u', { dataRoot: root, initialState: { list: [] }, autosave: { delayMs: 60_000 } });
    await agent.start();
    agent.updateState((s) => {
      s.list.push('a');
    });
    agent.state.list.push('b');
    agent.markChanged();
    expect(agent.hasUnsavedChanges).toBe(true);
    await agent.stop(); // would hang the test for a minute if the timer were left armed
    expect((await readAgentRecord(root, 'u')).state).toEqual({ list: ['a', 'b'] });
    expect(agent.hasUnsavedChanges).toBe(false);
  });

  it('reports a failed autosave to onError and keeps the changes unsaved', async () => {
    const root = await tempDir();
    const errors: unknown[] = [];
    const agent = new BaseAgent('c', { dataRoot: root, autosave: { delayMs: 10, onError: (e) => errors.push(e) } });
    const other = new BaseAgent('c', { dataRoot: root });
    await Promise.all([agent.start(), other.start()]);
    await other.saveState();
    agent.setState({ mine: true });
    await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 20_000, interval: 20 });
    expect(AgentStateError.is(errors[0]) && errors[0].code).toBe('CONFLICT');
    expect(agent.hasUnsavedChanges).toBe(true);
    expect((await readAgentRecord(root, 'c')).state).toEqual({});
  });

  it('refuses bad autosave options', () => {
    expect(() => new BaseAgent('x', { dataRoot: '/tmp', autosave: { delayMs: -1 } })).toThrow(AgentStateError);
    expect(() => new BaseAgent('x', { dataRoot: '/tmp', autosave: { delayMs: 100, maxDelayMs: 10 } })).toThrow(/maxDelayMs/);
  });
});

describe('shutdown hooks', () => {
  it('are opt-in, shared by all agents, and removed by the returned function', () => {
    const count = () => [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM'), process.listenerCount('beforeExit')];
    const before = count();
    const a = new BaseAgent('a', { persistState: false });
    const b = new BaseAgent('b', { persistState: false });
    expect(count()).toEqual(before);
    const offA = a.installShutdownHooks();
    const offB = b.installShutdownHooks({ signals: ['SIGTERM'], beforeExit: false });
    expect(count()).toEqual([before[0]! + 1, before[1]! + 1, before[2]! + 1]);
    offA();
    offA();
    expect(count()).toEqual([before[0], before[1]! + 1, before[2]]);
    offB();
    expect(count()).toEqual(before);
  });
});
