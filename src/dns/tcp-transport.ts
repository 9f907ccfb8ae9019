/**
 * How the DNS server takes queries over TCP (RFC 7766): accepts connections, frames messages, answers pipelined
 * queries as they complete, and bounds what one peer can hold.
 *
 * Guests are untrusted (issue 12), so what one client can take is bounded: its connections (maxPerClient, and all
 * of them together maxConnections, where an idle connection makes room for a new one), the queries one connection
 * has in flight (TCP_MAX_PIPELINED) and its unsent answers (reading stops above TCP_UNSENT_PAUSE_BYTES until the
 * peer reads; past TCP_UNSENT_CLOSE_BYTES the connection is closed). A connection with nothing in flight is closed
 * after idleMs without traffic.
 *
 * The transport decides nothing about queries: which peers may connect and what each message gets are the
 * server's (TcpHandlers). It owns the listening server it is given: close() closes it.
 */
import type net from 'node:net';
import type { LogFields } from '../log.js';
import { parseIpv4 } from '../net/ipv4.js';
import { clientFromText, formatClient, type ClientAddress } from './client-address.js';
import { truncateForUdp } from './answers.js';
import { encodeFrame, FrameDecoder, MAX_FRAME_MESSAGE } from './tcp-framing.js';

/** What the server answers one message: nothing (the connection is closed), an answer now, or one to come. */
export interface TcpAnswer {
  /** undefined: the message was not worth an answer; the connection is closed */
  response?: Buffer | Promise<Buffer>;
  /** the peer sent something that is not a DNS query, so the connection ends after the answer */
  endConnection: boolean;
}

export interface TcpHandlers {
  /** may a peer at this address (an IPv4 number, an IPv6 key, NOT_IPV4 if neither) connect? No: closed at once */
  accepts(client: ClientAddress): boolean;
  /** one message of an accepted connection; `message` is a view of the received bytes, valid during the call */
  message(message: Buffer, client: ClientAddress): TcpAnswer;
  /** a frame too short to hold a DNS header; the connection is closed */
  dropped(): void;
  /** a socket error or a limit that bit; the transport carries on */
  warn(what: string, message: string, fields?: LogFields): void;
}

export interface DnsTcpLimits {
  /** a connection with nothing in flight is closed after this long without traffic (default 10 s) */
  idleMs?: number | undefined;
  /** open connections at most; when full an idle one makes room, else the new one is closed (default 64) */
  maxConnections?: number | undefined;
  /** connections one client address may hold (default 8) */
  maxPerClient?: number | undefined;
}

export interface DnsTcpStats {
  /** connections closed at once: their client already held maxPerClient */
  limitedClientTcp: number;
  /** connections closed at once: every slot was busy and none idle could make room */
  limitedTcpFull: number;
  /** connections closed because their unsent answers passed TCP_UNSENT_CLOSE_BYTES */
  tcpOutputClosed: number;
}

export interface DnsTcpTransport {
  start(handlers: TcpHandlers): void;
  stats(): DnsTcpStats;
  /** Stops accepting, closes every connection and the listening socket. Idempotent. */
  close(): Promise<void>;
}

/** Queries one connection may have in flight before the transport stops reading from it. */
const TCP_MAX_PIPELINED = 16;
/**
 * Unsent answer bytes at which the transport stops reading a connection until its peer reads ('drain'). Cache hits
 * and local answers are written at once, so without this a peer that pipelines and never reads makes natd buffer
 * every answer (issue 12: 110 MiB for 2,000 queries). Unbound bounds the same with stream-wait-size.
 */
const TCP_UNSENT_PAUSE_BYTES = 64 * 1024;
/**
 * Reading stops at the pause mark, but answers already on their way from upstream still land: at most
 * TCP_MAX_PIPELINED × 64 KiB above it. Past this, something is wrong and the connection is closed.
 */
const TCP_UNSENT_CLOSE_BYTES = TCP_UNSENT_PAUSE_BYTES + (TCP_MAX_PIPELINED + 2) * 65_537;

interface TcpConnection {
  socket: net.Socket;
  /** the peer's address: an IPv4 number or an IPv6 key (client-address.ts) */
  client: ClientAddress;
  frames: FrameDecoder;
  inFlight: number;
  lastActivity: number;
}

export class NetTcpTransport implements DnsTcpTransport {
  private readonly idleMs: number;
  private readonly maxConnections: number;
  private readonly maxPerClient: number;
  private readonly connections = new Set<TcpConnection>();
  /** per client address: connections held (entries removed at 0) */
  private readonly heldByClient = new Map<ClientAddress, number>();
  private readonly counters: DnsTcpStats = { limitedClientTcp: 0, limitedTcpFull: 0, tcpOutputClosed: 0 };
  private handlers: TcpHandlers | undefined;
  private closing: Promise<void> | undefined;
  private readonly onConnection = (socket: net.Socket): void => this.accept(socket);
  private readonly onServerError = (err: Error): void =>
    this.handlers?.warn('dns-tcp', 'DNS TCP server error, ignoring', { error: String(err) });

  constructor(private readonly server: net.Server, limits: DnsTcpLimits = {}) {
    this.idleMs = limits.idleMs ?? 10_000;
    this.maxConnections = limits.maxConnections ?? 64;
    this.maxPerClient = Math.max(1, limits.maxPerClient ?? 8);
  }

  start(handlers: TcpHandlers): void {
    if (this.handlers || this.closing) return;
    this.handlers = handlers;
    this.server.on('connection', this.onConnection);
    this.server.on('error', this.onServerError);
  }

  stats(): DnsTcpStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const { server } = this;
      server.off('connection', this.onConnection);
      for (const conn of this.connections) conn.socket.destroy();
      this.connections.clear();
      await new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    })();
    return this.closing;
  }

  private accept(socket: net.Socket): void {
    const handlers = this.handlers!;
    socket.on('error', (err) => handlers.warn('dns-tcp-conn', 'DNS TCP connection error, ignoring', { error: String(err) }));
    const client = clientFromText(socket.remoteAddress ?? '', parseIpv4);
    if (this.closing || !handlers.accepts(client) || !this.makeRoomFor(client)) {
      socket.destroy();
      return;
    }
    const conn: TcpConnection = { socket, client, frames: new FrameDecoder(), inFlight: 0, lastActivity: performance.now() };
    this.connections.add(conn);
    this.heldByClient.set(client, (this.heldByClient.get(client) ?? 0) + 1);
    socket.setNoDelay(true);
    socket.setTimeout(this.idleMs);
    // a stalled client (half a frame, or nothing) is cut off; one still waiting for an answer is not
    socket.on('timeout', () => {
      if (conn.inFlight === 0) socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => {
      conn.lastActivity = performance.now();
      conn.frames.push(chunk);
      this.readFrames(conn);
    });
    socket.on('drain', () => this.readFrames(conn));
    socket.on('close', () => this.forget(conn));
  }

  /** Whether a new connection of `client` may open: under its own limit, and a free slot or an idle one to close. */
  private makeRoomFor(client: ClientAddress): boolean {
    const handlers = this.handlers!;
    if ((this.heldByClient.get(client) ?? 0) >= this.maxPerClient) {
      this.counters.limitedClientTcp++;
      handlers.warn('dns-tcp-client-limit', 'per-client DNS TCP connection limit reached, closing a new one', {
        client: formatClient(client), limit: this.maxPerClient,
      });
      return false;
    }
    if (this.connections.size >= this.maxConnections && !this.evictIdleConnection()) {
      this.counters.limitedTcpFull++;
      handlers.warn('dns-tcp-full', 'too many DNS TCP connections, closing a new one');
      return false;
    }
    return true;
  }

  private forget(conn: TcpConnection): void {
    if (!this.connections.delete(conn)) return;
    const left = (this.heldByClient.get(conn.client) ?? 1) - 1;
    if (left > 0) this.heldByClient.set(conn.client, left);
    else this.heldByClient.delete(conn.client);
  }

  /**
   * Closes an idle connection (nothing in flight) to make room: one of the client holding the most connections,
   * the one idle longest among its. A client under its own limit thus takes room from the biggest holder, never
   * from someone holding less; false when every connection has queries in flight.
   */
  private evictIdleConnection(): boolean {
    let victim: TcpConnection | undefined;
    let victimHeld = 0;
    for (const conn of this.connections) {
      if (conn.inFlight !== 0) continue;
      const held = this.heldByClient.get(conn.client) ?? 0;
      if (!victim || held > victimHeld || (held === victimHeld && conn.lastActivity < victim.lastActivity)) {
        victim = conn;
        victimHeld = held;
      }
    }
    if (!victim) return false;
    victim.socket.destroy();
    this.forget(victim);
    return true;
  }

  /** Busy: too many queries in flight, or too many answers the peer has not read yet. */
  private blocked(conn: TcpConnection): boolean {
    return conn.inFlight >= TCP_MAX_PIPELINED || conn.socket.writableLength >= TCP_UNSENT_PAUSE_BYTES;
  }

  /** Handles the whole frames received so far while the connection is not busy; reads more only when it is not. */
  private readFrames(conn: TcpConnection): void {
    const { socket, frames } = conn;
    while (frames.pending >= 2 && !socket.destroyed && !this.blocked(conn)) {
      const frame = frames.next();
      if (frame === 'too-short') {
        this.handlers!.dropped();
        socket.destroy();
        return;
      }
      // not return: a connection paused while busy must resume to receive the rest of this frame
      if (frame === 'incomplete') break;
      this.handleMessage(conn, frame);
    }
    if (socket.destroyed || !socket.readable) return;
    if (this.blocked(conn)) socket.pause();
    else socket.resume();
  }

  private handleMessage(conn: TcpConnection, message: Buffer): void {
    const answer = this.handlers!.message(message, conn.client);
    const { socket } = conn;
    const { response } = answer;
    if (response === undefined) {
      socket.destroy();
      return;
    }
    if (!(response instanceof Promise)) {
      this.send(conn, response);
      if (answer.endConnection) {
        // e.g. FORMERR, then no more from this peer
        conn.frames.clear();
        socket.pause();
        socket.end();
      }
      return;
    }
    // pipelined queries are answered as they complete; too many at once and reading pauses (see readFrames)
    conn.inFlight++;
    void response.then((ready) => {
      conn.inFlight--;
      this.send(conn, ready);
      this.readFrames(conn);
    });
  }

  private send(conn: TcpConnection, response: Buffer): void {
    const { socket } = conn;
    if (socket.destroyed || !socket.writable) return;
    socket.write(encodeFrame(response.length > MAX_FRAME_MESSAGE ? truncateForUdp(response, MAX_FRAME_MESSAGE) : response));
    conn.lastActivity = performance.now();
    if (socket.writableLength > TCP_UNSENT_CLOSE_BYTES) {
      this.counters.tcpOutputClosed++;
      this.handlers!.warn('dns-tcp-unsent', 'DNS TCP client does not read its answers, closing', { client: formatClient(conn.client) });
      socket.destroy();
    }
  }
}
