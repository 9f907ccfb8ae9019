/**
 * issue 14: DHCPv6 messages (RFC 8415 §8, §21) between clients and a server, as bytes and back. Pure, no I/O.
 *
 * decodeDhcp6 never throws: whatever a guest sends is either a message or a reason it is not. Every option length is
 * checked against the bytes that remain, option counts are bounded, and the options natd decides on are checked
 * for their RFC length (a CLIENTID of 300 bytes is a reason, not a DUID). Options natd does not read are kept raw,
 * in order, so message → bytes → message gives an equal message (encodeDhcp6 writes options in a fixed order).
 *
 * Relay messages (Relay-forw, Relay-repl) are recognised but not opened: natd serves its own bridge only and is not a
 * relay agent's server, so the core ignores them (a guest pretending to be a relay).
 */

export const Dhcp6MessageType = {
  SOLICIT: 1,
  ADVERTISE: 2,
  REQUEST: 3,
  CONFIRM: 4,
  RENEW: 5,
  REBIND: 6,
  REPLY: 7,
  RELEASE: 8,
  DECLINE: 9,
  RECONFIGURE: 10,
  INFORMATION_REQUEST: 11,
  RELAY_FORW: 12,
  RELAY_REPL: 13,
} as const;
export type Dhcp6MessageTypeCode = (typeof Dhcp6MessageType)[keyof typeof Dhcp6MessageType];

export const DHCP6_MESSAGE_NAMES: Readonly<Record<number, string>> = {
  1: 'solicit', 2: 'advertise', 3: 'request', 4: 'confirm', 5: 'renew', 6: 'rebind', 7: 'reply', 8: 'release',
  9: 'decline', 10: 'reconfigure', 11: 'information-request', 12: 'relay-forw', 13: 'relay-repl',
};

export const Dhcp6Option = {
  CLIENTID: 1,
  SERVERID: 2,
  IA_NA: 3,
  IA_TA: 4,
  IAADDR: 5,
  ORO: 6,
  PREFERENCE: 7,
  ELAPSED_TIME: 8,
  STATUS_CODE: 13,
  RAPID_COMMIT: 14,
  DNS_SERVERS: 23,
  DOMAIN_LIST: 24,
  IA_PD: 25,
  INFORMATION_REFRESH_TIME: 32,
} as const;

/** RFC 8415 §21.13 status codes. */
export const Dhcp6Status = {
  SUCCESS: 0,
  UNSPEC_FAIL: 1,
  NO_ADDRS_AVAIL: 2,
  NO_BINDING: 3,
  NOT_ON_LINK: 4,
  USE_MULTICAST: 5,
  NO_PREFIX_AVAIL: 6,
} as const;

/** A DUID is 2 bytes of type and at most 128 bytes of value (RFC 8415 §11.1). */
export const MAX_DUID_BYTES = 130;
/** Options read from one message (or one IA): more is an attack, not a client. */
export const MAX_OPTIONS = 64;
/** Addresses read from one IA_NA. */
export const MAX_IA_ADDRESSES = 16;
/** Names in a DOMAIN_LIST and servers in DNS_SERVERS that natd reads or writes. */
const MAX_LIST = 16;

export interface Dhcp6StatusValue {
  code: number;
  message: string;
}

/** IAADDR (RFC 8415 §21.6). Lifetimes are seconds; 0xffffffff is infinity. */
export interface Dhcp6IaAddress {
  /** 16 bytes */
  address: Uint8Array;
  preferredLifetime: number;
  validLifetime: number;
  status?: Dhcp6StatusValue;
}

/** IA_NA (RFC 8415 §21.4). */
export interface Dhcp6IaNa {
  iaid: number;
  t1: number;
  t2: number;
  addresses: Dhcp6IaAddress[];
  status?: Dhcp6StatusValue;
}

export interface Dhcp6RawOption {
  code: number;
  data: Uint8Array;
}

/**
 * A client or server message, its options decoded where natd reads them. An absent field is an absent option;
 * `other` holds every other option raw, in order (IA_TA, IA_PD, FQDN, vendor options, ...).
 */
export interface Dhcp6Message {
  type: number;
  /** 24 bits */
  transactionId: number;
  clientId?: Uint8Array;
  serverId?: Uint8Array;
  iaNa: Dhcp6IaNa[];
  /** ORO: the option codes the client asks for, in its order */
  oro?: number[];
  preference?: number;
  /** hundredths of a second */
  elapsedTime?: number;
  status?: Dhcp6StatusValue;
  rapidCommit?: boolean;
  /** 16 bytes each */
  dnsServers?: Uint8Array[];
  /** lower-case names without the trailing dot */
  domainList?: string[];
  informationRefreshTime?: number;
  other: Dhcp6RawOption[];
}

export type Dhcp6Decoded =
  | { ok: true; message: Dhcp6Message }
  /** relay: a Relay-forw/Relay-repl (well-formed enough to recognise); natd ignores those */
  | { ok: false; reason: string; relay?: true };

// ---- decoding ---------------------------------------------------------------------------------------------------

class Malformed extends Error {}

function fail(reason: string): never {
  throw new Malformed(reason);
}

function u16(b: Uint8Array, at: number): number {
  return (b[at]! << 8) | b[at + 1]!;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/** The options in b[start..end), each bounded by the bytes that remain. */
function readOptions(b: Uint8Array, start: number, end: number, where: string): Dhcp6RawOption[] {
  const out: Dhcp6RawOption[] = [];
  let at = start;
  while (at < end) {
    if (end - at < 4) fail(`${where}: truncated option header`);
    const code = u16(b, at);
    const length = u16(b, at + 2);
    if (at + 4 + length > end) fail(`${where}: option ${code} length ${length} runs past the end`);
    if (out.length >= MAX_OPTIONS) fail(`${where}: more than ${MAX_OPTIONS} options`);
    out.push({ code, data: b.subarray(at + 4, at + 4 + length) });
    at += 4 + length;
  }
  return out;
}

function decodeStatus(data: Uint8Array): Dhcp6StatusValue {
  if (data.length < 2) fail('STATUS_CODE shorter than 2 bytes');
  // the message is UTF-8 for people; a bad sequence becomes U+FFFD, never an error
  return { code: u16(data, 0), message: Buffer.from(data.subarray(2, Math.min(data.length, 2 + 256))).toString('utf8') };
}

function decodeIaAddress(data: Uint8Array): Dhcp6IaAddress {
  if (data.length < 24) fail('IAADDR shorter than 24 bytes');
  const addr: Dhcp6IaAddress = { address: Uint8Array.from(data.subarray(0, 16)), preferredLifetime: u32(data, 16), validLifetime: u32(data, 20) };
  for (const opt of readOptions(data, 24, data.length, 'IAADDR')) {
    if (opt.code === Dhcp6Option.STATUS_CODE && addr.status === undefined) addr.status = decodeStatus(opt.data);
  }
  return addr;
}

function decodeIaNa(data: Uint8Array): Dhcp6IaNa {
  if (data.length < 12) fail('IA_NA shorter than 12 bytes');
  const ia: Dhcp6IaNa = { iaid: u32(data, 0), t1: u32(data, 4), t2: u32(data, 8), addresses: [] };
  for (const opt of readOptions(data, 12, data.length, 'IA_NA')) {
    if (opt.code === Dhcp6Option.IAADDR) {
      if (ia.addresses.length >= MAX_IA_ADDRESSES) fail(`IA_NA: more than ${MAX_IA_ADDRESSES} addresses`);
      ia.addresses.push(decodeIaAddress(opt.data));
    } else if (opt.code === Dhcp6Option.STATUS_CODE && ia.status === undefined) ia.status = decodeStatus(opt.data);
  }
  return ia;
}

function decodeDuidOption(data: Uint8Array, name: string): Uint8Array {
  if (data.length < 3 || data.length > MAX_DUID_BYTES) fail(`${name}: a DUID of ${data.length} bytes (3-${MAX_DUID_BYTES})`);
  return Uint8Array.from(data);
}

/** RFC 1035 §3.1 names, uncompressed (RFC 8415 §10), as lower-case text without the root dot. */
export function decodeDomainNames(data: Uint8Array): string[] {
  const names: string[] = [];
  let at = 0;
  while (at < data.length) {
    const labels: string[] = [];
    let nameBytes = 0;
    for (;;) {
      if (at >= data.length) fail('DOMAIN_LIST: name without its root label');
      const len = data[at]!;
      at++;
      if (len === 0) break;
      if (len > 63) fail('DOMAIN_LIST: label longer than 63 bytes (compression is not allowed)');
      if (at + len > data.length) fail('DOMAIN_LIST: label runs past the end');
      nameBytes += len + 1;
      if (nameBytes > 254) fail('DOMAIN_LIST: name longer than 255 bytes');
      const label = Buffer.from(data.subarray(at, at + len)).toString('latin1').toLowerCase();
      if (!/^[a-z0-9_-]+$/.test(label)) fail('DOMAIN_LIST: label with characters a host name cannot have');
      labels.push(label);
      at += len;
    }
    if (labels.length === 0) fail('DOMAIN_LIST: empty name');
    if (names.length >= MAX_LIST) fail(`DOMAIN_LIST: more than ${MAX_LIST} names`);
    names.push(labels.join('.'));
  }
  return names;
}

/** One message: the header, then each option in order (readOption). */
function decodeMessage(b: Uint8Array): Dhcp6Message {
  const message = decodeHeader(b);
  let seen = 0; // bits of the single options read so far (SINGLE_OPTIONS' order)
  for (const opt of readOptions(b, 4, b.length, 'message')) seen = readOption(message, opt, seen);
  return message;
}

/** type (never 0) and the 24-bit transaction id; the options come after */
function decodeHeader(b: Uint8Array): Dhcp6Message {
  if (b.length < 4) fail('shorter than the 4-byte header');
  const type = b[0]!;
  if (type === 0) fail('message type 0');
  return { type, transactionId: (b[1]! << 16) | (b[2]! << 8) | b[3]!, iaNa: [], other: [] };
}

/** Puts one option into `message`; returns `seen` with this option's bit when it may appear once only. */
function readOption(message: Dhcp6Message, opt: Dhcp6RawOption, seen: number): number {
  if (opt.code === Dhcp6Option.IA_NA) {
    addIaNa(message, decodeIaNa(opt.data));
    return seen;
  }
  const index = SINGLE_INDEX.get(opt.code);
  if (index === undefined) {
    message.other.push({ code: opt.code, data: Uint8Array.from(opt.data) });
    return seen;
  }
  const single = SINGLE_OPTIONS[index]!;
  const bit = 1 << index;
  if (seen & bit) fail(`${single.name} appears twice`);
  single.read(message, opt.data);
  return seen | bit;
}

function addIaNa(message: Dhcp6Message, ia: Dhcp6IaNa): void {
  if (message.iaNa.some((other) => other.iaid === ia.iaid)) fail(`IA_NA ${ia.iaid} appears twice`);
  message.iaNa.push(ia);
}

function decodeOro(d: Uint8Array): number[] {
  if (d.length % 2 !== 0) fail('ORO of odd length');
  const codes: number[] = [];
  for (let i = 0; i < d.length; i += 2) codes.push(u16(d, i));
  return codes;
}

/** a fixed-size option's value: its bytes must be exactly `size` */
function sized(d: Uint8Array, size: number, name: string): Uint8Array {
  if (d.length !== size) fail(`${name} not ${size} byte${size === 1 ? '' : 's'}`);
  return d;
}

function decodeRapidCommit(d: Uint8Array): true {
  if (d.length !== 0) fail('RAPID_COMMIT with a value');
  return true;
}

function decodeDnsServers(d: Uint8Array): Uint8Array[] {
  if (d.length % 16 !== 0 || d.length / 16 > MAX_LIST) fail('DNS_SERVERS not a short list of 16-byte addresses');
  const servers: Uint8Array[] = [];
  for (let i = 0; i < d.length; i += 16) servers.push(Uint8Array.from(d.subarray(i, i + 16)));
  return servers;
}

/** The options natd decodes that a message may carry once each (a second one makes the message malformed). */
interface SingleOption {
  code: number;
  name: string;
  read(message: Dhcp6Message, data: Uint8Array): void;
}

const SINGLE_OPTIONS: readonly SingleOption[] = [
  { code: Dhcp6Option.CLIENTID, name: 'CLIENTID', read: (m, d) => void (m.clientId = decodeDuidOption(d, 'CLIENTID')) },
  { code: Dhcp6Option.SERVERID, name: 'SERVERID', read: (m, d) => void (m.serverId = decodeDuidOption(d, 'SERVERID')) },
  { code: Dhcp6Option.ORO, name: 'ORO', read: (m, d) => void (m.oro = decodeOro(d)) },
  { code: Dhcp6Option.PREFERENCE, name: 'PREFERENCE', read: (m, d) => void (m.preference = sized(d, 1, 'PREFERENCE')[0]!) },
  { code: Dhcp6Option.ELAPSED_TIME, name: 'ELAPSED_TIME', read: (m, d) => void (m.elapsedTime = u16(sized(d, 2, 'ELAPSED_TIME'), 0)) },
  { code: Dhcp6Option.STATUS_CODE, name: 'STATUS_CODE', read: (m, d) => void (m.status = decodeStatus(d)) },
  { code: Dhcp6Option.RAPID_COMMIT, name: 'RAPID_COMMIT', read: (m, d) => void (m.rapidCommit = decodeRapidCommit(d)) },
  { code: Dhcp6Option.DNS_SERVERS, name: 'DNS_SERVERS', read: (m, d) => void (m.dnsServers = decodeDnsServers(d)) },
  { code: Dhcp6Option.DOMAIN_LIST, name: 'DOMAIN_LIST', read: (m, d) => void (m.domainList = decodeDomainNames(d)) },
  {
    code: Dhcp6Option.INFORMATION_REFRESH_TIME, name: 'INFORMATION_REFRESH_TIME',
    read: (m, d) => void (m.informationRefreshTime = u32(sized(d, 4, 'INFORMATION_REFRESH_TIME'), 0)),
  },
];
const SINGLE_INDEX = new Map(SINGLE_OPTIONS.map((o, i) => [o.code, i] as const));

/** Bytes → message, or the reason they are not one. Never throws. */
export function decodeDhcp6(packet: Uint8Array): Dhcp6Decoded {
  try {
    if (packet.length > 0 && (packet[0] === Dhcp6MessageType.RELAY_FORW || packet[0] === Dhcp6MessageType.RELAY_REPL)) {
      // hop-count(1) link-address(16) peer-address(16), then options
      return { ok: false, reason: packet.length < 34 ? 'truncated relay message' : 'relay message (natd is not a relay agent\'s server)', relay: true };
    }
    return { ok: true, message: decodeMessage(packet) };
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, reason: err.message };
    return { ok: false, reason: `undecodable: ${String(err)}` };
  }
}

// ---- encoding ---------------------------------------------------------------------------------------------------

/** Appends bytes in network order; grows as needed. */
class Writer {
  private buf = Buffer.allocUnsafe(512);
  length = 0;

  private ensure(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v & 0xff;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16BE(v & 0xffff, this.length);
    this.length += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.length);
    this.length += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  /** Writes code + a length placeholder, runs body, patches the length. */
  option(code: number, body: () => void): void {
    this.u16(code);
    this.u16(0);
    const start = this.length;
    body();
    const len = this.length - start;
    if (len > 0xffff) throw new RangeError(`DHCPv6 option ${code} longer than 65535 bytes`);
    this.buf.writeUInt16BE(len, start - 2);
  }
  /** The bytes written (a view: the writer is not used after this, so no copy is made). */
  done(): Buffer {
    return this.buf.subarray(0, this.length);
  }
}

/** RFC 1035 names for DOMAIN_LIST (no compression); throws on a name that cannot be encoded (config is checked first). */
export function encodeDomainNames(names: readonly string[]): Buffer {
  const w = new Writer();
  for (const name of names) {
    const trimmed = name.replace(/\.$/, '');
    for (const label of trimmed.split('.')) {
      const bytes = Buffer.from(label, 'latin1');
      if (bytes.length === 0 || bytes.length > 63) throw new RangeError(`cannot encode the domain name "${name}"`);
      w.u8(bytes.length);
      w.bytes(bytes);
    }
    w.u8(0);
  }
  return w.done();
}

function writeStatus(w: Writer, status: Dhcp6StatusValue): void {
  w.option(Dhcp6Option.STATUS_CODE, () => {
    w.u16(status.code);
    w.bytes(Buffer.from(status.message, 'utf8'));
  });
}

function writeIaNa(w: Writer, ia: Dhcp6IaNa): void {
  w.option(Dhcp6Option.IA_NA, () => {
    w.u32(ia.iaid);
    w.u32(ia.t1);
    w.u32(ia.t2);
    for (const a of ia.addresses) {
      w.option(Dhcp6Option.IAADDR, () => {
        w.bytes(a.address);
        w.u32(a.preferredLifetime);
        w.u32(a.validLifetime);
        if (a.status) writeStatus(w, a.status);
      });
    }
    if (ia.status) writeStatus(w, ia.status);
  });
}

/** Options → their bytes (code, length, value each), for encodeDhcp6's `planned`. */
export function encodeOptions(options: readonly Dhcp6RawOption[]): Buffer {
  const w = new Writer();
  for (const o of options) w.option(o.code, () => w.bytes(o.data));
  return w.done();
}

/**
 * Message → bytes. Options go out in a fixed order (SERVERID, CLIENTID, IA_NA..., STATUS_CODE, PREFERENCE,
 * RAPID_COMMIT, ORO, ELAPSED_TIME, DNS_SERVERS, DOMAIN_LIST, INFORMATION_REFRESH_TIME, then `other`, then
 * `planned`), which clients do not care about and tests can rely on. `planned`: options encoded once (encodeOptions:
 * what a server puts in every reply of a configuration), copied in as they are.
 */
export function encodeDhcp6(message: Dhcp6Message, planned?: Uint8Array): Buffer {
  const w = new Writer();
  w.u8(message.type);
  w.u8(message.transactionId >>> 16);
  w.u16(message.transactionId & 0xffff);
  if (message.serverId) w.option(Dhcp6Option.SERVERID, () => w.bytes(message.serverId!));
  if (message.clientId) w.option(Dhcp6Option.CLIENTID, () => w.bytes(message.clientId!));
  for (const ia of message.iaNa) writeIaNa(w, ia);
  if (message.status) writeStatus(w, message.status);
  if (message.preference !== undefined) w.option(Dhcp6Option.PREFERENCE, () => w.u8(message.preference!));
  if (message.rapidCommit) w.option(Dhcp6Option.RAPID_COMMIT, () => undefined);
  if (message.oro) w.option(Dhcp6Option.ORO, () => message.oro!.forEach((c) => w.u16(c)));
  if (message.elapsedTime !== undefined) w.option(Dhcp6Option.ELAPSED_TIME, () => w.u16(message.elapsedTime!));
  if (message.dnsServers) w.option(Dhcp6Option.DNS_SERVERS, () => message.dnsServers!.forEach((a) => w.bytes(a)));
  if (message.domainList) w.option(Dhcp6Option.DOMAIN_LIST, () => w.bytes(encodeDomainNames(message.domainList!)));
  if (message.informationRefreshTime !== undefined) w.option(Dhcp6Option.INFORMATION_REFRESH_TIME, () => w.u32(message.informationRefreshTime!));
  for (const o of message.other) w.option(o.code, () => w.bytes(o.data));
  if (planned) w.bytes(planned);
  return w.done();
}
