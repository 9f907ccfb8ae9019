/** What `natd status` and `natd metrics` report, read from the running components (read-only). */
import type { LeaseScriptStats } from './lease-script.js';
import type { Config } from '../config.js';
import type { ControlServer } from '../control/server.js';
import type { DhcpServerCore } from '../dhcp/server-core.js';
import type { DhcpTransport } from '../dhcp/transport.js';
import type { DnsCache } from '../dns/cache.js';
import type { DnsServer } from '../dns/server.js';
import type { UpstreamClient } from '../dns/upstream.js';
import type { BridgeInfo } from '../net/bridge.js';
import { formatIpv4, formatSubnet } from '../net/ipv4.js';
import type { Firewall } from '../nft/firewall.js';
import { dnsLimitMetrics, type MetricsInput } from './metrics.js';
import type { LeaseNames } from './lease-names.js';
import type { RecordBook } from './record-book.js';
import type { Ipv6Service } from '../ipv6/service.js';

export interface DnsParts {
  server: DnsServer;
  cache: DnsCache;
  upstream: UpstreamClient;
  /** undefined only in tests that build DNS without the lease names */
  leaseNames: LeaseNames | undefined;
  /** issue 15: custom DNS records */
  records?: RecordBook | undefined;
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
  /** the lease script's counts, when one is configured */
  script?: LeaseScriptStats | undefined;
  /** issue 14: IPv6 on the bridge */
  ipv6?: Ipv6Service | undefined;
}

export function metricsInput(o: Observed): MetricsInput {
  const d = o.dhcp.stats();
  const c = o.core.stats(o.now);
  return {
    bridge: o.config.bridge,
    dhcp: { received: d.receivedByType, sent: d.sent, dropped: d.dropped, leasesActive: c.leases, freeAddresses: c.free, outcomes: d.outcomes, quarantined: c.quarantined,
      ...(d.probes ? { probes: d.probes } : {}), ...(o.script ? { script: o.script } : {}) },
    kernelDrops: o.kernelDrops,
    ...(o.dns ? { dns: dnsMetrics(o.dns) } : {}),
    ...(o.firewall ? { firewall: o.firewall.counters() } : {}),
    ...(o.control ? { control: o.control.stats() } : {}),
    ...(o.ipv6 ? { ipv6: o.ipv6.raStats() } : {}), // issue 14
  };
}

function dnsMetrics({ server, cache, upstream, leaseNames, records }: DnsParts): NonNullable<MetricsInput['dns']> {
  const s = server.stats();
  const up = upstream.stats();
  return {
    queries: s.queries, cacheHits: s.cacheHits, cacheEntries: cache.size, upstreamQueries: up.sent, upstreamFailures: up.failures + up.timeouts,
    upstreamLatencyAvgSeconds: up.latencyMsAvg / 1000, ...dnsLimitMetrics(s, cache.stats(), up), ...(leaseNames ? { namesRefused: leaseNames.refusals } : {}),
    ...(records ? { records: records.countsByKind() } : {}),
  };
}

export function statusOf(o: Observed): Record<string, unknown> {
  return {
    bridge: o.config.bridge,
    pid: process.pid,
    subnet: formatSubnet(o.bridge.subnet),
    gateway: formatIpv4(o.bridge.gateway),
    dhcp: { ...o.dhcp.stats(), ...o.core.stats(o.now), ...(o.script ? { script: o.script } : {}) },
    dns: o.dns ? { ...o.dns.server.stats(), cache: o.dns.cache.stats(), cacheEntries: o.dns.cache.size, upstream: o.dns.upstream.stats(), namesRefused: o.dns.leaseNames?.refusals, records: o.dns.records?.countsByKind() } : undefined,
    firewall: o.firewall?.status(),
    control: o.control?.stats(),
    ipv6: o.ipv6?.status(), // issue 14
  };
}
