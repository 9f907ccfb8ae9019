/**
 * The name router's data path (issue 17): many guests behind one host port, chosen per connection by the TLS
 * ClientHello's server name or the HTTP/1.x Host, without terminating TLS.
 *
 * Per connection: accept (limits: all connections, connections per client address), read the head (bounded by
 * maxHeadBytes and headTimeoutMs, parsed incrementally), ask `lookup` where the name goes, connect (bounded by
 * connectTimeoutMs), write the optional PROXY header and the head bytes, then splice both ways. Unknown names get a
 * fatal TLS alert unrecognized_name(112) or an HTTP 421; a guest that cannot be reached gets internal_error(80) or
 * 502.
 *
 * The splice passes the received Buffers through untouched (client → guest: 'data' chunks; guest → client: reads
 * of up to 128 KiB through `onread`, see onUpstreamRead) and pauses a side whose peer's socket has more than its
 * highWaterMark queued, so a peer that never reads holds at most about one read chunk per direction in natd.
 * Half-close: a FIN from one side becomes end() on the other while the other direction goes on. A connection is
 * cut after idleTimeoutMs without traffic either way.
 *
 * Which names exist, wildcards, default guests for clients without a name: all the caller's `lookup`. The router
 * decides nothing about routes, so a route change applies to the next connection and open ones continue.
 */
import net from 'node:net';
import type { Logger } from '../log.js';
import { looksLikeTls, parseClientHello } from './client-hello.js';
import { HeadBuffer } from './head-buffer.js';
import { looksLikeHttp, parseHttpHead } from './http-head.js';
import { encodeProxyV1, encodeProxyV2, unmapIpv4 } from './proxy-protocol.js';

/** detected per connection: first byte 0x16 (a TLS handshake record) → TLS, else HTTP/1.x */
export type RouterProtocol = 'tls' | 'http';

export interface RouteTarget {
  address: string;
  port: number;
  proxyProtocol?: 'v1' | 'v2';
  /** key for the per-route counters (e.g. the expose entry's name) */
  route: string;
}

export interface RouterLimits {
  /** open connections at most; past it new ones are closed at once (counted in refusedByLimit) */
  maxConnections: number;
  /** open connections one client address may hold (counted in refusedByLimit) */
  maxConnectionsPerClient: number;
  /** the ClientHello / HTTP head must be complete this long after accept */
  headTimeoutMs: number;
  /** a routed connection without traffic either way for this long is closed */
  idleTimeoutMs: number;
  /** the ClientHello records / HTTP head may take at most this many bytes */
  maxHeadBytes: number;
  /** connecting to the guest may take this long */
  connectTimeoutMs: number;
}

export interface RoutedPort {
  port: number;
  /** default: all addresses, IPv4 and IPv6 */
  address?: string;
}

export interface NameRouterOptions {
  logger: Logger;
  limits: RouterLimits;
  /**
   * Where a connection goes. name = SNI or Host (lower case, no port, no trailing dot); undefined when the
   * ClientHello has no SNI (or an ECH ClientHello without a public name) or an HTTP/1.0 request has no Host.
   * With ECH the name is the outer (public) name. undefined result: unknown name (alert 112 / 421).
   */
  lookup(name: string | undefined, port: number, protocol: RouterProtocol): RouteTarget | undefined;
  /** close(): how long open connections get after their FINs before they are destroyed (default 2000 ms) */
  closeGraceMs?: number;
}

export interface RouteStats {
  active: number;
  total: number;
  /** client → guest, the replayed head included */
  bytesIn: number;
  /** guest → client */
  bytesOut: number;
}

export interface RouterStats {
  listening: { address: string; port: number }[];
  /** connections open now (any phase) */
  active: number;
  /** connections accepted (refused ones not included) */
  accepted: number;
  /** connections that reached a guest */
  routed: number;
  bytesIn: number;
  bytesOut: number;
  /** lookups that found no route (answered with alert 112 / 421) */
  unknownNames: number;
  /** heads without a name (no SNI, HTTP/1.0 without Host) */
  noName: number;
  /** ClientHellos with an encrypted_client_hello extension */
  ech: number;
  /** heads not complete within headTimeoutMs */
  headTimeouts: number;
  /** routed connections closed after idleTimeoutMs without traffic */
  idleTimeouts: number;
  /** connections closed at accept: maxConnections or maxConnectionsPerClient */
  refusedByLimit: number;
  /** heads that are neither a valid ClientHello nor a valid HTTP/1.x head (alert 50 / 400) */
  invalid: number;
  /** heads larger than maxHeadBytes */
  tooLarge: number;
  /** guests that could not be reached (alert 80 / 502) */
  connectFailed: number;
  /** connections ended by a socket error (reset, …) */
  socketErrors: number;
  /** bytes queued in natd now across all connections (socket buffers both ways plus heads) */
  bufferedBytes: number;
  routes: Record<string, RouteStats>;
}

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

/** after an alert / error response, how long the client gets to read it and close before the socket is destroyed */
const REJECT_LINGER_MS = 2000;

export class NameRouter {
  private readonly logger: Logger;
  private readonly lookup: NameRouterOptions['lookup'];
  private readonly closeGraceMs: number;
  private limits: RouterLimits;
  private readonly listeners = new Map<string, { server: net.Server; port: number; address: string }>();
  private readonly connections = new Set<RoutedConnection>();
  private readonly perClient = new Map<string, number>();
  private readonly routeStats = new Map<string, RouteStats>();
  /** global counters (RouterStats without the computed fields) */
  readonly counters = {
    accepted: 0,
    routed: 0,
    bytesIn: 0,
    bytesOut: 0,
    unknownNames: 0,
    noName: 0,
    ech: 0,
    headTimeouts: 0,
    idleTimeouts: 0,
    refusedByLimit: 0,
    invalid: 0,
    tooLarge: 0,
    connectFailed: 0,
    socketErrors: 0,
  };
  private closing = false;
  /** coarse monotonic clock (ms) that connections stamp their traffic with; advanced by every sweep */
  clock = performance.now();
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepEveryMs = 0;

  constructor(options: NameRouterOptions) {
    this.logger = options.logger;
    this.lookup = options.lookup;
    this.limits = { ...options.limits };
    this.closeGraceMs = options.closeGraceMs ?? 2000;
  }

  /** Opens the given ports and closes ports no longer listed; connections on closed ports continue. */
  listen(ports: RoutedPort[]): Promise<void> {
    // calls run one after the other, so two reloads cannot open the same port twice
    const next = this.listenQueue.then(() => this.applyPorts(ports));
    this.listenQueue = next.catch(() => {});
    return next;
  }

  private listenQueue: Promise<void> = Promise.resolve();

  private async applyPorts(ports: RoutedPort[]): Promise<void> {
    if (this.closing) throw new Error('name router is closed');
    this.startSweep();
    const wanted = new Map<string, RoutedPort>();
    for (const p of ports) wanted.set(listenerKey(p), p);
    const opened: string[] = [];
    try {
      for (const [key, p] of wanted) {
        if (this.listeners.has(key)) continue;
        const listener = await this.openPort(p);
        if (this.closing) {
          listener.server.close();
          throw new Error('name router is closed');
        }
        this.listeners.set(key, listener);
        opened.push(key);
      }
    } catch (err) {
      for (const key of opened) {
        this.listeners.get(key)?.server.close();
        this.listeners.delete(key);
      }
      throw err;
    }
    for (const [key, listener] of this.listeners) {
      if (wanted.has(key)) continue;
      listener.server.close(); // stops accepting; open connections carry on
      this.listeners.delete(key);
    }
  }

  private async openPort(p: RoutedPort): Promise<{ server: net.Server; port: number; address: string }> {
    const tryListen = (host: string, ipv6Only: boolean) =>
      new Promise<net.Server>((resolve, reject) => {
        const server = net.createServer({ allowHalfOpen: true, noDelay: true });
        let boundPort = p.port; // the port lookups are asked for: the one bound (differs only for port 0)
        server.on('connection', (socket) => this.accept(socket, boundPort));
        server.once('error', reject);
        server.listen({ host, port: p.port, ipv6Only, backlog: 1024 }, () => {
          boundPort = (server.address() as net.AddressInfo).port;
          server.off('error', reject);
          // accept errors (EMFILE, …) arrive here: the server keeps listening, the log stays bounded
          server.on('error', (err) => this.logger.warnLimited('router-accept-error', 'router: listening socket error', { port: p.port, error: String(err) }));
          resolve(server);
        });
      });
    let server: net.Server;
    if (p.address !== undefined) {
      server = await tryListen(p.address, false).catch((err: unknown) => {
        throw new Error(`router: cannot listen on ${p.address}:${p.port}: ${(err as Error).message}`, { cause: err });
      });
    } else {
      // all addresses: one dual-stack socket, or IPv4 only where the host has no IPv6
      server = await tryListen('::', false).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EAFNOSUPPORT' && err.code !== 'EADDRNOTAVAIL') throw err;
        return tryListen('0.0.0.0', false);
      }).catch((err: unknown) => {
        throw new Error(`router: cannot listen on port ${p.port}: ${(err as Error).message}`, { cause: err });
      });
    }
    const bound = server.address() as net.AddressInfo;
    return { server, port: bound.port, address: bound.address };
  }

  setLimits(limits: RouterLimits): void {
    this.limits = { ...limits };
    if (this.sweepTimer) this.startSweep();
  }

  /**
   * One interval timer checks every connection's deadlines (sweep precision: a fifth of the shortest limit,
   * 20..500 ms). Running while the router listens or holds connections.
   */
  private startSweep(): void {
    const l = this.limits;
    const every = Math.min(500, Math.max(20, Math.floor(Math.min(l.headTimeoutMs, l.connectTimeoutMs, l.idleTimeoutMs) / 5)));
    if (this.sweepTimer && every === this.sweepEveryMs) return;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepEveryMs = every;
    this.sweepTimer = setInterval(this.sweep, every);
    this.sweepTimer.unref();
  }

  private readonly sweep = (): void => {
    const now = performance.now();
    this.clock = now;
    const idle = this.limits.idleTimeoutMs;
    for (const c of this.connections) c.tick(now, idle);
  };

  getLimits(): RouterLimits {
    return { ...this.limits };
  }

  stats(): RouterStats {
    let bufferedBytes = 0;
    for (const c of this.connections) bufferedBytes += c.bufferedBytes();
    const routes: Record<string, RouteStats> = {};
    for (const [key, s] of this.routeStats) routes[key] = { ...s };
    return {
      listening: [...this.listeners.values()].map((l) => ({ address: l.address, port: l.port })),
      active: this.connections.size,
      ...this.counters,
      bufferedBytes,
      routes,
    };
  }

  /** Stops listening, ends open connections with FINs, destroys what is left after closeGraceMs. Idempotent. */
  close(): Promise<void> {
    this.closePromise ??= this.shutdownAll();
    return this.closePromise;
  }

  private closePromise: Promise<void> | undefined;

  private async shutdownAll(): Promise<void> {
    this.closing = true;
    for (const listener of this.listeners.values()) listener.server.close();
    this.listeners.clear();
    if (this.connections.size > 0) await this.drainConnections();
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  private async drainConnections(): Promise<void> {
    await new Promise<void>((resolve) => {
      const check = () => {
        if (this.connections.size === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      this.onConnectionGone = check;
      const timer = setTimeout(() => {
        for (const c of [...this.connections]) c.destroy();
        // destroy() closes asynchronously; check() resolves once the last 'close' came
      }, this.closeGraceMs);
      for (const c of [...this.connections]) c.shutdown();
      check();
    });
    this.onConnectionGone = undefined;
  }

  private onConnectionGone: (() => void) | undefined;

  private accept(socket: net.Socket, port: number): void {
    const remote = socket.remoteAddress;
    if (this.closing || remote === undefined) {
      socket.destroy();
      return;
    }
    const client = unmapIpv4(remote);
    const held = this.perClient.get(client) ?? 0;
    if (this.connections.size >= this.limits.maxConnections || held >= this.limits.maxConnectionsPerClient) {
      this.counters.refusedByLimit++;
      socket.destroy();
      return;
    }
    this.perClient.set(client, held + 1);
    this.counters.accepted++;
    const connection = new RoutedConnection(this, socket, client, port);
    this.connections.add(connection);
  }

  /** called by RoutedConnection once both of its sockets are closed */
  released(connection: RoutedConnection): void {
    if (!this.connections.delete(connection)) return;
    const held = (this.perClient.get(connection.client) ?? 1) - 1;
    if (held <= 0) this.perClient.delete(connection.client);
    else this.perClient.set(connection.client, held);
    if (connection.route) connection.route.active--;
    this.onConnectionGone?.();
  }

  // --- what RoutedConnection needs from the router (package-internal) ---

  currentLimits(): RouterLimits {
    return this.limits;
  }

  resolve(name: string | undefined, port: number, protocol: RouterProtocol, client: string): RouteTarget | undefined {
    if (name === undefined) this.counters.noName++;
    let target: RouteTarget | undefined;
    try {
      target = this.lookup(name, port, protocol);
    } catch (err) {
      this.logger.warnLimited('router-lookup-error', 'router: route lookup failed', { name, port, error: String(err) });
    }
    if (!target) {
      this.counters.unknownNames++;
      this.logger.warnLimited('router-unknown-name', 'router: no route for name, refused', {
        name: name ?? null,
        port,
        protocol,
        client,
      });
    }
    return target;
  }

  routeCounters(key: string): RouteStats {
    let s = this.routeStats.get(key);
    if (!s) {
      s = { active: 0, total: 0, bytesIn: 0, bytesOut: 0 };
      this.routeStats.set(key, s);
    }
    return s;
  }

  warn(key: string, msg: string, fields: Record<string, unknown>): void {
    this.logger.warnLimited(key, msg, fields);
  }
}

function listenerKey(p: RoutedPort): string {
  return `${p.address ?? '*'}|${p.port}`;
}

/** One client connection through its phases: head → connecting → splice (or closing after a refusal). */
class RoutedConnection {
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
    private readonly router: NameRouter,
    private readonly socket: net.Socket,
    readonly client: string,
    private readonly port: number,
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
    this.socket.pause();
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
    const upstream = net.connect({
      host: target.address,
      port: target.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: { buffer: this.nextReadBuffer, callback: this.onUpstreamRead },
    });
    this.upstream = upstream;
    upstream.on('error', this.onUpstreamError);
    upstream.on('close', this.onUpstreamClose);
    this.deadline = performance.now() + limits.connectTimeoutMs;
    upstream.once('connect', () => this.startSplice(target));
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

  private startSplice(target: RouteTarget): void {
    if (this.phase !== 'connecting') return;
    this.clearTimer();
    this.phase = 'splice';
    this.router.counters.routed++;
    const upstream = this.upstream!;
    const head = this.head.view();
    this.head.clear();
    upstream.cork();
    if (target.proxyProtocol) {
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
    upstream.uncork();
    upstream.on('end', this.onUpstreamEnd);
    upstream.on('drain', this.onUpstreamDrain);
    this.socket.on('drain', this.onClientDrain);
    this.lastActive = this.router.clock;
    if (this.socket.readableEnded) upstream.end(); // the client's FIN came while connecting
    else this.socket.resume();
  }

  // --- splice ---

  /**
   * Guest → client, the direction of downloads. Read with `onread` instead of 'data' events: half the CPU per byte
   * (no Readable machinery, no per-read allocation by the stream) and reads of up to READ_CHUNK bytes. Reads land in
   * one buffer shared by all connections while they are small, and are copied out (small copies, as the stream path
   * does too); a read of BULK_READ bytes or more switches the connection to buffers of its own, handed to the client
   * socket as they are (no copy) until a small read switches it back. Idle connections hold no read buffer.
   */
  private bulk = false;

  private readonly nextReadBuffer = (): Buffer => (this.bulk ? Buffer.allocUnsafe(READ_CHUNK) : sharedReadBuffer);

  private readonly onUpstreamRead = (nread: number, buf: Uint8Array): boolean => {
    if (this.phase !== 'splice') return false;
    this.lastActive = this.router.clock;
    let chunk: Buffer;
    if (buf === sharedReadBuffer) {
      chunk = Buffer.allocUnsafe(nread);
      sharedReadBuffer.copy(chunk, 0, 0, nread);
      if (nread >= BULK_READ) this.bulk = true;
    } else {
      chunk = Buffer.from(buf.buffer, buf.byteOffset, nread);
      if (nread < BULK_READ) this.bulk = false;
    }
    this.router.counters.bytesOut += nread;
    this.route!.bytesOut += nread;
    return this.socket.write(chunk); // false: the upstream stops reading until the client socket drains
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
    if (this.phase === 'connecting') return; // connectFailed answers the client
    const upstream = this.upstream!;
    const clean = upstream.readableEnded && upstream.writableFinished;
    if (!this.clientClosed && !clean && this.phase === 'splice') this.destroy();
    this.maybeReleased();
  };

  private maybeReleased(): void {
    if (this.clientClosed && (this.upstream === undefined || this.upstreamClosed)) this.router.released(this);
  }
}
