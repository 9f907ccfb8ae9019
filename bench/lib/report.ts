/**
 * Turns the runs into tables: medians per server, the natd/dnsmasq ratio, and the issue's targets checked against
 * the medians. The same rows go to the terminal (aligned text) and to bench/RESULTS.md (markdown).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { BootStormResult } from './boot-storm.js';
import type { DnsScenario, ServerRunResult } from './server-run.js';
import { CAPABILITIES, KIND_LABEL, type BenchKind, type Capabilities, type ConflictCheck, type ServerKind } from './servers.js';
import { fmt, fmtRatio, markdownTable, median, ratio, textTable } from './stats.js';

export interface Machine {
  date: string;
  nproc: number;
  cpu: string;
  kernel: string;
  node: string;
  dnsmasq: string;
  dnsperf: string;
  nft: string;
  loadAverageAtStart: string;
}

function firstLine(cmd: string, args: string[], pattern?: RegExp): string {
  try {
    const out = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = out.split('\n').map((l) => l.trim()).filter(Boolean);
    return (pattern ? lines.find((l) => pattern.test(l)) : lines[0]) ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function describeMachine(): Machine {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    date: new Date().toISOString(),
    nproc: Number(firstLine('nproc', [])) || os.cpus().length,
    cpu: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    kernel: os.release(),
    node: process.version,
    dnsmasq: firstLine('dnsmasq', ['--version']).replace(/\s+Copyright.*$/, ''),
    dnsperf: firstLine('dnsperf', ['-h'], /^Version/),
    nft: firstLine('nft', ['--version']),
    loadAverageAtStart: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

export interface Table {
  title: string;
  note?: string;
  headers: string[];
  rows: string[][];
}

type Pick = (r: ServerRunResult) => number | undefined;

/** The median of one metric over a server's runs. */
function med(runs: ServerRunResult[], kind: BenchKind, pick: Pick): number {
  return median(runs.filter((r) => r.kind === kind).map((r) => pick(r) ?? NaN));
}

/** Shown for a server that does not do a scenario (Kea: no DNS; Unbound: no DHCP, no lease names) */
export const NOT_DONE = '–';
/** The servers in table order: natd, dnsmasq, then the peers that ran */
const ORDER: readonly BenchKind[] = ['natd', 'dnsmasq', 'kea', 'unbound'];
export function kindsIn(runs: ServerRunResult[]): BenchKind[] {
  return ORDER.filter((k) => k === 'natd' || k === 'dnsmasq' || runs.some((r) => r.kind === k));
}

/**
 * One metric for every server that ran, then natd's ratio against each of the others. `need`: what a server must do
 * for the metric to apply (a capability, or 'natd' for natd-only rows); the others show NOT_DONE.
 */
function comparisonRow(label: string, runs: ServerRunResult[], pick: Pick, digits?: number, need?: keyof Capabilities | 'natd'): string[] {
  const kinds = kindsIn(runs);
  const applies = (k: BenchKind) => !need || (need === 'natd' ? k === 'natd' : CAPABILITIES[k][need]);
  const values = kinds.map((k) => (applies(k) ? med(runs, k, pick) : undefined));
  const n = values[0]!;
  const cells = values.map((v) => (v === undefined ? NOT_DONE : fmt(v, digits)));
  const ratios = values.slice(1).map((v) => (v === undefined || !applies('natd') ? NOT_DONE : fmtRatio(ratio(n, v))));
  return [label, ...cells, ...ratios];
}

function compareHeaders(runs: ServerRunResult[]): string[] {
  const kinds = kindsIn(runs);
  return ['metric (median of runs)', ...kinds.map((k) => KIND_LABEL[k]), ...kinds.slice(1).map((k) => `natd/${KIND_LABEL[k]}`)];
}

/** CPU seconds per 10,000 operations → µs per operation */
const us = (per10k: number | undefined) => (per10k === undefined ? undefined : per10k * 100);

const SCENARIO_LABEL: Record<DnsScenario, string> = { hit: 'cache hits', local: 'local VM names', miss: 'cache misses' };

export interface Target {
  name: string;
  value: string;
  met: boolean;
  /** what the profile and the numbers say when the target is missed */
  whyMissed: string;
}

export interface TableContext {
  checks: Record<ServerKind, ConflictCheck>;
  /** named leases held in the DNS scenarios */
  smallHostLeases: number;
  /** named leases held for the loaded and memory measurements */
  seedLeases: number;
  /** node flags of the heap-capped natd measurement, as text */
  heapCaps: string;
}

export function buildTables(runs: ServerRunResult[], ctx: TableContext): Table[] {
  const { checks, seedLeases, heapCaps } = ctx;
  const COMPARE_HEADERS = compareHeaders(runs);
  const peerNotes = kindsIn(runs).includes('kea')
    ? ' Kea (kea-dhcp4, memfile): appends each lease change to its CSV lease file without an fsync, no conflict check, Kea 2.2\'s default single-threaded packet processing.'
    : '';
  const tables: Table[] = [];
  tables.push({
    title: 'DHCP, empty lease table, open-loop ladder (offered rate doubles until more than 1% of exchanges fail)',
    note: `durability: natd fdatasyncs its lease journal before every ACK (group commit); dnsmasq rewrites and fsyncs its whole lease file before every ACK. ` +
      `Conflict check before OFFER: natd ${checks.natd.description}; dnsmasq ${checks.dnsmasq.description}. ` +
      'Latency and CPU rows are each server\'s at its own sustained step.' + peerNotes,
    headers: COMPARE_HEADERS,
    rows: [
      comparisonRow('sustained exchanges/s (<=1% failed, kept pace)', runs, (r) => r.dhcpSustained, undefined, 'dhcp'),
      comparisonRow('peak completed exchanges/s (any step)', runs, (r) => r.dhcpPeak, undefined, 'dhcp'),
      comparisonRow('p50 DORA latency at sustained rate, ms', runs, (r) => r.dhcpSustainedP50Ms, undefined, 'dhcp'),
      comparisonRow('p99 DORA latency at sustained rate, ms', runs, (r) => r.dhcpSustainedP99Ms, undefined, 'dhcp'),
      comparisonRow('CPU µs per exchange (DORA, sustained step)', runs, (r) => us(r.dhcpCpuPer10k), undefined, 'dhcp'),
    ],
  });
  tables.push({
    title: `DHCP with ${seedLeases.toLocaleString('en')} named leases held, closed loop (4 exchanges in flight)`,
    note: 'the leases carry hostnames, as VMs that register their names do; clients time out after 5 s',
    headers: COMPARE_HEADERS,
    rows: [
      comparisonRow('completed exchanges/s', runs, (r) => r.loaded.perSecond, undefined, 'dhcp'),
      comparisonRow('p50 DORA latency, ms', runs, (r) => r.loaded.p50Ms, undefined, 'dhcp'),
      comparisonRow('p99 DORA latency, ms', runs, (r) => r.loaded.p99Ms, undefined, 'dhcp'),
      comparisonRow('failed exchanges, %', runs, (r) => r.loaded.loss * 100, 2, 'dhcp'),
      comparisonRow('CPU µs per exchange (DORA)', runs, (r) => us(r.loaded.cpuPer10k), undefined, 'dhcp'),
    ],
  });
  // issue 18: the issue's own configuration (16 in flight), natd and Kea; dnsmasq is not run here
  tables.push({
    title: `DHCP with ${seedLeases.toLocaleString('en')} named leases held, closed loop (16 exchanges in flight)`,
    note: 'the same server right after the 4-in-flight loop; natd and Kea only (dnsmasq takes seconds per exchange with these leases already at 4 in flight: "-")',
    headers: COMPARE_HEADERS,
    rows: [
      comparisonRow('completed exchanges/s', runs, (r) => r.loadedHigh?.perSecond, undefined, 'dhcp'),
      comparisonRow('p50 DORA latency, ms', runs, (r) => r.loadedHigh?.p50Ms, undefined, 'dhcp'),
      comparisonRow('p99 DORA latency, ms', runs, (r) => r.loadedHigh?.p99Ms, undefined, 'dhcp'),
      comparisonRow('failed exchanges, %', runs, (r) => (r.loadedHigh ? r.loadedHigh.loss * 100 : undefined), 2, 'dhcp'),
      comparisonRow('CPU µs per exchange (DORA)', runs, (r) => us(r.loadedHigh?.cpuPer10k), undefined, 'dhcp'),
    ],
  });
  const dnsRows: string[][] = [];
  for (const scenario of ['hit', 'miss', 'local'] as const) {
    const label = SCENARIO_LABEL[scenario];
    const need = scenario === 'local' ? 'leaseNames' : 'dns';
    dnsRows.push(comparisonRow(`${label}: queries/s`, runs, (r) => r.dns[scenario].qps, undefined, need));
    dnsRows.push(comparisonRow(`${label}: CPU µs per query`, runs, (r) => us(r.dns[scenario].cpuPer10k), undefined, need));
    dnsRows.push(comparisonRow(`${label}: avg latency, ms`, runs, (r) => r.dns[scenario].avgMs, undefined, need));
    dnsRows.push(comparisonRow(`${label}: p99 latency, ms`, runs, (r) => r.dns[scenario].p99Ms, undefined, need));
    dnsRows.push(comparisonRow(`${label}: lost queries`, runs, (r) => r.dns[scenario].lost, 0, need));
    dnsRows.push(comparisonRow(`${label}: NOERROR answers, %`, runs, (r) => noerrorShare(r, scenario), 1, need));
  }
  dnsRows.push(comparisonRow('cache misses: fake upstream CPU, % of a core', runs, (r) => r.dns.miss.upstreamCpu * 100, 0, 'dns'));
  dnsRows.push(comparisonRow(`cache hits with ${seedLeases.toLocaleString('en')} named leases held: queries/s`, runs, (r) => r.fullHit.qps, undefined, 'leaseNames'));
  dnsRows.push(comparisonRow(`cache hits with ${seedLeases.toLocaleString('en')} named leases held: p99 latency, ms`, runs, (r) => r.fullHit.p99Ms, undefined, 'leaseNames'));
  dnsRows.push(comparisonRow(`cache hits with ${seedLeases.toLocaleString('en')} named leases held: CPU µs per query`, runs, (r) => us(r.fullHit.cpuPer10k), undefined, 'leaseNames'));
  tables.push({
    title: `DNS with dnsperf (100 queries outstanding, 4 sockets, ${ctx.smallHostLeases} named leases held unless said otherwise)`,
    note: 'hits: 100 warmed names; misses: every name unique, answered by the fake upstream in the wan namespace (a single Node process; ' +
      'its CPU use is in the last misses row: below one core, so it was not the limit); local: names of the held leases, answered by the server itself.' +
      (kindsIn(runs).includes('unbound') ? ' Unbound: a caching forwarder to the same upstream (forward-zone "."), module-config "iterator" (no validation), one thread, its default cache sizes; it knows no lease names.' : ''),
    headers: COMPARE_HEADERS,
    rows: dnsRows,
  });
  tables.push({
    title: `Memory with ${seedLeases.toLocaleString('en')} leases and a full DNS cache (10,000 answers)`,
    note: 'read after the cache hits and the cache fill, before phase C\'s DHCP step, while the server holds exactly the seeded leases; ' +
      'the DHCP step then adds one lease per completed exchange (natd many thousands, dnsmasq a handful): its rows show the peak with those. ' +
      'Kea holds the leases but no DNS cache; Unbound holds the cache fill but no leases',
    headers: COMPARE_HEADERS,
    rows: [
      comparisonRow('peak RSS (VmHWM), MiB', runs, (r) => r.peakRssMiB),
      comparisonRow('RSS after the cache fill, MiB', runs, (r) => r.rssMiB),
      comparisonRow('peak RSS once the DHCP step added its leases, MiB', runs, (r) => r.afterDhcp.peakRssMiB, undefined, 'dhcp'),
      comparisonRow('leases held after the DHCP step', runs, (r) => r.afterDhcp.leases, 0, 'dhcp'),
      comparisonRow(`natd under ${heapCaps}: peak RSS, MiB`, runs, (r) => r.heapCapped?.peakRssMiB, undefined, 'natd'),
      comparisonRow(`natd under ${heapCaps}: cache hits, queries/s`, runs, (r) => r.heapCapped?.hitQps, undefined, 'natd'),
    ],
  });
  const natdOnly = (label: string, pick: Pick): string[] => [label, fmt(med(runs, 'natd', pick))];
  tables.push({
    title: 'nftables (natd only: dnsmasq has no firewall part); table with 20 port forwards, median ms',
    headers: ['operation', 'natd ms'],
    rows: [
      natdOnly('full apply (one nft -j -f batch)', (r) => r.nft?.fullApply),
      natdOnly('full apply + read-back verify (natd start/reload)', (r) => r.nft?.fullApplyVerify),
      natdOnly('one port forward added (element batch)', (r) => r.nft?.forwardAdd),
      natdOnly('one port forward removed', (r) => r.nft?.forwardRemove),
      natdOnly('`natd forwards add` CLI end to end (node start + control socket + nft)', (r) => r.cliForwardAddMs),
      natdOnly('`natd forwards remove` CLI end to end', (r) => r.cliForwardRemoveMs),
    ],
  });
  return tables;
}

function noerrorShare(r: ServerRunResult, scenario: DnsScenario): number {
  const d = r.dns[scenario];
  return d.completed ? ((d.rcodes.NOERROR ?? 0) / d.completed) * 100 : NaN;
}

/** Every ladder step, per server and offered rate: medians over the runs that reached that rate. */
export function ladderTable(runs: ServerRunResult[], kind: BenchKind): Table {
  const rates = [...new Set(runs.filter((r) => r.kind === kind).flatMap((r) => r.ladder.map((s) => s.offered)))].sort((a, b) => a - b);
  const rows = rates.map((rate) => {
    const steps = runs.filter((r) => r.kind === kind).flatMap((r) => r.ladder.filter((s) => s.offered === rate));
    return [
      String(rate),
      String(steps.length),
      fmt(median(steps.map((s) => s.completedPerSecond))),
      fmt(median(steps.map((s) => s.loss * 100)), 1),
      fmt(median(steps.map((s) => s.p50Ms))),
      fmt(median(steps.map((s) => s.p99Ms))),
      fmt(median(steps.map((s) => s.cpuPer10k * 100))),
      fmt(median(steps.map((s) => s.serverOverflows)), 0),
      fmt(median(steps.map((s) => s.clientOverflows)), 0),
    ];
  });
  return {
    title: `${KIND_LABEL[kind]}: DHCP ladder steps (medians over the runs that reached each rate)`,
    note: 'overflows: UDP datagrams the kernel dropped for want of socket receive buffer (/proc/net/snmp RcvbufErrors), in the server\'s namespace and in the generator\'s',
    headers: ['offered/s', 'runs', 'completed/s', 'failed %', 'p50 ms', 'p99 ms', 'CPU µs/DORA', 'server overflows', 'generator overflows'],
    rows,
  };
}

/**
 * Explanations for targets natd missed when this was written, from `npm run bench -- --profile` (bench/PROFILE.md)
 * and heap snapshots; shown only while the target is still missed.
 */
const WHY = {
  hits: 'natd and dnsmasq now spend about the same CPU per answered hit (about 7 us; see the CPU rows): DNS datagrams ' +
    'go through the addon\'s batched recvmmsg/sendmmsg (about 40 per call under dnsperf), the query parser and the cache ' +
    'lookup take well under 1 us each. A run that lands just below 1.0x is within the spread of this shared 2-core ' +
    'machine (see "Every run"); a large gap means a regression: profile with `npm run bench -- --profile`.',
  misses: 'The fake upstream (one Node process) is not the limit while it runs below one core (see its row). natd\'s ' +
    'miss path spends about 20 us CPU per query (connected upstream sockets on one epoll receiver group); the ratio ' +
    'moves mostly with dnsmasq\'s own variance on this shared machine.',
  rss: 'Where the peak goes (npm run bench -- --scenario memory --mem-probe: RSS, RssAnon/RssFile and V8 heap per ' +
    'step): about 42 MiB is file-backed pages of the node binary and its libraries (bare node: 33 MiB); about 24 MiB ' +
    'is V8 heap, of it the loaded modules\' source text and bytecode (which is why dist/ is built without comments, ' +
    'the schemas use zod\'s v3 API without zod 4\'s 64 locale modules, and TFTP, DDNS and IPv6 code loads only when ' +
    'configured), 10,000 leases and 10,000 cached answers a few MiB each; malloc stays small since the addon fixes ' +
    'glibc\'s trim threshold. Compare builds with --scenario memory --compare-dist OTHER/dist.',
} as const;

/** issue 7: natd's peak RSS with 10,000 leases and 10,000 cached answers at most 80 MB (76.3 MiB) */
export const RSS_TARGET_MIB = 80e6 / 1048576;

export function checkTargets(runs: ServerRunResult[]): Target[] {
  const m = (kind: ServerKind, pick: Pick) => med(runs, kind, pick);
  const hits = ratio(m('natd', (r) => r.dns.hit.qps), m('dnsmasq', (r) => r.dns.hit.qps));
  const misses = ratio(m('natd', (r) => r.dns.miss.qps), m('dnsmasq', (r) => r.dns.miss.qps));
  const lost = Math.max(...runs.filter((r) => r.kind === 'natd').flatMap((r) => Object.values(r.dns).map((d) => d.lost)));
  const dhcp = ratio(m('natd', (r) => r.dhcpSustained), m('dnsmasq', (r) => r.dhcpSustained));
  const dhcpLoaded = ratio(m('natd', (r) => r.loaded.perSecond), m('dnsmasq', (r) => r.loaded.perSecond));
  const rss = m('natd', (r) => r.peakRssMiB);
  return [
    { name: 'DNS cache hits >= 1.0x dnsmasq', value: fmtRatio(hits), met: hits >= 1, whyMissed: WHY.hits },
    { name: 'DNS cache misses >= 2x dnsmasq', value: fmtRatio(misses), met: misses >= 2, whyMissed: WHY.misses },
    { name: 'natd loses no DNS queries (any scenario, any run)', value: `${lost} lost at most`, met: lost === 0, whyMissed: '' },
    { name: 'DHCP exchanges/s >= 5x dnsmasq --no-ping (ladder, sustained)', value: fmtRatio(dhcp), met: dhcp >= 5, whyMissed: '' },
    { name: 'DHCP exchanges/s >= 5x dnsmasq with 10,000 named leases held', value: fmtRatio(dhcpLoaded), met: dhcpLoaded >= 5, whyMissed: '' },
    { name: 'natd peak RSS <= 80 MB with 10,000 leases and 10,000 cached answers', value: `${fmt(rss)} MiB`, met: rss <= RSS_TARGET_MIB, whyMissed: WHY.rss },
  ];
}

export function renderText(tables: Table[]): string {
  return tables.map((t) => `${t.title}\n${t.note ? `(${t.note})\n` : ''}${textTable(t.headers, t.rows)}\n`).join('\n');
}

export function renderMarkdown(tables: Table[]): string {
  return tables.map((t) => `### ${t.title}\n\n${t.note ? `${t.note}\n\n` : ''}${markdownTable(t.headers, t.rows)}\n`).join('\n');
}

/** Boot storm medians per server; the ratio is natd/dnsmasq as elsewhere (below 1: natd leased everyone sooner). */
export function bootStormTable(storms: BootStormResult[]): Table {
  const med = (kind: ServerKind, pick: (r: BootStormResult) => number) => median(storms.filter((r) => r.kind === kind).map(pick));
  const row = (label: string, pick: (r: BootStormResult) => number, digits?: number): string[] => {
    const n = med('natd', pick);
    const d = med('dnsmasq', pick);
    return [label, fmt(n, digits), fmt(d, digits), fmtRatio(ratio(n, d))];
  };
  const clients = storms[0]?.clients ?? 200;
  return {
    title: `Boot storm: ${clients} new clients send their DISCOVERs at once, default settings (median of runs)`,
    note: 'both servers run their default conflict check before an OFFER (natd its ARP probe, or ping without CAP_NET_RAW; dnsmasq ' +
      'its ICMP ping); clients retransmit on RFC 2131\'s schedule (4 s ±1 s, doubling); an empty lease table each run',
    headers: ['metric (median of runs)', 'natd', 'dnsmasq', 'natd/dnsmasq'],
    rows: [
      row('seconds until all clients are leased', (r) => r.allLeasedSeconds, 2),
      row('clients leased', (r) => r.leased, 0),
      row('p50 DISCOVER-to-ACK, ms', (r) => r.p50Ms),
      row('p99 DISCOVER-to-ACK, ms', (r) => r.p99Ms),
      row('client retransmissions', (r) => r.retransmissions, 0),
      row('datagrams dropped at the server (receive buffer full)', (r) => r.serverOverflows, 0),
      row('server CPU seconds', (r) => r.cpuSeconds, 2),
    ],
  };
}

/** Issue 13: all 200 leased within 1.5 s, and at least 10 times sooner than dnsmasq. */
export function bootStormTarget(storms: BootStormResult[]): Target {
  const n = median(storms.filter((r) => r.kind === 'natd').map((r) => r.allLeasedSeconds));
  const d = median(storms.filter((r) => r.kind === 'dnsmasq').map((r) => r.allLeasedSeconds));
  const speedup = ratio(d, n);
  return {
    name: 'boot storm: all leased <= 1.5 s and >= 10x sooner than dnsmasq',
    value: `${fmt(n, 2)} s (dnsmasq ${fmt(d, 2)} s, ${fmt(speedup, 1)}x)`,
    met: n <= 1.5 && speedup >= 10,
    whyMissed: '',
  };
}
