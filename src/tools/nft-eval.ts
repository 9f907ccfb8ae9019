/**
 * A small abstract interpreter for `nft -j list ruleset` output: walks a base chain (following jump/goto/return)
 * with a described packet and says whether that packet would be dropped, and by which rule or policy.
 *
 * It is deliberately three-valued: a match it cannot decide from the packet description (marks, fib lookups,
 * unknown expressions, an uplink of unknown name) is 'maybe', and everything reached after a 'maybe' verdict is
 * uncertain. The doctor reports certain drops as errors and uncertain ones as warnings. Pure: no I/O.
 */
import { parseIpv4, prefixToMask, subnetContains, type Subnet } from '../net/ipv4.js';

export type Tri = 'yes' | 'no' | 'maybe';

/** An address the packet carries: exactly one, or "some address in this subnet", or unknown (the internet). */
export type AddressSpec = { kind: 'exact'; address: number } | { kind: 'subnet'; subnet: Subnet } | { kind: 'any' };

/** An interface as the packet sees it: a known name, unknown (the uplink, when not told), or none (not set at this hook). */
export type InterfaceSpec = { kind: 'name'; name: string } | { kind: 'unknown' } | { kind: 'none' };

export interface PacketSpec {
  iif: InterfaceSpec;
  oif: InterfaceSpec;
  /** undefined: any protocol (forwarded traffic of every kind) */
  l4proto?: 'udp' | 'tcp';
  sport?: number;
  dport?: number;
  saddr: AddressSpec;
  daddr: AddressSpec;
  ctState: 'new' | 'established';
}

/** A drop or reject the walk reached: by a rule (handle) or by the base chain's policy. */
export interface Blocker {
  family: string;
  table: string;
  chain: string;
  /** rule handle; undefined for the policy */
  handle?: number;
  comment?: string;
  verdict: 'drop' | 'reject';
  /** true when nothing undecidable came before it: the packet certainly ends here */
  certain: boolean;
}

/** The parts of the listing the walk needs, indexed. */
export interface RulesetIndex {
  chains: Map<string, ListedChain>;
  rules: Map<string, ListedRule[]>;
}

export interface ListedChain {
  family: string;
  table: string;
  name: string;
  hook?: string;
  prio?: number;
  policy?: string;
  type?: string;
}

export interface ListedRule {
  family: string;
  table: string;
  chain: string;
  handle?: number;
  comment?: string;
  expr: unknown[];
}

const chainKey = (family: string, table: string, chain: string): string => `${family}\u0000${table}\u0000${chain}`;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Indexes the `nftables` array of a listing. Anything malformed is skipped, never thrown on. */
export function indexRuleset(listed: unknown): RulesetIndex {
  const chains = new Map<string, ListedChain>();
  const rules = new Map<string, ListedRule[]>();
  const items = isObject(listed) && Array.isArray(listed.nftables) ? listed.nftables : [];
  for (const item of items) {
    if (!isObject(item)) continue;
    const c = item.chain;
    if (isObject(c) && typeof c.family === 'string' && typeof c.table === 'string' && typeof c.name === 'string') {
      chains.set(chainKey(c.family, c.table, c.name), {
        family: c.family,
        table: c.table,
        name: c.name,
        ...(typeof c.hook === 'string' ? { hook: c.hook } : {}),
        ...(typeof c.prio === 'number' ? { prio: c.prio } : {}),
        ...(typeof c.policy === 'string' ? { policy: c.policy } : {}),
        ...(typeof c.type === 'string' ? { type: c.type } : {}),
      });
    }
    const r = item.rule;
    if (isObject(r) && typeof r.family === 'string' && typeof r.table === 'string' && typeof r.chain === 'string' && Array.isArray(r.expr)) {
      const key = chainKey(r.family, r.table, r.chain);
      const list = rules.get(key) ?? [];
      list.push({
        family: r.family,
        table: r.table,
        chain: r.chain,
        ...(typeof r.handle === 'number' ? { handle: r.handle } : {}),
        ...(typeof r.comment === 'string' ? { comment: r.comment } : {}),
        expr: r.expr,
      });
      rules.set(key, list);
    }
  }
  return { chains, rules };
}

// ---- three-valued logic -----------------------------------------------------------------------------------------

const not = (t: Tri): Tri => (t === 'yes' ? 'no' : t === 'no' ? 'yes' : 'maybe');

function all(values: Tri[]): Tri {
  if (values.includes('no')) return 'no';
  return values.every((v) => v === 'yes') ? 'yes' : 'maybe';
}

function any(values: Tri[]): Tri {
  if (values.includes('yes')) return 'yes';
  return values.every((v) => v === 'no') ? 'no' : 'maybe';
}

/** Compares one packet value with a right-hand side that may be a set, an array or a range. */
function compareEach(right: unknown, one: (value: unknown) => Tri): Tri {
  if (Array.isArray(right)) return any(right.map((v) => compareEach(v, one)));
  if (isObject(right) && Array.isArray(right.set)) return any(right.set.map((v) => compareEach(v, one)));
  return one(right);
}

// ---- field comparisons ------------------------------------------------------------------------------------------

/** Interface names natd's uplink is surely not (virtual devices of other software, loopback). */
const VIRTUAL_INTERFACE = /^(?:lo|docker\d*|br-|virbr|veth|vnet|tap|tun|cni|flannel|cali|podman|lxc|lxd|incus|natd)/;

function interfaceEquals(spec: InterfaceSpec, value: unknown, bridge: string): Tri {
  if (typeof value !== 'string') return 'maybe';
  const matches = (name: string): boolean => (value.endsWith('*') ? name.startsWith(value.slice(0, -1)) : name === value);
  switch (spec.kind) {
    case 'none':
      return value === '' ? 'yes' : 'no';
    case 'name':
      return matches(spec.name) ? 'yes' : 'no';
    case 'unknown':
      // The uplink: never the bridge, never a virtual device of other software, else possibly anything.
      if (matches(bridge) || VIRTUAL_INTERFACE.test(value) || value === '') return 'no';
      return 'maybe';
  }
}

function prefixOf(value: unknown): Subnet | undefined {
  if (typeof value === 'string') {
    const address = parseIpv4(value);
    return address === undefined ? undefined : { network: address, prefix: 32, mask: 0xffffffff, broadcast: address };
  }
  if (isObject(value) && isObject(value.prefix) && typeof value.prefix.addr === 'string' && typeof value.prefix.len === 'number') {
    const address = parseIpv4(value.prefix.addr);
    if (address === undefined) return undefined;
    const mask = prefixToMask(value.prefix.len);
    const network = (address & mask) >>> 0;
    return { network, prefix: value.prefix.len, mask, broadcast: (network | ~mask) >>> 0 };
  }
  return undefined;
}

function addressMatches(spec: AddressSpec, value: unknown): Tri {
  if (isObject(value) && Array.isArray(value.range)) {
    const [lo, hi] = value.range.map((v) => (typeof v === 'string' ? parseIpv4(v) : undefined));
    if (lo === undefined || hi === undefined) return 'maybe';
    if (spec.kind === 'exact') return spec.address >= lo && spec.address <= hi ? 'yes' : 'no';
    if (spec.kind === 'subnet') {
      if (spec.subnet.network >= lo && spec.subnet.broadcast <= hi) return 'yes';
      return spec.subnet.broadcast < lo || spec.subnet.network > hi ? 'no' : 'maybe';
    }
    return 'maybe';
  }
  const p = prefixOf(value);
  if (!p) return 'maybe';
  switch (spec.kind) {
    case 'exact':
      return subnetContains(p, spec.address) ? 'yes' : 'no';
    case 'subnet': {
      const s = spec.subnet;
      if (p.prefix <= s.prefix && subnetContains(p, s.network)) return 'yes'; // the whole subnet is inside
      if (p.prefix > s.prefix && subnetContains(s, p.network)) return 'maybe'; // part of the subnet
      return 'no';
    }
    case 'any':
      return 'maybe';
  }
}

const PROTOCOL_NUMBERS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1 };

function protocolMatches(pkt: PacketSpec, value: unknown): Tri {
  if (pkt.l4proto === undefined) return 'maybe';
  if (typeof value === 'string') return value === pkt.l4proto ? 'yes' : 'no';
  if (typeof value === 'number') return value === PROTOCOL_NUMBERS[pkt.l4proto] ? 'yes' : 'no';
  return 'maybe';
}

function portMatches(port: number | undefined, value: unknown): Tri {
  if (port === undefined) return 'maybe';
  if (typeof value === 'number') return value === port ? 'yes' : 'no';
  if (isObject(value) && Array.isArray(value.range) && typeof value.range[0] === 'number' && typeof value.range[1] === 'number') {
    return port >= value.range[0] && port <= value.range[1] ? 'yes' : 'no';
  }
  return 'maybe';
}

function ctStateMatches(pkt: PacketSpec, value: unknown): Tri {
  if (typeof value !== 'string') return 'maybe';
  return value === pkt.ctState ? 'yes' : 'no';
}

/** Evaluates the left-hand side against one right-hand value; undefined when the left side is not understood. */
function fieldComparer(left: unknown, pkt: PacketSpec, bridge: string): ((value: unknown) => Tri) | undefined {
  if (!isObject(left)) return undefined;
  if (isObject(left.meta) && typeof left.meta.key === 'string') {
    switch (left.meta.key) {
      case 'iifname':
      case 'iif':
        return (v) => interfaceEquals(pkt.iif, v, bridge);
      case 'oifname':
      case 'oif':
        return (v) => interfaceEquals(pkt.oif, v, bridge);
      case 'l4proto':
        return (v) => protocolMatches(pkt, v);
      case 'nfproto':
        return (v) => (v === 'ipv4' ? 'yes' : v === 'ipv6' ? 'no' : 'maybe');
      default:
        return undefined;
    }
  }
  if (isObject(left.payload) && typeof left.payload.protocol === 'string') {
    const { protocol, field } = left.payload;
    if (protocol === 'ip6') return () => 'no'; // natd's traffic is IPv4
    if (protocol === 'ip' && field === 'saddr') return (v) => addressMatches(pkt.saddr, v);
    if (protocol === 'ip' && field === 'daddr') return (v) => addressMatches(pkt.daddr, v);
    if (protocol === 'ip' && field === 'protocol') return (v) => protocolMatches(pkt, v);
    if (protocol === 'tcp' || protocol === 'udp' || protocol === 'th') {
      // A tcp/udp header match implies the protocol.
      if (pkt.l4proto !== undefined && protocol !== 'th' && protocol !== pkt.l4proto) return () => 'no';
      if (field === 'dport') return (v) => (pkt.l4proto === undefined ? 'maybe' : portMatches(pkt.dport, v));
      if (field === 'sport') return (v) => (pkt.l4proto === undefined ? 'maybe' : portMatches(pkt.sport, v));
      return undefined;
    }
    if ((protocol === 'icmp' || protocol === 'icmpv6') && pkt.l4proto !== undefined) return () => 'no';
    return undefined;
  }
  if (isObject(left.ct) && left.ct.key === 'state') return (v) => ctStateMatches(pkt, v);
  // natd's own traffic is never DNATed; port-forward traffic is natd's table's business.
  if (isObject(left.ct) && left.ct.key === 'status') return (v) => (v === 'dnat' ? 'no' : 'maybe');
  return undefined;
}

function matchTri(match: Record<string, unknown>, pkt: PacketSpec, bridge: string): Tri {
  const compare = fieldComparer(match.left, pkt, bridge);
  if (!compare) return 'maybe';
  const result = compareEach(match.right, compare);
  switch (match.op) {
    case '==':
    case 'in':
      return result;
    case '!=':
      return not(result);
    default:
      return 'maybe';
  }
}

// ---- statements -------------------------------------------------------------------------------------------------

type Verdict =
  | { kind: 'accept' | 'drop' | 'reject' | 'return' | 'continue' | 'none' | 'unknown' }
  | { kind: 'jump' | 'goto'; target: string };

function verdictOf(stmt: Record<string, unknown>): Verdict | undefined {
  if ('accept' in stmt) return { kind: 'accept' };
  if ('drop' in stmt) return { kind: 'drop' };
  if ('reject' in stmt) return { kind: 'reject' };
  if ('return' in stmt) return { kind: 'return' };
  if ('continue' in stmt) return { kind: 'continue' };
  for (const kind of ['jump', 'goto'] as const) {
    const v = stmt[kind];
    if (isObject(v) && typeof v.target === 'string') return { kind, target: v.target };
  }
  // NAT statements end evaluation of the chain like accept.
  if ('masquerade' in stmt || 'snat' in stmt || 'dnat' in stmt || 'redirect' in stmt) return { kind: 'accept' };
  if ('queue' in stmt) return { kind: 'unknown' };
  return undefined;
}

/** Statements that never end or filter a rule (counters, logging, setting marks, …). */
const NEUTRAL = new Set(['counter', 'log', 'mangle', 'notrack', 'ct helper', 'meta', 'set', 'xt', 'quota', 'flow', 'tproxy', 'synproxy', 'dup', 'fwd']);

/** Evaluates one rule: how surely it applies to the packet, and its verdict. */
function evalRule(rule: ListedRule, pkt: PacketSpec, bridge: string): { applies: Tri; verdict: Verdict } {
  const conditions: Tri[] = [];
  for (const stmt of rule.expr) {
    if (!isObject(stmt)) continue;
    if (isObject(stmt.match)) {
      conditions.push(matchTri(stmt.match, pkt, bridge));
      continue;
    }
    if (isObject(stmt.vmap)) {
      // A verdict map: resolve it when its key is an interface we know, else its outcome is unknown.
      const compare = fieldComparer(stmt.vmap.key, pkt, bridge);
      const data = isObject(stmt.vmap.data) && Array.isArray(stmt.vmap.data.set) ? stmt.vmap.data.set : [];
      for (const element of data) {
        if (!Array.isArray(element) || !isObject(element[1])) continue;
        const hit = compare ? compareEach(element[0], compare) : 'maybe';
        if (hit === 'no') continue;
        const verdict = verdictOf(element[1]) ?? { kind: 'unknown' };
        return { applies: all([...conditions, hit]), verdict };
      }
      return { applies: 'no', verdict: { kind: 'none' } };
    }
    const verdict = verdictOf(stmt);
    if (verdict) return { applies: all(conditions), verdict };
    if ('limit' in stmt) conditions.push('maybe'); // a rate limit filters like a match
    else if (!Object.keys(stmt).some((k) => NEUTRAL.has(k))) conditions.push('maybe');
  }
  return { applies: all(conditions), verdict: { kind: 'none' } };
}

// ---- the walk ---------------------------------------------------------------------------------------------------

interface WalkResult {
  /** accept/drop: the packet's fate was decided in here; return: it came back to the caller */
  end: 'accept' | 'drop' | 'return';
  /** whether `end` is certain */
  sure: boolean;
}

const MAX_DEPTH = 16;

class Walker {
  readonly blockers: Blocker[] = [];

  constructor(
    private readonly index: RulesetIndex,
    private readonly family: string,
    private readonly table: string,
    private readonly pkt: PacketSpec,
    private readonly bridge: string,
  ) {}

  walk(chain: string, certain: boolean, depth: number): WalkResult {
    if (depth > MAX_DEPTH) return { end: 'return', sure: false };
    for (const rule of this.index.rules.get(chainKey(this.family, this.table, chain)) ?? []) {
      const { applies, verdict } = evalRule(rule, this.pkt, this.bridge);
      if (applies === 'no') continue;
      const sure = certain && applies === 'yes';
      switch (verdict.kind) {
        case 'none':
        case 'continue':
          continue;
        case 'accept':
        case 'return':
          if (sure) return { end: verdict.kind, sure: true };
          certain = false;
          continue;
        case 'drop':
        case 'reject':
          this.blockers.push(this.blocker(rule, verdict.kind, sure));
          if (sure) return { end: 'drop', sure: true };
          certain = false;
          continue;
        case 'jump':
        case 'goto': {
          const sub = this.walk(verdict.target, sure, depth + 1);
          if (sure && sub.sure) {
            if (sub.end !== 'return') return sub;
            if (verdict.kind === 'goto') return { end: 'return', sure: true }; // goto: falling off returns to our caller
            continue;
          }
          certain = false;
          continue;
        }
        case 'unknown':
          certain = false;
          continue;
      }
    }
    return { end: 'return', sure: certain };
  }

  private blocker(rule: ListedRule, verdict: 'drop' | 'reject', certain: boolean): Blocker {
    return {
      family: rule.family,
      table: rule.table,
      chain: rule.chain,
      ...(rule.handle !== undefined ? { handle: rule.handle } : {}),
      ...(rule.comment !== undefined ? { comment: rule.comment } : {}),
      verdict,
      certain,
    };
  }
}

/**
 * Walks a base chain with the packet: every drop/reject it may reach (rules, then the policy when the packet can
 * fall off the end). An empty list means the chain lets the packet through.
 */
export function blockersFor(index: RulesetIndex, chain: ListedChain, pkt: PacketSpec, bridge: string): Blocker[] {
  const walker = new Walker(index, chain.family, chain.table, pkt, bridge);
  const result = walker.walk(chain.name, true, 0);
  if (result.end === 'return' && chain.policy === 'drop') {
    walker.blockers.push({ family: chain.family, table: chain.table, chain: chain.name, verdict: 'drop', certain: result.sure });
  }
  return walker.blockers;
}
