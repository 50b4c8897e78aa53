import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { useTempDir } from '@dawn/test-utils';
import { describe, expect, it } from 'vitest';
import { AgentStateError, BaseAgent, listAgentIds, readAgentRecord, resolveDataRoot } from './index.js';

const tempDir = useTempDir('as-root-');

async function rejection(p: Promise<unknown> | (() => unknown)): Promise<AgentStateError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (AgentStateError.is(err)) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('data root and agent directory', () => {
  it('resolveDataRoot is atomic-json\'s one rule: option, then PROJECT_DAWN_DATA_ROOT (~ expanded), then ~/.project-dawn', () => {
    expect(resolveDataRoot('/srv/dawn', { PROJECT_DAWN_DATA_ROOT: '/env' })).toBe('/srv/dawn');
    expect(resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '~/dawn-data' })).toBe(join(homedir(), 'dawn-data'));
    expect(resolveDataRoot(undefined, {})).toBe(join(homedir(), '.project-dawn'));
  });

  it('dataRoot: the state lives in <dataRoot>/agents/<id>/state.json; nothing touched', () => {
    const agent = new BaseAgent('coordinator', { dataRoot: '/nonexistent/dawn', persistState: false });
    expect(agent.dataRoot).toBe('/nonexistent/dawn');
    expect(agent.dataDir).toBe('/nonexistent/dawn/agents/coordinator');
    expect(agent.statePath).toBe('/nonexistent/dawn/agents/coordinator/state.json');
  });

  it('dataDir is the agent\'s own directory (Python\'s BaseAgent(data_dir=...)) and wins over dataRoot', () => {
    const agent = new BaseAgent('coordinator', { dataDir: '/srv/agents/coord', persistState: false });
    expect(agent.dataDir).toBe('/srv/agents/coord');
    expect(agent.statePath).toBe('/srv/agents/coord/state.json');
    const both = new BaseAgent('coordinator', { dataRoot: '/srv/dawn', dataDir: '~/coord', persistState: false });
    expect(both.dataRoot).toBe('/srv/dawn');
    expect(both.statePath).toBe(join(homedir(), 'coord', 'state.json'));
  });

  it('the default data root comes from PROJECT_DAWN_DATA_ROOT', () => {
    const saved = process.env.PROJECT_DAWN_DATA_ROOT;
    process.env.PROJECT_DAWN_DATA_ROOT = '/env/dawn';
    try {
      expect(new BaseAgent('a', { persistState: false }).statePath).toBe('/env/dawn/agents/a/state.json');
    } finally {
      if (saved === undefined) delete process.env.PROJECT_DAWN_DATA_ROOT;
      else process.env.PROJECT_DAWN_DATA_ROOT = saved;
    }
  });

  it('saves to and loads from <dataDir>/state.json', async () => {
    const dir = join(await tempDir(), 'my-agent');
    const a = new BaseAgent('worker', { dataDir: dir });
    await a.start();
    a.setState({ n: 1 });
    await a.stop();
    expect(existsSync(join(dir, 'state.json'))).toBe(true);
    const b = new BaseAgent('worker', { dataDir: dir });
    await b.initialize();
    expect(b.state).toEqual({ n: 1 });
  });

  it('refuses a data root passed as dataDir (the pre-0.1 meaning) instead of starting empty', async () => {
    const root = await tempDir();
    await mkdir(join(root, 'agents', 'worker'), { recursive: true });
    await writeFile(join(root, 'agents', 'worker', 'state.json'), '{"agent_id": "worker", "name": "W", "state": {"n": 5}}');
    const err = await rejection(new BaseAgent('worker', { dataDir: root }).initialize());
    expect(err.code).toBe('INVALID_OPTIONS');
    expect(err.message).toContain('dataRoot');
    expect(existsSync(join(root, 'state.json'))).toBe(false);
  });

  it('refuses empty or non-string directories', async () => {
    expect((await rejection(() => new BaseAgent('a', { dataRoot: '' }))).code).toBe('INVALID_OPTIONS');
    expect((await rejection(() => new BaseAgent('a', { dataDir: 7 as unknown as string }))).code).toBe('INVALID_OPTIONS');
  });

  it('the store API takes a data root (a path or { dataRoot }) and refuses { dataDir }', async () => {
    const root = await tempDir();
    const a = new BaseAgent('x', { dataRoot: root });
    await a.start();
    await a.stop();
    expect(await listAgentIds(root)).toEqual(['x']);
    expect(await listAgentIds({ dataRoot: root })).toEqual(['x']);
    expect((await readAgentRecord({ dataRoot: root }, 'x')).agentId).toBe('x');
    const err = await rejection(listAgentIds({ dataDir: root } as never));
    expect(err.code).toBe('INVALID_OPTIONS');
    expect((await rejection(readAgentRecord({ dataDir: root } as never, 'x'))).code).toBe('INVALID_OPTIONS');
    expect((await rejection(listAgentIds(''))).code).toBe('INVALID_OPTIONS');
  });
});
