/**
 * RFC 2136 UPDATE messages: the encoder natd sends with, and a record-level parser for what a server answers
 * (network input: every bound is checked and any malformation is one DnsWireError, never another throw).
 *
 * Why not dns-packet (a dependency for the forwarder's tests): its encoder has no TSIG record type, writes an A or
 * PTR record's rdata even where RFC 2136 needs an empty one (class ANY/NONE deletions and prerequisites, §2.4-2.5),
 * and TSIG signs the exact bytes of the message, which is simplest when this module writes every one of them. The
 * message is small (a zone, a few prerequisites and updates): a page of code, no compression needed.
 */
import { DnsWireError, encodeName, HEADER_LENGTH, readName, readU16, readU32, skipName } from '../dns/wire.js';

export const OPCODE_UPDATE = 5;
export const CLASS_IN = 1;
export const CLASS_NONE = 254;
export const CLASS_ANY = 255;
export const TYPE_A = 1;
export const TYPE_SOA = 6;
export const TYPE_PTR = 12;
export const TYPE_TXT = 16;
export const TYPE_TSIG = 250;
export const TYPE_ANY = 255;

/** RCODEs of RFC 1035, 2136 and the TSIG errors of RFC 8945 (these appear in the TSIG record's error field). */
export const Rcode = {
  NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5,
  YXDOMAIN: 6, YXRRSET: 7, NXRRSET: 8, NOTAUTH: 9, NOTZONE: 10,
  BADSIG: 16, BADKEY: 17, BADTIME: 18, BADTRUNC: 22,
} as const;

const RCODE_NAMES = new Map<number, string>(Object.entries(Rcode).map(([name, code]) => [code, name]));
export function rcodeName(code: number): string {
  return RCODE_NAMES.get(code) ?? `RCODE${code}`;
}

/** One resource record in the prerequisite or update section (RFC 2136 §2.4, §2.5). */
export interface UpdateRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Uint8Array;
}

const EMPTY = new Uint8Array(0);

export function aRdata(address: number): Uint8Array {
  return Uint8Array.of(address >>> 24, (address >>> 16) & 0xff, (address >>> 8) & 0xff, address & 0xff);
}

export function nameRdata(name: string): Uint8Array {
  return encodeName(name);
}

/** One TXT character-string per entry (each at most 255 bytes). */
export function txtRdata(...strings: string[]): Uint8Array {
  const parts = strings.map((s) => {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > 255) throw new DnsWireError('TXT string longer than 255 bytes');
    return Buffer.concat([Buffer.of(bytes.length), bytes]);
  });
  return Buffer.concat(parts);
}

/** §2.5.1: add to an RRset. */
export const addRecord = (name: string, type: number, ttl: number, rdata: Uint8Array): UpdateRecord => ({ name, type, class: CLASS_IN, ttl, rdata });
/** §2.5.2: delete an RRset. */
export const deleteRRset = (name: string, type: number): UpdateRecord => ({ name, type, class: CLASS_ANY, ttl: 0, rdata: EMPTY });
/** §2.5.4: delete one RR from an RRset. */
export const deleteRecord = (name: string, type: number, rdata: Uint8Array): UpdateRecord => ({ name, type, class: CLASS_NONE, ttl: 0, rdata });
/** §2.4.2: this RRset exists with exactly this value (for a one-record RRset). */
export const requireRecord = (name: string, type: number, rdata: Uint8Array): UpdateRecord => ({ name, type, class: CLASS_IN, ttl: 0, rdata });
/** §2.4.5: no RR of any type at this name. */
export const requireNameFree = (name: string): UpdateRecord => ({ name, type: TYPE_ANY, class: CLASS_NONE, ttl: 0, rdata: EMPTY });

function recordBytes(r: UpdateRecord): Buffer {
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(r.type, 0);
  fixed.writeUInt16BE(r.class, 2);
  fixed.writeUInt32BE(r.ttl >>> 0, 4);
  fixed.writeUInt16BE(r.rdata.length, 8);
  return Buffer.concat([encodeName(r.name), fixed, r.rdata]);
}

/** An unsigned UPDATE for `zone` (the zone section's single SOA question). */
export function encodeUpdate(id: number, zone: string, prerequisites: readonly UpdateRecord[], updates: readonly UpdateRecord[]): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header.writeUInt16BE(id & 0xffff, 0);
  header.writeUInt16BE(OPCODE_UPDATE << 11, 2);
  header.writeUInt16BE(1, 4); // ZOCOUNT
  header.writeUInt16BE(prerequisites.length, 6); // PRCOUNT
  header.writeUInt16BE(updates.length, 8); // UPCOUNT
  const zoneTail = Buffer.alloc(4);
  zoneTail.writeUInt16BE(TYPE_SOA, 0);
  zoneTail.writeUInt16BE(CLASS_IN, 2);
  return Buffer.concat([header, encodeName(zone), zoneTail, ...prerequisites.map(recordBytes), ...updates.map(recordBytes)]);
}

export interface ParsedRecord {
  /** lower case, no trailing dot */
  name: string;
  type: number;
  class: number;
  ttl: number;
  /** offset of the record's first byte (its owner name) in the message */
  offset: number;
  rdataOffset: number;
  rdata: Buffer;
}

export interface ParsedMessage {
  id: number;
  qr: boolean;
  opcode: number;
  /** the header's 4-bit RCODE */
  rcode: number;
  /** question section (UPDATE: the zone section) */
  questions: { name: string; type: number; class: number }[];
  /** answer / prerequisite, authority / update, additional */
  sections: [ParsedRecord[], ParsedRecord[], ParsedRecord[]];
}

/** Parses a whole message into records; throws DnsWireError on anything malformed (including trailing bytes). */
export function parseMessage(input: Uint8Array): ParsedMessage {
  const buf = Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  if (buf.length < HEADER_LENGTH) throw new DnsWireError(`message of ${buf.length} bytes is shorter than a header`);
  const flags = readU16(buf, 2);
  let pos = HEADER_LENGTH;
  const questions: ParsedMessage['questions'] = [];
  for (let n = readU16(buf, 4); n > 0; n--) {
    const { name, end } = readName(buf, pos);
    if (end + 4 > buf.length) throw new DnsWireError('question runs past the end');
    questions.push({ name: name.toLowerCase(), type: readU16(buf, end), class: readU16(buf, end + 2) });
    pos = end + 4;
  }
  const sections: ParsedMessage['sections'] = [[], [], []];
  for (let s = 0; s < 3; s++) {
    for (let n = readU16(buf, 6 + 2 * s); n > 0; n--) {
      const offset = pos;
      const { name } = readName(buf, pos);
      pos = skipName(buf, pos);
      if (pos + 10 > buf.length) throw new DnsWireError(`record at ${offset} runs past the end`);
      const rdataLength = readU16(buf, pos + 8);
      const rdataOffset = pos + 10;
      if (rdataOffset + rdataLength > buf.length) throw new DnsWireError(`rdata at ${rdataOffset} runs past the end`);
      sections[s]!.push({
        name: name.toLowerCase(),
        type: readU16(buf, pos),
        class: readU16(buf, pos + 2),
        ttl: readU32(buf, pos + 4),
        offset,
        rdataOffset,
        rdata: buf.subarray(rdataOffset, rdataOffset + rdataLength),
      });
      pos = rdataOffset + rdataLength;
    }
  }
  if (pos !== buf.length) throw new DnsWireError(`${buf.length - pos} bytes after the last record`);
  return { id: readU16(buf, 0), qr: (flags & 0x8000) !== 0, opcode: (flags >>> 11) & 0xf, rcode: flags & 0xf, questions, sections };
}
