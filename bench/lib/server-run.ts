/**
 * One benchmark run of one server, on a network of its own; the server is restarted between phases with the lease
 * table each phase needs (the same seeded leases for both servers):
 *
 *   A. empty lease table: the open-loop DHCP ladder (offered rate doubles until more than 1% of exchanges fail)
 *   B. a small host (a few named leases): DNS cache hits, local VM names, cache misses
 *   C. 10,000 named leases: DHCP (closed loop), DNS cache hits again, a cache fill to 10,000 answers, peak RSS;
 *      for natd also the `natd forwards add/remove` round trip
 *   D. natd only: nft full apply and port-forward change timed with natd's own nft code
 *   E. natd only: C's memory measurement again with V8's heap capped, to show what a deployment flag would buy
 *
 * CPU is read from /proc/<pid>/stat around every measurement, so each number comes with its CPU cost.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadResult } from './dhcp-load.js';
import { runDnsperf, writeQueryFile, type DnsperfResult } from './dnsperf.js';
import type { NftTiming } from './nft-timing.js';
import { cpuSeconds, cpuTimes, statusMiB } from './proc.js';
import { makeSeedLeases } from './seed-leases.js';
import { CAPABILITIES, DOMAIN, NATD_CLI, startServer, type BenchKind, type RunningServer } from './servers.js';
import { median } from './stats.js';
import { BenchNetwork, PROJECT_ROOT } from './topology.js';

const DHCP_LOAD = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'dhcp-load.js');
const NFT_TIMING = path.join(PROJECT_ROOT, 'build', 'bench', 'lib', 'nft-timing.js');

export interface RunSettings {
  /** offered DHCP rates of the ladder, ascending */
  ladderRates: number[];
  ladderStepMs: number;
  /** an exchange slower than this is a drop */
  dhcpTimeoutMs: number;
  /** ladder stops after the first step whose failed share is above this */
  maxLoss: number;
  /** named leases held during the DNS scenarios (a small host) */
  smallHostLeases: number;
  /** named leases held for the loaded DHCP, full-cache and memory measurements */
  seedLeases: number;
  loadedDhcpMs: number;
  loadedDhcpConcurrency: number;
  /** issue 18: a second closed loop at this many in flight (the issue's own table: 16), natd and Kea (not dnsmasq,
   * which takes seconds per exchange with 10,000 named leases at 4 already) */
  loadedDhcpHighConcurrency: number;
  loadedDhcpTimeoutMs: number;
  dnsSeconds: number;
  dnsMaxQps: { hit: number; local: number; miss: number };
  cacheFill: number;
  nftRepeat: number;
  cliRepeat: number;
  /** extra natd flags (the conflict-probe switch, when natd has one) */
  natdArgs: string[];
  /** node flags for the heap-capped natd memory measurement */
  natdHeapCaps: string[];
  /** natd only: V8 CPU profiles go here */
  cpuProfileDir?: string;
  log(line: string): void;
}

export interface LadderStep {
  offered: number;
  completedPerSecond: number;
  /** UDP datagrams the kernel dropped for want of receive buffer: at the server (host ns) and at the generator */
  serverOverflows: number;
  clientOverflows: number;
  /** (drops + NAKs) / started */
  loss: number;
  p50Ms: number;
  p99Ms: number;
  cpuPer10k: number;
}

export interface DnsScenarioResult extends DnsperfResult {
  cpuPer10k: number;
  /** CPU share (1 = one full core) the fake upstream used meanwhile */
  upstreamCpu: number;
}

export type DnsScenario = 'hit' | 'local' | 'miss';

export interface ServerRunResult {
  /** natd, dnsmasq, or a peer (issue 18): a scenario the server does not do holds NaN (NOT_RUN) and shows as "–" */
  kind: BenchKind;
  run: number;
  ladder: LadderStep[];
  /** highest completed/s among ladder steps with loss <= maxLoss that kept pace (>= 95% of offered); 0 if none */
  dhcpSustained: number;
  dhcpPeak: number;
  /** latency and CPU at the sustained step */
  dhcpSustainedP50Ms: number;
  dhcpSustainedP99Ms: number;
  dhcpCpuPer10k: number;
  loaded: { perSecond: number; p50Ms: number; p99Ms: number; loss: number; cpuPer10k: number };
  /** issue 18: the same closed loop at loadedDhcpHighConcurrency in flight (NaN for dnsmasq: not run) */
  loadedHigh: { perSecond: number; p50Ms: number; p99Ms: number; loss: number; cpuPer10k: number };
  /** DNS scenarios with a few named leases held */
  dns: Record<DnsScenario, DnsScenarioResult>;
  /** cache hits again with 10,000 named leases held */
  fullHit: DnsScenarioResult;
  cacheFillCompleted: number;
  peakRssMiB: number;
  rssMiB: number;
  cliForwardAddMs?: number;
  cliForwardRemoveMs?: number;
  nft?: NftTiming;
  /** peak RSS once the DHCP step of phase C has added its leases, and how many leases the server then held */
  afterDhcp: { peakRssMiB: number; leases: number };
  /** natd only: peak RSS and cache-hit rate of the same loaded server under V8 heap caps */
  heapCapped?: { peakRssMiB: number; hitQps: number };
  seconds: number;
}

function loadArgs(args: Record<string, string | number>): string[] {
  return Object.entries(args).flatMap(([k, v]) => [`--${k}`, String(v)]);
}

export async function dhcpLoad(net: BenchNetwork, args: Record<string, string | number>, timeoutMs: number): Promise<LoadResult> {
  const r = await net.topology.run(net.clientNs, [process.execPath, DHCP_LOAD, ...loadArgs(args)], { timeoutMs });
  if (r.code !== 0) throw new Error(`dhcp-load exited ${r.code}: ${r.stderr.trim()}`);
  const result = JSON.parse(r.stdout) as LoadResult;
  // JSON has no NaN: percentiles of an empty set come back as null
  for (const key of ['p50', 'p90', 'p99'] as const) result.latencyMs[key] ??= NaN;
  return result;
}

/** Runs `action` and returns its result with the server's CPU seconds spent meanwhile. */
async function withCpu<T>(server: RunningServer, action: () => Promise<T>): Promise<{ value: T; cpu: number }> {
  const before = cpuSeconds(server.pid);
  const value = await action();
  return { value, cpu: cpuSeconds(server.pid) - before };
}

const per10k = (cpu: number, count: number) => (count > 0 ? (cpu / count) * 10_000 : NaN);

async function ladder(net: BenchNetwork, server: RunningServer, s: RunSettings, firstClient: { next: number }): Promise<LadderStep[]> {
  const steps: LadderStep[] = [];
  for (const rate of s.ladderRates) {
    const overflowsBefore = [await net.udpRcvbufErrors(net.hostNs), await net.udpRcvbufErrors(net.clientNs)];
    const { value: r, cpu } = await withCpu(server, () => dhcpLoad(net, {
      device: 'eth0', mode: 'open', rate, 'duration-ms': s.ladderStepMs, 'timeout-ms': s.dhcpTimeoutMs,
      'first-client': firstClient.next, 'hostname-prefix': 'b',
    }, s.ladderStepMs + s.dhcpTimeoutMs + 30_000));
    firstClient.next += r.started;
    const step: LadderStep = {
      offered: rate,
      completedPerSecond: r.completedPerSecond,
      serverOverflows: (await net.udpRcvbufErrors(net.hostNs)) - overflowsBefore[0]!,
      clientOverflows: (await net.udpRcvbufErrors(net.clientNs)) - overflowsBefore[1]!,
      loss: r.started ? (r.dropped + r.naks) / r.started : 0,
      p50Ms: r.latencyMs.p50,
      p99Ms: r.latencyMs.p99,
      cpuPer10k: per10k(cpu, r.completed),
    };
    steps.push(step);
    s.log(`  ${server.kind} ladder ${rate}/s: ${step.completedPerSecond.toFixed(0)}/s done, ${(step.loss * 100).toFixed(1)}% lost, p99 ${step.p99Ms.toFixed(1)} ms, ` +
      `${step.serverOverflows}/${step.clientOverflows} datagrams overflowed at server/generator` +
      (r.achievedOfferedRate < rate * 0.9 ? ` (generator reached only ${r.achievedOfferedRate.toFixed(0)}/s)` : ''));
    if (step.loss > s.maxLoss) break;
    await new Promise((resolve) => setTimeout(resolve, 300)); // let the server settle between steps
  }
  return steps;
}

async function dnsScenario(net: BenchNetwork, server: RunningServer, s: RunSettings, scenario: DnsScenario, file: string): Promise<DnsScenarioResult> {
  const upstreamPid = net.upstreamPid;
  const upstreamBefore = upstreamPid ? cpuSeconds(upstreamPid) : NaN;
  const t0 = performance.now();
  const timesBefore = cpuTimes(server.pid);
  const { value, cpu } = await withCpu(server, () => runDnsperf(net, {
    queryFile: file, seconds: s.dnsSeconds, maxQps: s.dnsMaxQps[scenario], ...(scenario === 'miss' ? { passes: 1 } : {}),
  }));
  const upstreamCpu = upstreamPid ? (cpuSeconds(upstreamPid) - upstreamBefore) / ((performance.now() - t0) / 1000) : NaN;
  const timesAfter = cpuTimes(server.pid);
  const userShare = (timesAfter.user - timesBefore.user) / Math.max(cpu, 1e-9);
  const noerror = value.rcodes.NOERROR ?? 0;
  s.log(`  ${server.kind} dns ${scenario}: ${value.qps.toFixed(0)} q/s, avg ${value.avgMs.toFixed(2)} ms, p99 ${value.p99Ms.toFixed(2)} ms, ` +
    `CPU ${(per10k(cpu, value.completed) * 100).toFixed(2)} µs/query (${(userShare * 100).toFixed(0)}% user), ` +
    `lost ${value.lost}, NOERROR ${value.completed ? ((noerror / value.completed) * 100).toFixed(1) : '0'}%` +
    (scenario === 'miss' ? `, upstream at ${(upstreamCpu * 100).toFixed(0)}% of a core` : ''));
  return { ...value, cpuPer10k: per10k(cpu, value.completed), upstreamCpu };
}

/** Median wall time of `natd forwards add|remove` (a fresh CLI process each time: what an operator waits for). */
async function cliForwardTimes(net: BenchNetwork, server: RunningServer, repeat: number): Promise<{ add: number; remove: number }> {
  const add: number[] = [];
  const remove: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const spec = `tcp:${18_080 + i}=10.77.0.50:80`;
    for (const [sub, samples] of [['add', add], ['remove', remove]] as const) {
      const t0 = performance.now();
      await net.topology.runOk(net.hostNs, [process.execPath, NATD_CLI, 'forwards', sub, spec, '--control-socket', server.controlSocket!]);
      samples.push(performance.now() - t0);
    }
  }
  return { add: median(add), remove: median(remove) };
}

/**
 * Waits until the server has used under 10% of a CPU for 300 ms (dnsmasq works for seconds after loading
 * 10,000 named leases, and after an overload it still answers the backlog); gives up after maxMs.
 */
export async function waitIdle(server: RunningServer, maxMs = 20_000): Promise<void> {
  const deadline = performance.now() + maxMs;
  while (performance.now() < deadline) {
    const before = cpuSeconds(server.pid);
    await new Promise((resolve) => setTimeout(resolve, 300));
    if (cpuSeconds(server.pid) - before < 0.03) return;
  }
}

/**
 * Phase C's memory measurement on a started server that holds the seeded leases: the 100 hit names warmed, cache
 * hits (servers that hold lease names), a cache fill of `s.cacheFill` new answers, then VmHWM and VmRSS. The
 * memory scenario (bench/lib/memory-bench.ts) runs exactly this too. `step` hears each stage's reading.
 */
export async function fullCacheMemory(net: BenchNetwork, server: RunningServer, s: RunSettings, files: { hitFile: string; fillFile: string },
  step?: (stage: string) => Promise<void> | void): Promise<{ fullHit: DnsScenarioResult; fill: { completed: number }; peakRssMiB: number; rssMiB: number }> {
  const can = CAPABILITIES[server.kind];
  let fullHit = NOT_RUN;
  let fill = { completed: NaN };
  await step?.('started');
  if (can.dns) {
    await runDnsperf(net, { queryFile: files.hitFile, seconds: 10, maxQps: 1000, passes: 1 }); // warm the 100 hit names
    await step?.('warmed');
    // hits with the leases' names held: only for a server that holds lease names (Unbound would repeat phase B)
    if (can.leaseNames) fullHit = await dnsScenario(net, server, s, 'hit', files.hitFile);
    await step?.('hits');
    fill = await runDnsperf(net, { queryFile: files.fillFile, seconds: 60, maxQps: 20_000, passes: 1 });
  }
  return { fullHit, fill, peakRssMiB: statusMiB(server.pid, 'VmHWM'), rssMiB: statusMiB(server.pid, 'VmRSS') };
}

/** `count` query names `<prefix><i><suffix>` */
export function names(prefix: string, count: number, suffix: string): Iterable<string> {
  return {
    *[Symbol.iterator]() {
      for (let i = 0; i < count; i++) yield `${prefix}${i}${suffix}`;
    },
  };
}

/** A DNS scenario a server does not do (Kea: no DNS; Unbound: no lease names) */
const NOT_RUN: DnsScenarioResult = { sent: NaN, completed: NaN, lost: NaN, qps: NaN, avgMs: NaN, p50Ms: NaN, p99Ms: NaN, rcodes: {}, cpuPer10k: NaN, upstreamCpu: NaN };
const NO_LOAD: LoadResult = {
  mode: 'closed', offeredRate: 0, achievedOfferedRate: 0, started: 0, completed: 0, dropped: 0, naks: 0, elapsedSeconds: 0,
  completedPerSecond: NaN, dropRatio: NaN, latencyMs: { p50: NaN, p90: NaN, p99: NaN, max: NaN }, sendErrors: 0, retransmissions: 0,
};

export async function benchServer(kind: BenchKind, run: number, s: RunSettings): Promise<ServerRunResult> {
  const t0 = performance.now();
  const can = CAPABILITIES[kind];
  const net = await BenchNetwork.create();
  const common = { extraArgs: kind === 'natd' ? s.natdArgs : [], ...(kind === 'natd' && s.cpuProfileDir ? { cpuProfileDir: s.cpuProfileDir } : {}) };
  const now = Date.now();
  try {
    // A. the ladder, from an empty lease table
    let server: RunningServer;
    let steps: LadderStep[] = [];
    if (can.dhcp) {
      server = await startServer(net, kind, { instance: 'empty', ...common });
      steps = await ladder(net, server, s, { next: 0 });
      await server.stop();
    }
    // sustained: nothing (well, <= maxLoss) failed AND the server kept pace with the offered rate; a server that
    // falls behind without failing yet is only building a queue
    const ok = steps.filter((st) => st.loss <= s.maxLoss && st.completedPerSecond >= 0.95 * st.offered);
    const best = ok.reduce<LadderStep | undefined>((a, b) => (!a || b.completedPerSecond > a.completedPerSecond ? b : a), undefined);

    // B. DNS on a small host: a few named VMs
    const smallSeed = makeSeedLeases(s.smallHostLeases, 's', now);
    const hitFile = writeQueryFile(net, 'hit.txt', names('h', 100, '.bench.test'));
    let dns: Record<DnsScenario, DnsScenarioResult> = { hit: NOT_RUN, local: NOT_RUN, miss: NOT_RUN };
    if (can.dns) {
      server = await startServer(net, kind, { instance: 'small', seed: smallSeed, ...common });
      await waitIdle(server);
      const localFile = writeQueryFile(net, 'local.txt', smallSeed.map((l) => `${l.hostname}.${DOMAIN}`));
      const missFile = writeQueryFile(net, 'miss.txt', names('m', s.dnsMaxQps.miss * s.dnsSeconds, '.bench.test'));
      await runDnsperf(net, { queryFile: hitFile, seconds: 10, maxQps: 1000, passes: 1 }); // warm the 100 hit names
      dns = {
        hit: await dnsScenario(net, server, s, 'hit', hitFile),
        local: can.leaseNames ? await dnsScenario(net, server, s, 'local', localFile) : NOT_RUN,
        miss: await dnsScenario(net, server, s, 'miss', missFile),
      };
      await server.stop();
    }

    // C. the same 10,000 named leases for both: DNS hits, a full cache, memory; then DHCP. Memory is read before the
    // DHCP step, while each server holds exactly the seeded leases (the target's "10,000 leases"): the DHCP step adds
    // as many leases as a server completes exchanges (natd about 14,000 in 4 s, dnsmasq a handful), so a reading
    // after it would compare different lease tables. The peak after the DHCP step is reported too.
    const seed = makeSeedLeases(s.seedLeases, 's', now);
    server = await startServer(net, kind, { instance: 'loaded', seed, ...common });
    await waitIdle(server);
    const fillFile = writeQueryFile(net, 'fill.txt', names('f', s.cacheFill, '.bench.test'));
    const { fullHit, fill, peakRssMiB, rssMiB } = await fullCacheMemory(net, server, s, { hitFile, fillFile });
    if (can.dns) s.log(`  ${kind} cache fill ${fill.completed}/${s.cacheFill} answered; peak RSS ${peakRssMiB.toFixed(1)} MiB`);
    const { value: loaded, cpu: loadedCpu } = can.dhcp ? await withCpu(server, () => dhcpLoad(net, {
      device: 'eth0', mode: 'closed', concurrency: s.loadedDhcpConcurrency, count: 1_000_000, 'max-ms': s.loadedDhcpMs,
      'timeout-ms': s.loadedDhcpTimeoutMs, 'first-client': 1_000_000, 'hostname-prefix': 'c',
    }, s.loadedDhcpMs + s.loadedDhcpTimeoutMs + 30_000)) : { value: NO_LOAD, cpu: NaN };
    if (can.dhcp) s.log(`  ${kind} dhcp with ${s.seedLeases} leases (${s.loadedDhcpConcurrency} in flight): ${loaded.completedPerSecond.toFixed(1)}/s, ` +
      `p50 ${loaded.latencyMs.p50.toFixed(1)} ms, ${loaded.dropped + loaded.naks} failed`);
    await waitIdle(server);
    // issue 18: the closed loop again at 16 in flight, the issue's own configuration (not dnsmasq: see RunSettings)
    const high = can.dhcp && kind !== 'dnsmasq';
    const { value: loadedHigh, cpu: loadedHighCpu } = high ? await withCpu(server, () => dhcpLoad(net, {
      device: 'eth0', mode: 'closed', concurrency: s.loadedDhcpHighConcurrency, count: 1_000_000, 'max-ms': s.loadedDhcpMs,
      'timeout-ms': s.loadedDhcpTimeoutMs, 'first-client': 2_000_000, 'hostname-prefix': 'd',
    }, s.loadedDhcpMs + s.loadedDhcpTimeoutMs + 30_000)) : { value: NO_LOAD, cpu: NaN };
    if (high) {
      s.log(`  ${kind} dhcp with ${s.seedLeases} leases (${s.loadedDhcpHighConcurrency} in flight): ${loadedHigh.completedPerSecond.toFixed(1)}/s, ` +
        `p50 ${loadedHigh.latencyMs.p50.toFixed(1)} ms, ${loadedHigh.dropped + loadedHigh.naks} failed`);
      await waitIdle(server);
    }
    const afterDhcp = { peakRssMiB: statusMiB(server.pid, 'VmHWM'), leases: can.dhcp ? s.seedLeases + loaded.completed + loadedHigh.completed : NaN };
    if (can.dhcp) s.log(`  ${kind} peak RSS after the DHCP step (${afterDhcp.leases} leases): ${afterDhcp.peakRssMiB.toFixed(1)} MiB`);
    let cli: { add: number; remove: number } | undefined;
    if (kind === 'natd') cli = await cliForwardTimes(net, server, s.cliRepeat);
    await server.stop();

    let nft: NftTiming | undefined;
    let capped: ServerRunResult['heapCapped'];
    if (kind === 'natd') {
      // D. nft, with natd's own code, in the host namespace (natd's table went away with natd)
      const out = await net.topology.runOk(net.hostNs, [process.execPath, NFT_TIMING, '--repeat', String(s.nftRepeat)], { timeoutMs: 120_000 });
      nft = JSON.parse(out) as NftTiming;
      s.log(`  nft: full apply ${nft.fullApply.toFixed(1)} ms, forward add ${nft.forwardAdd.toFixed(1)} ms`);

      // E. the memory part of C again, with V8's heap capped (a deployment choice natd does not make today)
      server = await startServer(net, kind, { instance: 'capped', seed, nodeFlags: s.natdHeapCaps, ...common });
      await waitIdle(server);
      await runDnsperf(net, { queryFile: hitFile, seconds: 10, maxQps: 1000, passes: 1 });
      const cappedHit = await dnsScenario(net, server, s, 'hit', hitFile);
      await runDnsperf(net, { queryFile: fillFile, seconds: 60, maxQps: 20_000, passes: 1 }); // same names: fresh process, so misses again
      capped = { peakRssMiB: statusMiB(server.pid, 'VmHWM'), hitQps: cappedHit.qps };
      s.log(`  natd ${s.natdHeapCaps.join(' ')}: peak RSS ${capped.peakRssMiB.toFixed(1)} MiB, hits ${capped.hitQps.toFixed(0)} q/s`);
      await server.stop();
    }

    return {
      kind,
      run,
      ladder: steps,
      dhcpSustained: can.dhcp ? best?.completedPerSecond ?? 0 : NaN,
      dhcpPeak: can.dhcp ? Math.max(0, ...steps.map((st) => st.completedPerSecond)) : NaN,
      dhcpSustainedP50Ms: best?.p50Ms ?? NaN,
      dhcpSustainedP99Ms: best?.p99Ms ?? NaN,
      dhcpCpuPer10k: best?.cpuPer10k ?? NaN,
      loaded: {
        perSecond: loaded.completedPerSecond,
        p50Ms: loaded.latencyMs.p50,
        p99Ms: loaded.latencyMs.p99,
        loss: loaded.started ? (loaded.dropped + loaded.naks) / loaded.started : can.dhcp ? 0 : NaN,
        cpuPer10k: per10k(loadedCpu, loaded.completed),
      },
      loadedHigh: {
        perSecond: high ? loadedHigh.completedPerSecond : NaN,
        p50Ms: loadedHigh.latencyMs.p50,
        p99Ms: loadedHigh.latencyMs.p99,
        loss: loadedHigh.started ? (loadedHigh.dropped + loadedHigh.naks) / loadedHigh.started : NaN,
        cpuPer10k: per10k(loadedHighCpu, loadedHigh.completed),
      },
      dns,
      fullHit,
      cacheFillCompleted: fill.completed,
      peakRssMiB,
      rssMiB,
      afterDhcp,
      ...(cli ? { cliForwardAddMs: cli.add, cliForwardRemoveMs: cli.remove } : {}),
      ...(nft ? { nft } : {}),
      ...(capped ? { heapCapped: capped } : {}),
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await net.destroy();
  }
}
