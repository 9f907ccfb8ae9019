/**
 * issue 14: the one place a guest's name becomes its IPv6 address, for port forwards over IPv6 (nft/forward6.ts).
 * Today: a reservation's IPv6 address when the configuration carries one (`ipv6` on a reservation, which the
 * DHCPv6 work adds with dnsmasq's `dhcp-host=...,[fd00::5]`); otherwise a forward names its IPv6 guest by address
 * (`tcp:2222=[fd00::5]:22`). The lead re-points this at the IPv6 guest table (DHCPv6 leases, SLAAC neighbours)
 * once that exists: the firewall takes whatever function this returns, at start and on every reload.
 */
import type { NameResolver6 } from '../nft/forward6.js';
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';

/**
 * issue 14: the order (dhcp6-names.ts feeds the second): a reservation's IPv6 address, then the address of a DHCPv6
 * lease of that name, then the guest table's (`guests`: the addresses AAAA answers for the name, DHCPv6 and SLAAC;
 * the first in the /64). The firewall evaluates it at start, on reload, and when a DHCPv6 lease change changes the
 * answer for a name a forward uses (daemon/index.ts refreshForwards6).
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
