/**
 * issue 14: the guests' IPv6 addresses in the served /64, for AAAA and ip6.arpa PTR answers. Fed by sources that
 * each speak for whole guests: today the neighbour table on the bridge (neighbours.ts, source 'slaac'); the lead
 * wires DHCPv6 leases in as source 'dhcpv6' through the same call:
 *
 *   set(source, mac, name, addresses)   replaces everything `source` said about that guest (mac, else name);
 *                                       an empty list forgets the guest
 *
 * How names follow (local-names.ts): a name held by a lease or reservation (IPv4 side, with its MAC) answers AAAA
 * with the addresses of that MAC, from every source; so a guest gets AAAA only under the name its own MAC holds and
 * can never add addresses to another guest's name without spoofing that guest's MAC. An entry with no MAC (a DHCPv6
 * client whose DUID carries none), and a DHCPv6 entry (its name vetted by natd), answer only for a name no IPv4
 * lease or reservation holds. PTR answers the
 * address's entry's name, and only when that name's AAAA answer contains the address (forward-confirmed).
 *
 * Hostile guests: what one guest and all of them can put here is bounded (PER_GUEST addresses per guest and
 * source, TOTAL addresses altogether); an address outside the /64 (link-local included), or already held by another
 * guest, is refused. Every refusal is counted (stats()). The first holder of an address keeps it until its own
 * source drops it: a guest answering neighbour solicitations for another guest's address does not take it over.
 */
import { formatIpv6, isLinkLocal, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from './address.js';

export type GuestAddressSource = 'slaac' | 'dhcpv6';

/** Addresses one guest may have per source (SLAAC: one stable + a few temporary ones; DHCPv6: one per IA). */
export const PER_GUEST = 8;
/** Addresses altogether, every guest and source. */
export const TOTAL = 8192;

export interface GuestAddressStats {
  /** addresses held now */
  addresses: number;
  /** guests (per source) with at least one address */
  guests: number;
  /** addresses refused, by reason; per claim: a source that repeats a claim (the SLAAC learner, every poll) counts
   * its refusals again, so these grow while a guest keeps over-claiming */
  refusedOutsidePrefix: number;
  refusedPerGuest: number;
  refusedTotal: number;
  /** held by another guest already */
  refusedConflict: number;
}

export interface AddressOwner {
  source: GuestAddressSource;
  mac: string | undefined;
  name: string | undefined;
}

interface Entry extends AddressOwner {
  key: string;
  /** canonical text (RFC 5952) */
  addresses: string[];
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export class GuestAddresses {
  private readonly entries = new Map<string, Entry>();
  /** canonical address text → the entry holding it */
  private readonly byAddress = new Map<string, Entry>();
  private readonly byMac = new Map<string, Entry[]>();
  private readonly byName = new Map<string, Entry[]>();
  private readonly counts = { refusedOutsidePrefix: 0, refusedPerGuest: 0, refusedTotal: 0, refusedConflict: 0 };

  constructor(private readonly network: Ipv6Bytes, private readonly limits: { perGuest: number; total: number } = { perGuest: PER_GUEST, total: TOTAL }) {}

  /**
   * Replaces what `source` says about one guest, identified by `mac` (lower- or upper-case, colon form) or, without
   * one, by `name`. `addresses`: IPv6 text; only addresses in the served /64 are kept, the first `perGuest` of them,
   * as long as the total allows and no other guest holds them. Returns the addresses kept.
   */
  set(source: GuestAddressSource, mac: string | undefined, name: string | undefined, addresses: readonly string[]): string[] {
    const macKey = mac !== undefined && MAC.test(mac.toLowerCase()) ? mac.toLowerCase() : undefined;
    const nameKey = name ? name.toLowerCase().replace(/\.$/, '') : undefined;
    if (macKey === undefined && nameKey === undefined) return [];
    const key = `${source}|${macKey ?? `name:${nameKey}`}`;
    const previous = this.entries.get(key);
    if (previous) this.detach(previous);
    const kept: string[] = [];
    for (const text of addresses) {
      const bytes = parseIpv6(text);
      if (!bytes || isLinkLocal(bytes) || !sameBytes(networkOf(bytes, 64), this.network)) {
        this.counts.refusedOutsidePrefix++;
        continue;
      }
      const canonical = formatIpv6(bytes);
      if (kept.includes(canonical)) continue;
      if (this.byAddress.has(canonical)) {
        this.counts.refusedConflict++;
        continue;
      }
      if (kept.length >= this.limits.perGuest) {
        this.counts.refusedPerGuest++;
        continue;
      }
      if (this.byAddress.size + kept.length >= this.limits.total) {
        this.counts.refusedTotal++;
        continue;
      }
      kept.push(canonical);
    }
    if (kept.length > 0) this.attach({ key, source, mac: macKey, name: nameKey, addresses: kept });
    return kept;
  }

  /** Everything `source` said, forgotten (a source that stops). */
  clearSource(source: GuestAddressSource): void {
    for (const entry of [...this.entries.values()]) if (entry.source === source) this.detach(entry);
  }

  /** The addresses of the guest with this MAC, from every source. */
  addressesOfMac(mac: string): string[] {
    return (this.byMac.get(mac.toLowerCase()) ?? []).flatMap((e) => e.addresses);
  }

  /**
   * The addresses of entries that have no MAC, or come from DHCPv6 (whose name is the lease's: a reservation's or
   * one natd allowed, daemon/dhcp6-names.ts), and this name. LocalNames asks only for a name no IPv4 lease or
   * reservation holds.
   */
  addressesOfName(name: string): string[] {
    return (this.byName.get(name.toLowerCase()) ?? []).filter((e) => e.mac === undefined || e.source === 'dhcpv6').flatMap((e) => e.addresses);
  }

  /** Who holds the address (16 bytes or text), or undefined. */
  ownerOf(address: Ipv6Bytes | string): AddressOwner | undefined {
    const bytes = typeof address === 'string' ? parseIpv6(address) : address;
    const entry = bytes ? this.byAddress.get(formatIpv6(bytes)) : undefined;
    return entry ? { source: entry.source, mac: entry.mac, name: entry.name } : undefined;
  }

  /** Every entry, for status and tests. */
  list(): { source: GuestAddressSource; mac?: string; name?: string; addresses: string[] }[] {
    return [...this.entries.values()].map((e) => ({ source: e.source, ...(e.mac ? { mac: e.mac } : {}), ...(e.name ? { name: e.name } : {}), addresses: [...e.addresses] }));
  }

  stats(): GuestAddressStats {
    return { addresses: this.byAddress.size, guests: this.entries.size, ...this.counts };
  }

  /** issue 18: counts every change of the table (LocalNames.version) */
  get version(): number {
    return this.changes;
  }

  private changes = 0;

  private attach(entry: Entry): void {
    this.changes++;
    this.entries.set(entry.key, entry);
    for (const a of entry.addresses) this.byAddress.set(a, entry);
    if (entry.mac) push(this.byMac, entry.mac, entry);
    if (entry.name) push(this.byName, entry.name, entry);
  }

  private detach(entry: Entry): void {
    this.changes++;
    this.entries.delete(entry.key);
    for (const a of entry.addresses) if (this.byAddress.get(a) === entry) this.byAddress.delete(a);
    if (entry.mac) pull(this.byMac, entry.mac, entry);
    if (entry.name) pull(this.byName, entry.name, entry);
  }
}

function push(index: Map<string, Entry[]>, key: string, entry: Entry): void {
  index.set(key, [...(index.get(key) ?? []), entry]);
}

function pull(index: Map<string, Entry[]>, key: string, entry: Entry): void {
  const rest = (index.get(key) ?? []).filter((e) => e !== entry);
  if (rest.length) index.set(key, rest);
  else index.delete(key);
}
