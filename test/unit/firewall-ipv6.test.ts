/**
 * issue 14: the firewall component with IPv6: forwards over IPv6 at start, at runtime (element batches on the fwd6
 * maps only) and in the listing; a name forward served in both families; the egress mode switched by reload; IPv6
 * forwards refused when natd serves no IPv6. Fake nft and in-memory store, as firewall.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import type { BridgeInfo } from '../../src/net/bridge.js';
import { makeSubnet, parseIpv4 } from '../../src/net/ipv4.js';
import { Firewall } from '../../src/nft/firewall.js';
import type { ForwardsStore } from '../../src/nft/forwards-file.js';
import { FakeNft } from '../support/fake-nft.js';
import { recordingLogger } from '../support/recording-logger.js';

const BRIDGE: BridgeInfo = { name: 'br0', mac: '52:54:00:00:00:01', gateway: 0x0a4d0001, subnet: makeSubnet(0x0a4d0000, 24), created: false };
const V6 = { network: '2001:db8:77::', prefix: 64, gateway: '2001:db8:77::1' };
const names4 = new Map([['web', parseIpv4('10.77.0.50')!]]);
const names6 = new Map([['web', '2001:db8:77::50']]);

class MemoryStore implements ForwardsStore {
  constructor(public specs: string[] = []) {}
  load(): Promise<string[]> { return Promise.resolve([...this.specs]); }
  save(specs: readonly string[]): Promise<void> { this.specs = [...specs]; return Promise.resolve(); }
}

const open: Firewall[] = [];
afterEach(async () => {
  for (const f of open.splice(0)) await f.close().catch(() => undefined);
});

async function started(opts: { ipv6?: boolean; mode?: 'nat' | 'routed'; forwards?: string[] } = {}) {
  const nft = new FakeNft();
  const store = new MemoryStore();
  const config = resolveConfig({ bridge: 'br0', subnet: '10.77.0.1/24', stateDir: '/nonexistent/natd-unit', forwards: opts.forwards ?? [], ...(opts.ipv6 === false ? {} : { subnet6: '2001:db8:77::1/64', ipv6Mode: opts.mode ?? 'nat' }) });
  const firewall = new Firewall({
    config, bridge: BRIDGE, logger: recordingLogger(), resolveName: (n) => names4.get(n), healIntervalMs: 3_600_000, nft: { exec: nft.exec }, store,
    ...(opts.ipv6 === false ? {} : { ipv6: V6, resolveName6: (n: string) => names6.get(n) }),
  });
  await firewall.start();
  open.push(firewall);
  return { firewall, nft, store, config };
}

const batchText = (nft: FakeNft) => JSON.stringify(nft.batches);

describe('firewall with IPv6', () => {
  it('applies configured IPv6 forwards and a name forward in both families at start', async () => {
    const { firewall, nft } = await started({ forwards: ['tcp:2222=web:22', 'tcp:[2001:db8:51::1]:8080=[2001:db8:77::9]:80'] });
    const applied = batchText(nft);
    expect(applied).toContain('[{"concat":["tcp",2222]},"10.77.0.50"]');
    expect(applied).toContain('[{"concat":["tcp",2222]},"2001:db8:77::50"]');
    expect(applied).toContain('[{"concat":["2001:db8:51::1","tcp",8080]},"2001:db8:77::9"]');
    const rows = firewall.listForwards();
    expect(rows.map((r) => [r.spec, r.host, r.guest, r.inTable])).toEqual([
      ['tcp:2222=web:22', '*:2222', '10.77.0.50:22, [2001:db8:77::50]:22', true],
      ['tcp:[2001:db8:51::1]:8080=[2001:db8:77::9]:80', '[2001:db8:51::1]:8080', '[2001:db8:77::9]:80', true],
    ]);
  });

  it('adds and removes an IPv6 forward at runtime with element batches on the fwd6 maps only, persisted', async () => {
    const { firewall, nft, store } = await started();
    nft.batches = [];
    await firewall.addForward('udp:[2001:db8:51::1]:5353=web:53');
    expect(store.specs).toEqual(['udp:[2001:db8:51::1]:5353=web:53']);
    expect(nft.batches).toHaveLength(1);
    expect(batchText(nft)).toContain('"name":"fwd6_bound_addr"');
    expect(batchText(nft)).toContain('"2001:db8:77::50"');
    expect(batchText(nft)).not.toContain('"name":"fwd_');
    await firewall.removeForward('udp:[2001:db8:51::1]:5353=web:53');
    expect(store.specs).toEqual([]);
    expect(JSON.stringify(nft.batches[1])).toContain('"delete"');
  });

  it('refuses a forward bound to the IPv6 gateway on DNS or DHCPv6 without running nft; the uplink address is fine', async () => {
    const { firewall, nft, store } = await started();
    nft.calls = [];
    await expect(firewall.addForward('udp:[2001:db8:77::1]:547=[2001:db8:77::9]:547')).rejects.toThrow(/host address \[2001:db8:77::1\] is the bridge's IPv6 gateway, where natd serves the guests' DHCPv6 \(udp 547\)/);
    await expect(firewall.addForward('tcp:[2001:db8:77::1]:53=web:53')).rejects.toThrow(/IPv6 gateway, where natd serves the guests' DNS \(tcp 53\)/);
    expect(nft.calls).toEqual([]);
    await firewall.addForward('udp:[2001:db8:51::1]:53=web:53');
    expect(store.specs).toEqual(['udp:[2001:db8:51::1]:53=web:53']);
  });

  it('a forward on every address takes the port in both families once', async () => {
    const { firewall } = await started({ forwards: ['tcp:2222=web:22'] });
    await expect(firewall.addForward('tcp:2222=[2001:db8:77::9]:22')).rejects.toThrow(/host side tcp \. 2222 is already forwarded/);
  });

  it('refuses an IPv6 forward when natd serves no IPv6, and a guest outside the prefix, without running nft', async () => {
    const { firewall, nft } = await started({ ipv6: false });
    nft.batches = [];
    await expect(firewall.addForward('tcp:2222=[2001:db8:77::9]:22')).rejects.toThrow(/natd serves no IPv6 on the bridge/);
    const v6 = await started();
    v6.nft.batches = [];
    await expect(v6.firewall.addForward('tcp:2222=[2001:db8:99::9]:22')).rejects.toThrow(/outside the IPv6 prefix natd serves/);
    expect([...nft.batches, ...v6.nft.batches]).toEqual([]);
  });

  it('reload switches nat → routed in one full apply (NAT66 rule out, routed accept in)', async () => {
    const { firewall, nft, config } = await started();
    nft.batches = [];
    await firewall.reload(resolveConfig({ bridge: 'br0', subnet: '10.77.0.1/24', stateDir: config.stateDir, subnet6: '2001:db8:77::1/64', ipv6Mode: 'routed' }), (n) => names4.get(n));
    expect(nft.batches).toHaveLength(1);
    expect(batchText(nft)).toContain('routed IPv6 prefix');
    expect(batchText(nft)).not.toContain('NAT66');
  });
});
