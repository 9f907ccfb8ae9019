/**
 * The end-to-end path of issue 2, with real tools in namespaces: udhcpc leases, dig through natd's DNS, TCP through
 * the NAT, and no DHCP answer on a non-bridge interface.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GATEWAY, isRoot, Topology, UPLINK_HOST, UPLINK_WAN } from '../support/netns.js';
import { runUdhcpc, startNatd, tempDir, waitForListener, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';
import { STATE_FILES } from '../../src/defaults.js';

const needsRoot = !isRoot() && !process.env.CI;

describe.skipIf(needsRoot)('natd end to end in namespaces', () => {
  let topo: Topology;
  let natd: NatdHandle;

  beforeAll(async () => {
    topo = Topology.create({ vms: 2, outsider: true });
    await startFakeUpstreamIn(topo);
    const hosts = path.join(tempDir('natd-hosts-'), 'hosts');
    writeFileSync(hosts, '# static names\n10.77.0.99 printer printer.lan\n');
    natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--domain', 'vm', '--addn-hosts', hosts,
      '--route', '192.168.50.0/24=10.77.0.2', '--search-domain', 'vm', '--search-domain', 'example.test']);
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('gives a udhcpc client in a vm a lease with router, DNS, mask and lease time', async () => {
    const r = await runUdhcpc(topo, topo.vm(1).ns, ['-x', 'hostname:alpha', '-O', 'staticroutes', '-O', 'search']);
    expect(r.code).toBe(0);
    const bound = r.events.find((e) => e.event === 'bound');
    expect(bound).toBeDefined();
    expect(bound!.ip).toMatch(/^10\.77\.0\.\d+$/);
    expect(bound!.router).toBe(GATEWAY);
    expect(bound!.dns).toBe(GATEWAY);
    expect(bound!.mask).toBe('24');
    expect(Number(bound!.lease)).toBe(3600);
    expect(bound!.serverid).toBe(GATEWAY);
    expect(bound!.domain).toBe('vm');
    // option 121 carries the configured route and, per RFC 3442, the default route too; option 119 the search list
    expect(bound!.staticroutes).toBe(`192.168.50.0/24,10.77.0.2,0.0.0.0/0,${GATEWAY}`);
    expect(bound!.search).toBe('vm,example.test');
    // the address is really configured in the vm
    const addr = await topo.runOk(topo.vm(1).ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']);
    expect(addr).toContain(bound!.ip);
    // written to the state dir before the ACK was sent
    const journal = readFileSync(path.join(natd.stateDir, STATE_FILES.journal), 'utf8');
    expect(journal).toContain(bound!.ip);
    expect(journal).toContain(topo.vm(1).mac);
  });

  it('gives a second vm a different address', async () => {
    const first = (await topo.runOk(topo.vm(1).ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']));
    const r = await runUdhcpc(topo, topo.vm(2).ns, ['-x', 'hostname:beta']);
    expect(r.code).toBe(0);
    const bound = r.events.find((e) => e.event === 'bound')!;
    expect(bound.ip).toMatch(/^10\.77\.0\.\d+$/);
    expect(first).not.toContain(`"${bound.ip}"`);
  });

  it('does not answer a client on a host interface that is not the bridge', async () => {
    const r = await runUdhcpc(topo, topo.outsider!, ['-t', '4'], 15_000); // natd answers within milliseconds when it answers
    expect(r.code).not.toBe(0);
    expect(r.events.some((e) => e.event === 'bound')).toBe(false);
  });

  it('resolves an upstream name and the first vm\'s hostname with dig from a vm', async () => {
    const upstreamName = await topo.runOk(topo.vm(2).ns, ['dig', '+short', '+time=5', '+tries=1', `@${GATEWAY}`, 'www.example.test', 'A']);
    expect(upstreamName.trim()).toMatch(/^203\.0\.113\.\d+$/);
    const vm1Addr = JSON.parse(await topo.runOk(topo.vm(1).ns, ['ip', '-j', '-4', 'addr', 'show', 'dev', 'eth0']))[0].addr_info[0].local as string;
    const local = await topo.runOk(topo.vm(2).ns, ['dig', '+short', '+time=5', '+tries=1', `@${GATEWAY}`, 'alpha', 'A']);
    expect(local.trim()).toBe(vm1Addr);
    const qualified = await topo.runOk(topo.vm(2).ns, ['dig', '+short', '+time=5', '+tries=1', `@${GATEWAY}`, 'alpha.vm', 'A']);
    expect(qualified.trim()).toBe(vm1Addr);
    const fromHostsFile = await topo.runOk(topo.vm(2).ns, ['dig', '+short', '+time=5', '+tries=1', `@${GATEWAY}`, 'printer.lan', 'A']);
    expect(fromHostsFile.trim()).toBe('10.77.0.99');
  });

  it('masquerades a TCP connection from a vm to the wan with the host uplink address', async () => {
    const server = topo.spawn(topo.wan, ['socat', 'TCP-LISTEN:8080,reuseaddr,fork', 'SYSTEM:echo peer=$SOCAT_PEERADDR port=$SOCAT_PEERPORT']);
    await waitForListener(topo, topo.wan, 8080);
    // -t: after our (empty) stdin ends, keep reading the server's line for up to 3 s
    const out = await topo.runOk(topo.vm(1).ns, ['socat', '-t', '3', '-T', '5', '-', `TCP:${UPLINK_WAN}:8080,connect-timeout=5`], { input: '' });
    const m = /peer=([\d.]+) port=(\d+)/.exec(out);
    expect(m).not.toBeNull();
    expect(m![1]).toBe(UPLINK_HOST);
    expect(Number(m![2])).toBeGreaterThanOrEqual(1024);
    await topo.stop(server);
  });

  it('removes its nftables table on SIGTERM and exits 0', async () => {
    const before = await topo.runOk(topo.host, ['nft', '-j', 'list', 'tables']);
    expect(before).toContain('natd');
    const code = await topo.stop(natd.child, 5000);
    expect(code).toBe(0);
    const after = await topo.runOk(topo.host, ['nft', '-j', 'list', 'tables']);
    expect(after).not.toContain('natd');
    expect(existsSync(natd.controlSocket)).toBe(false);
  });
});
