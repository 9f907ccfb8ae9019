import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatPrometheus, type MetricsInput } from '../../src/daemon/metrics.js';

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Exposition { help: Map<string, string>; type: Map<string, string>; samples: Sample[] }

/** A strict reader of the text format, independent of the writer: throws on any line it does not accept. */
function parseExposition(text: string): Exposition {
  expect(text.endsWith('\n')).toBe(true);
  const out: Exposition = { help: new Map(), type: new Map(), samples: [] };
  const unescape = (s: string) => s.replace(/\\(\\|"|n)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
  for (const line of text.slice(0, -1).split('\n')) {
    let m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) { out.help.set(m[1]!, m[2]!); continue; }
    m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram)$/.exec(line);
    if (m) { out.type.set(m[1]!, m[2]!); continue; }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = unescape(l[2]!);
    const name = m[1]!;
    const family = /^(.*)_(?:bucket|sum|count)$/.exec(name)?.[1]; // a histogram's series (issue 18)
    expect(out.type.has(name) || (family !== undefined && out.type.get(family) === 'histogram'), `${name} has a TYPE line before its samples`).toBe(true);
    const text = m[3]!;
    out.samples.push({ name, labels, value: text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text) });
  }
  return out;
}

const input: MetricsInput = {
  bridge: 'virbr10',
  dhcp: { received: { discover: 12, request: 10, release: 1 }, sent: { offer: 12, ack: 9, nak: 1 }, dropped: { 'not-bootrequest': 3 }, leasesActive: 7, freeAddresses: 184,
    outcomes: { offer: 12, 'ignore:decline-unconfirmed': 5, 'ignore:relayed': 2 }, quarantined: 1, journal: { commits: 21, syncs: 8, syncSeconds: 0.0125,
      waitSeconds: 0.05, waitBuckets: [0, 3, 10, 18, 20, 21, 21, 21, 21, 21], repliesSent: 17 } },
  dns: { queries: 5000, cacheHits: 3100, cacheFastHits: 2900, cacheEntries: 420, upstreamQueries: 1900, upstreamFailures: 4, upstreamLatencyAvgSeconds: 0.0123 },
  firewall: { applies: 3, heals: 1 },
};

const value = (e: Exposition, name: string, labels: Record<string, string> = {}) =>
  e.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).map((s) => s.value);

describe('formatPrometheus', () => {
  it('exposes every metric with HELP and TYPE, counters ending in _total', () => {
    const e = parseExposition(formatPrometheus(input));
    for (const [name, type] of e.type) {
      expect(e.help.get(name), name).toBeTruthy();
      expect(name.endsWith('_total'), name).toBe(type === 'counter');
    }
    expect(e.samples.every((s) => s.labels.bridge === 'virbr10')).toBe(true);
    expect(value(e, 'natd_dhcp_messages_total', { direction: 'in', type: 'discover' })).toEqual([12]);
    expect(value(e, 'natd_dhcp_messages_total', { direction: 'out', type: 'nak' })).toEqual([1]);
    expect(value(e, 'natd_dhcp_dropped_total', { reason: 'not-bootrequest' })).toEqual([3]);
    expect(value(e, 'natd_dhcp_leases_active')).toEqual([7]);
    expect(value(e, 'natd_dhcp_free_addresses')).toEqual([184]);
    expect(value(e, 'natd_dhcp_outcomes_total', { outcome: 'ignore:decline-unconfirmed' })).toEqual([5]);
    expect(value(e, 'natd_dhcp_outcomes_total', { outcome: 'ignore:relayed' })).toEqual([2]);
    expect(value(e, 'natd_dhcp_quarantined_addresses')).toEqual([1]);
    expect(value(e, 'natd_lease_journal_commits_total')).toEqual([21]); // issue 18
    expect(value(e, 'natd_lease_journal_syncs_total')).toEqual([8]);
    expect(value(e, 'natd_lease_journal_sync_seconds_total')).toEqual([0.0125]);
    // the ACKs' wait for the disk as a histogram (cumulative buckets, +Inf = all commits), and the writer's sends
    expect(e.type.get('natd_lease_journal_commit_wait_seconds')).toBe('histogram');
    expect(value(e, 'natd_lease_journal_commit_wait_seconds_bucket', { le: '0.001' })).toEqual([3]);
    expect(value(e, 'natd_lease_journal_commit_wait_seconds_bucket', { le: '+Inf' })).toEqual([21]);
    expect(value(e, 'natd_lease_journal_commit_wait_seconds_sum')).toEqual([0.05]);
    expect(value(e, 'natd_lease_journal_commit_wait_seconds_count')).toEqual([21]);
    expect(value(e, 'natd_lease_journal_replies_sent_total')).toEqual([17]);
    expect(value(e, 'natd_dns_queries_total')).toEqual([5000]);
    expect(value(e, 'natd_dns_cache_hits_total')).toEqual([3100]);
    expect(value(e, 'natd_dns_cache_fast_hits_total')).toEqual([2900]); // issue 18: a part of the hits, its own family
    expect(value(e, 'natd_dns_cache_entries')).toEqual([420]);
    expect(value(e, 'natd_dns_upstream_failures_total')).toEqual([4]);
    expect(value(e, 'natd_dns_upstream_latency_avg_seconds')).toEqual([0.0123]);
    expect(value(e, 'natd_ruleset_applies_total')).toEqual([3]);
    expect(value(e, 'natd_ruleset_heals_total')).toEqual([1]);
    expect(e.type.get('natd_dns_upstream_latency_avg_seconds')).toBe('gauge');
  });

  it('shows the fast path\'s part of the cache hits over IPv6 too, and no such family from a build without it (issue 18)', () => {
    const ipv6 = { queries: 40, cacheHits: 30, cacheFastHits: 25, refused: 0, badSource: 0, dropped: 0, guestAddresses: 2, guestAddressesRefused: {} };
    const e = parseExposition(formatPrometheus({ ...input, dns: { ...input.dns!, ipv6 } }));
    expect(value(e, 'natd_dns6_cache_hits_total')).toEqual([30]);
    expect(value(e, 'natd_dns6_cache_fast_hits_total')).toEqual([25]);
    const { cacheFastHits: _fast, ...withoutFast } = input.dns!;
    const plain = formatPrometheus({ ...input, dns: { ...withoutFast, ipv6: { ...ipv6, cacheFastHits: undefined } } });
    expect(plain).not.toMatch(/fast_hits/);
  });

  it('shows the IPv6 neighbour prober\'s counts next to the monitor\'s, and nothing of it without the monitor (issue 14)', () => {
    const ipv6 = { queries: 0, cacheHits: 0, refused: 0, badSource: 0, dropped: 0, guestAddresses: 2, guestAddressesRefused: {},
      neighbourEvents: { new: 9 }, neighbourMonitor: { running: true, restarts: 1 }, neighbourProbes: { requested: 14, dropped: 3, runs: 6, failures: 2 } };
    const e = parseExposition(formatPrometheus({ ...input, dns: { ...input.dns!, ipv6 } }));
    expect(value(e, 'natd_ipv6_neighbour_probes_total', { result: 'queued' })).toEqual([14]);
    expect(value(e, 'natd_ipv6_neighbour_probes_total', { result: 'dropped' })).toEqual([3]);
    expect(value(e, 'natd_ipv6_neighbour_probe_runs_total')).toEqual([6]);
    expect(value(e, 'natd_ipv6_neighbour_probe_failures_total')).toEqual([2]);
    for (const name of ['natd_ipv6_neighbour_probes_total', 'natd_ipv6_neighbour_probe_runs_total', 'natd_ipv6_neighbour_probe_failures_total']) {
      expect(e.type.get(name), name).toBe('counter');
      expect(e.help.get(name), name).toMatch(/re-check/i);
    }
    expect(value(e, 'natd_ipv6_neighbour_monitor_restarts_total')).toEqual([1]);
    const { neighbourProbes: _p, neighbourMonitor: _m, ...polledOnly } = ipv6;
    expect(formatPrometheus({ ...input, dns: { ...input.dns!, ipv6: polledOnly } })).not.toMatch(/natd_ipv6_neighbour_(probe|monitor)/);
  });

  it('leaves out the DNS and firewall families when those parts are off, and is stable in order', () => {
    const { dns: _dns, firewall: _fw, ...dhcpOnly } = input;
    const e = parseExposition(formatPrometheus(dhcpOnly));
    expect([...e.type.keys()].filter((n) => /dns|ruleset/.test(n))).toEqual([]);
    const shuffled = { ...input, dhcp: { ...input.dhcp, received: { release: 1, request: 10, discover: 12 } } };
    expect(formatPrometheus(shuffled)).toBe(formatPrometheus(input));
  });

  it('escapes label values and renders special numbers (property)', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 12 }), fc.oneof(fc.nat(), fc.constantFrom(NaN, Infinity))),
        fc.string({ maxLength: 20 }),
        (received, bridge) => {
          const e = parseExposition(formatPrometheus({ ...input, bridge, dhcp: { ...input.dhcp, received } }));
          const got = Object.fromEntries(e.samples.filter((s) => s.name === 'natd_dhcp_messages_total' && s.labels.direction === 'in').map((s) => [s.labels.type!, s.value]));
          expect(got).toEqual(received);
          expect(e.samples.every((s) => s.labels.bridge === bridge)).toBe(true);
        },
      ),
    );
  });
});

describe('conflict probes and kernel drops (issue 13)', () => {
  it('shows probe results by kind, the probes waiting now, and the kernel drops per socket', () => {
    const e = parseExposition(formatPrometheus({
      ...input,
      dhcp: { ...input.dhcp, probes: { probes: 209, inUse: 6, busy: 2, skipped: 0, errors: 0, running: 3, queued: 0 } },
      kernelDrops: { dhcp: 75, dns: 0 },
    }));
    expect(value(e, 'natd_dhcp_probes_total', { result: 'in-use' })).toEqual([6]);
    expect(value(e, 'natd_dhcp_probes_total', { result: 'busy' })).toEqual([2]);
    expect(value(e, 'natd_dhcp_probes_total', { result: 'started' })).toEqual([209]);
    expect(value(e, 'natd_dhcp_probes_running')).toEqual([3]);
    expect(value(e, 'natd_socket_kernel_drops_total', { socket: 'dhcp', bridge: 'virbr10' })).toEqual([75]);
    expect(e.type.get('natd_socket_kernel_drops_total')).toBe('counter');
  });

  it('leaves both out when the daemon has nothing to say about them', () => {
    const text = formatPrometheus({ ...input, kernelDrops: {} });
    expect(text).not.toMatch(/natd_dhcp_probes|natd_socket_kernel_drops/);
  });
});
