/** The registry's in-memory view: peers by node id (O(1)), by address (O(1)), and the eviction ranking. */
import { EvictionHeap } from './evict.js';
import type { Peer } from './peer.js';

export class PeerIndex {
  /** Peers by node id, in insertion order. */
  readonly peers = new Map<string, Peer>();
  /** Peers by address (an array when several share one). */
  readonly byAddress = new Map<string, Peer | Peer[]>();
  /** The eviction ranking, with `maxPeers` only. */
  readonly heap: EvictionHeap | undefined;

  constructor(evictable: boolean) {
    this.heap = evictable ? new EvictionHeap() : undefined;
  }

  /** Index the peers of a freshly opened registry. A later duplicate of a node id wins, as in Python. */
  load(peers: readonly Peer[]): void {
    // The hot loop of a 100,000-peer open: one Map operation per index.
    const byId = this.peers;
    let duplicates = false;
    for (const p of peers) {
      const n = byId.size;
      byId.set(p.nodeId, p);
      if (byId.size === n) duplicates = true;
      else this.indexAddress(p);
      this.heap?.push(p);
    }
    if (duplicates) {
      this.byAddress.clear();
      for (const p of byId.values()) this.indexAddress(p);
    }
  }

  indexAddress(p: Peer): void {
    const cur = this.byAddress.get(p.address);
    if (cur === undefined) this.byAddress.set(p.address, p);
    else if (Array.isArray(cur)) cur.push(p);
    else this.byAddress.set(p.address, [cur, p]);
  }

  unindexAddress(p: Peer, address: string = p.address): void {
    const cur = this.byAddress.get(address);
    if (cur === p) this.byAddress.delete(address);
    else if (Array.isArray(cur)) {
      const i = cur.indexOf(p);
      if (i >= 0) cur.splice(i, 1);
      if (cur.length === 1) this.byAddress.set(address, cur[0]!);
      else if (cur.length === 0) this.byAddress.delete(address);
    }
  }

  insert(p: Peer): void {
    const old = this.peers.get(p.nodeId);
    if (old) this.unindexAddress(old);
    this.peers.set(p.nodeId, p);
    this.indexAddress(p);
    this.heap?.push(p);
  }

  delete(p: Peer): void {
    this.peers.delete(p.nodeId);
    this.unindexAddress(p);
  }

  /** After `p` changed (from `oldAddress`): keep the indexes right. */
  changed(p: Peer, oldAddress: string): void {
    if (p.address !== oldAddress) {
      this.unindexAddress(p, oldAddress);
      this.indexAddress(p);
    }
    this.heap?.push(p);
  }
}
