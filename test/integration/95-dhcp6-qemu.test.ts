/**
 * issue 14: a QEMU guest (the NIC's iPXE boot ROM, as test 33) gets its IPv6 address from natd: iPXE sees natd's RA
 * (M=1 O=1, stateful) and runs DHCPv6 (Solicit/Advertise/Request/Reply for an IA_NA). Evidence: the address iPXE
 * prints on its serial console is in natd's range and in natd's lease table.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BRIDGE, isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, startNatd, type NatdHandle } from '../support/natd-process.js';
import { QemuGuest } from '../support/qemu.js';

const PREFIX = 'fd77:94::';

describe.skipIf(!isRoot())('QEMU guest gets its IPv6 address by DHCPv6 (iPXE, issue 14)', () => {
  let topo: Topology;
  let natd: NatdHandle;
  let guest: QemuGuest;

  beforeAll(async () => {
    topo = Topology.create({ vms: 0 });
    natd = await startNatd(topo, ['--bridge', BRIDGE, '--no-dns', '--no-firewall', '--subnet6', `${PREFIX}1/64`, '--dhcp6-range', `${PREFIX}100-${PREFIX}1ff`]);
    guest = new QemuGuest(topo, { model: 'virtio-net-pci', mac: '52:54:00:94:00:01', tap: 'q6tap1' });
  });

  afterAll(async () => {
    await guest?.stop().catch(() => undefined);
    await topo?.destroy();
  });

  it('iPXE configures an address from the range, and natd has the lease', async () => {
    await guest.start();
    const m = await guest.waitFor(new RegExp(`net0: (${PREFIX.slice(0, -1).replace(/:/g, ':')}[0-9a-f:]+)/`), 120_000);
    const address = m[1]!;
    const last = parseInt(address.split(':').at(-1)!, 16);
    expect(last).toBeGreaterThanOrEqual(0x100);
    expect(last).toBeLessThanOrEqual(0x1ff);
    const leases = JSON.parse(await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'leases', '--json', '--control-socket', natd.controlSocket])) as { address: string; clientId: string }[];
    expect(leases.find((l) => l.address === address)).toBeDefined();
    console.log(`QEMU iPXE guest configured by DHCPv6: ${address}`);
  }, 150_000);
});
