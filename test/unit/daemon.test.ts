/**
 * The whole daemon built with fakes for everything it does to the host (src/daemon/system.ts): no root, no
 * namespace, no nft. The DHCP socket and the DNS UDP transport are fakes the test talks through, the DNS TCP
 * listener is on loopback, nft is the model in support/fake-nft.ts, the bridge/sysctl step and systemd-resolved
 * only record, the clock is fixed. The control socket is real (a unix socket in a temp dir, our own uid).
 */
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import dgram from 'node:dgram';
import { tmpdir } from 'node:os';
import path from 'node:path';
import dnsPacket from 'dns-packet';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { parseMessage } from '../../src/ddns/message.js';
import { DEFAULT_SUBNET } from '../../src/defaults.js';
import { call, callDaemon } from '../../src/control/client.js';
import type { NatdError } from '../../src/errors.js';
import { buildDaemon, type Daemon, type DaemonSockets } from '../../src/daemon/index.js';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, encodeU32 } from '../../src/dhcp/codec.js';
import { DhcpOption } from '../../src/dhcp/types.js';
import type { DnsUdpTransport, UdpHandlers } from '../../src/dns/udp-transport.js';
import { formatIpv4, makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { tftpFetch } from '../support/tftp-client.js';
import { FakeNft } from '../support/fake-nft.js';
import { recordingLogger } from '../support/recording-logger.js';
import { waitFor } from '../support/wait.js';

const ip = (text: string): number => parseIpv4(text)!;
/** RFC 3004 user class (issue 16: iPXE sends "iPXE") */
const USER_CLASS = 77;
const GATEWAY = '10.77.0.1';
const CLOCK = Date.parse('2026-01-01T00:00:00Z');

/** The DHCP socket the daemon is given: the test emits client datagrams, the daemon's replies are kept. */
class FakeDhcpSocket extends EventEmitter {
  readonly sent: { bytes: Buffer; port: number; address: string }[] = [];
  constructor(private readonly events: string[]) {
    super();
  }
  send(bytes: Buffer, port: number, address: string, cb: (err: Error | null) => void): void {
    this.sent.push({ bytes, port, address });
    cb(null);
  }
  close(cb: () => void): void {
    this.events.push('dhcp socket closed');
    cb();
  }
}

/** The DNS UDP transport the daemon is given: queries are delivered as from a guest, answers are kept. */
class FakeDnsUdp implements DnsUdpTransport {
  handlers: UdpHandlers | undefined;
  readonly replies: Buffer[] = [];
  constructor(private readonly events: string[]) {}
  start(handlers: UdpHandlers): void {
    this.handlers = handlers;
  }
  reply(message: Buffer): void {
    this.replies.push(Buffer.from(message));
  }
  close(): Promise<void> {
    this.events.push('dns udp closed');
    return Promise.resolve();
  }
}

/** One guest (MAC 52:54:00:00:00:23, host name guest1) talking to the daemon's DHCP socket. */
function dhcpClient(socket: FakeDhcpSocket) {
  const client = (type: number, extra: Array<[number, Uint8Array]> = []): void => {
    const packet = emptyPacket(1);
    packet.xid = 0x1234;
    packet.flags = 0x8000; // broadcast replies
    packet.chaddr.set([0x52, 0x54, 0, 0, 0, 0x23]);
    packet.options = new Map([[DhcpOption.MESSAGE_TYPE, Uint8Array.of(type)], [DhcpOption.HOSTNAME, Buffer.from('guest1')], ...extra]);
    socket.emit('message', encodeDhcpPacket(packet), { address: '0.0.0.0', port: 68 });
  };
  const reply = (n: number) => waitFor(`DHCP reply ${n}`, () => socket.sent[n - 1]).then((s) => ({ ...s, packet: decodeDhcpPacket(s.bytes) }));
  return { client, reply };
}

describe('buildDaemon with fake sockets, nft, bridge and clock', () => {
  let dir: string;
  let daemon: Daemon | undefined;

  afterEach(async () => {
    await daemon?.close();
    daemon = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function setup(settings: Record<string, unknown> = {}) {
    dir = mkdtempSync(path.join(tmpdir(), 'natd-daemon-'));
    writeFileSync(path.join(dir, 'resolv.conf'), `nameserver ${GATEWAY}\n`); // natd itself: filtered out, no upstream
    const raw = {
      bridge: 'natdunit0',
      subnet: `${GATEWAY}/24`,
      dhcpRange: '10.77.0.100-10.77.0.199',
      domain: 'vm',
      stateDir: path.join(dir, 'state'),
      controlSocket: path.join(dir, 'control.sock'),
      resolvConf: path.join(dir, 'resolv.conf'),
      reservations: [{ mac: '52:54:00:00:00:50', address: '10.77.0.50', hostname: 'web' }],
      ...settings,
    };
    const config = resolveConfig(raw);
    const events: string[] = [];
    const probed: string[] = [];
    const nft = new FakeNft();
    const dhcpSocket = new FakeDhcpSocket(events);
    const dnsUdp = new FakeDnsUdp(events);
    const tftpSockets: dgram.Socket[] = [];
    const sockets: DaemonSockets = {
      openDhcp: async () => dhcpSocket as unknown as dgram.Socket,
      openDnsUdp: () => dnsUdp,
      openDnsTcp: async () => {
        const tcp = net.createServer();
        tcp.on('close', () => events.push('dns tcp closed'));
        await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
        return tcp;
      },
      kernelDrops: () => ({ dhcp: 0, dns: 0 }),
      // issue 16: TFTP on loopback (port 69 needs root: the listening socket gets an ephemeral port too)
      openTftp: async () => {
        const socket = dgram.createSocket('udp4');
        await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
        tftpSockets.push(socket);
        return socket;
      },
    };
    const logger = recordingLogger();
    daemon = buildDaemon(config, {
      logger,
      now: () => CLOCK,
      sockets,
      nftExec: (bin, args, control) => {
        if (args[0] === 'delete') events.push('nft delete table');
        return nft.exec(bin, args, control);
      },
      bridgeSetup: {
        readCidr: async () => undefined,
        ensure: async ({ name }) => {
          events.push('bridge');
          return { name, mac: '52:54:00:aa:bb:cc', gateway: ip(GATEWAY), subnet: makeSubnet(ip(GATEWAY), 24), created: true };
        },
        enableForwarding: async () => void events.push('sysctls'),
      },
      setNeighbour: () => undefined,
      conflictProbe: () => ({
        kind: 'ping', maxConcurrent: 8, close: () => undefined,
        probe: async (address) => {
          probed.push(address);
          return { answered: false };
        },
      }),
      registerDns: async () => ({ registered: true, undo: async () => void events.push('resolved undone') }),
      notify: (state) => void events.push(state.split('\n')[0]!),
    });
    return { config, raw, daemon, events, nft, dhcpSocket, dnsUdp, logger, probed, tftpSockets };
  }

  it('leases an address, answers its name over DNS, changes a forward over the control socket, closes in reverse', async () => {
    const t = setup();
    await t.daemon.start();
    expect(t.events).toEqual(['bridge', 'sysctls', 'READY=1']);

    // DHCP: DISCOVER → OFFER → REQUEST → ACK through the socket the daemon was given
    const { client, reply } = dhcpClient(t.dhcpSocket);
    client(1);
    const offer = await reply(1);
    expect(offer.packet.options.get(DhcpOption.MESSAGE_TYPE)).toEqual(Uint8Array.of(2));
    expect({ to: offer.address, port: offer.port }).toEqual({ to: '255.255.255.255', port: 68 });
    const address = formatIpv4(offer.packet.yiaddr);
    expect(ip(address)).toBeGreaterThanOrEqual(ip('10.77.0.100'));
    client(3, [[DhcpOption.REQUESTED_ADDRESS, encodeU32(ip(address))], [DhcpOption.SERVER_ID, encodeU32(ip(GATEWAY))]]);
    const ack = await reply(2);
    expect(ack.packet.options.get(DhcpOption.MESSAGE_TYPE)).toEqual(Uint8Array.of(5));
    expect(formatIpv4(ack.packet.yiaddr)).toBe(address);
    const leases = (await callDaemon(t.config.controlSocket, 'leases')) as { address: string; hostname?: string; expiresAt: number }[];
    expect(leases).toEqual([expect.objectContaining({ address, hostname: 'guest1', expiresAt: CLOCK + t.config.leaseTimeSeconds * 1000 })]);

    // DNS: the guest's name, asked from a guest address through the daemon's UDP transport
    const query = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'guest1.vm' }] });
    t.dnsUdp.handlers!.message(query, ip('10.77.0.150'), 40000);
    const answer = dnsPacket.decode(await waitFor('DNS answer', () => t.dnsUdp.replies[0]));
    expect(answer.answers?.map((a) => ({ name: a.name, data: (a as { data?: unknown }).data }))).toEqual([{ name: 'guest1.vm', data: address }]);

    // a runtime forward over the control socket: nft sees one element batch, nothing rebuilt
    const fullApplies = t.nft.batches.length;
    await callDaemon(t.config.controlSocket, 'forwards.add', { spec: 'tcp:8080=web:80' });
    expect(t.nft.batches.length).toBe(fullApplies + 1);
    const change = JSON.stringify(t.nft.batches.at(-1));
    expect(change).toContain('"element"');
    expect(change).toContain('10.77.0.50');
    expect(change).toContain('8080');
    expect(await callDaemon(t.config.controlSocket, 'forwards.list')).toEqual([expect.objectContaining({ spec: 'tcp:8080=web:80', source: 'runtime' })]);

    // close: reverse start order (resolved, control, nft, DHCP, DNS, …), and a second close changes nothing
    t.events.length = 0;
    await t.daemon.close();
    await t.daemon.close();
    expect(t.events).toEqual(['STOPPING=1', 'resolved undone', 'nft delete table', 'dhcp socket closed', ...t.events.slice(4)]);
    expect(t.events.slice(4).sort()).toEqual(['dns tcp closed', 'dns udp closed']);
    await expect(callDaemon(t.config.controlSocket, 'status', {}, 1000)).rejects.toThrow();
  });

  // issue 15: a lease's name reaches the DDNS server (a loopback fake that records the updates and says NOERROR)
  it('publishes a lease name to the --ddns-server, and shows DDNS in status and metrics', async () => {
    const server = dgram.createSocket('udp4');
    const updates: { zone: string; names: string[] }[] = [];
    server.on('message', (msg, rinfo) => {
      const m = parseMessage(msg);
      updates.push({ zone: m.questions[0]!.name, names: m.sections[1].map((r) => `${r.name}/${r.type}/${r.class}`) });
      const reply = Buffer.from(msg.subarray(0, 12));
      reply.writeUInt16BE(0x8000 | (5 << 11), 2);
      reply.fill(0, 4);
      server.send(reply, rinfo.port, rinfo.address);
    });
    await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const t = setup({ ddnsServer: `127.0.0.1#${port}`, ddnsZone: 'lab.example', ddnsReverse: true });
      await t.daemon.start();
      const { client, reply } = dhcpClient(t.dhcpSocket);
      client(1);
      const address = formatIpv4((await reply(1)).packet.yiaddr);
      client(3, [[DhcpOption.REQUESTED_ADDRESS, encodeU32(ip(address))], [DhcpOption.SERVER_ID, encodeU32(ip(GATEWAY))]]);
      await reply(2);
      const reverse = `${address.split('.').reverse().join('.')}.in-addr.arpa`;
      await waitFor('the A and PTR updates', () => (updates.length >= 2 ? true : undefined));
      expect(updates).toEqual(expect.arrayContaining([
        { zone: 'lab.example', names: ['guest1.lab.example/1/1', 'guest1.lab.example/16/1'] },
        { zone: '0.77.10.in-addr.arpa', names: [`${reverse}/12/1`, `${reverse}/16/1`] },
      ]));
      const status = (await callDaemon(t.config.controlSocket, 'status')) as { ddns: Record<string, unknown> };
      expect(status.ddns.sent).toBeGreaterThanOrEqual(2);
      expect(status.ddns).toMatchObject({ server: `127.0.0.1#${port}`, zone: 'lab.example', reverseZone: '0.77.10.in-addr.arpa' });
      expect(String(await callDaemon(t.config.controlSocket, 'metrics'))).toMatch(/natd_ddns_updates_sent_total\{bridge="natdunit0"\} [1-9]/);
      expect(t.logger.lines.some((l) => l.msg === 'DDNS: no --ddns-key-file: updates are sent unsigned')).toBe(true);
    } finally {
      server.close();
    }
  });

  it('issue 16: serves TFTP with --enable-tftp, PXE boot fields in the OFFER, which follow a reload; metrics and status', async () => {
    const root = mkdtempSync(path.join(tmpdir(), 'natd-daemon-tftp-'));
    writeFileSync(path.join(root, 'boot.ipxe'), '#!ipxe\necho hi\n', { mode: 0o644 });
    const pxe = { enableTftp: true, tftpRoot: root, dhcpUserclass: ['set:ipxe,iPXE'], dhcpBoot: ['tag:ipxe,boot.ipxe', 'undionly.kpxe'] };
    try {
      const t = setup(pxe);
      await t.daemon.start();
      const port = t.tftpSockets[0]!.address().port;
      const fetched = await tftpFetch({ host: '127.0.0.1', port, file: 'boot.ipxe', options: { tsize: '0' } });
      expect(fetched.data?.toString()).toBe('#!ipxe\necho hi\n');
      expect(fetched.oack).toEqual(new Map([['tsize', '15']]));
      const metrics = (await callDaemon(t.config.controlSocket, 'metrics')) as string;
      expect(metrics).toContain('natd_tftp_transfers_total{bridge="natdunit0",result="complete"} 1');
      expect(metrics).toContain('natd_tftp_sent_bytes_total{bridge="natdunit0"} 15');
      expect(((await callDaemon(t.config.controlSocket, 'status')) as { tftp: { requests: number } }).tftp.requests).toBe(1);

      // a DISCOVER from iPXE gets boot.ipxe; after a reload with other entries it gets the new one
      const { client, reply } = dhcpClient(t.dhcpSocket);
      client(1, [[USER_CLASS, Buffer.from('iPXE')]]);
      const offer = await reply(1);
      expect({ file: offer.packet.file, siaddr: formatIpv4(offer.packet.siaddr) }).toEqual({ file: 'boot.ipxe', siaddr: GATEWAY });
      await t.daemon.reload(resolveConfig({ ...t.raw, dhcpBoot: ['tag:ipxe,menu.ipxe'] }));
      client(1, [[USER_CLASS, Buffer.from('iPXE')]]);
      expect((await reply(2)).packet.file).toBe('menu.ipxe');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('status --json has everything the daemon knows, typed by the command table', async () => {
    const t = setup();
    await t.daemon.start();
    const status = await call(t.config.controlSocket, 'status', {});
    expect(status).toMatchObject({ bridge: 'natdunit0', state: 'running', startedAt: CLOCK, uptimeSeconds: 0, subnet: '10.77.0.0/24', gateway: GATEWAY });
    expect(status.dhcp).toMatchObject({ range: '10.77.0.100-10.77.0.199', rangeSize: 100, leaseTimeSeconds: t.config.leaseTimeSeconds, reservations: 1, leases: 0 });
    expect(status.dns).toMatchObject({ queries: 0, cache: { maxEntries: t.config.cacheSize, maxBytes: t.config.cacheMaxBytes }, upstream: { perServer: [] } });
    expect(status.firewall).toMatchObject({ table: 'inet natd-natdunit0', runtimeForwards: 0 });
    expect(status.control).toEqual({ refusedPeers: 0, watchers: 0, watchersCutOff: 0 });
    expect(status.kernelDrops).toEqual({ dhcp: 0, dns: 0 });
    expect(status.config).toMatchObject({ bridge: 'natdunit0', domain: 'vm', reservations: [{ mac: '52:54:00:00:00:50', address: ip('10.77.0.50'), hostname: 'web' }] });
  });

  it('a malformed control request gets a clear error code and the daemon keeps answering', async () => {
    const t = setup();
    await t.daemon.start();
    const codeOf = (p: Promise<unknown>) => p.then(() => 'ok', (err: NatdError) => `${err.code}: ${err.message}`);
    expect(await codeOf(callDaemon(t.config.controlSocket, 'reservations.add', { mac: 5, address: '10.77.0.60' })))
      .toMatch(/^NATD_ERR_COMMAND: reservations\.add: invalid arguments: mac: /);
    expect(await codeOf(callDaemon(t.config.controlSocket, 'forwards.add', { spec: 'tcp:1=web:1', extra: true })))
      .toBe('NATD_ERR_COMMAND: forwards.add: invalid arguments: unknown argument(s) extra');
    expect(await codeOf(callDaemon(t.config.controlSocket, 'forwards.remove', ['tcp:1=web:1']))).toMatch(/^NATD_ERR_COMMAND: forwards\.remove: invalid arguments: args: /);
    expect(await codeOf(callDaemon(t.config.controlSocket, 'leases.drop', {}))).toBe('NATD_ERR_COMMAND: unknown command "leases.drop"');
    expect(await codeOf(callDaemon(t.config.controlSocket, 'reservations.remove', {}))).toMatch(/^NATD_ERR_COMMAND: reservations\.remove: invalid arguments: key: /);
    for (const line of ['not json', '[]', 'null', '{"command": 5}']) {
      const answer = await new Promise<string>((resolve, reject) => {
        const conn = net.createConnection(t.config.controlSocket, () => conn.end(line + '\n'));
        let text = '';
        conn.setEncoding('utf8').on('data', (d: string) => (text += d)).on('end', () => resolve(text)).on('error', reject);
      });
      expect(JSON.parse(answer)).toMatchObject({ ok: false, code: 'NATD_ERR_CONTROL', error: expect.stringMatching(/^malformed request/) });
    }
    expect(await call(t.config.controlSocket, 'reservations.list', {})).toHaveLength(1);
  });

  it('after a reload, forwards resolve names of reservations added at runtime', async () => {
    const t = setup();
    await t.daemon.start();
    await t.daemon.reload();
    await callDaemon(t.config.controlSocket, 'reservations.add', { mac: '52:54:00:00:00:60', address: '10.77.0.60', hostname: 'db' });
    await callDaemon(t.config.controlSocket, 'forwards.add', { spec: 'tcp:2222=db:22' });
    expect(JSON.stringify(t.nft.batches.at(-1))).toContain('10.77.0.60');
    expect(await callDaemon(t.config.controlSocket, 'reservations.list')).toEqual([
      { mac: '52:54:00:00:00:50', address: '10.77.0.50', hostname: 'web', source: 'config' },
      { mac: '52:54:00:00:00:60', address: '10.77.0.60', hostname: 'db', source: 'runtime' },
    ]);
  });

  it('with --no-ping offers unprobed but still verifies a DECLINE with a probe', async () => {
    const t = setup({ conflictProbe: false });
    await t.daemon.start();
    const { client, reply } = dhcpClient(t.dhcpSocket);
    client(1);
    const address = formatIpv4((await reply(1)).packet.yiaddr);
    expect(t.probed).toEqual([]);
    const asked: Array<[number, Uint8Array]> = [[DhcpOption.REQUESTED_ADDRESS, encodeU32(ip(address))], [DhcpOption.SERVER_ID, encodeU32(ip(GATEWAY))]];
    client(3, asked);
    await reply(2);
    client(4, asked);
    expect(await waitFor('the DECLINE probe', () => t.probed[0])).toBe(address);
  });

  it('closes what it started when a step fails, and nothing after it', async () => {
    const t = setup();
    const failing = buildDaemon(t.config, {
      logger: t.logger,
      sockets: { ...({} as DaemonSockets), openDnsUdp: () => t.dnsUdp, openDnsTcp: () => Promise.reject(new Error('EADDRINUSE')), openDhcp: () => Promise.reject(new Error('not reached')) },
      bridgeSetup: { readCidr: async () => undefined, ensure: async ({ name }) => ({ name, mac: '52:54:00:aa:bb:cc', gateway: ip(GATEWAY), subnet: makeSubnet(ip(GATEWAY), 24), created: false }), enableForwarding: async () => undefined },
      nftExec: t.nft.exec,
      conflictProbe: () => ({ kind: 'ping', maxConcurrent: 8, close: () => undefined, probe: async () => ({ answered: false }) }),
      registerDns: async () => ({ registered: false, undo: async () => undefined }),
      notify: (state) => void t.events.push(state.split('\n')[0]!),
    });
    await expect(failing.start()).rejects.toThrow('EADDRINUSE');
    // the UDP socket opened just before the failing TCP listener is closed at once, the rest by the stack
    expect(t.events).toEqual(['dns udp closed', 'STOPPING=1']);
    expect(t.nft.calls).toEqual([]);
  });

  it('without --subnet, refuses a reservation on the gateway of the subnet it would serve before touching anything', async () => {
    // no --subnet and no bridge yet: natd would create it with DEFAULT_SUBNET, whose gateway the reservation takes
    const gateway = DEFAULT_SUBNET.split('/')[0]!;
    const t = setup({ subnet: undefined, dhcpRange: undefined, reservations: [{ mac: '52:54:00:00:00:50', address: gateway }] });
    await expect(t.daemon.start()).rejects.toThrow(new RegExp(`reservations\\.0\\.address: ${gateway.replace(/\./g, '\\.')} is the gateway's address`));
    expect(t.events).not.toContain('bridge');
    expect(t.events).not.toContain('sysctls');
    expect(t.nft.calls).toEqual([]);
  });

  it('a reload that does not fit the served subnet is refused and changes nothing', async () => {
    const t = setup();
    await t.daemon.start();
    const before = t.daemon.status();
    const bad = { ...t.config, reservations: [{ mac: '52:54:00:00:00:51', address: ip(GATEWAY) }] };
    await expect(t.daemon.reload(bad)).rejects.toThrow(/reservations\.0\.address: 10\.77\.0\.1 is the gateway's address/);
    expect(t.daemon.status()).toEqual(before);
  });
});
