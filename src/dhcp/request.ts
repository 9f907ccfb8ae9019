/**
 * Turns a decoded packet into a validated DhcpRequest (parse, then decide): everything the core needs, checked once.
 * Nothing here throws on network input; a packet the core must not act on becomes { ok: false, reason }.
 */
import { DhcpDecodeError, decodeDhcpPacket, decodeFqdnOption, readU16, readU32 } from './codec.js';
import { BOOTREQUEST, DhcpMessageType, DhcpOption, type DhcpMessageTypeCode, type DhcpPacket, type DhcpRequest, MAX_HLEN, MIN_MAX_MESSAGE_SIZE, BROADCAST_FLAG } from './types.js';
import { sanitizeHostname } from '../net/hostname.js';

export { sanitizeHostname };
import { formatMac } from '../net/ipv4.js';

export type ParseRequestResult = { ok: true; request: DhcpRequest } | { ok: false; reason: string };

const ETHERNET = 1;
const ETHERNET_HLEN = 6;
const MAX_MAX_MESSAGE_SIZE = 1500;

const CLIENT_MESSAGE_TYPES: ReadonlySet<number> = new Set([
  DhcpMessageType.DISCOVER,
  DhcpMessageType.REQUEST,
  DhcpMessageType.DECLINE,
  DhcpMessageType.RELEASE,
  DhcpMessageType.INFORM,
]);

const fail = (reason: string): ParseRequestResult => ({ ok: false, reason });

export function parseRequest(packet: DhcpPacket): ParseRequestResult {
  if (packet.op !== BOOTREQUEST) return fail('not-request');

  const typeOption = packet.options.get(DhcpOption.MESSAGE_TYPE);
  if (!typeOption) return fail('no-message-type');
  if (typeOption.length !== 1) return fail('bad-message-type');
  const type = typeOption[0]!;
  if (!CLIENT_MESSAGE_TYPES.has(type)) return fail('unexpected-message-type');

  const { htype, hlen } = packet;
  if (htype === ETHERNET ? hlen !== ETHERNET_HLEN : hlen > MAX_HLEN) return fail('bad-hlen');
  if (packet.chaddr.length < hlen) return fail('bad-chaddr');
  const hardware = packet.chaddr.subarray(0, hlen);

  const clientIdOption = packet.options.get(DhcpOption.CLIENT_ID);
  let clientId: string;
  if (clientIdOption && clientIdOption.length > 0) clientId = hex(clientIdOption);
  else if (hlen > 0) clientId = hex(Uint8Array.of(htype)) + hex(hardware);
  else return fail('no-client-id'); // e.g. IPoIB (hlen 0) without option 61: every such client would collide

  // Options the core decides on must be well-formed, or it could NAK or ACK on garbage.
  const requestedAddress = optionalAddress(packet, DhcpOption.REQUESTED_ADDRESS);
  if (requestedAddress === null) return fail('bad-requested-address');
  const serverId = optionalAddress(packet, DhcpOption.SERVER_ID);
  if (serverId === null) return fail('bad-server-id');

  const request: DhcpRequest = {
    type: type as DhcpMessageTypeCode,
    xid: packet.xid,
    flags: packet.flags,
    broadcast: (packet.flags & BROADCAST_FLAG) !== 0,
    ciaddr: packet.ciaddr,
    giaddr: packet.giaddr,
    hops: packet.hops,
    htype,
    mac: formatMac(hardware, 0, hlen),
    chaddr: new Uint8Array(packet.chaddr.subarray(0, MAX_HLEN)), // a copy: the request outlives the packet
    clientId,
    parameterRequestList: parameterRequestList(packet.options.get(DhcpOption.PARAMETER_REQUEST_LIST)),
    maxMessageSize: maxMessageSize(packet.options.get(DhcpOption.MAX_MESSAGE_SIZE)),
  };
  if (requestedAddress !== undefined) request.requestedAddress = requestedAddress;
  if (serverId !== undefined) request.serverId = serverId;

  addInformationalOptions(request, packet.options);
  return { ok: true, request };
}

/** Informational options (host name, FQDN, lease time, vendor class): a malformed one is ignored, never fatal. */
function addInformationalOptions(request: DhcpRequest, options: DhcpPacket['options']): void {
  const hostnameOption = options.get(DhcpOption.HOSTNAME);
  const hostname = hostnameOption && sanitizeHostname(latin1(hostnameOption));
  if (hostname) request.hostname = hostname;

  const fqdnOption = options.get(DhcpOption.CLIENT_FQDN);
  const fqdn = fqdnOption && decodeFqdnOption(fqdnOption);
  if (fqdn) {
    request.fqdnFlags = fqdn.flags;
    const fqdnHostname = sanitizeHostname(fqdn.name);
    if (fqdnHostname) request.fqdnHostname = fqdnHostname;
  }

  const leaseOption = options.get(DhcpOption.LEASE_TIME);
  const leaseSeconds = leaseOption && readU32(leaseOption);
  if (leaseSeconds !== undefined) request.requestedLeaseSeconds = leaseSeconds;

  const vendorOption = options.get(DhcpOption.VENDOR_CLASS);
  if (vendorOption && vendorOption.length > 0) request.vendorClass = latin1(vendorOption);

  if (options.has(DhcpOption.RAPID_COMMIT)) request.rapidCommit = true;
  // issue 16: the decoded options are the packet's own copies (the codec never aliases the receive buffer)
  request.rawOptions = options;
}

/** Decode and parse in one step for the transport; never throws: decode errors become 'decode:<slug>'. */
export function decodeAndParse(buf: Uint8Array): ParseRequestResult {
  let packet: DhcpPacket;
  try {
    packet = decodeDhcpPacket(buf);
  } catch (err) {
    return fail(err instanceof DhcpDecodeError ? `decode:${err.reason}` : 'decode:internal-error');
  }
  try {
    return parseRequest(packet);
  } catch {
    // Unreachable by design (the fuzz test asserts it); still, a bad packet must never stop the server.
    return fail('parse:internal-error');
  }
}

/** undefined: absent; null: present but not 4 bytes. */
function optionalAddress(packet: DhcpPacket, code: number): number | undefined | null {
  const value = packet.options.get(code);
  if (!value) return undefined;
  return readU32(value) ?? null;
}

/** Codes already taken into the list being built (issue 18: a reused bitmap instead of a Set per request). */
const seenCodes = new Uint32Array(8);

function parameterRequestList(value: Uint8Array | undefined): number[] {
  if (!value) return [];
  const list: number[] = [];
  for (const code of value) {
    const word = code >>> 5;
    const bit = 1 << (code & 31);
    if (code === DhcpOption.PAD || code === DhcpOption.END || (seenCodes[word]! & bit) !== 0) continue;
    seenCodes[word]! |= bit;
    list.push(code);
  }
  seenCodes.fill(0);
  return list;
}

function maxMessageSize(value: Uint8Array | undefined): number {
  const size = value && readU16(value);
  if (size === undefined) return MIN_MAX_MESSAGE_SIZE;
  return Math.min(MAX_MAX_MESSAGE_SIZE, Math.max(MIN_MAX_MESSAGE_SIZE, size));
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
}

function latin1(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('latin1');
}
