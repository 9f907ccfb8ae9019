/**
 * issue 14: the IPv6 settings (`--subnet6 ADDR/64`, `--ipv6 auto|off`) checked into what the daemon serves. Pure:
 * the ULA of `auto` is derived at start (it reads the machine-id), see ula.ts.
 */
import { formatIpv6, isLinkLocal, isMulticast, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from './address.js';
import { deriveUla } from './ula.js';

/** What the config says: an explicit gateway/64, or a ULA derived from the bridge name. */
export type Ipv6Setting = { readonly mode: 'subnet'; readonly cidr: string } | { readonly mode: 'auto' };

/** The IPv6 natd serves on the bridge. */
export interface Ipv6Served {
  gateway: Ipv6Bytes;
  network: Ipv6Bytes;
  prefix: 64;
  /** "fd..::1/64" */
  gatewayCidr: string;
  /** "fd..::/64" */
  networkCidr: string;
  /** where the prefix came from, for logs and status */
  source: 'subnet6' | 'auto';
}

/** A problem with a `subnet6` value, or undefined when it is a usable gateway/64. */
export function subnet6Problem(text: string): string | undefined {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
  const address = m ? parseIpv6(m[1]!) : undefined;
  if (!m || !address) return `expected the gateway's IPv6 address with prefix, e.g. fd00:10:10::1/64 (got "${text}")`;
  if (Number(m[2]) !== 64) return `the prefix must be /64, the length SLAAC needs (got "${text}")`;
  if (isLinkLocal(address) || isMulticast(address) || address.every((b) => b === 0) || (address.slice(0, 15).every((b) => b === 0) && address[15] === 1))
    return `give a global or unique-local address, not link-local, multicast, :: or ::1 (got "${text}")`;
  if (sameBytes(networkOf(address, 64), address)) return `give the gateway address, not the network address, e.g. ${formatIpv6(address).replace(/::$/, '::1')}/64 (got "${text}")`;
  return undefined;
}

/** `ipv6` + `subnet6` → the setting, pushing problems (with the field named) as config.ts does. */
export function ipv6Setting(ipv6: 'auto' | 'off' | undefined, subnet6: string | undefined, problems: string[]): Ipv6Setting | undefined {
  if (subnet6 !== undefined) {
    if (ipv6 !== undefined) problems.push(`ipv6: give either ipv6 "${ipv6}" or subnet6, not both (got subnet6 "${subnet6}")`);
    const why = subnet6Problem(subnet6);
    if (why) problems.push(`subnet6: ${why}`);
    return why ? undefined : Object.freeze({ mode: 'subnet' as const, cidr: subnet6.trim() });
  }
  return ipv6 === 'auto' ? Object.freeze({ mode: 'auto' as const }) : undefined;
}

/** The served prefix for a setting; `auto` needs the bridge name and the machine-id (ula.ts). */
export function servedIpv6(setting: Ipv6Setting, bridge: string, machineId: string | undefined): Ipv6Served {
  let gateway: Ipv6Bytes;
  if (setting.mode === 'subnet') gateway = parseIpv6(setting.cidr.split('/')[0]!)!;
  else gateway = deriveUla(bridge, machineId).gateway;
  const network = networkOf(gateway, 64);
  return {
    gateway,
    network,
    prefix: 64,
    gatewayCidr: `${formatIpv6(gateway)}/64`,
    networkCidr: `${formatIpv6(network)}/64`,
    source: setting.mode === 'subnet' ? 'subnet6' : 'auto',
  };
}
