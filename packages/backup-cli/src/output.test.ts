import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { colorEnabled, formatBytes, guardStream, makeStyle, ProgressBar } from './output.js';

/** A stream whose writes fail with `code` after `okWrites` successful ones (the fault layer). */
function failingStream(code: string, okWrites: number): Writable & { text: string } {
  let n = 0;
  const s = new Writable({
    write(chunk, _enc, cb) {
      if (n++ < okWrites) {
        s.text += String(chunk);
        cb();
      } else cb(Object.assign(new Error(`write ${code}`), { code }));
    },
  }) as Writable & { text: string };
  s.text = '';
  return s;
}

describe('guardStream (every command writes through it)', () => {
  it('a reader that went away (EPIPE) ends the output quietly: no throw, no error event, later writes dropped', async () => {
    const raw = failingStream('EPIPE', 1);
    const out = guardStream(raw);
    out.write('first\n');
    out.write('second\n');
    await out.flush();
    out.write('third\n');
    await out.flush();
    expect(raw.text).toBe('first\n');
    expect(out.closed).toBe(true);
    expect(out.failure).toBeUndefined();
    expect(guardStream(raw)).toBe(out); // one guard (one listener) per stream
  });

  it('any other write failure (a full disk behind a redirect) is kept for the caller to report', async () => {
    const out = guardStream(failingStream('ENOSPC', 0));
    out.write('x\n');
    await out.flush();
    expect(out.closed).toBe(true);
    expect((out.failure as NodeJS.ErrnoException | undefined)?.code).toBe('ENOSPC');
  });
});

describe('output', () => {
  it('colors only on a TTY and never with NO_COLOR', () => {
    expect(colorEnabled({ write: () => {}, isTTY: true }, {})).toBe(true);
    expect(colorEnabled({ write: () => {}, isTTY: true }, { NO_COLOR: '1' })).toBe(false);
    expect(colorEnabled({ write: () => {}, isTTY: true }, { NO_COLOR: '' })).toBe(true); // empty means unset (no-color.org)
    expect(colorEnabled({ write: () => {}, isTTY: false }, {})).toBe(false);
    expect(makeStyle(false).red('x')).toBe('x');
    expect(makeStyle(true).red('x')).toBe('\u001b[31mx\u001b[39m');
  });

  it('formats sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(10 * 1024 * 1024)).toBe('10.0 MiB');
    expect(formatBytes(null)).toBe('?');
  });

  it('draws a progress bar on a TTY after the delay, erases it at the end, and stays silent otherwise', () => {
    let text = '';
    const tty = { write: (s: string) => (text += s), isTTY: true };
    const pb = new ProgressBar(tty, true, 0);
    pb.update({ phase: 'copy', files: 5, totalFiles: 10, bytes: 2048 });
    expect(text).toContain('50% 5/10 files 2.0 KiB');
    pb.done();
    expect(text.endsWith('\r\u001b[2K')).toBe(true);

    let quiet = '';
    const off = new ProgressBar({ write: (s: string) => (quiet += s), isTTY: false }, false, 0);
    off.update({ phase: 'copy', files: 5, totalFiles: 10, bytes: 2048 });
    off.done();
    expect(quiet).toBe('');

    let late = '';
    const delayed = new ProgressBar({ write: (s: string) => (late += s), isTTY: true }, true, 60_000);
    delayed.update({ phase: 'copy', files: 1, totalFiles: 10, bytes: 1 });
    expect(late).toBe(''); // short runs show no bar
  });
});
