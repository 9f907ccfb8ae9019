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
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BRIDGE, GATEWAY, isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, startNatd, tempDir, type NatdHandle } from '../support/natd-process.js';
import { readCapture, startCapture } from '../support/dhcp-sim.js';
import { setTimeout as sleep } from 'node:timers/promises';

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

/** A QEMU machine booting from its NIC, its serial console written to a file. */
class QemuGuest {
  private readonly serial = path.join(tempDir('qemu-'), 'serial.txt');
  private child: ChildProcess | undefined;

  constructor(private readonly topo: Topology, readonly guest: (typeof GUESTS)[number]) {}

  async start(): Promise<void> {
    const { tap, model, mac } = this.guest;
    await this.topo.runOk(this.topo.host, ['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
    await this.topo.runOk(this.topo.host, ['ip', 'link', 'set', tap, 'master', BRIDGE, 'up']);
    this.child = this.topo.spawn(this.topo.host, [
      'qemu-system-x86_64', '-accel', 'tcg', '-m', '64', '-nodefaults', '-nographic', '-serial', `file:${this.serial}`, '-boot', 'n',
      '-netdev', `tap,id=n0,ifname=${tap},script=no,downscript=no`, '-device', `${model},netdev=n0,mac=${mac}`,
    ]);
    this.child.stdout!.resume();
    this.child.stderr!.resume();
  }

  /** What the console showed so far, without terminal escapes. */
  get console(): string {
    try {
      return readFileSync(this.serial, 'latin1').replace(/\x1b\[[0-9;?]*[a-zA-Z]|\r/g, '');
    } catch {
      return '';
    }
  }

  /** The address iPXE configured, from its "net0: ADDR/MASK gw GATEWAY" line. */
  async configuredAddress(timeoutMs: number): Promise<{ address: string; mask: string; gateway: string }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = /net0: (\d+\.\d+\.\d+\.\d+)\/(\d+\.\d+\.\d+\.\d+) gw (\d+\.\d+\.\d+\.\d+)/.exec(this.console);
      if (m) return { address: m[1]!, mask: m[2]!, gateway: m[3]! };
      if (Date.now() > deadline) throw new Error(`${this.guest.model}: no address within ${timeoutMs} ms; console:\n${this.console.slice(-800)}`);
      await sleep(250);
    }
  }

  async stop(): Promise<void> {
    if (this.child) await this.topo.stop(this.child, 2000);
  }
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
