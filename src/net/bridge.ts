/**
 * The bridge natd serves: read its IPv4 address (which decides the subnet), or create it the way the classic recipe
 * did (STP on, a pinned MAC so the address does not follow whichever VM port came up first). natd never deletes a
 * bridge: guests may be attached to it across restarts.
 */
import { createHash } from 'node:crypto';
import { ErrorCodes, NatdError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatIpv4, parseCidr, type Subnet } from './ipv4.js';
import { runIp, type IpRunner } from './ip-command.js';
import { refuseRouterAdvertisements } from './sysctl.js';

export interface BridgeInfo {
  name: string;
  mac: string;
  gateway: number;
  subnet: Subnet;
  /** true when natd created the bridge in this run */
  created: boolean;
}

interface IpAddrJson {
  ifname: string;
  mtu?: number;
  address?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string };
  /** dynamic/mngtmpaddr: set on addresses the kernel formed from an advertised prefix (SLAAC) */
  addr_info?: { family: string; local: string; prefixlen: number; scope?: string; dynamic?: boolean; mngtmpaddr?: boolean }[];
}

/** A libvirt-style 52:54:00:xx:xx:xx MAC derived from the bridge name, stable across hosts and restarts. */
export function pinnedMacFor(bridge: string): string {
  const h = createHash('sha256').update(`natd:${bridge}`).digest();
  return ['52', '54', '00', ...[h[0]!, h[1]!, h[2]!].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

async function showLink(ip: IpRunner, name: string): Promise<IpAddrJson | undefined> {
  try {
    const out = await ip(['-j', '-d', 'addr', 'show', 'dev', name]);
    return (JSON.parse(out) as IpAddrJson[])[0];
  } catch {
    return undefined;
  }
}

/** The bridge's first IPv4 address as "a.b.c.d/len", or undefined when it has none or does not exist. Read-only. */
export async function readBridgeCidr(name: string, ip: IpRunner = runIp): Promise<string | undefined> {
  const link = await showLink(ip, name);
  const first = (link?.addr_info ?? []).find((a) => a.family === 'inet');
  return first ? `${first.local}/${first.prefixlen}` : undefined;
}

/** Turns off what lets a guest's Router Advertisement change the host (sysctl.ts); injected so tests see the order. */
export type Ipv6Guard = (bridge: string, logger: Logger) => Promise<void>;

interface Ipv6RouteJson {
  dst: string;
  gateway?: string;
  protocol?: string;
  expires?: number;
}

/**
 * What a Router Advertisement left on an existing bridge before natd turned accept_ra off: routes the kernel learned
 * from it (protocol ra: the default route via the advertising guest; a kernel route with a lifetime: an on-link
 * prefix from its prefix option) and SLAAC addresses (global, dynamic, mngtmpaddr: how the kernel marks an address
 * it formed from an advertised prefix; static and DHCPv6 addresses lack the flags). With accept_ra=0 none of them
 * would be there, so they are removed, each with a warning: on a NAT bridge they are the trace of a rogue router.
 */
async function forgetRouterAdvertisements(ip: IpRunner, name: string, logger: Logger): Promise<void> {
  let routes: Ipv6RouteJson[];
  try {
    routes = JSON.parse((await ip(['-6', '-j', 'route', 'show', 'dev', name])) || '[]') as Ipv6RouteJson[];
  } catch {
    return; // no IPv6 here
  }
  for (const route of routes) {
    const fromRa = route.protocol === 'ra' || (route.protocol === 'kernel' && route.expires !== undefined);
    if (!fromRa) continue;
    const via = route.gateway ? ['via', route.gateway] : [];
    await ip(['-6', 'route', 'del', route.dst, ...via, 'dev', name]).catch(() => undefined);
    logger.warn('removed a route learned from a router advertisement on the bridge', { bridge: name, route: route.dst, ...(route.gateway ? { via: route.gateway } : {}) });
  }
  const link = await showLink(ip, name);
  for (const a of link?.addr_info ?? []) {
    if (a.family !== 'inet6' || a.scope !== 'global' || !a.dynamic || !a.mngtmpaddr) continue;
    await ip(['-6', 'addr', 'del', `${a.local}/${a.prefixlen}`, 'dev', name]).catch(() => undefined);
    logger.warn('removed an address formed from a router advertisement on the bridge', { bridge: name, address: `${a.local}/${a.prefixlen}` });
  }
}

/** A name for the dummy port (IFNAMSIZ allows 15 characters). */
function dummyNameFor(bridge: string): string {
  return `${bridge.slice(0, 9)}-nic`;
}

async function createBridge(ip: IpRunner, name: string, mac: string, logger: Logger): Promise<void> {
  await ip(['link', 'add', name, 'type', 'bridge', 'stp_state', '1']);
  // The recipe's dummy port keeps the MAC fixed; this kernel family may lack the dummy type, so fall back to
  // setting the bridge's own address (a bridge with an explicitly set MAC keeps it as ports come and go).
  const dummy = dummyNameFor(name);
  try {
    await ip(['link', 'add', dummy, 'address', mac, 'type', 'dummy']);
    await ip(['link', 'set', dummy, 'master', name]);
    await ip(['link', 'set', dummy, 'up']);
  } catch (err) {
    logger.info('no dummy link type here; pinning the bridge MAC directly', { bridge: name, reason: (err as Error).message });
  }
  await ip(['link', 'set', name, 'address', mac]);
}

/**
 * --mtu (issue 16, libvirt's <mtu size=…/>): the bridge's own MTU. The kernel then keeps it whatever MTU the ports
 * that join later have (an MTU set by hand is not recomputed from the ports); the guests learn it from option 26.
 */
async function setMtu(ip: IpRunner, name: string, mtu: number, logger: Logger): Promise<void> {
  try {
    await ip(['link', 'set', name, 'mtu', String(mtu)]);
  } catch (err) {
    throw new NatdError(ErrorCodes.BRIDGE, `cannot set the MTU of ${name} to ${mtu}: ${(err as Error).message}`, { cause: err });
  }
  logger.info('set bridge MTU', { bridge: name, mtu });
}

/**
 * Makes sure the bridge exists, is up and carries the wanted gateway address; returns what natd will serve.
 * wantedCidr: from --subnet; when undefined the bridge's own first IPv4 address decides, or defaultCidr when the
 * bridge has none. The IPv6 guard runs before the bridge is first brought up (or, for an existing bridge, before
 * anything else), so no router advertisement from a guest is ever accepted on a bridge natd serves.
 */
export async function ensureBridge(
  opts: { name: string; wantedCidr?: string; defaultCidr: string; mac?: string; mtu?: number; logger: Logger },
  ip: IpRunner = runIp,
  guardIpv6: Ipv6Guard = refuseRouterAdvertisements,
): Promise<BridgeInfo> {
  const { name, logger } = opts;
  let link = await showLink(ip, name);
  let created = false;
  if (!link) {
    const mac = opts.mac ?? pinnedMacFor(name);
    try {
      await createBridge(ip, name, mac, logger);
    } catch (err) {
      throw new NatdError(ErrorCodes.BRIDGE, `cannot create bridge ${name}: ${(err as Error).message}`, { cause: err });
    }
    created = true;
    logger.info('created bridge', { bridge: name, mac });
    await guardIpv6(name, logger);
    link = await showLink(ip, name);
    if (!link) throw new NatdError(ErrorCodes.BRIDGE, `bridge ${name} vanished right after creation`);
  } else if (link.linkinfo?.info_kind && link.linkinfo.info_kind !== 'bridge') {
    throw new NatdError(ErrorCodes.BRIDGE, `${name} exists but is a ${link.linkinfo.info_kind}, not a bridge`);
  } else {
    await guardIpv6(name, logger);
    await forgetRouterAdvertisements(ip, name, logger);
  }

  const existing = (link.addr_info ?? []).filter((a) => a.family === 'inet');
  let cidrText = opts.wantedCidr;
  if (!cidrText) {
    const first = existing[0];
    cidrText = first ? `${first.local}/${first.prefixlen}` : opts.defaultCidr;
  }
  const cidr = parseCidr(cidrText);
  if (!cidr) throw new NatdError(ErrorCodes.CONFIG, `subnet: cannot parse ${cidrText}`);
  const gatewayText = formatIpv4(cidr.address);
  if (!existing.some((a) => a.local === gatewayText && a.prefixlen === cidr.subnet.prefix)) {
    try {
      await ip(['addr', 'add', `${gatewayText}/${cidr.subnet.prefix}`, 'brd', '+', 'dev', name]);
    } catch (err) {
      throw new NatdError(ErrorCodes.BRIDGE, `cannot add ${cidrText} to ${name}: ${(err as Error).message}`, { cause: err });
    }
    logger.info('added gateway address to bridge', { bridge: name, address: cidrText });
  }
  if (opts.mtu !== undefined && link.mtu !== opts.mtu) await setMtu(ip, name, opts.mtu, logger);
  if (link.operstate === undefined || link.operstate === 'DOWN' || created) await ip(['link', 'set', name, 'up']);

  const after = await showLink(ip, name);
  return { name, mac: after?.address ?? link.address ?? '', gateway: cidr.address, subnet: cidr.subnet, created };
}
