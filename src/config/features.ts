/**
 * The structured values of the DNS and DHCP breadth settings (issues 15 and 16), parsed after the schema passed, each
 * problem pushed with its field named: the lease script, custom records, DHCP options, domain routes and upstreams,
 * extra listen addresses, DDNS, and IPv6 (issue 14).
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { checkRecordSet, parseRecordSettings } from '../dns/record-config.js';
import type { SourcedSpec } from '../dns/record-zone.js';
import { dhcpOptionSpecs } from '../dhcp/option-config.js';
import type { OptionSpec } from '../dhcp/option-spec.js';
import { parseServerSpec, parseUpstreamAddress, planRoutes, type RoutePlan, type ServerSpec, type UpstreamAddress } from '../dns/domain-routes.js';
import { resolveDdns, type DdnsConfig } from '../ddns/settings.js';
import { formatIpv4, parseIpv4 } from '../net/ipv4.js';
import { ipv6Setting, type Ipv6Setting } from '../ipv6/settings.js';

/** What featureParts reads: the schema's output for these fields. */
export interface FeatureSettings {
  domain?: string | undefined;
  dhcpScript?: string | undefined;
  hostRecord: string[]; cname: string[]; srvHost: string[]; txtRecord: string[]; mxHost: string[]; ptrRecord: string[]; address: string[];
  localTtl: number;
  dhcpOptions: string[]; dhcpOptionsForce: string[]; dhcpDns?: string[] | undefined;
  upstreams: string[]; server: string[]; local: string[]; listenAddress: string[];
  ipv6?: 'auto' | 'off' | undefined; subnet6?: string | undefined;
}

export interface FeatureParts {
  records: readonly SourcedSpec[];
  dhcpOptions: readonly OptionSpec[];
  upstreamServers: readonly UpstreamAddress[];
  domainRoutes: readonly RoutePlan[];
  listenAddresses: readonly string[];
  ddns: DdnsConfig | undefined;
  /** issue 14 */
  ipv6: Ipv6Setting | undefined;
}

export function featureParts(s: FeatureSettings & Parameters<typeof resolveDdns>[0], reservations: readonly { hostname?: string }[], problems: string[]): FeatureParts {
  if (s.dhcpScript !== undefined) {
    const why = executableProblem(s.dhcpScript);
    if (why) problems.push(`dhcpScript: ${s.dhcpScript} ${why}`);
  }
  // issue 15: the records as one set, checked against each other and against the reservations' names
  const recordSettings = { hostRecord: s.hostRecord, cname: s.cname, srvHost: s.srvHost, txtRecord: s.txtRecord, mxHost: s.mxHost, ptrRecord: s.ptrRecord, address: s.address };
  const parsedRecords = parseRecordSettings(recordSettings, { domain: s.domain });
  problems.push(...parsedRecords.problems);
  const reservedNames = reservations.flatMap((r, i) => (r.hostname ? [{ name: r.hostname, field: `reservations.${i}.hostname` }] : []));
  problems.push(...checkRecordSet(parsedRecords.specs, { domain: s.domain, ttl: s.localTtl, reservedNames }).problems);
  const dhcpOptions = dhcpOptionSpecs({ dhcpOptions: s.dhcpOptions, dhcpOptionsForce: s.dhcpOptionsForce, dhcpDns: s.dhcpDns }, problems);
  const dnsRoutes = parseDnsRoutes(s.upstreams, s.server, s.local, problems);
  // natd answers every name in its own domain itself (local names, else NXDOMAIN): a route there would never be used
  const own = s.domain?.toLowerCase();
  for (const r of dnsRoutes.routes) {
    if (own !== undefined && r.kind === 'forward' && (r.domain === own || r.domain.endsWith(`.${own}`))) {
      problems.push(`server: ${r.domain} is inside natd's own domain ${own}, whose names natd answers itself (local names, else NXDOMAIN); it cannot be forwarded`);
    }
  }
  const listenAddresses = parseListenAddresses(s.listenAddress, dnsRoutes, problems);
  return {
    records: Object.freeze(parsedRecords.specs.map((r) => Object.freeze(r))),
    dhcpOptions: Object.freeze(dhcpOptions),
    upstreamServers: Object.freeze(dnsRoutes.upstreams),
    domainRoutes: Object.freeze(dnsRoutes.routes),
    listenAddresses: Object.freeze(listenAddresses),
    ddns: resolveDdns(s, problems),
    ipv6: ipv6Setting(s.ipv6, s.subnet6, problems), // issue 14
  };
}

/** Why `file` cannot be run as natd's lease script, or undefined when it can. */
function executableProblem(file: string): string | undefined {
  try {
    if (!statSync(file).isFile()) return 'is not a regular file';
    accessSync(file, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not executable' : `cannot be used (${code ?? 'error'})`;
  }
}

/**
 * Issue 15: --listen-address. natd is never an open resolver, so an extra address must be loopback (the host's own
 * resolver, e.g. 127.0.0.1); it serves 127.0.0.0/8 only. An upstream on one of them would be natd asking itself.
 */
function parseListenAddresses(entries: readonly string[], dns: { upstreams: UpstreamAddress[]; routes: RoutePlan[] }, problems: string[]): string[] {
  const out: string[] = [];
  entries.forEach((text, i) => {
    const address = parseIpv4(text.trim());
    if (address === undefined || address >>> 24 !== 127) {
      problems.push(`listenAddress.${i}: expected a loopback IPv4 address such as 127.0.0.1 (natd serves guests on the bridge gateway and, besides, only the host itself) (got "${text}")`);
      return;
    }
    const canonical = formatIpv4(address);
    const servers = [...dns.upstreams, ...dns.routes.flatMap((r) => r.servers)];
    if (servers.some((u) => u.address === canonical && u.port === 53)) problems.push(`listenAddress.${i}: ${canonical} is also an upstream: natd would forward to itself`);
    if (!out.includes(canonical)) out.push(canonical);
  });
  return out;
}

/**
 * Issue 15: --upstream, --server and --local entries → the default upstreams and the domain routes
 * (dns/domain-routes.ts). Problems name the field and entry.
 */
function parseDnsRoutes(upstreams: readonly string[], server: readonly string[], local: readonly string[], problems: string[]): { upstreams: UpstreamAddress[]; routes: RoutePlan[] } {
  const specs: ServerSpec[] = [];
  const names: string[] = [];
  upstreams.forEach((text, i) => {
    try {
      specs.push({ kind: 'upstream', server: parseUpstreamAddress(text) });
      names.push(`upstreams.${i}`);
    } catch (err) {
      problems.push(`upstreams.${i}: ${(err as Error).message}`);
    }
  });
  const entries: [string, readonly string[]][] = [['server', server], ['local', local]];
  for (const [field, list] of entries) {
    list.forEach((text, i) => {
      try {
        specs.push(parseServerSpec(text, field as 'server' | 'local'));
        names.push(`${field}.${i}`);
      } catch (err) {
        problems.push(`${field}.${i}: ${(err as Error).message}`);
      }
    });
  }
  try {
    return planRoutes(specs, names);
  } catch (err) {
    problems.push(`server/local: ${(err as Error).message}`);
    return { upstreams: [], routes: [] };
  }
}

