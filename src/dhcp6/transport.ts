/**
 * issue 14: the thin I/O shell around the pure DHCPv6 core (core.ts): socket → limits → core → reply.
 *
 * The socket is [::]:547 bound to the bridge and joined to ff02::1:2 there (native/udp6_socket.c; Node's dgram
 * cannot bind to a device). A reply goes to the client's source address with the bridge as scope and to port 546
 * (RFC 8415 7.2), once the core has resolved, which it does after the journal synced the lease change: a Reply
 * never promises an address the journal does not hold.
 *
 * Guests are hostile: nothing a peer sends stops the server. Before the core sees a datagram it must be a client
 * message type (Solicit, Request, Confirm, Renew, Rebind, Release, Decline, Information-request) of a sane size, its
 * source within the per-source token bucket (rate-limited), and fewer than MAX_IN_FLIGHT requests may be waiting for
 * the journal. Everything else is counted by reason and logged rate-limited, never answered.
 *
 * The client's MAC (for reservations by MAC, peer.mac): decoded from a modified EUI-64 link-local source (fe80::
 * with ff:fe in the middle of the interface id, the kernel's default addr_gen_mode), otherwise from `lookupMac`
 * (the daemon's neighbour-table cache, neighbour-mac.ts). The core also reads the MAC of a DUID-LL/LLT itself.
 */
import type dgram from 'node:dgram';
import type { Logger } from '../log.js';

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
 * Replies queued in the process because the socket is not writable. That happens when many replies wait in the
 * kernel's neighbour queue for sources that never answer neighbour solicitation (a guest spoofing link-local
 * sources): then Advertises are dropped ('send-backlog') and only Replies (which carry journaled state) queue, so
 * real clients' Renews are not stuck behind the attacker's Solicits.
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

export interface Dhcp6TransportOptions {
  socket: dgram.Socket;
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
  /** by reason: short, oversize, server-message, unknown-type, rate-limited, busy, send-backlog, core-error, closed */
  dropped: Record<string, number>;
  /** advertise / reply */
  sent: Record<string, number>;
  /** the core's outcome kind: reply, advertise, ignored, invalid */
  outcomes: Record<string, number>;
  sendFailures: number;
  inFlight: number;
  /** sources the rate limiter tracks now */
  trackedSources: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

function bump(counter: Record<string, number>, key: string): void {
  counter[key] = (counter[key] ?? 0) + 1;
}

/** The MAC inside a modified EUI-64 interface id (RFC 4291 appendix A) of an fe80::/64 address, else undefined. */
export function macFromLinkLocal(address: string): string | undefined {
  const bare = address.split('%')[0]!.toLowerCase();
  if (!bare.startsWith('fe80:')) return undefined;
  const groups = expandIpv6(bare);
  if (!groups || groups[1] !== 0 || groups[2] !== 0 || groups[3] !== 0) return undefined;
  const [g4, g5, g6, g7] = [groups[4]!, groups[5]!, groups[6]!, groups[7]!];
  if ((g5 & 0xff) !== 0xff || g6 >> 8 !== 0xfe) return undefined;
  const bytes = [(g4 >> 8) ^ 0x02, g4 & 0xff, g5 >> 8, g6 & 0xff, g7 >> 8, g7 & 0xff];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}

/** eight 16-bit groups of a textual IPv6 address (no embedded IPv4), or undefined */
function expandIpv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const part = (s: string): number[] | undefined => {
    if (s === '') return [];
    const out: number[] = [];
    for (const g of s.split(':')) {
      if (!/^[0-9a-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  const fill = 8 - head.length - tail.length;
  return fill >= 1 ? [...head, ...new Array<number>(fill).fill(0), ...tail] : undefined;
}

export class Dhcp6Transport {
  private readonly counters: Dhcp6Stats = { received: 0, receivedByType: {}, dropped: {}, sent: {}, outcomes: {}, sendFailures: 0, inFlight: 0, trackedSources: 0 };
  private readonly buckets = new Map<string, Bucket>();
  private readonly pending = new Set<Promise<void>>();
  private readonly limit: RateLimit;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly opts: Dhcp6TransportOptions) {
    this.now = opts.now ?? Date.now;
    this.limit = opts.rateLimit ?? DEFAULT_RATE_LIMIT;
  }

  start(): void {
    this.opts.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
    this.opts.socket.on('error', (err) => this.opts.logger.warnLimited('dhcp6:socket', 'DHCPv6 socket error, ignoring', { error: err.message }));
  }

  stats(): Dhcp6Stats {
    const stats = structuredClone(this.counters);
    stats.inFlight = this.pending.size;
    stats.trackedSources = this.buckets.size;
    return stats;
  }

  /** Stops taking datagrams and waits for the requests the core is still handling (their journal writes). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await new Promise<void>((resolve) => {
      try {
        this.opts.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
    await Promise.allSettled([...this.pending]);
  }

  /** One datagram from the bridge; `from` is the source address as dgram reports it (maybe with "%scope"). */
  onMessage(msg: Buffer, from: string): void {
    this.counters.received++;
    if (this.closed) return this.drop('closed', from);
    if (msg.length < MIN_MESSAGE) return this.drop('short', from);
    if (msg.length > MAX_MESSAGE) return this.drop('oversize', from);
    const type = msg[0]!;
    const name = CLIENT_MESSAGES[type];
    if (!name) return this.drop(SERVER_MESSAGES[type] ? 'server-message' : 'unknown-type', from, { type });
    const address = from.split('%')[0]!;
    if (!this.admit(address)) return this.drop('rate-limited', from);
    if (this.pending.size >= MAX_IN_FLIGHT) return this.drop('busy', from);
    bump(this.counters.receivedByType, name);
    const mac = macFromLinkLocal(address) ?? this.opts.lookupMac?.(address);
    const work = this.serve(msg, address, mac);
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private async serve(msg: Buffer, address: string, mac: string | undefined): Promise<void> {
    let outcome: Dhcp6OutcomeLike;
    try {
      outcome = await this.opts.core.handle(msg, { address, ...(mac ? { mac } : {}) });
    } catch (err) {
      // a journal write that failed lands here too: no Reply is sent for a lease that is not durable
      this.drop('core-error', address, { error: (err as Error).message });
      return;
    }
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
    if (outcome.kind === 'advertise' && this.sendBacklog() > MAX_SEND_BACKLOG) return this.drop('send-backlog', address);
    this.send(Buffer.from(outcome.reply.buffer, outcome.reply.byteOffset, outcome.reply.byteLength), address, outcome.kind);
  }

  private send(reply: Buffer, address: string, kind: string): void {
    // link-local (and multicast) destinations need the bridge as scope; a global source is reachable as it is
    const scoped = /^fe[89ab]/i.test(address) || /^ff/i.test(address) ? `${address}%${this.opts.bridge}` : address;
    try {
      this.opts.socket.send(reply, DHCP6_CLIENT_PORT, scoped, (err) => {
        if (!err) return bump(this.counters.sent, kind);
        this.counters.sendFailures++;
        this.opts.logger.warnLimited('dhcp6:send', 'cannot send DHCPv6 reply', { to: address, error: err.message });
      });
    } catch (err) {
      this.counters.sendFailures++;
      this.opts.logger.warnLimited('dhcp6:send', 'cannot send DHCPv6 reply', { to: address, error: (err as Error).message });
    }
  }

  /** datagrams dgram still holds because the socket was not writable (0 where dgram cannot tell) */
  private sendBacklog(): number {
    const socket = this.opts.socket as { getSendQueueCount?: () => number };
    return typeof socket.getSendQueueCount === 'function' ? socket.getSendQueueCount() : 0;
  }

  /** token bucket per source address */
  private admit(address: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(address);
    if (!bucket) {
      if (this.buckets.size >= this.limit.maxSources) this.forgetIdle();
      bucket = { tokens: this.limit.burst, at: now };
    } else {
      this.buckets.delete(address); // re-inserted below: the map stays in order of last use
      bucket.tokens = Math.min(this.limit.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.limit.perSecond);
      bucket.at = now;
    }
    this.buckets.set(address, bucket);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** forgets the half of the tracked sources idle longest (the map is in order of last use) */
  private forgetIdle(): void {
    let toForget = Math.max(1, this.buckets.size >> 1);
    for (const key of this.buckets.keys()) {
      if (toForget-- <= 0) break;
      this.buckets.delete(key);
    }
  }

  private drop(reason: string, from: string, detail: Record<string, unknown> = {}): void {
    bump(this.counters.dropped, reason);
    this.opts.logger.warnLimited(`dhcp6:drop:${reason}`, 'dropped a DHCPv6 datagram', { reason, from, ...detail });
  }
}
