import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCodes, NatdError } from '../../src/errors.js';
import { formatIpv4 } from '../../src/net/ipv4.js';
import { formatForwardSpec, parseForwardSpec, resolveForward, type PortForwardSpec } from '../../src/nft/forward-spec.js';
import { ip } from '../support/addresses.js';


describe('parseForwardSpec', () => {
  it.each<[string, PortForwardSpec]>([
    ['tcp:2222=web:22', { protocol: 'tcp', hostPort: 2222, guest: { name: 'web' }, guestPort: 22 }],
    ['80=10.10.0.5:80', { protocol: 'tcp', hostPort: 80, guest: { address: ip('10.10.0.5') }, guestPort: 80 }],
    ['udp:198.51.100.1:5353=web:53', { protocol: 'udp', hostAddress: ip('198.51.100.1'), hostPort: 5353, guest: { name: 'web' }, guestPort: 53 }],
    ['198.51.100.1:443=10.10.0.5:8443', { protocol: 'tcp', hostAddress: ip('198.51.100.1'), hostPort: 443, guest: { address: ip('10.10.0.5') }, guestPort: 8443 }],
    ['UDP:53=Db-1:5353', { protocol: 'udp', hostPort: 53, guest: { name: 'db-1' }, guestPort: 5353 }],
    [' tcp:1=a:65535 ', { protocol: 'tcp', hostPort: 1, guest: { name: 'a' }, guestPort: 65535 }],
  ])('parses %s', (text, expected) => {
    expect(parseForwardSpec(text)).toEqual(expected);
  });

  it.each([
    ['tcp:2222', /missing "="/],
    ['80=web:22=x', /more than one "="/],
    ['sctp:80=web:80', /unknown protocol "sctp"/],
    ['icmp:1.2.3.4:80=web:80', /unknown protocol "icmp"/],
    ['tcp:udp:80=web:80', /host address "udp" is not an IPv4 address/],
    ['1.2.3:80=web:80', /host address "1.2.3" is not an IPv4 address/],
    ['tcp:0=web:22', /host port 0 is outside 1-65535/],
    ['tcp:70000=web:22', /host port 70000 is outside 1-65535/],
    ['tcp:http=web:22', /host port "http" is not a port number/],
    ['tcp::80=web:22', /host side "tcp::80" is malformed/],
    ['tcp:1.2.3.4:80:90=web:22', /host side .* is malformed/],
    ['80=web', /guest side "web" needs GUEST:PORT/],
    ['80=:22', /guest side ":22" needs GUEST:PORT/],
    ['80=web:', /guest port "" is not a port number/],
    ['80=10.10.0.300:22', /guest address "10.10.0.300" is not an IPv4 address/],
    ['80=web_server:22', /guest "web_server" is neither an IPv4 address nor a reservation name/],
    ['80=-web:22', /neither an IPv4 address nor a reservation name/],
  ])('rejects %s naming the problem', (text, message) => {
    let caught: unknown;
    try {
      parseForwardSpec(text);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(NatdError);
    expect((caught as NatdError).code).toBe(ErrorCodes.CONFIG);
    expect((caught as NatdError).message).toMatch(message);
    expect((caught as NatdError).message).toContain(text.trim());
  });

  const specArb: fc.Arbitrary<PortForwardSpec> = fc
    .record({
      protocol: fc.constantFrom<'tcp' | 'udp'>('tcp', 'udp'),
      hostAddress: fc.option(fc.integer({ min: 0, max: 0xffffffff }), { nil: undefined }),
      hostPort: fc.integer({ min: 1, max: 65535 }),
      guest: fc.oneof(
        fc.integer({ min: 0, max: 0xffffffff }).map((address) => ({ address })),
        fc.stringMatching(/^[a-z][a-z0-9-]{0,20}[a-z0-9]$/).map((name) => ({ name })),
      ),
      guestPort: fc.integer({ min: 1, max: 65535 }),
    })
    .map(({ hostAddress, ...rest }) => (hostAddress === undefined ? rest : { ...rest, hostAddress }));

  it('round-trips: format then parse gives the same spec', () => {
    fc.assert(
      fc.property(specArb, (spec) => {
        expect(parseForwardSpec(formatForwardSpec(spec))).toEqual(spec);
      }),
      { numRuns: 500 },
    );
  });

  it('on arbitrary text either parses to a valid spec or throws NatdError(CONFIG), nothing else', () => {
    const pieces = fc.constantFrom('tcp', 'udp', ':', '=', '.', '1', '80', '65536', '10.0.0.1', 'web', '-', ' ', '', 'x');
    const text = fc.oneof(fc.string(), fc.array(pieces, { maxLength: 8 }).map((p) => p.join('')));
    fc.assert(
      fc.property(text, (t) => {
        try {
          const spec = parseForwardSpec(t);
          expect(spec.hostPort).toBeGreaterThanOrEqual(1);
          expect(spec.guestPort).toBeLessThanOrEqual(65535);
          expect(parseForwardSpec(formatForwardSpec(spec))).toEqual(spec);
        } catch (err) {
          expect(err).toBeInstanceOf(NatdError);
          expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('formatForwardSpec', () => {
  it('always writes the protocol, and formats resolved forwards too', () => {
    expect(formatForwardSpec(parseForwardSpec('80=web:8080'))).toBe('tcp:80=web:8080');
    expect(formatForwardSpec({ protocol: 'udp', hostAddress: ip('198.51.100.1'), hostPort: 53, guestAddress: ip('10.77.0.5'), guestPort: 53 })).toBe(
      'udp:198.51.100.1:53=10.77.0.5:53',
    );
  });
});

describe('resolveForward', () => {
  const names = new Map([['web', ip('10.77.0.50')]]);
  const lookup = (name: string): number | undefined => names.get(name);

  it('resolves a reservation name and keeps an address as is', () => {
    expect(resolveForward(parseForwardSpec('tcp:2222=web:22'), lookup)).toEqual({
      protocol: 'tcp',
      hostPort: 2222,
      guestAddress: ip('10.77.0.50'),
      guestPort: 22,
    });
    const bound = resolveForward(parseForwardSpec('udp:198.51.100.1:5353=10.77.0.9:53'), lookup);
    expect([formatIpv4(bound.hostAddress!), formatIpv4(bound.guestAddress)]).toEqual(['198.51.100.1', '10.77.0.9']);
    expect('hostAddress' in resolveForward(parseForwardSpec('80=web:80'), lookup)).toBe(false);
  });

  it('names the unknown reservation', () => {
    expect(() => resolveForward(parseForwardSpec('80=db:5432'), lookup)).toThrow(/no reservation named "db"/);
  });
});
