import { dirname, basename, join } from 'node:path';
import { AtomicJsonError, ioError } from './errors.js';
import { fsl } from './fs-layer.js';
import { readJson, updateJson, withLock, writeJson } from './operations.js';
import type { WriteOptions } from './queue.js';
import { parseJson } from './parse.js';
import { serialize } from './serialize.js';

/**
 * Options of a {@link JsonFile}: the {@link WriteOptions} (used by `write` and `update`) plus
 * the document's default, validation, schema version and corrupt-file policy.
 *
 * @example
 * ```ts
 * const opts: JsonFileOptions<Settings> = { default: () => ({ version: 1, theme: 'dark' }), version: 1, mode: 0o600 };
 * ```
 */
export interface JsonFileOptions<T> extends WriteOptions {
  /**
   * Value used when the file does not exist (a function is called each time). Without it,
   * `read()` of a missing file throws `NOT_FOUND`. Never written by `read()`.
   * @default undefined
   */
  default?: T | (() => T);
  /**
   * Check a value read or about to be written: a function, or a [Standard Schema](https://standardschema.dev)
   * (zod, valibot, arktype... — the document type is then inferred from it). A function returns
   * `true`/`undefined` to accept, `false` or a string (the reason) to reject with `INVALID`, or
   * throws. A schema's issues become the `INVALID` message (with their paths), and its output value
   * (defaults, transforms) is the document. Runs on what `read()` returns (after `migrate`), on
   * `write(value)`, and on `update`'s input and result.
   * @default undefined (every JSON value is accepted)
   */
  validate?: ((value: unknown) => boolean | string | void) | StandardSchemaV1<unknown, T>;
  /**
   * Current schema version, stored in the document's `versionKey` field (documents must be
   * objects). Older documents are passed through `migrate` on read; newer ones are refused
   * with `INVALID` (written by a newer program). `read()` does not write the migrated document
   * back; the next `write`/`update` does (have `migrate` set the version field).
   * @default undefined (no versioning)
   */
  version?: number;
  /** Field holding the version. @default 'version' */
  versionKey?: string;
  /**
   * Upgrade a document of `fromVersion` (0 when the field is missing) to `version`.
   * @default undefined (an older document is refused with `INVALID`)
   */
  migrate?: (value: any, fromVersion: number) => T;
  /**
   * What to do with a file that is not valid JSON. `'throw'` (default) fails with `PARSE`
   * and leaves it alone. `'quarantine'` renames it to `<file>.corrupt-<unix ms>` under the lock
   * and continues with the default value.
   * @default 'throw'
   */
  onCorrupt?: 'throw' | 'quarantine';
}

/**
 * The [Standard Schema](https://standardschema.dev) interface (v1) that zod, valibot, arktype and
 * others implement, declared here so no schema library is a dependency.
 *
 * @example
 * ```ts
 * const positive: StandardSchemaV1<unknown, number> = {
 *   '~standard': { version: 1, vendor: 'mine', validate: (v) => (typeof v === 'number' && v > 0 ? { value: v } : { issues: [{ message: 'not positive' }] }) },
 * };
 * ```
 */
export interface StandardSchemaV1<Input = unknown, Output = Input> {
  readonly '~standard': {
    readonly version: 1;
    readonly vendor: string;
    readonly validate: (value: unknown) => StandardSchemaResult<Output> | Promise<StandardSchemaResult<Output>>;
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** What a {@link StandardSchemaV1} validation returns: the output value, or issues. */
export type StandardSchemaResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | {
      readonly issues: ReadonlyArray<{
        readonly message: string;
        readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
      }>;
    };

function isStandardSchema(v: unknown): v is StandardSchemaV1<unknown, unknown> {
  return typeof v === 'object' && v !== null && '~standard' in v;
}

function issuePath(path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined): string {
  let out = '$';
  for (const seg of path ?? []) {
    const key = typeof seg === 'object' ? seg.key : seg;
    out += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  }
  return out;
}

/**
 * One JSON document on disk with defaults, validation and schema versions.
 *
 * @example
 * ```ts
 * const settings = new JsonFile('/data/settings.json', {
 *   default: { version: 2, theme: 'dark' },
 *   version: 2,
 *   migrate: (old, from) => ({ ...old, theme: old.colour ?? 'dark', version: 2 }),
 *   validate: (v) => typeof (v as any).theme === 'string' || 'theme must be a string',
 * });
 * const s = await settings.read();
 * await settings.update((s) => ({ ...s, theme: 'light' }));
 * ```
 */
export class JsonFile<T> {
  /** The file, as given. */
  readonly path: string;
  readonly options: JsonFileOptions<T>;

  /** Nothing is read or checked until the first call. */
  constructor(path: string, options: JsonFileOptions<T> = {}) {
    this.path = path;
    this.options = options;
  }

  /**
   * A fresh copy of the default value, or `undefined` when none was configured.
   * @example
   * ```ts
   * const blank = settings.defaultValue();
   * ```
   */
  defaultValue(): T | undefined {
    const d = this.options.default;
    if (d === undefined) return undefined;
    const v = typeof d === 'function' ? (d as () => T)() : d;
    return parseJson(serialize(v, this.path, 0), this.path) as T;
  }

  private async check(value: unknown, when: string): Promise<T> {
    const validate = this.options.validate;
    if (isStandardSchema(validate)) {
      const result = await validate['~standard'].validate(value);
      if (result.issues) {
        const shown = result.issues.slice(0, 5).map((i) => `${issuePath(i.path)}: ${i.message}`).join('; ');
        throw new AtomicJsonError(
          'INVALID',
          this.path,
          `Invalid document ${when} ${this.path}: ${shown}${result.issues.length > 5 ? ` (and ${result.issues.length - 5} more)` : ''}. ` +
            `Nothing was written; fix the value (or the file) and retry.`,
          { keyPath: issuePath(result.issues[0]?.path) },
        );
      }
      return result.value as T;
    }
    const verdict = validate?.(value);
    if (verdict === false || typeof verdict === 'string') {
      throw new AtomicJsonError(
        'INVALID',
        this.path,
        `Invalid document ${when} ${this.path}${typeof verdict === 'string' ? `: ${verdict}` : ''}. ` +
          `Nothing was written; fix the value (or the file) and retry.`,
      );
    }
    return value as T;
  }

  private upgrade(value: unknown): T {
    const { version, migrate } = this.options;
    if (version === undefined) return value as T;
    const key = this.options.versionKey ?? 'version';
    const raw = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
    const from = typeof raw === 'number' ? raw : 0;
    if (from > version) {
      throw new AtomicJsonError(
        'INVALID',
        this.path,
        `${this.path} has ${key} ${from}, newer than the ${version} this program understands. ` +
          `It was left untouched; upgrade the program.`,
      );
    }
    if (from < version) {
      if (!migrate) {
        throw new AtomicJsonError(
          'INVALID',
          this.path,
          `${this.path} has ${key} ${from} but ${version} is expected and no migrate() was given. It was left untouched.`,
        );
      }
      return migrate(value, from);
    }
    return value as T;
  }

  /**
   * Under the lock, move the file aside to `<file>.corrupt-<unix ms>` if it is (still) not
   * valid JSON. Returns where it went, or `undefined` when another process fixed or removed it
   * meanwhile.
   */
  private async quarantine(): Promise<string | undefined> {
    return withLock(
      this.path,
      async () => {
        try {
          await readJson(this.path);
          return undefined; // valid again: someone repaired it
        } catch (err) {
          if (!AtomicJsonError.is(err) || (err.code !== 'PARSE' && err.code !== 'NOT_FOUND')) throw err;
          if (err.code === 'NOT_FOUND') return undefined;
        }
        const target = join(dirname(this.path), `${basename(this.path)}.corrupt-${Date.now()}`);
        try {
          await fsl().rename(this.path, target);
        } catch (err) {
          throw ioError(this.path, 'move aside (quarantine) the corrupt file', err);
        }
        return target;
      },
      lockOf(this.options),
    );
  }

  /**
   * Read, migrate and validate the document; the default when the file does not exist.
   * With `onCorrupt: 'quarantine'`, a corrupt file is moved aside first.
   * @throws {AtomicJsonError} `NOT_FOUND` (missing, no default), `PARSE` (unless quarantining),
   *   `INVALID` (validation failed, newer version, or older version without `migrate`), `IO`.
   * @example
   * ```ts
   * const s = await settings.read();
   * ```
   */
  async read(): Promise<T> {
    let value: unknown;
    let movedTo: string | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        value = await readJson(this.path);
        break;
      } catch (err) {
        if (!AtomicJsonError.is(err)) throw err;
        const fallback = this.defaultValue();
        if (err.code === 'NOT_FOUND' && fallback !== undefined) return fallback;
        if (err.code === 'NOT_FOUND' && movedTo !== undefined) {
          throw new AtomicJsonError(
            'NOT_FOUND',
            this.path,
            `${this.path} was corrupt and was moved aside to ${movedTo}; no default is configured. Repair that file and move it back, or configure a default.`,
            { cause: err },
          );
        }
        if (err.code === 'PARSE' && this.options.onCorrupt === 'quarantine' && attempt < 2) {
          movedTo = (await this.quarantine()) ?? movedTo;
          continue; // read again: the default if it was moved aside, the repaired file otherwise
        }
        throw err;
      }
    }
    return this.check(this.upgrade(value), 'read from');
  }

  /**
   * Validate and write the document (see `writeJson`).
   * @throws {AtomicJsonError} `INVALID` before anything is written; the codes of `writeJson`.
   * @example
   * ```ts
   * await settings.write({ version: 2, theme: 'light' });
   * ```
   */
  async write(value: T): Promise<void> {
    const checked = await this.check(value, 'to write to');
    await writeJson(this.path, checked, writeOptionsOf(this.options));
  }

  /**
   * Atomic read-modify-write (see `updateJson`): `fn` gets the migrated, validated current
   * document or the default; its result is validated before it is written.
   * @throws {AtomicJsonError} `NOT_FOUND` (missing, no default), `PARSE` (unless quarantining),
   *   `INVALID`, `NOT_SERIALIZABLE`, `LOCKED`, `LOCK_COMPROMISED`, `IO`; or what `fn` throws.
   * @example
   * ```ts
   * await settings.update((s) => ({ ...s, theme: 'light' }));
   * ```
   */
  async update(fn: (current: T) => T | Promise<T>): Promise<T> {
    const run = () =>
      updateJson<T>(
        this.path,
        async (current) => {
          const base = current === undefined ? this.defaultValue() : await this.check(this.upgrade(current), 'read from');
          if (base === undefined) {
            throw new AtomicJsonError('NOT_FOUND', this.path, `Cannot update ${this.path}: it does not exist and no default is configured.`);
          }
          return this.check(await fn(base), 'to write to');
        },
        writeOptionsOf(this.options),
      );
    try {
      return await run();
    } catch (err) {
      if (AtomicJsonError.is(err) && err.code === 'PARSE' && this.options.onCorrupt === 'quarantine') {
        await this.quarantine();
        return run();
      }
      throw err;
    }
  }
}

function writeOptionsOf(opts: WriteOptions): WriteOptions {
  const { lock, fsync, spaces, mode } = opts;
  return { lock, fsync, spaces, mode };
}

function lockOf(opts: WriteOptions) {
  return typeof opts.lock === 'object' ? opts.lock : {};
}
