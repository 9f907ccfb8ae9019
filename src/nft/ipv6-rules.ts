/**
 * issue 14: the IPv6 rules in natd's inet table, when natd serves IPv6 on the bridge (--subnet6 / --ipv6 auto).
 * Pure, like ruleset.ts, which places them: forward guests' IPv6 out and the replies back, masquerade the prefix
 * out of every other interface (NAT66, as libvirt's <nat ipv6='yes'/> and Incus ipv6.nat), let the ICMPv6 errors
 * RFC 4890 4.3.1 says must never be dropped reach the guests, and let guests reach natd's DNS on the IPv6 gateway
 * and DHCPv6 (udp 547). Neighbour discovery and router solicitations to the host pass the input chain's ICMPv6
 * rule (ruleset.ts acceptIcmpv6).
 */
import type { NftExpression, NftStatement } from './schema.js';

export interface Ipv6RulesetInput {
  /** the /64 network, e.g. "fd00:10:10::" */
  network: string;
  prefix: number;
  /** the gateway on the bridge, e.g. "fd00:10:10::1" */
  gateway: string;
}

type RuleBody = { expr: NftStatement[]; comment: string };

const eq = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: '==', left, right } });
const ne = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: '!=', left, right } });
const has = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: 'in', left, right } });
const iifname: NftExpression = { meta: { key: 'iifname' } };
const oifname: NftExpression = { meta: { key: 'oifname' } };
const ip6Saddr: NftExpression = { payload: { protocol: 'ip6', field: 'saddr' } };
const ip6Daddr: NftExpression = { payload: { protocol: 'ip6', field: 'daddr' } };
const accept: NftStatement = { accept: null };
const prefixOf = (v6: Ipv6RulesetInput): NftExpression => ({ prefix: { addr: v6.network, len: v6.prefix } });

/** ICMPv6 errors that must reach the guests (RFC 4890 4.3.1), also when conntrack does not relate them. */
export const ICMPV6_TRANSIT_ERRORS = ['destination-unreachable', 'packet-too-big', 'time-exceeded', 'parameter-problem'] as const;

/** postrouting: oifname != "br0" ip6 saddr fd00:10:10::/64 ip6 daddr != fd00:10:10::/64 masquerade */
export function ipv6Masquerade(bridge: string, v6: Ipv6RulesetInput): RuleBody[] {
  return [{
    expr: [ne(oifname, bridge), eq(ip6Saddr, prefixOf(v6)), ne(ip6Daddr, prefixOf(v6)), ne(ip6Daddr, { prefix: { addr: 'fe80::', len: 10 } }), { masquerade: null }],
    comment: 'natd: guests to outside over IPv6 (NAT66)',
  }];
}

/** forward, before the final rejects */
export function ipv6Forward(bridge: string, v6: Ipv6RulesetInput): RuleBody[] {
  return [
    // oifname "br0" ip6 daddr PREFIX ct state established,related accept
    { expr: [eq(oifname, bridge), eq(ip6Daddr, prefixOf(v6)), has({ ct: { key: 'state' } }, ['established', 'related']), accept], comment: 'natd: IPv6 replies to guests' },
    // oifname "br0" ip6 daddr PREFIX icmpv6 type { destination-unreachable, packet-too-big, … } accept
    { expr: [eq(oifname, bridge), eq(ip6Daddr, prefixOf(v6)), eq({ payload: { protocol: 'icmpv6', field: 'type' } }, { set: [...ICMPV6_TRANSIT_ERRORS] }), accept], comment: 'natd: ICMPv6 errors to guests (RFC 4890)' },
    // iifname "br0" ip6 saddr PREFIX accept
    { expr: [eq(iifname, bridge), eq(ip6Saddr, prefixOf(v6)), accept], comment: 'natd: guests to anywhere over IPv6' },
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
