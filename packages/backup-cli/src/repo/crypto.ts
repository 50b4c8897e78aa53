import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt as scryptCb, timingSafeEqual, type DecipherGCM, type ScryptOptions } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { BackupError } from '../errors.js';
import { DamagedError } from './format.js';

/** How an encrypted repository derives its keys (recorded in `config.json`). */
export interface KdfParams {
  name: 'scrypt';
  /** CPU/memory cost (a power of two). */
  N: number;
  r: number;
  p: number;
  /** Base64, 32 random bytes. */
  salt: string;
}

/** The `encryption` field of an encrypted repository's `config.json`. */
export interface EncryptionConfig {
  algorithm: 'aes-256-gcm';
  names: 'hmac-sha256';
  kdf: KdfParams;
  /** Base64 of an AES-256-GCM sealed constant: tells a wrong password from a damaged object. */
  key_check: string;
}

/** scrypt N=2^17, r=8, p=1: 128 MiB of memory and about half a second per derivation. */
export const DEFAULT_KDF = { N: 2 ** 17, r: 8, p: 1 } as const;
export const PASSWORD_ENV = 'DAWN_BACKUP_PASSWORD';
const ENC_MAGIC = Buffer.from('DAWNENC1', 'latin1');
const CHECK_TEXT = Buffer.from('dawn-backup key check v1');

/** The two keys of an encrypted repository: one seals contents, one names objects. */
export interface RepoKeys {
  enc: Buffer;
  mac: Buffer;
}

function scrypt(password: string, salt: Buffer, p: { N: number; r: number; p: number }): Promise<Buffer> {
  const opts: ScryptOptions = { N: p.N, r: p.r, p: p.p, maxmem: 128 * p.N * p.r * 2 + 64 * 1024 * 1024 };
  return new Promise((resolve, reject) => scryptCb(password.normalize('NFC'), salt, 64, opts, (err, key) => (err ? reject(err) : resolve(key))));
}

/** AES-256-GCM: magic, 12-byte nonce, ciphertext, 16-byte tag; `aad` binds it to its key name. */
export function seal(keys: RepoKeys, plain: Buffer, aad: string): Buffer {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', keys.enc, iv);
  c.setAAD(Buffer.from(aad));
  const body = Buffer.concat([c.update(plain), c.final()]);
  return Buffer.concat([ENC_MAGIC, iv, body, c.getAuthTag()]);
}

/** The plaintext of a sealed buffer; `undefined` when it is damaged or not sealed with these keys. */
export function open(keys: RepoKeys, sealed: Buffer, aad: string): Buffer | undefined {
  if (sealed.length < ENC_MAGIC.length + 12 + 16 || !sealed.subarray(0, ENC_MAGIC.length).equals(ENC_MAGIC)) return undefined;
  const iv = sealed.subarray(ENC_MAGIC.length, ENC_MAGIC.length + 12);
  const tag = sealed.subarray(sealed.length - 16);
  try {
    const d = createDecipheriv('aes-256-gcm', keys.enc, iv);
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(tag);
    return Buffer.concat([d.update(sealed.subarray(ENC_MAGIC.length + 12, sealed.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}

/** {@link seal} as a stream (the tag follows the last ciphertext byte). */
export async function* sealStream(keys: RepoKeys, src: AsyncIterable<Buffer>, aad: string): AsyncGenerator<Buffer> {
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', keys.enc, iv);
  c.setAAD(Buffer.from(aad));
  yield Buffer.concat([ENC_MAGIC, iv]);
  for await (const chunk of src) {
    const out = c.update(chunk);
    if (out.length > 0) yield out;
  }
  yield Buffer.concat([c.final(), c.getAuthTag()]);
}

/**
 * {@link open} as a stream. The plaintext is released before the tag is checked at the end: a
 * consumer must discard what it got when this throws {@link DamagedError}.
 */
export async function* openStream(keys: RepoKeys, src: AsyncIterable<Buffer>, aad: string): AsyncGenerator<Buffer> {
  const hl = ENC_MAGIC.length + 12;
  let pending: Buffer = Buffer.alloc(0);
  let d: DecipherGCM | undefined;
  for await (const chunk of src) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    if (!d) {
      if (pending.length < hl) continue;
      if (!pending.subarray(0, ENC_MAGIC.length).equals(ENC_MAGIC)) throw new DamagedError('not sealed');
      d = createDecipheriv('aes-256-gcm', keys.enc, pending.subarray(ENC_MAGIC.length, hl)) as DecipherGCM;
      d.setAAD(Buffer.from(aad));
      pending = pending.subarray(hl);
    }
    if (pending.length > 16) {
      const out = d.update(pending.subarray(0, pending.length - 16));
      pending = pending.subarray(pending.length - 16);
      if (out.length > 0) yield out;
    }
  }
  if (!d || pending.length !== 16) throw new DamagedError('truncated sealed object');
  d.setAuthTag(pending);
  let last: Buffer;
  try {
    last = d.final();
  } catch {
    throw new DamagedError('authentication failed (damaged, or not sealed with this key)');
  }
  if (last.length > 0) yield last;
}

/** The object name of a content: HMAC-SHA256 of its sha256, so names reveal no plaintext hash. */
export const macName = (keys: RepoKeys, sha256hex: string): string => createHmac('sha256', keys.mac).update(sha256hex).digest('hex');

/** New keys and the config that lets the same password find them again. */
export async function newEncryption(password: string, kdf: { N: number; r: number; p: number } = DEFAULT_KDF): Promise<{ keys: RepoKeys; config: EncryptionConfig }> {
  const salt = randomBytes(32);
  const raw = await scrypt(password, salt, kdf);
  const keys = { enc: raw.subarray(0, 32), mac: raw.subarray(32) };
  return {
    keys,
    config: { algorithm: 'aes-256-gcm', names: 'hmac-sha256', kdf: { name: 'scrypt', ...kdf, salt: salt.toString('base64') }, key_check: seal(keys, CHECK_TEXT, 'key-check').toString('base64') },
  };
}

/**
 * The costs a repository's config may ask for. config.json is not authenticated: a damaged or
 * hostile one must not make a command run scrypt for days (p) or allocate terabytes (r).
 */
export const KDF_BOUNDS = { maxN: 2 ** 22, maxR: 32, maxP: 16, maxMemory: 2 ** 32 } as const;

function kdfWithinBounds(k: { N: number; r: number; p: number }): boolean {
  if (![k.N, k.r, k.p].every((x) => Number.isSafeInteger(x) && x > 0)) return false;
  return k.N <= KDF_BOUNDS.maxN && k.r <= KDF_BOUNDS.maxR && k.p <= KDF_BOUNDS.maxP && 128 * k.N * k.r <= KDF_BOUNDS.maxMemory;
}

/** Keys derived in this process (one derivation per command, however often the repository is opened). */
const derived = new Map<string, Buffer>();

/** The keys of an encrypted repository; `WRONG_PASSWORD` when the password does not open it. */
export async function unlock(config: EncryptionConfig, password: string, url: string): Promise<RepoKeys> {
  const k = config.kdf;
  if (config.algorithm !== 'aes-256-gcm' || k?.name !== 'scrypt' || !kdfWithinBounds(k) || typeof k.salt !== 'string' || typeof config.key_check !== 'string') {
    throw new BackupError('REPO_INVALID', `${url}: unknown or unsafe encryption settings in config.json; use a newer dawn-backup.`, { path: url });
  }
  const memo = `${k.N}:${k.r}:${k.p}:${k.salt}:${createHmac('sha256', 'dawn-memo').update(password).digest('hex')}`;
  const raw = derived.get(memo) ?? (await scrypt(password, Buffer.from(k.salt, 'base64'), k));
  derived.set(memo, raw);
  const keys = { enc: raw.subarray(0, 32), mac: raw.subarray(32) };
  const check = open(keys, Buffer.from(config.key_check, 'base64'), 'key-check');
  if (!check || check.length !== CHECK_TEXT.length || !timingSafeEqual(check, CHECK_TEXT)) {
    throw new BackupError('WRONG_PASSWORD', `Wrong password for the encrypted repository ${url}: nothing was read or written. Check ${PASSWORD_ENV} or --password-file.`, { path: url });
  }
  return keys;
}

/** The password: `--password-file` (first line), else `$DAWN_BACKUP_PASSWORD`, else `ask` (a prompt on a terminal). */
export async function readPassword(opts: {
  passwordFile?: string | undefined;
  env: Readonly<Record<string, string | undefined>>;
  url: string;
  ask?: (() => Promise<string>) | undefined;
}): Promise<string> {
  if (opts.passwordFile !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.passwordFile, 'utf8');
    } catch (err) {
      throw new BackupError('IO', `Cannot read the password file ${opts.passwordFile}: ${(err as Error).message}.`, { path: opts.passwordFile, cause: err });
    }
    const line = text.split(/\r?\n/)[0] ?? '';
    if (line === '') throw new BackupError('INVALID_OPTION', `The password file ${opts.passwordFile} is empty.`);
    return line;
  }
  const env = opts.env[PASSWORD_ENV];
  if (env !== undefined && env !== '') return env;
  if (opts.ask) return opts.ask();
  throw new BackupError('WRONG_PASSWORD', `${opts.url} is encrypted (or --encrypt was given): set ${PASSWORD_ENV}, give --password-file FILE, or run on a terminal to be asked.`, { path: opts.url });
}
