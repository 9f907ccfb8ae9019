/**
 * issue 14: IPv6 port forwards BY NAME follow the guests, and the names DHCPv6 clients give themselves.
 *
 * Stateful natd (fd96:14::/64, --dhcp6-range, DNS on, firewall on, a hostsfile with an IPv6 line):
 *   1. dhclient -6 sends a Client FQDN option (`send fqdn.fqdn "web6"`, RFC 4704): natd names its lease, another guest's
 *      `dig AAAA web6.vm.test` answers the DHCPv6 address, and natd's Reply carries the FQDN option (S=1,
 *      web6.vm.test.) — seen on the wire in the guest.
 *   2. A hostile client claiming a name another guest's reservation or lease holds is refused (its lease has no
 *      name, the Reply says N=1, counted in natd_dhcp6_names_refused_total), and DNS still answers the holder.
 *   3. A hostsfile line `MAC,[::77],hosted` gives dhclient -6 the reserved address; `natd reservations add MAC [::78]
 *      NAME` at runtime gives another dhclient its address; a changed hostsfile is re-read on reload.
 *   4. `tcp:2222=web6:22` (any address) reaches the DHCPv6 guest over IPv6 from the wan namespace, and follows it when
 *      its address changes (release, new DUID, new lease).
 *   5. Attack: a guest churning DHCPv6 leases for a forwarded name (Solicit/Release cycles from several sources):
 *      natd stays up, the nft reloads stay at about one a second (natd_ipv6_forward_reloads_total), the others'
 *      forwards still work.
 * SLAAC natd (fd96:15::/64, no range: A=1):
 *   6. `tcp:[HOST6]:2225=slaac6:22` names a SLAAC guest (its name from its IPv4 reservation, its address from the
 *      neighbour table) and follows it to its new address within seconds when the old one is gone (the neighbour
 *      monitor sees the new address, the kernel probes the old one).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BRIDGE, isRoot, Topology, UPLINK6_HOST, UPLINK6_WAN, type Vm } from '../support/netns.js';
import { FIXTURES, NATD_CLI, startNatd, tempDir, waitForListener, type NatdHandle } from '../support/natd-process.js';
import { waitUntil } from '../support/wait.js';
import { formatIpv6, parseIpv6 } from '../../src/ipv6/address.js';

const SYSTEM_PYTHON = '/usr/bin/python3';
const CLIENT_SCRIPT = path.join(FIXTURES, 'dhcp6-client-script.sh');
/** the hostile guest's extra link-local sources (past natd's per-source DHCPv6 rate limit) */
const SOURCES = [1, 2, 3, 4, 5, 6, 7, 8];

interface LeaseRow {
  address: string;
  mac: string;
  hostname?: string;
  clientId: string;
}

const until = <T>(what: string, read: () => Promise<T> | T, ok: (v: T) => boolean, timeoutMs = 30_000): Promise<T> => waitUntil(what, read, ok, timeoutMs, 300);
const metric = (text: string, name: string, labels: string): number => Number(new RegExp(`${name}${labels.replace(/[{}]/g, '\\$&')} (\\d+)`).exec(text)?.[1] ?? NaN);

/** A TCP listener in a guest that says which guest it is and who connected. */
async function whoami(topo: Topology, vm: Vm, label: string, port = 22): Promise<void> {
  topo.spawn(vm.ns, ['socat', `TCP6-LISTEN:${port},reuseaddr,fork`, `SYSTEM:echo ${label} $SOCAT_PEERADDR`]);
  await waitForListener(topo, vm.ns, port);
}

async function connect(topo: Topology, ns: string, address: string, port: number): Promise<string> {
  const r = await topo.run(ns, ['socat', '-t', '2', '-', `TCP6:[${address}]:${port},connect-timeout=3`], { input: '', timeoutMs: 8000 });
  if (r.code !== 0) return `failed: ${r.stderr.trim().slice(-120)}`;
  const [label, peer] = r.stdout.trim().split(/\s+/);
  const bytes = parseIpv6((peer ?? '').replace(/^\[|\]$/g, ''));
  return `${label} ${bytes ? formatIpv6(bytes) : peer}`;
}

/** dhclient -6 in a guest, with its own files (lease file = its DUID) and the fixture script putting the address on. */
class Dhclient {
  readonly dir = tempDir('dhcp6-fwd-');
  child: ChildProcess | undefined;
  out = '';
  constructor(readonly topo: Topology, readonly vm: Vm, readonly prefix: string, fqdn?: string) {
    writeFileSync(path.join(this.dir, 'script.sh'), `#!/bin/sh\nDHCP6_LOG=${path.join(this.dir, 'events.log')} DHCP6_CONFIGURE=1 exec ${CLIENT_SCRIPT} "$@"\n`, { mode: 0o755 });
    writeFileSync(path.join(this.dir, 'dhclient.conf'), [
      'initial-interval 1;', 'backoff-cutoff 2;',
      ...(fqdn ? [`send fqdn.fqdn "${fqdn}";`, 'send fqdn.server-update on;'] : []),
      `request dhcp6.name-servers, dhcp6.domain-search${fqdn ? ', dhcp6.fqdn' : ''};`, '',
    ].join('\n'));
  }
  private files(): string[] {
    return ['-cf', path.join(this.dir, 'dhclient.conf'), '-sf', path.join(this.dir, 'script.sh'), '-lf', path.join(this.dir, 'leases'), '-pf', path.join(this.dir, 'pid')];
  }
  start(): void {
    this.out = '';
    this.child = this.topo.spawn(this.vm.ns, ['dhclient', '-6', '-d', '-v', ...this.files(), 'eth0']);
    const keep = (d: Buffer) => void (this.out = (this.out + d.toString()).slice(-20_000));
    this.child.stdout!.on('data', keep);
    this.child.stderr!.on('data', keep);
  }
  async addresses(): Promise<string[]> {
    const out = await this.topo.runOk(this.vm.ns, ['ip', '-j', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global']);
    return ((JSON.parse(out) as { addr_info?: { local?: string }[] }[])[0]?.addr_info ?? []).flatMap((a) => (a.local?.startsWith(this.prefix) ? [a.local] : []));
  }
  /** Release, and forget the DUID (a new lease file: dhclient makes a new DUID-LLT), so the next lease is another address. */
  async releaseAndForget(): Promise<void> {
    await this.topo.runOk(this.vm.ns, ['dhclient', '-6', '-r', ...this.files(), 'eth0'], { timeoutMs: 20_000 });
    if (this.child) await this.topo.stop(this.child, 5000);
    rmSync(path.join(this.dir, 'leases'), { force: true });
  }
  async stop(): Promise<void> {
    if (this.child) await this.topo.stop(this.child, 2000);
  }
}

/**
 * A DHCPv6 client in Python for the hostile guest: Solicit with Rapid Commit, an FQDN option and ORO 39, from a
 * source link-local address of the guest; prints one JSON line per exchange (the reply's FQDN flags and name, its
 * address). `CHURN n`: n Solicit/Release cycles for the same name, round-robin over the sources.
 */
const PY_CLIENT = `
import json, socket, sys, time
from scapy.layers.dhcp6 import DHCP6_Solicit, DHCP6_Release, DHCP6OptClientId, DHCP6OptServerId, DHCP6OptIA_NA, DHCP6OptIAAddress, DHCP6OptElapsedTime, DHCP6OptRapidCommit, DHCP6OptOptReq, DHCP6OptClientFQDN, DUID_LL
ifindex = socket.if_nametoindex("eth0")
sources = sys.argv[1].split(",")
socks = []
for src in sources:
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, 546, 0, ifindex))
    s.settimeout(0.5)
    socks.append(s)
def options(data, at):
    out = {}
    while at + 4 <= len(data):
        code, length = int.from_bytes(data[at:at+2], "big"), int.from_bytes(data[at+2:at+4], "big")
        out.setdefault(code, []).append(data[at+4:at+4+length])
        at += 4 + length
    return out
def exchange(s, msg, trid):
    s.sendto(bytes(msg), ("ff02::1:2", 547, 0, ifindex))
    deadline = time.time() + 0.5
    while time.time() < deadline:
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            return None
        if int.from_bytes(data[1:4], "big") == trid:
            return data
    return None
def parse(data):
    if data is None:
        return {"reply": None}
    o = options(data, 4)
    out = {"type": data[0]}
    if 39 in o:
        f = o[39][0]
        labels, i = [], 1
        while i < len(f) and f[i] > 0:
            labels.append(f[i+1:i+1+f[i]].decode()); i += 1 + f[i]
        out["fqdnFlags"] = f[0]; out["fqdnName"] = ".".join(labels)
    if 3 in o:
        ia = options(o[3][0], 12)
        if 5 in ia:
            out["address"] = socket.inet_ntop(socket.AF_INET6, ia[5][0][:16])
    if 2 in o:
        out["serverId"] = o[2][0].hex()
    return out
def solicit(s, mac, name, iaid, trid):
    m = DHCP6_Solicit(trid=trid)/DHCP6OptClientId(duid=DUID_LL(lladdr=mac))/DHCP6OptElapsedTime()/DHCP6OptRapidCommit()/DHCP6OptOptReq(reqopts=[23, 24, 39])/DHCP6OptClientFQDN(flags=1, fqdn=name.encode() + b".")/DHCP6OptIA_NA(iaid=iaid)
    return parse(exchange(s, m, trid))
def release(s, mac, server, iaid, address, trid):
    m = DHCP6_Release(trid=trid)/DHCP6OptClientId(duid=DUID_LL(lladdr=mac))/DHCP6OptServerId(duid=bytes.fromhex(server))/DHCP6OptElapsedTime()/DHCP6OptIA_NA(iaid=iaid, ianaopts=[DHCP6OptIAAddress(addr=address)])
    return parse(exchange(s, m, trid))
trid = 1000
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    if words[0] == "ASK":
        mac, name, iaid = words[1], words[2], int(words[3])
        trid += 1
        print(json.dumps(solicit(socks[0], mac, name, iaid, trid)), flush=True)
    elif words[0] == "CHURN":
        mac, name, n = words[1], words[2], int(words[3])
        held = (int(words[4]), words[5]) if len(words) > 5 else None
        ok, start = 0, time.time()
        for i in range(n):
            s = socks[i % len(socks)]
            # a Reply slower than the 0.5 s wait (a loaded machine) still bound the address: ask again for the same
            # IAID (same binding) so that no lease is left behind unreleased
            for attempt in range(4):
                trid += 1
                r = solicit(s, mac, name, 100 + i, trid)
                if r.get("address"):
                    break
            if r.get("address"):
                ok += 1
                if held:
                    for attempt in range(4):
                        trid += 1
                        if release(s, mac, r["serverId"], held[0], held[1], trid).get("type"):
                            break
                held = (100 + i, r["address"])
        print(json.dumps({"churned": ok, "seconds": round(time.time() - start, 2)}), flush=True)
`;

describe.skipIf(!isRoot())('IPv6 forwards by name to DHCPv6 guests; Client FQDN names; IPv6 hostsfile and runtime reservations (issue 14)', () => {
  const PREFIX = 'fd96:14::';
  let topo: Topology;
  let natd: NatdHandle;
  let hostsfile: string;
  let web: Dhclient;
  let hosted: Dhclient;
  let runtime: Dhclient;
  let attacker: { write(line: string): void; next(): Promise<Record<string, unknown>>; stop(): Promise<void> };
  const cli = async (...args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket], { timeoutMs: 15_000 });
  const leases = async (): Promise<LeaseRow[]> => (JSON.parse(await cli('leases', '--json')) as LeaseRow[]).filter((l) => l.address.includes(':'));
  // no answer (yet: natd's IPv6 DNS binds once the gateway address has passed DAD) reads as no address, so polls go on
  const aaaa = async (name: string): Promise<string[]> => {
    const r = await topo.run(topo.vm(4).ns, ['dig', '+short', '+time=2', '+tries=2', 'AAAA', name, `@${PREFIX}1`]);
    return r.code === 0 ? r.stdout.trim().split('\n').filter(Boolean) : [];
  };

  beforeAll(async () => {
    topo = Topology.create({ vms: 4, ipv6: true });
    hostsfile = path.join(tempDir('natd-hf6-'), 'hosts');
    writeFileSync(hostsfile, `# IPv6 reservations in the dnsmasq dhcp-hostsfile format\n${topo.vm(2).mac},[::77],hosted\n`);
    natd = await startNatd(topo, [
      '--bridge', BRIDGE, '--subnet6', `${PREFIX}1/64`, '--dhcp6-range', `${PREFIX}100-${PREFIX}1ff`, '--lease-time', '5m',
      '--domain', 'vm.test', '--hostsfile', hostsfile,
    ]);
    web = new Dhclient(topo, topo.vm(1), PREFIX, 'web6');
    hosted = new Dhclient(topo, topo.vm(2), PREFIX);
    runtime = new Dhclient(topo, topo.vm(4), PREFIX);
    await whoami(topo, topo.vm(1), 'vm1');
    await whoami(topo, topo.vm(3), 'vm3');
    // the attacker's extra link-local sources (past the per-source rate limit)
    const vm3 = topo.vm(3);
    for (const n of SOURCES) await topo.runOk(vm3.ns, ['ip', '-6', 'addr', 'add', `fe80::c:${n}/64`, 'dev', 'eth0', 'nodad']);
    await sleep(2500); // link-local DAD done before any client starts
    const py = topo.spawn(vm3.ns, [SYSTEM_PYTHON, '-u', '-c', PY_CLIENT, SOURCES.map((n) => `fe80::c:${n}`).join(',')], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buffer = '';
    const lines: string[] = [];
    const waiting: ((l: string) => void)[] = [];
    py.stdout!.on('data', (d: Buffer) => {
      buffer += d.toString();
      for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        const w = waiting.shift();
        if (w) w(line);
        else lines.push(line);
      }
    });
    let err = '';
    py.stderr!.on('data', (d: Buffer) => void (err += d.toString()));
    attacker = {
      write: (line) => void py.stdin!.write(line + '\n'),
      next: () => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no answer from the python client: ${err.slice(-2000)}`)), 120_000);
        const take = (l: string) => { clearTimeout(timer); resolve(JSON.parse(l) as Record<string, unknown>); };
        const queued = lines.shift();
        if (queued !== undefined) take(queued);
        else waiting.push(take);
      }),
      stop: async () => void (await topo.stop(py, 2000)),
    };
  }, 60_000);

  afterAll(async () => {
    for (const c of [web, hosted, runtime]) await c?.stop().catch(() => undefined);
    await attacker?.stop().catch(() => undefined);
    await topo?.destroy();
  });

  it('Client FQDN: dhclient -6 names its lease; AAAA from another guest; the Reply carries the FQDN option (S=1)', async () => {
    // what natd sends the guest, seen on the wire in the guest
    const sniffer = await topo.start(topo.vm(1).ns, [SYSTEM_PYTHON, '-u', '-c', [
      'from scapy.all import sniff, UDP',
      'print("sniffing", flush=True)',
      'def show(p):',
      '    d = bytes(p[UDP].payload)',
      '    at = 4',
      '    while at + 4 <= len(d):',
      '        code, n = int.from_bytes(d[at:at+2], "big"), int.from_bytes(d[at+2:at+4], "big")',
      '        if code == 39: print("fqdn", d[0], d[at+4], d[at+5:at+4+n].hex(), flush=True)',
      '        at += 4 + n',
      'sniff(iface="eth0", timeout=40, lfilter=lambda p: UDP in p and p[UDP].sport == 547, prn=show, store=False)',
    ].join('\n')], { ready: 'sniffing', timeoutMs: 15_000 });
    web.start();
    const [address] = await until('web6 address', () => web.addresses(), (a) => a.length > 0, 40_000);
    const row = (await until('natd lease named web6', leases, (ls) => ls.some((l) => l.address === address && l.hostname === 'web6'))).find((l) => l.address === address)!;
    expect(row.mac).toBe(topo.vm(1).mac);
    expect(await until('AAAA web6.vm.test', () => aaaa('web6.vm.test'), (a) => a.length > 0)).toEqual([address]);
    // the Reply (type 7) to the Request carries S=1, O=0, N=0 and web6.vm.test. in DNS wire format
    const wire = '04' + Buffer.from('web6').toString('hex') + '02' + Buffer.from('vm').toString('hex') + '04' + Buffer.from('test').toString('hex') + '00';
    await sniffer.waitForOutput(new RegExp(`fqdn 7 1 ${wire}`), { timeoutMs: 20_000 });
    await sniffer.stop();
  }, 90_000);

  it('IPv6 hostsfile line and runtime reservation: dhclient -6 gets the reserved addresses; reload re-reads the hostsfile', async () => {
    hosted.start();
    await until('hostsfile address ::77', () => hosted.addresses(), (a) => a.includes(`${PREFIX}77`), 40_000);
    expect((await leases()).find((l) => l.address === `${PREFIX}77`)).toMatchObject({ hostname: 'hosted', mac: topo.vm(2).mac });
    expect(await until('AAAA hosted.vm.test', () => aaaa('hosted.vm.test'), (a) => a.length > 0)).toEqual([`${PREFIX}77`]);

    const added = await cli('reservations', 'add', topo.vm(4).mac, '[::78]', 'rt6');
    expect(added).toContain('added');
    const list = JSON.parse(await cli('reservations', 'list', '--json')) as { mac: string; address: string; hostname?: string; source: string }[];
    expect(list).toEqual(expect.arrayContaining([
      { mac: topo.vm(2).mac, address: '[::77]', hostname: 'hosted', source: 'hostsfile' },
      { mac: topo.vm(4).mac, address: '[::78]', hostname: 'rt6', source: 'runtime' },
    ]));
    expect(readFileSync(path.join(natd.stateDir, 'runtime-reservations'), 'utf8')).toContain(`${topo.vm(4).mac},[::78],rt6`);
    runtime.start();
    await until('runtime reservation ::78', () => runtime.addresses(), (a) => a.includes(`${PREFIX}78`), 40_000);
    expect((await leases()).find((l) => l.address === `${PREFIX}78`)).toMatchObject({ hostname: 'rt6' });
    // a bad one is refused with the field named, nothing changed
    const bad = await topo.run(topo.host, [process.execPath, NATD_CLI, 'reservations', 'add', topo.vm(3).mac, '[fd99::5]', '--control-socket', natd.controlSocket]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/ipv6: \[fd99::5\] is outside the served fd96:14::\/64/);
    // the hostsfile changes: reload re-reads it
    writeFileSync(hostsfile, `${topo.vm(2).mac},[::79],hosted\n`);
    await cli('reload');
    const after = JSON.parse(await cli('reservations', 'list', '--json')) as { address: string; source: string }[];
    expect(after).toContainEqual(expect.objectContaining({ address: '[::79]', source: 'hostsfile' }));
    expect(after).not.toContainEqual(expect.objectContaining({ address: '[::77]' }));
  }, 120_000);

  it('attack: a client claiming a name another guest\'s reservation or lease holds is refused (N=1), counted; DNS unchanged', async () => {
    const webAddress = (await web.addresses())[0]!;
    const mac = topo.vm(3).mac;
    attacker.write(`ASK ${mac} hosted 1`);
    const reserved = await attacker.next();
    attacker.write(`ASK ${mac} web6 2`);
    const held = await attacker.next();
    attacker.write(`ASK ${mac} free6 3`);
    const free = await attacker.next();
    // RFC 4704: N=1 (natd publishes nothing), S=0, O=1 (the client asked for S); its own label back
    expect(reserved).toMatchObject({ type: 7, fqdnFlags: 0x06, fqdnName: 'hosted' });
    expect(held).toMatchObject({ type: 7, fqdnFlags: 0x06, fqdnName: 'web6' });
    expect(free).toMatchObject({ type: 7, fqdnFlags: 0x01, fqdnName: 'free6.vm.test' });
    const mine = (await leases()).filter((l) => l.mac === mac);
    expect(mine.find((l) => l.address === reserved.address)?.hostname).toBeUndefined();
    expect(mine.find((l) => l.address === held.address)?.hostname).toBeUndefined();
    expect(mine.find((l) => l.address === free.address)?.hostname).toBe('free6');
    expect(await aaaa('web6.vm.test')).toEqual([webAddress]);
    expect(await aaaa('hosted.vm.test')).toEqual([`${PREFIX}77`]);
    const metrics = await cli('metrics');
    expect(metric(metrics, 'natd_dhcp6_names_refused_total', `{bridge="${BRIDGE}",reason="reserved"}`)).toBeGreaterThanOrEqual(1);
    expect(metric(metrics, 'natd_dhcp6_names_refused_total', `{bridge="${BRIDGE}",reason="held-v6"}`)).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('tcp:2222=web6:22 reaches the DHCPv6 guest over IPv6 from wan, and follows it to a new lease', async () => {
    const first = (await web.addresses())[0]!;
    expect(await cli('forwards', 'add', 'tcp:2222=web6:22')).toContain('added');
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2222)).toBe(`vm1 ${UPLINK6_WAN}`);
    expect(await topo.runOk(topo.host, ['nft', 'list', 'table', 'inet', `natd-${BRIDGE}`])).toContain(first);

    await web.releaseAndForget();
    await until('web6 lease released', leases, (ls) => !ls.some((l) => l.address === first));
    web.start();
    const [second] = await until('a new address for web6', () => web.addresses(), (a) => a.length > 0 && !a.includes(first), 40_000);
    expect(second).not.toBe(first);
    await until('natd lease web6 at the new address', leases, (ls) => ls.some((l) => l.address === second && l.hostname === 'web6'));
    const table = await until('the forward at the new address', () => topo.runOk(topo.host, ['nft', 'list', 'table', 'inet', `natd-${BRIDGE}`]), (t) => t.includes(second!), 10_000);
    expect(table).not.toContain(first);
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2222)).toBe(`vm1 ${UPLINK6_WAN}`);
  }, 120_000);

  it('attack: Solicit/Release churn for a forwarded name: natd stays up, nft reloads stay at about one a second', async () => {
    const mac = topo.vm(3).mac;
    attacker.write(`ASK ${mac} evil 1`);
    const evil = await attacker.next();
    expect(evil).toMatchObject({ type: 7, fqdnName: 'evil.vm.test' });
    // the Python client configures nothing: vm3 takes the leased addresses itself (the listener answers on any)
    const own = (address: string) => topo.runOk(topo.vm(3).ns, ['ip', '-6', 'addr', 'replace', `${address}/128`, 'dev', 'eth0', 'nodad']);
    await own(String(evil.address));
    expect(await cli('forwards', 'add', 'tcp:2224=evil:22')).toContain('added');
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2224)).toBe(`vm3 ${UPLINK6_WAN}`);
    const before = await cli('metrics');
    const reloadsBefore = metric(before, 'natd_ipv6_forward_reloads_total', `{bridge="${BRIDGE}",result="ok"}`) + metric(before, 'natd_ipv6_forward_reloads_total', `{bridge="${BRIDGE}",result="failed"}`);
    const requestsBefore = metric(before, 'natd_ipv6_forward_refresh_requests_total', `{bridge="${BRIDGE}",kind="all"}`);
    const started = Date.now();
    attacker.write(`CHURN ${mac} evil 600 1 ${String(evil.address)}`);
    const churn = await attacker.next();
    await sleep(2500); // the last coalesced reload
    const seconds = (Date.now() - started) / 1000;
    expect(natd.child.exitCode).toBeNull();
    const after = await cli('metrics');
    const reloads = metric(after, 'natd_ipv6_forward_reloads_total', `{bridge="${BRIDGE}",result="ok"}`) + metric(after, 'natd_ipv6_forward_reloads_total', `{bridge="${BRIDGE}",result="failed"}`) - reloadsBefore;
    const requests = metric(after, 'natd_ipv6_forward_refresh_requests_total', `{bridge="${BRIDGE}",kind="all"}`) - requestsBefore;
    console.log(`DHCPv6 churn: ${JSON.stringify(churn)}; ${requests} re-resolve requests, ${reloads} nft reloads in ${seconds.toFixed(1)} s`);
    expect(Number(churn.churned)).toBeGreaterThan(200);
    expect(requests).toBeGreaterThan(200); // every bind and release asked
    expect(reloads).toBeGreaterThanOrEqual(1);
    expect(reloads).toBeLessThanOrEqual(Math.ceil(seconds) + 2); // at most one a second
    // the forward now points at the churner's last address, and the other guest's forward still works
    const last = (await leases()).filter((l) => l.hostname === 'evil').map((l) => l.address);
    expect(last).toHaveLength(1);
    await own(last[0]!);
    await until('the forward at the churner\'s last address', () => topo.runOk(topo.host, ['nft', 'list', 'table', 'inet', `natd-${BRIDGE}`]), (t) => t.includes(last[0]!), 15_000); // a coalesced reload runs nft: slow on a loaded machine
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2224)).toBe(`vm3 ${UPLINK6_WAN}`);
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2222)).toBe(`vm1 ${UPLINK6_WAN}`);
  }, 180_000);
});

describe.skipIf(!isRoot())('IPv6 forwards by name to a SLAAC guest learnt from the neighbour table (issue 14)', () => {
  const PREFIX = 'fd96:15::';
  let topo: Topology;
  let natd: NatdHandle;
  const cli = async (...args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket], { timeoutMs: 15_000 });
  // no answer (yet: natd's IPv6 DNS binds once the gateway address has passed DAD) reads as no address, so polls go on
  const aaaa = async (name: string): Promise<string[]> => {
    const r = await topo.run(topo.vm(2).ns, ['dig', '+short', '+time=2', '+tries=2', 'AAAA', name, `@${PREFIX}1`]);
    return r.code === 0 ? r.stdout.trim().split('\n').filter(Boolean) : [];
  };
  const slaacAddresses = async (vm: Vm): Promise<string[]> => {
    const out = await topo.runOk(vm.ns, ['ip', '-j', '-6', 'addr', 'show', 'dev', 'eth0', 'scope', 'global']);
    return ((JSON.parse(out) as { addr_info?: { local?: string; tentative?: boolean }[] }[])[0]?.addr_info ?? []).flatMap((a) => (a.local?.startsWith(PREFIX) && !a.tentative ? [a.local] : []));
  };

  beforeAll(async () => {
    topo = Topology.create({ vms: 2, ipv6: true });
    natd = await startNatd(topo, ['--bridge', BRIDGE, '--subnet6', `${PREFIX}1/64`, '--domain', 'vm.test', '--dhcp-host', `${topo.vm(1).mac},10.77.0.50,slaac6`]);
    await whoami(topo, topo.vm(1), 'vm1');
  }, 60_000);
  afterAll(async () => {
    await topo?.destroy();
  });

  it('tcp:[HOST6]:2225=slaac6:22 reaches the SLAAC guest, and follows it to its new address when the old one is gone', async () => {
    const vm1 = topo.vm(1);
    const [first] = await until('a SLAAC address', () => slaacAddresses(vm1), (a) => a.length > 0, 30_000);
    // the guest talks to the host over IPv6: the neighbour table learns it (ip -6 monitor neigh)
    await topo.runOk(vm1.ns, ['ping', '-6', '-c', '2', '-I', first!, `${PREFIX}1`]);
    const learnt = await until('AAAA slaac6.vm.test', () => aaaa('slaac6.vm.test'), (a) => a.length > 0, 20_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; host neighbours: ${await topo.runOk(topo.host, ['ip', '-6', 'neigh', 'show', 'dev', BRIDGE])}; status: ${await cli('status', '--json')}`);
    });
    expect(learnt).toEqual([first]);
    expect(await cli('forwards', 'add', `tcp:[${UPLINK6_HOST}]:2225=slaac6:22`)).toContain('added');
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2225)).toBe(`vm1 ${UPLINK6_WAN}`);

    // the worst case for the move: the old address confirmed (REACHABLE) just before the guest leaves it; the
    // host's ping keeps the entry in use until the kernel's own probe confirms it
    await until('the old address REACHABLE', async () => {
      await topo.run(topo.host, ['ping', '-6', '-c', '1', '-W', '1', first!]);
      return topo.runOk(topo.host, ['ip', '-6', 'neigh', 'show', first!, 'dev', BRIDGE]);
    }, (t) => t.includes('REACHABLE'), 20_000);
    // a new address (as a new stable-privacy one), the old one gone
    const second = `${PREFIX}beef`;
    const started = Date.now();
    await topo.runOk(vm1.ns, ['sysctl', '-qw', 'net.ipv6.conf.eth0.accept_ra=0']);
    await topo.runOk(vm1.ns, ['ip', '-6', 'addr', 'add', `${second}/64`, 'dev', 'eth0', 'nodad']);
    await topo.runOk(vm1.ns, ['ip', '-6', 'addr', 'del', `${first}/64`, 'dev', 'eth0']);
    // a live guest keeps talking from its address (here: a ping a second to the gateway)
    const talker = topo.spawn(vm1.ns, ['ping', '-6', '-i', '1', '-I', second, `${PREFIX}1`]);
    // nobody uses the old address: the old entry could stay REACHABLE, then STALE, for a minute and more. natd sees
    // the new address as it appears (ip -6 monitor neigh), asks the kernel to probe the old one (nud probe: FAILED
    // in about 3 s), and the forward follows within seconds (before the monitor: 60-90 s, polled every 5 s)
    await until('the forward at the new address', () => topo.runOk(topo.host, ['nft', 'list', 'map', 'inet', `natd-${BRIDGE}`, 'fwd6_bound_addr']), (t) => t.includes(second) && !t.includes(first!), 15_000).catch(async (err: Error) => {
      throw new Error(`${err.message}; host neighbours: ${await topo.runOk(topo.host, ['ip', '-6', 'neigh', 'show', 'dev', BRIDGE])}; AAAA: ${await aaaa('slaac6.vm.test')}; status: ${await cli('status', '--json')}`);
    });
    console.log(`SLAAC forward followed the guest ${((Date.now() - started) / 1000).toFixed(1)} s after it changed its address`);
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2225)).toBe(`vm1 ${UPLINK6_WAN}`);
    // the old address failed the kernel's probe: AAAA has only the new one (not after GRACE_MS: seconds)
    expect(await until('AAAA only the new address', () => aaaa('slaac6.vm.test'), (a) => a.length === 1, 10_000)).toEqual([second]);
    const metrics = await cli('metrics');
    expect(metric(metrics, 'natd_ipv6_forward_reloads_total', `{bridge="${BRIDGE}",result="ok"}`)).toBeGreaterThanOrEqual(1);
    await topo.stop(talker, 1000);
  }, 200_000);

  it('attack: a guest spraying neighbour solicitations from 3,000 random addresses in its /64 does not make natd spin', async () => {
    type Neigh = { events: Record<string, number>; flushes: number; tracked: number; trackedEvicted: number; monitor?: { running: boolean; restarts: number }; prober?: { runs: number; dropped: number } };
    const state = async () => JSON.parse(await cli('status', '--json')) as { pid: number; dns: { ipv6: { neighbours: Neigh; guestAddresses: { addresses: number } } } };
    const reloads = async () => metric(await cli('metrics'), 'natd_ipv6_forward_reloads_total', `{bridge="${BRIDGE}",result="ok"}`);
    const cpuTicks = (pid: number) => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ').slice(11, 13).reduce((a, b) => a + Number(b), 0);
    const vm1 = topo.vm(1);
    const attacker = topo.vm(2);
    const before = await state();
    const reloadsBefore = await reloads();
    const ticksBefore = cpuTicks(before.pid);
    const started = Date.now();
    // unsolicited solicitations to the gateway, each from a new random address with the attacker's MAC: each makes
    // the host's kernel create a STALE entry (an event), then probe it (DELAY, PROBE, FAILED, Deleted: more events)
    const spray = [
      'import random',
      'from scapy.all import Ether, IPv6, ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, sendp',
      'random.seed(96)',
      `gw = "${PREFIX}1"`,
      `pkts = [Ether(src="${attacker.mac}", dst="33:33:ff:00:00:01") / IPv6(src="${PREFIX}%x:%x:%x:%x" % tuple(random.getrandbits(16) for _ in range(4)), dst="ff02::1:ff00:1", hlim=255) / ICMPv6ND_NS(tgt=gw) / ICMPv6NDOptSrcLLAddr(lladdr="${attacker.mac}") for i in range(3000)]`,
      'sendp(pkts, iface="eth0", verbose=False)',
    ].join('\n');
    await topo.runOk(attacker.ns, [SYSTEM_PYTHON, '-c', spray], { timeoutMs: 120_000 });
    const total = (e: Record<string, number>): number => Object.values(e).reduce((a, b) => a + b, 0);
    await until('the spray seen', state, (st) => total(st.dns.ipv6.neighbours.events) - total(before.dns.ipv6.neighbours.events) >= 1000, 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message.slice(0, 100)}; neighbours: ${JSON.stringify((await state()).dns.ipv6.neighbours)}; kernel entries: ${(await topo.runOk(topo.host, ['ip', '-6', 'neigh', 'show', 'dev', BRIDGE])).split('\n').length}`);
    });
    // the kernel probes the sprayed entries (the attacker does not answer): FAILED and Deleted events follow
    await sleep(10_000);
    const after = await state();
    const seconds = (Date.now() - started) / 1000;
    const n = after.dns.ipv6.neighbours;
    const events = total(n.events) - total(before.dns.ipv6.neighbours.events);
    const flushes = n.flushes - before.dns.ipv6.neighbours.flushes;
    const probeRuns = (n.prober?.runs ?? 0) - (before.dns.ipv6.neighbours.prober?.runs ?? 0);
    const reloadCount = (await reloads()) - reloadsBefore;
    const ticks = cpuTicks(after.pid) - ticksBefore;
    console.log(`neighbour spray: ${events} events in ${seconds.toFixed(1)} s -> ${flushes} table updates, ${probeRuns} probe runs, ${reloadCount} nft reloads; natd CPU ${ticks} ticks; tracked ${n.tracked} (evicted ${n.trackedEvicted})`);
    expect(events).toBeGreaterThan(1000);
    // work per event is constant; the batches, probe runs and nft reloads are bounded by the clock, not the events
    expect(flushes).toBeLessThanOrEqual(Math.ceil(seconds * 10) + 2);
    expect(probeRuns).toBeLessThanOrEqual(Math.ceil(seconds) + 2);
    expect(reloadCount).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    // caps: the attacker's pairs churn within MAX_PER_MAC, its published addresses within the per-guest cap
    expect(n.tracked).toBeLessThanOrEqual(2 + 32);
    expect(after.dns.ipv6.guestAddresses.addresses).toBeLessThanOrEqual(2 + 8);
    expect(n.monitor).toMatchObject({ running: true, restarts: 0 });
    expect(natd.child.exitCode).toBeNull();
    // the real guest's name and forward are untouched
    const talker = topo.spawn(vm1.ns, ['ping', '-6', '-i', '1', '-I', `${PREFIX}beef`, `${PREFIX}1`]);
    expect(await aaaa('slaac6.vm.test')).toEqual([`${PREFIX}beef`]);
    expect(await connect(topo, topo.wan, UPLINK6_HOST, 2225)).toBe(`vm1 ${UPLINK6_WAN}`);
    await topo.stop(talker, 1000);
  }, 200_000);

  it('the neighbour monitor: one `ip monitor` child of natd, in status, kept across a reload, gone after stop', async () => {
    const childrenOf = (pid: number): { pid: number; cmd: string }[] => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((d) => {
      try {
        const ppid = Number(readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1]!.split(' ')[1]);
        return ppid === pid ? [{ pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').join(' ').trim() }] : [];
      } catch {
        return []; // gone meanwhile
      }
    });
    const monitorOf = async () => (JSON.parse(await cli('status', '--json')) as { pid: number; dns: { ipv6: { neighbours: { monitor: { running: boolean; pid: number } } } } });
    const s = await monitorOf();
    expect(s.dns.ipv6.neighbours.monitor.running).toBe(true);
    // natd → sh (the wrapper that ends ip with natd, even on SIGKILL) → ip -6 monitor neigh dev br0
    const wrapper = s.dns.ipv6.neighbours.monitor.pid;
    expect(childrenOf(s.pid).filter((c) => c.cmd.includes('monitor neigh')).map((c) => c.pid)).toEqual([wrapper]);
    const ip = childrenOf(wrapper).filter((c) => c.cmd === `ip -6 monitor neigh dev ${BRIDGE}`).map((c) => c.pid);
    expect(ip).toHaveLength(1);
    expect(await cli('reload')).toBeTruthy();
    const r = await monitorOf();
    expect(r.dns.ipv6.neighbours.monitor.pid).toBe(wrapper); // a reload keeps the child
    expect(childrenOf(s.pid).filter((c) => c.cmd.includes('monitor neigh')).map((c) => c.pid)).toEqual([wrapper]);
    // the prober asked the kernel to re-check the old SLAAC addresses earlier in this file: its counts as metrics, at
    // least what status showed just before (counters only grow)
    const prober = (JSON.parse(await cli('status', '--json')) as { dns: { ipv6: { neighbours: { prober: { requested: number; dropped: number; runs: number; failures: number } } } } }).dns.ipv6.neighbours.prober;
    expect(prober.requested).toBeGreaterThan(0);
    expect(prober.runs).toBeGreaterThan(0);
    const metrics = await cli('metrics');
    expect(metric(metrics, 'natd_ipv6_neighbour_monitor_up', `{bridge="${BRIDGE}"}`)).toBe(1);
    expect(metric(metrics, 'natd_ipv6_neighbour_events_total', `{bridge="${BRIDGE}",kind="new"}`)).toBeGreaterThan(0);
    expect(metric(metrics, 'natd_ipv6_neighbour_probes_total', `{bridge="${BRIDGE}",result="queued"}`)).toBeGreaterThanOrEqual(prober.requested);
    expect(metric(metrics, 'natd_ipv6_neighbour_probes_total', `{bridge="${BRIDGE}",result="dropped"}`)).toBeGreaterThanOrEqual(prober.dropped);
    expect(metric(metrics, 'natd_ipv6_neighbour_probe_runs_total', `{bridge="${BRIDGE}"}`)).toBeGreaterThanOrEqual(prober.runs);
    expect(metric(metrics, 'natd_ipv6_neighbour_probe_failures_total', `{bridge="${BRIDGE}"}`)).toBeGreaterThanOrEqual(prober.failures);
    await topo.stop(natd.child, 10_000);
    expect(natd.child.exitCode ?? natd.child.signalCode).not.toBeNull();
    await until('no monitor process left', () => [wrapper, ip[0]!].filter((pid) => existsSync(`/proc/${pid}`)), (left) => left.length === 0, 15_000);
  }, 60_000);
});
