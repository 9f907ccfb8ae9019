/** issue 14: the RA builder and RS parser under random input: never a throw, and builder → parser round trips. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildRouterAdvertisement, parseRouterAdvertisement, parseRouterSolicitation, type RouterAdvertisement } from '../../src/ipv6/ra.js';

const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/);
const domain = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));

const raArb: fc.Arbitrary<RouterAdvertisement> = fc.record({
  curHopLimit: fc.integer({ min: 0, max: 255 }),
  managed: fc.boolean(),
  other: fc.boolean(),
  routerLifetime: fc.integer({ min: 0, max: 9000 }),
  reachableTime: u32,
  retransTimer: u32,
  sourceLinkLayer: fc.uint8Array({ minLength: 6, maxLength: 6 }),
  mtu: fc.integer({ min: 1280, max: 65535 }),
  prefixes: fc.array(fc.record({ network: bytes16, length: fc.integer({ min: 0, max: 128 }), validLifetime: u32, preferredLifetime: u32, onLink: fc.boolean(), autonomous: fc.boolean() }), { maxLength: 3 }),
  rdnss: fc.record({ servers: fc.array(bytes16, { minLength: 1, maxLength: 3 }), lifetime: u32 }),
  dnssl: fc.record({ domains: fc.array(domain, { minLength: 1, maxLength: 3 }), lifetime: u32 }),
});

describe('RA builder and parser', () => {
  it('round-trips every advertisement, in whole 8-byte options', () => {
    fc.assert(
      fc.property(raArb, (ra) => {
        const wire = buildRouterAdvertisement(ra);
        expect((wire.length - 16) % 8).toBe(0);
        expect(parseRouterAdvertisement(wire)).toEqual(ra);
      }),
      { numRuns: 500 },
    );
  });

  it('never throws on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), bytes16, fc.integer({ min: -1, max: 255 }), (b, src, hop) => {
        parseRouterAdvertisement(b);
        const v = parseRouterSolicitation(b, src, hop);
        expect(typeof v.ok).toBe('boolean');
        const asRs = Uint8Array.from(b);
        if (asRs.length >= 2) [asRs[0], asRs[1]] = [133, 0];
        parseRouterSolicitation(asRs, src, 255);
      }),
      { numRuns: 3000 },
    );
  });
});

describe('RaServer under random solicitations', () => {
  it('never throws, counts every packet once, and bounds what it answers', async () => {
    const { RaServer } = await import('../../src/ipv6/ra-server.js');
    const { silentLogger } = await import('../../src/log.js');
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.uint8Array({ maxLength: 80 }), bytes16, fc.integer({ min: -1, max: 255 })), { maxLength: 300 }), (packets) => {
        let deliver: (d: Buffer, s: Buffer, h: number) => void = () => {};
        const server = new RaServer({
          open: (cb) => ((deliver = cb), { send: () => undefined, close: () => undefined }),
          advertisement: () => Buffer.from([134, 0, 0, 0]),
          logger: silentLogger,
        });
        server.start();
        for (const [data, source, hop] of packets) deliver(Buffer.from(data), Buffer.from(source), hop);
        const s = server.stats();
        expect(s.solicitationsReceived).toBe(packets.length);
        expect(s.solicitationsInvalid + s.solicitationsRateLimited).toBeLessThanOrEqual(packets.length);
        server.close();
      }),
      { numRuns: 200 },
    );
  });
});
