/**
 * issue 18: the DHCP transport over a batched port (BatchUdpTransport in the daemon): a request arrives as a view of a
 * receive slab the next batch overwrites. A DISCOVER held for its conflict probe outlives its batch, so what the
 * transport keeps must be copies: the OFFER sent after the probe answers the DISCOVER that was held, not whatever
 * the slab holds by then. Replies go out through the port with the address as a number (broadcast 255.255.255.255).
 */
import dgram from 'node:dgram';
import { fstatSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import type { DurableReply } from '../../src/dhcp/lease-store.js';
import { BatchUdpTransport } from '../../src/dns/udp-transport.js';
import { openDeviceUdpSocket } from '../../src/native.js';
import { waitFor } from '../support/wait.js';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket } from '../../src/dhcp/codec.js';
import type { ProbeVerdict } from '../../src/dhcp/probe.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import { DhcpTransport } from '../../src/dhcp/transport.js';
import { DhcpOption, type LeaseChange } from '../../src/dhcp/types.js';
import type { UdpHandlers, UdpPort } from '../../src/dns/udp-transport.js';
import { formatMac, makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { recordingLogger } from '../support/recording-logger.js';

const ip = (s: string) => parseIpv4(s)!;
const SERVER = ip('10.10.0.1');

/** Delivers datagrams as views of one slab, as the addon's receiver does; keeps what is sent. */
class SlabPort implements UdpPort {
  readonly slab = Buffer.alloc(2048);
  readonly sent: { bytes: Buffer; address: number; port: number }[] = [];
  private handlers: UdpHandlers | undefined;
  start(handlers: UdpHandlers): void {
    this.handlers = handlers;
  }
  deliver(datagram: Buffer): void {
    datagram.copy(this.slab, 0);
    this.handlers!.message(this.slab.subarray(0, datagram.length), 0, 68);
    this.slab.fill(0xee); // the next batch lands here
  }
  reply(message: Buffer, address: number, port: number): void {
    this.sent.push({ bytes: Buffer.from(message), address, port });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function discover(n: number): Buffer {
  const packet = emptyPacket(1);
  packet.xid = 0x1000 + n;
  packet.flags = 0x8000;
  packet.chaddr.set([0x52, 0x54, 0, 0, 0, n]);
  packet.options = new Map([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(1)], [DhcpOption.HOSTNAME, Buffer.from(`vm${n}`)]]);
  return encodeDhcpPacket(packet);
}

describe('DhcpTransport over a batched port (issue 18)', () => {
  it('answers a DISCOVER held for its probe from its own copy, though the receive slab was overwritten meanwhile', async () => {
    const core = new DhcpServerCore(
      { serverAddress: SERVER, subnet: makeSubnet(SERVER, 24), router: SERVER, dnsServers: [], leaseTimeSeconds: 3600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199') },
      [],
      { conflictVerdict: () => undefined }, // no remembered verdict: every offer waits for a probe
    );
    const verdicts: ((v: ProbeVerdict) => void)[] = [];
    const port = new SlabPort();
    const transport = new DhcpTransport({
      socket: port, bridge: 'br0', core, logger: recordingLogger(), commit: async () => undefined, setNeighbour: () => undefined,
      conflicts: {
        check: () => new Promise<ProbeVerdict>((resolve) => verdicts.push(resolve)),
        stats: () => ({ probes: 0, inUse: 0, skipped: 0, busy: 0, errors: 0, running: 0, queued: 0 }),
      } as never,
    });
    transport.start();
    port.deliver(discover(1));
    port.deliver(discover(2));
    expect(verdicts).toHaveLength(2);
    expect(port.sent).toEqual([]);
    for (const resolve of verdicts) resolve('free');
    await new Promise((resolve) => setImmediate(resolve));
    const offers = port.sent.map((s) => ({ to: s.address, port: s.port, packet: decodeDhcpPacket(s.bytes) }));
    expect(offers.map((o) => ({ to: o.to, port: o.port, xid: o.packet.xid, mac: formatMac(o.packet.chaddr, 0, 6) }))).toEqual([
      { to: 0xffff_ffff, port: 68, xid: 0x1001, mac: '52:54:00:00:00:01' },
      { to: 0xffff_ffff, port: 68, xid: 0x1002, mac: '52:54:00:00:00:02' },
    ]);
    expect(transport.stats().sent).toEqual({ offer: 2 });
  });

  it('counts the replies the port could not send', () => {
    const core = new DhcpServerCore(
      { serverAddress: SERVER, subnet: makeSubnet(SERVER, 24), router: SERVER, dnsServers: [], leaseTimeSeconds: 3600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199') },
      [],
    );
    const port = new SlabPort();
    let handlers: UdpHandlers | undefined;
    port.start = (h) => {
      handlers = h;
      SlabPort.prototype.start.call(port, h);
    };
    port.reply = () => handlers!.sendFailed!(1); // the kernel refused it
    const transport = new DhcpTransport({ socket: port, bridge: 'br0', core, logger: recordingLogger(), commit: async () => undefined, setNeighbour: () => undefined });
    transport.start();
    port.deliver(discover(3));
    expect(transport.stats().sendFailures).toBe(1);
  });
});

// issue 18: on the batched port the ACK is encoded before the commit and handed to it with the port's socket: the
// lease journal's writer thread sends it after the fdatasync, and the transport only counts; the socket stays open
// until every commit carrying an ACK has settled
describe('DhcpTransport ACKs sent by the journal writer (issue 18)', () => {
  function request(n: number): Buffer {
    const packet = emptyPacket(1);
    packet.xid = 0x2000 + n;
    packet.flags = 0x8000;
    packet.chaddr.set([0x52, 0x54, 0, 0, 1, n]);
    packet.options = new Map([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(3)], [DhcpOption.REQUESTED_ADDRESS, Uint8Array.of(10, 10, 0, 100 + n)],
      [DhcpOption.SERVER_ID, Uint8Array.of(10, 10, 0, 1)]]);
    return encodeDhcpPacket(packet);
  }

  it('hands the encoded ACK and the socket to the commit, counts it when the writer sent it, and closes the socket after', async () => {
    const core = new DhcpServerCore(
      { serverAddress: SERVER, subnet: makeSubnet(SERVER, 24), router: SERVER, dnsServers: [], leaseTimeSeconds: 3600, rangeStart: ip('10.10.0.100'), rangeEnd: ip('10.10.0.199') },
      [],
    );
    const fd = openDeviceUdpSocket('lo', '127.0.0.1', 0);
    const port = new BatchUdpTransport(fd, 'DHCP');
    const commits: { changes: LeaseChange[]; reply: DurableReply | undefined; settle: (sent: number) => void }[] = [];
    const transport = new DhcpTransport({
      socket: port, bridge: 'lo', core, logger: recordingLogger(), setNeighbour: () => undefined,
      commit: (changes, reply) => new Promise<number>((settle) => commits.push({ changes, reply, settle })),
    });
    transport.start();
    const client = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => client.bind(0, '127.0.0.1', resolve));
    try {
      const to = portOf(fd);
      for (const n of [1, 2]) client.send(request(n), to, '127.0.0.1');
      await waitFor('two commits', () => commits.length === 2);
      for (const [i, c] of commits.entries()) {
        expect(c.changes[0]).toMatchObject({ kind: 'bind' });
        expect(c.reply).toMatchObject({ fd, address: 0xffff_ffff, port: 68 }); // broadcast flag set
        const ack = decodeDhcpPacket(c.reply!.message);
        expect(ack.options.get(DhcpOption.MESSAGE_TYPE)?.[0]).toBe(5);
        expect(ack.xid).toBe(0x2001 + i);
      }
      expect(transport.stats().sent).toEqual({});
      const closed = transport.close();
      commits[0]!.settle(0); // sent by the writer
      await new Promise((resolve) => setImmediate(resolve));
      expect(fstatSync(fd).isSocket()).toBe(true); // the second ACK may still leave on it
      commits[1]!.settle(os.constants.errno.ENETUNREACH); // the writer could not send it
      await closed;
      expect(() => fstatSync(fd)).toThrow();
      expect(transport.stats()).toMatchObject({ sent: { ack: 1 }, sendFailures: 1 });
    } finally {
      client.close();
    }
  });
});

/** The local port of an fd, from /proc/self/net/udp (the addon has no getsockname). */
function portOf(fd: number): number {
  const inode = /socket:\[(\d+)\]/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
  for (const line of readFileSync('/proc/self/net/udp', 'utf8').split('\n').slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols[9] === inode) return parseInt(cols[1]!.split(':')[1]!, 16);
  }
  throw new Error(`no UDP socket with inode ${inode}`);
}
