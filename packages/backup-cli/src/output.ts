import type { ProgressEvent } from './progress.js';

/** A stream the CLI writes to (process.stdout / process.stderr, or a test double). */
export interface OutStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** A process stream guarded by {@link guardStream}. */
export interface GuardedStream extends OutStream {
  /** True once the reader went away (or writing failed): later writes are dropped. */
  readonly closed: boolean;
  /** The write error other than a closed reader (e.g. `ENOSPC` of a redirect to a full disk). */
  readonly failure: Error | undefined;
  /** Resolves once everything written so far has been handed to the system (or dropped). */
  flush(): Promise<void>;
}

const READER_GONE = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED', 'ERR_STREAM_WRITE_AFTER_END']);

/**
 * Guard stdout or stderr of the process: when the reader goes away (`dawn-backup show x --files
 * | head -1`: `EPIPE`), the output ends quietly — no `'error'` event ever crashes the process,
 * no stack trace, and every later write is dropped while the command finishes as it would
 * (same exit code). Any other write error (a full disk behind a redirect) is kept in `failure`
 * for the caller to report. The one place where every command's output goes through.
 *
 * @example
 * ```ts
 * const stdout = guardStream(process.stdout);
 * stdout.write('hello\n');
 * await stdout.flush();
 * ```
 */
export function guardStream(stream: NodeJS.WritableStream & { isTTY?: boolean; columns?: number }): GuardedStream {
  const known = guards.get(stream);
  if (known) return known;
  let closed = false;
  let failure: Error | undefined;
  const onError = (err: NodeJS.ErrnoException) => {
    closed = true;
    if (!READER_GONE.has(err.code ?? '')) failure ??= err;
  };
  stream.on('error', onError);
  const guarded: GuardedStream = {
    get closed() {
      return closed;
    },
    get failure() {
      return failure;
    },
    get isTTY() {
      return stream.isTTY;
    },
    get columns() {
      return stream.columns;
    },
    write(text: string) {
      if (closed) return false;
      try {
        return stream.write(text, (err) => {
          if (err) onError(err);
        });
      } catch (err) {
        onError(err as NodeJS.ErrnoException);
        return false;
      }
    },
    flush() {
      if (closed) return Promise.resolve();
      return new Promise<void>((resolve) => {
        try {
          stream.write('', () => resolve());
        } catch {
          resolve();
        }
      });
    },
  };
  guards.set(stream, guarded);
  return guarded;
}

/** One guard per stream (one `'error'` listener, however often `main` runs in a process). */
const guards = new WeakMap<object, GuardedStream>();

/** Where the CLI reads its environment and writes its output. */
export interface CliIO {
  stdout: OutStream;
  stderr: OutStream;
  env: Readonly<Record<string, string | undefined>>;
  /** A terminal to ask the password of an encrypted repository on (only used when it is a TTY). */
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?(mode: boolean): unknown };
}

/**
 * Escape what would act on a terminal instead of being shown: C0 and C1 control characters
 * (but newline and tab), DEL, and the Unicode bidirectional overrides (a name could reorder
 * the text around it). With `keepColors`, plain SGR color sequences (`ESC [ … m`, the only ones
 * this CLI writes) pass; every other escape sequence (cursor moves, screen clears, OSC titles and
 * links) is shown as text.
 */
export function terminalSafe(text: string, keepColors: boolean): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*m|[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (m) => {
    if (m.length > 1) return keepColors ? m : `\\x1b${m.slice(1)}`;
    const c = m.charCodeAt(0);
    return c <= 0xff ? `\\x${c.toString(16).padStart(2, '0')}` : `\\u${c.toString(16).padStart(4, '0')}`;
  });
}

/** Colors only on a terminal, never with `NO_COLOR` set (non-empty) or `TERM=dumb`. */
export function colorEnabled(stream: OutStream, env: Readonly<Record<string, string | undefined>>): boolean {
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  if (env.TERM === 'dumb') return false;
  return stream.isTTY === true;
}

export interface Style {
  bold(s: string): string;
  dim(s: string): string;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
}

const wrap = (open: number, close: number) => (s: string) => `\u001b[${open}m${s}\u001b[${close}m`;
const plain = (s: string) => s;

export function makeStyle(enabled: boolean): Style {
  if (!enabled) return { bold: plain, dim: plain, red: plain, green: plain, yellow: plain };
  return { bold: wrap(1, 22), dim: wrap(2, 22), red: wrap(31, 39), green: wrap(32, 39), yellow: wrap(33, 39) };
}

/** `1.5 KiB`, `12.0 MiB`... */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return '?';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(1)} ${units[u]}`;
}

/** `2026-11-26 10:15:00` local time. */
export function formatTime(seconds: number): string {
  const d = new Date(seconds * 1000);
  const p = (x: number) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Left-aligned columns separated by two spaces. */
export function table(cells: readonly (readonly unknown[])[], style?: Style): string {
  const rows = cells.map((r) => r.map(String)); // a stray number or null never breaks the output
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows
    .map((r, ri) => {
      const line = r
        .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - [...c].length)))
        .join('  ')
        .trimEnd();
      return ri === 0 && style ? style.bold(line) : line;
    })
    .join('\n');
}

/**
 * A progress bar on stderr, only on a terminal, only once an operation has run for more
 * than `delayMs`, redrawn at most every 100 ms, erased at the end.
 */
export class ProgressBar {
  private readonly start = Date.now();
  private lastDraw = 0;
  private drawn = false;
  private last: ProgressEvent | undefined;

  constructor(
    private readonly stream: OutStream,
    private readonly enabled: boolean,
    private readonly delayMs = 1000,
  ) {}

  readonly update = (e: ProgressEvent): void => {
    if (!this.enabled) return;
    const now = Date.now();
    const phaseChanged = this.last !== undefined && this.last.phase !== e.phase;
    this.last = e;
    if (now - this.start < this.delayMs || (now - this.lastDraw < 100 && !phaseChanged)) return;
    this.lastDraw = now;
    this.draw(e);
  };

  private draw(e: ProgressEvent): void {
    const width = 30;
    const ratio = e.totalFiles > 0 ? Math.min(1, e.files / e.totalFiles) : 0;
    const filled = Math.round(ratio * width);
    const label = { scan: 'scanning', copy: 'copying', verify: 'verifying', restore: 'restoring', sync: 'flushing to disk' }[e.phase];
    const text =
      e.phase === 'scan' || e.phase === 'sync'
        ? `${label}...`
        : `${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(ratio * 100)}% ${e.files}/${e.totalFiles} files ${formatBytes(e.bytes)}`;
    this.stream.write(`\r\u001b[2K${text}`);
    this.drawn = true;
  }

  /** Erase the bar (call before printing anything else). */
  done(): void {
    if (this.drawn) this.stream.write('\r\u001b[2K');
    this.drawn = false;
  }
}
