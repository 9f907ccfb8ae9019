/**
 * Contracts between the DNS modules: query parsing (dns/query.ts), cache (dns/cache.ts), local names
 * (dns/local-names.ts), answers built locally (dns/answers.ts), the upstream client (dns/upstream.ts) and the
 * server that wires them to sockets (dns/server.ts).
 */

export const DnsRcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
export const DnsType = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33, OPT: 41, HTTPS: 65, ANY: 255 } as const;
export const DNS_CLASS_IN = 1;

export interface DnsQuestion {
  /** lower-cased, no trailing dot ("" for the root) */
  name: string;
  type: number;
  class: number;
}

/** A query that passed validation. `raw` is the datagram/TCP message exactly as received. */
export interface ParsedQuery {
  id: number;
  /** header flags word as received (RD, CD, AD bits etc. are forwarded untouched) */
  flags: number;
  recursionDesired: boolean;
  question: DnsQuestion;
  /** `${name}|${type}|${class}` — the cache and pending-table key */
  key: string;
  /** cacheKey(query) as one flat string, when the parser built it (a plainly written name: the usual query) */
  cacheKey?: string;
  /** EDNS(0) UDP payload size the client advertised (512 when no OPT record) */
  udpPayloadSize: number;
  hasEdns: boolean;
  /** DO bit from the OPT record */
  dnssecOk: boolean;
  raw: Uint8Array;
}

/** Why a query was not accepted, and what (if anything) to answer. */
export interface RejectedQuery {
  reason: 'short' | 'response' | 'qdcount' | 'opcode' | 'malformed' | 'class';
  /** rcode to answer with, or undefined to drop silently (e.g. QR=1, or too short to hold an id) */
  rcode?: number;
  /** id to answer with when rcode is set */
  id?: number;
}

export type QueryParseResult = { ok: true; query: ParsedQuery } | { ok: false; rejected: RejectedQuery };
