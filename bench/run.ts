#!/usr/bin/env node
/**
 * `npm run bench`: natd and dnsmasq side by side on the same namespace set-up, alternating run by run, medians of
 * the runs and the natd/dnsmasq ratio; results to the terminal and to bench/RESULTS.md. Needs root (namespaces).
 *
 *   node build/bench/run.js [--runs 3] [--quick] [--profile] [--scenario all|boot-storm|tftp] [--out bench/RESULTS.md]
 *
 *   --quick    one run each with shorter steps (a smoke test of the benchmark itself; RESULTS.md is not written)
 *   --scenario boot-storm   only the boot storm (200 clients at once, default settings), --runs times per server
 *   --scenario dhcp6        only DHCPv6 (issue 14): Solicit/Advertise/Request/Reply exchanges, natd vs dnsmasq, --runs times
 *                          at 4 and 64 in flight; writes the DHCPv6 section of RESULTS.md (with --profile: one natd run
 *                          at 64 under node --cpu-prof, hot spots to the terminal)
 *   --scenario tftp         only TFTP throughput, natd vs tftpd-hpa (10 clients x 50 MiB), --runs times per server; rewrites
 *                           only the TFTP section of RESULTS.md (not with --quick)
 *   --scenario local-records  natd only: cache hits plain and with 1,000 custom DNS records configured (issue 15)
 *   --scenario dhcp-options natd only: the DHCP closed loop as today and with 50 options + 1,000 reservations (issue 16)
 *   --scenario split-domain natd only: cache hits with 100 --server=/domain/ routes against none (issue 15), --runs times
 *   --scenario dns-ipv6     natd only: cache hits asked on the IPv6 gateway beside the IPv4 one (issue 14), --runs times
 *   --scenario ddns         natd only, DDNS to a real BIND 9 (issue 15): the resync of 10,000 leases, and the boot
 *                           storm with DDNS off and on (bench/lib/ddns-bench.ts); RESULTS.md untouched
 *   --scenario router       only the name router (issue 17), natd vs HAProxy (TLS SNI passthrough), --runs times each;
 *                           rewrites only the router section of RESULTS.md and chart-router.svg (not with --quick)
 *   --scenario hit-cost     DNS cache hits, natd vs Unbound (issue 18), CPU µs per answer, --runs rounds; rewrites only
 *                           its section of RESULTS.md (not with --profile); --compare-dist OTHER/dist adds that build
 *   --scenario memory       natd only: phase C's memory part (10,000 leases, 10,000 cached answers), --runs times; each
 *                           stage's RSS; --compare-dist A/dist,B/dist: other builds in turns; --mem-probe: V8 heap parts
 *   --profile  natd only, once, under `node --cpu-prof`; writes bench/PROFILE.md with the hot spots (raw profiles in the temp dir)
 *   --peers all|none|kea,unbound   the other servers measured (issue 18): Kea for DHCP, Unbound for DNS; default all
 *              that are installed (one skipped with a line saying how to install it otherwise)
 *   --peer-runs N  runs of Kea (default 1: four servers times 3 runs do not fit the 10-minute bound), after natd and
 *              dnsmasq in the first N runs. Unbound (about 14 s a run) runs in every run, right after natd, so natd's
 *              DNS figures and its are medians over the same moments of the machine (issue 18)
 *
 * The whole run stays inside a time budget (default 540 s): a run that would not fit is skipped and the report says so.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { bootStorm, type BootStormResult, type BootStormSettings } from './lib/boot-storm.js';
import { ddnsBench } from './lib/ddns-bench.js';
import { hotSpots } from './lib/cpu-profile.js';
import { coreLoop, dhcpOptionsBench, dhcpOptionsSummary } from './lib/dhcp-options.js';
import { bootStormTable, bootStormTarget, buildTables, checkTargets, describeMachine, ladderTable, renderMarkdown, renderText, type Machine, type Table, type Target } from './lib/report.js';
import { benchServer, type RunSettings, type ServerRunResult } from './lib/server-run.js';
import { conflictChecks, SERVER_KINDS, type BenchKind, type ServerKind } from './lib/servers.js';
import { fmt, markdownTable, textTable } from './lib/stats.js';
import { PROJECT_ROOT } from './lib/topology.js';
import { tftpTable, tftpThroughput, type TftpBenchSettings } from './lib/tftp-throughput.js';
// issue 14: the dns-ipv6 scenario
import { dnsIpv6 } from './lib/dns-ipv6.js';
// issue 15: the local-records scenario
import { answerStepCost, localRecordsRun, localRecordsTable, type LocalRecordsRun } from './lib/local-records.js';
import { splitDomain, SPLIT_DOMAINS } from './lib/split-domain.js';
// issue 18: Kea and Unbound as peers, CPU per operation for every server, SVG charts next to RESULTS.md
import { writeCharts, type Chart } from './lib/charts.js';
import { parsePeers, PEERS, peerVersion, type PeerKind } from './lib/peers/index.js';
import { CAPABILITIES, KIND_LABEL } from './lib/servers.js';
// issue 17: the name router against HAProxy
import { writeRouterChart } from './lib/charts.js';
import { routerBench, routerSection, routerTable, routerTargets, routerTargetsTable, spliceRouterSection, type RouterBenchOutcome, type RouterBenchSettings } from './lib/router-bench.js';
// issue 14: DHCPv6 exchanges, natd vs dnsmasq
import { dhcp6Bench, dhcp6Run, dhcp6Section, dhcp6Table, dhcp6Targets, existingDhcp6Section, spliceDhcp6Section, type Dhcp6BenchSettings } from './lib/dhcp6-bench.js';
// a scenario the full run's budget skipped keeps its earlier section of RESULTS.md (bench/lib/sections.ts)
import { keepSkippedSections, findSection, markSection, skippedScenario, skippedSummary, spliceSection, type SkippedScenario } from './lib/sections.js';
// issue 7: the memory part of phase C alone, for one or more builds
import { memoryBench, memoryTable } from './lib/memory-bench.js';
import { RSS_TARGET_MIB } from './lib/report.js';
// issue 18: the lease-count ladder against Kea, cache-hit cost against Unbound
import { existingHitCostSection, hitCost, hitCostSection, hitCostTable, type HitSetup, leaseLadder, spliceHitCostSection, leaseLadderTable, writeLeaseLadder } from './lib/lease-ladder.js';

interface PeerPlan {
  /** installed and asked for */
  peers: PeerKind[];
  runs: number;
  /** "Kea 2.2.0" lines for the machine table */
  versions: string[];
  /** why a peer asked for was left out */
  notes: string[];
}

function planPeers(spec: string, runs: number): PeerPlan {
  const plan: PeerPlan = { peers: [], runs, versions: [], notes: [] };
  for (const kind of parsePeers(spec)) {
    const version = peerVersion(kind);
    if (version) {
      plan.peers.push(kind);
      plan.versions.push(version);
    } else {
      const { label, binary, debianPackage } = PEERS[kind];
      plan.notes.push(`${label} skipped: ${binary} is not installed (apt-get install ${debianPackage})`);
      log(`bench: ${label} skipped: ${binary} is not installed (apt-get install ${debianPackage})`);
    }
  }
  return plan;
}

const BENCH_DIR = path.join(PROJECT_ROOT, 'bench');
/** V8 limits for the heap-capped memory measurement: a 1 MiB young generation half, a 48 MiB old generation */
const NATD_HEAP_CAPS = ['--max-semi-space-size=1', '--max-old-space-size=48'];

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function settings(quick: boolean, natdArgs: string[], cpuProfileDir?: string): RunSettings {
  return {
    ladderRates: quick ? [25, 100, 400, 1600] : [25, 50, 100, 200, 400, 800, 1600, 3200, 6400, 12800],
    ladderStepMs: quick ? 1000 : 2000,
    dhcpTimeoutMs: 2000,
    maxLoss: 0.01,
    smallHostLeases: 100,
    seedLeases: 10_000,
    loadedDhcpMs: quick ? 2000 : 4000,
    loadedDhcpConcurrency: 4,
    loadedDhcpHighConcurrency: 16, // issue 18: the issue's own table
    loadedDhcpTimeoutMs: 5000,
    dnsSeconds: quick ? 2 : 5,
    dnsMaxQps: { hit: 250_000, local: 250_000, miss: 50_000 },
    cacheFill: 10_000,
    nftRepeat: quick ? 3 : 10,
    cliRepeat: 3,
    natdArgs,
    natdHeapCaps: NATD_HEAP_CAPS,
    ...(cpuProfileDir ? { cpuProfileDir } : {}),
    log,
  };
}

/**
 * issue 14: the DHCPv6 closed loop, at the DHCPv4 closed loop's 4 in flight and at 64 (a boot storm), from 64 guest
 * sources. natd limits each source to 50 messages/s (dhcp6/transport.ts), which caps natd here at 1,600 exchanges/s;
 * more sources would lift that, but with 100 or more dnsmasq falls to ~10 exchanges/s (p50 ~430 ms, measured), which
 * would make the ratio say more about that than about the exchange itself.
 */
const DHCP6: Omit<Dhcp6BenchSettings, 'log' | 'runs'> = { count: 20_000, concurrencies: [4, 64], sources: 64, maxMs: 10_000 };

const BOOT_STORM: Omit<BootStormSettings, 'log'> = { clients: 200, timeoutMs: 60_000 };
/** issue 16: one 50 MiB file to 10 TFTP clients at once */
const TFTP: Omit<TftpBenchSettings, 'log' | 'runs'> = { clients: 10, fileMiB: 50 };
/** issue 17: the name router's loops (each bounded by count and by time) and its large transfer */
function routerSettings(quick: boolean, runs: number): RouterBenchSettings {
  return { runs, concurrency: 16, latencyClients: 100, count: 50_000, loopMs: quick ? 2000 : 5000, bulkBytes: (quick ? 64 : 512) * 1024 * 1024, log };
}

/** The router's section of RESULTS.md and its chart, next to `out`. */
function routerMarkdown(outcome: RouterBenchOutcome, s: RouterBenchSettings, out: string): string {
  const chart = outcome.results.length ? writeRouterChart(outcome.results, path.dirname(out), s).file : undefined;
  return routerSection(outcome, s, chart, renderMarkdown);
}
/**
 * What one boot storm takes before the first has run, namespaces included: measured about 5 s for natd and 35 s for
 * dnsmasq (its ping before each OFFER). The runs leave this much of the budget for one storm per server, so the
 * boot-storm target is checked even when four servers' runs fill the rest (issue 18); a storm that runs into the
 * clients' 60 s timeout overruns the budget by at most 25 s, inside the hard bound's margin (scripts/bench.sh).
 */
const BOOT_STORM_FIRST_S = 40;
/** what rewrites the boot-storm and TFTP sections of RESULTS.md (their begin markers say it) */
const BOOT_STORM_HOW = 'a full npm run bench rewrites this part when it measured a storm';
const TFTP_HOW = 'npm run bench -- --scenario tftp, or a full run that measured TFTP, rewrites this part';

/** natd first in odd runs, dnsmasq first in even ones, so drift on a shared machine hits both alike. */
function orderFor(run: number): ServerKind[] {
  return run % 2 === 1 ? [...SERVER_KINDS] : [...SERVER_KINDS].reverse();
}

async function runAll(runs: number, s: RunSettings, budgetMs: number, peers: PeerPlan): Promise<{ results: ServerRunResult[]; skipped: string[] }> {
  const start = performance.now();
  const results: ServerRunResult[] = [];
  const skipped: string[] = [];
  const longest: Record<BenchKind, number> = { natd: 0, dnsmasq: 0, kea: 0, unbound: 0 };
  for (let run = 1; run <= runs; run++) {
    // issue 18: Unbound in every run, next to natd (natd's DNS numbers are medians of runs: a single Unbound run at
    // another moment of this shared machine compared a median with one sample); Kea in the first --peer-runs runs
    const everyRun = peers.peers.filter((k) => k === 'unbound');
    const firstRuns = run <= peers.runs ? peers.peers.filter((k) => k !== 'unbound') : [];
    const order: BenchKind[] = [...orderFor(run).flatMap((k): BenchKind[] => (k === 'natd' ? ['natd', ...everyRun] : [k])), ...firstRuns];
    for (const kind of order) {
      const left = budgetMs - (performance.now() - start);
      if (longest[kind] * 1000 * 1.2 > left) {
        skipped.push(`run ${run} ${kind} (${(left / 1000).toFixed(0)} s of the budget left, a run took up to ${longest[kind].toFixed(0)} s)`);
        log(`[run ${run}/${runs}] ${kind}: skipped, not enough time left in the budget`);
        continue;
      }
      log(`[run ${run}/${runs}] ${kind}`);
      const result = await benchServer(kind, run, s);
      longest[kind] = Math.max(longest[kind], result.seconds);
      log(`  ${kind} run took ${result.seconds.toFixed(0)} s`);
      results.push(result);
    }
  }
  return { results, skipped };
}

/** The boot storm, `runs` times per server (alternating), inside what is left of the budget. */
async function runBootStorms(runs: number, budgetMs: number): Promise<{ storms: BootStormResult[]; skipped: string[] }> {
  const start = performance.now();
  const storms: BootStormResult[] = [];
  const skipped: string[] = [];
  const longest: Record<ServerKind, number> = { natd: 0, dnsmasq: 0 };
  for (let run = 1; run <= runs; run++) {
    for (const kind of orderFor(run)) {
      const left = budgetMs - (performance.now() - start);
      // a run takes at most the clients' timeout plus set-up; before the first one, assume that
      if ((longest[kind] || BOOT_STORM_FIRST_S) * 1000 > left) {
        skipped.push(`boot storm run ${run} ${kind} (${(left / 1000).toFixed(0)} s of the budget left)`);
        continue;
      }
      log(`[boot storm ${run}/${runs}] ${kind}`);
      const result = await bootStorm(kind, run, { ...BOOT_STORM, log });
      longest[kind] = Math.max(longest[kind], result.seconds * 1.2);
      storms.push(result);
    }
  }
  return { storms, skipped };
}

function machineTable(m: Machine, peers?: PeerPlan): Table {
  return {
    title: 'Machine',
    headers: ['what', 'value'],
    rows: [
      ['date', m.date], ['nproc', String(m.nproc)], ['CPU', m.cpu], ['kernel', m.kernel], ['node', m.node],
      ['dnsmasq', m.dnsmasq], ...(peers?.versions ?? []).map((v) => ['peer', v]), ['dnsperf', m.dnsperf], ['nft', m.nft],
      ['load average at start (1/5/15 min)', m.loadAverageAtStart],
    ],
  };
}

/** `notMeasured`: targets of scenarios this run skipped (not checked, so neither met nor MISSED) */
function targetsTable(targets: Target[], notMeasured: string[] = []): Table {
  return { title: 'Targets (issue 7), checked against the medians', headers: ['target', 'natd', 'met?'],
    rows: [...targets.map((t) => [t.name, t.value, t.met ? 'yes' : 'MISSED']), ...notMeasured.map((name) => [name, 'not measured in this run', '–'])] };
}

function missedNotes(targets: Target[]): string {
  const missed = targets.filter((t) => !t.met && t.whyMissed);
  if (!missed.length) return '';
  return `### Why natd misses ${missed.length === 1 ? 'a target' : 'these targets'}\n\n${missed.map((t) => `- **${t.name}** (${t.value}): ${t.whyMissed}`).join('\n')}\n`;
}

function resultsMarkdown(m: Machine, runs: number, tables: Table[], ladders: Table[], targets: Target[], skipped: string[], results: ServerRunResult[], totalSeconds: number, storms: BootStormResult[], peers: PeerPlan, charts: Chart[],
  scenarios: { skipped: SkippedScenario[]; summary: string; tftp: Table }): string {
  const cell = (ok: boolean, v: number) => (ok ? fmt(v) : '–');
  const perRun = results.map((r) => {
    const can = CAPABILITIES[r.kind];
    return [String(r.run), KIND_LABEL[r.kind], cell(can.dhcp, r.dhcpSustained), cell(can.dhcp, r.dhcpCpuPer10k * 100), cell(can.dhcp, r.loaded.perSecond),
      cell(can.dns, r.dns.hit.qps), cell(can.dns, r.dns.hit.cpuPer10k * 100), cell(can.dns, r.dns.miss.qps), cell(can.dns, r.dns.miss.cpuPer10k * 100),
      cell(can.leaseNames, r.dns.local.qps), fmt(r.peakRssMiB), fmt(r.seconds)];
  });
  const peerNames = peers.peers.map((k) => PEERS[k].label);
  return `# Benchmark results: natd vs dnsmasq${peerNames.length ? `, ${peerNames.join(' and ')}` : ''}

Generated by \`npm run bench\` (bench/run.ts) on ${m.date}, ${runs} run(s) each for natd and dnsmasq, alternating,
${peerNames.length ? `${peers.runs} run(s) each for ${peerNames.join(' and ')} (after natd and dnsmasq in the first run${peers.runs > 1 ? 's' : ''}; Kea does only the DHCP scenarios, Unbound only DNS hits and misses: "–" marks what a server does not do), ` : ''}each run on a fresh set of network namespaces; ${totalSeconds.toFixed(0)} s in all. Every number below is the median over the runs;
ratios are natd/other (above 1 means natd's number is higher: better for rates, worse for latency, CPU and memory).
CPU per operation (µs of the server's user + system time per DORA exchange or per DNS query, from /proc/<pid>/stat
around each measurement) moves less than the rates on a shared machine. How the benchmark works and how to read it: bench/README.md.
${peers.notes.length ? `\n${peers.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${charts.length ? `\nCharts: ${charts.map((c) => `[${c.title}](${c.file})`).join(' · ')}\n\n${charts.map((c) => `![${c.title}](${c.file})`).join('\n')}\n` : ''}
${scenarios.summary ? `\n${scenarios.summary}\n` : ''}
${renderMarkdown([machineTable(m, peers)])}
${renderMarkdown([targetsTable(targets, scenarios.skipped.some((x) => x.name === 'boot-storm') ? [bootStormTarget([]).name] : [])])}
${missedNotes(targets)}
${renderMarkdown(tables)}
${markSection('boot-storm', renderMarkdown([bootStormTable(storms)]), BOOT_STORM_HOW)}
${markSection('tftp', renderMarkdown([scenarios.tftp]), TFTP_HOW)}
${renderMarkdown(ladders)}
### Every run

${markdownTable(['run', 'server', 'DHCP sustained/s', 'CPU µs/DORA', 'DHCP/s 10k leases', 'DNS hits q/s', 'CPU µs/hit', 'DNS misses q/s', 'CPU µs/miss', 'DNS local q/s', 'peak RSS MiB', 'seconds'], perRun)}
${skipped.length ? `\nSkipped to stay inside the time budget: ${skipped.join('; ')}.\n` : ''}
### Caveats

- A 2-core machine: the load generator (Node), dnsperf and the fake upstream (Node) share the CPUs with the server under
  test, and other work on the machine adds noise (load average at start above). Ratios are more robust than absolutes.
- Cache misses go through the fake upstream (one Node process answering from dns-packet); it stayed below one core
  (see its row in the DNS table), so it was not the limit for either server.
- The DHCP load generator sends no retransmissions: an exchange not completed within 2 s counts as failed, and the
  ladder stops at the first step with more than 1% failed.
- dnsmasq runs with --quiet-dhcp (natd logs no routine DHCP either), --dhcp-lease-max=65536 (its default 1,000 cannot
  hold 10,000 leases), --user=root (to write its lease file in the benchmark's temp dir) and no config file of the host's.
- Both servers get the same seeded leases (dnsmasq: its lease file; natd: its journal, written with natd's LeaseStore).
  With 10,000 leases that carry hostnames, dnsmasq spends seconds of CPU per lease change and per DHCP exchange, and its
  DNS slows down too (cache hits drop from about 100,000 to about 6,000 queries/s): hence the huge ratios in those rows.
  They are what dnsmasq 2.90 does here, not a benchmark fault; with 1,000 named leases it still answers about 50,000 hits/s.
- The issue's estimate for dnsmasq ("near 400 exchanges/s with a few thousand leases") was not reproduced: here dnsmasq keeps
  pace up to 100-200 exchanges/s from an empty table, then queues (fsync of its whole lease file per ACK, about 2-4 ms on
  this disk, plus per-packet walks over its lease list).
${peers.peers.includes('kea') ? `- Kea appends each lease to its memfile without an fsync, natd fdatasyncs its journal before every ACK: with 4 exchanges
  in flight (the 10,000-lease closed loop) natd waits on the disk where Kea does not. Kea's ladder and natd's move a
  lot between runs on this shared machine; compare the CPU rows.
` : ''}${peers.peers.includes('kea') ? `- Kea ran ${peers.runs} time(s) (\`--peer-runs\`), natd and dnsmasq up to ${runs}: with one run, Kea's number is one run, not a median of several.
` : ''}${peers.peers.includes('unbound') ? `- Unbound runs in every run, right after natd (issue 18: its DNS numbers and natd's are medians over the same moments).
` : ''}`;
}

/** PROFILE.md from this line on is hand-written and kept when --profile rewrites the generated part above it */
const ANALYSIS_MARKER = '<!-- analysis: kept by npm run bench -- --profile -->';

async function profileNatd(natdArgs: string[]): Promise<void> {
  // the profiles are megabytes each: kept in the temp dir, not in the tree
  const dir = path.join(tmpdir(), `natd-bench-profiles-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  const s = settings(false, natdArgs, dir);
  log(`profiling natd: V8 CPU profiles go to ${dir}`);
  await benchServer('natd', 1, s);
  const sections: string[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const { totalMs, spots } = hotSpots(path.join(dir, file), 20, PROJECT_ROOT);
    const rows = spots.map((h) => [h.function, h.location, fmt(h.selfMs), `${(h.share * 100).toFixed(1)}%`]);
    log(`\n${file} (${fmt(totalMs)} ms sampled)\n${textTable(['function', 'where', 'self ms', 'share'], rows)}`);
    sections.push(`### ${file} (${fmt(totalMs)} ms sampled)\n\n${markdownTable(['function', 'where', 'self ms', 'share'], rows)}\n`);
  }
  const md = `# natd CPU profile under the benchmark load\n\nGenerated by \`npm run bench -- --profile\` on ${new Date().toISOString()}: one natd run ` +
    `under \`node --cpu-prof\`. One profile per natd process, in phase order (bench/README.md): A the DHCP ladder, B DNS ` +
    `hits/local/misses with 100 leases, C 10,000 leases (DHCP, hits, cache fill, CLI forwards), E the heap-capped ` +
    `memory run. Self time per function; "(idle)" is the event loop waiting, "(program)" native code outside JS. ` +
    `Raw profiles: ${dir}.\n\n${sections.join('\n')}`;
  // issue 18: the hand-written analysis after ANALYSIS_MARKER survives a regeneration
  const file = path.join(BENCH_DIR, 'PROFILE.md');
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const kept = old.includes(ANALYSIS_MARKER) ? old.slice(old.indexOf(ANALYSIS_MARKER)) : '';
  writeFileSync(file, kept ? `${md}\n${kept}` : md);
  log(`wrote bench/PROFILE.md`);
}

/** issue 17: one router round with natd (and the engine alone) under `node --cpu-prof`; hot spots to the terminal. */
async function profileRouter(withEngine: boolean): Promise<void> {
  const dir = path.join(tmpdir(), `natd-router-profiles-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  log(`profiling the name router: V8 CPU profiles go to ${dir}`);
  const rs = { ...routerSettings(false, 1), withEngine, cpuProfileDir: dir };
  const outcome = await routerBench(rs, 600_000);
  process.stdout.write(`\n${renderText([routerTable(outcome.results, rs)])}`);
  for (const kind of ['natd', 'engine']) {
    const sub = path.join(dir, kind);
    if (!existsSync(sub)) continue;
    for (const file of readdirSync(sub).filter((f) => f.endsWith('.cpuprofile'))) {
      const { totalMs, spots } = hotSpots(path.join(sub, file), 25, PROJECT_ROOT);
      const rows = spots.map((h) => [h.function, h.location, fmt(h.selfMs), `${(h.share * 100).toFixed(1)}%`]);
      process.stdout.write(`\n${kind}: ${file} (${fmt(totalMs)} ms sampled)\n${textTable(['function', 'where', 'self ms', 'share'], rows)}\n`);
    }
  }
}

/** issue 14: one natd DHCPv6 run under `node --cpu-prof`; hot spots to the terminal. */
async function profileDhcp6(): Promise<void> {
  const dir = path.join(tmpdir(), `natd-dhcp6-profiles-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  mkdirSync(dir, { recursive: true });
  log(`profiling natd's DHCPv6: V8 CPU profiles go to ${dir}`);
  await dhcp6Run('natd', 1, DHCP6.concurrencies.at(-1)!, { ...DHCP6, runs: 1, cpuProfileDir: dir, log });
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))) {
    const { totalMs, spots } = hotSpots(path.join(dir, file), 30, PROJECT_ROOT);
    const rows = spots.map((h) => [h.function, h.location, fmt(h.selfMs), `${(h.share * 100).toFixed(1)}%`]);
    process.stdout.write(`\n${file} (${fmt(totalMs)} ms sampled)\n${textTable(['function', 'where', 'self ms', 'share'], rows)}\n`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      quick: { type: 'boolean', default: false },
      profile: { type: 'boolean', default: false },
      out: { type: 'string', default: path.join(BENCH_DIR, 'RESULTS.md') },
      'budget-s': { type: 'string', default: '540' },
      scenario: { type: 'string', default: 'all' },
      'compare-dist': { type: 'string' },
      peers: { type: 'string', default: 'all' },
      'peer-runs': { type: 'string', default: '1' },
      // issue 17: --scenario router also measures natd's NameRouter class alone (bench/lib/router-engine.ts)
      'router-engine': { type: 'boolean', default: false },
      'lease-counts': { type: 'string' },
      // issue 18, lease-ladder: closed-loop concurrencies (default 4; e.g. 4,16)
      'in-flight': { type: 'string' },
      // issue 18, lease-ladder: an unmeasured closed loop of this many ms first, for every server (steady state)
      'warmup-ms': { type: 'string' },
      // issue 18, hit-cost: the full run's phase-B set-up (hit-setup phase-b), perf stat / perf record of each server
      'hit-setup': { type: 'string', default: 'hit-cost' },
      'perf-stat': { type: 'boolean', default: false },
      'perf-record': { type: 'string' },
      outstanding: { type: 'string' },
      // issue 7, --scenario memory: process.memoryUsage() of natd at the peak (a preload of the bench's, not natd's)
      'mem-probe': { type: 'boolean', default: false },
    },
  });
  const SCENARIOS = ['all', 'boot-storm', 'local-records', 'dhcp-options', 'split-domain', 'ddns', 'tftp', 'dns-ipv6', 'router', 'dhcp6', 'lease-ladder', 'hit-cost', 'memory'];
  if (!SCENARIOS.includes(values.scenario!)) throw new Error(`--scenario: one of ${SCENARIOS.join(', ')} (got "${values.scenario}")`);
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) throw new Error('the benchmark needs root (it builds network namespaces)');
  const checks = conflictChecks();
  const natdArgs = checks.natd.flag ? [checks.natd.flag] : [];
  if (values.profile && values.scenario === 'router') return profileRouter(values['router-engine']!);
  if (values.profile && values.scenario === 'dhcp6') return profileDhcp6();
  // issue 18: natd against Kea as the lease count grows, natd against Unbound on cache hits (--profile: natd profiled)
  if (values.scenario === 'lease-ladder' || values.scenario === 'hit-cost') {
    const runs = Math.max(1, Number(values.runs) || 3);
    const peerSpec = values.peers === 'none' ? [] : parsePeers(values.peers!).filter((k) => peerVersion(k));
    const peer = values.scenario === 'lease-ladder' ? peerSpec.find((k) => k === 'kea') : peerSpec.find((k) => k === 'unbound');
    const leaseCounts = values['lease-counts']?.split(',').map((n) => Number(n));
    if (leaseCounts?.some((n) => !Number.isInteger(n) || n < 0 || n > 45_000)) throw new Error('--lease-counts: a comma list of lease counts from 0 to 45000');
    const inFlight = values['in-flight']?.split(',').map((n) => Number(n));
    if (inFlight?.some((n) => !Number.isInteger(n) || n < 1 || n > 256)) throw new Error('--in-flight: a comma list of concurrencies from 1 to 256');
    const common = {
      runs, natdArgs, profile: values.profile!, log, ...(peer ? { peer } : {}), ...(leaseCounts ? { leaseCounts } : {}),
      ...(inFlight ? { inFlight } : {}), ...(values['compare-dist'] ? { compareDist: values['compare-dist'] } : {}),
      ...(values['warmup-ms'] ? { warmupMs: Math.max(0, Number(values['warmup-ms']) || 0) } : {}),
    };
    const loadAtStart = describeMachine().loadAverageAtStart;
    log(`[${values.scenario}] load average ${loadAtStart}`);
    if (values.scenario === 'hit-cost') {
      const setup = values['hit-setup']!.split(',') as HitSetup[];
      if (!setup.length || setup.some((x) => x !== 'hit-cost' && x !== 'phase-b')) throw new Error(`--hit-setup: hit-cost, phase-b or both (got "${values['hit-setup']}")`);
      const points = await hitCost({
        ...common, seconds: 5, setup, perfStat: values['perf-stat']!, ...(values.outstanding ? { outstanding: Math.max(1, Number(values.outstanding) || 100) } : {}), ...(values['perf-record'] ? { perfRecordDir: path.resolve(values['perf-record']) } : {}),
        ...(values['compare-dist'] ? { compareDist: values['compare-dist'] } : {}),
      });
      process.stdout.write(`\n${hitCostTable(points)}`);
      // RESULTS.md's section is the hit-cost set-up's; phase-b (a diagnosis of the full run's figure) only prints
      if (!values.profile && setup.length === 1 && setup[0] === 'hit-cost' && !values.outstanding) {
        const out = values.out!;
        const section = hitCostSection(points, { loadAtStart: loadAtStart, loadAtEnd: describeMachine().loadAverageAtStart, ...(peer ? { peer: KIND_LABEL[peer] } : {}) });
        writeFileSync(out, spliceHitCostSection(existsSync(out) ? readFileSync(out, 'utf8') : '', section));
        log(`hit-cost: section written to ${out}`);
      }
      return;
    }
    const points = await leaseLadder(common);
    process.stdout.write(`\n${leaseLadderTable(points, common.warmupMs)}`);
    if (!values.profile) writeLeaseLadder(points, path.dirname(values.out!), { machine: describeMachine(), peers: peer ? [peerVersion(peer)] : [] });
    return;
  }
  if (values.profile) return profileNatd(natdArgs);

  const t0 = performance.now();
  const machine = describeMachine();
  const runs = values.quick ? 1 : Math.max(1, Number(values.runs) || 3);
  const s = settings(values.quick!, natdArgs);
  const budgetMs = Number(values['budget-s']) * 1000;
  log(`natd vs dnsmasq: ${runs} run(s) each on ${machine.nproc} CPUs (${machine.cpu}), load average ${machine.loadAverageAtStart}`);
  if (values.scenario === 'memory') {
    const builds = [{ label: 'natd' }, ...(values['compare-dist']?.split(',').filter(Boolean) ?? []).map((d) => ({ label: d, cli: path.resolve(d, 'src', 'cli.js') }))];
    const points = await memoryBench({ runs, builds, natdArgs, memProbe: values['mem-probe']!, run: s, log });
    process.stdout.write(`\n${memoryTable(points, RSS_TARGET_MIB)}`);
    log(`\nmemory only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
    return;
  }
  if (values.scenario === 'local-records') {
    // issue 15: natd against itself, so no alternation with dnsmasq; each run alternates plain/records order
    const done: LocalRecordsRun[] = [];
    for (let run = 1; run <= runs; run++) {
      if (done.length && Math.max(...done.map((r) => r.seconds)) * 1000 * 1.2 > budgetMs - (performance.now() - t0)) break;
      log(`[local records ${run}/${runs}]`);
      done.push(await localRecordsRun(run, { dnsSeconds: s.dnsSeconds, maxQps: s.dnsMaxQps.hit, natdArgs, log }));
    }
    process.stdout.write(`\n${localRecordsTable(done, answerStepCost())}`);
    log(`\nlocal records only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
    return;
  }
  if (values.scenario === 'dhcp-options') {
    const results = await dhcpOptionsBench(runs, natdArgs, log);
    process.stdout.write(`\n${dhcpOptionsSummary(results)}`);
    // in process, no I/O: the core and the encoder alone; --compare-dist DIR adds another build's figure ("today's")
    const dist = path.join(PROJECT_ROOT, 'dist');
    const core: string[] = [];
    for (let run = 1; run <= runs; run++) {
      const row = [`run ${run}: baseline ${(await coreLoop(dist, false)).toFixed(0)}/s`, `50 options + 1,000 reservations ${(await coreLoop(dist, true)).toFixed(0)}/s`];
      if (values['compare-dist']) row.push(`${values['compare-dist']} ${(await coreLoop(path.resolve(values['compare-dist']), false)).toFixed(0)}/s`);
      core.push(`  ${row.join(', ')}`);
    }
    process.stdout.write(`DHCP core + encoder, in process (DISCOVER+REQUEST exchanges/s, PRL 1-254):\n${core.join('\n')}\n`);
    log(`\ndhcp-options only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
    return;
  }
  if (values.scenario === 'ddns') {
    // issue 15: natd only (dnsmasq has no dynamic DNS updates)
    log('[ddns] natd publishing to BIND 9');
    const r = await ddnsBench({ leases: s.seedLeases, stormClients: BOOT_STORM.clients, stormTimeoutMs: BOOT_STORM.timeoutMs, extraArgs: natdArgs, log });
    process.stdout.write(`\n${JSON.stringify(r, null, 1)}\n`);
    return;
  }
  if (values.scenario === 'boot-storm') {
    const { storms, skipped } = await runBootStorms(runs, budgetMs);
    process.stdout.write(`\n${renderText([bootStormTable(storms), targetsTable([bootStormTarget(storms)])])}`);
    if (skipped.length) process.stdout.write(`\nskipped: ${skipped.join('; ')}\n`);
    log(`\nboot storm only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
    return;
  }
  if (values.scenario === 'split-domain') {
    // issue 15: the route lookup on the cache-hit path; target: within 5% of the plain hit rate
    const split = await splitDomain({ runs, seconds: s.dnsSeconds, maxQps: s.dnsMaxQps.hit, natdArgs, log });
    const rows = split.runs.map((r) => [String(r.run), r.variant, fmt(r.qps), fmt(r.p99Ms), fmt(r.cpuUsPerQuery), String(r.lost)]);
    process.stdout.write(`\nsplit-domain: natd cache hits, no routes vs ${SPLIT_DOMAINS} --server=/domain/ routes\n` +
      `${textTable(['run', 'variant', 'hits q/s', 'p99 ms', 'CPU µs/query', 'lost'], rows)}\n` +
      `median: plain ${fmt(split.plainQps)} q/s, routes ${fmt(split.routesQps)} q/s, ratio ${split.ratio.toFixed(3)} ` +
      `(target >= 0.95: ${split.ratio >= 0.95 ? 'met' : 'MISSED'}); CPU per query: plain ${fmt(split.plainCpuUs)} µs, ` +
      `routes ${fmt(split.routesCpuUs)} µs; ${split.seconds.toFixed(0)} s\n`);
    return;
  }
  // issue 14: DNS over IPv6 hits beside IPv4 hits, one natd; target: CPU per query within 10% of the IPv4 figure
  if (values.scenario === 'dns-ipv6') {
    const v6 = await dnsIpv6({ runs, seconds: s.dnsSeconds, maxQps: s.dnsMaxQps.hit, natdArgs, log });
    const rows = v6.runs.map((r) => [String(r.run), r.family, fmt(r.qps), fmt(r.p99Ms), fmt(r.cpuUsPerQuery), String(r.lost)]);
    process.stdout.write(`\ndns-ipv6: natd cache hits asked on the IPv4 gateway vs the IPv6 gateway\n` +
      `${textTable(['run', 'family', 'hits q/s', 'p99 ms', 'CPU µs/query', 'lost'], rows)}\n` +
      `median: IPv4 ${fmt(v6.v4Qps)} q/s ${fmt(v6.v4CpuUs)} µs/query, IPv6 ${fmt(v6.v6Qps)} q/s ${fmt(v6.v6CpuUs)} µs/query; ` +
      `CPU ratio ${v6.cpuRatio.toFixed(3)} (target <= 1.10: ${v6.cpuRatio <= 1.1 ? 'met' : 'MISSED'}); ${v6.seconds.toFixed(0)} s\n`);
    return;
  }
  if (values.scenario === 'dhcp6') {
    const dhcp6 = await dhcp6Bench({ ...DHCP6, runs, log }, budgetMs);
    const targets = dhcp6Targets(dhcp6.results, DHCP6.concurrencies).map((t) => `${t.target}: ${t.value} (${t.met ? 'met' : 'MISSED'})`);
    process.stdout.write(`\n${renderText([dhcp6Table(dhcp6.results, DHCP6)])}\n${targets.join('\n')}\n`);
    if (dhcp6.skipped.length) process.stdout.write(`\nskipped: ${dhcp6.skipped.join('; ')}\n`);
    if (values.quick || !dhcp6.results.length) {
      log(`\nDHCPv6 only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
      return;
    }
    const out = values.out!;
    writeFileSync(out, spliceDhcp6Section(existsSync(out) ? readFileSync(out, 'utf8') : '# Benchmark results\n', dhcp6Section(dhcp6.results, DHCP6)));
    log(`\nDHCPv6 only: ${((performance.now() - t0) / 1000).toFixed(0)} s; wrote the DHCPv6 section of ${path.relative(process.cwd(), out)}`);
    return;
  }
  if (values.scenario === 'tftp') {
    const tftp = await tftpThroughput({ ...TFTP, runs, log }, budgetMs);
    process.stdout.write(`\n${renderText([tftpTable(tftp.results, TFTP)])}`);
    if (tftp.skipped.length) process.stdout.write(`\nskipped: ${tftp.skipped.join('; ')}\n`);
    if (values.quick || !tftp.results.length) {
      log(`\nTFTP only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
      return;
    }
    const out = values.out!;
    writeFileSync(out, spliceSection(existsSync(out) ? readFileSync(out, 'utf8') : '# Benchmark results\n', 'tftp', markSection('tftp', renderMarkdown([tftpTable(tftp.results, TFTP)]), TFTP_HOW)));
    log(`\nTFTP only: ${((performance.now() - t0) / 1000).toFixed(0)} s; wrote the TFTP section of ${path.relative(process.cwd(), out)}`);
    return;
  }
  if (values.scenario === 'router') {
    const rs = { ...routerSettings(values.quick!, runs), withEngine: values['router-engine']! };
    const outcome = await routerBench(rs, budgetMs);
    process.stdout.write(`\n${renderText([routerTable(outcome.results, rs), routerTargetsTable(outcome.results)])}`);
    if (outcome.notes.length) process.stdout.write(`\n${outcome.notes.join('\n')}\n`);
    if (values.quick || !outcome.results.length) {
      log(`\nrouter only: ${((performance.now() - t0) / 1000).toFixed(0)} s; RESULTS.md left alone`);
      return;
    }
    const out = values.out!;
    writeFileSync(out, spliceRouterSection(existsSync(out) ? readFileSync(out, 'utf8') : '# Benchmark results\n', routerMarkdown(outcome, rs, out)));
    log(`\nrouter only: ${((performance.now() - t0) / 1000).toFixed(0)} s; wrote the router section of ${path.relative(process.cwd(), out)}`);
    return;
  }
  const peers = planPeers(values.peers!, Math.max(0, Math.min(runs, Number(values['peer-runs']) || 0)));
  const { results, skipped } = await runAll(runs, s, budgetMs - SERVER_KINDS.length * BOOT_STORM_FIRST_S * 1000, peers);
  const storms = await runBootStorms(runs, budgetMs - (performance.now() - t0));
  skipped.push(...storms.skipped);
  // issue 16: one round of TFTP throughput with what is left of the budget
  const tftp = await tftpThroughput({ ...TFTP, runs: 1, log }, budgetMs - (performance.now() - t0));
  skipped.push(...tftp.skipped);
  // issue 17: one round of the name router (natd and HAProxy) with what is left of the budget
  const rs = routerSettings(values.quick!, 1);
  const router = await routerBench(rs, budgetMs - (performance.now() - t0));
  skipped.push(...router.notes.filter((n) => n.includes('skipped')));
  // issue 14: one round of DHCPv6 with what is left
  const dhcp6 = await dhcp6Bench({ ...DHCP6, runs: 1, log }, budgetMs - (performance.now() - t0));
  skipped.push(...dhcp6.skipped);
  const tftpTables = [tftpTable(tftp.results, TFTP)];
  const previous = existsSync(values.out!) ? readFileSync(values.out!, 'utf8') : '';
  // a scenario with no result at all keeps the section of the last run that measured it (and says so)
  const skippedScenarios = [
    skippedScenario('boot-storm', 'boot storm', storms.storms.length, storms.skipped),
    skippedScenario('tftp', 'TFTP throughput', tftp.results.length, tftp.skipped),
    skippedScenario('router', 'name router', router.results.length, router.notes.filter((n) => /run \d+ skipped/.test(n))),
    skippedScenario('dhcp6', 'DHCPv6', dhcp6.results.length, dhcp6.skipped),
  ].filter((x): x is SkippedScenario => x !== undefined);
  const keptNames = skippedScenarios.filter((x) => findSection(previous, x.name) !== undefined).map((x) => x.name);
  const scenarioSummary = skippedSummary(skippedScenarios, keptNames);
  const tables = buildTables(results, { checks, smallHostLeases: s.smallHostLeases, seedLeases: s.seedLeases, heapCaps: s.natdHeapCaps.join(' ') });
  const ladders = ([...SERVER_KINDS, ...peers.peers] as BenchKind[]).filter((k) => CAPABILITIES[k].dhcp).map((k) => ladderTable(results, k));
  const targets = [...checkTargets(results), ...(storms.storms.length ? [bootStormTarget(storms.storms)] : []), ...(router.results.length ? routerTargets(router.results) : [])];
  const shown = [...tables, ...(storms.storms.length ? [bootStormTable(storms.storms)] : []), ...(tftp.results.length ? tftpTables : []), ...(router.results.length ? [routerTable(router.results, rs)] : [])];
  process.stdout.write(`\n${renderText([...shown, ...ladders, targetsTable(targets)])}`);
  if (skipped.length) process.stdout.write(`\nskipped: ${skipped.join('; ')}\n`);
  if (scenarioSummary) process.stdout.write(`\n${scenarioSummary}\n`);
  const totalSeconds = (performance.now() - t0) / 1000;
  if (values.quick) {
    log(`\nquick run: ${totalSeconds.toFixed(0)} s; RESULTS.md left alone`);
    return;
  }
  const charts = writeCharts(results, path.dirname(values.out!), s.seedLeases);
  // issue 18: the lease-count ladder is its own scenario (it does not fit the 10-minute run); linked when written
  for (const [file, title] of [['chart-dhcp-lease-count.svg', 'DHCP rate as the lease count grows (--scenario lease-ladder)'], ['chart-dhcp-lease-count-cpu.svg', 'CPU per DORA as the lease count grows']]) {
    if (existsSync(path.join(path.dirname(values.out!), file!))) charts.push({ file: file!, title: title! });
  }
  // issue 18: the hit-cost section (written by --scenario hit-cost) is kept as it was
  const hitCostPart = existingHitCostSection(previous);
  // issue 14: this run's DHCPv6 round, else the section --scenario dhcp6 wrote, as it was
  const dhcp6Part = dhcp6.results.length ? dhcp6Section(dhcp6.results, DHCP6) : existingDhcp6Section(previous);
  const fresh = resultsMarkdown(machine, runs, tables, ladders, targets, skipped, results, totalSeconds, storms.storms, peers, charts, { skipped: skippedScenarios, summary: scenarioSummary, tftp: tftpTables[0]! }) +
    `\n${routerMarkdown(router, rs, values.out!)}${hitCostPart ? `\n${hitCostPart}` : ''}${dhcp6Part ? `\n${dhcp6Part}` : ''}`;
  writeFileSync(values.out!, keepSkippedSections(fresh, previous, skippedScenarios.map((x) => x.name)).md);
  writeFileSync(path.join(path.dirname(values.out!), 'results.json'), JSON.stringify({ machine, peers: peers.versions, results, bootStorms: storms.storms }, null, 1) + '\n');
  log(`\nwrote ${path.relative(process.cwd(), values.out!)} (${totalSeconds.toFixed(0)} s in all)`);
}

main().catch((err: unknown) => {
  log(`bench: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
