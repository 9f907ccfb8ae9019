/** What `natd status` and `natd metrics` report, read from the running components (read-only). */
import type { Config } from '../config.js';
import type { ControlServer } from '../control/server.js';
import type { DhcpServerCore } from '../dhcp/server-core.js';
import type { DhcpTransport } from '../dhcp/transport.js';
import type { LeaseStoreStats } from '../dhcp/lease-store.js'; // issue 18
import type { DnsCache } from '../dns/cache.js';
import type { DnsServer } from '../dns/server.js';
import type { UpstreamClient } from '../dns/upstream.js';
import type { BridgeInfo } from '../net/bridge.js';
import { formatIpv4, formatSubnet } from '../net/ipv4.js';
import type { Firewall, FirewallStatus } from '../nft/firewall.js';
import type { CoreStats } from '../dhcp/server-core.js';
import type { DhcpStats } from '../dhcp/transport.js';
import type { DnsCacheStats } from '../dns/cache.js';
import type { DnsServerStats } from '../dns/server.js';
import type { UpstreamStats } from '../dns/upstream.js';
import { defaultDhcpRange, describeRange } from '../config/range.js';
import { dnsLimitMetrics, type MetricsInput } from './metrics.js';
import type { LeaseNames } from './lease-names.js';
import type { LeaseScriptStats } from './lease-script.js';
import type { QueryLog } from '../dns/query-log.js';
import type { TftpServer } from '../tftp/server.js';
import type { RecordBook } from './record-book.js';
import type { DdnsService } from './ddns.js';
import { ddnsMetrics } from './metrics.js';
import type { Ipv6Service } from '../ipv6/service.js';
import type { Dns6Parts } from './dns6.js';
import type { ExposeService, ExposeStatus } from './expose.js'; // issue 17
import type { Dhcp6Service, Dhcp6Status } from './dhcp6.js';
import type { Forwards6Stats } from './forwards6.js';

export interface DnsParts {
  server: DnsServer;
  cache: DnsCache;
  upstream: UpstreamClient;
  /** undefined only in tests that build DNS without the lease names */
  leaseNames: LeaseNames | undefined;
  /** issue 15: custom DNS records */
  records?: RecordBook | undefined;
  /** issue 15: --log-queries, and the domain routes for `natd status` */
  queryLog?: QueryLog;
  routes?: () => unknown[];
  /** --listen-address servers for the host itself */
  listeners?: { address: string; server: DnsServer }[];
  /** issue 14: DNS on the IPv6 gateway and the guests' IPv6 addresses */
  ipv6?: Dns6Parts | undefined;
}

export interface Observed {
  config: Config;
  bridge: BridgeInfo;
  core: DhcpServerCore;
  dhcp: DhcpTransport;
  dns: DnsParts | undefined;
  firewall: Firewall | undefined;
  control: ControlServer | undefined;
  now: number;
  /** datagrams the kernel dropped at the DHCP and DNS sockets, by socket */
  kernelDrops: Record<string, number>;
  /** when the daemon started, ms since the epoch */
  startedAt: number;
  /** issue 16 */
  tftp?: TftpServer | undefined;
  /** the lease script's counts, when one is configured */
  script?: LeaseScriptStats | undefined;
  /** issue 15: DDNS publisher, when --ddns-server is set */
  ddns?: DdnsService | undefined;
  /** issue 14: IPv6 on the bridge */
  ipv6?: Ipv6Service | undefined;
  /** issue 18: the lease journal's counters */
  journal?: LeaseStoreStats | undefined;
  /** issue 17: the name router */
  expose?: ExposeService | undefined;
  /** issue 14: DHCPv6 */
  dhcp6?: Dhcp6Service | undefined;
  /** issue 14: IPv6 forwards' re-resolves */
  forwards6?: { stats(): Forwards6Stats } | undefined;
  /** issue 14: DHCPv6 leases' names (refused Client FQDN names) */
  names6?: { refused(): Readonly<Record<string, number>> } | undefined;
}

export function metricsInput(o: Observed): MetricsInput {
  const d = o.dhcp.stats();
  const c = o.core.stats(o.now);
  return {
    bridge: o.config.bridge,
    dhcp: { received: d.receivedByType, sent: d.sent, dropped: d.dropped, leasesActive: c.leases, freeAddresses: c.free, outcomes: d.outcomes, quarantined: c.quarantined,
      ...(d.probes ? { probes: d.probes } : {}), ...(o.script ? { script: o.script } : {}), ...(o.journal ? { journal: o.journal } : {}) },
    kernelDrops: o.kernelDrops,
    ...(o.dns ? { dns: dnsMetrics(o.dns) } : {}),
    ...(o.firewall ? { firewall: o.firewall.counters() } : {}),
    ...(o.control ? { control: o.control.stats() } : {}),
    ...(o.ddns ? { ddns: ddnsMetrics(o.ddns.status()) } : {}),
    ...(o.tftp ? { tftp: o.tftp.stats() } : {}),
    ...(o.ipv6 ? { ipv6: o.ipv6.raStats() } : {}), // issue 14
    ...(o.expose ? { expose: { ...o.expose.stats(), unresolved: o.expose.status().unresolved, targetsRefused: o.expose.status().targetsRefused } } : {}), // issue 17
    ...(o.dhcp6 ? { dhcp6: { ...dhcp6Metrics(o.dhcp6.status()), ...(o.names6 ? { namesRefused: o.names6.refused() } : {}) } } : {}),
    ...(o.forwards6 ? { forwards6: o.forwards6.stats() } : {}), // issue 14
  };
}

/** issue 14 */
function dhcp6Metrics(d: Dhcp6Status): NonNullable<MetricsInput['dhcp6']> {
  return { received: d.receivedByType, sent: d.sent, dropped: d.dropped, outcomes: d.outcomes, leasesActive: d.leases, declined: d.declined, sendFailures: d.sendFailures };
}

function dnsMetrics({ server, cache, upstream, leaseNames, records, queryLog, ipv6 }: DnsParts): NonNullable<MetricsInput['dns']> {
  const s = server.stats();
  const up = upstream.stats();
  return {
    queries: s.queries, cacheHits: s.cacheHits, cacheFastHits: s.fastHits, cacheEntries: cache.size, upstreamQueries: up.sent, upstreamFailures: up.failures + up.timeouts,
    upstreamLatencyAvgSeconds: up.latencyMsAvg / 1000, ...dnsLimitMetrics(s, cache.stats(), up), ...(leaseNames ? { namesRefused: leaseNames.refusals } : {}),
    ...(records ? { records: records.countsByKind() } : {}),
    routed: s.routed, ...(queryLog?.enabled ? { queryLogSuppressed: queryLog.dropped } : {}),
    ...(ipv6 ? { ipv6: dns6Metrics(ipv6) } : {}), // issue 14
  };
}

/**
 * `natd status --json`: everything the daemon knows about itself. `natd status` renders it for people
 * (control/format-status.ts). Before the components run only the first fields are there (state 'starting').
 */
export interface StatusReport {
  bridge: string;
  pid: number;
  state: 'starting' | 'running';
  /** ms since the epoch */
  startedAt?: number;
  uptimeSeconds?: number;
  subnet?: string;
  gateway?: string;
  dhcp?: DhcpStats & CoreStats & { range: string; leaseTimeSeconds: number; script?: LeaseScriptStats; journal?: LeaseStoreStats };
  dns?: DnsStatus;
  /** undefined with --no-firewall */
  firewall?: FirewallStatus;
  control?: { refusedPeers: number; watchers: number; watchersCutOff: number };
  kernelDrops?: Record<string, number>;
  /** issue 15: the DDNS publisher's state */
  ddns?: ReturnType<DdnsService['status']>;
  /** issue 16: the TFTP server */
  tftp?: ReturnType<TftpServer['stats']>;
  /** issue 14: IPv6 on the bridge */
  ipv6?: ReturnType<Ipv6Service['status']>;
  /** issue 17: the name router */
  expose?: ExposeStatus;
  /** issue 14: DHCPv6 (with IPv6 on) */
  dhcp6?: Dhcp6Status;
  /** the configuration in effect (after the last reload) */
  config?: Config;
}

export type DnsStatus = DnsServerStats & {
  cache: DnsCacheStats & { maxEntries: number; maxBytes: number };
  cacheEntries: number;
  upstream: UpstreamStats;
  /** guest names refused, by reason */
  namesRefused: LeaseNames['refusals'] | undefined;
  /** issue 15: custom records by kind, domain routes, query log lines suppressed, --listen-address servers */
  records?: Record<string, number> | undefined;
  routes?: unknown[] | undefined;
  queryLogSuppressed?: number | undefined;
  listeners?: ({ address: string } & DnsServerStats)[] | undefined;
  /** issue 14: the listener on the IPv6 gateway, the guests' IPv6 addresses and the neighbour learner */
  ipv6?: ({ address: string } & DnsServerStats & { guestAddresses: ReturnType<Dns6Parts['guests']['stats']>; neighbours: ReturnType<Dns6Parts['learner']['stats']> & NeighbourWatch }) | undefined;
};

export function statusOf(o: Observed): StatusReport {
  const range = o.config.dhcpRange ?? defaultDhcpRange(o.bridge.subnet, o.bridge.gateway);
  return {
    bridge: o.config.bridge,
    pid: process.pid,
    state: 'running',
    startedAt: o.startedAt,
    uptimeSeconds: Math.max(0, Math.floor((o.now - o.startedAt) / 1000)),
    subnet: formatSubnet(o.bridge.subnet),
    gateway: formatIpv4(o.bridge.gateway),
    dhcp: { ...o.dhcp.stats(), ...o.core.stats(o.now), range: describeRange(range), leaseTimeSeconds: o.config.leaseTimeSeconds, ...(o.script ? { script: o.script } : {}), ...(o.journal ? { journal: o.journal } : {}) },
    ...(o.dns ? { dns: dnsStatus(o.dns, o.config) } : {}),
    ...(o.firewall ? { firewall: o.firewall.status() } : {}),
    ...(o.control ? { control: o.control.stats() } : {}),
    ...(o.ddns ? { ddns: o.ddns.status() } : {}),
    ...(o.tftp ? { tftp: o.tftp.stats() } : {}),
    ...(o.ipv6 ? { ipv6: { ...o.ipv6.status(), mode: o.config.ipv6Mode } } : {}), // issue 14: the egress mode (--ipv6-mode) too
    ...(o.expose ? { expose: o.expose.status() } : {}), // issue 17
    ...(o.dhcp6 ? { dhcp6: o.dhcp6.status() } : {}),
    kernelDrops: o.kernelDrops,
    config: o.config,
  };
}

function dnsStatus({ server, cache, upstream, leaseNames, records, routes, queryLog, listeners, ipv6 }: DnsParts, config: Config): DnsStatus {
  return {
    ...server.stats(),
    cache: { ...cache.stats(), maxEntries: config.cacheSize, maxBytes: config.cacheMaxBytes },
    cacheEntries: cache.size,
    upstream: upstream.stats(),
    namesRefused: leaseNames?.refusals,
    records: records?.countsByKind(),
    routes: routes?.(),
    queryLogSuppressed: queryLog?.dropped,
    listeners: listeners?.map((l) => ({ address: l.address, ...l.server.stats() })),
    ...(ipv6 ? { ipv6: { address: ipv6.address, ...ipv6.server.stats(), guestAddresses: ipv6.guests.stats(), neighbours: neighbourStatus(ipv6) } } : {}),
  };
}

/** issue 14: the `ip -6 monitor neigh` child (absent: polled only) and the probes asked of the kernel */
interface NeighbourWatch {
  monitor?: ReturnType<NonNullable<Dns6Parts['monitor']>['stats']>;
  prober?: ReturnType<NonNullable<Dns6Parts['prober']>['stats']>;
}

function neighbourStatus({ learner, monitor, prober }: Dns6Parts): ReturnType<Dns6Parts['learner']['stats']> & NeighbourWatch {
  return { ...learner.stats(), ...(monitor ? { monitor: monitor.stats() } : {}), ...(prober ? { prober: prober.stats() } : {}) };
}

/** issue 14: the IPv6 listener's counts and the guests' IPv6 addresses, for metrics.ts */
function dns6Metrics({ server, guests, learner, monitor, prober }: Dns6Parts): NonNullable<NonNullable<MetricsInput['dns']>['ipv6']> {
  const s = server.stats();
  const g = guests.stats();
  return {
    queries: s.queries, cacheHits: s.cacheHits, cacheFastHits: s.fastHits, refused: s.refused, badSource: s.badSource, dropped: s.dropped,
    guestAddresses: g.addresses,
    guestAddressesRefused: { 'outside-prefix': g.refusedOutsidePrefix, 'per-guest': g.refusedPerGuest, total: g.refusedTotal, conflict: g.refusedConflict },
    neighbourEvents: learner.stats().events,
    ...(monitor ? { neighbourMonitor: monitor.stats() } : {}),
    ...(prober ? { neighbourProbes: prober.stats() } : {}),
  };
}
