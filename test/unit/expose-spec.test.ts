/** issue 17: the expose spec (router/expose-spec.ts), the route table (router/route-table.ts), the settings. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { targetProblem } from '../../src/config/expose.js';
import { ErrorCodes, NatdError } from '../../src/errors.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import { parseForwardSpec } from '../../src/nft/forward-spec.js';
import { formatExposeSpec, parseExposeFallback, parseExposeSpec, routesOf } from '../../src/router/expose-spec.js';
import { exposeEntry, forwardConflicts, RouteTable } from '../../src/router/route-table.js';
import { ip } from '../support/addresses.js';

describe('parseExposeSpec', () => {
  it.each([
    ['app.example.com=web', { name: 'app.example.com', guest: { name: 'web' } }],
    ['App.Example.COM.=Web', { name: 'app.example.com', guest: { name: 'web' } }],
    ['*.dev.example.com=10.10.0.7', { name: '*.dev.example.com', guest: { address: ip('10.10.0.7') } }],
    ['api.example.com:8443=web:443', { name: 'api.example.com', listenPort: 8443, guest: { name: 'web' }, guestPort: 443 }],
    ['app.example.com=web:443', { name: 'app.example.com', guest: { name: 'web' }, guestPort: 443 }],
    ['app.example.com=web,proxy-protocol=v2', { name: 'app.example.com', guest: { name: 'web' }, proxyProtocol: 'v2' }],
    ['x.test:9000=10.0.0.2:9001,PROXY-PROTOCOL=V1', { name: 'x.test', listenPort: 9000, guest: { address: ip('10.0.0.2') }, guestPort: 9001, proxyProtocol: 'v1' }],
  ])('parses %s', (text, expected) => {
    expect(parseExposeSpec(text)).toEqual(expected);
  });

  it.each([
    ['app.example.com', /missing "="/],
    ['a=b=c', /more than one "="/],
    ['app.example.com=web:8443', /guest port 8443 differs from the routed ports 80 and 443: give the listen port too/],
    ['*.com=web', /wildcard "\*.com" needs at least two labels/],
    ['a.*.example.com=web', /one leading label only/],
    ['**.example.com=web', /one leading label only/],
    ['bad_name!.com=web', /is not a host name/],
    ['app.example.com:0=web', /listen port 0 is outside 1-65535/],
    ['app.example.com:http=web', /listen port "http" is not a port number/],
    ['app.example.com=1.2.3:80', /guest "1.2.3" is not an IPv4 address/],
    ['app.example.com=web.example.com', /neither an IPv4 address nor a guest name/],
    ['app.example.com=web,proxy-protocol=v3', /unknown option "proxy-protocol=v3"/],
    ['app.example.com=web,proxy-protocol=v1,proxy-protocol=v2', /given twice/],
  ])('refuses %s naming the problem', (text, message) => {
    expect(() => parseExposeSpec(text)).toThrow(message);
    try {
      parseExposeSpec(text);
    } catch (err) {
      expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
      expect((err as Error).message).toContain(`expose "${text.trim()}"`);
    }
  });

  it('without a listen port: 80 → 80 and 443 → 443; with a PORT of 80 or 443: that port only', () => {
    expect(routesOf(parseExposeSpec('a.test=web')).map((r) => [r.listenPort, r.guestPort])).toEqual([[80, 80], [443, 443]]);
    expect(routesOf(parseExposeSpec('a.test=web:443')).map((r) => [r.listenPort, r.guestPort])).toEqual([[443, 443]]);
    expect(routesOf(parseExposeSpec('a.test:8443=web')).map((r) => [r.listenPort, r.guestPort])).toEqual([[8443, 8443]]);
  });

  it('on arbitrary text either parses (and round-trips through its canonical form) or throws NatdError(CONFIG)', () => {
    const piece = fc.constantFrom('a', 'app', '*', '.', ':', '=', ',', '80', '443', '8443', 'web', '10.0.0.5', 'proxy-protocol', '=v2', 'x', '-', '', ' ');
    const text = fc.oneof(fc.string(), fc.array(piece, { maxLength: 12 }).map((p) => p.join('')));
    fc.assert(fc.property(text, (t) => {
      let spec;
      try {
        spec = parseExposeSpec(t);
      } catch (err) {
        expect(err).toBeInstanceOf(NatdError);
        expect((err as NatdError).code).toBe(ErrorCodes.CONFIG);
        return;
      }
      expect(parseExposeSpec(formatExposeSpec(spec))).toEqual(spec);
      for (const r of routesOf(spec)) {
        expect(r.listenPort).toBeGreaterThanOrEqual(1);
        expect(r.guestPort).toBeLessThanOrEqual(65535);
      }
    }), { numRuns: 3000 });
  });

  it('the fallback: GUEST[:PORT]', () => {
    expect(parseExposeFallback('web')).toEqual({ guest: { name: 'web' } });
    expect(parseExposeFallback('10.0.0.9:8443')).toEqual({ guest: { address: ip('10.0.0.9') }, guestPort: 8443 });
    expect(() => parseExposeFallback('web:0')).toThrow(/not a port/);
    expect(() => parseExposeFallback('a.b')).toThrow(/neither an IPv4 address nor a guest name/);
  });
});

describe('RouteTable', () => {
  const table = new RouteTable(['a.example.test=alpha', '*.dev.example.test=beta', 'x.dev.example.test=gamma', 'api.example.test:8443=alpha:443'].map((t) => exposeEntry(t, 'config')));

  it('matches exact names first, then the one-label wildcard, per port', () => {
    expect(table.match('a.example.test', 443)?.guest).toEqual({ name: 'alpha' });
    expect(table.match('a.example.test', 8443)).toBeUndefined();
    expect(table.match('y.dev.example.test', 80)?.guest).toEqual({ name: 'beta' });
    expect(table.match('x.dev.example.test', 80)?.guest).toEqual({ name: 'gamma' }); // exact beats wildcard
    expect(table.match('a.b.dev.example.test', 80)).toBeUndefined(); // one label only
    expect(table.match('dev.example.test', 80)).toBeUndefined();
    expect(table.match('api.example.test', 8443)?.guestPort).toBe(443);
    expect(table.ports).toEqual([80, 443, 8443]);
  });

  it('refuses the same name twice on one port', () => {
    expect(() => table.with(exposeEntry('a.example.test=other:443', 'runtime'))).toThrow(/already routed by "a.example.test=alpha"/);
    expect(() => table.with(exposeEntry('a.example.test:8080=other', 'runtime'))).not.toThrow();
  });

  it('a forward on a routed port conflicts on the same or any address; udp and other ports do not', () => {
    const f = (text: string) => ({ text, spec: parseForwardSpec(text) });
    expect(forwardConflicts([80, 443], undefined, [f('tcp:443=web:443')])).toHaveLength(1);
    expect(forwardConflicts([80, 443], undefined, [f('tcp:198.51.100.1:80=web:80')])).toHaveLength(1);
    expect(forwardConflicts([80, 443], ip('198.51.100.1'), [f('tcp:198.51.100.2:80=web:80')])).toHaveLength(0);
    expect(forwardConflicts([80, 443], ip('198.51.100.1'), [f('tcp:80=web:80')])).toHaveLength(1);
    expect(forwardConflicts([80, 443], undefined, [f('udp:443=web:443'), f('tcp:8080=web:80')])).toHaveLength(0);
  });
});

describe('expose settings', () => {
  const served = { subnet: makeSubnet(ip('10.77.0.0'), 24), gateway: ip('10.77.0.1') };
  const config = (extra: Record<string, unknown>) => resolveConfig({ bridge: 'br0', subnet: '10.77.0.1/24', ...extra });

  it('defaults and flags', () => {
    const c = config({ expose: ['a.test=web'], exposeHeadTimeout: '500ms', exposeIdleTimeout: 60, exposeMaxConns: 100, exposeMaxConnsPerClient: 10 });
    expect(c.expose.entries.map((e) => e.text)).toEqual(['a.test=web']);
    expect(c.expose.limits).toMatchObject({ headTimeoutMs: 500, idleTimeoutMs: 60_000, maxConnections: 100, maxConnectionsPerClient: 10 });
    expect(config({}).expose.limits).toMatchObject({ maxConnections: 4096, maxConnectionsPerClient: 256, headTimeoutMs: 5000, idleTimeoutMs: 300_000 });
  });

  it.each([
    [{ expose: ['a.test=web:8443'] }, /expose\.0: .*give the listen port/],
    [{ expose: ['a.test=web', 'a.test=db'] }, /expose\.1: .*already routed/],
    [{ expose: ['a.test=10.77.0.1'] }, /expose\.0: .*gateway/],
    [{ expose: ['a.test=192.0.2.1'] }, /expose\.0: .*not inside the served subnet/],
    [{ expose: ['a.test=web'], forwards: ['tcp:443=web:443'] }, /tcp port 443 is a routed port/],
    [{ exposeFallback: 'a.b' }, /exposeFallback: /],
    [{ exposeListen: 'nope' }, /exposeListen/],
    [{ exposeHeadTimeout: 'soon' }, /exposeHeadTimeout/],
  ])('refuses %j naming the field', (extra, message) => {
    expect(() => config(extra)).toThrow(message);
  });

  it('targets are guests of the served subnet only', () => {
    expect(targetProblem(ip('10.77.0.50'), served)).toBeUndefined();
    expect(targetProblem(ip('10.77.0.1'), served)).toMatch(/gateway/);
    expect(targetProblem(ip('10.77.0.255'), served)).toMatch(/broadcast/);
    expect(targetProblem(ip('127.0.0.1'), served)).toMatch(/not inside/);
  });
});
