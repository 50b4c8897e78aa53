/**
 * The file-system calls atomic-json makes, behind one replaceable object. Production code uses
 * {@link realFs}; tests swap in a fault layer (`setFsLayer`) to make one step fail or to count
 * physical writes. Not part of the public API.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';

export interface FsLayer {
  /** `process.platform`, overridable so the Windows rename retry can be tested anywhere. */
  platform: NodeJS.Platform;
  open(path: string, flags: number | string, mode?: number): Promise<number>;
  /** Returns the number of bytes written, which may be fewer than asked. */
  write(fd: number, buf: Uint8Array, offset: number, length: number): Promise<number>;
  fsync(fd: number): Promise<void>;
  /** fsync of a directory opened read-only, after a rename into it. */
  fsyncDir(fd: number): Promise<void>;
  fchmod(fd: number, mode: number): Promise<void>;
  close(fd: number): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /**
   * Read a whole file that must be a regular file: opened non-blocking (a FIFO or device never
   * blocks the open), checked with fstat, refused with {@link NotRegularFileError} otherwise.
   */
  readFile(path: string): Promise<Buffer>;
  stat(path: string): Promise<fs.Stats>;
  lstat(path: string): Promise<fs.Stats>;
  realpath(path: string): Promise<string>;
  readlink(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  mkdir(path: string): Promise<void>;
}

const pOpen = promisify(fs.open);
const pWrite = promisify(fs.write) as unknown as (
  fd: number,
  buf: Uint8Array,
  offset: number,
  length: number,
  position: number | null,
) => Promise<{ bytesWritten: number }>;
const pFsync = promisify(fs.fsync);
const pFchmod = promisify(fs.fchmod);
const pClose = promisify(fs.close);

export const realFs: FsLayer = {
  platform: process.platform,
  open: (path, flags, mode) => pOpen(path, flags, mode),
  write: async (fd, buf, offset, length) => (await pWrite(fd, buf, offset, length, null)).bytesWritten,
  fsync: (fd) => pFsync(fd),
  fsyncDir: (fd) => pFsync(fd),
  fchmod: (fd, mode) => pFchmod(fd, mode),
  close: (fd) => pClose(fd),
  rename: (from, to) => fs.promises.rename(from, to),
  unlink: (path) => fs.promises.unlink(path),
  readFile: (path) => readRegularFile(path),
  stat: (path) => fs.promises.stat(path),
  lstat: (path) => fs.promises.lstat(path),
  realpath: (path) => fs.promises.realpath(path),
  readlink: (path) => fs.promises.readlink(path),
  readdir: (path) => fs.promises.readdir(path),
  mkdir: async (path) => {
    await fs.promises.mkdir(path, { recursive: true });
  },
};

/** Thrown by {@link FsLayer.readFile} for a path that is not a regular file (after symlinks). */
export class NotRegularFileError extends Error {
  readonly code = 'ENOTREGULAR';
  constructor(
    readonly path: string,
    readonly fileType: string,
  ) {
    super(`${path} is ${fileType}, not a regular file`);
  }
}

/** The kind of a non-regular file, for messages. */
export function fileTypeOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

const { O_RDONLY, O_NONBLOCK = 0, O_NOCTTY = 0 } = fs.constants;

async function readRegularFile(path: string): Promise<Buffer> {
  const handle = await fs.promises.open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new NotRegularFileError(path, fileTypeOf(st));
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

let current: FsLayer = realFs;

/** The layer in use. */
export function fsl(): FsLayer {
  return current;
}

/** Replace the layer (tests only); returns a function restoring the previous one. */
export function setFsLayer(layer: FsLayer): () => void {
  const prev = current;
  current = layer;
  return () => {
    current = prev;
  };
}
