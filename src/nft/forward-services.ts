/**
 * Port forwards that would take natd's own services away from the guests. Pure.
 *
 * The guests reach natd's DNS (TCP and UDP 53) and DHCP (UDP 67; DHCPv6 UDP 547) on the bridge: queries and DHCP
 * renewals go to the gateway address, DHCP requests are broadcast, DHCPv6 ones multicast (a forward cannot be bound
 * to a multicast address) or unicast to the IPv6 gateway. A forward's DNAT rule matches in prerouting and output
 * whatever interface a packet comes from (ruleset.ts): one bound to ADDRESS keys on `ip daddr . proto . port`,
 * one on every local address on `fib daddr type local`. So a forward on one of those ports captures the guests'
 * packets exactly when its listen address is one they send them to:
 *
 *   every local address (no HOSTADDR)           the gateway is local: refused on TCP/UDP 53, UDP 67, UDP 547
 *                                               (and UDP 69 with TFTP on)
 *   the IPv4 gateway                            refused on TCP/UDP 53 and UDP 67 (and UDP 69 with TFTP on)
 *   the subnet's or the limited broadcast       refused on UDP 67 (DISCOVER, REQUEST and INFORM arrive there)
 *   the IPv6 gateway                            refused on TCP/UDP 53 and UDP 547
 *
 * With natd's TFTP server on (--enable-tftp, daemon/tftp.ts), PXE clients send their read requests to UDP 69 on the
 * IPv4 gateway (the DHCP reply's next-server): a forward there, or on every local address, would capture them the same
 * way, so UDP 69 joins the IPv4 gateway's list (only then: without TFTP natd has nothing on port 69).
 *
 * Any other host address (the uplink's, typically) is not where guests send these, so DNAT from outside to a guest's
 * port 53 or 67 there stays allowed. UDP 53 to the gateway is also untracked (raw_prerouting, `notrack`): DNAT never
 * sees the guests' queries, so such a forward would be dead for them and half-live for everything else.
 */
import { formatIpv4 } from '../net/ipv4.js';
import { parsableForwards, type ForwardProtocol, type PortForwardSpec } from './forward-spec.js';

/** Where natd serves the guests on the bridge; a check without an address skips that address's rule. */
export interface ServiceAddresses {
  /** the bridge's IPv4 address */
  readonly gateway?: number;
  /** the served subnet's broadcast address */
  readonly broadcast?: number;
  /** the bridge's IPv6 address natd serves (canonical text) */
  readonly gateway6?: string;
  /** natd's TFTP server is on (Config.tftp set): it serves UDP 69 on the IPv4 gateway */
  readonly tftp?: boolean;
}

type Family = 'ipv4' | 'ipv6' | 'both';
const LIMITED_BROADCAST = 0xffffffff;

/** natd's guest-facing service on this protocol and port in one family, e.g. "DNS (tcp 53)"; undefined when none. */
function serviceOn(protocol: ForwardProtocol, port: number, family: Family, tftp: boolean): string | undefined {
  if (port === 53) return `DNS (${protocol} 53)`;
  if (tftp && protocol === 'udp' && port === 69 && family !== 'ipv6') return 'TFTP (udp 69)';
  if (protocol === 'udp' && port === 67 && family !== 'ipv6') return 'DHCP (udp 67)';
  if (protocol === 'udp' && port === 547 && family !== 'ipv4') return 'DHCPv6 (udp 547)';
  return undefined;
}

const UNTRACKED = ' (and UDP 53 to the gateway is untracked, so the forward would never see the guests\' queries)';

/**
 * Why this forward would capture the guests' own DNS/DHCP (or TFTP) traffic to natd, or undefined when it would not.
 * The text names the forward's part (host address, port) and the service; callers put the spec or the field before it.
 */
export function serviceCaptureProblem(spec: PortForwardSpec, at: ServiceAddresses): string | undefined {
  const { protocol, hostPort } = spec;
  const tftp = at.tftp === true;
  if (spec.hostAddress === undefined && spec.hostAddress6 === undefined) {
    if (serviceOn(protocol, hostPort, 'both', tftp) === undefined) return undefined;
    const what = hostPort === 69 ? 'TFTP (PXE boot)' : 'DNS/DHCP';
    return `port ${hostPort} on every local address would capture the guests' ${what}; give a host address (e.g. ${protocol}:198.51.100.1:${hostPort}=web:${hostPort})`;
  }
  const instead = 'bind it to the uplink address instead';
  if (spec.hostAddress6 !== undefined) {
    const service = serviceOn(protocol, hostPort, 'ipv6', tftp);
    if (service === undefined || spec.hostAddress6 !== at.gateway6) return undefined;
    return `host address [${spec.hostAddress6}] is the bridge's IPv6 gateway, where natd serves the guests' ${service}: the forward would capture it; ${instead}`;
  }
  const host = spec.hostAddress!;
  const service = serviceOn(protocol, hostPort, 'ipv4', tftp);
  if (service === undefined) return undefined;
  if (host === at.gateway) {
    const untracked = protocol === 'udp' && hostPort === 53 ? UNTRACKED : '';
    return `host address ${formatIpv4(host)} is the bridge's gateway, where natd serves the guests' ${service}: the forward would capture it${untracked}; ${instead}`;
  }
  if (hostPort === 67 && (host === LIMITED_BROADCAST || host === at.broadcast)) {
    return `host address ${formatIpv4(host)} is a broadcast address the guests' DHCP requests go to: the forward would capture them; ${instead}`;
  }
  return undefined;
}

/** Where a forward listens: every local address, one IPv4 address or one IPv6 address. */
export function listenKind(spec: PortForwardSpec): 'any' | 'ipv4' | 'ipv6' {
  return spec.hostAddress6 !== undefined ? 'ipv6' : spec.hostAddress !== undefined ? 'ipv4' : 'any';
}

/**
 * The configuration's check: `forwards.N: "SPEC": problem` for each configured forward listening on `listen` that
 * would capture the guests' DNS/DHCP/TFTP at `at`. A spec that does not parse is left to the syntax check (config/parts.ts).
 * The loader checks the any-address forwards; the ones bound to the gateways once the subnet and the IPv6 prefix are
 * known (config/served-subnet.ts, ipv6/egress-config.ts), so check-config refuses what the daemon's firewall would.
 */
export function configuredCaptureProblems(texts: readonly string[], listen: 'any' | 'ipv4' | 'ipv6', at: ServiceAddresses): string[] {
  return parsableForwards(texts).flatMap(({ index, text, spec }) => {
    const problem = listenKind(spec) === listen ? serviceCaptureProblem(spec, at) : undefined;
    return problem === undefined ? [] : [`forwards.${index}: "${text.trim()}": ${problem}`];
  });
}
