/**
 * The thin I/O shell around the pure DHCP core: socket → parse → core → persist → reply.
 * Nothing a peer sends can stop it: every failure is counted, logged rate-limited, and the packet dropped.
 * An ACK leaves only after the lease change is on disk (the store's commit resolves after fdatasync).
 * An OFFER of an address nobody probed recently waits for a conflict probe (probe.ts); only that client waits. When
 * the probe gives no verdict ('busy': too many probes waiting, no request could be sent) the DISCOVER is dropped and
 * the client's retransmission tries again: an address is never offered unprobed for want of a probe slot.
 * A DECLINE the core would accept waits for a fresh probe of the declined address too: the core quarantines it only
 * when something answers there (a guest cannot quarantine the pool by declining what it was offered).
 */
import type dgram from 'node:dgram';
import diagnostics from 'node:diagnostics_channel';
import type { Logger } from '../log.js';
import { formatIpv4 } from '../net/ipv4.js';
import { encodeDhcpPacket } from './codec.js';
import type { ConflictStats, ProbeVerdict } from './probe.js';
import type { HandleOptions } from './server-core.js';
import { decodeAndParse } from './request.js';
import { DhcpOption, type CoreResult, type DhcpRequest, type LeaseChange, type ReplyDestination } from './types.js';

const ackChannel = diagnostics.channel('natd:dhcp:ack');
const dropChannel = diagnostics.channel('natd:dhcp:drop');

const MESSAGE_NAMES: Record<number, string> = {
  1: 'discover', 2: 'offer', 3: 'request', 4: 'decline', 5: 'ack', 6: 'nak', 7: 'release', 8: 'inform',
};

export interface DhcpCoreLike {
  handle(request: DhcpRequest, now: number, opts?: HandleOptions): CoreResult;
  /** ends what ran out by `now`; returns the leases that ended as changes (the core's one expiry path) */
  expire(now: number): LeaseChange[];
  /** the client's current lease, which needs no conflict probe (it is using the address itself) */
  leases?: { getByClient(clientId: string): { address: number } | undefined };
}

/** What the transport needs from the conflict detector (probe.ts). */
export interface ConflictCheck {
  cached(address: number): 'in-use' | 'free' | undefined;
  check(address: number, clientMac: string, opts?: { fresh?: boolean }): Promise<ProbeVerdict>;
  stats(): ConflictStats;
}

export interface DhcpTransportOptions {
  socket: dgram.Socket;
  bridge: string;
  core: DhcpCoreLike;
  /** resolves once the changes are durable (every lease change goes through it: requests' and expiries') */
  commit(changes: LeaseChange[]): Promise<void>;
  /** called after a commit succeeded (DNS names follow leases) */
  onCommitted?(changes: LeaseChange[]): void;
  /** seeds the neighbour table before a unicast to a client that has no address yet */
  setNeighbour(device: string, address: string, mac: string): void;
  logger: Logger;
  now?: () => number;
  /**
   * Probes an offered address first. Feed the same detector to the core as `CoreDeps.isKnownInUse`, so the
   * DISCOVER re-run after an in-use verdict is offered another address.
   */
  conflicts?: ConflictCheck;
  /** probe offered addresses (default true; false is `--no-ping`); declined addresses are probed regardless */
  probeOffers?: boolean;
}

export interface DhcpStats {
  received: number;
  /** parsed client messages by type name (discover, request, …) */
  receivedByType: Record<string, number>;
  dropped: Record<string, number>;
  sent: Record<string, number>;
  outcomes: Record<string, number>;
  commitFailures: number;
  sendFailures: number;
  /** DISCOVERs waiting for a conflict probe right now */
  heldDiscovers: number;
  /** DECLINEs waiting for the probe that verifies them right now */
  pendingDeclines: number;
  probes?: ConflictStats;
}

function bump(counter: Record<string, number>, key: string): void {
  counter[key] = (counter[key] ?? 0) + 1;
}

export class DhcpTransport {
  private readonly counters: DhcpStats = { received: 0, receivedByType: {}, dropped: {}, sent: {}, outcomes: {}, commitFailures: 0, sendFailures: 0, heldDiscovers: 0, pendingDeclines: 0 };
  private closed = false;
  /** clientId -> the newest DISCOVER of a client whose offer waits for a probe (retransmissions replace it) */
  private readonly heldDiscovers = new Map<string, { request: DhcpRequest; from: string }>();
  /** clientIds whose DECLINE waits for its verifying probe (a retransmission while it runs is dropped) */
  private readonly pendingDeclines = new Set<string>();
  private readonly now: () => number;

  constructor(private readonly opts: DhcpTransportOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.opts.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
    this.opts.socket.on('error', (err) => this.opts.logger.warnLimited('dhcp:socket', 'DHCP socket error, ignoring', { error: err.message }));
  }

  stats(): DhcpStats {
    const stats = structuredClone(this.counters);
    stats.heldDiscovers = this.heldDiscovers.size;
    stats.pendingDeclines = this.pendingDeclines.size;
    if (this.opts.conflicts) stats.probes = this.opts.conflicts.stats();
    return stats;
  }

  /** Stops taking packets; in-flight commits still finish (the store flushes them on close). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => {
      try {
        this.opts.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private drop(reason: string, from: string): void {
    bump(this.counters.dropped, reason);
    dropChannel.publish({ reason, from });
    this.opts.logger.warnLimited(`dhcp:drop:${reason}`, 'dropped DHCP packet', { reason, from });
  }

  private onMessage(msg: Buffer, from: string): void {
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

  /**
   * Core → (probe) → persist → reply. `probed`: the address a finished probe was about, when this is the re-run of
   * a held DISCOVER; offering it now needs no second probe (the core chose it knowing the verdict).
   */
  private process(request: DhcpRequest, from: string, probed?: number, declineVerdict?: HandleOptions['declineVerdict']): void {
    // Rapid Commit (RFC 4039): the conflict probe still runs before the address is bound, so the core first only
    // offers (and holds) it; once the address needs no probe, or the probe found it free, the core runs again and ACKs.
    const rapid = request.type === 1 && request.rapidCommit === true && this.opts.conflicts !== undefined && this.opts.probeOffers !== false;
    let result = this.handle(request, from, rapid ? { offerOnly: true } : declineVerdict === undefined ? {} : { declineVerdict });
    if (!result) return;
    if (rapid && result.outcome === 'offer' && !this.needsProbe(request, result, probed)) {
      result = this.handle(request, from, {});
      if (!result) return;
    }
    if (result.verify) {
      this.persistAhead(result.changes);
      this.verifyDecline(request, from, result.verify.address, declineVerdict);
      return;
    }
    if (probed === undefined || result.outcome === 'ack:rapid-commit') bump(this.counters.outcomes, result.outcome);
    if (result.outcome.startsWith('ignore:')) {
      this.opts.logger.warnLimited(`dhcp:${result.outcome}`, 'DHCP request ignored', { outcome: result.outcome, mac: request.mac });
    }
    if (this.holdForProbe(request, from, result, probed)) {
      this.persistAhead(result.changes);
      return;
    }
    const maxSize = request.maxMessageSize;
    if (result.changes.length === 0) {
      this.send(result, maxSize);
      return;
    }
    // Not durable, so not acknowledged: the client retries and we answer once the disk works again.
    void this.persist(result.changes, 'reply withheld').then((durable) => {
      if (durable) this.send(result, maxSize);
    });
  }

  private handle(request: DhcpRequest, from: string, opts: HandleOptions): CoreResult | undefined {
    try {
      return this.opts.core.handle(request, this.now(), opts);
    } catch (err) {
      // A core bug must not take the server down with it; the fuzz tests are there so this never fires.
      this.drop('core-exception', from);
      this.opts.logger.error('DHCP core threw, packet dropped', { error: (err as Error).stack });
      return undefined;
    }
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
   * A run whose reply waits for a probe (the probe's end runs the core again) may still have ended leases that ran
   * out (handle expires first): they are reported only in this run's changes, so they are persisted now.
   */
  private persistAhead(changes: LeaseChange[]): void {
    if (changes.length > 0) void this.persist(changes, 'expiry not journaled');
  }

  /** commit → onCommitted; resolves with whether the changes are durable (a failure is counted and logged). */
  private persist(changes: LeaseChange[], onFailure: string): Promise<boolean> {
    return this.opts.commit(changes).then(
      () => {
        this.opts.onCommitted?.(changes);
        return true;
      },
      (err: unknown) => {
        this.counters.commitFailures++;
        this.opts.logger.warnLimited('dhcp:commit', `cannot persist lease change; ${onFailure}`, { error: (err as Error).message });
        return false;
      },
    );
  }

  /**
   * True when the OFFER must wait for a conflict probe of its address; the probe's end re-runs the client's newest
   * DISCOVER. Not probed: the client's own lease, an address with a fresh verdict, the address just probed.
   */
  private holdForProbe(request: DhcpRequest, from: string, result: CoreResult, probed: number | undefined): boolean {
    const conflicts = this.opts.conflicts;
    if (!conflicts || !this.needsProbe(request, result, probed)) return false;
    const address = result.reply!.packet.yiaddr >>> 0;
    const alreadyWaiting = this.heldDiscovers.has(request.clientId);
    this.heldDiscovers.set(request.clientId, { request, from });
    if (alreadyWaiting) return true;
    void conflicts.check(address, request.mac).then((verdict) => {
      const newest = this.heldDiscovers.get(request.clientId);
      this.heldDiscovers.delete(request.clientId);
      if (!newest || this.closed) return;
      if (verdict === 'busy') {
        this.drop('probe-busy', newest.from);
        return;
      }
      if (verdict === 'in-use') {
        this.opts.logger.warn('address in use, skipped', { address: formatIpv4(address), mac: request.mac });
      }
      this.process(newest.request, newest.from, address);
    });
    return true;
  }

  /** Whether this OFFER's address must be probed before it is offered (or, with Rapid Commit, bound). */
  private needsProbe(request: DhcpRequest, result: CoreResult, probed: number | undefined): boolean {
    const conflicts = this.opts.conflicts;
    if (!conflicts || this.opts.probeOffers === false || result.outcome !== 'offer' || !result.reply) return false;
    const address = result.reply.packet.yiaddr >>> 0;
    if (address === 0 || address === probed) return false;
    if (this.opts.core.leases?.getByClient(request.clientId)?.address === address) return false;
    return conflicts.cached(address) === undefined;
  }

  /**
   * Probes a declined address afresh (a cached "free" from the offer's probe says nothing about now), then hands the
   * DECLINE back to the core with the verdict. 'skipped' and 'busy' (ping failed, probe queue full) confirm nothing.
   */
  private verifyDecline(request: DhcpRequest, from: string, address: number, alreadyGiven: HandleOptions['declineVerdict']): void {
    const conflicts = this.opts.conflicts;
    if (alreadyGiven !== undefined || !conflicts) {
      // no detector (or a core asking twice): nothing can confirm the claim
      if (alreadyGiven === undefined) this.process(request, from, undefined, 'unconfirmed');
      return;
    }
    if (this.pendingDeclines.has(request.clientId)) return;
    this.pendingDeclines.add(request.clientId);
    void conflicts.check(address, request.mac, { fresh: true }).then((verdict) => {
      this.pendingDeclines.delete(request.clientId);
      if (this.closed) return;
      const confirmed = verdict === 'in-use';
      if (confirmed) this.opts.logger.warn('declined address confirmed in use', { address: formatIpv4(address), mac: request.mac });
      this.process(request, from, undefined, confirmed ? 'confirmed' : 'unconfirmed');
    });
  }

  /** maxSize: the client's option 57 (whole IP datagram), which the encoder respects. */
  private send(result: CoreResult, maxSize: number): void {
    const reply = result.reply;
    if (!reply || this.closed) return;
    const type = reply.packet.options.get(DhcpOption.MESSAGE_TYPE)?.[0] ?? 0;
    const name = MESSAGE_NAMES[type] ?? `type-${type}`;
    let bytes: Buffer;
    try {
      bytes = encodeDhcpPacket(reply.packet, maxSize);
    } catch (err) {
      this.counters.sendFailures++;
      this.opts.logger.error('cannot encode DHCP reply', { error: (err as Error).message });
      return;
    }
    const target = this.targetOf(reply.destination);
    if (!target) return;
    this.opts.socket.send(bytes, target.port, target.address, (err) => {
      if (err) {
        this.counters.sendFailures++;
        this.opts.logger.warnLimited('dhcp:send', 'cannot send DHCP reply', { error: err.message, to: target.address });
        return;
      }
      bump(this.counters.sent, name);
      if (type === 5) ackChannel.publish({ address: formatIpv4(reply.packet.yiaddr), mac: reply.packet.chaddr });
    });
  }

  private targetOf(destination: ReplyDestination): { address: string; port: number } | undefined {
    switch (destination.kind) {
      case 'broadcast':
        return { address: '255.255.255.255', port: destination.port };
      case 'unicast-new': {
        const address = formatIpv4(destination.address);
        try {
          this.opts.setNeighbour(this.opts.bridge, address, destination.mac);
        } catch (err) {
          // Without the neighbour entry the kernel would ARP for an address nobody holds yet: broadcast instead.
          this.opts.logger.warnLimited('dhcp:neighbour', 'cannot seed neighbour entry; broadcasting reply', { error: (err as Error).message });
          return { address: '255.255.255.255', port: destination.port };
        }
        return { address, port: destination.port };
      }
      case 'unicast':
        return { address: formatIpv4(destination.address), port: destination.port };
    }
  }
}
