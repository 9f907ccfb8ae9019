/**
 * Issue 3, persistence: nothing acknowledged is ever lost. Simulated clients keep leasing and re-confirming while
 * natd is killed with SIGKILL at random moments and restarted on the same state dir; after each restart every
 * lease a client saw ACKed must be served back (control socket `leases --json`) with the same client and address.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { startDhcpSim, type DhcpSim } from '../support/dhcp-sim.js';
import { setTimeout as sleep } from 'node:timers/promises';

const needsRoot = !isRoot() && !process.env.CI;
const KILLS = 5;
const CLIENTS = 40;
const NATD_ARGS = ['--bridge', 'br0', '--no-dns', '--no-firewall', '--dhcp-range', '10.77.0.10-10.77.0.250'];

interface LeaseRow {
  address: string;
  mac: string;
  clientId: string;
}

async function leasesOf(topo: Topology, natd: NatdHandle): Promise<LeaseRow[]> {
  const out = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'leases', '--control-socket', natd.controlSocket, '--json']);
  return JSON.parse(out) as LeaseRow[];
}


describe.skipIf(needsRoot)('DHCP leases survive kill -9 under load', () => {
  let topo: Topology;
  let sim: DhcpSim;
  const stateDir = tempDir('natd-crash-');

  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
  });

  afterAll(async () => {
    await sim?.stop();
    await topo?.destroy();
  });

  it(`loses no ACKed lease across ${KILLS} SIGKILLs`, async () => {
    let natd = await startNatd(topo, NATD_ARGS, { stateDir });
    sim = await startDhcpSim(topo, topo.vm(1).ns, { clients: CLIENTS });
    const figures = { kills: 0, checks: 0, leasesChecked: 0, losses: [] as string[] };

    for (let round = 0; round < KILLS; round++) {
      // let load run a random while (long enough for new ACKs each round), then kill mid-flight
      const before = sim.counts().acks;
      const deadline = Date.now() + 15_000;
      while (sim.counts().acks < before + 10 && Date.now() < deadline) await sleep(50);
      await sleep(Math.floor(Math.random() * 700));
      const exited = new Promise((resolve) => natd.child.once('exit', resolve));
      natd.child.kill('SIGKILL');
      await exited;
      figures.kills++;
      await sleep(150); // ACKs already on the wire reach the clients' log

      const promised = sim.acked();
      natd = await startNatd(topo, NATD_ARGS, { stateDir });
      const served = new Map((await leasesOf(topo, natd)).map((l) => [l.mac, l]));
      for (const [mac, address] of promised) {
        figures.leasesChecked++;
        const lease = served.get(mac);
        if (lease?.address !== address || lease.clientId !== `01${mac.replaceAll(':', '')}`) {
          figures.losses.push(`${mac} ${address} -> ${lease ? `${lease.address} ${lease.clientId}` : 'missing'}`);
        }
      }
      figures.checks++;
    }
    const totals = sim.counts();
    console.log(`kill -9 figures: kills=${figures.kills} leases checked=${figures.leasesChecked} (over ${figures.checks} restarts, ` +
      `${sim.acked().size} clients, ${totals.acks} ACKs, ${totals.naks} NAKs seen) losses=${figures.losses.length}`);
    expect(figures.kills).toBe(KILLS);
    expect(sim.acked().size).toBeGreaterThan(CLIENTS / 2);
    expect(figures.losses).toEqual([]);
    await topo.stop(natd.child, 5000);
  }, 120_000);
});
