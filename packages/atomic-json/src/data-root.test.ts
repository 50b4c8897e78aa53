import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DATA_ROOT_ENV, expandHome, resolveDataRoot } from './index.js';

describe('resolveDataRoot', () => {
  it('takes the explicit directory first, then PROJECT_DAWN_DATA_ROOT, then ~/.project-dawn', () => {
    expect(DATA_ROOT_ENV).toBe('PROJECT_DAWN_DATA_ROOT');
    expect(resolveDataRoot('/srv/dawn', { PROJECT_DAWN_DATA_ROOT: '/env' })).toBe('/srv/dawn');
    expect(resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '/env/root' })).toBe('/env/root');
    expect(resolveDataRoot(undefined, {})).toBe(join(homedir(), '.project-dawn'));
  });

  it('expands ~ in both, treats empty strings as unset, and always returns an absolute path', () => {
    expect(resolveDataRoot('~/mine', {})).toBe(join(homedir(), 'mine'));
    expect(resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '~/dawn-data' })).toBe(join(homedir(), 'dawn-data'));
    expect(resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '~' })).toBe(homedir());
    expect(resolveDataRoot('', { PROJECT_DAWN_DATA_ROOT: '/env' })).toBe('/env');
    expect(resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '' })).toBe(join(homedir(), '.project-dawn'));
    expect(resolveDataRoot('rel/dir', {})).toBe(resolve('rel/dir'));
    expect(resolveDataRoot('/srv/dawn/', {})).toBe('/srv/dawn');
  });

  it('reads process.env by default', () => {
    const saved = process.env[DATA_ROOT_ENV];
    process.env[DATA_ROOT_ENV] = '/from/process/env';
    try {
      expect(resolveDataRoot()).toBe('/from/process/env');
    } finally {
      if (saved === undefined) delete process.env[DATA_ROOT_ENV];
      else process.env[DATA_ROOT_ENV] = saved;
    }
  });

  it('refuses a non-string directory with a coded TypeError', () => {
    expect(() => resolveDataRoot(42 as unknown as string)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});

describe('expandHome', () => {
  it('expands a leading ~ only', () => {
    expect(expandHome('~')).toBe(homedir());
    expect(expandHome('~/a/b')).toBe(join(homedir(), 'a/b'));
    expect(expandHome('/a/~/b')).toBe('/a/~/b');
    expect(expandHome('~other/x')).toBe('~other/x');
    expect(expandHome('rel')).toBe('rel');
  });
});
