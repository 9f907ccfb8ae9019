/**
 * Property tests (fast-check) of the TFTP parser, the only code that reads what guests send to port 69 and to the
 * transfer ports: any bytes decode or throw TftpDecodeError (nothing else), every packet natd could encode
 * round-trips, and negotiation of any decoded request stays within the RFC ranges and natd's limits.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeTftpPacket, encodeTftpPacket, TftpDecodeError, type TftpPacket } from '../../src/tftp/codec.js';
import { negotiate, DEFAULT_LIMITS } from '../../src/tftp/options.js';
import { nameProblem } from '../../src/tftp/files.js';

const SEED = Number(process.env.NATD_FUZZ_SEED ?? 0x7f7f);
const RUNS = 20_000;

const noNul = fc.string({ maxLength: 40 }).filter((s) => !s.includes('\0'));
const optionName = fc.oneof(fc.constantFrom('blksize', 'tsize', 'timeout', 'windowsize', 'BLKSIZE', 'utimeout'), noNul.filter((s) => s.length > 0));
const optionValue = fc.oneof(fc.nat({ max: 70_000 }).map(String), fc.constantFrom('0', '-1', '', '1e3', ' 8', '65464', '65465'), noNul);

/** Byte strings shaped like TFTP packets: an opcode 0-7, then NUL-terminated strings or raw bytes. */
const tftpLike = fc.oneof(
  fc.uint8Array({ maxLength: 600 }),
  fc.tuple(fc.integer({ min: 0, max: 7 }), fc.array(fc.oneof(noNul, optionName, optionValue), { maxLength: 40 }), fc.boolean()).map(([op, strings, terminate]) => {
    const body = Buffer.from(strings.join('\0') + (terminate ? '\0' : ''), 'utf8');
    return Uint8Array.from([0, op, ...body]);
  }),
);

describe('TFTP packet parser (fuzz)', () => {
  it('any input decodes or throws TftpDecodeError, never anything else', () => {
    fc.assert(
      fc.property(tftpLike, (bytes) => {
        try {
          const p = decodeTftpPacket(bytes);
          if (p.op === 'rrq' || p.op === 'wrq') {
            expect(p.filename.length).toBeGreaterThan(0);
            expect(['netascii', 'octet', 'mail']).toContain(p.mode);
            expect(p.options.size).toBeLessThanOrEqual(16);
            // whatever a request asks, the negotiated transfer stays inside the RFC ranges and natd's limits
            const n = negotiate(p.options, 1234, DEFAULT_LIMITS);
            expect(n.blockSize).toBeGreaterThanOrEqual(8);
            expect(n.blockSize).toBeLessThanOrEqual(DEFAULT_LIMITS.maxBlockSize);
            expect(n.windowSize).toBeGreaterThanOrEqual(1);
            expect(n.windowSize * n.blockSize).toBeLessThanOrEqual(Math.max(DEFAULT_LIMITS.maxWindowBytes, n.blockSize));
            expect(n.timeoutMs).toBeGreaterThanOrEqual(1000);
            expect(n.timeoutMs).toBeLessThanOrEqual(DEFAULT_LIMITS.maxTimeoutSeconds * 1000);
            // a name is refused or has no '..' component and is relative
            if (nameProblem(p.filename) === undefined) {
              expect(p.filename.startsWith('/')).toBe(false);
              expect(p.filename.split('/')).not.toContain('..');
            }
          }
        } catch (err) {
          if (!(err instanceof TftpDecodeError)) throw err;
        }
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('every packet the server can send round-trips (an OACK always has an option: an empty one is never sent)', () => {
    const packet: fc.Arbitrary<TftpPacket> = fc.oneof(
      fc.record({ op: fc.constant('data' as const), block: fc.integer({ min: 0, max: 65535 }), data: fc.uint8Array({ maxLength: 1468 }) }),
      fc.record({ op: fc.constant('ack' as const), block: fc.integer({ min: 0, max: 65535 }) }),
      fc.record({ op: fc.constant('error' as const), code: fc.integer({ min: 0, max: 8 }), message: noNul }),
      fc.dictionary(optionName.map((s) => s.toLowerCase()), noNul, { minKeys: 1, maxKeys: 5 }).map((o) => ({ op: 'oack' as const, options: new Map(Object.entries(o)) })),
    );
    fc.assert(
      fc.property(packet, (p) => {
        const decoded = decodeTftpPacket(encodeTftpPacket(p));
        if (p.op === 'data' && decoded.op === 'data') {
          expect(decoded.block).toBe(p.block);
          expect(Buffer.from(decoded.data)).toEqual(Buffer.from(p.data));
        } else expect(decoded).toEqual(p);
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });

  it('a request round-trips: filename, mode and the first of each option', () => {
    fc.assert(
      fc.property(noNul.filter((s) => s.length > 0), fc.constantFrom('octet', 'netascii', 'mail'), fc.array(fc.tuple(optionName, optionValue), { maxLength: 8 }), (filename, mode, pairs) => {
        const options = new Map<string, string>();
        for (const [k, v] of pairs) if (!options.has(k.toLowerCase())) options.set(k.toLowerCase(), v);
        const wire = encodeTftpPacket({ op: 'rrq', filename, mode, options });
        expect(decodeTftpPacket(wire)).toEqual({ op: 'rrq', filename, mode, options });
      }),
      { numRuns: RUNS, seed: SEED },
    );
  });
});
