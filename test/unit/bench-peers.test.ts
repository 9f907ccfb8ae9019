/**
 * The bench's peers (issue 18): Kea's and Unbound's generated configs say what bench/README.md promises, the seeded
 * Kea lease file has Kea's columns, the tables show "–" for what a server does not do, and the SVG charts draw it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsePeers, PEERS, peerVersion } from '../../bench/lib/peers/index.js';
import { keaConfig, writeKeaLeases } from '../../bench/lib/peers/kea.js';
import { unboundConfig } from '../../bench/lib/peers/unbound.js';
import { buildTables, NOT_DONE } from '../../bench/lib/report.js';
import { makeSeedLeases } from '../../bench/lib/seed-leases.js';
import type { DnsScenarioResult, ServerRunResult } from '../../bench/lib/server-run.js';
import type { BenchKind } from '../../bench/lib/servers.js';
import { barChart, lineChart, scale } from '../../bench/lib/svg.js';

describe('bench peers: configs', () => {
  it('Kea: raw sockets on br0, authoritative, no reservations, memfile in the given file, 1 h leases', () => {
    const c = (keaConfig('/tmp/x/leases.csv') as { Dhcp4: Record<string, unknown> }).Dhcp4;
    expect(c['interfaces-config']).toEqual({ interfaces: ['br0'], 'dhcp-socket-type': 'raw' });
    expect(c.authoritative).toBe(true);
    expect(c['reservations-global']).toBe(false);
    expect(c['reservations-in-subnet']).toBe(false);
    expect(c['lease-database']).toMatchObject({ type: 'memfile', name: '/tmp/x/leases.csv', persist: true });
    expect(c['valid-lifetime']).toBe(3600);
    expect(JSON.stringify(c)).not.toContain('"reservations":');
  });

  it('Kea: the seeded lease file has Kea 2.2 memfile columns, one row per lease', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-peers-'));
    try {
      const leases = makeSeedLeases(3, 's', 1_000_000_000_000);
      writeKeaLeases(path.join(dir, 'l.csv'), leases);
      const lines = readFileSync(path.join(dir, 'l.csv'), 'utf8').trim().split('\n');
      expect(lines[0]).toBe('address,hwaddr,client_id,valid_lifetime,expire,subnet_id,fqdn_fwd,fqdn_rev,hostname,state,user_context');
      expect(lines).toHaveLength(4);
      for (const line of lines.slice(1)) expect(line.split(',')).toHaveLength(11);
      expect(lines[1]).toBe(`10.77.0.10,${leases[0]!.mac},01:${leases[0]!.mac},3600,${1_000_000_000 + 3600},1,0,0,s0,0,`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Unbound: a one-thread iterator-only forwarder for the guest subnet, test. not answered locally', () => {
    const conf = unboundConfig('/tmp/u');
    for (const line of ['module-config: "iterator"', 'num-threads: 1', 'local-zone: "test." nodefault', 'access-control: 10.77.0.0/16 allow',
      'name: "."', 'forward-addr: 198.51.100.2', 'pidfile: "/tmp/u/unbound.pid"', 'interface: 10.77.0.1']) {
      expect(conf).toContain(line);
    }
  });

  it('--peers: all, none, a list; an unknown peer is an error naming the choices', () => {
    expect(parsePeers('all')).toEqual(['kea', 'unbound']);
    expect(parsePeers('none')).toEqual([]);
    expect(parsePeers('unbound,kea,unbound')).toEqual(['unbound', 'kea']);
    expect(() => parsePeers('bind')).toThrow(/kea, unbound.*"bind"/);
  });

  it('a peer whose binary is missing reads as not installed (the bench then skips it with a line)', () => {
    const saved = PEERS.kea.binary;
    PEERS.kea.binary = 'natd-test-no-such-kea-binary';
    try {
      expect(peerVersion('kea')).toBeUndefined();
    } finally {
      PEERS.kea.binary = saved;
    }
  });
});

const dnsResult = (qps: number, cpuPer10k: number): DnsScenarioResult => ({
  sent: qps, completed: qps, lost: 0, qps, avgMs: 1, p50Ms: 1, p99Ms: 2, rcodes: { NOERROR: qps }, cpuPer10k, upstreamCpu: 0.1,
});
const NONE = dnsResult(NaN, NaN);

function run(kind: BenchKind, dhcp: number, hit: number): ServerRunResult {
  const dns = kind === 'kea' ? { hit: NONE, local: NONE, miss: NONE } : { hit: dnsResult(hit, 0.1), local: kind === 'unbound' ? NONE : dnsResult(hit, 0.1), miss: dnsResult(hit / 4, 0.4) };
  return {
    kind, run: 1, ladder: [], dhcpSustained: dhcp, dhcpPeak: dhcp, dhcpSustainedP50Ms: 1, dhcpSustainedP99Ms: 2, dhcpCpuPer10k: 2.5,
    loaded: { perSecond: dhcp, p50Ms: 1, p99Ms: 2, loss: 0, cpuPer10k: 2.5 },
    // issue 18: the 16-in-flight loop runs for natd and Kea only
    loadedHigh: kind === 'dnsmasq' || kind === 'unbound' ? { perSecond: NaN, p50Ms: NaN, p99Ms: NaN, loss: NaN, cpuPer10k: NaN } : { perSecond: 2 * dhcp, p50Ms: 3, p99Ms: 5, loss: 0, cpuPer10k: 2 },
    dns, fullHit: kind === 'unbound' ? NONE : dnsResult(hit, 0.1),
    cacheFillCompleted: 10_000, peakRssMiB: 20, rssMiB: 20, afterDhcp: { peakRssMiB: 21, leases: 10_000 }, seconds: 30,
  };
}

describe('bench report with peers', () => {
  const runs = [run('natd', 3000, 100_000), run('dnsmasq', 100, 90_000), run('kea', 400, NaN), run('unbound', NaN, 20_000)];
  const tables = buildTables(runs, {
    checks: { natd: { description: 'none' }, dnsmasq: { description: 'none' } }, smallHostLeases: 100, seedLeases: 10_000, heapCaps: 'caps',
  });
  const row = (title: RegExp, metric: string) => tables.find((t) => title.test(t.title))!.rows.find((r) => r[0] === metric)!;

  it('has a column per server and natd\'s ratio against each', () => {
    expect(tables[0]!.headers).toEqual(['metric (median of runs)', 'natd', 'dnsmasq', 'Kea', 'Unbound', 'natd/dnsmasq', 'natd/Kea', 'natd/Unbound']);
  });

  it('shows "–" where a server does not do the scenario, numbers and ratios elsewhere', () => {
    expect(row(/^DHCP, empty/, 'sustained exchanges/s (<=1% failed, kept pace)')).toEqual(
      ['sustained exchanges/s (<=1% failed, kept pace)', '3000', '100', '400', NOT_DONE, '30.00x', '7.50x', NOT_DONE]);
    expect(row(/^DNS/, 'cache hits: queries/s')).toEqual(['cache hits: queries/s', '100000', '90000', NOT_DONE, '20000', '1.11x', NOT_DONE, '5.00x']);
    expect(row(/^DNS/, 'local VM names: queries/s').slice(3)).toEqual([NOT_DONE, NOT_DONE, '1.11x', NOT_DONE, NOT_DONE]);
    // issue 18: the closed loop at 16 in flight, natd against Kea; dnsmasq not run there
    expect(row(/16 exchanges in flight/, 'completed exchanges/s')).toEqual(['completed exchanges/s', '6000', '-', '800', NOT_DONE, '-', '7.50x', NOT_DONE]);
    expect(row(/16 exchanges in flight/, 'CPU µs per exchange (DORA)').slice(1, 4)).toEqual(['200', '-', '200']);
  });

  it('reports CPU per operation in µs (seconds per 10,000 × 100)', () => {
    expect(row(/^DHCP, empty/, 'CPU µs per exchange (DORA, sustained step)').slice(1, 4)).toEqual(['250', '250', '250']);
    expect(row(/^DNS/, 'cache misses: CPU µs per query').slice(1, 5)).toEqual(['40.0', '40.0', NOT_DONE, '40.0']);
  });
});

describe('bench SVG charts', () => {
  it('bar chart: one rect per value, "–" for a scenario a server does not do, valid markup', () => {
    const svg = barChart({ title: 'a <b>', unit: 'q/s', groups: ['x', 'y'], series: [{ name: 'natd', values: [10, 20] }, { name: 'Kea', values: [5, undefined] }] });
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('a &lt;b&gt;');
    expect(svg.match(/<rect x=/g)).toHaveLength(3 + 2); // 3 bars + 2 legend swatches
    expect(svg).toContain('>–</text>');
  });

  it('log scale: ticks at powers of ten covering the data; linear: from 0 past the maximum', () => {
    const log = scale([0.5, 3500], true, 300, 0);
    expect(log.ticks).toEqual([0.1, 1, 10, 100, 1000, 10_000]);
    expect(log.at(0.1)).toBeCloseTo(300);
    expect(log.at(10_000)).toBeCloseTo(0);
    const lin = scale([0, 93], false, 300, 0);
    expect(lin.ticks[0]).toBe(0);
    expect(lin.ticks.at(-1)!).toBeGreaterThanOrEqual(93);
  });

  it('line chart: a polyline per series', () => {
    const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', logX: true, logY: true, diagonal: 'y = x',
      series: [{ name: 'a', points: [[25, 24], [50, 49]] }, { name: 'b', points: [[25, 20]] }] });
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('stroke-dasharray');
  });
});
