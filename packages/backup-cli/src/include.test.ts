import { describe, expect, it } from 'vitest';
import { createIncludeMatcher, includeMayReach } from './include.js';

describe('createIncludeMatcher', () => {
  it('follows the --exclude rules, and a selected directory selects its subtree', () => {
    const m = createIncludeMatcher(['agents/first_agent/**', 'peer_registry.json', 'cache/']);
    expect(m('agents/first_agent/state.json', false)).toBe(true);
    expect(m('agents/first_agent', true)).toBe(true);
    expect(m('agents/first_agent_2/state.json', false)).toBe(false);
    expect(m('agents', true)).toBe(false);
    expect(m('mesh/peer_registry.json', false)).toBe(true); // a name at any depth
    expect(m('x/cache/deep/file', false)).toBe(true); // below a selected directory
    expect(m('x/cache', false)).toBe(false); // a file named cache: dirs only
    const whole = createIncludeMatcher(['agents/second']);
    expect(whole('agents/second/memory/m.json', false)).toBe(true);
    expect(() => createIncludeMatcher([])).toThrow(/No --include/);
    expect(() => createIncludeMatcher([''])).toThrow(/include pattern/);
  });

  it('includeMayReach enters only directories on the way to or below the static part', () => {
    const r = includeMayReach(['agents/first_agent/**', '/mesh/peer_registry.json']);
    expect(['agents', 'agents/first_agent', 'agents/first_agent/x', 'mesh'].map(r)).toEqual([true, true, true, true]);
    expect(['agents/second', 'tools', 'agent'].map(r)).toEqual([false, false, false]);
    expect(includeMayReach(['state.json'])('anything/at/all')).toBe(true);
    expect(includeMayReach(['agents/*/state.json'])('agents/x')).toBe(true);
    expect(includeMayReach(['agents/*/state.json'])('mesh')).toBe(false);
  });
});
