import { describe, expect, it } from 'vitest';
import { ALWAYS_EXCLUDES, DEFAULT_EXCLUDES, createExcludeMatcher, effectiveExcludes } from './exclude.js';

// The README's exclude table: [patterns, path, isDir, excluded?]
const TABLE: [string[], string, boolean, boolean][] = [
  // no "/": a name at any depth
  [['*.log'], 'dawn.log', false, true],
  [['*.log'], 'logs/dawn.log', false, true],
  [['*.log'], 'a/b/c/deep.log', false, true],
  [['*.log'], 'tools/data.log.json', false, false],
  [['*.log'], 'logs', true, false],
  [['*.log'], '.hidden.log', false, true], // dot files match like Python's fnmatch
  [['__pycache__'], 'tools/__pycache__', true, true],
  [['__pycache__'], '__pycache__', true, true],
  [['*.pyc'], 'tools/__init__.pyc', false, true],
  [['*.lock'], 'mesh/peer_registry.json.lock', true, true],
  [['cache'], 'agents/a1/cache', true, true],
  [['cache'], 'agents/a1/cache.json', false, false],
  // with "/": the path relative to the source
  [['agents/*/cache'], 'agents/a1/cache', true, true],
  [['agents/*/cache'], 'cache', true, false],
  [['agents/*/cache'], 'x/agents/a1/cache', true, false],
  [['logs/*.txt'], 'logs/a.txt', false, true],
  [['logs/*.txt'], 'logs/sub/a.txt', false, false],
  [['logs/**'], 'logs/sub/a.txt', false, true],
  // leading "/": anchored name
  [['/logs'], 'logs', true, true],
  [['/logs'], 'agents/logs', true, false],
  // trailing "/": directories only
  [['cache/'], 'agents/cache', true, true],
  [['cache/'], 'agents/cache', false, false],
];

describe('createExcludeMatcher', () => {
  it.each(TABLE)('%j on %s (dir: %s) -> excluded %s', (patterns, path, isDir, expected) => {
    expect(createExcludeMatcher(patterns)(path, isDir)).toBe(expected);
  });

  it('always excludes atomic-json temp files, whatever the patterns', () => {
    const m = createExcludeMatcher([]);
    expect(m('mesh/.0123456789ab-0123456789abcdef.ajtmp', false)).toBe(true);
    expect(m('mesh/peer_registry.json', false)).toBe(false);
  });

  it('rejects empty patterns and a pattern naming the source itself', () => {
    expect(() => createExcludeMatcher([''])).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
    expect(() => createExcludeMatcher(['/'])).toThrow(expect.objectContaining({ code: 'INVALID_OPTION' }));
  });

  it('the default list excludes what the Python tool did, and no pattern catches *.lock or *.ajtmp names', () => {
    const m = createExcludeMatcher(DEFAULT_EXCLUDES);
    expect(m('logs/dawn.log', false)).toBe(true);
    expect(m('x.tmp', false)).toBe(true);
    expect(m('tools/__pycache__', true)).toBe(true);
    expect(m('a.pyc', false)).toBe(true);
    expect(m('mesh/peer_registry.json', false)).toBe(false);
    expect(m('agents/first_agent/state.json', false)).toBe(false);
    // Exact recognition, not patterns: lock dirs are found by the walk (empty `<x>.lock` dirs),
    // temp files by atomic-json's isTempFileName.
    expect(m('Cargo.lock', false)).toBe(false);
    expect(m('agents/foo.lock', true)).toBe(false);
    expect(m('mesh/peer_registry.json.lock', true)).toBe(false);
    expect(m('notes.ajtmp', false)).toBe(false);
    expect(m('mesh/.0123456789ab-0123456789abcdef.ajtmp', false)).toBe(true);
    expect(m('mesh/.0123456789ab-0123456789abcdef.ajtmp', true)).toBe(false); // a directory is not a temp file
  });
});

describe('effectiveExcludes', () => {
  it('adds user patterns to the defaults, without duplicates', () => {
    expect(effectiveExcludes(['*.bak', '*.log'])).toEqual([...DEFAULT_EXCLUDES, '*.bak']);
  });
  it('without the defaults only the user patterns remain (lock dirs and temp files are recognised, not matched)', () => {
    expect(ALWAYS_EXCLUDES).toEqual([]);
    expect(effectiveExcludes(['*.bak'], false)).toEqual(['*.bak']);
  });
});
