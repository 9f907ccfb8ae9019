/**
 * One connection through the name router (see name-router.ts for the whole picture): read the head, look the name
 * up, answer refusals (TLS alert / HTTP status), connect to the guest, replay the head after an optional PROXY
 * header, then splice both ways with backpressure and half-close. Deadlines are checked by the router's sweep
 * (tick), not by timers of its own.
 */
import net from 'node:net';
import { looksLikeTls, parseClientHello } from './client-hello.js';
import { HeadBuffer } from './head-buffer.js';
import { looksLikeHttp, parseHttpHead } from './http-head.js';
import { encodeProxyV1, encodeProxyV2 } from './proxy-protocol.js';
import type { RouterHost, RouterProtocol, RouteStats, RouteTarget } from './types.js';

type Phase = 'head' | 'connecting' | 'splice' | 'closing';

/** TLS alert record: fatal (2), description; record version TLS 1.2 as RFC 8446 §5.1 asks for */
function tlsAlert(description: number): Buffer {
  return Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description]);
}
const ALERT_UNRECOGNIZED_NAME = tlsAlert(112);
const ALERT_INTERNAL_ERROR = tlsAlert(80);
const ALERT_DECODE_ERROR = tlsAlert(50);

function httpResponse(status: number, reason: string): Buffer {
  const body = `${status} ${reason}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    'latin1',
  );
}
const HTTP_400 = httpResponse(400, 'Bad Request');
const HTTP_421 = httpResponse(421, 'Misdirected Request');
const HTTP_431 = httpResponse(431, 'Request Header Fields Too Large');
const HTTP_502 = httpResponse(502, 'Bad Gateway');
const HTTP_505 = httpResponse(505, 'HTTP Version Not Supported');

/** largest read from a guest socket (see RoutedConnection.onUpstreamRead) */
const READ_CHUNK = 128 * 1024;
/** a read this large means a bulk transfer: the connection reads into buffers of its own */
const BULK_READ = 32 * 1024;
/** where small reads from all guest sockets land before they are copied out (reads are synchronous, one at a time) */
const sharedReadBuffer = Buffer.allocUnsafe(READ_CHUNK);
/**
 * Bulk read buffers whose write to the client finished, for the next bulk reads: a fresh 128 KiB Buffer per read
 * costs a malloc, V8's external-memory accounting and more frequent GCs (issue 17 profile). A buffer comes back
 * only from its write's callback without error (the socket no longer holds it); buffers of writes that failed or
 * were cut are left to the GC. At most BULK_POOL_MAX buffers are kept (2 MiB).
 */
const bulkPool: Buffer[] = [];
const BULK_POOL_MAX = 16;

/** after an alert / error response, how long the client gets to read it and close before the socket is destroyed */
const REJECT_LINGER_MS = 2000;

/** One client connection through its phases: head → connecting → splice (or closing after a refusal). */
export class RoutedConnection {
  phase: Phase = 'head';
  route: RouteStats | undefined;
  private target: RouteTarget | undefined;
  private upstream: net.Socket | undefined;
  private readonly head = new HeadBuffer();
  private protocol: RouterProtocol | undefined;
  private httpResumeAt = 0;
  /** when the current phase's limit runs out (performance.now() ms): head, connect or linger; Infinity in splice */
  private deadline: number;
  /** last traffic either way in splice (the router's coarse clock) */
  lastActive = 0;
  private clientClosed = false;
  private upstreamClosed = false;

  constructor(
    private readonly router: RouterHost,
    private readonly socket: net.Socket,
    readonly client: string,
    private readonly port: number,
    /** what the per-client limit counts this connection against (client-key.ts) */
    readonly clientKey: string,
  ) {
    socket.on('data', this.onClientData);
    socket.on('end', this.onClientEnd);
    socket.on('error', this.onClientError);
    socket.on('close', this.onClientClose);
    this.deadline = performance.now() + router.currentLimits().headTimeoutMs;
  }

  bufferedBytes(): number {
    let n = this.head.length + this.socket.writableLength + this.socket.readableLength;
    if (this.upstream) n += this.upstream.writableLength + this.upstream.readableLength;
    return n;
  }

  /** close(): FIN both ways for a spliced connection, everything else is cut */
  shutdown(): void {
    if (this.phase !== 'splice') {
      this.destroy();
      return;
    }
    this.socket.end();
    this.upstream?.end();
  }

  destroy(): void {
    this.phase = 'closing'; // nothing more to answer or count: the close handlers only release
    this.clearTimer();
    this.socket.destroy();
    this.upstream?.destroy();
  }

  private clearTimer(): void {
    this.deadline = Infinity;
  }

  /**
   * The router's sweep (every few hundred ms) instead of timers per connection: a head, connect or linger deadline
   * that passed, or a spliced connection idle for idleTimeoutMs. Per-connection timers and the socket timeouts'
   * refresh on every read cost more than the rest of accepting a connection.
   */
  tick(now: number, idleTimeoutMs: number): void {
    if (now >= this.deadline) {
      this.deadline = Infinity;
      if (this.phase === 'head') this.onHeadTimeout();
      else if (this.phase === 'connecting') this.connectFailed(this.target!, 'connect timeout');
      else this.destroy();
    } else if (this.phase === 'splice' && now - this.lastActive > idleTimeoutMs) {
      this.onIdle();
    }
  }

  // --- head phase ---

  private readonly onClientData = (chunk: Buffer): void => {
    if (this.phase === 'splice') {
      this.lastActive = this.router.clock;
      this.router.counters.bytesIn += chunk.length;
      this.route!.bytesIn += chunk.length;
      if (!this.upstream!.write(chunk)) this.socket.pause();
      return;
    }
    if (this.phase === 'connecting') {
      // kept for the guest; reading on (not pausing) is how a client that leaves meanwhile is noticed
      this.head.append(chunk);
      if (this.head.length >= this.router.currentLimits().maxHeadBytes) this.socket.pause();
      return;
    }
    if (this.phase !== 'head') return; // closing: what the client still sends is dropped
    if (this.protocol === undefined) {
      const first = chunk[0]!;
      if (looksLikeTls(first)) this.protocol = 'tls';
      else if (looksLikeHttp(first)) this.protocol = 'http';
      else {
        this.router.counters.invalid++;
        this.router.warn('router-invalid-head', 'router: neither TLS nor HTTP, closed', { client: this.client, port: this.port });
        this.destroy();
        return;
      }
    }
    this.head.append(chunk);
    if (this.protocol === 'tls') this.parseTls();
    else this.parseHttp();
  };

  private parseTls(): void {
    const max = this.router.currentLimits().maxHeadBytes;
    const result = parseClientHello(this.head.view());
    if (result.state === 'need-more') {
      if (this.head.length >= max) this.tooLarge();
      return;
    }
    if (result.state === 'invalid') {
      this.router.counters.invalid++;
      this.router.warn('router-invalid-head', 'router: bad ClientHello, refused', { client: this.client, port: this.port, reason: result.reason });
      this.reject(ALERT_DECODE_ERROR);
      return;
    }
    if (result.length > max) {
      this.tooLarge();
      return;
    }
    if (result.ech) this.router.counters.ech++;
    this.routeTo(result.serverName);
  }

  private parseHttp(): void {
    const max = this.router.currentLimits().maxHeadBytes;
    const result = parseHttpHead(this.head.view(), this.httpResumeAt);
    if (result.state === 'need-more') {
      this.httpResumeAt = result.resumeAt;
      if (this.head.length >= max) this.tooLarge();
      return;
    }
    if (result.state === 'invalid') {
      this.router.counters.invalid++;
      this.router.warn('router-invalid-head', 'router: bad HTTP request head, refused', { client: this.client, port: this.port, reason: result.reason });
      this.reject(result.status === 505 ? HTTP_505 : HTTP_400);
      return;
    }
    if (result.headLength > max) {
      this.tooLarge();
      return;
    }
    this.routeTo(result.host);
  }

  private tooLarge(): void {
    this.router.counters.tooLarge++;
    this.router.warn('router-head-too-large', 'router: request head larger than the limit, refused', { client: this.client, port: this.port });
    this.reject(this.protocol === 'tls' ? ALERT_DECODE_ERROR : HTTP_431);
  }

  private readonly onHeadTimeout = (): void => {
    if (this.phase !== 'head') return;
    this.router.counters.headTimeouts++;
    this.destroy();
  };

  /** answers (alert / error response), then lets the client read it and close; destroyed after a linger */
  private reject(answer: Buffer): void {
    this.phase = 'closing';
    this.clearTimer();
    this.head.clear();
    this.upstream?.destroy();
    if (this.socket.isPaused()) this.socket.resume(); // drop what the client still sends, so its FIN is seen
    this.socket.end(answer);
    this.deadline = performance.now() + Math.min(REJECT_LINGER_MS, this.router.currentLimits().headTimeoutMs);
  }

  // --- connecting ---

  private routeTo(name: string | undefined): void {
    this.clearTimer();
    this.phase = 'connecting';
    const protocol = this.protocol!;
    const target = this.router.resolve(name, this.port, protocol, this.client);
    if (!target) {
      this.reject(protocol === 'tls' ? ALERT_UNRECOGNIZED_NAME : HTTP_421);
      return;
    }
    this.target = target;
    this.route = this.router.routeCounters(target.route);
    this.route.active++;
    this.route.total++;
    const limits = this.router.currentLimits();
    let upstream: net.Socket;
    try {
      upstream = net.connect({
        host: target.address,
        port: target.port,
        allowHalfOpen: true,
        noDelay: true,
        onread: { buffer: this.nextReadBuffer, callback: this.onUpstreamRead },
      });
    } catch (err) {
      // a target the lookup should not have returned (bad port, …) must not throw out of a socket event
      this.connectFailed(target, (err as Error).message);
      return;
    }
    this.upstream = upstream;
    upstream.on('error', this.onUpstreamError);
    upstream.on('close', this.onUpstreamClose);
    this.deadline = performance.now() + limits.connectTimeoutMs;
    upstream.once('connect', this.onUpstreamConnect);
  }

  private connectFailed(target: RouteTarget, reason: string): void {
    if (this.phase !== 'connecting') return;
    this.router.counters.connectFailed++;
    this.router.warn('router-connect-failed', 'router: guest not reachable, refused', {
      route: target.route,
      address: target.address,
      port: target.port,
      reason,
    });
    this.reject(this.protocol === 'tls' ? ALERT_INTERNAL_ERROR : HTTP_502);
  }

  private readonly onUpstreamConnect = (): void => {
    if (this.phase !== 'connecting') return;
    this.clearTimer();
    this.phase = 'splice';
    this.router.counters.routed++;
    const upstream = this.upstream!;
    const target = this.target!;
    const head = this.head.view();
    this.head.clear();
    // cork only to send the PROXY header and the head in one segment; without a header the head is one write anyway
    const corked = Boolean(target.proxyProtocol);
    if (corked) {
      upstream.cork();
      const endpoints = {
        sourceAddress: this.socket.remoteAddress ?? '',
        sourcePort: this.socket.remotePort ?? 0,
        destinationAddress: this.socket.localAddress ?? '',
        destinationPort: this.socket.localPort ?? 0,
      };
      upstream.write(target.proxyProtocol === 'v1' ? encodeProxyV1(endpoints) : encodeProxyV2(endpoints));
    }
    this.router.counters.bytesIn += head.length;
    this.route!.bytesIn += head.length;
    upstream.write(head);
    if (corked) upstream.uncork();
    upstream.on('end', this.onUpstreamEnd);
    upstream.on('drain', this.onUpstreamDrain);
    this.socket.on('drain', this.onClientDrain);
    this.lastActive = this.router.clock;
    if (this.socket.readableEnded) upstream.end(); // the client's FIN came while connecting
    else this.socket.resume();
  };

  // --- splice ---

  /**
   * Guest → client, the direction of downloads. Read with `onread` instead of 'data' events: half the CPU per byte
   * (no Readable machinery, no per-read allocation by the stream) and reads of up to READ_CHUNK bytes. Reads land in
   * one buffer shared by all connections while they are small, and are copied out (small copies, as the stream path
   * does too); a read of BULK_READ bytes or more switches the connection to buffers of its own, handed to the client
   * socket as they are (no copy) until a small read switches it back. Idle connections hold no read buffer.
   */
  private bulk = false;
  /** bulk buffers handed to the client socket, oldest first (write callbacks come in write order) */
  private readonly bulkInFlight: Buffer[] = [];

  private readonly nextReadBuffer = (): Buffer => (this.bulk ? (bulkPool.pop() ?? Buffer.allocUnsafe(READ_CHUNK)) : sharedReadBuffer);

  private readonly onBulkWritten = (err?: Error | null): void => {
    const buf = this.bulkInFlight.shift();
    if (buf !== undefined && !err && bulkPool.length < BULK_POOL_MAX) bulkPool.push(buf);
  };

  private readonly onUpstreamRead = (nread: number, buf: Uint8Array): boolean => {
    if (this.phase !== 'splice') return false;
    this.lastActive = this.router.clock;
    this.router.counters.bytesOut += nread;
    this.route!.bytesOut += nread;
    // false: the upstream stops reading until the client socket drains
    if (buf === sharedReadBuffer) {
      const chunk = Buffer.allocUnsafe(nread);
      sharedReadBuffer.copy(chunk, 0, 0, nread);
      if (nread >= BULK_READ) this.bulk = true;
      return this.socket.write(chunk);
    }
    if (nread < BULK_READ) this.bulk = false;
    this.bulkInFlight.push(buf as Buffer);
    return this.socket.write(Buffer.from(buf.buffer, buf.byteOffset, nread), this.onBulkWritten);
  };

  private readonly onUpstreamDrain = (): void => {
    this.lastActive = this.router.clock;
    if (this.phase === 'splice' && !this.socket.readableEnded) this.socket.resume();
  };

  private readonly onClientDrain = (): void => {
    this.lastActive = this.router.clock;
    if (this.upstream && !this.upstream.readableEnded) this.upstream.resume();
  };

  private readonly onClientEnd = (): void => {
    if (this.phase === 'head') {
      // the client stopped sending before its head was complete
      this.router.counters.invalid++;
      this.destroy();
    } else if (this.phase === 'splice') {
      this.upstream!.end();
    }
    // connecting: startSplice sees readableEnded; closing: the linger timer or autoDestroy ends it
  };

  private readonly onUpstreamEnd = (): void => {
    this.socket.end();
  };

  private readonly onIdle = (): void => {
    this.router.counters.idleTimeouts++;
    this.destroy();
  };

  private readonly onClientError = (): void => {
    this.router.counters.socketErrors++;
    this.destroy();
  };

  private readonly onUpstreamError = (err: NodeJS.ErrnoException): void => {
    if (this.phase === 'connecting') {
      this.clearTimer();
      this.connectFailed(this.target!, err.code ?? err.message);
      return;
    }
    this.router.counters.socketErrors++;
    this.destroy();
  };

  private readonly onClientClose = (): void => {
    this.clientClosed = true;
    this.clearTimer();
    // a clean close (both directions ended) leaves the upstream to finish on its own; anything else cuts it
    const clean = this.socket.readableEnded && this.socket.writableFinished;
    if (this.upstream && !this.upstreamClosed && !(clean && this.phase === 'splice')) this.upstream.destroy();
    this.maybeReleased();
  };

  private readonly onUpstreamClose = (): void => {
    this.upstreamClosed = true;
    if (!this.clientClosed) {
      if (this.phase === 'connecting') {
        this.connectFailed(this.target!, 'closed while connecting'); // usually 'error' came first and answered
      } else if (this.phase === 'splice') {
        const upstream = this.upstream!;
        if (!(upstream.readableEnded && upstream.writableFinished)) this.destroy();
      }
    }
    this.maybeReleased();
  };

  private maybeReleased(): void {
    if (this.clientClosed && (this.upstream === undefined || this.upstreamClosed)) this.router.released(this);
  }
}
