/**
 * issue 17: the name router service (daemon/expose.ts) with a recording engine: the per-connection lookup (exact,
 * wildcard, fallback, guests resolved at connection time, targets only inside the served subnet), runtime add and
 * remove (ports opened in the firewall and the engine, persisted; refusals change nothing), reload.
 */
import { describe, expect, it } from 'vitest';
import { resolveConfig, type Config } from '../../src/config.js';
import { ExposeService, type ExposeStore, type RouterEngine } from '../../src/daemon/expose.js';
import { makeSubnet } from '../../src/net/ipv4.js';
import type { Firewall } from '../../src/nft/firewall.js';
import { parseForwardEntry } from '../../src/nft/forward-set.js';
import type { RouterStats } from '../../src/router/name-router.js';
import { ip } from '../support/addresses.js';
import { recordingLogger } from '../support/recording-logger.js';

const served = { subnet: makeSubnet(ip('10.77.0.0'), 24), gateway: ip('10.77.0.1') };
const config = (extra: Record<string, unknown> = {}): Config => resolveConfig({ bridge: 'br0', subnet: '10.77.0.1/24', stateDir: '/nonexistent', ...extra });

class MemoryStore implements ExposeStore {
  saves: string[][] = [];
  constructor(public specs: string[] = [], private readonly failing = false) {}
  async load() { return [...this.specs]; }
  async save(specs: readonly string[]) {
    if (this.failing) throw new Error('disk full');
    this.specs = [...specs];
    this.saves.push([...specs]);
  }
}

function setup(opts: { config?: Config; stored?: string[]; names?: Record<string, string>; forwards?: string[]; failingStore?: boolean } = {}) {
  const names = new Map(Object.entries(opts.names ?? { alpha: '10.77.0.50', beta: '10.77.0.60' }).map(([k, v]) => [k, ip(v)]));
  const listens: number[][] = [];
  let limits: unknown;
  let lookup!: Parameters<NonNullable<ConstructorParameters<typeof ExposeService>[0]['engine']>>[0];
  const engine = (l: typeof lookup): RouterEngine => {
    lookup = l;
    return {
      listen: async (ports) => { listens.push(ports.map((p) => p.port)); },
      setLimits: (l2) => { limits = l2; },
      stats: () => ({ routes: { 'a.example.test:443': { active: 1, total: 5, bytesIn: 100, bytesOut: 2000 } } }) as unknown as RouterStats,
      close: async () => undefined,
    };
  };
  const firewallPorts: number[][] = [];
  const forwards = (opts.forwards ?? []).map((t) => parseForwardEntry(t, 'config'));
  const firewall = { forwardEntries: () => forwards, setRoutedPorts: async (p: readonly number[]) => { firewallPorts.push([...p]); } } as unknown as Firewall;
  const store = new MemoryStore(opts.stored, opts.failingStore);
  const service = new ExposeService({
    config: opts.config ?? config({ expose: ['a.example.test=alpha', '*.dev.example.test=beta', 'p.example.test:8080=alpha,proxy-protocol=v2'] }),
    served, logger: recordingLogger(), resolveGuest: (n) => names.get(n), store, engine,
  });
  return { service, store, listens, firewallPorts, firewall, names, lookup: () => lookup, limits: () => limits };
}

describe('ExposeService', () => {
  it('looks routes up per connection: exact, wildcard, port, PROXY, fallback only for TLS', async () => {
    const t = setup();
    await t.service.load();
    await t.service.start(t.firewall);
    const lookup = t.lookup();
    expect(lookup('a.example.test', 443, 'tls')).toEqual({ address: '10.77.0.50', port: 443, route: 'a.example.test:443' });
    expect(lookup('a.example.test', 80, 'http')).toEqual({ address: '10.77.0.50', port: 80, route: 'a.example.test:80' });
    expect(lookup('x.dev.example.test', 80, 'http')).toMatchObject({ address: '10.77.0.60', route: '*.dev.example.test:80' });
    expect(lookup('p.example.test', 8080, 'http')).toEqual({ address: '10.77.0.50', port: 8080, proxyProtocol: 'v2', route: 'p.example.test:8080' });
    expect(lookup('p.example.test', 443, 'tls')).toBeUndefined();
    expect(lookup('nope.example.test', 443, 'tls')).toBeUndefined();
    expect(lookup(undefined, 443, 'tls')).toBeUndefined(); // no fallback configured
    expect(t.listens).toEqual([[80, 443, 8080]]);

    const f = setup({ config: config({ expose: ['a.example.test=alpha'], exposeFallback: 'beta:8443' }) });
    await f.service.start(f.firewall);
    expect(f.lookup()(undefined, 443, 'tls')).toEqual({ address: '10.77.0.60', port: 8443, route: '(no name):443' });
    expect(f.lookup()(undefined, 80, 'http')).toBeUndefined();
  });

  it('follows a guest whose address changes; never connects outside the served subnet or to the gateway', async () => {
    const t = setup();
    await t.service.start(t.firewall);
    expect(t.lookup()('a.example.test', 443, 'tls')?.address).toBe('10.77.0.50');
    t.names.set('alpha', ip('10.77.0.99'));
    expect(t.lookup()('a.example.test', 443, 'tls')?.address).toBe('10.77.0.99');
    // a name that now points at the host itself or elsewhere (e.g. a hosts-file entry): refused and counted
    for (const hostile of ['10.77.0.1', '127.0.0.1', '10.77.0.255', '192.0.2.1']) {
      t.names.set('alpha', ip(hostile));
      expect(t.lookup()('a.example.test', 443, 'tls'), hostile).toBeUndefined();
    }
    t.names.delete('alpha');
    expect(t.lookup()('a.example.test', 443, 'tls')).toBeUndefined();
    expect(t.service.status()).toMatchObject({ targetsRefused: 4, unresolved: 1 });
  });

  it('adds a runtime route: firewall and listener for a new port, persisted, listed with its counters', async () => {
    const t = setup();
    await t.service.start(t.firewall);
    const rows = await t.service.add('c.example.test:9443=beta:443');
    expect(rows).toEqual([expect.objectContaining({ spec: 'c.example.test:9443=beta:443', source: 'runtime', port: 9443, target: '10.77.0.60' })]);
    expect(t.firewallPorts.at(-1)).toEqual([80, 443, 8080, 9443]);
    expect(t.listens.at(-1)).toEqual([80, 443, 8080, 9443]);
    expect(t.store.specs).toEqual(['c.example.test:9443=beta:443']);
    expect(t.lookup()('c.example.test', 9443, 'tls')?.port).toBe(443);
    expect(t.service.rows().find((r) => r.name === 'a.example.test' && r.port === 443)).toMatchObject({ total: 5, bytesOut: 2000 });

    await t.service.remove('c.example.test');
    expect(t.lookup()('c.example.test', 9443, 'tls')).toBeUndefined();
    expect(t.listens.at(-1)).toEqual([80, 443, 8080]);
    expect(t.firewallPorts.at(-1)).toEqual([80, 443, 8080]);
    expect(t.store.specs).toEqual([]);
  });

  it('refuses duplicates, non-guests, forward conflicts and config routes, changing nothing', async () => {
    const t = setup({ forwards: ['tcp:2222=web:22', 'tcp:8443=web:443'] });
    await t.service.start(t.firewall);
    await expect(t.service.add('a.example.test=beta')).rejects.toThrow(/already routed/);
    await expect(t.service.add('x.example.test=10.77.0.1')).rejects.toThrow(/gateway/);
    await expect(t.service.add('x.example.test:8443=alpha:443')).rejects.toThrow(/tcp port 8443 is a routed port/);
    await expect(t.service.remove('a.example.test')).rejects.toThrow(/comes from the configuration/);
    await expect(t.service.remove('zzz.example.test')).rejects.toThrow(/no runtime expose route/);
    expect(t.store.saves).toEqual([]);
    expect(t.listens).toHaveLength(1);
    expect(t.firewallPorts).toEqual([]);
    // the firewall's check: a forward that would take a routed port
    expect(t.service.forwardConflicts([parseForwardEntry('tcp:443=web:443', 'runtime')], config({ expose: ['a.example.test=alpha'] }))).toHaveLength(1);
  });

  it('a failed write undoes the opened port', async () => {
    const t = setup({ failingStore: true });
    await t.service.start(t.firewall);
    await expect(t.service.add('c.example.test:9443=beta:443')).rejects.toThrow(/disk full/);
    expect(t.listens.at(-1)).toEqual([80, 443, 8080]);
    expect(t.firewallPorts.at(-1)).toEqual([80, 443, 8080]);
    expect(t.lookup()('c.example.test', 9443, 'tls')).toBeUndefined();
  });

  it('loads stored routes (bad ones left out) and keeps them over a reload that changes the configured ones', async () => {
    const t = setup({ stored: ['c.example.test=beta', 'broken', 'a.example.test=beta'] });
    await t.service.load();
    await t.service.start(t.firewall);
    expect(t.service.rows().filter((r) => r.source === 'runtime').map((r) => r.spec)).toEqual(['c.example.test=beta', 'c.example.test=beta']);
    await t.service.reload(config({ expose: ['z.example.test:8000=alpha:80'], exposeMaxConns: 10 }));
    expect(t.lookup()('a.example.test', 443, 'tls')).toBeUndefined();
    expect(t.lookup()('z.example.test', 8000, 'http')?.port).toBe(80);
    expect(t.lookup()('c.example.test', 80, 'http')?.address).toBe('10.77.0.60');
    expect(t.listens.at(-1)).toEqual([80, 443, 8000]);
    expect(t.limits()).toMatchObject({ maxConnections: 10 });
  });
});
