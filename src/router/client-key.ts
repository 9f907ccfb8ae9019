/**
 * Issue 17: which "client" a router connection counts against for the per-client connection limit. An IPv4 client
 * (or a v4-mapped IPv6 one) is its address. An IPv6 client is its /64: a site or a host gets at least a /64 and picks
 * any address in it at will (privacy addresses, one per connection if it likes), so counting full addresses would let
 * one client open its limit again from every new address. Link-local clients (fe80::/10, the same /64 for every host
 * on a link) are counted by their full address with its zone.
 */
import { formatIpv6, isLinkLocal, networkOf, parseIpv6 } from '../ipv6/address.js';
import { unmapIpv4 } from './proxy-protocol.js';

/** The bits of an IPv6 client address that name one client. */
export const IPV6_CLIENT_PREFIX = 64;

/** The per-client limit's key for a peer address as the socket reports it ("198.51.100.2", "2001:db8::1", …). */
export function clientLimitKey(address: string): string {
  const unmapped = unmapIpv4(address);
  if (!unmapped.includes(':')) return unmapped; // IPv4
  const [bare, zone] = unmapped.split('%') as [string, string | undefined];
  const bytes = parseIpv6(bare);
  if (!bytes) return unmapped; // not an address the kernel would report; counted as it is
  if (isLinkLocal(bytes)) return zone === undefined ? formatIpv6(bytes) : `${formatIpv6(bytes)}%${zone}`;
  return `${formatIpv6(networkOf(bytes, IPV6_CLIENT_PREFIX))}/${IPV6_CLIENT_PREFIX}`;
}
