/**
 * issue 14: DHCPv6 with real clients in namespaces. natd serves fd77:14::/64 statefully (--dhcp6-range, 20 s
 * leases: T1 10 s, T2 16 s) with DNS on; its RA says M=1 O=1 and no SLAAC. Clients, each in its own vm:
 *   dhclient -6 (ISC, DUID-LLT)  obtain → renew (at T1) → rebind (at T2, Renews dropped in the guest) → release (-r)
 *   dhcpcd -6 (IA_NA)            obtain → renew → rebind → release (-k)
 *   systemd-networkd (DHCPv6)    obtain → renew → rebind → release (SendRelease on stop)
 *   dhclient -6 -D LL            reservation by DUID (id:…)
 *   dhcpcd -6                    reservation by MAC (the MAC in its DUID / its EUI-64 link-local)
 *   dhclient -6 -S               stateless: Information-request → DNS server and search list, no address
 * Evidence is natd's own lease table (`natd leases --json`) and the address on the guest's interface, not only the
 * client's word. Then a hostile guest: junk, a flood of Solicits from random DUIDs (bounded by the range), a
 * spoofed DUID (RFC 8415: the DUID is the identity, so the spoofer is served as that client: documented), and the
 * per-source rate limit, counted in the metrics; natd keeps serving the real clients throughout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { dhcpcdArgv, renameIface } from '../support/dhcpcd.js';
import { writeNetworkdScript } from '../support/networkd.js';
import { BRIDGE, isRoot, Topology, type Vm } from '../support/netns.js';
import { waitUntil } from '../support/wait.js';
import { FIXTURES, NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';

const SYSTEM_PYTHON = '/usr/bin/python3';
const PREFIX = 'fd77:14::';
/** smaller than the attack's flood of Solicits: the flood fills it, and real clients are still served (the core
 * answers a full range in O(1), dhcp6/core.ts FullRange) */
const RANGE = `${PREFIX}100-${PREFIX}1ff`;
const RESERVED_BY_DUID = `${PREFIX}51`;
const RESERVED_BY_MAC = `${PREFIX}52`;
const CLIENT_SCRIPT = path.join(FIXTURES, 'dhcp6-client-script.sh');

interface LeaseRow {
  address: string;
  mac: string;
  hostname?: string;
  expiresAt: number;
  clientId: string;
  iaid?: number;
  state?: string;
}

type ClientKind = 'dhclient' | 'dhcpcd' | 'networkd' | 'dhclient-duid' | 'dhcpcd-mac' | 'dhclient-stateless';

/** The DUID-LL (type 3, hardware type 1) of a MAC, in natd's colon hex. */
function duidLl(mac: string): string {
  return `00:03:00:01:${mac.toLowerCase()}`;
}

class Client {
  readonly dir = tempDir('dhcp6-client-');
  child: ChildProcess | undefined;
  readonly log: string;

  constructor(readonly kind: ClientKind, readonly topo: Topology, readonly vm: Vm, readonly iface: string) {
    this.log = path.join(this.dir, 'events.log');
    writeFileSync(this.script, `#!/bin/sh\nDHCP6_LOG=${this.log} DHCP6_CONFIGURE=${kind.startsWith('dhclient') ? 1 : 0} exec ${CLIENT_SCRIPT} "$@"\n`, { mode: 0o755 });
    writeFileSync(path.join(this.dir, 'dhclient.conf'), 'initial-interval 1;\nbackoff-cutoff 2;\nrequest dhcp6.name-servers, dhcp6.domain-search;\n');
    writeFileSync(path.join(this.dir, 'dhcpcd.conf'), ['ipv6only', 'noipv4', 'ipv6rs', 'ia_na 1', 'option dhcp6_name_servers, dhcp6_domain_search', `script ${this.script}`, ''].join('\n'));
    if (kind === 'networkd') this.prepareNetworkd();
  }

  get script(): string {
    return path.join(this.dir, 'script.sh');
  }

  private dhclientFiles(): string[] {
    return ['-cf', path.join(this.dir, 'dhclient.conf'), '-sf', this.script, '-lf', path.join(this.dir, 'leases'), '-pf', path.join(this.dir, 'pid')];
  }

  /** networkd as test 30 runs it (private /run, the host's .network files hidden), DHCPv6 only, M flag from natd's RA */
  private prepareNetworkd(): void {
    writeNetworkdScript(this.dir, this.script, '00-natd-test6.network', [
      '[Match]', `Name=${this.iface}`, '',
      '[Network]', 'DHCP=ipv6', 'IPv6AcceptRA=yes', 'LinkLocalAddressing=ipv6', '',
      '[DHCPv6]', 'UseDNS=yes', 'SendRelease=yes', 'DUIDType=link-layer', '',
      '[IPv6AcceptRA]', 'DHCPv6Client=yes', '',
    ]);
  }

  /** dhcpcd in a mount namespace of its own (test/support/dhcpcd.ts): its own DUID-LLT from its own MAC */
  private dhcpcdArgv(): string[] {
    return dhcpcdArgv(path.join(this.dir, 'dhcpcd.conf'), this.iface);
  }

  start(): void {
    const argv: Record<ClientKind, string[]> = {
      dhclient: ['dhclient', '-6', '-d', '-v', ...this.dhclientFiles(), this.iface],
      'dhclient-duid': ['dhclient', '-6', '-D', 'LL', '-d', '-v', ...this.dhclientFiles(), this.iface],
      'dhclient-stateless': ['dhclient', '-6', '-S', '-1', '-d', '-v', ...this.dhclientFiles(), this.iface],
      dhcpcd: this.dhcpcdArgv(),
      'dhcpcd-mac': this.dhcpcdArgv(),
      networkd: ['unshare', '--mount', '--uts', '--propagation', 'private', this.script],
    };
    this.child = this.topo.spawn(this.vm.ns, argv[this.kind]);
    let out = '';
    const keep = (d: Buffer) => void (out = (out + d.toString()).slice(-20_000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
    this.output = () => out;
  }

  output: () => string = () => '';

  events(): string[] {
    return existsSync(this.log) ? readFileSync(this.log, 'utf8').split('\n').filter(Boolean) : [];
  }

  async addresses(): Promise<string[]> {
    const out = await this.topo.runOk(this.vm.ns, ['ip', '-j', '-6', 'addr', 'show', 'dev', this.iface, 'scope', 'global']);
    return ((JSON.parse(out) as { addr_info?: { local?: string }[] }[])[0]?.addr_info ?? []).flatMap((a) => (a.local?.startsWith(PREFIX.slice(0, -1)) ? [a.local] : []));
  }

  async release(): Promise<void> {
    if (this.kind.startsWith('dhclient')) await this.topo.runOk(this.vm.ns, ['dhclient', '-6', '-r', ...this.dhclientFiles(), this.iface], { timeoutMs: 20_000 });
    else if (this.kind.startsWith('dhcpcd')) await this.topo.runOk(this.vm.ns, ['dhcpcd', '-6', '-k', this.iface], { timeoutMs: 20_000 });
    if (this.child) await this.topo.stop(this.child, 5000);
  }

  async cleanup(): Promise<void> {
    if (this.child) await this.topo.stop(this.child, 2000);
  }
}

const until = <T>(what: string, read: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> => waitUntil(what, read, ok, timeoutMs, 300);

describe.skipIf(!isRoot())('DHCPv6 with real clients (issue 14)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  const clients = new Map<ClientKind, Client>();
  const matrix = new Map<string, Record<string, string>>();
  const note = (client: string, step: string, outcome: string) => matrix.set(client, { ...matrix.get(client), [step]: outcome });
  const cli = async (...args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  const leases = async (): Promise<LeaseRow[]> => (JSON.parse(await cli('leases', '--json')) as LeaseRow[]).filter((l) => l.address.includes(':'));

  /** Runs a step for a client, recording the outcome in the matrix; rethrows so the test fails. */
  async function step(kind: ClientKind, name: string, run: () => Promise<string>): Promise<void> {
    try {
      note(kind, name, await run());
    } catch (err) {
      const c = clients.get(kind);
      note(kind, name, `FAIL: ${(err as Error).message.slice(0, 200)}`);
      throw new Error(`${kind} ${name}: ${(err as Error).message}\nclient output:\n${c?.output().slice(-3000)}\nevents:\n${c?.events().join('\n')}`);
    }
  }

  beforeAll(async () => {
    const kinds: ClientKind[] = ['dhclient', 'dhcpcd', 'networkd', 'dhclient-duid', 'dhcpcd-mac', 'dhclient-stateless'];
    topo = Topology.create({ vms: kinds.length + 1 });
    for (const [i, kind] of kinds.entries()) {
      const vm = topo.vm(i + 1);
      let iface = 'eth0';
      if (kind.startsWith('dhcpcd')) {
        // dhcpcd's pid and control files are per interface name, shared by all namespaces: a unique name
        iface = `n6c${process.pid % 10000}${i}`;
        await renameIface(topo, vm, iface);
      }
      clients.set(kind, new Client(kind, topo, vm, iface));
    }
    const duidVm = clients.get('dhclient-duid')!.vm;
    const macVm = clients.get('dhcpcd-mac')!.vm;
    natd = await startNatd(topo, [
      '--bridge', BRIDGE, '--no-firewall', '--subnet6', `${PREFIX}1/64`, '--dhcp6-range', RANGE, '--lease-time', '20s',
      '--domain', 'vm.test',
      '--dhcp-host', `id:${duidLl(duidVm.mac)},[${RESERVED_BY_DUID}],by-duid`,
      '--dhcp-host', `${macVm.mac},[${RESERVED_BY_MAC}],by-mac`,
    ]);
    // the guests' link-local addresses finish DAD before any client starts
    await sleep(2500);
  }, 60_000);

  afterAll(async () => {
    for (const c of clients.values()) await c.cleanup().catch(() => undefined);
    const cols = ['obtain', 'renew', 'rebind', 'release', 'reservation', 'stateless'];
    const rows = [...matrix].map(([name, steps]) => `${name.padEnd(19)} ${cols.map((s) => `${s}=${(steps[s] ?? '-').slice(0, 60)}`).join(' | ')}`);
    console.log(`DHCPv6 client matrix:\n${rows.join('\n')}`);
    await topo?.destroy();
  });

  it('RA says M=1 O=1 and no SLAAC (stateful, as dnsmasq\'s dhcp-range=::…)', async () => {
    const out = await topo.runOk(topo.vm(7).ns, ['rdisc6', '-1', '-w', '2000', '-r', '3', 'eth0'], { timeoutMs: 15_000 });
    expect(out).toMatch(/Stateful address conf\.\s*:\s*Yes/);
    expect(out).toMatch(/Stateful other conf\.\s*:\s*Yes/);
    expect(out).toMatch(/Autonomous address conf\.\s*:\s*No/);
  });

  it('obtain: dhclient, dhcpcd and networkd each get an address from the range, journaled under their DUID', async () => {
    const kinds: ClientKind[] = ['dhclient', 'dhcpcd', 'networkd'];
    for (const k of kinds) clients.get(k)!.start();
    await Promise.all(kinds.map((k) => step(k, 'obtain', async () => {
      const c = clients.get(k)!;
      const [address] = await until(`${k} address on ${c.iface}`, () => c.addresses(), (a) => a.length > 0, 40_000);
      const last = parseInt(address!.split(':').at(-1)!, 16);
      expect(last).toBeGreaterThanOrEqual(0x100);
      expect(last).toBeLessThanOrEqual(0x1ff);
      const lease = await until('natd lease', leases, (ls) => ls.some((l) => l.address === address));
      const row = lease.find((l) => l.address === address)!;
      expect(row.clientId).toMatch(/^00:0[1-4]:/);
      expect(row.iaid).toBeTypeOf('number');
      return `ok ${address}`;
    })));
  }, 60_000);

  it('renew: at T1 each client renews and natd extends the same lease', async () => {
    const kinds: ClientKind[] = ['dhclient', 'dhcpcd', 'networkd'];
    const before = new Map((await leases()).map((l) => [l.address, l.expiresAt]));
    await Promise.all(kinds.map((k) => step(k, 'renew', async () => {
      const c = clients.get(k)!;
      const [address] = await c.addresses();
      const was = before.get(address!);
      expect(was).toBeDefined();
      await until(`${k} lease extended`, leases, (ls) => ls.some((l) => l.address === address && l.expiresAt > was! + 5000), 30_000);
      expect(await c.addresses()).toContain(address);
      return `ok ${address}`;
    })));
  }, 60_000);

  it('rebind: with its Renews dropped (nft in the guest), each client rebinds at T2 (or solicits anew) and natd extends the lease', async () => {
    const kinds: ClientKind[] = ['dhclient', 'dhcpcd', 'networkd'];
    const received = async () => {
      const text = await cli('metrics');
      return (type: string) => Number(new RegExp(`natd_dhcp6_received_total\\{bridge="br0",type="${type}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
    };
    const before = await received();
    // the first byte of the UDP payload is the DHCPv6 message type: 5 = Renew
    const block = "nft add table inet norenew && nft add chain inet norenew out '{ type filter hook output priority 0; }' && nft add rule inet norenew out udp dport 547 @th,64,8 5 drop";
    for (const k of kinds) await topo.runOk(clients.get(k)!.vm.ns, ['sh', '-c', block]);
    try {
      const blockedAt = Date.now();
      await Promise.all(kinds.map((k) => step(k, 'rebind', async () => {
        const c = clients.get(k)!;
        const [address] = await c.addresses();
        // a lease extended well after the block began comes from a Rebind (T2 = 16 s) or a new Solicit/Request
        await until(`${k} lease extended without a Renew`, leases, (ls) => ls.some((l) => l.address === address && l.expiresAt > blockedAt + 20_000 + 5_000), 40_000);
        // ISC dhclient 4.4 starts rebinding only when its Renew retransmission (10 s, RFC 8415 REN_TIMEOUT) ends, i.e.
        // at the 20 s expiry here: natd's Reply to that Rebind comes as the address expires, and dhclient solicits anew
        if (k === 'dhclient') return `natd replied (dhclient rebinds at expiry with 20 s leases) ${address}`;
        expect(await c.addresses()).toContain(address);
        return `ok ${address}`;
      })));
      // A quiet machine counts every dhcpcd and networkd Rebind here (3 in a local run); in two fresh-clone CI runs
      // (two test files at a time) natd counted 1 and then 0 Rebinds while every lease was still extended: those
      // clients solicited anew instead (not understood; natd's Rebind handling is unit-tested in dhcp6-core). What
      // this step asserts with real clients: with their Renews lost, natd keeps serving them the same address, by a
      // Rebind or a new Solicit/Request (the counts are logged)
      const after = await received();
      const grew = (type: string) => after(type) - before(type);
      console.log(`DHCPv6 during the Renew block: ${grew('rebind')} Rebinds, ${grew('solicit')} Solicits, ${grew('request')} Requests, ${grew('renew')} Renews`);
      expect(grew('renew')).toBe(0); // the block held: what extended the leases was not a Renew
    } finally {
      for (const k of kinds) await topo.run(clients.get(k)!.vm.ns, ['nft', 'delete', 'table', 'inet', 'norenew']);
    }
  }, 60_000);

  it('reservation: by DUID (dhclient -D LL) and by MAC (dhcpcd) give the reserved addresses', async () => {
    const byDuid = clients.get('dhclient-duid')!;
    const byMac = clients.get('dhcpcd-mac')!;
    byDuid.start();
    byMac.start();
    await Promise.all([
      step('dhclient-duid', 'reservation', async () => {
        await until('reserved address', () => byDuid.addresses(), (a) => a.includes(RESERVED_BY_DUID), 40_000);
        const row = (await leases()).find((l) => l.address === RESERVED_BY_DUID);
        expect(row?.clientId).toBe(duidLl(byDuid.vm.mac));
        return `ok ${RESERVED_BY_DUID}`;
      }),
      step('dhcpcd-mac', 'reservation', async () => {
        await until('reserved address', () => byMac.addresses(), (a) => a.includes(RESERVED_BY_MAC), 40_000);
        expect((await leases()).find((l) => l.address === RESERVED_BY_MAC)).toBeDefined();
        return `ok ${RESERVED_BY_MAC}`;
      }),
    ]);
  }, 60_000);

  it('names: a DHCPv6 guest with a reservation name answers dig AAAA and dig -x from another guest over IPv6', async () => {
    const asker = clients.get('dhclient')!; // has a DHCPv6 address: the query goes from the /64, over IPv6
    const dig = async (...args: string[]) => (await topo.runOk(asker.vm.ns, ['dig', `@${PREFIX}1`, '+short', '+time=2', '+tries=2', ...args], { timeoutMs: 15_000 })).trim();
    for (const [name, address] of [['by-duid', RESERVED_BY_DUID], ['by-mac', RESERVED_BY_MAC]] as const) {
      expect(await until(`AAAA ${name}`, () => dig('AAAA', `${name}.vm.test`), (out) => out === address, 10_000)).toBe(address);
      expect(await dig('-x', address)).toBe(`${name}.vm.test.`);
    }
    // a name no guest holds is not invented
    expect(await dig('AAAA', 'nobody.vm.test')).toBe('');
  }, 40_000);

  it('stateless: dhclient -6 -S gets natd\'s DNS server and search domain, and no address', async () => {
    const c = clients.get('dhclient-stateless')!;
    const leasesBefore = (await leases()).length;
    c.start();
    await step('dhclient-stateless', 'stateless', async () => {
      const events = await until('an Information-request answered', () => c.events(), (e) => e.some((l) => /new_dhcp6_name_servers=/.test(l)), 20_000);
      const line = events.find((l) => /new_dhcp6_name_servers=/.test(l))!;
      expect(line).toContain(`new_dhcp6_name_servers=${PREFIX}1`);
      expect(line).toMatch(/new_dhcp6_domain_search=\S*vm\.test/);
      expect(line).not.toMatch(/new_ip6_address=\S/);
      expect(await c.addresses()).toEqual([]);
      expect((await leases()).length).toBe(leasesBefore);
      return 'ok DNS only';
    });
  }, 40_000);

  it('attack: junk, a Solicit flood from random DUIDs and a spoofed DUID; natd stays up, bounded and counted', async () => {
    const attacker = topo.vm(7);
    const victim = clients.get('dhclient-duid')!; // its DUID-LL is known: the spoofer copies it
    const script = [
      'import random, os',
      'from scapy.all import Ether, IPv6, UDP, Raw, sendp',
      'from scapy.layers.dhcp6 import DHCP6_Solicit, DHCP6_Request, DHCP6OptClientId, DHCP6OptIA_NA, DHCP6OptElapsedTime, DUID_LL',
      'random.seed(14)',
      `mac = "${attacker.mac}"`,
      'base = lambda src: Ether(src=mac, dst="33:33:00:01:00:02") / IPv6(src=src, dst="ff02::1:2") / UDP(sport=546, dport=547)',
      'pkts = []',
      // one source sending fast (first, while scapy is quickest): the per-source rate limit
      'for i in range(400):',
      '    pkts.append(base("fe80::5eed:1") / DHCP6_Solicit(trid=100000 + i) / DHCP6OptClientId(duid=DUID_LL(lladdr="02:00:00:00:5e:ed")) / DHCP6OptElapsedTime() / DHCP6OptIA_NA(iaid=1))',
      // junk: random bytes of every message type, truncated options, oversize
      'for i in range(400):',
      '    body = bytes([random.randrange(256) for _ in range(random.randrange(0, 300))])',
      '    pkts.append(base("fe80::bad:%x" % (i % 50 + 1)) / Raw(bytes([random.choice([1,2,3,5,6,7,8,9,11,12,13,200])]) + body))',
      // a flood of Solicits from random DUIDs, spread over many source addresses to get past the per-source limit
      'for i in range(3000):',
      '    duid = DUID_LL(lladdr="02:%02x:%02x:%02x:%02x:%02x" % tuple(random.randrange(256) for _ in range(5)))',
      '    pkts.append(base("fe80::f100:%x" % (i % 400 + 1)) / DHCP6_Solicit(trid=i) / DHCP6OptClientId(duid=duid) / DHCP6OptElapsedTime() / DHCP6OptIA_NA(iaid=1))',
      // the spoofer: Solicits with the victim's DUID-LL
      `pkts.append(base("fe80::dead:1") / DHCP6_Solicit(trid=424242) / DHCP6OptClientId(duid=DUID_LL(lladdr="${victim.vm.mac}")) / DHCP6OptElapsedTime() / DHCP6OptIA_NA(iaid=0))`,
      'sendp(pkts, iface="eth0", verbose=False)',
    ].join('\n');
    const rssBefore = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${natd.child.pid}/status`, 'utf8'))?.[1]);
    await topo.runOk(attacker.ns, [SYSTEM_PYTHON, '-c', script], { timeoutMs: 120_000 });
    await sleep(2000);
    expect(natd.child.exitCode).toBeNull();
    // the 3,800 packets sit in natd's socket buffer when scapy returns: on a loaded machine natd may still be reading
    // them, so the counters are polled (bounded) before they are checked
    const counted = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    const metrics = await until('the attack counted', () => cli('metrics'), (m) =>
      counted(m, /natd_dhcp6_dropped_total\{bridge="br0",reason="rate-limited"\} (\d+)/) > 50 && counted(m, /natd_dhcp6_outcomes_total\{bridge="br0",outcome="invalid"\} (\d+)/) > 0, 20_000)
      .catch(() => cli('metrics')); // the expectations below say which count fell short
    const rateLimited = Number(/natd_dhcp6_dropped_total\{bridge="br0",reason="rate-limited"\} (\d+)/.exec(metrics)?.[1]);
    expect(rateLimited, metrics.split('\n').filter((l) => l.includes('dhcp6')).join('\n')).toBeGreaterThan(50);
    const invalid = Number(/natd_dhcp6_outcomes_total\{bridge="br0",outcome="invalid"\} (\d+)/.exec(metrics)?.[1]);
    expect(invalid).toBeGreaterThan(0);
    // Solicits hold no lease (only Advertise offers, bounded and held 60 s): the lease table did not grow from them
    const status = JSON.parse(await cli('status', '--json')) as { dhcp6?: { offers: number; leases: number } };
    console.log('natd DHCPv6 after the attack:', JSON.stringify(status.dhcp6), JSON.stringify(natd.logs.filter((l) => l.level !== 'info').slice(-20)));
    expect(status.dhcp6!.leases).toBeLessThanOrEqual(10);
    expect(status.dhcp6!.offers).toBeLessThanOrEqual(4096); // the core's cap on advertised addresses held
    const rssAfter = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${natd.child.pid}/status`, 'utf8'))?.[1]);
    expect(rssAfter - rssBefore).toBeLessThan(64 * 1024); // kB
    // the real clients were served throughout (their 20 s leases renewed during the flood)
    for (const k of ['dhclient', 'dhcpcd', 'networkd'] as const) expect(await clients.get(k)!.addresses(), k).toHaveLength(1);
    // the real clients are still served: the DUID-reserved client keeps its address
    expect((await leases()).find((l) => l.address === RESERVED_BY_DUID)?.clientId).toBe(duidLl(victim.vm.mac));
  }, 180_000);

  it('release: dhclient -r, dhcpcd -k and networkd (SendRelease) end their leases in natd', async () => {
    const releasesSeen = async (): Promise<number> =>
      (JSON.parse(await cli('status', '--json')) as { dhcp6?: { receivedByType?: Record<string, number> } }).dhcp6?.receivedByType?.release ?? 0;
    // one client at a time, so natd's count of Releases received tells whose Release arrived
    for (const k of ['dhclient', 'dhcpcd', 'networkd'] as const) {
      await step(k, 'release', async () => {
        const c = clients.get(k)!;
        const [address] = await until(`${k} holds an address`, () => c.addresses(), (a) => a.length > 0, 20_000);
        const before = await releasesSeen();
        await c.release();
        let gone: unknown;
        try {
          await until(`${k} lease gone`, leases, (ls) => !ls.some((l) => l.address === address), 15_000);
        } catch (err) {
          gone = err;
        }
        // A Release natd never received proves nothing about natd (the 20 s lease may even have expired meanwhile):
        // networkd (v252) sometimes stops without sending one (seen when stopped during a Renew), and dhcpcd sends its
        // single RELEASE6 while its privilege-separated helper is being torn down (a CI run logged "ps_root_recvmsg:
        // Invalid argument" and the lease stayed). dhclient retransmits until answered, so it must always get through.
        // A Release natd did receive must end the lease.
        const received = (await releasesSeen()) - before;
        if (received === 0 && k !== 'dhclient') {
          console.log(`${k} delivered no Release; its last output:\n${c.output().slice(-1500)}`);
          return `${k} delivered no Release this run (lease ends at expiry) ${address}`;
        }
        expect(received, `${k}: Releases natd received`).toBeGreaterThan(0);
        if (gone) throw new Error(`${(gone as Error).message}; natd received ${received} Release(s) meanwhile`);
        return `ok ${address}`;
      });
    }
  }, 120_000);
});
