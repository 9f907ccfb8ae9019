/** TFTP codec (RFC 1350, RFC 2347) and option negotiation (RFC 2348, 2349, 7440). */
import { describe, expect, it } from 'vitest';
import { decodeTftpPacket, encodeTftpPacket, TftpDecodeError, type TftpPacket } from '../../src/tftp/codec.js';
import { negotiate } from '../../src/tftp/options.js';
import { nameProblem, toNetascii } from '../../src/tftp/files.js';

const bytes = (...parts: (number[] | string)[]): Buffer =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

function reason(buf: Uint8Array): string | undefined {
  try {
    decodeTftpPacket(buf);
    return undefined;
  } catch (err) {
    expect(err).toBeInstanceOf(TftpDecodeError);
    return (err as TftpDecodeError).reason;
  }
}

describe('RFC 1350 packets', () => {
  const packets: TftpPacket[] = [
    { op: 'rrq', filename: 'pxelinux.0', mode: 'octet', options: new Map() },
    { op: 'wrq', filename: 'dir/file', mode: 'netascii', options: new Map() },
    { op: 'rrq', filename: 'ipxe.efi', mode: 'octet', options: new Map([['blksize', '1432'], ['tsize', '0'], ['windowsize', '8']]) },
    { op: 'data', block: 65535, data: Uint8Array.from([1, 2, 3]) },
    { op: 'data', block: 0, data: new Uint8Array(0) },
    { op: 'ack', block: 7 },
    { op: 'error', code: 2, message: 'access violation' },
    { op: 'oack', options: new Map([['blksize', '1468'], ['tsize', '5242880']]) },
  ];
  it.each(packets.map((p) => [p.op, p] as const))('%s round-trips', (_op, packet) => {
    const decoded = decodeTftpPacket(encodeTftpPacket(packet));
    if (decoded.op === 'data' && packet.op === 'data') expect(Buffer.from(decoded.data)).toEqual(Buffer.from(packet.data));
    else expect(decoded).toEqual(packet);
  });

  it('decodes an RRQ byte for byte as tftp-hpa sends it (mode in any case, options lower-cased)', () => {
    const wire = bytes([0, 1], 'boot/ipxe.efi\0', 'OCTET\0', 'BlkSize\0', '1468\0', 'tsize\0', '0\0');
    expect(decodeTftpPacket(wire)).toEqual({ op: 'rrq', filename: 'boot/ipxe.efi', mode: 'octet', options: new Map([['blksize', '1468'], ['tsize', '0']]) });
  });

  it('keeps the first of a repeated option and ignores a name without a value', () => {
    const wire = bytes([0, 1], 'f\0', 'octet\0', 'blksize\0', '1024\0', 'BLKSIZE\0', '8\0', 'tsize\0');
    expect(decodeTftpPacket(wire)).toMatchObject({ options: new Map([['blksize', '1024']]) });
  });

  it('rejects, one field changed at a time', () => {
    expect(reason(bytes([0, 1]))).toBe('truncated');
    expect(reason(bytes([0, 9], 'f\0octet\0'))).toBe('bad-opcode');
    expect(reason(bytes([0, 0], 'f\0octet\0'))).toBe('bad-opcode');
    expect(reason(bytes([0, 1], 'f\0octet'))).toBe('unterminated-string');
    expect(reason(bytes([0, 1], 'file\0'))).toBe('unterminated-string');
    expect(reason(bytes([0, 1], '\0octet\0'))).toBe('empty-filename');
    expect(reason(bytes([0, 1], 'f\0binary\0'))).toBe('bad-mode');
    expect(reason(bytes([0, 1], [0x66, 0xff, 0xfe, 0], 'octet\0'))).toBe('bad-string');
    expect(reason(bytes([0, 1], 'f\0octet\0', 'a\0b\0'.repeat(40)))).toBe('too-many-options');
    expect(reason(Buffer.alloc(65469, 1))).toBe('oversized');
  });

  it('an ERROR without its terminating NUL still decodes (the message is only logged)', () => {
    expect(decodeTftpPacket(bytes([0, 5, 0, 1], 'gone'))).toEqual({ op: 'error', code: 1, message: 'gone' });
  });

  it('refuses to encode a string with a NUL inside', () => {
    expect(() => encodeTftpPacket({ op: 'error', code: 0, message: 'a\0b' })).toThrow(RangeError);
  });
});

describe('option negotiation', () => {
  const limits = { maxBlockSize: 1468, maxWindowSize: 64, maxWindowBytes: 512 * 1024, maxTimeoutSeconds: 30 };
  const ask = (o: Record<string, string>, size: number | null = 1000) => negotiate(new Map(Object.entries(o)), size ?? undefined, limits);

  it('no options: RFC 1350 defaults and no OACK', () => {
    expect(ask({})).toEqual({ blockSize: 512, windowSize: 1, timeoutMs: 1000, oack: undefined });
  });
  it('blksize (RFC 2348): accepted up to the MTU limit, answered with the smaller value; out of 8-65464 ignored', () => {
    expect(ask({ blksize: '1024' })).toMatchObject({ blockSize: 1024, oack: new Map([['blksize', '1024']]) });
    expect(ask({ blksize: '65464' })).toMatchObject({ blockSize: 1468, oack: new Map([['blksize', '1468']]) });
    expect(ask({ blksize: '8' }).blockSize).toBe(8);
    for (const bad of ['7', '65465', '-1', '1e3', ' 512', '0x200', '']) expect(ask({ blksize: bad })).toMatchObject({ blockSize: 512, oack: undefined });
  });
  it('tsize (RFC 2349): answered with the size; not for netascii (size unknown)', () => {
    expect(ask({ tsize: '0' }, 5_242_880).oack).toEqual(new Map([['tsize', '5242880']]));
    expect(ask({ tsize: '0' }, null).oack).toBeUndefined();
    expect(ask({ tsize: 'x' }).oack).toBeUndefined();
  });
  it('timeout (RFC 2349): echoed when 1 to natd\'s 30 s; else ignored (a silent client cannot hold a slot for 255 s x retries)', () => {
    expect(ask({ timeout: '3' })).toMatchObject({ timeoutMs: 3000, oack: new Map([['timeout', '3']]) });
    expect(ask({ timeout: '30' })).toMatchObject({ timeoutMs: 30_000, oack: new Map([['timeout', '30']]) });
    for (const bad of ['0', '31', '255', '256']) expect(ask({ timeout: bad })).toMatchObject({ timeoutMs: 1000, oack: undefined });
  });
  it('windowsize (RFC 7440): capped by the block count and the window byte budget', () => {
    expect(ask({ windowsize: '16' })).toMatchObject({ windowSize: 16, oack: new Map([['windowsize', '16']]) });
    expect(ask({ windowsize: '65535' }).windowSize).toBe(64);
    // 1468-byte blocks: 512 KiB / 1468 = 357 > 64; 8-byte blocks would allow 65536 but the block cap holds
    expect(negotiate(new Map([['blksize', '1468'], ['windowsize', '64']]), 1, { ...limits, maxWindowBytes: 10 * 1468 }).windowSize).toBe(10);
    expect(ask({ windowsize: '0' })).toMatchObject({ windowSize: 1, oack: undefined });
  });
  it('unknown options are ignored, known ones keep the client order', () => {
    expect([...ask({ utimeout: '100', windowsize: '4', blksize: '1400', tsize: '0' }).oack!.keys()]).toEqual(['blksize', 'tsize', 'windowsize']);
  });
});

describe('names and netascii', () => {
  it('refuses absolute paths, .. components, NUL, backslashes and overlong names before any lookup', () => {
    expect(nameProblem('/etc/passwd')).toBe('absolute-path');
    expect(nameProblem('../etc/passwd')).toBe('dot-dot');
    expect(nameProblem('a/../../b')).toBe('dot-dot');
    expect(nameProblem('a/..')).toBe('dot-dot');
    expect(nameProblem('a\\..\\b')).toBe('bad-name');
    expect(nameProblem('a\0b')).toBe('bad-name');
    expect(nameProblem('x'.repeat(256))).toBe('bad-name');
    expect(nameProblem('pxelinux.cfg/default')).toBeUndefined();
    expect(nameProblem('..hidden')).toBeUndefined();
  });
  it('netascii: LF becomes CR LF, CR becomes CR NUL', () => {
    expect(toNetascii(Buffer.from('a\nb\rc'))).toEqual(Buffer.from('a\r\nb\r\0c', 'latin1'));
    const plain = Buffer.from('no line ends');
    expect(toNetascii(plain)).toBe(plain);
  });
});
