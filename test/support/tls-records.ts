/**
 * Builds TLS ClientHellos byte by byte for the router's parser tests: a plausible TLS 1.3 ClientHello with an
 * optional server_name, an optional ECH extension and filler extensions, then cut into records of chosen sizes
 * (the fragmentation the router must reassemble).
 */
import crypto from 'node:crypto';

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function u24(n: number): Buffer {
  return Buffer.from([(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
}

function extension(type: number, data: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(data.length), data]);
}

export function serverNameExtension(name: string): Buffer {
  const host = Buffer.from(name, 'latin1');
  const entry = Buffer.concat([Buffer.from([0]), u16(host.length), host]);
  return extension(0, Buffer.concat([u16(entry.length), entry]));
}

export interface ClientHelloSpec {
  serverName?: string;
  /** add an encrypted_client_hello (0xfe0d) outer extension with random payload */
  ech?: boolean;
  /** bytes of padding extension (21), to make a large ClientHello */
  padding?: number;
  /** put the SNI after these many filler extensions */
  fillerBefore?: number;
  sessionIdLength?: number;
}

/** The handshake message (type 1 + length + body), without record framing. */
export function buildClientHelloMessage(spec: ClientHelloSpec): Buffer {
  const sessionId = crypto.randomBytes(spec.sessionIdLength ?? 32);
  const exts: Buffer[] = [];
  for (let i = 0; i < (spec.fillerBefore ?? 0); i++) exts.push(extension(0x7a00 + i, crypto.randomBytes(i % 7)));
  exts.push(extension(0x000a, Buffer.from([0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]))); // supported_groups
  if (spec.serverName !== undefined) exts.push(serverNameExtension(spec.serverName));
  exts.push(extension(0x002b, Buffer.from([0x04, 0x03, 0x04, 0x03, 0x03]))); // supported_versions
  exts.push(extension(0x0033, Buffer.concat([u16(36), u16(0x1d), u16(32), crypto.randomBytes(32)]))); // key_share
  if (spec.ech) exts.push(extension(0xfe0d, Buffer.concat([Buffer.from([0]), crypto.randomBytes(40)])));
  if (spec.padding) exts.push(extension(0x0015, Buffer.alloc(spec.padding)));
  const extensions = Buffer.concat(exts);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    crypto.randomBytes(32),
    Buffer.from([sessionId.length]),
    sessionId,
    u16(6),
    Buffer.from([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]),
    Buffer.from([1, 0]),
    u16(extensions.length),
    extensions,
  ]);
  return Buffer.concat([Buffer.from([1]), u24(body.length), body]);
}

/** Frames handshake bytes as records, cutting the fragment after each of `cuts` bytes (the rest in one record). */
export function toRecords(message: Buffer, cuts: number[] = []): Buffer {
  const records: Buffer[] = [];
  let at = 0;
  for (const cut of cuts) {
    if (cut <= 0 || at + cut >= message.length) continue;
    records.push(Buffer.concat([Buffer.from([22, 3, 1]), u16(cut), message.subarray(at, at + cut)]));
    at += cut;
  }
  const rest = message.subarray(at);
  records.push(Buffer.concat([Buffer.from([22, 3, 1]), u16(rest.length), rest]));
  return Buffer.concat(records);
}
