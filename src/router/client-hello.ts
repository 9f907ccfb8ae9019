/**
 * Reads the server name (SNI, RFC 6066 §3) from the start of a TLS connection without terminating TLS: the bytes a
 * client sent so far are TLS records (RFC 8446 §5.1) whose handshake fragments, joined, start with a ClientHello
 * (§4.1.2). The ClientHello may be split over many TCP segments (the caller accumulates bytes and calls again) and
 * over several records (fragments are joined here), so the answer is 'need-more' until the whole message is in.
 *
 * Hand-written on purpose: the npm SNI peekers are unmaintained, parse only the first record, and throw on bad input;
 * the router needs a bounded, never-throwing parser that reports how many bytes the ClientHello took.
 *
 * ECH (draft-ietf-tls-esni, extension 0xfe0d): the outer ClientHello's SNI is the ECH public name, the only name a
 * router can see; it is returned as serverName with `ech: true`, so the caller can route on it (or treat it as
 * no name).
 */

export type ClientHelloResult =
  | { state: 'need-more' }
  /** length: bytes of the records that carried the ClientHello (the head the router read) */
  | { state: 'done'; serverName?: string; ech: boolean; length: number }
  | { state: 'invalid'; reason: string };

const RECORD_HEADER = 5;
const CONTENT_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
/** RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes */
const MAX_RECORD = 16_384;
const EXT_SERVER_NAME = 0x0000;
const EXT_ECH = 0xfe0d;
const NAME_TYPE_HOST = 0;
const MAX_NAME = 253;
/**
 * Real clients send a ClientHello in one or two records; more is legal but only seen from probes. The bound keeps a
 * hello cut into thousands of 1-byte records (re-walked on every new TCP segment) cheap to refuse.
 */
const MAX_RECORDS = 256;

const NEED_MORE: ClientHelloResult = Object.freeze({ state: 'need-more' });

function invalid(reason: string): ClientHelloResult {
  return { state: 'invalid', reason };
}

/** true when the first byte of a connection says it is TLS (a handshake record) */
export function looksLikeTls(firstByte: number): boolean {
  return firstByte === CONTENT_HANDSHAKE;
}

/**
 * Parses what a client sent so far. Never throws. The caller decides the size bound: when the answer stays
 * 'need-more' past it, the ClientHello is too large.
 */
export function parseClientHello(buf: Uint8Array): ClientHelloResult {
  // Walk the records, counting handshake bytes, until the ClientHello's length is known and covered.
  let offset = 0;
  let handshakeBytes = 0;
  let messageLength = -1; // 4-byte handshake header + body, known once 4 handshake bytes are in
  let records = 0;
  let firstFragment: Uint8Array | undefined;
  while (true) {
    if (buf.length - offset < RECORD_HEADER) return NEED_MORE;
    const type = buf[offset]!;
    const major = buf[offset + 1]!;
    const length = (buf[offset + 3]! << 8) | buf[offset + 4]!;
    if (type !== CONTENT_HANDSHAKE) return invalid(records === 0 ? 'not a handshake record' : 'record interleaved in ClientHello');
    if (major !== 3) return invalid('record version');
    if (length === 0) return invalid('empty handshake record');
    if (length > MAX_RECORD) return invalid('record too long');
    const fragmentStart = offset + RECORD_HEADER;
    const available = Math.min(length, buf.length - fragmentStart);
    if (records === MAX_RECORDS) return invalid('ClientHello in too many records');
    if (records === 0) firstFragment = buf.subarray(fragmentStart, fragmentStart + available);
    records++;
    if (messageLength < 0 && handshakeBytes + available >= 4) {
      // the 4-byte handshake header can itself be split over records: read it from the joined bytes
      const head = joinedPrefix(buf, 0, 4);
      if (head) {
        if (head[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('first handshake message is not a ClientHello');
        messageLength = 4 + ((head[1]! << 16) | (head[2]! << 8) | head[3]!);
      }
    }
    handshakeBytes += available;
    if (available < length) {
      // this record is incomplete; enough if the message already ends inside what we have
      if (messageLength >= 0 && handshakeBytes >= messageLength) break;
      return NEED_MORE;
    }
    offset = fragmentStart + length;
    if (messageLength >= 0 && handshakeBytes >= messageLength) break;
  }
  // The message is complete. Its bytes are contiguous when it fits in the first record (the usual case).
  let message: Uint8Array;
  if (firstFragment && firstFragment.length >= messageLength) {
    message = firstFragment.subarray(0, messageLength);
  } else {
    const joined = joinedPrefix(buf, 0, messageLength);
    if (!joined) return NEED_MORE; // unreachable: the walk above counted the bytes
    message = joined;
  }
  const headLength = recordsEnd(buf, messageLength);
  const parsed = parseClientHelloBody(message.subarray(4));
  if (parsed.state !== 'done') return parsed;
  return { ...parsed, length: headLength };
}

/**
 * The first `want` bytes of the handshake stream carried by the records starting at `offset`, joined (copied only
 * when they span records), or undefined if the buffer does not hold that many yet.
 */
function joinedPrefix(buf: Uint8Array, offset: number, want: number): Uint8Array | undefined {
  const out = new Uint8Array(want);
  let filled = 0;
  let at = offset;
  while (filled < want) {
    if (buf.length - at < RECORD_HEADER) return undefined;
    const length = (buf[at + 3]! << 8) | buf[at + 4]!;
    const start = at + RECORD_HEADER;
    const available = Math.min(length, buf.length - start, want - filled);
    out.set(buf.subarray(start, start + available), filled);
    filled += available;
    if (filled < want && available < length) return undefined;
    at = start + length;
  }
  return out;
}

/** Bytes from the start up to the end of the record that holds handshake byte number `messageLength`. */
function recordsEnd(buf: Uint8Array, messageLength: number): number {
  let at = 0;
  let counted = 0;
  while (counted < messageLength && buf.length - at >= RECORD_HEADER) {
    const length = (buf[at + 3]! << 8) | buf[at + 4]!;
    counted += length;
    at += RECORD_HEADER + length;
  }
  return Math.min(at, buf.length);
}

/** Cursor over a byte range that never reads past its end. */
class Reader {
  constructor(
    private readonly buf: Uint8Array,
    public pos: number,
    public readonly end: number,
  ) {}
  left(): number {
    return this.end - this.pos;
  }
  u8(): number | undefined {
    if (this.pos + 1 > this.end) return undefined;
    return this.buf[this.pos++];
  }
  u16(): number | undefined {
    if (this.pos + 2 > this.end) return undefined;
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  /** a sub-reader over the next n bytes (and skips them here) */
  take(n: number): Reader | undefined {
    if (this.pos + n > this.end) return undefined;
    const sub = new Reader(this.buf, this.pos, this.pos + n);
    this.pos += n;
    return sub;
  }
  bytes(n: number): Uint8Array | undefined {
    if (this.pos + n > this.end) return undefined;
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

/** The ClientHello body (after the 4-byte handshake header). */
function parseClientHelloBody(body: Uint8Array): ClientHelloResult | { state: 'done'; serverName?: string; ech: boolean } {
  const r = new Reader(body, 0, body.length);
  const major = r.u8();
  if (major === undefined || r.u8() === undefined) return invalid('truncated ClientHello');
  if (major !== 3) return invalid('ClientHello version');
  if (!r.take(32)) return invalid('truncated random');
  const sessionLength = r.u8();
  if (sessionLength === undefined || sessionLength > 32 || !r.take(sessionLength)) return invalid('bad session id');
  const suitesLength = r.u16();
  if (suitesLength === undefined || suitesLength < 2 || suitesLength % 2 !== 0 || !r.take(suitesLength)) {
    return invalid('bad cipher suites');
  }
  const compressionLength = r.u8();
  if (compressionLength === undefined || compressionLength < 1 || !r.take(compressionLength)) {
    return invalid('bad compression methods');
  }
  if (r.left() === 0) return { state: 'done', ech: false }; // no extensions at all (old clients): no SNI
  const extensionsLength = r.u16();
  if (extensionsLength === undefined) return invalid('truncated extensions');
  const exts = r.take(extensionsLength);
  if (!exts || r.left() !== 0) return invalid('extensions length');
  let serverName: string | undefined;
  let sawServerName = false;
  let ech = false;
  while (exts.left() > 0) {
    const type = exts.u16();
    const length = exts.u16();
    if (type === undefined || length === undefined) return invalid('truncated extension header');
    const data = exts.take(length);
    if (!data) return invalid('truncated extension');
    if (type === EXT_SERVER_NAME) {
      if (sawServerName) return invalid('duplicate server_name extension');
      sawServerName = true;
      const name = parseServerNameExtension(data);
      if (typeof name === 'object') return name;
      serverName = name;
    } else if (type === EXT_ECH) {
      if (ech) return invalid('duplicate encrypted_client_hello extension');
      ech = true;
    }
  }
  return serverName === undefined ? { state: 'done', ech } : { state: 'done', serverName, ech };
}

/** RFC 6066 §3 server_name_list: at most one host_name; returns the normalized name, undefined, or an error */
function parseServerNameExtension(r: Reader): string | undefined | ClientHelloResult {
  if (r.left() === 0) return undefined; // empty extension (allowed in a ServerHello; tolerate it)
  const listLength = r.u16();
  if (listLength === undefined) return invalid('truncated server_name list');
  const list = r.take(listLength);
  if (!list || r.left() !== 0) return invalid('server_name list length');
  let name: string | undefined;
  while (list.left() > 0) {
    const nameType = list.u8();
    const nameLength = list.u16();
    if (nameType === undefined || nameLength === undefined) return invalid('truncated server name');
    const bytes = list.bytes(nameLength);
    if (!bytes) return invalid('truncated server name');
    if (nameType !== NAME_TYPE_HOST) continue;
    if (name !== undefined) return invalid('two host names in server_name');
    const normalized = normalizeHostName(bytes);
    if (normalized === undefined) return invalid('bad host name in server_name');
    name = normalized;
  }
  return name;
}

/**
 * A DNS host name as the router compares it: lower case, no trailing dot, 1..253 bytes of letters, digits, '-',
 * '_' and '.'. Anything else (spaces, control bytes, UTF-8: SNI is ASCII A-labels) is undefined.
 */
export function normalizeHostName(bytes: Uint8Array): string | undefined {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === 0x2e) end--; // one trailing dot
  if (end === 0 || end > MAX_NAME) return undefined;
  let out = '';
  for (let i = 0; i < end; i++) {
    let c = bytes[i]!;
    if (c >= 0x41 && c <= 0x5a) c += 0x20;
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x5f || c === 0x2e;
    if (!ok) return undefined;
    if (c === 0x2e && (i === 0 || bytes[i - 1] === 0x2e)) return undefined; // empty label
    out += String.fromCharCode(c);
  }
  return out;
}
