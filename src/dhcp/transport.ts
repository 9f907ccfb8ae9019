/**
 * The thin I/O shell around the pure DHCP core: socket → parse → core → persist → reply.
 * Nothing a peer sends can stop it: every failure is counted, logged rate-limited, and the packet dropped.
 * An ACK leaves only after the lease change is on disk (the store's commit resolves after fdatasync).
 * Conflict probes: the core decides when one is needed (an OFFER of an address with no fresh verdict, every DECLINE
 * it would act on) and what a verdict means; it answers such a request with a 'probe:*' outcome. This shell runs the
 * probe (probe.ts), keeps the request waiting meanwhile (only that client waits; a DISCOVER's retransmission replaces
 * the waiting one, a DECLINE's is dropped) and hands the verdict to `core.probeDone`, whose result is settled like
 * any other. Without a detector nothing can be learned: the verdict is 'skipped' at once.
 */
import type dgram from 'node:dgram';
import diagnostics from 'node:diagnostics_channel';
import { BatchUdpTransport, DgramUdpTransport, type UdpPort } from '../dns/udp-transport.js';
import type { Logger } from '../log.js';
import { formatIpv4, NOT_IPV4 } from '../net/ipv4.js';
import { encodeDhcpPacket } from './codec.js';
import type { DurableReply } from './lease-store.js';
import type { ConflictStats, ProbeVerdict } from './probe.js';
import { decodeAndParse } from './request.js';
import { DhcpMessageType, DhcpOption, type CoreResult, type DhcpPacket, type DhcpRequest, type LeaseChange, type ReplyDestination } from './types.js';
import { errnoName } from '../native.js';

const ackChannel = diagnostics.channel('natd:dhcp:ack');
const dropChannel = diagnostics.channel('natd:dhcp:drop');

const MESSAGE_NAMES: Record<number, string> = {
  1: 'discover', 2: 'offer', 3: 'request', 4: 'decline', 5: 'ack', 6: 'nak', 7: 'release', 8: 'inform',
};

export interface DhcpCoreLike {
  handle(request: DhcpRequest, now: number): CoreResult;
  /** the verdict of the probe a 'probe:*' outcome asked for, with the request it was for */
  probeDone(request: DhcpRequest, address: number, verdict: ProbeVerdict, now: number): CoreResult;
  /** ends what ran out by `now`; returns the leases that ended as changes (the core's one expiry path) */
  expire(now: number): LeaseChange[];
}

/** What the transport needs from the conflict detector (probe.ts). */
export interface ConflictCheck {
  check(address: number, clientMac: string, opts?: { fresh?: boolean }): Promise<ProbeVerdict>;
  stats(): ConflictStats;
}

export interface DhcpTransportOptions {
  /**
   * The daemon's: a batched port (BatchUdpTransport, recvmmsg/sendmmsg through the addon: one JS call per batch of
   * requests, no per-datagram Buffer, rinfo or send request); a node:dgram socket is wrapped (tests).
   */
  socket: dgram.Socket | UdpPort;
  bridge: string;
  core: DhcpCoreLike;
  /**
   * resolves once the changes are durable (every lease change goes through it: requests' and expiries'). issue 18:
   * `reply` is the encoded answer the lease journal's writer thread may send itself right after the sync; the value
   * is then 0 (sent) or the send's errno, and anything else (REPLY_NOT_SENT, undefined) means: send it here.
   */
  commit(changes: LeaseChange[], reply?: DurableReply): Promise<number | void>;
  /** called after a commit succeeded (DNS names follow leases) */
  onCommitted?(changes: LeaseChange[]): void;
  /** seeds the neighbour table before a unicast to a client that has no address yet */
  setNeighbour(device: string, address: string, mac: string): void;
  logger: Logger;
  now?: () => number;
  /**
   * Runs the probes the core asks for. Whether offers are probed is the core's (CoreDeps.conflictVerdict, fed from
   * the same detector's cache; absent with `--no-ping`); declined addresses are probed regardless.
   */
  conflicts?: ConflictCheck;
}

export interface DhcpStats {
  received: number;
  /** parsed client messages by type name (discover, request, …) */
  receivedByType: Record<string, number>;
  /** by reason; 'probe-busy': a DISCOVER left unanswered because its probe gave no verdict */
  dropped: Record<string, number>;
  /** replies handed to the socket, by type name (those the kernel then refused are in sendFailures too) */
  sent: Record<string, number>;
  /** the core's decision per request; a request that waited for a probe counts once, with the decision after it */
  outcomes: Record<string, number>;
  commitFailures: number;
  sendFailures: number;
  /** DISCOVERs waiting for a conflict probe right now */
  heldDiscovers: number;
  /** DECLINEs waiting for the probe that verifies them right now */
  pendingDeclines: number;
  probes?: ConflictStats;
}

/** A request whose answer waits for a conflict probe, and where it came from. */
interface Waiting {
  request: DhcpRequest;
  /** IPv4 source as a number (formatted only for a log line) */
  from: number;
}

function bump(counter: Record<string, number>, key: string): void {
  counter[key] = (counter[key] ?? 0) + 1;
}

export class DhcpTransport {
  private readonly counters: DhcpStats = { received: 0, receivedByType: {}, dropped: {}, sent: {}, outcomes: {}, commitFailures: 0, sendFailures: 0, heldDiscovers: 0, pendingDeclines: 0 };
  private closed = false;
  /** clientId -> the newest DISCOVER of a client whose offer waits for a probe (retransmissions replace it) */
  private readonly heldDiscovers = new Map<string, Waiting>();
  /** clientId -> the DECLINE waiting for its verifying probe (a retransmission while it runs is dropped) */
  private readonly pendingDeclines = new Map<string, Waiting>();
  private readonly now: () => number;
  private readonly port: UdpPort;
  /** issue 18: the batched port's socket, which the journal's writer sends ACKs on (undefined: a dgram socket) */
  private readonly sendFd: number | undefined;
  /** commits carrying a reply for the writer thread: the socket stays open until they are settled */
  private repliesInFlight = 0;
  private portClosed: (() => void) | undefined;

  constructor(private readonly opts: DhcpTransportOptions) {
    this.now = opts.now ?? Date.now;
    const socket = opts.socket;
    this.port = 'reply' in socket ? socket : new DgramUdpTransport(socket, 'DHCP');
    this.sendFd = this.port instanceof BatchUdpTransport ? this.port.fd : undefined;
  }

  start(): void {
    this.port.start({
      // `msg` may be a view of a reused receive buffer: the decoder copies what the request keeps
      message: (msg, address) => this.onMessage(msg, typeof address === 'number' ? address : NOT_IPV4), // an IPv4 socket: always a number
      dropped: () => {
        this.counters.received++;
        this.drop('too-large', NOT_IPV4);
      },
      warn: (what, detail) => this.opts.logger.warnLimited(`dhcp:${what}`, detail),
      sendFailed: (count) => (this.counters.sendFailures += count),
    });
  }

  stats(): DhcpStats {
    const stats = structuredClone(this.counters);
    stats.heldDiscovers = this.heldDiscovers.size;
    stats.pendingDeclines = this.pendingDeclines.size;
    if (this.opts.conflicts) stats.probes = this.opts.conflicts.stats();
    return stats;
  }

  /**
   * Stops taking packets; in-flight commits still finish (the store flushes them on close). The socket closes once
   * no commit's reply may still be sent from the journal's writer thread on it.
   */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.repliesInFlight === 0) return this.port.close();
    return new Promise<void>((resolve) => (this.portClosed = resolve)).then(() => this.port.close());
  }

  private drop(reason: string, source: number): void {
    bump(this.counters.dropped, reason);
    const from = source === NOT_IPV4 ? 'unknown' : formatIpv4(source);
    dropChannel.publish({ reason, from });
    this.opts.logger.warnLimited(`dhcp:drop:${reason}`, 'dropped DHCP packet', { reason, from });
  }

  private onMessage(msg: Buffer, from: number): void {
    if (this.closed) return;
    this.counters.received++;
    const parsed = decodeAndParse(msg);
    if (!parsed.ok) {
      this.drop(parsed.reason, from);
      return;
    }
    bump(this.counters.receivedByType, MESSAGE_NAMES[parsed.request.type] ?? `type-${parsed.request.type}`);
    this.process(parsed.request, from);
  }

  /** Core → persist → reply, or core → probe → core → … when the core asks for a conflict probe first. */
  private process(request: DhcpRequest, from: number): void {
    const result = this.runCore(from, () => this.opts.core.handle(request, this.now()));
    if (result) this.settle(request, from, result);
  }

  /** A core bug must not take the server down with it; the fuzz tests are there so this never fires. */
  private runCore(from: number, decide: () => CoreResult): CoreResult | undefined {
    try {
      return decide();
    } catch (err) {
      this.drop('core-exception', from);
      this.opts.logger.error('DHCP core threw, packet dropped', { error: (err as Error).stack });
      return undefined;
    }
  }

  /** Acts on the core's decision: probe first, or persist the changes and then send the reply. */
  private settle(request: DhcpRequest, from: number, result: CoreResult): void {
    if (result.probe) {
      // the reply waits for the probe, but leases that ran out (handle expires first) are persisted now
      if (result.changes.length > 0) void this.persist(result.changes, 'expiry not journaled');
      this.probe(request, from, result.probe.address);
      return;
    }
    bump(this.counters.outcomes, result.outcome);
    if (result.outcome === 'ignore:probe-busy') this.drop('probe-busy', from);
    else if (result.outcome.startsWith('ignore:')) {
      this.opts.logger.warnLimited(`dhcp:${result.outcome}`, 'DHCP request ignored', { outcome: result.outcome, mac: request.mac });
    }
    const maxSize = request.maxMessageSize;
    if (result.changes.length === 0) {
      const out = this.prepare(result, maxSize);
      if (out) this.transmit(out);
      return;
    }
    // issue 18: the reply is encoded now, so the journal's writer thread can send it right after the sync
    const out = this.prepare(result, maxSize);
    const durable = out && this.sendFd !== undefined ? { fd: this.sendFd, message: out.bytes, address: out.address, port: out.port } : undefined;
    if (durable) this.repliesInFlight++;
    // Not durable, so not acknowledged: the client retries and we answer once the disk works again.
    void this.persist(result.changes, 'reply withheld', durable).then((outcome) => {
      if (durable && --this.repliesInFlight === 0) this.portClosed?.();
      if (outcome === false || !out) return;
      if (outcome === true) {
        if (!this.closed) this.transmit(out);
      } else if (outcome === 0) this.sentReply(out);
      else {
        this.counters.sendFailures++;
        this.opts.logger.warnLimited('dhcp-udp-send', `DHCP ${out.name} not sent: ${errnoName(outcome)}`);
      }
    });
  }

  /**
   * Ends the leases that ran out (the caller's timer, so an idle bridge's leases end too) and persists their ends
   * like any other change: journal first, then onCommitted. A failed write is counted; the lease is gone from
   * memory and DNS either way, and a restart does not bring it back (the journal's copy has expired).
   */
  expireLeases(): Promise<void> {
    if (this.closed) return Promise.resolve();
    let changes: LeaseChange[];
    try {
      changes = this.opts.core.expire(this.now());
    } catch (err) {
      this.opts.logger.error('DHCP core threw while expiring leases', { error: (err as Error).stack });
      return Promise.resolve();
    }
    if (changes.length === 0) return Promise.resolve();
    return this.persist(changes, 'expiry not journaled').then(() => undefined);
  }

  /**
   * commit → onCommitted; resolves with false when the changes are not durable (a failure is counted and logged),
   * else true, or (issue 18) the errno of the reply the journal's writer sent (0: sent).
   */
  private persist(changes: LeaseChange[], onFailure: string, reply?: DurableReply): Promise<boolean | number> {
    return this.opts.commit(changes, reply).then(
      (sent) => {
        this.opts.onCommitted?.(changes);
        return reply && typeof sent === 'number' && sent >= 0 ? sent : true;
      },
      (err: unknown) => {
        this.counters.commitFailures++;
        this.opts.logger.warnLimited('dhcp:commit', `cannot persist lease change; ${onFailure}`, { error: (err as Error).message });
        return false;
      },
    );
  }

  /**
   * Probes `address` for the request's client, then hands the verdict to the core with the request it was for: for a
   * DISCOVER the newest retransmission (it replaced the waiting one), for a DECLINE the first. Always a fresh probe:
   * the core asks only when no remembered verdict will do.
   */
  private probe(request: DhcpRequest, from: number, address: number): void {
    const conflicts = this.opts.conflicts;
    if (!conflicts) {
      this.verdict({ request, from }, address, 'skipped');
      return;
    }
    const discover = request.type === DhcpMessageType.DISCOVER;
    const waiting = discover ? this.heldDiscovers : this.pendingDeclines;
    const alreadyWaiting = waiting.has(request.clientId);
    if (discover || !alreadyWaiting) waiting.set(request.clientId, { request, from });
    if (alreadyWaiting) return;
    void conflicts.check(address, request.mac, { fresh: true }).then((verdict) => {
      const newest = waiting.get(request.clientId);
      waiting.delete(request.clientId);
      if (newest && !this.closed) this.verdict(newest, address, verdict);
    });
  }

  /** Hands a probe's verdict to the core (an address in use is logged) and settles what it decides. */
  private verdict(waited: Waiting, address: number, verdict: ProbeVerdict): void {
    const { request, from } = waited;
    if (verdict === 'in-use') {
      const what = request.type === DhcpMessageType.DECLINE ? 'declined address confirmed in use' : 'address in use, skipped';
      this.opts.logger.warn(what, { address: formatIpv4(address), mac: request.mac });
    }
    const result = this.runCore(from, () => this.opts.core.probeDone(request, address, verdict, this.now()));
    if (result) this.settle(request, from, result);
  }

  /**
   * The reply encoded and addressed (a unicast to a client without its address yet seeds the neighbour entry now);
   * undefined when there is none, or it cannot be encoded (counted). maxSize: the client's option 57 (whole IP
   * datagram), which the encoder respects.
   */
  private prepare(result: CoreResult, maxSize: number): OutgoingReply | undefined {
    const reply = result.reply;
    if (!reply || this.closed) return undefined;
    const type = reply.packet.options.get(DhcpOption.MESSAGE_TYPE)?.[0] ?? 0;
    let bytes: Buffer;
    try {
      bytes = encodeDhcpPacket(reply.packet, maxSize);
    } catch (err) {
      this.counters.sendFailures++;
      this.opts.logger.error('cannot encode DHCP reply', { error: (err as Error).message });
      return undefined;
    }
    const target = this.targetOf(reply.destination);
    if (!target) return undefined;
    return { bytes, address: target.address, port: target.port, type, name: MESSAGE_NAMES[type] ?? `type-${type}`, packet: reply.packet };
  }

  /** Sends through the port (sendmmsg at the end of the batch or microtask run): a send error comes through its warn. */
  private transmit(out: OutgoingReply): void {
    this.port.reply(out.bytes, out.address, out.port);
    this.sentReply(out);
  }

  private sentReply(out: OutgoingReply): void {
    bump(this.counters.sent, out.name);
    if (out.type === 5 && ackChannel.hasSubscribers) ackChannel.publish({ address: formatIpv4(out.packet.yiaddr), mac: out.packet.chaddr });
  }

  private targetOf(destination: ReplyDestination): { address: number; port: number } | undefined {
    switch (destination.kind) {
      case 'broadcast':
        return { address: BROADCAST, port: destination.port };
      case 'unicast-new': {
        try {
          this.opts.setNeighbour(this.opts.bridge, formatIpv4(destination.address), destination.mac);
        } catch (err) {
          // Without the neighbour entry the kernel would ARP for an address nobody holds yet: broadcast instead.
          this.opts.logger.warnLimited('dhcp:neighbour', 'cannot seed neighbour entry; broadcasting reply', { error: (err as Error).message });
          return { address: BROADCAST, port: destination.port };
        }
        return { address: destination.address >>> 0, port: destination.port };
      }
      case 'unicast':
        return { address: destination.address >>> 0, port: destination.port };
    }
  }
}

const BROADCAST = 0xffff_ffff;

/** A reply encoded and addressed, waiting for its commit or going out at once. */
interface OutgoingReply {
  bytes: Buffer;
  address: number;
  port: number;
  type: number;
  name: string;
  packet: DhcpPacket;
}
