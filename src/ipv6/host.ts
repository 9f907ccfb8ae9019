/**
 * issue 14: what serving IPv6 changes on the host: the gateway address on the bridge (nodad: natd owns it, and DAD
 * would leave it tentative, unusable, for a second), and IPv6 forwarding.
 *
 * Host safety: with net.ipv6.conf.all.forwarding=1 the kernel acts as a router and ignores Router Advertisements on
 * every interface whose accept_ra is 1, so a host that learnt its own default route by SLAAC would lose it when
 * the route's lifetime runs out. Before forwarding goes on, every interface that relies on RAs (accept_ra=1 and a
 * default route learnt from an RA, `ip -6 route show default proto ra`) gets accept_ra=2 (accept them even when
 * forwarding), as libvirt does. The bridge itself keeps accept_ra=0 (sysctl.ts refuseRouterAdvertisements): on
 * the bridge natd is the router.
 */
import { readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { runIp, type IpRunner } from '../net/ip-command.js';
import type { Ipv6Served } from './settings.js';
import { parseIpv6, sameBytes } from './address.js';

/** /proc/sys access, injectable for tests; read gives undefined when the key does not exist. */
export interface SysctlIo {
  read(path: string[]): Promise<string | undefined>;
  write(path: string[], value: string): Promise<void>;
}

export const procSysctl: SysctlIo = {
  read: (path) => readFile(`/proc/sys/${path.join('/')}`, 'utf8').then((t) => t.trim(), () => undefined),
  write: (path, value) => writeFile(`/proc/sys/${path.join('/')}`, value),
};

interface RouteJson {
  dev?: string;
  protocol?: string;
}

/** The interfaces with a default route learnt from a Router Advertisement (`ip -6 -j route show default proto ra`). */
export async function raDefaultRouteDevices(ip: IpRunner): Promise<string[]> {
  let routes: RouteJson[];
  try {
    routes = JSON.parse((await ip(['-6', '-j', 'route', 'show', 'default', 'proto', 'ra'])) || '[]') as RouteJson[];
  } catch {
    return [];
  }
  return [...new Set(routes.map((r) => r.dev).filter((d): d is string => typeof d === 'string'))];
}

/**
 * Interfaces (other than the bridge) that rely on RAs and would stop accepting them once forwarding is on:
 * accept_ra=1 and a default route from an RA. Pure over its inputs.
 */
export function interfacesNeedingAcceptRa2(raDevices: readonly string[], acceptRa: ReadonlyMap<string, string | undefined>, bridge: string): string[] {
  return raDevices.filter((dev) => dev !== bridge && acceptRa.get(dev) === '1');
}

export interface Ipv6HostDeps {
  ip?: IpRunner;
  sysctl?: SysctlIo;
}

interface AddrJson {
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/**
 * Adds the gateway address to the bridge (when missing), sets accept_ra=2 on the interfaces that need it, then
 * turns IPv6 forwarding on. Every change is logged; nothing is undone on stop (as for net.ipv4.ip_forward: other
 * bridges may need it).
 */
export async function setUpIpv6Host(bridge: string, served: Ipv6Served, logger: Logger, deps: Ipv6HostDeps = {}): Promise<void> {
  const ip = deps.ip ?? runIp;
  const sysctl = deps.sysctl ?? procSysctl;
  if ((await sysctl.read(['net', 'ipv6', 'conf', 'all', 'forwarding'])) === undefined) {
    throw new Error('IPv6 is disabled on this host (no /proc/sys/net/ipv6); run without --ipv6/--subnet6');
  }
  await setKey(sysctl, ['net', 'ipv6', 'conf', bridge, 'accept_ra'], '0', logger);
  // natd owns the bridge's addresses: without DAD its link-local address (the RAs' source) is usable as soon as the
  // first port comes up, instead of staying tentative for a second while guests already solicit
  await setKey(sysctl, ['net', 'ipv6', 'conf', bridge, 'accept_dad'], '0', logger);

  const shown = JSON.parse((await ip(['-6', '-j', 'addr', 'show', 'dev', bridge])) || '[]') as AddrJson[];
  const has = (shown[0]?.addr_info ?? []).some((a) => a.family === 'inet6' && a.prefixlen === 64 && a.local !== undefined && sameBytes(parseIpv6(a.local) ?? new Uint8Array(), served.gateway));
  if (!has) {
    await ip(['-6', 'addr', 'add', served.gatewayCidr, 'dev', bridge, 'nodad']);
    logger.info('added IPv6 gateway address to bridge', { bridge, address: served.gatewayCidr, source: served.source });
  }

  const raDevices = await raDefaultRouteDevices(ip);
  const acceptRa = new Map<string, string | undefined>();
  for (const dev of raDevices) acceptRa.set(dev, await sysctl.read(['net', 'ipv6', 'conf', dev, 'accept_ra']));
  for (const dev of interfacesNeedingAcceptRa2(raDevices, acceptRa, bridge)) {
    await sysctl.write(['net', 'ipv6', 'conf', dev, 'accept_ra'], '2');
    logger.warn('set accept_ra=2 so this interface keeps its router-advertised default route once IPv6 forwarding is on', { interface: dev });
  }
  await setKey(sysctl, ['net', 'ipv6', 'conf', 'all', 'forwarding'], '1', logger);
}

async function setKey(sysctl: SysctlIo, path: string[], value: string, logger: Logger): Promise<void> {
  const before = await sysctl.read(path);
  if (before === value) return;
  await sysctl.write(path, value);
  logger.info('sysctl set', { key: path.join('.'), from: before, to: value });
}

