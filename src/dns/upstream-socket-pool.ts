/**
 * The upstream client's UDP socket pool (see upstream.ts for why a rotated pool): per IPv4 server a pool of the
 * addon's sockets connected to it, per address family one pool of dgram sockets for the rest (IPv6 servers, and IPv4
 * ones when the addon cannot open a socket). Each attempt leaves from a random socket of its server's pool; a socket
 * is retired after `queriesPerSocket` sends and closes once its last reply is in, and the next acquire opens a
 * replacement on a new random port.
 */
import type { Logger } from '../log.js';
import { NOT_IPV4 } from '../net/ipv4.js';
import type { Random16 } from './upstream-ids.js';
import { DgramUpstreamSocket, NativeSocketGroup, type PooledSocket, type SocketOwner, type SocketTarget } from './upstream-sockets.js';

/** What the pool needs to know of a server. */
export interface PoolTarget extends SocketTarget {
  readonly family: 4 | 6;
}

export interface SocketPoolOptions {
  /** sockets per IPv4 server, and per address family for dgram sockets */
  poolSize: number;
  /** sends per socket before it is retired */
  queriesPerSocket: number;
  /** IPv4 servers through the addon's connected sockets; false: dgram for every server */
  nativeSockets: boolean;
  /** where replies and socket errors go */
  owner: SocketOwner;
  random: Random16;
  logger: Logger;
}

export class UpstreamSocketPool {
  private readonly dgramPools: Record<4 | 6, PooledSocket[]> = { 4: [], 6: [] };
  private readonly allSockets = new Set<PooledSocket>();
  /** the addon's receiver for every IPv4 socket; undefined until the first one, null once it proved unusable */
  private nativeGroup: NativeSocketGroup | undefined | null;

  constructor(private readonly opts: SocketPoolOptions) {}

  /** The pool a new server's sockets go to: a pool of its own for the addon's sockets, else its family's dgram pool. */
  poolFor(family: 4 | 6, address4: number): PooledSocket[] {
    return this.opts.nativeSockets && address4 !== NOT_IPV4 ? [] : this.dgramPools[family];
  }

  /** A server that left takes its own sockets with it, each once its last reply is in. */
  dropServer(server: PoolTarget): void {
    if (server.pool !== this.dgramPools[server.family]) for (const pooled of [...server.pool]) this.retire(pooled);
  }

  /** A random socket of the server's pool, counted as busy until release(); the pool is topped up with fresh sockets. */
  acquire(server: PoolTarget): PooledSocket {
    const { poolSize, queriesPerSocket, random } = this.opts;
    const dgramPool = this.dgramPools[server.family];
    let pool = server.pool;
    let pooled: PooledSocket | undefined;
    if (pool.length < poolSize) {
      if (pool !== dgramPool) pooled = this.openNativeSocket(server);
      if (!pooled) pool = dgramPool; // this attempt goes by dgram; the next one tries the addon again
      if (!pooled && pool.length < poolSize) pooled = this.openDgramSocket(server.family);
    }
    pooled ??= pool[random.next() % pool.length]!;
    pooled.inFlight++;
    if (++pooled.uses >= queriesPerSocket) this.retire(pooled); // the next acquire opens a replacement
    return pooled;
  }

  release(pooled: PooledSocket): void {
    pooled.inFlight--;
    if (pooled.retired && pooled.inFlight === 0) {
      this.allSockets.delete(pooled);
      pooled.close();
    }
  }

  /** Takes a socket out of its pool; it closes once its last reply is in. */
  retire(pooled: PooledSocket): void {
    if (pooled.retired) return;
    pooled.retired = true;
    const index = pooled.pool.indexOf(pooled);
    if (index >= 0) pooled.pool.splice(index, 1);
    if (pooled.inFlight === 0) {
      this.allSockets.delete(pooled);
      pooled.close();
    }
  }

  /** Closes every socket at once. */
  close(): void {
    for (const pooled of this.allSockets) pooled.close();
    this.allSockets.clear();
    this.nativeGroup?.stop();
  }

  /** A new socket of the addon connected to `server`, in its pool; undefined when the addon cannot open one. */
  private openNativeSocket(server: PoolTarget): PooledSocket | undefined {
    const { logger } = this.opts;
    if (this.nativeGroup === null) return undefined;
    try {
      this.nativeGroup ??= new NativeSocketGroup(this.opts.owner);
    } catch (err) {
      this.nativeGroup = null; // the addon is not there: dgram from now on
      logger.warn('cannot use the addon for upstream sockets, using dgram', { error: String(err) });
      return undefined;
    }
    try {
      const pooled = this.nativeGroup.open(server);
      server.pool.push(pooled);
      this.allSockets.add(pooled);
      return pooled;
    } catch (err) {
      logger.warnLimited('dns-upstream-socket', 'cannot open an upstream socket, using dgram', { server: server.label, error: String(err) });
      return undefined;
    }
  }

  private openDgramSocket(family: 4 | 6): PooledSocket {
    const pooled = new DgramUpstreamSocket(this.opts.owner, family, this.dgramPools[family]);
    this.dgramPools[family].push(pooled);
    this.allSockets.add(pooled);
    return pooled;
  }
}
