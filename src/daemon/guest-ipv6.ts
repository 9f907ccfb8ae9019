/**
 * issue 14: the one place a guest's name becomes its IPv6 address, for port forwards over IPv6 (nft/forward6.ts):
 * a reservation's IPv6 address (`ipv6` on a reservation, dnsmasq's `dhcp-host=...,[fd00::5]`), else a DHCPv6 lease
 * of that name (daemon/dhcp6-names.ts), else what AAAA answers for it (the guest table: DHCPv6 and SLAAC addresses).
 * A forward may also name its IPv6 guest by address (`tcp:2222=[fd00::5]:22`).
 */
import type { NameResolver6 } from '../nft/forward6.js';
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';

/**
 * The later sources, in order: `dhcp6Lease` (a DHCPv6 lease's address), `guests` (the addresses AAAA answers for the
 * name; the first is taken). The firewall evaluates the lookup at start, on reload, and when a DHCPv6 lease change
 * changes the answer for a name a forward uses (daemon/forwards6.ts).
 */
export interface GuestIpv6Sources {
  dhcp6Lease?: (name: string) => string | undefined;
  guests?: (name: string) => readonly string[];
}

export function guestIpv6Resolver(reservations: readonly object[], sources: GuestIpv6Sources = {}): NameResolver6 {
  const byName = new Map<string, string>();
  for (const r of reservations as readonly { hostname?: unknown; ipv6?: unknown }[]) {
    const address = typeof r.ipv6 === 'string' ? parseIpv6(r.ipv6.replace(/^\[|\]$/g, '')) : undefined;
    if (typeof r.hostname === 'string' && address) byName.set(r.hostname.toLowerCase(), formatIpv6(address));
  }
  return (name) => byName.get(name.toLowerCase()) ?? sources.dhcp6Lease?.(name) ?? sources.guests?.(name)[0];
}
