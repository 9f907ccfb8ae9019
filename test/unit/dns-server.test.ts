import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { parseCidr, parseIpv4, type Subnet } from '../../src/net/ipv4.js';
import { DnsCache } from '../../src/dns/cache.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { DnsServer } from '../../src/dns/server.js';
import { DgramUdpTransport } from '../../src/dns/udp-transport.js';
import { UpstreamClient } from '../../src/dns/upstream.js';
import { startFakeUpstream } from './support/fake-upstream.js';

/** dns-packet's decode, typed loosely enough for assertions (its own typings hide rcode and answer data). */
interface Decoded {
  id: number;
  flags: number;
  rcode: string;
  questions: { name: string; type: string }[];
  answers: { type: string; data: unknown }[];
  additionals: { type: string; flags?: number }[];
}
const decode = (buf: Buffer): Decoded => dnsPacket.decode(buf) as unknown as Decoded;

const LOOPBACK = parseCidr('127.0.0.1/8')!.subnet;

function makeQuery(name: string, type: string, id = 1234, opts: { edns?: number } = {}): Buffer {
  return dnsPacket.encode({
    id,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as 'A' }],
    additionals: opts.edns ? [{ name: '.', type: 'OPT', udpPayloadSize: opts.edns, flags: 0, options: [] } as never] : [],
  });
}

interface Harness {
  server: DnsServer;
  upstream: UpstreamClient;
  cache: DnsCache;
  udpPort: number;
  tcpPort: number;
}

async function startServer(upstreamPort: number, subnet: Subnet, extra: { tcpIdleMs?: number; maxTcpConnections?: number; budgetMs?: number } = {}): Promise<Harness> {
  const udp = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const tcp = net.createServer();
  await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
  const localNames = new LocalNames({ domain: 'vm.test', subnet: LOOPBACK, gatewayAddress: parseIpv4('127.0.0.1')! });
  localNames.setHost('web', parseIpv4('127.0.0.50')!, 'lease');
  const cache = new DnsCache({ maxEntries: 100 });
  const upstream = new UpstreamClient({
    servers: [{ address: '127.0.0.1', port: upstreamPort }], logger: silentLogger, timeoutMs: 150, budgetMs: extra.budgetMs ?? 1000,
  });
  const server = new DnsServer({
    udp: new DgramUdpTransport(udp), tcp, subnet, localNames, cache, upstream, domain: 'vm.test', logger: silentLogger,
    ...(extra.tcpIdleMs ? { tcpIdleMs: extra.tcpIdleMs } : {}),
    ...(extra.maxTcpConnections ? { maxTcpConnections: extra.maxTcpConnections } : {}),
  });
  server.start();
  return { server, upstream, cache, udpPort: (udp.address() as net.AddressInfo).port, tcpPort: (tcp.address() as net.AddressInfo).port };
}

/** Sends one datagram and waits for one reply (undefined after `waitMs`). */
async function askUdp(port: number, message: Buffer, waitMs = 2000): Promise<Buffer | undefined> {
  const socket = dgram.createSocket('udp4');
  try {
    return await new Promise<Buffer | undefined>((resolve) => {
      const timer = setTimeout(() => resolve(undefined), waitMs);
      socket.on('message', (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      socket.send(message, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

function frame(message: Buffer): Buffer {
  const framed = Buffer.alloc(2 + message.length);
  framed.writeUInt16BE(message.length, 0);
  message.copy(framed, 2);
  return framed;
}

/** Opens a TCP connection and collects length-framed replies until `count` arrived or the peer closed. */
function tcpSession(port: number): { socket: net.Socket; replies: (count: number) => Promise<{ messages: Buffer[]; closed: boolean }> } {
  const socket = net.connect(port, '127.0.0.1');
  let buffered = Buffer.alloc(0);
  const messages: Buffer[] = [];
  let closed = false;
  const waiters: (() => void)[] = [];
  const wake = (): void => waiters.splice(0).forEach((w) => w());
  socket.on('data', (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) {
      messages.push(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
      buffered = buffered.subarray(2 + buffered.readUInt16BE(0));
    }
    wake();
  });
  socket.on('error', () => {});
  socket.on('close', () => {
    closed = true;
    wake();
  });
  return {
    socket,
    replies: (count) =>
      new Promise((resolve) => {
        const check = (): void => {
          if (messages.length >= count || closed) resolve({ messages: [...messages], closed });
          else waiters.push(check);
        };
        check();
      }),
  };
}

describe('DnsServer', () => {
  let dir: string;
  let logFile: string;
  let fake: { port: number; child: ChildProcess };
  const harnesses: Harness[] = [];
  const children: ChildProcess[] = [];

  const upstreamLog = async (): Promise<string[]> => (await readFile(logFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
  const serve = async (...args: Parameters<typeof startServer>): Promise<Harness> => {
    const h = await startServer(...args);
    harnesses.push(h);
    return h;
  };

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'natd-dns-server-'));
    logFile = join(dir, 'queries.log');
    fake = await startFakeUpstream(logFile);
  });
  afterAll(async () => {
    fake.child.kill();
    for (const c of children) c.kill();
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    for (const h of harnesses.splice(0)) {
      await h.server.close();
      h.upstream.close();
    }
  });

  it('forwards a query and answers with the client\'s id', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const reply = decode((await askUdp(h.udpPort, makeQuery('www.example.test', 'A', 777)))!);
    expect(reply.id).toBe(777);
    expect(reply.answers![0]!.data).toMatch(/^203\.0\.113\.\d+$/);
    expect(h.server.stats()).toMatchObject({ queries: 1, udp: 1, forwarded: 1, cacheHits: 0 });
  });

  it('answers a repeated question from the cache: one upstream query for two client queries', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const first = decode((await askUdp(h.udpPort, makeQuery('cached.example.test', 'A', 1)))!);
    const second = decode((await askUdp(h.udpPort, makeQuery('CACHED.example.test', 'A', 2)))!);
    expect(second.id).toBe(2);
    expect(second.questions![0]!.name).toBe('CACHED.example.test'); // the client's own spelling comes back
    expect(second.answers![0]!.data).toBe(first.answers![0]!.data);
    expect((await upstreamLog()).filter((l) => l.toLowerCase() === 'udp cached.example.test a')).toHaveLength(1);
    expect(h.server.stats()).toMatchObject({ cacheHits: 1, forwarded: 1 });
  });

  it('coalesces identical questions in flight into one upstream query', async () => {
    const slowLog = join(dir, 'slow.log');
    const slow = await startFakeUpstream(slowLog, ['--delay-ms', '100']);
    children.push(slow.child);
    const h = await serve(slow.port, LOOPBACK);
    const replies = await Promise.all([1, 2, 3, 4, 5].map((id) => askUdp(h.udpPort, makeQuery('same.example.test', 'A', id))));
    expect(replies.map((r) => decode(r!).id)).toEqual([1, 2, 3, 4, 5]);
    expect((await readFile(slowLog, 'utf8')).trim().split('\n')).toEqual(['udp same.example.test A']);
    expect(h.server.stats()).toMatchObject({ forwarded: 1, coalesced: 4 });
  });

  it('answers local names itself and never forwards single labels or unknown local names', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const before = (await upstreamLog()).length;
    const web = decode((await askUdp(h.udpPort, makeQuery('web.vm.test', 'A')))!);
    expect(web.answers![0]!.data).toBe('127.0.0.50');
    expect(web.flags! & dnsPacket.AUTHORITATIVE_ANSWER).toBeTruthy();
    expect(decode((await askUdp(h.udpPort, makeQuery('nobody.vm.test', 'A')))!).rcode).toBe('NXDOMAIN');
    expect(decode((await askUdp(h.udpPort, makeQuery('intranet', 'A')))!).rcode).toBe('NXDOMAIN');
    expect(decode((await askUdp(h.udpPort, makeQuery('1.1.168.192.in-addr.arpa', 'PTR')))!).rcode).toBe('NXDOMAIN');
    expect((await upstreamLog()).length).toBe(before);
    expect(h.server.stats()).toMatchObject({ local: 4, forwarded: 0 });
  });

  it('refuses clients outside the subnet, over UDP and TCP, without asking upstream', async () => {
    const h = await serve(fake.port, parseCidr('10.99.0.1/24')!.subnet);
    const before = (await upstreamLog()).length;
    const reply = decode((await askUdp(h.udpPort, makeQuery('www.example.test', 'A', 55)))!);
    expect(reply.rcode).toBe('REFUSED');
    expect(reply.id).toBe(55);
    const session = tcpSession(h.tcpPort);
    session.socket.write(frame(makeQuery('www.example.test', 'A')));
    expect(await session.replies(1)).toEqual({ messages: [], closed: true });
    expect((await upstreamLog()).length).toBe(before);
    expect(h.server.stats().refused).toBe(2);
  });

  it('answers SERVFAIL when no upstream answers within the budget', async () => {
    const dead = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => dead.bind(0, '127.0.0.1', resolve));
    try {
      const h = await serve(dead.address().port, LOOPBACK, { budgetMs: 300 });
      const reply = decode((await askUdp(h.udpPort, makeQuery('down.example.test', 'A', 9)))!);
      expect(reply).toMatchObject({ id: 9, rcode: 'SERVFAIL' });
      expect(h.server.stats().servfail).toBe(1);
    } finally {
      dead.close();
    }
  });

  it('answers FORMERR to a malformed question and ignores responses (QR=1)', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const broken = makeQuery('www.example.test', 'A', 321).subarray(0, 20); // question cut short
    const formerr = decode((await askUdp(h.udpPort, broken))!);
    expect(formerr).toMatchObject({ id: 321, rcode: 'FORMERR' });

    const response = Buffer.from(makeQuery('www.example.test', 'A'));
    response[2] = response[2]! | 0x80;
    expect(await askUdp(h.udpPort, response, 300)).toBeUndefined();
    expect(h.server.stats()).toMatchObject({ formerr: 1, dropped: 1, forwarded: 0 });
  });

  it('sets TC when the answer exceeds the client\'s UDP limit, and gives it whole over TCP', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const udpReply = (await askUdp(h.udpPort, makeQuery('big.example.test', 'TXT')))!;
    expect(udpReply.length).toBeLessThanOrEqual(512);
    expect(decode(udpReply).flags! & dnsPacket.TRUNCATED_RESPONSE).toBeTruthy();

    const session = tcpSession(h.tcpPort);
    session.socket.write(frame(makeQuery('big.example.test', 'TXT', 4)));
    const { messages } = await session.replies(1);
    session.socket.destroy();
    expect(messages[0]!.length).toBeGreaterThan(3000);
    expect(decode(messages[0]!).flags! & dnsPacket.TRUNCATED_RESPONSE).toBe(0);
  });

  it('answers two pipelined queries on one TCP connection', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const session = tcpSession(h.tcpPort);
    // both frames in one write, the second split from its length prefix by nothing
    session.socket.write(Buffer.concat([frame(makeQuery('one.example.test', 'A', 11)), frame(makeQuery('web.vm.test', 'A', 12))]));
    const { messages, closed } = await session.replies(2);
    session.socket.destroy();
    expect(closed).toBe(false);
    const byId = new Map(messages.map((m) => decode(m)).map((d) => [d.id, d]));
    expect(byId.get(11)!.questions![0]!.name).toBe('one.example.test');
    expect(byId.get(12)!.answers![0]!.data).toBe('127.0.0.50');
    expect(h.server.stats()).toMatchObject({ tcp: 2, queries: 2 });
  });

  it('closes a TCP connection that sends garbage', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const short = tcpSession(h.tcpPort);
    short.socket.write(Buffer.from([0, 5, 1, 2, 3, 4, 5]));
    expect((await short.replies(1)).closed).toBe(true);

    const malformed = tcpSession(h.tcpPort);
    malformed.socket.write(frame(makeQuery('www.example.test', 'A', 99).subarray(0, 20)));
    malformed.socket.write(frame(makeQuery('www.example.test', 'A', 100))); // never answered: the peer is cut off
    const result = await malformed.replies(2);
    expect(result.closed).toBe(true);
    expect(result.messages.map((m) => decode(m))).toMatchObject([{ id: 99, rcode: 'FORMERR' }]);
  });

  it('cuts off a TCP client that stalls', async () => {
    const h = await serve(fake.port, LOOPBACK, { tcpIdleMs: 150 });
    const stalled = tcpSession(h.tcpPort);
    stalled.socket.write(Buffer.from([0, 40, 1, 2])); // half a frame, then nothing
    const started = performance.now();
    expect((await stalled.replies(1)).closed).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(100);
  });

  it('makes room for a new TCP connection by closing the oldest idle one', async () => {
    const h = await serve(fake.port, LOOPBACK, { maxTcpConnections: 2 });
    const a = tcpSession(h.tcpPort);
    await new Promise((r) => setTimeout(r, 30));
    const b = tcpSession(h.tcpPort);
    await new Promise((r) => setTimeout(r, 30));
    const c = tcpSession(h.tcpPort);
    c.socket.write(frame(makeQuery('web.vm.test', 'A', 3)));
    expect((await c.replies(1)).messages).toHaveLength(1);
    expect((await a.replies(1)).closed).toBe(true);
    b.socket.write(frame(makeQuery('web.vm.test', 'A', 4)));
    expect(await b.replies(1)).toMatchObject({ closed: false, messages: [expect.any(Buffer)] });
    b.socket.destroy();
    c.socket.destroy();
  });

  it('keeps answering after a flood of random datagrams', async () => {
    const h = await serve(fake.port, LOOPBACK);
    const socket = dgram.createSocket('udp4');
    // plain junk, and junk behind a plausible query header so it reaches the question and EDNS parsing
    const junk = fc.uint8Array({ minLength: 0, maxLength: 600, size: 'max' });
    const header = fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0x7fff }), fc.integer({ min: 0, max: 3 }), junk)
      .map(([id, flags, arcount, rest]) => {
        const buf = Buffer.alloc(12);
        buf.writeUInt16BE(id, 0);
        buf.writeUInt16BE(flags & ~0x7800, 2); // QR=0, opcode QUERY
        buf.writeUInt16BE(1, 4);
        buf.writeUInt16BE(arcount, 10);
        return Buffer.concat([buf, rest]);
      });
    const samples = fc.sample(fc.oneof(junk, header), 1000);
    for (let i = 0; i < samples.length; i += 100) {
      // in batches, so the kernel's receive queue does not simply drop most of them
      await Promise.all(samples.slice(i, i + 100).map((b) => new Promise<void>((resolve) => socket.send(b, h.udpPort, '127.0.0.1', () => resolve()))));
      await new Promise((r) => setTimeout(r, 5));
    }
    socket.close();
    let reply: Buffer | undefined;
    for (let attempt = 0; attempt < 3 && !reply; attempt++) reply = await askUdp(h.udpPort, makeQuery('web.vm.test', 'A', 5), 500);
    expect(decode(reply!).answers![0]!.data).toBe('127.0.0.50');
    const stats = h.server.stats();
    expect(stats.udp).toBeGreaterThan(500);
    // every message received got exactly one outcome
    expect(stats.dropped + stats.formerr + stats.refused + stats.notimp + stats.local + stats.forwarded + stats.cacheHits + stats.coalesced)
      .toBe(stats.queries);
  });
});
