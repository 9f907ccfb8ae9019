/**
 * issue 14: the thin I/O shell around the pure DHCPv6 core (core.ts): socket → limits → core → reply.
 *
 * The socket is [::]:547 bound to the bridge and joined to ff02::1:2 there (native/udp6_socket.c; Node's dgram
 * cannot bind to a device). The daemon reads and writes it in batches through the addon (BatchUdp6Transport:
 * recvmmsg/sendmmsg, one JS call per batch, no Buffer, rinfo or send request per datagram: the same as the DHCPv4
 * and DNS sockets); a node:dgram socket is wrapped (tests). Sources are IPv6 client keys (dns/client-address.ts:
 * 32 hex digits), turned into text once per source, not per datagram. A reply goes to the client's source address
 * on the bridge (the socket is bound to it, so a link-local peer needs no scope id) and to port 546 (RFC 8415 7.2).
 *
 * An Advertise (and any answer that changes no lease) is decided and sent at once, within the batch it came in, so
 * the Advertises of a batch leave in one sendmmsg. A Reply that binds, extends or ends a lease is sent once the
 * core has resolved, which it does after the journal synced the change (the lease store's group commit: the
 * Replies of concurrent clients share one fdatasync, and the Replies that one sync released leave together): a
 * Reply never promises an address the journal does not hold.
 *
 * Guests are hostile: nothing a peer sends stops the server. Before the core sees a datagram it must be a client
 * message type (Solicit, Request, Confirm, Renew, Rebind, Release, Decline, Information-request) of a sane size, its
 * source within the per-source token bucket (rate-limited), and fewer than MAX_IN_FLIGHT requests may be waiting for
 * the journal. Everything else is counted by reason and logged rate-limited, never answered.
 *
 * The client's MAC (for reservations by MAC, peer.mac): decoded from a modified EUI-64 link-local source (fe80::
 * with ff:fe in the middle of the interface id, the kernel's default addr_gen_mode), otherwise from `lookupMac` when
 * one is given (the daemon gives none: a guest whose DUID carries no MAC and whose link-local is not EUI-64 can be
 * reserved by DUID only, as the README says). The core also reads the MAC of a DUID-LL/LLT itself.
 */
import type dgram from 'node:dgram';
import { formatIpv6, parseIpv6 } from '../ipv6/address.js';
import type { Logger } from '../log.js';
import { isLinkLocalV6Client, v6ClientBytes, v6ClientFromBytes, type ClientAddress } from '../dns/client-address.js';
import type { UdpHandlers, UdpPort } from '../dns/udp-transport.js';

export const DHCP6_SERVER_PORT = 547;
export const DHCP6_CLIENT_PORT = 546;
export const ALL_DHCP_SERVERS = 'ff02::1:2';

/** what the core resolves with (core.ts Dhcp6Outcome) */
export interface Dhcp6OutcomeLike {
  kind: 'reply' | 'advertise' | 'ignored' | 'invalid';
  reply?: Buffer | Uint8Array;
  reason?: string;
  changes?: readonly unknown[];
}

export interface Dhcp6CoreLike {
  handle(packet: Buffer, peer: { address: string; mac?: string }): Promise<Dhcp6OutcomeLike>;
  /**
   * The same, but the outcome at once when nothing waits for the journal (an Advertise, a rejected message): the
   * reply then leaves with the batch it answers. The core must not keep views of `packet` past the call (the batched
   * socket reuses its receive buffer).
   */
  handleNow?(packet: Buffer, peer: { address: string; mac?: string }): Dhcp6OutcomeLike | Promise<Dhcp6OutcomeLike>;
}

/** RFC 8415 7.3 message types a client sends to a server (relays are not supported: natd serves its own bridge) */
const CLIENT_MESSAGES: Readonly<Record<number, string>> = {
  1: 'solicit', 3: 'request', 4: 'confirm', 5: 'renew', 6: 'rebind', 8: 'release', 9: 'decline', 11: 'information-request',
};
const SERVER_MESSAGES: Readonly<Record<number, string>> = { 2: 'advertise', 7: 'reply', 10: 'reconfigure' };

/** header (type + transaction id) */
const MIN_MESSAGE = 4;
/** a client message bigger than this is not one a client sends (the v4 side allows 1500 as well) */
const MAX_MESSAGE = 1500;
/** requests waiting for the core (the journal) at once; more are dropped as 'busy' (the client retransmits) */
export const MAX_IN_FLIGHT = 1024;
/**
 * Replies the socket still holds unsent (a dgram socket that is not writable: the port's sendBacklog). That happens
 * when many replies wait in the kernel's neighbour queue for sources that never answer neighbour solicitation (a
 * guest spoofing link-local sources): then Advertises are dropped ('send-backlog') and only Replies (which carry
 * journaled state) queue, so real clients' Renews are not stuck behind the attacker's Solicits. The batched port
 * holds nothing in the process: a full socket buffer is waited out briefly and the datagram dropped (udp_batch.c).
 */
export const MAX_SEND_BACKLOG = 64;

export interface RateLimit {
  /** messages per second a source may send on average */
  perSecond: number;
  /** how many it may send at once */
  burst: number;
  /** sources tracked; when full, the ones idle longest are forgotten */
  maxSources: number;
}

/**
 * The default lets a guest boot, retransmit and renew many IAs at once; a source sending faster is dropped, not
 * queued. (A guest rotating source addresses meets MAX_IN_FLIGHT and the core's caps instead.)
 */
export const DEFAULT_RATE_LIMIT: RateLimit = { perSecond: 50, burst: 100, maxSources: 4096 };

/** A UDP port with the IPv6 clients of dns/client-address.ts; `sendBacklog`: datagrams it holds unsent, when it can tell. */
export type Dhcp6Port = UdpPort & { sendBacklog?(): number };

export interface Dhcp6TransportOptions {
  /** the daemon's: a batched port (BatchUdp6Transport); a node:dgram 'udp6' socket is wrapped (tests) */
  socket: dgram.Socket | Dhcp6Port;
  bridge: string;
  core: Dhcp6CoreLike;
  logger: Logger;
  now?: () => number;
  rateLimit?: RateLimit;
  /** the MAC of a non-EUI-64 source from the neighbour table, when known */
  lookupMac?(address: string): string | undefined;
  /** the lease changes of a handled request, after they are durable (lease events, names) */
  onChanges?(changes: readonly unknown[]): void;
}

export interface Dhcp6Stats {
  received: number;
  /** client messages by type name (solicit, request, …) */
  receivedByType: Record<string, number>;
  /** by reason: short, oversize, bad-source, server-message, unknown-type, rate-limited, busy, send-backlog,
   * core-error, closed */
  dropped: Record<string, number>;
  /** advertise / reply handed to the socket */
  sent: Record<string, number>;
  /** the core's outcome kind: reply, advertise, ignored, invalid */
  outcomes: Record<string, number>;
  /** replies the kernel refused */
  sendFailures: number;
  inFlight: number;
  /** sources the rate limiter tracks now */
  trackedSources: number;
}

/** What the transport keeps per source address: its token bucket, its text and the MAC of its EUI-64 id. */
interface Source {
  tokens: number;
  at: number;
  /** RFC 5952 text, for the core and logs */
  address: string;
  eui64Mac: string | undefined;
}

function bump(counter: Record<string, number>, key: string): void {
  counter[key] = (counter[key] ?? 0) + 1;
}

const HEX2 = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/** The MAC inside the modified EUI-64 interface id (RFC 4291 appendix A) of an fe80::/64 client key, else undefined. */
export function macFromClientKey(key: string): string | undefined {
  if (key.length !== 32 || !key.startsWith('fe80000000000000') || key[22] !== 'f' || key[23] !== 'f' || key[24] !== 'f' || key[25] !== 'e') return undefined;
  const byte = (at: number) => parseInt(key.slice(at, at + 2), 16);
  return [HEX2[byte(16) ^ 0x02], key.slice(18, 20), key.slice(20, 22), key.slice(26, 28), key.slice(28, 30), key.slice(30, 32)].join(':');
}

/** The MAC inside a modified EUI-64 interface id (RFC 4291 appendix A) of an fe80::/64 address, else undefined. */
export function macFromLinkLocal(address: string): string | undefined {
  const bytes = parseIpv6(address.split('%')[0]!);
  return bytes ? macFromClientKey(v6ClientFromBytes(bytes)) : undefined;
}

/** A node:dgram 'udp6' socket as a Dhcp6Port (tests, sockets natd did not open itself). */
class Dgram6Port implements Dhcp6Port {
  private closing: Promise<void> | undefined;
  private handlers: UdpHandlers | undefined;

  constructor(private readonly socket: dgram.Socket, private readonly bridge: string) {}

  start(handlers: UdpHandlers): void {
    this.handlers = handlers;
    this.socket.on('message', (message, rinfo) => {
      const bytes = parseIpv6(rinfo.address.split('%')[0]!);
      handlers.message(message, bytes ? v6ClientFromBytes(bytes) : -1, rinfo.port);
    });
    this.socket.on('error', (err) => handlers.warn('dhcp6:socket', `DHCPv6 socket error, ignoring: ${err.message}`));
  }

  reply(message: Buffer, address: ClientAddress, port: number): void {
    if (this.closing || typeof address !== 'string') return;
    const text = formatIpv6(v6ClientBytes(address));
    // link-local (and multicast) destinations need the bridge as scope; a global source is reachable as it is
    const scoped = isLinkLocalV6Client(address) || address.startsWith('ff') ? `${text}%${this.bridge}` : text;
    const failed = (err: Error | null) => {
      if (!err) return;
      this.handlers?.sendFailed?.(1);
      this.handlers?.warn('dhcp6:send', `cannot send DHCPv6 reply to ${text}: ${err.message}`);
    };
    try {
      this.socket.send(message, port, scoped, failed);
    } catch (err) {
      failed(err as Error);
    }
  }

  sendBacklog(): number {
    const socket = this.socket as { getSendQueueCount?: () => number };
    return typeof socket.getSendQueueCount === 'function' ? socket.getSendQueueCount() : 0;
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
    return this.closing;
  }
}

export class Dhcp6Transport {
  private readonly counters: Dhcp6Stats = { received: 0, receivedByType: {}, dropped: {}, sent: {}, outcomes: {}, sendFailures: 0, inFlight: 0, trackedSources: 0 };
  /** per source, in order of last use (the rate limiter forgets the idlest first) */
  private readonly sources = new Map<string, Source>();
  private readonly pending = new Set<Promise<void>>();
  private readonly limit: RateLimit;
  private readonly now: () => number;
  private readonly port: Dhcp6Port;
  private closed = false;

  constructor(private readonly opts: Dhcp6TransportOptions) {
    this.now = opts.now ?? Date.now;
    this.limit = opts.rateLimit ?? DEFAULT_RATE_LIMIT;
    const socket = opts.socket;
    this.port = 'reply' in socket ? socket : new Dgram6Port(socket, opts.bridge);
  }

  start(): void {
    this.port.start({
      message: (msg, from) => this.onMessage(msg, from),
      dropped: () => {
        this.counters.received++;
        this.drop('oversize', 'unknown');
      },
      warn: (what, detail) => this.opts.logger.warnLimited(what, detail),
      sendFailed: (count) => {
        this.counters.sendFailures += count;
      },
    });
  }

  stats(): Dhcp6Stats {
    const stats = structuredClone(this.counters);
    stats.inFlight = this.pending.size;
    stats.trackedSources = this.sources.size;
    return stats;
  }

  /** Stops taking datagrams and waits for the requests the core is still handling (their journal writes). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.port.close();
    await Promise.allSettled([...this.pending]);
  }

  /** One datagram from the bridge; `from`: its source as a client key (32 hex digits), anything else is dropped. */
  onMessage(msg: Buffer, from: ClientAddress): void {
    this.counters.received++;
    if (this.closed) return this.drop('closed', from);
    if (msg.length < MIN_MESSAGE) return this.drop('short', from);
    if (msg.length > MAX_MESSAGE) return this.drop('oversize', from);
    if (typeof from !== 'string' || from.length !== 32) return this.drop('bad-source', from);
    const type = msg[0]!;
    const name = CLIENT_MESSAGES[type];
    if (!name) return this.drop(SERVER_MESSAGES[type] ? 'server-message' : 'unknown-type', from, { type });
    const source = this.admit(from);
    if (!source) return this.drop('rate-limited', from);
    if (this.pending.size >= MAX_IN_FLIGHT) return this.drop('busy', from);
    bump(this.counters.receivedByType, name);
    const mac = source.eui64Mac ?? this.opts.lookupMac?.(source.address);
    const peer = mac ? { address: source.address, mac } : { address: source.address };
    let outcome: Dhcp6OutcomeLike | Promise<Dhcp6OutcomeLike>;
    try {
      outcome = this.opts.core.handleNow ? this.opts.core.handleNow(msg, peer) : this.opts.core.handle(msg, peer);
    } catch (err) {
      return this.drop('core-error', from, { error: (err as Error).message });
    }
    if (!(outcome instanceof Promise)) return this.settle(outcome, from, source.address);
    const work = outcome.then(
      (o) => this.settle(o, from, source.address),
      // a journal write that failed lands here too: no Reply is sent for a lease that is not durable
      (err: Error) => this.drop('core-error', from, { error: err.message }),
    );
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private settle(outcome: Dhcp6OutcomeLike, to: string, address: string): void {
    bump(this.counters.outcomes, outcome.kind);
    if (outcome.changes?.length) {
      try {
        this.opts.onChanges?.(outcome.changes);
      } catch (err) {
        this.opts.logger.warnLimited('dhcp6:changes', 'DHCPv6 lease change listener failed', { error: (err as Error).message });
      }
    }
    if (outcome.kind === 'invalid' || outcome.kind === 'ignored') {
      this.opts.logger.debug('dhcp6 request not answered', { from: address, kind: outcome.kind, reason: outcome.reason });
      return;
    }
    if (!outcome.reply || this.closed) return;
    if (outcome.kind === 'advertise' && (this.port.sendBacklog?.() ?? 0) > MAX_SEND_BACKLOG) return this.drop('send-backlog', to);
    const r = outcome.reply;
    const reply = Buffer.isBuffer(r) ? r : Buffer.from(r.buffer, r.byteOffset, r.byteLength);
    bump(this.counters.sent, outcome.kind);
    // the batched port sends with the batch it answers, or (a Reply released by a journal sync) with the others that
    // sync released, in one sendmmsg at the end of the microtask run (BatchUdp6Transport.reply)
    this.port.reply(reply, to, DHCP6_CLIENT_PORT);
  }

  /** token bucket per source address; the source's facts, or undefined when it is over its rate */
  private admit(key: string): Source | undefined {
    const now = this.now();
    let source = this.sources.get(key);
    if (!source) {
      if (this.sources.size >= this.limit.maxSources) this.forgetIdle();
      source = { tokens: this.limit.burst, at: now, address: formatIpv6(v6ClientBytes(key)), eui64Mac: macFromClientKey(key) };
    } else {
      this.sources.delete(key); // re-inserted below: the map stays in order of last use
      source.tokens = Math.min(this.limit.burst, source.tokens + ((now - source.at) / 1000) * this.limit.perSecond);
      source.at = now;
    }
    this.sources.set(key, source);
    if (source.tokens < 1) return undefined;
    source.tokens -= 1;
    return source;
  }

  /** forgets the half of the tracked sources idle longest (the map is in order of last use) */
  private forgetIdle(): void {
    let toForget = Math.max(1, this.sources.size >> 1);
    for (const key of this.sources.keys()) {
      if (toForget-- <= 0) break;
      this.sources.delete(key);
    }
  }

  private drop(reason: string, from: ClientAddress, detail: Record<string, unknown> = {}): void {
    bump(this.counters.dropped, reason);
    const text = typeof from === 'string' && from.length === 32 ? (this.sources.get(from)?.address ?? formatIpv6(v6ClientBytes(from))) : String(from);
    this.opts.logger.warnLimited(`dhcp6:drop:${reason}`, 'dropped a DHCPv6 datagram', { reason, from: text, ...detail });
  }
}
