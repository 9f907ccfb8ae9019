/**
 * issue 14: DHCPv6 leases → names. Every live DHCPv6 lease puts its address into the guests' IPv6 address table
 * (ipv6/guest-addresses.ts, source 'dhcpv6'), so `AAAA name` and the ip6.arpa PTR answer it on both DNS servers, and
 * gives the name → IPv6 address lookup of port forwards (guestIpv6Resolver) the leases' addresses.
 *
 * The name of a lease, in this order (the choice):
 *   1. the reservation's name (the core puts it on the lease);
 *   2. the client's FQDN option (RFC 4704, its first label; the core puts it on the lease when `nameAllowed` below
 *      lets it);
 *   3. the name the DHCPv4 lease or reservation of the same MAC holds (the MAC from the DUID, else the link-layer
 *      source): a dual-stack guest has one name.
 * A lease is keyed in the table by its MAC when it has one (its AAAA then follows the IPv4 name of that MAC, as SLAAC
 * addresses do), else by its name; a lease with neither stays out of DNS (a forward can still name it by address).
 *
 * Lease changes come from the DHCPv6 transport once durable (bind6 adds or moves, release6 removes; expiries come as
 * release6 from the sweep); at start the journal's leases are loaded (restore). Only the guests a change touches are
 * rewritten in the table.
 *
 * Hostile guests: a client's FQDN name is refused (left off its lease) when it is not a valid host name or a denied
 * one (the gateway's, the domain), when it is an operator record's (issue 15: `--host-record` and the other custom
 * records, bare or under the domain, as for the DHCPv4 lease names), when an IPv4 lease or reservation of another MAC
 * holds it, when a DHCPv6 reservation of another client has it, or when another client's live DHCPv6 lease has it:
 * first come, as the IPv4 lease names. The table bounds what each guest and all of them can hold.
 */
import type { Dhcp6Reservation, Lease6, Lease6Change } from '../dhcp6/types.js';
import type { GuestAddresses } from '../ipv6/guest-addresses.js';
import type { Logger } from '../log.js';

export interface Dhcp6NamesDeps {
  /** the guests' IPv6 address table (with DNS on); absent: only the forward lookup is kept */
  table?: GuestAddresses | undefined;
  /** the name the IPv4 lease or reservation of each MAC holds now (LocalNames.namesByMac: built once per change of the
   *  IPv4 names, so asking on every DHCPv6 lease change costs a lookup, not a walk over every IPv4 name) */
  namesByMac?: () => ReadonlyMap<string, string>;
  /** the MAC holding `name` on the IPv4 side (a lease or reservation), undefined when none or not a guest's */
  v4HolderMac?: (name: string) => string | undefined | null;
  /** whether `name` may be published at all (LocalNames.refusalOf === undefined) */
  publishable?: (name: string) => boolean;
  /** whether `name` is an operator record's (RecordBook.owns): never a guest's, as on the DHCPv4 side */
  operatorName?: (name: string) => boolean;
  /** refused names are logged (rate-limited) */
  logger?: Logger;
}

interface Held {
  address: string;
  mac: string | undefined;
  /** the lease's own name (reservation or FQDN) */
  hostname: string | undefined;
  duid: string;
}

export class Dhcp6Names {
  /** duid|iaid → the lease's facts */
  private readonly leases = new Map<string, Held>();
  /** guest key (mac:…, name:…) → lease keys */
  private readonly guests = new Map<string, Set<string>>();
  /** a lease's own name → lease keys */
  private readonly named = new Map<string, Set<string>>();

  /** the DHCPv6 reservations' names → the reservation's DUID/MAC */
  private reservedNames = new Map<string, { duid?: string | undefined; mac?: string | undefined }>();
  /** called after changes that may change a name's address (the firewall re-resolves its forwards) */
  onChanged: (() => void) | undefined;

  constructor(private readonly deps: Dhcp6NamesDeps) {}

  /** The DHCPv6 reservations (start, reload): their names are theirs only. */
  setReservations(list: readonly Dhcp6Reservation[]): void {
    this.reservedNames = new Map(list.flatMap((r) => (r.hostname ? [[r.hostname.toLowerCase(), { duid: r.duid?.toLowerCase(), mac: r.mac?.toLowerCase() }] as const] : [])));
  }

  /** The journal's leases at start. */
  restore(leases: readonly Lease6[]): void {
    this.apply(leases.map((lease): Lease6Change => ({ kind: 'bind6', lease })));
  }

  /** Durable lease changes (transport, sweep). */
  apply(changes: readonly Lease6Change[]): void {
    const touched = new Set<string>();
    for (const c of changes) {
      if (c.kind === 'decline6') continue;
      const key = c.kind === 'bind6' ? `${c.lease.duid}|${c.lease.iaid}` : `${c.duid}|${c.iaid}`;
      const before = this.leases.get(key);
      if (c.kind === 'release6' && before?.address !== c.address) continue;
      if (before) {
        const g = guestKey(before);
        if (g) {
          touched.add(g);
          this.guests.get(g)?.delete(key); // publish() drops an empty guest
        }
        this.leases.delete(key);
        if (before.hostname) unindex(this.named, before.hostname, key);
      }
      if (c.kind === 'bind6') {
        const l = c.lease;
        const held: Held = { address: l.address, mac: l.mac?.toLowerCase(), hostname: l.hostname?.toLowerCase(), duid: l.duid };
        this.leases.set(key, held);
        if (held.hostname) index(this.named, held.hostname, key);
        const g = guestKey(held);
        if (g) {
          touched.add(g);
          index(this.guests, g, key);
        }
      }
    }
    for (const g of touched) this.publish(g);
    if (touched.size) this.onChanged?.();
  }

  /** The IPv6 address of a DHCPv6 lease named `name` (its own name, else its MAC's IPv4 name), for forwards. */
  addressOf(name: string): string | undefined {
    const wanted = name.toLowerCase();
    for (const key of this.named.get(wanted) ?? []) return this.leases.get(key)!.address;
    const byMac = this.deps.namesByMac?.();
    for (const held of this.leases.values()) {
      const n = held.hostname ?? (held.mac ? byMac?.get(held.mac) : undefined);
      if (n?.toLowerCase() === wanted) return held.address;
    }
    return undefined;
  }

  /** The DHCPv6 core's name policy for a client's FQDN name (see the header). */
  nameAllowed = (name: string, claimant: { duid: string; mac?: string }, binding = true): boolean => {
    const refusal = this.refusalOf(name, claimant);
    if (refusal && binding) {
      this.refusedCounts[refusal] = (this.refusedCounts[refusal] ?? 0) + 1; // issue 14: counted once per binding
      this.deps.logger?.warnLimited('dhcp6:name-refused', 'DHCPv6 client FQDN name refused', { name, reason: refusal, duid: claimant.duid });
    }
    return refusal === undefined;
  };

  /** Client FQDN names refused when binding, by reason (denied, record, held-v4, reserved, held-v6). */
  refused(): Readonly<Record<string, number>> {
    return { ...this.refusedCounts };
  }

  private readonly refusedCounts: Record<string, number> = {};

  private refusalOf(name: string, claimant: { duid: string; mac?: string }): 'denied' | 'record' | 'held-v4' | 'reserved' | 'held-v6' | undefined {
    const n = name.toLowerCase();
    if (this.deps.publishable && !this.deps.publishable(n)) return 'denied';
    if (this.deps.operatorName?.(n)) return 'record'; // operator records outrank every guest
    const mac = claimant.mac?.toLowerCase();
    const v4 = this.deps.v4HolderMac?.(n);
    if (v4 === null || (v4 !== undefined && v4.toLowerCase() !== mac)) return 'held-v4'; // null: held, but not by a guest
    const reserved = this.reservedNames.get(n);
    if (reserved && reserved.duid !== claimant.duid.toLowerCase() && (reserved.mac === undefined || reserved.mac !== mac)) return 'reserved';
    for (const key of this.named.get(n) ?? []) {
      const held = this.leases.get(key)!;
      if (held.duid !== claimant.duid && (held.mac === undefined || held.mac !== mac)) return 'held-v6';
    }
    return undefined;
  }

  /** Writes one guest's addresses into the table (an empty list forgets it). */
  private publish(g: string): void {
    const keys = [...(this.guests.get(g) ?? [])];
    if (keys.length === 0) this.guests.delete(g);
    const held = keys.map((k) => this.leases.get(k)!);
    const mac = g.startsWith('mac:') ? g.slice(4) : undefined;
    const name = held.find((h) => h.hostname)?.hostname ?? (mac ? this.deps.namesByMac?.().get(mac) : undefined) ?? (mac ? undefined : g.slice(5));
    this.deps.table?.set('dhcpv6', mac, mac ? name : g.slice(5), held.map((h) => h.address));
  }
}

function index(map: Map<string, Set<string>>, name: string, key: string): void {
  let set = map.get(name);
  if (!set) map.set(name, (set = new Set()));
  set.add(key);
}

function unindex(map: Map<string, Set<string>>, name: string, key: string): void {
  const set = map.get(name);
  set?.delete(key);
  if (set?.size === 0) map.delete(name);
}

function guestKey(held: Held): string | undefined {
  if (held.mac) return `mac:${held.mac}`;
  return held.hostname ? `name:${held.hostname}` : undefined;
}
