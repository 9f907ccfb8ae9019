/**
 * The split-domain scenario (issue 15): natd's cache-hit rate with 100 `--server=/dN.bench.test/UPSTREAM` routes
 * configured against the same natd without them. Every hit name lies under one of the routed domains, so each query
 * pays the route lookup that finds its route (a name outside every route costs one probe per label, no more). The
 * target: within 5% of the plain figure. natd only (dnsmasq's split DNS is not what is measured here); the two
 * variants alternate order run by run on one namespace set, each with a fresh natd, warmed cache, dnsperf as for
 * the other DNS scenarios.
 */
import { performance } from 'node:perf_hooks';
import { runDnsperf, writeQueryFile, type DnsperfResult } from './dnsperf.js';
import { cpuSeconds } from './proc.js';
import { startServer } from './servers.js';
import { median } from './stats.js';
import { BenchNetwork, UPLINK_WAN } from './topology.js';

export const SPLIT_DOMAINS = 100;

export interface SplitDomainSettings {
  runs: number;
  seconds: number;
  maxQps: number;
  natdArgs: string[];
  log(line: string): void;
}

export type SplitVariant = 'plain' | 'routes';

export interface SplitDomainRun {
  run: number;
  variant: SplitVariant;
  qps: number;
  p99Ms: number;
  /** natd CPU per query, µs */
  cpuUsPerQuery: number;
  lost: number;
}

export interface SplitDomainResult {
  runs: SplitDomainRun[];
  plainQps: number;
  routesQps: number;
  /** routes / plain, medians */
  ratio: number;
  /** natd CPU µs per query, medians (steadier than q/s on a loaded machine) */
  plainCpuUs: number;
  routesCpuUs: number;
  seconds: number;
}

const routeArgs = (): string[] => Array.from({ length: SPLIT_DOMAINS }, (_, i) => `--server=/d${i}.bench.test/${UPLINK_WAN}`);

export async function splitDomain(s: SplitDomainSettings): Promise<SplitDomainResult> {
  const t0 = performance.now();
  const net = await BenchNetwork.create();
  const runs: SplitDomainRun[] = [];
  try {
    // 100 hit names, one under each routed domain (h7.d7.bench.test); the fake upstream answers any *.bench.test
    const hitFile = writeQueryFile(net, 'split-hit.txt', Array.from({ length: SPLIT_DOMAINS }, (_, i) => `h${i}.d${i}.bench.test`));
    for (let run = 1; run <= s.runs; run++) {
      const order: SplitVariant[] = run % 2 === 1 ? ['plain', 'routes'] : ['routes', 'plain'];
      for (const variant of order) {
        const server = await startServer(net, 'natd', { instance: `split-${variant}-${run}`, extraArgs: [...s.natdArgs, ...(variant === 'routes' ? routeArgs() : [])] });
        await runDnsperf(net, { queryFile: hitFile, seconds: 10, maxQps: 1000, passes: 1 }); // warm the hit names
        const cpuBefore = cpuSeconds(server.pid);
        const r: DnsperfResult = await runDnsperf(net, { queryFile: hitFile, seconds: s.seconds, maxQps: s.maxQps });
        const cpu = cpuSeconds(server.pid) - cpuBefore;
        await server.stop();
        const row = { run, variant, qps: r.qps, p99Ms: r.p99Ms, cpuUsPerQuery: r.completed ? (cpu / r.completed) * 1e6 : NaN, lost: r.lost };
        s.log(`  split-domain run ${run} ${variant}: ${r.qps.toFixed(0)} q/s, p99 ${r.p99Ms.toFixed(2)} ms, ${row.cpuUsPerQuery.toFixed(1)} µs CPU/query, lost ${r.lost}`);
        runs.push(row);
      }
    }
  } finally {
    await net.destroy();
  }
  const plainQps = median(runs.filter((r) => r.variant === 'plain').map((r) => r.qps));
  const routesQps = median(runs.filter((r) => r.variant === 'routes').map((r) => r.qps));
  const cpu = (v: SplitVariant): number => median(runs.filter((r) => r.variant === v).map((r) => r.cpuUsPerQuery));
  return { runs, plainQps, routesQps, ratio: routesQps / plainQps, plainCpuUs: cpu('plain'), routesCpuUs: cpu('routes'), seconds: (performance.now() - t0) / 1000 };
}
