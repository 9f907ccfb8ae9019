/**
 * One read transfer (RFC 1350 with RFC 2347 OACK and RFC 7440 windows), on its own socket (the server's transfer
 * id, an ephemeral port as RFC 1350 §4 requires), connected to the one client address and port it serves: another
 * source's packet never reaches it (the kernel answers it with ICMP port unreachable instead of RFC 1350's ERROR 5).
 *
 * Sending: a window of up to `windowSize` DATA blocks after the last acknowledged block, then wait. An ACK of a block
 * in the window moves the window to just after it (an ACK short of the window's end is how a client reports a lost
 * block, RFC 7440 §4); an ACK of a block already acknowledged is ignored, never answered with a retransmission
 * (the Sorcerer's Apprentice bug, RFC 1123 §4.2.3.1). With nothing acknowledged within the timeout the window is sent
 * again, at most `maxRetries` times, then the transfer gives up. Block numbers wrap from 65535 to 0, as tftp-hpa and
 * iPXE expect for files over 32 MB at 512-byte blocks.
 */
import type dgram from 'node:dgram';
import { decodeTftpPacket, encodeTftpPacket, TftpDecodeError, TftpErrorCode, TftpOpcode, type TftpPacket } from './codec.js';
import type { BlockStream } from './files.js';

export type TransferResult =
  | 'complete'
  | 'timeout'
  | 'client-error'
  | 'illegal-operation'
  | 'read-failed'
  | 'send-failed'
  | 'closed';

export interface TransferEnd {
  result: TransferResult;
  /** payload bytes the client acknowledged */
  bytes: number;
  /** DATA packets sent again after a timeout or a client's short ACK */
  retransmits: number;
  /** the client's message when it ended the transfer with an ERROR */
  clientMessage?: string;
}

export interface TransferOptions {
  /** connected to the client (the kernel then keeps other sources away; they get ICMP port unreachable) */
  socket: dgram.Socket;
  client: { address: string; port: number };
  blocks: BlockStream;
  blockSize: number;
  windowSize: number;
  timeoutMs: number;
  maxRetries: number;
  /** options to acknowledge first; the client's ACK 0 then starts the data */
  oack: Map<string, string> | undefined;
  onEnd(end: TransferEnd): void;
  /** a datagram that could not be used, for counters (stray: from another transfer id) */
  onDrop(reason: string): void;
}

export class ReadTransfer {
  /** last block (absolute, 1-based) the client acknowledged; 0 before the first */
  private acked = 0;
  /** highest block sent so far */
  private sent = 0;
  /** the final block's number once read (the first shorter than blockSize) */
  private last: number | undefined;
  private waitingForOackAck: boolean;
  private retries = 0;
  private retransmits = 0;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;
  /** a window is being read from the file; ACKs meanwhile still count, the send that follows uses the newest */
  private sending = false;
  private resendWanted = false;
  /** length of the final block, once read */
  private lastLength = 0;
  /** sends handed to the socket whose callback has not run yet */
  private inFlight = 0;
  /** one callback for every send (no closure per packet on the hot path) */
  private readonly onSent = (err: Error | null): void => {
    this.inFlight--;
    if (err) this.opts.onDrop('send-failed');
    if (this.ended) this.closeWhenDrained();
  };

  constructor(private readonly opts: TransferOptions) {
    this.waitingForOackAck = opts.oack !== undefined;
    opts.socket.on('message', (msg, rinfo) => this.receive(msg, rinfo));
    opts.socket.on('error', () => this.finish('send-failed'));
  }

  start(): void {
    if (this.opts.oack) {
      this.send({ op: 'oack', options: this.opts.oack });
      this.arm();
    } else void this.sendWindow();
  }

  /** Ends the transfer now (daemon stopping); the client is told. */
  abort(): void {
    if (this.ended) return;
    this.sendError(TftpErrorCode.NOT_DEFINED, 'server shutting down');
    this.finish('closed');
  }

  private receive(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.ended) return;
    // the socket is connected to the client, so the kernel delivers nothing else; kept as a guard
    if (rinfo.address !== this.opts.client.address || rinfo.port !== this.opts.client.port) {
      this.opts.onDrop('unknown-tid');
      return;
    }
    let packet: TftpPacket;
    try {
      packet = decodeTftpPacket(msg);
    } catch (err) {
      this.opts.onDrop(err instanceof TftpDecodeError ? `decode:${err.reason}` : 'decode:internal-error');
      return;
    }
    switch (packet.op) {
      case 'ack':
        this.onAck(packet.block);
        return;
      case 'error':
        // the client gave up (or refused our OACK with code 8): nothing to answer
        this.finish('client-error', packet.message.slice(0, 200));
        return;
      default:
        this.sendError(TftpErrorCode.ILLEGAL_OPERATION, 'only ACK or ERROR expected');
        this.finish('illegal-operation');
    }
  }

  private onAck(block: number): void {
    if (this.waitingForOackAck) {
      if (block !== 0) return this.opts.onDrop('unexpected-ack');
      this.waitingForOackAck = false;
      this.retries = 0;
      void this.sendWindow();
      return;
    }
    // which outstanding block this 16-bit number names, counting forward from the last one acknowledged
    const delta = (block - this.acked) & 0xffff;
    if (delta === 0 || delta > this.sent - this.acked) {
      this.opts.onDrop(delta === 0 ? 'duplicate-ack' : 'unexpected-ack');
      return;
    }
    this.acked += delta;
    this.retries = 0;
    if (this.last !== undefined && this.acked >= this.last) {
      this.finish('complete');
      return;
    }
    // a short ACK (RFC 7440 §4): the client lost a block and resumes after the one it names
    if (this.acked < this.sent) this.retransmits += this.sent - this.acked;
    void this.sendWindow();
  }

  /**
   * Sends the window after the last acknowledged block. The hot path is synchronous: the window is usually in the
   * stream's buffer already; only when a read from the file is due does it wait (and an ACK arriving meanwhile moves
   * the window, so the loop sends from the newest position).
   */
  private async sendWindow(): Promise<void> {
    if (this.sending) {
      this.resendWanted = true;
      return;
    }
    const buffered = this.opts.blocks.bufferedBlocks(this.acked + 1, this.acked + this.opts.windowSize);
    if (buffered) return this.sendBlocks(this.acked + 1, buffered);
    this.sending = true;
    try {
      do {
        this.resendWanted = false;
        const from = this.acked + 1;
        let blocks: Buffer[];
        try {
          blocks = await this.opts.blocks.blocks(from, this.acked + this.opts.windowSize);
        } catch {
          if (this.ended) return;
          this.sendError(TftpErrorCode.NOT_DEFINED, 'read error');
          this.finish('read-failed');
          return;
        }
        if (this.ended) return;
        if (this.resendWanted) continue; // an ACK arrived while reading: the window moved
        this.sendBlocks(from, blocks);
      } while (this.resendWanted && !this.ended);
    } finally {
      this.sending = false;
    }
  }

  private sendBlocks(from: number, blocks: Buffer[]): void {
    for (let i = 0; i < blocks.length; i++) {
      const data = blocks[i]!;
      const number = from + i;
      if (data.length < this.opts.blockSize) {
        this.last = number;
        this.lastLength = data.length;
      }
      // header and payload as two pieces of one datagram (sendmsg with an iovec): the file's bytes are not copied
      const header = Buffer.allocUnsafe(4);
      header.writeUInt32BE((TftpOpcode.DATA << 16) | (number & 0xffff), 0);
      this.sendRaw([header, data]);
    }
    this.sent = Math.max(this.sent, from + blocks.length - 1);
    this.arm();
  }

  /** (Re)starts the retransmission timer; refresh() reuses the one timer of the transfer. */
  private arm(): void {
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.onTimeout(), this.opts.timeoutMs);
  }

  private onTimeout(): void {
    if (this.ended) return;
    if (++this.retries > this.opts.maxRetries) {
      this.sendError(TftpErrorCode.NOT_DEFINED, 'timed out');
      this.finish('timeout');
      return;
    }
    if (this.waitingForOackAck) {
      this.send({ op: 'oack', options: this.opts.oack! });
      this.arm();
      return;
    }
    this.retransmits += this.sent - this.acked;
    void this.sendWindow();
  }

  private send(packet: TftpPacket): void {
    this.sendRaw(encodeTftpPacket(packet));
  }

  /** To the client, on the connected socket. */
  private sendRaw(data: Buffer | Buffer[]): void {
    try {
      this.inFlight++;
      this.opts.socket.send(data, this.onSent);
    } catch {
      this.inFlight--;
      this.opts.onDrop('send-failed');
    }
  }

  private sendError(code: number, message: string): void {
    this.send({ op: 'error', code, message });
  }

  /** Ends once: the socket closes when its last send has left (an ERROR queued just before must still go out). */
  private finish(result: TransferResult, clientMessage?: string): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    const complete = this.last !== undefined && this.acked >= this.last;
    const bytes = complete ? (this.last! - 1) * this.opts.blockSize + this.lastLength : this.acked * this.opts.blockSize;
    this.closeWhenDrained();
    this.opts.onEnd({ result, bytes, retransmits: this.retransmits, ...(clientMessage !== undefined ? { clientMessage } : {}) });
  }

  private closeWhenDrained(): void {
    if (this.inFlight > 0) return;
    try {
      this.opts.socket.close();
    } catch {
      /* already closed */
    }
  }
}
