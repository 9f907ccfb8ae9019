/**
 * The upstream half of the forwarder: sends a client's query bytes to the configured servers and returns the first
 * reply that provably answers it.
 *
 * Anti-spoofing, as dnsmasq does it: every attempt gets a fresh random id that no query in flight uses, leaves from
 * a randomly chosen socket of a pool whose kernel-assigned ports are random and rotated, and a reply is accepted
 * only when id, socket, source address/port and question all match. Everything else is counted and dropped.
 *
 * Why a rotated pool rather than one socket per query: measured on this machine (Node 20, loopback, 50 queries in
 * flight) a fresh socket per query costs ~9 µs more per query (44-52k q/s against 65-76k q/s for a pool), a third of
 * the forwarding budget. A pool of 32 sockets, each retired after 64 queries, still gives an off-path attacker 32
 * unknown ports that change constantly on top of the 16-bit id.
 *
 * Sockets (upstream-sockets.ts): for an IPv4 server, a pool of the addon's sockets connected to that server, all of
 * a client's sockets read by one receiver group (native/udp_client.c): one JS call per wakeup for the replies of
 * every ready socket, and a send is one call with no copy of the query. dgram cost a nextTick address lookup, a
 * request object and a callback per send, and a JS callback, a Buffer and an rinfo object per reply: with a
 * setTimeout per attempt and the reply's question decoded into a string, natd spent ~36-50 µs of CPU per cache miss,
 * against ~17-24 µs now (loopback and bench --quick, this 2-core machine). A connected socket also only ever receives datagrams from its server's
 * address and port (the kernel drops the rest; the checks here stay), and it sees ICMP errors: they are logged, but
 * failover stays driven by time-outs. IPv6 servers, and IPv4 ones when the addon cannot open a socket, use one pool
 * of unconnected dgram sockets per address family.
 *
 * Failover: one server at a time, the next one after `timeoutMs`, within `budgetMs` in total. Replies from earlier
 * attempts stay acceptable until the query ends (a slow server still counts). A server that times out repeatedly is
 * backed off (upstream-health.ts). The order (issue 15): with `strictOrder` the configured one (dnsmasq's
 * --strict-order); without it dnsmasq's default, the fastest server: the server that answered last goes first, and
 * every RACE_EVERY_QUERIES queries or RACE_EVERY_MS one query goes to all servers at once, the first to answer
 * becoming the one asked first (see upstream-order.ts).
 *
 * Server groups (issue 15, per-domain forwarding): the default servers are one group, each `--server=/domain/IP`
 * route another; query() takes the group. A server in several groups is one ServerState (one health record, one
 * socket pool).
 *
 * Time-outs: no timer per attempt. An attempt's time-out is always `timeoutMs` and a query's budget always
 * `budgetMs`, so attempts and queries sit in two lists that are sorted by deadline just by appending; one timer,
 * armed for the earliest head, sweeps both (a setTimeout per attempt was a Timeout object, a closure and a
 * clearTimeout per query).
 *
 * The jobs live apart: ids (upstream-ids.ts), server health and back-off (upstream-health.ts), the socket pool
 * (upstream-socket-pool.ts, with the two socket kinds in upstream-sockets.ts), the TCP retry (upstream-tcp.ts). This
 * file is the query's life: send, match the reply, fail over, time out.
 */
import { canonicalIpv6Scoped } from '../ipv6/address.js';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../log.js';
import { NOT_IPV4, parseIpv4 } from '../net/ipv4.js';
import { DeadlineList, type Listed } from './deadline-list.js';
import { questionEnd, sameQuestion } from './reply-match.js';
import { encodeFrame } from './tcp-framing.js';
import { DnsRcode } from './types.js';
import { anyBackedOff, newServerHealth, UpstreamHealth, type ServerHealth, type UpstreamServerStats } from './upstream-health.js';
import { IdTable, Random16 } from './upstream-ids.js';
import { planOrder, recordAnswer, UpstreamGroup } from './upstream-order.js';
import { UpstreamSocketPool, type PoolTarget } from './upstream-socket-pool.js';
import type { PooledSocket, SocketOwner, SocketTarget } from './upstream-sockets.js';
import { UpstreamTcp } from './upstream-tcp.js';
import { FLAG_QR, getRcode, HEADER_LENGTH, isTruncated, readU16, writeU16 } from './wire.js';
import { SETTING_DEFAULTS } from '../defaults.js';

export type { UpstreamServerStats } from './upstream-health.js';
export { UpstreamGroup } from './upstream-order.js';

export interface UpstreamServer {
  address: string;
  /** default 53 */
  port?: number;
}

export interface UpstreamClientOptions {
  servers: UpstreamServer[];
  /** wait for one attempt before trying the next server (default 1500 ms) */
  timeoutMs?: number;
  /** total time for one query, all attempts and the TCP retry included (default 4000 ms) */
  budgetMs?: number;
  logger: Logger;
  /** clock for back-off decisions (default Date.now); time-outs and latency use the monotonic clock */
  now?: () => number;
  /** UDP sockets per IPv4 server, and per address family for dgram sockets (default 32) */
  socketPoolSize?: number;
  /** queries a socket sends before it is replaced by one on a new random port (default 64) */
  queriesPerSocket?: number;
  /** queries in flight at once, dnsmasq's dns-forward-max; more are refused (undefined) at once (default 4096) */
  maxInFlight?: number;
  /** consecutive time-outs before a server is backed off (default 2) */
  failuresBeforeBackoff?: number;
  /** first back-off period, doubled per further failure up to backoffMaxMs (defaults 2 s, 120 s) */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** IPv4 servers through the addon's connected sockets (default true); false: dgram for every server */
  nativeSockets?: boolean;
  /** servers one at a time in configured order (default true here; the daemon passes --strict-order, default off:
   * then the fastest server goes first, see upstream-order.ts) */
  strictOrder?: boolean;
}

export interface UpstreamStats {
  /** datagrams sent (attempts and probes) plus TCP retries */
  sent: number;
  /** replies accepted */
  received: number;
  /** attempts that got no reply in time */
  timeouts: number;
  /** queries given up (the caller answers SERVFAIL) */
  failures: number;
  /** replies that matched no attempt in flight: wrong id, question, socket or source, or too late (this includes the
   * slower servers' answers to a fastest-server race, see upstream-order.ts; datagrams from
   * another address or port than the server's never reach a connected socket, so they are not counted) */
  spoofed: number;
  /** queries refused at once because maxInFlight (dns-forward-max) were in flight (also counted in failures) */
  overForwardMax: number;
  latencyMsAvg: number;
  perServer: UpstreamServerStats[];
}

export interface ServerState extends PoolTarget, ServerHealth {
  /** the address as a number when it is IPv4, else NOT_IPV4 */
  readonly address4: number;
  readonly label: string;
}

class Attempt implements Listed<Attempt> {
  /** performance.now() + timeoutMs; only the attempt a query waits on is listed (probes are not) */
  deadline = 0;
  prev: Attempt | undefined = undefined;
  next: Attempt | undefined = undefined;
  listed = false;
  pooled: PooledSocket | undefined = undefined;
  answered = false;

  constructor(
    /** -1: no id was free, nothing was sent; the attempt only waits its time-out */
    readonly id: number,
    readonly server: ServerState,
    readonly query: PendingQuery,
    readonly sentAt: number,
  ) {}
}

class PendingQuery implements Listed<PendingQuery> {
  prev: PendingQuery | undefined = undefined;
  next: PendingQuery | undefined = undefined;
  listed = false;
  step = 0;
  attempts: Attempt[] = [];
  /** the attempt whose time-out moves the query on */
  current: Attempt | undefined = undefined;
  /** servers that answered SERVFAIL/REFUSED (the query moves on to one not in here) */
  answeredBy: ServerState[] | undefined = undefined;
  /** a SERVFAIL/REFUSED reply kept in case no other server does better */
  fallback: Buffer | undefined = undefined;
  /** a truncated reply while the TCP retry runs (the answer if TCP fails) */
  truncated: Buffer | undefined = undefined;
  done = false;

  constructor(
    readonly raw: Uint8Array,
    readonly key: string,
    /** end of the question (name, type, class) in `raw`; -1 when it cannot be compared byte by byte */
    readonly questionEnd: number,
    /** performance.now() + budgetMs */
    readonly deadline: number,
    readonly order: ServerState[],
    readonly group: UpstreamGroup,
    readonly resolve: (reply: Buffer | undefined) => void,
  ) {}
}

const DNS_PORT = 53;
/** An attempt with less time than this left in the budget could not get an answer back anyway. */
const MIN_ATTEMPT_MS = 20;

export class UpstreamClient implements SocketOwner {
  /** the default servers; route groups (setRouteGroups) beside it */
  private readonly defaultGroup: UpstreamGroup;
  private routeGroups: UpstreamGroup[] = [];
  /** every server of every group, by label */
  private readonly byLabel = new Map<string, ServerState>();
  private strictOrder: boolean;
  private readonly timeoutMs: number;
  private readonly budgetMs: number;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly maxInFlight: number;
  private readonly health: UpstreamHealth;
  private readonly sockets: UpstreamSocketPool;
  private readonly tcp: UpstreamTcp;
  /** attempts in flight by their random id */
  private readonly attemptsById: IdTable<Attempt>;
  /** every query in flight, in budget-deadline order */
  private readonly queries = new DeadlineList<PendingQuery>();
  /** the attempt each query waits on, in time-out order */
  private readonly timeouts = new DeadlineList<Attempt>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepAt = 0;
  private closed = false;
  private readonly counters = { sent: 0, received: 0, timeouts: 0, failures: 0, spoofed: 0, latencyTotalMs: 0, overForwardMax: 0 };

  constructor(opts: UpstreamClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? 1500;
    this.budgetMs = opts.budgetMs ?? 4000;
    const logger = (this.logger = opts.logger);
    const now = (this.now = opts.now ?? Date.now);
    this.maxInFlight = opts.maxInFlight ?? SETTING_DEFAULTS.dnsForwardMax;
    this.health = new UpstreamHealth({
      failuresBeforeBackoff: opts.failuresBeforeBackoff ?? 2, backoffBaseMs: opts.backoffBaseMs ?? 2000,
      backoffMaxMs: opts.backoffMaxMs ?? 120_000, now, logger,
    });
    const random = new Random16();
    this.attemptsById = new IdTable<Attempt>(random);
    this.sockets = new UpstreamSocketPool({
      poolSize: opts.socketPoolSize ?? 32, queriesPerSocket: opts.queriesPerSocket ?? 64,
      nativeSockets: opts.nativeSockets ?? true, owner: this, random, logger,
    });
    this.tcp = new UpstreamTcp(logger);
    this.strictOrder = opts.strictOrder ?? true;
    this.defaultGroup = new UpstreamGroup('default', []);
    this.setServers(opts.servers);
  }

  /** --strict-order on reload. */
  setStrictOrder(strict: boolean): void {
    this.strictOrder = strict;
  }

  /** Replaces the default server list; servers that stay keep their health record. Queries in flight carry on. */
  setServers(servers: readonly UpstreamServer[]): void {
    this.defaultGroup.setServers(this.statesFor(servers));
    this.prune();
  }

  /**
   * Replaces the route groups (one per --server=/domain/ route, same order as `lists`) and returns them, for
   * query(). Servers that stay keep their health record; the groups returned before must no longer be used.
   */
  setRouteGroups(lists: readonly { name: string; servers: readonly UpstreamServer[] }[]): UpstreamGroup[] {
    this.routeGroups = lists.map(({ name, servers }) => new UpstreamGroup(name, this.statesFor(servers)));
    this.prune();
    return this.routeGroups;
  }

  /** Closes the sockets of servers no group uses any more. */
  private prune(): void {
    const used = new Set<ServerState>(this.defaultGroup.servers);
    for (const group of this.routeGroups) for (const s of group.servers) used.add(s);
    for (const [label, server] of this.byLabel) {
      if (used.has(server)) continue;
      this.byLabel.delete(label);
      this.sockets.dropServer(server);
    }
  }

  /** The states for a server list, existing ones reused; invalid addresses are logged and skipped. */
  private statesFor(servers: readonly UpstreamServer[]): ServerState[] {
    const next: ServerState[] = [];
    for (const { address, port = DNS_PORT } of servers) {
      const family = net.isIP(address);
      if (family === 0) {
        this.logger.warn('ignoring upstream that is not an IP address', { address });
        continue;
      }
      const canonical = family === 6 ? canonicalIpv6Scoped(address) : address;
      const label = family === 6 ? `[${canonical}]:${port}` : `${canonical}:${port}`;
      if (next.some((s) => s.label === label)) continue;
      let state = this.byLabel.get(label);
      if (!state) {
        const address4 = family === 4 ? parseIpv4(canonical) ?? NOT_IPV4 : NOT_IPV4;
        // IPv6 servers go through the family's dgram pool: the addon's connected sockets are IPv4 only
        state = {
          ...newServerHealth(label), address: canonical, address4, port, family: family as 4 | 6,
          pool: this.sockets.poolFor(family as 4 | 6, address4),
        };
        this.byLabel.set(label, state);
      }
      next.push(state);
    }
    return next;
  }

  /**
   * Forwards `raw` (a client's query, forwarded unchanged except its id) and resolves with the upstream's reply,
   * still carrying the upstream id, or undefined when no server answered within the budget. Never rejects.
   * `key` is the query's `${name}|${type}|${class}`; the reply's question must match it (compared as bytes with the
   * question in `raw`, letter case aside). `raw` must not change until the promise settles.
   */
  query(raw: Uint8Array, key: string, group: UpstreamGroup = this.defaultGroup): Promise<Buffer | undefined> {
    if (this.queries.size >= this.maxInFlight && !this.closed) {
      this.counters.overForwardMax++;
      this.logger.warnLimited('dns-forward-max', 'upstream queries in flight at the limit (dns-forward-max), answering SERVFAIL', { limit: this.maxInFlight });
    }
    if (this.closed || group.servers.length === 0 || raw.length < HEADER_LENGTH || this.queries.size >= this.maxInFlight) {
      this.counters.failures++;
      return Promise.resolve(undefined);
    }
    return new Promise((resolve) => this.start(raw, key, group, resolve));
  }

  stats(): UpstreamStats {
    const now = this.now();
    const c = this.counters;
    return {
      sent: c.sent,
      received: c.received,
      timeouts: c.timeouts,
      failures: c.failures,
      spoofed: c.spoofed,
      overForwardMax: c.overForwardMax,
      latencyMsAvg: c.received === 0 ? 0 : c.latencyTotalMs / c.received,
      perServer: [...this.byLabel.values()].map((s) => this.health.stats(s, now)),
    };
  }

  /** Ends every query in flight (undefined) and closes all sockets. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    while (this.queries.head) this.finish(this.queries.head, undefined);
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sockets.close();
    this.tcp.close();
  }

  private start(raw: Uint8Array, key: string, group: UpstreamGroup, resolve: (reply: Buffer | undefined) => void): void {
    const now = performance.now();
    const planned = planOrder(group, this.strictOrder, now);
    let order = planned.order;
    let probes: ServerState[] | undefined;
    if (anyBackedOff(order)) ({ order, probes } = this.health.plan(order));
    // a race: every other server gets the query at once too, the first to answer goes first from now on
    if (planned.race && order.length > 1) probes = [...(probes ?? []), ...order.slice(1)];
    const query = new PendingQuery(raw, key, questionEnd(raw), now + this.budgetMs, order, group, resolve);
    this.queries.push(query);
    if (this.queries.head === query) this.armSweep(query.deadline);
    if (probes) for (const probe of probes) this.send(query, probe, now);
    this.nextStep(query, now);
  }

  /** Sends to the next server in the query's order and lists the attempt's time-out; ends the query when the
   * budget cannot fit another attempt. */
  private nextStep(query: PendingQuery, now: number): void {
    if (query.done) return;
    const remaining = query.deadline - now;
    // a SERVFAIL/REFUSED moves on only to servers that have not answered yet
    const answered = query.answeredBy;
    const candidates = answered ? query.order.filter((s) => !answered.includes(s)) : query.order;
    if (remaining < MIN_ATTEMPT_MS || candidates.length === 0) {
      this.finish(query, query.fallback);
      return;
    }
    const server = candidates[query.step++ % candidates.length]!;
    const attempt = this.send(query, server, now);
    // the budget list ends the query if its budget runs out first
    attempt.deadline = now + this.timeoutMs;
    query.current = attempt;
    this.timeouts.push(attempt);
    if (this.timeouts.head === attempt) this.armSweep(attempt.deadline);
  }

  private send(query: PendingQuery, server: ServerState, now: number): Attempt {
    const id = this.attemptsById.fresh();
    const attempt = new Attempt(id ?? -1, server, query, now);
    if (id === undefined) return attempt;
    const pooled = this.sockets.acquire(server);
    attempt.pooled = pooled;
    this.attemptsById.set(id, attempt);
    query.attempts.push(attempt);
    this.counters.sent++;
    server.sent++;
    pooled.send(query.raw, id, server);
    return attempt;
  }

  /** A datagram on one of the pool's sockets: `length` bytes at `start` of `buf` (valid during this call only). */
  onReply(pooled: PooledSocket | undefined, buf: Buffer, start: number, length: number, address: number | string, port: number): void {
    const attempt = length >= HEADER_LENGTH ? this.attemptsById.get(readU16(buf, start)) : undefined;
    if (
      attempt === undefined ||
      pooled === undefined ||
      attempt.pooled !== pooled ||
      port !== attempt.server.port ||
      (typeof address === 'number' ? address !== attempt.server.address4 : address !== attempt.server.address) ||
      (readU16(buf, start + 2) & FLAG_QR) === 0 ||
      !sameQuestion(buf, start, length, attempt.query.raw, attempt.query.questionEnd, attempt.query.key)
    ) {
      this.counters.spoofed++;
      return;
    }
    const reply = pooled.keep(buf, start, length);
    const { query, server } = attempt;
    attempt.answered = true;
    this.attemptsById.release(attempt.id, attempt);
    this.recordReply(server, performance.now() - attempt.sentAt);

    if (isTruncated(reply)) {
      this.retryOverTcp(query, server, reply);
      return;
    }
    const rcode = getRcode(reply);
    if (rcode === DnsRcode.SERVFAIL || rcode === DnsRcode.REFUSED) {
      const answeredBy = (query.answeredBy ??= []);
      answeredBy.push(server);
      if (query.order.some((s) => !answeredBy.includes(s))) {
        query.fallback = reply;
        query.step = 0;
        this.stopWaiting(query);
        this.nextStep(query, performance.now());
        return;
      }
    } else if (!this.strictOrder) recordAnswer(query.group, server);
    this.finish(query, reply);
  }

  onSendError(server: SocketTarget, error: string): void {
    this.logger.warnLimited('dns-upstream-send', 'sending to upstream failed', { server: server.label, error });
  }

  /** A socket that failed is replaced; it closes once nothing waits on it. */
  onSocketError(pooled: PooledSocket, error: string): void {
    this.logger.warnLimited('dns-upstream-socket', 'upstream socket error', { error });
    this.sockets.retire(pooled);
  }

  /** Logged only: the attempts on that socket still end by reply or time-out, as with dgram. */
  onReceiveError(server: SocketTarget, error: string): void {
    this.logger.warnLimited(`dns-upstream-unreachable:${server.label}`, 'upstream reported unreachable', { server: server.label, error });
  }

  onGroupPollError(detail: string): void {
    this.logger.warnLimited('dns-upstream-poll', `upstream receiver poll error: ${detail}`);
  }

  /** A truncated UDP reply: ask the same server over TCP; if that fails, the truncated reply is still an answer. */
  private retryOverTcp(query: PendingQuery, server: ServerState, truncated: Buffer): void {
    this.stopUdp(query);
    query.truncated = truncated;
    const remaining = Math.max(0, query.deadline - performance.now());
    const id = readU16(truncated, 0);
    const framed = encodeFrame(query.raw);
    writeU16(framed, 2, id); // the frame's message keeps the id the truncated reply answered
    this.counters.sent++;
    server.sent++;
    void this.tcp.exchange(server, framed, Math.min(remaining, this.timeoutMs * 2)).then((reply) => {
      const valid = reply !== undefined && reply.length >= HEADER_LENGTH && readU16(reply, 0) === id && sameQuestion(reply, 0, reply.length, query.raw, query.questionEnd, query.key);
      if (reply !== undefined && !valid) this.counters.spoofed++;
      this.finish(query, valid ? reply : truncated);
    });
  }

  /** The query no longer waits on its current attempt's time-out (a reply to it may still be accepted). */
  private stopWaiting(query: PendingQuery): void {
    if (query.current) this.timeouts.remove(query.current);
    query.current = undefined;
  }

  /** Stops the UDP side of a query: no more attempts, no more replies accepted for it. */
  private stopUdp(query: PendingQuery): void {
    this.stopWaiting(query);
    for (const attempt of query.attempts) {
      this.attemptsById.release(attempt.id, attempt);
      if (attempt.pooled) this.sockets.release(attempt.pooled);
    }
    query.attempts = [];
  }

  private finish(query: PendingQuery, reply: Buffer | undefined): void {
    if (query.done) return;
    query.done = true;
    this.stopUdp(query);
    this.queries.remove(query);
    if (reply === undefined) this.counters.failures++;
    query.resolve(reply);
  }

  // ---- time-outs ----

  /** Makes sure the sweep runs no later than `deadline`. */
  private armSweep(deadline: number): void {
    if (this.closed || (this.sweepTimer !== undefined && this.sweepAt <= deadline)) return;
    if (this.sweepTimer !== undefined) clearTimeout(this.sweepTimer);
    this.sweepAt = deadline;
    // a timer can fire up to a millisecond before performance.now() reaches the deadline: the sweep re-arms then
    this.sweepTimer = setTimeout(this.sweep, Math.max(1, Math.ceil(deadline - performance.now())));
  }

  private readonly sweep = (): void => {
    this.sweepTimer = undefined;
    const now = performance.now();
    for (let attempt = this.timeouts.head; attempt && attempt.deadline <= now; attempt = this.timeouts.head) {
      this.timeouts.remove(attempt);
      const { query } = attempt;
      query.current = undefined;
      if (attempt.id >= 0 && !attempt.answered) this.recordTimeout(attempt.server);
      this.nextStep(query, now);
    }
    for (let query = this.queries.head; query && query.deadline <= now; query = this.queries.head) {
      // budget over: the attempt it waited on counts as timed out, as it would have at its own (shortened) time-out
      const waited = query.current;
      if (waited && waited.id >= 0 && !waited.answered) this.recordTimeout(waited.server);
      this.finish(query, query.truncated ?? query.fallback);
    }
    const next = Math.min(this.timeouts.head?.deadline ?? Infinity, this.queries.head?.deadline ?? Infinity);
    if (next !== Infinity) this.armSweep(next);
  };

  // ---- server health ----

  private recordReply(server: ServerState, latencyMs: number): void {
    this.counters.received++;
    this.counters.latencyTotalMs += latencyMs;
    this.health.recordReply(server, latencyMs);
  }

  private recordTimeout(server: ServerState): void {
    this.counters.timeouts++;
    this.health.recordTimeout(server);
  }
}

