/** `natd status` for people: a short readable summary of the typed StatusReport, never [object Object]; issue 18's
 *  lease journal line with the ACKs' wait read from the histogram (control/wait-summary.ts). */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { formatBytes, formatDuration, formatLeases, formatStatus } from '../../src/control/format.js';
import { bucketQuantile } from '../../src/control/wait-summary.js';
import { WAIT_BUCKETS } from '../../src/dhcp/wait-buckets.js';
import type { StatusReport } from '../../src/control/protocol.js';

function running(over: Partial<StatusReport> = {}): StatusReport {
  return {
    bridge: 'virbr10', pid: 4242, state: 'running', startedAt: 1_700_000_000_000, uptimeSeconds: 7380,
    subnet: '10.10.0.0/24', gateway: '10.10.0.1',
    dhcp: {
      received: 40, receivedByType: { discover: 12, request: 28 }, dropped: { 'bad-packet': 2 }, sent: { offer: 12, ack: 27, nak: 1 },
      outcomes: {}, commitFailures: 0, sendFailures: 0, heldDiscovers: 0, pendingDeclines: 0,
      probes: { probes: 12, inUse: 1, skipped: 0, busy: 0, errors: 0, running: 0, queued: 0 },
      leases: 11, free: 176, offers: 1, quarantined: 1, reservations: 2, rangeSize: 191, quarantineLimit: 19,
      offersReclaimed: 0, quarantinesEvicted: 0, range: '10.10.0.10-10.10.0.200', leaseTimeSeconds: 3600,
    },
    dns: {
      queries: 1000, udp: 990, tcp: 10, cacheHits: 700, forwarded: 250, local: 40, refused: 3, formerr: 0, notimp: 0, dropped: 1,
      servfail: 6, coalesced: 4, badSource: 0, limitedClientPending: 0, limitedClientTcp: 0, limitedTcpFull: 0, tcpOutputClosed: 0, any: 0, fastHits: 650,
      cache: { hits: 700, misses: 300, evictions: 5, bytes: 1_572_864, tooLarge: 0, maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 },
      cacheEntries: 280,
      upstream: {
        sent: 260, received: 250, timeouts: 10, failures: 6, spoofed: 0, overForwardMax: 0, latencyMsAvg: 12.5,
        perServer: [
          { server: '192.0.2.53:53', sent: 200, received: 198, timeouts: 2, latencyMsAvg: 11.25, consecutiveFailures: 0, backoffRemainingMs: 0 },
          { server: '192.0.2.54:53', sent: 60, received: 52, timeouts: 8, latencyMsAvg: 30, consecutiveFailures: 4, backoffRemainingMs: 12_000 },
          { server: '198.51.100.1:53', sent: 0, received: 0, timeouts: 0, latencyMsAvg: 0, consecutiveFailures: 1, backoffRemainingMs: 0 },
        ],
      },
      namesRefused: { held: 0, reserved: 1, denied: 2 },
    } as StatusReport['dns'],
    firewall: { table: 'inet natd-virbr10', applies: 2, heals: 1, runtimeForwards: 3 },
    control: { refusedPeers: 0, watchers: 0, watchersCutOff: 0 },
    kernelDrops: { dhcp: 0, dns: 3 },
    ...over,
  };
}

describe('natd status for people', () => {
  it('says what runs where, how full the pool is, and the DNS upstreams one row each with their health', () => {
    const lines = formatStatus(running()).split('\n');
    expect(lines[0]).toBe('natd on virbr10, pid 4242, up 2h03m');
    const row = (label: string) => lines.find((l) => l.startsWith(`${label} `))!.replace(/^\S+(?: \S+)?\s+/, '');
    expect(row('subnet')).toBe('10.10.0.0/24, gateway 10.10.0.1');
    expect(row('dhcp pool')).toBe('10.10.0.10-10.10.0.200: 191 addresses, 176 free, 7% in use');
    expect(row('leases')).toBe('11 active, 1 offered, 1 quarantined (at most 19); 2 reservations; lease time 1h00m');
    expect(row('dhcp in')).toBe('40 messages (request 28, discover 12); dropped: bad-packet 2');
    expect(row('dns cache')).toBe('280 of 10000 entries, 1.5 MiB of 32 MiB; hit rate 70%; 5 evicted');
    expect(row('firewall')).toBe('table inet natd-virbr10: applied 2x, healed 1x, 3 runtime forwards');
    expect(row('kernel drops')).toBe('dns 3');
    const servers = lines.filter((l) => /^ {2}\S/.test(l));
    expect(servers).toEqual([
      '  SERVER           SENT  ANSWERED  TIMEOUTS  AVG MS  HEALTH',
      '  192.0.2.53:53    200   198       2         11.3    ok',
      '  192.0.2.54:53    60    52        8         30.0    backing off 12s (4 failures)',
      '  198.51.100.1:53  0     0         0         -       failing (1 in a row)',
    ]);
  });

  it('issue 18: one line on the lease journal: syncs, the ACKs\' wait for the disk from the histogram, the writer\'s sends', () => {
    const journal = { commits: 21, syncs: 8, syncSeconds: 0.0128, waitSeconds: 0.0504, waitBuckets: [0, 3, 10, 18, 20, 21, 21, 21, 21, 21], repliesSent: 17, bytes: 4200, compactions: 0, journalBytes: 4200 };
    const row = (j: Partial<typeof journal>) => formatStatus(running({ dhcp: { ...running().dhcp!, journal: { ...journal, ...j } } })).split('\n').find((l) => l.startsWith('dhcp journal'))!.replace(/^dhcp journal\s+/, '');
    // 11 of 21 (the median) waited at most 5 ms, all 21 (p99: the 21st) at most 25 ms
    expect(row({})).toBe('21 commits in 8 syncs (1.6 ms each); ACK wait for the disk: median <= 5 ms, p99 <= 25 ms, mean 2.4 ms; 17 ACKs sent by the writer');
    // one slow commit beyond the last bucket (1 s) of 200: the p99 is still within 1 ms, the tail shows in no quantile
    expect(row({ commits: 200, waitSeconds: 1.3, waitBuckets: [150, 199, 199, 199, 199, 199, 199, 199, 199, 199] })).toMatch(/median <= 0\.5 ms, p99 <= 1 ms, mean 6\.5 ms/);
    // most commits slower than the last bucket
    expect(row({ commits: 10, waitSeconds: 25, waitBuckets: [0, 0, 0, 0, 0, 0, 0, 0, 0, 4] })).toMatch(/median > 1 s, p99 > 1 s, mean 2\.5 s/);
    expect(row({ commits: 0, syncs: 0, syncSeconds: 0, waitSeconds: 0, waitBuckets: journal.waitBuckets.map(() => 0), repliesSent: 0 })).toBe('no commits yet');
    // a daemon from before issue 18's histogram: the syncs only
    const { waitSeconds: _w, waitBuckets: _b, repliesSent: _r, ...older } = journal;
    const text = formatStatus(running({ dhcp: { ...running().dhcp!, journal: older as typeof journal } }));
    expect(text).toMatch(/^dhcp journal +21 commits in 8 syncs \(1\.6 ms each\)$/m);
    expect(formatStatus(running())).not.toMatch(/dhcp journal/); // no journal figures: no line
  });

  it('bucketQuantile (property): the bound of the bucket the q-quantile sample falls in, as lease-store counts them', () => {
    const waits = fc.array(fc.oneof(fc.double({ min: 0, max: 0.002, noNaN: true }), fc.double({ min: 0, max: 2, noNaN: true })), { minLength: 1, maxLength: 300 });
    fc.assert(fc.property(waits, fc.double({ min: 0.01, max: 1, noNaN: true }), (samples, q) => {
      const cumulative = WAIT_BUCKETS.map((le) => samples.filter((w) => w <= le).length);
      const got = bucketQuantile(WAIT_BUCKETS, cumulative, samples.length, q)!;
      const sorted = [...samples].sort((a, b) => a - b);
      const sample = sorted[Math.max(1, Math.ceil(q * samples.length)) - 1]!; // the q-quantile, nearest rank
      const bucket = WAIT_BUCKETS.findIndex((le) => sample <= le);
      expect(got).toBe(bucket < 0 ? Infinity : WAIT_BUCKETS[bucket]);
    }));
    expect(bucketQuantile(WAIT_BUCKETS, [], 0, 0.5)).toBeUndefined();
  });

  it('without DNS or firewall says they are off; while starting, only the first line', () => {
    const text = formatStatus(running({ dns: undefined, firewall: undefined }));
    expect(text).toMatch(/^dns +off \(--no-dns\)$/m);
    expect(text).toMatch(/^firewall +off \(--no-firewall\)$/m);
    expect(text).not.toContain('SERVER');
    expect(formatStatus({ bridge: 'br0', pid: 7, state: 'starting' })).toBe('natd on br0, pid 7, starting\n');
  });

  it('never prints [object Object], undefined or NaN, whatever the counters are', () => {
    const counter = fc.nat({ max: 1e9 });
    fc.assert(fc.property(counter, counter, counter, fc.dictionary(fc.stringMatching(/^[a-z][a-z-]{0,7}$/), counter, { maxKeys: 4 }), (a, b, c, map) => {
      const base = running();
      const text = formatStatus({
        ...base, uptimeSeconds: a,
        dhcp: { ...base.dhcp!, leases: a, free: b, rangeSize: c, receivedByType: map, dropped: map, sent: map,
          journal: { commits: a, syncs: b, syncSeconds: c / 1e6, waitSeconds: b / 1e3, waitBuckets: [c, a], repliesSent: c, bytes: 0, compactions: 0, journalBytes: 0 } },
        dns: { ...base.dns!, cacheEntries: a, cache: { ...base.dns!.cache, hits: b, misses: c, bytes: a } },
      });
      expect(text).not.toMatch(/\[object Object\]|undefined|NaN/);
    }));
  });
});

describe('units', () => {
  it('durations', () => {
    expect([9, 75, 3725, 90_000].map(formatDuration)).toEqual(['9s', '1m15s', '1h02m', '1d01h']);
  });
  it('bytes', () => {
    expect([512, 1536, 32 * 1024 * 1024, 15 * 1024].map(formatBytes)).toEqual(['512 B', '1.5 KiB', '32 MiB', '15 KiB']);
  });
  it('leases, a quarantined address marked declined', () => {
    const now = 1_000_000;
    const text = formatLeases([
      { address: '10.10.0.11', mac: '52:54:00:00:00:01', hostname: 'web', expiresAt: now + 3_725_000, clientId: '01525400000001' },
      { address: '10.10.0.12', mac: '', hostname: undefined, expiresAt: now + 75_000, clientId: '', state: 'declined' },
    ], now);
    expect(text.split('\n')).toEqual([
      'ADDRESS     MAC                HOSTNAME    EXPIRES IN  CLIENT ID',
      '10.10.0.11  52:54:00:00:00:01  web         1h02m       01525400000001',
      '10.10.0.12  -                  (declined)  1m15s       -',
      '',
    ]);
  });
});
