/**
 * TSIG (RFC 8945) with HMAC: signs a request, and checks the signature on the server's response to it.
 *
 * Request MAC  = HMAC(key, message without TSIG || TSIG variables)                                   (§4.3.3)
 * Response MAC = HMAC(key, request MAC length || request MAC || response without TSIG, with the original ID
 *                and ARCOUNT less one || TSIG variables)                                               (§4.3.3, §5.3)
 * TSIG variables: key name, class ANY, TTL 0 (canonical, lower case), algorithm name, time signed (48 bits),
 * fudge, error, other length, other data.
 *
 * A server that cannot verify a request (unknown key, bad signature) answers NOTAUTH with an unsigned TSIG
 * carrying BADKEY / BADSIG (§5.3.2): that answer cannot be authenticated, and is reported as what it says.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { DnsWireError, encodeName, readName, readU16 } from '../dns/wire.js';
import { TSIG_ALGORITHMS, type TsigKey } from './key-file.js';
import { CLASS_ANY, type ParsedMessage, type ParsedRecord, TYPE_TSIG } from './message.js';

/** RFC 8945 §10: 300 seconds is the recommended fudge. */
export const DEFAULT_FUDGE = 300;

function u48(seconds: number): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt16BE(Math.floor(seconds / 2 ** 32) & 0xffff, 0);
  b.writeUInt32BE(seconds >>> 0, 2);
  return b;
}

function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(value & 0xffff, 0);
  return b;
}

function variables(key: TsigKey, timeSigned: number, fudge: number, error: number, other: Uint8Array): Buffer {
  return Buffer.concat([
    encodeName(key.name.toLowerCase()),
    u16(CLASS_ANY),
    Buffer.alloc(4), // TTL 0
    encodeName(key.algorithm),
    u48(timeSigned),
    u16(fudge),
    u16(error),
    u16(other.length),
    other,
  ]);
}

function hmac(key: TsigKey, ...parts: Uint8Array[]): Buffer {
  const h = createHmac(TSIG_ALGORITHMS[key.algorithm], key.secret);
  for (const p of parts) h.update(p);
  return h.digest();
}

export interface SignedRequest {
  message: Buffer;
  /** the request's MAC, which the response's MAC covers */
  mac: Buffer;
}

/** Appends a TSIG record to `message` (its ARCOUNT goes up by one). `timeSigned` in seconds since the epoch. */
export function signRequest(message: Buffer, key: TsigKey, timeSigned: number, fudge = DEFAULT_FUDGE): SignedRequest {
  return appendTsig(message, key, timeSigned, fudge, 0, new Uint8Array(0));
}

/**
 * The server's side (a test's fake server): signs a response to a request whose MAC was `requestMac`; `error` is a
 * TSIG error, which (as BADSIG and BADKEY require) leaves the response unsigned.
 */
export function signResponse(message: Buffer, key: TsigKey, requestMac: Uint8Array, timeSigned: number, error = 0): SignedRequest {
  if (error === 16 || error === 17) return appendTsig(message, key, timeSigned, DEFAULT_FUDGE, error, undefined);
  return appendTsig(message, key, timeSigned, DEFAULT_FUDGE, error, Buffer.concat([u16(requestMac.length), requestMac]));
}

function appendTsig(message: Buffer, key: TsigKey, timeSigned: number, fudge: number, error: number, prefix: Uint8Array | undefined): SignedRequest {
  const mac = prefix ? hmac(key, prefix, message, variables(key, timeSigned, fudge, error, new Uint8Array(0))) : Buffer.alloc(0);
  const rdata = Buffer.concat([encodeName(key.algorithm), u48(timeSigned), u16(fudge), u16(mac.length), mac, message.subarray(0, 2), u16(error), u16(0)]);
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(TYPE_TSIG, 0);
  fixed.writeUInt16BE(CLASS_ANY, 2);
  fixed.writeUInt16BE(rdata.length, 8);
  const out = Buffer.concat([message, encodeName(key.name), fixed, rdata]);
  out.writeUInt16BE(out.readUInt16BE(10) + 1, 10);
  return { message: out, mac };
}

export interface TsigRecord {
  algorithm: string;
  timeSigned: number;
  fudge: number;
  mac: Buffer;
  originalId: number;
  error: number;
  other: Buffer;
  /** the record in the message */
  record: ParsedRecord;
}

/** The TSIG record of a parsed message (the last additional record, RFC 8945 §5.1), or undefined when unsigned. */
export function findTsig(message: Uint8Array, parsed: ParsedMessage): TsigRecord | undefined {
  const additional = parsed.sections[2];
  const last = additional[additional.length - 1];
  for (const r of [...parsed.sections[0], ...parsed.sections[1], ...additional.slice(0, -1)]) {
    if (r.type === TYPE_TSIG) throw new DnsWireError('a TSIG record that is not the last record');
  }
  if (!last || last.type !== TYPE_TSIG) return undefined;
  if (last.class !== CLASS_ANY || last.ttl !== 0) throw new DnsWireError('a TSIG record must have class ANY and TTL 0');
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const end = last.rdataOffset + last.rdata.length;
  const alg = readName(buf.subarray(0, end), last.rdataOffset);
  let pos = alg.end;
  if (pos + 10 > end) throw new DnsWireError('TSIG record too short');
  const timeSigned = readU16(buf, pos) * 2 ** 32 + buf.readUInt32BE(pos + 2);
  const fudge = readU16(buf, pos + 6);
  const macSize = readU16(buf, pos + 8);
  pos += 10;
  if (pos + macSize + 6 > end) throw new DnsWireError('TSIG MAC runs past the record');
  const mac = buf.subarray(pos, pos + macSize);
  pos += macSize;
  const originalId = readU16(buf, pos);
  const error = readU16(buf, pos + 2);
  const otherLength = readU16(buf, pos + 4);
  pos += 6;
  if (pos + otherLength !== end) throw new DnsWireError('TSIG other data does not fill the record');
  return { algorithm: alg.name.toLowerCase(), timeSigned, fudge, mac, originalId, error, other: buf.subarray(pos, end), record: last };
}

export type TsigCheck =
  | { ok: true }
  /** no TSIG on a response to a signed request: not from the server (or a server without the key configured) */
  | { ok: false; problem: 'unsigned' }
  /** the server says the request's signature failed: error is BADSIG / BADKEY / BADTIME / BADTRUNC */
  | { ok: false; problem: 'server-error'; error: number }
  /** the response's own signature is wrong, or signed by another key or algorithm */
  | { ok: false; problem: 'bad-signature' | 'wrong-key' }
  /** signed too far from our clock (more than the fudge) */
  | { ok: false; problem: 'bad-time'; skewSeconds: number };

/**
 * Checks the TSIG of a response to a request signed with `requestMac`. Throws DnsWireError only when the TSIG record
 * itself is malformed.
 */
export function verifyResponse(message: Uint8Array, parsed: ParsedMessage, key: TsigKey, requestMac: Uint8Array, nowSeconds: number): TsigCheck {
  const tsig = findTsig(message, parsed);
  if (!tsig) return { ok: false, problem: 'unsigned' };
  if (tsig.record.name !== key.name || tsig.algorithm !== key.algorithm) {
    return tsig.error !== 0 ? { ok: false, problem: 'server-error', error: tsig.error } : { ok: false, problem: 'wrong-key' };
  }
  if (tsig.error !== 0 && tsig.mac.length === 0) return { ok: false, problem: 'server-error', error: tsig.error };
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const body = Buffer.from(buf.subarray(0, tsig.record.offset));
  body.writeUInt16BE(tsig.originalId, 0);
  body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
  const expected = hmac(key, u16(requestMac.length), requestMac, body, variables(key, tsig.timeSigned, tsig.fudge, tsig.error, tsig.other));
  // no truncated MACs (RFC 8945 §5.2.2.1 lets a server send them; BIND does not unless configured to)
  if (tsig.mac.length !== expected.length || !timingSafeEqual(tsig.mac, expected)) return { ok: false, problem: 'bad-signature' };
  if (tsig.error !== 0) return { ok: false, problem: 'server-error', error: tsig.error };
  const skew = nowSeconds - tsig.timeSigned;
  if (Math.abs(skew) > tsig.fudge) return { ok: false, problem: 'bad-time', skewSeconds: skew };
  return { ok: true };
}

/** Checks a signed request (the server's side; the known-answer test checks natd's MAC against nsupdate's with it). */
export function verifyRequest(message: Uint8Array, parsed: ParsedMessage, key: TsigKey): boolean {
  const tsig = findTsig(message, parsed);
  if (!tsig || tsig.record.name !== key.name || tsig.algorithm !== key.algorithm) return false;
  const buf = Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  const body = Buffer.from(buf.subarray(0, tsig.record.offset));
  body.writeUInt16BE(tsig.originalId, 0);
  body.writeUInt16BE(body.readUInt16BE(10) - 1, 10);
  const expected = hmac(key, body, variables(key, tsig.timeSigned, tsig.fudge, tsig.error, tsig.other));
  return tsig.mac.length === expected.length && timingSafeEqual(tsig.mac, expected);
}
