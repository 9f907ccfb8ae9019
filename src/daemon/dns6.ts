/**
 * issue 14: natd's DNS on the bridge's IPv6 gateway (with DNS on and --subnet6 / --ipv6 auto). A DnsServer of its
 * own on IPv6 sockets bound to the bridge (UDP batched like the IPv4 one, udp6-transport.ts; TCP), sharing
 * everything with the bridge's IPv4 server: local names, cache, upstreams, routes, query log, limits. Not an open
 * resolver: it serves IPv6 sources in the served /64 and link-local ones (the socket only hears the bridge), every
 * other source is REFUSED and counted; the input chain accepts DNS to the IPv6 gateway from the bridge only
 * (nft/ipv6-rules.ts).
 *
 * It also keeps the guests' IPv6 addresses (ipv6/guest-addresses.ts), learnt from the neighbour table
 * (ipv6/neighbours.ts), for AAAA and ip6.arpa answers on both servers.
 */
import type { Config } from '../config.js';
import type { RecordZone } from '../dns/record-zone.js';
import type { DnsServer } from '../dns/server.js';
import { startDnsServer } from './dns-server-start.js';
import type { Logger } from '../log.js';
import type { BridgeInfo } from '../net/bridge.js';
import { runIp } from '../net/ip-command.js';
import { formatIpv6 } from '../ipv6/address.js';
import { GuestAddresses } from '../ipv6/guest-addresses.js';
import { NeighbourLearner, POLL_MS, RESYNC_MS } from '../ipv6/neighbours.js';
import { NeighbourMonitor } from '../ipv6/neigh-monitor.js';
import { NeighbourProber } from '../ipv6/neigh-prober.js';
import type { Ipv6Served } from '../ipv6/settings.js';
import type { ShutdownStack } from './shutdown.js';
import type { DaemonSockets } from './system.js';
import type { SharedDns } from './dns-listeners.js';

export interface Dns6Parts {
  /** the IPv6 gateway natd's DNS listens on */
  address: string;
  server: DnsServer;
  guests: GuestAddresses;
  learner: NeighbourLearner;
  /** the `ip -6 monitor neigh` child; absent with a stand-in neighbour table */
  monitor: NeighbourMonitor | undefined;
  prober: NeighbourProber | undefined;
}

/** What the IPv6 server shares with the bridge's IPv4 one: the listeners' shared parts and the operator's records. */
export interface Dns6Shared extends SharedDns {
  records?: { readonly zone: RecordZone } | undefined;
}

export async function startDns6(
  config: Config, bridge: BridgeInfo, served: Ipv6Served, shared: Dns6Shared, sockets: DaemonSockets, logger: Logger, stack: ShutdownStack,
  readNeighbours?: (bridge: string) => Promise<string>,
): Promise<Dns6Parts> {
  const guests = new GuestAddresses(served.network);
  const { localNames } = shared;
  localNames.setIpv6({
    network: served.network,
    gateway: served.gateway,
    addressesOfMac: (mac) => guests.addressesOfMac(mac),
    addressesOfName: (name) => guests.addressesOfName(name),
    ownerOf: (address) => guests.ownerOf(address),
    version: () => guests.version, // issue 18: the DNS cache-hit fast path
  });
  // issue 14: neighbour changes as they happen (`ip -6 monitor neigh`, ipv6/neigh-monitor.ts), the full read kept
  // as a slower resync; a stand-in table (readNeighbours, tests) is polled only, at the old pace
  const watch = !readNeighbours;
  const prober = watch ? new NeighbourProber({ bridge: config.bridge, logger }) : undefined;
  const learner = new NeighbourLearner({
    bridge: config.bridge, network: served.network, table: guests, logger,
    namesByMac: () => localNames.namesByMac(),
    read: () => (readNeighbours ? readNeighbours(config.bridge) : runIp(['-6', 'neigh', 'show', 'dev', config.bridge])),
    ...(prober ? { probe: (address: string, mac: string) => prober.request(address, mac), pollMs: RESYNC_MS } : {}),
  });
  const monitor = watch ? new NeighbourMonitor({ bridge: config.bridge, logger, onLine: (line) => learner.observeLine(line), onLoss: () => void learner.poll(),
    // while the child runs the full read is the slow resync; while it is down (restarting) the old pace
    onStart: () => (learner.setPollMs(RESYNC_MS), void learner.poll()), onStop: () => learner.setPollMs(POLL_MS),
  }) : undefined;
  learner.start();
  monitor?.start();
  stack.push('ipv6 neighbours', async () => {
    prober?.close();
    await monitor?.close();
    learner.close();
  });

  const address = formatIpv6(served.gateway);
  const server = await startDnsServer(config, { device: config.bridge, address, name: 'dns ipv6' }, { subnet: bridge.subnet, ipv6Network: served.network, ...shared }, { sockets, logger, stack });
  logger.info('DNS on the IPv6 gateway', { listen: `[${address}]:53` });
  return { address, server, guests, learner, monitor, prober };
}
