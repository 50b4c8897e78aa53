/**
 * The autosave debouncer: after a change, wait until no change came for `delayMs`, but never
 * longer than `maxDelayMs` after the first unsaved change, then fire once. One timer at a time,
 * re-armed only when it fires early, so a burst of changes costs no timer churn.
 */
import { AgentStateError } from './errors.js';

/** Options of autosave (see `BaseAgentOptions.autosave`). */
export interface AutosaveOptions {
  /**
   * Quiet period: the state is saved once no change came for this long.
   * @default 1000
   */
  delayMs?: number;
  /**
   * Longest wait after the first unsaved change while changes keep coming.
   * @default 10 × delayMs (at least delayMs)
   */
  maxDelayMs?: number;
  /**
   * Called with the error of a failed autosave (a `CONFLICT`, a full disk...), once per run of
   * failures: not again for further failures with the same error code, until a save succeeds.
   * The changes stay unsaved; autosave retries with a growing delay (see `maxRetryDelayMs`),
   * and `saveState()`/`flush()`/`stop()` try at once.
   * @default emits a process warning with code `DAWN_AGENT_AUTOSAVE` (`process.emitWarning`),
   *   the error as its `cause`
   */
  onError?: (error: unknown) => void;
  /**
   * After a failed autosave, changes no longer trigger saves: the next try waits
   * `max(delayMs, 1000)` ms, doubling after each further failure, up to this. The retry timer
   * does not keep the process alive.
   * @default 60000
   */
  maxRetryDelayMs?: number;
}

export interface ResolvedAutosave {
  delayMs: number;
  maxDelayMs: number;
  onError: ((error: unknown) => void) | undefined;
  maxRetryDelayMs: number;
}

/** Validate and complete autosave options; `undefined` when autosave is off. */
export function resolveAutosave(opt: boolean | AutosaveOptions | undefined): ResolvedAutosave | undefined {
  if (opt === undefined || opt === false) return undefined;
  const o: AutosaveOptions = opt === true ? {} : opt;
  const delayMs = o.delayMs ?? 1000;
  if (typeof delayMs !== 'number' || !Number.isFinite(delayMs) || delayMs < 0) {
    throw new AgentStateError('INVALID_OPTIONS', `Option autosave.delayMs must be a finite number >= 0, got ${String(delayMs)}.`);
  }
  const maxDelayMs = o.maxDelayMs ?? Math.max(delayMs * 10, delayMs);
  if (typeof maxDelayMs !== 'number' || !Number.isFinite(maxDelayMs) || maxDelayMs < delayMs) {
    throw new AgentStateError(
      'INVALID_OPTIONS',
      `Option autosave.maxDelayMs must be a finite number >= delayMs (${delayMs}), got ${String(maxDelayMs)}.`,
    );
  }
  if (o.onError !== undefined && typeof o.onError !== 'function') {
    throw new AgentStateError('INVALID_OPTIONS', 'Option autosave.onError must be a function.');
  }
  const maxRetryDelayMs = o.maxRetryDelayMs ?? 60_000;
  if (typeof maxRetryDelayMs !== 'number' || !Number.isFinite(maxRetryDelayMs) || maxRetryDelayMs < 0) {
    throw new AgentStateError('INVALID_OPTIONS', `Option autosave.maxRetryDelayMs must be a finite number >= 0, got ${String(maxRetryDelayMs)}.`);
  }
  return { delayMs, maxDelayMs, onError: o.onError, maxRetryDelayMs };
}

export class Debouncer {
  #timer: NodeJS.Timeout | undefined;
  #first = 0;
  #last = 0;
  readonly #delayMs: number;
  readonly #maxDelayMs: number;
  readonly #fire: () => void;

  constructor(delayMs: number, maxDelayMs: number, fire: () => void) {
    this.#delayMs = delayMs;
    this.#maxDelayMs = maxDelayMs;
    this.#fire = fire;
  }

  /** A change happened. */
  poke(): void {
    const now = Date.now();
    this.#last = now;
    if (this.#timer === undefined) {
      this.#first = now;
      this.#arm(this.#delayMs);
    }
  }

  /** Forget the pending fire. */
  cancel(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  get pending(): boolean {
    return this.#timer !== undefined;
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => this.#tick(), ms);
  }

  #tick(): void {
    const now = Date.now();
    const due = Math.min(this.#last + this.#delayMs, this.#first + this.#maxDelayMs);
    if (due > now) {
      this.#arm(due - now);
      return;
    }
    this.#timer = undefined;
    this.#fire();
  }
}
