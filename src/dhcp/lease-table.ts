/**
 * The in-memory lease table: a plain data structure the pure core owns (no timers, no I/O, no hooks; the caller diffs).
 *
 * Two indexes, by client id and by address, are changed only by `put` and `remove`, always together, so they can
 * never disagree. Expiry is swept lazily with the caller's clock. Besides live leases it remembers, per client and
 * bounded, the address of a recently ended lease (so a returning client gets it back) and a quarantine of declined
 * addresses (RFC 2131 §3.1 step 5: another host answered ARP for it).
 */
import type { Lease } from './types.js';

/** How many ended leases are remembered; the oldest memory goes first. */
const DEFAULT_RECENT_LIMIT = 4096;

/**
 * The stored form of a lease: the five fields in one fixed order (hostname undefined when there is none), frozen.
 * The fixed shape keeps every field inside the object; a lease parsed from JSON or given its hostname afterwards
 * carries an extra 40-byte property array. Frozen, one object is shared by the table, the change that reports it
 * and the lease store's replay instead of a defensive copy in each (issue 7: about 100 bytes per copy). A lease
 * that is already frozen is taken as it is.
 */
export function storedLease(lease: Lease): Lease {
  if (Object.isFrozen(lease)) return lease;
  return Object.freeze({ clientId: lease.clientId, mac: lease.mac, address: lease.address, hostname: lease.hostname, expiresAt: lease.expiresAt });
}

export class LeaseTable {
  private readonly byClient = new Map<string, Lease>();
  private readonly byAddress = new Map<number, Lease>();
  /** clientId -> address of its last ended lease; Map order is age order (oldest first) */
  private readonly recentByClient = new Map<string, number>();
  /** reverse of recentByClient, so an address remembers at most one client */
  private readonly recentByAddress = new Map<number, string>();
  /** declined address -> ms epoch until which it must not be handed out */
  private readonly quarantine = new Map<number, number>();
  /** lower bound of the earliest expiry (lease or quarantine): sweeping before it is a no-op */
  private earliestExpiry = Infinity;
  private freedCount = 0;
  private changeCount = 0;

  constructor(private readonly recentLimit = DEFAULT_RECENT_LIMIT) {}

  get size(): number {
    return this.byClient.size;
  }

  /**
   * Grows each time an address may have become free (lease removed or moved, quarantine ended), so the pool can
   * trust a cached "no address free" answer until it changes.
   */
  get freedGeneration(): number {
    return this.freedCount;
  }

  /** Grows on every change of leases or quarantine (for caches of derived figures such as the free count). */
  get generation(): number {
    return this.changeCount;
  }

  getByClient(clientId: string): Lease | undefined {
    return this.byClient.get(clientId);
  }

  getByAddress(address: number): Lease | undefined {
    return this.byAddress.get(address);
  }

  all(): Lease[] {
    return [...this.byClient.values()];
  }

  /** Leases still running at `now`, without sweeping (a lease that ended but is not swept yet does not count). */
  liveCount(now: number): number {
    if (now < this.earliestExpiry) return this.byClient.size;
    let live = 0;
    for (const lease of this.byClient.values()) if (lease.expiresAt > now) live++;
    return live;
  }

  /**
   * Stores a lease (as storedLease: a frozen copy, or the object itself when frozen), replacing the client's
   * previous one. If another client held the same address, that lease is removed first (the caller only does this on
   * purpose, e.g. a reservation taking over); it is returned.
   */
  put(lease: Lease): Lease | undefined {
    this.changeCount++;
    const stored = storedLease(lease);
    const previous = this.byClient.get(stored.clientId);
    if (previous && previous.address !== stored.address) {
      this.byAddress.delete(previous.address);
      this.freedCount++;
    }
    const displaced = this.byAddress.get(stored.address);
    if (displaced && displaced.clientId !== stored.clientId) this.removeLease(displaced);
    this.byClient.set(stored.clientId, stored);
    this.byAddress.set(stored.address, stored);
    this.forgetRecent(stored.clientId);
    const other = this.recentByAddress.get(stored.address);
    if (other !== undefined) this.forgetRecent(other);
    if (stored.expiresAt < this.earliestExpiry) this.earliestExpiry = stored.expiresAt;
    return displaced && displaced.clientId !== stored.clientId ? displaced : undefined;
  }

  /** Removes the client's lease (remembering its address for the client's return); returns it. */
  remove(clientId: string): Lease | undefined {
    const lease = this.byClient.get(clientId);
    if (lease) this.removeLease(lease);
    return lease;
  }

  /** Address of the client's most recently ended lease, if remembered. */
  lastAddressOf(clientId: string): number | undefined {
    return this.recentByClient.get(clientId);
  }

  /** The client that last held an address which is now free, if remembered. */
  lastClientOf(address: number): string | undefined {
    return this.recentByAddress.get(address);
  }

  /**
   * Drops leases that ended at least graceMs ago and quarantines that are over. Cheap when nothing can have expired
   * yet, so the core may call it on every packet. Returns the removed leases.
   */
  sweepExpired(now: number, graceMs = 0): Lease[] {
    if (now - graceMs < this.earliestExpiry) return [];
    const removed: Lease[] = [];
    let earliest = Infinity;
    for (const lease of this.byClient.values()) {
      if (lease.expiresAt + graceMs <= now) removed.push(lease);
      else if (lease.expiresAt < earliest) earliest = lease.expiresAt;
    }
    for (const lease of removed) this.removeLease(lease);
    for (const [address, until] of this.quarantine) {
      if (until <= now) {
        this.quarantine.delete(address);
        this.freedCount++;
        this.changeCount++;
      } else if (until < earliest) earliest = until;
    }
    this.earliestExpiry = earliest;
    return removed;
  }

  /** Quarantines a declined address until the given time (a later decline extends it, never shortens it). */
  decline(address: number, until: number): void {
    const current = this.quarantine.get(address);
    if (current !== undefined && current >= until) return;
    this.quarantine.set(address, until);
    this.changeCount++;
    if (until < this.earliestExpiry) this.earliestExpiry = until;
  }

  /** Ends a quarantine early (the quarantine is over its bound); the address is free again. */
  endQuarantine(address: number): void {
    if (!this.quarantine.delete(address)) return;
    this.freedCount++;
    this.changeCount++;
  }

  isQuarantined(address: number, now: number): boolean {
    const until = this.quarantine.get(address);
    return until !== undefined && until > now;
  }

  /** When the address's quarantine ends (possibly already past, until swept), or undefined when it has none. */
  quarantineEnd(address: number): number | undefined {
    return this.quarantine.get(address);
  }

  /** Current quarantine entries (address, until), e.g. for stats or compaction. */
  quarantined(): Array<{ address: number; until: number }> {
    return [...this.quarantine].map(([address, until]) => ({ address, until }));
  }

  private removeLease(lease: Lease): void {
    this.byClient.delete(lease.clientId);
    this.byAddress.delete(lease.address);
    this.freedCount++;
    this.changeCount++;
    this.remember(lease.clientId, lease.address);
  }

  private remember(clientId: string, address: number): void {
    this.forgetRecent(clientId);
    const other = this.recentByAddress.get(address);
    if (other !== undefined) this.forgetRecent(other);
    this.recentByClient.set(clientId, address);
    this.recentByAddress.set(address, clientId);
    if (this.recentByClient.size > this.recentLimit) {
      const oldest = this.recentByClient.keys().next().value as string;
      this.forgetRecent(oldest);
    }
  }

  private forgetRecent(clientId: string): void {
    const address = this.recentByClient.get(clientId);
    if (address === undefined) return;
    this.recentByClient.delete(clientId);
    if (this.recentByAddress.get(address) === clientId) this.recentByAddress.delete(address);
  }
}
