/**
 * issue 18: the DHCP transport over a batched port (BatchUdpTransport in the daemon): a request arrives as a view of a
 * receive slab the next batch overwrites. A DISCOVER held for its conflict probe outlives its batch, so what the
 * transport keeps must be copies: the OFFER sent after the probe answers the DISCOVER that was held, not whatever
 * the slab holds by then. Replies go out through the port with the address as a number (broadcast 255.255.255.255).
 */
import { describe, expect, it } from 'vitest';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket } from '../../src/dhcp/codec.js';
import type { ProbeVerdict } from '../../src/dhcp/probe.js';
import { DhcpServerCore } from '../../src/dhcp/server-core.js';
import { DhcpTransport } from '../../src/dhcp/transport.js';
import { DhcpOption } from '../../src/dhcp/types.js';
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
