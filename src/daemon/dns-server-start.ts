/**
 * natd's DNS servers (the guests' on the bridge gateway, the IPv6 gateway's, each --listen-address on `lo`) are opened
 * and started one way: UDP and TCP on ADDRESS:53 bound to DEVICE (the UDP socket closed again when the TCP one
 * cannot be had), the configured domain and per-client limits, started, and closed on stop.
 */
import type { Config } from '../config.js';
import { DnsServer, type DnsServerOptions } from '../dns/server.js';
import type { Logger } from '../log.js';
import type { ShutdownStack } from './shutdown.js';
import type { DaemonSockets } from './system.js';

/** What differs between the servers: the subnet served, the shared parts (names, cache, upstreams, routes, ...). */
export type DnsServerParts = Omit<DnsServerOptions, 'udp' | 'tcp' | 'domain' | 'logger' | 'maxPendingPerClient' | 'maxTcpConnectionsPerClient'>;

export interface DnsServerPlace {
  device: string;
  address: string;
  /** the name of its close on the shutdown stack */
  name: string;
}

export async function startDnsServer(
  config: Config, place: DnsServerPlace, parts: DnsServerParts,
  { sockets, logger, stack }: { sockets: DaemonSockets; logger: Logger; stack: ShutdownStack },
): Promise<DnsServer> {
  const udp = sockets.openDnsUdp(place.device, place.address);
  let tcp;
  try {
    tcp = await sockets.openDnsTcp(place.device, place.address);
  } catch (err) {
    await udp.close();
    throw err;
  }
  const server = new DnsServer({
    udp, tcp, ...parts, ...(config.domain ? { domain: config.domain } : {}), logger,
    maxPendingPerClient: config.dnsMaxPendingPerClient, maxTcpConnectionsPerClient: config.dnsMaxTcpPerClient,
  });
  server.start();
  stack.push(place.name, () => server.close());
  return server;
}
