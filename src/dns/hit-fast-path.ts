/**
 * issue 18: the cache-hit fast path's reader. A repeated question is answered from the received bytes: this reads the
 * header and the question in place (no strings, no objects) and gives what identifies the cached answer, a hash of
 * the lower-cased question plus the client's answer flavour (EDNS, DO, CD), the bytes to compare, and the client's
 * UDP limit. The server then asks the cache for an entry its normal pipeline already answered for the same question
 * (DnsCache.getVetted), so everything before the cache step (local names, records, routes, policy, ANY) was decided
 * by the normal path; see DnsServer.tryFastHit for when it is used at all.
 *
 * Deliberately narrower than parseQuery (query.ts): whatever this accepts, parseQuery accepts with the same outcome
 * (the same cache key, EDNS flavour and UDP limit); anything else (a name readLowerPlainName would not take, a
 * compression pointer, records other than one trailing OPT, opcode/class/qdcount the pipeline refuses) returns
 * undefined and takes the normal path, which decides what to answer. A property test (test/fuzz) checks that the
 * two paths answer byte for byte alike.
 */
import { DNS_CLASS_IN, DnsType } from './types.js';
import { FLAG_CD, FLAG_QR, HEADER_LENGTH, OPCODE_SHIFT } from './wire.js';
import { MAX_UDP_PAYLOAD, MIN_UDP_PAYLOAD } from './query.js';

/** flavour bits: the parts of a query besides its question that select a different cached answer (cache.ts cacheKey) */
export const FLAVOUR_EDNS = 1;
export const FLAVOUR_DO = 2;
export const FLAVOUR_CD = 4;

const EDNS_DO_BIT = 0x8000;
/** readLowerPlainName's limit: the dotted name at most 253 characters */
const MAX_DOTTED_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

export interface FastQuestion {
  id: number;
  /** FNV-1a over the lower-cased question (name, type, class) and the flavour, cut to 30 bits */
  hash: number;
  /** FLAVOUR_* bits */
  flavour: number;
  /** offset just past the question's class: the question is bytes [HEADER_LENGTH, end) */
  end: number;
  /** the client's UDP payload limit, as parseQuery works it out */
  udpLimit: number;
}

/** One result object, reused: the reader runs once per datagram on one thread and its result is read at once. */
const result: FastQuestion = { id: 0, hash: 0, flavour: 0, end: 0, udpLimit: 0 };

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * The question of an ordinary query (see the module comment), or undefined. The query is bytes [base, base + length)
 * of `buf` (a receive slot of the transport's slab: no view is made per datagram); offsets in the result are from the
 * query's start. The returned object is overwritten by the next call.
 */
export function readFastQuestion(buf: Uint8Array, base = 0, length = buf.length - base): FastQuestion | undefined {
  if (length < HEADER_LENGTH + 5) return undefined;
  const b = base;
  const flags = (buf[b + 2]! << 8) | buf[b + 3]!;
  if ((flags & FLAG_QR) !== 0 || ((flags >>> OPCODE_SHIFT) & 0x0f) !== 0) return undefined;
  if (buf[b + 4] !== 0 || buf[b + 5] !== 1) return undefined; // qdcount 1
  let hash = FNV_OFFSET;
  let pos = HEADER_LENGTH;
  let dotted = 0;
  for (;;) {
    if (pos >= length) return undefined;
    const labelLength = buf[b + pos]!;
    if (labelLength === 0) break;
    if (labelLength > MAX_LABEL_LENGTH || pos + 1 + labelLength > length) return undefined;
    if (dotted + (dotted > 0 ? 1 : 0) + labelLength > MAX_DOTTED_LENGTH) return undefined;
    dotted += (dotted > 0 ? 1 : 0) + labelLength;
    hash = Math.imul(hash ^ labelLength, FNV_PRIME);
    const labelEnd = b + pos + labelLength;
    for (let i = b + pos + 1; i <= labelEnd; i++) {
      const byte = buf[i]!;
      if (byte <= 0x20 || byte >= 0x7f || byte === 0x2e || byte === 0x5c) return undefined;
      hash = Math.imul(hash ^ (byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte), FNV_PRIME);
    }
    pos += labelLength + 1;
  }
  const nameEnd = pos + 1;
  const end = nameEnd + 4;
  if (end > length) return undefined;
  if (buf[b + nameEnd + 2] !== 0 || buf[b + nameEnd + 3] !== DNS_CLASS_IN) return undefined;
  // the records after the question: none, or exactly one OPT right after it (query.ts readEdns's quick form)
  let flavour = (flags & FLAG_CD) !== 0 ? FLAVOUR_CD : 0;
  let udpLimit = MIN_UDP_PAYLOAD;
  if ((buf[b + 6]! | buf[b + 7]! | buf[b + 8]! | buf[b + 9]!) !== 0) return undefined;
  const arcount = (buf[b + 10]! << 8) | buf[b + 11]!;
  if (arcount === 1) {
    const o = b + end;
    if (buf[o] !== 0 || end + 11 > length || ((buf[o + 1]! << 8) | buf[o + 2]!) !== DnsType.OPT) return undefined;
    if (end + 11 + ((buf[o + 9]! << 8) | buf[o + 10]!) > length) return undefined;
    const advertised = (buf[o + 3]! << 8) | buf[o + 4]!;
    udpLimit = Math.min(MAX_UDP_PAYLOAD, Math.max(MIN_UDP_PAYLOAD, advertised));
    flavour |= FLAVOUR_EDNS | ((((buf[o + 7]! << 8) | buf[o + 8]!) & EDNS_DO_BIT) !== 0 ? FLAVOUR_DO : 0);
  } else if (arcount !== 0) return undefined;
  hash = Math.imul(hash ^ buf[b + nameEnd]!, FNV_PRIME);
  hash = Math.imul(hash ^ buf[b + nameEnd + 1]!, FNV_PRIME);
  hash = Math.imul(hash ^ flavour, FNV_PRIME);
  result.id = (buf[b]! << 8) | buf[b + 1]!;
  result.hash = hash & 0x3fff_ffff; // 30 bits: a small integer to V8, so Map keys need no heap number
  result.flavour = flavour;
  result.end = end;
  result.udpLimit = udpLimit;
  return result;
}

/**
 * Whether bytes [HEADER_LENGTH, end) of the query at `queryBase` in `query` (a question as readFastQuestion read it)
 * equal the question at the start of `response` (from `offset`) up to ASCII letter case: the same name, type and class.
 */
export function sameQuestion(query: Uint8Array, queryBase: number, end: number, response: Uint8Array, offset: number, responseLength: number): boolean {
  const length = end - HEADER_LENGTH;
  if (responseLength < HEADER_LENGTH + length) return false;
  if (response[offset + 4] !== 0 || response[offset + 5] !== 1) return false; // the response holds one question
  const q = queryBase + HEADER_LENGTH;
  const r = offset + HEADER_LENGTH;
  for (let i = 0; i < length; i++) {
    const a = query[q + i]!;
    const b = response[r + i]!;
    if (a !== b && (a | 0x20) !== (b | 0x20)) return false;
    if (a !== b) {
      // a case difference only counts for letters
      const lower = a | 0x20;
      if (lower < 0x61 || lower > 0x7a) return false;
    }
  }
  return true;
}
