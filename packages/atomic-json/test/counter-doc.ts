/**
 * The journaled document of the review-finding and compaction-kill tests: a counter (number ops
 * add to it) and a list of names (string ops append), plus a field only a foreign writer sets.
 * `test/fixtures/compaction-stopper.mjs` folds ops the same way.
 */
export interface Doc {
  count: number;
  names: string[];
  theirs?: string;
}
export type Op = number | string;
export const apply = (doc: Doc | undefined, ops: readonly Op[]): Doc => {
  const d = doc ?? { count: 0, names: [] };
  for (const op of ops) {
    if (typeof op === 'number') d.count += op;
    else d.names.push(op);
  }
  return d;
};
