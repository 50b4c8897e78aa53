import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeStream, encodeObject } from './format.js';

/** A source of `stored` in 64 KiB chunks that records whether it was closed (`return()`). */
function source(stored: Buffer): { src: AsyncIterable<Buffer>; closed: () => boolean } {
  let closed = false;
  let i = 0;
  const it: AsyncIterator<Buffer> = {
    next: async () => (i < stored.length ? { done: false, value: stored.subarray(i, (i += 64 * 1024)) } : { done: true, value: undefined }),
    return: async () => {
      closed = true;
      return { done: true, value: undefined };
    },
  };
  return { src: { [Symbol.asyncIterator]: () => it }, closed: () => closed };
}

describe('decodeStream', () => {
  for (const [kind, plain] of [
    ['raw', randomBytes(600 * 1024)],
    ['deflated', Buffer.alloc(600 * 1024, 7)],
  ] as const) {
    it(`a consumer that stops early closes the source at once (${kind}: a file or socket is not left to the GC)`, async () => {
      const { src, closed } = source(await encodeObject(plain));
      for await (const c of decodeStream(src)) {
        expect(c.length).toBeGreaterThan(0);
        break;
      }
      expect(closed()).toBe(true);
    });

    it(`decodes the whole content (${kind})`, async () => {
      const { src } = source(await encodeObject(plain));
      const parts: Buffer[] = [];
      for await (const c of decodeStream(src)) parts.push(c);
      expect(Buffer.concat(parts).equals(plain)).toBe(true);
    });
  }
});
