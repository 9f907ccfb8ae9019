/** Kernel switches natd needs. Written through /proc/sys, which is per network namespace for these keys. */
import { access, readFile, writeFile } from 'node:fs/promises';
import type { Logger } from '../log.js';

/** path: the key's segments (an interface name may itself contain dots). */
async function setSysctl(path: string[], value: string, logger: Logger): Promise<void> {
  const key = path.join('.');
  const file = `/proc/sys/${path.join('/')}`;
  const before = (await readFile(file, 'utf8')).trim();
  if (before === value) {
    logger.info('sysctl already set', { key, value });
    return;
  }
  await writeFile(file, value);
  logger.info('sysctl set', { key, from: before, to: value });
}

/** Routing between the bridge and the uplink: net.ipv4.ip_forward and the bridge's own forwarding switch. */
export async function enableForwarding(bridge: string, logger: Logger): Promise<void> {
  await setSysctl(['net', 'ipv4', 'ip_forward'], '1', logger);
  await setSysctl(['net', 'ipv4', 'conf', bridge, 'forwarding'], '1', logger);
}

/**
 * The bridge's IPv6 switches that let a guest steer the host: with the kernel defaults, one Router Advertisement
 * from a guest gives the host an address in the guest's prefix (autoconf) and a default route via the guest
 * (accept_ra), and an ICMPv6 Redirect can move a route to it (accept_redirects). natd serves no IPv6 on the bridge,
 * so nothing legitimate there needs them; libvirt turns accept_ra and autoconf off on its NAT bridges for the same
 * reason. Called before the bridge goes up when natd creates it, so there is no window in which an RA is accepted.
 */
export const BRIDGE_IPV6_SWITCHES_OFF = ['accept_ra', 'autoconf', 'accept_redirects'] as const;

export async function refuseRouterAdvertisements(bridge: string, logger: Logger): Promise<void> {
  try {
    await access('/proc/sys/net/ipv6');
  } catch {
    logger.info('IPv6 is disabled on this host; no router advertisements to refuse on the bridge', { bridge });
    return;
  }
  for (const key of BRIDGE_IPV6_SWITCHES_OFF) await setSysctl(['net', 'ipv6', 'conf', bridge, key], '0', logger);
}
