/**
 * Taking over from dnsmasq (and from a libvirt NAT network, `natd import-libvirt`): `natd import-dnsmasq` on the recipe's dnsmasq.conf + hostsfile + leases, then natd
 * started from the written config hands each VM the address dnsmasq had given it. And `natd doctor` names another
 * table's drop policy that would break the bridge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { isRoot, Topology } from '../support/netns.js';
import { NATD_CLI, runUdhcpc, startNatd, tempDir } from '../support/natd-process.js';

describe.skipIf(!isRoot() && !process.env.CI)('migration from dnsmasq and natd doctor', () => {
  let topo: Topology;
  beforeAll(() => {
    topo = Topology.create({ vms: 2 });
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  /** Starts natd from an imported config: vm1 gets its reservation, vm2 the address only the imported lease names. */
  async function expectAddressesKept(configOut: string, stateDir: string, reserved: string, leased: string): Promise<void> {
    const natd = await startNatd(topo, ['--config', configOut], { stateDir });
    const vm1 = await runUdhcpc(topo, topo.vm(1).ns);
    expect(vm1.events.find((e) => e.event === 'bound')?.ip).toBe(reserved);
    // no requested address: only the imported lease can make natd pick it for this MAC
    const vm2 = await runUdhcpc(topo, topo.vm(2).ns);
    expect(vm2.events.find((e) => e.event === 'bound')?.ip).toBe(leased);
    const web = await topo.runOk(topo.vm(2).ns, ['dig', '+short', '+time=2', '@10.77.0.1', 'web.vm']);
    expect(web.trim()).toBe(reserved);
    expect(await topo.stop(natd.child)).toBe(0);
  }

  it('imports config, reservations and leases so VMs keep their addresses', async () => {
    const dir = tempDir('natd-import-');
    const far = Math.floor(Date.now() / 1000) + 3600;
    writeFileSync(path.join(dir, 'dnsmasq.conf'), [
      'interface=br0', 'bind-interfaces', 'listen-address=10.77.0.1', 'dhcp-range=10.77.0.10,10.77.0.200,255.255.255.0,1h',
      'dhcp-hostsfile=hostsfile', 'dhcp-leasefile=leases', 'domain=vm', 'server=198.51.100.2', 'no-resolv', 'enable-dbus', '',
    ].join('\n'));
    // vm1 has a reservation; vm2 only a dnsmasq lease on an address the hash would not pick by chance
    writeFileSync(path.join(dir, 'hostsfile'), `${topo.vm(1).mac},10.77.0.5,web\n`);
    writeFileSync(path.join(dir, 'leases'), `${far} ${topo.vm(2).mac} 10.77.0.123 build-box *\n`);
    const stateDir = path.join(dir, 'state');
    const configOut = path.join(dir, 'natd.json');
    const imported = await topo.run(topo.host, [process.execPath, NATD_CLI, 'import-dnsmasq', path.join(dir, 'dnsmasq.conf'), '--state-dir', stateDir, '--config-out', configOut]);
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain('1 reservation(s)');
    expect(imported.stdout).toContain('1 lease(s)');
    expect(imported.stdout).toContain('unknown dnsmasq option "enable-dbus"');

    await expectAddressesKept(configOut, stateDir, '10.77.0.5', '10.77.0.123');
  });

  it("imports a libvirt network and its dnsmasq's leases in one command", async () => {
    const dir = tempDir('natd-import-libvirt-');
    const far = Math.floor(Date.now() / 1000) + 3600;
    writeFileSync(path.join(dir, 'net.xml'), [
      "<network><name>default</name><forward mode='nat'><nat><port start='1024' end='65535'/></nat></forward>",
      "<bridge name='br0' stp='on' delay='0'/><domain name='vm'/><dns><forwarder addr='198.51.100.2'/></dns>",
      "<ip address='10.77.0.1' netmask='255.255.255.0'><dhcp><range start='10.77.0.10' end='10.77.0.200'/>",
      `<host mac='${topo.vm(1).mac}' name='web' ip='10.77.0.6'/></dhcp></ip></network>`,
    ].join('\n'));
    writeFileSync(path.join(dir, 'br0.status'), JSON.stringify([{ 'ip-address': '10.77.0.144', 'mac-address': topo.vm(2).mac, hostname: 'build-box', 'expiry-time': far }]));
    const stateDir = path.join(dir, 'state');
    const configOut = path.join(dir, 'natd.json');
    const imported = await topo.run(topo.host, [
      process.execPath, NATD_CLI, 'import-libvirt', path.join(dir, 'net.xml'), '--state-dir', stateDir, '--config-out', configOut, '--status-file', path.join(dir, 'br0.status'),
    ]);
    expect(imported.code).toBe(0);
    expect(imported.stdout).toContain('1 reservation(s)');
    expect(imported.stdout).toContain('1 lease(s)');
    expect(imported.stdout).toContain('virsh net-destroy default');

    await expectAddressesKept(configOut, stateDir, '10.77.0.6', '10.77.0.144');
  });

  it('doctor names a drop policy in another table and exits non-zero', async () => {
    const rules = path.join(tempDir('natd-doctor-'), 'fw.nft');
    writeFileSync(rules, 'table inet fw {\n chain input {\n  type filter hook input priority 0; policy drop;\n }\n}\n');
    await topo.runOk(topo.host, ['nft', '-f', rules]);
    const r = await topo.run(topo.host, [process.execPath, NATD_CLI, 'doctor', '--bridge', 'br0']);
    expect(r.code).not.toBe(0);
    expect(r.stdout).toMatch(/ERROR\s+inet fw: chain input .*policy drop/);
    expect(r.stdout).toContain('iifname "br0" accept');
    await topo.runOk(topo.host, ['nft', 'delete', 'table', 'inet', 'fw']);
    const clean = await topo.run(topo.host, [process.execPath, NATD_CLI, 'doctor', '--bridge', 'br0']);
    expect(clean.stdout).not.toContain('ERROR');
    expect(clean.code).toBe(0);
  });
});
