/**
 * Lease events for the world outside natd (`--dhcp-script`, `natd leases --watch`): the journaled lease changes,
 * told in dnsmasq's words. `add`: a client got an address it did not hold; `old`: a lease it holds changed its name
 * or MAC (and, at start, every lease read from the journal, as dnsmasq does for its lease file); `del`: a lease
 * ended (release, expiry, decline, or the client moved to another address). Renewals that change nothing but the
 * expiry are `renew`: watchers see them, scripts do not (dnsmasq calls no script for them either).
 *
 * Events are derived only from changes that are already durable, so no consumer ever sees a lease the journal could
 * still lose. The bus keeps the live lease of each client (a copy of what the core holds, ~100 bytes per lease) to
 * tell `add` from `old` and to name the MAC and hostname of a lease that ends.
 */
import type { Lease, LeaseChange } from '../dhcp/types.js';
import { formatIpv4 } from '../net/ipv4.js';

export type LeaseAction = 'add' | 'old' | 'del' | 'renew';

export interface LeaseEvent {
  action: LeaseAction;
  mac: string;
  /** dotted IPv4 */
  address: string;
  hostname?: string;
  /** the name the lease had before, when an `old` event changed it (dnsmasq's DNSMASQ_OLD_HOSTNAME) */
  oldHostname?: string;
  clientId: string;
  /** ms epoch; for `del`, when the lease would have run out */
  expiresAt: number;
  /** ms epoch of the change */
  at: number;
}

export type LeaseListener = (event: LeaseEvent) => void;

export class LeaseEvents {
  private readonly live = new Map<string, Lease>();
  private readonly listeners = new Set<LeaseListener>();

  constructor(private readonly now: () => number = Date.now) {}

  /** Adds a listener; returns the function that removes it. */
  subscribe(listener: LeaseListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get size(): number {
    return this.listeners.size;
  }

  /** The leases read from the journal at start: each is an `old` event (dnsmasq's start-up calls). */
  loadLeases(leases: readonly Lease[]): void {
    for (const lease of leases) {
      this.live.set(lease.clientId, lease);
      this.emit('old', lease);
    }
  }

  /** Durable changes, in journal order. */
  committed(changes: readonly LeaseChange[]): void {
    for (const change of changes) {
      if (change.kind === 'bind') this.bind(change.lease);
      else if (change.kind === 'release') this.release(change.clientId, change.address);
      // 'decline' quarantines an address; the client's lease on it ended through a 'release' change
    }
  }

  /** The leases this bus believes live. */
  leases(): Lease[] {
    return [...this.live.values()];
  }

  /**
   * For a new watcher: the live leases as `old` events (what dnsmasq's script hears at start), then every event after
   * them, with nothing lost or told twice in between (both happen in one turn of the event loop). Returns unsubscribe.
   */
  watch(listener: LeaseListener): () => void {
    const at = this.now();
    for (const lease of this.live.values()) listener(this.eventOf('old', lease, undefined, at));
    return this.subscribe(listener);
  }

  private bind(lease: Lease): void {
    const before = this.live.get(lease.clientId);
    this.live.set(lease.clientId, lease);
    if (!before) return this.emit('add', lease);
    if (before.address !== lease.address) {
      this.emit('del', before);
      return this.emit('add', lease);
    }
    if (before.mac !== lease.mac || before.hostname !== lease.hostname) return this.emit('old', lease, before.hostname);
    this.emit('renew', lease);
  }

  private release(clientId: string, address: number): void {
    const before = this.live.get(clientId);
    if (!before || before.address !== address) return; // nothing this bus announced
    this.live.delete(clientId);
    this.emit('del', before);
  }

  private emit(action: LeaseAction, lease: Lease, oldHostname?: string): void {
    if (this.listeners.size === 0) return;
    const event = this.eventOf(action, lease, oldHostname, this.now());
    for (const listener of this.listeners) listener(event);
  }

  private eventOf(action: LeaseAction, lease: Lease, oldHostname: string | undefined, at: number): LeaseEvent {
    return {
      action,
      mac: lease.mac,
      address: formatIpv4(lease.address),
      ...(lease.hostname !== undefined ? { hostname: lease.hostname } : {}),
      ...(oldHostname !== undefined && oldHostname !== lease.hostname ? { oldHostname } : {}),
      clientId: lease.clientId,
      expiresAt: lease.expiresAt,
      at,
    };
  }
}
