/**
 * issue 14: the "DNS over IPv6 hits" scenario: natd's cache-hit rate and CPU per query asked on its IPv6 gateway
 * (dnsperf -s fd00:77::1) beside the same natd asked on its IPv4 gateway. natd runs with --subnet6; dnsperf's
 * namespace gets a static address in the /64 (no SLAAC wait). The two families alternate order run by run against
 * one natd per run, warmed cache, dnsperf as in the other DNS scenarios. Target: IPv6 within 10% of the IPv4 figure
 * (CPU µs per query, the steadier number on a shared machine; q/s shown too).
 */
import { performance } from 'node:perf_hooks';
import { runDnsperf, writeQueryFile, type DnsperfResult } from './dnsperf.js';
import { cpuSeconds } from './proc.js';
import { startServer } from './servers.js';
import { median } from './stats.js';
import { BenchNetwork, GATEWAY } from './topology.js';

export const GATEWAY6 = 'fd00:77::1';
const SUBNET6 = `${GATEWAY6}/64`;
const DNSPERF_ADDRESS6 = 'fd00:77::100';
const HIT_NAMES = 100;

export interface DnsIpv6Settings {
  runs: number;
  seconds: number;
  maxQps: number;
  natdArgs: string[];
  log(line: string): void;
}

export type Family = 'ipv4' | 'ipv6';

export interface DnsIpv6Run {
  run: number;
  family: Family;
  qps: number;
  p99Ms: number;
  cpuUsPerQuery: number;
  lost: number;
}

export interface DnsIpv6Result {
  runs: DnsIpv6Run[];
  v4Qps: number;
  v6Qps: number;
  v4CpuUs: number;
  v6CpuUs: number;
  /** v6 CPU per query / v4 CPU per query, medians (target <= 1.10) */
  cpuRatio: number;
  seconds: number;
}

export async function dnsIpv6(s: DnsIpv6Settings): Promise<DnsIpv6Result> {
  const t0 = performance.now();
  const net = await BenchNetwork.create();
  const runs: DnsIpv6Run[] = [];
  try {
    await net.topology.runOk(net.dnsperfNs, ['ip', '-6', 'addr', 'add', `${DNSPERF_ADDRESS6}/64`, 'dev', 'eth0', 'nodad']);
    const hitFile = writeQueryFile(net, 'v6-hit.txt', Array.from({ length: HIT_NAMES }, (_, i) => `h${i}.bench.test`));
    for (let run = 1; run <= s.runs; run++) {
      const server = await startServer(net, 'natd', { instance: `dns-ipv6-${run}`, extraArgs: [...s.natdArgs, '--subnet6', SUBNET6] });
      try {
        await runDnsperf(net, { queryFile: hitFile, seconds: 10, maxQps: 1000, passes: 1 }); // warm the hit names (shared cache)
        const order: Family[] = run % 2 === 1 ? ['ipv4', 'ipv6'] : ['ipv6', 'ipv4'];
        for (const family of order) {
          const cpuBefore = cpuSeconds(server.pid);
          const r: DnsperfResult = await runDnsperf(net, { queryFile: hitFile, seconds: s.seconds, maxQps: s.maxQps, server: family === 'ipv6' ? GATEWAY6 : GATEWAY });
          const cpu = cpuSeconds(server.pid) - cpuBefore;
          const row = { run, family, qps: r.qps, p99Ms: r.p99Ms, cpuUsPerQuery: r.completed ? (cpu / r.completed) * 1e6 : NaN, lost: r.lost };
          s.log(`  dns-ipv6 run ${run} ${family}: ${r.qps.toFixed(0)} q/s, p99 ${r.p99Ms.toFixed(2)} ms, ${row.cpuUsPerQuery.toFixed(1)} µs CPU/query, lost ${r.lost}, rcodes ${JSON.stringify(r.rcodes)}`);
          runs.push(row);
        }
      } finally {
        await server.stop();
      }
    }
  } finally {
    await net.destroy();
  }
  const pick = (f: Family, k: 'qps' | 'cpuUsPerQuery'): number => median(runs.filter((r) => r.family === f).map((r) => r[k]));
  const v4CpuUs = pick('ipv4', 'cpuUsPerQuery');
  const v6CpuUs = pick('ipv6', 'cpuUsPerQuery');
  return { runs, v4Qps: pick('ipv4', 'qps'), v6Qps: pick('ipv6', 'qps'), v4CpuUs, v6CpuUs, cpuRatio: v6CpuUs / v4CpuUs, seconds: (performance.now() - t0) / 1000 };
}
