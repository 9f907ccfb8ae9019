/**
 * The addon's batched UDP I/O (native/udp_batch.c) through BatchUdpTransport, and the DNS server on top of it.
 * Sockets are opened with the addon on 'lo' (127.0.0.1, random port), the way the daemon opens the bridge's.
 */
import dgram from 'node:dgram';
import { closeSync, fstatSync, openSync, readFileSync, readlinkSync } from 'node:fs';
import type net from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4.js';
import { cacheKey, DnsCache } from '../../src/dns/cache.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { parseQuery } from '../../src/dns/query.js';
import { DnsServer } from '../../src/dns/server.js';
import { UpstreamClient } from '../../src/dns/upstream.js';
import { BatchUdpTransport, type UdpHandlers } from '../../src/dns/udp-transport.js';
import type { ClientAddress } from '../../src/dns/client-address.js';
import * as native from '../../src/native.js';

const LOOPBACK = parseCidr('127.0.0.1/8')!.subnet;
const LOCALHOST = parseIpv4('127.0.0.1')!;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A transport on an addon-opened socket on lo, and its port. */
function batchTransport(): { transport: BatchUdpTransport; fd: number; port: number } {
  const fd = native.openDeviceUdpSocket('lo', '127.0.0.1', 0);
  const transport = new BatchUdpTransport(fd);
  cleanups.push(() => transport.close());
  return { transport, fd, port: portOf(fd) };
}

/** The local port of an fd, from /proc/self/net/udp (the addon has no getsockname). */
function portOf(fd: number): number {
  const inode = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  const lines = readFileSync('/proc/self/net/udp', 'utf8').split('\n').slice(1);
  for (const line of lines) {
    const cols = line.trim().split(/\s+/);
    if (cols[9] === inode) return parseInt(cols[1]!.split(':')[1]!, 16);
  }
  throw new Error(`no UDP socket with inode ${inode}`);
}

async function client(): Promise<{ socket: dgram.Socket; port: number; received: Buffer[]; waitFor: (n: number) => Promise<void> }> {
  const socket = dgram.createSocket('udp4');
  cleanups.push(() => new Promise<void>((resolve) => socket.close(() => resolve())));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const received: Buffer[] = [];
  let waiter: (() => void) | undefined;
  let want = 0;
  socket.on('message', (msg) => {
    received.push(msg);
    if (waiter && received.length >= want) waiter();
  });
  const waitFor = (n: number): Promise<void> =>
    received.length >= n ? Promise.resolve() : new Promise((resolve) => ((want = n), (waiter = resolve)));
  return { socket, port: (socket.address() as net.AddressInfo).port, received, waitFor };
}

function echoHandlers(transport: BatchUdpTransport, seen: { address: number; port: number }[]): UdpHandlers & { drops: number; warnings: string[] } {
  const h = {
    drops: 0,
    warnings: [] as string[],
    message: (msg: Buffer, address: number, port: number) => {
      seen.push({ address, port });
      transport.reply(Buffer.concat([Buffer.from('re:'), msg]), address, port);
    },
    dropped: () => void h.drops++,
    warn: (_what: string, detail: string) => void h.warnings.push(detail),
  };
  return h;
}

const send = (socket: dgram.Socket, msg: Buffer | string, port: number): Promise<void> =>
  new Promise((resolve, reject) => socket.send(msg, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())));

describe('BatchUdpTransport', () => {
  it('delivers every queued datagram with its source, in batches, and sends the replies together', async () => {
    const { transport, port } = batchTransport();
    const peer = await client();
    // queued in the socket before reading starts, so the first recvmmsg() finds a full batch
    for (let i = 0; i < 150; i++) await send(peer.socket, `q${i}`, port);
    const sendBatch = vi.spyOn(native.udpBatch, 'send');
    const seen: { address: number; port: number }[] = [];
    transport.start(echoHandlers(transport, seen));
    await peer.waitFor(150);

    expect(peer.received.map(String).sort()).toEqual(Array.from({ length: 150 }, (_, i) => `re:q${i}`).sort());
    expect(seen).toHaveLength(150);
    expect(seen.every((s) => s.address === LOCALHOST && s.port === peer.port)).toBe(true);
    // 150 = 64 + 64 + 22: three sendmmsg() calls, not 150 sends
    expect(sendBatch.mock.calls.map((call) => call[3])).toEqual([64, 64, 22]);
  });

  it('sends a reply given outside a batch at once', async () => {
    const { transport, port } = batchTransport();
    const peer = await client();
    const later: { address: ClientAddress; port: number }[] = [];
    transport.start({
      message: (_msg, address, p) => void later.push({ address, port: p }),
      dropped: () => {},
      warn: () => {},
    });
    await send(peer.socket, 'hello', port);
    await vi.waitFor(() => expect(later).toHaveLength(1), { timeout: 5000 }); // vitest's default 1 s is short for a loaded machine
    transport.reply(Buffer.from('late answer'), later[0]!.address, later[0]!.port);
    await peer.waitFor(1);
    expect(String(peer.received[0])).toBe('late answer');
  });

  it('sends the replies given outside a batch in one tick with one sendmmsg (issue 18: the ACKs of one group commit)', async () => {
    const { transport, port } = batchTransport();
    const peer = await client();
    const later: { address: ClientAddress; port: number }[] = [];
    transport.start({ message: (_msg, address, p) => void later.push({ address, port: p }), dropped: () => {}, warn: () => {} });
    await send(peer.socket, 'hello', port);
    await vi.waitFor(() => expect(later).toHaveLength(1), { timeout: 5000 }); // vitest's default 1 s is short for a loaded machine
    const sendBatch = vi.spyOn(native.udpBatch, 'send');
    // as a group commit's callback releases its ACKs: several promise chains settle in the same microtask run
    const released = Promise.resolve();
    for (let i = 0; i < 5; i++) void released.then(() => transport.reply(Buffer.from(`ack ${i}`), later[0]!.address, later[0]!.port));
    await peer.waitFor(5);
    expect(peer.received.map(String)).toEqual(['ack 0', 'ack 1', 'ack 2', 'ack 3', 'ack 4']);
    expect(sendBatch.mock.calls.map((call) => call[3])).toEqual([5]);
  });

  it('drops a datagram larger than a receive slot and carries on', async () => {
    const { transport, port } = batchTransport();
    const peer = await client();
    const handlers = echoHandlers(transport, []);
    transport.start(handlers);
    await send(peer.socket, Buffer.alloc(5000, 1), port);
    await send(peer.socket, 'small', port);
    await peer.waitFor(1);
    expect(handlers.drops).toBe(1);
    expect(peer.received.map(String)).toEqual(['re:small']);
  });

  it('skips a datagram the kernel refuses, reports it, and still sends the rest', async () => {
    const { transport, fd, port } = batchTransport();
    const peer = await client();
    transport.start(echoHandlers(transport, []));
    const result = native.udpBatch.send(fd, [Buffer.alloc(70_000), Buffer.from('fits')], new Uint32Array([LOCALHOST, peer.port, LOCALHOST, peer.port]), 2);
    expect(result).toEqual({ failed: 1, errno: expect.any(Number) });
    await peer.waitFor(1);
    expect(peer.received.map(String)).toEqual(['fits']);
    expect(port).toBeGreaterThan(0);
  });

  it('throws when the descriptor is no socket (EBADF/ENOTSOCK end the batch: nothing else could go)', () => {
    const notSocket = openSync('/dev/null', 'r');
    try {
      expect(() => native.udpBatch.send(notSocket, [Buffer.from('a'), Buffer.from('b')], new Uint32Array([LOCALHOST, 53, LOCALHOST, 53]), 2))
        .toThrow(expect.objectContaining({ code: 'ENOTSOCK' }));
    } finally {
      closeSync(notSocket);
    }
  });

  it('close() stops reading and closes the socket; closing twice is harmless', async () => {
    const { transport, fd } = batchTransport();
    transport.start(echoHandlers(transport, []));
    expect(() => fstatSync(fd)).not.toThrow();
    await transport.close();
    await transport.close();
    expect(() => fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('rejects bad arguments with a TypeError', () => {
    const addon = native.loadNative();
    expect(() => addon.udpSendBatch(0, [Buffer.alloc(1)], new Uint32Array(2), 2)).toThrow(TypeError);
    expect(() => addon.udpSendBatch(0, ['x' as unknown as Buffer], new Uint32Array([LOCALHOST, 53]), 1)).toThrow(TypeError);
    // port 0 (a spoofed source) is not a bad argument: that datagram is skipped and counted, the batch goes on
    expect(addon.udpSendBatch(0, [Buffer.alloc(1)], new Uint32Array([LOCALHOST, 0]), 1)).toEqual({ failed: 1, errno: 22 });
    expect(() => addon.udpReceiverStart(0, Buffer.alloc(4), new Uint32Array(3), 64, () => {})).toThrow(TypeError);
    expect(() => addon.udpReceiverStart(0, Buffer.alloc(64), new Uint32Array(3), 64, 'nope' as unknown as () => void)).toThrow(TypeError);
  });
});

describe('DnsServer on the batch transport', () => {
  it('answers local names and cache hits, each with its own id', async () => {
    const { transport, port } = batchTransport();
    const localNames = new LocalNames({ domain: 'vm.test', subnet: LOOPBACK, gatewayAddress: LOCALHOST });
    localNames.setHost('web', parseIpv4('127.0.0.50')!, 'lease');
    const cache = new DnsCache({ maxEntries: 10 });
    // port 9 (discard): nothing here may go upstream
    const upstream = new UpstreamClient({ servers: [{ address: '127.0.0.1', port: 9 }], logger: silentLogger, timeoutMs: 100, budgetMs: 200 });
    const server = new DnsServer({ udp: transport, subnet: LOOPBACK, localNames, cache, upstream, domain: 'vm.test', logger: silentLogger });
    cleanups.push(() => server.close());
    server.start();

    const question = (name: string, id: number): Buffer =>
      dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
    const cachedQuery = question('cached.example.test', 777);
    const parsed = parseQuery(cachedQuery);
    if (!parsed.ok) throw new Error('test query did not parse');
    cache.store(
      cacheKey(parsed.query),
      dnsPacket.encode({
        id: 1, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: [{ name: 'cached.example.test', type: 'A' }],
        answers: [{ name: 'cached.example.test', type: 'A', ttl: 300, data: '192.0.2.9' }],
      }),
    );

    const peer = await client();
    await send(peer.socket, question('web.vm.test', 4321), port);
    await send(peer.socket, cachedQuery, port);
    await peer.waitFor(2);
    const answers = peer.received.map((m) => dnsPacket.decode(m)).sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
    const addresses = (p: dnsPacket.Packet): unknown[] => (p.answers ?? []).map((a) => (a as { data?: unknown }).data);
    expect(answers.map((a) => a.id)).toEqual([777, 4321]);
    expect(addresses(answers[0]!)).toEqual(['192.0.2.9']);
    expect(addresses(answers[1]!)).toEqual(['127.0.0.50']);
    expect(server.stats()).toMatchObject({ udp: 2, cacheHits: 1, local: 1 });
  });
});
