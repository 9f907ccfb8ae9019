/**
 * issue 14: the configuration checks of the IPv6 egress side, pushed as problems naming their field (config.ts):
 * `ipv6Mode` (--ipv6-mode nat|routed) against the prefix, and IPv6 port forwards against the prefix.
 *
 * routed needs a global prefix the operator routes to this host: a unique-local one (fc00::/7, which --ipv6 auto
 * always is) cannot be reached from outside, so guests behind it need NAT66 (nat, the default).
 */
import { formatIpv6, networkOf, parseIpv6, sameBytes, type Ipv6Bytes } from './address.js';
import type { Ipv6Setting } from './settings.js';
import { isIpv6Only, parsableForwards } from '../nft/forward-spec.js';
import { configuredCaptureProblems } from '../nft/forward-services.js';

export type Ipv6Mode = 'nat' | 'routed';
export const IPV6_MODES: readonly Ipv6Mode[] = ['nat', 'routed'];

/** True for fc00::/7 (RFC 4193 unique-local). */
export function isUniqueLocal(address: Uint8Array): boolean {
  return (address[0]! & 0xfe) === 0xfc;
}

export function ipv6ModeProblems(mode: Ipv6Mode, setting: Ipv6Setting | undefined, problems: string[]): void {
  if (mode !== 'routed') return;
  if (setting === undefined) {
    problems.push('ipv6Mode: routed needs the global prefix routed to this host in subnet6 (natd serves no IPv6 without it)');
  } else if (setting.mode === 'auto') {
    problems.push('ipv6Mode: routed needs a global prefix in subnet6; ipv6 "auto" is a unique-local (fd00::/8) prefix that cannot be routed to this host (use nat, the default)');
  } else {
    const gateway = parseIpv6(setting.cidr.split('/')[0]!);
    if (gateway && isUniqueLocal(gateway)) problems.push(`ipv6Mode: routed needs a global prefix, but subnet6 ${setting.cidr} is unique-local (fc00::/7) and cannot be routed to this host (use nat, the default)`);
  }
}

/** IPv6 forwards need IPv6 on the bridge, and an IPv6 guest address inside subnet6 (when it is given). */
export function ipv6ForwardProblems(forwards: readonly string[], setting: Ipv6Setting | undefined, problems: string[]): void {
  const network = setting?.mode === 'subnet' ? networkOf(parseIpv6(setting.cidr.split('/')[0]!)!, 64) : undefined;
  for (const { index: i, text, spec } of parsableForwards(forwards)) {
    if (!isIpv6Only(spec)) continue;
    if (setting === undefined) {
      problems.push(`forwards.${i}: "${text}" is over IPv6, but natd serves no IPv6 on the bridge (give subnet6 or ipv6 auto)`);
      continue;
    }
    if (network && 'address6' in spec.guest && !sameBytes(networkOf(parseIpv6(spec.guest.address6)!, 64), network))
      problems.push(`forwards.${i}: "${text}": guest ${spec.guest.address6} is not inside subnet6 ${setting.mode === 'subnet' ? setting.cidr : ''}`);
  }
  // a forward bound to the IPv6 gateway on natd's DNS/DHCPv6 ports would capture the guests' traffic (ipv6 auto:
  // the gateway is derived at start, so check-config runs forwards6CaptureProblems with it)
  if (setting?.mode === 'subnet') problems.push(...forwards6CaptureProblems(forwards, parseIpv6(setting.cidr.split('/')[0]!)!));
}

/** The configured forwards bound to the IPv6 gateway `gateway` on natd's DNS/DHCPv6 ports (forward-services.ts). */
export function forwards6CaptureProblems(forwards: readonly string[], gateway: Ipv6Bytes): string[] {
  return configuredCaptureProblems(forwards, 'ipv6', { gateway6: formatIpv6(gateway) });
}
