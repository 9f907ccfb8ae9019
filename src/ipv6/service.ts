/**
 * issue 14: IPv6 on the bridge, started by the daemon after the IPv4 bridge step: the host step (host.ts), then
 * natd's Router Advertisements (ra-server.ts). Closing sends the final RA (router lifetime 0); the address and
 * forwarding stay, as the IPv4 ones do.
 *
 * What the advertisement says: the /64 on-link, natd as default router (lifetime 1800 s), the bridge's MTU and MAC.
 * The flags follow DHCPv6 (`dhcp6`) as dnsmasq's do: without DHCPv6, SLAAC only (A=1, M=O=0, dnsmasq `ra-only`);
 * stateless DHCPv6 (no --dhcp6-range): SLAAC plus Information-request for DNS (A=1, O=1, M=0, dnsmasq
 * `ra-stateless`); stateful (--dhcp6-range): addresses from DHCPv6 only (M=1, O=1, A=0: dnsmasq's plain
 * `dhcp-range=::…` and libvirt's `<dhcp><range/>`), so each guest has the one address natd leased and names.
 * RDNSS/DNSSL (RFC 8106) are sent when natd's DNS answers on the IPv6 gateway (`dnsOnGateway`, with DNS on:
 * daemon/dns6.ts): RDNSS the gateway, DNSSL the search domains (the --domain by default, as DHCPv4 option 119), both
 * with lifetime 1800 s (RFC 8106 5.1: at least 3 x MaxRtrAdvInterval) and 0 in the final advertisement.
 */
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { formatIpv6, type Ipv6Bytes } from './address.js';
import type { Ipv6RulesetInput } from '../nft/ipv6-rules.js';
import { buildRouterAdvertisement } from './ra.js';
import { RaServer, type RaSocket, type RaStats } from './ra-server.js';
import type { RaGuard } from './ra-guard.js';
import { servedIpv6, type Ipv6Served } from './settings.js';

/** RFC 4861 6.2.1 AdvDefaultLifetime: 3 x MaxRtrAdvInterval */
export const ROUTER_LIFETIME_S = 1800;
/** the prefix's lifetimes: 1 day valid, 4 h preferred (renewed by every advertisement) */
export const PREFIX_VALID_S = 86_400;
export const PREFIX_PREFERRED_S = 14_400;
export const CUR_HOP_LIMIT = 64;

export interface Ipv6Deps {
  logger: Logger;
  ipv6Host(bridge: string, served: Ipv6Served, logger: Logger): Promise<void>;
  machineId(): string | undefined;
  openRaSocket(bridge: string, onSolicitation: (data: Buffer, source: Buffer, hopLimit: number) => void, logger: Logger): RaSocket;
  linkMtu(bridge: string): number | undefined;
  /** the bridge's MAC, "52:54:00:.." */
  bridgeMac: string;
  /** the RA guard on the bridge (ra-guard.ts); undefined with --no-firewall */
  raGuard?: RaGuard;
  /** natd's DNS on the IPv6 gateway (RDNSS + DNSSL), when it answers there */
  dnsServer?: Ipv6Bytes;
  /** natd's DNS answers on the IPv6 gateway itself (daemon/dns6.ts, started right after): RDNSS is the gateway */
  dnsOnGateway?: boolean;
  /** DHCPv6 on the bridge: 'stateful' with a --dhcp6-range, else 'stateless' (the RA's M/O/A flags) */
  dhcp6?: Dhcp6Mode;
}

/** issue 14: what DHCPv6 serves on the bridge (the RA's flags follow it) */
export type Dhcp6Mode = 'stateful' | 'stateless';

export interface Ipv6Service {
  served: Ipv6Served;
  status(): Record<string, unknown>;
  raStats(): RaStats;
  close(): Promise<void>;
}

/** The advertisement's content; final: router lifetime 0 and DNS lifetimes 0 (natd is going away). */
export function advertisementFor(served: Ipv6Served, opts: { mac: string; mtu: number | undefined; dnsServer?: Ipv6Bytes; domains: readonly string[]; dhcp6?: Dhcp6Mode }, final: boolean): Buffer {
  const mac = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(opts.mac) ? Uint8Array.from(opts.mac.split(':').map((h) => parseInt(h, 16))) : undefined;
  const dnsLifetime = final ? 0 : ROUTER_LIFETIME_S;
  return buildRouterAdvertisement({
    curHopLimit: CUR_HOP_LIMIT,
    managed: opts.dhcp6 === 'stateful',
    other: opts.dhcp6 !== undefined,
    routerLifetime: final ? 0 : ROUTER_LIFETIME_S,
    reachableTime: 0,
    retransTimer: 0,
    ...(mac ? { sourceLinkLayer: mac } : {}),
    ...(opts.mtu !== undefined && opts.mtu >= 1280 ? { mtu: opts.mtu } : {}),
    prefixes: [{ network: served.network, length: served.prefix, validLifetime: PREFIX_VALID_S, preferredLifetime: PREFIX_PREFERRED_S, onLink: true, autonomous: opts.dhcp6 !== 'stateful' }],
    ...(opts.dnsServer ? { rdnss: { servers: [opts.dnsServer], lifetime: dnsLifetime } } : {}),
    ...(opts.dnsServer && opts.domains.length ? { dnssl: { domains: [...opts.domains], lifetime: dnsLifetime } } : {}),
  });
}

export async function startIpv6(config: Config, deps: Ipv6Deps): Promise<Ipv6Service | undefined> {
  if (!config.ipv6) return undefined;
  const { logger } = deps;
  const served = servedIpv6(config.ipv6, config.bridge, config.ipv6.mode === 'auto' ? deps.machineId() : undefined);
  await deps.ipv6Host(config.bridge, served, logger);
  // best effort: the bridge family's `meta ibrname` needs nft_meta_bridge, which some kernels lack
  let guarded = false;
  if (deps.raGuard) {
    try {
      await deps.raGuard.apply();
      guarded = true;
    } catch (err) {
      logger.warn('no RA guard on this host: guests can send router advertisements to each other', { bridge: config.bridge, reason: (err as Error).message });
    }
  }
  const domains = config.searchDomains;
  const dnsServer = deps.dnsServer ?? (deps.dnsOnGateway ? served.gateway : undefined);
  const ra = new RaServer({
    open: (onSolicitation) => deps.openRaSocket(config.bridge, onSolicitation, logger),
    advertisement: (final) => advertisementFor(served, { mac: deps.bridgeMac, mtu: deps.linkMtu(config.bridge), ...(dnsServer ? { dnsServer } : {}), ...(deps.dhcp6 ? { dhcp6: deps.dhcp6 } : {}), domains }, final),
    logger,
  });
  ra.start();
  logger.info('serving IPv6', { bridge: config.bridge, gateway: served.gatewayCidr, prefix: served.networkCidr, source: served.source });
  return {
    served,
    status: () => ({ gateway: served.gatewayCidr, prefix: served.networkCidr, source: served.source, raGuard: guarded, dhcp6: deps.dhcp6 ?? 'off', routerAdvertisements: ra.stats(),
      ...(dnsServer ? { rdnss: formatIpv6(dnsServer), dnssl: [...domains] } : {}) }),
    raStats: () => ra.stats(),
    close: async () => {
      ra.close();
      if (guarded) await deps.raGuard?.remove();
    },
  };
}

/** What the firewall needs of the served prefix (nft/ipv6-rules.ts). */
export function ipv6RulesetInput(served: Ipv6Served): Ipv6RulesetInput {
  return { network: formatIpv6(served.network), prefix: served.prefix, gateway: formatIpv6(served.gateway) };
}
