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
 *
 * issue 14: DHCPv6 leases (one per client DUID and IAID) are told the same way, as dnsmasq tells them: the client's
 * DUID in the MAC's place, the IPv6 address, and (for the script) DNSMASQ_IAID, DNSMASQ_SERVER_DUID and DNSMASQ_MAC
 * when the client's MAC is known (lease-script.ts).
 */
import type { Lease, LeaseChange } from '../dhcp/types.js';
import type { Lease6, Lease6Change } from '../dhcp6/types.js';
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
  /** issue 14, DHCPv6 leases only (then `mac` is the client's DUID, `address` IPv6, as dnsmasq): the IA_NA's IAID */
  iaid?: number;
  /** DHCPv6: natd's server DUID */
  serverDuid?: string;
  /** DHCPv6: the client's MAC, when known (from its DUID or the link-layer source) */
  hwaddr?: string;
}

export type LeaseListener = (event: LeaseEvent) => void;

export class LeaseEvents {
  private readonly live = new Map<string, Lease>();
  private readonly listeners = new Set<LeaseListener>();
  /** issue 14: DHCPv6 leases by duid|iaid */
  private readonly live6 = new Map<string, Lease6>();
  private serverDuid: string | undefined;

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

  /** issue 14: natd's DHCPv6 server DUID (DNSMASQ_SERVER_DUID), known once DHCPv6 starts. */
  setServerDuid(duid: string): void {
    this.serverDuid = duid;
  }

  /** issue 14: the DHCPv6 leases read from the journal at start: `old` events, as loadLeases. */
  loadLeases6(leases: readonly Lease6[]): void {
    for (const lease of leases) {
      this.live6.set(key6(lease.duid, lease.iaid), lease);
      this.emit6('old', lease);
    }
  }

  /** issue 14: durable DHCPv6 changes (bind6 / release6; expiries come as release6 from the sweep). */
  committed6(changes: readonly Lease6Change[]): void {
    for (const change of changes) {
      if (change.kind === 'bind6') this.bind6(change.lease);
      else if (change.kind === 'release6') {
        const key = key6(change.duid, change.iaid);
        const before = this.live6.get(key);
        if (!before || before.address !== change.address) continue;
        this.live6.delete(key);
        this.emit6('del', before);
      }
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
    for (const lease of this.live6.values()) listener(this.eventOf6('old', lease, undefined, at));
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

  private bind6(lease: Lease6): void {
    const key = key6(lease.duid, lease.iaid);
    const before = this.live6.get(key);
    this.live6.set(key, lease);
    if (!before) return this.emit6('add', lease);
    if (before.address !== lease.address) {
      this.emit6('del', before);
      return this.emit6('add', lease);
    }
    if (before.mac !== lease.mac || before.hostname !== lease.hostname) return this.emit6('old', lease, before.hostname);
    this.emit6('renew', lease);
  }

  private emit6(action: LeaseAction, lease: Lease6, oldHostname?: string): void {
    if (this.listeners.size === 0) return;
    const event = this.eventOf6(action, lease, oldHostname, this.now());
    for (const listener of this.listeners) listener(event);
  }

  private eventOf6(action: LeaseAction, lease: Lease6, oldHostname: string | undefined, at: number): LeaseEvent {
    return {
      action,
      mac: lease.duid,
      address: lease.address,
      ...(lease.hostname !== undefined ? { hostname: lease.hostname } : {}),
      ...(oldHostname !== undefined && oldHostname !== lease.hostname ? { oldHostname } : {}),
      clientId: lease.duid,
      expiresAt: lease.expiresAt,
      at,
      iaid: lease.iaid,
      ...(this.serverDuid !== undefined ? { serverDuid: this.serverDuid } : {}),
      ...(lease.mac !== undefined ? { hwaddr: lease.mac } : {}),
    };
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

function key6(duid: string, iaid: number): string {
  return `${duid}|${iaid}`;
}
