/**
 * Issue 18's cost scenarios, natd against the strongest peer for each protocol, CPU per operation first:
 *
 *   --scenario lease-ladder   DHCP closed loop (4 exchanges in flight, at most 4 s or `count` exchanges) with
 *                             0, 1,000, 10,000 and 40,000 named leases already held, natd and Kea alternating on one
 *                             namespace set, each on a fresh server seeded with the same leases; exchanges/s and the
 *                             server's CPU µs per DORA. Writes bench/chart-dhcp-lease-count.svg and
 *                             bench/lease-ladder.json ("DHCP rate as the lease count grows"). 40,000 and not 50,000:
 *                             the bench pool holds 51,441 addresses and the loop needs free ones.
 *   --scenario hit-cost       DNS cache hits (100 warmed names, dnsperf) natd against Unbound: CPU µs per answer.
 *
 * `--profile` runs natd under `node --cpu-prof` in either and prints the top frames per natd process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { hotSpots } from './cpu-profile.js';
import { runDnsperf, writeQueryFile } from './dnsperf.js';
import { cpuTimes } from './proc.js';
import { makeSeedLeases } from './seed-leases.js';
import { dhcpLoad, waitIdle } from './server-run.js';
import { KIND_LABEL, startServer, type BenchKind, type RunningServer } from './servers.js';
import { fmt, median, textTable } from './stats.js';
import { lineChart, PALETTE } from './svg.js';
import { BenchNetwork, NATD_CLI, PROJECT_ROOT } from './topology.js';

export const LEASE_COUNTS = [0, 1_000, 10_000, 40_000];
const LOOP_MS = 4000;
const MAX_EXCHANGES = 8000;
/** the default closed-loop concurrency (--in-flight takes a list: the issue's own table used 16) */
const CONCURRENCY = 4;

export interface CostSettings {
  runs: number;
  /** the peer to measure against; undefined: natd alone */
  peer?: BenchKind;
  natdArgs: string[];
  profile: boolean;
  leaseCounts?: number[];
  /** lease-ladder: exchanges in flight, one ladder per value (default [4]) */
  inFlight?: number[];
  /**
   * lease-ladder: a closed loop this long (same concurrency, not measured) before the measured one, for every server
   * alike: the steady state of a long-running daemon (natd's JIT compiles its DHCP path in the first seconds of a fresh
   * process; Kea is compiled ahead). 0 (the default): the measured window starts cold.
   */
  warmupMs?: number;
  /** lease-ladder: another build's dist/ to run as a third server, "natd base" (A/B on the same namespaces) */
  compareDist?: string;
  log(line: string): void;
}

export interface LeaseLadderPoint {
  kind: BenchKind;
  /** the column: KIND_LABEL, or "natd base" for --compare-dist's build */
  label: string;
  run: number;
  leases: number;
  inFlight: number;
  perSecond: number;
  /** of cpuUsPerOp, the kernel's part (system time) */
  systemUsPerOp: number;
  /** 1-minute load average when the point was taken */
  loadAverage: number;
  /** natd (issue 18): lease commits per journal fdatasync, and the mean wall ms of one write + fdatasync */
  commitsPerSync?: number;
  msPerSync?: number;
  /** natd since issue 18's writer thread: mean ms from a lease change to durable and its ACK sent */
  msWaitPerCommit?: number;
  p50Ms: number;
  failed: number;
  cpuUsPerOp: number;
}

function profileDir(on: boolean): string | undefined {
  return on ? mkdtempSync(path.join(tmpdir(), 'natd-cost-profile-')) : undefined;
}

function printProfiles(dir: string | undefined, labels: string[], log: (line: string) => void): void {
  if (!dir) return;
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  files.forEach((f, i) => {
    const { totalMs, spots } = hotSpots(path.join(dir, f), 25, PROJECT_ROOT);
    log(`\nprofile ${labels[i] ?? f} (${totalMs.toFixed(0)} ms sampled, ${path.join(dir, f)})`);
    for (const s of spots) log(`  ${s.selfMs.toFixed(1).padStart(8)} ms ${(s.share * 100).toFixed(1).padStart(5)}%  ${s.function}  ${s.location}`);
  });
}

/** issue 18: natd's journal counters (status dhcp.journal); undefined for other servers and builds without them */
async function journalOf(net: BenchNetwork, server: RunningServer): Promise<{ syncs: number; commits: number; syncSeconds: number; waitSeconds?: number } | undefined> {
  if (server.kind !== 'natd' || !server.controlSocket) return undefined;
  const r = await net.topology.run(net.hostNs, [process.execPath, NATD_CLI, 'status', '--json', '--control-socket', server.controlSocket]);
  if (r.code !== 0) return undefined;
  try {
    const j = (JSON.parse(r.stdout) as { dhcp?: { journal?: { syncs: number; commits: number; syncSeconds?: number; waitSeconds?: number } } }).dhcp?.journal;
    return j && typeof j.syncSeconds === 'number'
      ? { syncs: j.syncs, commits: j.commits, syncSeconds: j.syncSeconds, ...(typeof j.waitSeconds === 'number' ? { waitSeconds: j.waitSeconds } : {}) }
      : undefined;
  } catch {
    return undefined;
  }
}

export async function leaseLadder(s: CostSettings): Promise<LeaseLadderPoint[]> {
  const counts = s.leaseCounts ?? LEASE_COUNTS;
  const points: LeaseLadderPoint[] = [];
  const prof = profileDir(s.profile);
  const labels: string[] = [];
  const net = await BenchNetwork.create();
  try {
    let client = 1_000_000;
    const baseCli = s.compareDist ? path.join(path.resolve(s.compareDist), 'src', 'cli.js') : undefined;
    for (let run = 1; run <= s.runs; run++) {
      for (const inFlight of s.inFlight ?? [CONCURRENCY]) {
        for (const leases of counts) {
          // natd, its --compare-dist build and the peer take turns (the order flips every run)
          const order: { kind: BenchKind; label: string; cli?: string }[] = [{ kind: 'natd', label: 'natd' }];
          if (baseCli) order.push({ kind: 'natd', label: 'natd base', cli: baseCli });
          if (s.peer) order.push({ kind: s.peer, label: KIND_LABEL[s.peer] });
          if (run % 2 === 0) order.reverse();
          const seed = makeSeedLeases(leases, 's', Date.now());
          for (const { kind, label, cli } of order) {
            const server = await startServer(net, kind, {
              instance: `ladder-${run}-${inFlight}-${leases}-${label.replace(/\W/g, '')}`, seed, extraArgs: kind === 'natd' ? s.natdArgs : [],
              ...(cli ? { natdCli: cli } : {}),
              ...(kind === 'natd' && prof ? { cpuProfileDir: prof } : {}),
            });
            if (kind === 'natd') labels.push(`${label}, ${leases} leases, ${inFlight} in flight, run ${run}`);
            try {
              await waitIdle(server, 60_000);
              if (s.warmupMs) {
                const warm = await dhcpLoad(net, {
                  device: 'eth0', mode: 'closed', concurrency: inFlight, count: 1_000_000, 'max-ms': s.warmupMs,
                  'timeout-ms': 5000, 'first-client': client, 'hostname-prefix': 'w',
                }, s.warmupMs + 5000 + 30_000);
                client += warm.started;
              }
              const journalBefore = await journalOf(net, server);
              const before = cpuTimes(server.pid);
              const r = await dhcpLoad(net, {
                device: 'eth0', mode: 'closed', concurrency: inFlight, count: MAX_EXCHANGES, 'max-ms': LOOP_MS,
                'timeout-ms': 5000, 'first-client': client, 'hostname-prefix': 'c',
              }, LOOP_MS + 5000 + 30_000);
              const after = cpuTimes(server.pid);
              const journalAfter = journalBefore && (await journalOf(net, server));
              const cpu = after.user + after.system - before.user - before.system;
              client += r.started;
              const p: LeaseLadderPoint = {
                kind, label, run, leases, inFlight, perSecond: r.completedPerSecond, p50Ms: r.latencyMs.p50, failed: r.dropped + r.naks,
                cpuUsPerOp: r.completed ? (cpu / r.completed) * 1e6 : NaN,
                systemUsPerOp: r.completed ? ((after.system - before.system) / r.completed) * 1e6 : NaN,
                loadAverage: loadavg()[0]!,
              };
              if (journalBefore && journalAfter && journalAfter.syncs > journalBefore.syncs) {
                const syncs = journalAfter.syncs - journalBefore.syncs;
                p.commitsPerSync = (journalAfter.commits - journalBefore.commits) / syncs;
                p.msPerSync = ((journalAfter.syncSeconds - journalBefore.syncSeconds) / syncs) * 1000;
                if (journalAfter.waitSeconds !== undefined && journalBefore.waitSeconds !== undefined && journalAfter.commits > journalBefore.commits) {
                  p.msWaitPerCommit = ((journalAfter.waitSeconds - journalBefore.waitSeconds) / (journalAfter.commits - journalBefore.commits)) * 1000;
                }
              }
              s.log(`  run ${run} ${label} with ${leases} leases, ${inFlight} in flight: ${p.perSecond.toFixed(0)}/s, ${p.cpuUsPerOp.toFixed(0)} µs CPU/DORA ` +
                `(${p.systemUsPerOp.toFixed(0)} system), ` +
                (p.msPerSync !== undefined ? `${p.commitsPerSync!.toFixed(1)} commits per fdatasync of ${p.msPerSync.toFixed(2)} ms, ` : '') +
                (p.msWaitPerCommit !== undefined ? `ACK waits ${p.msWaitPerCommit.toFixed(2)} ms for the disk, ` : '') +
                `p50 ${p.p50Ms.toFixed(2)} ms, ${p.failed} failed, load ${p.loadAverage.toFixed(1)}`);
              points.push(p);
            } finally {
              await server.stop();
            }
          }
        }
      }
    }
  } finally {
    await net.destroy();
  }
  printProfiles(prof, labels, s.log);
  return points;
}

export function leaseLadderTable(points: LeaseLadderPoint[], warmupMs = 0): string {
  const labels = [...new Set(points.map((p) => p.label))];
  const counts = [...new Set(points.map((p) => p.leases))].sort((a, b) => a - b);
  const flights = [...new Set(points.map((p) => p.inFlight))].sort((a, b) => a - b);
  const med = (l: string, f: number, n: number, pick: (p: LeaseLadderPoint) => number) =>
    median(points.filter((p) => p.label === l && p.inFlight === f && p.leases === n).map(pick));
  const rows = flights.flatMap((f) => counts.map((n) => [String(f), n.toLocaleString('en'),
    ...labels.flatMap((l) => [fmt(med(l, f, n, (p) => p.perSecond)), fmt(med(l, f, n, (p) => p.cpuUsPerOp))])]));
  const warm = warmupMs > 0 ? `, after an unmeasured ${warmupMs / 1000}-s warm-up loop` : ', each on a fresh server (cold)';
  return `DHCP closed loop (${LOOP_MS / 1000} s or ${MAX_EXCHANGES} exchanges${warm}) by exchanges in flight and leases held, medians of runs:\n` +
    textTable(['in flight', 'leases held', ...labels.flatMap((l) => [`${l} DORA/s`, `${l} µs CPU/DORA`])], rows) + '\n';
}

/** chart-dhcp-lease-count.svg and lease-ladder.json next to RESULTS.md */
export function writeLeaseLadder(points: LeaseLadderPoint[], dir: string, meta: object): string {
  const labels = [...new Set(points.map((p) => p.label))];
  const flights = [...new Set(points.map((p) => p.inFlight))].sort((a, b) => a - b);
  const color: Record<string, string> = { natd: PALETTE[0]!, dnsmasq: PALETTE[1]!, Kea: PALETTE[2]!, 'natd base': PALETTE[3]! };
  const counts = [...new Set(points.map((p) => p.leases))].sort((a, b) => a - b);
  const series = (pick: (p: LeaseLadderPoint) => number) => flights.flatMap((f, fi) => labels.map((l) => ({
    name: flights.length > 1 ? `${l}, ${f} in flight` : l, color: color[l] ?? PALETTE[4]!, ...(fi > 0 ? { dash: '6 4' } : {}),
    // a log axis has no 0: the empty table is drawn at 100 leases (the table says 0)
    points: counts.map((n) => [Math.max(n, 100), median(points.filter((p) => p.label === l && p.inFlight === f && p.leases === n).map(pick))] as [number, number]),
  })));
  const file = 'chart-dhcp-lease-count.svg';
  writeFileSync(path.join(dir, file), lineChart({
    title: `DHCP DORA/s by leases held (${flights.join(' and ')} in flight; the point at 100: empty table)`,
    xLabel: 'leases held', yLabel: 'completed DORA/s', logX: true, logY: false, series: series((p) => p.perSecond),
  }));
  writeFileSync(path.join(dir, 'chart-dhcp-lease-count-cpu.svg'), lineChart({
    title: 'Server CPU µs per DORA by leases held (lower is better; 100: empty table)',
    xLabel: 'leases held', yLabel: 'µs CPU per DORA', logX: true, logY: false, series: series((p) => p.cpuUsPerOp),
  }));
  writeFileSync(path.join(dir, 'lease-ladder.json'), JSON.stringify({ ...meta, points }, null, 1) + '\n');
  return file;
}

export interface HitCostPoint {
  kind: BenchKind;
  /** the server as the table names it (natd of the compared build: "natd (DIR)") */
  label: string;
  run: number;
  qps: number;
  cpuUsPerOp: number;
  /** of cpuUsPerOp, the kernel's part (system time) */
  systemUsPerOp: number;
  lost: number;
  /** 1-minute load average when the point was taken */
  loadAverage: number;
  /** natd (issue 18): the share of the answers the cache-hit fast path gave (status dns.fastHits) */
  fastShare?: number;
  /** --perf-stat: the server's syscalls and context switches per answered query (perf stat -p PID) */
  perQuery?: Record<string, number>;
}

/**
 * How a round sets the servers up. 'hit-cost': one namespace set for all rounds, each server fresh with an empty
 * lease table. 'phase-b': as the full run's phase B (server-run.ts), a fresh namespace set per server and round, natd
 * holding 100 named leases, waitIdle before the warm-up: to tell a set-up difference from a load difference.
 */
export type HitSetup = 'hit-cost' | 'phase-b';

export interface HitCostSettings extends CostSettings {
  seconds: number;
  compareDist?: string;
  /** one or both set-ups; with both, every server runs in each per round (labels "natd [phase-b]", …) */
  setup?: HitSetup | HitSetup[];
  /** count the server's syscalls per answered query with `perf stat -p PID` while dnsperf runs */
  perfStat?: boolean;
  /** dnsperf -q for the measured window (default 100): fewer queries outstanding make natd's receive batches smaller,
   * as a machine with idle cores does (natd drains its socket as soon as a few datagrams are there) */
  outstanding?: number;
  /** `perf record -g -p PID` of every measured window into this directory (perf-<label>-<run>.data) */
  perfRecordDir?: string;
}

/** what --perf-stat counts: the syscalls each server answers with (natd: recvmmsg/sendmmsg; Unbound: recvfrom/sendto) */
const PERF_EVENTS = ['context-switches', 'syscalls:sys_enter_recvmmsg', 'syscalls:sys_enter_sendmmsg', 'syscalls:sys_enter_recvfrom',
  'syscalls:sys_enter_sendto', 'syscalls:sys_enter_recvmsg', 'syscalls:sys_enter_sendmsg', 'syscalls:sys_enter_epoll_wait', 'syscalls:sys_enter_epoll_pwait'];

/**
 * `perf stat` or `perf record` attached to `pid` for `seconds`; resolves with perf's CSV output (stat) or ''.
 * NATD_BENCH_PERF_EVENTS replaces the stat event list (a diagnosis aid, e.g. every syscall: 'syscalls:sys_enter_*').
 */
function perfAttach(pid: number, seconds: number, mode: 'stat' | 'record', out: string): Promise<string> {
  const argv = mode === 'stat'
    ? ['stat', '-x', ',', '-e', process.env.NATD_BENCH_PERF_EVENTS ?? PERF_EVENTS.join(','), '-p', String(pid), '-o', out, '--', 'sleep', String(seconds)]
    : ['record', '-g', '-F', '999', '-p', String(pid), '-o', out, '--', 'sleep', String(seconds)];
  return new Promise((resolve) => {
    const child = spawn('perf', argv, { stdio: 'ignore' });
    child.on('error', () => resolve(''));
    child.on('exit', () => {
      if (mode === 'record') return resolve('');
      try {
        resolve(readFileSync(out, 'utf8'));
      } catch {
        resolve('');
      }
    });
  });
}

/** perf stat -x, lines ("count,,event,...") → counts by short event name */
function perfCounts(csv: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of csv.split('\n')) {
    const f = line.split(',');
    if (f.length < 3 || !/^\d+$/.test(f[0]!)) continue;
    out[f[2]!.replace('syscalls:sys_enter_', '')] = Number(f[0]);
  }
  return out;
}

/** natd's DNS fastHits and cacheHits (status --json), or undefined (another server, or a build without fastHits) */
async function dnsHitsOf(net: BenchNetwork, server: RunningServer): Promise<{ fast: number; hits: number } | undefined> {
  if (server.kind !== 'natd' || !server.controlSocket) return undefined;
  const r = await net.topology.run(net.hostNs, [process.execPath, NATD_CLI, 'status', '--json', '--control-socket', server.controlSocket]);
  if (r.code !== 0) return undefined;
  try {
    const d = (JSON.parse(r.stdout) as { dns?: { fastHits?: number; cacheHits: number } }).dns;
    return d && typeof d.fastHits === 'number' ? { fast: d.fastHits, hits: d.cacheHits } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `compareDist`: another build's dist/ directory; its natd runs in every round too ("natd (DIR)"), the order of the
 * servers rotating round by round, so two builds are compared on the same namespaces at the same machine load.
 */
export async function hitCost(s: HitCostSettings): Promise<HitCostPoint[]> {
  const points: HitCostPoint[] = [];
  const prof = profileDir(s.profile);
  const labels: string[] = [];
  const t0 = performance.now();
  const setups = Array.isArray(s.setup) ? s.setup : [s.setup ?? 'hit-cost'];
  const names = Array.from({ length: 100 }, (_, i) => `h${i}.bench.test`);
  // 'hit-cost': one namespace set for every round; 'phase-b': a set per server and round (created below), as
  // server-run.ts's benchServer does
  let shared: BenchNetwork | undefined;
  try {
    const other = s.compareDist ? path.resolve(s.compareDist, 'src', 'cli.js') : undefined;
    const plain: { kind: BenchKind; label: string; cli?: string }[] = [
      { kind: 'natd', label: 'natd' },
      ...(other ? [{ kind: 'natd' as const, label: `natd (${s.compareDist})`, cli: other }] : []),
      ...(s.peer ? [{ kind: s.peer, label: KIND_LABEL[s.peer] }] : []),
    ];
    const servers = setups.flatMap((setup) => plain.map((x) => ({ ...x, setup, label: setups.length > 1 ? `${x.label} [${setup}]` : x.label })));
    for (let run = 1; run <= s.runs; run++) {
      const order = servers.map((_, i) => servers[(i + run - 1) % servers.length]!);
      for (const { kind, label, cli, setup } of order) {
        if (setup === 'hit-cost') shared ??= await BenchNetwork.create();
        const net = setup === 'hit-cost' ? shared! : await BenchNetwork.create();
        const hitFile = writeQueryFile(net, 'cost-hit.txt', names);
        // phase B: 100 named leases for natd (Unbound knows no lease names), as in the full run
        const seed = setup === 'phase-b' && kind === 'natd' ? makeSeedLeases(100, 's', Date.now()) : undefined;
        const server = await startServer(net, kind, {
          instance: `hit-${run}-${servers.findIndex((x) => x.label === label)}`, extraArgs: kind === 'natd' ? s.natdArgs : [],
          ...(seed ? { seed } : {}), ...(cli ? { natdCli: cli } : {}), ...(kind === 'natd' && prof ? { cpuProfileDir: prof } : {}),
        });
        if (kind === 'natd') labels.push(`${label} hits, run ${run}`);
        try {
          if (setup === 'phase-b') await waitIdle(server);
          await runDnsperf(net, { queryFile: hitFile, seconds: 10, maxQps: 1000, passes: 1 }); // warm
          const hitsBefore = await dnsHitsOf(net, server);
          const before = cpuTimes(server.pid);
          const tag = `${label.replace(/\W/g, '')}-${run}`;
          // perf watches the middle of the window (dnsperf starts and stops around it)
          const watch = Math.max(1, s.seconds - 1);
          const perf = s.perfStat ? perfAttach(server.pid, watch, 'stat', path.join(net.workDir, `perf-stat-${tag}.csv`)) : undefined;
          const rec = s.perfRecordDir ? perfAttach(server.pid, watch, 'record', path.join(s.perfRecordDir, `perf-${tag}.data`)) : undefined;
          const r = await runDnsperf(net, { queryFile: hitFile, seconds: s.seconds, maxQps: 250_000, ...(s.outstanding ? { outstanding: s.outstanding } : {}) });
          const after = cpuTimes(server.pid);
          const hitsAfter = hitsBefore && (await dnsHitsOf(net, server));
          const cpu = after.user + after.system - before.user - before.system;
          const p: HitCostPoint = {
            kind, label, run, qps: r.qps, cpuUsPerOp: r.completed ? (cpu / r.completed) * 1e6 : NaN,
            systemUsPerOp: r.completed ? ((after.system - before.system) / r.completed) * 1e6 : NaN, lost: r.lost, loadAverage: loadavg()[0]!,
          };
          if (hitsBefore && hitsAfter && hitsAfter.hits > hitsBefore.hits) p.fastShare = (hitsAfter.fast - hitsBefore.fast) / (hitsAfter.hits - hitsBefore.hits);
          if (perf) {
            const counts = perfCounts(await perf);
            const queries = r.qps * watch;
            p.perQuery = Object.fromEntries(Object.entries(counts).filter(([, n]) => n > 0).map(([k, n]) => [k, n / queries]));
          }
          await rec;
          const extra = [
            p.fastShare !== undefined ? `fast path ${(p.fastShare * 100).toFixed(1)}% of hits` : '',
            p.perQuery ? Object.entries(p.perQuery).map(([k, v]) => `${k} ${v < 0.1 ? v.toFixed(4) : v.toFixed(2)}`).join(' ') + ' per query' : '',
          ].filter(Boolean).join(', ');
          s.log(`  run ${run} ${label} hits: ${p.qps.toFixed(0)} q/s, ${p.cpuUsPerOp.toFixed(2)} µs CPU/query (${p.systemUsPerOp.toFixed(2)} system), lost ${p.lost}, ` +
            `load ${p.loadAverage.toFixed(1)}${extra ? `, ${extra}` : ''}`);
          points.push(p);
        } finally {
          await server.stop();
          if (net !== shared) await net.destroy();
        }
      }
    }
  } finally {
    await shared?.destroy();
    shared = undefined;
  }
  printProfiles(prof, labels, s.log);
  s.log(`hit-cost (${setups.join(', ')}): ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  return points;
}

export function hitCostTable(points: HitCostPoint[]): string {
  const labels = [...new Set(points.map((p) => p.label))];
  const rows = labels.map((l) => {
    const mine = points.filter((p) => p.label === l);
    return [l, fmt(median(mine.map((p) => p.qps))), fmt(median(mine.map((p) => p.cpuUsPerOp))), fmt(median(mine.map((p) => p.systemUsPerOp))),
      mine.map((p) => p.cpuUsPerOp.toFixed(2)).join(' '), String(Math.max(...mine.map((p) => p.lost)))];
  });
  return `DNS cache hits (100 names, dnsperf), medians of runs:\n${textTable(['server', 'q/s', 'µs CPU/query', 'of it system', 'µs CPU/query by run', 'lost (max)'], rows)}\n`;
}

const HIT_SECTION_BEGIN = '<!-- hit-cost bench: begin (npm run bench -- --scenario hit-cost rewrites this part) -->';
const HIT_SECTION_END = '<!-- hit-cost bench: end -->';

/** The hit-cost part of RESULTS.md, between markers so `--scenario hit-cost` can replace it alone. */
export function hitCostSection(points: HitCostPoint[], meta: { loadAtStart: string; loadAtEnd: string; peer?: string }): string {
  const runs = Math.max(0, ...points.map((p) => p.run));
  const natd = median(points.filter((p) => p.label === 'natd').map((p) => p.cpuUsPerOp));
  const peer = meta.peer ? median(points.filter((p) => p.label === meta.peer).map((p) => p.cpuUsPerOp)) : NaN;
  const verdict = Number.isFinite(peer)
    ? `\nTarget (issue 18): natd's CPU per cached answer <= ${meta.peer}'s in the same run: ${fmt(natd)} vs ${fmt(peer)} µs (${(natd / peer).toFixed(2)}x), ${natd <= peer ? 'met' : 'MISSED'}.\n`
    : '';
  return `${HIT_SECTION_BEGIN}
## DNS cache hits: CPU per answer (issue 18, \`--scenario hit-cost\`)

Measured ${new Date().toISOString()} by \`npm run bench -- --scenario hit-cost --runs ${runs}\` (bench/lib/lease-ladder.ts): 100 names
warmed at 1,000 q/s for 10 s, then dnsperf (100 queries outstanding) for 5 s per server; CPU µs per answered query =
the server's utime + stime (/proc/PID/stat, every thread) over the 5 s ÷ answered queries. The servers take turns on
one namespace set, the order rotating round by round. Load average ${meta.loadAtStart} at the start, ${meta.loadAtEnd} at the end
(2 cores shared with other work: the rate is what dnsperf gets, the CPU per answer is the comparison). natd's cost
depends on how many answers share one wakeup (a loaded machine gives it large batches; with idle cores, as in the full
run, batches are small and it costs more, see bench/PROFILE.md and \`--outstanding\`); Unbound's hardly moves.
${verdict}
\`\`\`
${hitCostTable(points).trimEnd()}
\`\`\`
${HIT_SECTION_END}
`;
}

/** `md` with its hit-cost section replaced by `section` (appended when it has none). */
export function spliceHitCostSection(md: string, section: string): string {
  const a = md.indexOf(HIT_SECTION_BEGIN);
  const b = md.indexOf(HIT_SECTION_END);
  if (a >= 0 && b > a) return md.slice(0, a) + section.trimEnd() + md.slice(b + HIT_SECTION_END.length);
  return `${md.trimEnd()}\n\n${section}`;
}

/** The hit-cost section of `md` as it is, or '' (a full run rewrites RESULTS.md and keeps this part). */
export function existingHitCostSection(md: string): string {
  const a = md.indexOf(HIT_SECTION_BEGIN);
  const b = md.indexOf(HIT_SECTION_END);
  return a >= 0 && b > a ? `${md.slice(a, b + HIT_SECTION_END.length)}\n` : '';
}
