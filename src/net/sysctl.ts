/** Kernel switches natd needs. Written through /proc/sys, which is per network namespace for these keys. */
import { readFile, writeFile } from 'node:fs/promises';
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
