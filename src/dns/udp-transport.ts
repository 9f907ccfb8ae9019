/**
 * How the DNS server takes UDP queries in and sends answers out (and, since issue 18, the DHCP server its requests
 * and replies: the same batching, a `label` for its log lines). Two implementations of one small interface:
 *
 * - BatchUdpTransport: the daemon's. The addon reads with recvmmsg() and calls JS once per batch; answers given
 *   while a batch is delivered leave together with one sendmmsg(). Node's dgram costs a syscall, a JS callback and
 *   several objects per datagram each way, which made cache hits cost natd twice dnsmasq's CPU (bench/PROFILE.md).
 * - DgramUdpTransport: any node:dgram socket (unit tests, sockets natd did not open itself).
 *
 * Addresses are IPv4 numbers on these IPv4 sockets; a source that is not IPv4 arrives as NOT_IPV4. natd's DNS on the
 * bridge's IPv6 gateway (issue 14) has its own transport, udp6-transport.ts, whose clients are IPv6 keys
 * (client-address.ts).
 */
import type dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import { errnoName, udpBatch, type UdpReceiverHandle } from '../native.js';
import { formatIpv4, NOT_IPV4, parseIpv4 } from '../net/ipv4.js';
import { BatchSender } from './batch-sender.js';
import type { ClientAddress } from './client-address.js';

export interface UdpHandlers {
  /** one datagram; `message` is valid during the call only (it may be a view of a reused receive buffer) */
  message(message: Buffer, address: ClientAddress, port: number): void;
  /**
   * issue 18: the same datagram in place, bytes [start, start + length) of the transport's receive slab, valid
   * during the call only; a batch transport calls this instead of message() when the handlers have it (no Buffer
   * view per datagram). Optional: other handlers and transports use message().
   */
  messageAt?(slab: Buffer, start: number, length: number, address: ClientAddress, port: number): void;
  /** a datagram was dropped before it reached `message` (too large for a receive slot) */
  dropped(): void;
  /** a socket error or an answer that could not be sent; the transport carries on */
  warn(what: string, detail: string): void;
  /** `count` datagrams given to reply() could not be sent (also told through warn) */
  sendFailed?(count: number): void;
}

export interface DnsUdpTransport {
  start(handlers: UdpHandlers): void;
  /** Sends an answer; answers given from inside `message` may be held until the batch is delivered. */
  reply(message: Buffer, address: ClientAddress, port: number): void;
  /** Stops receiving and closes the socket. Idempotent. */
  close(): Promise<void>;
}

/** The interface under its protocol-neutral name, for the DHCP server. */
export type UdpPort = DnsUdpTransport;

/**
 * Largest datagram accepted: queries are a header, one question and an OPT record, far below this; DHCP requests are
 * a few hundred bytes (a larger one is counted as dropped, 'too-large').
 */
const SLOT_SIZE = 2048;
/** Datagrams per recvmmsg()/sendmmsg(). */
const BATCH = 64;
const TRUNCATED = 0xffff_ffff;

export class BatchUdpTransport implements DnsUdpTransport {
  // allocUnsafeSlow: a buffer of its own (not a slice of Node's shared pool), as the addon holds on to it
  private readonly slab = Buffer.allocUnsafeSlow(SLOT_SIZE * BATCH);
  private readonly meta = new Uint32Array(3 * BATCH);
  /** answers: address, port per datagram; one sendmmsg per receive batch or per microtask run (batch-sender.ts) */
  private readonly sender = new BatchSender({
    stride: 2,
    batch: BATCH,
    send: (datagrams, meta, count) => udpBatch.send(this.fd, datagrams, meta, count),
    failed: (count, why) => {
      this.handlers?.sendFailed?.(count);
      this.handlers?.warn(`${this.label.toLowerCase()}-udp-send`, `${count} ${this.label} UDP answer(s) not sent: ${'errno' in why ? errnoName(why.errno) : String(why.error)}`);
    },
  });
  private handlers: UdpHandlers | undefined;
  private receiver: UdpReceiverHandle | undefined;
  private closed = false;

  /**
   * `fd`: a bound UDP socket (openDeviceUdpSocket); the transport owns it from here on and closes it. `label` names
   * the socket in log lines (the DHCP server uses this transport too).
   */
  constructor(
    /** issue 18: public for the DHCP transport, whose lease journal sends ACKs on it from its writer thread */
    readonly fd: number,
    private readonly label = 'DNS',
  ) {}

  start(handlers: UdpHandlers): void {
    if (this.receiver || this.closed) return;
    this.handlers = handlers;
    this.receiver = udpBatch.start(this.fd, this.slab, this.meta, SLOT_SIZE, this.onBatch);
  }

  reply(message: Buffer, address: ClientAddress, port: number): void {
    if (this.closed || typeof address !== 'number' || address === NOT_IPV4 || port === 0) return;
    const { sender } = this;
    const at = sender.metaOffset();
    sender.meta[at] = address;
    sender.meta[at + 1] = port;
    sender.push(message);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.sender.close();
      if (this.receiver) udpBatch.stop(this.receiver);
      else closeSync(this.fd);
    }
    return Promise.resolve();
  }

  private readonly onBatch = (count: number, rearmed?: boolean): void => {
    const handlers = this.handlers!;
    if (count < 0) {
      handlers.warn(`${this.label.toLowerCase()}-udp-poll`, `${this.label} UDP socket reported ${errnoName(-count)}; ${rearmed ? 'still receiving' : 'receiving STOPPED after repeated errors'}`);
      return;
    }
    const { meta, slab } = this;
    this.sender.beginBatch();
    try {
      for (let i = 0; i < count && !this.closed; i++) {
        const length = meta[3 * i]!;
        if (length === TRUNCATED) {
          handlers.dropped();
          continue;
        }
        const start = i * SLOT_SIZE;
        // in place or a view, not a copy: most queries are answered at once; the server copies the few it must keep
        if (handlers.messageAt) handlers.messageAt(slab, start, length, meta[3 * i + 1]!, meta[3 * i + 2]!);
        else handlers.message(slab.subarray(start, start + length), meta[3 * i + 1]!, meta[3 * i + 2]!);
      }
    } finally {
      this.sender.endBatch();
    }
  };
}

export class DgramUdpTransport implements DnsUdpTransport {
  private closing: Promise<void> | undefined;

  constructor(private readonly socket: dgram.Socket, private readonly label = 'DNS') {}

  start(handlers: UdpHandlers): void {
    this.socket.on('message', (message, rinfo) => {
      // an IPv4 client seen through a dual-stack socket appears as ::ffff:a.b.c.d
      const text = rinfo.address.startsWith('::ffff:') ? rinfo.address.slice(7) : rinfo.address;
      handlers.message(message, parseIpv4(text) ?? NOT_IPV4, rinfo.port);
    });
    const tag = this.label.toLowerCase();
    this.socket.on('error', (err) => handlers.warn(`${tag}-udp`, `${this.label} UDP socket error, ignoring: ${String(err)}`));
    this.onSendError = (err) => {
      if (!err) return;
      handlers.sendFailed?.(1);
      handlers.warn(`${tag}-udp-send`, `${this.label} UDP answer not sent: ${String(err)}`);
    };
  }

  reply(message: Buffer, address: ClientAddress, port: number): void {
    if (this.closing || typeof address !== 'number' || address === NOT_IPV4 || port === 0) return;
    try {
      this.socket.send(message, port, formatIpv4(address), this.onSendError);
    } catch (err) {
      this.onSendError(err as Error); // closed under us
    }
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
    return this.closing;
  }

  private onSendError: (err: Error | null) => void = () => {};
}
