/**
 * TFTP wire codec (RFC 1350, option extension RFC 2347). Hand-written: the npm TFTP packages are whole
 * client/server stacks (with write support, their own sockets and no device binding), and the format is five
 * opcodes of NUL-terminated strings.
 *
 * `decodeTftpPacket` checks every bound and throws only TftpDecodeError, whose `reason` is a stable slug for
 * counters. Strings must be UTF-8 without NUL inside. `encodeTftpPacket` is for the server's own packets.
 */

export const TftpOpcode = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

/** RFC 1350 §5 error codes, and RFC 2347's 8 (option negotiation refused). */
export const TftpErrorCode = {
  NOT_DEFINED: 0,
  FILE_NOT_FOUND: 1,
  ACCESS_VIOLATION: 2,
  DISK_FULL: 3,
  ILLEGAL_OPERATION: 4,
  UNKNOWN_TID: 5,
  FILE_EXISTS: 6,
  NO_SUCH_USER: 7,
  OPTION_REFUSED: 8,
} as const;

export type TftpMode = 'netascii' | 'octet' | 'mail';

export interface TftpRequest {
  op: 'rrq' | 'wrq';
  filename: string;
  mode: TftpMode;
  /** RFC 2347 options: names lower-cased, the first of a repeated name kept, values as sent */
  options: Map<string, string>;
}

export type TftpPacket =
  | TftpRequest
  | { op: 'data'; block: number; data: Uint8Array }
  | { op: 'ack'; block: number }
  | { op: 'error'; code: number; message: string }
  | { op: 'oack'; options: Map<string, string> };

export type TftpDecodeReason =
  | 'truncated'
  | 'bad-opcode'
  | 'unterminated-string'
  | 'bad-string'
  | 'empty-filename'
  | 'bad-mode'
  | 'too-many-options'
  | 'oversized';

export class TftpDecodeError extends Error {
  readonly reason: TftpDecodeReason;
  constructor(reason: TftpDecodeReason) {
    super(`TFTP decode failed (${reason})`);
    this.name = 'TftpDecodeError';
    this.reason = reason;
  }
}

/** The largest blksize (RFC 2348) plus the 4-byte header. */
export const MAX_PACKET_SIZE = 65464 + 4;
/** Real clients send at most a handful (blksize, tsize, timeout, windowsize, utimeout); more is only a way to allocate. */
const MAX_OPTIONS = 16;
const MODES: ReadonlySet<string> = new Set(['netascii', 'octet', 'mail']);
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes one datagram. Throws TftpDecodeError on any malformed input. */
export function decodeTftpPacket(buf: Uint8Array): TftpPacket {
  if (buf.length > MAX_PACKET_SIZE) throw new TftpDecodeError('oversized');
  if (buf.length < 4) throw new TftpDecodeError('truncated');
  const opcode = (buf[0]! << 8) | buf[1]!;
  switch (opcode) {
    case TftpOpcode.RRQ:
    case TftpOpcode.WRQ:
      return decodeRequest(buf, opcode === TftpOpcode.RRQ ? 'rrq' : 'wrq');
    case TftpOpcode.DATA:
      return { op: 'data', block: u16(buf, 2), data: buf.subarray(4) };
    case TftpOpcode.ACK:
      return { op: 'ack', block: u16(buf, 2) };
    case TftpOpcode.ERROR: {
      // A missing terminator is tolerated here: the message is only logged.
      const end = buf.indexOf(0, 4);
      return { op: 'error', code: u16(buf, 2), message: text(buf.subarray(4, end < 0 ? buf.length : end)) };
    }
    case TftpOpcode.OACK: {
      const strings = readStrings(buf, 2);
      return { op: 'oack', options: optionMap(strings) };
    }
    default:
      throw new TftpDecodeError('bad-opcode');
  }
}

function decodeRequest(buf: Uint8Array, op: 'rrq' | 'wrq'): TftpPacket {
  const strings = readStrings(buf, 2);
  if (strings.length < 2) throw new TftpDecodeError('unterminated-string');
  const [filename, mode] = strings as [string, string];
  if (filename.length === 0) throw new TftpDecodeError('empty-filename');
  const lowered = mode.toLowerCase();
  if (!MODES.has(lowered)) throw new TftpDecodeError('bad-mode');
  return { op, filename, mode: lowered as TftpMode, options: optionMap(strings.slice(2)) };
}

/** NUL-terminated UTF-8 strings from `start` to the end; the last must be terminated too. */
function readStrings(buf: Uint8Array, start: number): string[] {
  const out: string[] = [];
  let i = start;
  while (i < buf.length) {
    const end = buf.indexOf(0, i);
    if (end < 0) throw new TftpDecodeError('unterminated-string');
    out.push(text(buf.subarray(i, end)));
    if (out.length > 2 + 2 * MAX_OPTIONS) throw new TftpDecodeError('too-many-options');
    i = end + 1;
  }
  return out;
}

/**
 * name/value pairs; a trailing name without a value is ignored (RFC 2347 lets a server ignore what it does not
 * understand). Names are case-insensitive; the first of a repeated name wins.
 */
function optionMap(strings: string[]): Map<string, string> {
  const options = new Map<string, string>();
  for (let i = 0; i + 1 < strings.length; i += 2) {
    const name = strings[i]!.toLowerCase();
    if (name.length > 0 && !options.has(name)) options.set(name, strings[i + 1]!);
  }
  return options;
}

function text(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TftpDecodeError('bad-string');
  }
}

function u16(buf: Uint8Array, offset: number): number {
  return (buf[offset]! << 8) | buf[offset + 1]!;
}

// ---------------------------------------------------------------------------------------------------------------
// encode

/** Encodes a packet. Throws RangeError for programming errors (block or code out of range, NUL inside a string). */
export function encodeTftpPacket(packet: TftpPacket): Buffer {
  switch (packet.op) {
    case 'data': {
      const out = Buffer.allocUnsafe(4 + packet.data.length);
      out.writeUInt16BE(TftpOpcode.DATA, 0);
      out.writeUInt16BE(packet.block, 2);
      out.set(packet.data, 4);
      return out;
    }
    case 'ack': {
      const out = Buffer.allocUnsafe(4);
      out.writeUInt16BE(TftpOpcode.ACK, 0);
      out.writeUInt16BE(packet.block, 2);
      return out;
    }
    case 'error':
      return Buffer.concat([header(TftpOpcode.ERROR, packet.code), cstring(packet.message)]);
    case 'oack':
      return Buffer.concat([opcode(TftpOpcode.OACK), ...pairs(packet.options)]);
    case 'rrq':
    case 'wrq':
      return Buffer.concat([
        opcode(packet.op === 'rrq' ? TftpOpcode.RRQ : TftpOpcode.WRQ),
        cstring(packet.filename),
        cstring(packet.mode),
        ...pairs(packet.options),
      ]);
  }
}

/** DATA header + payload written into one buffer the caller may reuse (the transfer's hot path). */
export function encodeData(block: number, data: Uint8Array): Buffer {
  return encodeTftpPacket({ op: 'data', block, data });
}

function opcode(code: number): Buffer {
  const out = Buffer.allocUnsafe(2);
  out.writeUInt16BE(code, 0);
  return out;
}

function header(code: number, value: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt16BE(code, 0);
  out.writeUInt16BE(value, 2);
  return out;
}

function cstring(s: string): Buffer {
  if (s.includes('\0')) throw new RangeError('TFTP strings cannot contain NUL');
  return Buffer.from(`${s}\0`, 'utf8');
}

function pairs(options: Map<string, string>): Buffer[] {
  const out: Buffer[] = [];
  for (const [name, value] of options) out.push(cstring(name), cstring(value));
  return out;
}
