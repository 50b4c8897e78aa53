import { homedir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentStateError, BaseAgent, resolveDataRoot } from './index.js';

describe('data root resolution', () => {
  it('option, then PROJECT_DAWN_DATA_ROOT (~ expanded), then ~/.project-dawn', () => {
    expect(resolveDataRoot({ dataRoot: '/srv/dawn' }, { PROJECT_DAWN_DATA_ROOT: '/env' })).toBe('/srv/dawn');
    expect(resolveDataRoot({ dataDir: '/srv/py' }, { PROJECT_DAWN_DATA_ROOT: '/env' })).toBe('/srv/py');
    expect(resolveDataRoot({}, { PROJECT_DAWN_DATA_ROOT: '/env/root' })).toBe('/env/root');
    expect(resolveDataRoot({}, { PROJECT_DAWN_DATA_ROOT: '~/dawn-data' })).toBe(join(homedir(), 'dawn-data'));
    expect(resolveDataRoot({}, { PROJECT_DAWN_DATA_ROOT: '' })).toBe(join(homedir(), '.project-dawn'));
    expect(resolveDataRoot({}, {})).toBe(join(homedir(), '.project-dawn'));
  });

  it('an agent uses it for statePath without touching the disk', () => {
    const agent = new BaseAgent('coordinator', { dataDir: '/nonexistent/dawn', persistState: false });
    expect(agent.statePath).toBe('/nonexistent/dawn/agents/coordinator/state.json');
    expect(agent.name).toBe('coordinator');
  });

  it('refuses dataRoot and dataDir that disagree', () => {
    let err: unknown;
    try {
      resolveDataRoot({ dataRoot: '/a', dataDir: '/b' });
    } catch (e) {
      err = e;
    }
    expect(AgentStateError.is(err) && err.code).toBe('INVALID_OPTIONS');
    expect(resolveDataRoot({ dataRoot: '/a', dataDir: '/a/' })).toBe('/a');
  });
});
