import { isUtf8 } from 'node:buffer';
import { MANIFEST_FILE, METADATA_FILE } from './paths.js';

/**
 * Names are bytes. A path relative to a tree root, `/`-separated: a `string` when its bytes are
 * valid UTF-8 (the common case, and the fast path), else a `Buffer` of the raw bytes. Never a
 * `Buffer` holding valid UTF-8 (see {@link relFromBytes}), so a path has one form and one key.
 */
export type Rel = string | Buffer;

const SLASH = 0x2f;

/** The canonical {@link Rel} of some bytes. */
export function relFromBytes(bytes: Buffer): Rel {
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes;
}

/** The bytes of a path. */
export const relBytes = (rel: Rel): Buffer => (typeof rel === 'string' ? Buffer.from(rel, 'utf8') : rel);

/** Readable text of a path (invalid bytes shown as U+FFFD): for messages and the manifest's `path`. */
export const relText = (rel: Rel): string => (typeof rel === 'string' ? rel : rel.toString('utf8'));

/** A string identifying a path exactly (a NUL never occurs in a path, so the two forms never collide). */
export const relKey = (rel: Rel): string => (typeof rel === 'string' ? rel : `\0${rel.toString('base64')}`);

/** `root/rel`, as a string when possible, else as bytes (Node's fs accepts both). */
export function joinRel(root: string, rel: Rel): string | Buffer {
  if (typeof rel === 'string') return rel === '' ? root : `${root}/${rel}`;
  return Buffer.concat([Buffer.from(`${root}/`, 'utf8'), rel]);
}

/** `parent/name` (`name` alone when `parent` is the root, `''`). */
export function childRel(parent: Rel, name: string | Buffer): Rel {
  if (typeof parent === 'string' && typeof name === 'string') return parent === '' ? name : `${parent}/${name}`;
  const n = typeof name === 'string' ? Buffer.from(name, 'utf8') : name;
  if (parent === '') return relFromBytes(n);
  return relFromBytes(Buffer.concat([relBytes(parent), Buffer.from('/'), n]));
}

/** The parent of a path, `undefined` for a top-level name. */
export function parentRel(rel: Rel): Rel | undefined {
  if (typeof rel === 'string') {
    const i = rel.lastIndexOf('/');
    return i < 0 ? undefined : rel.slice(0, i);
  }
  const i = rel.lastIndexOf(SLASH);
  return i < 0 ? undefined : relFromBytes(rel.subarray(0, i));
}

/** Last segment of a path, as text. */
export function baseText(rel: Rel): string {
  const t = relText(rel);
  return t.slice(t.lastIndexOf('/') + 1);
}

/** Order of paths: by bytes (a directory sorts before everything it holds). */
export function compareRel(a: Rel, b: Rel): number {
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  return Buffer.compare(relBytes(a), relBytes(b));
}

// --- the manifest's form of a path ------------------------------------------------------------

/** The manifest fields of a path: `path` (readable) and, for bytes that are not UTF-8, `path_b64`. */
export function manifestPathFields(rel: Rel): { path: string; path_b64?: string } {
  return typeof rel === 'string' ? { path: rel } : { path: relText(rel), path_b64: rel.toString('base64') };
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Strict base64 decode: `undefined` unless `text` is exactly the encoding of some bytes. */
export function decodeB64(text: unknown): Buffer | undefined {
  if (typeof text !== 'string' || text.length % 4 !== 0 || !B64.test(text)) return undefined;
  const b = Buffer.from(text, 'base64');
  return b.toString('base64') === text ? b : undefined;
}

/**
 * The exact path of a manifest entry: the bytes of `path_b64` when present (entries whose name
 * is not valid UTF-8), else `path`. `undefined` when `path_b64` is malformed. Manifests of older
 * versions (no `path_b64`) read as before.
 */
export function entryRel(e: { path: string; path_b64?: unknown }): Rel | undefined {
  if (e.path_b64 === undefined) return e.path;
  const b = decodeB64(e.path_b64);
  return b === undefined || b.length === 0 ? undefined : relFromBytes(b);
}

/** The exact target of a symlink entry (`target_b64` when the target is not valid UTF-8). */
export function entryTarget(e: { target: string; target_b64?: unknown }): string | Buffer | undefined {
  if (e.target_b64 === undefined) return e.target;
  const b = decodeB64(e.target_b64);
  return b === undefined || b.length === 0 ? undefined : relFromBytes(b);
}

/** The manifest fields of a symlink target. */
export function manifestTargetFields(target: string | Buffer): { target: string; target_b64?: string } {
  return typeof target === 'string' ? { target } : { target: target.toString('utf8'), target_b64: target.toString('base64') };
}

// --- reserved name escaping (`name_escape`) -------------------------------------------------------

/**
 * How a backup stores the source's top-level names that collide with its own files (its
 * metadata's `name_escape`): `0` (or `false`, older and Python backups) as they are; `1` (or
 * `true`) `.backup_metadata.json`, `.backup_metadata.json~`... with one more `~`; `2` (every
 * backup with a separate manifest file) the same, and `.backup_manifest.json`,
 * `.backup_manifest.json~`... too.
 */
export type NameEscape = boolean | number;

/** The `name_escape` level this package writes. */
export const NAME_ESCAPE = 2;

const ESCAPED_METADATA = /^\.backup_metadata\.json~*$/;
const ESCAPED_MANIFEST = /^\.backup_manifest\.json~*$/;

const levelOf = (escape: NameEscape): number => (escape === true ? 1 : escape === false ? 0 : escape);

/** Whether `top` is a reserved top-level name (or one with `~`s appended) at this escape level. */
function escapedTop(top: string, level: number): boolean {
  return (level >= 1 && ESCAPED_METADATA.test(top)) || (level >= 2 && ESCAPED_MANIFEST.test(top));
}

/** The backup's own top-level files at this escape level (never a source entry). */
export function ownFiles(escape: NameEscape): readonly string[] {
  return levelOf(escape) >= 2 ? OWN_2 : OWN_1;
}
const OWN_1: readonly string[] = Object.freeze([METADATA_FILE]);
const OWN_2: readonly string[] = Object.freeze([METADATA_FILE, MANIFEST_FILE]);

function splitTop(rel: Rel): { top: string; rest: Buffer | string } {
  // The escaped names are ASCII: look at the first segment as latin1 (one char per byte).
  if (typeof rel === 'string') {
    const i = rel.indexOf('/');
    return i < 0 ? { top: rel, rest: '' } : { top: rel.slice(0, i), rest: rel.slice(i) };
  }
  const i = rel.indexOf(SLASH);
  return i < 0 ? { top: rel.toString('latin1'), rest: Buffer.alloc(0) } : { top: rel.subarray(0, i).toString('latin1'), rest: rel.subarray(i) };
}

function join2(top: string, rest: Buffer | string): Rel {
  if (typeof rest === 'string') return top + rest;
  return relFromBytes(Buffer.concat([Buffer.from(top, 'latin1'), rest]));
}

/**
 * Where an entry of the source is stored inside a backup (see {@link NameEscape}): a reserved
 * top-level name gets one more `~`, so the backup's own {@link METADATA_FILE} (and, at level 2,
 * {@link MANIFEST_FILE}) never collides with a source entry and the mapping is one-to-one.
 * Without escaping (older and Python backups), names are stored as they are.
 */
export function storedRel(rel: Rel, escape: NameEscape): Rel {
  const level = levelOf(escape);
  if (level === 0) return rel;
  const { top, rest } = splitTop(rel);
  return escapedTop(top, level) ? join2(`${top}~`, rest) : rel;
}

/** The inverse of {@link storedRel} (for names found in a backup's tree). */
export function unstoredRel(stored: Rel, escape: NameEscape): Rel {
  const level = levelOf(escape);
  if (level === 0) return stored;
  const { top, rest } = splitTop(stored);
  return escapedTop(top, level) && !ownFiles(level).includes(top) ? join2(top.slice(0, -1), rest) : stored;
}
