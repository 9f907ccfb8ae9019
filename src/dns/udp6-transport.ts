/**
 * issue 14: natd's DNS on the bridge's IPv6 gateway over UDP: the batched recvmmsg()/sendmmsg() transport of
 * udp-transport.ts for an IPv6 socket (the addon sees the socket's family). Clients are IPv6 keys (client-address.ts):
 * 32 hex digits built from the 4 address words the addon writes per datagram, turned back into words to answer.
 * Same contract as BatchUdpTransport: a `message` view is valid during the call only; answers given while a batch
 * is delivered leave together, and so do answers given inside batch() (DHCPv6: the Replies one journal sync
 * released). `label` names the socket in log lines (DNS, DHCPv6).
 */
import { closeSync } from 'node:fs';
import { errnoName, udpBatch, type UdpReceiverHandle } from '../native.js';
import { BatchSender } from './batch-sender.js';
import { v6ClientFromWords, v6ClientWords, type ClientAddress } from './client-address.js';
import type { DnsUdpTransport, UdpHandlers } from './udp-transport.js';

const SLOT_SIZE = 2048;
const BATCH = 64;
const TRUNCATED = 0xffff_ffff;
/** receive meta words per datagram: length, port, address (4 words) */
const IN_STRIDE = 6;
/** send meta words per datagram: address (4 words), port */
const OUT_STRIDE = 5;

export class BatchUdp6Transport implements DnsUdpTransport {
  private readonly slab = Buffer.allocUnsafeSlow(SLOT_SIZE * BATCH);
  private readonly meta = new Uint32Array(IN_STRIDE * BATCH);
  /** answers, as BatchUdpTransport's (batch-sender.ts) */
  private readonly sender = new BatchSender({
    stride: OUT_STRIDE,
    batch: BATCH,
    send: (datagrams, meta, count) => udpBatch.send6(this.fd, datagrams, meta, count),
    failed: (count, why) => {
      this.handlers?.sendFailed?.(count);
      this.handlers?.warn(`${this.tag}-udp6-send`, `${count} ${this.label} UDP (IPv6) answer(s) not sent: ${'errno' in why ? errnoName(why.errno) : String(why.error)}`);
    },
  });
  private handlers: UdpHandlers | undefined;
  private receiver: UdpReceiverHandle | undefined;
  private closed = false;
  /** the last client's key and address words: a guest sends its queries from one address, so most datagrams
   * reuse them instead of building the key (and parsing it back for the answer) again */
  private lastKey = '';
  private readonly lastWords = new Uint32Array(4);

  /** `fd`: a bound IPv6 UDP socket (openDeviceUdpSocket with an IPv6 address); owned from here on. */
  constructor(private readonly fd: number, private readonly label = 'DNS') {}

  start(handlers: UdpHandlers): void {
    if (this.receiver || this.closed) return;
    this.handlers = handlers;
    this.receiver = udpBatch.start(this.fd, this.slab, this.meta, SLOT_SIZE, this.onBatch);
  }

  reply(message: Buffer, address: ClientAddress, port: number): void {
    if (this.closed || typeof address !== 'string' || address.length !== 32 || port === 0) return;
    const { sender } = this;
    const at = sender.metaOffset();
    if (address === this.lastKey) sender.meta.set(this.lastWords, at);
    else v6ClientWords(address, sender.meta, at);
    sender.meta[at + 4] = port;
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
      handlers.warn(`${this.tag}-udp6-poll`, `${this.label} UDP (IPv6) socket reported ${errnoName(-count)}; ${rearmed ? 'still receiving' : 'receiving STOPPED after repeated errors'}`);
      return;
    }
    const { meta, slab } = this;
    this.sender.beginBatch();
    try {
      for (let i = 0; i < count && !this.closed; i++) {
        const m = IN_STRIDE * i;
        const length = meta[m]!;
        if (length === TRUNCATED) {
          handlers.dropped();
          continue;
        }
        const start = i * SLOT_SIZE;
        if (handlers.messageAt) handlers.messageAt(slab, start, length, this.clientAt(m + 2), meta[m + 1]!);
        else handlers.message(slab.subarray(start, start + length), this.clientAt(m + 2), meta[m + 1]!);
      }
    } finally {
      this.sender.endBatch();
    }
  };

  private get tag(): string {
    return this.label.toLowerCase();
  }

  /** The client key of the address words at meta[at..at+3]. */
  private clientAt(at: number): string {
    const { meta, lastWords } = this;
    const w0 = meta[at]!, w1 = meta[at + 1]!, w2 = meta[at + 2]!, w3 = meta[at + 3]!;
    if (w3 === lastWords[3] && w2 === lastWords[2] && w1 === lastWords[1] && w0 === lastWords[0] && this.lastKey !== '') return this.lastKey;
    lastWords[0] = w0;
    lastWords[1] = w1;
    lastWords[2] = w2;
    lastWords[3] = w3;
    this.lastKey = v6ClientFromWords(w0, w1, w2, w3);
    return this.lastKey;
  }
}
