import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import {
  DhcpDecodeError,
  decodeDhcpPacket,
  decodeFqdnOption,
  emptyPacket,
  encodeClasslessRoutes,
  encodeDhcpPacket,
  encodeDomainSearch,
  encodeIpv4List,
  encodeString,
  encodeU16,
  encodeU32,
  encodingLength,
  readU16,
  readU32,
} from '../../src/dhcp/codec.js';
import { BOOTREPLY, DHCP_MAGIC_COOKIE, DhcpOption, type DhcpPacket } from '../../src/dhcp/types.js';
import { ip } from '../support/addresses.js';


/** A raw BOOTREQUEST: header fields, then the given option bytes written verbatim after the cookie. */
function rawPacket(options: number[], patch: (buf: Buffer) => void = () => {}): Buffer {
  const buf = Buffer.alloc(240 + options.length);
  buf[0] = 1;
  buf[1] = 1;
  buf[2] = 6;
  buf.writeUInt32BE(0x12345678, 4);
  Buffer.from([0x52, 0x54, 0x00, 0xbe, 0x0a, 0xf3]).copy(buf, 28);
  buf.writeUInt32BE(DHCP_MAGIC_COOKIE, 236);
  buf.set(options, 240);
  patch(buf);
  return buf;
}

function decodeReason(buf: Uint8Array): string | undefined {
  try {
    decodeDhcpPacket(buf);
    return undefined;
  } catch (err) {
    if (!(err instanceof DhcpDecodeError)) throw err;
    return err.reason;
  }
}

/** Comparable form: Maps and typed arrays as sorted plain arrays. */
function normalize(p: DhcpPacket): unknown {
  return {
    ...p,
    chaddr: Array.from(p.chaddr),
    options: [...p.options].map(([c, v]) => [c, Array.from(v)]).sort((a, b) => (a[0] as number) - (b[0] as number)),
  };
}

/** The round-trip helper every codec test goes through: encode, length matches, decode, equal. */
function roundTrip(packet: DhcpPacket, maxSize = 65535): Buffer {
  const wire = encodeDhcpPacket(packet, maxSize);
  expect(wire.length).toBe(encodingLength(packet, maxSize));
  expect(normalize(decodeDhcpPacket(wire))).toEqual(normalize(packet));
  return wire;
}

/** Option instances in wire order (code and offset), up to and including END. */
function wireOptions(wire: Uint8Array): Array<{ code: number; offset: number }> {
  const found: Array<{ code: number; offset: number }> = [];
  for (let i = 240; i < wire.length; ) {
    const code = wire[i]!;
    found.push({ code, offset: i });
    if (code === 255) break;
    i += code === 0 ? 1 : 2 + wire[i + 1]!;
  }
  return found;
}
const wireCodes = (wire: Uint8Array): number[] => wireOptions(wire).map((o) => o.code);
const endOffset = (wire: Uint8Array): number => wireOptions(wire).find((o) => o.code === 255)!.offset;

function offerPacket(): DhcpPacket {
  const p = emptyPacket(BOOTREPLY);
  p.xid = 0xdeadbeef;
  p.yiaddr = ip('10.10.0.57');
  p.chaddr.set([0x52, 0x54, 0x00, 0xbe, 0x0a, 0xf3]);
  p.options.set(DhcpOption.DNS_SERVERS, encodeIpv4List([ip('10.10.0.1')]));
  p.options.set(DhcpOption.ROUTER, encodeIpv4List([ip('10.10.0.1')]));
  p.options.set(DhcpOption.SERVER_ID, encodeIpv4List([ip('10.10.0.1')]));
  p.options.set(DhcpOption.SUBNET_MASK, encodeU32(0xffffff00));
  p.options.set(DhcpOption.MESSAGE_TYPE, Uint8Array.of(2));
  p.options.set(DhcpOption.LEASE_TIME, encodeU32(3600));
  return p;
}

const optionCode = fc.integer({ min: 1, max: 254 }).filter((c) => c !== DhcpOption.OVERLOAD);
const fieldString = (maxBytes: number) =>
  fc.string({ unit: 'grapheme', maxLength: 24 }).filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= maxBytes);
const validPacket: fc.Arbitrary<DhcpPacket> = fc
  .record({
    op: fc.integer({ min: 1, max: 2 }),
    htype: fc.integer({ min: 0, max: 255 }),
    hlen: fc.integer({ min: 0, max: 16 }),
    hops: fc.integer({ min: 0, max: 255 }),
    xid: fc.nat({ max: 0xffffffff }),
    secs: fc.nat({ max: 0xffff }),
    flags: fc.nat({ max: 0xffff }),
    ciaddr: fc.nat({ max: 0xffffffff }),
    yiaddr: fc.nat({ max: 0xffffffff }),
    siaddr: fc.nat({ max: 0xffffffff }),
    giaddr: fc.nat({ max: 0xffffffff }),
    chaddr: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    sname: fieldString(64),
    file: fieldString(128),
    options: fc
      .uniqueArray(fc.tuple(optionCode, fc.uint8Array({ maxLength: 600 })), { selector: ([c]) => c, maxLength: 20 })
      .map((entries) => new Map(entries)),
  })
  .map((p) => p as DhcpPacket);

describe('decodeDhcpPacket: header and framing', () => {
  it('reads every header field and the options', () => {
    const buf = rawPacket([53, 1, 1, 50, 4, 10, 10, 0, 9, 255], (b) => {
      b[3] = 2;
      b.writeUInt16BE(7, 8);
      b.writeUInt16BE(0x8000, 10);
      b.writeUInt32BE(ip('10.10.0.3'), 12);
      b.writeUInt32BE(ip('192.168.1.1'), 24);
      b.write('boot.example', 44, 'latin1');
      b.write('pxelinux.0', 108, 'latin1');
    });
    const p = decodeDhcpPacket(buf);
    expect(p).toMatchObject({ op: 1, htype: 1, hlen: 6, hops: 2, xid: 0x12345678, secs: 7, flags: 0x8000 });
    expect(p.ciaddr).toBe(ip('10.10.0.3'));
    expect(p.giaddr).toBe(ip('192.168.1.1'));
    expect(Array.from(p.chaddr.subarray(0, 6))).toEqual([0x52, 0x54, 0x00, 0xbe, 0x0a, 0xf3]);
    expect(p.sname).toBe('boot.example');
    expect(p.file).toBe('pxelinux.0');
    expect([...p.options.keys()]).toEqual([53, 50]);
    expect(readU32(p.options.get(50)!)).toBe(ip('10.10.0.9'));
  });

  it('rejects truncated packets', () => {
    expect(decodeReason(new Uint8Array(0))).toBe('truncated');
    expect(decodeReason(rawPacket([]).subarray(0, 239))).toBe('truncated');
    expect(decodeReason(rawPacket([]).subarray(0, 236))).toBe('truncated');
  });

  it('rejects a wrong magic cookie', () => {
    expect(decodeReason(rawPacket([53, 1, 1, 255], (b) => b.writeUInt32BE(0x63825364, 236)))).toBe('bad-cookie');
    expect(decodeReason(rawPacket([], (b) => b.fill(0, 236, 240)))).toBe('bad-cookie');
  });

  it('rejects a hardware address longer than chaddr (hlen > 16)', () => {
    expect(decodeReason(rawPacket([53, 1, 1, 255], (b) => (b[2] = 17)))).toBe('bad-hlen');
    expect(decodeReason(rawPacket([53, 1, 1, 255], (b) => (b[2] = 255)))).toBe('bad-hlen');
    expect(decodeReason(rawPacket([53, 1, 1, 255], (b) => (b[2] = 16)))).toBeUndefined();
  });

  it('rejects options that overrun the packet', () => {
    expect(decodeReason(rawPacket([53, 1, 1, 12, 10, 0x61, 0x62]))).toBe('option-overrun');
    expect(decodeReason(rawPacket([53, 1, 1, 12]))).toBe('option-overrun'); // code with no length byte
    expect(decodeReason(rawPacket([53, 255]))).toBe('option-overrun'); // oversized: claims 255 bytes
  });

  it('skips PAD, stops at END, tolerates a missing END and ignores bytes after END', () => {
    const p = decodeDhcpPacket(rawPacket([0, 0, 53, 1, 3, 0, 12, 2, 0x76, 0x6d, 255, 12, 99, 1, 2]));
    expect([...p.options.keys()]).toEqual([53, 12]);
    expect(decodeDhcpPacket(rawPacket([53, 1, 3])).options.get(53)).toEqual(Uint8Array.of(3));
    expect(decodeDhcpPacket(rawPacket([])).options.size).toBe(0);
  });

  it('keeps zero-length options as empty values (their meaning is the parser’s business)', () => {
    const p = decodeDhcpPacket(rawPacket([53, 1, 1, 80, 0, 61, 0, 255]));
    expect(p.options.get(80)).toEqual(new Uint8Array(0));
    expect(p.options.get(61)).toEqual(new Uint8Array(0));
  });

  it('concatenates repeated options in order (RFC 3396)', () => {
    const p = decodeDhcpPacket(rawPacket([121, 2, 1, 2, 53, 1, 1, 121, 3, 3, 4, 5, 121, 0, 255]));
    expect(p.options.get(121)).toEqual(Uint8Array.of(1, 2, 3, 4, 5));
  });

  it('rejects a flood of 1000 options', () => {
    const flood: number[] = [53, 1, 1];
    for (let i = 0; i < 1000; i++) flood.push(77, 0);
    expect(decodeReason(rawPacket([...flood, 255]))).toBe('too-many-options');
    const distinctish: number[] = [];
    for (let i = 0; i < 1000; i++) distinctish.push(1 + (i % 250), 1, i & 255);
    expect(decodeReason(rawPacket(distinctish))).toBe('too-many-options');
  });

  it('accepts any amount of PAD', () => {
    expect(decodeDhcpPacket(rawPacket([...new Array(1000).fill(0), 53, 1, 1, 255])).options.get(53)).toEqual(
      Uint8Array.of(1),
    );
  });

  it('does not alias the input buffer', () => {
    const buf = rawPacket([12, 2, 0x61, 0x62, 255]);
    const p = decodeDhcpPacket(buf);
    buf.fill(0x7a);
    expect(Array.from(p.options.get(12)!)).toEqual([0x61, 0x62]);
    expect(p.chaddr[0]).toBe(0x52);
  });
});

describe('decodeDhcpPacket: option overload (52)', () => {
  const withFields = (main: number[], file: number[], sname: number[]): Buffer =>
    rawPacket(main, (b) => {
      b.set(file, 108);
      b.set(sname, 44);
    });

  it('continues in file, then sname, concatenating a split option across all three', () => {
    const p = decodeDhcpPacket(
      withFields([53, 1, 1, 52, 1, 3, 12, 1, 0x61, 255], [12, 1, 0x62, 60, 1, 0x78, 255], [12, 1, 0x63, 255]),
    );
    expect(latin1(p.options.get(12)!)).toBe('abc');
    expect(latin1(p.options.get(60)!)).toBe('x');
    expect(p.sname).toBe('');
    expect(p.file).toBe('');
  });

  it('with value 1 reads only file and still returns sname as text', () => {
    const p = decodeDhcpPacket(
      withFields([53, 1, 1, 52, 1, 1, 255], [12, 2, 0x76, 0x6d, 255], [...Buffer.from('server1')]),
    );
    expect(latin1(p.options.get(12)!)).toBe('vm');
    expect(p.sname).toBe('server1');
    expect(p.file).toBe('');
  });

  it('with value 2 reads only sname and still returns file as text', () => {
    const p = decodeDhcpPacket(withFields([52, 1, 2, 255], [...Buffer.from('boot.img')], [53, 1, 3, 255]));
    expect(p.options.get(53)).toEqual(Uint8Array.of(3));
    expect(p.file).toBe('boot.img');
    expect(p.sname).toBe('');
  });

  it('never follows an option 52 found inside the overloaded fields', () => {
    expect(decodeReason(withFields([53, 1, 1, 52, 1, 1, 255], [52, 1, 1, 255], []))).toBe('overload-loop');
    expect(decodeReason(withFields([53, 1, 1, 52, 1, 3, 255], [255], [52, 1, 3, 255]))).toBe('overload-loop');
  });

  it('rejects malformed overload values', () => {
    expect(decodeReason(rawPacket([52, 1, 0, 255]))).toBe('bad-overload');
    expect(decodeReason(rawPacket([52, 1, 4, 255]))).toBe('bad-overload');
    expect(decodeReason(rawPacket([52, 0, 255]))).toBe('bad-overload');
    expect(decodeReason(rawPacket([52, 1, 1, 52, 1, 1, 255]))).toBe('bad-overload'); // concatenates to 2 bytes
  });

  it('checks bounds inside the overloaded fields', () => {
    expect(decodeReason(withFields([52, 1, 2, 255], [], [...new Array(62).fill(0), 12, 5]))).toBe('option-overrun');
  });
});

describe('encodeDhcpPacket', () => {
  it('round-trips a typical OFFER', () => {
    roundTrip(offerPacket());
  });

  it('writes 53 first, 54 second, the rest ascending, END last', () => {
    const wire = encodeDhcpPacket(offerPacket());
    expect(wireCodes(wire)).toEqual([53, 54, 1, 3, 6, 51, 255]);
  });

  it('pads to the BOOTP minimum of 300 bytes with zeros after END', () => {
    const wire = encodeDhcpPacket(offerPacket());
    expect(wire.length).toBe(300);
    expect(wire.subarray(endOffset(wire) + 1).every((b) => b === 0)).toBe(true);
  });

  it('pads only up to the client limit when that is below 300 bytes (maxSize 310: 282 bytes of payload)', () => {
    const wire = encodeDhcpPacket(offerPacket(), 310);
    expect(wire.length).toBe(310 - 28);
    expect(wire.length).toBe(encodingLength(offerPacket(), 310));
    expect(normalize(decodeDhcpPacket(wire))).toEqual(normalize(offerPacket()));
  });

  it('writes the same bytes whatever order the options were inserted in, when all fit (issue 18: the code table)', () => {
    const forward = offerPacket();
    const backward = offerPacket();
    backward.options = new Map([...forward.options].reverse());
    backward.options.set(DhcpOption.DOMAIN_NAME, encodeString('a.test'));
    forward.options.set(DhcpOption.DOMAIN_NAME, encodeString('a.test'));
    expect(encodeDhcpPacket(backward, 1500).equals(encodeDhcpPacket(forward, 1500))).toBe(true);
    expect(wireCodes(encodeDhcpPacket(backward, 1500))).toEqual([53, 54, 1, 3, 6, 15, 51, 255]);
    // the shared table is left empty: a packet with fewer options encodes only its own
    expect(wireCodes(encodeDhcpPacket(emptyPacket(BOOTREPLY), 1500))).toEqual([255]);
  });

  it('splits values longer than 255 bytes into consecutive instances (RFC 3396)', () => {
    const p = offerPacket();
    const long = Uint8Array.from({ length: 600 }, (_, i) => i & 255);
    p.options.set(DhcpOption.DOMAIN_SEARCH, long);
    const wire = roundTrip(p, 1500);
    expect(wireCodes(wire).filter((c) => c === 119)).toHaveLength(3);
  });

  it('writes a zero-length value as one empty instance', () => {
    const p = offerPacket();
    p.options.set(80, new Uint8Array(0));
    expect(wireCodes(roundTrip(p))).toContain(80);
  });

  it('never exceeds the client size limit: drops the last-inserted non-essential options first', () => {
    const p = offerPacket();
    p.options.set(DhcpOption.DOMAIN_NAME, encodeString('example.test'));
    p.options.set(DhcpOption.CLASSLESS_ROUTES, new Uint8Array(200));
    p.options.set(DhcpOption.DOMAIN_SEARCH, new Uint8Array(200)); // inserted last: lowest priority
    const wire = encodeDhcpPacket(p, 576);
    expect(wire.length).toBeLessThanOrEqual(576 - 28);
    expect(wire.length).toBe(encodingLength(p, 576));
    const codes = wireCodes(wire);
    expect(codes).not.toContain(119);
    expect(codes).toEqual(expect.arrayContaining([53, 54, 1, 3, 6, 51, 15, 121]));
    expect(wireCodes(encodeDhcpPacket(p, 1500))).toContain(119);
  });

  it('keeps the essential options even when inserted last', () => {
    const p = emptyPacket(BOOTREPLY);
    p.options.set(DhcpOption.DOMAIN_SEARCH, new Uint8Array(400));
    for (const [code, value] of offerPacket().options) p.options.set(code, value);
    expect(wireCodes(encodeDhcpPacket(p))).toEqual([53, 54, 1, 3, 6, 51, 255]);
  });

  it('throws RangeError rather than overflow when even the essentials do not fit', () => {
    const p = offerPacket();
    p.options.set(DhcpOption.DNS_SERVERS, new Uint8Array(4 * 100));
    expect(() => encodeDhcpPacket(p, 576)).toThrow(RangeError);
    expect(() => encodeDhcpPacket(offerPacket(), 200)).toThrow(RangeError);
  });

  it('never writes overload, PAD or END from the option map', () => {
    const p = offerPacket();
    p.options.set(DhcpOption.OVERLOAD, Uint8Array.of(3));
    p.options.set(0, Uint8Array.of(1));
    p.options.set(255, Uint8Array.of(1));
    expect(wireCodes(encodeDhcpPacket(p))).toEqual([53, 54, 1, 3, 6, 51, 255]);
  });

  it('cuts sname/file at a character boundary', () => {
    const p = offerPacket();
    p.sname = 'a' + 'é'.repeat(40); // 81 bytes: must stop before half a character
    const back = decodeDhcpPacket(encodeDhcpPacket(p));
    expect(back.sname).toBe('a' + 'é'.repeat(31));
  });

  it('property: any valid packet round-trips with a matching length', () => {
    fc.assert(fc.property(validPacket, (p) => void roundTrip(p)), { numRuns: 300 });
  });

  it('property: output fits the limit, keeps essentials and decodes', () => {
    fc.assert(
      fc.property(validPacket, fc.integer({ min: 576, max: 1500 }), (p, maxSize) => {
        for (const [code, value] of offerPacket().options) p.options.set(code, value);
        const wire = encodeDhcpPacket(p, maxSize);
        expect(wire.length).toBeLessThanOrEqual(maxSize - 28);
        expect(wire.length).toBeGreaterThanOrEqual(300);
        const back = decodeDhcpPacket(wire);
        for (const code of [53, 54, 51, 1, 3, 6]) expect(back.options.get(code)).toEqual(p.options.get(code));
      }),
      { numRuns: 200 },
    );
  });
});

describe('decodeDhcpPacket: properties', () => {
  const onlyDecodeErrors = (buf: Uint8Array): void => {
    try {
      decodeDhcpPacket(buf);
    } catch (err) {
      expect(err).toBeInstanceOf(DhcpDecodeError);
    }
  };

  it('arbitrary bytes either decode or throw DhcpDecodeError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), onlyDecodeErrors), { numRuns: 500 });
  });

  it('a valid header with an arbitrary option area either decodes or throws DhcpDecodeError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.uint8Array({ minLength: 192, maxLength: 192 }), (opts, fields) =>
        onlyDecodeErrors(rawPacket(Array.from(opts), (b) => b.set(fields, 44))),
      ),
      { numRuns: 500 },
    );
  });
});

describe('option value helpers', () => {
  it('reads and writes fixed-size integers, refusing wrong lengths', () => {
    expect(readU32(encodeU32(0xfffffffe))).toBe(0xfffffffe);
    expect(readU16(encodeU16(1500))).toBe(1500);
    expect(readU32(Uint8Array.of(1, 2, 3))).toBeUndefined();
    expect(readU16(Uint8Array.of(1, 2, 3))).toBeUndefined();
    expect(() => encodeU32(-1)).toThrow(RangeError);
    expect(Array.from(encodeIpv4List([ip('10.0.0.1'), ip('10.0.0.2')]))).toEqual([10, 0, 0, 1, 10, 0, 0, 2]);
    expect(latin1(encodeString('lan.test'))).toBe('lan.test');
  });

  it('encodes classless static routes as in RFC 3442 §3', () => {
    const router = ip('10.10.0.1');
    const r = [10, 10, 0, 1];
    const routes = [
      { network: 0, prefix: 0, router },
      { network: ip('10.0.0.0'), prefix: 8, router },
      { network: ip('10.17.0.0'), prefix: 16, router },
      { network: ip('10.27.129.0'), prefix: 24, router },
      { network: ip('10.229.0.128'), prefix: 25, router },
      { network: ip('10.198.122.47'), prefix: 32, router },
      { network: ip('10.16.255.255'), prefix: 15, router }, // host bits are masked off
    ];
    expect(Array.from(encodeClasslessRoutes(routes))).toEqual([
      ...[0, ...r],
      ...[8, 10, ...r],
      ...[16, 10, 17, ...r],
      ...[24, 10, 27, 129, ...r],
      ...[25, 10, 229, 0, 128, ...r],
      ...[32, 10, 198, 122, 47, ...r],
      ...[15, 10, 16, ...r],
    ]);
    expect(() => encodeClasslessRoutes([{ network: 0, prefix: 33, router }])).toThrow(RangeError);
  });

  it('encodes domain search lists with compression as in RFC 3397 §3', () => {
    const wire = encodeDomainSearch(['eng.apple.com.', 'marketing.apple.com.']);
    expect(Array.from(wire)).toEqual([
      3, ...Buffer.from('eng'), 5, ...Buffer.from('apple'), 3, ...Buffer.from('com'), 0,
      9, ...Buffer.from('marketing'), 0xc0, 0x04,
    ]);
    expect(() => encodeDomainSearch(['a..b'])).toThrow(RangeError);
    expect(() => encodeDomainSearch(['x'.repeat(64)])).toThrow(RangeError);
  });

  it('property: a domain search list decodes back with an independent RFC 1035 decoder', () => {
    const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?$/);
    const domain = fc.array(fc.constantFrom('a', 'lan', 'example', 'test', 'x1'), { minLength: 0, maxLength: 3 })
      .chain((tail) => label.map((head) => [head, ...tail].join('.')));
    fc.assert(
      fc.property(fc.array(domain, { minLength: 1, maxLength: 40 }), (domains) => {
        const wire = Buffer.from(encodeDomainSearch(domains));
        const names: string[] = [];
        for (let offset = 0; offset < wire.length; offset += nameCodec.decode.bytes) {
          names.push(nameCodec.decode(wire, offset));
        }
        expect(names).toEqual(domains);
      }),
      { numRuns: 200 },
    );
  });

  it('decodes option 81 in wire, partial-wire and ASCII forms', () => {
    const wire = Uint8Array.of(0x05, 0, 0, 3, ...Buffer.from('vm1'), 3, ...Buffer.from('lan'), 0);
    expect(decodeFqdnOption(wire)).toEqual({ flags: 0x05, rcode1: 0, rcode2: 0, name: 'vm1.lan' });
    expect(decodeFqdnOption(Uint8Array.of(0x04, 0, 0, 3, ...Buffer.from('vm1')))?.name).toBe('vm1');
    expect(decodeFqdnOption(Uint8Array.of(0x01, 255, 255, ...Buffer.from('Web.lan.'), 0))).toEqual({
      flags: 0x01,
      rcode1: 255,
      rcode2: 255,
      name: 'Web.lan',
    });
    expect(decodeFqdnOption(Uint8Array.of(0, 0, 0))?.name).toBe('');
  });

  it('rejects malformed option 81 values', () => {
    expect(decodeFqdnOption(Uint8Array.of(0x04, 0))).toBeUndefined();
    expect(decodeFqdnOption(Uint8Array.of(0x04, 0, 0, 5, 0x61))).toBeUndefined(); // label overruns
    expect(decodeFqdnOption(Uint8Array.of(0x04, 0, 0, 0xc0, 0x00))).toBeUndefined(); // compression not allowed
    expect(decodeFqdnOption(Uint8Array.of(0x04, 0, 0, 1, 0x61, 0, 1))).toBeUndefined(); // data after the root
  });

  it('property: option 81 decoding never throws', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (v) => void decodeFqdnOption(v)), { numRuns: 500 });
  });
});

const nameCodec = (dnsPacket as unknown as { name: { decode: ((buf: Buffer, offset: number) => string) & { bytes: number } } })
  .name;

function latin1(v: Uint8Array): string {
  return Buffer.from(v).toString('latin1');
}
