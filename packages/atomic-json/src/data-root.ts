/**
 * The one rule for where a Dawn node keeps its data (the "data root"), shared by every package
 * so that they all agree: an explicit directory, else env `PROJECT_DAWN_DATA_ROOT`, else
 * `~/.project-dawn`. Pure path computation: reads no file.
 */
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Name of the environment variable that sets the data root when no directory is given:
 * `'PROJECT_DAWN_DATA_ROOT'` (the Python implementation's name).
 *
 * @example
 * ```ts
 * process.env[DATA_ROOT_ENV] = '/srv/dawn';
 * ```
 */
export const DATA_ROOT_ENV = 'PROJECT_DAWN_DATA_ROOT';

/**
 * Expand a leading `~` (alone, or followed by `/` or `\`) to the current user's home
 * directory. Other paths, including `~user/...`, are returned unchanged. Not made absolute.
 *
 * @param path A path as a user typed it.
 * @returns The path with its leading `~` expanded.
 * @throws Never.
 * @example
 * ```ts
 * expandHome('~/dawn');    // '/home/me/dawn'
 * expandHome('/srv/dawn'); // '/srv/dawn'
 * ```
 */
export function expandHome(path: string): string {
  if (path === '~') return homedir();
  if (path.startsWith('~/') || path.startsWith('~\\')) return join(homedir(), path.slice(2));
  return path;
}

/**
 * The absolute data root: `dataRoot` when given, else `env.PROJECT_DAWN_DATA_ROOT`, else
 * `~/.project-dawn`. A leading `~` is expanded in both given values; an empty string counts
 * as not given. Relative paths are resolved against the current directory.
 *
 * @param dataRoot An explicit data root (an option or a command-line flag).
 * @default dataRoot: undefined (use the environment)
 * @param env The environment to read `PROJECT_DAWN_DATA_ROOT` from.
 * @default env: process.env
 * @returns An absolute path. Nothing is read or created.
 * @throws {TypeError} (`code` `ERR_INVALID_ARG_TYPE`) when `dataRoot` is given but is not a string.
 * @example
 * ```ts
 * resolveDataRoot();                                        // '/home/me/.project-dawn' (env unset)
 * resolveDataRoot('/srv/dawn');                             // '/srv/dawn'
 * resolveDataRoot(undefined, { PROJECT_DAWN_DATA_ROOT: '~/dawn' }); // '/home/me/dawn'
 * ```
 */
export function resolveDataRoot(dataRoot?: string, env: Readonly<Record<string, string | undefined>> = process.env): string {
  if (dataRoot !== undefined && typeof dataRoot !== 'string') {
    throw Object.assign(new TypeError(`The data root must be a directory path (a string), got ${typeof dataRoot}.`), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
  }
  if (dataRoot !== undefined && dataRoot !== '') return resolve(expandHome(dataRoot));
  const fromEnv = env[DATA_ROOT_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return resolve(expandHome(fromEnv));
  return join(homedir(), '.project-dawn');
}
