/**
 * Real traffic through natd's table (namespaces only): masquerade with source ports >= 1024, port forwards on any
 * local address and on one host address, hairpin, the host's own access, rejection of traffic routed straight to a
 * guest, and a forward added at runtime. Listeners are socat processes that answer with the peer they saw.
 * Guest addresses are static here (no DHCP server in this test).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCidr } from '../../src/net/ipv4.js';
import { applyAndVerify, applyBatch } from '../../src/nft/apply.js';
import type { NftOptions } from '../../src/nft/runner.js';
import { buildForwardChange, type PortForward, type RulesetInput } from '../../src/nft/ruleset.js';
import { BRIDGE, GATEWAY, isRoot, SUBNET, Topology, UPLINK_HOST, UPLINK_WAN } from '../support/netns.js';
import { ip } from '../support/addresses.js';
import { waitForListener } from '../support/natd-process.js';
import { tableNameFor } from '../../src/defaults.js';

const NFT = '/usr/sbin/nft';
const VM1 = '10.77.0.50';
const VM2 = '10.77.0.51';

describe.skipIf(!isRoot())('traffic through the nft table', () => {
  let topo: Topology;
  let host: NftOptions;
  let input: RulesetInput;
  const sshForward: PortForward = { protocol: 'tcp', hostPort: 2222, guestAddress: ip(VM1), guestPort: 22 };
  const boundForward: PortForward = { protocol: 'tcp', hostAddress: ip(UPLINK_HOST), hostPort: 8080, guestAddress: ip(VM2), guestPort: 80 };

  /** A TCP listener that writes back "PEERADDR PEERPORT" of each connection. */
  async function echoPeer(ns: string, port: number): Promise<void> {
    topo.spawn(ns, ['socat', `TCP-LISTEN:${port},reuseaddr,fork`, 'SYSTEM:echo $SOCAT_PEERADDR $SOCAT_PEERPORT']);
    await waitForListener(topo, ns, port);
  }

  /** Connects, returns what the listener wrote ("addr port") or the error text. */
  async function connect(ns: string, target: string, options = ''): Promise<{ ok: boolean; text: string }> {
    const r = await topo.run(ns, ['socat', '-t', '2', '-', `TCP:${target},connect-timeout=3${options}`], { input: '', timeoutMs: 8000 });
    return { ok: r.code === 0, text: (r.code === 0 ? r.stdout : r.stderr).trim() };
  }

  beforeAll(async () => {
    topo = Topology.create({ vms: 2 });
    host = { nft: NFT, exec: (bin, args) => topo.run(topo.host, [bin, ...args]) };
    for (const [vm, address] of [[topo.vm(1), VM1], [topo.vm(2), VM2]] as const) {
      await topo.runOk(vm.ns, ['ip', 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      await topo.runOk(vm.ns, ['ip', 'route', 'add', 'default', 'via', GATEWAY]);
    }
    await topo.runOk(topo.host, ['sysctl', '-w', 'net.ipv4.ip_forward=1']);
    const { address, subnet } = parseCidr(`${GATEWAY}/${SUBNET.split('/')[1]}`)!;
    input = { table: tableNameFor(BRIDGE), bridge: BRIDGE, subnet, gateway: address, forwards: [sshForward, boundForward] };
    await applyAndVerify(input, host);
    await echoPeer(topo.wan, 7000);
    await echoPeer(topo.vm(1).ns, 22);
    await echoPeer(topo.vm(2).ns, 80);
  });

  afterAll(async () => {
    await topo?.destroy();
  });

  it('vm → wan arrives from the uplink address with a source port >= 1024, even from a low port', async () => {
    const r = await connect(topo.vm(1).ns, `${UPLINK_WAN}:7000`, ',sourceport=700');
    expect(r.ok, r.text).toBe(true);
    const [addr, port] = r.text.split(' ');
    expect(addr).toBe(UPLINK_HOST);
    expect(Number(port)).toBeGreaterThanOrEqual(1024);
    // ICMP is masqueraded too
    expect((await topo.run(topo.vm(1).ns, ['ping', '-c', '1', '-W', '2', UPLINK_WAN])).code).toBe(0);
  });

  it('wan → host port forwards reach the guests, which see the real client address', async () => {
    const any = await connect(topo.wan, `${UPLINK_HOST}:2222`);
    expect(any.ok, any.text).toBe(true);
    expect(any.text.split(' ')[0]).toBe(UPLINK_WAN);
    const bound = await connect(topo.wan, `${UPLINK_HOST}:8080`);
    expect(bound.ok, bound.text).toBe(true);
    expect(bound.text.split(' ')[0]).toBe(UPLINK_WAN);
  });

  it('traffic routed straight to a guest address is rejected, and a non-forwarded port reaches no guest', async () => {
    await topo.runOk(topo.wan, ['ip', 'route', 'replace', SUBNET, 'via', UPLINK_HOST]);
    try {
      const direct = await connect(topo.wan, `${VM1}:22`);
      expect(direct.ok).toBe(false);
      expect(direct.text).toMatch(/Connection refused/); // rejected with ICMP port unreachable, not dropped
    } finally {
      await topo.runOk(topo.wan, ['ip', 'route', 'del', SUBNET]);
    }
    const unforwarded = await connect(topo.wan, `${UPLINK_HOST}:22`);
    expect(unforwarded.ok).toBe(false);
  });

  it('hairpin: a guest reaching a forward on the host address lands on the other guest, via the gateway', async () => {
    const r = await connect(topo.vm(2).ns, `${UPLINK_HOST}:2222`);
    expect(r.ok, r.text).toBe(true);
    expect(r.text.split(' ')[0]).toBe(GATEWAY);
  });

  it('the host reaches its own forwarded ports', async () => {
    const r = await connect(topo.host, `${UPLINK_HOST}:2222`);
    expect(r.ok, r.text).toBe(true);
    expect(r.text.split(' ')[0]).toBe(UPLINK_HOST);
  });

  it('a forward added at runtime works at once and stops when removed', async () => {
    const extra: PortForward = { protocol: 'tcp', hostPort: 3333, guestAddress: ip(VM2), guestPort: 80 };
    expect((await connect(topo.wan, `${UPLINK_HOST}:3333`)).ok).toBe(false);
    await applyBatch(buildForwardChange(input, [extra], []), host);
    const r = await connect(topo.wan, `${UPLINK_HOST}:3333`);
    expect(r.ok, r.text).toBe(true);
    expect(r.text.split(' ')[0]).toBe(UPLINK_WAN);
    await applyBatch(buildForwardChange(input, [], [extra]), host);
    expect((await connect(topo.wan, `${UPLINK_HOST}:3333`)).ok).toBe(false);
  });
});
