// Issue 9, A7: stop() of an unchanged agent writes nothing; a failing autosave backs off and
// is reported once, with the documented warning code.
import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { copyFixture, spawnNode, useTempDir } from '@dawn/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentStateError, BaseAgent, readAgentRecord, type JsonObject } from './index.js';

const tempDir = useTempDir('as-life-');
const LOCK_HOLDER = fileURLToPath(new URL('../test/fixtures/lock-holder.mjs', import.meta.url));

async function pythonRoot(): Promise<string> {
  return copyFixture('data', join(await tempDir(), 'data'));
}

/** Counts save attempts: every save (skipped or not) serializes the state once. */
class Counting extends BaseAgent<JsonObject> {
  attempts = 0;
  protected override serializeState() {
    this.attempts++;
    return super.serializeState();
  }
}

describe('stop() of an unchanged agent', () => {
  it('leaves a loaded Python file byte for byte as it was (no revision added)', async () => {
    const root = await pythonRoot();
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    const path = agent.statePath;
    const bytes = await readFile(path);
    const { mtimeMs, ino } = await stat(path);
    await agent.start();
    await agent.stop();
    expect(await readFile(path)).toEqual(bytes);
    expect(await stat(path)).toMatchObject({ mtimeMs, ino });
    expect(agent.revision).toBe(0);
  });

  it('after a save, a second stop() with no change adds no revision; a real change does', async () => {
    const root = await tempDir();
    const agent = new BaseAgent<{ n: number }>('a', { dataRoot: root, initialState: { n: 0 } });
    await agent.start();
    await agent.stop(); // no file yet: the first stop writes it
    expect((await readAgentRecord(root, 'a')).revision).toBe(1);
    await agent.start();
    agent.setState({ n: 0 }); // marked changed, but equal to what is saved
    await agent.stop();
    await agent.flush();
    expect((await readAgentRecord(root, 'a')).revision).toBe(1);
    await agent.start();
    agent.state.n = 5; // a direct mutation, not announced: compared by content, so saved
    await agent.stop();
    expect(await readAgentRecord(root, 'a')).toMatchObject({ revision: 2, state: { n: 5 } });
    const again = new BaseAgent('a', { dataRoot: root });
    await again.start();
    await again.stop();
    expect((await readAgentRecord(root, 'a')).revision).toBe(2);
  });

  it('an explicit name change or a migration is a change; saveState() always writes', async () => {
    const root = await pythonRoot();
    const renamed = new BaseAgent('first_agent', { dataRoot: root, name: 'Renamed' });
    await renamed.start();
    await renamed.stop();
    expect(await readAgentRecord(root, 'first_agent')).toMatchObject({ revision: 1, name: 'Renamed' });
    await renamed.saveState();
    expect((await readAgentRecord(root, 'first_agent')).revision).toBe(2);

    class V2 extends BaseAgent {
      static override stateVersion = 2;
      protected override migrateState(old: never) {
        return old;
      }
    }
    const migrated = new V2('coordinator', { dataRoot: root });
    await migrated.start();
    await migrated.stop();
    expect(await readAgentRecord(root, 'coordinator')).toMatchObject({ revision: 1, stateVersion: 2 });
  });

  it('an unchanged agent stops cleanly even if another writer changed the file (nothing of ours to save)', async () => {
    const root = await pythonRoot();
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    await agent.start();
    const theirs = JSON.stringify({ agent_id: 'coordinator', name: 'CoordinationAgent', state: { round: 99 } }, null, 2);
    await writeFile(agent.statePath, theirs);
    await agent.stop();
    expect(await readFile(agent.statePath, 'utf8')).toBe(theirs);
  });
});

describe('autosave after a failure', () => {
  const listeners: ((w: Error) => void)[] = [];
  afterEach(() => {
    for (const l of listeners.splice(0)) process.off('warning', l);
  });
  function collectWarnings(): (Error & { code?: string })[] {
    const seen: (Error & { code?: string })[] = [];
    const l = (w: Error) => seen.push(w);
    listeners.push(l);
    process.on('warning', l);
    return seen;
  }

  it('emits one process warning with code DAWN_AGENT_AUTOSAVE, the error as cause, and stops retrying on every change', async () => {
    const warnings = collectWarnings();
    const root = await tempDir();
    const agent = new Counting('c', { dataRoot: root, autosave: { delayMs: 5 } });
    const other = new BaseAgent('c', { dataRoot: root });
    await Promise.all([agent.start(), other.start()]);
    await other.saveState();
    agent.setState({ i: 0 });
    await vi.waitFor(() => expect(warnings.filter((w) => w.code === 'DAWN_AGENT_AUTOSAVE')).toHaveLength(1), { timeout: 20_000, interval: 10 });
    const attemptsAfterFirst = agent.attempts;
    // Twenty changes, each followed by more than the quiet period: without back-off each
    // would make an attempt and a warning.
    for (let i = 1; i <= 20; i++) {
      agent.setState({ i });
      await sleep(15);
    }
    const ours = warnings.filter((w) => w.code === 'DAWN_AGENT_AUTOSAVE');
    expect(ours).toHaveLength(1);
    expect(ours[0]!.name).toBe('DawnAgentAutosaveWarning');
    expect(ours[0]!.message).toContain('CONFLICT');
    const cause = ours[0]!.cause;
    expect(AgentStateError.is(cause) && cause.code).toBe('CONFLICT');
    // The first retry waits at least max(delayMs, 1000) ms, doubling: a handful at most.
    expect(agent.attempts - attemptsAfterFirst).toBeLessThan(10);
    expect(agent.hasUnsavedChanges).toBe(true);
    expect((await readAgentRecord(root, 'c')).state).toEqual({});
    // Recovering ends the back-off: the next failure is reported again.
    await agent.reload();
    agent.setState({ fresh: true });
    await agent.flush();
    expect((await readAgentRecord(root, 'c')).state).toEqual({ fresh: true });
    await agent.stop();
  });

  it('calls onError once per run of failures, retries with back-off, and saves once the cause is gone', async () => {
    const root = await tempDir();
    const errors: unknown[] = [];
    const agent = new BaseAgent('locked', {
      dataRoot: root,
      lock: { timeoutMs: 50, staleMs: 10_000 },
      autosave: { delayMs: 5, maxRetryDelayMs: 100, onError: (e) => errors.push(e) },
    });
    await agent.start();
    const holder = spawnNode(LOCK_HOLDER, [agent.statePath]);
    await holder.waitFor((m) => m.event === 'locked');
    try {
      agent.setState({ n: 1 });
      await vi.waitFor(() => expect(errors).toHaveLength(1), { timeout: 20_000, interval: 10 });
      for (let i = 2; i <= 10; i++) {
        agent.setState({ n: i });
        await sleep(20);
      }
      expect(errors).toHaveLength(1);
      expect(AgentStateError.is(errors[0]) && errors[0].code).toBe('LOCKED');
    } finally {
      holder.proc.stdin!.end();
    }
    await holder.exited;
    // No further change and no flush: the back-off retry alone saves the latest state.
    await vi.waitFor(async () => expect(await readAgentRecord(root, 'locked')).toMatchObject({ state: { n: 10 } }), {
      timeout: 20_000,
      interval: 20,
    });
    expect(agent.hasUnsavedChanges).toBe(false);
    expect(errors).toHaveLength(1);
    await agent.stop();
  });

  it('the retry timer does not keep a process alive', () => {
    const script = `
      import { BaseAgent } from '@dawn/agent-state';
      const [root] = process.argv.slice(1);
      const a = new BaseAgent('x', { dataRoot: root, autosave: { delayMs: 1, onError: () => console.log('failed') } });
      const b = new BaseAgent('x', { dataRoot: root });
      await a.start(); await b.start(); await b.saveState();
      a.setState({ mine: 1 });`;
    return (async () => {
      const root = await tempDir();
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script, root], {
        encoding: 'utf8',
        cwd: fileURLToPath(new URL('..', import.meta.url)),
        timeout: 30_000,
      });
      expect([r.status, r.stdout.trim(), r.signal]).toEqual([0, 'failed', null]);
    })();
  });

  it('refuses a bad maxRetryDelayMs', () => {
    expect(() => new BaseAgent('x', { dataRoot: '/tmp', autosave: { maxRetryDelayMs: -1 } })).toThrow(/maxRetryDelayMs/);
  });
});
