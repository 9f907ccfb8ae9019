/**
 * Issue 15: domain routes in the DNS server pipeline, from a config through buildRouteTable (daemon/dns-routes.ts)
 * to in-test upstreams on loopback: the split upstream gets only its domain, --local never leaves, a route for a
 * private reverse zone overrides bogus-priv, natd's own domain stays local (even under a `#` route), and a cache hit
 * for a routed name asks nobody.
 */
import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { silentLogger } from '../../src/log.js';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4.js';
import { resolveConfig } from '../../src/config.js';
import { DnsCache } from '../../src/dns/cache.js';
import { LocalNames } from '../../src/dns/local-names.js';
import { DnsServer } from '../../src/dns/server.js';
import { DgramUdpTransport } from '../../src/dns/udp-transport.js';
import { UpstreamClient } from '../../src/dns/upstream.js';
import { buildRouteTable } from '../../src/daemon/dns-routes.js';

const LOOPBACK = parseCidr('127.0.0.1/8')!.subnet;

interface Responder { port: number; names: string[]; socket: dgram.Socket }

async function responder(): Promise<Responder> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const r: Responder = { port: socket.address().port, names: [], socket };
  socket.on('message', (msg, rinfo) => {
    const q = dnsPacket.decode(msg);
    const question = q.questions![0]!;
    r.names.push(question.name);
    socket.send(dnsPacket.encode({
      id: q.id!, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE, questions: [question],
      answers: question.type === 'PTR' ? [{ name: question.name, type: 'PTR', ttl: 60, data: 'x.example' }] : [{ name: question.name, type: 'A', ttl: 60, data: '192.0.2.7' }],
    }), rinfo.port, rinfo.address);
  });
  return r;
}

async function ask(port: number, name: string, type = 'A'): Promise<{ rcode: string; aa: boolean; answers: number }> {
  const socket = dgram.createSocket('udp4');
  try {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${name}`)), 3000);
      socket.on('message', (m) => { clearTimeout(timer); resolve(m); });
      socket.send(dnsPacket.encode({ id: 9, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A' }] }), port, '127.0.0.1');
    });
    const d = dnsPacket.decode(reply) as unknown as { rcode: string; flags: number; answers: unknown[] };
    return { rcode: d.rcode, aa: (d.flags & dnsPacket.AUTHORITATIVE_ANSWER) !== 0, answers: d.answers.length };
  } finally {
    socket.close();
  }
}

describe('DNS server with domain routes', () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0)) await c();
  });

  async function setup(): Promise<{ port: number; def: Responder; corp: Responder; server: DnsServer }> {
    const def = await responder();
    const corp = await responder();
    cleanup.push(() => def.socket.close(), () => corp.socket.close());
    const config = resolveConfig({
      bridge: 'br-t', domain: 'vm.test', upstreams: [`127.0.0.1#${def.port}`],
      server: [`/corp.example/127.0.0.1#${corp.port}`, `/0.0.10.in-addr.arpa/127.0.0.1#${corp.port}`, '/in.corp.example/#', '/sub.vm.test/#'],
      local: ['/lab/'],
    });
    const upstream = new UpstreamClient({ servers: config.upstreamServers.map((u) => ({ ...u })), logger: silentLogger, timeoutMs: 2000, budgetMs: 2500 });
    // every responder here answers: a 200 ms attempt was short enough for a loaded machine's pause to cause a retry,
    // which the tests' exact lists of names asked would count
    cleanup.push(() => upstream.close());
    const udp = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    const localNames = new LocalNames({ domain: 'vm.test', subnet: LOOPBACK, gatewayAddress: parseIpv4('127.0.0.1')! });
    const server = new DnsServer({
      udp: new DgramUdpTransport(udp), subnet: LOOPBACK, localNames, cache: new DnsCache(), upstream, domain: 'vm.test', logger: silentLogger,
      routes: buildRouteTable(config, upstream),
    });
    server.start();
    cleanup.push(() => server.close());
    return { port: udp.address().port, def, corp, server };
  }

  it('sends each name to its route, once (a cache hit asks nobody)', async () => {
    const { port, def, corp, server } = await setup();
    expect(await ask(port, 'www.corp.example')).toMatchObject({ rcode: 'NOERROR', answers: 1 });
    expect(await ask(port, 'www.corp.example')).toMatchObject({ rcode: 'NOERROR', answers: 1 });
    expect(await ask(port, 'www.example')).toMatchObject({ rcode: 'NOERROR' });
    expect(await ask(port, 'a.in.corp.example')).toMatchObject({ rcode: 'NOERROR' });
    expect(corp.names).toEqual(['www.corp.example']);
    expect(def.names).toEqual(['www.example', 'a.in.corp.example']);
    expect(server.stats()).toMatchObject({ routed: 1, forwarded: 3, cacheHits: 1 });
  });

  it('--local answers NXDOMAIN authoritatively and asks nobody', async () => {
    const { port, def, corp } = await setup();
    expect(await ask(port, 'printer.lab')).toEqual({ rcode: 'NXDOMAIN', aa: true, answers: 0 });
    expect(await ask(port, 'lab', 'MX')).toEqual({ rcode: 'NXDOMAIN', aa: true, answers: 0 });
    expect([...def.names, ...corp.names]).toEqual([]);
  });

  it('a route for a private reverse zone overrides bogus-priv; other private reverse names stay local', async () => {
    const { port, def, corp } = await setup();
    expect(await ask(port, '5.0.0.10.in-addr.arpa', 'PTR')).toMatchObject({ rcode: 'NOERROR', answers: 1 });
    expect(await ask(port, '5.0.1.10.in-addr.arpa', 'PTR')).toMatchObject({ rcode: 'NXDOMAIN' });
    expect(corp.names).toEqual(['5.0.0.10.in-addr.arpa']);
    expect(def.names).toEqual([]);
  });

  it("natd's own domain stays local, even under a # route (no loop through resolved's stub)", async () => {
    const { port, def, corp } = await setup();
    expect(await ask(port, 'nobody.vm.test')).toMatchObject({ rcode: 'NXDOMAIN', aa: true });
    expect(await ask(port, 'x.sub.vm.test')).toMatchObject({ rcode: 'NXDOMAIN', aa: true });
    expect([...def.names, ...corp.names]).toEqual([]);
  });

  it('setRoutes(undefined) drops every route', async () => {
    const { port, def, corp, server } = await setup();
    server.setRoutes(undefined);
    expect(await ask(port, 'b.corp.example')).toMatchObject({ rcode: 'NOERROR' });
    expect(await ask(port, 'printer.lab')).toMatchObject({ rcode: 'NOERROR' });
    expect(corp.names).toEqual([]);
    expect(def.names).toEqual(['b.corp.example', 'printer.lab']);
  });
});
