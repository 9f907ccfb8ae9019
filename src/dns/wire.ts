/**
 * Hand-written DNS wire helpers for the forwarding hot path.
 *
 * Why not dns-packet here: the forwarder passes raw bytes through and only needs a few fields (id, flags, the
 * question, TTL positions). Decoding a whole packet into objects for every reply would allocate far more than it
 * reads, and re-encoding would drop what a codec does not understand. These helpers read in place, check every
 * bound, and throw one error type (DnsWireError) that callers turn into FORMERR or a drop.
 */
import { DnsType } from './types.js';

export class DnsWireError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DnsWireError';
  }
}

export const HEADER_LENGTH = 12;
/** RFC 1035 §3.1: a name is at most 255 octets on the wire, a label at most 63. */
const MAX_NAME_WIRE_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;
/** type(2) class(2) ttl(4) rdlength(2) */
const RECORD_FIXED_LENGTH = 10;

export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;
export const FLAG_RA = 0x0080;
export const FLAG_CD = 0x0010;
export const OPCODE_SHIFT = 11;

export function readU16(buf: Uint8Array, offset: number): number {
  return (buf[offset]! << 8) | buf[offset + 1]!;
}

export function readU32(buf: Uint8Array, offset: number): number {
  return ((buf[offset]! << 24) | (buf[offset + 1]! << 16) | (buf[offset + 2]! << 8) | buf[offset + 3]!) >>> 0;
}

export function writeU16(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = (value >>> 8) & 0xff;
  buf[offset + 1] = value & 0xff;
}

export function writeU32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = (value >>> 24) & 0xff;
  buf[offset + 1] = (value >>> 16) & 0xff;
  buf[offset + 2] = (value >>> 8) & 0xff;
  buf[offset + 3] = value & 0xff;
}

function requireHeader(buf: Uint8Array): void {
  if (buf.length < HEADER_LENGTH) throw new DnsWireError(`message of ${buf.length} bytes is shorter than a header`);
}

/** Appends one label byte in presentation form: printable ASCII as is, '.', '\\' and the rest escaped (\DDD). */
function labelChar(byte: number): string {
  if (byte > 0x20 && byte < 0x7f && byte !== 0x2e && byte !== 0x5c) return String.fromCharCode(byte);
  return `\\${byte.toString().padStart(3, '0')}`;
}

/**
 * Reads a possibly compressed name. The result is in presentation form without the trailing dot ("" for the root),
 * case preserved, bytes that are not printable ASCII escaped as \DDD so distinct names never collide.
 * Loop-safe: every pointer must go strictly before the start of the segment it jumps from, so the walk ends.
 * `end` is the offset just past the name where it starts (after the first pointer, if any).
 */
export function readName(buf: Uint8Array, offset: number): { name: string; end: number } {
  let name = '';
  let pos = offset;
  let segmentStart = offset;
  let end = -1;
  let wireLength = 1; // the root label
  for (;;) {
    if (pos >= buf.length) throw new DnsWireError(`name at ${offset} runs past the end`);
    const len = buf[pos]!;
    if (len === 0) {
      if (end < 0) end = pos + 1;
      return { name, end };
    }
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw new DnsWireError(`pointer at ${pos} runs past the end`);
      const target = ((len & 0x3f) << 8) | buf[pos + 1]!;
      if (target >= segmentStart) throw new DnsWireError(`pointer at ${pos} does not point backwards`);
      if (end < 0) end = pos + 2;
      pos = target;
      segmentStart = target;
      continue;
    }
    if (kind !== 0) throw new DnsWireError(`label type 0x${kind.toString(16)} at ${pos} is not supported`);
    if (pos + 1 + len > buf.length) throw new DnsWireError(`label at ${pos} runs past the end`);
    wireLength += len + 1;
    if (wireLength > MAX_NAME_WIRE_LENGTH) throw new DnsWireError(`name at ${offset} is longer than 255 octets`);
    if (name.length > 0) name += '.';
    for (let i = pos + 1; i <= pos + len; i++) name += labelChar(buf[i]!);
    pos += 1 + len;
  }
}

/** Scratch space for readLowerPlainName: a name is at most 255 octets on the wire, so at most 254 characters. */
// room for the name and lastPlainNameKey's suffix (|65535|65535|xx)
const plainNameScratch = Buffer.alloc(MAX_NAME_WIRE_LENGTH + 16);

/**
 * The fast path of `readName(buf, offset).name.toLowerCase()` for the usual question: labels only (no pointer), every
 * byte printable ASCII other than '.' and '\\' (nothing to escape). The name is lowered into a scratch buffer and
 * decoded once, instead of one string concatenation per character. Undefined when the name does not qualify or is
 * malformed: the caller then takes readName, which says what is wrong.
 */
export function readLowerPlainName(buf: Uint8Array, offset: number): { name: string; end: number } | undefined {
  let pos = offset;
  let length = 0;
  for (;;) {
    if (pos >= buf.length) return undefined;
    const labelLength = buf[pos]!;
    if (labelLength === 0) break;
    if (labelLength > MAX_LABEL_LENGTH || pos + 1 + labelLength > buf.length) return undefined; // pointer or overrun
    // on the wire a name takes 2 octets more than its dotted form: longer than 255 there is readName's error to report
    if (length + (length > 0 ? 1 : 0) + labelLength > MAX_NAME_WIRE_LENGTH - 2) return undefined;
    if (length > 0) plainNameScratch[length++] = 0x2e;
    for (let i = pos + 1; i <= pos + labelLength; i++) {
      const byte = buf[i]!;
      if (byte <= 0x20 || byte >= 0x7f || byte === 0x2e || byte === 0x5c) return undefined;
      plainNameScratch[length++] = byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
    }
    pos += 1 + labelLength;
  }
  plainNameLength = length;
  return { name: plainNameScratch.toString('latin1', 0, length), end: pos + 1 };
}

/** length of the name readLowerPlainName last read (its bytes are still in the scratch until the next call) */
let plainNameLength = 0;

function writeDecimal(target: Buffer, at: number, value: number): number {
  const digits = String(value);
  for (let i = 0; i < digits.length; i++) target[at + i] = digits.charCodeAt(i);
  return at + digits.length;
}

/**
 * `${name}|${type}|${qclass}|${flavour}` for the name readLowerPlainName read last (call it before any other
 * readLowerPlainName): one flat string, built in the scratch the name is still in. A key made by concatenation is a
 * tree of pieces in V8, flattened and hashed on every Map lookup and compared piece by piece: on a cache hit that
 * was a fifth of natd's JavaScript time (issue 18). `flavour1`, `flavour2`: two ASCII character codes.
 */
export function lastPlainNameKey(type: number, qclass: number, flavour1: number, flavour2: number): string {
  let at = plainNameLength;
  plainNameScratch[at++] = 0x7c;
  at = writeDecimal(plainNameScratch, at, type);
  plainNameScratch[at++] = 0x7c;
  at = writeDecimal(plainNameScratch, at, qclass);
  plainNameScratch[at++] = 0x7c;
  plainNameScratch[at++] = flavour1;
  plainNameScratch[at++] = flavour2;
  return plainNameScratch.toString('latin1', 0, at);
}

/**
 * Steps over a name without decoding it: labels are bounds-checked, a pointer ends the name (its target is not
 * followed; readers that need the text use readName).
 */
export function skipName(buf: Uint8Array, offset: number): number {
  let pos = offset;
  let wireLength = 1;
  for (;;) {
    if (pos >= buf.length) throw new DnsWireError(`name at ${offset} runs past the end`);
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    const kind = len & 0xc0;
    if (kind === 0xc0) {
      if (pos + 1 >= buf.length) throw new DnsWireError(`pointer at ${pos} runs past the end`);
      return pos + 2;
    }
    if (kind !== 0) throw new DnsWireError(`label type 0x${kind.toString(16)} at ${pos} is not supported`);
    wireLength += len + 1;
    if (wireLength > MAX_NAME_WIRE_LENGTH) throw new DnsWireError(`name at ${offset} is longer than 255 octets`);
    pos += 1 + len;
  }
}

/**
 * End offset of the name at `offset` when it is written out in full (no compression pointer), else undefined.
 * A query's question is the first name in the message, so a pointer there can only aim at the header: such a
 * question is malformed, and a plain one can be copied into an answer byte for byte.
 */
export function plainNameEnd(buf: Uint8Array, offset: number): number | undefined {
  let pos = offset;
  while (pos < buf.length) {
    const len = buf[pos]!;
    if (len === 0) return pos + 1;
    if ((len & 0xc0) !== 0) return undefined;
    pos += 1 + len;
  }
  return undefined;
}

/** Encodes a plain dotted name (labels of at most 63 bytes, no escapes) without compression. */
export function encodeName(name: string): Buffer {
  const trimmed = name.endsWith('.') ? name.slice(0, -1) : name;
  const labels = trimmed === '' ? [] : trimmed.split('.');
  const parts: Buffer[] = [];
  let length = 1;
  for (const label of labels) {
    const bytes = Buffer.from(label, 'utf8');
    if (bytes.length === 0 || bytes.length > MAX_LABEL_LENGTH) throw new DnsWireError(`bad label in ${JSON.stringify(name)}`);
    parts.push(Buffer.of(bytes.length), bytes);
    length += bytes.length + 1;
  }
  if (length > MAX_NAME_WIRE_LENGTH) throw new DnsWireError(`name ${JSON.stringify(name)} is longer than 255 octets`);
  parts.push(Buffer.of(0));
  return Buffer.concat(parts, length);
}

export interface DnsHeaderCounts {
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export function readCounts(buf: Uint8Array): DnsHeaderCounts {
  requireHeader(buf);
  return { qdcount: readU16(buf, 4), ancount: readU16(buf, 6), nscount: readU16(buf, 8), arcount: readU16(buf, 10) };
}

/** Offset just past the question section. */
export function skipQuestions(buf: Uint8Array): number {
  requireHeader(buf);
  let pos = HEADER_LENGTH;
  for (let n = readU16(buf, 4); n > 0; n--) {
    pos = skipName(buf, pos) + 4;
    if (pos > buf.length) throw new DnsWireError('question runs past the end');
  }
  return pos;
}

export type DnsSection = 'answer' | 'authority' | 'additional';

/** Where one resource record sits in a message; offsets index the buffer the walk was given. */
export interface RecordView {
  section: DnsSection;
  nameOffset: number;
  type: number;
  class: number;
  ttlOffset: number;
  ttl: number;
  rdataOffset: number;
  rdataLength: number;
}

/**
 * Walks the answer, authority and additional records in order. The visitor may return `false` to stop early.
 * Returns the offset just past the last record walked (bytes after the records are the caller's business).
 */
export function forEachRecord(buf: Uint8Array, visit: (record: RecordView) => boolean | void): number {
  const counts = readCounts(buf);
  let pos = skipQuestions(buf);
  const sections: [DnsSection, number][] = [
    ['answer', counts.ancount],
    ['authority', counts.nscount],
    ['additional', counts.arcount],
  ];
  for (const [section, count] of sections) {
    for (let n = 0; n < count; n++) {
      const nameOffset = pos;
      pos = skipName(buf, pos);
      if (pos + RECORD_FIXED_LENGTH > buf.length) throw new DnsWireError(`record at ${nameOffset} runs past the end`);
      const rdataLength = readU16(buf, pos + 8);
      const rdataOffset = pos + RECORD_FIXED_LENGTH;
      if (rdataOffset + rdataLength > buf.length) throw new DnsWireError(`rdata at ${rdataOffset} runs past the end`);
      const record: RecordView = {
        section,
        nameOffset,
        type: readU16(buf, pos),
        class: readU16(buf, pos + 2),
        ttlOffset: pos + 4,
        ttl: readU32(buf, pos + 4),
        rdataOffset,
        rdataLength,
      };
      pos = rdataOffset + rdataLength;
      if (visit(record) === false) return pos;
    }
  }
  return pos;
}

/** Writes the message id in place. */
export function setId(buf: Uint8Array, id: number): void {
  requireHeader(buf);
  writeU16(buf, 0, id & 0xffff);
}

/**
 * Copy of `buf` with every TTL lowered by `elapsedSeconds` (never below 0). OPT's TTL field carries EDNS flags,
 * not a lifetime, so it is left alone. The whole message is validated before anything is written.
 */
export function rewriteTtls(buf: Uint8Array, elapsedSeconds: number): Buffer {
  const out = Buffer.from(buf);
  const elapsed = Math.max(0, Math.floor(elapsedSeconds));
  if (elapsed === 0) {
    forEachRecord(out, () => undefined); // same validation whether or not time has passed
    return out;
  }
  forEachRecord(out, (record) => {
    if (record.type === DnsType.OPT) return;
    writeU32(out, record.ttlOffset, record.ttl > elapsed ? record.ttl - elapsed : 0);
  });
  return out;
}

/** Smallest TTL among the records (OPT excluded), optionally of one section; undefined when there is none. */
export function minTtl(buf: Uint8Array, section?: DnsSection): number | undefined {
  let min: number | undefined;
  forEachRecord(buf, (record) => {
    if (record.type === DnsType.OPT || (section !== undefined && record.section !== section)) return;
    if (min === undefined || record.ttl < min) min = record.ttl;
  });
  return min;
}

/** The 4-bit header RCODE (extended bits in OPT are not included). */
export function getRcode(buf: Uint8Array): number {
  requireHeader(buf);
  return buf[3]! & 0x0f;
}

export function isTruncated(buf: Uint8Array): boolean {
  requireHeader(buf);
  return (buf[2]! & 0x02) !== 0;
}

/** The key a question is filed under by the cache and the pending-query table. */
export function questionKey(name: string, type: number, qclass: number): string {
  return `${name.toLowerCase()}|${type}|${qclass}`;
}

/**
 * `${name lower}|${type}|${class}` of a response's single question, so a reply can be matched to the query it
 * answers. Undefined (never a throw) when the message has no single, readable question.
 */
export function responseQuestionKey(buf: Uint8Array): string | undefined {
  try {
    if (buf.length < HEADER_LENGTH || readU16(buf, 4) !== 1) return undefined;
    const { name, end } = readName(buf, HEADER_LENGTH);
    if (end + 4 > buf.length) return undefined;
    return questionKey(name, readU16(buf, end), readU16(buf, end + 2));
  } catch (err) {
    if (err instanceof DnsWireError) return undefined;
    throw err;
  }
}
