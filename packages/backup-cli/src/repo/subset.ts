/**
 * `verify --read-data-subset`: which of a backup's stored objects to download and check, with
 * restic's semantics. It works on the ids of the stored objects (hex names), whatever they hold
 * (one file content, or a pack of many): the subset is over stored objects, never over files.
 */
import { BackupError } from '../errors.js';

/** A subset of the stored objects: a percentage picked at random, or the slice `n` of `m`. */
export type DataSubset = { kind: 'percent'; percent: number } | { kind: 'slice'; n: number; m: number };

/** At most 256 slices: an object falls in slice `(first byte of its id mod m) + 1`. */
export const MAX_SLICES = 256;

/**
 * Parse `N%` (0 < N ≤ 100, decimals allowed) or `n/m` (1 ≤ n ≤ m ≤ 256).
 *
 * @throws {BackupError} `INVALID_OPTION` for anything else.
 * @example
 * ```ts
 * parseDataSubset('10%'); // { kind: 'percent', percent: 10 }
 * parseDataSubset('2/7'); // { kind: 'slice', n: 2, m: 7 }
 * ```
 */
export function parseDataSubset(spec: string): DataSubset {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(spec.trim());
  if (pct) {
    const percent = Number(pct[1]);
    if (percent > 0 && percent <= 100) return { kind: 'percent', percent };
  }
  const slice = /^(\d+)\/(\d+)$/.exec(spec.trim());
  if (slice) {
    const n = Number(slice[1]);
    const m = Number(slice[2]);
    if (n >= 1 && m >= 1 && n <= m && m <= MAX_SLICES) return { kind: 'slice', n, m };
  }
  throw new BackupError(
    'INVALID_OPTION',
    `--read-data-subset "${spec}" is not valid: use N% (a random N percent of the stored objects, 0 < N <= 100) or n/m (the slice n of m, 1 <= n <= m <= ${MAX_SLICES}).`,
  );
}

/**
 * The ids to read of `ids` (hex object names, each once).
 * - `N%`: round(N% of them), at least one when there is any, picked at random (`random`).
 * - `n/m`: those whose first byte, modulo `m`, is `n - 1`. Deterministic: running `1/m` to `m/m`
 *   (one per night, say) reads every object exactly once, as long as the repository is unchanged.
 *
 * @example
 * ```ts
 * selectSubset(['00aa', '01bb', '02cc'], { kind: 'slice', n: 1, m: 2 }); // ['00aa', '02cc']
 * ```
 */
export function selectSubset(ids: readonly string[], subset: DataSubset, random: () => number = Math.random): string[] {
  if (subset.kind === 'slice') return ids.filter((id) => parseInt(id.slice(0, 2), 16) % subset.m === subset.n - 1);
  let count = Math.round((ids.length * subset.percent) / 100);
  if (count === 0 && ids.length > 0) count = 1;
  // A partial Fisher-Yates shuffle: the first `count` of a random permutation.
  const pool = [...ids];
  for (let i = 0; i < count; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, count);
}
