/**
 * issue 17: natd's built-in name router against HAProxy (Debian's haproxy, SNI passthrough, one thread), on the same
 * namespaces with the same clients, one router after the other (order alternating run by run), medians of the runs.
 *
 *   client (wan ns, 198.51.100.2) ── router (host ns, 198.51.100.1:443) ── br0 ─┬─ guest A (vm1, 10.77.0.11:443, CN a.bench.test)
 *                                                                               └─ guest B (vm2, 10.77.0.12:443, CN b.bench.test)
 *
 * Each guest is a Node TLS server with its own self-signed ECDSA P-256 certificate (router-guest.ts); the client
 * (router-load.ts, its own process) checks every certificate it gets is the one of the name it asked for. Measured:
 *   1. new TLS connections/s: closed loop, `concurrency` in flight, each a full handshake + GET /small + close;
 *   2. one large download (512 MiB) through the router, MB/s;
 *   3. p50/p99 connect-to-first-byte with 100 concurrent clients (the same closed loop at 100 in flight);
 *   4. the router's CPU per connection: utime + stime of its PID (/proc/PID/stat) around 1 and 3, per connection;
 * plus the CPU share of the guests and of the client during 1, to show whether the router was the limit.
 * natd runs with `--expose a.bench.test=guestA --expose b.bench.test=guestB` (guestA/B: --dhcp-host reservations of
 * the guests' addresses); HAProxy with `nbthread 1`, `mode tcp`, `tcp-request inspect-delay 5s`, `tcp-request content
 * accept if { req_ssl_hello_type 1 }`, `use_backend … if { req.ssl_sni -i NAME }`. Both listen on 198.51.100.1:443.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { waitFor } from '../../test/support/wait.js';
import { cpuSeconds, cpuTimes } from './proc.js';
import type { Table, Target } from './report.js';
import type { BulkResult, ConnsResult } from './router-load.js';
import { fmt, fmtRatio, median, ratio } from './stats.js';
import { BenchNetwork, BENCH_PREFIX, GATEWAY, NATD_CLI, PROJECT_ROOT } from './topology.js';
import { UPLINK_HOST } from '../../test/support/netns.js';

/** engine: natd's NameRouter class alone in a process (router-engine.ts), only with --router-engine */
export type RouterKind = 'natd' | 'engine' | 'haproxy';
export const ROUTER_LABEL: Record<RouterKind, string> = { natd: 'natd', engine: 'NameRouter alone', haproxy: 'HAProxy' };
const ROUTER_ORDER: readonly RouterKind[] = ['natd', 'engine', 'haproxy'];

const ROUTER_LOAD = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'router-load.js');
const ROUTER_GUEST = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'router-guest.js');
const ROUTER_ENGINE = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'router-engine.js');
const PORT = 443;

interface Guest {
  vm: number;
  /** the reservation name natd routes to */
  reservation: string;
  name: string;
  address: string;
}
const GUESTS: readonly Guest[] = [
  { vm: 1, reservation: 'guestA', name: 'a.bench.test', address: '10.77.0.11' },
  { vm: 2, reservation: 'guestB', name: 'b.bench.test', address: '10.77.0.12' },
];
const NAMES = GUESTS.map((g) => g.name).join(',');

export interface RouterBenchSettings {
  runs: number;
  /** connections in flight for the connection-rate measurement */
  concurrency: number;
  /** clients for the latency measurement */
  latencyClients: number;
  /** upper bounds of each connection loop */
  count: number;
  loopMs: number;
  bulkBytes: number;
  /** natd and the engine run under `node --cpu-prof`, their profiles in DIR/natd and DIR/engine */
  cpuProfileDir?: string;
  /** also measure natd's NameRouter class alone in a process (router-engine.ts) */
  withEngine?: boolean;
  log(line: string): void;
}

export interface RouterRunResult {
  router: RouterKind;
  run: number;
  conns: ConnsResult;
  latency: ConnsResult;
  bulk: BulkResult;
  /** router CPU µs per completed connection, in the rate loop and in the 100-client loop */
  cpuUsPerConn: number;
  latencyCpuUsPerConn: number;
  /** the same split into user and system (kernel) time: the system part includes packet processing done in the router's context (netfilter, conntrack) */
  userUsPerConn: number;
  systemUsPerConn: number;
  /** the router's CPU share while idle (2 s before the warm-up): its background cost */
  idleShare: number;
  /** router CPU seconds per GB (10^9 bytes) of the large transfer */
  bulkCpuSPerGB: number;
  /** CPU shares (1 = one core) during the rate loop */
  routerShare: number;
  /** the busier of the two guests */
  guestShare: number;
  clientShare: number;
  seconds: number;
}

/** haproxy's path, or undefined when it is not installed. */
export function findHaproxy(): string | undefined {
  for (const p of ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy']) if (existsSync(p)) return p;
  return undefined;
}

export function haproxyVersion(bin: string): string {
  try {
    const version = /version (\S+)/.exec(execFileSync(bin, ['-v'], { encoding: 'utf8' }))?.[1];
    return version ? `HAProxy ${version}` : 'HAProxy (version unknown)';
  } catch {
    return 'HAProxy (version unknown)';
  }
}

/** Whether this natd build has the name router (its --help lists --expose). */
export function natdHasRouter(): boolean {
  try {
    return /--expose\b/.test(execFileSync(process.execPath, [NATD_CLI, '--help'], { encoding: 'utf8' }));
  } catch {
    return false;
  }
}

function makeCert(dir: string, name: string): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert,
    '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-days', '2'], { stdio: 'ignore' });
  return { cert, key };
}

function haproxyConfig(): string {
  return [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  timeout connect 5s',
    '  timeout client 30s',
    '  timeout server 30s',
    'frontend tls',
    `  bind ${UPLINK_HOST}:${PORT}`,
    '  tcp-request inspect-delay 5s',
    '  tcp-request content accept if { req_ssl_hello_type 1 }',
    ...GUESTS.map((g) => `  use_backend ${g.reservation} if { req.ssl_sni -i ${g.name} }`),
    ...GUESTS.flatMap((g) => [`backend ${g.reservation}`, `  server ${g.reservation} ${g.address}:${PORT}`]),
    '',
  ].join('\n');
}

/**
 * natd's command line: the guests as reservations (a dnsmasq-style hostsfile, MAC,IP,NAME), one --expose per name,
 * listening on the uplink address like HAProxy; natd's default limits (4096 connections, 256 per client address:
 * the bench's 100 clients share one address) and its firewall on, as an operator would run it.
 */
function natdArgv(dir: string, nodeFlags: string[]): string[] {
  const hostsfile = path.join(dir, 'reservations');
  writeFileSync(hostsfile, GUESTS.map((g) => `52:54:00:77:10:0${g.vm},${g.address},${g.reservation}\n`).join(''));
  return [
    process.execPath, ...nodeFlags, NATD_CLI,
    '--bridge', 'br0', '--no-dns', '--log-level', 'warn',
    '--state-dir', path.join(dir, 'state'), '--control-socket', path.join(dir, 'natd.sock'),
    '--hostsfile', hostsfile,
    ...GUESTS.flatMap((g) => ['--expose', `${g.name}=${g.reservation}`]),
    '--expose-listen', UPLINK_HOST,
  ];
}

async function load(net: BenchNetwork, args: Record<string, string | number>, timeoutMs: number): Promise<ConnsResult | BulkResult> {
  const argv = [process.execPath, ROUTER_LOAD, '--target', `${UPLINK_HOST}:${PORT}`, '--names', NAMES, ...Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)])];
  const r = await net.topology.run(net.topology.wan, argv, { timeoutMs });
  if (r.code !== 0) throw new Error(`router-load exited ${r.code}: ${r.stderr.trim()}`);
  const result = JSON.parse(r.stdout) as ConnsResult | BulkResult;
  // JSON has no NaN
  for (const [k, v] of Object.entries(result)) if (v === null) (result as unknown as Record<string, number>)[k] = NaN;
  return result;
}

async function listening(net: BenchNetwork): Promise<boolean> {
  const out = await net.topology.run(net.hostNs, ['ss', '-Htln', `sport = :${PORT}`]);
  return out.stdout.trim().length > 0;
}

/** Per-namespace settings of our own namespaces: room for many short connections from one client address. */
async function tuneNamespaces(net: BenchNetwork): Promise<void> {
  for (const ns of [net.hostNs, net.topology.wan]) {
    await net.topology.runOk(ns, ['sysctl', '-q', '-w', 'net.ipv4.ip_local_port_range=1024 65000']);
    await net.topology.runOk(ns, ['sysctl', '-q', '-w', 'net.ipv4.tcp_tw_reuse=1']);
  }
}

async function measureRouter(net: BenchNetwork, router: RouterKind, run: number, pid: number, guestPids: number[], s: RouterBenchSettings): Promise<RouterRunResult> {
  const t0 = performance.now();
  const bound = s.loopMs + 30_000;
  const idle0 = cpuSeconds(pid);
  await new Promise((resolve) => setTimeout(resolve, 2000));
  const idleShare = (cpuSeconds(pid) - idle0) / ((performance.now() - t0) / 1000);
  // warm-up, and a check that routing works at all before measuring
  const warm = (await load(net, { mode: 'conns', concurrency: 8, count: 200, 'max-ms': 10_000 }, 30_000)) as ConnsResult;
  if (warm.completed < warm.started * 0.9 || warm.misrouted) {
    throw new Error(`${router}: warm-up failed: ${warm.completed}/${warm.started} completed, ${warm.misrouted} misrouted, ${warm.errors.join('; ')}`);
  }
  const times0 = cpuTimes(pid);
  const cpu0 = times0.user + times0.system;
  const g0 = guestPids.map(cpuSeconds);
  const conns = (await load(net, { mode: 'conns', concurrency: s.concurrency, count: s.count, 'max-ms': s.loopMs }, bound)) as ConnsResult;
  const times1 = cpuTimes(pid);
  const cpu1 = times1.user + times1.system;
  const g1 = guestPids.map(cpuSeconds);
  const latency = (await load(net, { mode: 'conns', concurrency: s.latencyClients, count: s.count, 'max-ms': s.loopMs }, bound)) as ConnsResult;
  const cpu2 = cpuSeconds(pid);
  const bulk = (await load(net, { mode: 'bulk', bytes: s.bulkBytes, 'max-ms': 90_000 }, 120_000)) as BulkResult;
  const cpu3 = cpuSeconds(pid);
  const per = (cpu: number, n: number) => (n > 0 ? (cpu / n) * 1e6 : NaN);
  return {
    router, run, conns, latency, bulk,
    cpuUsPerConn: per(cpu1 - cpu0, conns.completed),
    userUsPerConn: per(times1.user - times0.user, conns.completed),
    systemUsPerConn: per(times1.system - times0.system, conns.completed),
    idleShare,
    latencyCpuUsPerConn: per(cpu2 - cpu1, latency.completed),
    bulkCpuSPerGB: bulk.bytes > 0 ? (cpu3 - cpu2) / (bulk.bytes / 1e9) : NaN,
    routerShare: (cpu1 - cpu0) / conns.seconds,
    guestShare: Math.max(...g1.map((c, i) => c - g0[i]!)) / conns.seconds,
    clientShare: conns.cpuSeconds / conns.seconds,
    seconds: (performance.now() - t0) / 1000,
  };
}

function profileFlags(s: RouterBenchSettings, router: RouterKind): string[] {
  return s.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(s.cpuProfileDir, router)}`] : [];
}

async function oneRun(run: number, routers: RouterKind[], haproxy: string | undefined, s: RouterBenchSettings, failures: string[]): Promise<RouterRunResult[]> {
  const net = await BenchNetwork.create();
  const results: RouterRunResult[] = [];
  try {
    await tuneNamespaces(net);
    const guestPids: number[] = [];
    for (const g of GUESTS) {
      const ns = net.topology.vm(g.vm).ns;
      await net.topology.runOk(ns, ['ip', 'addr', 'add', `${g.address}/${BENCH_PREFIX}`, 'dev', 'eth0']);
      await net.topology.runOk(ns, ['ip', 'route', 'add', 'default', 'via', GATEWAY]);
      const { cert, key } = makeCert(net.workDir, g.name);
      const started = await net.topology.start(ns, [process.execPath, ROUTER_GUEST, '--cert', cert, '--key', key, '--port', String(PORT)], { ready: 'listening', what: `guest ${g.name}` });
      guestPids.push(started.child.pid!);
    }
    for (const router of routers) {
      const dir = path.join(net.workDir, `${router}-${run}`);
      mkdirSync(dir, { recursive: true });
      let argv: string[];
      if (router === 'haproxy') {
        writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConfig());
        argv = [haproxy!, '-f', path.join(dir, 'haproxy.cfg'), '-db'];
      } else if (router === 'engine') {
        argv = [process.execPath, ...profileFlags(s, router), ROUTER_ENGINE, '--listen', `${UPLINK_HOST}:${PORT}`, ...GUESTS.flatMap((g) => ['--route', `${g.name}=${g.address}:${PORT}`])];
      } else {
        argv = natdArgv(dir, profileFlags(s, router));
      }
      s.log(`[router ${run}/${s.runs}] ${ROUTER_LABEL[router]}`);
      const started = await net.topology.start(net.hostNs, argv);
      try {
        await waitFor(`${router} listening on :${PORT}`, async () => {
          if (started.child.exitCode !== null || started.child.signalCode !== null) throw new Error(`${router} exited: ${started.output().slice(-2000)}`);
          return listening(net);
        }, 20_000, 100);
        const r = await measureRouter(net, router, run, started.child.pid!, guestPids, s);
        s.log(`  ${fmt(r.conns.perSecond)} conn/s (${s.concurrency} in flight), ${fmt(r.latency.perSecond)} conn/s and p99 ${fmt(r.latency.p99Ms)} ms (${s.latencyClients} clients), ` +
          `${fmt(r.bulk.MBps)} MB/s, ${fmt(r.cpuUsPerConn)} µs CPU/conn; CPU shares: router ${fmt(r.routerShare)}, busier guest ${fmt(r.guestShare)}, client ${fmt(r.clientShare)}` +
          `${r.conns.failed + r.latency.failed ? `; failed ${r.conns.failed + r.latency.failed} (${[...r.conns.errors, ...r.latency.errors].join('; ')})` : ''}${r.bulk.error ? `; bulk: ${r.bulk.error}` : ''}`);
        results.push(r);
      } catch (err) {
        // one router failing (e.g. a natd build whose daemon does not route yet) leaves the other's numbers standing
        const why = `${ROUTER_LABEL[router]} run ${run} failed: ${(err as Error).message.split('\n')[0]}`;
        s.log(`  ${why}\n${started.output().slice(-1500)}`);
        failures.push(why);
      } finally {
        await started.stop(5000);
      }
    }
  } finally {
    await net.destroy();
  }
  return results;
}

export interface RouterBenchOutcome {
  results: RouterRunResult[];
  /** what was left out and why */
  notes: string[];
  haproxy?: string;
  /** 1/5/15-minute load average when the router bench started */
  loadAverage: string;
}

/** `runs` rounds of both routers on fresh namespaces, natd first in odd rounds; within what is left of budgetMs. */
export async function routerBench(s: RouterBenchSettings, budgetMs: number): Promise<RouterBenchOutcome> {
  const start = performance.now();
  const loadAverage = loadavg().map((l) => l.toFixed(2)).join(' ');
  const notes: string[] = [];
  const haproxy = findHaproxy();
  const routers: RouterKind[] = [];
  if (natdHasRouter()) routers.push('natd');
  else notes.push('natd: this build has no --expose (the name router is not in it)');
  if (s.withEngine) routers.push('engine');
  if (haproxy) routers.push('haproxy');
  else notes.push('HAProxy skipped: haproxy is not installed (apt-get install haproxy)');
  const results: RouterRunResult[] = [];
  if (!routers.length) return { results, notes, loadAverage };
  let longest = 0;
  for (let run = 1; run <= s.runs; run++) {
    const left = budgetMs - (performance.now() - start);
    if ((longest || 60) * 1000 > left) {
      notes.push(`router run ${run} skipped (${(left / 1000).toFixed(0)} s of the budget left)`);
      continue;
    }
    const t = performance.now();
    results.push(...await oneRun(run, run % 2 ? routers : [...routers].reverse(), haproxy, s, notes));
    longest = Math.max(longest, ((performance.now() - t) / 1000) * 1.2);
  }
  return { results, notes, loadAverage, ...(haproxy ? { haproxy: haproxyVersion(haproxy) } : {}) };
}

type Metric = (r: RouterRunResult) => number;

function med(results: readonly RouterRunResult[], router: RouterKind, pick: Metric): number {
  return median(results.filter((r) => r.router === router).map(pick));
}

export function routerTable(results: readonly RouterRunResult[], s: Pick<RouterBenchSettings, 'concurrency' | 'latencyClients' | 'bulkBytes'>): Table {
  const kinds = ROUTER_ORDER.filter((k) => k === 'natd' || k === 'haproxy' || results.some((r) => r.router === k));
  const mine = kinds.filter((k) => k !== 'haproxy');
  const row = (label: string, pick: Metric, digits?: number): string[] => {
    const h = med(results, 'haproxy', pick);
    return [label, ...kinds.map((k) => fmt(med(results, k, pick), digits)), ...mine.map((k) => fmtRatio(ratio(med(results, k, pick), h)))];
  };
  const runs = kinds.map((k) => `${results.filter((r) => r.router === k).length} ${ROUTER_LABEL[k]}`).join(', ');
  return {
    title: `Name router (issue 17): natd vs HAProxy, TLS SNI passthrough to two guests (median of runs: ${runs})`,
    note: `every connection a full TLS 1.3 handshake (no resumption) with the guest through the router, GET of a 2-byte body, close; ` +
      `connect-to-first-byte = connect() to the first byte of the HTTP response; CPU µs per connection = the router process's utime + stime ` +
      `(/proc/PID/stat) over the loop ÷ completed connections; CPU shares during the ${s.concurrency}-in-flight loop (1.00 = one core): a guest ` +
      `or the client near 1.00 means it, not the router, set the rate. HAProxy: nbthread 1, mode tcp, req.ssl_sni. 2-core machine shared by all of them.` +
      (kinds.includes('engine') ? ' "NameRouter alone": natd\'s router class in a process of its own with a fixed table (bench/lib/router-engine.ts), no daemon.' : ''),
    headers: ['metric (median of runs)', ...kinds.map((k) => ROUTER_LABEL[k]), ...mine.map((k) => `${ROUTER_LABEL[k]}/HAProxy`)],
    rows: [
      row(`new TLS connections/s, ${s.concurrency} in flight`, (r) => r.conns.perSecond),
      row(`new TLS connections/s, ${s.latencyClients} in flight`, (r) => r.latency.perSecond),
      row(`p50 connect-to-first-byte, ${s.latencyClients} clients, ms`, (r) => r.latency.p50Ms),
      row(`p99 connect-to-first-byte, ${s.latencyClients} clients, ms`, (r) => r.latency.p99Ms),
      row(`p99 connect-to-first-byte, ${s.concurrency} in flight, ms`, (r) => r.conns.p99Ms),
      row(`one ${(s.bulkBytes / 1048576).toFixed(0)} MiB download, MB/s`, (r) => r.bulk.MBps),
      row(`router CPU µs per connection (${s.concurrency} in flight)`, (r) => r.cpuUsPerConn),
      row(`  of which user µs`, (r) => r.userUsPerConn),
      row(`  system (kernel: sockets, netfilter) µs`, (r) => r.systemUsPerConn),
      row(`router CPU µs per connection (${s.latencyClients} in flight)`, (r) => r.latencyCpuUsPerConn),
      row('router CPU s per GB transferred', (r) => r.bulkCpuSPerGB, 2),
      row('CPU share: router', (r) => r.routerShare, 2),
      row('CPU share: router idle (background, 2 s before the loops)', (r) => r.idleShare, 3),
      row('CPU share: busier guest', (r) => r.guestShare, 2),
      row('CPU share: client', (r) => r.clientShare, 2),
      row('failed or misrouted connections (both loops)', (r) => r.conns.failed + r.latency.failed + r.conns.misrouted + r.latency.misrouted, 0),
    ],
  };
}

/** The issue's targets: connection rate >= 0.5x HAProxy, throughput >= 0.8x, p99 (100 clients) <= 2x. */
export function routerTargets(results: readonly RouterRunResult[]): Target[] {
  const r = (pick: Metric) => ratio(med(results, 'natd', pick), med(results, 'haproxy', pick));
  const rate = r((x) => x.conns.perSecond);
  const throughput = r((x) => x.bulk.MBps);
  const p99 = r((x) => x.latency.p99Ms);
  return [
    { name: 'router: new TLS connections/s >= 0.5x HAProxy', value: fmtRatio(rate), met: rate >= 0.5, whyMissed: '' },
    { name: 'router: large-transfer MB/s >= 0.8x HAProxy', value: fmtRatio(throughput), met: throughput >= 0.8, whyMissed: '' },
    { name: 'router: p99 connect-to-first-byte (100 clients) <= 2x HAProxy', value: fmtRatio(p99), met: p99 <= 2, whyMissed: '' },
  ];
}

export function routerTargetsTable(results: readonly RouterRunResult[]): Table {
  return { title: 'Name router targets (issue 17), checked against the medians', headers: ['target', 'natd/HAProxy', 'met?'], rows: routerTargets(results).map((t) => [t.name, t.value, t.met ? 'yes' : 'MISSED']) };
}

const SECTION_BEGIN = '<!-- router bench: begin (npm run bench -- --scenario router rewrites this part) -->';
const SECTION_END = '<!-- router bench: end -->';

/** The router's part of RESULTS.md, between markers so `--scenario router` can replace it alone. */
export function routerSection(outcome: RouterBenchOutcome, s: Pick<RouterBenchSettings, 'concurrency' | 'latencyClients' | 'bulkBytes'>, chartFile: string | undefined, renderMarkdown: (tables: Table[]) => string): string {
  const targetTable = routerTargetsTable(outcome.results);
  return `${SECTION_BEGIN}
## Name router (issue 17): natd vs ${outcome.haproxy ?? 'HAProxy'}

Measured ${new Date().toISOString()} by \`npm run bench -- --scenario router\` (bench/lib/router-bench.ts): client namespace → router in the
host namespace (198.51.100.1:443) → bridge → two guest namespaces, each a Node TLS server with its own self-signed
ECDSA P-256 certificate; the client checks each certificate names the host it asked for. natd and HAProxy on the same
namespaces one after the other, order alternating by run. Load average at the start: ${outcome.loadAverage}.

How to read it: the CPU shares show that no process was near a full core, on a 2-core machine shared with other
work: the connection rates and latencies are what the machine's contention leaves over, and they move a lot run to
run; the router's CPU per connection and per GB are the steadier comparison. "of which user/system" splits the
router's CPU: system time is the kernel's socket and packet work done in its context, user time its own code.
${outcome.notes.length ? `\n${outcome.notes.map((n) => `- ${n}`).join('\n')}\n` : ''}${chartFile ? `\n![natd vs HAProxy as a name router](${chartFile})\n` : ''}
${renderMarkdown([routerTable(outcome.results, s), targetTable])}
${SECTION_END}
`;
}

/** `md` with its router section replaced by `section` (appended when it has none). */
export function spliceRouterSection(md: string, section: string): string {
  const a = md.indexOf(SECTION_BEGIN);
  const b = md.indexOf(SECTION_END);
  if (a >= 0 && b > a) return md.slice(0, a) + section.trimEnd() + md.slice(b + SECTION_END.length);
  return `${md.trimEnd()}\n\n${section}`;
}
