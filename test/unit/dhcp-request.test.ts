import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { decodeDhcpPacket } from '../../src/dhcp/codec.js';
import { decodeAndParse, parseRequest, sanitizeHostname, type ParseRequestResult } from '../../src/dhcp/request.js';
import { DhcpMessageType, type DhcpPacket, type DhcpRequest } from '../../src/dhcp/types.js';
import { ip } from '../support/addresses.js';

const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];
const MAC = [0x52, 0x54, 0x00, 0xbe, 0x0a, 0xf3];

/** The fixed 236-byte BOOTP header plus the magic cookie, laid out field by field as on the wire. */
function header(opts: { xid: number[]; flags?: number[]; ciaddr?: number[] }): number[] {
  return [
    0x01, // op BOOTREQUEST
    0x01, // htype Ethernet
    0x06, // hlen
    0x00, // hops
    ...opts.xid,
    0x00, 0x00, // secs
    ...(opts.flags ?? [0x00, 0x00]),
    ...(opts.ciaddr ?? [0, 0, 0, 0]),
    0, 0, 0, 0, // yiaddr
    0, 0, 0, 0, // siaddr
    0, 0, 0, 0, // giaddr
    ...MAC, ...new Array(10).fill(0), // chaddr
    ...new Array(64).fill(0), // sname
    ...new Array(128).fill(0), // file
    0x63, 0x82, 0x53, 0x63, // magic cookie
  ];
}

function pad(bytes: number[], size: number): Buffer {
  return Buffer.from([...bytes, ...new Array(Math.max(0, size - bytes.length)).fill(0)]);
}

/** busybox udhcpc 1.36 DISCOVER: client id 01+MAC by default, max size 576, vendor class, hostname from -x. */
const udhcpcDiscover = pad(
  [
    ...header({ xid: [0x3c, 0x1f, 0x9a, 0x07] }),
    53, 1, 1,
    61, 7, 0x01, ...MAC,
    57, 2, 0x02, 0x40,
    60, 12, ...ascii('udhcp 1.36.1'),
    12, 6, ...ascii('alpine'),
    55, 7, 1, 3, 6, 12, 15, 28, 42,
    255,
  ],
  548,
);

/** ISC dhclient 4.4 DISCOVER after a reboot: no client id, no max size, previous address in 50, padded to 300. */
const dhclientDiscover = pad(
  [
    ...header({ xid: [0xa1, 0xb2, 0xc3, 0xd4] }),
    53, 1, 1,
    50, 4, 10, 10, 0, 57,
    12, 9, ...ascii('vm-debian'),
    55, 13, 1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42,
    255,
  ],
  300,
);

/** dhcpcd 9 REQUEST: DUID client id, rapid commit (zero length), max size 1500, FQDN in wire form, lease time. */
const dhcpcdRequest = pad(
  [
    ...header({ xid: [0x55, 0x66, 0x77, 0x88], flags: [0x80, 0x00] }),
    53, 1, 3,
    61, 19, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 0x04, ...new Array(12).fill(0xab),
    50, 4, 10, 10, 0, 60,
    54, 4, 10, 10, 0, 1,
    57, 2, 0x05, 0xdc,
    51, 4, 0x00, 0x00, 0x0e, 0x10,
    80, 0,
    81, 15, 0x05, 0x00, 0x00, 7, ...ascii('Fedora_'), 3, ...ascii('lan'), 0,
    55, 4, 1, 3, 6, 119,
    255,
  ],
  300,
);

function expectOk(result: ParseRequestResult): DhcpRequest {
  if (!result.ok) throw new Error(`expected ok, got ${result.reason}`);
  return result.request;
}

function reason(result: ParseRequestResult): string | undefined {
  return result.ok ? undefined : result.reason;
}

/** Replaces the option area of a captured packet, keeping its header. */
function withOptions(base: Buffer, options: number[]): Buffer {
  return Buffer.concat([base.subarray(0, 240), Buffer.from(options)]);
}

/** A decoded copy of the dhclient DISCOVER with one change applied. */
function changed(change: (p: DhcpPacket) => void): DhcpPacket {
  const p = decodeDhcpPacket(dhclientDiscover);
  change(p);
  return p;
}

describe('parseRequest: real clients', () => {
  it('reads a udhcpc DISCOVER', () => {
    const r = expectOk(decodeAndParse(udhcpcDiscover));
    expect(r).toMatchObject({
      type: DhcpMessageType.DISCOVER,
      xid: 0x3c1f9a07,
      broadcast: false,
      htype: 1,
      mac: '52:54:00:be:0a:f3',
      clientId: '01525400be0af3',
      maxMessageSize: 576,
      vendorClass: 'udhcp 1.36.1',
      hostname: 'alpine',
      parameterRequestList: [1, 3, 6, 12, 15, 28, 42],
    });
    expect(r.requestedAddress).toBeUndefined();
    expect(r.serverId).toBeUndefined();
    expect(Array.from(r.chaddr)).toEqual([...MAC, ...new Array(10).fill(0)]);
  });

  it('reads a dhclient DISCOVER and derives the same client id from htype+chaddr', () => {
    const r = expectOk(decodeAndParse(dhclientDiscover));
    expect(r).toMatchObject({
      type: DhcpMessageType.DISCOVER,
      clientId: '01525400be0af3',
      requestedAddress: ip('10.10.0.57'),
      hostname: 'vm-debian',
      maxMessageSize: 576,
      parameterRequestList: [1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42],
    });
    expect(r.vendorClass).toBeUndefined();
    expect(r.fqdnHostname).toBeUndefined();
  });

  it('reads a dhcpcd REQUEST with a DUID, FQDN and rapid commit', () => {
    const r = expectOk(decodeAndParse(dhcpcdRequest));
    expect(r).toMatchObject({
      type: DhcpMessageType.REQUEST,
      broadcast: true,
      clientId: 'ff000000010004' + 'ab'.repeat(12),
      requestedAddress: ip('10.10.0.60'),
      serverId: ip('10.10.0.1'),
      maxMessageSize: 1500,
      requestedLeaseSeconds: 3600,
      fqdnHostname: 'fedora',
      fqdnFlags: 0x05,
      parameterRequestList: [1, 3, 6, 119],
    });
  });
});

describe('parseRequest: one field at a time', () => {
  it('rejects replies (op=2)', () => {
    expect(reason(parseRequest(changed((p) => (p.op = 2))))).toBe('not-request');
    expect(reason(parseRequest(changed((p) => (p.op = 0))))).toBe('not-request');
  });

  it('requires a client message type in option 53', () => {
    expect(reason(parseRequest(changed((p) => p.options.delete(53))))).toBe('no-message-type');
    expect(reason(parseRequest(changed((p) => p.options.set(53, new Uint8Array(0)))))).toBe('bad-message-type');
    expect(reason(parseRequest(changed((p) => p.options.set(53, Uint8Array.of(1, 1)))))).toBe('bad-message-type');
    for (const serverType of [2, 5, 6, 0, 9, 255]) {
      expect(reason(parseRequest(changed((p) => p.options.set(53, Uint8Array.of(serverType)))))).toBe(
        'unexpected-message-type',
      );
    }
    for (const clientType of [1, 3, 4, 7, 8]) {
      expect(expectOk(parseRequest(changed((p) => p.options.set(53, Uint8Array.of(clientType))))).type).toBe(clientType);
    }
  });

  it('requires hlen 6 for Ethernet and hlen <= 16 otherwise', () => {
    expect(reason(parseRequest(changed((p) => (p.hlen = 5))))).toBe('bad-hlen');
    expect(reason(parseRequest(changed((p) => (p.hlen = 16))))).toBe('bad-hlen');
    expect(reason(parseRequest(changed((p) => ((p.htype = 6), (p.hlen = 17)))))).toBe('bad-hlen');
    expect(reason(parseRequest(changed((p) => (p.chaddr = new Uint8Array(4)))))).toBe('bad-chaddr');
    const ieee802 = expectOk(parseRequest(changed((p) => ((p.htype = 6), (p.hlen = 8)))));
    expect(ieee802.mac).toBe('52:54:00:be:0a:f3:00:00');
    expect(ieee802.clientId).toBe('06525400be0af30000');
  });

  it('rejects chaddr length > 16 at decode time', () => {
    const buf = Buffer.from(dhclientDiscover);
    buf[2] = 17;
    expect(reason(decodeAndParse(buf))).toBe('decode:bad-hlen');
  });

  it('accepts hlen 0 (IPoIB) only with a client id', () => {
    const ib = (p: DhcpPacket): void => {
      p.htype = 32;
      p.hlen = 0;
      p.chaddr.fill(0);
    };
    expect(reason(parseRequest(changed(ib)))).toBe('no-client-id');
    const r = expectOk(parseRequest(changed((p) => (ib(p), p.options.set(61, Uint8Array.of(0xff, 1, 2))))));
    expect(r).toMatchObject({ mac: '', clientId: 'ff0102', htype: 32 });
  });

  it('uses option 61 as lower-case hex, and falls back when it is empty', () => {
    const r = expectOk(parseRequest(changed((p) => p.options.set(61, Uint8Array.of(0x00, 0xab, 0xcd, 0xef)))));
    expect(r.clientId).toBe('00abcdef');
    expect(expectOk(parseRequest(changed((p) => p.options.set(61, new Uint8Array(0))))).clientId).toBe(
      '01525400be0af3',
    );
  });

  it('rejects malformed requested address and server id rather than guess', () => {
    expect(reason(parseRequest(changed((p) => p.options.set(50, Uint8Array.of(10, 10, 0)))))).toBe(
      'bad-requested-address',
    );
    expect(reason(parseRequest(changed((p) => p.options.set(50, new Uint8Array(0)))))).toBe('bad-requested-address');
    expect(reason(parseRequest(changed((p) => p.options.set(50, new Uint8Array(8)))))).toBe('bad-requested-address');
    expect(reason(parseRequest(changed((p) => p.options.set(54, new Uint8Array(5)))))).toBe('bad-server-id');
    expect(expectOk(parseRequest(changed((p) => p.options.set(54, Uint8Array.of(10, 10, 0, 1))))).serverId).toBe(
      ip('10.10.0.1'),
    );
  });

  it('clamps the max message size (57) to [576, 1500]', () => {
    const size = (value: Uint8Array | undefined): number =>
      expectOk(parseRequest(changed((p) => (value ? p.options.set(57, value) : p.options.delete(57))))).maxMessageSize;
    expect(size(undefined)).toBe(576);
    expect(size(Uint8Array.of(0x00, 0xc8))).toBe(576); // 200
    expect(size(Uint8Array.of(0x02, 0x40))).toBe(576);
    expect(size(Uint8Array.of(0x04, 0x00))).toBe(1024);
    expect(size(Uint8Array.of(0x23, 0x28))).toBe(1500); // 9000
    expect(size(Uint8Array.of(0x04))).toBe(576); // malformed: ignored
  });

  it('reads the broadcast flag, ciaddr, giaddr and hops', () => {
    const r = expectOk(
      parseRequest(
        changed((p) => {
          p.flags = 0x8000;
          p.ciaddr = ip('10.10.0.57');
          p.giaddr = ip('192.168.5.1');
          p.hops = 1;
        }),
      ),
    );
    expect(r).toMatchObject({ broadcast: true, flags: 0x8000, ciaddr: ip('10.10.0.57'), giaddr: ip('192.168.5.1'), hops: 1 });
  });

  it('ignores malformed informational options instead of dropping the request', () => {
    const r = expectOk(
      parseRequest(
        changed((p) => {
          p.options.set(51, Uint8Array.of(1, 2));
          p.options.set(81, Uint8Array.of(0x04, 0, 0, 9, 0x61));
          p.options.set(12, Uint8Array.of(0x2e, 0x2d, 0x00));
          p.options.set(60, new Uint8Array(0));
        }),
      ),
    );
    expect(r.requestedLeaseSeconds).toBeUndefined();
    expect(r.fqdnFlags).toBeUndefined();
    expect(r.hostname).toBeUndefined();
    expect(r.vendorClass).toBeUndefined();
  });

  it('reads option 81 in ASCII form and keeps its flags even without a name', () => {
    const ascii81 = expectOk(parseRequest(changed((p) => p.options.set(81, Uint8Array.of(0, 255, 255, ...ascii('Win10.corp.'))))));
    expect(ascii81).toMatchObject({ fqdnHostname: 'win10', fqdnFlags: 0 });
    const empty = expectOk(parseRequest(changed((p) => p.options.set(81, Uint8Array.of(0x05, 0, 0)))));
    expect(empty.fqdnFlags).toBe(0x05);
    expect(empty.fqdnHostname).toBeUndefined();
  });

  it('removes duplicate and framing codes from the parameter request list', () => {
    const r = expectOk(parseRequest(changed((p) => p.options.set(55, Uint8Array.of(3, 0, 1, 3, 255, 6)))));
    expect(r.parameterRequestList).toEqual([3, 1, 6]);
  });
});

describe('decodeAndParse: bad input', () => {
  it('maps decode failures to decode:<reason>', () => {
    expect(reason(decodeAndParse(new Uint8Array(0)))).toBe('decode:truncated');
    expect(reason(decodeAndParse(dhclientDiscover.subarray(0, 200)))).toBe('decode:truncated');
    const badCookie = Buffer.from(dhclientDiscover);
    badCookie[239] = 0x64;
    expect(reason(decodeAndParse(badCookie))).toBe('decode:bad-cookie');
    expect(reason(decodeAndParse(withOptions(dhclientDiscover, [53, 1, 1, 12, 40, 0x61])))).toBe('decode:option-overrun');
  });

  it('rejects option 52 loops, option floods and oversized options', () => {
    const loop = withOptions(dhclientDiscover, [53, 1, 1, 52, 1, 3, 255]);
    loop.set([52, 1, 3, 255], 108);
    expect(reason(decodeAndParse(loop))).toBe('decode:overload-loop');
    const flood: number[] = [53, 1, 1];
    for (let i = 0; i < 1000; i++) flood.push(43, 1, i & 255);
    expect(reason(decodeAndParse(withOptions(dhclientDiscover, [...flood, 255])))).toBe('decode:too-many-options');
    expect(reason(decodeAndParse(withOptions(dhclientDiscover, [53, 1, 1, 12, 255, 0x61, 255])))).toBe(
      'decode:option-overrun',
    );
  });

  const valid = [udhcpcDiscover, dhclientDiscover, dhcpcdRequest];
  const noInternalError = (result: ParseRequestResult): void => {
    expect(result.ok || !result.reason.includes('internal')).toBe(true);
  };

  it('property: arbitrary bytes never throw', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 800 }), (buf) => noInternalError(decodeAndParse(buf))), {
      numRuns: 1000,
    });
  });

  it('property: mutated real packets never throw', () => {
    const mutation = fc.record({
      base: fc.constantFrom(...valid),
      edits: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
      cut: fc.option(fc.nat()),
    });
    fc.assert(
      fc.property(mutation, ({ base, edits, cut }) => {
        const buf = Buffer.from(base);
        // Mutate the option area mostly, where the interesting parsing is.
        for (const [at, value] of edits) buf[236 + (at % (buf.length - 236))] = value;
        noInternalError(decodeAndParse(cut === null ? buf : buf.subarray(0, cut % (buf.length + 1))));
      }),
      { numRuns: 1000 },
    );
  });

  it('property: a valid header with arbitrary options never throws', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (options) =>
        noInternalError(decodeAndParse(withOptions(dhclientDiscover, [53, 1, 1, ...options]))),
      ),
      { numRuns: 1000 },
    );
  });
});

describe('sanitizeHostname', () => {
  it('reduces names to one lower-case DNS label', () => {
    const cases: Array<[string, string | undefined]> = [
      ['web', 'web'],
      ['Web-01', 'web-01'],
      ['vm1.example.com', 'vm1'],
      ['my_host name', 'my-host-name'],
      ['a__b', 'a-b'],
      ['--edge--', 'edge'],
      ['  spaced  ', 'spaced'],
      ['héllo', 'h-llo'],
      ['name\0', 'name'],
      ['xn--80ak6aa92e', 'xn--80ak6aa92e'],
      ['a'.repeat(70), 'a'.repeat(63)],
      ['a'.repeat(62) + '-b', 'a'.repeat(62)],
      ['', undefined],
      ['.', undefined],
      ['.leading', undefined],
      ['___', undefined],
      ['日本', undefined],
    ];
    for (const [raw, expected] of cases) expect(sanitizeHostname(raw), raw).toBe(expected);
  });

  it('property: the result is always a valid label, and sanitising it again changes nothing', () => {
    const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 100 }), (raw) => {
        const out = sanitizeHostname(raw);
        if (out === undefined) return;
        expect(out).toMatch(label);
        expect(sanitizeHostname(out)).toBe(out);
      }),
      { numRuns: 1000 },
    );
  });
});
