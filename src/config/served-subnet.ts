/**
 * The checks that need the subnet natd will serve, in one place. The configuration loader runs them when --subnet
 * is given; `natd check-config` and the daemon (before anything on the system changes) run them against the subnet
 * the bridge step will pick by the same precedence: --subnet, the bridge's current address, the default.
 * So a reservation on the network, broadcast or gateway address, a range or route outside the subnet, a forward
 * to a guest outside it or one bound to the gateway on natd's DNS/DHCP (or TFTP) ports is refused by check-config exactly
 * when the daemon would refuse to start with it.
 */
import { readFile } from 'node:fs/promises';
import { DEFAULT_SUBNET } from '../defaults.js';
import { parseHostsfile } from '../dhcp/hostsfile.js';
import { describeAddressProblem, reservedAddressProblem } from '../dhcp/reservation-rules.js';
import { ErrorCodes, NatdError } from '../errors.js';
import { formatIpv4, parseCidr, subnetContains, type Subnet } from '../net/ipv4.js';
import { parsableForwards } from '../nft/forward-spec.js';
import { configuredCaptureProblems } from '../nft/forward-services.js';
import { exposeSubnetProblems } from './expose.js'; // issue 17
import type { TftpSettings } from '../tftp/settings.js';

/** The parts of the configuration whose validity depends on the served subnet. */
export interface SubnetBound {
  readonly dhcpRange: { readonly start: number; readonly end: number } | undefined;
  readonly routes: readonly { readonly router: number }[];
  readonly reservations: readonly { readonly address: number }[];
  readonly forwards: readonly string[];
  /** issue 17: the name routes (address guests must be guests of the served subnet) */
  readonly expose?: Parameters<typeof exposeSubnetProblems>[0];
  /** issue 16: natd's TFTP server (--enable-tftp) serves UDP 69 on the gateway, so a forward there is refused too */
  readonly tftp?: TftpSettings | undefined;
}

export interface Served {
  readonly subnet: Subnet;
  readonly gateway: number;
}

/** Every problem of `c` against the served subnet, each naming its field. */
export function subnetProblems(c: SubnetBound, served: Served): string[] {
  const { subnet, gateway } = served;
  const where = `subnet ${formatIpv4(gateway)}/${subnet.prefix}`;
  const problems: string[] = [];
  const inside = (a: number) => subnetContains(subnet, a);
  if (c.dhcpRange && (!inside(c.dhcpRange.start) || !inside(c.dhcpRange.end)))
    problems.push(`dhcpRange: ${formatIpv4(c.dhcpRange.start)}-${formatIpv4(c.dhcpRange.end)} is not inside ${where}`);
  c.routes.forEach((r, i) => {
    if (!inside(r.router)) problems.push(`routes.${i}: router ${formatIpv4(r.router)} is not inside ${where}`);
  });
  c.reservations.forEach((r, i) => {
    const problem = reservedAddressProblem(r.address, subnet, gateway);
    if (problem) problems.push(`reservations.${i}.address: ${describeAddressProblem(problem, r.address, subnet)}; not a guest address`);
  });
  for (const { index, text, spec } of parsableForwards(c.forwards)) {
    if ('address' in spec.guest && !inside(spec.guest.address))
      problems.push(`forwards.${index}: "${text}": guest ${formatIpv4(spec.guest.address)} is not inside ${where}`);
  }
  // a forward bound to the gateway (or the broadcast) on natd's DNS/DHCP (TFTP) ports would capture the guests' traffic
  problems.push(...configuredCaptureProblems(c.forwards, 'ipv4', { gateway, broadcast: subnet.broadcast, tftp: c.tftp !== undefined }));
  if (c.expose) problems.push(...exposeSubnetProblems(c.expose, served)); // issue 17
  return problems;
}

export function configError(problems: string[]): NatdError {
  const text = problems.length === 1 ? problems[0]! : `${problems.length} problems:\n  ${problems.join('\n  ')}`;
  return new NatdError(ErrorCodes.CONFIG, `invalid configuration: ${text}`);
}

/**
 * The subnet the bridge step will serve: --subnet, else the bridge's current address, else the default (natd then
 * creates the bridge with it). `readCidr` only reads (ip -j addr show).
 */
export async function plannedSubnet(c: { readonly bridge: string; readonly subnetCidr: string | undefined }, readCidr: (bridge: string) => Promise<string | undefined>): Promise<Served> {
  const text = c.subnetCidr ?? (await readCidr(c.bridge)) ?? DEFAULT_SUBNET;
  const cidr = parseCidr(text);
  if (!cidr) throw configError([`subnet: cannot parse the bridge's address (got "${text}")`]);
  return { subnet: cidr.subnet, gateway: cidr.address };
}

/** Throws NatdError(CONFIG) listing every problem against the planned subnet; returns that subnet. */
export async function checkServedSubnet(c: SubnetBound & { readonly bridge: string; readonly subnetCidr: string | undefined }, readCidr: (bridge: string) => Promise<string | undefined>): Promise<Served> {
  const served = await plannedSubnet(c, readCidr);
  const problems = subnetProblems(c, served);
  if (problems.length) throw configError(problems);
  return served;
}

/**
 * The hostsfile as the daemon will load it: every line it would skip (or a file it cannot read), as `hostsfile:`
 * problems with file:line. The daemon skips such lines with a warning and loads the rest (as dnsmasq does);
 * check-config reports them so an operator sees them before they matter.
 */
export async function hostsfileProblems(file: string | undefined, served: Served, domain: string | undefined): Promise<string[]> {
  if (file === undefined) return [];
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    return [`hostsfile: cannot read ${file}: ${(err as Error).message}`];
  }
  const parsed = parseHostsfile(text, file, served.subnet, domain, served.gateway);
  const { parseHostsfile6 } = await import('../dhcp6/hostsfile6.js'); // (lazy: dhcp6/settings.ts imports this module)
  const v6 = parseHostsfile6(text, file); // issue 14: the IPv6 lines (placed in the /64 by check-config's DHCPv6 check)
  return [...parsed.problems, ...v6.problems].filter((p) => p.skipped).map((p) => `hostsfile: ${p.file}:${p.line}: ${p.message}`);
}


/**
 * `natd check-config` beyond the loader: the configuration against the subnet the daemon would serve (read-only:
 * the bridge's current address when --subnet is not given), and the hostsfile's lines the daemon would skip.
 * Returns the served subnet as text (gateway/prefix) for the report.
 */
export async function checkBeforeStart(
  c: SubnetBound & { readonly bridge: string; readonly subnetCidr: string | undefined; readonly hostsfile: string | undefined; readonly domain: string | undefined },
  readCidr: (bridge: string) => Promise<string | undefined>,
): Promise<string> {
  const served = await checkServedSubnet(c, readCidr);
  const problems = await hostsfileProblems(c.hostsfile, served, c.domain);
  if (problems.length) throw configError(problems);
  return `${formatIpv4(served.gateway)}/${served.subnet.prefix}`;
}
