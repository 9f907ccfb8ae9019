/**
 * DHCPv4 wire codec (RFC 2131 §2, RFC 2132, RFC 3396 long options, option overload).
 *
 * Decoding checks every bound and throws only DhcpDecodeError, whose `reason` is a stable slug for counters.
 * Encoding never writes past the size the client accepts: options that do not fit are dropped, lowest priority first.
 */
import { BOOTREQUEST, DHCP_MAGIC_COOKIE, DhcpOption, MAX_HLEN, MIN_MAX_MESSAGE_SIZE, type DhcpPacket } from './types.js';
import { ipv4FromBytes } from '../net/ipv4.js';

export type DhcpDecodeReason =
  | 'truncated'
  | 'bad-cookie'
  | 'bad-hlen'
  | 'option-overrun'
  | 'too-many-options'
  | 'bad-overload'
  | 'overload-loop';

export class DhcpDecodeError extends Error {
  readonly reason: DhcpDecodeReason;
  constructor(reason: DhcpDecodeReason, detail?: string) {
    super(detail ? `DHCP decode failed (${reason}): ${detail}` : `DHCP decode failed (${reason})`);
    this.name = 'DhcpDecodeError';
    this.reason = reason;
  }
}

// Fixed BOOTP header layout (RFC 2131 figure 1).
const SNAME_OFFSET = 44;
const SNAME_SIZE = 64;
const FILE_OFFSET = 108;
const FILE_SIZE = 128;
const COOKIE_OFFSET = 236;
const OPTIONS_OFFSET = 240;
export const DEFAULT_MAX_MESSAGE_SIZE = MIN_MAX_MESSAGE_SIZE;
/** IPv4 (no options) + UDP headers: option 57 counts them, our payload does not. */
const IP_UDP_HEADER_SIZE = 28;
/** BOOTP minimum message size (RFC 1542 §3.4); some old clients drop anything shorter. */
const BOOTP_MIN_SIZE = 300;
/**
 * Real clients send a few dozen options; a flood of tiny repeated options is only a way to make us allocate.
 * 256 leaves room for a 64 KiB option split into 255-byte pieces.
 */
const MAX_OPTION_INSTANCES = 256;
const OVERLOAD_FILE = 1;
const OVERLOAD_SNAME = 2;

const utf8 = new TextDecoder('utf-8');

// ---------------------------------------------------------------------------------------------------------------
// decode

/** Decodes one BOOTP/DHCP message. Throws DhcpDecodeError on any malformed input. */
export function decodeDhcpPacket(buf: Uint8Array): DhcpPacket {
  if (buf.length < OPTIONS_OFFSET) throw new DhcpDecodeError('truncated', `${buf.length} bytes`);
  const hlen = buf[2]!;
  if (hlen > MAX_HLEN) throw new DhcpDecodeError('bad-hlen', `hlen ${hlen}`);
  if (ipv4FromBytes(buf, COOKIE_OFFSET) !== DHCP_MAGIC_COOKIE) throw new DhcpDecodeError('bad-cookie');

  // issue 18: one Map and one copy per option (repeated instances, rare, are collected aside and joined at the end)
  const area: OptionArea = { options: new Map(), repeats: undefined, instances: 0 };
  readOptionArea(buf, OPTIONS_OFFSET, buf.length, area, false);

  // Option overload (RFC 2132 §9.3): the options continue in `file`, then `sname` (RFC 2131 §4.1 order).
  const overload = overloadValue(area);
  if (overload & OVERLOAD_FILE) readOptionArea(buf, FILE_OFFSET, FILE_OFFSET + FILE_SIZE, area, true);
  if (overload & OVERLOAD_SNAME) readOptionArea(buf, SNAME_OFFSET, SNAME_OFFSET + SNAME_SIZE, area, true);

  const options = area.options;
  if (area.repeats) for (const [code, parts] of area.repeats) options.set(code, concat(parts));

  return {
    op: buf[0]!,
    htype: buf[1]!,
    hlen,
    hops: buf[3]!,
    xid: ipv4FromBytes(buf, 4),
    secs: (buf[8]! << 8) | buf[9]!,
    flags: (buf[10]! << 8) | buf[11]!,
    ciaddr: ipv4FromBytes(buf, 12),
    yiaddr: ipv4FromBytes(buf, 16),
    siaddr: ipv4FromBytes(buf, 20),
    giaddr: ipv4FromBytes(buf, 24),
    chaddr: copyOf(buf, 28, 16),
    sname: overload & OVERLOAD_SNAME ? '' : readCString(buf, SNAME_OFFSET, SNAME_SIZE),
    file: overload & OVERLOAD_FILE ? '' : readCString(buf, FILE_OFFSET, FILE_SIZE),
    options,
  };
}

/** The options read so far: single instances copied into `options`; a repeated code's instances in `repeats`. */
interface OptionArea {
  options: Map<number, Uint8Array>;
  /** code -> every instance in order (RFC 3396), only for codes seen more than once */
  repeats: Map<number, Uint8Array[]> | undefined;
  instances: number;
}

/** A copy of buf[start, start+length): the decoded packet never aliases the receive buffer. */
function copyOf(buf: Uint8Array, start: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  // a short value (almost every option) by hand: no subarray view to allocate for set()
  if (length <= 32) for (let k = 0; k < length; k++) out[k] = buf[start + k]!;
  else out.set(buf.subarray(start, start + length));
  return out;
}

/**
 * Reads code/length/value triples from [start, end) into `area` (repeated options kept in order, RFC 3396).
 * PAD is skipped; END stops the area; a missing END at the exact end of the area is tolerated.
 */
function readOptionArea(buf: Uint8Array, start: number, end: number, area: OptionArea, inOverloadedField: boolean): void {
  let i = start;
  while (i < end) {
    const code = buf[i]!;
    if (code === DhcpOption.PAD) {
      i++;
      continue;
    }
    if (code === DhcpOption.END) return;
    if (i + 1 >= end) throw new DhcpDecodeError('option-overrun', `option ${code} has no length`);
    const length = buf[i + 1]!;
    const valueStart = i + 2;
    if (valueStart + length > end) throw new DhcpDecodeError('option-overrun', `option ${code} length ${length}`);
    // An overload option inside the overloaded fields would point back at themselves: never follow it.
    if (code === DhcpOption.OVERLOAD && inOverloadedField) throw new DhcpDecodeError('overload-loop');
    if (++area.instances > MAX_OPTION_INSTANCES) throw new DhcpDecodeError('too-many-options');
    const value = copyOf(buf, valueStart, length);
    const first = area.options.get(code);
    if (first === undefined) area.options.set(code, value);
    else {
      area.repeats ??= new Map();
      const parts = area.repeats.get(code);
      if (parts) parts.push(value);
      else area.repeats.set(code, [first, value]);
    }
    i = valueStart + length;
  }
}

function overloadValue(area: OptionArea): number {
  const parts = area.repeats?.get(DhcpOption.OVERLOAD);
  const value = parts ? concat(parts) : area.options.get(DhcpOption.OVERLOAD);
  if (!value) return 0;
  if (value.length !== 1 || value[0]! < 1 || value[0]! > 3) throw new DhcpDecodeError('bad-overload');
  return value[0]!;
}

/** The instances of a repeated option joined (their own copies already). */
function concat(parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

function readCString(buf: Uint8Array, offset: number, size: number): string {
  let end = offset;
  while (end < offset + size && buf[end] !== 0) end++;
  return utf8.decode(buf.subarray(offset, end));
}

// ---------------------------------------------------------------------------------------------------------------
// encode

/**
 * Always sent, even when the client's size limit forces everything else out: 53/54/51 are required in OFFER/ACK
 * (RFC 2131 table 3), and a guest without mask, router and DNS server has no working network.
 */
const ESSENTIAL_OPTIONS: ReadonlySet<number> = new Set([
  DhcpOption.MESSAGE_TYPE,
  DhcpOption.SERVER_ID,
  DhcpOption.LEASE_TIME,
  DhcpOption.SUBNET_MASK,
  DhcpOption.ROUTER,
  DhcpOption.DNS_SERVERS,
]);

interface EncodePlan {
  /** options to write, in wire order */
  options: Array<[number, Uint8Array]>;
  length: number;
}

/** Bytes one option takes on the wire, split into 255-byte instances (RFC 3396); an empty value is one instance. */
function optionWireLength(value: Uint8Array): number {
  const instances = Math.max(1, Math.ceil(value.length / 255));
  return value.length + 2 * instances;
}

/** Message type first and server id second (some clients look only there), then ascending codes. */
function wireRank(code: number): number {
  return code === DhcpOption.MESSAGE_TYPE ? -2 : code === DhcpOption.SERVER_ID ? -1 : code;
}

/**
 * Scratch of the encoder's fast path: the value to write per option code (issue 18: no [code, value] tuples, no sort
 * per reply). Filled and emptied within one encodeDhcpPacket call (no await in between), so sharing it is safe.
 */
const byCode: (Uint8Array | undefined)[] = new Array<Uint8Array | undefined>(256).fill(undefined);

/** Message type first and server id second (some clients look only there); wireRank's order. */
const FIRST_ON_WIRE = [DhcpOption.MESSAGE_TYPE, DhcpOption.SERVER_ID] as const;

/** Checks the codes, fills `byCode` and returns the options' wire length (the caller empties byCode). */
function fillByCode(packet: DhcpPacket): number {
  let optionsLength = 0;
  let bad: number | undefined;
  // forEach: no [code, value] entry array per option, as for..of over the Map makes
  packet.options.forEach((value, code) => {
    // PAD/END are framing, and natd never overloads sname/file, so a stray 52 would corrupt the reply.
    if (code === DhcpOption.PAD || code === DhcpOption.END || code === DhcpOption.OVERLOAD) return;
    if (!Number.isInteger(code) || code < 0 || code > 255) {
      bad ??= code;
      return;
    }
    byCode[code] = value;
    optionsLength += optionWireLength(value);
  });
  if (bad !== undefined) {
    byCode.fill(undefined);
    throw new RangeError(`invalid DHCP option code ${bad}`);
  }
  return optionsLength;
}

/** Writes the options in `byCode` in wire order (message type, server id, then ascending codes), emptying it. */
function writeByCode(buf: Buffer, offset: number): number {
  for (const code of FIRST_ON_WIRE) {
    const value = byCode[code];
    if (value === undefined) continue;
    offset = writeOption(buf, offset, code, value);
    byCode[code] = undefined;
  }
  for (let code = 1; code < 255; code++) {
    const value = byCode[code];
    if (value === undefined) continue;
    offset = writeOption(buf, offset, code, value);
    byCode[code] = undefined;
  }
  return offset;
}

/**
 * Decides which options fit. Priority is the Map's insertion order (the server core inserts in the order the client
 * asked for them in option 55), so the options dropped first are the ones inserted last; essentials always stay.
 * The slow path, for a reply that does not fit whole (encodeDhcpPacket tries everything first).
 */
function planEncoding(packet: DhcpPacket, maxSize: number): EncodePlan {
  const limit = maxSize - IP_UDP_HEADER_SIZE;
  if (!(limit >= OPTIONS_OFFSET + 1)) throw new RangeError(`DHCP max message size ${maxSize} is too small`);

  const candidates: Array<[number, Uint8Array]> = [];
  for (const [code, value] of packet.options) {
    // PAD/END are framing, and natd never overloads sname/file, so a stray 52 would corrupt the reply.
    if (code === DhcpOption.PAD || code === DhcpOption.END || code === DhcpOption.OVERLOAD) continue;
    if (!Number.isInteger(code) || code < 0 || code > 255) throw new RangeError(`invalid DHCP option code ${code}`);
    candidates.push([code, value]);
  }

  let optionsLength = 0;
  for (const [, value] of candidates) optionsLength += optionWireLength(value);
  const total = (): number => OPTIONS_OFFSET + optionsLength + 1;

  const dropped = new Set<number>();
  for (let i = candidates.length - 1; i >= 0 && total() > limit; i--) {
    const [code, value] = candidates[i]!;
    if (ESSENTIAL_OPTIONS.has(code)) continue;
    dropped.add(code);
    optionsLength -= optionWireLength(value);
  }
  if (total() > limit) {
    throw new RangeError(`essential DHCP options need ${total()} bytes, the client accepts ${limit}`);
  }

  // issue 16: replies carry dozens of configured options; copy and sort only when needed
  const options = dropped.size === 0 ? candidates : candidates.filter(([code]) => !dropped.has(code));
  if (!isInWireOrder(options)) options.sort((a, b) => wireRank(a[0]) - wireRank(b[0]));
  return { options, length: Math.min(limit, Math.max(BOOTP_MIN_SIZE, total())) };
}

function isInWireOrder(options: Array<[number, Uint8Array]>): boolean {
  for (let i = 1; i < options.length; i++) if (wireRank(options[i - 1]![0]) > wireRank(options[i]![0])) return false;
  return true;
}

/**
 * Encodes a packet. `maxSize` is the client's maximum DHCP message size as option 57 counts it (the whole IP
 * datagram), so the returned UDP payload is at most maxSize - 28 bytes; it is padded to 300 bytes when room allows.
 * Throws RangeError only for programming errors (header fields out of range, essentials larger than maxSize).
 */
export function encodeDhcpPacket(packet: DhcpPacket, maxSize: number = DEFAULT_MAX_MESSAGE_SIZE): Buffer {
  const limit = maxSize - IP_UDP_HEADER_SIZE;
  if (!(limit >= OPTIONS_OFFSET + 1)) throw new RangeError(`DHCP max message size ${maxSize} is too small`);
  // the usual case: everything fits, written in wire order straight from the code table
  const optionsLength = fillByCode(packet);
  const total = OPTIONS_OFFSET + optionsLength + 1;
  if (total > limit) {
    byCode.fill(undefined);
    const plan = planEncoding(packet, maxSize);
    const buf = encodeHeader(packet, plan.length);
    let offset = OPTIONS_OFFSET;
    for (const [code, value] of plan.options) offset = writeOption(buf, offset, code, value);
    buf[offset] = DhcpOption.END;
    return buf;
  }
  let buf: Buffer;
  try {
    buf = encodeHeader(packet, Math.min(limit, Math.max(BOOTP_MIN_SIZE, total)));
  } catch (err) {
    byCode.fill(undefined);
    throw err;
  }
  buf[writeByCode(buf, OPTIONS_OFFSET)] = DhcpOption.END;
  return buf;
}

/** A zeroed buffer of `length` with the fixed BOOTP header and the magic cookie written. */
function encodeHeader(packet: DhcpPacket, length: number): Buffer {
  // from Node's pool (no ArrayBuffer of its own per reply), zeroed: the padding and unused fields must be 0
  const buf = Buffer.allocUnsafe(length).fill(0);
  buf.writeUInt8(packet.op, 0);
  buf.writeUInt8(packet.htype, 1);
  buf.writeUInt8(packet.hlen, 2);
  buf.writeUInt8(packet.hops, 3);
  buf.writeUInt32BE(packet.xid, 4);
  buf.writeUInt16BE(packet.secs, 8);
  buf.writeUInt16BE(packet.flags, 10);
  buf.writeUInt32BE(packet.ciaddr, 12);
  buf.writeUInt32BE(packet.yiaddr, 16);
  buf.writeUInt32BE(packet.siaddr, 20);
  buf.writeUInt32BE(packet.giaddr, 24);
  buf.set(packet.chaddr.length <= 16 ? packet.chaddr : packet.chaddr.subarray(0, 16), 28);
  if (packet.sname !== '') writeFixedString(buf, packet.sname, SNAME_OFFSET, SNAME_SIZE);
  if (packet.file !== '') writeFixedString(buf, packet.file, FILE_OFFSET, FILE_SIZE);
  buf.writeUInt32BE(DHCP_MAGIC_COOKIE, COOKIE_OFFSET);
  return buf;
}

/** The exact length encodeDhcpPacket(packet, maxSize) returns. */
export function encodingLength(packet: DhcpPacket, maxSize: number = DEFAULT_MAX_MESSAGE_SIZE): number {
  return planEncoding(packet, maxSize).length;
}

function writeOption(buf: Buffer, offset: number, code: number, value: Uint8Array): number {
  if (value.length <= 255) {
    // the usual case: one instance, no subarray view to allocate
    buf[offset] = code;
    buf[offset + 1] = value.length;
    buf.set(value, offset + 2);
    return offset + 2 + value.length;
  }
  let pos = 0;
  do {
    const piece = Math.min(255, value.length - pos);
    buf[offset++] = code;
    buf[offset++] = piece;
    buf.set(value.subarray(pos, pos + piece), offset);
    offset += piece;
    pos += piece;
  } while (pos < value.length);
  return offset;
}

/** UTF-8, cut at a character boundary so the field never ends in half a character. */
function writeFixedString(buf: Buffer, text: string, offset: number, size: number): void {
  const bytes = Buffer.from(text, 'utf8');
  let length = Math.min(bytes.length, size);
  while (length > 0 && length < bytes.length && (bytes[length]! & 0xc0) === 0x80) length--;
  buf.set(bytes.subarray(0, length), offset);
}

// ---------------------------------------------------------------------------------------------------------------
// option value helpers

/** Big-endian u32 of a 4-byte value; undefined when the length is wrong. */
export function readU32(v: Uint8Array): number | undefined {
  return v.length === 4 ? ipv4FromBytes(v, 0) : undefined;
}

/** Big-endian u16 of a 2-byte value; undefined when the length is wrong. */
export function readU16(v: Uint8Array): number | undefined {
  return v.length === 2 ? (v[0]! << 8) | v[1]! : undefined;
}

/** Throws RangeError for values outside 0..2^32-1 (a programming error, never network input). */
export function encodeU32(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw new RangeError(`u32 out of range: ${n}`);
  // issue 18: bytes by hand, no Buffer view per value (replies carry four of these)
  return Uint8Array.of(n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** Throws RangeError for values outside 0..65535. */
export function encodeU16(n: number): Uint8Array {
  const out = new Uint8Array(2);
  Buffer.from(out.buffer).writeUInt16BE(n);
  return out;
}

export function encodeIpv4List(addresses: number[]): Uint8Array {
  const out = new Uint8Array(addresses.length * 4);
  const view = Buffer.from(out.buffer);
  addresses.forEach((a, i) => view.writeUInt32BE(a, i * 4));
  return out;
}

export function encodeString(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export interface ClasslessRoute {
  network: number;
  prefix: number;
  router: number;
}

/** RFC 3442 option 121: prefix width, the significant octets of the destination, then the router. */
export function encodeClasslessRoutes(routes: ClasslessRoute[]): Uint8Array {
  const bytes: number[] = [];
  for (const { network, prefix, router } of routes) {
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > 32) throw new RangeError(`invalid route prefix ${prefix}`);
    bytes.push(prefix);
    const significant = Math.ceil(prefix / 8);
    const masked = prefix === 0 ? 0 : (network & (0xffffffff << (32 - prefix))) >>> 0;
    for (let i = 0; i < significant; i++) bytes.push((masked >>> (24 - 8 * i)) & 255);
    bytes.push(router >>> 24, (router >>> 16) & 255, (router >>> 8) & 255, router & 255);
  }
  return Uint8Array.from(bytes);
}

/**
 * RFC 3397 option 119: the names in RFC 1035 wire format, later names pointing at suffixes already written.
 * Pointers are offsets into the (concatenated) option value, so the encoder's RFC 3396 split keeps them valid.
 */
export function encodeDomainSearch(domains: string[]): Uint8Array {
  const bytes: number[] = [];
  const suffixOffsets = new Map<string, number>();
  for (const domain of domains) {
    const labels = splitDomain(domain);
    for (let i = 0; i < labels.length; i++) {
      const suffix = labels.slice(i).join('.').toLowerCase();
      const known = suffixOffsets.get(suffix);
      if (known !== undefined) {
        bytes.push(0xc0 | (known >> 8), known & 255);
        break;
      }
      if (bytes.length <= 0x3fff) suffixOffsets.set(suffix, bytes.length);
      const label = Buffer.from(labels[i]!, 'utf8');
      bytes.push(label.length, ...label);
      if (i === labels.length - 1) bytes.push(0);
    }
  }
  return Uint8Array.from(bytes);
}

function splitDomain(domain: string): string[] {
  const trimmed = domain.endsWith('.') ? domain.slice(0, -1) : domain;
  const labels = trimmed.split('.');
  let wireLength = 1;
  for (const label of labels) {
    const size = Buffer.byteLength(label, 'utf8');
    if (size === 0 || size > 63) throw new RangeError(`invalid domain name ${JSON.stringify(domain)}`);
    wireLength += size + 1;
  }
  if (wireLength > 255) throw new RangeError(`domain name too long: ${domain}`);
  return labels;
}

/** RFC 4702 §2.1 flag bits. */
export const FqdnFlags = { S: 0x01, O: 0x02, E: 0x04, N: 0x08 } as const;

export interface FqdnOption {
  flags: number;
  rcode1: number;
  rcode2: number;
  /** dotted, without a trailing dot; '' when the client sent no name */
  name: string;
}

/**
 * RFC 4702 option 81: flags, two deprecated rcodes, then the name: canonical wire format when E is set (no
 * compression, possibly partial), else ASCII (deprecated but still sent). Undefined when malformed.
 */
export function decodeFqdnOption(v: Uint8Array): FqdnOption | undefined {
  if (v.length < 3) return undefined;
  const flags = v[0]!;
  const body = v.subarray(3);
  const name = flags & FqdnFlags.E ? decodeWireName(body) : decodeAsciiName(body);
  if (name === undefined) return undefined;
  return { flags, rcode1: v[1]!, rcode2: v[2]!, name };
}

function decodeWireName(body: Uint8Array): string | undefined {
  const labels: string[] = [];
  let i = 0;
  while (i < body.length) {
    const length = body[i]!;
    if (length === 0) return i + 1 === body.length ? labels.join('.') : undefined;
    // 0xc0 pointers and the reserved 0x40/0x80 forms are not allowed in option 81.
    if (length > 63 || i + 1 + length > body.length) return undefined;
    labels.push(Buffer.from(body.subarray(i + 1, i + 1 + length)).toString('latin1'));
    i += 1 + length;
  }
  return labels.join('.'); // partial name: no terminating root label
}

function decodeAsciiName(body: Uint8Array): string | undefined {
  let text = Buffer.from(body).toString('latin1');
  // Some clients NUL-terminate the ASCII form or give it with a trailing dot.
  text = text.replace(/\0+$/, '');
  if (text.endsWith('.')) text = text.slice(0, -1);
  return text;
}

/** Convenience for tests and the core: a well-formed empty BOOTREQUEST skeleton. */
export function emptyPacket(op: number = BOOTREQUEST): DhcpPacket {
  return {
    op,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: 0,
    secs: 0,
    flags: 0,
    ciaddr: 0,
    yiaddr: 0,
    siaddr: 0,
    giaddr: 0,
    chaddr: new Uint8Array(16),
    sname: '',
    file: '',
    options: new Map(),
  };
}
