/** Prometheus metrics from a running natd: on the control socket (`natd metrics`) and over HTTP (--metrics-listen). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY, isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { NATD_CLI, runUdhcpc, startNatd, type NatdHandle } from '../support/natd-process.js';
import { startFakeUpstreamIn } from '../support/fake-upstream-ns.js';

/** The value of one sample line, e.g. sample(text, 'natd_dhcp_leases_active{bridge="br0"}'). */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe.skipIf(!isRoot() && !process.env.CI)('metrics', () => {
  let topo: Topology;
  let natd: NatdHandle;
  beforeAll(async () => {
    topo = Topology.create({ vms: 1 });
    await startFakeUpstreamIn(topo);
    natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN, '--metrics-listen', '127.0.0.1:9153']);
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  it('counts DHCP messages, leases, DNS queries, cache hits and ruleset applies', async () => {
    const metrics = () => topo.runOk(topo.host, [process.execPath, NATD_CLI, 'metrics', '--control-socket', natd.controlSocket]);
    const before = await metrics();
    expect(sample(before, 'natd_dhcp_leases_active{bridge="br0"}')).toBe(0);
    expect(sample(before, 'natd_ruleset_applies_total{bridge="br0"}')).toBe(1);

    expect((await runUdhcpc(topo, topo.vm(1).ns)).code).toBe(0);
    for (let i = 0; i < 2; i++) await topo.runOk(topo.vm(1).ns, ['dig', '+short', '+time=2', `@${GATEWAY}`, 'www.example.test']);
    const after = await metrics();
    expect(after).toContain('# TYPE natd_dhcp_messages_total counter');
    expect(sample(after, 'natd_dhcp_messages_total{bridge="br0",direction="in",type="discover"}')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'natd_dhcp_messages_total{bridge="br0",direction="out",type="ack"}')).toBeGreaterThanOrEqual(1);
    expect(sample(after, 'natd_dhcp_leases_active{bridge="br0"}')).toBe(1);
    expect(sample(after, 'natd_dns_queries_total{bridge="br0"}')).toBe(2);
    expect(sample(after, 'natd_dns_cache_hits_total{bridge="br0"}')).toBe(1);
    expect(sample(after, 'natd_dns_upstream_queries_total{bridge="br0"}')).toBe(1);

    // the same text over HTTP for a Prometheus scraper
    const fetch = "require('http').get('http://127.0.0.1:9153/metrics', (r) => { let b = ''; r.on('data', (d) => (b += d)); r.on('end', () => process.stdout.write(r.headers['content-type'] + '\\n' + b)); })";
    const http = await topo.runOk(topo.host, [process.execPath, '-e', fetch]);
    expect(http.split('\n')[0]).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(http, 'natd_dhcp_leases_active{bridge="br0"}')).toBe(1);
  });
});
