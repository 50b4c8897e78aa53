import { isUtf8 } from 'node:buffer';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isTempFileName } from '@dawn/atomic-json';
import { makeTempDir } from '@dawn/test-utils';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createBackup, restoreBackup, verifyBackup } from '../src/index.js';
import { bpath, snapshotBytes } from './helpers.js';

/**
 * Property (issue 9, C): for arbitrary trees — names as arbitrary bytes (UTF-8 or not), `.lock`
 * and temp-file names, our metadata name, empty dirs, modes, symlinks inside and pointing
 * outside, FIFOs — backup → verify → restore over a different live tree gives exactly the
 * source minus what the README documents as skipped; the pre_restore backup undoes it exactly;
 * nothing outside the target changes.
 */

const ROOT = process.getuid?.() === 0;
const FILE_MODES = ROOT ? [0o644, 0o600, 0o755, 0o400, 0o000, 0o4755] : [0o644, 0o600, 0o755, 0o400];
const DIR_MODES = ROOT ? [0o755, 0o700, 0o750, 0o555, 0o1777] : [0o755, 0o700, 0o750];

type Outside = 'precious.json' | 'dir' | 'fifo';
type Node =
  | { kind: 'file'; content: Uint8Array; mode: number }
  | { kind: 'dir'; mode: number; children: [Buffer, Node][] }
  | { kind: 'link'; target: Buffer | { outside: Outside } }
  | { kind: 'fifo' };

const SPECIAL_NAMES = [
  'Cargo.lock',
  'x.lock',
  'state.json',
  '.backup_metadata.json',
  '.backup_metadata.json~',
  '.0123456789ab-0123456789abcdef.ajtmp', // an atomic-json temp file name
  'notes.ajtmp',
  'dawn.log',
  'd\xff',
  '\xc3\x28',
  '\xed\xa0\x80',
  'é',
].map((s) => Buffer.from(s, 'latin1'));

const sanitize = (a: Uint8Array) => Buffer.from(a.map((b) => (b === 0 || b === 0x2f ? 0x5f : b)));
const isDots = (b: Buffer) => b.equals(Buffer.from('.')) || b.equals(Buffer.from('..'));

const name: fc.Arbitrary<Buffer> = fc
  .oneof(
    { weight: 4, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 10 }).map(sanitize) },
    { weight: 3, arbitrary: fc.constantFrom(...SPECIAL_NAMES) },
    { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 6 }).map((s) => sanitize(Buffer.from(s, 'utf8'))) },
  )
  .filter((b) => !isDots(b) && b.length <= 200);

const { node } = fc.letrec<{ node: Node; dir: Node }>((tie) => ({
  node: fc.oneof(
    { maxDepth: 3, depthSize: 'small' },
    fc.record({ kind: fc.constant('file' as const), content: fc.uint8Array({ maxLength: 64 }), mode: fc.constantFrom(...FILE_MODES) }),
    fc.record({
      kind: fc.constant('link' as const),
      target: fc.oneof(
        fc.uint8Array({ minLength: 1, maxLength: 12 }).map((a) => Buffer.from(a.map((b) => (b === 0 ? 0x2e : b)))),
        fc.constantFrom(...SPECIAL_NAMES, Buffer.from('../../outside/precious.json'), Buffer.from('../x.lock')),
        fc.record({ outside: fc.constantFrom<Outside>('precious.json', 'dir', 'fifo') }),
      ),
    }),
    fc.constant({ kind: 'fifo' as const }),
    tie('dir'),
  ),
  dir: fc.record({
    kind: fc.constant('dir' as const),
    mode: fc.constantFrom(...DIR_MODES),
    children: fc.uniqueArray(fc.tuple(name, tie('node')), { maxLength: 5, selector: ([n]) => n.toString('latin1') }),
  }),
}));

const tree = fc.uniqueArray(fc.tuple(name, node), { minLength: 1, maxLength: 8, selector: ([n]) => n.toString('latin1') });

/** Create a generated tree under `root` (Buffer paths; directory modes applied after their contents). */
function materialize(root: string, entries: [Buffer, Node][], outside: string): void {
  fs.mkdirSync(root);
  const make = (rel: Buffer[], nodes: [Buffer, Node][]) => {
    for (const [n, x] of nodes) {
      const p = bpath(root, ...rel, n);
      if (x.kind === 'file') {
        fs.writeFileSync(p, x.content);
        fs.chmodSync(p, x.mode);
      } else if (x.kind === 'link') {
        fs.symlinkSync(Buffer.isBuffer(x.target) ? x.target : join(outside, x.target.outside), p);
      } else if (x.kind === 'fifo') {
        // mkfifo takes its path as a (UTF-8) argument: make it under a plain name, then rename.
        const tmp = join(root, '..', 'fifo-tmp');
        execFileSync('mkfifo', [tmp]);
        fs.renameSync(tmp, p);
      } else {
        fs.mkdirSync(p);
        make([...rel, n], x.children);
        fs.chmodSync(p, x.mode);
      }
    }
  };
  make([], entries);
}

/** The README's skipped entries: special files, atomic-json temp files (exact names), empty `<x>.lock` directories. */
const baseOf = (rel: Buffer) => rel.subarray(rel.lastIndexOf(0x2f) + 1);
/** Left out silently: an atomic-json temp file name (exact bytes) on anything but a directory. */
const isTemp = (rel: Buffer, st: fs.Stats) => !st.isDirectory() && isUtf8(baseOf(rel)) && isTempFileName(baseOf(rel).toString('utf8'));

function documentedSkip(rel: Buffer, st: fs.Stats, kids: Buffer[] | undefined): boolean {
  const base = baseOf(rel);
  if (!st.isDirectory() && !st.isFile() && !st.isSymbolicLink()) return true;
  if (isTemp(rel, st)) return true;
  return st.isDirectory() && kids!.length === 0 && base.length > 5 && base.subarray(-5).equals(Buffer.from('.lock'));
}

describe('property: arbitrary trees round-trip through backup and restore', () => {
  it('restored = source minus documented skips; pre_restore undoes it; nothing outside changes', { timeout: 120_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(tree, tree, async (srcTree, liveTree) => {
        const root = await makeTempDir('dawn-backup-prop-');
        try {
          const outside = join(root, 'outside');
          fs.mkdirSync(join(outside, 'dir'), { recursive: true });
          fs.writeFileSync(join(outside, 'precious.json'), '{"precious": true}\n');
          fs.writeFileSync(join(outside, 'dir', 'kept.txt'), 'kept\n');
          execFileSync('mkfifo', [join(outside, 'fifo')]);
          const src = join(root, 'src');
          const live = join(root, 'live');
          materialize(src, srcTree, outside);
          materialize(live, liveTree, outside);
          const outsideBefore = snapshotBytes(outside);
          const srcBefore = snapshotBytes(src);
          const expectedSrc = snapshotBytes(src, documentedSkip);
          const expectedLive = snapshotBytes(live, documentedSkip);
          const backupDir = join(root, 'backups');

          const b = await createBackup({ source: src, backupDir, name: 'p', defaultExcludes: false, fsync: false });
          // Special files are reported (temp-named ones are left out silently, as temp files).
          const reported = Object.values(snapshotBytes(src, isTemp)).filter((v) => v === 'special').length;
          expect(b.skipped).toHaveLength(reported);
          const v = await verifyBackup({ name: 'p', backupDir });
          expect(v.problems).toEqual([]);
          expect(v.ok).toBe(true);

          const r = await restoreBackup({ name: 'p', backupDir, target: live, fsync: false, force: true }); // another source's backup
          expect(snapshotBytes(live)).toEqual(expectedSrc);
          expect(r.preRestoreBackup).not.toBeNull();
          expect((await verifyBackup({ name: r.preRestoreBackup!, backupDir })).ok).toBe(true);

          await restoreBackup({ name: r.preRestoreBackup!, backupDir, target: live, fsync: false, overwrite: true });
          expect(snapshotBytes(live)).toEqual(expectedLive);

          expect(snapshotBytes(outside)).toEqual(outsideBefore);
          expect(snapshotBytes(src)).toEqual(srcBefore);
          expect(fs.readdirSync(root).sort()).toEqual(['backups', 'live', 'outside', 'src']);
          expect(fs.readdirSync(backupDir).sort()).toEqual(['p', r.preRestoreBackup!].sort());
        } finally {
          await rm(root, { recursive: true, force: true });
        }
      }),
      { numRuns: Number(process.env.DAWN_PROPERTY_RUNS ?? 40) },
    );
  });
});
