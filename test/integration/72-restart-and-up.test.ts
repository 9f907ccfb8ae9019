/**
 * Operators restart natd (upgrade, config change) with guests connected: established connections must survive
 * through conntrack. And the README's first command, `npm run up`, must bring natd up on a bridge it creates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import path from 'node:path';
import { isRoot, Topology, UPLINK_WAN } from '../support/netns.js';
import { NATD_CLI, PROJECT_ROOT, runUdhcpc, startNatd, tempDir, waitForListener } from '../support/natd-process.js';

describe.skipIf(!isRoot() && !process.env.CI)('restarts and the README up command', () => {
  let topo: Topology;
  beforeAll(() => {
    topo = Topology.create({ vms: 1 });
  });
  afterAll(async () => {
    await topo?.destroy();
  });

  it('keeps an established TCP connection through the NAT across a natd restart', async () => {
    const stateDir = tempDir('natd-restart-');
    let natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN], { stateDir });
    expect((await runUdhcpc(topo, topo.vm(1).ns)).code).toBe(0);
    topo.spawn(topo.wan, ['socat', 'TCP-LISTEN:9000,reuseaddr,fork', 'EXEC:cat']);
    await waitForListener(topo, topo.wan, 9000);
    const client = await topo.start(topo.vm(1).ns, ['socat', '-', `TCP:${UPLINK_WAN}:9000`], { stdio: ['pipe', 'pipe', 'pipe'] });
    const firstEcho = client.waitForOutput('before-restart', { stream: 'stdout', timeoutMs: 10_000 });
    client.child.stdin!.write('before-restart\n');
    await firstEcho;

    expect(await topo.stop(natd.child)).toBe(0);
    natd = await startNatd(topo, ['--bridge', 'br0', '--upstream', UPLINK_WAN], { stateDir });
    const secondEcho = client.waitForOutput('after-restart', { stream: 'stdout', timeoutMs: 10_000 });
    client.child.stdin!.write('after-restart\n');
    await secondEcho;
    client.child.stdin!.end();
    await client.stop();
    expect(await topo.stop(natd.child)).toBe(0);
  });

  it('`npm run up` creates the default bridge and serves it', async () => {
    const dir = tempDir('natd-up-');
    const socket = path.join(dir, 'natd.sock');
    const up = (await topo.start(topo.host, ['npm', 'run', '--silent', 'up', '--', '--state-dir', dir, '--control-socket', socket, '--upstream', UPLINK_WAN],
      { cwd: PROJECT_ROOT, ready: '"natd ready"', stream: 'stdout', timeoutMs: 60_000 })).child;
    const link = JSON.parse(await topo.runOk(topo.host, ['ip', '-j', '-d', 'addr', 'show', 'dev', 'virbr10']))[0];
    expect(link.linkinfo.info_kind).toBe('bridge');
    expect(link.linkinfo.info_data.stp_state).toBe(1);
    expect(link.address).toMatch(/^52:54:00:/);
    expect(link.addr_info.some((a: { local: string; prefixlen: number }) => a.local === '10.10.0.1' && a.prefixlen === 24)).toBe(true);
    const status = JSON.parse(await topo.runOk(topo.host, [process.execPath, NATD_CLI, 'status', '--json', '--control-socket', socket]));
    expect(status.bridge).toBe('virbr10');
    process.kill(status.pid as number, 'SIGTERM');
    await new Promise<void>((resolve) => (up.exitCode !== null ? resolve() : up.once('exit', () => resolve())));
    expect(await topo.runOk(topo.host, ['nft', 'list', 'tables'])).not.toContain('natd-virbr10');
  });
});
