/**
 * Issue 15: --listen-address (dnsmasq's name): natd's DNS for the host itself on a loopback address such as
 * 127.0.0.1, besides the guests' one on the bridge gateway. Each address gets a DnsServer of its own on `lo` that
 * shares everything with the bridge's (local names, cache, upstreams, routes, query log) and serves 127.0.0.0/8 only,
 * so natd never becomes an open resolver. config.ts refuses an upstream on one of these addresses, and resolv.conf
 * nameservers equal to one are skipped (upstreams.ts): natd never forwards to itself.
 */
import type { Config } from '../config.js';
import type { DnsCache } from '../dns/cache.js';
import type { LocalNames } from '../dns/local-names.js';
import type { QueryLog } from '../dns/query-log.js';
import type { RecordZone } from '../dns/record-zone.js';
import type { DnsServer } from '../dns/server.js';
import { startDnsServer } from './dns-server-start.js';
import type { UpstreamClient } from '../dns/upstream.js';
import type { Logger } from '../log.js';
import { makeSubnet, parseIpv4 } from '../net/ipv4.js';
import type { RouteTable } from './dns-routes.js';
import type { ShutdownStack } from './shutdown.js';
import type { DaemonSockets } from './system.js';

const LOOPBACK_NET = makeSubnet(parseIpv4('127.0.0.0')!, 8);

export interface DnsListener {
  address: string;
  server: DnsServer;
}

export interface SharedDns {
  localNames: LocalNames;
  cache: DnsCache;
  upstream: UpstreamClient;
  routes: RouteTable;
  queryLog: QueryLog;
  /** the operator's records: the host asking 127.0.0.1 gets the same answers as the guests */
  records?: { readonly zone: RecordZone } | undefined;
  /** issue 14: the /64's reverse zone is local here too */
  ipv6Network?: Uint8Array;
}

export async function startDnsListeners(config: Config, shared: SharedDns, sockets: DaemonSockets, logger: Logger, stack: ShutdownStack): Promise<DnsListener[]> {
  const listeners: DnsListener[] = [];
  for (const address of config.listenAddresses) {
    const server = await startDnsServer(config, { device: 'lo', address, name: `dns ${address}` }, { subnet: LOOPBACK_NET, ...shared }, { sockets, logger, stack });
    listeners.push({ address, server });
    logger.info('DNS for the host itself', { listen: `${address}:53` });
  }
  return listeners;
}
