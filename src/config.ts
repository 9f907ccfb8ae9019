/**
 * Configuration: flags and an optional JSON config file, validated once with zod into one frozen object.
 * Flags win over the file. Every problem is reported together, each naming its field and value, and nothing on
 * the system is touched before validation passes.
 *
 * This module holds what every new setting adds to (RawSettings, the schema, Config, buildConfig); the parsing of
 * structured values is in config/: values.ts (zod pieces), parts.ts (subnet, range, routes, reservations, forwards),
 * served-subnet.ts (checks against the served subnet, shared with check-config and the daemon), metrics-listen.ts,
 * guest-to-host.ts, file.ts (the config file, problem text), range.ts (the default DHCP range).
 */
import { z } from 'zod/v3'; // zod's v3 API, for memory (issue 7): config/values.ts says why
import { formatIpv4, normalizeMac, parseCidr } from './net/ipv4.js';
import type { LogLevel } from './log.js';
import type { HostService } from './nft/ruleset.js';
import { dhcpOptionProblems } from './dhcp/configured-options.js';
import { configError, subnetProblems } from './config/served-subnet.js';
import { DEFAULT_LEASE_SECONDS, DEFAULT_RESOLV_CONF, SETTING_DEFAULTS as D, defaultControlSocket, defaultStateDir } from './defaults.js';
import { DOMAIN_RE, hint, reservationSchema as baseReservation, sizeBytes } from './config/values.js';
import { parseMetricsListen, type MetricsListen } from './config/metrics-listen.js';
import { parseGuestToHost } from './config/guest-to-host.js';
import { mergeSettings, schemaProblems } from './config/file.js';
import { checkForwards, parseReservations, type ConfigReservation, parseRoutes, parseSubnet, searchDomainsOf } from './config/parts.js';
import { featureParts } from './config/features.js';
import { parseBootSettings } from './tftp/settings.js';
import { DEFAULT_LOCAL_TTL } from './dns/record-config.js';
import type { SourcedSpec } from './dns/record-zone.js';
import { LEASE_TIME_HINT, parseDhcpRange, parseLeaseTime } from './dhcp/option-config.js';
import type { OptionSpec } from './dhcp/option-spec.js';
import type { RoutePlan, UpstreamAddress } from './dns/domain-routes.js';
import type { DdnsConfig } from './ddns/settings.js';
import type { BootSettings } from './tftp/settings.js';
// issue 14: IPv6 for the guests
import type { Ipv6Setting } from './ipv6/settings.js';
import { ipv6ForwardProblems, ipv6ModeProblems, type Ipv6Mode } from './ipv6/egress-config.js'; // issue 14
// issue 17: the name router for shared ports 80/443
import { exposeSchemaFields, parseExposeSettings, type ExposeConfig } from './config/expose.js';
import { dhcp6Setting, splitDhcpFamilies, type Dhcp6Setting } from './dhcp6/settings.js';

// kept importable from here for the modules that always took them from config.js
export { DEFAULT_LEASE_SECONDS, DEFAULT_RUN_ROOT, DEFAULT_STATE_ROOT, DEFAULT_SUBNET } from './defaults.js';
export { readConfigFile } from './config/file.js';
export { defaultDhcpRange, describeRange } from './config/range.js';
export type { MetricsListen } from './config/metrics-listen.js';

/** Raw settings before validation: the union of what flags and the config file can say. */
export interface RawSettings {
  bridge?: unknown;
  subnet?: unknown;
  dhcpRange?: unknown;
  leaseTime?: unknown;
  domain?: unknown;
  upstreams?: unknown;
  stateDir?: unknown;
  controlSocket?: unknown;
  forwards?: unknown;
  hostsfile?: unknown;
  addnHosts?: unknown;
  reservations?: unknown;
  logLevel?: unknown;
  bridgeMac?: unknown;
  cacheSize?: unknown;
  masqueradePorts?: unknown;
  resolvConf?: unknown;
  dns?: unknown;
  firewall?: unknown;
  metricsListen?: unknown;
  allowIpv6Forward?: unknown;
  searchDomains?: unknown;
  routes?: unknown;
  conflictProbe?: unknown;
  // issue 12, hostile guests (DNS): limits that bound what one guest can take
  cacheMaxBytes?: unknown;
  dnsForwardMax?: unknown;
  dnsMaxPendingPerClient?: unknown;
  dnsMaxTcpPerClient?: unknown;
  /** let --metrics-listen take an address other than loopback (the endpoint has no authentication) */
  metricsAllowRemote?: unknown;
  /** host services guests may reach besides DHCP/DNS/ping: [tcp|udp:]PORT[-PORT], or 'all' */
  guestToHost?: unknown;
  /** issue 12: bound on quarantined (declined) addresses */
  dhcpMaxDeclinedPercent?: unknown;
  /** issue 13: how long the conflict probe waits for an ARP answer before an OFFER, ms */
  dhcpProbeTimeoutMs?: unknown;
  // issue 16, PXE boot (dnsmasq names): boot entries, the tag rules that pick one, and the built-in TFTP server
  dhcpBoot?: unknown;
  dhcpMatch?: unknown;
  dhcpUserclass?: unknown;
  dhcpVendorclass?: unknown;
  enableTftp?: unknown;
  tftpRoot?: unknown;
  tftpMax?: unknown;
  /** issue 16: lease events: dnsmasq's dhcp-script, and how long one run may take */
  dhcpScript?: unknown;
  dhcpScriptTimeout?: unknown;
  // issue 15: custom DNS records, each in its dnsmasq option's value syntax; the TTL of natd's own answers
  hostRecord?: unknown;
  cname?: unknown;
  srvHost?: unknown;
  txtRecord?: unknown;
  mxHost?: unknown;
  ptrRecord?: unknown;
  address?: unknown;
  localTtl?: unknown;
  // issue 16: DHCP options (dnsmasq --dhcp-option / --dhcp-option-force), other DNS servers, MTU, Rapid Commit
  dhcpOptions?: unknown;
  dhcpOptionsForce?: unknown;
  dhcpDns?: unknown;
  mtu?: unknown;
  dhcpRapidCommit?: unknown;
  // issue 15, split DNS and the DNS knobs people use (dnsmasq's names): --server, --local, --strict-order, ...
  server?: unknown;
  local?: unknown;
  strictOrder?: unknown;
  minCacheTtl?: unknown;
  noNegcache?: unknown;
  logQueries?: unknown;
  listenAddress?: unknown;
  // issue 15, DDNS (src/ddns/settings.ts): publish lease names to an authoritative server with RFC 2136 + TSIG
  ddnsServer?: unknown;
  ddnsZone?: unknown;
  ddnsReverse?: unknown;
  ddnsKeyFile?: unknown;
  // issue 14: IPv6 for the guests: the gateway/64 (as subnet), or 'auto' for a ULA /64 derived from the bridge name
  subnet6?: unknown;
  ipv6?: unknown;
  /** issue 14: IPv6 egress: nat (NAT66, default) or routed (a global prefix routed to the host) */
  ipv6Mode?: unknown;
  // issue 17: the name router (config/expose.ts): routes NAME[:LISTENPORT]=GUEST[:PORT][,proxy-protocol=v1|v2], limits
  expose?: unknown;
  exposeListen?: unknown;
  exposeFallback?: unknown;
  exposeMaxConns?: unknown;
  exposeMaxConnsPerClient?: unknown;
  exposeHeadTimeout?: unknown;
  exposeIdleTimeout?: unknown;
  /** issue 14, DHCPv6 (dhcp6/settings.ts): the IA_NA range; dnsmasq dhcp-host lines (by DUID or MAC, [IPv6] and/or IPv4) */
  dhcp6Range?: unknown;
  dhcpHost?: unknown;
}

// issue 16: dnsmasq's lease time (a duration or infinite)
const leaseTime = z.union([z.number(), z.string()], hint(LEASE_TIME_HINT)).transform((v, ctx) => {
  const seconds = parseLeaseTime(v);
  if (seconds === undefined) ctx.addIssue({ code: 'custom', message: LEASE_TIME_HINT });
  return seconds ?? z.NEVER;
});
const TAG = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a tag of letters, digits, _ . -');

const reservationSchema = baseReservation.extend({
  // issue 16: dnsmasq dhcp-host's set:TAG, the host's own --dhcp-option specs, its lease time
  tags: z.array(TAG).optional(),
  options: z.array(z.string()).optional(),
  leaseTime: leaseTime.optional(),
});

const settingsSchema = z
  .object({
    bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, 'an interface name of 1-15 letters, digits, _ . -'),
    subnet: z
      .string()
      .refine((s) => parseCidr(s) !== undefined, { message: 'expected the gateway address with prefix, e.g. 10.10.0.1/24' })
      .optional(),
    dhcpRange: z.string().optional(),
    leaseTime: leaseTime.default(DEFAULT_LEASE_SECONDS),
    domain: z.string().regex(DOMAIN_RE, 'not a domain name').optional(),
    upstreams: z.array(z.string()).default([]),
    stateDir: z.string().min(1).optional(),
    controlSocket: z.string().min(1).optional(),
    forwards: z.array(z.string()).default([]),
    hostsfile: z.string().min(1).optional(),
    addnHosts: z.array(z.string().min(1)).default([]),
    reservations: z.array(reservationSchema).default([]),
    logLevel: z.enum(['debug', 'info', 'warn', 'error']).default(D.logLevel),
    bridgeMac: z
      .string()
      .refine((s) => normalizeMac(s) !== undefined, { message: 'not a MAC address' })
      .optional(),
    cacheSize: z.number().int().min(0).max(1_000_000).default(D.cacheSize),
    masqueradePorts: z
      .tuple([z.number().int().min(1).max(65535), z.number().int().min(1).max(65535)])
      .refine(([a, b]) => a <= b, { message: 'first port must not exceed the second' })
      .default([...D.masqueradePorts]),
    resolvConf: z.string().default(DEFAULT_RESOLV_CONF),
    dns: z.boolean().default(true),
    firewall: z.boolean().default(true),
    allowIpv6Forward: z.boolean().default(false),
    conflictProbe: z.boolean().default(true),
    searchDomains: z.array(z.string().regex(DOMAIN_RE, 'not a domain name')).optional(),
    routes: z.array(z.string().regex(/^[\d.]+\/\d{1,2}=[\d.]+$/, 'expected NETWORK/PREFIX=ROUTER, e.g. 192.168.50.0/24=10.10.0.2')).default([]),
    metricsListen: z
      .string()
      .regex(/^([\d.]+|\[[0-9a-fA-F:.]+\]):\d{1,5}$/, 'expected ADDRESS:PORT, e.g. 127.0.0.1:9153 or [::1]:9153')
      .optional(),
    // issue 12 (DNS): the cache's byte budget, the global upstream cap (dnsmasq's dns-forward-max), per-client caps
    cacheMaxBytes: sizeBytes.pipe(z.number().int().min(64 * 1024, 'at least 64K').max(16 * 1024 ** 3)).default(D.cacheMaxBytes),
    dnsForwardMax: z.number().int().min(1).max(65_536).default(D.dnsForwardMax),
    dnsMaxPendingPerClient: z.number().int().min(1).max(65_536).default(D.dnsMaxPendingPerClient),
    dnsMaxTcpPerClient: z.number().int().min(1).max(64).default(D.dnsMaxTcpPerClient),
    metricsAllowRemote: z.boolean().default(false),
    guestToHost: z.array(z.string()).default([]),
    // issue 12: share of the DHCP range that confirmed DECLINEs may quarantine at once
    dhcpMaxDeclinedPercent: z.number(hint('expected a percentage from 0 to 100')).int().min(0).max(100).default(D.dhcpMaxDeclinedPercent),
    // issue 13: the ARP conflict probe's wait (Kea's ping check waits 100 ms per echo, dnsmasq 3 s)
    dhcpProbeTimeoutMs: z.number(hint('expected milliseconds from 10 to 5000')).int().min(10).max(5000).default(D.dhcpProbeTimeoutMs),
    // issue 16: PXE boot and TFTP (parsed further by tftp/settings.ts)
    dhcpBoot: z.array(z.string()).default([]),
    dhcpMatch: z.array(z.string()).default([]),
    dhcpUserclass: z.array(z.string()).default([]),
    dhcpVendorclass: z.array(z.string()).default([]),
    enableTftp: z.boolean().default(false),
    tftpRoot: z.string().min(1).optional(),
    tftpMax: z.number(hint('expected a number of transfers from 1 to 1000')).int().min(1).max(1000).default(50),
    // issue 16: the lease script (dnsmasq's dhcp-script): an absolute path, checked to be an executable file
    dhcpScript: z.string().refine((p) => p.startsWith('/'), { message: 'expected an absolute path' }).optional(),
    dhcpScriptTimeout: leaseTime.pipe(z.number().max(3600, 'at most 1h')).default(10), // a duration, as lease times are written
    // issue 15: custom DNS records (dnsmasq syntax, parsed in resolveConfig) and --local-ttl
    hostRecord: z.array(z.string()).default([]),
    cname: z.array(z.string()).default([]),
    srvHost: z.array(z.string()).default([]),
    txtRecord: z.array(z.string()).default([]),
    mxHost: z.array(z.string()).default([]),
    ptrRecord: z.array(z.string()).default([]),
    address: z.array(z.string()).default([]),
    localTtl: z.number(hint('expected seconds from 0 to 2147483647')).int().min(0).max(2_147_483_647).default(DEFAULT_LOCAL_TTL),
    // issue 16
    dhcpOptions: z.array(z.string()).default([]),
    dhcpOptionsForce: z.array(z.string()).default([]),
    dhcpDns: z.union([z.array(z.string()), z.string().transform((v) => [v])]).optional(),
    mtu: z.number(hint('expected an MTU from 68 to 65535')).int().min(68).max(65535).optional(),
    dhcpRapidCommit: z.boolean().default(true),
    // issue 15: split DNS (--server, --local) and dnsmasq's DNS knobs; dnsmasq caps min-cache-ttl at one hour too
    server: z.array(z.string()).default([]),
    local: z.array(z.string()).default([]),
    strictOrder: z.boolean().default(false),
    minCacheTtl: z.number(hint('expected seconds from 0 to 3600')).int().min(0).max(3600).default(0),
    noNegcache: z.boolean().default(false),
    logQueries: z.union([z.boolean(), z.literal('extra')], hint('expected true, false or "extra"')).default(false),
    listenAddress: z.array(z.string()).default([]),
    // issue 15, DDNS: checked further (server address, key file) by resolveDdns
    ddnsServer: z.string().min(1).optional(),
    ddnsZone: z.string().regex(DOMAIN_RE, 'not a domain name').optional(),
    ddnsReverse: z.boolean().optional(),
    ddnsKeyFile: z.string().min(1).optional(),
    // issue 14: IPv6 (checked in resolveConfig by ipv6/settings.ts)
    subnet6: z.string().optional(),
    ipv6: z.enum(['auto', 'off'], hint("expected 'auto' or 'off'")).optional(),
    ipv6Mode: z.enum(['nat', 'routed'], hint("expected 'nat' or 'routed'")).default('nat'),
    // issue 17: the name router (checked further in resolveConfig by config/expose.ts)
    ...exposeSchemaFields,
    // issue 14, DHCPv6 (checked in resolveParts by dhcp6/settings.ts)
    dhcp6Range: z.union([z.string(), z.array(z.string())]).optional(),
    dhcpHost: z.array(z.string()).default([]),
  })
  .strict();

/** issue 14: whether this build's config file takes a field (the importers carry IPv6 settings other work adds). */
export function isKnownSetting(field: string): boolean {
  return Object.hasOwn(settingsSchema.shape, field);
}

export interface Config {
  readonly bridge: string;
  /** gateway address + prefix requested; undefined = take it from the bridge, or DEFAULT_SUBNET when creating it */
  readonly subnetCidr: string | undefined;
  readonly dhcpRange: { readonly start: number; readonly end: number } | undefined;
  readonly leaseTimeSeconds: number;
  readonly domain: string | undefined;
  readonly upstreams: readonly string[];
  readonly stateDir: string;
  readonly controlSocket: string;
  readonly forwards: readonly string[];
  readonly hostsfile: string | undefined;
  /** extra DNS records in /etc/hosts format (dnsmasq's addn-hosts) */
  readonly addnHosts: readonly string[];
  readonly reservations: readonly ConfigReservation[];
  readonly logLevel: LogLevel;
  readonly bridgeMac: string | undefined;
  readonly cacheSize: number;
  readonly masqueradePorts: readonly [number, number];
  readonly resolvConf: string;
  readonly dns: boolean;
  readonly firewall: boolean;
  /** DHCP option 119; default: the domain, when one is set */
  readonly searchDomains: readonly string[];
  /** DHCP option 121 (classless static routes) besides the default route */
  readonly routes: readonly { readonly network: number; readonly prefix: number; readonly router: number }[];
  /** ping an address before offering it for the first time (dnsmasq's default; off = its --no-ping) */
  readonly conflictProbe: boolean;
  /** let IPv6 routed through the bridge pass instead of rejecting it */
  readonly allowIpv6Forward: boolean;
  /** where the Prometheus /metrics endpoint listens, when wanted; loopback unless metricsAllowRemote */
  readonly metricsListen: MetricsListen | undefined;
  /** where the config file was, when one was given (SIGHUP re-reads it) */
  readonly configFile: string | undefined;
  /** bytes the DNS cache may hold (besides cacheSize entries) */
  readonly cacheMaxBytes: number;
  /** upstream queries in flight at once, all clients together (dnsmasq's dns-forward-max) */
  readonly dnsForwardMax: number;
  /** upstream queries one client address may have pending; more get SERVFAIL at once */
  readonly dnsMaxPendingPerClient: number;
  /** DNS TCP connections one client address may hold (of 64) */
  readonly dnsMaxTcpPerClient: number;
  /** metricsListen may be an address other than loopback (natd's input chain still keeps guests away from it) */
  readonly metricsAllowRemote: boolean;
  /** host services the guests may reach besides DHCP, DNS and ping; 'all' = natd rejects no guest traffic to the host */
  readonly guestToHost: readonly HostService[] | 'all';
  /** most declined addresses quarantined at once, in percent of the DHCP range (at least one address) */
  readonly dhcpMaxDeclinedPercent: number;
  /** how long a conflict probe waits for an answer before the address counts as free, ms */
  readonly dhcpProbeTimeoutMs: number;
  /** issue 16: PXE boot entries and tag rules; the TFTP server when enabled */
  readonly boot: BootSettings['boot'];
  readonly tftp: BootSettings['tftp'];
  /** run for each lease event (add/old/del), as dnsmasq's dhcp-script */
  readonly dhcpScript: string | undefined;
  /** a script run longer than this is killed, seconds */
  readonly dhcpScriptTimeoutSeconds: number;
  /** issue 15: the operator's DNS records (host-record, cname, srv-host, txt-record, mx-host, ptr-record, address) */
  readonly records: readonly SourcedSpec[];
  /** issue 15: TTL of natd's own answers (dnsmasq's local-ttl) */
  readonly localTtl: number;
  // issue 16
  /** --dhcp-dns, --dhcp-option, --dhcp-option-force, parsed, in that order */
  readonly dhcpOptions: readonly OptionSpec[];
  /** the bridge's MTU, also sent as option 26; undefined: the bridge's MTU is left alone */
  readonly mtu: number | undefined;
  /** answer a Rapid Commit DISCOVER with an ACK (RFC 4039) */
  readonly dhcpRapidCommit: boolean;
  // issue 15 (split DNS): --upstream and plain --server=IP entries together, parsed; empty = resolv.conf
  readonly upstreamServers: readonly UpstreamAddress[];
  /** --server=/domain/... and --local=/domain/ routes, one per domain */
  readonly domainRoutes: readonly RoutePlan[];
  readonly strictOrder: boolean;
  readonly minCacheTtl: number;
  readonly noNegcache: boolean;
  readonly logQueries: 'off' | 'on' | 'extra';
  /** extra DNS listen addresses for the host itself (dnsmasq's --listen-address; loopback only), serving 127.0.0.0/8 */
  readonly listenAddresses: readonly string[];
  /** issue 15: where lease names are published with RFC 2136 updates; undefined = not at all */
  readonly ddns: DdnsConfig | undefined;
  /** issue 14: IPv6 on the bridge (address, RAs, NAT66); undefined: IPv4 only */
  readonly ipv6: Ipv6Setting | undefined;
  /** issue 14: --ipv6-mode: nat (masquerade, default) or routed (no NAT; the prefix is routed to the host) */
  readonly ipv6Mode: Ipv6Mode;
  /** issue 17: the name router's configured routes, listen address, TLS fallback and limits */
  readonly expose: ExposeConfig;
  /** issue 14: DHCPv6 on the bridge, whenever IPv6 is (range undefined: stateless only); undefined: IPv4 only */
  readonly dhcp6: Dhcp6Setting | undefined;
}

export type { ConfigReservation } from './config/parts.js';

type Settings = z.infer<typeof settingsSchema>;

/** Validates settings (file first, flags over it) into the frozen Config. Throws NatdError(CONFIG) listing all problems. */
export function resolveConfig(flags: RawSettings, fileSettings: RawSettings = {}, configFile?: string): Config {
  const merged = mergeSettings(flags, fileSettings);
  const parsed = settingsSchema.safeParse(merged);
  if (!parsed.success) throw configError(schemaProblems(parsed.error.issues, merged));
  const problems: string[] = [];
  const parts = resolveParts(parsed.data, problems);
  if (problems.length) throw configError(problems);
  return buildConfig(parsed.data, parts, configFile);
}

type Parts = ReturnType<typeof resolveParts>;

/** The structured values, each problem pushed with its field named (config/parts.ts, config/served-subnet.ts). */
function resolveParts(s: Settings, problems: string[]) {
  const served = s.subnet ? parseSubnet(s.subnet, problems) : undefined;
  // issue 14: an IPv6 dhcpRange is the dhcp6Range (dnsmasq's form); dhcpHost lines hold v6 and v4 reservations
  const families = splitDhcpFamilies(s, problems);
  const range = families.dhcpRange === undefined ? undefined : parseDhcpRange(families.dhcpRange, problems);
  // issue 16: dnsmasq's START,END,NETMASK,LEASETIME; its lease time is the range's (wins over leaseTime)
  const leaseTimeSeconds = range?.leaseSeconds ?? s.leaseTime;
  if (range && served && range.mask !== undefined && range.mask !== served.subnet.mask >>> 0)
    problems.push(`dhcpRange: netmask ${formatIpv4(range.mask)} is not the subnet's (${formatIpv4(served.subnet.mask >>> 0)})`);
  if (range && range.start > range.end) problems.push(`dhcpRange: start is after end (got "${s.dhcpRange}")`);
  const dhcpRange = range && range.start <= range.end ? Object.freeze({ start: range.start, end: range.end }) : undefined;
  const routes = parseRoutes(s.routes, problems);
  const reservations = parseReservations([...s.reservations, ...families.v4Reservations], s.domain, problems);
  const boot = parseBootSettings(s, problems); // before the forwards: with TFTP on, UDP 69 on the gateway is natd's
  checkForwards(s.forwards, problems, boot.tftp !== undefined);
  const searchDomains = searchDomainsOf(s.searchDomains, s.domain);
  problems.push(...dhcpOptionProblems({ searchDomains, routes }, s.searchDomains ? 'searchDomains' : 'domain'));
  // against the subnet: the same checks the daemon and check-config run when the subnet comes from the bridge
  if (served) problems.push(...subnetProblems({ dhcpRange, routes, reservations, forwards: s.forwards, tftp: boot.tftp }, served));
  const metricsListen = s.metricsListen === undefined ? undefined : parseMetricsListen(s.metricsListen, s.metricsAllowRemote, problems);
  const guestToHost = parseGuestToHost(s.guestToHost, problems);
  const features = featureParts(s, reservations, problems);
  // issue 14: the IPv6 egress mode and IPv6 forwards against the prefix
  ipv6ModeProblems(s.ipv6Mode, features.ipv6, problems);
  ipv6ForwardProblems(s.forwards, features.ipv6, problems);
  const expose = parseExposeSettings(s, served, problems); // issue 17
  const dhcp6 = dhcp6Setting({ ipv6: features.ipv6, dhcp6Range: families.dhcp6Range, hosts: families.hosts, leaseSeconds: s.leaseTime, rapidCommit: s.dhcpRapidCommit }, problems);
  return { dhcpRange, leaseTimeSeconds, routes, reservations, searchDomains, metricsListen, guestToHost, boot, features, expose, dhcp6 };
}

/** The frozen Config from valid settings: every setting lands here, by its Config name. */
function buildConfig(s: Settings, parts: Parts, configFile: string | undefined): Config {
  return Object.freeze({ ...coreConfig(s, parts, configFile), ...breadthConfig(s, parts) });
}

/** The bridge, DHCPv4, the DNS forwarder and cache, the firewall, metrics, paths, PXE boot. */
function coreConfig(s: Settings, { dhcpRange, leaseTimeSeconds, routes, reservations, searchDomains, metricsListen, guestToHost, boot }: Parts, configFile: string | undefined) {
  return {
    bridge: s.bridge,
    subnetCidr: s.subnet,
    dhcpRange,
    leaseTimeSeconds,
    domain: s.domain?.toLowerCase(),
    upstreams: Object.freeze([...s.upstreams]),
    stateDir: s.stateDir ?? defaultStateDir(s.bridge),
    controlSocket: s.controlSocket ?? defaultControlSocket(s.bridge),
    forwards: Object.freeze([...s.forwards]),
    hostsfile: s.hostsfile,
    addnHosts: Object.freeze([...s.addnHosts]),
    reservations: Object.freeze(reservations),
    logLevel: s.logLevel,
    bridgeMac: s.bridgeMac ? normalizeMac(s.bridgeMac) : undefined,
    cacheSize: s.cacheSize,
    masqueradePorts: Object.freeze([s.masqueradePorts[0], s.masqueradePorts[1]]) as readonly [number, number],
    resolvConf: s.resolvConf,
    dns: s.dns,
    firewall: s.firewall,
    metricsListen,
    allowIpv6Forward: s.allowIpv6Forward,
    conflictProbe: s.conflictProbe,
    searchDomains: Object.freeze(searchDomains),
    routes: Object.freeze(routes),
    guestToHost,
    configFile,
    cacheMaxBytes: s.cacheMaxBytes,
    dnsForwardMax: s.dnsForwardMax,
    dnsMaxPendingPerClient: s.dnsMaxPendingPerClient,
    dnsMaxTcpPerClient: s.dnsMaxTcpPerClient,
    metricsAllowRemote: s.metricsAllowRemote,
    dhcpMaxDeclinedPercent: s.dhcpMaxDeclinedPercent,
    dhcpProbeTimeoutMs: s.dhcpProbeTimeoutMs,
    ...boot,
  } satisfies Partial<Config>;
}

/** Issues 14-17: the lease script, custom records, DHCP options, split DNS, DDNS, IPv6 and DHCPv6, the name router. */
function breadthConfig(s: Settings, { features: f, expose, dhcp6 }: Parts) {
  return {
    // issues 15 and 16 (config/features.ts)
    dhcpScript: s.dhcpScript,
    dhcpScriptTimeoutSeconds: s.dhcpScriptTimeout,
    records: f.records,
    localTtl: s.localTtl,
    dhcpOptions: f.dhcpOptions,
    mtu: s.mtu,
    dhcpRapidCommit: s.dhcpRapidCommit,
    upstreamServers: f.upstreamServers,
    domainRoutes: f.domainRoutes,
    strictOrder: s.strictOrder,
    minCacheTtl: s.minCacheTtl,
    noNegcache: s.noNegcache,
    logQueries: s.logQueries === 'extra' ? 'extra' : s.logQueries ? 'on' : 'off',
    listenAddresses: f.listenAddresses,
    ddns: f.ddns,
    ipv6: f.ipv6, // issue 14
    ipv6Mode: s.ipv6Mode,
    expose, // issue 17
    dhcp6,
  } satisfies Partial<Config>;
}
