import { BackupError } from './errors.js';
import { withinStart, type RetentionPolicy } from './prune.js';

/**
 * The one place where cac's parsing traps are undone. cac (through mri) turns `--name 007`
 * into the number 7, returns a string for one `--exclude` and an array for two, and lets a
 * boolean flag swallow the next word (`--json 007` → positional number 7). Here the raw argv
 * is read again, so option values and positionals keep their exact text.
 */

/** Options that take a value (camelCase, as cac names them). Everything else is a flag. */
export const VALUE_OPTIONS = ['backupDir', 'source', 'name', 'exclude', 'include', 'target', 'keepLast', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepWithin', 'keepPreRestore', 'keepPreRestoreDays', 'repo', 's3Endpoint', 'passwordFile', 'readDataSubset'] as const;
export type ValueOption = (typeof VALUE_OPTIONS)[number];

/** Options that may be given several times (collected into an array). */
const REPEATABLE = new Set<ValueOption>(['exclude', 'include']);

const camel = (s: string) => s.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** The exact text of what the user typed. */
export interface RawArgs {
  /** Words that are neither options nor option values, in order (the command is the first). */
  positionals: string[];
  /** Values of value options, in order of appearance. */
  values: Partial<Record<ValueOption, string[]>>;
}

/** Re-read argv (without the node and script entries) with no type coercion. */
export function scanArgv(argv: readonly string[]): RawArgs {
  const out: RawArgs = { positionals: [], values: {} };
  const valueSet = new Set<string>(VALUE_OPTIONS);
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (tok.startsWith('--') && tok.length > 2) {
      const eq = tok.indexOf('=');
      const key = camel(eq < 0 ? tok.slice(2) : tok.slice(2, eq));
      if (!valueSet.has(key)) continue; // a flag (or unknown: cac rejects it)
      let value: string | undefined;
      if (eq >= 0) value = tok.slice(eq + 1);
      else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('-')) value = argv[++i]!;
      if (value === undefined) continue; // cac reports the missing value
      (out.values[key as ValueOption] ??= []).push(value);
      continue;
    }
    if (tok.startsWith('-') && tok.length > 1) continue; // short flags: -h, -v
    out.positionals.push(tok);
  }
  return out;
}

/** The single value of an option; a usage error when given twice. */
export function single(raw: RawArgs, key: ValueOption, flag: string): string | undefined {
  const v = raw.values[key];
  if (!v || v.length === 0) return undefined;
  if (v.length > 1 && !REPEATABLE.has(key)) {
    throw new BackupError('USAGE', `${flag} was given ${v.length} times (${v.map((x) => JSON.stringify(x)).join(', ')}); give it once.`);
  }
  return v[v.length - 1];
}

/** Every value of a repeatable option (one or many `--exclude` give the same kind of array). */
export function many(raw: RawArgs, key: ValueOption): string[] {
  return [...(raw.values[key] ?? [])];
}

/** A whole number ≥ 0 from its exact text; a usage error otherwise. */
export function count(raw: RawArgs, key: ValueOption, flag: string): number | undefined {
  const v = single(raw, key, flag);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
    throw new BackupError('USAGE', `${flag} needs a whole number ≥ 0, got ${JSON.stringify(v)}.`);
  }
  return Number(v);
}

/**
 * The retention options (`--keep-*`) of local `prune`, `backup` (which prunes after a successful
 * backup) and `prune --repo`: one reading of them, so no command drops one silently.
 */
export function keepOptions(raw: RawArgs): RetentionPolicy {
  const keepWithin = single(raw, 'keepWithin', '--keep-within');
  if (keepWithin !== undefined) {
    try {
      withinStart(keepWithin, 0);
    } catch (err) {
      throw new BackupError('USAGE', (err as Error).message);
    }
  }
  const policy: RetentionPolicy = {};
  const counts = [
    ['keepLast', '--keep-last'],
    ['keepDaily', '--keep-daily'],
    ['keepWeekly', '--keep-weekly'],
    ['keepMonthly', '--keep-monthly'],
    ['keepPreRestore', '--keep-pre-restore'],
    ['keepPreRestoreDays', '--keep-pre-restore-days'],
  ] as const;
  for (const [key, flag] of counts) {
    const v = count(raw, key, flag);
    if (v !== undefined) policy[key] = v;
  }
  if (keepWithin !== undefined) policy.keepWithin = keepWithin;
  return policy;
}
