/**
 * The JSON check run on a state before anything touches the disk. It applies the same rules
 * as `@dawn/atomic-json`'s serializer (which checks again when writing), so a state that
 * passes here is written, and one that fails is refused with its key path.
 */

import { findNonJson as findNonJsonValue } from '@dawn/atomic-json';

/** Where and what the first non-JSON value is. */
export interface NonJson {
  /** e.g. `$.state.tasks[2].due` */
  keyPath: string;
  /** e.g. `a function`, `a symbol`, `a circular reference` */
  what: string;
}

/**
 * The first value inside `value` that JSON cannot represent faithfully, or `undefined`: exactly
 * what `@dawn/atomic-json`'s writers refuse (one rule, one home). Rejected: cycles, functions,
 * symbols, non-finite numbers, `undefined` as the root or an array item, Map, Set. A `bigint`
 * is fine (written as its digits). The walk is iterative, so a state of any depth is checked.
 *
 * @param rootPath what `$` stands for in the key path, e.g. `$.state`.
 */
export function findNonJson(value: unknown, rootPath = '$'): NonJson | undefined {
  const bad = findNonJsonValue(value);
  return bad && { keyPath: rootPath + bad.keyPath.slice(1), what: bad.what };
}
