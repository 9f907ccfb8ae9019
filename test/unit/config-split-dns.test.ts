/** Issue 15: the split-DNS settings in the config (flags and file), and the errors that name the field. */
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { settingsFromFlags } from '../../src/cli.js';

const base = { bridge: 'virbr9' };

describe('split DNS configuration', () => {
  it('reads server, local, upstreams with ports and IPv6, and the knobs', () => {
    const c = resolveConfig({
      ...base,
      upstreams: ['198.51.100.1', '[2001:db8::53]:5353'],
      server: ['/corp.example/10.0.0.53#5353', '/0.0.10.in-addr.arpa/10.0.0.53', '192.0.2.53#5353', '/in.corp.example/#'],
      local: ['/lab/'],
      strictOrder: true, minCacheTtl: 60, noNegcache: true, logQueries: 'extra',
    });
    expect(c.upstreamServers).toEqual([{ address: '198.51.100.1', port: 53 }, { address: '2001:db8::53', port: 5353 }, { address: '192.0.2.53', port: 5353 }]);
    expect(c.domainRoutes.map((r) => [r.domain, r.kind, r.servers])).toEqual([
      ['corp.example', 'forward', [{ address: '10.0.0.53', port: 5353 }]],
      ['0.0.10.in-addr.arpa', 'forward', [{ address: '10.0.0.53', port: 53 }]],
      ['in.corp.example', 'default', []],
      ['lab', 'local', []],
    ]);
    expect(c).toMatchObject({ strictOrder: true, minCacheTtl: 60, noNegcache: true, logQueries: 'extra' });
  });

  it('defaults: fastest server, no min TTL, negative caching, no query log', () => {
    expect(resolveConfig(base)).toMatchObject({ strictOrder: false, minCacheTtl: 0, noNegcache: false, logQueries: 'off', domainRoutes: [], upstreamServers: [] });
  });

  it.each([
    [{ server: ['/corp.example/not-an-ip'] }, /server\.0: "\/corp\.example\/not-an-ip": server "not-an-ip": "not-an-ip" is not an IP address/],
    [{ local: ['10.0.0.1'] }, /local\.0: .*expected \/DOMAIN\//],
    [{ upstreams: ['10.0.0.1#99999'] }, /upstreams\.0: .*not in 1-65535/],
    [{ server: ['/lab/10.0.0.1'], local: ['/lab/'] }, /server\/local: lab is forwarded in server\.0 and local \(answered here only\) in local\.0/],
    [{ minCacheTtl: 7200 }, /minCacheTtl: /],
    [{ logQueries: 'loud' }, /logQueries: expected true, false or "extra"/],
    [{ domain: 'vm', server: ['/ext.vm/10.0.0.1'] }, /server: ext\.vm is inside natd's own domain vm/],
    [{ listenAddress: ['192.168.1.1'] }, /listenAddress\.0: expected a loopback IPv4 address/],
    [{ listenAddress: ['127.0.0.1'], upstreams: ['127.0.0.1'] }, /listenAddress\.0: 127\.0\.0\.1 is also an upstream/],
  ])('rejects %j naming the field', (settings, message) => {
    expect(() => resolveConfig({ ...base, ...settings })).toThrow(message);
  });

  it('flags map to the same settings (--log-queries alone is on)', () => {
    const s = settingsFromFlags({ server: ['/a/10.0.0.1'], local: ['/lab/'], 'strict-order': true, 'min-cache-ttl': '30', 'no-negcache': true, 'log-queries': 'on' } as never);
    expect(s).toMatchObject({ server: ['/a/10.0.0.1'], local: ['/lab/'], strictOrder: true, minCacheTtl: 30, noNegcache: true, logQueries: true });
  });
});
