/**
 * Prometheus text exposition format (version 0.0.4) for natd's counters: served on the control socket
 * (`natd metrics`) and optionally on a TCP address. Pure: the daemon fills MetricsInput from its components'
 * stats and this renders it. Counters end in `_total`; every sample carries the `bridge` label, so several natd
 * instances on one host can be scraped into one series set.
 */
import type { RouterCounters } from '../router/types.js'; // issue 17: the router's counters, documented there once
import type { PublisherStats } from '../ddns/publisher.js'; // issue 15: the DDNS counters, documented there once
import type { LeaseScriptStats } from './lease-script.js'; // issue 16
import { WAIT_BUCKETS } from '../dhcp/lease-store.js'; // issue 18: the commit wait histogram's bounds
import type { NeighbourProberStats } from '../ipv6/neigh-prober.js'; // issue 14: documented there once

/** What the daemon reports; every count is cumulative since start unless named as a current value. */
export interface MetricsInput {
  bridge: string;
  dhcp: {
    /** messages received, by DHCP message type name (discover, request, release, …) */
    received: Readonly<Record<string, number>>;
    /** messages sent, by type name (offer, ack, nak) */
    sent: Readonly<Record<string, number>>;
    /** packets dropped before the core, by reason */
    dropped?: Readonly<Record<string, number>>;
    /** current number of unexpired leases */
    leasesActive: number;
    /** current number of addresses in the range neither leased, reserved nor quarantined */
    freeAddresses: number;
    /** what the server core decided, by outcome (offer, ack, ignore:pool-exhausted, ignore:decline-unconfirmed, …) */
    outcomes?: Readonly<Record<string, number>>;
    /** current number of declined addresses in quarantine */
    quarantined?: number;
    /** conflict probes before OFFERs and for DECLINEs (issue 13) */
    probes?: { probes: number; inUse: number; busy: number; skipped: number; errors: number; running: number; queued: number };
    /** the lease script (--dhcp-script), when one is configured (issue 16) */
    script?: LeaseScriptStats;
    /** issue 18: the lease journal (every ACK waits for its write + fdatasync). waitSeconds: commit() until durable
     *  and its ACK sent, summed; waitBuckets: commits that waited at most waitBucketBounds[i] s (cumulative);
     *  repliesSent: ACKs sent by the journal's writer thread right after their fdatasync */
    journal?: { commits: number; syncs: number; syncSeconds: number; waitSeconds?: number; waitBuckets?: readonly number[]; repliesSent?: number };
  };
  /** datagrams the kernel dropped at natd's UDP sockets since they opened (a full receive buffer), by socket */
  kernelDrops?: Readonly<Record<string, number>>;
  /** absent when natd's DNS is switched off */
  dns?: {
    queries: number;
    cacheHits: number;
    /** issue 18: of cacheHits, those the fast path answered straight from the received bytes (UDP) */
    cacheFastHits?: number;
    /** current number of cached responses */
    cacheEntries: number;
    /** questions sent to upstream servers */
    upstreamQueries: number;
    /** upstream queries that failed or timed out */
    upstreamFailures: number;
    /** mean upstream response time in seconds (0 before the first answer) */
    upstreamLatencyAvgSeconds: number;
    /** bytes the cache holds now, and entries evicted to stay within its entry and byte limits */
    cacheBytes?: number;
    cacheEvictions?: number;
    /** queries dropped unanswered, by reason (bad-source: port 0, broadcast, network or multicast source) */
    dropped?: Readonly<Record<string, number>>;
    /** times a limit refused something, by limit (client-pending, client-tcp-connections, tcp-connections,
     *  tcp-unsent, forward-max) */
    limited?: Readonly<Record<string, number>>;
    /** guest host-name claims refused (issue 12): by reason held / reserved / denied */
    namesRefused?: Readonly<Record<string, number>>;
    /** issue 15: questions sent to a --server=/domain/ route's servers; --log-queries lines not written (rate limit) */
    routed?: number;
    queryLogSuppressed?: number;
    /** issue 15: custom DNS records configured, by kind (host-record, cname, …) */
    records?: Readonly<Record<string, number>>;
    /** issue 14: natd's DNS on the IPv6 gateway, and the guests' IPv6 addresses known (AAAA/PTR) */
    ipv6?: {
      queries: number;
      cacheHits: number;
      cacheFastHits?: number;
      refused: number;
      badSource: number;
      dropped: number;
      guestAddresses: number;
      guestAddressesRefused: Readonly<Record<string, number>>;
      /** the neighbour learner's events by kind, and the `ip -6 monitor neigh` child when it is used */
      neighbourEvents?: Readonly<Record<string, number>>;
      neighbourMonitor?: { running: boolean; restarts: number };
      /** the re-checks of guest addresses asked of the kernel (ipv6/neigh-prober.ts), with the monitor */
      neighbourProbes?: NeighbourProberStats;
    };
  };
  /** issue 15: updates to the DNS server (absent without --ddns-server) */
  ddns?: Pick<PublisherStats, 'sent' | 'succeeded' | 'failed' | 'conflicts' | 'pending' | 'owned'> & {
    /** 1 while the server rejects natd's TSIG key */
    keyRejected: number;
    /** 1 while the server is failing (unreachable, SERVFAIL, key rejected) */
    retrying: number;
    /** unix time of the last failure, 0 when none */
    lastErrorSeconds: number;
  };
  /** issue 16: natd's TFTP server (absent without --enable-tftp) */
  tftp?: {
    /** ended transfers by result (complete, timeout, client-error, …) */
    transfers: Readonly<Record<string, number>>;
    active: number;
    bytesSent: number;
    retransmits: number;
    /** requests answered with an ERROR, by reason (write-request, busy, not-found, dot-dot, outside-root, …) */
    refused: Readonly<Record<string, number>>;
    /** datagrams dropped, by reason */
    dropped: Readonly<Record<string, number>>;
  };
  /** absent when natd manages no firewall */
  firewall?: {
    /** full applies of natd's table (start, reload, heal) */
    applies: number;
    /** re-applies after another program removed or changed the table */
    heals: number;
  };
  /** issue 14: natd's router advertisements (absent without --ipv6/--subnet6) */
  ipv6?: {
    advertisementsSent: number;
    solicitationsReceived: number;
    solicitationsInvalid: number;
    solicitationsRateLimited: number;
    sendFailures: number;
  };
  /** issue 17: the name router (router/name-router.ts stats, per route by `name:port`) */
  expose?: Pick<RouterCounters, 'accepted' | 'routed' | 'unknownNames' | 'noName' | 'headTimeouts' | 'idleTimeouts' | 'refusedByLimit' | 'invalid' | 'tooLarge' | 'connectFailed'> & {
    active: number;
    bufferedBytes: number;
    unresolved: number;
    targetsRefused: number;
    routes: Readonly<Record<string, { active: number; total: number; bytesIn: number; bytesOut: number }>>;
  };
  /** issue 14: DHCPv6 (absent without IPv6) */
  dhcp6?: {
    /** client messages by type (solicit, request, renew, …) */
    received: Readonly<Record<string, number>>;
    /** advertise / reply */
    sent: Readonly<Record<string, number>>;
    /** datagrams dropped before the core, by reason (rate-limited, short, server-message, busy, …) */
    dropped: Readonly<Record<string, number>>;
    /** the core's outcome (reply, advertise, ignored, invalid) */
    outcomes: Readonly<Record<string, number>>;
    leasesActive: number;
    declined: number;
    sendFailures: number;
    /** issue 14: Client FQDN names refused, by reason (denied, record, held-v4, reserved, held-v6) */
    namesRefused?: Readonly<Record<string, number>>;
  };
  /** issue 14: IPv6 forwards re-resolved after guest address changes (daemon/forwards6.ts) */
  forwards6?: { requests: number; coalesced: number; reloads: number; failures: number };
  /** the control socket (absent before it is open) */
  control?: {
    /** connections refused by the peer-credential check (not root, not natd's own uid) */
    refusedPeers: number;
  };
}

type Labels = Readonly<Record<string, string>>;

interface Family {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  /** suffix: a histogram's _bucket, _sum or _count */
  samples: { labels: Labels; value: number; suffix?: string }[];
}

/** Label values escape backslash, double quote and newline. */
function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** HELP text escapes backslash and newline. */
function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** Label names are fixed in this module; only label values come from data (message types, drop reasons). */
function formatLabels(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function renderFamily(f: Family): string {
  const lines = [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`];
  for (const s of f.samples) lines.push(`${f.name}${s.suffix ?? ''}${formatLabels(s.labels)} ${formatValue(s.value)}`);
  return lines.join('\n');
}

/** One sample per key, sorted so the output is stable between scrapes. */
function byKey(bridge: string, labelName: string, counts: Readonly<Record<string, number>>, extra: Labels = {}): Family['samples'] {
  return Object.keys(counts)
    .sort()
    .map((key) => ({ labels: { bridge, ...extra, [labelName]: key }, value: counts[key]! }));
}

type One = (value: number) => Family['samples'];

function families(m: MetricsInput): Family[] {
  const b = { bridge: m.bridge };
  const one: One = (value) => [{ labels: b, value }];
  return [...dhcpFamilies(m, one), ...(m.dns ? dnsFamilies({ ...m, dns: m.dns }, one) : []), ...serviceFamilies(m, one), ...exposeFamilies(m, one), ...hostFamilies(m, one)];
}

/** issue 17: the name router, totals and per route (label route="name:port"). */
function exposeFamilies(m: MetricsInput, one: One): Family[] {
  const e = m.expose;
  if (!e) return [];
  const perRoute = (pick: (r: { active: number; total: number; bytesIn: number; bytesOut: number }) => number) =>
    byKey(m.bridge, 'route', Object.fromEntries(Object.entries(e.routes).map(([k, r]) => [k, pick(r)])));
  return [
    { name: 'natd_expose_connections_active', help: 'Connections open in the name router now, by route.', type: 'gauge', samples: perRoute((r) => r.active) },
    { name: 'natd_expose_connections_total', help: 'Connections the name router sent to a guest, by route.', type: 'counter', samples: perRoute((r) => r.total) },
    { name: 'natd_expose_received_bytes_total', help: 'Bytes from clients to guests (the replayed head included), by route.', type: 'counter', samples: perRoute((r) => r.bytesIn) },
    { name: 'natd_expose_sent_bytes_total', help: 'Bytes from guests to clients, by route.', type: 'counter', samples: perRoute((r) => r.bytesOut) },
    { name: 'natd_expose_accepted_total', help: 'Connections the name router accepted.', type: 'counter', samples: one(e.accepted) },
    { name: 'natd_expose_open_connections', help: 'Connections open in the name router now, any phase.', type: 'gauge', samples: one(e.active) },
    { name: 'natd_expose_buffered_bytes', help: 'Bytes the name router holds queued now.', type: 'gauge', samples: one(e.bufferedBytes) },
    {
      name: 'natd_expose_rejected_total',
      help: 'Name router connections not routed, by reason (unknown-name, no-name, head-timeout, limit, invalid, too-large, connect-failed, unresolved-guest, target-refused).',
      type: 'counter',
      samples: byKey(m.bridge, 'reason', {
        'unknown-name': e.unknownNames, 'no-name': e.noName, 'head-timeout': e.headTimeouts, limit: e.refusedByLimit, invalid: e.invalid,
        'too-large': e.tooLarge, 'connect-failed': e.connectFailed, 'unresolved-guest': e.unresolved, 'target-refused': e.targetsRefused,
      }),
    },
    { name: 'natd_expose_idle_timeouts_total', help: 'Routed connections closed after the idle timeout.', type: 'counter', samples: one(e.idleTimeouts) },
  ];
}

/** The optional services: DDNS publishing (issue 15) and the TFTP server (issue 16). */
function serviceFamilies(m: MetricsInput, one: One): Family[] {
  const out: Family[] = [];
  if (m.ddns) {
    const d = m.ddns;
    out.push(
      { name: 'natd_ddns_updates_sent_total', help: 'DNS UPDATE messages sent to the --ddns-server.', type: 'counter', samples: one(d.sent) },
      { name: 'natd_ddns_names_updated_total', help: 'DNS names brought to their wanted state (published, changed or removed).', type: 'counter', samples: one(d.succeeded) },
      { name: 'natd_ddns_updates_failed_total', help: 'DDNS attempts that failed (server unreachable, key rejected, name refused).', type: 'counter', samples: one(d.failed) },
      { name: 'natd_ddns_pending', help: 'DNS names waiting to be updated.', type: 'gauge', samples: one(d.pending) },
      { name: 'natd_ddns_owned_names', help: 'DNS names natd has published and owns (owner TXT).', type: 'gauge', samples: one(d.owned) },
      { name: 'natd_ddns_conflicts', help: 'Lease names not published because somebody else owns them on the server.', type: 'gauge', samples: one(d.conflicts) },
      { name: 'natd_ddns_retrying', help: '1 while the DNS server is not taking updates (natd retries with back-off).', type: 'gauge', samples: one(d.retrying) },
      { name: 'natd_ddns_key_rejected', help: "1 while the DNS server rejects natd's TSIG key (BADSIG, BADKEY, BADTIME).", type: 'gauge', samples: one(d.keyRejected) },
      { name: 'natd_ddns_last_error_timestamp_seconds', help: 'Unix time of the last failed DDNS attempt (0: none); natd status has its message.', type: 'gauge', samples: one(d.lastErrorSeconds) },
    );
  }
  if (m.tftp) {
    const t = m.tftp;
    out.push(
      { name: 'natd_tftp_transfers_total', help: 'TFTP transfers ended, by result (complete, timeout, client-error, ...).', type: 'counter', samples: byKey(m.bridge, 'result', t.transfers) },
      { name: 'natd_tftp_transfers_active', help: 'TFTP transfers running now.', type: 'gauge', samples: one(t.active) },
      { name: 'natd_tftp_sent_bytes_total', help: 'File bytes TFTP clients acknowledged.', type: 'counter', samples: one(t.bytesSent) },
      { name: 'natd_tftp_retransmits_total', help: 'TFTP DATA packets sent again (timeouts, lost blocks).', type: 'counter', samples: one(t.retransmits) },
      { name: 'natd_tftp_refused_total', help: 'TFTP requests answered with an error, by reason (write-request, busy, not-found, outside-root, ...).', type: 'counter', samples: byKey(m.bridge, 'reason', t.refused) },
      { name: 'natd_tftp_dropped_total', help: 'TFTP datagrams dropped unanswered, by reason.', type: 'counter', samples: byKey(m.bridge, 'reason', t.dropped) },
    );
  }
  return out;
}

function dhcpFamilies(m: MetricsInput, one: One): Family[] {
  const out: Family[] = [
    {
      name: 'natd_dhcp_messages_total',
      help: 'DHCP messages received (direction="in") and sent (direction="out"), by message type.',
      type: 'counter',
      samples: [...byKey(m.bridge, 'type', m.dhcp.received, { direction: 'in' }), ...byKey(m.bridge, 'type', m.dhcp.sent, { direction: 'out' })],
    },
  ];
  if (m.dhcp.dropped) {
    out.push({ name: 'natd_dhcp_dropped_total', help: 'DHCP packets dropped before processing, by reason.', type: 'counter', samples: byKey(m.bridge, 'reason', m.dhcp.dropped) });
  }
  out.push(
    { name: 'natd_dhcp_leases_active', help: 'Unexpired DHCP leases.', type: 'gauge', samples: one(m.dhcp.leasesActive) },
    { name: 'natd_dhcp_free_addresses', help: 'Addresses in the DHCP range available for new leases.', type: 'gauge', samples: one(m.dhcp.freeAddresses) },
  );
  if (m.dhcp.outcomes) {
    out.push({ name: 'natd_dhcp_outcomes_total', help: 'DHCP requests by what the server decided (ignore:* were not answered).', type: 'counter', samples: byKey(m.bridge, 'outcome', m.dhcp.outcomes) });
  }
  if (m.dhcp.quarantined !== undefined) {
    out.push({ name: 'natd_dhcp_quarantined_addresses', help: 'Declined addresses in quarantine (a probe confirmed a conflict).', type: 'gauge', samples: one(m.dhcp.quarantined) });
  }
  out.push(...probeFamilies(m, one), ...leaseScriptFamilies(m, one), ...leaseJournalFamilies(m, one));
  return out;
}

/** The ARP conflict probe before an OFFER. */
function probeFamilies(m: MetricsInput, one: One): Family[] {
  if (!m.dhcp.probes) return [];
  const p = m.dhcp.probes;
  return [
    {
      name: 'natd_dhcp_probes_total',
      help: 'Conflict probes by result (in-use: another host answered; busy: no verdict, the OFFER waited for the client to retransmit; skipped: the probe could not run).',
      type: 'counter',
      samples: byKey(m.bridge, 'result', { started: p.probes, 'in-use': p.inUse, busy: p.busy, skipped: p.skipped, error: p.errors }),
    },
    { name: 'natd_dhcp_probes_running', help: 'Conflict probes waiting for an answer now.', type: 'gauge', samples: one(p.running) },
    { name: 'natd_dhcp_probes_queued', help: 'Conflict probes waiting for a free probe slot now.', type: 'gauge', samples: one(p.queued) },
  ];
}

/** The lease script (--dhcp-script). */
function leaseScriptFamilies(m: MetricsInput, one: One): Family[] {
  if (!m.dhcp.script) return [];
  const sc = m.dhcp.script;
  return [
    {
      name: 'natd_dhcp_script_runs_total',
      help: 'Lease script runs by result (failed includes timeouts; dropped: events never run, queue full or natd stopping).',
      type: 'counter',
      samples: byKey(m.bridge, 'result', { started: sc.runs, failed: sc.failures, timeout: sc.timeouts, dropped: sc.dropped }),
    },
    { name: 'natd_dhcp_script_queued', help: 'Lease events waiting for the lease script now.', type: 'gauge', samples: one(sc.queued) },
  ];
}

/** issue 18: how long ACKs wait for the disk (÷ syncs: one group commit's write + fdatasync). */
function leaseJournalFamilies(m: MetricsInput, one: One): Family[] {
  if (!m.dhcp.journal) return [];
  const j = m.dhcp.journal;
  return [
    { name: 'natd_lease_journal_commits_total', help: 'Lease changes made durable (DHCPv4 and DHCPv6).', type: 'counter', samples: one(j.commits) },
    { name: 'natd_lease_journal_syncs_total', help: 'Group commits: one write + fdatasync of the lease journal each.', type: 'counter', samples: one(j.syncs) },
    { name: 'natd_lease_journal_sync_seconds_total', help: 'Seconds spent waiting for lease journal write + fdatasync (ACKs wait for it).', type: 'counter', samples: one(j.syncSeconds) },
    ...(j.waitSeconds !== undefined && j.waitBuckets ? [commitWaitHistogram(m.bridge, j.commits, j.waitSeconds, j.waitBuckets)] : []),
    ...(j.repliesSent !== undefined
      ? [{ name: 'natd_lease_journal_replies_sent_total', help: 'DHCP ACKs sent by the lease journal writer right after the fdatasync that made them durable.', type: 'counter' as const, samples: one(j.repliesSent) }]
      : []),
  ];
}

/** What an ACK waits for the disk: from a lease change to its durable commit (and its ACK sent by the writer). */
function commitWaitHistogram(bridge: string, commits: number, waitSeconds: number, waitBuckets: readonly number[]): Family {
  return {
    name: 'natd_lease_journal_commit_wait_seconds',
    help: 'Time from a lease change to its durable commit (and its ACK sent by the journal writer): what an ACK waits for the disk.',
    type: 'histogram',
    samples: [
      ...WAIT_BUCKETS.map((le, i) => ({ labels: { bridge, le: String(le) }, value: waitBuckets[i] ?? 0, suffix: '_bucket' })),
      { labels: { bridge, le: '+Inf' }, value: commits, suffix: '_bucket' },
      { labels: { bridge }, value: waitSeconds, suffix: '_sum' },
      { labels: { bridge }, value: commits, suffix: '_count' },
    ],
  };
}

function dnsFamilies(m: MetricsInput & { dns: NonNullable<MetricsInput['dns']> }, one: One): Family[] {
  const out: Family[] = [];
  out.push(
    { name: 'natd_dns_queries_total', help: 'DNS queries received from guests.', type: 'counter', samples: one(m.dns.queries) },
    { name: 'natd_dns_cache_hits_total', help: 'DNS queries answered from the cache.', type: 'counter', samples: one(m.dns.cacheHits) },
    { name: 'natd_dns_cache_entries', help: 'DNS responses in the cache.', type: 'gauge', samples: one(m.dns.cacheEntries) },
    { name: 'natd_dns_upstream_queries_total', help: 'DNS questions forwarded to upstream servers.', type: 'counter', samples: one(m.dns.upstreamQueries) },
    { name: 'natd_dns_upstream_failures_total', help: 'Upstream DNS queries that failed or timed out.', type: 'counter', samples: one(m.dns.upstreamFailures) },
    {
      name: 'natd_dns_upstream_latency_avg_seconds',
      help: 'Mean upstream DNS response time since start.',
      type: 'gauge',
      samples: one(m.dns.upstreamLatencyAvgSeconds),
    },
  );
  // issue 18: the cache-hit fast path (a part of natd_dns_cache_hits_total, not added to it)
  if (m.dns.cacheFastHits !== undefined) {
    out.push({ name: 'natd_dns_cache_fast_hits_total', help: 'DNS cache hits answered by the fast path straight from the received bytes (included in natd_dns_cache_hits_total).', type: 'counter', samples: one(m.dns.cacheFastHits) });
  }
  if (m.dns.cacheBytes !== undefined) out.push({ name: 'natd_dns_cache_bytes', help: 'Bytes held by the DNS cache.', type: 'gauge', samples: one(m.dns.cacheBytes) });
  if (m.dns.cacheEvictions !== undefined) {
    out.push({ name: 'natd_dns_cache_evictions_total', help: 'DNS cache entries evicted to stay within the entry and byte limits.', type: 'counter', samples: one(m.dns.cacheEvictions) });
  }
  if (m.dns.dropped) out.push({ name: 'natd_dns_dropped_total', help: 'DNS queries dropped unanswered, by reason.', type: 'counter', samples: byKey(m.bridge, 'reason', m.dns.dropped) });
  if (m.dns.limited) {
    out.push({ name: 'natd_dns_limited_total', help: 'DNS queries or connections refused by a limit, by limit.', type: 'counter', samples: byKey(m.bridge, 'limit', m.dns.limited) });
  }
  if (m.dns.namesRefused) {
    out.push({
      name: 'natd_dns_names_refused_total',
      help: 'Host names guests claimed over DHCP that natd did not publish, by reason (held by another client, reserved, denied, an operator DNS record).',
      type: 'counter',
      samples: byKey(m.bridge, 'reason', m.dns.namesRefused),
    });
  }
  // issue 15: split DNS, the query log, custom records
  if (m.dns.routed !== undefined) out.push({ name: 'natd_dns_routed_total', help: 'DNS questions forwarded to the servers of a --server=/domain/ route.', type: 'counter', samples: one(m.dns.routed) });
  if (m.dns.queryLogSuppressed !== undefined) {
    out.push({ name: 'natd_dns_query_log_suppressed_total', help: '--log-queries lines not written because of the rate limit.', type: 'counter', samples: one(m.dns.queryLogSuppressed) });
  }
  if (m.dns.records) out.push({ name: 'natd_dns_records', help: 'Custom DNS records configured (config and runtime), by kind.', type: 'gauge', samples: byKey(m.bridge, 'kind', m.dns.records) });
  // issue 14: DNS over IPv6 (the natd_dns_* families above count the IPv4 gateway's server)
  if (m.dns.ipv6) out.push(...dns6Families(m.bridge, m.dns.ipv6, one));
  return out;
}

/** issue 14: DNS on the IPv6 gateway, the guests' IPv6 addresses and the neighbour monitor that learns them. */
function dns6Families(bridge: string, v6: NonNullable<NonNullable<MetricsInput['dns']>['ipv6']>, one: One): Family[] {
  const out: Family[] = [];
  out.push(
    { name: 'natd_dns6_queries_total', help: "DNS queries received on natd's IPv6 gateway address.", type: 'counter', samples: one(v6.queries) },
    { name: 'natd_dns6_cache_hits_total', help: 'DNS queries over IPv6 answered from the cache.', type: 'counter', samples: one(v6.cacheHits) },
    ...(v6.cacheFastHits !== undefined ? [{
      name: 'natd_dns6_cache_fast_hits_total', help: 'DNS cache hits over IPv6 answered by the fast path (included in natd_dns6_cache_hits_total).', type: 'counter' as const, samples: one(v6.cacheFastHits),
    }] : []),
    { name: 'natd_dns6_refused_total', help: 'DNS queries over IPv6 refused: source outside the served /64 and link-local.', type: 'counter', samples: one(v6.refused) },
    { name: 'natd_dns6_dropped_total', help: 'DNS messages over IPv6 dropped unanswered, by reason.', type: 'counter',
      samples: byKey(bridge, 'reason', { 'bad-source': v6.badSource, malformed: v6.dropped }) },
    { name: 'natd_ipv6_guest_addresses', help: "Guests' IPv6 addresses known for AAAA/PTR answers.", type: 'gauge', samples: one(v6.guestAddresses) },
    { name: 'natd_ipv6_guest_addresses_refused_total', help: "Guests' IPv6 addresses not published, by reason (outside-prefix, per-guest, total, conflict).", type: 'counter',
      samples: byKey(bridge, 'reason', v6.guestAddressesRefused) },
  );
  if (v6.neighbourEvents) {
    out.push({ name: 'natd_ipv6_neighbour_events_total', help: 'Neighbour-table changes on the bridge seen by the SLAAC learner, by kind (new, deleted, miss, failed: an address dropped at once, ignored, invalid).', type: 'counter',
      samples: byKey(bridge, 'kind', v6.neighbourEvents) });
  }
  if (v6.neighbourMonitor) {
    out.push(
      { name: 'natd_ipv6_neighbour_monitor_up', help: 'Whether the `ip -6 monitor neigh` child runs (1) or is being restarted (0).', type: 'gauge', samples: one(v6.neighbourMonitor.running ? 1 : 0) },
      { name: 'natd_ipv6_neighbour_monitor_restarts_total', help: 'Times the `ip -6 monitor neigh` child was started again after it exited.', type: 'counter', samples: one(v6.neighbourMonitor.restarts) },
    );
  }
  if (v6.neighbourProbes) out.push(...neighbourProbeFamilies(bridge, v6.neighbourProbes, one));
  return out;
}

/** issue 14: the prober's counts (status: dns.ipv6.neighbours.prober). */
function neighbourProbeFamilies(bridge: string, p: NeighbourProberStats, one: One): Family[] {
  return [
    { name: 'natd_ipv6_neighbour_probes_total', help: 'Guest IPv6 addresses natd asked the kernel to re-check at once (a SLAAC guest that moved to a new address is found gone in seconds), by result: queued, or dropped because too many were already waiting (a guest showing ever new addresses).', type: 'counter',
      samples: byKey(bridge, 'result', { queued: p.requested, dropped: p.dropped }) },
    { name: 'natd_ipv6_neighbour_probe_runs_total', help: 'Runs of `ip -6 -batch` that sent the queued re-checks to the kernel (at most one a second).', type: 'counter', samples: one(p.runs) },
    { name: 'natd_ipv6_neighbour_probe_failures_total', help: 'Re-check runs that reported an error; usually harmless (an entry already gone from the neighbour table), worth a look only if it rises with every run.', type: 'counter', samples: one(p.failures) },
  ];
}

/** The sockets, the firewall, IPv6 on the bridge and the control socket. */
function hostFamilies(m: MetricsInput, one: One): Family[] {
  return [
    ...socketFamilies(m, one),
    ...routerAdvertisementFamilies(m),
    ...dhcp6Families(m, one),
    ...forwards6Families(m),
    ...(m.control ? [{
      name: 'natd_control_refused_peers_total',
      help: 'Control socket connections refused because the peer was neither root nor natd\'s own user.',
      type: 'counter' as const,
      samples: one(m.control.refusedPeers),
    }] : []),
  ];
}

/** Kernel drops at natd's UDP sockets, and the nftables table's applies and heals. */
function socketFamilies(m: MetricsInput, one: One): Family[] {
  const out: Family[] = [];
  if (m.kernelDrops && Object.keys(m.kernelDrops).length) {
    out.push({
      name: 'natd_socket_kernel_drops_total',
      help: 'Datagrams the kernel dropped at natd\'s UDP sockets (receive buffer full), by socket (SO_MEMINFO).',
      type: 'counter',
      samples: byKey(m.bridge, 'socket', m.kernelDrops),
    });
  }
  if (m.firewall) {
    out.push(
      { name: 'natd_ruleset_applies_total', help: "Full applies of natd's nftables table.", type: 'counter', samples: one(m.firewall.applies) },
      { name: 'natd_ruleset_heals_total', help: "Re-applies after another program removed or changed natd's table.", type: 'counter', samples: one(m.firewall.heals) },
    );
  }
  return out;
}

/** issue 14: router advertisements sent and solicitations answered on the bridge. */
function routerAdvertisementFamilies(m: MetricsInput): Family[] {
  if (!m.ipv6) return [];
  const r = m.ipv6;
  return [
    { name: 'natd_ipv6_router_advertisements_total', help: 'Router advertisements sent on the bridge (result="error": the send failed, e.g. no carrier yet).', type: 'counter',
      samples: [{ labels: { bridge: m.bridge, result: 'sent' }, value: r.advertisementsSent }, { labels: { bridge: m.bridge, result: 'error' }, value: r.sendFailures }] },
    { name: 'natd_ipv6_router_solicitations_total', help: 'Router solicitations from guests, by outcome (invalid: dropped per RFC 4861 6.1.1; rate-limited: not answered).', type: 'counter',
      samples: [
        { labels: { bridge: m.bridge, outcome: 'answered' }, value: r.solicitationsReceived - r.solicitationsInvalid - r.solicitationsRateLimited },
        { labels: { bridge: m.bridge, outcome: 'invalid' }, value: r.solicitationsInvalid },
        { labels: { bridge: m.bridge, outcome: 'rate-limited' }, value: r.solicitationsRateLimited },
      ] },
  ];
}

/** issue 14: the DHCPv6 server. */
function dhcp6Families(m: MetricsInput, one: One): Family[] {
  if (!m.dhcp6) return [];
  const d = m.dhcp6;
  return [
    { name: 'natd_dhcp6_received_total', help: 'DHCPv6 client messages received, by type (solicit, request, renew, rebind, release, decline, confirm, information-request).', type: 'counter', samples: byKey(m.bridge, 'type', d.received) },
    { name: 'natd_dhcp6_sent_total', help: 'DHCPv6 messages sent, by type (advertise, reply).', type: 'counter', samples: byKey(m.bridge, 'type', d.sent) },
    { name: 'natd_dhcp6_dropped_total', help: 'DHCPv6 datagrams dropped before the server core, by reason (rate-limited, short, server-message, unknown-type, busy, ...).', type: 'counter', samples: byKey(m.bridge, 'reason', d.dropped) },
    { name: 'natd_dhcp6_outcomes_total', help: 'What the DHCPv6 core decided, by outcome (reply, advertise, ignored, invalid).', type: 'counter', samples: byKey(m.bridge, 'outcome', d.outcomes) },
    { name: 'natd_dhcp6_leases_active', help: 'Unexpired DHCPv6 leases (IA_NA bindings).', type: 'gauge', samples: one(d.leasesActive) },
    { name: 'natd_dhcp6_declined_addresses', help: 'IPv6 addresses in quarantine after a Decline.', type: 'gauge', samples: one(d.declined) },
    { name: 'natd_dhcp6_send_failures_total', help: 'DHCPv6 replies that could not be sent.', type: 'counter', samples: one(d.sendFailures) },
    { name: 'natd_dhcp6_names_refused_total', help: 'Client FQDN names (RFC 4704) left off a DHCPv6 lease, by reason (denied, record: an operator record\'s name, held-v4: another MAC\'s IPv4 name, reserved: another client\'s reservation, held-v6: another client\'s lease).', type: 'counter', samples: byKey(m.bridge, 'reason', d.namesRefused ?? {}) },
  ];
}

/** issue 14: IPv6 forwards following guest addresses. */
function forwards6Families(m: MetricsInput): Family[] {
  if (!m.forwards6) return [];
  const f = m.forwards6;
  return [
    { name: 'natd_ipv6_forward_refresh_requests_total', help: 'Guest IPv6 address changes (DHCPv6 leases, neighbour table) that asked IPv6 port forwards to re-resolve their names; coalesced: folded into a pending check.', type: 'counter',
      samples: [{ labels: { bridge: m.bridge, kind: 'all' }, value: f.requests }, { labels: { bridge: m.bridge, kind: 'coalesced' }, value: f.coalesced }] },
    { name: 'natd_ipv6_forward_reloads_total', help: 'Firewall reloads because a forwarded guest name changed its IPv6 address (at most one per second), by result.', type: 'counter',
      samples: [{ labels: { bridge: m.bridge, result: 'ok' }, value: f.reloads - f.failures }, { labels: { bridge: m.bridge, result: 'failed' }, value: f.failures }] },
  ];
}

/**
 * The DNS limit counters in MetricsInput's shape, from the server's, the cache's and the upstream client's stats
 * (structural types: this module stays free of the components it reports on).
 */
export function dnsLimitMetrics(
  server: { badSource: number; limitedClientPending: number; limitedClientTcp: number; limitedTcpFull: number; tcpOutputClosed: number },
  cache: { bytes: number; evictions: number } | undefined,
  upstream: { overForwardMax: number },
): Pick<NonNullable<MetricsInput['dns']>, 'cacheBytes' | 'cacheEvictions' | 'dropped' | 'limited'> {
  return {
    cacheBytes: cache?.bytes ?? 0,
    cacheEvictions: cache?.evictions ?? 0,
    dropped: { 'bad-source': server.badSource },
    limited: {
      'client-pending': server.limitedClientPending,
      'client-tcp-connections': server.limitedClientTcp,
      'tcp-connections': server.limitedTcpFull,
      'tcp-unsent': server.tcpOutputClosed,
      'forward-max': upstream.overForwardMax,
    },
  };
}

/** Renders the metrics as Prometheus text (ends with a newline, as the format requires). */
export function formatPrometheus(metrics: MetricsInput): string {
  return families(metrics).map(renderFamily).join('\n') + '\n';
}

/** The Content-Type for an HTTP exposition of formatPrometheus output. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The DDNS publisher's status in MetricsInput's shape (structural: this module stays free of src/ddns). */
export function ddnsMetrics(s: Pick<PublisherStats, 'state' | 'sent' | 'succeeded' | 'failed' | 'conflicts' | 'pending' | 'owned' | 'lastError'>): NonNullable<MetricsInput['ddns']> {
  return {
    sent: s.sent, succeeded: s.succeeded, failed: s.failed, conflicts: s.conflicts, pending: s.pending, owned: s.owned,
    keyRejected: s.state === 'key-rejected' ? 1 : 0,
    retrying: s.state === 'retrying' || s.state === 'key-rejected' ? 1 : 0,
    lastErrorSeconds: s.lastError ? Math.floor(Date.parse(s.lastError.at) / 1000) : 0,
  };
}
