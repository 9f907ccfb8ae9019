/**
 * Issue 16, DHCP options with real clients: busybox udhcpc, ISC dhclient, dhcpcd and systemd-networkd, each in its
 * own vm, ask natd for the MTU (26), NTP servers (42) and a site-specific option (224), and apply them the way a
 * guest does (the MTU ends up on the guest's link). natd runs with --mtu, --dhcp-option for NTP and 224, a tagged
 * option for the hostsfile's `set:special` host (udhcpc's vm, which also has an infinite lease), and a config-file
 * reservation with its own option 224 and lease time (dhcpcd's vm). Evidence: the guest's link, the clients' own
 * script/lease output, natd's leases list and a capture on the bridge (Rapid Commit: DISCOVER → ACK, 2 messages).
 * Then the attack rows: huge parameter request lists, option 80 floods and odd option 93 values from invented MACs.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRoot, Topology, type Vm } from '../support/netns.js';
import { FIXTURES, NATD_CLI, runUdhcpc, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { readCapture, startCapture } from '../support/dhcp-sim.js';

const needsRoot = !isRoot() && !process.env.CI;
const CLIENT_NAMES = ['udhcpc', 'dhclient', 'dhcpcd', 'networkd'] as const;
type ClientName = (typeof CLIENT_NAMES)[number];
const MTU = 1400;
const NTP = '10.77.0.5';
const NTP_SPECIAL = '10.77.0.99';
const CUSTOM = 'natd-custom';
const CUSTOM_OWN = 'dhcpcd-own';
const SPECIAL_ADDRESS = '10.77.0.240';
const OWN_ADDRESS = '10.77.0.241';
const RANGE = '10.77.0.10-10.77.0.60';
const RANGE_SIZE = 51;
const ATTACK = path.join(FIXTURES, 'dhcp-options-attack.py');
const PYTHON = '/usr/bin/python3';

/** What a client saw, as its script or lease file reports it. */
interface Seen {
  mtu?: string;
  ntp?: string;
  custom?: string;
  lease?: string;
}

const hexText = (hex: string | undefined): string | undefined => (hex ? Buffer.from(hex.replace(/[^0-9a-f]/gi, ''), 'hex').toString() : undefined);

/** One client in one vm, configured to ask for 26, 42 and 224 and to apply the MTU as a guest's scripts do. */
class OptionClient {
  readonly dir = tempDir('dhcp-opt-client-');
  private child: ChildProcess | undefined;
  private readonly log: string;

  constructor(readonly name: ClientName, readonly topo: Topology, readonly vm: Vm, readonly iface: string) {
    this.log = path.join(this.dir, 'events.log');
    const script = path.join(this.dir, 'script.sh');
    const applyMtu = (v: string) => `if [ -n "${v}" ]; then ip link set dev "$interface" mtu "${v}"; fi`;
    const body = {
      // udhcpc exports option 224 (no name of its own) as opt224, in hex
      udhcpc: [
        `echo "event=$1 ip=$ip mtu=$mtu ntp=$ntpsrv custom=$opt224 lease=$lease" >> ${this.log}`,
        'case "$1" in deconfig) ip -4 addr flush dev "$interface"; ip link set "$interface" up;;',
        `  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/\${mask:-24}" dev "$interface"; ${applyMtu('$mtu')};;`,
        'esac',
      ],
      dhclient: [
        `echo "event=$reason ip=$new_ip_address mtu=$new_interface_mtu ntp=$new_ntp_servers custom=$new_natd_custom lease=$new_dhcp_lease_time" >> ${this.log}`,
        'case "$reason" in PREINIT) ip link set "$interface" up;;',
        `  BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"; ${applyMtu('$new_interface_mtu')};;`,
        'esac',
      ],
      // dhcpcd configures the address itself; its 10-mtu hook is what sets the MTU on a distribution
      dhcpcd: [
        `echo "event=$reason ip=$new_ip_address mtu=$new_interface_mtu ntp=$new_ntp_servers custom=$new_natd_custom lease=$new_dhcp_lease_time" >> ${this.log}`,
        `case "$reason" in BOUND|RENEW|REBIND|REBOOT) ${applyMtu('$new_interface_mtu')};; esac`,
      ],
      networkd: this.networkdScript(),
    }[name];
    writeFileSync(script, ['#!/bin/sh', ...body, 'exit 0', ''].join('\n'));
    chmodSync(script, 0o755);
    writeFileSync(path.join(this.dir, 'dhclient.conf'), [
      'option natd-custom code 224 = text;',
      'request subnet-mask, broadcast-address, routers, interface-mtu, ntp-servers, natd-custom;',
      'initial-interval 1;', '',
    ].join('\n'));
    writeFileSync(path.join(this.dir, 'dhcpcd.conf'), [
      'option interface_mtu, ntp_servers, rapid_commit', 'define 224 string natd_custom', 'option natd_custom', '',
    ].join('\n'));
  }

  /** As in 30-dhcp-clients: a private /run; its lease directory bind-mounted from our dir so the test can read it. */
  private networkdScript(): string[] {
    const networkFile = path.join(this.dir, '00-natd-test.network');
    const duid = [...randomBytes(16)].map((b) => b.toString(16).padStart(2, '0')).join(':');
    writeFileSync(networkFile, [
      '[Match]', `Name=${this.iface}`, '',
      '[Network]', 'DHCP=ipv4', 'LinkLocalAddressing=no', 'IPv6AcceptRA=no', '',
      '[DHCPv4]', 'UseHostname=no', 'UseDNS=no', 'UseMTU=yes', 'UseNTP=yes', 'RequestOptions=224', 'DUIDType=uuid', `DUIDRawData=${duid}`, '',
    ].join('\n'));
    const hidden = path.join(this.dir, 'empty');
    const netif = path.join(this.dir, 'netif');
    mkdirSync(hidden);
    mkdirSync(netif);
    return [
      'set -e',
      'mount -t tmpfs -o mode=0755 tmpfs /run',
      'mkdir -p /run/systemd/netif /run/systemd/network',
      `mount --bind ${netif} /run/systemd/netif`,
      'chown systemd-network:systemd-network /run/systemd/netif',
      `cp ${networkFile} /run/systemd/network/`,
      `if [ -d /etc/systemd/network ]; then mount --bind ${hidden} /etc/systemd/network; fi`,
      'mount -o remount,ro /sys',
      'exec env SYSTEMD_LOG_TARGET=console SYSTEMD_LOG_LEVEL=debug /lib/systemd/systemd-networkd',
    ];
  }

  start(): void {
    const script = path.join(this.dir, 'script.sh');
    const argv = {
      udhcpc: ['busybox', 'udhcpc', '-i', this.iface, '-f', '-T', '1', '-t', '10', '-s', script, '-O', 'mtu', '-O', 'ntpsrv', '-O', '224'],
      dhclient: ['dhclient', '-d', '-v', '-cf', path.join(this.dir, 'dhclient.conf'), '-sf', script, '-lf', path.join(this.dir, 'leases'), '-pf', path.join(this.dir, 'pid'), this.iface],
      dhcpcd: ['dhcpcd', '-B', '-4', '-d', '-f', path.join(this.dir, 'dhcpcd.conf'), '-c', script, '-L', '-A', this.iface],
      networkd: ['unshare', '--mount', '--uts', '--propagation', 'private', script],
    }[this.name];
    this.child = this.topo.spawn(this.vm.ns, argv);
    this.child.stdout!.resume();
    this.child.stderr!.resume();
  }

  async linkMtu(): Promise<number> {
    const out = await this.topo.runOk(this.vm.ns, ['ip', '-j', 'link', 'show', 'dev', this.iface]);
    return (JSON.parse(out) as { mtu: number }[])[0]!.mtu;
  }

  async address(): Promise<string | undefined> {
    const out = await this.topo.runOk(this.vm.ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', this.iface]);
    const info = (JSON.parse(out) as { addr_info?: { local: string }[] }[])[0]?.addr_info ?? [];
    return info.map((a) => a.local).find((a) => a.startsWith('10.77.0.'));
  }

  /** The options of the client's latest bind, from its script log (networkd: its lease file). */
  seen(): Seen | undefined {
    if (this.name === 'networkd') {
      const dir = path.join(this.dir, 'netif', 'leases');
      const file = existsSync(dir) ? readdirSync(dir)[0] : undefined;
      if (!file) return undefined;
      const fields = Object.fromEntries(readFileSync(path.join(dir, file), 'utf8').split('\n').map((l) => l.split('=', 2) as [string, string]));
      return { mtu: fields.MTU, ntp: fields.NTP, custom: hexText(fields.OPTION_224), lease: fields.LIFETIME };
    }
    if (!existsSync(this.log)) return undefined;
    const events = readFileSync(this.log, 'utf8').trim().split('\n')
      .map((l) => Object.fromEntries(l.split(' ').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])) as Record<string, string>)
      .filter((e) => /^(bound|renew|BOUND|RENEW|REBOOT|REBIND)$/.test(e.event ?? ''));
    const last = events.at(-1);
    if (!last) return undefined;
    const custom = this.name === 'udhcpc' ? hexText(last.custom) : last.custom?.replace(/^'|'$/g, '');
    return { mtu: last.mtu, ntp: last.ntp, custom, lease: last.lease };
  }

  async cleanup(): Promise<void> {
    if (this.child) await this.topo.stop(this.child, 2000);
    if (this.name === 'dhcpcd') rmSync(`/var/lib/dhcpcd/${this.iface}.lease`, { force: true });
  }
}

interface LeaseRow { address: string; mac: string; expiresAt: number; clientId: string }

describe.skipIf(needsRoot)('DHCP options with real clients (issue 16)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let capture: { file: string; child: ChildProcess };
  const clients = new Map<ClientName, OptionClient>();
  const report: string[] = [];

  const cli = (args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  const leases = async (): Promise<LeaseRow[]> => JSON.parse(await cli(['leases', '--json'])) as LeaseRow[];
  const dhcpStatus = async () => (JSON.parse(await cli(['status', '--json'])) as { dhcp: { leases: number; outcomes?: Record<string, number>; dropped?: Record<string, number> } }).dhcp;

  beforeAll(async () => {
    topo = Topology.create({ vms: CLIENT_NAMES.length + 2 });
    for (const [i, name] of CLIENT_NAMES.entries()) {
      const vm = topo.vm(i + 1);
      let iface = 'eth0';
      if (name === 'dhcpcd') {
        // dhcpcd keeps its lease database under /var/lib/dhcpcd (not per namespace): a unique interface name
        iface = `ndo${process.pid % 100000}`;
        await topo.runOk(vm.ns, ['ip', 'link', 'set', 'eth0', 'down']);
        await topo.runOk(vm.ns, ['ip', 'link', 'set', 'eth0', 'name', iface]);
        await topo.runOk(vm.ns, ['ip', 'link', 'set', iface, 'up']);
      }
      clients.set(name, new OptionClient(name, topo, vm, iface));
    }
    const dir = tempDir('natd-opts-');
    const hostsfile = path.join(dir, 'hosts');
    writeFileSync(hostsfile, `${clients.get('udhcpc')!.vm.mac},${SPECIAL_ADDRESS},set:special,infinite\n`);
    const config = path.join(dir, 'natd.json');
    writeFileSync(config, JSON.stringify({
      reservations: [{ mac: clients.get('dhcpcd')!.vm.mac, address: OWN_ADDRESS, leaseTime: '5m', options: [`224,"${CUSTOM_OWN}"`] }],
    }));
    capture = await startCapture(topo, topo.host, 'br0');
    natd = await startNatd(topo, [
      '--bridge', 'br0', '--no-dns', '--no-firewall', '--dhcp-range', `${RANGE.replace('-', ',')},1h`, '--config', config,
      '--hostsfile', hostsfile, '--mtu', String(MTU), '--dhcp-option', `option:ntp-server,${NTP}`,
      '--dhcp-option', `224,"${CUSTOM}"`, '--dhcp-option', `tag:special,option:ntp-server,${NTP_SPECIAL}`,
    ]);
  });

  afterAll(async () => {
    for (const c of clients.values()) await c.cleanup().catch(() => undefined);
    console.log(`DHCP options results:\n${report.join('\n')}`);
    await topo?.destroy();
  });

  it('--mtu sets the bridge MTU', async () => {
    const out = await topo.runOk(topo.host, ['ip', '-j', 'link', 'show', 'dev', 'br0']);
    expect((JSON.parse(out) as { mtu: number }[])[0]!.mtu).toBe(MTU);
  });

  it('every client receives and applies the MTU, the NTP servers and option 224; per-host settings reach only their host', async () => {
    for (const c of clients.values()) c.start();
    const expected: Record<ClientName, Seen & { address?: string }> = {
      udhcpc: { mtu: String(MTU), ntp: NTP_SPECIAL, custom: CUSTOM, lease: '4294967295', address: SPECIAL_ADDRESS },
      dhclient: { mtu: String(MTU), ntp: NTP, custom: CUSTOM, lease: '3600' },
      dhcpcd: { mtu: String(MTU), ntp: NTP, custom: CUSTOM_OWN, lease: '300', address: OWN_ADDRESS },
      // networkd's lease file has no lease time of its own (LIFETIME is only written for a finite lease it got)
      networkd: { mtu: String(MTU), ntp: NTP, custom: CUSTOM },
    };
    const failures: string[] = [];
    await Promise.all([...clients.values()].map(async (c) => {
      const deadline = Date.now() + 45_000; // four real clients starting at once on a loaded machine
      let seen: Seen | undefined;
      let address: string | undefined;
      let mtu = 0;
      while (Date.now() < deadline) {
        seen = c.seen();
        address = await c.address();
        mtu = await c.linkMtu();
        if (seen && address && mtu === MTU) break;
        await sleep(300);
      }
      const want = expected[c.name];
      const got = { mtu: seen?.mtu, ntp: seen?.ntp, custom: seen?.custom, ...(want.lease ? { lease: seen?.lease } : {}) };
      report.push(`${c.name.padEnd(9)} address=${address} link-mtu=${mtu} ${JSON.stringify(got)}`);
      if (mtu !== MTU) failures.push(`${c.name}: link MTU ${mtu}`);
      if (want.address && address !== want.address) failures.push(`${c.name}: address ${address}, expected ${want.address}`);
      const { address: _ignored, ...options } = want;
      if (JSON.stringify(got) !== JSON.stringify(options)) failures.push(`${c.name}: saw ${JSON.stringify(got)}, expected ${JSON.stringify(options)}`);
    }));
    expect(failures).toEqual([]);
  }, 75_000);

  it('natd lists the infinite lease as never expiring and the per-host one with its own time', async () => {
    const rows = await leases();
    const special = rows.find((l) => l.address === SPECIAL_ADDRESS);
    const own = rows.find((l) => l.address === OWN_ADDRESS);
    expect(special?.expiresAt).toBe(8.64e15);
    expect(own!.expiresAt - Date.now()).toBeGreaterThan(200_000);
    expect(own!.expiresAt - Date.now()).toBeLessThanOrEqual(300_000);
    const table = await cli(['leases']);
    expect(table).toMatch(new RegExp(`${SPECIAL_ADDRESS.replace(/\./g, '\\.')}\\s+\\S+\\s+\\S+\\s+infinite`));
    // the journal keeps it: a restart of natd would restore it (expiresAt is a finite number in JSON)
    const journal = readFileSync(path.join(natd.stateDir, 'leases.jsonl'), 'utf8');
    expect(journal).toContain(`"address":"${SPECIAL_ADDRESS}"`);
    expect(journal).toContain('"expiresAt":8640000000000000');
  });

  it('Rapid Commit: dhcpcd (option rapid_commit) completes in two messages, DISCOVER → ACK with option 80', async () => {
    const packets = await readCapture(topo, topo.host, capture.file);
    const mac = clients.get('dhcpcd')!.vm.mac;
    const mine = packets.filter((p) => p.mac === mac);
    const discover = mine.find((p) => p.type === 'Discover' && p.rapidCommit);
    expect(discover).toBeDefined();
    const exchange = mine.filter((p) => p.xid === discover!.xid);
    report.push(`dhcpcd rapid commit exchange: ${exchange.map((p) => `${p.type}${p.rapidCommit ? '+80' : ''}`).join(' → ')}`);
    expect(exchange.map((p) => p.type)).toEqual(['Discover', 'ACK']);
    expect(exchange[1]!.rapidCommit).toBe(true);
    // systemd-networkd sends option 80 since v255; an older one (this host's) does the 4-message exchange
    const networkd = packets.filter((p) => p.mac === clients.get('networkd')!.vm.mac);
    const nd = networkd.find((p) => p.type === 'Discover');
    const ndExchange = networkd.filter((p) => p.xid === nd?.xid).map((p) => `${p.type}${p.rapidCommit ? '+80' : ''}`);
    report.push(`networkd exchange: ${ndExchange.join(' → ')}`);
    if (nd?.rapidCommit) expect(ndExchange).toEqual(['Discover+80', 'ACK+80']);
    else expect(ndExchange).toEqual(['Discover', 'Offer', 'Request', 'ACK']);
    expect((await dhcpStatus()).outcomes?.['ack:rapid-commit']).toBeGreaterThanOrEqual(1);
  });

  it('attack: huge parameter request lists, option 80 floods and odd option 93 values neither crash natd nor grow its state', async () => {
    const attacker = topo.vm(CLIENT_NAMES.length + 1);
    const before = await dhcpStatus();
    const run = async (mode: string, prefix: string) =>
      JSON.parse((await topo.runOk(attacker.ns, [PYTHON, ATTACK, mode, '--count', '40', '--prefix', prefix], { timeoutMs: 60_000 })).trim().split('\n').pop()!) as
        { sent: number; replies: Record<string, number>; largestReply: number };
    const prl = await run('prl', '02:35:00:01');
    const rapid = await run('rapid', '02:35:00:02');
    const arch = await run('arch', '02:35:00:03');
    report.push(`attack prl ${JSON.stringify(prl)} rapid ${JSON.stringify(rapid)} arch ${JSON.stringify(arch)}`);
    // every huge-PRL DISCOVER got an answer within the client's size (576 by default: 548 bytes of UDP payload)
    expect(prl.replies['2']).toBeGreaterThan(0);
    expect(prl.largestReply).toBeLessThanOrEqual(548);
    expect(arch.replies['2']).toBeGreaterThan(0);
    // the option 80 flood binds at most one lease per invented MAC, within the range, and nothing more
    expect(rapid.replies['5'] ?? 0).toBeLessThanOrEqual(40);
    const after = await dhcpStatus();
    expect(after.leases).toBeLessThanOrEqual(RANGE_SIZE + 2);
    expect(after.leases - before.leases).toBeLessThanOrEqual(40);
    expect(natd.child.exitCode).toBeNull();
    // still serving a fresh VM
    const fresh = await runUdhcpc(topo, topo.vm(CLIENT_NAMES.length + 2).ns, [], 25_000);
    expect(fresh.events.some((e) => e.event === 'bound')).toBe(true);
  }, 120_000);
});
