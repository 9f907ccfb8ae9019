/**
 * The product's "QEMU guests": QEMU machines on tap ports of the bridge, wired as libvirt wires a VM, get their lease
 * from natd. Their DHCP client is the NIC's iPXE boot ROM (QEMU's own firmware, so no guest image is needed), for the
 * two NIC models libvirt uses most: virtio-net and e1000; the e1000 one has a reservation. Evidence: what iPXE prints
 * on the serial console, natd's lease table and a capture on the bridge.
 * TCG, not KVM: under this machine's (nested) KVM iPXE stalled at its Ctrl-B prompt, and TCG needs nothing from the
 * host. -nographic makes SeaBIOS and iPXE print to the serial port, which goes to a file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BRIDGE, GATEWAY, isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { readCapture, startCapture } from '../support/dhcp-sim.js';
import { QemuGuest } from '../support/qemu.js';

const needsRoot = !isRoot() && !process.env.CI;

const GUESTS = [
  { model: 'virtio-net-pci', mac: '52:54:00:51:00:01', tap: 'qtap1' },
  { model: 'e1000', mac: '52:54:00:51:00:02', tap: 'qtap2', reserved: '10.77.0.230' },
] as const;

interface LeaseRow {
  address: string;
  mac: string;
  hostname?: string;
}

describe.skipIf(needsRoot)('QEMU guests (iPXE over virtio-net and e1000 on tap ports)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let capture: { file: string; child: ChildProcess };
  const guests: QemuGuest[] = [];

  beforeAll(async () => {
    topo = Topology.create({ vms: 0 });
    const hostsfile = path.join(tempDir('natd-hosts-'), 'hosts');
    const e1000 = GUESTS[1];
    writeFileSync(hostsfile, `${e1000.mac},${e1000.reserved},pxe-e1000\n`);
    capture = await startCapture(topo, topo.host, BRIDGE);
    natd = await startNatd(topo, ['--bridge', BRIDGE, '--no-dns', '--no-firewall', '--hostsfile', hostsfile]);
    for (const g of GUESTS) guests.push(new QemuGuest(topo, g));
  });

  afterAll(async () => {
    for (const g of guests) await g.stop().catch(() => undefined);
    await topo?.destroy();
  });

  it('each guest is configured by natd: address, mask and gateway on its console, the lease in natd, DORA on the bridge', async () => {
    await Promise.all(guests.map((g) => g.start()));
    const configured = await Promise.all(guests.map((g) => g.configuredAddress(90_000)));
    const leases = JSON.parse(await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'leases', '--control-socket', natd.controlSocket, '--json'])) as LeaseRow[];
    const packets = await readCapture(topo, topo.host, capture.file);
    const seen: string[] = [];
    for (const [i, g] of guests.entries()) {
      const { address, mask, gateway } = configured[i]!;
      expect({ mask, gateway }).toEqual({ mask: '255.255.255.0', gateway: GATEWAY });
      const lease = leases.find((l) => l.mac === g.guest.mac);
      expect(lease?.address).toBe(address);
      if ('reserved' in g.guest) expect({ address, hostname: lease?.hostname }).toEqual({ address: g.guest.reserved, hostname: 'pxe-e1000' });
      else expect(Number(address.split('.')[3])).toBeGreaterThanOrEqual(10);
      const types = packets.filter((p) => p.mac === g.guest.mac).map((p) => p.type);
      expect(types).toEqual(expect.arrayContaining(['Discover', 'Offer', 'Request', 'ACK']));
      seen.push(`${g.guest.model}: ${address}${'reserved' in g.guest ? ' (reserved)' : ''}`);
    }
    console.log(`QEMU guests configured by natd: ${seen.join(', ')}`);
  }, 120_000);
});
