/**
 * Reads the name an HTTP/1.x request is for (RFC 9112 §3.2, RFC 9110 §7.2): the request line and header fields up
 * to the empty line, nothing of the body. Incremental: `resumeAt` from a 'need-more' answer lets the next call
 * continue the search for the end of the head instead of rescanning every byte (a client sending one byte at a
 * time costs linear work, not quadratic).
 *
 * Strict where a lenient parse could route a request somewhere its backend would not expect (request smuggling
 * between router and guest): two Host fields, a Host missing on HTTP/1.1, obsolete line folding, whitespace before
 * a field's colon, control bytes, and a Host that disagrees with an absolute-form target are all rejected (400).
 */
import { normalizeHostName } from './client-hello.js';

export type HttpHeadResult =
  /** resumeAt: pass it back with the grown buffer */
  | { state: 'need-more'; resumeAt: number }
  /** host: normalized (lower case, no port, no trailing dot); undefined only for HTTP/1.0 without Host */
  | { state: 'done'; host?: string; headLength: number; method: string; version: '1.0' | '1.1' }
  | { state: 'invalid'; reason: string; status: 400 | 505 };

const LF = 0x0a;
const CR = 0x0d;

function invalid(reason: string, status: 400 | 505 = 400): HttpHeadResult {
  return { state: 'invalid', reason, status };
}

/**
 * Finds the end of the head (the empty line) from `from` on. Returns the head's length, or -(position to resume
 * from) - 1 when it is not in yet.
 */
function findHeadEnd(buf: Uint8Array, from: number): number {
  let i = from;
  while (true) {
    const lf = indexOfByte(buf, LF, i);
    if (lf < 0) return -Math.max(from, buf.length) - 1;
    // lf ends a line; the head ends if the next line is empty ("\r\n" or a bare "\n")
    const next = buf[lf + 1];
    if (next === undefined) return -lf - 1;
    if (next === LF) return lf + 2;
    if (next === CR) {
      const after = buf[lf + 2];
      if (after === undefined) return -lf - 1;
      if (after === LF) return lf + 3;
    }
    i = lf + 1;
  }
}

function indexOfByte(buf: Uint8Array, byte: number, from: number): number {
  return Buffer.isBuffer(buf) ? buf.indexOf(byte, from) : buf.indexOf(byte, from);
}

/** Is the first byte one an HTTP/1.x request can start with (a method token, or a stray CRLF)? */
export function looksLikeHttp(firstByte: number): boolean {
  return isTchar(firstByte) || firstByte === CR || firstByte === LF;
}

const TCHAR_SYMBOLS = new Set("!#$%&'*+-.^_`|~".split('').map((c) => c.charCodeAt(0)));

/** RFC 9110 §5.6.2 tchar */
function isTchar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || TCHAR_SYMBOLS.has(c);
}

/**
 * Parses the head of a request from the bytes received so far. Never throws. The caller bounds the size: while
 * the answer is 'need-more' and the buffer passes its limit, the head is too large (431).
 */
export function parseHttpHead(buf: Uint8Array, resumeAt = 0): HttpHeadResult {
  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line
  let start = 0;
  while (start < buf.length && start < 4 && (buf[start] === CR || buf[start] === LF)) start++;
  if (start === buf.length) return { state: 'need-more', resumeAt: 0 };
  const end = findHeadEnd(buf, Math.max(resumeAt, start));
  if (end < 0) return { state: 'need-more', resumeAt: -end - 1 };
  const text = Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('latin1');
  return parseHeadText(text, end);
}

function parseHeadText(text: string, headLength: number): HttpHeadResult {
  const lines = text.split('\n');
  // the split leaves the empty line and the empty rest after the final LF
  lines.length -= 2;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const stripped = line.endsWith('\r') ? line.slice(0, -1) : line;
    if (/[\x00-\x08\x0a-\x1f\x7f\r]/.test(stripped)) return invalid('control byte in head');
    lines[i] = stripped;
  }
  const requestLine = lines[0] ?? '';
  const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP\/(\d)\.(\d)$/.exec(requestLine);
  if (!match) return invalid('bad request line');
  const [, method, target, major, minor] = match as unknown as [string, string, string, string, string];
  if (major !== '1') return invalid('HTTP version', 505);
  const version = minor === '0' ? '1.0' : '1.1'; // 1.x with x > 1 is handled as 1.1 (RFC 9110 §2.5)
  let hostValue: string | undefined;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith(' ') || line.startsWith('\t')) return invalid('obsolete line folding');
    const colon = line.indexOf(':');
    if (colon <= 0) return invalid('header without a name');
    const name = line.slice(0, colon);
    if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return invalid('bad header name');
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (hostValue !== undefined) return invalid('duplicate Host');
      hostValue = line.slice(colon + 1).trim();
    }
  }
  let authority: string | undefined;
  const absolute = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
  if (absolute) authority = absolute[1];
  else if (method === 'CONNECT') authority = target;
  if (hostValue === undefined && version === '1.1') return invalid('missing Host');
  // RFC 9112 §3.2.2: with an absolute-form target the target's authority is the name, Host must agree
  const hostSource = authority ?? hostValue;
  if (hostSource === undefined) return { state: 'done', headLength, method, version };
  const host = hostFromAuthority(hostSource);
  if (host === undefined) return invalid('bad Host');
  if (authority !== undefined && hostValue !== undefined && hostValue !== '' && hostFromAuthority(hostValue) !== host) {
    return invalid('Host disagrees with the request target');
  }
  return { state: 'done', host, headLength, method, version };
}

/** "Name:port", "name", "[v6]:port" → the normalized host (no port); undefined when malformed */
export function hostFromAuthority(authority: string): string | undefined {
  if (authority.includes('@')) return undefined; // userinfo is not allowed in Host
  let host = authority;
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    if (close < 0) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== '' && !/^:\d{0,5}$/.test(rest)) return undefined;
    const literal = host.slice(1, close).toLowerCase();
    if (!/^[0-9a-f:.]+$/.test(literal)) return undefined;
    return `[${literal}]`;
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    if (!/^\d{0,5}$/.test(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  return normalizeHostName(Buffer.from(host, 'latin1'));
}
