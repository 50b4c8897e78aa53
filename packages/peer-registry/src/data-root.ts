import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/** Environment variable naming the data root (as in the Python implementation). */
export const DATA_ROOT_ENV = 'PROJECT_DAWN_DATA_ROOT';

/** File name of the registry inside `<dataRoot>/mesh`. */
export const REGISTRY_FILE_NAME = 'peer_registry.json';

function expandHome(p: string): string {
  if (p === '~') return homedir();
  if (p.startsWith('~/') || p.startsWith('~\\')) return join(homedir(), p.slice(2));
  return p;
}

/** Options of {@link resolveDataRoot}. */
export interface DataRootOptions {
  /** Explicit data root; wins over the environment. A leading `~` is expanded. */
  dataRoot?: string;
  /** Environment to read `PROJECT_DAWN_DATA_ROOT` from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The Dawn data root, as an absolute path: `opts.dataRoot`, else `$PROJECT_DAWN_DATA_ROOT`
 * (`~` expanded; an empty value counts as unset), else `~/.project-dawn`.
 *
 * @example
 * ```ts
 * resolveDataRoot();                         // '/home/me/.project-dawn'
 * resolveDataRoot({ dataRoot: '~/dawn' });   // '/home/me/dawn'
 * ```
 */
export function resolveDataRoot(opts: DataRootOptions = {}): string {
  const env = opts.env ?? process.env;
  const fromEnv = env[DATA_ROOT_ENV];
  const root = opts.dataRoot ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : join(homedir(), '.project-dawn'));
  return resolve(expandHome(root));
}

/** Options of {@link resolveRegistryPath}. */
export interface RegistryPathOptions extends DataRootOptions {
  /** The mesh directory holding `peer_registry.json`; wins over `dataRoot`. */
  dataDir?: string;
}

/**
 * Absolute path of the registry file: `<dataDir>/peer_registry.json` when `dataDir` is given,
 * else `<dataRoot>/mesh/peer_registry.json` (see {@link resolveDataRoot}).
 *
 * @example
 * ```ts
 * resolveRegistryPath({ dataRoot: '/srv/dawn' }); // '/srv/dawn/mesh/peer_registry.json'
 * ```
 */
export function resolveRegistryPath(opts: RegistryPathOptions = {}): string {
  if (opts.dataDir !== undefined) return resolve(expandHome(opts.dataDir), REGISTRY_FILE_NAME);
  return join(resolveDataRoot(opts), 'mesh', REGISTRY_FILE_NAME);
}
