/** issue 14: Router Advertisement bytes and Router Solicitation validation (RFC 4861 6.1.1). */
import { describe, expect, it } from 'vitest';
import { parseIpv6 } from '../../src/ipv6/address.js';
import { buildRouterAdvertisement, parseRouterSolicitation } from '../../src/ipv6/ra.js';

const linkLocal = parseIpv6('fe80::5054:ff:fe12:3456')!;
const unspecified = new Uint8Array(16);
const rs = (options: number[] = []) => Uint8Array.from([133, 0, 0, 0, 0, 0, 0, 0, ...options]);
const slla = [1, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56];

describe('buildRouterAdvertisement', () => {
  it('lays out the header and options as RFC 4861 and RFC 8106 do', () => {
    const wire = buildRouterAdvertisement({
      curHopLimit: 64, managed: false, other: false, routerLifetime: 1800, reachableTime: 0, retransTimer: 0, mtu: 1500,
      prefixes: [{ network: parseIpv6('fd00:10:10::')!, length: 64, validLifetime: 86400, preferredLifetime: 14400, onLink: true, autonomous: true }],
      rdnss: { servers: [parseIpv6('fd00:10:10::1')!], lifetime: 1800 },
      dnssl: { domains: ['vm'], lifetime: 1800 },
    });
    expect([...wire.subarray(0, 16)]).toEqual([134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect([...wire.subarray(16, 24)]).toEqual([5, 1, 0, 0, 0, 0, 0x05, 0xdc]); // MTU 1500
    expect([...wire.subarray(24, 28)]).toEqual([3, 4, 64, 0xc0]); // prefix info, L+A
    expect(wire.readUInt32BE(28)).toBe(86400);
    expect(wire.readUInt32BE(32)).toBe(14400);
    expect([...wire.subarray(56, 58)]).toEqual([25, 3]); // RDNSS, 24 bytes
    expect([...wire.subarray(80, 96)]).toEqual([31, 2, 0, 0, 0, 0, 0x07, 0x08, 2, 0x76, 0x6d, 0, 0, 0, 0, 0]); // DNSSL "vm", padded
    expect(wire.length).toBe(96);
  });
});

describe('parseRouterSolicitation', () => {
  it('accepts a solicitation with hop limit 255, with or without a link-layer address', () => {
    expect(parseRouterSolicitation(rs(), unspecified, 255)).toEqual({ ok: true });
    expect(parseRouterSolicitation(rs(slla), linkLocal, 255)).toEqual({ ok: true, sourceLinkLayer: Uint8Array.from(slla.slice(2)) });
  });

  it('drops what RFC 4861 6.1.1 says to drop, with the reason', () => {
    expect(parseRouterSolicitation(rs(), linkLocal, 64)).toEqual({ ok: false, reason: 'hop limit 64, not 255' });
    expect(parseRouterSolicitation(rs().subarray(0, 6), linkLocal, 255)).toMatchObject({ ok: false, reason: 'shorter than 8 bytes' });
    expect(parseRouterSolicitation(Uint8Array.from([133, 1, 0, 0, 0, 0, 0, 0]), linkLocal, 255)).toMatchObject({ ok: false, reason: 'code 1' });
    expect(parseRouterSolicitation(rs([1, 0, 0, 0, 0, 0, 0, 0]), linkLocal, 255)).toMatchObject({ ok: false, reason: 'option of length 0' });
    expect(parseRouterSolicitation(rs([1, 2, 0, 0, 0, 0, 0, 0]), linkLocal, 255)).toMatchObject({ ok: false, reason: 'option runs past the end' });
    expect(parseRouterSolicitation(rs(slla), unspecified, 255)).toMatchObject({ ok: false, reason: 'source link-layer option from the unspecified address' });
    expect(parseRouterSolicitation(Uint8Array.from([134, 0, 0, 0, 0, 0, 0, 0]), linkLocal, 255)).toMatchObject({ ok: false });
  });
});
