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
import { z } from 'zod';
import { normalizeMac, parseCidr } from './net/ipv4.js';
import type { LogLevel } from './log.js';
import type { HostService } from './nft/ruleset.js';
import { dhcpOptionProblems } from './dhcp/configured-options.js';
import { configError, subnetProblems } from './config/served-subnet.js';
import { DEFAULT_LEASE_SECONDS, DEFAULT_RESOLV_CONF, SETTING_DEFAULTS as D, defaultControlSocket, defaultStateDir } from './defaults.js';
import { DOMAIN_RE, durationSeconds, ipv4, reservationSchema, sizeBytes } from './config/values.js';
import { parseMetricsListen, type MetricsListen } from './config/metrics-listen.js';
import { parseGuestToHost } from './config/guest-to-host.js';
import { mergeSettings, schemaProblems } from './config/file.js';
import { checkForwards, parseDhcpRange, parseReservations, parseRoutes, parseSubnet, searchDomainsOf } from './config/parts.js';

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
}

const settingsSchema = z
  .object({
    bridge: z.string().regex(/^[a-zA-Z0-9_.-]{1,15}$/, 'an interface name of 1-15 letters, digits, _ . -'),
    subnet: z
      .string()
      .refine((s) => parseCidr(s) !== undefined, { message: 'expected the gateway address with prefix, e.g. 10.10.0.1/24' })
      .optional(),
    dhcpRange: z
      .string()
      .regex(/^[\d.]+-[\d.]+$/, 'expected START-END, e.g. 10.10.0.10-10.10.0.200')
      .optional(),
    leaseTime: durationSeconds.default(DEFAULT_LEASE_SECONDS),
    domain: z.string().regex(DOMAIN_RE, 'not a domain name').optional(),
    upstreams: z.array(ipv4).default([]),
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
    dhcpMaxDeclinedPercent: z.number({ error: 'expected a percentage from 0 to 100' }).int().min(0).max(100).default(D.dhcpMaxDeclinedPercent),
    // issue 13: the ARP conflict probe's wait (Kea's ping check waits 100 ms per echo, dnsmasq 3 s)
    dhcpProbeTimeoutMs: z.number({ error: 'expected milliseconds from 10 to 5000' }).int().min(10).max(5000).default(D.dhcpProbeTimeoutMs),
  })
  .strict();

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
  readonly reservations: readonly { readonly mac: string; readonly address: number; readonly hostname?: string }[];
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
}

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
  const dhcpRange = s.dhcpRange ? parseDhcpRange(s.dhcpRange, problems) : undefined;
  const routes = parseRoutes(s.routes, problems);
  const reservations = parseReservations(s.reservations, s.domain, problems);
  checkForwards(s.forwards, problems);
  const searchDomains = searchDomainsOf(s.searchDomains, s.domain);
  problems.push(...dhcpOptionProblems({ searchDomains, routes }, s.searchDomains ? 'searchDomains' : 'domain'));
  // against the subnet: the same checks the daemon and check-config run when the subnet comes from the bridge
  if (served) problems.push(...subnetProblems({ dhcpRange, routes, reservations, forwards: s.forwards }, served));
  const metricsListen = s.metricsListen === undefined ? undefined : parseMetricsListen(s.metricsListen, s.metricsAllowRemote, problems);
  const guestToHost = parseGuestToHost(s.guestToHost, problems);
  return { dhcpRange, routes, reservations, searchDomains, metricsListen, guestToHost };
}

/** The frozen Config from valid settings: every setting lands here, by its Config name. */
function buildConfig(s: Settings, { dhcpRange, routes, reservations, searchDomains, metricsListen, guestToHost }: Parts, configFile: string | undefined): Config {
  return Object.freeze({
    bridge: s.bridge,
    subnetCidr: s.subnet,
    dhcpRange,
    leaseTimeSeconds: s.leaseTime,
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
  });
}
