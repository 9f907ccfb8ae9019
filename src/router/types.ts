/** The name router's shared types: what a route is, its limits and counters, and what a connection needs of its router. */

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
  /** open connections one client may hold: an IPv4 address, an IPv6 /64 (client-key.ts; counted in refusedByLimit) */
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

export interface RouteStats {
  active: number;
  total: number;
  /** client → guest, the replayed head included */
  bytesIn: number;
  /** guest → client */
  bytesOut: number;
}

/** global counters of a router (name-router.ts RouterStats adds the computed fields) */
export interface RouterCounters {
  /** connections accepted (refused ones not included) */
  accepted: number;
  /** connections that reached a guest */
  routed: number;
  /** client → guest, the replayed head included */
  bytesIn: number;
  /** guest → client */
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
}

/** What a RoutedConnection uses of the NameRouter that owns it. */
export interface RouterHost {
  readonly counters: RouterCounters;
  /** coarse monotonic clock (ms), advanced by the router's sweep */
  readonly clock: number;
  currentLimits(): RouterLimits;
  /** the lookup, counted and logged (unknown names rate-limited) */
  resolve(name: string | undefined, port: number, protocol: RouterProtocol, client: string): RouteTarget | undefined;
  routeCounters(key: string): RouteStats;
  warn(key: string, msg: string, fields: Record<string, unknown>): void;
  /** both sockets of the connection are closed */
  released(connection: { readonly clientKey: string; readonly route: RouteStats | undefined }): void;
}
