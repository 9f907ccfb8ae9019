/** The DHCP range natd picks when none is configured, and its text form. */
import { formatIpv4, type Subnet } from '../net/ipv4.js';

/** Default dynamic range for a subnet: skip the first 9 hosts (gateway, static guests), end before broadcast. */
export function defaultDhcpRange(subnet: Subnet, gateway: number): { start: number; end: number } {
  const size = subnet.broadcast - subnet.network - 1;
  const skip = size > 20 ? 9 : 1;
  let start = subnet.network + 1 + skip;
  const end = subnet.broadcast - 1;
  if (start === gateway) start++;
  return { start, end };
}

export function describeRange(range: { start: number; end: number }): string {
  return `${formatIpv4(range.start)}-${formatIpv4(range.end)}`;
}
