/**
 * Fuzz: 100,000 inputs against decodeAndParse, the transport's only entry into the DHCP parsing code. Seeded, so a
 * failure reproduces; the seed and input are printed on failure.
 */
import { describe, expect, it } from 'vitest';
import { emptyPacket, encodeDhcpPacket, encodeIpv4List, encodeString, encodeU16 } from '../../src/dhcp/codec.js';
import { decodeAndParse } from '../../src/dhcp/request.js';
import { DHCP_MAGIC_COOKIE, DhcpOption } from '../../src/dhcp/types.js';
import { prng } from '../support/prng.js';

const RUNS = 100_000;
const SEED = Number(process.env.NATD_FUZZ_SEED ?? 0x5eed1234);


type Rng = () => number;
const int = (rng: Rng, max: number): number => Math.floor(rng() * max);
function randomBytes(rng: Rng, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (rng() * 256) | 0;
  return out;
}

/** Valid client packets to mutate: a DISCOVER, a REQUEST with many options, and one using option overload. */
function seeds(): Uint8Array[] {
  const discover = emptyPacket();
  discover.chaddr.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
  discover.options.set(DhcpOption.MESSAGE_TYPE, Uint8Array.of(1));
  discover.options.set(DhcpOption.PARAMETER_REQUEST_LIST, Uint8Array.of(1, 3, 6, 12, 15, 28, 119, 121));

  const request = emptyPacket();
  request.xid = 0xcafe;
  request.chaddr.set([0x52, 0x54, 0x00, 0x65, 0x43, 0x21]);
  request.options.set(DhcpOption.MESSAGE_TYPE, Uint8Array.of(3));
  request.options.set(DhcpOption.CLIENT_ID, Uint8Array.of(1, 0x52, 0x54, 0x00, 0x65, 0x43, 0x21));
  request.options.set(DhcpOption.REQUESTED_ADDRESS, encodeIpv4List([0x0a0a0005]));
  request.options.set(DhcpOption.SERVER_ID, encodeIpv4List([0x0a0a0001]));
  request.options.set(DhcpOption.MAX_MESSAGE_SIZE, encodeU16(1500));
  request.options.set(DhcpOption.HOSTNAME, encodeString('Fuzz_Host.example'));
  request.options.set(DhcpOption.CLIENT_FQDN, Uint8Array.of(0x05, 0, 0, 4, ...Buffer.from('fuzz'), 3, ...Buffer.from('lan'), 0));
  request.options.set(DhcpOption.VENDOR_CLASS, encodeString('udhcp 1.36.1'));
  request.options.set(DhcpOption.LEASE_TIME, Uint8Array.of(0, 0, 0x0e, 0x10));

  const overloaded = Buffer.from(encodeDhcpPacket(discover));
  // main area: 53=1, 52=3, END; file and sname carry the rest
  overloaded.set([53, 1, 1, 52, 1, 3, 255], 240);
  overloaded.set([12, 3, 0x61, 0x62, 0x63, 255], 108);
  overloaded.set([55, 2, 1, 3, 255], 44);

  return [encodeDhcpPacket(discover), encodeDhcpPacket(request, 1500), overloaded];
}

const INTERESTING_CODES = [0, 255, 52, 53, 61, 50, 54, 55, 57, 12, 81, 51, 60, 1, 3];

/** Plausible but unchecked TLVs after a valid header: lengths are sometimes wrong on purpose. */
function randomOptionArea(rng: Rng): Uint8Array {
  const bytes: number[] = [];
  const flood = rng() < 0.05; // many small, well-framed options
  const count = flood ? 200 + int(rng, 800) : int(rng, 40);
  for (let i = 0; i < count; i++) {
    const code = flood ? 60 + int(rng, 20) : rng() < 0.7 ? INTERESTING_CODES[int(rng, INTERESTING_CODES.length)]! : int(rng, 256);
    const length = flood ? int(rng, 3) : rng() < 0.8 ? int(rng, 8) : int(rng, 256);
    bytes.push(code, length);
    const written = flood || rng() < 0.9 ? length : int(rng, length + 1);
    for (let b = 0; b < written; b++) bytes.push(int(rng, 256));
  }
  return Uint8Array.from(bytes);
}

function withValidHeader(base: Uint8Array, options: Uint8Array, rng: Rng): Uint8Array {
  const out = new Uint8Array(243 + options.length);
  out.set(base.subarray(0, 240));
  if (rng() < 0.3) out.set(randomBytes(rng, 192), 44); // junk in sname/file for the overload paths
  out.set(options, 243);
  if (rng() < 0.1) {
    // overload in the main area, and sometimes an overload option again where it points
    out.set([52, 1, 1 + int(rng, 3)], 240);
    if (rng() < 0.5) out.set([52, 1, 1 + int(rng, 3)], rng() < 0.5 ? 44 : 108);
  }
  return out;
}

function mutate(base: Uint8Array, rng: Rng): Uint8Array {
  let buf = Uint8Array.from(base);
  const edits = 1 + int(rng, 8);
  for (let e = 0; e < edits; e++) {
    const kind = int(rng, 6);
    if (kind <= 1) buf[int(rng, buf.length)] = int(rng, 256);
    else if (kind === 2) buf[int(rng, buf.length)]! ^= 1 << int(rng, 8);
    else if (kind === 3) buf = buf.subarray(0, int(rng, buf.length + 1));
    else if (kind === 4) {
      const grown = new Uint8Array(buf.length + 1 + int(rng, 64));
      grown.set(buf);
      grown.set(randomBytes(rng, grown.length - buf.length), buf.length);
      buf = grown;
    } else if (buf.length > 240) {
      // drop an interesting option somewhere in sname, file or the option area
      const at = 44 + int(rng, buf.length - 44);
      const code = INTERESTING_CODES[int(rng, INTERESTING_CODES.length)]!;
      buf.set([code, int(rng, 5), int(rng, 4)].slice(0, buf.length - at), at);
    }
    if (buf.length === 0) break;
  }
  return buf;
}

function pureRandom(rng: Rng): Uint8Array {
  const buf = randomBytes(rng, int(rng, 700));
  if (buf.length >= 240 && rng() < 0.5) Buffer.from(buf.buffer).writeUInt32BE(DHCP_MAGIC_COOKIE, 236);
  return buf;
}

describe('fuzz: decodeAndParse', () => {
  it(`survives ${RUNS.toLocaleString('en')} random and mutated inputs`, () => {
    const rng = prng(SEED);
    const bases = seeds();
    const outcomes = new Map<string, number>();
    let decodeMs = 0;
    const started = performance.now();
    for (let i = 0; i < RUNS; i++) {
      const pick = rng();
      const base = bases[int(rng, bases.length)]!;
      const input =
        pick < 0.3 ? pureRandom(rng) : pick < 0.7 ? mutate(base, rng) : withValidHeader(base, randomOptionArea(rng), rng);
      let outcome: string;
      try {
        const t0 = performance.now();
        const result = decodeAndParse(input);
        decodeMs += performance.now() - t0;
        outcome = result.ok ? 'ok' : result.reason;
      } catch (err) {
        throw new Error(`run ${i} (seed ${SEED}) threw on ${Buffer.from(input).toString('hex')}`, { cause: err });
      }
      if (outcome.includes('internal')) {
        throw new Error(`run ${i} (seed ${SEED}) hit ${outcome} on ${Buffer.from(input).toString('hex')}`);
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `dhcp fuzz: ${RUNS} inputs in ${seconds.toFixed(2)} s (${(decodeMs / 1000).toFixed(2)} s in decodeAndParse)`,
      Object.fromEntries(outcomes),
    );

    // The mix must reach deep code, not just bounce off the size and cookie checks.
    expect(outcomes.get('ok') ?? 0).toBeGreaterThan(RUNS / 100);
    for (const reason of [
      'decode:truncated',
      'decode:bad-cookie',
      'decode:bad-hlen',
      'decode:option-overrun',
      'decode:bad-overload',
      'decode:overload-loop',
      'decode:too-many-options',
      'not-request',
      'unexpected-message-type',
      'bad-requested-address',
    ]) {
      expect(outcomes.get(reason) ?? 0, reason).toBeGreaterThan(0);
    }
  });
});
