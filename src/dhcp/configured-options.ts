/**
 * The DHCP options natd's configuration fixes (mask, router, DNS, domain, MTU, search list, classless routes), encoded
 * once. The DHCP core encodes them with encodeConfiguredOptions when it starts; the configuration check asks
 * dhcpOptionProblems, which runs the same encoders, so `natd check-config` refuses what the core would refuse.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import type { Subnet } from '../net/ipv4.js';
import { encodeClasslessRoutes, encodeDomainSearch, encodeIpv4List, encodeString, encodeU16, encodeU32, type ClasslessRoute } from './codec.js';
import { DhcpOption } from './types.js';

export interface ConfiguredOptionsInput {
  subnet: Subnet;
  router: number;
  dnsServers: readonly number[];
  domain?: string | undefined;
  searchDomains?: readonly string[] | undefined;
  classlessRoutes?: readonly ClasslessRoute[] | undefined;
  /** option 26 (--mtu) */
  mtu?: number | undefined;
}

/** RFC 3442 §2: a client given option 121 ignores option 3, so the default route must be in 121 too. */
function withDefaultRoute(routes: readonly ClasslessRoute[], router: number): ClasslessRoute[] {
  const all = [...routes];
  if (router !== 0 && !all.some((r) => r.prefix === 0)) all.push({ network: 0, prefix: 0, router });
  return all;
}

/** Throws NatdError(CONFIG) when a value cannot be encoded. */
export function encodeConfiguredOptions(c: ConfiguredOptionsInput): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  try {
    out.set(DhcpOption.SUBNET_MASK, encodeU32(c.subnet.mask >>> 0));
    if (c.router !== 0) out.set(DhcpOption.ROUTER, encodeIpv4List([c.router]));
    if (c.dnsServers.length > 0) out.set(DhcpOption.DNS_SERVERS, encodeIpv4List([...c.dnsServers]));
    if (c.domain) out.set(DhcpOption.DOMAIN_NAME, encodeString(c.domain));
    if (c.mtu !== undefined) out.set(DhcpOption.MTU, encodeU16(c.mtu));
    out.set(DhcpOption.BROADCAST_ADDRESS, encodeU32(c.subnet.broadcast >>> 0));
    if (c.searchDomains && c.searchDomains.length > 0) out.set(DhcpOption.DOMAIN_SEARCH, encodeDomainSearch([...c.searchDomains]));
    if (c.classlessRoutes && c.classlessRoutes.length > 0) out.set(DhcpOption.CLASSLESS_ROUTES, encodeClasslessRoutes(withDefaultRoute(c.classlessRoutes, c.router)));
  } catch (err) {
    throw new NatdError(ErrorCodes.CONFIG, `DHCP options cannot be encoded: ${(err as Error).message}`, { cause: err });
  }
  return out;
}

/**
 * The configured values the option encoders refuse, each naming its field (config-time check). `searchField`: the
 * field the search list came from ('domain' when it is the domain alone).
 */
export function dhcpOptionProblems(v: { searchDomains: readonly string[]; routes: readonly ClasslessRoute[] }, searchField: 'searchDomains' | 'domain' = 'searchDomains'): string[] {
  const problems: string[] = [];
  v.searchDomains.forEach((d, i) => {
    try {
      encodeDomainSearch([d]);
    } catch (err) {
      const field = searchField === 'domain' ? 'domain' : `searchDomains.${i}`;
      problems.push(`${field}: ${(err as Error).message} (DHCP options 15 and 119 take names of at most 255 bytes)`);
    }
  });
  v.routes.forEach((r, i) => {
    try {
      encodeClasslessRoutes([r]);
    } catch (err) {
      problems.push(`routes.${i}: ${(err as Error).message}`);
    }
  });
  return problems;
}
