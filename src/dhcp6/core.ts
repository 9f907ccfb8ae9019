/**
 * issue 14: the DHCPv6 server core (RFC 8415): bytes from a guest in, a reply (and the lease changes it rests on)
 * out. No sockets: the transport (another module) receives on UDP 547, calls `handle`, and sends the reply it gets.
 *
 * `handle` decides synchronously (so concurrent calls never pick the same address), updates the in-memory state at
 * once, then awaits the journal commit of the changes: its promise resolves only once they are durable, so a Reply
 * that binds an address is never sent before the binding is on disk (as the DHCPv4 side, dhcp/transport.ts). A
 * failed commit resolves with kind 'ignored' and no reply: the client retransmits.
 *
 * Modes: without a range (stateless DHCPv6, SLAAC addresses) natd answers Information-requests with DNS servers and
 * the search list, and a Solicit with an Advertise whose IAs say NoAddrsAvail (RFC 8415 §18.3.9). With a range,
 * IA_NA addresses come from it; reservations (by DUID, or by the MAC in the DUID / the link-layer source, duid.ts)
 * give fixed addresses anywhere in the /64 and their addresses are never given to another client.
 *
 * Address choice, as the DHCPv4 core: the client's current lease, its reservation, the address just advertised to it,
 * an address it asks for, then a hash of DUID+IAID into the range — so a client gets the same address back even when
 * its lease was lost. Guests are hostile: leases, offers and declined addresses are bounded in number, a Decline can
 * quarantine at most a share of the range, and nothing a guest sends can throw (bad input is 'invalid', no change).
 *
 * Message validation follows RFC 8415 §16: Solicit, Confirm and Rebind must not carry a Server Identifier; Request,
 * Renew, Release and Decline must carry ours; a message for another server is 'ignored'. Relay messages are
 * 'ignored' (natd serves its bridge only). Reconfigure is not used (the RFC does not require it).
 */
import type { Logger } from '../log.js';
import { INFINITE_EXPIRES_AT } from '../dhcp/types.js';
import { formatIpv6, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from '../ipv6/address.js';
import {
  decodeDhcp6,
  DHCP6_MESSAGE_NAMES,
  Dhcp6MessageType,
  Dhcp6Option,
  Dhcp6Status,
  encodeDhcp6,
  encodeDomainNames,
  encodeOptions,
  type Dhcp6IaAddress,
  type Dhcp6RawOption,
  type Dhcp6IaNa,
  type Dhcp6Message,
  type Dhcp6StatusValue,
} from './codec.js';
import { formatDuid, macFromDuid } from './duid.js';
import { fqdnReplyData, fqdnWanted, OPTION_CLIENT_FQDN } from './fqdn.js';
import { sanitizeHostname } from '../net/hostname.js';
import type { Dhcp6Reservation, Lease6, Lease6Change, Lease6Journal } from './types.js';

export type { Dhcp6Reservation, Lease6, Lease6Change, Lease6Journal } from './types.js';

/** 0xffffffff seconds: infinity (RFC 8415 §7.7) */
export const INFINITY = 0xffffffff;

export interface Dhcp6CoreOptions {
  /** natd's DUID (duid.ts loadOrCreateServerDuid) */
  serverDuid: Uint8Array;
  /** the served prefix: any address in the /64 (the gateway's is fine) */
  prefix: string;
  /** the gateway's own address, never given out (default: none besides the range/reservation checks) */
  serverAddress?: string;
  /** stateful DHCPv6: IA_NA addresses from start..end (inclusive, both in the /64); absent: stateless only */
  range?: { start: string; end: string };
  reservations?: readonly Dhcp6Reservation[];
  /** where bindings are made durable; absent: memory only (tests, check-config) */
  store?: Lease6Journal;
  /** seconds (dnsmasq gives preferred = valid = the lease time) */
  preferredLifetime: number;
  validLifetime: number;
  /** seconds; default 0.5 and 0.8 of the preferred lifetime (RFC 8415 §21.4) */
  t1?: number;
  t2?: number;
  /** RFC 5952 text; sent in every Reply/Advertise (OPTION_DNS_SERVERS) */
  dnsServers?: readonly string[];
  /** OPTION_DOMAIN_LIST */
  domainSearch?: readonly string[];
  /** answer a Solicit with Rapid Commit by a Reply at once (RFC 8415 §18.3.1) */
  rapidCommit?: boolean;
  /** OPTION_INFORMATION_REFRESH_TIME in replies to Information-request, seconds */
  informationRefreshTime?: number;
  /** how long a declined address stays out of use, seconds (default 600) */
  declineSeconds?: number;
  /** share of the range declined addresses may hold at once (default 0.1; at least 1 address) */
  maxDeclinedShare?: number;
  /** bindings at once (default 65536): more get NoAddrsAvail, whatever the size of the range */
  maxLeases?: number;
  /** how long an advertised address is held for its client, seconds (default 60) */
  offerHoldSeconds?: number;
  now?: () => number;
  logger?: Logger;
  /**
   * Whether a client may have the host name it sends (Client FQDN, RFC 4704: its first label), as the DHCPv4 core's
   * CoreDeps.nameAllowed: a refused name is left off the lease. Absent: every sanitised name is taken. A
   * reservation's name always wins over the client's.
   */
  nameAllowed?: (name: string, claimant: { duid: string; mac?: string; address: string }, binding: boolean) => boolean;
  /**
   * issue 14: whether natd answers the leases' names in its DNS (AAAA/PTR), and under which domain: the Client FQDN
   * option natd sends back says so (fqdn.ts). Absent: natd publishes nothing (N=1).
   */
  fqdn?: { publish: boolean; domain?: string | undefined };
}

/** The first label of a Client FQDN option's name, sanitised; undefined when there is none usable. */
export function clientFqdnLabel(data: Uint8Array): string | undefined {
  // flags (1 byte), then a name in DNS wire format, possibly partial (no root label)
  if (data.length < 3) return undefined;
  const len = data[1]!;
  if (len === 0 || len > 63 || 2 + len > data.length) return undefined;
  return sanitizeHostname(Buffer.from(data.subarray(2, 2 + len)).toString('latin1'));
}

/** The link-layer facts the transport has about the sender. */
export interface Dhcp6Peer {
  /** source address (normally the guest's link-local) */
  address: string;
  /** Ethernet source MAC of the packet, or the neighbour entry of the source, when known */
  mac?: string;
}

export interface Dhcp6Outcome {
  /** reply/advertise: send `reply`; ignored: well-formed but not for natd (or not answerable); invalid: malformed */
  kind: 'reply' | 'advertise' | 'ignored' | 'invalid';
  reply?: Buffer;
  reason?: string;
  /** the durable changes this message made (already committed when the promise resolves) */
  changes?: Lease6Change[];
  /** the received message's name ('solicit', ...), when it decoded; for counters */
  messageType?: string;
}

export interface Dhcp6CoreStats {
  leases: number;
  declined: number;
  offers: number;
  /** addresses in the range (0: stateless) */
  rangeSize: bigint;
  /** range addresses examined to find a free one, since start (the allocation's work; grows by the range's size
   * only when it is scanned whole: at most once per fill, see FullRange) */
  rangeExamined: number;
}

/**
 * What the core knows about a small range it found full (every address leased, offered, declined, reserved or the
 * gateway's): a Solicit then costs O(1) amortised instead of a scan of the whole range, so a flood of Solicits from
 * random DUIDs cannot starve real clients. Addresses that become free come back as `freed` (release, decline end,
 * offer dropped, lease replaced) or through `expiring`, a min-heap of (until, address) of every holder's end, kept
 * from the failed scan on and fed by every new holder; an address popped while still held (a renewed lease) goes back
 * in at its new end. setReservations and overflow drop the memo: the next allocation scans the range again.
 */
interface FullRange {
  freed: string[];
  expiring: { until: number; address: string }[];
}

const MAX_OFFERS = 4096;
const HASH_PROBES = 64;
const SMALL_RANGE = 65_536n;

/** Internal failure of `handle` that maps to an outcome. */
interface Verdict {
  kind: 'ignored' | 'invalid';
  reason: string;
}

/** The low 64 bits of an address (the interface identifier) as a bigint. */
function low64(a: Ipv6Bytes): bigint {
  const hi = ((a[8]! << 24) | (a[9]! << 16) | (a[10]! << 8) | a[11]!) >>> 0;
  const lo = ((a[12]! << 24) | (a[13]! << 16) | (a[14]! << 8) | a[15]!) >>> 0;
  return (BigInt(hi) << 32n) | BigInt(lo);
}

function withLow64(prefix: Ipv6Bytes, v: bigint): Ipv6Bytes {
  const out = new Uint8Array(16);
  out.set(prefix.subarray(0, 8));
  const hi = Number((v >> 32n) & 0xffffffffn);
  const lo = Number(v & 0xffffffffn);
  out[8] = hi >>> 24;
  out[9] = (hi >>> 16) & 0xff;
  out[10] = (hi >>> 8) & 0xff;
  out[11] = hi & 0xff;
  out[12] = lo >>> 24;
  out[13] = (lo >>> 16) & 0xff;
  out[14] = (lo >>> 8) & 0xff;
  out[15] = lo & 0xff;
  return out;
}

function parseOrThrow(text: string, what: string): Ipv6Bytes {
  const a = parseIpv6(text);
  if (!a) throw new RangeError(`dhcp6: ${what} is not an IPv6 address (got "${text}")`);
  return a;
}

function keyOf(duid: string, iaid: number): string {
  return `${duid}|${iaid}`;
}

export class Dhcp6Core {
  private readonly serverDuid: Uint8Array;
  private readonly network: Ipv6Bytes;
  private readonly serverAddress: string | undefined;
  private readonly range: { start: bigint; end: bigint; size: bigint } | undefined;
  private readonly now: () => number;
  private readonly store: Lease6Journal | undefined;
  /** the options every reply carries (DNS_SERVERS, DOMAIN_LIST), encoded once per configuration */
  private readonly plannedOptions: Buffer;
  private readonly maxDeclined: number;

  /** key (duid|iaid) → lease */
  private readonly byKey = new Map<string, Lease6>();
  /** address → key */
  private readonly byAddress = new Map<string, string>();
  /** address → until */
  private readonly declinedUntil = new Map<string, number>();
  /** key → advertised address, held until `until` (insertion order = age) */
  private readonly offers = new Map<string, { address: string; until: number }>();
  /** advertised address → key (the index of `offers`) */
  private readonly offerHolders = new Map<string, string>();

  /** leases an internal sweep ended, for the next sweep() to report */
  private readonly endedUnreported: Lease6Change[] = [];
  /** text → bytes of the addresses the core works with (parsing is the hot path's largest cost otherwise) */
  private readonly parsed = new Map<string, Ipv6Bytes | undefined>();

  private reservationsByDuid = new Map<string, Dhcp6Reservation>();
  private reservationsByMac = new Map<string, Dhcp6Reservation>();
  private reservedAddresses = new Map<string, Dhcp6Reservation>();
  /** set while a small range is known full (see FullRange) */
  private full: FullRange | undefined;
  private rangeExamined = 0;

  constructor(private readonly opts: Dhcp6CoreOptions) {
    this.serverDuid = Uint8Array.from(opts.serverDuid);
    this.network = networkOf(parseOrThrow(opts.prefix, 'prefix'), 64);
    this.serverAddress = opts.serverAddress === undefined ? undefined : formatIpv6(parseOrThrow(opts.serverAddress, 'serverAddress'));
    this.now = opts.now ?? Date.now;
    this.store = opts.store;
    if (opts.range) {
      const start = parseOrThrow(opts.range.start, 'range start');
      const end = parseOrThrow(opts.range.end, 'range end');
      if (!this.onLink(start) || !this.onLink(end)) throw new RangeError('dhcp6: the range must be inside the served /64');
      const s = low64(start);
      const e = low64(end);
      if (s > e) throw new RangeError('dhcp6: range start is after its end');
      this.range = { start: s, end: e, size: e - s + 1n };
    }
    const rangeSize = this.range ? this.range.size : 0n;
    const share = opts.maxDeclinedShare ?? 0.1;
    this.maxDeclined = Math.max(1, Math.min(4096, Number(rangeSize > 1_000_000n ? 1_000_000n : rangeSize) * share) | 0);
    const planned: Dhcp6RawOption[] = [];
    if (opts.dnsServers?.length) planned.push({ code: Dhcp6Option.DNS_SERVERS, data: Buffer.concat(opts.dnsServers.map((s) => parseOrThrow(s, 'DNS server'))) });
    if (opts.domainSearch?.length) planned.push({ code: Dhcp6Option.DOMAIN_LIST, data: encodeDomainNames(opts.domainSearch) });
    this.plannedOptions = encodeOptions(planned);
    this.setReservations(opts.reservations ?? []);
    if (this.store) {
      const loaded = this.store.load6(this.now());
      for (const lease of loaded.leases) this.put(lease);
      for (const d of loaded.declined) this.declinedUntil.set(d.address, d.until);
    }
  }

  // ---- public -----------------------------------------------------------------------------------------------------

  /** Decodes, validates and answers one message; resolves after the changes it made are durable. Never rejects. */
  async handle(packet: Uint8Array, peer: Dhcp6Peer): Promise<Dhcp6Outcome> {
    return this.handleNow(packet, peer);
  }

  /**
   * handle(), but the outcome itself when the message changed no lease (an Advertise, a rejected message: nothing to
   * wait for), else the promise that resolves once the changes are durable. Keeps no view of `packet`.
   */
  handleNow(packet: Uint8Array, peer: Dhcp6Peer): Dhcp6Outcome | Promise<Dhcp6Outcome> {
    let decided: { outcome: Dhcp6Outcome; changes: Lease6Change[] };
    try {
      decided = this.decide(packet, peer, this.now());
    } catch (err) {
      // a bug, never the guest's doing: no state was committed; report it as invalid input rather than crash
      this.opts.logger?.warnLimited('dhcp6:core', 'DHCPv6 core failed on a message, ignoring it', { error: String(err) });
      return { kind: 'invalid', reason: `internal error: ${(err as Error).message}` };
    }
    const { outcome, changes } = decided;
    if (changes.length === 0) return outcome;
    if (!this.store) return { ...outcome, changes };
    return this.commit(this.store, outcome, changes);
  }

  private async commit(store: Lease6Journal, outcome: Dhcp6Outcome, changes: Lease6Change[]): Promise<Dhcp6Outcome> {
    try {
      await store.commit(changes);
    } catch (err) {
      this.opts.logger?.warnLimited('dhcp6:commit', 'cannot persist DHCPv6 lease change; no reply sent', { error: (err as Error).message });
      return { kind: 'ignored', reason: `lease store: ${(err as Error).message}`, messageType: outcome.messageType };
    }
    outcome.changes = changes;
    return outcome;
  }

  /** The unexpired bindings. */
  leases(now = this.now()): Lease6[] {
    return [...this.byKey.values()].filter((l) => l.expiresAt > now);
  }

  /** Quarantined (declined) addresses still out of use at `now`. */
  declined(now = this.now()): { address: string; until: number }[] {
    return [...this.declinedUntil].filter(([, until]) => until > now).map(([address, until]) => ({ address, until }));
  }

  /**
   * Forgets leases, offers and quarantines that ended by `now`; returns the ended leases as release6 changes (for
   * DNS and lease events; committing them is optional: an expired bind is dropped when the journal loads).
   */
  sweep(now = this.now()): Lease6Change[] {
    // ended by an internal sweep, unless the same binding was made again since
    const ended = this.endedUnreported.splice(0).filter((c) => c.kind !== 'release6' || this.byKey.get(keyOf(c.duid, c.iaid))?.address !== c.address);
    for (const [key, lease] of this.byKey) {
      if (lease.expiresAt > now) continue;
      this.remove(key);
      ended.push({ kind: 'release6', duid: lease.duid, iaid: lease.iaid, address: lease.address });
    }
    for (const [address, until] of this.declinedUntil) if (until <= now) this.unquarantine(address);
    for (const [key, offer] of this.offers) if (offer.until <= now) this.unoffer(key);
    return ended;
  }

  /**
   * Replaces the reservations (reload). Existing bindings that now conflict are not cut: the next Renew/Rebind
   * of such a binding gets the address with lifetimes 0 and the right one (allocate()'s checks).
   */
  setReservations(list: readonly Dhcp6Reservation[]): void {
    const byDuid = new Map<string, Dhcp6Reservation>();
    const byMac = new Map<string, Dhcp6Reservation>();
    const byAddress = new Map<string, Dhcp6Reservation>();
    for (const r of list) {
      const address = formatIpv6(parseOrThrow(r.address, 'reservation address'));
      if (!this.onLink(parseIpv6(address)!)) throw new RangeError(`dhcp6: reservation ${address} is outside the served /64`);
      const entry: Dhcp6Reservation = { ...r, address };
      if (r.duid !== undefined) entry.duid = r.duid.toLowerCase();
      if (r.mac !== undefined) entry.mac = r.mac.toLowerCase();
      // first definition wins, as the hostsfile does
      if (byAddress.has(address)) continue;
      if (entry.duid !== undefined && byDuid.has(entry.duid)) continue;
      if (entry.mac !== undefined && byMac.has(entry.mac)) continue;
      byAddress.set(address, entry);
      if (entry.duid !== undefined) byDuid.set(entry.duid, entry);
      if (entry.mac !== undefined) byMac.set(entry.mac, entry);
    }
    this.reservationsByDuid = byDuid;
    this.reservationsByMac = byMac;
    this.reservedAddresses = byAddress;
    this.full = undefined; // reserved addresses left or joined the range: scan it again
    for (const [key, offer] of this.offers) if (byAddress.has(offer.address)) this.unoffer(key);
  }

  stats(now = this.now()): Dhcp6CoreStats {
    return { leases: this.leases(now).length, declined: this.declined(now).length, offers: this.offers.size, rangeSize: this.range?.size ?? 0n, rangeExamined: this.rangeExamined };
  }

  /** natd's server DUID, as the transport may log it. */
  get duid(): string {
    return formatDuid(this.serverDuid);
  }

  // ---- decision ---------------------------------------------------------------------------------------------------

  private decide(packet: Uint8Array, peer: Dhcp6Peer, now: number): { outcome: Dhcp6Outcome; changes: Lease6Change[] } {
    const decoded = decodeDhcp6(packet);
    if (!decoded.ok) return { outcome: { kind: decoded.relay ? 'ignored' : 'invalid', reason: decoded.reason }, changes: [] };
    const msg = decoded.message;
    const messageType = DHCP6_MESSAGE_NAMES[msg.type] ?? `type-${msg.type}`;
    const verdict = this.validate(msg);
    if (verdict) return { outcome: { ...verdict, messageType }, changes: [] };
    const client = this.clientOf(msg, peer);
    const changes: Lease6Change[] = [];
    let reply: Dhcp6Message | undefined;
    let kind: 'reply' | 'advertise' = 'reply';
    switch (msg.type) {
      case Dhcp6MessageType.SOLICIT:
        ({ reply, kind } = this.solicit(msg, client, now, changes));
        break;
      case Dhcp6MessageType.REQUEST:
        reply = this.request(msg, client, now, changes);
        break;
      case Dhcp6MessageType.RENEW:
      case Dhcp6MessageType.REBIND:
        reply = this.extend(msg, client, now, changes);
        break;
      case Dhcp6MessageType.RELEASE:
        reply = this.release(msg, client, changes);
        break;
      case Dhcp6MessageType.DECLINE:
        reply = this.decline(msg, client, now, changes);
        break;
      case Dhcp6MessageType.CONFIRM:
        reply = this.confirm(msg, client);
        if (!reply) return { outcome: { kind: 'ignored', reason: 'confirm without addresses', messageType }, changes };
        break;
      case Dhcp6MessageType.INFORMATION_REQUEST:
        reply = this.informationReply(msg);
        break;
      default:
        return { outcome: { kind: 'ignored', reason: `${messageType} is not a client message`, messageType }, changes };
    }
    if (client.fqdn && fqdnWanted(msg.oro, true) && msg.type !== Dhcp6MessageType.RELEASE && msg.type !== Dhcp6MessageType.DECLINE && msg.type !== Dhcp6MessageType.INFORMATION_REQUEST)
      reply.other.push({ code: OPTION_CLIENT_FQDN, data: fqdnReplyData(client.fqdn, this.publishedName(client, reply, changes), client.name, this.opts.fqdn?.domain) });
    return { outcome: { kind, reply: encodeDhcp6(reply, this.plannedOptions), messageType }, changes };
  }

  /** The name natd answers in DNS for this client after this reply (RFC 4704 reply, fqdn.ts); undefined: none. */
  private publishedName(client: Client, reply: Dhcp6Message, changes: readonly Lease6Change[]): string | undefined {
    if (!this.opts.fqdn?.publish) return undefined;
    const bound = changes.find((c): c is Extract<Lease6Change, { kind: 'bind6' }> => c.kind === 'bind6' && c.lease.duid === client.duid);
    if (bound) return bound.lease.hostname;
    if (reply.type !== Dhcp6MessageType.ADVERTISE) return undefined;
    // an Advertise binds nothing: the name a binding of the advertised address would get
    const address = reply.iaNa.flatMap((ia) => ia.addresses).map((a) => formatIpv6(a.address))[0];
    if (address === undefined) return undefined;
    const reserved = this.reservedAddresses.get(address)?.hostname;
    if (reserved !== undefined || client.name === undefined) return reserved;
    const claimant: { duid: string; mac?: string; address: string } = { duid: client.duid, address };
    if (client.mac !== undefined) claimant.mac = client.mac;
    return !this.opts.nameAllowed || this.opts.nameAllowed(client.name, claimant, false) ? client.name : undefined;
  }

  /** RFC 8415 §16: what each message must and must not carry. undefined: go on. */
  private validate(msg: Dhcp6Message): Verdict | undefined {
    const T = Dhcp6MessageType;
    const ours = msg.serverId !== undefined && sameBytes(msg.serverId, this.serverDuid);
    switch (msg.type) {
      case T.SOLICIT:
      case T.CONFIRM:
      case T.REBIND:
        if (!msg.clientId) return { kind: 'invalid', reason: 'no client identifier' };
        if (msg.serverId) return { kind: 'invalid', reason: 'carries a server identifier it must not have' };
        return undefined;
      case T.REQUEST:
      case T.RENEW:
      case T.RELEASE:
      case T.DECLINE:
        if (!msg.clientId) return { kind: 'invalid', reason: 'no client identifier' };
        if (!msg.serverId) return { kind: 'invalid', reason: 'no server identifier' };
        if (!ours) return { kind: 'ignored', reason: 'for another server' };
        return undefined;
      case T.INFORMATION_REQUEST:
        if (msg.serverId && !ours) return { kind: 'ignored', reason: 'for another server' };
        if (msg.iaNa.length > 0 || msg.other.some((o) => o.code === Dhcp6Option.IA_TA || o.code === Dhcp6Option.IA_PD))
          return { kind: 'invalid', reason: 'information-request with an IA option' };
        return undefined;
      default:
        return { kind: 'ignored', reason: `${DHCP6_MESSAGE_NAMES[msg.type] ?? `type ${msg.type}`} is not a message a server answers` };
    }
  }

  private clientOf(msg: Dhcp6Message, peer: Dhcp6Peer): Client {
    const duid = msg.clientId ? formatDuid(msg.clientId) : '';
    const mac = (msg.clientId ? macFromDuid(msg.clientId) : undefined) ?? normalizeMac(peer.mac);
    const reservation = this.reservationsByDuid.get(duid) ?? (mac !== undefined ? this.reservationsByMac.get(mac) : undefined);
    const fqdn = msg.other.find((o) => o.code === OPTION_CLIENT_FQDN);
    const name = fqdn ? clientFqdnLabel(fqdn.data) : undefined;
    return { duid, mac, reservation, name, fqdn: fqdn?.data };
  }

  /** The reply skeleton: server and client ids (DNS and the search list are plannedOptions, added by the encoder). */
  private replyTo(msg: Dhcp6Message, type: number): Dhcp6Message {
    const reply: Dhcp6Message = { type, transactionId: msg.transactionId, serverId: this.serverDuid, iaNa: [], other: [] };
    if (msg.clientId) reply.clientId = msg.clientId;
    return reply;
  }

  private solicit(msg: Dhcp6Message, client: Client, now: number, changes: Lease6Change[]): { reply: Dhcp6Message; kind: 'reply' | 'advertise' } {
    const commit = this.opts.rapidCommit === true && msg.rapidCommit === true;
    const reply = this.replyTo(msg, commit ? Dhcp6MessageType.REPLY : Dhcp6MessageType.ADVERTISE);
    let assigned = 0;
    for (const ia of msg.iaNa) {
      const address = this.allocate(client, ia, now);
      if (address === undefined) {
        reply.iaNa.push(noAddrs(ia.iaid));
        continue;
      }
      assigned++;
      if (commit) reply.iaNa.push(this.bind(client, ia.iaid, address, now, changes));
      else {
        this.offer(keyOf(client.duid, ia.iaid), address, now);
        reply.iaNa.push(this.iaWith(ia.iaid, [this.liveAddress(address)]));
      }
    }
    if (assigned === 0) {
      // RFC 8415 §18.3.9: nothing to assign. A Rapid Commit Solicit gets an Advertise then too (§18.3.1).
      reply.type = Dhcp6MessageType.ADVERTISE;
      reply.status = { code: Dhcp6Status.NO_ADDRS_AVAIL, message: this.range ? 'no addresses available' : 'stateless DHCPv6 only: no addresses are assigned' };
      return { reply, kind: 'advertise' };
    }
    if (commit) reply.rapidCommit = true;
    return { reply, kind: commit ? 'reply' : 'advertise' };
  }

  /**
   * Request (RFC 8415 §18.3.2): bind an address to each IA, or NoAddrsAvail in that IA. Addresses the client asked
   * for and does not get (another's, off the link, a stale one from another network) come back with lifetimes 0,
   * so it stops using them.
   */
  private request(msg: Dhcp6Message, client: Client, now: number, changes: Lease6Change[]): Dhcp6Message {
    const reply = this.replyTo(msg, Dhcp6MessageType.REPLY);
    for (const ia of msg.iaNa) {
      const address = this.allocate(client, ia, now);
      if (address === undefined) {
        reply.iaNa.push(noAddrs(ia.iaid));
        continue;
      }
      const out = this.bind(client, ia.iaid, address, now, changes);
      const refused = new Set(ia.addresses.map((a) => formatIpv6(a.address)));
      refused.delete(address);
      for (const text of refused) out.addresses.push(zeroLifetimes(parseIpv6(text)!));
      reply.iaNa.push(out);
    }
    return reply;
  }

  /**
   * Renew (§18.3.4) and Rebind (§18.3.5). A binding natd still approves is extended; one it no longer does (the
   * address was reserved for another client since) is replaced, the old address sent with lifetimes 0. Without a
   * binding (lost state) an address the client holds is re-bound when natd would give it to that client anyway;
   * otherwise Renew gets NoBinding and Rebind gets the addresses back with lifetimes 0.
   */
  private extend(msg: Dhcp6Message, client: Client, now: number, changes: Lease6Change[]): Dhcp6Message {
    const rebind = msg.type === Dhcp6MessageType.REBIND;
    const reply = this.replyTo(msg, Dhcp6MessageType.REPLY);
    for (const ia of msg.iaNa) {
      const key = keyOf(client.duid, ia.iaid);
      const lease = this.live(key, now);
      const held = lease ? lease.address : ia.addresses.map((a) => formatIpv6(a.address)).find((a) => this.mayHold(client, key, a, now));
      if (held === undefined) {
        if (!rebind || ia.addresses.length === 0) reply.iaNa.push({ iaid: ia.iaid, t1: 0, t2: 0, addresses: [], status: { code: Dhcp6Status.NO_BINDING, message: 'no binding for this IA' } });
        else reply.iaNa.push({ iaid: ia.iaid, t1: 0, t2: 0, addresses: ia.addresses.map((a) => zeroLifetimes(a.address)) });
        continue;
      }
      // a reservation made since moves the client to its address; else it keeps what it holds while natd approves
      const reserved = client.reservation?.address;
      const moveTo = reserved !== undefined && reserved !== held && this.mayHold(client, key, reserved, now) && !this.heldByOtherIa(client, key, reserved, now) ? reserved : undefined;
      const address = moveTo ?? (this.mayHold(client, key, held, now) ? held : this.allocate(client, ia, now));
      if (address === undefined) {
        reply.iaNa.push({ ...noAddrs(ia.iaid), addresses: [zeroLifetimes(parseIpv6(held)!)] });
        if (lease) this.drop(key, lease, changes);
        continue;
      }
      const out = this.bind(client, ia.iaid, address, now, changes);
      // addresses the client lists that are not (or no longer) its binding: lifetimes 0, so it stops using them
      const stale = new Set([held, ...ia.addresses.map((a) => formatIpv6(a.address))]);
      stale.delete(address);
      for (const text of stale) out.addresses.push(zeroLifetimes(parseIpv6(text)!));
      reply.iaNa.push(out);
    }
    return reply;
  }

  /** Release (§18.3.7): bindings listed end; IAs natd has no binding for get NoBinding. */
  private release(msg: Dhcp6Message, client: Client, changes: Lease6Change[]): Dhcp6Message {
    const reply = this.replyTo(msg, Dhcp6MessageType.REPLY);
    reply.status = { code: Dhcp6Status.SUCCESS, message: 'released' };
    for (const ia of msg.iaNa) {
      const key = keyOf(client.duid, ia.iaid);
      const lease = this.byKey.get(key);
      const listed = ia.addresses.map((a) => formatIpv6(a.address));
      if (lease && listed.includes(lease.address)) this.drop(key, lease, changes);
      else reply.iaNa.push({ iaid: ia.iaid, t1: 0, t2: 0, addresses: [], status: { code: Dhcp6Status.NO_BINDING, message: 'no binding for this IA' } });
    }
    return reply;
  }

  /**
   * Decline (§18.3.8): the client found its address in use. The address leaves the binding and is quarantined for
   * declineSeconds; the quarantine holds at most maxDeclinedShare of the range (the oldest ends first), so a guest
   * cannot empty the range by declining.
   */
  private decline(msg: Dhcp6Message, client: Client, now: number, changes: Lease6Change[]): Dhcp6Message {
    const reply = this.replyTo(msg, Dhcp6MessageType.REPLY);
    reply.status = { code: Dhcp6Status.SUCCESS, message: 'declined' };
    for (const ia of msg.iaNa) {
      const key = keyOf(client.duid, ia.iaid);
      const lease = this.byKey.get(key);
      const listed = ia.addresses.map((a) => formatIpv6(a.address));
      if (!lease || !listed.includes(lease.address)) {
        reply.iaNa.push({ iaid: ia.iaid, t1: 0, t2: 0, addresses: [], status: { code: Dhcp6Status.NO_BINDING, message: 'no binding for this IA' } });
        continue;
      }
      this.remove(key);
      this.unoffer(key);
      const until = now + (this.opts.declineSeconds ?? 600) * 1000;
      this.quarantine(lease.address, until);
      changes.push({ kind: 'decline6', address: lease.address, until });
    }
    return reply;
  }

  /** Confirm (§18.3.3): Success when every address is on the link, NotOnLink otherwise; no addresses: no reply. */
  private confirm(msg: Dhcp6Message, _client: Client): Dhcp6Message | undefined {
    const addresses = msg.iaNa.flatMap((ia) => ia.addresses);
    if (addresses.length === 0) return undefined;
    const reply = this.replyTo(msg, Dhcp6MessageType.REPLY);
    const onLink = addresses.every((a) => this.onLink(a.address));
    reply.status = onLink ? { code: Dhcp6Status.SUCCESS, message: 'all addresses are on link' } : { code: Dhcp6Status.NOT_ON_LINK, message: 'not on link' };
    return reply;
  }

  /** Information-request (§18.3.6): the options, no addresses. */
  private informationReply(msg: Dhcp6Message): Dhcp6Message {
    const reply = this.replyTo(msg, Dhcp6MessageType.REPLY);
    if (this.opts.informationRefreshTime !== undefined) reply.informationRefreshTime = this.opts.informationRefreshTime;
    return reply;
  }

  // ---- addresses ------------------------------------------------------------------------------------------------

  /** in the served /64: the first 8 bytes are the network's (compared in place: this runs per candidate address) */
  private onLink(a: Ipv6Bytes): boolean {
    const n = this.network;
    for (let i = 0; i < 8; i++) if (a[i] !== n[i]) return false;
    return a.length === 16;
  }

  private inRange(a: Ipv6Bytes): boolean {
    if (!this.range || !this.onLink(a)) return false;
    const v = low64(a);
    return v >= this.range.start && v <= this.range.end;
  }

  private live(key: string, now: number): Lease6 | undefined {
    const lease = this.byKey.get(key);
    return lease && lease.expiresAt > now ? lease : undefined;
  }

  /** Whether `address` may be bound to this client's IA `key` now. */
  private mayHold(client: Client, key: string, address: string, now: number): boolean {
    const bytes = this.bytesOf(address);
    if (!bytes || !this.onLink(bytes) || address === this.serverAddress) return false;
    const reserved = this.reservedAddresses.get(address);
    if (reserved) {
      if (reserved !== client.reservation) return false;
    } else if (!this.inRange(bytes)) return false;
    const holder = this.byAddress.get(address);
    if (holder !== undefined && holder !== key && (this.byKey.get(holder)?.expiresAt ?? 0) > now) return false;
    const offered = this.offeredTo(address, now);
    if (offered !== undefined && offered !== key) return false;
    const until = this.declinedUntil.get(address);
    return until === undefined || until <= now;
  }

  private offeredTo(address: string, now: number): string | undefined {
    const key = this.offerHolders.get(address);
    return key !== undefined && (this.offers.get(key)?.until ?? 0) > now ? key : undefined;
  }

  /** The address for this client's IA, or undefined when there is none (see the header for the order). */
  private allocate(client: Client, ia: Dhcp6IaNa, now: number): string | undefined {
    const key = keyOf(client.duid, ia.iaid);
    const lease = this.live(key, now);
    const reserved = client.reservation?.address;
    // a reservation moves the client to its address, whatever it held before
    if (reserved !== undefined && this.mayHold(client, key, reserved, now) && !this.heldByOtherIa(client, key, reserved, now)) return reserved;
    if (lease && this.mayHold(client, key, lease.address, now)) return lease.address;
    if (!this.range) return undefined;
    if (this.byKey.size >= (this.opts.maxLeases ?? 65_536) && !lease) {
      this.endedUnreported.push(...this.sweep(now)); // reported by the next sweep()
      if (this.byKey.size >= (this.opts.maxLeases ?? 65_536)) return undefined;
    }
    const offer = this.offers.get(key);
    if (offer && offer.until > now && this.mayHold(client, key, offer.address, now)) return offer.address;
    for (const a of ia.addresses) {
      const text = formatIpv6(a.address);
      if (this.mayHold(client, key, text, now)) return text;
    }
    return this.fromRange(client, key, now);
  }

  private heldByOtherIa(client: Client, key: string, address: string, now: number): boolean {
    const holder = this.byAddress.get(address);
    return holder !== undefined && holder !== key && holder.startsWith(`${client.duid}|`) && (this.byKey.get(holder)?.expiresAt ?? 0) > now;
  }

  /**
   * A hash of the key into the range, then the next free ones (a small range is scanned whole, but only while it
   * is not known full: see FullRange).
   */
  private fromRange(client: Client, key: string, now: number): string | undefined {
    const range = this.range!;
    const start = hash64(key, 0) % range.size;
    if (range.size <= SMALL_RANGE) {
      if (this.full) return this.fromFull(this.full, client, key, now);
      const ends: { until: number; address: string }[] = [];
      let known = true;
      for (let i = 0n; i < range.size; i++) {
        this.rangeExamined++;
        const text = this.remember(withLow64(this.network, range.start + ((start + i) % range.size)));
        if (this.mayHold(client, key, text, now)) return text;
        const until = this.heldUntil(text, now);
        if (until <= now) known = false; // free for another client only: no memo (cannot happen today; stay exact)
        else if (until !== Infinity) ends.push({ until, address: text });
      }
      if (known) this.full = { freed: [], expiring: heapify(ends) };
      return undefined;
    }
    for (let probe = 0; probe < HASH_PROBES; probe++) {
      this.rangeExamined++;
      const offset = probe === 0 ? start : hash64(key, probe) % range.size;
      const text = this.remember(withLow64(this.network, range.start + offset));
      if (this.mayHold(client, key, text, now)) return text;
    }
    return undefined;
  }

  /** fromRange on a range known full: the addresses freed since, then those whose holder's time is up. */
  private fromFull(full: FullRange, client: Client, key: string, now: number): string | undefined {
    while (full.freed.length) {
      const text = full.freed.pop()!;
      this.rangeExamined++;
      if (this.mayHold(client, key, text, now)) return text;
      // still (or again) held: its holder's end is in `expiring` (noteHeld)
    }
    const heap = full.expiring;
    while (heap.length && heap[0]!.until <= now) {
      const { address } = heapPop(heap);
      this.rangeExamined++;
      if (this.mayHold(client, key, address, now)) return address;
      const until = this.heldUntil(address, now);
      if (until > now && until !== Infinity) heapPush(heap, { until, address });
    }
    return undefined;
  }

  /** When `address` stops being held by anyone (lease, offer, quarantine); Infinity: reserved or the gateway's. */
  private heldUntil(address: string, now: number): number {
    if (this.reservedAddresses.has(address) || address === this.serverAddress) return Infinity;
    let until = now;
    const holder = this.byAddress.get(address);
    const lease = holder !== undefined ? this.byKey.get(holder) : undefined;
    if (lease && lease.expiresAt > until) until = lease.expiresAt;
    const offerKey = this.offerHolders.get(address);
    const offer = offerKey !== undefined ? this.offers.get(offerKey) : undefined;
    if (offer && offer.until > until) until = offer.until;
    const declined = this.declinedUntil.get(address);
    if (declined !== undefined && declined > until) until = declined;
    return until;
  }

  /** An address of the range got a holder until `until` (a known-full range must see it end). */
  private noteHeld(address: string, until: number): void {
    const full = this.full;
    if (!full) return;
    heapPush(full.expiring, { until, address });
    if (full.expiring.length > this.fullLimit()) this.full = undefined;
  }

  /** An address may have become free (a known-full range tries it first). */
  private noteFreed(address: string): void {
    const full = this.full;
    if (!full) return;
    full.freed.push(address);
    if (full.freed.length > this.fullLimit()) this.full = undefined;
  }

  /** Bound of the memo's lists: past it the memo is dropped and the range scanned again (at most once per fill). */
  private fullLimit(): number {
    return 2 * Number(this.range?.size ?? 0n) + 1024;
  }

  /** The text of bytes the core made, with the bytes remembered for bytesOf. */
  private remember(bytes: Ipv6Bytes): string {
    const text = formatIpv6(bytes);
    if (!this.parsed.has(text)) {
      if (this.parsed.size >= 16_384) this.parsed.clear();
      this.parsed.set(text, bytes);
    }
    return text;
  }

  private offer(key: string, address: string, now: number): void {
    this.unoffer(key);
    const until = now + (this.opts.offerHoldSeconds ?? 60) * 1000;
    this.offers.set(key, { address, until });
    this.offerHolders.set(address, key);
    this.noteHeld(address, until);
    while (this.offers.size > MAX_OFFERS) this.unoffer(this.offers.keys().next().value!);
  }

  /** The offers and their index change only in offer() and here, together. */
  private unoffer(key: string): void {
    const offer = this.offers.get(key);
    if (!offer) return;
    this.offers.delete(key);
    if (this.offerHolders.get(offer.address) === key) this.offerHolders.delete(offer.address);
    this.noteFreed(offer.address);
  }

  private unquarantine(address: string): void {
    if (this.declinedUntil.delete(address)) this.noteFreed(address);
  }

  private quarantine(address: string, until: number): void {
    this.declinedUntil.delete(address);
    this.declinedUntil.set(address, until);
    this.noteHeld(address, until);
    while (this.declinedUntil.size > this.maxDeclined) {
      // the one that ends first goes first
      let oldest: string | undefined;
      let oldestUntil = Infinity;
      for (const [a, u] of this.declinedUntil) if (u < oldestUntil) [oldest, oldestUntil] = [a, u];
      this.unquarantine(oldest!);
    }
  }

  private lifetimes(): { preferred: number; valid: number; t1: number; t2: number } {
    const valid = this.opts.validLifetime;
    const preferred = Math.min(this.opts.preferredLifetime, valid);
    const t1 = this.opts.t1 ?? (preferred === INFINITY ? INFINITY : Math.floor(preferred * 0.5));
    const t2 = this.opts.t2 ?? (preferred === INFINITY ? INFINITY : Math.floor(preferred * 0.8));
    return { preferred, valid, t1, t2 };
  }

  private liveAddress(address: string): Dhcp6IaAddress {
    const { preferred, valid } = this.lifetimes();
    return { address: this.bytesOf(address)!, preferredLifetime: preferred, validLifetime: valid };
  }

  /** parseIpv6, remembered (bounded: the cache starts over when full). Callers never modify the bytes. */
  private bytesOf(text: string): Ipv6Bytes | undefined {
    let bytes = this.parsed.get(text);
    if (bytes === undefined && !this.parsed.has(text)) {
      if (this.parsed.size >= 16_384) this.parsed.clear();
      bytes = parseIpv6(text);
      this.parsed.set(text, bytes);
    }
    return bytes;
  }

  private iaWith(iaid: number, addresses: Dhcp6IaAddress[]): Dhcp6IaNa {
    const { t1, t2 } = this.lifetimes();
    return { iaid, t1, t2, addresses };
  }

  /** Binds (or extends) and records the change; returns the IA for the reply. */
  private bind(client: Client, iaid: number, address: string, now: number, changes: Lease6Change[]): Dhcp6IaNa {
    const key = keyOf(client.duid, iaid);
    const { valid } = this.lifetimes();
    const lease: Lease6 = { duid: client.duid, iaid, address, expiresAt: valid === INFINITY ? INFINITE_EXPIRES_AT : now + valid * 1000 };
    if (client.mac !== undefined) lease.mac = client.mac;
    const name = this.reservedAddresses.get(address)?.hostname ?? this.clientName(client, address);
    if (name !== undefined) lease.hostname = name;
    this.unoffer(key);
    this.put(lease);
    changes.push({ kind: 'bind6', lease });
    return this.iaWith(iaid, [this.liveAddress(address)]);
  }

  private clientName(client: Client, address: string): string | undefined {
    if (client.name === undefined) return undefined;
    const claimant: { duid: string; mac?: string; address: string } = { duid: client.duid, address };
    if (client.mac !== undefined) claimant.mac = client.mac;
    return !this.opts.nameAllowed || this.opts.nameAllowed(client.name, claimant, true) ? client.name : undefined;
  }

  private drop(key: string, lease: Lease6, changes: Lease6Change[]): void {
    this.remove(key);
    this.unoffer(key);
    changes.push({ kind: 'release6', duid: lease.duid, iaid: lease.iaid, address: lease.address });
  }

  /** The two indexes change only here and in remove(), together. */
  private put(lease: Lease6): void {
    const key = keyOf(lease.duid, lease.iaid);
    this.remove(key);
    const holder = this.byAddress.get(lease.address);
    if (holder !== undefined) this.remove(holder);
    this.declinedUntil.delete(lease.address);
    this.byKey.set(key, Object.freeze({ ...lease }));
    this.byAddress.set(lease.address, key);
    this.noteHeld(lease.address, lease.expiresAt);
  }

  private remove(key: string): void {
    const old = this.byKey.get(key);
    if (!old) return;
    this.byKey.delete(key);
    if (this.byAddress.get(old.address) === key) this.byAddress.delete(old.address);
    this.noteFreed(old.address);
  }
}

interface Client {
  /** formatDuid text ('' for an Information-request without one) */
  duid: string;
  mac: string | undefined;
  reservation: Dhcp6Reservation | undefined;
  /** the Client FQDN's first label, sanitised */
  name: string | undefined;
  /** the Client FQDN option's data, when the client sent one */
  fqdn: Uint8Array | undefined;
}

function normalizeMac(mac: string | undefined): string | undefined {
  if (mac === undefined) return undefined;
  const m = mac.trim().toLowerCase();
  return /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m) ? m : undefined;
}

function noAddrs(iaid: number): Dhcp6IaNa {
  return { iaid, t1: 0, t2: 0, addresses: [], status: { code: Dhcp6Status.NO_ADDRS_AVAIL, message: 'no addresses available' } satisfies Dhcp6StatusValue };
}

/** A binary min-heap on `until` (FullRange.expiring). */
type Ending = { until: number; address: string };

function heapify(items: Ending[]): Ending[] {
  for (let i = (items.length >> 1) - 1; i >= 0; i--) siftDown(items, i);
  return items;
}

function heapPush(heap: Ending[], item: Ending): void {
  heap.push(item);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]!.until <= heap[i]!.until) break;
    [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
    i = parent;
  }
}

function heapPop(heap: Ending[]): Ending {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length) {
    heap[0] = last;
    siftDown(heap, 0);
  }
  return top;
}

function siftDown(heap: Ending[], i: number): void {
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let m = i;
    if (l < heap.length && heap[l]!.until < heap[m]!.until) m = l;
    if (r < heap.length && heap[r]!.until < heap[m]!.until) m = r;
    if (m === i) return;
    [heap[m], heap[i]] = [heap[i]!, heap[m]!];
    i = m;
  }
}

function zeroLifetimes(address: Uint8Array): Dhcp6IaAddress {
  return { address: Uint8Array.from(address), preferredLifetime: 0, validLifetime: 0 };
}

/**
 * A 64-bit hash of the key and probe number (two 32-bit FNV-1a lanes): the same key always probes the same
 * addresses. Not cryptographic, and need not be: a guest choosing its DUID can choose its address anyway (it may
 * ask for one), and reservations and bindings are checked whatever the hash says.
 */
function hash64(key: string, probe: number): bigint {
  let a = 0x811c9dc5 ^ probe;
  let b = 0x01000193 ^ Math.imul(probe + 1, 0x9e3779b1);
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  return (BigInt(a >>> 0) << 32n) | BigInt((b ^ (a >>> 13)) >>> 0);
}
