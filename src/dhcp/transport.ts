/**
 * The thin I/O shell around the pure DHCP core: socket → parse → core → persist → reply.
 * Nothing a peer sends can stop it: every failure is counted, logged rate-limited, and the packet dropped.
 * An ACK leaves only after the lease change is on disk (the store's commit resolves after fdatasync).
 */
import type dgram from 'node:dgram';
import diagnostics from 'node:diagnostics_channel';
import type { Logger } from '../log.js';
import { formatIpv4 } from '../net/ipv4.js';
import { encodeDhcpPacket } from './codec.js';
import { decodeAndParse } from './request.js';
import { DhcpOption, type CoreResult, type DhcpRequest, type LeaseChange, type ReplyDestination } from './types.js';

const ackChannel = diagnostics.channel('natd:dhcp:ack');
const dropChannel = diagnostics.channel('natd:dhcp:drop');

const MESSAGE_NAMES: Record<number, string> = {
  1: 'discover', 2: 'offer', 3: 'request', 4: 'decline', 5: 'ack', 6: 'nak', 7: 'release', 8: 'inform',
};

export interface DhcpCoreLike {
  handle(request: DhcpRequest, now: number): CoreResult;
}

export interface DhcpTransportOptions {
  socket: dgram.Socket;
  bridge: string;
  core: DhcpCoreLike;
  /** resolves once the changes are durable */
  commit(changes: LeaseChange[]): Promise<void>;
  /** called after a commit succeeded (DNS names follow leases) */
  onCommitted?(changes: LeaseChange[]): void;
  /** seeds the neighbour table before a unicast to a client that has no address yet */
  setNeighbour(device: string, address: string, mac: string): void;
  logger: Logger;
  now?: () => number;
}

export interface DhcpStats {
  received: number;
  dropped: Record<string, number>;
  sent: Record<string, number>;
  outcomes: Record<string, number>;
  commitFailures: number;
  sendFailures: number;
}

function bump(counter: Record<string, number>, key: string): void {
  counter[key] = (counter[key] ?? 0) + 1;
}

export class DhcpTransport {
  private readonly counters: DhcpStats = { received: 0, dropped: {}, sent: {}, outcomes: {}, commitFailures: 0, sendFailures: 0 };
  private closed = false;
  private readonly now: () => number;

  constructor(private readonly opts: DhcpTransportOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.opts.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo.address));
    this.opts.socket.on('error', (err) => this.opts.logger.warnLimited('dhcp:socket', 'DHCP socket error, ignoring', { error: err.message }));
  }

  stats(): DhcpStats {
    return structuredClone(this.counters);
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
    let result: CoreResult;
    try {
      result = this.opts.core.handle(parsed.request, this.now());
    } catch (err) {
      // A core bug must not take the server down with it; the fuzz tests are there so this never fires.
      this.drop('core-exception', from);
      this.opts.logger.error('DHCP core threw, packet dropped', { error: (err as Error).stack });
      return;
    }
    bump(this.counters.outcomes, result.outcome);
    if (result.outcome.startsWith('ignore:')) {
      this.opts.logger.warnLimited(`dhcp:${result.outcome}`, 'DHCP request ignored', { outcome: result.outcome, mac: parsed.request.mac });
    }
    const maxSize = parsed.request.maxMessageSize;
    if (result.changes.length === 0) {
      this.send(result, maxSize);
      return;
    }
    this.opts.commit(result.changes).then(
      () => {
        this.opts.onCommitted?.(result.changes);
        this.send(result, maxSize);
      },
      (err: unknown) => {
        // Not durable, so not acknowledged: the client retries and we answer once the disk works again.
        this.counters.commitFailures++;
        this.opts.logger.warnLimited('dhcp:commit', 'cannot persist lease change; reply withheld', { error: (err as Error).message });
      },
    );
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
      case 'relay':
        return { address: formatIpv4(destination.address), port: destination.port };
    }
  }
}
