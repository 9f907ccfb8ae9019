/**
 * issue 14: the DHCPv6 scenario (`npm run bench -- --scenario dhcp6`, and one round in the full run): natd against
 * dnsmasq, both stateful and durable, alternating, `runs` times each on fresh namespaces, at each concurrency. The
 * load is test/support/dhcp6-load.mjs's closed loop (Solicit/Advertise/Request/Reply, a new DUID per exchange) over
 * 64 link-local sources (bench/run.ts says why 64), the same load for both.
 *
 *   natd     --subnet6 fd77:0:0:1::1/64 --dhcp6-range fd77:0:0:1::100-fd77:0:0:1::ffff (its journal fdatasyncs
 *            before each Reply; concurrent Replies share one fdatasync, group commit)
 *   dnsmasq  --dhcp-range=fd77:0:0:1::100,fd77:0:0:1::ffff,64,1h --enable-ra, its lease file as it writes it (it
 *            rewrites and fsyncs the file after changes), the bridge given fd77:0:0:1::1/64 by us
 *
 * Concurrency: 4 exchanges in flight, as the DHCPv4 closed loop (bench/lib/server-run.ts, 10,000 leases held), and
 * 64 (a boot storm of guests). At 4 natd waits on round trips and one fdatasync per Reply (few Replies share a
 * sync), so that row shows latency more than capacity; at 64 the group commit is shared and natd's CPU decides.
 *
 * Reported: exchanges per second, p50/p99 latency, drops, the server's CPU µs per exchange (/proc utime+stime, all
 * its threads) and the load generator's own, and the machine's load average (the host is shared: every figure
 * moves with it; the ratio of two servers measured side by side moves less).
 */
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Load6Result } from '../../test/support/dhcp6-load.mjs';
import { cpuSeconds } from './proc.js';
import { startServer, type ServerKind } from './servers.js';
import { fmt, markdownTable, median, ratio } from './stats.js';
import type { Table } from './report.js';
import { BenchNetwork, BRIDGE, PROJECT_ROOT } from './topology.js';

/** plain JS in the source tree (no build step), shared with the kill -9 test */
const DHCP6_LOAD = path.join(PROJECT_ROOT, 'test', 'support', 'dhcp6-load.mjs');
export const PREFIX6 = 'fd77:0:0:1';
/** the issue's target: natd's exchanges/s at least this many times dnsmasq's */
export const DHCP6_TARGET = 5;

export interface Dhcp6BenchSettings {
  runs: number;
  /** exchanges per run at most (each server) */
  count: number;
  /** exchanges in flight; one round per value */
  concurrencies: number[];
  sources: number;
  /** each run's load lasts at most this long */
  maxMs: number;
  /** natd only: write a V8 CPU profile into this directory (`--profile --scenario dhcp6`) */
  cpuProfileDir?: string;
  log(line: string): void;
}

export interface Dhcp6BenchResult {
  kind: ServerKind;
  run: number;
  concurrency: number;
  load: Load6Result;
  cpuUsPerExchange: number;
  /** 1-minute load average when the run started */
  loadAverage: number;
  seconds: number;
}

export function serverArgs(kind: ServerKind): string[] {
  return kind === 'natd'
    ? ['--subnet6', `${PREFIX6}::1/64`, '--dhcp6-range', `${PREFIX6}::100-${PREFIX6}::ffff`]
    : [`--dhcp-range=${PREFIX6}::100,${PREFIX6}::ffff,64,1h`, '--enable-ra'];
}

export async function dhcp6Run(kind: ServerKind, run: number, concurrency: number, s: Dhcp6BenchSettings): Promise<Dhcp6BenchResult> {
  const t0 = performance.now();
  const loadAverage = os.loadavg()[0]!;
  const net = await BenchNetwork.create();
  try {
    // dnsmasq serves the prefix of an address the interface has; natd adds its gateway itself
    if (kind === 'dnsmasq') await net.topology.runOk(net.hostNs, ['ip', '-6', 'addr', 'add', `${PREFIX6}::1/64`, 'dev', BRIDGE, 'nodad']);
    const profile = kind === 'natd' && s.cpuProfileDir ? { cpuProfileDir: s.cpuProfileDir } : {};
    const server = await startServer(net, kind, { instance: `dhcp6-${run}-${concurrency}`, extraArgs: serverArgs(kind), ...profile });
    try {
      const cpuBefore = cpuSeconds(server.pid);
      const args = ['--device', 'eth0', '--sources', String(s.sources), '--concurrency', String(concurrency), '--count', String(s.count),
        '--max-ms', String(s.maxMs), '--first-client', String(run * 1_000_000 + concurrency * 10_000)];
      const r = await net.topology.run(net.clientNs, [process.execPath, DHCP6_LOAD, ...args], { timeoutMs: s.maxMs + 30_000 });
      if (r.code !== 0) throw new Error(`dhcp6-load exited ${r.code}: ${r.stderr.trim()}`);
      const load = JSON.parse(r.stdout) as Load6Result;
      const cpu = cpuSeconds(server.pid) - cpuBefore;
      const result: Dhcp6BenchResult = { kind, run, concurrency, load, cpuUsPerExchange: load.completed ? (cpu * 1e6) / load.completed : NaN, loadAverage, seconds: 0 };
      result.seconds = (performance.now() - t0) / 1000;
      s.log(`  ${kind} DHCPv6, ${concurrency} in flight: ${load.completed}/${load.started} exchanges, ${fmt(load.completedPerSecond)}/s, p50 ${fmt(load.latencyMs.p50)} ms, ` +
        `p99 ${fmt(load.latencyMs.p99)} ms, ${load.dropped} dropped, ${load.refused} refused, ${fmt(result.cpuUsPerExchange)} CPU µs/exchange ` +
        `(generator ${fmt(load.generatorCpuUsPerExchange)}), load average ${loadAverage.toFixed(2)}`);
      return result;
    } finally {
      await server.stop();
    }
  } finally {
    await net.destroy();
  }
}

/** `runs` rounds of every concurrency, natd first in odd rounds and dnsmasq first in even ones; stops early when the budget is spent. */
export async function dhcp6Bench(s: Dhcp6BenchSettings, budgetMs: number): Promise<{ results: Dhcp6BenchResult[]; skipped: string[] }> {
  const start = performance.now();
  const results: Dhcp6BenchResult[] = [];
  const skipped: string[] = [];
  for (let run = 1; run <= s.runs; run++) {
    for (const concurrency of s.concurrencies) {
      for (const kind of (run % 2 ? ['natd', 'dnsmasq'] : ['dnsmasq', 'natd']) as ServerKind[]) {
        const longest = Math.max(0, ...results.map((r) => r.seconds)) || (s.maxMs / 1000 + 15);
        if (longest * 1000 * 1.2 > budgetMs - (performance.now() - start)) {
          skipped.push(`DHCPv6 run ${run} ${kind} ${concurrency} in flight`);
          continue;
        }
        s.log(`[dhcp6 ${run}/${s.runs}] ${kind}, ${concurrency} in flight`);
        results.push(await dhcp6Run(kind, run, concurrency, s));
      }
    }
  }
  return { results, skipped };
}

function medianOf(results: Dhcp6BenchResult[], kind: ServerKind, concurrency: number, pick: (r: Dhcp6BenchResult) => number): number {
  return median(results.filter((r) => r.kind === kind && r.concurrency === concurrency).map(pick));
}

export function dhcp6Table(results: Dhcp6BenchResult[], s: Pick<Dhcp6BenchSettings, 'count' | 'concurrencies' | 'sources' | 'maxMs'>): Table {
  const rows: string[][] = [];
  for (const c of s.concurrencies) {
    const row = (name: string, pick: (r: Dhcp6BenchResult) => number, higherBetter = true) => {
      const n = medianOf(results, 'natd', c, pick);
      const d = medianOf(results, 'dnsmasq', c, pick);
      return [`${c} in flight: ${name}`, fmt(n), fmt(d), `${fmt(higherBetter ? ratio(n, d) : ratio(d, n), 2)}x`];
    };
    rows.push(
      row('exchanges/s', (r) => r.load.completedPerSecond),
      row('p50 latency ms', (r) => r.load.latencyMs.p50, false),
      row('p99 latency ms', (r) => r.load.latencyMs.p99, false),
      row('server CPU µs per exchange', (r) => r.cpuUsPerExchange, false),
      [`${c} in flight: dropped (median)`, fmt(medianOf(results, 'natd', c, (r) => r.load.dropped)), fmt(medianOf(results, 'dnsmasq', c, (r) => r.load.dropped)), ''],
      [`${c} in flight: generator CPU µs per exchange`, fmt(medianOf(results, 'natd', c, (r) => r.load.generatorCpuUsPerExchange)),
        fmt(medianOf(results, 'dnsmasq', c, (r) => r.load.generatorCpuUsPerExchange)), ''],
    );
  }
  const loads = results.map((r) => r.loadAverage);
  return {
    title: 'DHCPv6 (issue 14): Solicit/Advertise/Request/Reply exchanges, both durable',
    note: `at most ${s.count} exchanges or ${s.maxMs / 1000} s per run, the same closed loop for both servers over ${s.sources} link-local ` +
      `sources, a new DUID each; ${s.concurrencies.join(' and ')} exchanges in flight (4: as the DHCPv4 closed loop); medians of ` +
      `${Math.max(...results.map((r) => r.run), 0)} run(s) per server and concurrency. Durability: natd fdatasyncs its lease journal before ` +
      `every Reply (group commit); dnsmasq rewrites and fsyncs its lease file. Ratios: natd's advantage (higher is better for natd). ` +
      `Load average (1 min) at the runs' starts: ${loads.length ? `${fmt(Math.min(...loads))}–${fmt(Math.max(...loads))}` : '–'} on ${os.cpus().length} CPUs.`,
    headers: ['measure', 'natd', 'dnsmasq', 'natd advantage'],
    rows,
  };
}

/** The issue's target at each concurrency: natd's exchanges/s >= 5x dnsmasq's. */
export function dhcp6Targets(results: Dhcp6BenchResult[], concurrencies: number[]): { target: string; value: string; met: boolean }[] {
  return concurrencies.map((c) => {
    const r = ratio(medianOf(results, 'natd', c, (x) => x.load.completedPerSecond), medianOf(results, 'dnsmasq', c, (x) => x.load.completedPerSecond));
    return { target: `DHCPv6 exchanges/s >= ${DHCP6_TARGET}x dnsmasq, ${c} in flight`, value: `${fmt(r, 2)}x`, met: r >= DHCP6_TARGET };
  });
}

const SECTION_BEGIN = '<!-- dhcp6 bench: begin (npm run bench -- --scenario dhcp6 rewrites this part) -->';
const SECTION_END = '<!-- dhcp6 bench: end -->';

/** The DHCPv6 part of RESULTS.md, between its markers. */
export function dhcp6Section(results: Dhcp6BenchResult[], s: Pick<Dhcp6BenchSettings, 'count' | 'concurrencies' | 'sources' | 'maxMs'>): string {
  const table = dhcp6Table(results, s);
  const targets = dhcp6Targets(results, s.concurrencies).map((t) => [t.target, t.value, t.met ? 'yes' : 'NO']);
  const every = results.map((r) => [String(r.run), r.kind, String(r.concurrency), fmt(r.load.completedPerSecond), fmt(r.load.latencyMs.p50), fmt(r.cpuUsPerExchange),
    String(r.load.dropped), r.loadAverage.toFixed(2)]);
  return `${SECTION_BEGIN}\n## DHCPv6 (issue 14): natd vs dnsmasq\n\nMeasured ${new Date().toISOString()} (\`npm run bench -- --scenario dhcp6\`).\n\n` +
    `### ${table.title}\n\n${table.note}\n\n${markdownTable(table.headers, table.rows)}\n\n` +
    `### DHCPv6 targets (issue 14), checked against the medians\n\n${markdownTable(['target', 'natd', 'met?'], targets)}\n\n` +
    `### DHCPv6: every run\n\n${markdownTable(['run', 'server', 'in flight', 'exchanges/s', 'p50 ms', 'CPU µs/exchange', 'dropped', 'load avg'], every)}\n` +
    `${SECTION_END}\n`;
}

/** `md` with its DHCPv6 section replaced by `section` (appended when it has none). */
export function spliceDhcp6Section(md: string, section: string): string {
  const a = md.indexOf(SECTION_BEGIN);
  const b = md.indexOf(SECTION_END);
  if (a >= 0 && b > a) return md.slice(0, a) + section.trimEnd() + md.slice(b + SECTION_END.length);
  return `${md.trimEnd()}\n\n${section}`;
}

/** The DHCPv6 section `md` holds (markers included), or '' (a full run keeps it when it measured no DHCPv6). */
export function existingDhcp6Section(md: string): string {
  const a = md.indexOf(SECTION_BEGIN);
  const b = md.indexOf(SECTION_END);
  return a >= 0 && b > a ? `${md.slice(a, b + SECTION_END.length)}\n` : '';
}
