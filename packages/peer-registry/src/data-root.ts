import { DATA_ROOT_ENV, expandHome, resolveDataRoot as resolveRoot } from '@dawn/atomic-json';
import { join, resolve } from 'node:path';

/** Environment variable naming the data root (as in the Python implementation). */
export { DATA_ROOT_ENV };

/** File name of the registry inside `<dataRoot>/mesh`. */
export const REGISTRY_FILE_NAME = 'peer_registry.json';

/** Options of {@link resolveDataRoot}. */
export interface DataRootOptions {
  /** Explicit data root; wins over the environment. A leading `~` is expanded. */
  dataRoot?: string;
  /** Environment to read `PROJECT_DAWN_DATA_ROOT` from. @default process.env */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * The Dawn data root, as an absolute path: `opts.dataRoot`, else `$PROJECT_DAWN_DATA_ROOT`
 * (`~` expanded; an empty value counts as unset, for the option too), else `~/.project-dawn` —
 * `@dawn/atomic-json`'s `resolveDataRoot`, the one rule every Dawn package follows.
 *
 * @example
 * ```ts
 * resolveDataRoot();                         // '/home/me/.project-dawn'
 * resolveDataRoot({ dataRoot: '~/dawn' });   // '/home/me/dawn'
 * ```
 */
export function resolveDataRoot(opts: DataRootOptions = {}): string {
  return resolveRoot(opts.dataRoot, opts.env ?? process.env);
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
