/**
 * A fault layer over the real file system for unit tests: counts calls, knows which file
 * descriptors belong to atomic-json temp files, and lets a test replace any one call.
 * Installed with `setFsLayer` (internal); restored after each test.
 */
import { afterEach } from 'vitest';
import { realFs, setFsLayer, type FsLayer } from '../src/fs-layer.js';
import { TEMP_SUFFIX } from '../src/write.js';

type Call = Exclude<keyof FsLayer, 'platform'>;

export interface LayerState {
  /** How many times each call was made. */
  calls: Record<Call, number>;
  /** Descriptors currently open on temp files (`*.ajtmp`). */
  tempFds: Set<number>;
}

/** A system error as Node's fs would produce it. */
export function errno(code: string, syscall: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: injected fault, ${syscall}`) as NodeJS.ErrnoException;
  err.code = code;
  err.syscall = syscall;
  return err;
}

let restoreCurrent: (() => void) | undefined;
afterEach(() => {
  restoreCurrent?.();
  restoreCurrent = undefined;
});

/**
 * Install a layer made of `realFs` plus the overrides built by `make` (which may read the
 * state, e.g. to fail only on temp-file descriptors). Removed automatically after the test.
 */
export function installLayer(make: (state: LayerState) => Partial<FsLayer> = () => ({})): LayerState {
  const state: LayerState = {
    calls: {
      open: 0, write: 0, fsync: 0, fsyncDir: 0, fchmod: 0, close: 0, rename: 0, unlink: 0,
      readFile: 0, stat: 0, lstat: 0, realpath: 0, readlink: 0, readdir: 0, mkdir: 0,
    },
    tempFds: new Set(),
  };
  const o = make(state);
  const count =
    <A extends unknown[], R>(name: Call, fn: (...args: A) => Promise<R>) =>
    (...args: A): Promise<R> => {
      state.calls[name]++;
      return fn(...args);
    };
  const layer: FsLayer = {
    platform: o.platform ?? realFs.platform,
    open: count('open', async (path, flags, mode) => {
      const fd = await (o.open ?? realFs.open)(path, flags, mode);
      if (path.endsWith(TEMP_SUFFIX)) state.tempFds.add(fd);
      return fd;
    }),
    write: count('write', o.write ?? realFs.write),
    fsync: count('fsync', o.fsync ?? realFs.fsync),
    fsyncDir: count('fsyncDir', o.fsyncDir ?? realFs.fsyncDir),
    fchmod: count('fchmod', o.fchmod ?? realFs.fchmod),
    close: count('close', async (fd) => {
      try {
        await (o.close ?? realFs.close)(fd);
      } finally {
        state.tempFds.delete(fd);
      }
    }),
    rename: count('rename', o.rename ?? realFs.rename),
    unlink: count('unlink', o.unlink ?? realFs.unlink),
    readFile: count('readFile', o.readFile ?? realFs.readFile),
    stat: count('stat', o.stat ?? realFs.stat),
    lstat: count('lstat', o.lstat ?? realFs.lstat),
    realpath: count('realpath', o.realpath ?? realFs.realpath),
    readlink: count('readlink', o.readlink ?? realFs.readlink),
    readdir: count('readdir', o.readdir ?? realFs.readdir),
    mkdir: count('mkdir', o.mkdir ?? realFs.mkdir),
  };
  restoreCurrent?.();
  restoreCurrent = setFsLayer(layer);
  return state;
}

/** True once: the first `n` calls return true. */
export function firstN(n: number): () => boolean {
  let left = n;
  return () => left-- > 0;
}
