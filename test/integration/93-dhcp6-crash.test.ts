/**
 * issue 14, persistence for DHCPv6 (test 31's kill -9 test, for v6): the DHCPv6 load generator
 * (test/support/dhcp6-load.mjs, 16 exchanges in flight, a new DUID per exchange) keeps binding addresses while
 * natd is killed with SIGKILL at random moments and restarted on the same state dir. The generator logs every
 * Reply that bound an address the moment it arrives; after each restart every one of them must be in natd's lease
 * table (`leases --json`) with the same DUID and address: a Reply is only sent once its binding is journaled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { BRIDGE, isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { SUPPORT } from '../support/paths.js';

const KILLS = 4;
const NATD_ARGS = ['--bridge', BRIDGE, '--no-dns', '--no-firewall', '--subnet6', 'fd77:93::1/64', '--dhcp6-range', 'fd77:93::100-fd77:93::ffff'];

interface LeaseRow {
  address: string;
  clientId: string;
}

describe.skipIf(!isRoot())('DHCPv6 bindings survive kill -9 under load (issue 14)', () => {
  let topo: Topology;
  let load: ChildProcess | undefined;
  const stateDir = tempDir('natd-crash6-');
  const replies = path.join(tempDir('dhcp6-replies-'), 'replies.log');

  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
  });

  afterAll(async () => {
    if (load) await topo.stop(load, 2000);
    await topo?.destroy();
  });

  const promised = (): Map<string, string> => {
    const out = new Map<string, string>(); // duid -> address (each DUID binds once: one exchange per DUID)
    if (!existsSync(replies)) return out;
    for (const line of readFileSync(replies, 'utf8').split('\n')) {
      const [kind, duid, address] = line.split(' ');
      if (kind === 'reply' && duid && address) out.set(duid, address);
    }
    return out;
  };

  it(`loses no replied DHCPv6 binding across ${KILLS} SIGKILLs`, async () => {
    let natd: NatdHandle = await startNatd(topo, NATD_ARGS, { stateDir });
    await sleep(2000); // the vm's link-local address leaves DAD
    load = topo.spawn(topo.vm(1).ns, [process.execPath, path.join(SUPPORT, 'dhcp6-load.mjs'), '--device', 'eth0', '--sources', '8',
      '--concurrency', '16', '--count', '1000000', '--max-ms', '90000', '--timeout-ms', '1500', '--log', replies]);
    load.stdout!.resume();
    let stderr = '';
    load.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const figures = { kills: 0, checked: 0, losses: [] as string[] };

    for (let round = 0; round < KILLS; round++) {
      const before = promised().size;
      const deadline = Date.now() + 20_000;
      while (promised().size < before + 20 && Date.now() < deadline) await sleep(50);
      expect(promised().size, `no new Replies in round ${round}: ${stderr}`).toBeGreaterThan(before);
      await sleep(Math.floor(Math.random() * 500));
      const exited = new Promise((resolve) => natd.child.once('exit', resolve));
      natd.child.kill('SIGKILL');
      await exited;
      figures.kills++;
      await sleep(200); // Replies already on the wire reach the generator's log

      const seen = promised();
      natd = await startNatd(topo, NATD_ARGS, { stateDir });
      const out = await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'leases', '--json', '--control-socket', natd.controlSocket]);
      const served = new Map((JSON.parse(out) as LeaseRow[]).filter((l) => l.address.includes(':')).map((l) => [l.clientId, l.address]));
      for (const [duid, address] of seen) {
        figures.checked++;
        if (served.get(duid) !== address) figures.losses.push(`${duid} ${address} -> ${served.get(duid) ?? 'missing'}`);
      }
    }
    console.log(`DHCPv6 kill -9 figures: kills=${figures.kills} bindings checked=${figures.checked} (${promised().size} Replies seen) losses=${figures.losses.length}`);
    expect(figures.kills).toBe(KILLS);
    expect(promised().size).toBeGreaterThan(KILLS * 20);
    expect(figures.losses.slice(0, 20)).toEqual([]);
    await topo.stop(load, 2000);
    load = undefined;
    await topo.stop(natd.child, 5000);
  }, 180_000);
});
