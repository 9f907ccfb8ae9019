/**
 * Where DNS queries go: the configured upstreams, or else the nameservers of resolv.conf without natd's own gateway
 * address (a host that points resolv.conf at natd must not make natd forward to itself). One filter for the file as
 * read at start and reload and as re-read when it changes.
 *
 * resolv.conf at systemd-resolved's stub (nameserver 127.0.0.53) is used as it is: natd listens on the bridge
 * gateway, never on 127.0.0.53, so natd → resolved is no loop; resolved sends natd only natd's own domain (see
 * resolved.ts: a routing-only ~domain, never a default route), and natd answers that domain itself, never upstream
 * (dns-routes.ts keeps even a `--server=/sub.DOMAIN/#` route from sending it back).
 */
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { parseResolvConf, watchResolvConf } from '../dns/resolv-conf.js';
import type { Logger } from '../log.js';
import { canonicalIpv6Scoped } from '../ipv6/address.js';

export type UpstreamServer = { address: string; port?: number };

/**
 * resolv.conf's nameservers that are not natd itself (its gateway address, issue 14: its IPv6 gateway too, in any
 * spelling, and its --listen-address ones).
 */
export function upstreamsFromResolvConf(nameservers: readonly string[], gateway: string | readonly string[], own: readonly string[] = []): UpstreamServer[] {
  const self = new Set([...(typeof gateway === 'string' ? [gateway] : gateway), ...own].map(canonical));
  return nameservers.filter((a) => !self.has(canonical(a))).map((address) => ({ address }));
}

const canonical = (address: string): string => (address.includes(':') ? canonicalIpv6Scoped(address) : address);

export async function upstreamsFrom(config: Config, gateway: string | readonly string[], logger: Logger): Promise<UpstreamServer[]> {
  // issue 15: --upstream and plain --server=IP[#PORT] entries, parsed by config.ts
  if (config.upstreamServers.length) return config.upstreamServers.map((u) => ({ ...u }));
  try {
    return upstreamsFromResolvConf(parseResolvConf(await readFile(config.resolvConf, 'utf8')).nameservers, gateway, config.listenAddresses);
  } catch (err) {
    logger.warn('cannot read resolv.conf; no upstream DNS servers', { file: config.resolvConf, error: (err as Error).message });
    return [];
  }
}

/** Follows resolv.conf when no upstream is configured; returns the stop function (undefined: nothing to follow). */
export function followResolvConf(config: Config, gateway: string | readonly string[], setServers: (servers: UpstreamServer[]) => void, logger: Logger): (() => void) | undefined {
  if (config.upstreamServers.length) return undefined;
  return watchResolvConf(config.resolvConf, (parsed) => {
    const servers = upstreamsFromResolvConf(parsed.nameservers, gateway, config.listenAddresses);
    setServers(servers);
    logger.info('resolv.conf changed; upstreams updated', { upstreams: servers.map((s) => s.address) });
  });
}
