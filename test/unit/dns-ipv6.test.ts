/**
 * issue 14: natd's DNS over IPv6 below the daemon: the addon's batched UDP on an IPv6 socket (udp6-transport.ts, on
 * lo ::1 as the daemon opens the bridge's IPv6 gateway), and the server's rule for IPv6 sources (the served /64 and
 * link-local answered, anything else REFUSED, special space never answered), with a transport the test drives.
 */
import dgram from 'node:dgram';
import { readFileSync, readlinkSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4.js';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { DnsCache } from '../../src/dns/cache.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { DnsServer } from '../../src/dns/server.js';
import type { UpstreamClient } from '../../src/dns/upstream.js';
import { BatchUdp6Transport } from '../../src/dns/udp6-transport.js';
import type { DnsUdpTransport, UdpHandlers } from '../../src/dns/udp-transport.js';
import { v6ClientFromBytes, type ClientAddress } from '../../src/dns/client-address.js';
import * as native from '../../src/native.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  vi.restoreAllMocks();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function portOf6(fd: number): number {
  const inode = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  for (const line of readFileSync('/proc/self/net/udp6', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[9] === inode) return parseInt(cols[1]!.split(':')[1]!, 16);
  }
  throw new Error(`no UDP6 socket with inode ${inode}`);
}

const key = (text: string): string => v6ClientFromBytes(parseIpv6(text)!);

/** A batch transport on ::1 and a client socket on ::1 (both closed after the test). */
async function transportAndPeer(): Promise<{ transport: BatchUdp6Transport; port: number; peer: dgram.Socket }> {
  const fd = native.openDeviceUdpSocket('lo', '::1', 0);
  const transport = new BatchUdp6Transport(fd);
  cleanups.push(() => transport.close());
  const peer = dgram.createSocket('udp6');
  cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
  await new Promise<void>((r) => peer.bind(0, '::1', r));
  return { transport, port: portOf6(fd), peer };
}

describe('BatchUdp6Transport', () => {
  it('delivers datagrams with their IPv6 source and sends the answers back in batches', async () => {
    const { transport, port, peer } = await transportAndPeer();
    const received: string[] = [];
    const all = new Promise<void>((resolve) => peer.on('message', (m) => received.push(String(m)) >= 100 && resolve()));
    for (let i = 0; i < 100; i++) await new Promise<void>((r, j) => peer.send(`q${i}`, port, '::1', (e) => (e ? j(e) : r())));
    const sendBatch = vi.spyOn(native.udpBatch, 'send6');
    const seen: { address: ClientAddress; port: number }[] = [];
    const handlers: UdpHandlers = {
      message: (msg, address, p) => {
        seen.push({ address, port: p });
        transport.reply(Buffer.concat([Buffer.from('re:'), msg]), address, p);
      },
      dropped: () => {},
      warn: () => {},
    };
    transport.start(handlers);
    await all;
    expect(received.sort()).toEqual(Array.from({ length: 100 }, (_, i) => `re:q${i}`).sort());
    expect(seen.every((s) => s.address === key('::1') && s.port === peer.address().port)).toBe(true);
    expect(sendBatch.mock.calls.map((c) => c[3])).toEqual([64, 36]);
    // an IPv4 client or a malformed key is never sent to from an IPv6 socket
    transport.reply(Buffer.from('x'), parseIpv4('127.0.0.1')!, 53);
    transport.reply(Buffer.from('x'), 'nothex', 53);
    expect(sendBatch).toHaveBeenCalledTimes(2);
  });

  it('sends the answers given outside a batch together, in one sendmmsg (the DHCPv6 Replies one journal sync releases)', async () => {
    const { transport, port, peer } = await transportAndPeer();
    const received: string[] = [];
    const five = new Promise<void>((resolve) => peer.on('message', (m) => received.push(String(m)) >= 5 && resolve()));
    const later: { address: ClientAddress; port: number }[] = [];
    transport.start({ message: (_msg, address, p) => void later.push({ address, port: p }), dropped: () => {}, warn: () => {} });
    await new Promise<void>((r, j) => peer.send('hello', port, '::1', (e) => (e ? j(e) : r())));
    await vi.waitFor(() => expect(later).toHaveLength(1), { timeout: 5000 }); // vitest's default 1 s is short for a loaded machine
    const sendBatch = vi.spyOn(native.udpBatch, 'send6');
    const released = Promise.resolve();
    for (let i = 0; i < 5; i++) void released.then(() => transport.reply(Buffer.from(`reply ${i}`), later[0]!.address, later[0]!.port));
    await five;
    expect(received).toEqual(['reply 0', 'reply 1', 'reply 2', 'reply 3', 'reply 4']);
    expect(sendBatch.mock.calls.map((c) => c[3])).toEqual([5]);
  });

  it('answers interleaved clients at their own address and port', async () => {
    const fd = native.openDeviceUdpSocket('lo', '::1', 0);
    const transport = new BatchUdp6Transport(fd);
    cleanups.push(() => transport.close());
    const port = portOf6(fd);
    const peers = await Promise.all([0, 1].map(async () => {
      const peer = dgram.createSocket('udp6');
      cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
      await new Promise<void>((r) => peer.bind(0, '::1', r));
      const got: string[] = [];
      peer.on('message', (m) => got.push(String(m)));
      return { peer, got };
    }));
    for (let i = 0; i < 40; i++) {
      const { peer } = peers[i % 2]!;
      await new Promise<void>((r, j) => peer.send(`${i % 2}:${i}`, port, '::1', (e) => (e ? j(e) : r())));
    }
    transport.start({ message: (msg, address, p) => transport.reply(Buffer.from(`re ${String(msg)}`), address, p), dropped: () => {}, warn: () => {} });
    await vi.waitFor(() => expect(peers[0]!.got.length + peers[1]!.got.length).toBe(40), { timeout: 5000 });
    for (const [n, { got }] of peers.entries()) expect(got.every((m) => m.startsWith(`re ${n}:`)), got.join()).toBe(true);
    // the remembered last client never leaks into an answer to another address
    const metas: number[][] = [];
    vi.spyOn(native.udpBatch, 'send6').mockImplementation((_fd, _d, meta, count) => void metas.push([...meta.subarray(0, 5 * count)]));
    transport.reply(Buffer.from('a'), key('fd00:77::5'), 1000);
    transport.reply(Buffer.from('b'), key('::1'), 1001);
    transport.reply(Buffer.from('c'), key('fd00:77::6'), 1002);
    await Promise.resolve(); // answers outside a receive batch leave together at the end of the microtask run
    expect(metas).toEqual([[0xfd000077, 0, 0, 5, 1000, 0, 0, 0, 1, 1001, 0xfd000077, 0, 0, 6, 1002]]);
  });

  it('refuses options that are IPv4-only on an IPv6 socket, and bad addresses', () => {
    expect(() => native.openDeviceUdpSocket('lo', '::1', 0, true)).toThrow(/IPv4/);
    expect(() => native.openDeviceUdpSocket('lo', '::1', 0, false, true)).toThrow(/IPv4/);
    expect(() => native.openDeviceUdpSocket('lo', 'not-an-address', 0)).toThrow(/IPv4 or IPv6/);
  });
});

class FakeUdp implements DnsUdpTransport {
  private handlers: UdpHandlers | undefined;
  readonly sent: { message: Buffer; address: ClientAddress }[] = [];
  start(handlers: UdpHandlers): void {
    this.handlers = handlers;
  }
  reply(message: Buffer, address: ClientAddress): void {
    this.sent.push({ message: Buffer.from(message), address });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  receive(message: Buffer, address: ClientAddress, port = 5353): void {
    this.handlers!.message(message, address, port);
  }
}

describe('DnsServer with IPv6 clients', () => {
  const subnet = parseCidr('10.77.0.1/24')!.subnet;
  function server() {
    const udp = new FakeUdp();
    const s = new DnsServer({
      udp, subnet, ipv6Network: parseIpv6('fd00:77::')!,
      localNames: new LocalNames({ domain: 'vm', subnet, gatewayAddress: parseIpv4('10.77.0.1')! }),
      cache: new DnsCache(), upstream: { query: () => new Promise(() => {}) } as unknown as UpstreamClient, domain: 'vm', logger: silentLogger,
    });
    s.start();
    return { s, udp };
  }
  const query = (id: number) => Buffer.from(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'gateway.vm' }] }));

  it('answers the /64 and link-local, refuses other IPv6 sources, never answers special space', () => {
    const { s, udp } = server();
    udp.receive(query(1), key('fd00:77::5'));
    udp.receive(query(2), key('fe80::5'));
    udp.receive(query(3), key('2001:db8::5'));
    udp.receive(query(4), key('fd00:78::5'));
    for (const special of ['::', '::1', 'ff02::1', '::ffff:10.77.0.5']) udp.receive(query(9), key(special));
    udp.receive(query(5), key('fd00:77::6'), 0);
    const answers = udp.sent.map((x) => ({ ...(dnsPacket.decode(x.message) as unknown as { id: number; rcode: string; answers?: { type: string; data: unknown }[] }), address: x.address }));
    expect(answers.map((a) => [a.id, a.rcode, a.address])).toEqual([
      [1, 'NOERROR', key('fd00:77::5')],
      [2, 'NOERROR', key('fe80::5')],
      [3, 'REFUSED', key('2001:db8::5')],
      [4, 'REFUSED', key('fd00:78::5')],
    ]);
    expect(answers[0]!.answers?.[0]).toMatchObject({ type: 'A', data: '10.77.0.1' });
    expect(s.stats()).toMatchObject({ refused: 2, badSource: 5 });
  });
});

describe('RDNSS and DNSSL in natd\'s RA (RFC 8106)', () => {
  it('name the IPv6 gateway and the search domains with lifetime 1800, and 0 in the final advertisement', async () => {
    const { advertisementFor } = await import('../../src/ipv6/service.js');
    const { parseRouterAdvertisement } = await import('../../src/ipv6/ra.js');
    const { servedIpv6 } = await import('../../src/ipv6/settings.js');
    const served = servedIpv6({ mode: 'subnet', cidr: 'fd00:77::1/64' }, 'br0', undefined);
    const ra = parseRouterAdvertisement(advertisementFor(served, { mac: '52:54:00:77:00:01', mtu: 1500, dnsServer: served.gateway, domains: ['vm', 'lab.example'] }, false))!;
    expect(ra.rdnss).toEqual({ servers: [served.gateway], lifetime: 1800 });
    expect(ra.dnssl).toEqual({ domains: ['vm', 'lab.example'], lifetime: 1800 });
    const last = parseRouterAdvertisement(advertisementFor(served, { mac: '52:54:00:77:00:01', mtu: 1500, dnsServer: served.gateway, domains: ['vm'] }, true))!;
    expect([last.rdnss?.lifetime, last.dnssl?.lifetime, last.routerLifetime]).toEqual([0, 0, 0]);
    const none = parseRouterAdvertisement(advertisementFor(served, { mac: '52:54:00:77:00:01', mtu: 1500, domains: ['vm'] }, false))!;
    expect([none.rdnss, none.dnssl]).toEqual([undefined, undefined]);
  });
});

describe('resolv.conf never makes natd its own upstream over IPv6', () => {
  it('skips the IPv6 gateway in any spelling, keeps the rest', async () => {
    const { upstreamsFromResolvConf } = await import('../../src/daemon/upstreams.js');
    expect(upstreamsFromResolvConf(['10.77.0.1', 'FD00:77:0::1', '2001:db8::53', '9.9.9.9'], ['10.77.0.1', 'fd00:77::1'])).toEqual([{ address: '2001:db8::53' }, { address: '9.9.9.9' }]);
    expect(upstreamsFromResolvConf(['10.77.0.1', '127.0.0.2', '1.1.1.1'], '10.77.0.1', ['127.0.0.2'])).toEqual([{ address: '1.1.1.1' }]);
  });
});
