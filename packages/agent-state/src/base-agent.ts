import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileMark, readJson, sameFileMark, type LockOptions } from '@dawn/atomic-json';
import { assertValidAgentId } from './agent-id.js';
import { Debouncer, resolveAutosave, type AutosaveOptions, type ResolvedAutosave } from './autosave.js';
import { resolveAgentLocation } from './data-root.js';
import { recordDigest, valueDigest } from './digest.js';
import { AgentStateError, fromAtomicJson } from './errors.js';
import { findNonJson } from './json-check.js';
import { saveRecord, settledMark, type KnownFile } from './persist.js';
import { AGENTS_DIR, parseRecord, STATE_FILE } from './record.js';
import { registerShutdown, type ShutdownHookOptions } from './shutdown.js';
import type { JsonObject, JsonValue } from './types.js';

/** Options of a {@link BaseAgent}. */
export interface BaseAgentOptions<S extends object = JsonObject> {
  /**
   * The data root: the node's directory holding `agents/`, `mesh/`... A leading `~` is expanded.
   * @default env `PROJECT_DAWN_DATA_ROOT` (`~` expanded), else `~/.project-dawn`
   */
  dataRoot?: string;
  /**
   * The agent's own directory, holding its `state.json` (Python's `BaseAgent(data_dir=...)`).
   * A leading `~` is expanded. When given, it wins over `dataRoot` for where the state lives.
   * (Before 0.1 this was a synonym of `dataRoot`.)
   * @default `<dataRoot>/agents/<agentId>`
   */
  dataDir?: string;
  /**
   * Human-readable name, stored as `name` in the state file.
   * @default the `name` found in the state file when one is loaded, else the agent id
   */
  name?: string;
  /**
   * Load the state on `initialize()` and write it on `saveState()`/`stop()`. With `false`
   * the agent never touches the disk (not even to create its directory).
   * @default true
   */
  persistState?: boolean;
  /**
   * The state before anything is loaded, and when the agent has no state file yet (copied).
   * @default {}
   */
  initialState?: S;
  /**
   * Save automatically, debounced, after changes made through `setState()`, `updateState()`
   * or `markChanged()`. `true` uses the defaults of {@link AutosaveOptions}.
   * @default false
   */
  autosave?: boolean | AutosaveOptions;
  /**
   * fsync each save (see `@dawn/atomic-json`). Without it a power loss may lose the last
   * save, never tear it.
   * @default true
   */
  fsync?: boolean;
  /**
   * How to wait for the state file's cross-process lock.
   * @default { timeoutMs: 10000, staleMs: 10000 }
   */
  lock?: LockOptions;
}

/** Options of {@link BaseAgent.saveState}. */
export interface SaveStateOptions {
  /**
   * Write even if another process or instance saved the file since this instance loaded or
   * last saved it (their save is overwritten). A corrupt file is never overwritten, even so.
   * @default false
   */
  force?: boolean;
}

/** What {@link BaseAgent.getState} returns. */
export interface AgentStateSnapshot<S> {
  agentId: string;
  name: string;
  /** The live state object (the same object as `agent.state`). */
  state: S;
}

/**
 * An agent whose state survives restarts: loaded from `<dataDir>/state.json` (by default
 * `<dataRoot>/agents/<agentId>/state.json`) on `initialize()`, written atomically on
 * `saveState()` and `stop()`, in the Python implementation's file format. It never silently
 * overwrites another writer (another instance, another process, the Python implementation):
 * a save whose file changed since this instance loaded or saved it fails with `CONFLICT`.
 *
 * Subclass it; override {@link BaseAgent.serializeState} / {@link BaseAgent.deserializeState}
 * to store something other than `this.state`, and `static stateVersion` +
 * {@link BaseAgent.migrateState} to evolve the state's shape.
 *
 * @typeParam S - shape of `state`; a JSON object
 * @example
 * ```ts
 * class Greeter extends BaseAgent<{ greetings: number }> {
 *   greet() { this.updateState((s) => { s.greetings++; }); }
 * }
 * const agent = new Greeter('greeter', { initialState: { greetings: 0 }, autosave: { delayMs: 500 } });
 * await agent.start();   // loads ~/.project-dawn/agents/greeter/state.json if it exists
 * agent.greet();         // saved within about 500 ms
 * await agent.stop();    // saved now
 * ```
 */
export class BaseAgent<S extends object = JsonObject> {
  /**
   * Schema version of this class's state, written as `state_version`. Raise it when the
   * state's shape changes and override {@link BaseAgent.migrateState}; older files are
   * migrated on load, newer ones refused (`NEWER_VERSION`). Files without the field are version 1.
   * @default 1
   */
  static stateVersion = 1;

  /** The agent's id: its directory name under `<dataRoot>/agents/`. */
  readonly agentId: string;
  /** The absolute data root (`options.dataRoot`, else env, else `~/.project-dawn`). */
  readonly dataRoot: string;
  /** The agent's own absolute directory: `options.dataDir`, else `<dataRoot>/agents/<agentId>`. */
  readonly dataDir: string;
  /** Absolute path of the state file: `<dataDir>/state.json`. */
  readonly statePath: string;
  /** Whether the agent loads and saves its state (see {@link BaseAgentOptions.persistState}). */
  readonly persistState: boolean;
  /**
   * The state. Mutate it freely; with autosave, use {@link BaseAgent.setState},
   * {@link BaseAgent.updateState} or {@link BaseAgent.markChanged} so the change is noticed.
   */
  state: S;

  #name: string;
  readonly #nameFixed: boolean;
  readonly #explicitDir: boolean;
  readonly #fsync: boolean;
  readonly #lock: LockOptions | undefined;
  readonly #autosave: ResolvedAutosave | undefined;
  #debouncer: Debouncer | undefined;

  /** The file as this instance loaded or last saved it; `undefined`: it expects no file. */
  #known: KnownFile | undefined;
  readonly #initialState: unknown;
  /** Consecutive failed autosaves, the code last reported, and the pending retry. */
  #autosaveFailures = 0;
  #reportedCode: string | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #initializing: Promise<void> | undefined;
  #initialized = false;
  #running = false;
  #stopped = false;
  #changeSeq = 0;
  #savedSeq = 0;
  #shutdownSeq = -1;
  #saveChain: Promise<unknown> = Promise.resolve();
  #queuedSave: { force: boolean; ifChanged: boolean; promise: Promise<void> } | undefined;

  /**
   * @param agentId - a path segment: non-empty, at most 128 characters, not `.`/`..`, no `/`, `\` or NUL
   * @param opts - see {@link BaseAgentOptions}
   * @throws {AgentStateError} `INVALID_AGENT_ID` or `INVALID_OPTIONS`, before anything touches the disk.
   * @example
   * ```ts
   * const agent = new BaseAgent('coordinator', { dataRoot: '/srv/dawn' });
   * ```
   */
  constructor(agentId: string, opts: BaseAgentOptions<S> = {}) {
    assertValidAgentId(agentId);
    if (opts.name !== undefined && typeof opts.name !== 'string') {
      throw new AgentStateError('INVALID_OPTIONS', `Option name must be a string, got ${typeof opts.name}.`, { agentId });
    }
    this.agentId = agentId;
    const where = resolveAgentLocation(agentId, opts);
    this.dataRoot = where.dataRoot;
    this.dataDir = where.dataDir;
    this.#explicitDir = where.explicitDir;
    this.statePath = join(this.dataDir, STATE_FILE);
    this.persistState = opts.persistState ?? true;
    this.#name = opts.name ?? agentId;
    this.#nameFixed = opts.name !== undefined;
    this.#fsync = opts.fsync ?? true;
    this.#lock = opts.lock;
    this.#autosave = this.persistState ? resolveAutosave(opts.autosave) : undefined;
    let initial: unknown = {};
    if (opts.initialState !== undefined) {
      try {
        initial = structuredClone(opts.initialState);
      } catch (err) {
        throw new AgentStateError('INVALID_OPTIONS', `Option initialState cannot be copied: ${(err as Error).message}. Pass a JSON object.`, {
          agentId,
          cause: err,
        });
      }
    }
    this.state = initial as S;
    this.#initialState = initial;
  }

  /** Human-readable name (see {@link BaseAgentOptions.name}). */
  get name(): string {
    return this.#name;
  }

  /**
   * The state file's revision as this instance last loaded or saved it (the number of saves
   * that made it; `0` for a file written by the Python implementation), or `undefined` when it
   * has not seen a file.
   */
  get revision(): number | undefined {
    return this.#known?.revision;
  }

  /** True between `start()` and `stop()`. */
  get isRunning(): boolean {
    return this.#running;
  }

  /** True once `initialize()` has completed. */
  get isInitialized(): boolean {
    return this.#initialized;
  }

  /** True when changes made through `setState()`/`updateState()`/`markChanged()` (or a migration on load) are not saved yet. */
  get hasUnsavedChanges(): boolean {
    return this.#changeSeq !== this.#savedSeq;
  }

  /**
   * Load the persisted state (when `persistState`): read the state file, migrate it if its
   * `state_version` is older than the class's, and hand it to {@link BaseAgent.deserializeState}.
   * Without a state file the state stays as it is (`initialState`). Called once; later calls
   * return the same promise (use {@link BaseAgent.reload} to read the file again). Writes nothing.
   *
   * @throws {AgentStateError} `PARSE` (the file is not JSON: path, line and column in the
   *   message; the file is never overwritten), `INVALID_RECORD`, `NEWER_VERSION`,
   *   `MIGRATION_FAILED`, `IO`.
   * @example
   * ```ts
   * await agent.initialize();
   * console.log(agent.state, agent.revision);
   * ```
   */
  initialize(): Promise<void> {
    if (this.#initialized) return Promise.resolve();
    if (!this.#initializing) {
      this.#initializing = this.#load(false).finally(() => {
        this.#initializing = undefined;
      });
    }
    return this.#initializing;
  }

  /**
   * Read the state file again and replace the state with it, dropping unsaved changes; the
   * way to recover from a `CONFLICT` by taking the other writer's state. When the file no
   * longer exists, the state becomes a copy of `initialState` (a new agent's). Waits for saves
   * in flight and ends an autosave back-off.
   *
   * @throws {AgentStateError} as {@link BaseAgent.initialize}.
   * @example
   * ```ts
   * await agent.reload();
   * ```
   */
  async reload(): Promise<void> {
    this.#debouncer?.cancel();
    this.#endBackoff();
    await this.#saveChain;
    if (this.#initializing) await this.#initializing.catch(() => {});
    this.#initialized = false;
    this.#initializing = this.#load(true).finally(() => {
      this.#initializing = undefined;
    });
    await this.#initializing;
  }

  /**
   * Start the agent: calls {@link BaseAgent.initialize} (loading its state), then marks it running.
   * Subclasses overriding it should call `await super.start()` first.
   *
   * @throws {AgentStateError} as {@link BaseAgent.initialize}.
   * @example
   * ```ts
   * await agent.start();
   * ```
   */
  async start(): Promise<void> {
    await this.initialize();
    this.#stopped = false;
    this.#running = true;
  }

  /**
   * Stop the agent: cancels a pending autosave and saves the state (when `persistState`),
   * unless it is unchanged: when the serialized state, name and `stateVersion` equal what
   * this instance loaded or last saved, nothing is written (no new revision, no conflict
   * check). An agent that has no state file yet writes it. Subclasses overriding it should
   * call `await super.stop()` last.
   *
   * @throws {AgentStateError} as {@link BaseAgent.saveState}; the agent is stopped anyway.
   * @example
   * ```ts
   * await agent.stop();
   * ```
   */
  async stop(): Promise<void> {
    this.#running = false;
    this.#stopped = true;
    this.#debouncer?.cancel();
    this.#endBackoff();
    await this.#enqueueSave(false, true);
  }

  /**
   * Write the state now, atomically and durably (when `persistState`; otherwise a no-op).
   * Under the state file's lock it checks that the file is still the one this instance loaded
   * or last saved (same identity, or else same content; a file deleted or created since counts
   * as changed), then writes `agent_id`, `name`, `state` (from
   * {@link BaseAgent.serializeState}), the unknown fields the file had, and the next
   * `revision`, `updated_at` and `state_version`. Saves of one instance run one at a time;
   * calls made while one is waiting share it. When the promise resolves, the state as it was
   * when the save started is durable.
   *
   * @throws {AgentStateError} `NOT_SERIALIZABLE` (with `keyPath`, before the disk is touched);
   *   `CONFLICT` (another writer changed, created or deleted the file since; nothing written);
   *   `PARSE` / `INVALID_RECORD` (the file on disk is damaged; never overwritten, even with `force`); `LOCKED`,
   *   `LOCK_COMPROMISED`, `IO`. On any failure the previous file is intact.
   * @example
   * ```ts
   * await agent.saveState();
   * await agent.saveState({ force: true }); // after a CONFLICT, to overwrite deliberately
   * ```
   */
  saveState(opts: SaveStateOptions = {}): Promise<void> {
    return this.#enqueueSave(opts.force === true, false);
  }

  /** Queue a save; `ifChanged`: write nothing when the state equals what is on disk as we know it. */
  #enqueueSave(force: boolean, ifChanged: boolean): Promise<void> {
    if (!this.persistState) return Promise.resolve();
    const queued = this.#queuedSave;
    if (queued && queued.force === force) {
      // Not started yet: an unconditional save satisfies a conditional one too.
      if (!ifChanged) queued.ifChanged = false;
      return queued.promise;
    }
    const job: { force: boolean; ifChanged: boolean; promise: Promise<void> } = { force, ifChanged, promise: Promise.resolve() };
    const run = (): Promise<void> => {
      if (this.#queuedSave === job) this.#queuedSave = undefined;
      return this.#saveNow(force, job.ifChanged);
    };
    job.promise = this.#saveChain.then(run, run);
    this.#queuedSave = job;
    this.#saveChain = job.promise.catch(() => {});
    return job.promise;
  }

  /**
   * Save now if there are unsaved changes (cancelling the pending autosave), and wait for
   * saves in flight.
   *
   * @throws {AgentStateError} as {@link BaseAgent.saveState}.
   * @example
   * ```ts
   * agent.setState({ round: 13 });
   * await agent.flush();
   * ```
   */
  async flush(): Promise<void> {
    this.#debouncer?.cancel();
    if (this.persistState && this.hasUnsavedChanges) await this.saveState();
    else await this.#saveChain;
  }

  /**
   * The agent's id, name and (live) state.
   *
   * @example
   * ```ts
   * const { agentId, name, state } = agent.getState();
   * ```
   */
  getState(): AgentStateSnapshot<S> {
    return { agentId: this.agentId, name: this.#name, state: this.state };
  }

  /**
   * Shallow-merge `patch` into the state (a new top-level object) and note the change (autosave).
   *
   * @example
   * ```ts
   * agent.setState({ round: agent.state.round + 1 });
   * ```
   */
  setState(patch: Partial<S>): void {
    this.state = { ...this.state, ...patch };
    this.markChanged();
  }

  /**
   * Change the state with `fn`, which may mutate it in place or return a new state, and note
   * the change (autosave).
   *
   * @example
   * ```ts
   * agent.updateState((s) => { s.memory.push('hello'); });
   * agent.updateState((s) => ({ ...s, round: 0 }));
   * ```
   */
  updateState(fn: (state: S) => S | void): void {
    const next = fn(this.state);
    if (next !== undefined) this.state = next;
    this.markChanged();
  }

  /**
   * Note that the state changed (after mutating `agent.state` directly): it becomes unsaved
   * and, with autosave, a save is scheduled.
   *
   * @example
   * ```ts
   * agent.state.round++;
   * agent.markChanged();
   * ```
   */
  markChanged(): void {
    this.#changeSeq++;
    this.#scheduleAutosave();
  }

  /**
   * Opt in to saving on process shutdown: on SIGINT/SIGTERM (by default) the agent is stopped
   * and its state saved (all hooked agents of the process in parallel), then the signal is
   * raised again without these hooks, so the process ends as the signal would have ended it
   * (exit code 1 instead, with the error on stderr, if a save failed). If your program has its
   * own listener for the signal, it receives the signal again at that point and decides; such
   * programs may prefer to call `stop()` from their own handler instead. On `beforeExit`, running
   * agents and agents with unsaved changes are stopped/saved. A second identical signal while
   * saving ends the process at once. Nothing is installed unless you call this.
   *
   * @returns a function that removes this agent's hooks (the process listeners go with the last agent).
   * @example
   * ```ts
   * const uninstall = agent.installShutdownHooks();
   * // ...
   * uninstall();
   * ```
   */
  installShutdownHooks(opts: ShutdownHookOptions = {}): () => void {
    return registerShutdown(
      {
        label: `agent ${JSON.stringify(this.agentId)}`,
        shutdown: async () => {
          if (!this.#running && !this.hasUnsavedChanges) return;
          if (!this.#running && this.#shutdownSeq === this.#changeSeq) return; // already tried this state
          this.#shutdownSeq = this.#changeSeq;
          await this.stop();
        },
      },
      opts,
    );
  }

  /**
   * What is stored as `state` in the file. Override to persist something other than
   * `this.state`; the result must be JSON (checked before anything is written).
   *
   * @default returns `this.state`
   * @example
   * ```ts
   * protected override serializeState() { return { seen: [...this.seen] }; }
   * ```
   */
  protected serializeState(): JsonValue {
    return this.state as unknown as JsonValue;
  }

  /**
   * Take the loaded (and migrated) `state` of the file. Override together with
   * {@link BaseAgent.serializeState}.
   *
   * @default sets `this.state` to `data`, which must be an object
   * @throws {AgentStateError} `INVALID_RECORD` (default) when `data` is not an object.
   * @example
   * ```ts
   * protected override deserializeState(data: JsonValue) { this.seen = new Set((data as any).seen); }
   * ```
   */
  protected deserializeState(data: JsonValue): void {
    if (typeof data !== 'object' || data === null || Array.isArray(data)) {
      throw new AgentStateError(
        'INVALID_RECORD',
        `${this.statePath}: its state is ${Array.isArray(data) ? 'an array' : data === null ? 'null' : typeof data}, not an object. ` +
          `It was left untouched; fix the file, or override deserializeState() to accept it.`,
        { path: this.statePath, agentId: this.agentId },
      );
    }
    this.state = data as unknown as S;
  }

  /**
   * Upgrade a stored state written with `state_version` `fromVersion` (older than the class's
   * `stateVersion`) to the current shape. Runs on load, before
   * {@link BaseAgent.deserializeState}; the upgraded state is written by the next save.
   *
   * @default throws `MIGRATION_FAILED`: a class that raises `stateVersion` must override it
   * @example
   * ```ts
   * class Planner extends BaseAgent<{ tasks: Task[] }> {
   *   static override stateVersion = 2;
   *   protected override migrateState(old: any, from: number) {
   *     return from === 1 ? { tasks: Object.values(old.tasks) } : old; // v1 kept tasks in an object
   *   }
   * }
   * ```
   */
  protected migrateState(old: JsonValue, fromVersion: number): JsonValue {
    void old;
    throw new AgentStateError(
      'MIGRATION_FAILED',
      `${this.statePath} holds state_version ${fromVersion}, but ${this.constructor.name} has stateVersion ` +
        `${this.#stateVersion()} and does not override migrateState(). The file was left untouched; override migrateState().`,
      { path: this.statePath, agentId: this.agentId },
    );
  }

  #stateVersion(): number {
    const v = (this.constructor as typeof BaseAgent).stateVersion;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw new AgentStateError(
        'INVALID_OPTIONS',
        `${this.constructor.name}.stateVersion must be a positive integer, got ${String(v)}.`,
        { agentId: this.agentId },
      );
    }
    return v;
  }

  async #load(fromReload: boolean): Promise<void> {
    if (!this.persistState) {
      this.#initialized = true;
      return;
    }
    const version = this.#stateVersion();
    let raw: unknown;
    let mark;
    let markProves = false;
    try {
      // The mark is taken before the read: a change after it shows in the mark or the content.
      mark = await fileMark(this.statePath);
      if (mark !== undefined) markProves = settledMark(mark);
      raw = await readJson(this.statePath);
    } catch (err) {
      const e = fromAtomicJson(err, this.agentId);
      if (AgentStateError.is(e) && e.code === 'NOT_FOUND') {
        await this.#refuseDataRootAsDataDir();
        this.#known = undefined;
        // reload() takes the file as it is: no file means a new agent's state.
        if (fromReload) this.state = structuredClone(this.#initialState) as S;
        this.#savedSeq = this.#changeSeq;
        this.#initialized = true;
        return;
      }
      throw e;
    }
    const rec = parseRecord(raw, this.statePath, this.agentId);
    if (rec.stateVersion > version) {
      throw new AgentStateError(
        'NEWER_VERSION',
        `${this.statePath} holds state_version ${rec.stateVersion}, newer than the ${version} that ${this.constructor.name} understands ` +
          `(written by a newer program). It was left untouched; upgrade this program.`,
        { path: this.statePath, agentId: this.agentId },
      );
    }
    // Digest before the state object is handed out (and mutated).
    const stateDigest = valueDigest(rec.state);
    const digest = stateDigest === undefined ? undefined : recordDigest(raw, stateDigest);
    let data = rec.state;
    const migrated = rec.stateVersion < version;
    if (migrated) {
      try {
        data = this.migrateState(data, rec.stateVersion);
      } catch (err) {
        if (AgentStateError.is(err)) throw err;
        throw new AgentStateError(
          'MIGRATION_FAILED',
          `Cannot migrate ${this.statePath} from state_version ${rec.stateVersion} to ${version}: ` +
            `${err instanceof Error ? err.message : String(err)}. The file was left untouched; fix migrateState().`,
          { path: this.statePath, agentId: this.agentId, cause: err },
        );
      }
    }
    this.deserializeState(data);
    if (!this.#nameFixed) this.#name = rec.name;
    this.#known = {
      mark,
      markProves,
      digest,
      revision: rec.revision,
      extra: rec.extra,
      stateDigest,
      name: rec.name,
      stateVersion: rec.stateVersion,
    };
    this.#initialized = true;
    this.#savedSeq = this.#changeSeq;
    if (migrated) this.markChanged();
  }

  /**
   * `dataDir` was a synonym of `dataRoot` before 0.1. A program still passing its data root
   * as `dataDir` would find no `<dataDir>/state.json`, start empty and later write a second
   * state file: refuse that loudly when the old layout is right there.
   */
  async #refuseDataRootAsDataDir(): Promise<void> {
    if (!this.#explicitDir) return;
    const old = join(this.dataDir, AGENTS_DIR, this.agentId, STATE_FILE);
    const found = await stat(old).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!found) return;
    throw new AgentStateError(
      'INVALID_OPTIONS',
      `Agent ${JSON.stringify(this.agentId)} has no ${this.statePath}, but ${old} exists: dataDir looks like a data root. ` +
        `Since @dawn/agent-state 0.1, dataDir is the agent's own directory (<dataRoot>/agents/<agentId>). ` +
        `Pass { dataRoot: ${JSON.stringify(this.dataDir)} } instead. Nothing was read or written.`,
      { agentId: this.agentId, path: old },
    );
  }

  async #saveNow(force: boolean, ifChanged: boolean): Promise<void> {
    const seq = this.#changeSeq;
    const data = this.serializeState();
    const known = this.#known;
    const stateVersion = this.#stateVersion();
    const same = ifChanged && known !== undefined && known.name === this.#name && known.stateVersion === stateVersion;
    if (same && (await this.#unchanged(data, known))) {
      this.#savedSeq = seq; // what the file holds already: no new revision
      if (this.#autosaveFailures > 0) this.#endBackoff();
      return;
    }
    // Until this instance has seen the file, its directory may not exist: check here, so a
    // bad state creates nothing at all. Afterwards the writer's own check (under the lock,
    // before any temp file exists) refuses it just as well, and one walk of a big state is saved.
    const bad = known === undefined ? findNonJson(data, '$.state') : undefined;
    if (bad) {
      throw new AgentStateError(
        'NOT_SERIALIZABLE',
        `Cannot save agent ${JSON.stringify(this.agentId)}: the value at ${bad.keyPath} is ${bad.what}, which JSON cannot represent. ` +
          `Nothing was written (${this.statePath} is unchanged); store a JSON value (string, number, boolean, null, array, plain object) instead.`,
        { path: this.statePath, agentId: this.agentId, keyPath: bad.keyPath },
      );
    }
    const result = await saveRecord({
      path: this.statePath,
      agentId: this.agentId,
      name: this.#name,
      state: data,
      stateVersion,
      known,
      force,
      fsync: this.#fsync,
      lock: this.#lock,
    });
    this.#known = result.known;
    this.#savedSeq = seq;
    if (this.#autosaveFailures > 0) {
      this.#endBackoff();
      if (this.hasUnsavedChanges) this.#scheduleAutosave();
    }
  }

  /**
   * Whether `data` is the state of the file as this instance loaded or last saved it, by
   * content (and JSON, so that a bad state still fails loudly). After our own save the digest
   * is not kept: the file is read back while its identity still proves it is ours.
   */
  async #unchanged(data: JsonValue, known: KnownFile): Promise<boolean> {
    let saved = known.stateDigest;
    if (saved === undefined) {
      if (known.mark === undefined) return false;
      try {
        const now = await fileMark(this.statePath);
        if (now === undefined || !sameFileMark(now, known.mark)) return false; // changed: let the save decide
        saved = valueDigest(parseRecord(await readJson(this.statePath), this.statePath, this.agentId).state);
      } catch {
        return false; // the save reports what is wrong
      }
    }
    return saved !== undefined && findNonJson(data, '$.state') === undefined && valueDigest(data) === saved;
  }

  #scheduleAutosave(): void {
    const auto = this.#autosave;
    if (!auto || !this.#initialized || this.#stopped) return;
    if (this.#retryTimer !== undefined) return; // backing off: the retry saves the latest state
    this.#debouncer ??= new Debouncer(auto.delayMs, auto.maxDelayMs, () => this.#autosaveNow());
    this.#debouncer.poke();
  }

  #autosaveNow(): void {
    if (!this.hasUnsavedChanges || this.#stopped) return;
    this.saveState().catch((err: unknown) => this.#autosaveFailed(err));
  }

  /**
   * A failed autosave: report it once per streak of failures (again only when the error code
   * changes), and retry after a delay that doubles with each failure, up to
   * `maxRetryDelayMs`, instead of on every change.
   */
  #autosaveFailed(err: unknown): void {
    const auto = this.#autosave;
    if (!auto || this.#stopped) return;
    this.#autosaveFailures++;
    const code = AgentStateError.is(err) ? err.code : 'UNKNOWN';
    const retryMs = Math.min(Math.max(auto.delayMs, 1000) * 2 ** Math.min(this.#autosaveFailures - 1, 30), auto.maxRetryDelayMs);
    if (this.#reportedCode !== code) {
      this.#reportedCode = code;
      if (auto.onError) auto.onError(err);
      else process.emitWarning(autosaveWarning(this.agentId, err, auto.maxRetryDelayMs));
    }
    this.#debouncer?.cancel();
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#autosaveNow();
    }, retryMs);
    // A retry must not keep the process alive forever (a CONFLICT never heals by itself).
    this.#retryTimer.unref();
  }

  #endBackoff(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#autosaveFailures = 0;
    this.#reportedCode = undefined;
  }
}

/**
 * `code` of the process warning emitted for a failed autosave when no `autosave.onError` is
 * given (its `name` is `DawnAgentAutosaveWarning`, its `cause` the error). Emitted once per
 * run of failures.
 *
 * @example
 * ```ts
 * process.on('warning', (w) => {
 *   if ((w as { code?: string }).code === AUTOSAVE_WARNING_CODE) alert(w.cause);
 * });
 * ```
 */
export const AUTOSAVE_WARNING_CODE = 'DAWN_AGENT_AUTOSAVE';

function autosaveWarning(agentId: string, err: unknown, maxRetryDelayMs: number): Error {
  const code = AgentStateError.is(err) ? err.code : undefined;
  const what = err instanceof Error ? err.message : String(err);
  const warning = new Error(
    `Autosave of agent ${JSON.stringify(agentId)} failed${code === undefined ? '' : ` (${code})`}: ${what} ` +
      `The changes stay unsaved. Autosave retries with a growing delay (at most ${maxRetryDelayMs} ms) and reports again only ` +
      `if the failure changes; saveState(), flush() and stop() try at once.`,
    { cause: err },
  );
  warning.name = 'DawnAgentAutosaveWarning';
  return Object.assign(warning, { code: AUTOSAVE_WARNING_CODE });
}
