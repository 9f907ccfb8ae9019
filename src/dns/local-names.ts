/**
 * Names natd answers itself: the gateway, every VM with a hostname (from its lease or reservation) and static
 * entries from a hosts-format file, as `name` and `name.<domain>` with PTR records to match. Plus the policy for
 * names that are not local: domain-needed and bogus-priv, as dnsmasq does them for libvirt.
 *
 * Intended use by the server: `lookup(question)` first; when it returns undefined, `policyFor(question)` decides:
 * 'forward' → upstream; anything else → NXDOMAIN answered locally, never forwarded.
 *
 * natd never speaks for a top-level domain or for a name above its own domain (issue 12, row 6): such names are
 * neither published (denied-names.ts) nor answered here, so their DS/NS/DNSKEY/SOA questions go upstream.
 */
import { formatIpv4, parseIpv4, subnetContains, type Subnet } from '../net/ipv4.js';
import type { LocalRecord } from './answers.js';
import { DEFAULT_GATEWAY_NAME, deniedNameReason, isTopLevelDomain } from './denied-names.js';
import { DNS_CLASS_IN, DnsRcode, DnsType, type DnsQuestion } from './types.js';
// issue 14: AAAA and ip6.arpa for the guests' IPv6 addresses, bogus-priv for IPv6 reverse zones
import { ip6BlockInside, ip6ReverseZone, PRIVATE_RANGES6, type Ip6Block } from './reverse6.js';
import { formatIpv6 } from '../ipv6/address.js';

/**
 * issue 14: what LocalNames needs of the IPv6 side (ipv6/guest-addresses.ts behind it): the guests' addresses by
 * MAC (for names held by a lease or reservation) or by name (entries without a MAC), who holds an address, and
 * the gateway's address and the served /64.
 */
export interface Ipv6Names {
  network: Uint8Array;
  gateway: Uint8Array;
  addressesOfMac(mac: string): readonly string[];
  addressesOfName(name: string): readonly string[];
  ownerOf(address: Uint8Array): { name?: string | undefined } | undefined;
  /** issue 18: grows whenever the answers above may change (LocalNames.version) */
  version?(): number;
}

export type HostSource = 'lease' | 'reservation' | 'static';
/** The gateway's own name is built in and outranks everything. */
type EntrySource = HostSource | 'gateway';

/**
 * When one name comes from several sources: an administrator's hosts file beats a reservation, which beats
 * whatever hostname a guest announced in its lease (a guest must not take over a reserved name).
 */
const PRECEDENCE: Record<EntrySource, number> = { gateway: 3, static: 2, reservation: 1, lease: 0 };

export interface LocalAnswer {
  rcode: number;
  records: LocalRecord[];
  authoritative: true;
}

export interface LocalNamesOptions {
  domain?: string;
  subnet: Subnet;
  gatewayAddress: number;
  /** default 'gateway' */
  gatewayName?: string;
  /** TTL of local records; default 0 like dnsmasq's local-ttl, so lease changes are seen at once */
  ttlSeconds?: number;
}

/** Who claimed a name: the lease's client for 'lease' entries, the reserved MAC for 'reservation' entries. */
export interface NameOwner {
  clientId?: string;
  mac?: string;
}

interface HostEntry extends NameOwner {
  name: string;
  address: number;
  source: EntrySource;
}

/** The entry that answers for a name, as LeaseNames needs it to decide a claim. */
export type NameHolder = Readonly<HostEntry>;

/** Why setHost would not publish a name: not a host name at all, or on the deny list (denied-names.ts). */
export type NameRefusal = 'invalid' | 'denied';

/**
 * What an index holds under one key: the entry itself in the usual case (one VM, one name, one address), an array
 * only when there are several. A one-element array per name and per address cost 112 bytes per VM (issue 7).
 */
type Slot = HostEntry | HostEntry[];

const REVERSE_SUFFIX = 'in-addr.arpa';
const DOTTED_REVERSE_SUFFIX = `.${REVERSE_SUFFIX}`;
const NAME_LABEL = /^[a-z0-9_-]{1,63}$/;

/** Lower case, no trailing dot. */
function normalizeName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** The configured domain in table form, or undefined when none is set. */
function normalizeDomain(domain: string | undefined): string | undefined {
  const normalized = domain ? normalizeName(domain).replace(/^\.+/, '') : '';
  return normalized === '' ? undefined : normalized;
}

/** Host names natd will publish: LDH labels (plus '_', seen in the wild), at most 253 characters. */
export function isValidHostName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && name.split('.').every((label) => NAME_LABEL.test(label));
}

/**
 * The IPv4 block an in-addr.arpa name sits in: the octets read from the right as far as they are valid
 * (so "junk.10.in-addr.arpa" is still inside 10/8), `exact` when the name is nothing but those octets.
 */
function reverseZone(name: string): { network: number; prefix: number; exact: boolean } | undefined {
  if (name !== REVERSE_SUFFIX && !name.endsWith(DOTTED_REVERSE_SUFFIX)) return undefined;
  const labels = name === REVERSE_SUFFIX ? [] : name.slice(0, -REVERSE_SUFFIX.length - 1).split('.');
  let network = 0;
  let octets = 0;
  for (let i = labels.length - 1; i >= 0 && octets < 4; i--) {
    const label = labels[i]!;
    if (!/^(0|[1-9]\d{0,2})$/.test(label) || Number(label) > 255) break;
    network = (network | (Number(label) << (24 - 8 * octets))) >>> 0;
    octets++;
  }
  return { network, prefix: 8 * octets, exact: octets === labels.length };
}

/** Reverse zones never sent upstream (bogus-priv): private, shared, loopback and link-local space. */
const PRIVATE_RANGES: { network: number; prefix: number }[] = [
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
].map(([address, prefix]) => ({ network: parseIpv4(address as string)!, prefix: prefix as number }));

function blockInside(block: { network: number; prefix: number }, range: { network: number; prefix: number }): boolean {
  if (block.prefix < range.prefix) return false;
  const mask = range.prefix === 0 ? 0 : (0xffffffff << (32 - range.prefix)) >>> 0;
  return ((block.network & mask) >>> 0) === range.network;
}

/**
 * Types a validating stub legitimately asks about a bare TLD; domain-needed must not break DNSSEC lookups.
 * (DS 43 and DNSKEY 48 are not in DnsType.)
 */
const TLD_TYPES = new Set<number>([DnsType.NS, DnsType.SOA, 43, 48]);

export type NamePolicy = 'local' | 'forward' | 'refuse-single-label' | 'private-reverse';

/**
 * What to do with a question that LocalNames.lookup did not answer:
 * - 'local': inside natd's own zones (the local domain, the subnet's reverse zone) → NXDOMAIN locally;
 * - 'private-reverse': reverse lookup in private space (bogus-priv) → NXDOMAIN locally, never leaked upstream;
 * - 'refuse-single-label': a bare name that is not local (domain-needed) → NXDOMAIN locally;
 * - 'forward': send upstream.
 */
export function policyFor(question: DnsQuestion, opts: { domain?: string; subnet: Subnet }): NamePolicy {
  return namePolicy(opts)(question);
}

/** policyFor with the configuration prepared once, for the server's per-query use. */
export function namePolicy(opts: { domain?: string; subnet: Subnet; ipv6Network?: Uint8Array }): (question: DnsQuestion) => NamePolicy {
  const domain = normalizeDomain(opts.domain);
  const domainSuffix = domain ? `.${domain}` : undefined;
  const { subnet } = opts;
  // a domain that is itself a TLD (an operator's choice) keeps its names, but its apex stays the root's to answer
  const apexIsTld = domain !== undefined && isTopLevelDomain(domain);
  // issue 14: the served /64's reverse zone is natd's own
  const served6: Ip6Block | undefined = opts.ipv6Network ? { network: opts.ipv6Network, prefix: 64 } : undefined;
  return (question) => {
    const name = normalizeName(question.name);
    if (domain && ((name === domain && !apexIsTld) || name.endsWith(domainSuffix!))) return 'local';
    const zone = reverseZone(name);
    if (zone) {
      if (blockInside(zone, subnet)) return 'local';
      if (PRIVATE_RANGES.some((range) => blockInside(zone, range))) return 'private-reverse';
      return 'forward';
    }
    const zone6 = ip6ReverseZone(name);
    if (zone6) {
      if (served6 && ip6BlockInside(zone6, served6)) return 'local';
      if (PRIVATE_RANGES6.some((range) => ip6BlockInside(zone6, range))) return 'private-reverse';
      return 'forward';
    }
    if (name !== '' && !name.includes('.') && !TLD_TYPES.has(question.type)) return 'refuse-single-label';
    return 'forward';
  };
}

export class LocalNames {
  private readonly byName = new Map<string, Slot>();
  private readonly byAddress = new Map<number, Slot>();
  private readonly domain: string | undefined;
  /** `.${domain}`, built once */
  private readonly domainSuffix: string | undefined;
  private readonly subnet: Subnet;
  private ttl: number;
  private readonly gatewayName: string;
  /** the domain is itself a TLD: its apex is not answered here */
  private readonly apexIsTld: boolean;
  /** issue 14: the guests' IPv6 addresses (undefined: IPv4 only) */
  private ipv6: Ipv6Names | undefined;
  /** issue 18: counts changes of the names (see version) */
  private changes = 0;

  constructor(opts: LocalNamesOptions) {
    this.domain = normalizeDomain(opts.domain);
    this.domainSuffix = this.domain ? `.${this.domain}` : undefined;
    this.apexIsTld = this.domain !== undefined && isTopLevelDomain(this.domain);
    this.subnet = opts.subnet;
    this.ttl = opts.ttlSeconds ?? 0;
    this.gatewayName = this.hostKey(opts.gatewayName ?? DEFAULT_GATEWAY_NAME);
    this.add({ name: this.gatewayName, address: opts.gatewayAddress >>> 0, source: 'gateway' });
  }

  /** issue 14: AAAA and ip6.arpa answers from the guests' IPv6 addresses; undefined turns them off. */
  setIpv6(ipv6: Ipv6Names | undefined): void {
    this.ipv6 = ipv6;
    this.changes++;
  }

  /**
   * issue 18: a number that changes whenever what lookup() answers for some name may have changed (names added or
   * removed here or on the IPv6 side), for the DNS server's cache-hit fast path. NaN (equal to nothing, so nothing is
   * ever taken as unchanged) when the IPv6 side does not count its changes.
   */
  get version(): number {
    if (!this.ipv6) return this.changes;
    return this.ipv6.version ? this.changes + this.ipv6.version() : NaN;
  }

  /**
   * issue 14: the name each MAC's lease or reservation holds now (the winner of its name), for the SLAAC learner and
   * the DHCPv6 lease names. Built once per change of the names (`changes`), not per call: DHCPv6 asks on every lease
   * change, and building it walks every name.
   */
  namesByMac(): ReadonlyMap<string, string> {
    if (this.byMac?.at !== this.changes) this.byMac = { at: this.changes, names: this.buildNamesByMac() };
    return this.byMac.names;
  }

  private byMac: { at: number; names: ReadonlyMap<string, string> } | undefined;

  private buildNamesByMac(): Map<string, string> {
    const out = new Map<string, string>();
    for (const slot of this.byName.values()) {
      for (const e of this.winners(slot)) if (e.mac && (e.source === 'lease' || e.source === 'reservation')) out.set(e.mac.toLowerCase(), e.name);
    }
    return out;
  }

  /** issue 15: --local-ttl changes on reload */
  setTtl(seconds: number): void {
    this.ttl = seconds;
  }

  /** Why `name` (with or without the local domain) cannot be published, or undefined when it can. */
  refusalOf(name: string): NameRefusal | undefined {
    const key = this.hostKey(name);
    if (!isValidHostName(key)) return 'invalid';
    return deniedNameReason(key, { gatewayName: this.gatewayName, domain: this.domain }) === undefined && key !== this.domain ? undefined : 'denied';
  }

  /** The entry that answers for `name` now (highest-ranking source, first claimed), or undefined. */
  holderOf(name: string): NameHolder | undefined {
    return this.winners(this.byName.get(this.hostKey(name)))[0];
  }

  /**
   * Publishes `name` → `address`. A lease or reservation name has one address (the latest wins) and an address
   * one lease/reservation name; static names may have several addresses (hosts files repeat names). `owner` records
   * who claimed it (LeaseNames decides claims by it). Returns false, changing nothing, when the name is not a valid
   * host name (guests send anything) or is on the deny list.
   */
  setHost(name: string, address: number, source: HostSource, owner: NameOwner = {}): boolean {
    const key = this.hostKey(name);
    if (this.refusalOf(key) !== undefined) return false;
    const entry: HostEntry = { name: key, address: address >>> 0, source, ...owner };
    if (source === 'static') {
      if (entriesIn(this.byName.get(key)).some((e) => e.source === source && e.address === entry.address)) return true;
    } else {
      const related = [...entriesIn(this.byName.get(key)), ...entriesIn(this.byAddress.get(entry.address))];
      // already published (a lease renewed): one entry per name and per address for this source, so nothing to move
      if (related.some((e) => e.source === source && e.name === key && e.address === entry.address)) return true;
      this.removeWhere((e) => e.source === source && (e.name === key || e.address === entry.address), related);
    }
    this.add(entry);
    return true;
  }

  /** Unpublishes the lease claims on `name` from clients other than `mac` (a reservation gave `mac` the name). */
  removeLeaseClaimsExcept(name: string, mac: string): void {
    this.removeWhere((e) => e.source === 'lease' && e.mac !== mac, entriesIn(this.byName.get(this.hostKey(name))));
  }

  /** Unpublishes whatever names `source` gave `address`. */
  removeAddress(address: number, source: HostSource): void {
    this.removeWhere((e) => e.source === source, entriesIn(this.byAddress.get(address >>> 0)));
  }

  /** Unpublishes `name` (only its entries with `address`, only from `source`, when given). */
  removeHost(name: string, address?: number, source?: HostSource): void {
    const key = this.hostKey(name);
    const addr = address === undefined ? undefined : address >>> 0;
    this.removeWhere(
      (e) =>
        e.source !== 'gateway' && (addr === undefined || e.address === addr) && (source === undefined || e.source === source),
      entriesIn(this.byName.get(key)),
    );
  }

  clearSource(source: HostSource): void {
    this.removeWhere((e) => e.source === source);
  }

  /** Replaces every static entry with the given hosts-file entries (a reload). */
  replaceStatic(entries: readonly HostsEntry[]): void {
    this.clearSource('static');
    for (const entry of entries) for (const name of entry.names) this.setHost(name, entry.address, 'static');
  }

  /**
   * The local answer to `question`, or undefined when the name is not natd's to answer (see policyFor).
   * Known name: A records (A/ANY) or NODATA (any other type). Unknown name under the local domain, or an
   * address in the subnet with no host: NXDOMAIN.
   */
  lookup(question: DnsQuestion): LocalAnswer | undefined {
    if (question.class !== DNS_CLASS_IN) return undefined;
    const name = normalizeName(question.name);
    const zone = reverseZone(name);
    if (zone) return zone.exact && zone.prefix === 32 ? this.lookupAddress(zone.network, question.type) : undefined;
    if (this.ipv6 && name.endsWith('ip6.arpa')) return this.lookupAddress6(name, question.type); // issue 14

    const domain = this.domain;
    if (this.isTldOrAboveDomain(name)) return undefined; // never natd's to answer, whatever was published
    if (domain && name === domain) return answer(DnsRcode.NOERROR, []); // the zone apex exists, holds no A
    const inDomain = domain !== undefined && name.endsWith(this.domainSuffix!);
    const key = inDomain ? name.slice(0, -domain.length - 1) : name;
    const entries = this.winners(this.byName.get(key));
    if (entries.length === 0) {
      // issue 14: a name only an IPv6 source without a MAC gives (no IPv4 lease or reservation holds it)
      const v6Only = this.ipv6 && isValidHostName(key) ? this.ipv6.addressesOfName(key) : [];
      if (v6Only.length === 0) return inDomain ? answer(DnsRcode.NXDOMAIN, []) : undefined;
      return answer(DnsRcode.NOERROR, question.type === DnsType.AAAA || question.type === DnsType.ANY ? this.aaaa(v6Only) : []);
    }
    const records: LocalRecord[] = [];
    if (question.type === DnsType.A || question.type === DnsType.ANY) {
      const addresses = [...new Set(entries.map((e) => e.address))];
      for (const a of addresses) records.push({ type: DnsType.A, ttl: this.ttl, data: formatIpv4(a) });
    }
    if (this.ipv6 && (question.type === DnsType.AAAA || question.type === DnsType.ANY)) records.push(...this.aaaa(this.addresses6Of(entries)));
    return answer(DnsRcode.NOERROR, records);
  }

  /** issue 14: the IPv6 addresses of a name's winning entries: the gateway's, or those of each entry's MAC. */
  private addresses6Of(entries: readonly HostEntry[]): string[] {
    const ipv6 = this.ipv6!;
    const out = new Set<string>();
    for (const e of entries) {
      if (e.source === 'gateway') out.add(formatIpv6(ipv6.gateway));
      else if (e.mac && (e.source === 'lease' || e.source === 'reservation')) for (const a of ipv6.addressesOfMac(e.mac)) out.add(a);
    }
    return [...out];
  }

  private aaaa(addresses: readonly string[]): LocalRecord[] {
    return addresses.map((a) => ({ type: DnsType.AAAA, ttl: this.ttl, data: a }));
  }

  /**
   * issue 14: PTR for an address in the served /64: the gateway's name, or the name of the guest holding it when
   * that name's AAAA answer has the address (forward-confirmed); NXDOMAIN for any other address in the /64;
   * undefined outside it (the policy decides: bogus-priv or forward).
   */
  private lookupAddress6(name: string, type: number): LocalAnswer | undefined {
    const ipv6 = this.ipv6!;
    const zone = ip6ReverseZone(name);
    if (!zone || !zone.exact || zone.prefix !== 128 || !ip6BlockInside(zone, { network: ipv6.network, prefix: 64 })) return undefined;
    const text = formatIpv6(zone.network);
    let ptr: string | undefined;
    if (text === formatIpv6(ipv6.gateway)) ptr = this.gatewayName;
    else {
      const owner = ipv6.ownerOf(zone.network)?.name;
      if (owner !== undefined) {
        const key = this.hostKey(owner);
        const entries = this.winners(this.byName.get(key));
        const forward = entries.length ? this.addresses6Of(entries) : ipv6.addressesOfName(key);
        if (forward.includes(text)) ptr = key;
      }
    }
    if (ptr === undefined) return answer(DnsRcode.NXDOMAIN, []);
    if (type !== DnsType.PTR && type !== DnsType.ANY) return answer(DnsRcode.NOERROR, []);
    return answer(DnsRcode.NOERROR, [{ type: DnsType.PTR, ttl: this.ttl, data: this.fullName(ptr) }]);
  }

  private lookupAddress(address: number, type: number): LocalAnswer | undefined {
    // an entry speaks for its address only if its name resolves to it (its source wins for that name)
    const candidates = entriesIn(this.byAddress.get(address)).filter((e) => this.winners(this.byName.get(e.name)).includes(e));
    const best = this.winners(candidates)[0];
    if (!best) return subnetContains(this.subnet, address) ? answer(DnsRcode.NXDOMAIN, []) : undefined;
    if (type !== DnsType.PTR && type !== DnsType.ANY) return answer(DnsRcode.NOERROR, []);
    return answer(DnsRcode.NOERROR, [{ type: DnsType.PTR, ttl: this.ttl, data: this.fullName(best.name) }]);
  }

  /** Entries from the highest-ranking source among `entries`, in insertion order. */
  private winners(entries: Slot | readonly HostEntry[] | undefined): readonly HostEntry[] {
    if (entries === undefined) return NO_ENTRIES;
    if (!Array.isArray(entries)) return [entries as HostEntry];
    if (entries.length === 0) return NO_ENTRIES;
    const top = Math.max(...entries.map((e) => PRECEDENCE[e.source]));
    return entries.filter((e) => PRECEDENCE[e.source] === top);
  }

  /** A top-level domain, or an ancestor of the local domain (`com` or `example.com` when it is `vm.example.com`). */
  private isTldOrAboveDomain(name: string): boolean {
    if (!name.includes('.')) return isTopLevelDomain(name) || (name === this.domain && this.apexIsTld);
    // `domain` ends with "." + name, without building that string on every query
    const domain = this.domain;
    return domain !== undefined && domain.length > name.length && domain.endsWith(name) && domain.charCodeAt(domain.length - name.length - 1) === 0x2e;
  }

  /** Table key: normalized, with the local domain stripped so "vm1" and "vm1.<domain>" are one host. */
  private hostKey(name: string): string {
    const key = normalizeName(name);
    return this.domain && key.endsWith(`.${this.domain}`) ? key.slice(0, -this.domain.length - 1) : key;
  }

  private fullName(key: string): string {
    return this.domain && !key.includes('.') ? `${key}.${this.domain}` : key;
  }

  private add(entry: HostEntry): void {
    this.changes++;
    append(this.byName, entry.name, entry);
    append(this.byAddress, entry.address, entry);
  }

  /** Removes the matching entries among `candidates` (all entries when omitted) from both indexes. */
  private removeWhere(matches: (entry: HostEntry) => boolean, candidates?: readonly HostEntry[]): void {
    for (const entry of (candidates ?? [...this.byName.values()].flat()).filter(matches)) {
      this.changes++;
      detach(this.byName, entry.name, entry);
      detach(this.byAddress, entry.address, entry);
    }
  }
}

const NO_ENTRIES: readonly HostEntry[] = Object.freeze([]);

function answer(rcode: number, records: LocalRecord[]): LocalAnswer {
  return { rcode, records, authoritative: true };
}

/** The entries of an index slot as an array (never the caller's to change). */
function entriesIn(slot: Slot | undefined): readonly HostEntry[] {
  if (slot === undefined) return NO_ENTRIES;
  return Array.isArray(slot) ? slot : [slot];
}

function append<K>(index: Map<K, Slot>, key: K, entry: HostEntry): void {
  const slot = index.get(key);
  if (slot === undefined) index.set(key, entry);
  else index.set(key, Array.isArray(slot) ? [...slot, entry] : [slot, entry]);
}

/** Removes `entry` from the slot under `key`. Slot arrays are replaced, never changed, so callers may iterate one. */
function detach<K>(index: Map<K, Slot>, key: K, entry: HostEntry): void {
  const slot = index.get(key);
  if (slot === undefined) return;
  if (!Array.isArray(slot)) {
    if (slot === entry) index.delete(key);
    return;
  }
  const rest = slot.filter((e) => e !== entry);
  if (rest.length === 0) index.delete(key);
  else index.set(key, rest.length === 1 ? rest[0]! : rest);
}

export interface HostsEntry {
  address: number;
  names: string[];
}

export interface HostsProblem {
  file: string;
  line: number;
  message: string;
}

/**
 * Reads hosts-format text ("address name [alias…]", '#' comments). IPv4 lines become entries; IPv6 lines are
 * skipped without complaint (natd serves IPv4 only); anything else unusable is reported with file and line.
 */
export function parseHostsFormat(text: string, file: string, domain?: string): { entries: HostsEntry[]; problems: HostsProblem[] } {
  const entries: HostsEntry[] = [];
  const problems: HostsProblem[] = [];
  text.split(/\r?\n/).forEach((rawLine, index) => {
    const fields = rawLine.replace(/#.*/, '').trim().split(/\s+/).filter(Boolean);
    if (fields.length === 0) return;
    const line = index + 1;
    const [addressText, ...nameFields] = fields as [string, ...string[]];
    if (addressText.includes(':')) return;
    const address = parseIpv4(addressText);
    if (address === undefined) {
      problems.push({ file, line, message: `"${addressText}" is not an IPv4 address` });
      return;
    }
    const names: string[] = [];
    for (const field of nameFields) {
      const name = normalizeName(field);
      const denied = deniedNameReason(name, { domain });
      if (!isValidHostName(name)) problems.push({ file, line, message: `"${field}" is not a valid host name` });
      else if (denied) problems.push({ file, line, message: `"${field}" is ${denied}; natd never publishes it` });
      else names.push(name);
    }
    if (nameFields.length === 0) problems.push({ file, line, message: `no name for ${addressText}` });
    if (names.length > 0) entries.push({ address, names });
  });
  return { entries, problems };
}
