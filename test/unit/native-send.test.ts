/**
 * The addon's sendTo and the DNS server's answer path through it. Sockets are opened with the addon on 'lo'
 * (127.0.0.1, random port), the way the daemon opens the bridge's DNS socket.
 */
import dgram from 'node:dgram';
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
import * as native from '../../src/native.js';

// The server's sendto can be made to report a full send buffer (EAGAIN) to exercise its dgram fallback.
const control = vi.hoisted(() => ({ sendBufferFull: false }));
vi.mock('../../src/native.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../src/native.js')>();
  return {
    ...actual,
    sendUdpDatagram: (...args: Parameters<typeof actual.sendUdpDatagram>) =>
      control.sendBufferFull ? false : actual.sendUdpDatagram(...args),
  };
});

const LOOPBACK = parseCidr('127.0.0.1/8')!.subnet;
const LOCALHOST = parseIpv4('127.0.0.1')!;

const sockets: dgram.Socket[] = [];
const servers: DnsServer[] = [];
afterEach(async () => {
  control.sendBufferFull = false;
  await Promise.all(servers.splice(0).map((s) => s.close()));
  for (const s of sockets.splice(0)) {
    try {
      s.close();
    } catch {
      /* closed by its server */
    }
  }
});

/** A dgram socket adopting an addon-opened fd on lo, as the daemon does for the bridge. */
async function addonSocket(): Promise<{ socket: dgram.Socket; fd: number; port: number }> {
  const fd = native.openDeviceUdpSocket('lo', '127.0.0.1', 0);
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind({ fd }, resolve));
  return { socket, fd, port: (socket.address() as net.AddressInfo).port };
}

async function receiver(): Promise<{ socket: dgram.Socket; port: number; next: () => Promise<{ msg: Buffer; rinfo: dgram.RemoteInfo }> }> {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const next = (): Promise<{ msg: Buffer; rinfo: dgram.RemoteInfo }> =>
    new Promise((resolve) => socket.once('message', (msg, rinfo) => resolve({ msg, rinfo })));
  return { socket, port: (socket.address() as net.AddressInfo).port, next };
}

describe('sendUdpDatagram', () => {
  it('sends the whole buffer from the given socket to the given address and port', async () => {
    const from = await addonSocket();
    const to = await receiver();
    const arrived = to.next();
    const payload = Buffer.from([1, 2, 3, 250, 0, 7]);
    expect(native.sendUdpDatagram(from.fd, payload, LOCALHOST, to.port)).toBe(true);
    const { msg, rinfo } = await arrived;
    expect([...msg]).toEqual([...payload]);
    expect(rinfo.port).toBe(from.port);
    expect(rinfo.address).toBe('127.0.0.1');
  });

  it('sends a view of a larger buffer as just that view', async () => {
    const from = await addonSocket();
    const to = await receiver();
    const arrived = to.next();
    const backing = Buffer.from('xxhelloyy');
    expect(native.sendUdpDatagram(from.fd, backing.subarray(2, 7), LOCALHOST, to.port)).toBe(true);
    expect((await arrived).msg.toString()).toBe('hello');
  });

  it('throws an errno-coded error for a descriptor that is not an open socket', () => {
    const closedFd = native.openDeviceUdpSocket('lo', '127.0.0.1', 0);
    const socket = dgram.createSocket('udp4');
    // adopt and close, so the number is no longer an open descriptor of ours
    return new Promise<void>((resolve) => socket.bind({ fd: closedFd }, resolve)).then(
      () =>
        new Promise<void>((resolve) =>
          socket.close(() => {
            expect(() => native.sendUdpDatagram(closedFd, Buffer.from([1]), LOCALHOST, 9)).toThrow(
              expect.objectContaining({ code: 'EBADF', syscall: 'sendto' }),
            );
            resolve();
          }),
        ),
    );
  });

  it('rejects arguments outside their ranges with a TypeError', () => {
    expect(() => native.loadNative().sendTo(0, Buffer.alloc(4), 2, 3, LOCALHOST, 53)).toThrow(TypeError);
    expect(() => native.loadNative().sendTo(0, Buffer.alloc(4), 0, 4, LOCALHOST, 0)).toThrow(TypeError);
    expect(() => native.loadNative().sendTo(-1, Buffer.alloc(4), 0, 4, LOCALHOST, 53)).toThrow(TypeError);
  });
});

describe('DnsServer answering through the addon', () => {
  async function serveOnAddonSocket(): Promise<{ port: number; udp: dgram.Socket; cache: DnsCache }> {
    const { socket: udp, fd, port } = await addonSocket();
    const localNames = new LocalNames({ domain: 'vm.test', subnet: LOOPBACK, gatewayAddress: LOCALHOST });
    localNames.setHost('web', parseIpv4('127.0.0.50')!, 'lease');
    const cache = new DnsCache({ maxEntries: 10 });
    // port 9 (discard): nothing here may go upstream
    const upstream = new UpstreamClient({ servers: [{ address: '127.0.0.1', port: 9 }], logger: silentLogger, timeoutMs: 100, budgetMs: 200 });
    const server = new DnsServer({ udp, udpFd: fd, subnet: LOOPBACK, localNames, cache, upstream, domain: 'vm.test', logger: silentLogger });
    servers.push(server);
    server.start();
    return { port, udp, cache };
  }

  const query = (name: string, id: number): Buffer =>
    dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });

  /** The A records' addresses (dns-packet's Answer type hides `data` behind a union). */
  const addresses = (packet: dnsPacket.Packet): unknown[] => (packet.answers ?? []).map((a) => (a as { data?: unknown }).data);

  async function ask(port: number, message: Buffer): Promise<dnsPacket.Packet> {
    const client = await receiver();
    const arrived = client.next();
    client.socket.send(message, port, '127.0.0.1');
    return dnsPacket.decode((await arrived).msg);
  }

  it('answers local names and cache hits with sendto, not dgram.send', async () => {
    const { port, udp, cache } = await serveOnAddonSocket();
    const dgramSend = vi.spyOn(udp, 'send');

    const local = await ask(port, query('web.vm.test', 4321));
    expect(local.id).toBe(4321);
    expect(addresses(local)).toEqual(['127.0.0.50']);

    const cachedQuery = query('cached.example.test', 777);
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
    const hit = await ask(port, cachedQuery);
    expect(hit.id).toBe(777);
    expect(addresses(hit)).toEqual(['192.0.2.9']);

    expect(dgramSend).not.toHaveBeenCalled();
  });

  it('falls back to dgram.send when the socket buffer is full, so the answer is not lost', async () => {
    const { port, udp } = await serveOnAddonSocket();
    const dgramSend = vi.spyOn(udp, 'send');
    control.sendBufferFull = true;
    const answer = await ask(port, query('web.vm.test', 99));
    expect(answer.id).toBe(99);
    expect(addresses(answer)).toEqual(['127.0.0.50']);
    expect(dgramSend).toHaveBeenCalledTimes(1);
  });
});
