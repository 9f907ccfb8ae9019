/**
 * Bad input against natd's DNS server (issue 4, "Bad input"): 100,000 random and half-valid datagrams and 1,000
 * garbage TCP streams from a vm, then natd must still be alive, answer valid queries, show the garbage in its
 * counters, never have answered a QR=1 packet, and have cut off a TCP client that stalled.
 *
 * The traffic comes from a small Node script run inside the vm namespace (written to a temp file here so the test
 * is self-contained), paced to take about 20 s so the test stays bounded on a busy 2-core machine.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { NATD_CLI, runUdhcpc, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';

const needsRoot = !isRoot() && !process.env.CI;

const DATAGRAMS = 100_000;
const TCP_STREAMS = 1_000;
const UDP_DURATION_MS = 20_000;

/**
 * The garbage generator. argv: target, datagram count, duration ms, TCP stream count. Prints one JSON summary.
 * One datagram in 20 is a well-formed query with QR=1, sent from its own socket: that socket must get nothing back.
 */
const FUZZER = String.raw`
import dgram from 'node:dgram';
import net from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';

const [target, countText, durationText, streamsText] = process.argv.slice(2);
const count = Number(countText), durationMs = Number(durationText), streams = Number(streamsText);

function name(labels) {
  return Buffer.concat([...labels.flatMap((l) => [Buffer.of(l.length), Buffer.from(l)]), Buffer.of(0)]);
}
function query(id, flags, qname = name(['fuzz', 'example', 'test'])) {
  const head = Buffer.from([id >> 8, id & 255, flags >> 8, flags & 255, 0, 1, 0, 0, 0, 0, 0, 1]);
  const opt = Buffer.from([0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([head, qname, Buffer.from([0, 1, 0, 1]), opt]);
}
/** Half-valid: a plausible query header (QR=0, opcode 0, qdcount 1) followed by random bytes. */
function headerThenJunk() {
  const head = randomBytes(12);
  head[2] &= 0x07; head[4] = 0; head[5] = 1;
  return Buffer.concat([head, randomBytes(randomInt(0, 300))]);
}
/** A valid query with a few bytes flipped (kept QR=0 so it is not confused with the QR=1 check). */
function mutated() {
  const q = query(randomInt(65536), 0x0100);
  for (let n = randomInt(1, 5); n > 0; n--) q[randomInt(q.length)] = randomInt(256);
  q[2] &= 0x7f;
  return q;
}
const generators = [() => randomBytes(randomInt(0, 600)), headerThenJunk, mutated];

const udp = dgram.createSocket('udp4');
const qrSocket = dgram.createSocket('udp4');
let udpReplies = 0, qrReplies = 0, sendErrors = 0, sent = 0, qrSent = 0;
udp.on('message', () => udpReplies++);
qrSocket.on('message', () => qrReplies++);
udp.on('error', () => sendErrors++);
qrSocket.on('error', () => sendErrors++);
await Promise.all([udp, qrSocket].map((s) => new Promise((ok) => s.bind(0, ok))));
const onSent = (err) => { if (err) sendErrors++; };

// a TCP client that sends half a frame and then nothing: natd must cut it off after its idle timeout
const stalled = { closedAfterMs: -1 };
const stallStart = performance.now();
const stall = net.connect(53, target, () => stall.write(Buffer.from([0, 40, 0])));
stall.on('end', () => { stalled.closedAfterMs = Math.round(performance.now() - stallStart); });
stall.on('error', () => {});

// datagrams, paced by the clock so the run takes about durationMs whatever the timer jitter
const started = performance.now();
await new Promise((done) => {
  const tick = () => {
    const due = Math.min(count, Math.ceil((count * (performance.now() - started)) / durationMs));
    for (; sent < due; sent++) {
      if (sent % 20 === 19) {
        qrSocket.send(query(randomInt(65536), 0x8180), 53, target, onSent);
        qrSent++;
      } else {
        udp.send(generators[sent % generators.length](), 53, target, onSent);
      }
    }
    if (sent >= count) done(); else setTimeout(tick, 5);
  };
  tick();
});

// garbage TCP streams, 24 at a time: each ends when natd closes it or after 150 ms
const tcpKinds = [
  () => randomBytes(randomInt(1, 2000)),                                           // noise
  () => Buffer.from([0, randomInt(0, 12)]),                                          // length shorter than a header
  () => { const body = randomBytes(randomInt(12, 200)); body[2] &= 0x07; return Buffer.concat([Buffer.from([0, body.length]), body]); },
  () => Buffer.from([0xff, 0xff, 1, 2, 3]),                                          // half a frame, then we go
  () => { const q = query(7, 0x0100); return Buffer.concat([Buffer.from([0, q.length]), q, randomBytes(50)]); },
];
let closedByServer = 0, tcpErrors = 0;
function stream(i) {
  return new Promise((done) => {
    const s = net.connect(53, target, () => s.write(tcpKinds[i % tcpKinds.length]()));
    const timer = setTimeout(() => { s.destroy(); done(); }, 150);
    s.on('data', () => {});
    s.on('end', () => closedByServer++);
    s.on('error', () => tcpErrors++);
    s.on('close', () => { clearTimeout(timer); done(); });
  });
}
let next = 0;
await Promise.all(Array.from({ length: 24 }, async () => { while (next < streams) await stream(next++); }));

// late replies to the QR=1 socket would show up here
await new Promise((ok) => setTimeout(ok, 1000));
udp.close(); qrSocket.close(); stall.destroy();
console.log(JSON.stringify({ sent, qrSent, udpReplies, qrReplies, sendErrors, closedByServer, tcpErrors, stalled,
  elapsedMs: Math.round(performance.now() - started) }));
`;

interface FuzzSummary {
  sent: number;
  qrSent: number;
  udpReplies: number;
  qrReplies: number;
  sendErrors: number;
  closedByServer: number;
  tcpErrors: number;
  stalled: { closedAfterMs: number };
  elapsedMs: number;
}

type DnsStats = Record<'queries' | 'udp' | 'tcp' | 'dropped' | 'formerr' | 'refused' | 'notimp', number>;

describe.skipIf(needsRoot)('natd DNS under bad input', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let fuzzer: string;

  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
    await startFakeUpstreamIn(topo);
    natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', 'vm', '--no-firewall']);
    const lease = await runUdhcpc(topo, topo.vm(1).ns, ['-x', 'hostname:fuzzer']);
    if (!lease.events.some((e) => e.event === 'bound')) throw new Error('udhcpc got no lease');
    fuzzer = path.join(tempDir('natd-dns-fuzz-'), 'fuzz.mjs');
    writeFileSync(fuzzer, FUZZER);
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  async function dnsStats(): Promise<DnsStats> {
    const out = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'status', '--control-socket', natd.controlSocket, '--json']);
    return (JSON.parse(out) as { dns: DnsStats }).dns;
  }

  async function digShort(args: string[]): Promise<string> {
    return (await topo.runOk(topo.vm(1).ns, ['dig', '+short', '+time=3', '+tries=2', `@${GATEWAY}`, ...args])).trim();
  }

  it('survives 100,000 garbage datagrams and 1,000 garbage TCP streams and still answers', async () => {
    const before = await dnsStats();
    const r = await topo.run(topo.vm(1).ns, [process.execPath, fuzzer, GATEWAY, String(DATAGRAMS), String(UDP_DURATION_MS), String(TCP_STREAMS)], { timeoutMs: 90_000 });
    expect(r.code, r.stderr).toBe(0);
    const summary = JSON.parse(r.stdout) as FuzzSummary;
    const after = await dnsStats();
    const delta = (k: keyof DnsStats) => after[k] - before[k];
    console.log('fuzz summary', summary, 'natd counters delta', Object.fromEntries((['queries', 'udp', 'tcp', 'dropped', 'formerr', 'refused', 'notimp'] as const).map((k) => [k, delta(k)])));

    // natd is alive and still answers, over UDP and TCP, forwarded and local names; nothing went wrong inside it
    expect(natd.child.exitCode).toBeNull();
    expect(natd.child.signalCode).toBeNull();
    expect(natd.stderr()).toBe('');
    expect(natd.logs.filter((l) => l.level === 'error')).toEqual([]);
    expect(await digShort(['after-fuzz.example.test', 'A'])).toMatch(/^203\.0\.113\.\d+$/);
    expect(await digShort(['+tcp', 'after-fuzz-tcp.example.test', 'A'])).toMatch(/^203\.0\.113\.\d+$/);
    expect(await digShort(['fuzzer', 'A'])).toMatch(/^10\.77\.0\.\d+$/);

    // everything was sent, and natd saw it and counted what it threw away
    expect(summary.sent).toBe(DATAGRAMS);
    expect(delta('udp')).toBeGreaterThan(0);
    expect(delta('tcp')).toBeGreaterThan(0);
    expect(delta('dropped')).toBeGreaterThan(0);
    expect(delta('formerr')).toBeGreaterThan(0);
    // QR=1 packets are never answered (no loops between resolvers)
    expect(summary.qrSent).toBe(DATAGRAMS / 20);
    expect(summary.qrReplies).toBe(0);
    // and garbage over TCP gets the connection closed by natd, a stalled client included (idle timeout)
    expect(summary.closedByServer).toBeGreaterThan(0);
    expect(summary.stalled.closedAfterMs).toBeGreaterThanOrEqual(9_000); // natd's 10 s idle timer, not an instant close
  }, 120_000);
});
