/**
 * The structured values of the settings, each parsed after the schema passed: every problem is pushed with its
 * field named, so all are reported together. What needs the served subnet is in served-subnet.ts.
 */
import { reservedNameProblem } from '../dhcp/reservation-rules.js';
import { formatIpv4, normalizeMac, parseCidr, parseIpv4 } from '../net/ipv4.js';
import { parseForwardSpec } from '../nft/forward-spec.js';
import { configuredCaptureProblems } from '../nft/forward-services.js';
import type { Served } from './served-subnet.js';
import { reservationOptionSpecs } from '../dhcp/option-config.js';
import type { OptionSpec } from '../dhcp/option-spec.js';

type Problems = string[];

/** `subnet`: the gateway address with its prefix. */
export function parseSubnet(text: string, problems: Problems): Served {
  const cidr = parseCidr(text)!; // the schema checked that it parses
  if (cidr.subnet.prefix > 30) problems.push(`subnet: prefix /${cidr.subnet.prefix} leaves no room for guests (got "${text}")`);
  if (cidr.address === cidr.subnet.network || cidr.address === cidr.subnet.broadcast)
    problems.push(`subnet: give the gateway address, not the network or broadcast address (got "${text}")`);
  return { subnet: cidr.subnet, gateway: cidr.address };
}

/** `dhcpRange`: START-END. */
export function parseDhcpRange(text: string, problems: Problems): { readonly start: number; readonly end: number } | undefined {
  const [a, b] = text.split('-');
  const start = parseIpv4(a!);
  const end = parseIpv4(b!);
  if (start === undefined || end === undefined) problems.push(`dhcpRange: not two IPv4 addresses (got "${text}")`);
  else if (start > end) problems.push(`dhcpRange: start is after end (got "${text}")`);
  else return Object.freeze({ start, end });
  return undefined;
}

export interface Route {
  readonly network: number;
  readonly prefix: number;
  readonly router: number;
}

/** `routes`: NETWORK/PREFIX=ROUTER each. */
export function parseRoutes(texts: readonly string[], problems: Problems): Route[] {
  return texts.map((text, i) => {
    const [cidrText, routerText] = text.split('=');
    const cidr = parseCidr(cidrText!);
    const router = parseIpv4(routerText!);
    if (!cidr || router === undefined) {
      problems.push(`routes.${i}: not NETWORK/PREFIX=ROUTER (got "${text}")`);
      return undefined;
    }
    if (cidr.address !== cidr.subnet.network) problems.push(`routes.${i}: ${cidrText} has host bits set; use ${formatIpv4(cidr.subnet.network)}/${cidr.subnet.prefix}`);
    return Object.freeze({ network: cidr.subnet.network, prefix: cidr.subnet.prefix, router });
  }).filter((r) => r !== undefined);
}

export interface ConfigReservation {
  readonly mac: string;
  readonly address: number;
  readonly hostname?: string;
  /** issue 16: dnsmasq dhcp-host set:TAG (lower case), the host's own --dhcp-option specs, its lease time */
  readonly tags?: readonly string[];
  readonly options?: readonly OptionSpec[];
  readonly leaseSeconds?: number;
}

type ReservationSettings = { mac: string; address: string; hostname?: string | undefined; tags?: string[] | undefined; options?: string[] | undefined; leaseTime?: number | undefined };

/** `reservations`: the schema checked MAC and address syntax; here the names natd would never publish, and options. */
export function parseReservations(list: readonly ReservationSettings[], domain: string | undefined, problems: Problems): ConfigReservation[] {
  return list.map((r, i) => {
    const address = parseIpv4(r.address)!;
    const denied = r.hostname === undefined ? undefined : reservedNameProblem(r.hostname, domain);
    if (denied) problems.push(`reservations.${i}.hostname: "${r.hostname}" is ${denied}; natd never publishes it`);
    const options = r.options ? reservationOptionSpecs(r.options, `reservations.${i}.options`, problems) : [];
    return Object.freeze({
      mac: normalizeMac(r.mac)!, address, ...(r.hostname ? { hostname: r.hostname.toLowerCase() } : {}),
      ...(r.tags?.length ? { tags: Object.freeze([...new Set(r.tags.map((t) => t.toLowerCase()))]) } : {}),
      ...(options.length ? { options: Object.freeze(options) } : {}),
      ...(r.leaseTime !== undefined ? { leaseSeconds: r.leaseTime } : {}),
    });
  });
}

/**
 * `forwards`: parsed here too, so check-config rejects a spec before the daemon has touched the bridge or nftables;
 * and none on every local address may take the guests' DNS/DHCP, or their TFTP when `tftp` (--enable-tftp) is on
 * (the bound ones: served-subnet.ts, egress-config.ts).
 */
export function checkForwards(texts: readonly string[], problems: Problems, tftp = false): void {
  texts.forEach((text, i) => {
    try {
      parseForwardSpec(text);
    } catch (err) {
      problems.push(`forwards.${i}: ${(err as Error).message}`);
    }
  });
  problems.push(...configuredCaptureProblems(texts, 'any', { tftp })); // on every local address: the gateway's too
}

/** `searchDomains`, lower case; by default the domain alone. */
export function searchDomainsOf(searchDomains: readonly string[] | undefined, domain: string | undefined): string[] {
  return (searchDomains ?? (domain ? [domain] : [])).map((d) => d.toLowerCase());
}
