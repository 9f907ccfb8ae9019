/**
 * issue 14: the IPv6 rules in natd's inet table, when natd serves IPv6 on the bridge (--subnet6 / --ipv6 auto).
 * Pure, like ruleset.ts, which places them: forward guests' IPv6 out and the replies back, masquerade the prefix
 * out of every other interface (NAT66, as libvirt's <nat ipv6='yes'/> and Incus ipv6.nat), let the ICMPv6 errors
 * RFC 4890 4.3.1 says must never be dropped reach the guests, and let guests reach natd's DNS on the IPv6 gateway
 * and DHCPv6 (udp 547). Neighbour discovery and router solicitations to the host pass the input chain's ICMPv6
 * rule (ruleset.ts acceptIcmpv6).
 *
 * Egress modes (--ipv6-mode):
 *   nat     (default) the masquerade above; from outside only replies and port forwards reach the guests.
 *   routed  a global prefix the operator routes to the host: no masquerade, guests keep their own source address,
 *           and any host may open connections to the guests' prefix, as libvirt's <forward mode='route'> does
 *           (its FORWARD rules: `-d PREFIX -o BRIDGE -j ACCEPT` with no conntrack state, and `-s PREFIX -i BRIDGE
 *           -j ACCEPT`). The guests' own firewalls protect them, as on any routed LAN.
 * In both modes: a source address from the bridge outside the prefix (and not link-local or ::) is dropped, in the
 * forward chain and before the host answers it in the input chain (IPv6 has no rp_filter sysctl); port forwards
 * over IPv6 are DNATed through their own maps (fwd6_*), accepted in forward, and masqueraded when a guest reaches
 * another guest through one (hairpin).
 */
import type { PortForward6 } from './forward-spec.js';
import type { NftElementKey, NftExpression, NftMapElement, NftStatement } from './schema.js';

export type Ipv6Mode = 'nat' | 'routed';

export interface Ipv6RulesetInput {
  /** the /64 network, e.g. "fd00:10:10::" */
  network: string;
  prefix: number;
  /** the gateway on the bridge, e.g. "fd00:10:10::1" */
  gateway: string;
  /** --ipv6-mode; default nat */
  mode?: Ipv6Mode;
}

type RuleBody = { expr: NftStatement[]; comment: string };

const eq = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: '==', left, right } });
const ne = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: '!=', left, right } });
const has = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: 'in', left, right } });
const iifname: NftExpression = { meta: { key: 'iifname' } };
const oifname: NftExpression = { meta: { key: 'oifname' } };
const ip6Saddr: NftExpression = { payload: { protocol: 'ip6', field: 'saddr' } };
const ip6Daddr: NftExpression = { payload: { protocol: 'ip6', field: 'daddr' } };
const l4proto: NftExpression = { meta: { key: 'l4proto' } };
const thDport: NftExpression = { payload: { protocol: 'th', field: 'dport' } };
const accept: NftStatement = { accept: null };
const prefixOf = (v6: Ipv6RulesetInput): NftExpression => ({ prefix: { addr: v6.network, len: v6.prefix } });
const LINK_LOCAL: NftExpression = { prefix: { addr: 'fe80::', len: 10 } };

/** ICMPv6 errors that must reach the guests (RFC 4890 4.3.1), also when conntrack does not relate them. */
export const ICMPV6_TRANSIT_ERRORS = ['destination-unreachable', 'packet-too-big', 'time-exceeded', 'parameter-problem'] as const;

/** postrouting: NAT66 (nat mode only), and hairpin for IPv6 port forwards (both modes) */
export function ipv6Masquerade(bridge: string, v6: Ipv6RulesetInput): RuleBody[] {
  // oifname "br0" ip6 saddr PREFIX ip6 daddr PREFIX ct status dnat masquerade
  const hairpin: RuleBody = {
    expr: [eq(oifname, bridge), eq(ip6Saddr, prefixOf(v6)), eq(ip6Daddr, prefixOf(v6)), has({ ct: { key: 'status' } }, 'dnat'), { masquerade: null }],
    comment: 'natd: hairpin IPv6 port forwards',
  };
  if (v6.mode === 'routed') return [hairpin];
  return [hairpin, {
    // oifname != "br0" ip6 saddr PREFIX ip6 daddr != PREFIX ip6 daddr != fe80::/10 masquerade
    expr: [ne(oifname, bridge), eq(ip6Saddr, prefixOf(v6)), ne(ip6Daddr, prefixOf(v6)), ne(ip6Daddr, LINK_LOCAL), { masquerade: null }],
    comment: 'natd: guests to outside over IPv6 (NAT66)',
  }];
}

/** iifname "br0" ip6 saddr != PREFIX ip6 saddr != fe80::/10 ip6 saddr != :: drop   (first in forward and input) */
export function ipv6SpoofGuard(bridge: string, v6: Ipv6RulesetInput): RuleBody {
  return {
    expr: [eq(iifname, bridge), ne(ip6Saddr, prefixOf(v6)), ne(ip6Saddr, LINK_LOCAL), ne(ip6Saddr, '::'), { drop: null }],
    comment: 'natd: IPv6 from the bridge with a source outside the prefix (spoofed)',
  };
}

/** forward, before the final rejects */
export function ipv6Forward(bridge: string, v6: Ipv6RulesetInput): RuleBody[] {
  return [
    // oifname "br0" ip6 daddr PREFIX ct state established,related accept
    { expr: [eq(oifname, bridge), eq(ip6Daddr, prefixOf(v6)), has({ ct: { key: 'state' } }, ['established', 'related']), accept], comment: 'natd: IPv6 replies to guests' },
    // oifname "br0" ip6 daddr PREFIX icmpv6 type { destination-unreachable, packet-too-big, … } accept
    { expr: [eq(oifname, bridge), eq(ip6Daddr, prefixOf(v6)), eq({ payload: { protocol: 'icmpv6', field: 'type' } }, { set: [...ICMPV6_TRANSIT_ERRORS] }), accept], comment: 'natd: ICMPv6 errors to guests (RFC 4890)' },
    // oifname "br0" ip6 daddr PREFIX ct status dnat accept
    { expr: [eq(oifname, bridge), eq(ip6Daddr, prefixOf(v6)), has({ ct: { key: 'status' } }, 'dnat'), accept], comment: 'natd: IPv6 port forwards to guests' },
    // iifname "br0" ip6 saddr PREFIX accept
    { expr: [eq(iifname, bridge), eq(ip6Saddr, prefixOf(v6)), accept], comment: 'natd: guests to anywhere over IPv6' },
    // routed: oifname "br0" ip6 daddr PREFIX accept
    ...(v6.mode === 'routed' ? [{ expr: [eq(oifname, bridge), eq(ip6Daddr, prefixOf(v6)), accept], comment: 'natd: routed IPv6 prefix, anyone to guests (libvirt forward mode=route)' }] : []),
  ];
}

/** input, before the final reject: DNS on the IPv6 gateway and DHCPv6 */
export function ipv6Input(bridge: string, v6: Ipv6RulesetInput): RuleBody[] {
  const dns = (protocol: 'udp' | 'tcp'): RuleBody => ({
    expr: [eq(iifname, bridge), eq(ip6Daddr, v6.gateway), eq({ payload: { protocol, field: 'dport' } }, 53), accept],
    comment: `natd: DNS (${protocol}) over IPv6 from guests`,
  });
  return [
    dns('udp'),
    dns('tcp'),
    { expr: [eq(iifname, bridge), eq({ payload: { protocol: 'udp', field: 'dport' } }, 547), accept], comment: 'natd: DHCPv6 from guests' },
  ];
}

// ---- IPv6 port forwards: maps keyed as the IPv4 ones (ruleset.ts), data ipv6_addr

export const MAP6 = {
  anyAddr: 'fwd6_any_addr',
  anyPort: 'fwd6_any_port',
  boundAddr: 'fwd6_bound_addr',
  boundPort: 'fwd6_bound_port',
} as const;

export function forward6Key(f: PortForward6): NftElementKey {
  return f.hostAddress === undefined ? { concat: [f.protocol, f.hostPort] } : { concat: [f.hostAddress, f.protocol, f.hostPort] };
}

/** A forward's map key as text ("[2001:db8::1] . tcp . 2222", "tcp . 2222"); equal keys collide in a map. */
export function forward6KeyText(f: PortForward6): string {
  return f.hostAddress === undefined ? `${f.protocol} . ${f.hostPort}` : `[${f.hostAddress}] . ${f.protocol} . ${f.hostPort}`;
}

export function maps6For(f: PortForward6): { addr: string; port: string } {
  return f.hostAddress === undefined ? { addr: MAP6.anyAddr, port: MAP6.anyPort } : { addr: MAP6.boundAddr, port: MAP6.boundPort };
}

export const addr6Element = (f: PortForward6): NftMapElement => [forward6Key(f), f.guestAddress];
export const port6Element = (f: PortForward6): NftMapElement => [forward6Key(f), f.guestPort];

/** The four IPv6 forward maps: name, key type, data type, elements. */
export function ipv6ForwardMaps(forwards: readonly PortForward6[]): { name: string; type: ('ipv6_addr' | 'inet_proto' | 'inet_service')[]; map: 'ipv6_addr' | 'inet_service'; elem: NftMapElement[] }[] {
  const any = forwards.filter((f) => f.hostAddress === undefined);
  const bound = forwards.filter((f) => f.hostAddress !== undefined);
  return [
    { name: MAP6.anyAddr, type: ['inet_proto', 'inet_service'], map: 'ipv6_addr', elem: any.map(addr6Element) },
    { name: MAP6.anyPort, type: ['inet_proto', 'inet_service'], map: 'inet_service', elem: any.map(port6Element) },
    { name: MAP6.boundAddr, type: ['ipv6_addr', 'inet_proto', 'inet_service'], map: 'ipv6_addr', elem: bound.map(addr6Element) },
    { name: MAP6.boundPort, type: ['ipv6_addr', 'inet_proto', 'inet_service'], map: 'inet_service', elem: bound.map(port6Element) },
  ];
}

const dnat6 = (key: NftExpression, addr: string, port: string): NftStatement =>
  ({ dnat: { family: 'ip6', addr: { map: { key, data: `@${addr}` } }, port: { map: { key, data: `@${port}` } } } });
const bound6Key: NftExpression = { concat: [ip6Daddr, l4proto, thDport] };
const any6Key: NftExpression = { concat: [l4proto, thDport] };

/** prerouting (and output, fromHost): the IPv6 DNAT rules, bound forwards first */
export function ipv6Dnat(fromHost: boolean): RuleBody[] {
  return [
    // dnat ip6 to ip6 daddr . meta l4proto . th dport map @fwd6_bound_addr : … map @fwd6_bound_port
    { expr: [dnat6(bound6Key, MAP6.boundAddr, MAP6.boundPort)], comment: 'natd: IPv6 port forwards on one host address' },
    // meta nfproto ipv6 [ip6 daddr != ::1] fib daddr type local dnat ip6 to meta l4proto . th dport map @fwd6_any_addr : …
    {
      expr: [
        eq({ meta: { key: 'nfproto' } }, 'ipv6'),
        ...(fromHost ? [ne(ip6Daddr, '::1')] : []),
        eq({ fib: { result: 'type', flags: ['daddr'] } }, 'local'),
        dnat6(any6Key, MAP6.anyAddr, MAP6.anyPort),
      ],
      comment: fromHost ? 'natd: the host reaching its own IPv6 port forwards' : 'natd: IPv6 port forwards on any local address',
    },
  ];
}
