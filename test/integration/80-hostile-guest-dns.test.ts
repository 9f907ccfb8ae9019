/**
 * Hostile guests against natd's DNS (issue 12, the DNS rows of its table). Each test is one attack, performed from a
 * vm namespace with real packets, and asserts the harm is gone: vm1 is the attacker, vm2 a neighbour whose queries
 * must keep working. The attack tools are small scripts written to a temp dir here (Node for sockets, a raw IPv4
 * socket for UDP source port 0, scapy for spoofed sources) so the file reads as the threat model.
 *
 * Bounds are generous (two shared cores); the unfixed code missed each of them by a wide margin (see the issue note).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from './support/netns.js';
import { FIXTURES, NATD_CLI, startNatd, tempDir, type NatdHandle } from './support/natd-process.js';

const needsRoot = !isRoot() && !process.env.CI;

const ATTACKER_ADDR = '10.77.0.201';
const VICTIM_ADDR = '10.77.0.202';
/** natd runs with a small cache budget so row 4 needs only a few hundred large answers to reach it */
const CACHE_BUDGET_MIB = 8;

/** The attacks and the neighbour's load, one mode per argv[2]; each prints one JSON summary line. */
const TOOL = String.raw`
import dgram from 'node:dgram';
import net from 'node:net';
import { randomInt } from 'node:crypto';

const [mode, target, ...rest] = process.argv.slice(2);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
function query(id, name, type = 1, ednsSize = 0) {
  const labels = name.split('.').flatMap((l) => [Buffer.of(l.length), Buffer.from(l)]);
  const head = Buffer.from([id >> 8, id & 255, 1, 0, 0, 1, 0, 0, 0, 0, 0, ednsSize ? 1 : 0]);
  const opt = ednsSize ? Buffer.from([0, 0, 41, ednsSize >> 8, ednsSize & 255, 0, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  return Buffer.concat([head, ...labels, Buffer.of(0), Buffer.from([type >> 8, type & 255, 0, 1]), opt]);
}
const framed = (q) => Buffer.concat([Buffer.from([q.length >> 8, q.length & 255]), q]);
const TXT = 16;

if (mode === 'tcp-pipeline') {
  // row 2: pipeline queries for a large cached answer and never read a byte
  const [countText, holdText] = rest;
  const socket = net.connect(53, target);
  socket.pause();
  let closedByServer = false;
  socket.on('close', () => (closedByServer = true));
  socket.on('error', () => {});
  await new Promise((ok) => socket.once('connect', ok));
  const frames = [];
  for (let i = 0; i < Number(countText); i++) frames.push(framed(query(i & 0xffff, 'pipe.huge.example.test', TXT)));
  socket.write(Buffer.concat(frames));
  await sleep(Number(holdText));
  console.log(JSON.stringify({ written: frames.length, closedByServer }));
  socket.destroy();
} else if (mode === 'tcp-names') {
  // row 4: many different names with large answers, fetched over a few connections that do read
  const [countText, connectionsText] = rest;
  const count = Number(countText);
  let next = 0, answered = 0, bytes = 0;
  async function worker() {
    const socket = net.connect(53, target);
    socket.on('error', () => {});
    await new Promise((ok, fail) => { socket.once('connect', ok); socket.once('error', fail); });
    let buffered = Buffer.alloc(0), waiting;
    socket.on('data', (chunk) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
        bytes += buffered.readUInt16BE(0);
        buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
        answered++;
        waiting?.();
      }
    });
    while (next < count) {
      const i = next++;
      await new Promise((ok) => { waiting = ok; socket.write(framed(query(i & 0xffff, 'n' + i + '.huge.example.test', TXT))); setTimeout(ok, 5000); });
    }
    socket.destroy();
  }
  await Promise.all(Array.from({ length: Number(connectionsText) }, worker));
  console.log(JSON.stringify({ count, answered, bytes }));
} else if (mode === 'udp-victim') {
  // the neighbour: paced queries for a cached name, each answer matched by id
  const [countText, durationText, name] = rest;
  const count = Number(countText), durationMs = Number(durationText);
  const socket = dgram.createSocket('udp4');
  const answered = new Set();
  socket.on('message', (msg) => answered.add(msg.readUInt16BE(0)));
  await new Promise((ok) => socket.bind(0, ok));
  const started = performance.now();
  let sent = 0;
  while (sent < count) {
    const due = Math.min(count, Math.ceil((count * (performance.now() - started)) / durationMs));
    for (; sent < due; sent++) socket.send(query(sent, name), 53, target);
    await sleep(5);
  }
  await sleep(1500);
  socket.close();
  console.log(JSON.stringify({ sent, answered: answered.size }));
} else if (mode === 'udp-unique-flood') {
  // row 7: unique names in a zone whose upstream never answers, as fast as the socket takes them
  const [countText] = rest;
  const socket = dgram.createSocket('udp4');
  let answers = 0, servfails = 0;
  socket.on('message', (msg) => { answers++; if ((msg[3] & 15) === 2) servfails++; });
  await new Promise((ok) => socket.bind(0, ok));
  const tag = randomInt(1e9);
  for (let i = 0; i < Number(countText); i++) {
    socket.send(query(i & 0xffff, 'u' + i + '-' + tag + '.blackhole.test'), 53, target);
    if (i % 200 === 199) await sleep(1);
  }
  await sleep(500);
  socket.close();
  console.log(JSON.stringify({ sent: Number(countText), answers, servfails }));
} else if (mode === 'tcp-slots') {
  // row 7: take every TCP slot, each kept busy by a query that never gets an upstream answer
  const [countText, holdText] = rest;
  let connected = 0, closedByServer = 0;
  const sockets = [];
  for (let i = 0; i < Number(countText); i++) {
    const socket = net.connect(53, target);
    sockets.push(socket);
    socket.on('error', () => {});
    socket.on('close', () => closedByServer++);
    socket.on('connect', () => { connected++; socket.write(framed(query(i, 'slot' + i + '-' + randomInt(1e9) + '.blackhole.test'))); });
    await sleep(2);
  }
  await sleep(Number(holdText));
  console.log(JSON.stringify({ connected, closedByServer }));
  for (const s of sockets) s.destroy();
} else if (mode === 'listen') {
  // what a neighbour would receive if natd answered a spoofed broadcast source
  const [portText, durationText] = rest;
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  let received = 0;
  socket.on('message', () => received++);
  await new Promise((ok) => socket.bind(Number(portText), '0.0.0.0', ok));
  console.log('ready');
  await sleep(Number(durationText));
  socket.close();
  console.log(JSON.stringify({ received }));
}
`;

/** UDP queries from source port 0 through a raw socket (the kernel adds the IP header); argv: target count seconds. */
const PORT_ZERO_FLOOD = String.raw`
import socket, struct, sys, time
target, count, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def query(i):
    name = b''.join(bytes([len(l)]) + l for l in b'p0.example.test'.split(b'.')) + b'\0'
    return struct.pack('>HHHHHH', i & 0xffff, 0x0100, 1, 0, 0, 0) + name + struct.pack('>HH', 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
start = time.monotonic()
for i in range(count):
    payload = query(i)
    s.sendto(struct.pack('>HHHH', 0, 53, 8 + len(payload), 0) + payload, (target, 0))
    if i % 100 == 99:
        lag = start + seconds * (i + 1) / count - time.monotonic()
        if lag > 0: time.sleep(lag)
print(count)
`;

/** Queries spoofed from broadcast, network, zero and multicast sources (scapy); argv: target sport. */
const SPOOF = String.raw`
import sys
from scapy.all import IP, UDP, DNS, DNSQR, DNSRROPT, send, conf
conf.verb = 0
target, sport = sys.argv[1], int(sys.argv[2])
for src in ['10.77.0.255', '10.77.0.0', '255.255.255.255', '0.0.0.0', '224.0.0.251']:
    for qtype in ['TXT', 'ANY']:
        send(IP(src=src, dst=target) / UDP(sport=sport, dport=53) /
             DNS(id=7, rd=1, qd=DNSQR(qname='big.example.test', qtype=qtype), ar=DNSRROPT(rclass=4096)))
print('sent')
`;

describe.skipIf(needsRoot)('hostile guests against natd DNS (issue 12)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let tool: string;
  let portZeroFlood: string;
  let spoof: string;
  let upstreamLog: string;

  beforeAll(async () => {
    topo = Topology.create({ vms: 2 });
    const dir = tempDir('natd-hostile-dns-');
    upstreamLog = path.join(dir, 'upstream.log');
    writeFileSync(upstreamLog, '');
    const upstream = topo.spawn(topo.wan, [process.execPath, path.join(FIXTURES, 'fake-upstream.mjs'), '--listen', `${UPLINK_WAN}:53`, '--log', upstreamLog]);
    await new Promise<void>((resolve, reject) => {
      upstream.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); });
      upstream.once('exit', (code) => reject(new Error(`fake upstream exited ${code}`)));
    });
    natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', 'vm', '--no-firewall',
      '--cache-max-bytes', `${CACHE_BUDGET_MIB}M`]);
    await topo.runOk(topo.vm(1).ns, ['ip', 'addr', 'add', `${ATTACKER_ADDR}/24`, 'dev', 'eth0']);
    await topo.runOk(topo.vm(2).ns, ['ip', 'addr', 'add', `${VICTIM_ADDR}/24`, 'dev', 'eth0']);
    tool = path.join(dir, 'tool.mjs');
    portZeroFlood = path.join(dir, 'port-zero.py');
    spoof = path.join(dir, 'spoof.py');
    writeFileSync(tool, TOOL);
    writeFileSync(portZeroFlood, PORT_ZERO_FLOOD);
    writeFileSync(spoof, SPOOF);
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
    const r = await topo.run(ns, [process.execPath, tool, args[0]!, GATEWAY, ...args.slice(1)], { timeoutMs });
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
      topo.run(attacker(), ['/usr/bin/python3', portZeroFlood, GATEWAY, '40000', '5'], { timeoutMs: 30_000 }),
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
    const listener = topo.spawn(victim(), [process.execPath, tool, 'listen', GATEWAY, '40053', '6000']);
    const listenerDone = new Promise<void>((ok) => listener.once('exit', () => ok()));
    let out = '';
    listener.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise<void>((ok) => listener.stdout!.once('data', () => ok()));
    const sent = await topo.run(attacker(), ['/usr/bin/python3', spoof, GATEWAY, '40053'], { timeoutMs: 30_000 });
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
