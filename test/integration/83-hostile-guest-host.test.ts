/**
 * Hostile guests against the HOST (issue 12, rows 1, 11 and 12): each test performs the attack with real packets
 * from a vm namespace (or as an unprivileged local user) and asserts that it no longer works.
 *
 * - row 1: a router advertisement from a guest must not give the host an address or a default route via the guest
 *   (natd sets accept_ra=0, autoconf=0 and accept_redirects=0 on the bridge, as libvirt does on its NAT bridges).
 * - row 11: the metrics listener is loopback-only unless opted in, and even then guests cannot reach it (natd's
 *   input chain accepts only DHCP, DNS to the gateway and ICMP from the bridge).
 * - row 12: the control socket answers only uid 0 / natd's own uid, checked with SO_PEERCRED, whatever its mode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, statSync } from 'node:fs';
import path from 'node:path';
import { BRIDGE, GATEWAY, isRoot, Topology, UPLINK_HOST, UPLINK_WAN } from '../support/netns.js';
import { NATD_CLI, startNatd, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';
import { waitUntil } from '../support/wait.js';

/** Debian's python has scapy; the pyenv `python3` on PATH does not. */
const SYSTEM_PYTHON = '/usr/bin/python3';
const METRICS_PORT = 9153;
const EVIL_PREFIX = '2001:db8:bad::';
const NATD_ARGS = ['--bridge', BRIDGE, '--upstream', UPLINK_WAN, '--metrics-listen', `0.0.0.0:${METRICS_PORT}`, '--metrics-allow-remote'];

/** The EUI-64 link-local address of a MAC (what the vm's kernel uses as its own). */
function linkLocalOf(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  b[0]! ^= 0x02;
  const words = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!];
  return `fe80::${words.map((w) => w.toString(16)).join(':')}`;
}

/** One RA, high preference, router lifetime 1800 s, an autonomous /64 prefix: the classic rogue-router packet. */
function rogueRouterAdvertisement(mac: string): string {
  return [
    'from scapy.all import Ether, IPv6, ICMPv6ND_RA, ICMPv6NDOptPrefixInfo, ICMPv6NDOptSrcLLAddr, sendp',
    `p = Ether(src="${mac}", dst="33:33:00:00:00:01") / IPv6(src="${linkLocalOf(mac)}", dst="ff02::1", hlim=255)`,
    'p /= ICMPv6ND_RA(prf=1, routerlifetime=1800)',
    `p /= ICMPv6NDOptPrefixInfo(prefix="${EVIL_PREFIX}", prefixlen=64, L=1, A=1, validlifetime=86400, preferredlifetime=14400)`,
    `p /= ICMPv6NDOptSrcLLAddr(lladdr="${mac}")`,
    'sendp(p, iface="eth0", count=3, inter=0.2, verbose=False)',
  ].join('\n');
}

/** A TCP connect from a namespace: "connected" or the error's name (bounded by a 2 s timeout). */
const TCP_CONNECT = [
  'import socket, sys',
  'try:',
  '    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).close()',
  '    print("connected")',
  'except Exception as e:',
  '    print(type(e).__name__)',
].join('\n');

/** One control request over a unix socket; prints whatever the daemon answers (empty when it just closes). */
const CONTROL_REQUEST = [
  'import socket, sys',
  's = socket.socket(socket.AF_UNIX)',
  's.settimeout(5)',
  's.connect(sys.argv[1])',
  'try:',
  '    s.sendall(b\'{"command":"status"}\\n\')',
  'except BrokenPipeError:',
  '    pass',
  'data = b""',
  'while True:',
  '    try:',
  '        chunk = s.recv(65536)',
  '    except ConnectionResetError:',
  '        break',
  '    if not chunk:',
  '        break',
  '    data += chunk',
  'print(data.decode())',
].join('\n');

describe.skipIf(!isRoot())('hostile guests against the host', () => {
  let topo: Topology;
  let natd: NatdHandle;

  const ipJson = async (args: string[]): Promise<Record<string, unknown>[]> =>
    JSON.parse((await topo.runOk(topo.host, ['ip', '-j', ...args])) || '[]') as Record<string, unknown>[];
  /** The host's IPv6 state a rogue router would change: the bridge's addresses, its routes and the default routes. */
  async function hostIpv6State(): Promise<{ addresses: string[]; routes: string[]; defaults: string[] }> {
    const addrs = (await ipJson(['-6', 'addr', 'show', 'dev', BRIDGE])).flatMap(
      (l) => ((l.addr_info ?? []) as { local: string; prefixlen: number }[]).map((a) => `${a.local}/${a.prefixlen}`),
    );
    const route = (r: Record<string, unknown>) => `${String(r.dst)} via ${String(r.gateway ?? '-')} dev ${String(r.dev)}`;
    return {
      addresses: addrs.sort(),
      routes: (await ipJson(['-6', 'route', 'show', 'dev', BRIDGE])).map(route).sort(),
      defaults: (await ipJson(['-6', 'route', 'show', 'default'])).map(route).sort(),
    };
  }
  const tcpConnect = async (ns: string, address: string, port: number): Promise<string> =>
    (await topo.runOk(ns, [SYSTEM_PYTHON, '-c', TCP_CONNECT, address, String(port)], { timeoutMs: 10_000 })).trim();

  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
    await startFakeUpstreamIn(topo);
    natd = await startNatd(topo, NATD_ARGS);
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  it('row 1: a router advertisement from a guest does not change the host\'s IPv6 addresses or routes', async () => {
    const before = await hostIpv6State();
    const vm = topo.vm(1);
    await topo.runOk(vm.ns, [SYSTEM_PYTHON, '-c', rogueRouterAdvertisement(vm.mac)], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 2500)); // SLAAC and the default route appear within milliseconds
    const after = await hostIpv6State();
    expect(after.addresses.filter((a) => a.startsWith(EVIL_PREFIX.slice(0, -1)))).toEqual([]);
    expect(after.defaults).toEqual(before.defaults);
    expect(after).toEqual(before);
    // the switches natd set, as an operator would check them
    const sysctl = (key: string, value?: string) =>
      topo.runOk(topo.host, ['sysctl', ...(value === undefined ? ['-n', key] : ['-w', `${key}=${value}`])]);
    for (const key of ['accept_ra', 'autoconf', 'accept_redirects']) expect((await sysctl(`net.ipv6.conf.${BRIDGE}.${key}`)).trim()).toBe('0');

    // A host that ran without natd (kernel defaults) learns from the same packets: the attack is real in this bench.
    // natd, started on that bridge, removes what the rogue router left.
    await topo.stop(natd.child);
    for (const key of ['accept_ra', 'autoconf']) await sysctl(`net.ipv6.conf.${BRIDGE}.${key}`, '1');
    await topo.runOk(vm.ns, [SYSTEM_PYTHON, '-c', rogueRouterAdvertisement(vm.mac)], { timeoutMs: 20_000 });
    // polled, not a fixed 1.5 s: the kernel acts on the RA at once, but reading the state is slow on a loaded machine
    const hijacked = await waitUntil('the unguarded host learning from the rogue RA', hostIpv6State,
      (st) => st.addresses.some((a) => a.startsWith(EVIL_PREFIX.slice(0, -1))) && st.defaults.includes(`default via ${linkLocalOf(vm.mac)} dev ${BRIDGE}`), 15_000, 250);
    expect(hijacked.addresses.some((a) => a.startsWith(EVIL_PREFIX.slice(0, -1)))).toBe(true);
    expect(hijacked.defaults).toContain(`default via ${linkLocalOf(vm.mac)} dev ${BRIDGE}`);
    natd = await startNatd(topo, NATD_ARGS, { stateDir: natd.stateDir });
    expect(await hostIpv6State()).toEqual(before);
    expect(natd.logs.filter((l) => String(l.msg).includes('from a router advertisement')).length).toBeGreaterThanOrEqual(2);
  }, 90_000); // two scapy runs (each takes seconds to import on a loaded machine) and a natd restart

  it('row 11: a guest cannot reach the metrics listener (or any other host port), and 0.0.0.0 needs an opt-in', async () => {
    const vm = topo.vm(1).ns;
    // metrics listen on every address (opted in): the uplink side reaches them, guests reach no address of the host
    expect(await tcpConnect(topo.wan, UPLINK_HOST, METRICS_PORT)).toBe('connected');
    await topo.runOk(vm, ['ip', 'addr', 'add', '10.77.0.50/24', 'dev', 'eth0']);
    await topo.runOk(vm, ['ip', 'route', 'add', 'default', 'via', GATEWAY]);
    expect(await tcpConnect(vm, GATEWAY, METRICS_PORT)).not.toBe('connected');
    expect(await tcpConnect(vm, UPLINK_HOST, METRICS_PORT)).not.toBe('connected');
    // what guests need from the host still works: DNS on the gateway (udp and tcp) and ping
    expect((await topo.runOk(vm, ['dig', '+short', '+time=5', '+tries=1', `@${GATEWAY}`, 'www.example.test'])).trim()).not.toBe('');
    expect((await topo.runOk(vm, ['dig', '+short', '+tcp', '+time=5', '+tries=1', `@${GATEWAY}`, 'www.example.test'])).trim()).not.toBe('');
    expect((await topo.run(vm, ['ping', '-c', '1', '-W', '2', GATEWAY])).code).toBe(0);

    // without the opt-in, an address other than loopback is refused with an error naming the field
    const refused = await topo.run(topo.host, [process.execPath, NATD_CLI, 'check-config', '--bridge', BRIDGE, '--metrics-listen', `0.0.0.0:${METRICS_PORT}`]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/metricsListen: .*loopback.*metrics-allow-remote/);
    const loopback = await topo.run(topo.host, [process.execPath, NATD_CLI, 'check-config', '--bridge', BRIDGE, '--metrics-listen', `127.0.0.1:${METRICS_PORT}`]);
    expect(loopback.code).toBe(0);
  });

  it('row 12: a local user other than root cannot use the control socket, even when its mode is loosened', async () => {
    // created 0600 from the start (bound inside a private 0700 directory, then renamed into place)
    expect(statSync(natd.controlSocket).mode & 0o777).toBe(0o600);
    // loosen it as a careless admin might; the peer-credential check must still refuse uid 65534
    chmodSync(path.dirname(natd.controlSocket), 0o711);
    chmodSync(natd.controlSocket, 0o666);
    const asNobody = await topo.run(topo.host, [
      'setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', SYSTEM_PYTHON, '-c', CONTROL_REQUEST, natd.controlSocket,
    ]);
    expect(asNobody.stderr).not.toMatch(/PermissionError/); // the connect itself got through: the mode allowed it
    expect(asNobody.stdout).not.toContain('"ok":true');
    expect(asNobody.stdout).not.toContain(GATEWAY);
    // root still gets answers
    const asRoot = await topo.runOk(topo.host, [SYSTEM_PYTHON, '-c', CONTROL_REQUEST, natd.controlSocket]);
    expect(asRoot).toContain('"ok":true');
    await natd.waitForLog((l) => l.msg === 'control socket: refused a peer' && l.uid === 65534, 5000);
  });
});
