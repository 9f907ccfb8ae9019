/**
 * Turns a received DNS message into a validated query or a rejection that says what to answer. Pure and
 * total: any byte string gets a result, nothing throws (network input must never stop the server).
 */
import { DNS_CLASS_IN, DnsRcode, DnsType, type ParsedQuery, type QueryParseResult, type RejectedQuery } from './types.js';
import { DnsWireError, FLAG_CD, FLAG_QR, FLAG_RD, HEADER_LENGTH, OPCODE_SHIFT, forEachRecord, lastPlainNameKey, plainNameEnd, questionKey, readLowerPlainName, readName, readU16 } from './wire.js';

const CHAR_D = 0x64;
const CHAR_E = 0x65;
const CHAR_C = 0x63;
const CHAR_DASH = 0x2d;

/** RFC 1035's limit when the client sends no OPT record. */
export const MIN_UDP_PAYLOAD = 512;
/**
 * Larger advertisements are clamped (DNS flag day 2020, as Unbound, Knot Resolver and BIND default to): 1232 bytes
 * fit an IPv6 packet without fragments, and a query spoofed from a victim's address gets at most this much back.
 */
export const MAX_UDP_PAYLOAD = 1232;
const EDNS_DO_BIT = 0x8000;

function reject(reason: RejectedQuery['reason'], id?: number, rcode?: number): QueryParseResult {
  const rejected: RejectedQuery = { reason };
  if (rcode !== undefined && id !== undefined) {
    rejected.rcode = rcode;
    rejected.id = id;
  }
  return { ok: false, rejected };
}

interface EdnsInfo {
  hasEdns: boolean;
  udpPayloadSize: number;
  dnssecOk: boolean;
}

/** Reads the OPT pseudo-record from the additional section; throws DnsWireError on overruns or a second OPT. */
function readEdns(buf: Uint8Array, questionEnd: number): EdnsInfo {
  // the usual query: one question, then nothing or a lone OPT (root name) that ends the message
  const ancount = readU16(buf, 6);
  const nscount = readU16(buf, 8);
  const arcount = readU16(buf, 10);
  if (ancount === 0 && nscount === 0 && arcount === 0) return { hasEdns: false, udpPayloadSize: MIN_UDP_PAYLOAD, dnssecOk: false };
  const record = questionEnd + 4;
  if (ancount === 0 && nscount === 0 && arcount === 1 && buf[record] === 0 && record + 11 <= buf.length &&
      readU16(buf, record + 1) === DnsType.OPT && record + 11 + readU16(buf, record + 9) <= buf.length) {
    return { hasEdns: true, udpPayloadSize: Math.min(MAX_UDP_PAYLOAD, Math.max(MIN_UDP_PAYLOAD, readU16(buf, record + 3))), dnssecOk: (readU16(buf, record + 7) & EDNS_DO_BIT) !== 0 };
  }
  const edns: EdnsInfo = { hasEdns: false, udpPayloadSize: MIN_UDP_PAYLOAD, dnssecOk: false };
  forEachRecord(buf, (record) => {
    if (record.type !== DnsType.OPT || record.section !== 'additional') return;
    // RFC 6891 §6.1.1: more than one OPT is a format error
    if (edns.hasEdns) throw new DnsWireError('more than one OPT record');
    edns.hasEdns = true;
    edns.udpPayloadSize = Math.min(MAX_UDP_PAYLOAD, Math.max(MIN_UDP_PAYLOAD, record.class));
    edns.dnssecOk = (record.ttl & EDNS_DO_BIT) !== 0;
  });
  return edns;
}

function parseValidated(buf: Uint8Array): QueryParseResult {
  // Too short to hold an id: nothing sensible to answer.
  if (buf.length < HEADER_LENGTH) return reject('short');
  const id = readU16(buf, 0);
  const flags = readU16(buf, 2);
  // Never answer a response: two resolvers answering each other's answers would loop forever.
  if ((flags & FLAG_QR) !== 0) return reject('response');
  if (((flags >>> OPCODE_SHIFT) & 0x0f) !== 0) return reject('opcode', id, DnsRcode.NOTIMP);
  // RFC 1035 would suggest FORMERR; issue 4 asks for REFUSED, which also tells clients not to retry the same way.
  if (readU16(buf, 4) !== 1) return reject('qdcount', id, DnsRcode.REFUSED);

  // a pointer in the first name could only aim into the header
  const plain = readLowerPlainName(buf, HEADER_LENGTH);
  let lowerName: string;
  let end: number;
  if (plain) ({ name: lowerName, end } = plain);
  else {
    const read = readName(buf, HEADER_LENGTH);
    if (plainNameEnd(buf, HEADER_LENGTH) !== read.end) return reject('malformed', id, DnsRcode.FORMERR);
    lowerName = read.name.toLowerCase();
    end = read.end;
  }
  if (end + 4 > buf.length) return reject('malformed', id, DnsRcode.FORMERR);
  const type = readU16(buf, end);
  const qclass = readU16(buf, end + 2);
  // Only the Internet class is served: CH (version.bind and friends) and the rest are not our business.
  if (qclass !== DNS_CLASS_IN) return reject('class', id, DnsRcode.REFUSED);

  const edns = readEdns(buf, end); // bytes after the last record are tolerated
  let key: string;
  let cacheKey: string | undefined;
  if (plain) {
    // cache.ts cacheKey's format, built flat from the name still in readLowerPlainName's scratch (readEdns reads none)
    const flavour1 = edns.hasEdns ? (edns.dnssecOk ? CHAR_D : CHAR_E) : CHAR_DASH;
    const flavour2 = (flags & FLAG_CD) !== 0 ? CHAR_C : CHAR_DASH;
    cacheKey = lastPlainNameKey(type, qclass, flavour1, flavour2);
    key = cacheKey.slice(0, -3);
  } else key = questionKey(lowerName, type, qclass);
  const query: ParsedQuery = {
    id,
    flags,
    recursionDesired: (flags & FLAG_RD) !== 0,
    question: { name: lowerName, type, class: qclass },
    key,
    udpPayloadSize: edns.udpPayloadSize,
    hasEdns: edns.hasEdns,
    dnssecOk: edns.dnssecOk,
    raw: buf,
  };
  if (cacheKey !== undefined) query.cacheKey = cacheKey;
  return { ok: true, query };
}

/**
 * Validates a query. Outcomes: fewer than 12 bytes or QR=1 → dropped (no rcode); opcode other than QUERY →
 * NOTIMP; qdcount other than 1 → REFUSED; a bad name, overrun or second OPT → FORMERR; class other than IN →
 * REFUSED. `query.raw` is `buf` itself (not a copy).
 */
export function parseQuery(buf: Uint8Array): QueryParseResult {
  try {
    return parseValidated(buf);
  } catch {
    // DnsWireError is the expected failure. Anything else would be a bug here, but a datagram must still not
    // crash the server, so it is answered the same way.
    return reject('malformed', buf.length >= 2 ? readU16(buf, 0) : undefined, DnsRcode.FORMERR);
  }
}
