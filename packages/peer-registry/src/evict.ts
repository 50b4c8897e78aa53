import type { Peer } from './peer.js';

interface Entry {
  peer: Peer;
  health: number;
  lastSeen: number;
}

/** Least healthy first; among equals, least recently seen first. */
function worse(a: Entry, b: Entry): boolean {
  return a.health < b.health || (a.health === b.health && a.lastSeen < b.lastSeen);
}

/**
 * A min-heap of peers by (health, lastSeen) with lazy invalidation: every change of a peer's
 * health or lastSeen pushes a fresh entry; entries that no longer match their peer (changed or
 * removed) are dropped when they reach the top. O(log n) per change, amortised.
 */
export class EvictionHeap {
  private h: Entry[] = [];

  get length(): number {
    return this.h.length;
  }

  /** Record the current (health, lastSeen) of `peer`. */
  push(peer: Peer): void {
    const h = this.h;
    h.push({ peer, health: peer.healthScore, lastSeen: peer.lastSeen });
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!worse(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private popTop(): Entry | undefined {
    const h = this.h;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && worse(h[l]!, h[m]!)) m = l;
        if (r < h.length && worse(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** Remove and return the worst peer for which `isLive` holds and whose entry is current. */
  popWorst(isLive: (peer: Peer) => boolean): Peer | undefined {
    for (;;) {
      const top = this.popTop();
      if (top === undefined) return undefined;
      const p = top.peer;
      if (isLive(p) && p.healthScore === top.health && p.lastSeen === top.lastSeen) return p;
    }
  }

  /** Start over from the given peers (drops stale entries). */
  rebuild(peers: Iterable<Peer>): void {
    this.h = [];
    for (const p of peers) this.push(p);
  }
}
