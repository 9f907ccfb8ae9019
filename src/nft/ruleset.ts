/**
 * The pure ruleset builder: configuration in, one nft JSON batch out (no I/O). Everything natd does in nftables is
 * in ONE table it owns, rebuilt whole on every full apply; port forwards are map elements, so adding or removing
 * one is an element change (`buildForwardChange`) and never rebuilds the table.
 *
 * Family `inet`, not `ip`: masquerade and DNAT are IPv4-only (their rules say `ip …` / `dnat ip to`), but rejecting
 * IPv6 that is routed through the bridge needs a table that sees IPv6 too. NAT chains in an inet table need
 * Linux >= 5.2.
 *
 * Port forwards use two maps with the same key, one giving the guest address and one the guest port, because
 * nft 1.0.6 cannot create a map with concatenated data from JSON. Forwards bound to one host address are keyed
 * `ip daddr . meta l4proto . th dport`; forwards on any local address are keyed `meta l4proto . th dport` and
 * matched with `fib daddr type local`. The bound maps are consulted first, so a bound forward wins.
 *
 * `rules/natd.template.json` is this builder's output for EXAMPLE_INPUT and `rules/natd.nft` the same in nft text;
 * a golden test keeps all three in step.
 */
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, formatSubnet, makeSubnet, subnetContains, type Subnet } from '../net/ipv4.js';
import { formatForwardSpec, type PortForward, type PortForward6 } from './forward-spec.js';
// issue 14: IPv6 for the guests
import {
  addr6Element, forward6Key, forward6KeyText, ipv6Dnat, ipv6Forward, ipv6ForwardMaps, ipv6Input, ipv6Masquerade, ipv6SpoofGuard, maps6For, port6Element,
  type Ipv6RulesetInput,
} from './ipv6-rules.js';
import type {
  NftBatch,
  NftChain,
  NftCommand,
  NftElementKey,
  NftExpression,
  NftFamily,
  NftMap,
  NftMapElement,
  NftRule,
  NftSet,
  NftStatement,
} from './schema.js';

export type { PortForward } from './forward-spec.js';

// ---- names first

export const TABLE_FAMILY: NftFamily = 'inet';

export const CHAIN = {
  prerouting: 'prerouting',
  output: 'output',
  postrouting: 'postrouting',
  forward: 'forward',
  input: 'input',
  // UDP DNS with the guests untracked (dns-notrack block below)
  rawPrerouting: 'raw_prerouting',
  rawOutput: 'raw_output',
} as const;

/** Integer priorities (the named ones written as strings make hook-less chains in nft 1.0.6 JSON). */
export const PRIORITY = {
  dstnat: -100,
  srcnat: 100,
  filter: 0,
  /** before conntrack (-200): where notrack must run */
  raw: -300,
} as const;

export const MAP = {
  /** `meta l4proto . th dport` → guest address / guest port, for forwards on any local address */
  anyAddr: 'fwd_any_addr',
  anyPort: 'fwd_any_port',
  /** `ip daddr . meta l4proto . th dport` → guest address / guest port, for forwards bound to one host address */
  boundAddr: 'fwd_bound_addr',
  boundPort: 'fwd_bound_port',
} as const;

const NEVER_MASQUERADE_TO = { multicastLocal: { addr: '224.0.0.0', len: 24 }, broadcast: '255.255.255.255' } as const;
const LOOPBACK = { addr: '127.0.0.0', len: 8 } as const;
export const DEFAULT_MASQUERADE_PORTS: [number, number] = [1024, 65535];

export interface RulesetInput {
  /** Table name, e.g. 'natd-br0'. */
  table: string;
  bridge: string;
  subnet: Subnet;
  gateway: number;
  /** Source-port range for masqueraded TCP/UDP; default [1024, 65535]. */
  masqueradePorts?: [number, number];
  forwards: PortForward[];
  /** Accept IPv6 routed through the bridge instead of rejecting it. */
  allowIpv6Forward?: boolean;
  /** Host services guests may reach besides DHCP, DNS and ping (default none); 'all': the input chain rejects nothing. */
  guestToHost?: readonly HostService[] | 'all';
  /** issue 16: natd's TFTP server answers on the gateway's udp 69 */
  tftp?: boolean;
  /** issue 14: the IPv6 prefix natd serves on the bridge (forwarding, NAT66 or routed, DNS/DHCPv6 to the host) */
  ipv6?: Ipv6RulesetInput;
  /** issue 14: port forwards over IPv6 (only with ipv6) */
  forwards6?: PortForward6[];
  /** issue 17: the name router's routed ports (a named set, changed at runtime by elements) and its listen address */
  expose?: { ports: readonly number[]; listen?: number };
}

/** A host port (or range) guests may reach on the host itself, e.g. tcp 2049 for an NFS export to the guests. */
export interface HostService {
  protocol: 'tcp' | 'udp';
  ports: readonly [number, number];
}

/** The documented example behind rules/natd.template.json and rules/natd.nft. */
export const EXAMPLE_INPUT: RulesetInput = {
  table: 'natd-br0',
  bridge: 'br0',
  subnet: makeSubnet(0x0a4d0000, 24), // 10.77.0.0/24
  gateway: 0x0a4d0001, // 10.77.0.1
  masqueradePorts: [1024, 65535],
  forwards: [
    { protocol: 'tcp', hostPort: 2222, guestAddress: 0x0a4d0032, guestPort: 22 }, // tcp:2222=10.77.0.50:22
    { protocol: 'udp', hostPort: 5353, guestAddress: 0x0a4d0032, guestPort: 53 }, // udp:5353=10.77.0.50:53
    { protocol: 'tcp', hostAddress: 0xc6336401, hostPort: 8080, guestAddress: 0x0a4d0033, guestPort: 80 }, // tcp:198.51.100.1:8080=10.77.0.51:80
  ],
};

// ---- expression helpers

const ipSaddr: NftExpression = { payload: { protocol: 'ip', field: 'saddr' } };
const ipDaddr: NftExpression = { payload: { protocol: 'ip', field: 'daddr' } };
const l4proto: NftExpression = { meta: { key: 'l4proto' } };
const thDport: NftExpression = { payload: { protocol: 'th', field: 'dport' } };
const iifname: NftExpression = { meta: { key: 'iifname' } };
const oifname: NftExpression = { meta: { key: 'oifname' } };

const eq = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: '==', left, right } });
const ne = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: '!=', left, right } });
/** A flag test (`ct status dnat`, `ct state established,related`). In JSON this is op "in": op "==" compiles to an
 *  exact comparison of the whole bitmask, which never matches a real connection. */
const has = (left: NftExpression, right: NftExpression): NftStatement => ({ match: { op: 'in', left, right } });
const accept: NftStatement = { accept: null };
const rejectPortUnreachable: NftStatement = { reject: { type: 'icmpx', expr: 'port-unreachable' } };

function subnetPrefix(subnet: Subnet): NftExpression {
  return { prefix: { addr: formatIpv4(subnet.network), len: subnet.prefix } };
}

/** `dnat ip to KEY map @addrMap : KEY map @portMap` */
function dnatThroughMaps(key: NftExpression, addrMap: string, portMap: string): NftStatement {
  return { dnat: { family: 'ip', addr: { map: { key, data: `@${addrMap}` } }, port: { map: { key, data: `@${portMap}` } } } };
}

/** A bound key (`ip daddr . meta l4proto . th dport`) or an any-address key (`meta l4proto . th dport`). */
const boundKey: NftExpression = { concat: [ipDaddr, l4proto, thDport] };
const anyKey: NftExpression = { concat: [l4proto, thDport] };

// ---- the table: validation, chains, maps

const NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;
const IFNAME_RE = /^[^\s/"\\]{1,15}$/;

function invalid(message: string): never {
  throw new NatdError(ErrorCodes.CONFIG, `nft ruleset: ${message}`);
}

/** A forward's map key as text, e.g. "tcp . 2222" or "198.51.100.1 . tcp . 8080": equal keys collide in a map. */
export function forwardKey(forward: PortForward): string {
  const tail = `${forward.protocol} . ${forward.hostPort}`;
  return forward.hostAddress === undefined ? tail : `${formatIpv4(forward.hostAddress)} . ${tail}`;
}

function validatePort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) invalid(`${what} ${port} is not a port in 1-65535`);
}

function validateForwards(forwards: readonly PortForward[]): void {
  const seen = new Set<string>();
  for (const f of forwards) {
    validatePort(f.hostPort, `forward ${formatForwardSpec(f)}: host port`);
    validatePort(f.guestPort, `forward ${formatForwardSpec(f)}: guest port`);
    const key = forwardKey(f);
    if (seen.has(key)) invalid(`two forwards use ${key}`);
    seen.add(key);
  }
}

/** issue 14: the IPv6 forwards, as validateForwards; they need the IPv6 prefix. */
function validateForwards6(forwards: readonly PortForward6[], ipv6: Ipv6RulesetInput | undefined): void {
  if (forwards.length && !ipv6) invalid(`IPv6 forward ${formatForwardSpec(forwards[0]!)} without an IPv6 prefix on the bridge`);
  const seen = new Set<string>();
  for (const f of forwards) {
    validatePort(f.hostPort, `forward ${formatForwardSpec(f)}: host port`);
    validatePort(f.guestPort, `forward ${formatForwardSpec(f)}: guest port`);
    const key = forward6KeyText(f);
    if (seen.has(key)) invalid(`two IPv6 forwards use ${key}`);
    seen.add(key);
  }
}

function validateInput(input: RulesetInput): [number, number] {
  if (!NAME_RE.test(input.table)) invalid(`table name "${input.table}" is not a valid nft identifier`);
  if (!IFNAME_RE.test(input.bridge)) invalid(`bridge name "${input.bridge}" is not an interface name`);
  if (!subnetContains(input.subnet, input.gateway)) {
    invalid(`gateway ${formatIpv4(input.gateway)} is outside ${formatSubnet(input.subnet)}`);
  }
  const ports = input.masqueradePorts ?? DEFAULT_MASQUERADE_PORTS;
  validatePort(ports[0], 'masquerade port range start');
  validatePort(ports[1], 'masquerade port range end');
  if (ports[0] > ports[1]) invalid(`masquerade port range ${ports[0]}-${ports[1]} is empty`);
  validateForwards(input.forwards);
  validateForwards6(input.forwards6 ?? [], input.ipv6); // issue 14
  if (input.guestToHost !== 'all') {
    for (const { ports: [first, last] } of input.guestToHost ?? []) {
      validatePort(first, 'guest-to-host port');
      validatePort(last, 'guest-to-host port');
      if (first > last) invalid(`guest-to-host port range ${first}-${last} is empty`);
    }
  }
  return ports;
}

function baseChain(input: RulesetInput, name: string, type: NftChain['type'], hook: NftChain['hook'], prio: number): NftChain {
  return { family: TABLE_FAMILY, table: input.table, name, type, hook, prio, policy: 'accept' };
}

/** The seven base chains, all `policy accept`: natd decides nothing about traffic that does not touch its bridge. */
export function buildChains(input: RulesetInput): NftChain[] {
  return [
    baseChain(input, CHAIN.prerouting, 'nat', 'prerouting', PRIORITY.dstnat),
    baseChain(input, CHAIN.output, 'nat', 'output', PRIORITY.dstnat),
    baseChain(input, CHAIN.postrouting, 'nat', 'postrouting', PRIORITY.srcnat),
    baseChain(input, CHAIN.forward, 'filter', 'forward', PRIORITY.filter),
    baseChain(input, CHAIN.input, 'filter', 'input', PRIORITY.filter),
    baseChain(input, CHAIN.rawPrerouting, 'filter', 'prerouting', PRIORITY.raw),
    baseChain(input, CHAIN.rawOutput, 'filter', 'output', PRIORITY.raw),
  ];
}

function elementKey(forward: PortForward): NftElementKey {
  return forward.hostAddress === undefined
    ? { concat: [forward.protocol, forward.hostPort] }
    : { concat: [formatIpv4(forward.hostAddress), forward.protocol, forward.hostPort] };
}

function addrElement(forward: PortForward): NftMapElement {
  return [elementKey(forward), formatIpv4(forward.guestAddress)];
}
function portElement(forward: PortForward): NftMapElement {
  return [elementKey(forward), forward.guestPort];
}

/** Which map pair a forward lives in. */
function mapsFor(forward: PortForward): { addr: string; port: string } {
  return forward.hostAddress === undefined
    ? { addr: MAP.anyAddr, port: MAP.anyPort }
    : { addr: MAP.boundAddr, port: MAP.boundPort };
}

/** The four forward maps with their elements (a map without elements has no `elem`). */
export function buildMaps(input: RulesetInput): NftMap[] {
  const anyForwards = input.forwards.filter((f) => f.hostAddress === undefined);
  const boundForwards = input.forwards.filter((f) => f.hostAddress !== undefined);
  const map = (name: string, type: NftMap['type'], data: NftMap['map'], elem: NftMapElement[]): NftMap => {
    const m: NftMap = { family: TABLE_FAMILY, table: input.table, name, type, map: data };
    if (elem.length > 0) m.elem = elem;
    return m;
  };
  return [
    map(MAP.anyAddr, ['inet_proto', 'inet_service'], 'ipv4_addr', anyForwards.map(addrElement)),
    map(MAP.anyPort, ['inet_proto', 'inet_service'], 'inet_service', anyForwards.map(portElement)),
    map(MAP.boundAddr, ['ipv4_addr', 'inet_proto', 'inet_service'], 'ipv4_addr', boundForwards.map(addrElement)),
    map(MAP.boundPort, ['ipv4_addr', 'inet_proto', 'inet_service'], 'inet_service', boundForwards.map(portElement)),
    // issue 14: the IPv6 forward maps, when natd serves IPv6
    ...(input.ipv6 ? ipv6ForwardMaps(input.forwards6 ?? []).map((m) => map(m.name, m.type, m.map, m.elem)) : []),
  ];
}

// ---- rules, one small function each; the comment shows the rule in nft text (example input)

type RuleBody = { expr: NftStatement[]; comment: string };

/** dnat ip to ip daddr . meta l4proto . th dport map @fwd_bound_addr : ip daddr . meta l4proto . th dport map @fwd_bound_port */
function dnatBound(): RuleBody {
  return { expr: [dnatThroughMaps(boundKey, MAP.boundAddr, MAP.boundPort)], comment: 'natd: port forwards on one host address' };
}

/** meta nfproto ipv4 fib daddr type local
 *    dnat ip to meta l4proto . th dport map @fwd_any_addr : meta l4proto . th dport map @fwd_any_port */
function dnatAnyLocal(): RuleBody {
  return {
    expr: [
      eq({ meta: { key: 'nfproto' } }, 'ipv4'),
      eq({ fib: { result: 'type', flags: ['daddr'] } }, 'local'),
      dnatThroughMaps(anyKey, MAP.anyAddr, MAP.anyPort),
    ],
    comment: 'natd: port forwards on any local address',
  };
}

/** Output (the host's own connections to its forwarded ports), loopback excluded: 127/8 cannot be routed to a guest.
 *  ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @fwd_any_addr : … @fwd_any_port */
function dnatAnyLocalFromHost(): RuleBody {
  return {
    expr: [
      ne(ipDaddr, { prefix: LOOPBACK }),
      eq({ fib: { result: 'type', flags: ['daddr'] } }, 'local'),
      dnatThroughMaps(anyKey, MAP.anyAddr, MAP.anyPort),
    ],
    comment: 'natd: the host reaching its own port forwards',
  };
}

/** Hairpin: a guest reaching a forward that lands on another guest is masqueraded, so replies return through the host.
 *  oifname "br0" ip saddr 10.77.0.0/24 ip daddr 10.77.0.0/24 ct status dnat masquerade */
function masqueradeHairpin(input: RulesetInput): RuleBody {
  return {
    expr: [
      eq(oifname, input.bridge),
      eq(ipSaddr, subnetPrefix(input.subnet)),
      eq(ipDaddr, subnetPrefix(input.subnet)),
      has({ ct: { key: 'status' } }, 'dnat'),
      { masquerade: null },
    ],
    comment: 'natd: hairpin port forwards',
  };
}

/** ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 ip daddr != 224.0.0.0/24 ip daddr != 255.255.255.255 */
function fromSubnetToOutside(input: RulesetInput): NftStatement[] {
  return [
    eq(ipSaddr, subnetPrefix(input.subnet)),
    ne(ipDaddr, subnetPrefix(input.subnet)),
    ne(ipDaddr, { prefix: NEVER_MASQUERADE_TO.multicastLocal }),
    ne(ipDaddr, NEVER_MASQUERADE_TO.broadcast),
  ];
}

/** … meta l4proto { tcp, udp } masquerade to :1024-65535 */
function masqueradeTcpUdp(input: RulesetInput, ports: [number, number]): RuleBody {
  return {
    expr: [...fromSubnetToOutside(input), eq(l4proto, { set: ['tcp', 'udp'] }), { masquerade: { port: { range: ports } } }],
    comment: 'natd: guests to outside, tcp/udp',
  };
}

/** … masquerade   (ICMP and every other protocol) */
function masqueradeOther(input: RulesetInput): RuleBody {
  return { expr: [...fromSubnetToOutside(input), { masquerade: null }], comment: 'natd: guests to outside, other protocols' };
}

/** oifname "br0" ip daddr 10.77.0.0/24 ct state established,related accept */
function acceptReplies(input: RulesetInput): RuleBody {
  return {
    expr: [
      eq(oifname, input.bridge),
      eq(ipDaddr, subnetPrefix(input.subnet)),
      has({ ct: { key: 'state' } }, ['established', 'related']),
      accept,
    ],
    comment: 'natd: replies to guests',
  };
}

/** oifname "br0" ip daddr 10.77.0.0/24 ct status dnat accept   (new connections that came through a port forward) */
function acceptForwarded(input: RulesetInput): RuleBody {
  return {
    expr: [eq(oifname, input.bridge), eq(ipDaddr, subnetPrefix(input.subnet)), has({ ct: { key: 'status' } }, 'dnat'), accept],
    comment: 'natd: port forwards to guests',
  };
}

/** iifname "br0" ip saddr 10.77.0.0/24 accept */
function acceptFromGuests(input: RulesetInput): RuleBody {
  return {
    expr: [eq(iifname, input.bridge), eq(ipSaddr, subnetPrefix(input.subnet)), accept],
    comment: 'natd: guests to anywhere',
  };
}

/** iifname "br0" oifname "br0" accept */
function acceptGuestToGuest(input: RulesetInput): RuleBody {
  return { expr: [eq(iifname, input.bridge), eq(oifname, input.bridge), accept], comment: 'natd: guest to guest' };
}

/** meta nfproto ipv6 iifname "br0" accept  /  meta nfproto ipv6 oifname "br0" accept   (only with allowIpv6Forward) */
function acceptIpv6(input: RulesetInput, direction: 'iifname' | 'oifname'): RuleBody {
  return {
    expr: [eq({ meta: { key: 'nfproto' } }, 'ipv6'), eq({ meta: { key: direction } }, input.bridge), accept],
    comment: `natd: IPv6 ${direction === 'iifname' ? 'from' : 'to'} the bridge allowed`,
  };
}

/** iifname "br0" reject with icmpx type port-unreachable  /  oifname "br0" … (IPv6 included unless allowed above) */
function rejectRest(input: RulesetInput, direction: 'iifname' | 'oifname'): RuleBody {
  return {
    expr: [eq({ meta: { key: direction } }, input.bridge), rejectPortUnreachable],
    comment: `natd: reject the rest ${direction === 'iifname' ? 'from' : 'to'} the bridge`,
  };
}

/** iifname "br0" udp dport 67 accept */
function acceptDhcp(input: RulesetInput): RuleBody {
  return {
    expr: [eq(iifname, input.bridge), eq({ payload: { protocol: 'udp', field: 'dport' } }, 67), accept],
    comment: 'natd: DHCP from guests',
  };
}

/** iifname "br0" ip daddr 10.77.0.1 udp dport 53 accept   (and the same for tcp) */
function acceptDns(input: RulesetInput, protocol: 'udp' | 'tcp'): RuleBody {
  return {
    expr: [
      eq(iifname, input.bridge),
      eq(ipDaddr, formatIpv4(input.gateway)),
      eq({ payload: { protocol, field: 'dport' } }, 53),
      accept,
    ],
    comment: `natd: DNS (${protocol}) from guests`,
  };
}

/**
 * iifname "br0" ip daddr 10.77.0.1 udp dport 69 accept   (issue 16: the read request of natd's TFTP server)
 * The transfer itself needs no rule and no conntrack helper: natd sends each transfer's first packet (OACK or
 * DATA 1) from its own ephemeral port, which creates the conntrack entry in the output direction; the client's ACKs
 * to that port are its replies and pass as established (acceptRepliesToHost). The kernel's TFTP helper exists for
 * the opposite case (a client behind a firewall expecting replies from a port it never sent to) and is not loaded.
 */
function acceptTftp(input: RulesetInput): RuleBody {
  return {
    expr: [eq(iifname, input.bridge), eq(ipDaddr, formatIpv4(input.gateway)), eq({ payload: { protocol: 'udp', field: 'dport' } }, 69), accept],
    comment: 'natd: TFTP read requests from guests',
  };
}

/** iifname "br0" ct state established,related accept   (replies to the host's own connections into the bridge) */
function acceptRepliesToHost(input: RulesetInput): RuleBody {
  return {
    expr: [eq(iifname, input.bridge), has({ ct: { key: 'state' } }, ['established', 'related']), accept],
    comment: 'natd: replies to the host from guests',
  };
}

/** iifname "br0" icmp type echo-request accept   (ICMP errors for the host's traffic are related, accepted above) */
function acceptPing(input: RulesetInput): RuleBody {
  return {
    expr: [eq(iifname, input.bridge), eq({ payload: { protocol: 'icmp', field: 'type' } }, 'echo-request'), accept],
    comment: 'natd: guests ping the gateway',
  };
}

/** iifname "br0" meta l4proto ipv6-icmp accept   (neighbour discovery; an RA is accepted here but ignored by the
 *  kernel, as natd sets accept_ra=0 on the bridge) */
function acceptIcmpv6(input: RulesetInput): RuleBody {
  return { expr: [eq(iifname, input.bridge), eq(l4proto, 'ipv6-icmp'), accept], comment: 'natd: ICMPv6 from guests' };
}

/** iifname "br0" reject with icmpx type port-unreachable   (input: guests reach no other service of the host, e.g.
 *  the metrics listener, sshd or anything bound to 0.0.0.0; replies to broadcast and multicast are never sent) */
function rejectToHost(input: RulesetInput): RuleBody {
  return { expr: [eq(iifname, input.bridge), rejectPortUnreachable], comment: 'natd: guests reach nothing else on the host' };
}

/** iifname "br0" tcp dport 2049 accept   (a host service the operator opened to the guests: --guest-to-host tcp:2049) */
function acceptHostService(input: RulesetInput, service: HostService): RuleBody {
  const [first, last] = service.ports;
  const port: NftExpression = first === last ? first : { range: [first, last] };
  return {
    expr: [eq(iifname, input.bridge), eq({ payload: { protocol: service.protocol, field: 'dport' } }, port), accept],
    comment: `natd: guests reach host ${service.protocol} ${first === last ? first : `${first}-${last}`}`,
  };
}

// ---- UDP DNS between the guests and the gateway is not connection-tracked
//
// Every query from a new source port would otherwise make a conntrack entry (UDP timeouts 30 s unreplied, 120 s
// replied): a guest sending queries from random ports fills the host's nf_conntrack table, after which the host drops
// new connections for everyone; and conntrack costs CPU on every cached answer. Nothing needs the state: the input
// chain accepts DNS by address and port (acceptDns, ipv6Input), not by ct state, and the IPv6 spoof guard is
// stateless. The raw chains run at priority -300, before conntrack (-200), so untracked packets also skip the nat
// chains. TCP DNS stays tracked: its connections are few, and the input chain needs no change for them.

/** iifname "br0" ip daddr 10.77.0.1 udp dport 53 notrack   (raw_prerouting; and ip6 daddr GW6 with IPv6) */
function notrackDnsQueries(input: RulesetInput): RuleBody[] {
  const dport: NftExpression = { payload: { protocol: 'udp', field: 'dport' } };
  const v6 = input.ipv6;
  return [
    { expr: [eq(iifname, input.bridge), eq(ipDaddr, formatIpv4(input.gateway)), eq(dport, 53), { notrack: null }], comment: 'natd: DNS queries from guests untracked' },
    ...(v6 ? [{ expr: [eq(iifname, input.bridge), eq({ payload: { protocol: 'ip6', field: 'daddr' } }, v6.gateway), eq(dport, 53), { notrack: null }], comment: 'natd: IPv6 DNS queries from guests untracked' } satisfies RuleBody] : []),
  ];
}

/** oifname "br0" ip saddr 10.77.0.1 udp sport 53 notrack   (raw_output: natd's answers; and ip6 saddr GW6) */
function notrackDnsAnswers(input: RulesetInput): RuleBody[] {
  const sport: NftExpression = { payload: { protocol: 'udp', field: 'sport' } };
  const v6 = input.ipv6;
  return [
    { expr: [eq(oifname, input.bridge), eq(ipSaddr, formatIpv4(input.gateway)), eq(sport, 53), { notrack: null }], comment: 'natd: DNS answers to guests untracked' },
    ...(v6 ? [{ expr: [eq(oifname, input.bridge), eq({ payload: { protocol: 'ip6', field: 'saddr' } }, v6.gateway), eq(sport, 53), { notrack: null }], comment: 'natd: IPv6 DNS answers to guests untracked' } satisfies RuleBody] : []),
  ];
}

// ---- issue 17: the name router's routed ports

export const EXPOSE_SET = 'expose_ports';

/** The routed ports as a named set (only when the name router is part of the input). */
export function buildSets(input: RulesetInput): NftSet[] {
  if (!input.expose) return [];
  const set: NftSet = { family: TABLE_FAMILY, table: input.table, name: EXPOSE_SET, type: 'inet_service' };
  if (input.expose.ports.length) set.elem = [...input.expose.ports];
  return [set];
}

/**
 * [ip daddr 198.51.100.1] tcp dport @expose_ports accept   (issue 17: the name router's ports, from the uplink and
 * from the bridge, so guests reach routed names through the host, hairpin). The router's own connections to the
 * guests leave from the gateway address in the output path (no natd filter there) and their replies are accepted by
 * acceptRepliesToHost; the forward chain never sees them.
 */
function acceptRoutedPorts(input: RulesetInput): RuleBody[] {
  if (!input.expose) return [];
  const listen = input.expose.listen;
  return [{
    expr: [...(listen !== undefined ? [eq(ipDaddr, formatIpv4(listen))] : []), eq({ payload: { protocol: 'tcp', field: 'dport' } }, `@${EXPOSE_SET}`), accept],
    comment: 'natd: name router ports (expose)',
  }];
}

/** Routed ports added/removed at runtime as set elements in one batch (deletes first). */
export function buildExposePortsChange(input: RulesetInput, add: readonly number[], remove: readonly number[]): NftBatch {
  for (const p of [...add, ...remove]) validatePort(p, 'routed port');
  const element = { family: TABLE_FAMILY, table: input.table, name: EXPOSE_SET };
  const commands: NftCommand[] = [];
  if (remove.length) commands.push({ delete: { element: { ...element, elem: [...remove] } } });
  if (add.length) commands.push({ add: { element: { ...element, elem: [...add] } } });
  return { nftables: commands };
}

/** Rule bodies per chain, in order. */
export function buildRules(input: RulesetInput): Record<(typeof CHAIN)[keyof typeof CHAIN], RuleBody[]> {
  const ports = input.masqueradePorts ?? DEFAULT_MASQUERADE_PORTS;
  const ipv6 = input.allowIpv6Forward ? [acceptIpv6(input, 'iifname'), acceptIpv6(input, 'oifname')] : [];
  // issue 14
  const v6 = input.ipv6;
  return {
    prerouting: [dnatBound(), dnatAnyLocal(), ...(v6 ? ipv6Dnat(false) : [])],
    output: [dnatBound(), dnatAnyLocalFromHost(), ...(v6 ? ipv6Dnat(true) : [])],
    postrouting: [masqueradeHairpin(input), masqueradeTcpUdp(input, ports), masqueradeOther(input), ...(v6 ? ipv6Masquerade(input.bridge, v6) : [])],
    forward: [
      ...(v6 ? [ipv6SpoofGuard(input.bridge, v6)] : []), // issue 14
      acceptReplies(input),
      acceptForwarded(input),
      acceptFromGuests(input),
      acceptGuestToGuest(input),
      ...ipv6,
      ...(v6 ? ipv6Forward(input.bridge, v6) : []), // issue 14
      rejectRest(input, 'iifname'),
      rejectRest(input, 'oifname'),
    ],
    // From the bridge the host serves DHCP and DNS, and answers ping and neighbour discovery; everything else a guest
    // sends to the host itself is rejected (port forwards are DNATed in prerouting and never reach this chain).
    // Traffic from elsewhere is not natd's business: policy accept.
    input: [
      ...(v6 ? [ipv6SpoofGuard(input.bridge, v6)] : []), // issue 14
      acceptRepliesToHost(input),
      acceptDhcp(input),
      acceptDns(input, 'udp'),
      acceptDns(input, 'tcp'),
      ...(input.tftp ? [acceptTftp(input)] : []),
      acceptPing(input),
      acceptIcmpv6(input),
      ...(v6 ? ipv6Input(input.bridge, v6) : []), // issue 14
      ...acceptRoutedPorts(input), // issue 17
      ...(input.guestToHost === 'all' ? [] : [...(input.guestToHost ?? []).map((service) => acceptHostService(input, service)), rejectToHost(input)]),
    ],
    // UDP DNS with the guests skips conntrack (see notrackDnsQueries)
    raw_prerouting: notrackDnsQueries(input),
    raw_output: notrackDnsAnswers(input),
  };
}

// ---- batches

/** The full apply: `add table; delete table; add table; …everything…`, atomic in one batch. */
export function buildRuleset(input: RulesetInput): NftBatch {
  validateInput(input);
  const table = { family: TABLE_FAMILY, name: input.table };
  const commands: NftCommand[] = [{ add: { table } }, { delete: { table } }, { add: { table } }];
  for (const chain of buildChains(input)) commands.push({ add: { chain } });
  for (const map of buildMaps(input)) commands.push({ add: { map } });
  for (const set of buildSets(input)) commands.push({ add: { set } }); // issue 17
  for (const [chain, bodies] of Object.entries(buildRules(input))) {
    for (const body of bodies) {
      const rule: NftRule = { family: TABLE_FAMILY, table: input.table, chain, expr: body.expr, comment: body.comment };
      commands.push({ add: { rule } });
    }
  }
  return { nftables: commands };
}

/**
 * A runtime forward change as element commands in one batch: deletes first, then adds (re-adding an existing key
 * fails, so changing a forward is remove + add). Only `input.table` is used. An empty change gives an empty batch,
 * which the caller should skip (applyBatch refuses it).
 */
export function buildForwardChange(input: RulesetInput, add: (PortForward | PortForward6)[], remove: (PortForward | PortForward6)[]): NftBatch {
  const v4 = (list: (PortForward | PortForward6)[]) => list.filter((f): f is PortForward => !('family' in f));
  const v6 = (list: (PortForward | PortForward6)[]) => list.filter((f): f is PortForward6 => 'family' in f);
  validateForwards(v4(add));
  validateForwards(v4(remove));
  validateForwards6(v6(add), input.ipv6); // issue 14
  validateForwards6(v6(remove), input.ipv6);
  const commands: NftCommand[] = [];
  const element = (name: string) => ({ family: TABLE_FAMILY, table: input.table, name });
  // each forward: its two maps, its key and its two values (issue 14: the IPv6 maps for an IPv6 forward)
  const parts = (f: PortForward | PortForward6) => ('family' in f
    ? { maps: maps6For(f), key: forward6Key(f), addr: addr6Element(f), port: port6Element(f) }
    : { maps: mapsFor(f), key: elementKey(f), addr: addrElement(f), port: portElement(f) });
  for (const f of remove) {
    const { maps, key } = parts(f);
    commands.push({ delete: { element: { ...element(maps.addr), elem: [key] } } });
    commands.push({ delete: { element: { ...element(maps.port), elem: [key] } } });
  }
  for (const f of add) {
    const { maps, addr, port } = parts(f);
    commands.push({ add: { element: { ...element(maps.addr), elem: [addr] } } });
    commands.push({ add: { element: { ...element(maps.port), elem: [port] } } });
  }
  return { nftables: commands };
}
