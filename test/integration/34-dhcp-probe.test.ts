/**
 * Issue 13: the conflict probe before an OFFER is an ARP request from the addon. Hosts in vm2/vm3 hold addresses of
 * the range statically and ignore ICMP echo (net.ipv4.icmp_echo_ignore_all=1 in their own namespaces), so only ARP
 * can find them. 200 simulated clients then send their DISCOVERs at once into a range with exactly enough free
 * addresses: every free address is handed out, so each held one is a candidate many times over, and natd must
 * never offer it, however many probes are outstanding. A DECLINE is still verified by a fresh probe.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { isRoot, Topology } from '../support/netns.js';
import { FIXTURES, NATD_CLI, startNatd, type NatdHandle } from '../support/natd-process.js';
import { readCapture, startCapture, startDhcpSim } from '../support/dhcp-sim.js';

const needsRoot = !isRoot() && !process.env.CI;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ATTACK = path.join(FIXTURES, 'dhcp-attack.py');
const PYTHON = '/usr/bin/python3';
const CLIENTS = 200;
/** held statically by hosts that answer ARP but not ping */
const HELD = { 2: ['10.77.0.40', '10.77.0.90', '10.77.0.140'], 3: ['10.77.0.60', '10.77.0.200'] } as const;
const HELD_ALL: string[] = [...HELD[2], ...HELD[3]];
/** 207 addresses: 200 clients, 5 held, the DECLINE test's quarantined one and a spare */
const RANGE = '10.77.0.10-10.77.0.216';

describe.skipIf(needsRoot)('DHCP conflict probe by ARP', () => {
  let topo: Topology;
  let natd: NatdHandle;

  const cli = (args: string[]) => topo.runOk(topo.host, [process.execPath, NATD_CLI, ...args, '--control-socket', natd.controlSocket]);
  const leases = async () => JSON.parse(await cli(['leases', '--json'])) as { address: string; mac: string; state?: string; expiresAt: number }[];
  const attack = async (ns: string, args: string[]): Promise<Record<string, unknown>> =>
    JSON.parse((await topo.runOk(ns, [PYTHON, ATTACK, ...args], { timeoutMs: 60_000 })).trim().split('\n').pop()!) as Record<string, unknown>;
  const holdSilently = async (vm: number, addresses: readonly string[]) => {
    const ns = topo.vm(vm).ns;
    await topo.runOk(ns, ['sysctl', '-q', '-w', 'net.ipv4.icmp_echo_ignore_all=1']);
    for (const a of addresses) await topo.runOk(ns, ['ip', 'addr', 'add', `${a}/24`, 'dev', 'eth0']);
  };

  beforeAll(async () => {
    topo = Topology.create({ vms: 4 });
    await holdSilently(2, HELD[2]);
    await holdSilently(3, HELD[3]);
    natd = await startNatd(topo, ['--bridge', 'br0', '--no-dns', '--no-firewall', '--dhcp-range', RANGE]);
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('the held addresses really ignore ping (only ARP can find them)', async () => {
    const ping = await topo.run(topo.host, ['ping', '-n', '-c', '1', '-W', '1', HELD[2][0]]);
    expect(ping.code).not.toBe(0);
  });

  it('verifies a DECLINE by a fresh probe: quarantined when a host answers ARP there, not when nobody does', async () => {
    const leaseFor = async (mac: string) => {
      const got = (await attack(topo.vm(1).ns, ['lease', '--mac', mac])) as { address?: string; server?: string };
      expect(got.address).toMatch(/^10\.77\.0\.\d+$/);
      expect(HELD_ALL).not.toContain(got.address);
      return got as { address: string; server: string };
    };
    const decline = (mac: string, got: { address: string; server: string }) =>
      attack(topo.vm(1).ns, ['decline-one', '--mac', mac, '--address', got.address, '--server', got.server]);
    const quarantinedWithin = async (address: string, ms: number) => {
      const deadline = Date.now() + ms;
      while (Date.now() < deadline) {
        await sleep(300);
        if ((await leases()).some((l) => l.address === address && l.state === 'declined')) return true;
      }
      return false;
    };
    // nobody else uses the first address: its DECLINE is not trusted
    const free = await leaseFor('02:34:00:00:00:01');
    await decline('02:34:00:00:00:01', free);
    const freeQuarantined = await quarantinedWithin(free.address, 1500);
    // vm4 takes the second one (answering ARP, ignoring ping) before its client declines it: confirmed
    const taken = await leaseFor('02:34:00:00:00:02');
    await holdSilently(4, [taken.address]);
    await decline('02:34:00:00:00:02', taken);
    const takenQuarantined = await quarantinedWithin(taken.address, 10_000);
    console.log(`DECLINE verification: ${free.address} (nobody there) ${freeQuarantined ? 'quarantined' : 'not quarantined'}; ` +
      `${taken.address} (vm4 answers ARP) ${takenQuarantined ? 'quarantined' : 'NOT quarantined'}`);
    expect(freeQuarantined).toBe(false);
    expect(takenQuarantined).toBe(true);
  }, 90_000);

  it(`never offers an address that answers ARP, even to ${CLIENTS} clients whose DISCOVERs arrive at once`, async () => {
    const capture = await startCapture(topo, topo.host, 'br0');
    const sim = await startDhcpSim(topo, topo.vm(1).ns, { clients: CLIENTS, staggerMs: 0, reconfirmMs: 600_000, macPrefix: '02:34' });
    const started = Date.now();
    try {
      const deadline = started + 60_000;
      while (sim.acked().size < CLIENTS && Date.now() < deadline) await sleep(200);
    } finally {
      await sim.stop();
      await sleep(300);
      await topo.stop(capture.child);
    }
    const acked = sim.acked();
    const offers = (await readCapture(topo, topo.host, capture.file)).filter((p) => p.op === 'reply' && p.type === 'Offer');
    const offeredHeld = offers.filter((p) => p.yiaddr && HELD_ALL.includes(p.yiaddr)).map((p) => p.yiaddr);
    const ackedHeld = [...acked.values()].filter((a) => HELD_ALL.includes(a));
    const metrics = await cli(['metrics']);
    const probeLines = metrics.split('\n').filter((l) => /^natd_(dhcp_probes|socket_kernel_drops|dhcp_dropped)/.test(l));
    console.log(`burst of ${CLIENTS}: ${acked.size} leased in ${((Date.now() - started) / 1000).toFixed(1)} s; ${offers.length} OFFERs seen, ` +
      `held addresses offered ${JSON.stringify(offeredHeld)}, ACKed ${JSON.stringify(ackedHeld)}; ${probeLines.join('; ')}`);
    expect(offers.length).toBeGreaterThan(CLIENTS / 2); // the capture worked (tcpdump may miss a few in a burst)
    expect(offeredHeld).toEqual([]);
    expect(ackedHeld).toEqual([]);
    expect((await leases()).filter((l) => HELD_ALL.includes(l.address) && l.state !== 'declined')).toEqual([]);
    expect(acked.size).toBe(CLIENTS);
    expect(metrics).toMatch(/natd_dhcp_probes_total\{bridge="br0",result="in-use"\} [1-9]/);
    expect(metrics).toMatch(/natd_socket_kernel_drops_total\{bridge="br0",socket="dhcp"\} 0/);
  }, 120_000);
});
