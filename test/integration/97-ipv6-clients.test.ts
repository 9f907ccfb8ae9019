/**
 * issue 14, the real-client gaps of 92-dhcp6: each case with a real client in its own vm namespace.
 *
 * Stateful natd (fd77:97::/64, --dhcp6-range, --domain vm.test, reservations, a fake upstream over IPv6):
 *   systemd-networkd  reserved by DUID (`id:DUID-LL,[addr],nd-duid`) and, with its default DUID-EN (no MAC in it), by
 *                     MAC (`MAC,[addr],nd-mac`: natd matches the MAC of its EUI-64 link-local): each gets exactly its
 *                     reserved address; `dig AAAA name` from the guest's own namespace answers it, `dig -x` the name.
 *   dhcpcd -6 + FQDN  (`hostname …` in dhcpcd.conf: option 39, flags S) `Fqdn_One.outside.example.test` is registered as
 *                     the sanitised first label under natd's domain (fqdn-one.vm.test: AAAA + PTR, and natd's RFC 4704
 *                     reply tells dhcpcd so); the name outside the domain is not answered by natd (forwarded).
 *   attacks           dhcpcd guests whose FQDN is another guest's lease name (first come keeps it), a reservation's name
 *                     in other case with a foreign domain, `wpad.outside.example.test` (denied) and an operator record's
 *                     name (--host-record): none gets the name (natd's reply says N=1), each still gets an address, the
 *                     names keep answering their owners, and the refusals are counted by reason.
 * Stateless natd (no range: RA M=0 O=1 A=1):
 *   dhcpcd -6         SLAAC address from the RA, DNS from a DHCPv6 Information-request (RDNSS/DNSSL from the RA turned
 *                     off in dhcpcd, so what it writes comes from DHCPv6): dhcpcd's stock resolv.conf hook writes natd's
 *                     server and domain (into a file bind-mounted over /etc/resolv.conf in its own mount namespace), and
 *                     dig from the guest at that server answers; natd holds no lease for it.
 * natd started while the bridge's link-local address is tentative (a 10 s DAD): tcpdump in the guest sees RAs only
 *   from fe80:: (the kernel used to pick the gateway's nodad ULA then, and guests drop such RAs), rdisc6 gets one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { dhcpcdArgv, renameIface } from '../support/dhcpcd.js';
import { writeNetworkdScript } from '../support/networkd.js';
import { BRIDGE, isRoot, Topology, UPLINK6_WAN, type Vm } from '../support/netns.js';
import { waitUntil } from '../support/wait.js';
import { FIXTURES, NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';

const CLIENT_SCRIPT = path.join(FIXTURES, 'dhcp6-client-script.sh');
const DOMAIN = 'vm.test';

interface LeaseRow {
  address: string;
  hostname?: string;
  clientId: string;
  iaid?: number;
}

const until = <T>(what: string, read: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 45_000): Promise<T> => waitUntil(what, read, ok, timeoutMs, 400);

/** The DUID-LL (type 3, hardware type 1) of a MAC, in natd's colon hex. */
const duidLl = (mac: string): string => `00:03:00:01:${mac.toLowerCase()}`;

/** One real client in a vm: networkd, or dhcpcd -6 with its own /var/lib/dhcpcd (so its own DUID-LLT). */
class Guest {
  readonly dir = tempDir('natd-v6client-');
  readonly log: string;
  child: ChildProcess | undefined;
  private out = '';

  constructor(readonly topo: Topology, readonly vm: Vm, readonly iface: string, readonly prefix: string) {
    this.log = path.join(this.dir, 'events.log');
  }

  get script(): string {
    return path.join(this.dir, 'script.sh');
  }

  /** networkd (test/support/networkd.ts), DHCPv6 from natd's RA, with the uts hostname `hostname`. */
  startNetworkd(hostname: string, dhcp6Lines: string[], networkLines: string[] = []): void {
    writeNetworkdScript(this.dir, this.script, '00-natd-test97.network', [
      '[Match]', `Name=${this.iface}`, '',
      '[Network]', 'DHCP=ipv6', 'IPv6AcceptRA=yes', 'LinkLocalAddressing=ipv6', ...networkLines, '',
      '[DHCPv6]', 'UseDNS=yes', ...dhcp6Lines, '',
      // the RA's RDNSS not used: the DNS server networkd ends up with comes from DHCPv6
      '[IPv6AcceptRA]', 'DHCPv6Client=yes', 'UseDNS=no', 'UseDomains=no', '',
    ]);
    this.spawn(['unshare', '--mount', '--uts', '--propagation', 'private', 'sh', '-c', `hostname ${hostname} && exec ${this.script}`]);
  }

  /** dhcpcd -6 (test/support/dhcpcd.ts) with these dhcpcd.conf lines after the common ones; `before`: shell run first */
  startDhcpcd(conf: string[], before = ''): void {
    const file = path.join(this.dir, 'dhcpcd.conf');
    writeFileSync(file, ['ipv6only', 'noipv4', 'ipv6rs', ...conf, ''].join('\n'));
    this.spawn(dhcpcdArgv(file, this.iface, before));
  }

  /**
   * the logging fixture as dhcpcd's script (one line of new_/old_ variables per event in `log`), and the RA's variables
   * dhcpcd passes (nd1_…) as one line per event in `ndLog`; `then`: a command run after them
   */
  writeLoggingScript(then = ''): void {
    const nd = `{ printf 'reason=%s ' "$reason"; env | grep -E '^nd[0-9]+_' | sort | tr '\\n' ' '; echo; } >> ${this.ndLog}`;
    writeFileSync(this.script, `#!/bin/sh\nDHCP6_LOG=${this.log} DHCP6_CONFIGURE=0 ${CLIENT_SCRIPT} "$@"\n${nd}\n${then}\n`, { mode: 0o755 });
  }

  get ndLog(): string {
    return path.join(this.dir, 'nd.log');
  }

  private spawn(argv: string[]): void {
    this.child = this.topo.spawn(this.vm.ns, argv);
    const keep = (d: Buffer) => void (this.out = (this.out + d.toString()).slice(-30_000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
  }

  output(): string {
    return this.out;
  }

  events(): string[] {
    return existsSync(this.log) ? readFileSync(this.log, 'utf8').split('\n').filter(Boolean) : [];
  }

  /** the interface's global addresses in natd's prefix (not tentative) */
  async addresses(): Promise<string[]> {
    const out = await this.topo.runOk(this.vm.ns, ['ip', '-j', '-6', 'addr', 'show', 'dev', this.iface, 'scope', 'global', '-tentative']);
    return ((JSON.parse(out) as { addr_info?: { local?: string }[] }[])[0]?.addr_info ?? []).flatMap((a) => (a.local?.startsWith(this.prefix) ? [a.local] : []));
  }

  /** dig from this guest's namespace; the answer section's data, one per line */
  async dig(server: string, ...args: string[]): Promise<string[]> {
    const out = await this.topo.runOk(this.vm.ns, ['dig', `@${server}`, '+short', '+time=2', '+tries=3', ...args], { timeoutMs: 20_000 });
    return out.split('\n').map((l) => l.trim()).filter(Boolean);
  }

  async stop(): Promise<void> {
    if (this.child) await this.topo.stop(this.child, 3000);
  }
}

function natdCli(topo: Topology, natd: NatdHandle) {
  const cli = (...args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  return {
    cli,
    leases: async (): Promise<LeaseRow[]> => (JSON.parse(await cli('leases', '--json')) as LeaseRow[]).filter((l) => l.address.includes(':')),
    metric: async (series: string): Promise<number> => {
      const line = (await cli('metrics')).split('\n').find((l) => l.startsWith(`${series} `));
      return line ? Number(line.split(' ')[1]) : 0;
    },
  };
}

describe.skipIf(!isRoot())('IPv6 real clients, stateful: networkd reservations and dhcpcd FQDNs (issue 14)', () => {
  const PREFIX = 'fd77:97::';
  const GW = `${PREFIX}1`;
  const RESERVED_DUID = `${PREFIX}61`;
  const RESERVED_MAC = `${PREFIX}62`;
  let topo: Topology;
  let natd: NatdHandle;
  let api: ReturnType<typeof natdCli>;
  let upstreamLog: string;
  const STATIC = `${PREFIX}99`;
  const guests: Record<'ndDuid' | 'ndMac' | 'fqOne' | 'thief' | 'resThief' | 'wpad' | 'recThief', Guest> = {} as never;

  const upstreamQueries = (): string[] => (existsSync(upstreamLog) ? readFileSync(upstreamLog, 'utf8').split('\n').filter(Boolean) : []);
  const failWith = (g: Guest, err: unknown): never => {
    throw new Error(`${(err as Error).message}\nclient output:\n${g.output().slice(-4000)}\nevents:\n${g.events().join('\n')}`);
  };

  beforeAll(async () => {
    topo = Topology.create({ vms: 7, ipv6: true });
    const [v1, v2, v3, v4, v5, v6, v7] = [1, 2, 3, 4, 5, 6, 7].map((i) => topo.vm(i)) as [Vm, Vm, Vm, Vm, Vm, Vm, Vm];
    const tag = process.pid % 10000;
    for (const [vm, i] of [[v3, 3], [v4, 4], [v5, 5], [v6, 6], [v7, 7]] as const) await renameIface(topo, vm, `q6c${tag}${i}`);
    guests.ndDuid = new Guest(topo, v1, 'eth0', PREFIX);
    guests.ndMac = new Guest(topo, v2, 'eth0', PREFIX);
    guests.fqOne = new Guest(topo, v3, `q6c${tag}3`, PREFIX);
    guests.thief = new Guest(topo, v4, `q6c${tag}4`, PREFIX);
    guests.resThief = new Guest(topo, v5, `q6c${tag}5`, PREFIX);
    guests.wpad = new Guest(topo, v6, `q6c${tag}6`, PREFIX);
    guests.recThief = new Guest(topo, v7, `q6c${tag}7`, PREFIX);
    upstreamLog = path.join(tempDir('natd-v6client-upstream-'), 'queries.log');
    await startFakeUpstreamIn(topo, { log: upstreamLog, listen: [`[${UPLINK6_WAN}]:5353`] });
    natd = await startNatd(topo, [
      '--bridge', BRIDGE, '--no-firewall', '--subnet6', `${GW}/64`, '--dhcp6-range', `${PREFIX}100-${PREFIX}1ff`,
      '--domain', DOMAIN, '--upstream', `[${UPLINK6_WAN}]:5353`, '--host-record', `static6.${DOMAIN},${STATIC}`,
      '--dhcp-host', `id:${duidLl(v1.mac)},[${RESERVED_DUID}],nd-duid`,
      '--dhcp-host', `${v2.mac},[${RESERVED_MAC}],nd-mac`,
    ]);
    api = natdCli(topo, natd);
  }, 90_000);

  afterAll(async () => {
    for (const g of Object.values(guests)) await g.stop().catch(() => undefined);
    await topo?.destroy();
  });

  it('systemd-networkd gets exactly its reserved address, by DUID (DUID-LL) and by MAC (DUID-EN, EUI-64 link-local); its name answers AAAA and PTR in its own namespace', async () => {
    const cases = [
      { g: guests.ndDuid, name: 'nd-duid', address: RESERVED_DUID, lines: ['DUIDType=link-layer'], network: [] as string[] },
      // networkd's default DUID (DUID-EN, from the machine id) carries no MAC: natd matches the MAC of the EUI-64
      // link-local networkd sends from (networkd's default, set explicitly here; with a stable-privacy link-local such
      // a guest can be reserved by DUID only: natd does not look the MAC up in the neighbour table, README)
      { g: guests.ndMac, name: 'nd-mac', address: RESERVED_MAC, lines: [] as string[], network: ['IPv6LinkLocalAddressGenerationMode=eui64'] },
    ];
    for (const c of cases) c.g.startNetworkd(c.name, c.lines, c.network);
    await Promise.all(cases.map(async ({ g, name, address }) => {
      try {
        await until(`${name}: reserved address on eth0`, () => g.addresses(), (a) => a.includes(address), 60_000);
        // exactly the reserved one: no address from the range, no SLAAC (natd's RA says A=0)
        expect(await g.addresses()).toEqual([address]);
        const row = (await api.leases()).filter((l) => l.address === address);
        expect(row).toHaveLength(1);
        expect(row[0]!.hostname).toBe(name);
        if (name === 'nd-duid') expect(row[0]!.clientId).toBe(duidLl(g.vm.mac));
        else expect(row[0]!.clientId).toMatch(/^00:02:/); // DUID-EN: the reservation matched by MAC, not by DUID
        expect((await api.leases()).filter((l) => l.clientId === row[0]!.clientId)).toHaveLength(1);
        // the guest asks natd's DNS itself, over IPv6 from its reserved address
        expect(await until(`${name}: AAAA`, () => g.dig(GW, 'AAAA', `${name}.${DOMAIN}`), (a) => a.length > 0, 15_000)).toEqual([address]);
        expect(await g.dig(GW, '-x', address)).toEqual([`${name}.${DOMAIN}.`]);
        // and networkd took natd's DNS server from DHCPv6 (its link state file, in its own /run; RDNSS is off)
        const state = await until(`${name}: networkd link state with DNS`, () => topo.run(topo.host, ['nsenter', '-t', String(g.child!.pid), '-m', 'sh', '-c', 'cat /run/systemd/netif/links/*']).then((r) => r.stdout), (s) => /^DNS=/m.test(s), 15_000);
        expect(/^DNS=(.*)$/m.exec(state)![1]!.trim().split(/\s+/)).toEqual([GW]);
      } catch (err) {
        failWith(g, err);
      }
    }));
  }, 120_000);

  it('dhcpcd sends its FQDN (option 39): natd registers the sanitised first label under its domain, AAAA and PTR, and says so in its reply', async () => {
    const g = guests.fqOne;
    g.writeLoggingScript();
    g.startDhcpcd(['ia_na 1', 'hostname Fqdn_One.outside.example.test', 'fqdn both', 'option dhcp6_name_servers, dhcp6_domain_search, dhcp6_fqdn', `script ${g.script}`]);
    try {
      const [address] = await until('dhcpcd address', () => g.addresses(), (a) => a.length > 0, 60_000);
      const row = await until('natd lease with the FQDN name', api.leases, (ls) => ls.some((l) => l.address === address && l.hostname !== undefined));
      expect(row.find((l) => l.address === address)!.hostname).toBe('fqdn-one');
      expect(await until('AAAA fqdn-one', () => g.dig(GW, 'AAAA', `fqdn-one.${DOMAIN}`), (a) => a.length > 0, 15_000)).toEqual([address]);
      expect(await g.dig(GW, '-x', address!)).toEqual([`fqdn-one.${DOMAIN}.`]);
      // the name outside natd's domain is not natd's to give: it is forwarded upstream, never answered with the guest
      const before = upstreamQueries().length;
      expect(await g.dig(GW, 'AAAA', 'Fqdn_One.outside.example.test')).not.toContain(address);
      expect(upstreamQueries().slice(before).join('\n').toLowerCase()).toContain('fqdn_one.outside.example.test');
      // natd's Client FQDN reply (RFC 4704): the name it publishes, fully qualified, S=1 (natd updates DNS)
      const bound = g.events().find((l) => /^reason=BOUND6 /.test(l))!;
      expect(bound).toContain(`new_dhcp6_fqdn=fqdn-one.${DOMAIN} `);
      expect(bound).toMatch(/new_dhcp6_fqdn_flags=S /);
    } catch (err) {
      failWith(g, err);
    }
  }, 120_000);

  it('attack: FQDNs taking another guest\'s lease name, a reservation\'s name, a denied name or an operator record\'s name get no name (each still gets an address)', async () => {
    const owner = guests.fqOne;
    const [ownerAddress] = await owner.addresses();
    const refusedBefore = async () => Object.fromEntries(await Promise.all(['held-v6', 'reserved', 'denied', 'record'].map(async (r) => [r, await api.metric(`natd_dhcp6_names_refused_total{bridge="br0",reason="${r}"}`)] as const)));
    const before = await refusedBefore();
    const attacks = [
      { g: guests.thief, fqdn: 'fqdn-one', name: 'fqdn-one', owner: ownerAddress!, reason: 'held-v6' },
      // the reservation's name in other case, with a foreign domain (natd compares names case-insensitively)
      { g: guests.resThief, fqdn: 'ND-Duid.outside.example.test', name: 'nd-duid', owner: RESERVED_DUID, reason: 'reserved' },
      { g: guests.wpad, fqdn: 'wpad.outside.example.test', name: 'wpad', owner: undefined, reason: 'denied' },
      // an operator's record (--host-record, IPv6 only) outranks every guest, as on the DHCPv4 side (issue 15)
      { g: guests.recThief, fqdn: 'static6', name: 'static6', owner: STATIC, reason: 'record' },
    ];
    for (const a of attacks) {
      a.g.writeLoggingScript();
      a.g.startDhcpcd(['ia_na 1', `hostname ${a.fqdn}`, 'fqdn both', 'option dhcp6_name_servers, dhcp6_fqdn', `script ${a.g.script}`]);
    }
    await Promise.all(attacks.map(async (a) => {
      try {
        const [address] = await until(`${a.fqdn}: an address`, () => a.g.addresses(), (x) => x.length > 0, 60_000);
        const row = await until(`${a.fqdn}: natd lease`, api.leases, (ls) => ls.some((l) => l.address === address));
        expect(row.find((l) => l.address === address)!.hostname).toBeUndefined();
        // the name still answers its owner only (or nobody), asked from the attacker's own namespace
        expect(await a.g.dig(GW, 'AAAA', `${a.name}.${DOMAIN}`)).toEqual(a.owner ? [a.owner] : []);
        expect(await a.g.dig(GW, '-x', address!)).toEqual([]);
        // natd's Client FQDN reply tells the client it publishes nothing for it: N=1 (and O, its S overridden), no S
        const flags = /new_dhcp6_fqdn_flags=(\S*)/.exec(a.g.events().find((l) => /^reason=BOUND6 /.test(l)) ?? '')?.[1];
        expect(flags).toContain('N');
        expect(flags).not.toContain('S');
      } catch (err) {
        failWith(a.g, err);
      }
    }));
    const after = await refusedBefore();
    for (const a of attacks) expect(after[a.reason]! - before[a.reason]!, a.reason).toBeGreaterThanOrEqual(1);
    // the owners keep their names and addresses
    expect(await owner.dig(GW, 'AAAA', `fqdn-one.${DOMAIN}`)).toEqual([ownerAddress]);
    expect(await guests.ndDuid.addresses()).toEqual([RESERVED_DUID]);
    expect(natd.child.exitCode).toBeNull();
  }, 120_000);
});

describe.skipIf(!isRoot())('IPv6 real clients, stateless: dhcpcd SLAAC + DNS from an Information-request (issue 14)', () => {
  const PREFIX = 'fd77:98::';
  const GW = `${PREFIX}1`;
  const STATIC = `${PREFIX}99`;
  let topo: Topology;
  let natd: NatdHandle;
  let api: ReturnType<typeof natdCli>;
  let guest: Guest;

  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
    const iface = `s6c${process.pid % 10000}1`;
    await renameIface(topo, topo.vm(1), iface);
    guest = new Guest(topo, topo.vm(1), iface, PREFIX);
    natd = await startNatd(topo, [
      '--bridge', BRIDGE, '--no-firewall', '--subnet6', `${GW}/64`, '--domain', DOMAIN, '--host-record', `static6.${DOMAIN},${STATIC}`,
    ]);
    api = natdCli(topo, natd);
  }, 90_000);

  afterAll(async () => {
    await guest?.stop().catch(() => undefined);
    await topo?.destroy();
  });

  it('dhcpcd gets a SLAAC address and natd\'s DNS server and domain by DHCPv6, writes them to resolv.conf, and dig at that server answers', async () => {
    const resolvConf = path.join(guest.dir, 'resolv.conf');
    writeFileSync(resolvConf, '# before dhcpcd\n');
    // the stock hooks (dhcpcd-run-hooks) after the logging script, the resolv.conf hook only: a private /run (the hook
    // state, no host services reachable) and resolv.conf bind-mounted, both in dhcpcd's own mount namespace
    guest.writeLoggingScript('exec /lib/dhcpcd/dhcpcd-run-hooks "$@"');
    const requestsBefore = await api.metric('natd_dhcp6_received_total{bridge="br0",type="information-request"}');
    guest.startDhcpcd([
      // no ia_na: with the RA's O flag (and M=0) dhcpcd sends an Information-request
      'option dhcp6_name_servers, dhcp6_domain_search',
      // RDNSS/DNSSL from the RA off, so the resolv.conf below can only come from DHCPv6
      'nooption nd_rdnss, nd_dnssl',
      'nohook hostname, ntp-common.conf, chrony.conf, timesyncd.conf, openntpd.conf',
      'slaac hwaddr',
      `script ${guest.script}`,
    ], `mount -t tmpfs tmpfs /run && mount --bind ${resolvConf} /etc/resolv.conf`);
    try {
      const inform = await until('an INFORM6 event', () => guest.events(), (e) => e.some((l) => /^reason=INFORM6 /.test(l) && /new_dhcp6_name_servers=/.test(l)), 60_000);
      const line = inform.find((l) => /^reason=INFORM6 /.test(l) && /new_dhcp6_name_servers=/.test(l))!;
      expect(line).toContain(`new_dhcp6_name_servers=${GW}`);
      expect(line).toMatch(new RegExp(`new_dhcp6_domain_search=${DOMAIN.replace('.', '\\.')}`));
      expect(line).not.toMatch(/new_dhcp6_ia_na|new_ip6_address=\S/);
      // dhcpcd handled natd's RA (its prefix is in the RA variables) without its DNS options (dhcpcd runs its
      // ROUTERADVERT event once the SLAAC address has done DAD: it may come after INFORM6)
      const nd = await until('dhcpcd\'s ROUTERADVERT event', () => (existsSync(guest.ndLog) ? readFileSync(guest.ndLog, 'utf8') : ''), (t) => /^reason=ROUTERADVERT .*_prefix_information/m.test(t), 30_000);
      expect(nd).toContain(`_prefix_information1_prefix=${PREFIX}`);
      expect(nd).not.toMatch(/_(rdnss|dnssl)\d*_/);
      // the SLAAC address (A=1 in natd's stateless RA), and no lease for it in natd
      const [slaac] = await until('SLAAC address', () => guest.addresses(), (a) => a.length > 0, 30_000);
      expect((await api.leases()).length).toBe(0);
      expect(await api.metric('natd_dhcp6_received_total{bridge="br0",type="information-request"}')).toBeGreaterThan(requestsBefore);
      // dhcpcd's stock resolv.conf hook wrote natd's server and domain
      const conf = await until('resolv.conf written by dhcpcd', () => readFileSync(resolvConf, 'utf8'), (t) => /^nameserver /m.test(t), 20_000);
      const servers = [...conf.matchAll(/^nameserver (\S+)/gm)].map((m) => m[1]!);
      expect(servers).toEqual([GW]);
      expect(conf).toMatch(new RegExp(`^(search|domain) ${DOMAIN.replace('.', '\\.')}$`, 'm'));
      // and the guest resolves through that server, over IPv6 from its SLAAC address
      expect(await until('AAAA through the resolv.conf server', () => guest.dig(servers[0]!, 'AAAA', `static6.${DOMAIN}`), (a) => a.length > 0, 15_000)).toEqual([STATIC]);
      console.log(`stateless dhcpcd: SLAAC ${slaac}, resolv.conf:\n${conf}`);
    } catch (err) {
      failWith(guest, err);
    }
  }, 120_000);

  function failWith(g: Guest, err: unknown): never {
    throw new Error(`${(err as Error).message}\nclient output:\n${g.output().slice(-4000)}\nevents:\n${g.events().join('\n')}`);
  }
});

describe.skipIf(!isRoot())('natd\'s RAs come only from the bridge\'s link-local address, also while it is tentative (issue 14)', () => {
  let topo: Topology;
  let natd: NatdHandle | undefined;

  beforeAll(() => {
    topo = Topology.create({ vms: 1 });
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('natd started during the bridge\'s DAD: no RA leaves from the gateway\'s ULA (guests drop those, RFC 4861 6.1.2); rdisc6 gets one from fe80:: once DAD is done', async () => {
    // a long DAD (10 probes, about 10 s) on a fresh link-local address of br0: natd starts while it is tentative
    const ll = (JSON.parse(await topo.runOk(topo.host, ['ip', '-j', '-6', 'addr', 'show', 'dev', BRIDGE, 'scope', 'link'])) as { addr_info: { local: string }[] }[])[0]!.addr_info[0]!.local;
    await topo.runOk(topo.host, ['sysctl', '-qw', `net.ipv6.conf.${BRIDGE}.dad_transmits=10`]);
    await topo.runOk(topo.host, ['ip', '-6', 'addr', 'del', `${ll}/64`, 'dev', BRIDGE]);
    await topo.runOk(topo.host, ['ip', '-6', 'addr', 'add', `${ll}/64`, 'dev', BRIDGE]);
    const capture = await topo.start(topo.vm(1).ns, ['tcpdump', '-i', 'eth0', '-n', '-l', 'icmp6 and ip6[40] == 134'], { ready: 'listening on', stream: 'stderr', timeoutMs: 15_000 });
    natd = await startNatd(topo, ['--bridge', BRIDGE, '--no-firewall', '--subnet6', 'fd77:99::1/64']);
    const api = natdCli(topo, natd);
    const tentative = async () => (await topo.runOk(topo.host, ['ip', '-6', 'addr', 'show', 'dev', BRIDGE, 'scope', 'link'])).includes('tentative');
    const startedDuringDad = await tentative();
    // the guest (its own link-local address ready) solicits until natd answers (rdisc6: up to 30, 1 s apart)
    await until('the guest\'s link-local address', () => topo.runOk(topo.vm(1).ns, ['ip', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'link', '-tentative']), (s) => s.includes('fe80::'), 20_000);
    // rdisc6 itself may fail to send ("Invalid argument") while the guest's address is not usable yet: asked again
    const out = await until('an RA for rdisc6', async () => {
      const r = await topo.run(topo.vm(1).ns, ['rdisc6', '-1', '-w', '1000', '-r', '30', 'eth0'], { timeoutMs: 60_000 });
      return r.code === 0 ? r.stdout : `rdisc6 exit ${r.code}: ${r.stderr}`;
    }, (s) => /from fe80::/.test(s), 90_000);
    expect(out).toMatch(/from fe80::5054:ff:fe77:1\b/);
    expect(await tentative()).toBe(false);
    await until('an RA captured', () => capture.stdout(), (s) => /router advertisement/.test(s), 10_000);
    await capture.stop(1000);
    const sources = [...capture.stdout().matchAll(/IP6 (\S+) > \S+: ICMP6, router advertisement/g)].map((m) => m[1]!);
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.filter((s) => !s.startsWith('fe80::'))).toEqual([]);
    console.log(`RA sources seen by the guest: ${[...new Set(sources)].join(', ')} (natd ready while br0's link-local was ${startedDuringDad ? 'tentative' : 'already valid'})`);
    // natd did try while the address was tentative (the send failed, counted), and retried without waiting for the guest
    if (startedDuringDad) expect(await api.metric('natd_ipv6_router_advertisements_total{bridge="br0",result="error"}')).toBeGreaterThan(0);
    expect(await api.metric('natd_ipv6_router_advertisements_total{bridge="br0",result="sent"}')).toBeGreaterThan(0);
  }, 120_000);
});
