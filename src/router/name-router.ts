/**
 * The name router's data path (issue 17): many guests behind one host port, chosen per connection by the TLS
 * ClientHello's server name or the HTTP/1.x Host, without terminating TLS.
 *
 * Per connection: accept (limits: all connections, connections per client: an IPv4 address or an IPv6 /64), read the head (bounded by
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
import { clientLimitKey } from './client-key.js';
import { unmapIpv4 } from './proxy-protocol.js';
import { RoutedConnection } from './routed-connection.js';
import type { RoutedPort, RouterCounters, RouterHost, RouterLimits, RouterProtocol, RouteStats, RouteTarget } from './types.js';

export type { RoutedPort, RouterLimits, RouterProtocol, RouteStats, RouteTarget } from './types.js';

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

/** The counters (types.ts RouterCounters) plus what is computed when asked. */
export interface RouterStats extends RouterCounters {
  listening: { address: string; port: number }[];
  /** connections open now (any phase) */
  active: number;
  /** bytes queued in natd now across all connections (socket buffers both ways plus heads) */
  bufferedBytes: number;
  routes: Record<string, RouteStats>;
}

export class NameRouter implements RouterHost {
  private readonly logger: Logger;
  private readonly lookup: NameRouterOptions['lookup'];
  private readonly closeGraceMs: number;
  private limits: RouterLimits;
  private readonly listeners = new Map<string, { server: net.Server; port: number; address: string }>();
  private readonly connections = new Set<RoutedConnection>();
  private readonly perClient = new Map<string, number>();
  private readonly routeStats = new Map<string, RouteStats>();
  /** global counters (RouterStats without the computed fields) */
  readonly counters: RouterCounters = {
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
    const key = clientLimitKey(client);
    const held = this.perClient.get(key) ?? 0;
    if (this.connections.size >= this.limits.maxConnections || held >= this.limits.maxConnectionsPerClient) {
      this.counters.refusedByLimit++;
      socket.destroy();
      return;
    }
    this.perClient.set(key, held + 1);
    this.counters.accepted++;
    const connection = new RoutedConnection(this, socket, client, port, key);
    this.connections.add(connection);
  }

  /** called by RoutedConnection once both of its sockets are closed */
  released(connection: RoutedConnection): void {
    if (!this.connections.delete(connection)) return;
    const held = (this.perClient.get(connection.clientKey) ?? 1) - 1;
    if (held <= 0) this.perClient.delete(connection.clientKey);
    else this.perClient.set(connection.clientKey, held);
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
