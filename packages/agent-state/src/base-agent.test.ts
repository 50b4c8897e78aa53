import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { copyFixture, fixturesDir, useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AgentStateError, BaseAgent, readAgentRecord, type JsonObject, type JsonValue } from './index.js';

const tempDir = useTempDir('as-agent-');

async function pythonRoot(): Promise<string> {
  return copyFixture('data', join(await tempDir(), 'data'));
}

async function fileJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
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

describe('Python data root', () => {
  it.each(['coordinator', 'first_agent'])('loads the Python fixture %s as written', async (id) => {
    const root = await pythonRoot();
    const python = await fileJson(join(fixturesDir, 'data', 'agents', id, 'state.json'));
    const agent = new BaseAgent(id, { dataRoot: root });
    await agent.start();
    expect(agent.getState()).toEqual({ agentId: id, name: python.name, state: python.state });
    expect(agent.revision).toBe(0);
    expect(agent.isRunning).toBe(true);
  });

  it('keeps the Python fields on save and adds revision, updated_at (Unix seconds) and state_version', async () => {
    const root = await pythonRoot();
    const agent = new BaseAgent('first_agent', { dataRoot: root });
    await agent.start();
    agent.updateState((s) => {
      (s.memory as string[]).push('again');
    });
    const before = Date.now() / 1000;
    await agent.stop();
    const doc = await fileJson(agent.statePath);
    expect(Object.keys(doc)).toEqual(['agent_id', 'name', 'state', 'revision', 'updated_at', 'state_version']);
    expect(doc).toMatchObject({
      agent_id: 'first_agent',
      name: 'FirstAgent',
      state: { greeting_count: 3, last_topic: 'persistence', memory: ['hello', 'world', 'again'] },
      revision: 1,
      state_version: 1,
    });
    expect(doc.updated_at).toBeGreaterThanOrEqual(Math.floor(before));
    expect(doc.updated_at).toBeLessThan(before + 60);
    // What the Python loader does: json.load, then data.get("state", {}).
    expect((await readFile(agent.statePath, 'utf8')).startsWith('{\n  "agent_id": "first_agent",\n  "name": "FirstAgent",\n')).toBe(true);
  });

  it('keeps unknown fields of the file on rewrite', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const doc = await fileJson(path);
    await writeFile(path, JSON.stringify({ ...doc, capabilities: ['plan', 'route'], future: { x: 1 } }, null, 2));
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    await agent.initialize();
    agent.setState({ round: 13 });
    await agent.saveState();
    await agent.saveState();
    const after = await fileJson(path);
    expect(after).toMatchObject({ capabilities: ['plan', 'route'], future: { x: 1 }, revision: 2, state: { round: 13 } });
  });
});

describe('lifecycle', () => {
  it('save then load round-trips the state', async () => {
    const root = await tempDir();
    const state = { text: 'héllo 🌍 "quoted"\n', n: 1.5, list: [1, null, { deep: [true] }], empty: {} };
    const a = new BaseAgent('roundtrip', { dataRoot: root, name: 'Round Trip' });
    await a.start();
    expect(a.revision).toBeUndefined();
    a.state = structuredClone(state);
    await a.stop();
    expect(a.revision).toBe(1);
    const b = new BaseAgent('roundtrip', { dataRoot: root });
    await b.initialize();
    expect(b.getState()).toEqual({ agentId: 'roundtrip', name: 'Round Trip', state });
    expect(b.revision).toBe(1);
  });

  it('concurrent saves of one instance never conflict with each other; waiting calls share one save', async () => {
    const root = await tempDir();
    const a = new BaseAgent<{ n: number }>('busy', { dataRoot: root, initialState: { n: 0 } });
    await a.initialize();
    const saves: Promise<void>[] = [];
    for (let i = 1; i <= 20; i++) {
      a.setState({ n: i });
      saves.push(a.saveState());
    }
    // Calls made before the save starts share it; a forced save is separate; later ones queue.
    expect(new Set(saves).size).toBe(1);
    const forced = a.saveState({ force: true });
    expect(forced).not.toBe(saves[0]);
    await Promise.all([...saves, forced]);
    a.setState({ n: 21 });
    await Promise.all([a.saveState(), a.flush(), a.saveState()]);
    const rec = await readAgentRecord(root, 'busy');
    expect(rec.state).toEqual({ n: 21 });
    expect(rec.revision).toBe(3);
    expect(a.revision).toBe(3);
  });

  it('name defaults to the id; an explicit name wins over the file', async () => {
    const root = await pythonRoot();
    expect(new BaseAgent('x', { dataRoot: root }).name).toBe('x');
    const renamed = new BaseAgent('coordinator', { dataRoot: root, name: 'Boss' });
    await renamed.initialize();
    await renamed.saveState();
    expect((await readAgentRecord(root, 'coordinator')).name).toBe('Boss');
  });

  it('initialize() loads once; reload() reads the file again', async () => {
    const root = await tempDir();
    const a = new BaseAgent('r', { dataRoot: root, initialState: { v: 1 } });
    const b = new BaseAgent('r', { dataRoot: root });
    await Promise.all([a.initialize(), a.initialize(), b.initialize()]);
    await a.saveState();
    await b.initialize();
    expect(b.state).toEqual({});
    await b.reload();
    expect(b.state).toEqual({ v: 1 });
    expect(b.revision).toBe(1);
  });

  it('persistState: false touches no disk, not even a directory', async () => {
    const root = join(await tempDir(), 'never');
    const agent = new BaseAgent('ghost', { dataRoot: root, persistState: false, autosave: { delayMs: 0 } });
    await agent.start();
    agent.setState({ a: 1 });
    await agent.saveState();
    await agent.flush();
    await agent.stop();
    expect(agent.state).toEqual({ a: 1 });
    expect(existsSync(root)).toBe(false);
  });

  it('refuses a corrupt state file naming path, line and column, and never overwrites it', async () => {
    const root = await tempDir();
    const path = join(root, 'agents', 'broken', 'state.json');
    await mkdir(join(root, 'agents', 'broken'), { recursive: true });
    const text = '{\n  "agent_id": "broken",\n  "state": {"a": 1,}\n}\n';
    await writeFile(path, text);
    const agent = new BaseAgent('broken', { dataRoot: root });
    const err = await rejection(agent.initialize());
    expect(err.code).toBe('PARSE');
    expect([err.path, err.line, err.column]).toEqual([path, 3, 20]);
    expect(err.message).toContain(`${path} at line 3, column 20`);
    expect((await rejection(agent.saveState({ force: true }))).code).toBe('PARSE');
    expect(await readFile(path, 'utf8')).toBe(text);
    expect((await readdir(join(root, 'agents', 'broken'))).sort()).toEqual(['state.json']);
  });

  it('refuses a file that belongs to another agent or is not a record', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'agents', 'a'), { recursive: true });
    await writeFile(join(root, 'agents', 'a', 'state.json'), '{"agent_id": "b", "state": {}}');
    expect((await rejection(new BaseAgent('a', { dataRoot: root }).initialize())).code).toBe('INVALID_RECORD');
    await writeFile(join(root, 'agents', 'a', 'state.json'), '{"agent_id": "a", "state": [1, 2]}');
    expect((await rejection(new BaseAgent('a', { dataRoot: root }).initialize())).code).toBe('INVALID_RECORD');
    await writeFile(join(root, 'agents', 'a', 'state.json'), '{"agent_id": "a", "revision": -1}');
    expect((await rejection(new BaseAgent('a', { dataRoot: root }).initialize())).code).toBe('INVALID_RECORD');
  });
});

describe('unserializable state', () => {
  const cyclic = (): JsonObject => {
    const o: Record<string, unknown> = { name: 'loop' };
    o.self = o;
    return { nested: o } as unknown as JsonObject;
  };
  const CASES: [string, () => unknown, string][] = [
    ['Set', () => ({ tags: new Set(['a']) }), '$.state.tags'],
    ['function', () => ({ handlers: { onTick: () => 1 } }), '$.state.handlers.onTick'],
    ['cycle', cyclic, '$.state.nested.self'],
    ['symbol', () => ({ list: [1, Symbol('s')] }), '$.state.list[1]'],
    ['NaN', () => ({ score: Number.NaN }), '$.state.score'],
    ['Map', () => ({ index: new Map() }), '$.state.index'],
  ];

  it.each(CASES)('refuses a %s with its key path and keeps the previous file', async (_, make, keyPath) => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const python = await readFile(path, 'utf8');
    // A fresh instance (checked before the lock) and one that has saved (checked by the writer).
    const fresh = new BaseAgent('coordinator', { dataRoot: root });
    const saved = new BaseAgent('coordinator', { dataRoot: root });
    await fresh.initialize();
    fresh.state = make() as JsonObject;
    const first = await rejection(fresh.saveState());
    expect(await readFile(path, 'utf8')).toBe(python);
    await saved.initialize();
    await saved.saveState();
    const before = await readFile(path, 'utf8');
    saved.state = { ...saved.state, ...(make() as JsonObject) };
    const second = await rejection(saved.saveState());
    expect(await readFile(path, 'utf8')).toBe(before);
    for (const err of [first, second]) {
      expect(err.code).toBe('NOT_SERIALIZABLE');
      expect(err.keyPath).toBe(keyPath);
      expect(err.message).toContain(keyPath);
      expect(err.path).toBe(path);
    }
    expect(await readdir(join(root, 'agents', 'coordinator'))).toEqual(['state.json']);
    saved.state = { round: 99 };
    await saved.saveState();
    expect((await readAgentRecord(root, 'coordinator')).state).toEqual({ round: 99 });
  });

  it('creates nothing at all for a new agent with a bad state', async () => {
    const root = join(await tempDir(), 'root');
    const agent = new BaseAgent('fresh', { dataRoot: root, initialState: { when: Number.NaN } as unknown as JsonObject });
    await agent.initialize();
    expect((await rejection(agent.stop())).code).toBe('NOT_SERIALIZABLE');
    expect(existsSync(root)).toBe(false);
  });
});

describe('subclass hooks and state versions', () => {
  class Seen extends BaseAgent<JsonObject> {
    seen = new Set<string>();
    protected override serializeState(): JsonValue {
      return { seen: [...this.seen].sort() };
    }
    protected override deserializeState(data: JsonValue): void {
      this.seen = new Set((data as { seen: string[] }).seen);
    }
  }

  it('serializeState/deserializeState decide what is stored', async () => {
    const root = await tempDir();
    const a = new Seen('seen', { dataRoot: root });
    await a.start();
    a.seen.add('b').add('a');
    await a.stop();
    expect((await fileJson(a.statePath)).state).toEqual({ seen: ['a', 'b'] });
    const b = new Seen('seen', { dataRoot: root });
    await b.start();
    expect([...b.seen].sort()).toEqual(['a', 'b']);
  });

  interface TaskV2 extends JsonObject {
    tasks: { id: string; status: string; score: number }[];
    round: number;
  }
  class Coordinator extends BaseAgent<TaskV2> {
    static override stateVersion = 2;
    calls: number[] = [];
    protected override migrateState(old: JsonValue, fromVersion: number): JsonValue {
      this.calls.push(fromVersion);
      const v1 = old as { tasks: Record<string, { status: string; score: number }>; round: number };
      return { tasks: Object.entries(v1.tasks).map(([id, t]) => ({ id, ...t })), round: v1.round };
    }
  }

  it('migrates a version 1 file (the Python one) to version 2 on load, writing it on the next save', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const before = await readFile(path, 'utf8');
    const agent = new Coordinator('coordinator', { dataRoot: root });
    await agent.initialize();
    expect(agent.calls).toEqual([1]);
    expect(agent.state).toEqual({ tasks: [{ id: 't1', status: 'done', score: 0.75 }], round: 12 });
    expect(agent.hasUnsavedChanges).toBe(true);
    expect(await readFile(path, 'utf8')).toBe(before);
    await agent.flush();
    expect(await fileJson(path)).toMatchObject({ state_version: 2, revision: 1, state: { tasks: [{ id: 't1' }] } });
    const again = new Coordinator('coordinator', { dataRoot: root });
    await again.initialize();
    expect(again.calls).toEqual([]);
    expect(again.state.tasks[0]!.id).toBe('t1');
  });

  it('refuses a newer state_version, and a raised version without migrateState', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const v2 = new Coordinator('coordinator', { dataRoot: root });
    await v2.initialize();
    await v2.saveState();
    expect((await rejection(new BaseAgent('coordinator', { dataRoot: root }).initialize())).code).toBe('NEWER_VERSION');
    class V3 extends BaseAgent {
      static override stateVersion = 3;
    }
    const err = await rejection(new V3('coordinator', { dataRoot: root }).initialize());
    expect(err.code).toBe('MIGRATION_FAILED');
    expect((await fileJson(path)).state_version).toBe(2);
  });
});

describe('conflicts between instances', () => {
  it('a save fails with CONFLICT when another instance saved since; force wins; reload takes theirs', async () => {
    const root = await pythonRoot();
    const a = new BaseAgent('coordinator', { dataRoot: root });
    const b = new BaseAgent('coordinator', { dataRoot: root });
    await Promise.all([a.initialize(), b.initialize()]);
    a.setState({ by: 'a' });
    await a.saveState();
    b.setState({ by: 'b' });
    const err = await rejection(b.saveState());
    expect(err.code).toBe('CONFLICT');
    expect([err.expectedRevision, err.actualRevision]).toEqual([0, 1]);
    expect((await readAgentRecord(root, 'coordinator')).state).toMatchObject({ by: 'a' });
    await b.saveState({ force: true });
    expect(await readAgentRecord(root, 'coordinator')).toMatchObject({ revision: 2, state: { by: 'b' } });
    expect((await rejection(a.saveState())).code).toBe('CONFLICT');
    await a.reload();
    expect(a.state).toMatchObject({ by: 'b' });
    await a.saveState();
    expect((await readAgentRecord(root, 'coordinator')).revision).toBe(3);
  });

  it('a file rewritten without a revision (by Python) counts as revision 0', async () => {
    const root = await tempDir();
    const a = new BaseAgent('p', { dataRoot: root });
    await a.initialize();
    await a.saveState();
    await writeFile(a.statePath, JSON.stringify({ agent_id: 'p', name: 'p', state: { python: true } }, null, 2));
    const err = await rejection(a.saveState());
    expect([err.code, err.actualRevision]).toEqual(['CONFLICT', 0]);
  });

  it('an instance that never loaded does not overwrite an existing file', async () => {
    const root = await pythonRoot();
    const err = await rejection(new BaseAgent('coordinator', { dataRoot: root }).stop());
    expect([err.code, err.expectedRevision]).toEqual(['CONFLICT', null]);
    expect((await readAgentRecord(root, 'coordinator')).state).toMatchObject({ round: 12 });
  });
});

describe('values round-trip exactly (integers beyond 2^53, __proto__ keys)', () => {
  it('a Python state with 2**63 values and a __proto__ key keeps them exactly through load, change and save', async () => {
    const root = await pythonRoot();
    const path = join(root, 'agents', 'coordinator', 'state.json');
    const doc = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    const text = (await readFile(path, 'utf8'))
      .replace('"state": {', '"state": {\n    "ns": 9223372036854775808,\n    "ids": [-18446744073709551616, 9007199254740993],\n    "__proto__": {\n      "polluted": true\n    },')
      .replace(/\n}\s*$/, ',\n  "extra_ns": 1732530000123456789\n}\n');
    expect(doc.agent_id).toBe('coordinator');
    await writeFile(path, text);
    const agent = new BaseAgent('coordinator', { dataRoot: root });
    await agent.initialize();
    const state = agent.state as Record<string, unknown>;
    expect(state.ns).toBe(9223372036854775808n);
    expect(state.ids).toEqual([-18446744073709551616n, 9007199254740993n]);
    expect(Object.hasOwn(state, '__proto__')).toBe(true);
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    (agent.state as Record<string, unknown>).touched = true;
    await agent.stop();
    const after = await readFile(path, 'utf8');
    expect(after).toContain('"ns": 9223372036854775808');
    expect(after).toContain('-18446744073709551616');
    expect(after).toContain('9007199254740993');
    expect(after).toContain('"extra_ns": 1732530000123456789');
    expect(after).toContain('"__proto__": {\n      "polluted": true\n    }');
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
  });
});

describe('deep and huge states end in coded errors', () => {
  const D = 100_000;
  it('a state file nested 100,000 deep loads; saving it is NOT_SERIALIZABLE (not CONFLICT), the file untouched', async () => {
    const root = join(await tempDir(), 'root');
    const path = join(root, 'agents', 'a', 'state.json');
    await mkdir(join(root, 'agents', 'a'), { recursive: true });
    const text = `{"agent_id": "a", "name": "a", "state": {"deep": ${'['.repeat(D)}${']'.repeat(D)}}}`;
    await writeFile(path, text);
    const agent = new BaseAgent('a', { dataRoot: root });
    await agent.initialize();
    (agent.state as Record<string, unknown>).x = 1;
    expect((await rejection(agent.saveState())).code).toBe('NOT_SERIALIZABLE');
    expect(await readFile(path, 'utf8')).toBe(text);
  });

  it('a corrupt state file nested 100,000 deep is PARSE with line and column', async () => {
    const root = join(await tempDir(), 'root');
    await mkdir(join(root, 'agents', 'a'), { recursive: true });
    await writeFile(join(root, 'agents', 'a', 'state.json'), `{"agent_id": "a", "state": ${'['.repeat(D)}}`);
    const err = await rejection(new BaseAgent('a', { dataRoot: root }).initialize());
    expect(err.code).toBe('PARSE');
    expect(err.message).toContain('line 1');
  });
});
