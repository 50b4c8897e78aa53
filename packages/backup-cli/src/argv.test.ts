import { describe, expect, it } from 'vitest';
import { count, many, scanArgv, single } from './argv.js';

describe('scanArgv: cac traps undone in one place', () => {
  it('keeps --name 007 (and --name=007) as the string "007"', () => {
    expect(single(scanArgv(['backup', '--name', '007']), 'name', '--name')).toBe('007');
    expect(single(scanArgv(['backup', '--name=007']), 'name', '--name')).toBe('007');
  });
  it('one or several --exclude give an array', () => {
    expect(many(scanArgv(['backup', '--exclude', '*.bak']), 'exclude')).toEqual(['*.bak']);
    expect(many(scanArgv(['backup', '--exclude', '*.bak', '--exclude=1e3']), 'exclude')).toEqual(['*.bak', '1e3']);
    expect(many(scanArgv(['backup']), 'exclude')).toEqual([]);
  });
  it('positionals keep their text even after a flag (mri would swallow and coerce them)', () => {
    expect(scanArgv(['show', '--json', '007']).positionals).toEqual(['show', '007']);
    expect(scanArgv(['--backup-dir', '/b', 'restore', '0x10', '--target', '/t']).positionals).toEqual(['restore', '0x10']);
    expect(scanArgv(['verify', '--', '--weird']).positionals).toEqual(['verify', '--weird']);
  });
  it('camelCase spellings are the same option', () => {
    expect(single(scanArgv(['list', '--backupDir', '/b']), 'backupDir', '--backup-dir')).toBe('/b');
  });
  it('a single-valued option given twice is a usage error', () => {
    expect(() => single(scanArgv(['backup', '--name', 'a', '--name', 'b']), 'name', '--name')).toThrow(expect.objectContaining({ code: 'USAGE' }));
  });
  it('counts are whole numbers from their exact text', () => {
    expect(count(scanArgv(['prune', '--keep-last', '007']), 'keepLast', '--keep-last')).toBe(7);
    for (const bad of ['1.5', 'abc', '1e3', '']) {
      expect(() => count(scanArgv(['prune', `--keep-last=${bad}`]), 'keepLast', '--keep-last')).toThrow(expect.objectContaining({ code: 'USAGE' }));
    }
  });
});
