/**
 * issue 14: the IPv6 egress side end to end in namespaces (test 90 covers RAs, SLAAC and NAT66 for UDP and ping).
 *
 *   1. nat mode (--ipv6-mode default) with a global /64: a TCP connection from a guest to the wan namespace arrives
 *      from the host's uplink address; the wan side cannot open a connection to a guest (only replies and forwards).
 *   2. The same natd switched to routed by `natd reload` (one table apply): the guest's connection keeps its own
 *      source, and the wan side reaches the guest by its own address (the route for the prefix is the operator's,
 *      here added in the wan namespace).
 *   3. IPv6 port forwards: a configured `tcp:[HOST6]:2222=[GUEST6]:22` reaches the guest from wan (seeing the wan
 *      address) and from the other guest (hairpin: seen from the gateway); one added over the control socket works
 *      at once and stops when removed; one on the gateway's DNS or DHCPv6 port is refused, the table unchanged.
 *   4. Attacks: a guest reaches no host service beyond what is open (the uplink and gateway addresses), and IPv6
 *      with a spoofed source from outside the prefix does not leave the bridge.
 *   5. Host safety: an uplink with accept_ra=1 that learnt its default route from real RAs (scapy in the upstream
 *      namespace, a short router lifetime re-advertised every 2 s) keeps it after natd starts (accept_ra=2).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE, isRoot, Topology, UPLINK6_HOST, UPLINK6_WAN } from '../support/netns.js';
import { NATD_CLI, startNatd, tempDir, waitForListener, type NatdHandle } from '../support/natd-process.js';
import { waitFor } from '../support/wait.js';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';

const SYSTEM_PYTHON = '/usr/bin/python3';
const V6 = { gateway: '2001:db8:77::1', vm1: '2001:db8:77::11', vm2: '2001:db8:77::12', prefix: '2001:db8:77::/64' };

describe.skipIf(!isRoot())('IPv6 egress: NAT66 and routed mode, IPv6 port forwards (issue 14)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let configFile: string;

  const writeConfig = (ipv6Mode: 'nat' | 'routed') =>
    writeFileSync(configFile, JSON.stringify({ subnet6: `${V6.gateway}/64`, ipv6Mode, forwards: [`tcp:[${UPLINK6_HOST}]:2222=[${V6.vm1}]:22`] }));
  const cli = (args: string[]) => topo.run(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket], { timeoutMs: 15_000 });

  /** A TCP listener that writes back the peer address of each connection. */
  async function tcpEcho(ns: string, port: number): Promise<void> {
    topo.spawn(ns, ['socat', `TCP6-LISTEN:${port},reuseaddr,fork`, 'SYSTEM:echo $SOCAT_PEERADDR']);
    await waitForListener(topo, ns, port);
  }
  async function tcpConnect(ns: string, address: string, port: number): Promise<{ ok: boolean; text: string }> {
    const r = await topo.run(ns, ['socat', '-t', '2', '-', `TCP6:[${address}]:${port},connect-timeout=3`], { input: '', timeoutMs: 8000 });
    // socat gives the peer address fully written out (2001:0db8:…); compare canonical text
    const text = (r.code === 0 ? r.stdout : r.stderr).trim().replace(/^\[|\]$/g, '');
    const peer = parseIpv6(text);
    return { ok: r.code === 0 && text !== '', text: peer ? formatIpv6(peer) : text };
  }

  beforeAll(async () => {
    topo = Topology.create({ vms: 2, ipv6: true });
    for (const [vm, address] of [[topo.vm(1).ns, V6.vm1], [topo.vm(2).ns, V6.vm2]] as const) {
      // static addresses: the test is about the egress rules, not SLAAC (test 90)
      await topo.runOk(vm, ['sysctl', '-qw', 'net.ipv6.conf.eth0.accept_ra=0']);
      await topo.runOk(vm, ['ip', '-6', 'addr', 'add', `${address}/64`, 'dev', 'eth0', 'nodad']);
      await topo.runOk(vm, ['ip', '-6', 'route', 'add', 'default', 'via', V6.gateway]);
    }
    // the operator's route for the prefix, upstream
    await topo.runOk(topo.wan, ['ip', '-6', 'route', 'add', V6.prefix, 'via', UPLINK6_HOST]);
    configFile = path.join(tempDir('natd-v6r-'), 'natd.json');
    writeConfig('nat');
    natd = await startNatd(topo, ['--bridge', BRIDGE, '--no-dns', '--config', configFile]);
    await tcpEcho(topo.wan, 8080);
    await tcpEcho(topo.vm(1).ns, 22);
  }, 60_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  it('nat: a guest\'s TCP connection to wan arrives from the host\'s address; wan cannot connect to the guest', async () => {
    const out = await tcpConnect(topo.vm(1).ns, UPLINK6_WAN, 8080);
    expect(out).toEqual({ ok: true, text: UPLINK6_HOST });
    expect((await tcpConnect(topo.wan, V6.vm1, 22)).ok).toBe(false);
  });

  it('the configured IPv6 forward reaches the guest from wan (wan source kept) and from the other guest (hairpin)', async () => {
    expect(await tcpConnect(topo.wan, UPLINK6_HOST, 2222)).toEqual({ ok: true, text: UPLINK6_WAN });
    // hairpin: masqueraded to the gateway, so the reply goes back through the host
    expect(await tcpConnect(topo.vm(2).ns, UPLINK6_HOST, 2222)).toEqual({ ok: true, text: V6.gateway });
  });

  it('reload switches to routed in one apply: the guest keeps its source, wan reaches the guest by its address', async () => {
    writeConfig('routed');
    const r = await cli(['reload']);
    expect(r.code, r.stderr).toBe(0);
    const table = await topo.runOk(topo.host, ['nft', 'list', 'table', 'inet', `natd-${BRIDGE}`]);
    expect(table).not.toContain('NAT66');
    expect(table).toContain('routed IPv6 prefix');
    const status = JSON.parse((await cli(['status', '--json'])).stdout) as { ipv6?: { mode?: string } };
    expect(status.ipv6?.mode).toBe('routed');
    expect(await tcpConnect(topo.vm(1).ns, UPLINK6_WAN, 8080)).toEqual({ ok: true, text: V6.vm1 });
    expect(await tcpConnect(topo.wan, V6.vm1, 22)).toEqual({ ok: true, text: UPLINK6_WAN });
    // forwards keep working after the switch
    expect(await tcpConnect(topo.wan, UPLINK6_HOST, 2222)).toEqual({ ok: true, text: UPLINK6_WAN });
    expect(await tcpConnect(topo.vm(2).ns, UPLINK6_HOST, 2222)).toEqual({ ok: true, text: V6.gateway });
  });

  it('an IPv6 forward added over the control socket works at once, is listed, and stops when removed', async () => {
    const spec = `tcp:2223=[${V6.vm1}]:22`;
    expect((await tcpConnect(topo.wan, UPLINK6_HOST, 2223)).ok).toBe(false);
    const add = await cli(['forwards', 'add', spec]);
    expect(add.code, add.stderr).toBe(0);
    expect(await tcpConnect(topo.wan, UPLINK6_HOST, 2223)).toEqual({ ok: true, text: UPLINK6_WAN });
    const list = JSON.parse((await cli(['forwards', 'list', '--json'])).stdout) as { spec: string; host: string; guest: string; inTable: boolean }[];
    expect(list).toContainEqual(expect.objectContaining({ spec, host: '*:2223', guest: `[${V6.vm1}]:22`, inTable: true }));
    expect(JSON.parse(await topo.runOk(topo.host, ['cat', path.join(natd.stateDir, 'forwards.json')]))).toEqual([spec]);
    const remove = await cli(['forwards', 'remove', spec]);
    expect(remove.code, remove.stderr).toBe(0);
    expect((await tcpConnect(topo.wan, UPLINK6_HOST, 2223)).ok).toBe(false);
  });

  it('refuses an IPv6 forward bound to the gateway on DNS or DHCPv6, leaving the running table as it was', async () => {
    const table = () => topo.runOk(topo.host, ['nft', '-j', 'list', 'table', 'inet', `natd-${BRIDGE}`]);
    const before = await table();
    for (const [spec, message] of [
      [`udp:[${V6.gateway}]:547=[${V6.vm1}]:547`, /host address \[2001:db8:77::1\] is the bridge's IPv6 gateway, where natd serves the guests' DHCPv6 \(udp 547\)/],
      [`tcp:[${V6.gateway}]:53=[${V6.vm1}]:53`, /IPv6 gateway, where natd serves the guests' DNS \(tcp 53\)/],
    ] as const) {
      const r = await cli(['forwards', 'add', spec]);
      expect(r.code, spec).not.toBe(0);
      expect(r.stderr, spec).toMatch(message);
    }
    expect(await table()).toBe(before);
  });

  it('attack: a guest reaches no host service beyond the open ones, on the uplink or the gateway address', async () => {
    await tcpEcho(topo.host, 2999);
    expect(await tcpConnect(topo.wan, UPLINK6_HOST, 2999)).toEqual({ ok: true, text: UPLINK6_WAN }); // the control: it answers
    expect((await tcpConnect(topo.vm(2).ns, UPLINK6_HOST, 2999)).ok).toBe(false);
    expect((await tcpConnect(topo.vm(2).ns, V6.gateway, 2999)).ok).toBe(false);
    // a forward's port does not open the host's own port on other addresses of the host
    expect((await tcpConnect(topo.vm(2).ns, V6.gateway, 2222)).ok).toBe(false);
  });

  it('attack: IPv6 with a source outside the prefix does not leave the bridge (routed mode would carry it as is)', async () => {
    const sink = await topo.start(topo.wan, [SYSTEM_PYTHON, '-u', '-c', [
      'import socket',
      's = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)',
      `s.bind(("${UPLINK6_WAN}", 7777))`,
      'print("listening", flush=True)',
      'while True:',
      '    data, peer = s.recvfrom(2048)',
      '    print("from", peer[0], data.decode(errors="replace"), flush=True)',
    ].join('\n')], { ready: 'listening', timeoutMs: 10_000 });
    // and nothing comes back towards the spoofed address: no ICMPv6 error from a reject (reflection), no echo reply
    // from the host (the input chain's guard), seen on the wan link where the host's default route sends it
    const sniffer = await topo.start(topo.wan, [SYSTEM_PYTHON, '-u', '-c', [
      'from scapy.all import IPv6, sniff',
      'print("sniffing", flush=True)',
      'got = sniff(iface="eth0", timeout=6, lfilter=lambda p: IPv6 in p and p[IPv6].dst == "2001:db8:99::5")',
      'print("reflected", len(got), flush=True)',
    ].join('\n')], { ready: 'sniffing', timeoutMs: 15_000 });
    await new Promise((r) => setTimeout(r, 500));
    const vm2 = topo.vm(2);
    await topo.runOk(vm2.ns, [SYSTEM_PYTHON, '-c', [
      'from scapy.all import Ether, IPv6, UDP, sendp',
      // straight to natd's bridge MAC (the bench pins it): no neighbour discovery in scapy
      `for src, text in [("2001:db8:99::5", b"spoofed-outside"), ("fd00:bad::5", b"spoofed-ula"), ("${V6.vm2}", b"legit")]:`,
      `    sendp(Ether(src="${vm2.mac}", dst="52:54:00:77:00:01") / IPv6(src=src, dst="${UPLINK6_WAN}") / UDP(sport=40000, dport=7777) / text, iface="eth0", verbose=False)`,
      'from scapy.all import ICMPv6EchoRequest',
      `sendp(Ether(src="${vm2.mac}", dst="52:54:00:77:00:01") / IPv6(src="2001:db8:99::5", dst="${V6.gateway}") / ICMPv6EchoRequest(), iface="eth0", verbose=False)`,
    ].join('\n')], { timeoutMs: 30_000 });
    await waitFor('the legitimate datagram', async () => sink.output().includes('legit'), 15_000, 100);
    await new Promise((r) => setTimeout(r, 500));
    expect(sink.output()).toContain(`from ${V6.vm2} legit`);
    expect(sink.output()).not.toContain('spoofed');
    await sniffer.waitForOutput(/reflected \d+/, { timeoutMs: 15_000 });
    expect(sniffer.output()).toContain('reflected 0');
    await sink.stop();
  });
});

/** The RA sender of the upstream router: every 2 s an RA with a 6 s router lifetime, so a route that is not refreshed
 *  (accept_ra=1 once forwarding is on) is gone within seconds. */
const RA_SENDER = [
  'import time',
  'from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptSrcLLAddr, ICMPv6NDOptPrefixInfo, get_if_hwaddr, sendp',
  'from scapy.utils6 import in6_mactoifaceid',
  'mac = get_if_hwaddr("eth0")',
  'ra = Ether(src=mac, dst="33:33:00:00:00:01") / IPv6(src="fe80::" + in6_mactoifaceid(mac), dst="ff02::1", hlim=255) / ICMPv6ND_RA(routerlifetime=6) / ICMPv6NDOptSrcLLAddr(lladdr=mac)',
  'ra /= ICMPv6NDOptPrefixInfo(prefix="2001:db8:52::", prefixlen=64, L=1, A=0, validlifetime=600, preferredlifetime=300)',
  'print("sending", flush=True)',
  'while True:',
  '    sendp(ra, iface="eth0", verbose=False)',
  '    time.sleep(2)',
].join('\n');

describe.skipIf(!isRoot())('IPv6 host safety: an uplink that relies on RAs keeps its default route (issue 14)', () => {
  let topo: Topology;

  beforeAll(() => {
    topo = Topology.create({ vms: 1 });
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  const raRoutes = async (): Promise<string[]> =>
    (JSON.parse((await topo.runOk(topo.host, ['ip', '-6', '-j', 'route', 'show', 'default', 'proto', 'ra'])) || '[]') as { dev?: string; expires?: number }[])
      .filter((r) => r.expires === undefined || r.expires > 0) // an expired route may be listed until the kernel's gc runs
      .map((r) => String(r.dev));

  it('wan0 learns its default route from real RAs, and still has it 10 s after natd turned forwarding on', async () => {
    await topo.runOk(topo.host, ['sysctl', '-qw', 'net.ipv6.conf.all.forwarding=0', 'net.ipv6.conf.wan0.forwarding=0', 'net.ipv6.conf.wan0.accept_ra=1']);
    const sender = await topo.start(topo.wan, [SYSTEM_PYTHON, '-u', '-c', RA_SENDER], { ready: 'sending', timeoutMs: 15_000 });
    await waitFor('a default route learnt from an RA on wan0', async () => (await raRoutes()).includes('wan0'), 20_000, 250);

    const natd = await startNatd(topo, ['--bridge', BRIDGE, '--no-dns', '--subnet6', 'fd00:94::1/64']);
    expect((await topo.runOk(topo.host, ['sysctl', '-n', 'net.ipv6.conf.all.forwarding'])).trim()).toBe('1');
    expect((await topo.runOk(topo.host, ['sysctl', '-n', 'net.ipv6.conf.wan0.accept_ra'])).trim()).toBe('2');
    expect(natd.logs.some((l) => String(l.msg).startsWith('set accept_ra=2') && l.interface === 'wan0')).toBe(true);
    // the RA route's lifetime is 6 s: after 10 s it exists only because the kernel kept accepting the RAs
    await new Promise((r) => setTimeout(r, 10_000));
    expect(await raRoutes()).toContain('wan0');

    // the control: with accept_ra=1 and forwarding on, the same RAs are ignored and the route expires
    await topo.runOk(topo.host, ['sysctl', '-qw', 'net.ipv6.conf.wan0.accept_ra=1']);
    await waitFor('the RA route expiring with accept_ra=1', async () => !(await raRoutes()).includes('wan0'), 20_000, 250);
    await sender.stop();
    await topo.stop(natd.child);
  }, 90_000);
});
