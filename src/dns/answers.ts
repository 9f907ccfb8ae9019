/**
 * Responses natd writes itself: errors, local answers (VM names, PTR, NXDOMAIN/NODATA) and the truncated form
 * of an answer too big for the client's UDP limit. Not the forwarding path, so clarity wins over speed here; the
 * records are few and simple, so they are encoded by hand (the question is copied byte for byte from the query,
 * answer owners point back at it).
 */
import { isIPv6 } from 'node:net';
import { parseIpv4 } from '../net/ipv4.js';
import { ipv6Bytes } from './record-specs.js';
import { DnsType, type ParsedQuery } from './types.js';
import {
  DnsWireError,
  FLAG_AA,
  FLAG_CD,
  FLAG_QR,
  FLAG_RA,
  FLAG_RD,
  FLAG_TC,
  HEADER_LENGTH,
  OPCODE_SHIFT,
  encodeName,
  forEachRecord,
  plainNameEnd,
  readU16,
  skipQuestions,
  writeU16,
  writeU32,
} from './wire.js';

/** The UDP payload natd advertises in its own OPT records (the 2020 DNS flag day value: no fragmentation). */
export const LOCAL_EDNS_PAYLOAD = 1232;
const EDNS_DO_BIT = 0x8000;
/** Compression pointer to the question name, which always starts right after the header. */
const POINTER_TO_QUESTION = 0xc000 | HEADER_LENGTH;

export interface LocalRecord {
  type: number;
  ttl: number;
  /**
   * A: dotted quad; AAAA: IPv6 text; PTR/CNAME/NS: a name; TXT: the text; MX: "preference target";
   * SRV: "priority weight port target" (an empty target is the root: service not available, RFC 2782)
   */
  data: string;
  /** TXT only: the character-strings, when there are several (data is then ignored) */
  texts?: readonly string[];
  /** owner name when it is not the question's (the records after a CNAME); the question name when omitted */
  name?: string;
}

/** SOA placed in the authority section of negative local answers, so clients can cache them (RFC 2308). */
export interface LocalSoa {
  zone: string;
  ttl: number;
  mname: string;
  rname: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

export interface LocalAnswerOptions {
  authoritative: boolean;
  /** NOERROR when omitted */
  rcode?: number;
  soa?: LocalSoa;
}

/** Bytes [12, end) of a single, uncompressed question, or undefined when the message has no such question. */
function questionBytes(raw: Uint8Array | undefined): Uint8Array | undefined {
  if (!raw || raw.length < HEADER_LENGTH || readU16(raw, 4) !== 1) return undefined;
  const end = plainNameEnd(raw, HEADER_LENGTH);
  if (end === undefined || end + 4 > raw.length) return undefined;
  return raw.subarray(HEADER_LENGTH, end + 4);
}

/** Response flags: QR and RA set, opcode, RD and CD copied from the query (RFC 1035 §4.1.1). */
function responseFlags(queryFlags: number, rcode: number, authoritative: boolean): number {
  const copied = queryFlags & ((0x0f << OPCODE_SHIFT) | FLAG_RD | FLAG_CD);
  return FLAG_QR | FLAG_RA | copied | (authoritative ? FLAG_AA : 0) | (rcode & 0x0f);
}

function header(id: number, flags: number, counts: [number, number, number, number]): Buffer {
  const buf = Buffer.alloc(HEADER_LENGTH);
  writeU16(buf, 0, id);
  writeU16(buf, 2, flags);
  counts.forEach((count, i) => writeU16(buf, 4 + 2 * i, count));
  return buf;
}

/** OPT pseudo-record: root owner, our payload size, version 0, DO echoed (RFC 3225), no options. */
function optRecord(payloadSize: number, dnssecOk: boolean): Buffer {
  const buf = Buffer.alloc(11);
  // buf[0] = 0: root owner name
  writeU16(buf, 1, DnsType.OPT);
  writeU16(buf, 3, payloadSize);
  writeU32(buf, 5, dnssecOk ? EDNS_DO_BIT : 0);
  return buf;
}

function resourceRecord(owner: Buffer, type: number, ttl: number, rdata: Buffer): Buffer {
  const fixed = Buffer.alloc(10);
  writeU16(fixed, 0, type);
  writeU16(fixed, 2, 1); // class IN
  writeU32(fixed, 4, Math.max(0, Math.floor(ttl)));
  writeU16(fixed, 8, rdata.length);
  return Buffer.concat([owner, fixed, rdata]);
}

function rdataFor(record: LocalRecord): Buffer {
  switch (record.type) {
    case DnsType.A: {
      const address = parseIpv4(record.data);
      if (address === undefined) throw new DnsWireError(`local A record with bad address ${record.data}`);
      const buf = Buffer.alloc(4);
      writeU32(buf, 0, address);
      return buf;
    }
    case DnsType.PTR:
    case DnsType.CNAME:
    case DnsType.NS:
      return encodeName(record.data);
    case DnsType.AAAA: {
      if (!isIPv6(record.data)) throw new DnsWireError(`local AAAA record with bad address ${record.data}`);
      return ipv6Bytes(record.data);
    }
    case DnsType.MX: {
      const [preference, target] = record.data.split(' ');
      const head = Buffer.alloc(2);
      writeU16(head, 0, Number(preference));
      return Buffer.concat([head, encodeName(target ?? '')]);
    }
    case DnsType.SRV: {
      const [priority, weight, port, target] = record.data.split(' ');
      const head = Buffer.alloc(6);
      writeU16(head, 0, Number(priority));
      writeU16(head, 2, Number(weight));
      writeU16(head, 4, Number(port));
      return Buffer.concat([head, encodeName(target ?? '')]);
    }
    case DnsType.TXT: {
      if (record.texts && record.texts.length > 0) {
        return Buffer.concat(record.texts.flatMap((t) => {
          const bytes = Buffer.from(t, 'utf8').subarray(0, 255);
          return [Buffer.of(bytes.length), bytes];
        }));
      }
      const text = Buffer.from(record.data, 'utf8');
      const parts: Buffer[] = [];
      // a character-string holds at most 255 bytes; an empty TXT still needs one (empty) string
      for (let i = 0; i === 0 || i < text.length; i += 255) {
        const chunk = text.subarray(i, i + 255);
        parts.push(Buffer.of(chunk.length), chunk);
      }
      return Buffer.concat(parts);
    }
    default:
      throw new DnsWireError(`local records of type ${record.type} are not supported`);
  }
}

function soaRecord(soa: LocalSoa): Buffer {
  const numbers = Buffer.alloc(20);
  [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum].forEach((n, i) => writeU32(numbers, 4 * i, n));
  const rdata = Buffer.concat([encodeName(soa.mname), encodeName(soa.rname), numbers]);
  return resourceRecord(encodeName(soa.zone), DnsType.SOA, soa.ttl, rdata);
}

function isParsedQuery(query: ParsedQuery | { id: number; raw?: Uint8Array }): query is ParsedQuery {
  return 'question' in query;
}

/**
 * An error response (FORMERR, SERVFAIL, NOTIMP, REFUSED, …). The question is echoed when the query held one
 * readable question; an OPT record is added when the query was parsed and carried EDNS.
 */
export function buildErrorResponse(query: ParsedQuery | { id: number; raw?: Uint8Array }, rcode: number): Buffer {
  const raw = query.raw;
  const queryFlags = raw && raw.length >= 4 ? readU16(raw, 2) : 0;
  const question = questionBytes(raw);
  const opt = isParsedQuery(query) && query.hasEdns ? optRecord(LOCAL_EDNS_PAYLOAD, query.dnssecOk) : undefined;
  const head = header(query.id, responseFlags(queryFlags, rcode, false), [question ? 1 : 0, 0, 0, opt ? 1 : 0]);
  return Buffer.concat([head, ...(question ? [question] : []), ...(opt ? [opt] : [])]);
}

/**
 * An answer from local data: `records` are answers owned by the question name; an empty list with rcode 0 is
 * NODATA, with NXDOMAIN a name that does not exist; `soa` goes in the authority section. Throws DnsWireError only
 * for unusable local data (bad address, unsupported type), never because of the query.
 * The result may exceed the client's UDP limit: pass it through truncateForUdp before sending over UDP.
 */
export function buildLocalAnswer(query: ParsedQuery, records: readonly LocalRecord[], opts: LocalAnswerOptions): Buffer {
  const question = questionBytes(query.raw) ?? Buffer.concat([encodeName(query.question.name), typeClass(query)]);
  const owner = Buffer.alloc(2);
  writeU16(owner, 0, POINTER_TO_QUESTION);
  const answers = records.map((record) => resourceRecord(record.name === undefined ? owner : encodeName(record.name), record.type, record.ttl, rdataFor(record)));
  const authority = opts.soa ? [soaRecord(opts.soa)] : [];
  const additional = query.hasEdns ? [optRecord(LOCAL_EDNS_PAYLOAD, query.dnssecOk)] : [];
  const flags = responseFlags(query.flags, opts.rcode ?? 0, opts.authoritative);
  const head = header(query.id, flags, [1, answers.length, authority.length, additional.length]);
  return Buffer.concat([head, question, ...answers, ...authority, ...additional]);
}

/** RFC 8482 §4.2: the synthesized answer's HINFO, CPU "RFC8482" and an empty OS. */
const RFC8482_HINFO = Buffer.from([7, ...Buffer.from('RFC8482'), 0]);
const HINFO_TYPE = 13;
/** RFC 8482 §4.2 leaves the TTL to the operator and suggests 3600 s (an hour), as Cloudflare's resolver gives. */
const RFC8482_TTL = 3600;

/**
 * The answer to a query for ANY (QTYPE 255): one synthesized HINFO record (RFC 8482 §4.2), never forwarded. ANY was
 * the amplifier of choice (one small query, every RRset of a name back); 8482 lets a server answer with a minimal
 * set, and this one is about 60 bytes whatever the name.
 */
export function buildAnyAnswer(query: ParsedQuery): Buffer {
  const question = questionBytes(query.raw) ?? Buffer.concat([encodeName(query.question.name), typeClass(query)]);
  const owner = Buffer.alloc(2);
  writeU16(owner, 0, POINTER_TO_QUESTION);
  const additional = query.hasEdns ? [optRecord(LOCAL_EDNS_PAYLOAD, query.dnssecOk)] : [];
  const head = header(query.id, responseFlags(query.flags, 0, false), [1, 1, 0, additional.length]);
  return Buffer.concat([head, question, resourceRecord(owner, HINFO_TYPE, RFC8482_TTL, RFC8482_HINFO), ...additional]);
}

function typeClass(query: ParsedQuery): Buffer {
  const buf = Buffer.alloc(4);
  writeU16(buf, 0, query.question.type);
  writeU16(buf, 2, query.question.class);
  return buf;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The response's OPT record with its options dropped (payload size, extended rcode, version and DO kept). */
function strippedOpt(response: Uint8Array): Buffer | undefined {
  let opt: Buffer | undefined;
  try {
    forEachRecord(response, (record) => {
      if (record.type !== DnsType.OPT || record.section !== 'additional' || response[record.nameOffset] !== 0) return;
      opt = Buffer.from(response.subarray(record.nameOffset, record.rdataOffset));
      writeU16(opt, opt.length - 2, 0);
      return false;
    });
  } catch (err) {
    if (!(err instanceof DnsWireError)) throw err;
  }
  return opt;
}

/**
 * A response that fits `limit` bytes: returned as is when it already fits, else header + question + OPT (when
 * the response had one) with TC set, telling the client to retry over TCP (RFC 1035 §4.2.1, RFC 7766).
 * Never throws: the response usually comes from upstream.
 */
export function truncateForUdp(response: Uint8Array, limit: number): Buffer {
  if (response.length <= limit || response.length < HEADER_LENGTH) return asBuffer(response);
  let questionEnd = HEADER_LENGTH;
  try {
    questionEnd = skipQuestions(response);
  } catch (err) {
    if (!(err instanceof DnsWireError)) throw err;
  }
  const opt = strippedOpt(response);
  const qdcount = questionEnd > HEADER_LENGTH ? readU16(response, 4) : 0;
  const head = Buffer.from(response.subarray(0, HEADER_LENGTH));
  writeU16(head, 2, readU16(head, 2) | FLAG_TC);
  writeU16(head, 4, qdcount);
  writeU16(head, 6, 0);
  writeU16(head, 8, 0);
  writeU16(head, 10, opt ? 1 : 0);
  return Buffer.concat([head, response.subarray(HEADER_LENGTH, questionEnd), ...(opt ? [opt] : [])]);
}
