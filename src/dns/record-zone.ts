/**
 * The operator's custom records (record-specs.ts) as the answer path reads them: one node per owner name with its
 * record sets by type (or its CNAME), empty non-terminals (so `_tcp.<zone>` above an SRV name is NODATA, not
 * NXDOMAIN, RFC 8020), the `address=/d/` wildcards by domain, and the zones whose SOA goes in negative answers.
 *
 * Built whole from a list of specs (the config's, then the runtime ones) and replaced whole on every change: a
 * record set of a few thousand entries builds in about a millisecond, and readers never see half a change.
 * `buildRecordZone` never throws; what makes a set unusable (a CNAME beside other data, a CNAME loop, an address
 * rule that is both NXDOMAIN and an address) comes back as errors naming the field, e.g. `cname.2: …`.
 */
import { formatIpv4, parseIpv4, reverseName, type Subnet } from '../net/ipv4.js';
import type { LocalRecord, LocalSoa } from './answers.js';
import { ipv6Bytes, ipv6ReverseName, type RecordKind, type RecordSpec } from './record-specs.js';
import { DnsType } from './types.js';

/** A spec and the field it came from (`hostRecord.0`, `runtime cname`), for error messages. */
export interface SourcedSpec {
  spec: RecordSpec;
  field: string;
}

export interface RecordNode {
  /** record sets by type, owner omitted (the answer path sets it) */
  readonly rrsets: Map<number, LocalRecord[]>;
  cname?: { target: string; ttl: number; field: string };
  /** where the node's first record came from (clash messages) */
  field?: string;
}

export interface WildcardRule {
  domain: string;
  a: LocalRecord[];
  aaaa: LocalRecord[];
  /** `address=/d/` with no address: NXDOMAIN for d and everything under it */
  nxdomain: boolean;
  field: string;
}

export interface RecordZoneOptions {
  /** natd's --domain: bare record names are answered under it too, and it is one of the SOA zones */
  domain?: string | undefined;
  /** the bridge subnet: its reverse zone is an SOA zone too */
  subnet?: Subnet;
  /** --local-ttl: TTL of records without their own, and of the SOA in negative answers */
  ttl: number;
  /** natd's own name (the SOA's MNAME, the default MX target) */
  serverName: string;
  /** SOA serial (default: seconds since the epoch at build time, so every change raises it) */
  serial?: number;
}

const SOA_TIMERS = { refresh: 1200, retry: 180, expire: 1_209_600 };
const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 16777619;
const DOT = 0x2e;
const WILDCARD_MEMO_MAX = 4096;

/** The hash wildcardFor computes for a whole name: FNV-1a over its characters from the last to the first. */
function suffixHash(name: string): number {
  let hash = FNV_OFFSET;
  for (let i = name.length - 1; i >= 0; i--) hash = Math.imul(hash ^ name.charCodeAt(i), FNV_PRIME);
  return hash;
}

export class RecordZone {
  readonly nodes = new Map<string, RecordNode>();
  readonly wildcards = new Map<string, WildcardRule>();
  /**
   * The wildcard rules by a hash of their domain (FNV-1a over the characters from the end): wildcardFor walks a name
   * once from its end and looks up every label-boundary suffix by its running hash, so the hot path allocates
   * nothing and does one Map lookup per label (slicing a suffix per label cost several times more, see bench/).
   */
  private readonly wildcardsByHash = new Map<number, WildcardRule[]>();
  /**
   * wildcardFor's results by name (null: no rule). The zone never changes, so an entry never goes stale; the same
   * names are asked again and again (cache hits), so the walk runs once per name. Bounded: emptied when full, so
   * a guest asking random names costs a walk per query, as without it, and no memory.
   */
  private readonly wildcardMemo = new Map<string, WildcardRule | null>();
  private readonly configuredZones = new Set<string>();
  /** zones inferred from owner names (their parents) */
  private readonly nameZones = new Set<string>();
  private readonly soaBase: Omit<LocalSoa, 'zone' | 'rname'>;
  /** specs it was built from, in order */
  readonly specs: readonly SourcedSpec[];

  constructor(
    readonly options: RecordZoneOptions,
    specs: readonly SourcedSpec[],
  ) {
    this.specs = specs;
    const ttl = options.ttl;
    this.soaBase = { ttl, mname: options.serverName, serial: (options.serial ?? Math.floor(Date.now() / 1000)) >>> 0, ...SOA_TIMERS, minimum: ttl };
  }

  /** No records at all: the answer path then costs nothing beyond what it cost before issue 15. */
  get empty(): boolean {
    return this.nodes.size === 0 && this.wildcards.size === 0;
  }

  node(name: string): RecordNode | undefined {
    return this.nodes.get(name);
  }

  /** The address rule covering `name` (the rule of the longest matching domain), or undefined. */
  wildcardFor(name: string): WildcardRule | undefined {
    if (this.wildcards.size === 0) return undefined;
    const memo = this.wildcardMemo.get(name);
    if (memo !== undefined) return memo ?? undefined;
    const found = this.walkWildcards(name);
    if (this.wildcardMemo.size >= WILDCARD_MEMO_MAX) this.wildcardMemo.clear();
    this.wildcardMemo.set(name, found ?? null);
    return found;
  }

  private walkWildcards(name: string): WildcardRule | undefined {
    let best: WildcardRule | undefined;
    let hash = FNV_OFFSET;
    for (let i = name.length - 1; i >= 0; i--) {
      hash = Math.imul(hash ^ name.charCodeAt(i), FNV_PRIME);
      if (i > 0 && name.charCodeAt(i - 1) !== DOT) continue;
      const rules = this.wildcardsByHash.get(hash);
      if (rules === undefined) continue;
      for (const rule of rules) if (rule.domain.length === name.length - i && name.endsWith(rule.domain)) best = rule;
    }
    return best;
  }

  /** Whether a guest's name would shadow an operator record: an owner name, or a name under an address rule. */
  owns(name: string): boolean {
    const node = this.nodes.get(name);
    return (node !== undefined && (node.cname !== undefined || node.rrsets.size > 0 || node.field !== undefined)) || this.wildcardFor(name) !== undefined;
  }

  /**
   * The zone whose SOA a negative answer for `name` carries, or undefined: the longest configured zone (the domain,
   * the reverse zone, an address rule) the name is in, else the longest zone inferred from an owner name.
   */
  zoneOf(name: string): string | undefined {
    let inferred: string | undefined;
    for (let at = 0; at >= 0; ) {
      const suffix = at === 0 ? name : name.slice(at);
      if (this.configuredZones.has(suffix)) return suffix;
      if (inferred === undefined && this.nameZones.has(suffix)) inferred = suffix;
      const dot = name.indexOf('.', at);
      at = dot < 0 ? -1 : dot + 1;
    }
    return inferred;
  }

  soaFor(zone: string): LocalSoa {
    return { ...this.soaBase, zone, rname: `hostmaster.${zone}` };
  }

  /** Names a reservation or hosts entry clashes with: every owner name of an exact record. */
  ownerNames(): IterableIterator<string> {
    return this.nodes.keys();
  }

  addZone(zone: string, configured: boolean): void {
    (configured ? this.configuredZones : this.nameZones).add(zone);
  }

  indexWildcard(rule: WildcardRule): void {
    const hash = suffixHash(rule.domain);
    const list = this.wildcardsByHash.get(hash);
    if (list) list.push(rule);
    else this.wildcardsByHash.set(hash, [rule]);
  }
}

/** The parent of `name` ("" for a single label). */
function parentOf(name: string): string {
  const dot = name.indexOf('.');
  return dot < 0 ? '' : name.slice(dot + 1);
}

/** The reverse zone of a subnet at an octet boundary (10.10.0.0/24 → 0.10.10.in-addr.arpa). */
export function subnetReverseZone(subnet: Subnet): string {
  const octets = Math.max(1, Math.floor(subnet.prefix / 8));
  const parts: number[] = [];
  for (let i = 0; i < octets; i++) parts.push((subnet.network >>> (24 - 8 * i)) & 255);
  return `${parts.reverse().join('.')}.in-addr.arpa`;
}

/** Fills a zone spec by spec: owners under the domain, record sets without duplicates, one CNAME per name. */
class ZoneBuilder {
  readonly errors: string[] = [];
  private readonly domain: string | undefined;

  constructor(
    readonly zone: RecordZone,
    private readonly opts: RecordZoneOptions,
  ) {
    this.domain = opts.domain ? opts.domain.toLowerCase().replace(/\.$/, '') : undefined;
  }

  /** a bare name is answered as itself and under the domain, like hosts-file names */
  owners(name: string): string[] {
    return this.domain && !name.includes('.') ? [name, `${name}.${this.domain}`] : [name];
  }

  qualify(name: string): string {
    return this.domain && !name.includes('.') ? `${name}.${this.domain}` : name;
  }

  nodeAt(name: string, field: string): RecordNode {
    let node = this.zone.nodes.get(name);
    if (!node) {
      node = { rrsets: new Map(), field };
      this.zone.nodes.set(name, node);
    }
    node.field ??= field;
    return node;
  }

  readonly add = (name: string, field: string, record: LocalRecord): void => {
    const node = this.nodeAt(name, field);
    const set = node.rrsets.get(record.type);
    if (!set) node.rrsets.set(record.type, [record]);
    else if (!set.some((r) => r.data === record.data && sameTexts(r.texts, record.texts))) set.push(record);
  };

  addSpec(spec: RecordSpec, field: string): void {
    const ttl = 'ttl' in spec && spec.ttl !== undefined ? spec.ttl : this.opts.ttl;
    switch (spec.kind) {
      case 'hostRecord':
        return this.addHost(spec, field, ttl);
      case 'cname':
        for (const alias of spec.aliases) {
          for (const owner of this.owners(alias)) {
            const node = this.nodeAt(owner, field);
            if (node.cname) this.errors.push(`${field}: "${owner}" is already an alias (${node.cname.field}); a name has one CNAME`);
            else node.cname = { target: this.qualify(spec.target), ttl, field };
          }
        }
        return;
      case 'srvHost':
        return this.add(spec.name, field, { type: DnsType.SRV, ttl, data: `${spec.priority} ${spec.weight} ${spec.target === undefined ? 0 : spec.port} ${spec.target ?? ''}` });
      case 'txtRecord':
        for (const owner of this.owners(spec.name)) {
          if (spec.texts.length === 0) this.nodeAt(owner, field);
          else this.add(owner, field, { type: DnsType.TXT, ttl, data: spec.texts.join(''), texts: spec.texts });
        }
        return;
      case 'mxHost':
        for (const owner of this.owners(spec.name)) this.add(owner, field, { type: DnsType.MX, ttl, data: `${spec.preference} ${spec.target ?? this.opts.serverName}` });
        return;
      case 'ptrRecord':
        if (spec.target === undefined) this.nodeAt(spec.name, field);
        else this.add(spec.name, field, { type: DnsType.PTR, ttl, data: spec.target });
        return;
      case 'address':
        for (const d of spec.domains) addWildcard(this.zone, d, spec.address, ttl, field, this.errors);
        return;
    }
  }

  private addHost(spec: Extract<RecordSpec, { kind: 'hostRecord' }>, field: string, ttl: number): void {
    for (const name of spec.names) {
      for (const owner of this.owners(name)) {
        if (spec.ipv4 !== undefined) this.add(owner, field, { type: DnsType.A, ttl, data: spec.ipv4 });
        if (spec.ipv6 !== undefined) this.add(owner, field, { type: DnsType.AAAA, ttl, data: spec.ipv6 });
      }
    }
    // PTR for the first name, unless an earlier record already named the address (dnsmasq keeps the first)
    if (spec.ipv4 !== undefined) addPtr(this.zone, reverseName(parseIpv4(spec.ipv4)!), this.qualify(spec.names[0]!), ttl, field, this.add);
    if (spec.ipv6 !== undefined) addPtr(this.zone, ipv6ReverseName(ipv6Bytes(spec.ipv6)), this.qualify(spec.names[0]!), ttl, field, this.add);
  }

  /** A CNAME name holds nothing else; no CNAME loops. */
  check(): void {
    for (const [name, node] of this.zone.nodes) {
      if (node.cname && node.rrsets.size > 0) {
        const other = node.field === node.cname.field ? 'other records' : `records (${node.field})`;
        this.errors.push(`${node.cname.field}: "${name}" also has ${other}; a CNAME name holds nothing else (RFC 1034 §3.6.2)`);
      }
    }
    this.errors.push(...cnameLoops(this.zone));
    addZones(this.zone, this.domain, this.opts.subnet);
  }
}

/**
 * Builds the zone; `errors` lists what makes the set unusable, each naming the field. The zone is complete even
 * with errors (a caller that must refuse them does; the daemon never runs one with errors).
 */
export function buildRecordZone(specs: readonly SourcedSpec[], opts: RecordZoneOptions): { zone: RecordZone; errors: string[] } {
  const builder = new ZoneBuilder(new RecordZone(opts, specs), opts);
  for (const { spec, field } of specs) builder.addSpec(spec, field);
  builder.check();
  return { zone: builder.zone, errors: builder.errors };
}

function sameTexts(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  return (a ?? []).join('\0') === (b ?? []).join('\0');
}

function addPtr(zone: RecordZone, reverse: string, target: string, ttl: number, field: string, add: (name: string, field: string, record: LocalRecord) => void): void {
  if (zone.nodes.get(reverse)?.rrsets.has(DnsType.PTR)) return;
  add(reverse, field, { type: DnsType.PTR, ttl, data: target });
}

function addWildcard(zone: RecordZone, domain: string, address: string | undefined, ttl: number, field: string, errors: string[]): void {
  let rule = zone.wildcards.get(domain);
  if (!rule) {
    rule = { domain, a: [], aaaa: [], nxdomain: address === undefined, field };
    zone.wildcards.set(domain, rule);
    zone.indexWildcard(rule);
  }
  if ((address === undefined) !== rule.nxdomain) {
    errors.push(`${field}: /${domain}/ is both NXDOMAIN (no address) and answered with an address (${rule.field})`);
    return;
  }
  if (address === undefined) return;
  const v4 = address === '#' ? '0.0.0.0' : parseIpv4(address) !== undefined ? formatIpv4(parseIpv4(address)!) : undefined;
  const v6 = address === '#' ? '::' : v4 === undefined ? address : undefined;
  if (v4 !== undefined && !rule.a.some((r) => r.data === v4)) rule.a.push({ type: DnsType.A, ttl, data: v4 });
  if (v6 !== undefined && !rule.aaaa.some((r) => r.data === v6)) rule.aaaa.push({ type: DnsType.AAAA, ttl, data: v6 });
}

/** Every alias whose chain of local CNAMEs comes back to itself. */
function cnameLoops(zone: RecordZone): string[] {
  const errors: string[] = [];
  const reported = new Set<string>();
  for (const [name, node] of zone.nodes) {
    if (!node.cname || reported.has(name)) continue;
    const path = [name];
    let current = node.cname.target;
    while (zone.nodes.get(current)?.cname && !path.includes(current) && path.length <= 64) {
      path.push(current);
      current = zone.nodes.get(current)!.cname!.target;
    }
    if (path.includes(current)) {
      for (const p of path) reported.add(p);
      errors.push(`${node.cname.field}: CNAME loop ${[...path.slice(path.indexOf(current)), current].join(' → ')}`);
    }
  }
  return errors;
}

/**
 * SOA zones: natd's domain, the subnet's reverse zone, every address-rule domain (configured), and for every owner
 * name its parent (inferred; the name itself when the parent is a single label, since natd never speaks for a
 * top-level domain, and never a `_label` parent, so `_etcd-server-ssl._tcp.ocp.lab` is in `ocp.lab` with `api.ocp.lab`).
 * Names between an owner and its zone that hold nothing are empty non-terminals: NODATA, not NXDOMAIN.
 */
function addZones(zone: RecordZone, domain: string | undefined, subnet: Subnet | undefined): void {
  if (domain) zone.addZone(domain, true);
  if (subnet) zone.addZone(subnetReverseZone(subnet), true);
  for (const d of zone.wildcards.keys()) zone.addZone(d, true);
  for (const name of zone.nodes.keys()) {
    let parent = parentOf(name);
    while (parent.startsWith('_')) parent = parentOf(parent);
    zone.addZone(parent.includes('.') ? parent : name, false);
  }
  for (const name of [...zone.nodes.keys()]) {
    const apex = zone.zoneOf(name);
    for (let ancestor = parentOf(name); apex !== undefined && ancestor.length > apex.length && ancestor.endsWith(`.${apex}`); ancestor = parentOf(ancestor)) {
      if (!zone.nodes.has(ancestor)) zone.nodes.set(ancestor, { rrsets: new Map() });
    }
  }
}

/** Which kinds of record a zone holds, by count (status, metrics). */
export function countByKind(specs: readonly SourcedSpec[]): Record<RecordKind, number> {
  const counts: Record<RecordKind, number> = { hostRecord: 0, cname: 0, srvHost: 0, txtRecord: 0, mxHost: 0, ptrRecord: 0, address: 0 };
  for (const { spec } of specs) counts[spec.kind]++;
  return counts;
}
