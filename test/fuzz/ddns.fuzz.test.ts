/**
 * Property tests for DDNS input: the key file (an operator's file, parsed at start and on reload) and the DNS
 * server's answers (network input). The parsers must be total: a KeyFileError / a verdict, never another throw;
 * and no answer that is not the server's signed reply to this update may pass.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { judgeAnswer } from '../../src/ddns/client.js';
import { KeyFileError, parseKeyFile, TSIG_ALGORITHMS, type TsigAlgorithm, type TsigKey } from '../../src/ddns/key-file.js';
import { encodeUpdate, OPCODE_UPDATE, parseMessage, Rcode } from '../../src/ddns/message.js';
import { signRequest, signResponse } from '../../src/ddns/tsig.js';
import { DnsWireError } from '../../src/dns/wire.js';

const label = fc.stringMatching(/^[a-z0-9_][a-z0-9_-]{0,20}$/);
const keyArb = fc.record({
  name: fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.')),
  algorithm: fc.constantFrom(...(Object.keys(TSIG_ALGORITHMS) as TsigAlgorithm[])),
  secret: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b)),
});
const space = fc.constantFrom(' ', '\t', '\n', '  ', ' /* c */ ', ' # note\n', ' // note\n', '\n\n');

describe('key file parser', () => {
  it('reads back any key written with any spacing and comments', () => {
    fc.assert(
      fc.property(keyArb, fc.array(space, { minLength: 12, maxLength: 12 }), fc.boolean(), fc.boolean(), (key, s, quoteName, upper) => {
        const name = quoteName ? `"${key.name}"` : key.name;
        const alg = upper ? key.algorithm.toUpperCase() : key.algorithm;
        const fields = [`algorithm${s[3]}${alg}${s[4]};`, `secret${s[5]}"${key.secret.toString('base64')}"${s[6]};`];
        if (s[0]!.length % 2) fields.reverse();
        const text = `${s[1]}key${s[2]}${name}${s[7]}{${s[8]}${fields.join(s[9])}${s[10]}}${s[11]};\n`;
        expect(parseKeyFile(text, 'k')).toEqual({ name: key.name, algorithm: key.algorithm, secret: key.secret });
      }),
      { numRuns: 2000 },
    );
  });

  it('throws only KeyFileError (naming the file) on any text, including mutations of a valid file', () => {
    const valid = 'key "natd" {\n\talgorithm hmac-sha256;\n\tsecret "MPn6EXCW92dSY7l9DsLUwErnckyB7iWZcWOksSjqR6I=";\n};\n';
    const mutated = fc.tuple(fc.nat(valid.length), fc.nat(valid.length), fc.string({ maxLength: 8 })).map(([a, b, ins]) => valid.slice(0, Math.min(a, b)) + ins + valid.slice(Math.max(a, b)));
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 200 }), mutated), (text) => {
        try {
          const key = parseKeyFile(text, 'the.key');
          expect(key.secret.length).toBeGreaterThan(0);
          expect(Object.keys(TSIG_ALGORITHMS)).toContain(key.algorithm);
        } catch (err) {
          expect(err).toBeInstanceOf(KeyFileError);
          expect((err as Error).message).toMatch(/^the\.key line \d+: /);
        }
      }),
      { numRuns: 10_000 },
    );
  });
});

describe("the server's answers", () => {
  const key: TsigKey = { name: 'natd-ddns', algorithm: 'hmac-sha256', secret: Buffer.alloc(32, 9) };
  const NOW = 1_800_000_000;
  const request = signRequest(encodeUpdate(0x1234, 'lab.example', [], []), key, NOW);
  function answer(rcode: number): Buffer {
    const body = encodeUpdate(0x1234, 'lab.example', [], []);
    body.writeUInt16BE(0x8000 | (OPCODE_UPDATE << 11) | rcode, 2);
    return signResponse(body, key, request.mac, NOW).message;
  }
  const good = answer(Rcode.NOERROR);

  it('the genuine answer passes', () => {
    expect(judgeAnswer(good, 0x1234, key, request.mac, NOW)).toEqual({ result: { ok: true, rcode: 0 } });
  });

  it('any bytes get a verdict without throwing; parseMessage throws only DnsWireError', () => {
    const seeds = [good, answer(Rcode.REFUSED), signResponse(encodeUpdate(0x1234, 'lab.example', [], []), key, request.mac, NOW, 16).message];
    const mutation = fc.tuple(fc.constantFrom(...seeds), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(), fc.boolean())
      .map(([seed, flips, cut, truncate]) => {
        const b = Buffer.from(seed);
        for (const [at, value] of flips) b[at % b.length] = value;
        return truncate ? b.subarray(0, cut % b.length) : b;
      });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)), mutation), (bytes) => {
        try {
          parseMessage(bytes);
        } catch (err) {
          expect(err).toBeInstanceOf(DnsWireError);
        }
        const verdict = judgeAnswer(bytes, 0x1234, key, request.mac, NOW);
        expect(Boolean(verdict.result) !== Boolean(verdict.dropped)).toBe(true);
        // only a genuine signed answer counts as one (TSIG compares the key and algorithm names case-insensitively)
        const folded = (b: Buffer) => b.toString('latin1').toLowerCase();
        if (verdict.result?.ok) expect(seeds.slice(0, 2).map(folded)).toContain(folded(bytes));
      }),
      { numRuns: 15_000 },
    );
  });

  it('a success is never forged: any change to the header or records of the genuine answer is caught', () => {
    const tsigStart = parseMessage(good).sections[2][0]!.offset;
    fc.assert(
      fc.property(fc.integer({ min: 2, max: tsigStart - 1 }), fc.integer({ min: 1, max: 255 }), (at, xor) => {
        const b = Buffer.from(good);
        b[at]! ^= xor;
        const verdict = judgeAnswer(b, 0x1234, key, request.mac, NOW);
        expect(verdict.result?.ok).not.toBe(true);
      }),
      { numRuns: 5000 },
    );
  });
});
