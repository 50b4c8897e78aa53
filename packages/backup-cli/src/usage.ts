/**
 * Usage checking that speaks the user's language: unknown commands and options are reported as
 * typed (`--keep-lst`, not cac's `--keepLst`), with the nearest valid spelling suggested, and
 * option values that look like negative numbers (`--keep-last -1`) are taken as values so they
 * get a proper range error instead of "unknown option `-1`".
 */
import { BackupError } from './errors.js';

/** What the CLI accepts: the global options and, per command, its own. */
export interface Grammar {
  commands: ReadonlyMap<string, { options: readonly OptionSpec[] }>;
  global: readonly OptionSpec[];
}

export interface OptionSpec {
  /** `--keep-last`, `--no-fsync`, `--help`... */
  flag: string;
  /** Whether it takes a value (`--keep-last <n>`). */
  takesValue: boolean;
}

/** Edit distance (Damerau: a swap of two neighbours counts once), for "did you mean". */
export function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** The closest candidate, when close enough to be a typo (or a prefix of it). */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = c.startsWith(word) && word.length >= 3 ? 0.5 : distance(word, c);
    if (dist < bestD) {
      bestD = dist;
      best = c;
    }
  }
  const limit = Math.max(2, Math.floor((best?.length ?? 0) / 3));
  return best !== undefined && bestD <= limit ? best : undefined;
}

/** Shown in messages: control characters escaped, long input cut. */
function shown(word: string): string {
  const short = word.length > 60 ? `${word.slice(0, 60)}…` : word;
  return JSON.stringify(short).slice(1, -1);
}

const NEGATIVE_NUMBER = /^-\d/;

/**
 * Check `argv` against the grammar before cac sees it, and return it normalised for cac:
 * every value option written as `--opt=value`, so that a value starting with `-` stays a value.
 *
 * @throws {BackupError} `USAGE` naming the unknown command or option as typed, with a suggestion.
 */
export function checkArgv(argv: readonly string[], grammar: Grammar): string[] {
  const out: string[] = [];
  const commandWord = argv.find((t, i) => !t.startsWith('-') && !isValueOf(argv, i, grammar));
  const command = commandWord !== undefined ? grammar.commands.get(commandWord) : undefined;
  const names = [...grammar.commands.keys()];
  if (commandWord !== undefined && command === undefined && !argv.includes('--help') && !argv.includes('-h')) {
    const guess = nearest(commandWord, names);
    throw new BackupError(
      'USAGE',
      `Unknown command "${shown(commandWord)}".${guess ? ` Did you mean "${guess}"?` : ''} Commands: ${names.join(', ')}.`,
    );
  }
  const valid = [...grammar.global, ...(command?.options ?? [])];
  const byFlag = new Map(valid.map((o) => [o.flag, o]));
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (!tok.startsWith('--') || tok.length === 2) {
      out.push(tok);
      continue;
    }
    const eq = tok.indexOf('=');
    const flag = eq < 0 ? tok : tok.slice(0, eq);
    const spec = byFlag.get(flag);
    if (!spec) throw unknownOption(flag, commandWord, valid, grammar);
    if (!spec.takesValue) {
      if (eq >= 0) throw new BackupError('USAGE', `${flag} takes no value (got "${shown(tok.slice(eq + 1))}").`);
      out.push(tok);
      continue;
    }
    if (eq >= 0) {
      out.push(tok);
      continue;
    }
    const next = argv[i + 1];
    if (next === undefined || (next.startsWith('-') && !NEGATIVE_NUMBER.test(next))) {
      throw new BackupError('USAGE', `${flag} needs a value${next === undefined ? '' : ` (found the option "${shown(next)}" instead)`}.`);
    }
    out.push(`${flag}=${next}`);
    i++;
  }
  return out;
}

/** Whether `argv[i]` is the value of the value option just before it. */
function isValueOf(argv: readonly string[], i: number, grammar: Grammar): boolean {
  const prev = argv[i - 1];
  if (prev === undefined || !prev.startsWith('--') || prev.includes('=')) return false;
  const all = [...grammar.global, ...[...grammar.commands.values()].flatMap((c) => c.options)];
  return all.some((o) => o.flag === prev && o.takesValue);
}

function unknownOption(flag: string, command: string | undefined, valid: readonly OptionSpec[], grammar: Grammar): BackupError {
  const guess = nearest(flag, valid.map((o) => o.flag));
  const elsewhere = [...grammar.commands.entries()].filter(([, c]) => c.options.some((o) => o.flag === flag)).map(([n]) => n);
  const where = command ? ` for "${command}"` : '';
  let hint = '';
  if (guess) hint = ` Did you mean ${guess}?`;
  else if (elsewhere.length > 0) hint = ` ${flag} is an option of ${elsewhere.join(', ')}.`;
  const help = command ? `dawn-backup ${command} --help` : 'dawn-backup --help';
  return new BackupError('USAGE', `Unknown option ${shown(flag)}${where}.${hint} See \`${help}\`.`);
}
