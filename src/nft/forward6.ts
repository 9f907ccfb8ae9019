/**
 * issue 14: which address family a port forward serves, and its guest's address in each. Pure.
 *
 *   tcp:[2001:db8::1]:2222=web:22       IPv6 only, on that host address, to web's IPv6 address
 *   tcp:2222=[fd00::5]:22               IPv6 only, on every local IPv6 address of the host
 *   tcp:198.51.100.1:2222=web:22        IPv4 only (as before issue 14)
 *   tcp:2222=10.77.0.5:22               IPv4 only
 *   tcp:2222=web:22                     IPv4 to web's IPv4 address, and IPv6 to web's IPv6 address when natd serves
 *                                       IPv6 and knows one for the name (GuestResolvers.v6); one of the two is enough
 *
 * An IPv6 guest must be inside the /64 natd serves: the forward filter accepts DNAT'd flows to that prefix only, and
 * a forward to anywhere else would make the host an open relay.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from '../ipv6/address.js';
import { formatForwardSpec, isIpv6Only, resolveForward, type PortForward, type PortForward6, type PortForwardSpec } from './forward-spec.js';

export type NameResolver = (name: string) => number | undefined;
export type NameResolver6 = (name: string) => string | undefined;

export interface GuestResolvers {
  /** a reservation name → its IPv4 address */
  v4: NameResolver;
  /** present when natd serves IPv6: the /64 and a name → IPv6 address lookup (daemon/guest-ipv6.ts) */
  v6?: { network: Ipv6Bytes; lookup: NameResolver6 };
}

/** A forward's rules, per family; at least one is present. */
export interface ResolvedFamilies {
  v4?: PortForward;
  v6?: PortForward6;
}

function fail(spec: PortForwardSpec, problem: string): never {
  throw new NatdError(ErrorCodes.CONFIG, `port forward "${formatForwardSpec(spec)}": ${problem}`);
}

function inPrefix(address: string, network: Ipv6Bytes): boolean {
  const bytes = parseIpv6(address);
  return bytes !== undefined && sameBytes(networkOf(bytes, 64), network);
}

function forward6(spec: PortForwardSpec, guestAddress: string): PortForward6 {
  const f: PortForward6 = { family: 'ipv6', protocol: spec.protocol, hostPort: spec.hostPort, guestAddress, guestPort: spec.guestPort };
  if (spec.hostAddress6 !== undefined) f.hostAddress = spec.hostAddress6;
  return f;
}

/** The forward's rules in each family it serves; NatdError(CONFIG) naming the spec when it serves none. */
export function resolveFamilies(spec: PortForwardSpec, resolvers: GuestResolvers): ResolvedFamilies {
  if (!isIpv6Only(spec)) {
    if (spec.hostAddress !== undefined || 'address' in spec.guest) return { v4: resolveForward(spec, resolvers.v4) };
    const name = (spec.guest as { name: string }).name;
    const v4 = resolvers.v4(name);
    const v6 = resolvers.v6?.lookup(name);
    if (v4 === undefined && v6 === undefined) fail(spec, `no reservation named "${name}"`);
    const out: ResolvedFamilies = {};
    if (v4 !== undefined) out.v4 = resolveForward(spec, () => v4);
    if (v6 !== undefined && resolvers.v6 && inPrefix(v6, resolvers.v6.network)) out.v6 = forward6(spec, v6);
    if (!out.v4 && !out.v6) fail(spec, `the IPv6 address ${v6} of "${name}" is outside the prefix natd serves`);
    return out;
  }
  const v6 = resolvers.v6;
  if (!v6) fail(spec, 'is over IPv6, but natd serves no IPv6 on the bridge (give --subnet6 or --ipv6 auto)');
  let guest: string;
  if ('address6' in spec.guest) guest = spec.guest.address6;
  else {
    const name = (spec.guest as { name: string }).name;
    const found = v6.lookup(name);
    if (found === undefined) fail(spec, `no IPv6 address known for "${name}" (a reservation with an IPv6 address)`);
    guest = found;
  }
  if (!inPrefix(guest, v6.network)) fail(spec, `guest ${guest} is outside the IPv6 prefix natd serves`);
  return { v6: forward6(spec, guest) };
}

/** The family-wise rules of many forwards, flattened for the ruleset. */
export function splitFamilies(resolved: readonly ResolvedFamilies[]): { v4: PortForward[]; v6: PortForward6[] } {
  return { v4: resolved.flatMap((r) => (r.v4 ? [r.v4] : [])), v6: resolved.flatMap((r) => (r.v6 ? [r.v6] : [])) };
}
