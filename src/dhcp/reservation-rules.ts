/**
 * What makes a reservation acceptable, in one place: the config loader, the hostsfile parser, the daemon's loader and
 * its runtime `reservations add`, and the dnsmasq importer ask these functions and differ only in what they do with
 * a problem (reject the config, skip the line with file:line, skip with a warning, refuse the command).
 * The DHCP pool keeps its own guard (pool.ts setReservations): the core stays consistent whatever it is given.
 */
import { deniedNameReason } from '../dns/denied-names.js';
import { formatIpv4, formatSubnet, subnetContains, type Subnet } from '../net/ipv4.js';
import type { Reservation } from './types.js';

/** Why an address cannot be reserved for a guest. */
export type AddressProblem = 'outside' | 'network' | 'broadcast' | 'gateway';

/**
 * A guest address is inside the subnet and is neither its network, its broadcast nor the gateway's address (the
 * pool never hands those out either). `gateway` is unknown before the bridge is (config time).
 */
export function reservedAddressProblem(address: number, subnet: Subnet, gateway?: number): AddressProblem | undefined {
  if (!subnetContains(subnet, address)) return 'outside';
  if (address === subnet.network) return 'network';
  if (address === subnet.broadcast) return 'broadcast';
  if (gateway !== undefined && address === gateway) return 'gateway';
  return undefined;
}

/** "10.0.0.1 is the gateway's address", for log lines and errors. */
export function describeAddressProblem(problem: AddressProblem, address: number, subnet: Subnet): string {
  const ip = formatIpv4(address);
  switch (problem) {
    case 'outside':
      return `${ip} is outside the subnet ${formatSubnet(subnet)}`;
    case 'network':
    case 'broadcast':
      return `${ip} is the subnet's ${problem} address`;
    case 'gateway':
      return `${ip} is the gateway's address`;
  }
}

/** Why natd would never publish this reserved name (the deny list), or undefined. */
export function reservedNameProblem(hostname: string, domain: string | undefined): string | undefined {
  return deniedNameReason(hostname, { domain });
}

/**
 * The earlier reservation that `candidate` collides with: same MAC or same address, and with `byName` also the same
 * host name. The first definition wins everywhere (config before hostsfile before runtime, line order in a file).
 */
export function reservationClash<T extends Reservation>(earlier: readonly T[], candidate: Reservation, opts: { byName?: boolean } = {}): T | undefined {
  return earlier.find(
    (r) => r.mac === candidate.mac || r.address === candidate.address || (opts.byName === true && candidate.hostname !== undefined && r.hostname === candidate.hostname),
  );
}
