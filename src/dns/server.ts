/**
 * The DNS query pipeline, fed by two transports (udp-transport.ts, tcp-transport.ts): one pipeline per query.
 *
 *   source in subnet? → parseQuery → local names → policy (domain-needed, bogus-priv) → cache → domain route →
 *   upstream (the route's servers, or the default ones)
 *
 * Domain routes (issue 15, domain-routes.ts): a --local domain is answered NXDOMAIN here when no local name has the
 * name; a --server=/domain/IP route overrides the policy (an operator's route for a private reverse zone or for
 * unqualified names is meant to be used) and forwards to its own servers, within the same per-client and global
 * limits as any other query. natd's own domain counts as a route to itself: a wider route never takes its names.
 * The route is looked up only where it can change the outcome: when the policy would not forward, and on a cache
 * miss. A cache hit never needs it: a name under a --local route is never cached, and the cache is emptied when the
 * routes change (reload), so the hot path pays nothing for routes.
 *
 * Issue 18: a UDP question the pipeline has already answered from the cache is answered again straight from the
 * received bytes (tryFastHit), as long as local names, records and routes are unchanged since; the answer is the
 * same bytes the pipeline would send (test/fuzz/dns-hit-fast-path.fuzz.test.ts).
 *
 * natd is never an open resolver: only sources inside the bridge subnet are served (not even 127.0.0.1, since the
 * sockets are bound to the bridge; a host-local client has the host's own resolver). Identical questions in flight
 * share one upstream query. Nothing a peer sends can throw out of here: bad input is counted and answered or
 * dropped, socket errors are logged (rate-limited) and the server carries on.
 *
 * Guests are untrusted (issue 12), so what one client can take is bounded: its pending upstream queries
 * (maxPendingPerClient) here; its TCP connections and each connection's pipelined queries and unsent answers in the
 * TCP transport. A source that could never have sent a query (port 0, broadcast, network, multicast addresses) is
 * never answered: the answer would go to the wrong party.
 *
 * The server owns the sockets it is given: close() closes them.
 */
import type net from 'node:net';
import type { Logger } from '../log.js';
import { NOT_IPV4, subnetContains, type Subnet } from '../net/ipv4.js';
// issue 14: IPv6 clients on the bridge's IPv6 gateway
import { formatClient, isLinkLocalV6Client, isUnicastV6Client, v6PrefixKey, type ClientAddress } from './client-address.js';
import { buildAnyAnswer, buildErrorResponse, buildLocalAnswer, truncateForUdp } from './answers.js';
import { cacheKey, clampHighBitTtls, type DnsCache } from './cache.js';
import { namePolicy, type LocalNames, type NamePolicy } from './local-names.js';
import { parseQuery } from './query.js';
// issue 18: repeated cache hits answered from the received bytes
import { readFastQuestion } from './hit-fast-path.js';
// issue 15: custom records (host-record, cname, srv-host, txt-record, mx-host, ptr-record, address)
import { resolveLocally } from './local-resolver.js';
import { buildRecordZone, type RecordZone } from './record-zone.js';
import { NetTcpTransport, type DnsTcpTransport, type TcpAnswer, type TcpHandlers } from './tcp-transport.js';
import { DnsRcode, DnsType, type ParsedQuery, type RejectedQuery } from './types.js';
import type { UpstreamClient } from './upstream.js';
import type { DnsUdpTransport, UdpHandlers } from './udp-transport.js';
// issue 15: split DNS and query logging
import type { DomainRouteTable } from './domain-routes.js';
import type { QueryLog } from './query-log.js';
import type { UpstreamGroup } from './upstream-order.js';
import { HEADER_LENGTH, plainNameEnd, setId } from './wire.js';

export interface DnsServerOptions {
  /** the bound UDP socket behind a transport (the server takes it over) */
  udp: DnsUdpTransport;
  /** listening TCP server (the server takes it over, through a NetTcpTransport with the tcp limits below) */
  tcp?: net.Server;
  subnet: Subnet;
  /**
   * issue 14: the served /64 (16 bytes) when natd serves IPv6: IPv6 sources inside it or link-local (fe80::/10;
   * the sockets are bound to the bridge) are served, every other IPv6 source is REFUSED; its ip6.arpa zone is
   * natd's own. Without it no IPv6 source is served.
   */
  ipv6Network?: Uint8Array;
  localNames: LocalNames;
  cache: DnsCache;
  upstream: UpstreamClient;
  domain?: string;
  logger: Logger;
  /** a TCP connection with nothing in flight is closed after this long without traffic (default 10 s) */
  tcpIdleMs?: number;
  /** open TCP connections at most; when full an idle one makes room, else the new one is closed (default 64) */
  maxTcpConnections?: number;
  /** questions one client address may have waiting for upstream; more get SERVFAIL at once (default 256) */
  maxPendingPerClient?: number;
  /** TCP connections one client address may hold (default 8) */
  maxTcpConnectionsPerClient?: number;
  /** issue 15: the operator's records, read on every query so a swapped zone is answered at once (default: none) */
  records?: { readonly zone: RecordZone };
  /** issue 15: per-domain routes (setRoutes replaces them) and --log-queries */
  routes?: DomainRouteTable<UpstreamGroup | undefined>;
  queryLog?: QueryLog;
  /** issue 18: answer repeated cache hits straight from the received bytes (tryFastHit; default true) */
  hitFastPath?: boolean;
}

export interface DnsServerStats {
  /** messages received (UDP datagrams and TCP frames), whatever became of them */
  queries: number;
  udp: number;
  tcp: number;
  cacheHits: number;
  /** questions sent upstream (coalesced duplicates not counted) */
  forwarded: number;
  /** questions answered from local names or by policy (domain-needed, bogus-priv) */
  local: number;
  /** REFUSED answers, plus TCP connections from outside the subnet closed at once */
  refused: number;
  formerr: number;
  notimp: number;
  /** messages ignored: QR=1, shorter than a header, garbage TCP frames */
  dropped: number;
  servfail: number;
  /** queries answered from another client's identical upstream query */
  coalesced: number;
  /** datagrams from a source that cannot have sent a query (port 0, broadcast, network, multicast), never answered */
  badSource: number;
  /** queries answered SERVFAIL at once: their client already had maxPendingPerClient waiting for upstream */
  limitedClientPending: number;
  /** TCP connections closed at once: their client already held maxTcpConnectionsPerClient */
  limitedClientTcp: number;
  /** TCP connections closed at once: every slot was busy and none idle could make room */
  limitedTcpFull: number;
  /** TCP connections closed because their unsent answers passed TCP_UNSENT_CLOSE_BYTES (tcp-transport.ts) */
  tcpOutputClosed: number;
  /** queries for ANY answered with RFC 8482's minimal HINFO */
  any: number;
  /** questions sent to a --server=/domain/ route's servers (also counted in forwarded) */
  routed: number;
  /** issue 18: UDP cache hits answered by the fast path from the received bytes (also counted in cacheHits) */
  fastHits: number;
}

/** RFC 1035: the UDP limit for a client without EDNS. */
const UDP_DEFAULT_LIMIT = 512;

/** What a message gets; over TCP, `response` undefined closes the connection (see TcpAnswer). */
interface Outcome extends TcpAnswer {
  /** the client's UDP payload limit */
  udpLimit: number;
}

export class DnsServer {
  private readonly opts: DnsServerOptions;
  private readonly tcp: DnsTcpTransport | undefined;
  private readonly maxPendingPerClient: number;
  /** per client address: questions waiting for upstream (entries removed at 0) */
  private readonly pendingByClient = new Map<ClientAddress, number>();
  /** upstream queries in flight by cache key: later identical questions wait on the same reply */
  private readonly inFlight = new Map<string, Promise<Buffer | undefined>>();
  /** the pipeline's counters; the TCP transport's (limitedClientTcp, limitedTcpFull, tcpOutputClosed) stay 0 here
   * and are filled in by stats(), in this order (status and metrics print them in it) */
  private readonly counters: DnsServerStats = {
    queries: 0, udp: 0, tcp: 0, cacheHits: 0, forwarded: 0, local: 0, refused: 0, formerr: 0, notimp: 0, dropped: 0,
    servfail: 0, coalesced: 0, badSource: 0, limitedClientPending: 0, limitedClientTcp: 0, limitedTcpFull: 0,
    tcpOutputClosed: 0, any: 0, routed: 0, fastHits: 0,
  };
  private routes: DomainRouteTable<UpstreamGroup | undefined> | undefined;
  /** issue 14: the served /64 as a client-key prefix (client-address.ts) */
  private readonly ipv6Prefix: string | undefined;
  /** what answered the query being processed, for the query log */
  private source = '';
  /** domain-needed / bogus-priv decisions, with the configuration prepared once */
  private readonly policyFor: (question: ParsedQuery['question']) => NamePolicy;
  /** issue 15: custom records and the SOA zones of negative answers */
  private readonly records: { readonly zone: RecordZone };
  private started = false;
  private closing: Promise<void> | undefined;
  // issue 18: the cache-hit fast path (tryFastHit)
  private readonly fastPath: boolean;
  /** stands for the state the pipeline decided on when it vetted a cache entry; a new one when that state changes */
  private vetToken: object = {};
  private vetNamesVersion = NaN;
  private vetZone: RecordZone | undefined;
  private vetRoutes: DomainRouteTable<UpstreamGroup | undefined> | undefined;
  private readonly udpHandlers: UdpHandlers = {
    message: (msg, address, port) => this.handleDatagram(msg, address, port),
    // issue 18: a batch transport's datagram in place (no view per datagram); a view only past the fast path
    messageAt: (slab, start, length, address, port) => {
      if (this.fastPath && this.tryFastHit(slab, start, length, address, port)) return;
      this.handleSlowDatagram(slab.subarray(start, start + length), address, port);
    },
    dropped: () => {
      this.counters.udp++;
      this.counters.queries++;
      this.counters.dropped++;
    },
    warn: (what, detail) => this.opts.logger.warnLimited(what, detail),
  };
  private readonly tcpHandlers: TcpHandlers = {
    // a connection from outside the subnet is closed at once; its messages need no check of their own
    accepts: (client) => {
      if (this.mayServe(client)) return true;
      this.counters.refused++;
      return false;
    },
    message: (message, client) => {
      this.counters.tcp++;
      return this.process(message, true, client);
    },
    dropped: () => {
      this.counters.queries++;
      this.counters.tcp++;
      this.counters.dropped++;
    },
    warn: (what, message, fields) => this.opts.logger.warnLimited(what, message, fields),
  };

  constructor(opts: DnsServerOptions) {
    this.opts = opts;
    this.maxPendingPerClient = Math.max(1, opts.maxPendingPerClient ?? 256);
    if (opts.tcp) {
      this.tcp = new NetTcpTransport(opts.tcp, {
        idleMs: opts.tcpIdleMs, maxConnections: opts.maxTcpConnections, maxPerClient: opts.maxTcpConnectionsPerClient,
      });
    }
    this.policyFor = namePolicy({ ...(opts.domain ? { domain: opts.domain } : {}), subnet: opts.subnet, ...(opts.ipv6Network ? { ipv6Network: opts.ipv6Network } : {}) });
    this.ipv6Prefix = opts.ipv6Network ? v6PrefixKey(opts.ipv6Network) : undefined;
    this.records = opts.records ?? { zone: buildRecordZone([], { domain: opts.domain, subnet: opts.subnet, ttl: 0, serverName: 'gateway' }).zone };
    this.routes = opts.routes;
    this.fastPath = opts.hitFastPath ?? true;
  }

  /** New domain routes (reload); queries in flight finish on the old ones. */
  setRoutes(routes: DomainRouteTable<UpstreamGroup | undefined> | undefined): void {
    this.routes = routes;
  }

  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.opts.udp.start(this.udpHandlers);
    this.tcp?.start(this.tcpHandlers);
  }

  /** Stops serving and closes the sockets and every TCP connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= Promise.all([this.opts.udp.close(), this.tcp?.close()]).then(() => undefined);
    return this.closing;
  }

  stats(): DnsServerStats {
    const stats = { ...this.counters };
    if (this.tcp) Object.assign(stats, this.tcp.stats());
    return stats;
  }

  // ---- UDP ----

  private handleDatagram(msg: Buffer, address: ClientAddress, port: number): void {
    if (this.fastPath && this.tryFastHit(msg, 0, msg.length, address, port)) return;
    this.handleSlowDatagram(msg, address, port);
  }

  /** A datagram through the pipeline (the fast path did not take it). */
  private handleSlowDatagram(msg: Buffer, address: ClientAddress, port: number): void {
    this.counters.udp++;
    if (port === 0 || !this.isUnicastSource(address)) {
      // spoofed or broken: an answer would be broadcast, multicast, or make the whole send batch fail (port 0)
      this.counters.queries++;
      this.counters.badSource++;
      this.opts.logger.warnLimited('dns-bad-source', 'DNS query from a source that cannot be answered, dropping', {
        source: `${formatClient(address)}:${port}`,
      });
      return;
    }
    const outcome = this.process(msg, this.mayServe(address), address);
    const { response, udpLimit } = outcome;
    if (response === undefined) return;
    if (response instanceof Promise) void response.then((ready) => this.sendUdp(ready, udpLimit, address, port));
    else this.sendUdp(response, udpLimit, address, port);
  }

  /**
   * issue 18: the cache-hit fast path. A query from a source this server answers, whose question (the name's bytes
   * lower-cased, type, class) and flavour (EDNS, DO, CD) match a cache entry that the normal pipeline below already
   * answered from the cache under the same state (vetToken: local names, records and routes unchanged since), is
   * answered with exactly what that pipeline would send (cache.get's copy: id, aged TTLs, the client's spelling of
   * the name; cut to the client's UDP limit), without parsing into objects, name strings or the local-name, policy
   * and route lookups. Everything else returns false and takes the normal path: sources not served (REFUSED there),
   * bad sources, anything readFastQuestion does not take, entries not vetted or expired, and every query while the
   * query log is on (it records each query). The datagram is bytes [start, start + length) of `buf`.
   */
  private tryFastHit(buf: Buffer, start: number, length: number, address: ClientAddress, port: number): boolean {
    if (port === 0 || this.opts.queryLog?.enabled || !this.isUnicastSource(address) || !this.mayServe(address)) return false;
    const question = readFastQuestion(buf, start, length);
    if (!question) return false;
    const response = this.opts.cache.getVetted(question, this.currentVetToken(), buf, start);
    if (!response) return false;
    this.counters.udp++;
    this.counters.queries++;
    this.counters.cacheHits++;
    this.counters.fastHits++;
    this.sendUdp(response, question.udpLimit, address, port);
    return true;
  }

  /** The token for the state the pipeline decides on now (a new one when it changed). */
  private currentVetToken(): object {
    const version = this.opts.localNames.version;
    const zone = this.records.zone;
    if (version !== this.vetNamesVersion || zone !== this.vetZone || this.routes !== this.vetRoutes) {
      this.vetToken = {};
      this.vetNamesVersion = version;
      this.vetZone = zone;
      this.vetRoutes = this.routes;
    }
    return this.vetToken;
  }

  private sendUdp(response: Buffer, udpLimit: number, address: ClientAddress, port: number): void {
    if (!this.closing) this.opts.udp.reply(truncateForUdp(response, udpLimit), address, port);
  }

  // ---- the pipeline ----

  /** One message from a client → what to answer. Never throws. */
  private process(raw: Buffer, allowed: boolean, client: ClientAddress): Outcome {
    this.counters.queries++;
    const parsed = parseQuery(raw);
    if (!parsed.ok) return this.answerRejected(raw, parsed.rejected, allowed);
    const { query } = parsed;
    const response = this.answer(query, allowed, client);
    if (this.opts.queryLog?.enabled) this.opts.queryLog.record(query, client, this.source, response);
    return { response, udpLimit: query.udpPayloadSize, endConnection: false };
  }

  /** A message parseQuery turned down: its error answer (REFUSED to a source we do not serve), or nothing. */
  private answerRejected(raw: Buffer, { rcode, id, reason }: RejectedQuery, allowed: boolean): Outcome {
    if (rcode === undefined || id === undefined) {
      this.counters.dropped++;
      return { udpLimit: UDP_DEFAULT_LIMIT, endConnection: true };
    }
    const answerRcode = allowed ? rcode : DnsRcode.REFUSED;
    this.countRcode(answerRcode);
    return {
      response: buildErrorResponse({ id, raw }, answerRcode),
      udpLimit: UDP_DEFAULT_LIMIT,
      endConnection: reason === 'malformed',
    };
  }

  /** The pipeline for a valid query: source → local names and policy → ANY → cache → upstream. */
  private answer(query: ParsedQuery, allowed: boolean, client: ClientAddress): Buffer | Promise<Buffer> {
    if (!allowed) {
      this.counters.refused++;
      this.source = 'refused';
      return buildErrorResponse(query, DnsRcode.REFUSED);
    }
    this.source = 'local';
    try {
      const local = this.answerLocally(query);
      if (local) return local;
    } catch (err) {
      // unusable local data (a bad record) is our bug, not the client's: SERVFAIL and carry on
      this.opts.logger.warnLimited('dns-local', 'local DNS answer failed', { name: query.question.name, error: String(err) });
      this.counters.servfail++;
      return buildErrorResponse(query, DnsRcode.SERVFAIL);
    }
    if (query.question.type === DnsType.ANY) {
      this.counters.any++;
      return buildAnyAnswer(query);
    }
    const key = cacheKey(query);
    const cached = this.opts.cache.get(key, query.id, query.raw);
    if (cached) {
      this.counters.cacheHits++;
      this.source = 'cache';
      // issue 18: this question, in this flavour, gets this entry until the state behind this answer changes
      if (this.fastPath && !this.opts.queryLog?.enabled) {
        const question = readFastQuestion(query.raw);
        if (question) this.opts.cache.vet(key, question, this.currentVetToken(), query.raw);
      }
      return cached;
    }
    const route = this.routes?.lookup(query.question.name);
    if (route?.kind === 'local') {
      // --local=/domain/: never forwarded (local names under it were answered above)
      this.counters.local++;
      this.source = 'local';
      return buildLocalAnswer(query, [], { authoritative: true, rcode: DnsRcode.NXDOMAIN });
    }
    this.source = route?.kind === 'forward' ? `upstream ${route.domain}` : 'upstream';
    return this.forwardWithinClientLimit(query, key, client, route?.kind === 'forward' ? route.group : undefined);
  }

  /** Forwards, unless the client already has maxPendingPerClient questions waiting for upstream. */
  private forwardWithinClientLimit(query: ParsedQuery, key: string, client: ClientAddress, group: UpstreamGroup | undefined): Buffer | Promise<Buffer> {
    const pending = this.pendingByClient.get(client) ?? 0;
    if (pending >= this.maxPendingPerClient) {
      // SERVFAIL, as when the global cap (dns-forward-max) is reached: "try again later", which is the truth, and
      // at once, so the client's own retry logic runs instead of a time-out (REFUSED would say "never ask me")
      this.counters.limitedClientPending++;
      this.counters.servfail++;
      this.opts.logger.warnLimited('dns-client-pending', 'per-client limit of pending upstream queries reached, answering SERVFAIL', {
        client: formatClient(client), limit: this.maxPendingPerClient,
      });
      return buildErrorResponse(query, DnsRcode.SERVFAIL);
    }
    this.pendingByClient.set(client, pending + 1);
    return this.forward(query, key, group).finally(() => decrement(this.pendingByClient, client));
  }

  /** Local names first; then names that must never leave the host are answered NXDOMAIN here. */
  private answerLocally(query: ParsedQuery): Buffer | undefined {
    const { question } = query;
    const { zone } = this.records;
    const found = resolveLocally(question, zone, this.opts.localNames);
    if (found) {
      this.counters.local++;
      return buildLocalAnswer(query, found.records, { authoritative: found.authoritative, rcode: found.rcode, ...(found.soa ? { soa: found.soa } : {}) });
    }
    let policy = this.policyFor(question);
    if (policy === 'forward') return undefined;
    // a --server=/domain/IP route is the operator's word: forwarded (the route is looked up again on a cache miss);
    // --local=/domain/ makes it authoritative
    const route = this.routes?.lookup(question.name);
    if (route?.kind === 'forward') return undefined;
    if (route?.kind === 'local') policy = 'local';
    // 'local': our own domain or reverse zone, name unknown; 'refuse-single-label' (domain-needed) and
    // 'private-reverse' (bogus-priv): not ours, but leaking them upstream would be wrong
    this.counters.local++;
    const apex = policy === 'local' ? zone.zoneOf(question.name) : undefined;
    return buildLocalAnswer(query, [], { authoritative: policy === 'local', rcode: DnsRcode.NXDOMAIN, ...(apex !== undefined ? { soa: zone.soaFor(apex) } : {}) });
  }

  /** Sends the question upstream, or joins an identical one in flight; resolves with the client's response. */
  private async forward(received: ParsedQuery, key: string, group: UpstreamGroup | undefined): Promise<Buffer> {
    // a UDP query may be a view of a receive buffer the next batch overwrites; the wait needs bytes of its own
    const query: ParsedQuery = { ...received, raw: Buffer.from(received.raw) };
    let pending = this.inFlight.get(key);
    if (pending) this.counters.coalesced++;
    else {
      this.counters.forwarded++;
      if (group) this.counters.routed++;
      pending = this.opts.upstream
        .query(query.raw, query.key, group)
        .catch(() => undefined) // never rejects by contract; a rejection here must not become an unhandled one
        .then((reply) => {
          this.inFlight.delete(key);
          // RFC 2181 §8: a TTL with the high bit set means 0, to the cache and to the client alike
          if (reply) clampHighBitTtls(reply);
          try {
            if (reply) this.opts.cache.store(key, reply);
          } catch (err) {
            this.opts.logger.warnLimited('dns-cache-store', 'caching an upstream reply failed, ignoring', { error: String(err) });
          }
          return reply;
        });
      this.inFlight.set(key, pending);
    }
    const reply = await pending;
    if (!reply || reply.length < HEADER_LENGTH) {
      this.counters.servfail++;
      return buildErrorResponse(query, DnsRcode.SERVFAIL);
    }
    const response = Buffer.from(reply); // each waiter gets its own copy with its own id
    setId(response, query.id);
    copyQuestionSpelling(query.raw, response);
    return response;
  }

  private countRcode(rcode: number): void {
    if (rcode === DnsRcode.FORMERR) this.counters.formerr++;
    else if (rcode === DnsRcode.NOTIMP) this.counters.notimp++;
    else if (rcode === DnsRcode.REFUSED) this.counters.refused++;
    else if (rcode === DnsRcode.SERVFAIL) this.counters.servfail++;
  }

  private mayServe(address: ClientAddress): boolean {
    if (typeof address === 'number') return address !== NOT_IPV4 && subnetContains(this.opts.subnet, address);
    // issue 14: the served /64, or link-local (the socket is bound to the bridge: such a source is on the bridge)
    const prefix = this.ipv6Prefix;
    return prefix !== undefined && (address.startsWith(prefix) || isLinkLocalV6Client(address));
  }

  /** A source address a real client can have: not the subnet's network or broadcast address, nor a special one. */
  private isUnicastSource(address: ClientAddress): boolean {
    if (typeof address !== 'number') return isUnicastV6Client(address); // issue 14
    if (!isUnicastAddress(address)) return false;
    const { network, broadcast, prefix } = this.opts.subnet;
    // a /31 or /32 has no network or broadcast address (RFC 3021)
    return prefix >= 31 || (address !== network && address !== broadcast);
  }
}

/** Not 0.0.0.0/8 ("this network"), multicast 224/4, reserved 240/4 or the limited broadcast 255.255.255.255. */
export function isUnicastAddress(address: number): boolean {
  if (address === NOT_IPV4) return false;
  const first = address >>> 24;
  return first !== 0 && first < 224;
}

function decrement<K>(counts: Map<K, number>, key: K): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

/**
 * Gives the client back its own spelling of the question (clients using DNS 0x20 check it) when a reply was fetched
 * for another client's identically-keyed query. Only plain names of the same length and letters are touched.
 */
function copyQuestionSpelling(query: Uint8Array, response: Buffer): void {
  const end = plainNameEnd(query, HEADER_LENGTH);
  if (end === undefined || end !== plainNameEnd(response, HEADER_LENGTH)) return;
  for (let i = HEADER_LENGTH; i < end; i++) {
    if (asciiLower(query[i]!) !== asciiLower(response[i]!)) return;
  }
  response.set(query.subarray(HEADER_LENGTH, end), HEADER_LENGTH);
}

function asciiLower(byte: number): number {
  return byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
}
