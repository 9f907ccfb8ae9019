/**
 * issue 14: the DHCPv6 scenario (`npm run bench -- --scenario dhcp6`, and one round in the full run): natd against
 * dnsmasq, both stateful and durable, alternating, `runs` times each on fresh namespaces. The load is
 * test/support/dhcp6-load.mjs's closed loop (Solicit/Advertise/Request/Reply, a new DUID per exchange) over 64 link-local sources.
 *
 *   natd     --subnet6 fd77:0:0:1::1/64 --dhcp6-range fd77:0:0:1::100-fd77:0:0:1::ffff (its journal fdatasyncs
 *            before each Reply)
 *   dnsmasq  --dhcp-range=fd77:0:0:1::100,fd77:0:0:1::ffff,64,1h --enable-ra, its lease file as it writes it (it
 *            rewrites and fsyncs the file after changes), the bridge given fd77:0:0:1::1/64 by us
 *
 * Reported: exchanges per second, p50/p99 latency, drops, and the server's CPU µs per exchange (/proc utime+stime).
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Load6Result } from '../../test/support/dhcp6-load.mjs';
import { cpuSeconds } from './proc.js';
import { startServer, type ServerKind } from './servers.js';
import { fmt, median, ratio } from './stats.js';
import type { Table } from './report.js';
import { BenchNetwork, BRIDGE, PROJECT_ROOT } from './topology.js';

/** plain JS in the source tree (no build step), shared with the kill -9 test */
const DHCP6_LOAD = path.join(PROJECT_ROOT, 'test', 'support', 'dhcp6-load.mjs');
export const PREFIX6 = 'fd77:0:0:1';

export interface Dhcp6BenchSettings {
  runs: number;
  /** exchanges per run (each server) */
  count: number;
  concurrency: number;
  sources: number;
  maxMs: number;
  /** natd only: write a V8 CPU profile into this directory (`--profile --scenario dhcp6`) */
  cpuProfileDir?: string;
  log(line: string): void;
}

export interface Dhcp6BenchResult {
  kind: ServerKind;
  run: number;
  load: Load6Result;
  cpuUsPerExchange: number;
  seconds: number;
}

export function serverArgs(kind: ServerKind): string[] {
  return kind === 'natd'
    ? ['--subnet6', `${PREFIX6}::1/64`, '--dhcp6-range', `${PREFIX6}::100-${PREFIX6}::ffff`]
    : [`--dhcp-range=${PREFIX6}::100,${PREFIX6}::ffff,64,1h`, '--enable-ra'];
}

export async function dhcp6Run(kind: ServerKind, run: number, s: Dhcp6BenchSettings): Promise<Dhcp6BenchResult> {
  const t0 = performance.now();
  const net = await BenchNetwork.create();
  try {
    // dnsmasq serves the prefix of an address the interface has; natd adds its gateway itself
    if (kind === 'dnsmasq') await net.topology.runOk(net.hostNs, ['ip', '-6', 'addr', 'add', `${PREFIX6}::1/64`, 'dev', BRIDGE, 'nodad']);
    const profile = kind === 'natd' && s.cpuProfileDir ? { cpuProfileDir: s.cpuProfileDir } : {};
    const server = await startServer(net, kind, { instance: `dhcp6-${run}`, extraArgs: serverArgs(kind), ...profile });
    try {
      const cpuBefore = cpuSeconds(server.pid);
      const args = ['--device', 'eth0', '--sources', String(s.sources), '--concurrency', String(s.concurrency), '--count', String(s.count),
        '--max-ms', String(s.maxMs), '--first-client', String(run * 1_000_000)];
      const r = await net.topology.run(net.clientNs, [process.execPath, DHCP6_LOAD, ...args], { timeoutMs: s.maxMs + 30_000 });
      if (r.code !== 0) throw new Error(`dhcp6-load exited ${r.code}: ${r.stderr.trim()}`);
      const load = JSON.parse(r.stdout) as Load6Result;
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      const result: Dhcp6BenchResult = { kind, run, load, cpuUsPerExchange: load.completed ? (cpu * 1e6) / load.completed : NaN, seconds: 0 };
      result.seconds = (performance.now() - t0) / 1000;
      s.log(`  ${kind} DHCPv6: ${load.completed}/${load.started} exchanges, ${fmt(load.completedPerSecond)}/s, p50 ${fmt(load.latencyMs.p50)} ms, ` +
        `p99 ${fmt(load.latencyMs.p99)} ms, ${load.dropped} dropped, ${load.refused} refused, ${fmt(result.cpuUsPerExchange)} CPU µs/exchange`);
      return result;
    } finally {
      await server.stop();
    }
  } finally {
    await net.destroy();
  }
}

/** `runs` rounds, natd first in odd rounds and dnsmasq first in even ones; stops early when the budget is spent. */
export async function dhcp6Bench(s: Dhcp6BenchSettings, budgetMs: number): Promise<{ results: Dhcp6BenchResult[]; skipped: string[] }> {
  const start = performance.now();
  const results: Dhcp6BenchResult[] = [];
  const skipped: string[] = [];
  for (let run = 1; run <= s.runs; run++) {
    for (const kind of (run % 2 ? ['natd', 'dnsmasq'] : ['dnsmasq', 'natd']) as ServerKind[]) {
      const longest = Math.max(0, ...results.map((r) => r.seconds)) || (s.maxMs / 1000 + 15);
      if (longest * 1000 * 1.2 > budgetMs - (performance.now() - start)) {
        skipped.push(`DHCPv6 run ${run} ${kind}`);
        continue;
      }
      s.log(`[dhcp6 ${run}/${s.runs}] ${kind}`);
      results.push(await dhcp6Run(kind, run, s));
    }
  }
  return { results, skipped };
}

export function dhcp6Table(results: Dhcp6BenchResult[], s: Pick<Dhcp6BenchSettings, 'count' | 'concurrency' | 'sources'>): Table {
  const of = (kind: ServerKind, pick: (r: Dhcp6BenchResult) => number) => median(results.filter((r) => r.kind === kind).map(pick));
  const row = (name: string, pick: (r: Dhcp6BenchResult) => number, higherBetter = true) => {
    const n = of('natd', pick);
    const d = of('dnsmasq', pick);
    return [name, fmt(n), fmt(d), `${fmt(higherBetter ? ratio(n, d) : ratio(d, n), 2)}x`];
  };
  return {
    title: 'DHCPv6 (issue 14): Solicit/Advertise/Request/Reply exchanges, both durable',
    note: `${s.count} exchanges per run, ${s.concurrency} in flight over ${s.sources} link-local sources, a new DUID each; medians of ` +
      `${Math.max(...results.map((r) => r.run), 0)} run(s). Ratios: natd's advantage (higher is better for natd).`,
    headers: ['measure', 'natd', 'dnsmasq', 'natd advantage'],
    rows: [
      row('exchanges/s', (r) => r.load.completedPerSecond),
      row('p50 latency ms', (r) => r.load.latencyMs.p50, false),
      row('p99 latency ms', (r) => r.load.latencyMs.p99, false),
      row('CPU µs per exchange', (r) => r.cpuUsPerExchange, false),
      ['dropped (median)', String(of('natd', (r) => r.load.dropped)), String(of('dnsmasq', (r) => r.load.dropped)), ''],
    ],
  };
}
