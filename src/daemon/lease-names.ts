/**
 * Keeps DNS local names in step with DHCP: reservations name their address; a lease's hostname names its address
 * while the lease lives. Guests are untrusted, so a lease's name is a claim that may be refused (issue 12, row 6):
 * - a name held by another client's lease stays with its first holder, as dnsmasq does; renewals keep it;
 * - a reserved name belongs to the reserved MAC: other clients' leases neither take nor keep it;
 * - a name from a hosts file, the gateway's name and the deny list (denied-names.ts) are never a lease's.
 * A refused claim is counted, logged (rate-limited), and dropped from the lease as it is journaled, so the journal
 * holds each name on at most one lease and a restart publishes exactly what was published before it.
 * When a holder's lease ends its name is free, but no waiting claimant gets it behind its back (as in dnsmasq): the
 * next client to claim it (in practice the waiting one at its next renewal) does.
 */
import type { LocalNames } from '../dns/local-names.js';
import type { Lease, LeaseChange, Reservation } from '../dhcp/types.js';
import type { Logger } from '../log.js';
import { formatIpv4 } from '../net/ipv4.js';

/** Why a lease's name was not published: held by another client, reserved for another MAC, or on the deny list. */
export type NameRefusalReason = 'held' | 'reserved' | 'denied' | 'record';

export interface LeaseNamesOptions {
  logger?: Logger;
  /**
   * The DHCP core's live lease of a client. Every lease end reaches settle() as a change, but a request can end the
   * holder's lease (the core expires what ran out first) and claim its name in the same step, before that change is
   * settled: asking the core keeps the expired holder's name free for it. Without it every published name is live.
   */
  leaseOf?: (clientId: string) => Lease | undefined;
  now?: () => number;
  /** issue 15: whether a name is an operator record's (or under an address= rule): never a guest's */
  operatorName?: (name: string) => boolean;
}

export class LeaseNames {
  /** refused claims since start, by reason (metrics and status) */
  readonly refusals: Record<NameRefusalReason, number> = { held: 0, reserved: 0, denied: 0, record: 0 };

  // No table of its own: LocalNames holds one 'lease' entry per address, with the client that claimed it, which is
  // what a lease published (a map from address to name here cost about 30 bytes per lease, issue 7).
  private readonly logger: Logger | undefined;
  private readonly leaseOf: ((clientId: string) => Lease | undefined) | undefined;
  private readonly now: () => number;
  private readonly operatorName: ((name: string) => boolean) | undefined;

  constructor(
    private readonly names: LocalNames,
    opts: LeaseNamesOptions = {},
  ) {
    this.logger = opts.logger;
    this.leaseOf = opts.leaseOf;
    this.now = opts.now ?? Date.now;
    this.operatorName = opts.operatorName;
  }

  /** Replaces the reservation names; a reserved name leaves any other client's lease at once. */
  setReservations(reservations: readonly Reservation[]): void {
    this.names.clearSource('reservation');
    for (const r of reservations) {
      if (!r.hostname || !this.names.setHost(r.hostname, r.address, 'reservation', { mac: r.mac })) continue;
      this.names.removeLeaseClaimsExcept(r.hostname, r.mac);
    }
  }

  /**
   * The DHCP core's name policy (CoreDeps.nameAllowed): whether `claimant` may have `name`. A refusal on the binding
   * ACK is counted and logged; an OFFER only asks.
   */
  nameAllowed(name: string, claimant: { clientId: string; mac: string; address: number }, binding: boolean): boolean {
    if (this.names.refusalOf(name) === 'invalid') return true; // not a name at all: the lease keeps it, DNS ignores it
    const lease: Lease = { ...claimant, hostname: name, expiresAt: 0 };
    const refusal = this.refusalFor(name, lease);
    if (refusal && binding) this.refuse(name, lease, refusal);
    return refusal === undefined;
  }

  /** Publishes the leases of a restart in journal order (call after setReservations and before new binds). */
  restore(leases: readonly Lease[]): void {
    for (const lease of leases) this.claim(lease);
  }

  /**
   * Decides and publishes the names of lease changes the DHCP core made; returns the changes as they should be
   * journaled: a bind whose name was refused loses it. Call before the changes are committed.
   */
  settle(changes: readonly LeaseChange[]): LeaseChange[] {
    return changes.map((change) => {
      if (change.kind !== 'bind') {
        this.names.removeAddress(change.address, 'lease');
        return change;
      }
      const { lease } = change;
      if (this.claim(lease) || lease.hostname === undefined || this.names.refusalOf(lease.hostname) === 'invalid') return change;
      const { hostname: _refused, ...unnamed } = lease;
      return { kind: 'bind', lease: unnamed };
    });
  }

  /**
   * The lease's name now names its address, unless the claim is refused. setHost also drops the name the address had
   * before, and the same client's name on its previous address. A lease without a usable or granted name leaves its
   * address unnamed. Returns whether the name is published.
   */
  private claim(lease: Lease): boolean {
    const name = lease.hostname;
    const refusal = name === undefined ? undefined : this.refusalFor(name, lease);
    if (refusal) this.refuse(name!, lease, refusal);
    const published = name !== undefined && refusal === undefined && this.names.setHost(name, lease.address, 'lease', { clientId: lease.clientId, mac: lease.mac });
    if (!published) this.names.removeAddress(lease.address, 'lease');
    return published;
  }

  private refusalFor(name: string, lease: Lease): NameRefusalReason | undefined {
    if (this.names.refusalOf(name) === 'denied') return 'denied';
    if (this.operatorName?.(name)) return 'record'; // issue 15: operator records outrank every guest
    const holder = this.names.holderOf(name);
    switch (holder?.source) {
      case undefined:
        return undefined;
      case 'lease':
        if (holder.clientId === lease.clientId) return undefined;
        if (this.holderIsLive(holder.clientId!, holder.address)) return 'held';
        this.names.removeAddress(holder.address, 'lease'); // the holder's lease is gone: its name is free
        return this.refusalFor(name, lease);
      case 'reservation':
        return holder.mac === lease.mac ? undefined : 'reserved';
      default: // a hosts-file name or the gateway's
        return 'held';
    }
  }

  private holderIsLive(clientId: string, address: number): boolean {
    if (!this.leaseOf) return true;
    const held = this.leaseOf(clientId);
    return held !== undefined && held.address === address && held.expiresAt > this.now();
  }

  private refuse(name: string, lease: Lease, reason: NameRefusalReason): void {
    this.refusals[reason]++;
    const holder = this.names.holderOf(name);
    this.logger?.warnLimited(`dns:name-refused:${reason}`, 'name refused: a guest claimed a host name it may not have', {
      name,
      reason,
      mac: lease.mac,
      address: formatIpv4(lease.address),
      ...(holder ? { heldBy: holder.source, holderAddress: formatIpv4(holder.address) } : {}),
    });
  }
}
