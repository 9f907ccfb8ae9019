/**
 * The one DHCP client simulator: many simulated clients (their own MACs) on one UDP socket bound to port 68, the
 * broadcast flag set so every reply comes back broadcast to that socket. Shared by the integration tests'
 * simulator (test/fixtures/dhcp-sim.mjs: clients that keep re-confirming their lease), the hostile-guest tool
 * (test/fixtures/dhcp-attack.mjs) and the benchmark's load generator (bench/lib/dhcp-load.ts: one timed DORA per
 * client). What a client does when nothing answers, and what an ACK means, is the caller's: see DhcpClients' hooks.
 *
 * Plain JS so namespaces run it without a build step (typed by dhcp-clients.d.mts); it uses natd's built codec
 * (dist/: npm run build), always from the source tree, also when the benchmark (built into build/) loads it.
 */
import dgram from 'node:dgram';
import { decodeDhcpPacket, emptyPacket, encodeDhcpPacket, encodeString, encodeU32 } from '../../dist/src/dhcp/codec.js';

export const OPT = { HOSTNAME: 12, REQUESTED: 50, TYPE: 53, SERVER_ID: 54, PRL: 55 };
export const TYPE = { DISCOVER: 1, OFFER: 2, REQUEST: 3, DECLINE: 4, ACK: 5, NAK: 6, INFORM: 8 };
export const BROADCAST_FLAG = 0x8000;
/** subnet mask, router, DNS servers, lease time */
export const DEFAULT_PRL = Uint8Array.of(1, 3, 6, 51);

export const ipText = (n) => [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
export const ipNumber = (text) => text.split('.').reduce((n, part) => n * 256 + Number(part), 0) >>> 0;
export const macText = (chaddr) => [...chaddr.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':');

/** A BOOTREQUEST: message type, parameter request list and `options`; `fields` set header fields (flags, ciaddr, ...). */
export function clientPacket(type, { xid, chaddr, fields = {}, options = [], prl = DEFAULT_PRL }) {
  const packet = Object.assign(emptyPacket(1), fields);
  packet.xid = xid >>> 0;
  packet.chaddr = new Uint8Array(16);
  packet.chaddr.set(chaddr.subarray(0, 6));
  packet.options = new Map([[OPT.TYPE, Uint8Array.of(type)], [OPT.PRL, prl], ...options]);
  return packet;
}

export const encodeClientPacket = (type, spec) => encodeDhcpPacket(clientPacket(type, spec));

/** A server's reply: the packet, its message type and server id; undefined for junk and for anything but a BOOTREPLY. */
export function decodeReply(msg) {
  let packet;
  try {
    packet = decodeDhcpPacket(msg);
  } catch {
    return undefined;
  }
  if (packet.op !== 2) return undefined;
  return { packet, type: packet.options.get(OPT.TYPE)?.[0], serverId: packet.options.get(OPT.SERVER_ID) };
}

/** A UDP socket on 0.0.0.0:`port` (68 for clients) with broadcast on; `reuseAddr` so several simulators can share a namespace. */
export async function openClientSocket(port = 68) {
  const socket = dgram.createSocket({ type: 'udp4', reuseAddr: true });
  await new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port, address: '0.0.0.0' }, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  socket.setBroadcast(true);
  return socket;
}

/**
 * The clients' side of DISCOVER → OFFER → REQUEST → ACK (and INIT-REBOOT) over one socket. A client's state:
 *   idle → selecting (DISCOVER sent) → requesting (REQUEST for the offer sent) → bound (ACKed)
 *   bound → rebooting (REQUEST for its address, no ciaddr, sent) → bound
 * An OFFER in selecting sends the REQUEST (hooks.offer, when given, may refuse it by returning false); an ACK in
 * requesting or rebooting binds the client (hooks.ack); a NAK to a client in requesting or rebooting makes it idle
 * (hooks.nak). Replies are matched by xid and chaddr; a new xid for each DISCOVER and INIT-REBOOT, the REQUEST after an
 * OFFER keeps the OFFER's (RFC 2131 §4.4.1). Every message goes to 255.255.255.255:serverPort with the broadcast flag.
 */
export class DhcpClients {
  constructor(socket, { serverPort = 67, prl = DEFAULT_PRL, hostname, hooks = {} } = {}) {
    this.socket = socket;
    this.serverPort = serverPort;
    this.prl = prl;
    this.hostname = hostname;
    this.hooks = hooks;
    this.byXid = new Map();
    this.nextXid = (Math.random() * 0x1_0000_0000) >>> 0;
    this.sendErrors = 0;
    socket.on('message', (msg) => this.receive(msg));
  }

  /** A new client (idle); chaddr: its MAC (6 bytes or more). */
  add(index, chaddr) {
    return { index, chaddr: Uint8Array.from(chaddr.subarray(0, 6)), mac: macText(chaddr), xid: 0, state: 'idle', offered: 0, serverId: undefined, address: 0, lastSent: undefined };
  }

  discover(client) {
    this.newXid(client);
    client.state = 'selecting';
    this.send(client, TYPE.DISCOVER);
  }

  /** REQUEST for the address offered (option 50) from the server that offered it (option 54), in the OFFER's xid. */
  request(client) {
    client.state = 'requesting';
    this.send(client, TYPE.REQUEST, [[OPT.REQUESTED, encodeU32(client.offered)], ...(client.serverId ? [[OPT.SERVER_ID, client.serverId]] : [])]);
  }

  /** INIT-REBOOT: re-confirms the bound address (option 50, no ciaddr, so the ACK is still broadcast). */
  reboot(client) {
    this.newXid(client);
    client.state = 'rebooting';
    this.send(client, TYPE.REQUEST, [[OPT.REQUESTED, encodeU32(client.address)]]);
  }

  /** Sends the client's last message again, unchanged (a retransmission). */
  resend(client) {
    if (client.lastSent) this.transmit(client.lastSent);
  }

  /** Replies to the client are ignored from now on. */
  forget(client) {
    this.byXid.delete(client.xid);
    client.state = 'idle';
  }

  newXid(client) {
    this.byXid.delete(client.xid);
    client.xid = this.nextXid;
    this.nextXid = (this.nextXid + 1) >>> 0;
    this.byXid.set(client.xid, client);
  }

  send(client, type, options = []) {
    const name = this.hostname?.(client);
    client.lastSent = encodeClientPacket(type, {
      xid: client.xid, chaddr: client.chaddr, fields: { flags: BROADCAST_FLAG }, prl: this.prl,
      options: [...(name ? [[OPT.HOSTNAME, encodeString(name)]] : []), ...options],
    });
    this.transmit(client.lastSent);
  }

  transmit(bytes) {
    this.socket.send(bytes, this.serverPort, '255.255.255.255', (err) => {
      if (err) this.sendErrors++;
    });
  }

  receive(msg) {
    const reply = decodeReply(msg);
    if (!reply) return;
    const { packet, type, serverId } = reply;
    const client = this.byXid.get(packet.xid >>> 0);
    if (!client || macText(packet.chaddr) !== client.mac) return;
    if (type === TYPE.OFFER && client.state === 'selecting') {
      client.offered = packet.yiaddr >>> 0;
      client.serverId = serverId;
      if (this.hooks.offer?.(client, packet) !== false) this.request(client);
    } else if (type === TYPE.ACK && (client.state === 'requesting' || client.state === 'rebooting')) {
      client.address = packet.yiaddr >>> 0;
      client.state = 'bound';
      this.hooks.ack?.(client, packet);
    } else if (type === TYPE.NAK && (client.state === 'requesting' || client.state === 'rebooting')) {
      client.state = 'idle';
      this.hooks.nak?.(client, packet);
    }
  }
}
