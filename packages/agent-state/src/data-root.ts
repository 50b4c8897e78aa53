import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { AgentStateError } from './errors.js';

/** Environment variable naming the data root when no option does. */
export const DATA_ROOT_ENV = 'PROJECT_DAWN_DATA_ROOT';

/** Where the data root is chosen from: `dataRoot` and `dataDir` are synonyms (`dataDir` is the Python name). */
export interface DataRootOptions {
  /**
   * The data root directory. A leading `~` is expanded.
   * @default env `PROJECT_DAWN_DATA_ROOT`, else `~/.project-dawn`
   */
  dataRoot?: string;
  /** Same as {@link DataRootOptions.dataRoot} (the Python implementation's name). */
  dataDir?: string;
}

function expandHome(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return join(homedir(), p.slice(2));
  return p;
}

/**
 * The absolute data root: `opts.dataRoot` / `opts.dataDir`, else env
 * `PROJECT_DAWN_DATA_ROOT` (a leading `~` expanded), else `~/.project-dawn`. Reads no file.
 *
 * @throws {AgentStateError} `INVALID_OPTIONS` when `dataRoot` and `dataDir` are both given and differ,
 *   or one is not a non-empty string.
 * @example
 * ```ts
 * resolveDataRoot();                          // ~/.project-dawn, unless PROJECT_DAWN_DATA_ROOT is set
 * resolveDataRoot({ dataRoot: '/srv/dawn' }); // /srv/dawn
 * ```
 */
export function resolveDataRoot(opts: DataRootOptions = {}, env: NodeJS.ProcessEnv = process.env): string {
  for (const key of ['dataRoot', 'dataDir'] as const) {
    const v = opts[key];
    if (v !== undefined && (typeof v !== 'string' || v === '')) {
      throw new AgentStateError('INVALID_OPTIONS', `Option ${key} must be a non-empty directory path, got ${JSON.stringify(v)}.`);
    }
  }
  if (opts.dataRoot !== undefined && opts.dataDir !== undefined && resolve(expandHome(opts.dataRoot)) !== resolve(expandHome(opts.dataDir))) {
    throw new AgentStateError(
      'INVALID_OPTIONS',
      `Options dataRoot (${opts.dataRoot}) and dataDir (${opts.dataDir}) disagree; they are synonyms: pass only one.`,
    );
  }
  const chosen = opts.dataRoot ?? opts.dataDir ?? (env[DATA_ROOT_ENV] || undefined);
  return resolve(expandHome(chosen ?? join(homedir(), '.project-dawn')));
}
