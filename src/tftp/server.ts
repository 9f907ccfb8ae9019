/**
 * natd's read-only TFTP server (dnsmasq's --enable-tftp): read requests on port 69 of the bridge address, each
 * transfer on a socket of its own (an ephemeral port, RFC 1350 §4), files from one root directory only (files.ts).
 *
 * Write requests are refused with an ERROR (access violation). At most `maxTransfers` transfers run at once
 * (dnsmasq's --tftp-max), requests beyond get an ERROR "server busy" at once so the client can retry elsewhere or
 * later. A request repeated by a client whose transfer is already starting or running is ignored (its transfer's own
 * retransmissions cover the loss). Errors for refused requests leave from port 69 itself, so a refused request costs
 * no socket. Anything else sent to port 69 (stray ACKs, garbage) is counted and dropped: port 69 is never a
 * reflector. Nothing a guest sends stops the server; every drop has a reason that becomes a counter.
 */
import type dgram from 'node:dgram';
import diagnostics from 'node:diagnostics_channel';
import type { Logger } from '../log.js';
import { decodeTftpPacket, encodeTftpPacket, TftpDecodeError, TftpErrorCode, type TftpPacket, type TftpRequest } from './codec.js';
import { BlockStream, openInRoot, type OpenedFile, type OpenRefusal } from './files.js';
import { DEFAULT_LIMITS, negotiate, type NegotiationLimits } from './options.js';
import { ReadTransfer, type TransferEnd } from './transfer.js';

const transferChannel = diagnostics.channel('natd:tftp:transfer');

/** dnsmasq's default for --tftp-max */
export const DEFAULT_MAX_TRANSFERS = 50;
/** Retransmissions of one window before a transfer gives up (about 6 timeouts in all, as tftp-hpa). */
const MAX_RETRIES = 5;

export interface TftpServerOptions {
  /** port 69 on the bridge address (bound to the bridge) */
  socket: dgram.Socket;
  /** a new socket on an ephemeral port of the same address, for one transfer */
  openTransferSocket(): Promise<dgram.Socket>;
  /** the root's real path (fs.realpath) */
  root: string;
  maxTransfers?: number;
  /** transfers one client address may run at once (default: a fifth of maxTransfers, at least 1) */
  maxPerClient?: number;
  limits?: NegotiationLimits;
  /** retransmissions of one window before a transfer gives up (default 5) */
  maxRetries?: number;
  /** retransmission timeout when the client names none (default 1 s; tests shorten it) */
  defaultTimeoutMs?: number;
  logger: Logger;
  now?: () => number;
}

export interface TftpStats {
  /** read requests accepted for a transfer */
  requests: number;
  /** transfers running now (including those still opening their file) */
  active: number;
  /** ended transfers by result: complete, timeout, client-error, … */
  transfers: Record<string, number>;
  /** payload bytes acknowledged by clients */
  bytesSent: number;
  /** DATA blocks sent again */
  retransmits: number;
  /** requests refused with an ERROR, by reason (write-request, busy, not-found, dot-dot, outside-root, …) */
  refused: Record<string, number>;
  /** datagrams dropped, by reason (decode:<slug>, not-a-request, duplicate-request, unknown-tid, …) */
  dropped: Record<string, number>;
}

const REFUSAL_ERRORS: Record<OpenRefusal | 'write-request' | 'busy' | 'client-busy' | 'socket-failed', [number, string]> = {
  'write-request': [TftpErrorCode.ACCESS_VIOLATION, 'read-only server: write requests are refused'],
  busy: [TftpErrorCode.NOT_DEFINED, 'server busy, too many transfers; try again later'],
  'client-busy': [TftpErrorCode.NOT_DEFINED, 'too many transfers from this address; try again later'],
  'socket-failed': [TftpErrorCode.NOT_DEFINED, 'no transfer socket available'],
  'bad-name': [TftpErrorCode.ACCESS_VIOLATION, 'invalid file name'],
  'absolute-path': [TftpErrorCode.ACCESS_VIOLATION, 'absolute paths are refused; name a file relative to the TFTP root'],
  'dot-dot': [TftpErrorCode.ACCESS_VIOLATION, "'..' is refused"],
  'not-found': [TftpErrorCode.FILE_NOT_FOUND, 'file not found'],
  'outside-root': [TftpErrorCode.ACCESS_VIOLATION, 'access violation'],
  'not-regular': [TftpErrorCode.ACCESS_VIOLATION, 'not a regular file'],
  'not-world-readable': [TftpErrorCode.ACCESS_VIOLATION, 'access violation'],
  'open-failed': [TftpErrorCode.ACCESS_VIOLATION, 'cannot open file'],
};

function bump(counter: Record<string, number>, key: string, by = 1): void {
  counter[key] = (counter[key] ?? 0) + by;
}

export class TftpServer {
  private readonly maxTransfers: number;
  private readonly maxPerClient: number;
  /** transfers (running or opening) per client address: one guest cannot take every slot */
  private readonly perClient = new Map<string, number>();
  private readonly limits: NegotiationLimits;
  private readonly now: () => number;
  /** client "address:port" → its transfer (undefined while the file and socket are being opened) */
  private readonly transfers = new Map<string, ReadTransfer | undefined>();
  private closed = false;
  private readonly counters: Omit<TftpStats, 'active'> = { requests: 0, transfers: {}, bytesSent: 0, retransmits: 0, refused: {}, dropped: {} };

  constructor(private readonly opts: TftpServerOptions) {
    this.maxTransfers = opts.maxTransfers ?? DEFAULT_MAX_TRANSFERS;
    this.maxPerClient = opts.maxPerClient ?? Math.max(1, Math.ceil(this.maxTransfers / 5));
    this.limits = opts.limits ?? DEFAULT_LIMITS;
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    this.opts.socket.on('message', (msg, rinfo) => {
      try {
        this.onRequest(msg, rinfo);
      } catch (err) {
        // unreachable by design (the fuzz test feeds the parser); a bad packet must never stop the server
        this.drop('internal-error', rinfo);
        this.opts.logger.error('TFTP request handling threw, packet dropped', { error: (err as Error).stack });
      }
    });
    this.opts.socket.on('error', (err) => this.opts.logger.warnLimited('tftp-socket', 'TFTP socket error', { error: err.message }));
  }

  stats(): TftpStats {
    return {
      ...this.counters,
      active: this.transfers.size,
      transfers: { ...this.counters.transfers },
      refused: { ...this.counters.refused },
      dropped: { ...this.counters.dropped },
    };
  }

  /** Stops listening and ends every transfer (each client gets an ERROR). Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const transfer of this.transfers.values()) transfer?.abort();
    await new Promise<void>((resolve) => {
      try {
        this.opts.socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }

  private onRequest(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.closed) return;
    if (rinfo.port === 0) return this.drop('bad-source', rinfo);
    let packet: TftpPacket;
    try {
      packet = decodeTftpPacket(msg);
    } catch (err) {
      return this.drop(err instanceof TftpDecodeError ? `decode:${err.reason}` : 'decode:internal-error', rinfo);
    }
    if (packet.op === 'wrq') return this.refuse('write-request', rinfo, packet.filename);
    if (packet.op !== 'rrq') return this.drop('not-a-request', rinfo);
    const key = `${rinfo.address}:${rinfo.port}`;
    // a client repeating its request (our first answer was lost or slow) is normal: counted, not logged
    if (this.transfers.has(key)) return void bump(this.counters.dropped, 'duplicate-request');
    if (this.transfers.size >= this.maxTransfers) return this.refuse('busy', rinfo, packet.filename);
    const fromClient = this.perClient.get(rinfo.address) ?? 0;
    if (fromClient >= this.maxPerClient) return this.refuse('client-busy', rinfo, packet.filename);
    this.perClient.set(rinfo.address, fromClient + 1);
    this.transfers.set(key, undefined);
    void this.begin(key, packet, rinfo);
  }

  /** A transfer (or its opening) ended: its slot is free. */
  private release(key: string, address: string): void {
    this.transfers.delete(key);
    const left = (this.perClient.get(address) ?? 1) - 1;
    if (left > 0) this.perClient.set(address, left);
    else this.perClient.delete(address);
  }

  private async begin(key: string, request: TftpRequest, client: dgram.RemoteInfo): Promise<void> {
    const started = this.now();
    const opened = await openInRoot(this.opts.root, request.filename);
    if (!opened.ok) {
      this.release(key, client.address);
      this.refuse(opened.reason, client, request.filename);
      return;
    }
    const { file } = opened;
    const socket = await this.transferSocket(client, request.filename);
    if (!socket || this.closed) {
      socket?.close();
      await file.handle.close().catch(() => undefined);
      this.release(key, client.address);
      return;
    }
    this.startTransfer(key, request, client, socket, file, started);
  }

  /**
   * RFC 1350 §4: the transfer's socket talks to this client only. Connected, the kernel drops other sources (they
   * get an ICMP port unreachable rather than a TFTP ERROR 5) and sends need no address lookup. Undefined (logged,
   * and refused to the client when the socket could not be opened) when that fails.
   */
  private async transferSocket(client: dgram.RemoteInfo, filename: string): Promise<dgram.Socket | undefined> {
    let socket: dgram.Socket;
    try {
      if (this.closed) throw new Error('closed');
      socket = await this.opts.openTransferSocket();
    } catch (err) {
      if (!this.closed) {
        this.opts.logger.warnLimited('tftp-socket-open', 'cannot open a TFTP transfer socket', { error: (err as Error).message });
        this.refuse('socket-failed', client, filename);
      }
      return undefined;
    }
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.connect(client.port, client.address, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      return socket;
    } catch (err) {
      socket.close();
      this.opts.logger.warnLimited('tftp-socket-connect', 'cannot connect a TFTP transfer socket', { error: (err as Error).message });
      return undefined;
    }
  }

  private startTransfer(key: string, request: TftpRequest, client: dgram.RemoteInfo, socket: dgram.Socket, file: OpenedFile, started: number): void {
    const netascii = request.mode !== 'octet';
    const negotiated = negotiate(request.options, netascii ? undefined : file.size, this.limits);
    this.counters.requests++;
    const transfer = new ReadTransfer({
      socket,
      client: { address: client.address, port: client.port },
      blocks: new BlockStream(file.handle, file.size, negotiated.blockSize, netascii),
      blockSize: negotiated.blockSize,
      windowSize: negotiated.windowSize,
      timeoutMs: negotiated.oack?.has('timeout') ? negotiated.timeoutMs : (this.opts.defaultTimeoutMs ?? negotiated.timeoutMs),
      maxRetries: this.opts.maxRetries ?? MAX_RETRIES,
      oack: negotiated.oack,
      onDrop: (reason) => bump(this.counters.dropped, reason),
      onEnd: (end) => {
        this.release(key, client.address);
        void file.handle.close().catch(() => undefined);
        this.ended(end, {
          client: key, file: file.name, size: file.size, mode: request.mode, blockSize: negotiated.blockSize, windowSize: negotiated.windowSize,
          options: negotiated.oack ? Object.fromEntries(negotiated.oack) : {}, ms: this.now() - started,
        });
      },
    });
    this.transfers.set(key, transfer);
    transfer.start();
  }

  /** `options`: what the OACK acknowledged */
  private ended(end: TransferEnd, detail: { client: string; file: string; size: number; mode: string; blockSize: number; windowSize: number; options: Record<string, string>; ms: number }): void {
    bump(this.counters.transfers, end.result);
    this.counters.bytesSent += end.bytes;
    this.counters.retransmits += end.retransmits;
    const fields = { ...detail, result: end.result, bytes: end.bytes, retransmits: end.retransmits, ...(end.clientMessage ? { clientMessage: end.clientMessage } : {}) };
    this.opts.logger.debug('TFTP transfer ended', fields);
    if (transferChannel.hasSubscribers) transferChannel.publish(fields);
  }

  /** Answers a request with an ERROR from port 69 (no socket spent on a refusal). */
  private refuse(reason: keyof typeof REFUSAL_ERRORS, client: dgram.RemoteInfo, filename: string): void {
    bump(this.counters.refused, reason);
    const [code, message] = REFUSAL_ERRORS[reason];
    this.opts.logger.debug('TFTP request refused', { client: `${client.address}:${client.port}`, file: filename.slice(0, 255), reason });
    try {
      this.opts.socket.send(encodeTftpPacket({ op: 'error', code, message }), client.port, client.address, () => undefined);
    } catch {
      /* socket closing */
    }
  }

  private drop(reason: string, from: dgram.RemoteInfo): void {
    bump(this.counters.dropped, reason);
    this.opts.logger.warnLimited(`tftp-drop-${reason}`, 'TFTP datagram dropped', { reason, from: from.address });
  }
}
