/**
 * issue 14: IPv6 on the bridge, started by the daemon after the IPv4 bridge step: the host step (host.ts), then
 * natd's Router Advertisements (ra-server.ts). Closing sends the final RA (router lifetime 0); the address and
 * forwarding stay, as the IPv4 ones do.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { servedIpv6, type Ipv6Served } from './settings.js';

export interface Ipv6Deps {
  logger: Logger;
  ipv6Host(bridge: string, served: Ipv6Served, logger: Logger): Promise<void>;
  machineId(): string | undefined;
}

export interface Ipv6Service {
  served: Ipv6Served;
  status(): Record<string, unknown>;
  close(): Promise<void>;
}

export async function startIpv6(config: Config, deps: Ipv6Deps): Promise<Ipv6Service | undefined> {
  if (!config.ipv6) return undefined;
  const served = servedIpv6(config.ipv6, config.bridge, config.ipv6.mode === 'auto' ? deps.machineId() : undefined);
  await deps.ipv6Host(config.bridge, served, deps.logger);
  deps.logger.info('serving IPv6', { bridge: config.bridge, gateway: served.gatewayCidr, prefix: served.networkCidr, source: served.source });
  return {
    served,
    status: () => ({ gateway: served.gatewayCidr, prefix: served.networkCidr, source: served.source }),
    close: async () => undefined,
  };
}
