/**
 * The SVG charts `npm run bench` writes next to RESULTS.md (issue 18): rates and CPU per operation for every server,
 * the DHCP ladder (completed against offered rate) and latency percentiles. Medians over the runs, as in the tables.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { kindsIn } from './report.js';
import type { ServerRunResult } from './server-run.js';
import { CAPABILITIES, KIND_LABEL, type BenchKind, type Capabilities } from './servers.js';
import { median } from './stats.js';
import { barChart, lineChart, PALETTE, type BarSeries } from './svg.js';
// issue 17: the name router chart
import { ROUTER_LABEL, type RouterKind, type RouterRunResult } from './router-bench.js';

export interface Chart {
  file: string;
  title: string;
}

type Pick = (r: ServerRunResult) => number;

/** One colour per server in every chart */
const COLOR: Record<BenchKind, string> = { natd: PALETTE[0]!, dnsmasq: PALETTE[1]!, kea: PALETTE[2]!, unbound: PALETTE[3]! };

function med(runs: ServerRunResult[], kind: BenchKind, pick: Pick): number {
  return median(runs.filter((r) => r.kind === kind).map(pick));
}

/** One bar series per server that does `need`; undefined values (drawn "–") for a metric it does not do. */
function series(runs: ServerRunResult[], need: keyof Capabilities, metrics: { pick: Pick; need?: keyof Capabilities }[]): BarSeries[] {
  return kindsIn(runs).filter((k) => CAPABILITIES[k][need]).map((k) => ({
    name: KIND_LABEL[k],
    color: COLOR[k],
    values: metrics.map((m) => (CAPABILITIES[k][m.need ?? need] ? med(runs, k, m.pick) : undefined)),
  }));
}

/** Writes the charts into `dir`; returns what was written, for RESULTS.md's links. */
export function writeCharts(runs: ServerRunResult[], dir: string, seedLeases: number): Chart[] {
  const charts: Chart[] = [];
  const put = (file: string, title: string, svg: string) => {
    writeFileSync(path.join(dir, file), svg);
    charts.push({ file, title });
  };
  const n = seedLeases.toLocaleString('en');
  put('chart-dhcp-rates.svg', 'DHCP exchanges per second', barChart({
    title: 'DHCP: completed DORA exchanges per second (median of runs)',
    unit: 'exchanges/s', log: true,
    groups: ['sustained, empty table (ladder)', `${n} leases held (4 in flight)`],
    series: series(runs, 'dhcp', [{ pick: (r) => r.dhcpSustained }, { pick: (r) => r.loaded.perSecond }]),
  }));
  put('chart-dns-rates.svg', 'DNS queries per second', barChart({
    title: 'DNS: answered queries per second, dnsperf (median of runs)',
    unit: 'queries/s',
    groups: ['cache hits', 'cache misses (upstream)', 'local VM names'],
    series: series(runs, 'dns', [{ pick: (r) => r.dns.hit.qps }, { pick: (r) => r.dns.miss.qps }, { pick: (r) => r.dns.local.qps, need: 'leaseNames' }]),
  }));
  const cpuKinds = kindsIn(runs);
  put('chart-cpu-per-op.svg', 'CPU per operation', barChart({
    title: 'Server CPU per operation, µs (lower is better; median of runs)',
    unit: 'µs CPU', log: true,
    groups: ['DORA, ladder', `DORA, ${n} leases`, 'DNS cache hit', 'DNS cache miss', 'DNS local name'],
    series: cpuKinds.map((k) => {
      const can = CAPABILITIES[k];
      const v = (ok: boolean, pick: Pick) => (ok ? med(runs, k, pick) * 100 : undefined);
      return {
        name: KIND_LABEL[k],
        color: COLOR[k],
        values: [v(can.dhcp, (r) => r.dhcpCpuPer10k), v(can.dhcp, (r) => r.loaded.cpuPer10k), v(can.dns, (r) => r.dns.hit.cpuPer10k),
          v(can.dns, (r) => r.dns.miss.cpuPer10k), v(can.leaseNames, (r) => r.dns.local.cpuPer10k)],
      };
    }),
  }));
  put('chart-dhcp-ladder.svg', 'DHCP ladder: completed against offered rate', lineChart({
    title: 'DHCP ladder from an empty table: completed vs offered exchanges/s',
    xLabel: 'offered exchanges/s', yLabel: 'completed exchanges/s', logX: true, logY: true, diagonal: 'completed = offered',
    series: kindsIn(runs).filter((k) => CAPABILITIES[k].dhcp).map((k) => {
      const mine = runs.filter((r) => r.kind === k);
      const rates = [...new Set(mine.flatMap((r) => r.ladder.map((s) => s.offered)))].sort((a, b) => a - b);
      return {
        name: KIND_LABEL[k],
        color: COLOR[k],
        points: rates.map((rate) => [rate, median(mine.flatMap((r) => r.ladder.filter((s) => s.offered === rate).map((s) => s.completedPerSecond)))] as [number, number]),
      };
    }),
  }));
  const latencyMetrics: { group: string; need: keyof Capabilities; pick: Pick }[] = [
    { group: 'DORA p50', need: 'dhcp', pick: (r) => r.dhcpSustainedP50Ms },
    { group: 'DORA p99', need: 'dhcp', pick: (r) => r.dhcpSustainedP99Ms },
    { group: 'DNS hit p50', need: 'dns', pick: (r) => r.dns.hit.p50Ms },
    { group: 'DNS hit p99', need: 'dns', pick: (r) => r.dns.hit.p99Ms },
    { group: 'DNS miss p50', need: 'dns', pick: (r) => r.dns.miss.p50Ms },
    { group: 'DNS miss p99', need: 'dns', pick: (r) => r.dns.miss.p99Ms },
  ];
  put('chart-latency.svg', 'Latency percentiles', barChart({
    title: 'Latency percentiles, ms (DORA at the sustained ladder step; DNS under dnsperf)',
    unit: 'ms', log: true,
    groups: latencyMetrics.map((m) => m.group),
    series: kindsIn(runs).map((k) => ({
      name: KIND_LABEL[k],
      color: COLOR[k],
      values: latencyMetrics.map((m) => (CAPABILITIES[k][m.need] ? med(runs, k, m.pick) : undefined)),
    })),
  }));
  return charts;
}

/** issue 17: natd's name router next to HAProxy (medians of the runs), one log-scale bar chart. */
export function writeRouterChart(results: readonly RouterRunResult[], dir: string, s: { concurrency: number; latencyClients: number; bulkBytes: number }): Chart {
  const file = 'chart-router.svg';
  const med = (router: RouterKind, pick: (r: RouterRunResult) => number) => median(results.filter((r) => r.router === router).map(pick));
  const metrics: ((r: RouterRunResult) => number)[] = [(r) => r.conns.perSecond, (r) => r.latency.perSecond, (r) => r.latency.p99Ms, (r) => r.bulk.MBps, (r) => r.cpuUsPerConn];
  writeFileSync(path.join(dir, file), barChart({
    title: 'Name router: natd vs HAProxy, TLS SNI passthrough (median of runs)',
    unit: 'value (see each group)', log: true,
    groups: [`conn/s, ${s.concurrency} in flight`, `conn/s, ${s.latencyClients} in flight`, `p99 ms, ${s.latencyClients} clients`, `MB/s, ${(s.bulkBytes / 1048576).toFixed(0)} MiB`, 'CPU µs per conn'],
    series: (['natd', 'engine', 'haproxy'] as const).filter((k) => k !== 'engine' || results.some((r) => r.router === k)).map((router) => ({
      name: ROUTER_LABEL[router],
      color: PALETTE[router === 'natd' ? 0 : router === 'engine' ? 2 : 4]!,
      values: metrics.map((m) => (results.some((r) => r.router === router) ? med(router, m) : undefined)),
    })),
  }));
  return { file, title: 'Name router: natd vs HAProxy' };
}
