/**
 * Split DNS (issue 15) end to end: real `dig` in a guest namespace against natd, fake upstreams in the wan namespace
 * (the default one on UPLINK_WAN, the split one on UPLINK_WAN2 port 53 and 5353, one over IPv6) and one on the
 * host's loopback that guests cannot reach themselves. Where a query went is read from each upstream's own query log,
 * never assumed. The routes come from a JSON config file (`server`/`local` arrays), so a reload can change them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_WAN, UPLINK_WAN2 } from '../support/netns.js';
import { FIXTURES, NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';

const needsRoot = !isRoot() && !process.env.CI;
const HOST6 = '2001:db8:100::1';
const WAN6 = '2001:db8:100::2';
const HOST_ONLY_PORT = 5300;
const MAX_PENDING = 32;

interface Dig { status: string | undefined; flags: string[]; answers: string[]; stdout: string }

describe.skipIf(needsRoot)('split DNS: --server=/domain/ip, --local, ports, IPv6, order', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let dir: string;
  let configFile: string;
  const logs: Record<string, string> = {};

  const queries = (which: string): string[] => (existsSync(logs[which]!) ? readFileSync(logs[which]!, 'utf8').trim().split('\n').filter(Boolean) : []);
  const counts = (): Record<string, number> => Object.fromEntries(Object.keys(logs).map((k) => [k, queries(k).length]));
  const grew = (before: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.entries(counts()).map(([k, n]) => [k, n - (before[k] ?? 0)]).filter(([, n]) => n !== 0));

  async function dig(args: string[], ns = topo.vm(1).ns, server = GATEWAY): Promise<Dig> {
    const r = await topo.run(ns, ['dig', `@${server}`, '+time=3', '+tries=1', '+noall', '+comments', '+answer', ...args], { timeoutMs: 15_000 });
    const flags = (/;; flags: ([a-z ]*);/.exec(r.stdout)?.[1] ?? '').split(' ').filter(Boolean);
    const answers = r.stdout.split('\n').filter((l) => l && !l.startsWith(';')).map((l) => l.trim().split(/\s+/).join(' '));
    return { status: /status: ([A-Z]+)/.exec(r.stdout)?.[1], flags, answers, stdout: r.stdout };
  }

  async function startUpstream(ns: string, name: string, listen: string, extra: string[] = []): Promise<void> {
    logs[name] = path.join(dir, `${name}.log`);
    const child = topo.spawn(ns, [process.execPath, path.join(FIXTURES, 'fake-upstream.mjs'), '--listen', listen, '--log', logs[name]!, ...extra]);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('listening')) resolve(); });
      child.once('exit', (code) => reject(new Error(`fake upstream ${name} exited ${code}`)));
    });
  }

  const routesConfig = (extra: { server?: string[]; local?: string[] } = {}) => ({
    server: [
      `/corp.example.test/${UPLINK_WAN2}`,
      `/p5353.example.test/${UPLINK_WAN2}#5353`,
      `/v6.example.test/[${WAN6}]:53`,
      `/hostonly.example.test/127.0.0.1#${HOST_ONLY_PORT}`,
      '/in.corp.example.test/#',
      `/0.0.10.in-addr.arpa/${UPLINK_WAN2}`,
      `/blackhole.test/${UPLINK_WAN2}`,
      ...(extra.server ?? []),
    ],
    local: ['/lab.example.test/', ...(extra.local ?? [])],
  });

  async function natdCli(args: string[]): Promise<string> {
    return topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  }

  beforeAll(async () => {
    topo = Topology.create({ vms: 2 });
    dir = tempDir('natd-split-');
    // IPv6 between host and wan (nodad: usable at once)
    await topo.runOk(topo.host, ['ip', 'addr', 'add', `${HOST6}/64`, 'dev', 'wan0', 'nodad']);
    await topo.runOk(topo.wan, ['ip', 'addr', 'add', `${WAN6}/64`, 'dev', 'eth0', 'nodad']);
    await startUpstream(topo.wan, 'default', `${UPLINK_WAN}:53`);
    await startUpstream(topo.wan, 'split', `${UPLINK_WAN2}:53`);
    await startUpstream(topo.wan, 'split5353', `${UPLINK_WAN2}:5353`);
    await startUpstream(topo.wan, 'v6', `[${WAN6}]:53`);
    // on the host's loopback: no guest can send it anything itself
    await startUpstream(topo.host, 'hostonly', `127.0.0.1:${HOST_ONLY_PORT}`);
    configFile = path.join(dir, 'natd.json');
    writeFileSync(configFile, JSON.stringify(routesConfig()));
    natd = await startNatd(topo, [
      '--bridge', 'br0', '--subnet', `${GATEWAY}/24`, '--upstream', UPLINK_WAN, '--domain', 'vm', '--config', configFile,
      '--dns-max-pending-per-client', String(MAX_PENDING), '--log-queries', '--no-firewall', '--listen-address', '127.0.0.1',
      '--host-record', 'hostrec.vm,10.77.0.99',
    ]);
    for (const vm of [topo.vm(1), topo.vm(2)]) {
      await topo.runOk(vm.ns, ['ip', 'addr', 'add', `10.77.0.${vm === topo.vm(1) ? 21 : 22}/24`, 'dev', 'eth0']);
    }
  }, 60_000);

  afterAll(async () => {
    await topo?.destroy();
  });

  it('sends a name under a split domain to the split upstream only, and others to the default only', async () => {
    let before = counts();
    const split = await dig(['www.corp.example.test', 'A']);
    expect(split.status).toBe('NOERROR');
    expect(split.answers[0]).toMatch(/203\.0\.113\.\d+$/);
    expect(grew(before)).toEqual({ split: 1 });
    expect(queries('split').at(-1)).toBe('udp www.corp.example.test A');

    before = counts();
    expect((await dig(['www.example.test', 'A'])).status).toBe('NOERROR');
    expect(grew(before)).toEqual({ default: 1 });

    // a hole in the route (#): the default upstreams
    before = counts();
    expect((await dig(['x.in.corp.example.test', 'A'])).status).toBe('NOERROR');
    expect(grew(before)).toEqual({ default: 1 });

    // letter case does not matter; the route is on whole labels
    before = counts();
    await dig(['MiXeD.CoRp.ExAmPlE.TeSt', 'A']);
    await dig(['notcorp.example.test', 'A']);
    expect(grew(before)).toEqual({ split: 1, default: 1 });
  });

  it('reaches an upstream on port 5353 and one over IPv6', async () => {
    let before = counts();
    const p = await dig(['a.p5353.example.test', 'A']);
    expect(p.status).toBe('NOERROR');
    expect(grew(before)).toEqual({ split5353: 1 });
    before = counts();
    const six = await dig(['a.v6.example.test', 'AAAA']);
    expect(six.status).toBe('NOERROR');
    expect(six.answers[0]).toMatch(/2001:db8::/);
    expect(grew(before)).toEqual({ v6: 1 });
  });

  it('--local: NXDOMAIN without any upstream query', async () => {
    const before = counts();
    const r = await dig(['printer.lab.example.test', 'A']);
    expect(r.status).toBe('NXDOMAIN');
    expect(r.flags).toContain('aa');
    expect((await dig(['lab.example.test', 'MX'])).status).toBe('NXDOMAIN');
    expect(grew(before)).toEqual({});
  });

  it('a route for a private reverse zone wins over bogus-priv; other private reverse names stay local', async () => {
    let before = counts();
    await dig(['-x', '10.0.0.5']);
    expect(grew(before)).toEqual({ split: 1 });
    expect(queries('split').at(-1)).toBe('udp 5.0.0.10.in-addr.arpa PTR');
    before = counts();
    expect((await dig(['-x', '10.1.0.5'])).status).toBe('NXDOMAIN');
    expect(grew(before)).toEqual({});
  });

  it('natd status lists the routes; --log-queries names the route that answered', async () => {
    const status = JSON.parse(await natdCli(['status', '--json'])) as { dns: { routes: { domain: string; kind: string; servers: string[] }[]; routed: number } };
    expect(status.dns.routes).toEqual(expect.arrayContaining([
      { domain: 'corp.example.test', kind: 'forward', servers: [`${UPLINK_WAN2}:53`] },
      { domain: 'v6.example.test', kind: 'forward', servers: [`[${WAN6}]:53`] },
      { domain: 'lab.example.test', kind: 'local', servers: [] },
      { domain: 'in.corp.example.test', kind: 'default', servers: [] },
    ]));
    expect(status.dns.routed).toBeGreaterThanOrEqual(4);
    const line = await natd.waitForLog((l) => l.msg === 'dns query' && l.name === 'www.corp.example.test');
    expect(line).toMatchObject({ client: '10.77.0.21', type: 1, answer: 'upstream corp.example.test', rcode: 0 });
  });

  it('--listen-address 127.0.0.1: the host itself gets the same routes', async () => {
    const before = counts();
    const r = await dig(['host.corp.example.test', 'A'], topo.host, '127.0.0.1');
    expect(r.status).toBe('NOERROR');
    expect((await dig(['x.lab.example.test', 'A'], topo.host, '127.0.0.1')).status).toBe('NXDOMAIN');
    expect(grew(before)).toEqual({ split: 1 });
    const status = JSON.parse(await natdCli(['status', '--json'])) as { dns: { listeners: { address: string; queries: number }[] } };
    expect(status.dns.listeners).toEqual([expect.objectContaining({ address: '127.0.0.1', queries: 2 })]);
  });

  it('--listen-address 127.0.0.1: the host gets the operator\'s records as the guests do', async () => {
    for (const [ns, server] of [[topo.vm(1).ns, GATEWAY], [topo.host, '127.0.0.1']] as const) {
      const r = await dig(['hostrec.vm', 'A'], ns, server);
      expect(r.status).toBe('NOERROR');
      expect(r.answers.some((a) => a.endsWith('A 10.77.0.99'))).toBe(true);
    }
  });

  it('takes route changes on reload (config file + natd reload), and drops answers cached for the old route', async () => {
    // cached from the default upstream
    await dig(['moved.example.test', 'A']);
    writeFileSync(configFile, JSON.stringify(routesConfig({ server: [`/moved.example.test/${UPLINK_WAN2}#5353`] })));
    await natdCli(['reload']);
    const before = counts();
    expect((await dig(['moved.example.test', 'A'])).status).toBe('NOERROR');
    expect(grew(before)).toEqual({ split5353: 1 });
  });

  describe('attacks', () => {
    it('a guest reaches a host-only upstream through a route only for names in its domain', async () => {
      let before = counts();
      expect((await dig(['a.hostonly.example.test', 'A'])).status).toBe('NOERROR');
      expect(grew(before)).toEqual({ hostonly: 1 });
      // on its own the guest cannot reach it: nothing on the gateway's port, and its own loopback is its own
      expect((await dig(['-p', String(HOST_ONLY_PORT), 'b.hostonly.example.test', 'A'])).status).toBeUndefined();
      expect((await dig(['-p', String(HOST_ONLY_PORT), 'b.hostonly.example.test', 'A'], topo.vm(1).ns, '127.0.0.1')).status).toBeUndefined();
      // look-alikes: a longer label, the domain as a prefix, a label with an escaped dot, another type's name
      before = counts();
      for (const name of ['xhostonly.example.test', 'hostonly.example.test.attacker.test', 'hostonly\\.example.test', 'a.hostonly-example.test', 'hostonly.example.tes']) {
        await dig([name, 'A']);
      }
      expect(grew(before).hostonly).toBeUndefined();
      console.log('look-alikes at the default upstream:', queries('default').slice(before.default));
      expect(new Set(queries('default').slice(before.default)).size).toBe(5);
    });

    it('a query flood to a split upstream is bounded by the same per-client limit; a neighbour is still served', async () => {
      const before = counts();
      // unique names under a routed zone whose upstream never answers: each would hold a slot for the whole budget
      const flood = topo.run(topo.vm(1).ns, [process.execPath, path.join(FIXTURES, 'dns-attack.mjs'), 'udp-unique-flood', GATEWAY, '3000'], { timeoutMs: 60_000 });
      await new Promise((ok) => setTimeout(ok, 500));
      const neighbour = await dig(['during-flood.corp.example.test', 'A'], topo.vm(2).ns);
      const result = JSON.parse((await flood).stdout.trim().split('\n').pop()!) as { sent: number; answers: number; servfails: number };
      expect(neighbour.status).toBe('NOERROR');
      const floodNames = new Set(queries('split').slice(before.split).filter((l) => l.includes('blackhole.test')).map((l) => l.split(' ')[1]));
      console.log('split flood:', result, 'distinct names reaching the split upstream:', floodNames.size, 'of', result.sent);
      // at most MAX_PENDING in flight at once; the flood is over well within one query budget (4 s)
      expect(floodNames.size).toBeLessThanOrEqual(MAX_PENDING * 2);
      // what the flooder got back (the rest its socket or natd's dropped) is SERVFAIL: the at-once per-client answer
      expect(result.servfails).toBeGreaterThan(0);
      expect(grew(before).default ?? 0).toBe(0);
      const metrics = await natdCli(['metrics']);
      expect(metrics).toMatch(/natd_dns_limited_total\{bridge="br0",limit="client-pending"\} [1-9]/);
      expect(metrics).toMatch(/natd_dns_routed_total\{[^}]*\} [1-9]/);
      expect(metrics).toMatch(/natd_dns_query_log_suppressed_total\{[^}]*\} \d/);
    }, 60_000);
  });

  describe('upstream order (natd restarted with two answering default upstreams)', () => {
    async function restart(extra: string[]): Promise<void> {
      await topo.stop(natd.child, 5000);
      natd = await startNatd(topo, ['--bridge', 'br0', '--subnet', `${GATEWAY}/24`, '--upstream', UPLINK_WAN2, '--upstream', UPLINK_WAN, '--no-firewall', ...extra]);
    }
    async function batch(prefix: string, n: number): Promise<void> {
      const file = path.join(dir, `${prefix}.txt`);
      writeFileSync(file, Array.from({ length: n }, (_, i) => `${prefix}${i}.example.test A`).join('\n') + '\n');
      await topo.run(topo.vm(1).ns, ['dig', `@${GATEWAY}`, '+time=3', '+tries=1', '+short', '-f', file], { timeoutMs: 60_000 });
    }
    const asked = (which: string, prefix: string): number => queries(which).filter((l) => l.startsWith(`udp ${prefix}`)).length;

    it('skips a resolv.conf nameserver that is natd itself (--listen-address): no loop', async () => {
      const resolvConf = path.join(dir, 'resolv.conf');
      writeFileSync(resolvConf, `nameserver 127.0.0.1\nnameserver ${GATEWAY}\nnameserver ${UPLINK_WAN}\n`);
      writeFileSync(path.join(dir, 'resolv.json'), JSON.stringify({ resolvConf }));
      await topo.stop(natd.child, 5000);
      natd = await startNatd(topo, ['--bridge', 'br0', '--subnet', `${GATEWAY}/24`, '--no-firewall', '--listen-address', '127.0.0.1', '--config', path.join(dir, 'resolv.json')]);
      const before = counts();
      expect((await dig(['via-resolv.example.test', 'A'], topo.host, '127.0.0.1')).status).toBe('NOERROR');
      expect(grew(before)).toEqual({ default: 1 });
      const status = JSON.parse(await natdCli(['status', '--json'])) as { dns: { upstream: { perServer: { server: string }[] } } };
      expect(status.dns.upstream.perServer.map((s) => s.server)).toEqual([`${UPLINK_WAN}:53`]);
    }, 60_000);

    it('--strict-order: every query goes to the first server', async () => {
      await restart(['--strict-order']);
      await batch('strict', 60);
      expect(asked('split', 'strict')).toBe(60);
      expect(asked('default', 'strict')).toBe(0);
    }, 60_000);

    it('default: the first server while it answers, and every 50th query raced to all', async () => {
      await restart([]);
      await batch('fast', 60);
      expect(asked('split', 'fast') + asked('default', 'fast')).toBeGreaterThanOrEqual(61);
      expect(asked('default', 'fast')).toBeGreaterThanOrEqual(1);
    }, 60_000);
  });
});
