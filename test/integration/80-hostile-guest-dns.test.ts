/**
 * Hostile guests against natd's DNS (issue 12, the DNS rows of its table). Each test is one attack, performed from a
 * vm namespace with real packets, and asserts the harm is gone: vm1 is the attacker, vm2 a neighbour whose queries
 * must keep working. The attack tools are fixtures shared with the soak (test/fixtures/dns-attack.mjs for sockets,
 * dns-port-zero.py for a raw IPv4 socket sending from UDP source port 0, dns-spoof.py with scapy for spoofed sources).
 *
 * Bounds are generous (two shared cores); the unfixed code missed each of them by a wide margin (see the issue note).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { FIXTURES, NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';

const needsRoot = !isRoot() && !process.env.CI;

const ATTACKER_ADDR = '10.77.0.201';
const VICTIM_ADDR = '10.77.0.202';
/** natd runs with a small cache budget so row 4 needs only a few hundred large answers to reach it */
const CACHE_BUDGET_MIB = 8;

/** The attack tools, shared with the soak (bench/soak.ts): each prints one JSON summary line (see their headers). */
const DNS_ATTACK = path.join(FIXTURES, 'dns-attack.mjs');
const PORT_ZERO_FLOOD = path.join(FIXTURES, 'dns-port-zero.py');
const SPOOF = path.join(FIXTURES, 'dns-spoof.py');
/** sources a query cannot really come from: the subnet's broadcast and network address, zero, multicast */
const SPOOFED_SOURCES = ['10.77.0.255', '10.77.0.0', '255.255.255.255', '0.0.0.0', '224.0.0.251'];

describe.skipIf(needsRoot)('hostile guests against natd DNS (issue 12)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let upstreamLog: string;

  beforeAll(async () => {
    topo = Topology.create({ vms: 2 });
    const dir = tempDir('natd-hostile-dns-');
    upstreamLog = path.join(dir, 'upstream.log');
    writeFileSync(upstreamLog, '');
    await startFakeUpstreamIn(topo, { log: upstreamLog });
    natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', 'vm', '--no-firewall',
      '--cache-max-bytes', `${CACHE_BUDGET_MIB}M`]);
    await topo.runOk(topo.vm(1).ns, ['ip', 'addr', 'add', `${ATTACKER_ADDR}/24`, 'dev', 'eth0']);
    await topo.runOk(topo.vm(2).ns, ['ip', 'addr', 'add', `${VICTIM_ADDR}/24`, 'dev', 'eth0']);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  const attacker = () => topo.vm(1).ns;
  const victim = () => topo.vm(2).ns;

  function rssKiB(field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
    const status = readFileSync(`/proc/${natd.child.pid}/status`, 'utf8');
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]);
  }

  /** Runs `work` while sampling natd's RSS every 100 ms; returns its result and the largest growth in MiB. */
  async function peakGrowthMiB<T>(work: () => Promise<T>): Promise<{ result: T; growthMiB: number }> {
    const baseline = rssKiB();
    let peak = baseline;
    const timer = setInterval(() => (peak = Math.max(peak, rssKiB())), 100);
    try {
      const result = await work();
      peak = Math.max(peak, rssKiB());
      return { result, growthMiB: (peak - baseline) / 1024 };
    } finally {
      clearInterval(timer);
    }
  }

  async function runTool<T>(ns: string, args: string[], timeoutMs = 60_000): Promise<T> {
    const r = await topo.run(ns, [process.execPath, DNS_ATTACK, args[0]!, GATEWAY, ...args.slice(1)], { timeoutMs });
    if (r.code !== 0) throw new Error(`tool ${args[0]} exited ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
  }

  async function dig(ns: string, args: string[]): Promise<string> {
    return (await topo.run(ns, ['dig', '+time=3', '+tries=1', `@${GATEWAY}`, ...args], { timeoutMs: 15_000 })).stdout;
  }

  async function metrics(): Promise<string> {
    return topo.runOk(topo.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket]);
  }

  function metric(text: string, name: string): number {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `));
    return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
  }

  function alive(): void {
    expect(natd.child.exitCode).toBeNull();
    expect(natd.child.signalCode).toBeNull();
    expect(natd.logs.filter((l) => l.level === 'error')).toEqual([]);
  }

  it('row 2: a guest pipelining without reading cannot grow natd\'s memory', async () => {
    expect(await dig(attacker(), ['+tcp', '+short', 'pipe.huge.example.test', 'TXT'])).toContain('hhhh'); // cached now
    const { result, growthMiB } = await peakGrowthMiB(() =>
      runTool<{ written: number; closedByServer: boolean }>(attacker(), ['tcp-pipeline', '2000', '4000']));
    console.log('row 2: pipelined', result, 'natd RSS growth MiB', growthMiB.toFixed(1));
    expect(result.written).toBe(2000);
    // 2,000 answers of 60 KB are 115 MiB; natd may hold a bounded few (the unsent-output cap and the pipeline limit)
    expect(growthMiB).toBeLessThan(24);
    expect(await dig(victim(), ['+short', 'after-pipeline.example.test', 'A'])).toMatch(/^203\.0\.113\.\d+/);
    alive();
  }, 60_000);

  it('row 3: queries from UDP source port 0 cannot make natd drop other guests\' answers', async () => {
    expect(await dig(victim(), ['+short', 'p0.example.test', 'A'])).toMatch(/^203\.0\.113\.\d+/);
    expect(await dig(victim(), ['+short', 'v.example.test', 'A'])).toMatch(/^203\.0\.113\.\d+/);
    const before = await metrics();
    const [flood, load] = await Promise.all([
      topo.run(attacker(), ['/usr/bin/python3', PORT_ZERO_FLOOD, GATEWAY, '40000', '5'], { timeoutMs: 30_000 }),
      runTool<{ sent: number; answered: number }>(victim(), ['udp-victim', '1000', '5000', 'v.example.test']),
    ]);
    const after = await metrics();
    console.log('row 3: port-0 flood', flood.stdout.trim(), flood.stderr.trim(), 'victim', load,
      'dropped', metric(after, 'natd_dns_dropped_total') - metric(before, 'natd_dns_dropped_total'));
    expect(flood.code).toBe(0);
    expect(load.sent).toBe(1000);
    // the unfixed code lost 143 of 1,000; a busy 2-core machine may drop a few at the socket buffer
    expect(load.answered).toBeGreaterThanOrEqual(950);
    alive();
  }, 60_000);

  it('row 4: large answers for many names cannot grow the cache beyond its byte budget', async () => {
    const { result, growthMiB } = await peakGrowthMiB(() =>
      runTool<{ count: number; answered: number }>(attacker(), ['tcp-names', '500', '6'], 120_000));
    const text = await metrics();
    const cacheBytes = metric(text, 'natd_dns_cache_bytes');
    console.log('row 4: names', result, 'natd RSS growth MiB', growthMiB.toFixed(1), 'cache bytes', cacheBytes,
      'evictions', metric(text, 'natd_dns_cache_evictions_total'));
    expect(result.answered).toBeGreaterThanOrEqual(490);
    // 500 answers of 60 KB are 29 MiB; the budget keeps 8
    expect(cacheBytes).toBeLessThanOrEqual(CACHE_BUDGET_MIB * 1024 * 1024);
    expect(metric(text, 'natd_dns_cache_evictions_total')).toBeGreaterThan(0);
    expect(growthMiB).toBeLessThan(CACHE_BUDGET_MIB + 20); // transient buffers besides the budget
    alive();
  }, 150_000);

  it('row 7: one guest cannot take every upstream slot or every TCP slot from the others', async () => {
    // unique names in a zone that never answers: each holds an upstream slot for the whole 4 s query budget
    const flood = runTool<{ sent: number; answers: number; servfails: number }>(attacker(), ['udp-unique-flood', '6000']);
    await new Promise((ok) => setTimeout(ok, 800));
    const during = await dig(victim(), ['+short', `fresh-${Date.now()}.example.test`, 'A']);
    const floodResult = await flood;
    console.log('row 7: upstream flood', floodResult, 'victim cache miss during it:', JSON.stringify(during.trim()));
    expect(during.trim()).toMatch(/^203\.0\.113\.\d+$/);

    // every TCP slot, each busy with a query that waits for its upstream
    const slots = runTool<{ connected: number; closedByServer: number }>(attacker(), ['tcp-slots', '80', '3000']);
    await new Promise((ok) => setTimeout(ok, 1200));
    const tcpDuring = await dig(victim(), ['+tcp', '+short', `tcp-${Date.now()}.example.test`, 'A']);
    const slotResult = await slots;
    const text = await metrics();
    console.log('row 7: TCP slots', slotResult, 'victim TCP query during it:', JSON.stringify(tcpDuring.trim()),
      'limited', text.split('\n').filter((l) => l.startsWith('natd_dns_limited_total')));
    expect(tcpDuring.trim()).toMatch(/^203\.0\.113\.\d+$/);
    expect(metric(text, 'natd_dns_limited_total{bridge="br0",limit="client-pending"}')).toBeGreaterThan(0);
    expect(metric(text, 'natd_dns_limited_total{bridge="br0",limit="client-tcp-connections"}')).toBeGreaterThan(0);
    expect(natd.logs.some((l) => typeof l.msg === 'string' && l.msg.includes('per-client'))).toBe(true);
    alive();
  }, 60_000);

  it('row 8: a query spoofed from a broadcast or multicast source gets no answer, and answers stay small', async () => {
    expect(await dig(victim(), ['+short', 'big.example.test', 'TXT', '+tcp'])).toContain('xxxx'); // cached
    const listener = topo.spawn(victim(), [process.execPath, DNS_ATTACK, 'listen', GATEWAY, '40053', '6000']);
    const listenerDone = new Promise<void>((ok) => listener.once('exit', () => ok()));
    let out = '';
    listener.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((ok) => listener.stdout!.once('data', () => ok()));
    const sent = await topo.run(attacker(), ['/usr/bin/python3', SPOOF, GATEWAY, '40053', SPOOFED_SOURCES.join(',')], { timeoutMs: 30_000 });
    await listenerDone;
    const received = (JSON.parse(out.trim().split('\n').pop()!) as { received: number }).received;
    console.log('row 8: spoofed', sent.stdout.trim(), sent.stderr.trim().slice(0, 200), 'answers seen by the neighbour', received);
    expect(sent.code).toBe(0);
    expect(received).toBe(0);

    // EDNS size above 1232 is not honoured (DNS flag day 2020): a 3 KB answer is truncated rather than fragmented
    const big = await dig(victim(), ['+bufsize=4096', '+ignore', 'big.example.test', 'TXT']);
    const size = Number(/MSG SIZE\s+rcvd: (\d+)/.exec(big)?.[1]);
    console.log('row 8: EDNS 4096 answer size', size);
    expect(size).toBeLessThanOrEqual(1232);
    expect(big).toMatch(/flags:[^;]* tc/);
    // ANY gets the RFC 8482 minimal answer
    const any = await dig(victim(), ['+noall', '+answer', 'big.example.test', 'ANY']);
    console.log('row 8: ANY answer', JSON.stringify(any.trim()));
    expect(any).toMatch(/HINFO\s+"RFC8482"/);
    alive();
  }, 60_000);

  it('row 10: a TTL with the high bit set is passed on as 0 and not cached', async () => {
    const first = await dig(victim(), ['+noall', '+answer', 'hugettl.example.test', 'A']);
    const second = await dig(victim(), ['+noall', '+answer', 'hugettl.example.test', 'A']);
    const asked = readFileSync(upstreamLog, 'utf8').split('\n').filter((l) => l.endsWith(' hugettl.example.test A')).length;
    console.log('row 10: answers', JSON.stringify(first.trim()), JSON.stringify(second.trim()), 'upstream asked', asked);
    for (const answer of [first, second]) expect(answer).toMatch(/^hugettl\.example\.test\.\s+0\s+IN\s+A\s+203\.0\.113\.231/m);
    expect(asked).toBe(2);
    alive();
  }, 30_000);
});
